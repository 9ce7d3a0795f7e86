//! Real packets from the Linux stack (captured by `tests/data/capture` in
//! network namespaces): every one must validate, a one-byte corruption in
//! any region a checksum covers must be dropped, and csum's completion of
//! the client's blank (CHECKSUM_PARTIAL) TCP/UDP checksums must give exactly
//! the bytes Linux itself produced and the server accepted.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;

use moat_component::{Instant, PacketDesc, PoolGeometry};
use moat_csum::check::{Pass, Side, check};
use moat_csum::{Csum, CsumConfig};
use moat_net::ethernet::{Arp, Ethernet, ethertype};
use moat_net::ip::{Fragment, Transport, classify};
use moat_net::meta::{HEADROOM, flags};
use moat_net::{icmpv4, proto};
use moat_runtime::harness::Harness;
use pcap_file::pcap::PcapReader;

/// IP packets (Ethernet stripped) of a capture; ARP frames are checked with
/// the ARP view and left out.
fn ip_packets(name: &str) -> Vec<Vec<u8>> {
    read(name).0
}

/// IP packets and the number of ARP frames.
fn read(name: &str) -> (Vec<Vec<u8>>, usize) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "..", "tests", "data", name].iter().collect();
    let mut r = PcapReader::new(File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap();
    let mut out = Vec::new();
    let mut arps = 0;
    while let Some(p) = r.next_packet() {
        let frame = p.unwrap().data.into_owned();
        let eth = Ethernet::parse(&frame[..]).unwrap();
        match eth.ethertype() {
            ethertype::ARP => {
                Arp::parse(eth.payload()).expect("Linux's ARP parses");
                arps += 1;
            }
            ethertype::IPV4 | ethertype::IPV6 => out.push(eth.payload().to_vec()),
            t => panic!("unexpected ethertype {t:#x}"),
        }
    }
    (out, arps)
}

const CLIENT: [&str; 2] = ["10.137.0.5", "fd00:137::5"];

fn from_client(p: &[u8]) -> bool {
    let s = classify(p).unwrap();
    CLIENT.iter().any(|c| s.src == c.parse::<IpAddr>().unwrap())
}

/// Blank on the wire from the client: Linux leaves whole TCP/UDP partial.
fn is_blank(p: &[u8]) -> bool {
    let s = classify(p).unwrap();
    from_client(p) && s.fragment == Fragment::Whole && matches!(s.protocol, proto::TCP | proto::UDP)
}

/// Byte positions one flip at a time must be caught at: the whole IPv4
/// header, the IPv6 addresses (in the pseudo-header), and a spread of the
/// L4 region when the packet's L4 checksum was verified.
fn covered(p: &[u8], how: Pass) -> Vec<usize> {
    let s = classify(p).unwrap();
    let mut at: Vec<usize> = if p[0] >> 4 == 4 { (0..s.l4_offset).collect() } else { Vec::new() };
    if how.csum_ok() {
        if p[0] >> 4 == 6 {
            at.extend(8..40);
        }
        let l4 = s.l4_offset..s.total_len;
        at.extend(l4.clone().take(64));
        at.extend(l4.skip(64).step_by(97));
    }
    at
}

#[derive(Default, Debug)]
struct Seen {
    tcp: usize,
    udp: usize,
    dns: usize,
    echo: usize,
    errors: usize,
    options: usize,
    fragments: usize,
    v6: usize,
}

fn tally(seen: &mut Seen, p: &[u8]) {
    let s = classify(p).unwrap();
    match s.transport {
        Transport::Tcp { .. } => seen.tcp += 1,
        Transport::Udp { src_port, dst_port } => {
            seen.udp += 1;
            seen.dns += usize::from(src_port == 53 || dst_port == 53);
        }
        Transport::Icmp { error: true, .. } => seen.errors += 1,
        Transport::Icmp { ty: icmpv4::ty::ECHO_REQUEST | 128, .. } => seen.echo += 1,
        _ => {}
    }
    seen.fragments += usize::from(s.fragment != Fragment::Whole);
    seen.options += usize::from(p[0] >> 4 == 4 && p[0] & 0xf > 5);
    seen.v6 += usize::from(p[0] >> 4 == 6);
}

