//! `moat replay`'s pipeline on captures made here with etherparse: what
//! passes comes out byte for byte, what does not is dropped with its reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use moat_hosted::config::HostedConfig;
use moat_hosted::replay::{ReplayFiles, replay};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const CLIENT_MAC: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 5];
const GW: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

fn hosted() -> HostedConfig {
    HostedConfig::parse(
        r#"
        [uplink]
        tap = "none"
        address = "10.138.0.2"
        gateway = "10.138.0.1"
        [[client]]
        tap = "none"
        ip = "10.137.0.5"
        mac = "00:16:3e:00:00:05"
        "#,
    )
    .unwrap()
}

fn udp(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GW)
        .ipv4(src, [10, 138, 1, 2], 64)
        .udp(40000, 53)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64 * 10), f.len() as u32, f)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("moat-replay-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_capture_replays_through_the_csum_router() {
    let system =
        moat_system::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/systems/csum-router.toml"))
            .unwrap_or_else(|r| panic!("{r}"));
    let d = dir("router");
    let good = udp([10, 137, 0, 5], b"query");
    let mut corrupt = udp([10, 137, 0, 5], b"query");
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff; // payload changed, checksum not
    let spoofed = udp([10, 137, 0, 99], b"query");
    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xff; 6]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[10, 137, 0, 5, 0, 0, 0, 0, 0, 0, 10, 137, 0, 1]);
    write_pcap(&d.join("in.pcap"), &[good.clone(), corrupt, spoofed, arp]);
    let files = ReplayFiles {
        clients_in: Some(d.join("in.pcap")),
        uplink_out: Some(d.join("up.pcap")),
        clients_out: Some(d.join("cl.pcap")),
        json: Some(d.join("v.json")),
        ..Default::default()
    };
    let (v, summary) = replay(&system, &hosted(), &files).unwrap();
    assert_eq!(v.len(), 4);
    assert_eq!(v[0].outcome, "forwarded");
    assert_eq!(v[1].outcome, "dropped");
    assert_eq!(v[1].counters.get("csum.clients.drop.bad_l4_checksum"), Some(&1), "{:?}", v[1]);
    assert_eq!(v[2].outcome, "dropped");
    assert_eq!(v[2].counters.get("netback.drop.spoofed"), Some(&1), "{:?}", v[2]);
    assert_eq!(v[3].outcome, "answered", "ARP for the gateway is answered");
    assert!(v[3].to_clients[0].contains("10.137.0.1 is-at fe:ff:ff:ff:ff:ff"), "{:?}", v[3]);
    assert_eq!(summary.frames, 4);
    // The forwarded packet leaves with the IP bytes it came with, addressed
    // to the gateway's MAC from moat's.
    let up = read_pcap(&d.join("up.pcap"));
    assert_eq!(up.len(), 1);
    assert_eq!(up[0][14..], good[14..]);
    assert_eq!(up[0][6..12], moat_hosted::config::DEFAULT_UPLINK_MAC);
    let json = std::fs::read_to_string(d.join("v.json")).unwrap();
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2]["outcome"], "dropped");
    assert_eq!(lines[2]["counters"]["netback.drop.spoofed"], 1);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn partial_checksums_from_a_sending_host_are_recognised() {
    // A correct checksum is not partial; the pseudo-header sum alone is.
    let f = udp([10, 137, 0, 5], b"abc");
    assert!(!moat_hosted::replay::partial_checksum(&f));
    let mut p = f.clone();
    // pseudo-header: src + dst + proto + UDP length, folded
    let words = [0x0a89u32, 0x0005, 0x0a8a, 0x0102, 17, 8 + 3];
    let mut sum: u32 = words.iter().sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&(sum as u16).to_be_bytes());
    assert!(moat_hosted::replay::partial_checksum(&p));
}

#[test]
fn the_firewall_translates_a_replayed_exchange_both_ways() {
    let system = moat_system::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../system.toml"))
        .unwrap_or_else(|r| panic!("{r}"));
    let d = dir("nat");
    // First pass: the client's query alone, to learn the port the NAT picks.
    write_pcap(&d.join("c.pcap"), &[udp([10, 137, 0, 5], b"query")]);
    let files =
        ReplayFiles { clients_in: Some(d.join("c.pcap")), uplink_out: Some(d.join("up.pcap")), ..Default::default() };
    let (v, _) = replay(&system, &hosted(), &files).unwrap();
    assert_eq!(v[0].outcome, "forwarded", "{:?}", v[0]);
    let out = read_pcap(&d.join("up.pcap"));
    let p = etherparse::SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
    assert_eq!(ip.header().source(), [10, 138, 0, 2], "source translated to moat's uplink address");
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else { panic!("not UDP") };
    let port = u.source_port();
    // Second pass: the query, the server's answer to the translated port
    // (back to the client, translated back), and a stray to another port
    // (dropped: no connection).
    let mut answer = Vec::new();
    etherparse::PacketBuilder::ethernet2([0x0a, 0, 0, 0, 0, 1], [2; 6])
        .ipv4([10, 138, 1, 2], [10, 138, 0, 2], 60)
        .udp(53, port)
        .write(&mut answer, b"answer")
        .unwrap();
    let unsolicited = {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([0x0a, 0, 0, 0, 0, 1], [2; 6])
            .ipv4([10, 138, 1, 2], [10, 138, 0, 2], 60)
            .udp(53, port.wrapping_add(1))
            .write(&mut f, b"stray")
            .unwrap();
        f
    };
    let mut w = PcapWriter::new(std::fs::File::create(d.join("u.pcap")).unwrap()).unwrap();
    w.write_packet(&PcapPacket::new(Duration::from_millis(5), answer.len() as u32, &answer)).unwrap();
    w.write_packet(&PcapPacket::new(Duration::from_millis(6), unsolicited.len() as u32, &unsolicited)).unwrap();
    drop(w);
    let files = ReplayFiles {
        clients_in: Some(d.join("c.pcap")),
        uplink_in: Some(d.join("u.pcap")),
        clients_out: Some(d.join("cl.pcap")),
        ..Default::default()
    };
    let (v, _) = replay(&system, &hosted(), &files).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[1].outcome, "forwarded", "the answer reaches the client: {:?}", v[1]);
    assert_eq!(v[2].outcome, "dropped", "{:?}", v[2]);
    assert!(v[2].counters.keys().any(|k| k.starts_with("nat.drop.")), "{:?}", v[2]);
    let back = read_pcap(&d.join("cl.pcap"));
    assert_eq!(back.len(), 1);
    let p = etherparse::SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
    assert_eq!(ip.header().destination(), [10, 137, 0, 5], "destination translated back");
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else { panic!("not UDP") };
    assert_eq!(u.destination_port(), 40000);
    assert_eq!(u.payload(), b"answer");
    std::fs::remove_dir_all(d).unwrap();
}