/// Every complete packet validates, and every covered one-byte corruption
/// of it is dropped.
fn validate_all(packets: &[Vec<u8>], side: Side) -> Seen {
    let mut seen = Seen::default();
    for (i, p) in packets.iter().enumerate() {
        tally(&mut seen, p);
        let mut q = p.clone();
        let passed = check(&mut q, 0, side).unwrap_or_else(|e| panic!("packet {i} refused: {e:?}"));
        assert_eq!(&q, p, "verification changes nothing");
        assert_eq!(passed.len, p.len());
        let expected_fragment = classify(p).unwrap().fragment != Fragment::Whole;
        assert_eq!(passed.how == Pass::UnverifiedFragment, expected_fragment, "packet {i}: {passed:?}");
        assert!(passed.how.csum_ok() || expected_fragment, "packet {i}: {passed:?}");
        for at in covered(p, passed.how) {
            for flip in [0x01u8, 0xff] {
                let mut bad = p.clone();
                bad[at] ^= flip;
                assert!(check(&mut bad, 0, side).is_err(), "packet {i}: flipping byte {at} by {flip:#x} went unseen");
            }
        }
    }
    seen
}

#[test]
fn everything_the_server_received_validates_and_corruption_is_caught() {
    let packets = ip_packets("server.pcap");
    let seen = validate_all(&packets, Side::Uplink);
    // The capture holds what the issue asks for; a regenerated capture that
    // lost some of it must fail here.
    assert!(seen.tcp > 20 && seen.udp >= 4 && seen.dns >= 4, "{seen:?}");
    assert!(seen.echo >= 4 && seen.errors >= 2 && seen.options >= 2, "{seen:?}");
    assert!(seen.fragments >= 6 && seen.v6 > 10, "{seen:?}");
}

#[test]
fn everything_the_client_received_or_sent_complete_validates() {
    let (all, arps) = read("client.pcap");
    assert!(arps >= 2, "the client resolved its gateway");
    let packets: Vec<_> = all.into_iter().filter(|p| !is_blank(p)).collect();
    let seen = validate_all(&packets, Side::Clients);
    assert!(seen.errors >= 3, "time exceeded, port unreachable (v4 and v6): {seen:?}");
}

#[test]
fn blank_completion_matches_what_linux_computed() {
    let client = ip_packets("client.pcap");
    let server = ip_packets("server.pcap");
    let blank: Vec<_> = client.iter().filter(|p| is_blank(p)).cloned().collect();
    assert!(blank.len() > 20, "TCP both versions and UDP");

    // Through the component, as netback would hand them over.
    let mut h = Harness::new();
    let mut up = h.input::<PacketDesc>("from_clients", 256);
    let _up_free = h.output::<PacketDesc>("from_clients_free", 256);
    let mut down = h.output::<PacketDesc>("to_rules", 256);
    let _down_free = h.input::<PacketDesc>("to_rules_free", 256);
    h.input::<PacketDesc>("from_uplink", 256);
    h.output::<PacketDesc>("from_uplink_free", 256);
    h.output::<PacketDesc>("to_nat", 256);
    h.input::<PacketDesc>("to_nat_free", 256);
    let mut pool = h.pool("client_buffers", PoolGeometry::new(1, 2048, 256).unwrap(), true);
    h.pool("uplink_buffers", PoolGeometry::new(2, 2048, 16).unwrap(), true);
    let mut csum = h.start::<Csum>(CsumConfig::default()).unwrap();

    for (i, p) in blank.iter().enumerate() {
        let mut as_is = p.clone();
        assert!(check(&mut as_is, 0, Side::Clients).is_err(), "packet {i} is partial, not valid as it stands");
        let d = PacketDesc {
            pool: 1,
            flags: flags::CSUM_BLANK,
            offset: i as u32 * 2048 + HEADROOM,
            len: p.len() as u32,
            meta: 0,
        };
        pool.packet_mut(&d).unwrap().copy_from_slice(p);
        up.push(&d).unwrap();
    }
    let _ = up.publish();
    csum.settle(Instant::ZERO, 16).unwrap();
    let out: Vec<_> = std::iter::from_fn(|| down.pop().unwrap()).collect();
    assert_eq!(out.len(), blank.len(), "{:?}", csum.status());

    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.flags, flags::CSUM_OK);
        let done = pool.packet(d).unwrap();
        let mut again = done.to_vec();
        assert_eq!(check(&mut again, 0, Side::Clients).map(|p| p.how), Ok(Pass::Verified), "completed is valid");
        let s = classify(done).unwrap();
        if s.ttl == 1 {
            // Sent with TTL 1: the router dropped it, so Linux never
            // completed it (the router's time-exceeded quotes it partial).
            continue;
        }
        let l4 = &done[s.l4_offset..s.total_len];
        // The same segment as the server received it (one hop later: only
        // the TTL and IPv4 header checksum differ, outside L4).
        let twin = server.iter().find(|q| {
            let t = classify(q).unwrap();
            (t.src, t.dst) == (s.src, s.dst) && &q[t.l4_offset..t.total_len] == l4
        });
        assert!(twin.is_some(), "completed packet {i} ({:?}) matches nothing Linux sent on", s.transport);
    }
}
