//! Real Linux traffic (`tests/data/nat-tcp.pcap`, made by
//! `tests/data/nat-capture` in network namespaces) replayed through the NAT:
//! the client's packets go out translated, the server's come back in
//! (addressed to the uplink address and port, as the uplink would deliver
//! them) and must reach the client exactly as Linux delivered them, one hop
//! later. Every TCP scenario must end in the state the issue expects, and
//! the fragmented UDP datagrams must pass both ways.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use common::*;
use moat_nat::Fate;
use moat_nat::conn::State;
use moat_nat::table::OutKey;
use moat_net::ethernet::{Ethernet, ethertype};
use moat_net::ip::{Fragment, Transport, classify};
use moat_net::meta::Verdict;
use moat_net::rewrite::{self, End};
use pcap_file::pcap::PcapReader;

const CLIENT: [u8; 4] = [10, 137, 0, 5];
const LINUX_SERVER: [u8; 4] = [10, 138, 0, 5];

fn packets() -> Vec<(u64, Vec<u8>)> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "..", "tests", "data", "nat-tcp.pcap"].iter().collect();
    let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let eth = Ethernet::parse(&p.data[..]).unwrap();
        if eth.ethertype() == ethertype::IPV4 {
            out.push((p.timestamp.as_nanos() as u64, eth.payload().to_vec()));
        }
    }
    out
}

#[test]
fn linux_tcp_scenarios_and_fragments_replay_through_the_nat() {
    let pkts = packets();
    assert!(pkts.len() > 60, "{} packets", pkts.len());
    let mut cfg = config();
    cfg.max_connections = 1024;
    cfg.max_per_client = 1024;
    let mut e = engine(&cfg, 0);
    e.client_event(&moat_control::ClientEvent::Up { slot: 0, ipv4: CLIENT, ipv6: None, mac: [0; 6] });
    let t0 = pkts[0].0;
    let mut nat_port: HashMap<(u8, u16), u16> = HashMap::new();
    let mut states: HashMap<u16, Vec<State>> = HashMap::new();
    let (mut frags_out, mut frags_in) = (0, 0);
    for (i, (ts, p)) in pkts.iter().enumerate() {
        let now = ts - t0 + 1;
        let s = classify(p).unwrap();
        let from_client = s.src == core::net::IpAddr::from(CLIENT);
        let (proto, sport, dport) = match s.transport {
            Transport::Tcp { src_port, dst_port, .. } => (6, src_port, dst_port),
            Transport::Udp { src_port, dst_port } => (17, src_port, dst_port),
            _ => (s.protocol, 0, 0),
        };
        let cport = if from_client { sport } else { dport };
        if from_client {
            frags_out += usize::from(s.fragment != Fragment::Whole);
            let mut b = Buf::new(p);
            assert_eq!(b.out(&mut e, 0, Verdict::Accept, now).fate, Fate::Uplink, "packet {i} out: {:?}", e.counters());
            assert!(s.fragment == Fragment::Later || checksums_right(b.packet()) || s.fragment == Fragment::First);
            if s.fragment != Fragment::Later {
                let (src, _, np, _) = tuple(b.packet());
                assert_eq!(src, UPLINK);
                nat_port.insert((proto, cport), np);
            }
        } else {
            frags_in += usize::from(s.fragment != Fragment::Whole);
            // As the uplink delivers it: to our address and port.
            let mut q = p.clone();
            let port = (s.fragment != Fragment::Later).then(|| nat_port[&(proto, cport)]);
            rewrite::ipv4(&mut q, End::Dst, UPLINK.into(), port).unwrap();
            let mut b = Buf::new(&q);
            assert_eq!(b.inb(&mut e, now).fate, Fate::Client(0), "packet {i} in: {:?}", e.counters());
            assert_eq!(b.packet(), &with_ttl(p.clone(), p[8] - 1)[..], "packet {i}: what Linux delivered, one hop on");
        }
        if proto == 6 {
            let key = OutKey {
                proto,
                client_ip: CLIENT,
                client_port: cport,
                remote_ip: LINUX_SERVER,
                remote_port: if from_client { dport } else { sport },
            };
            let t = e.table();
            let st = t.get(t.find_out(&key).unwrap()).state().unwrap();
            let v = states.entry(key.remote_port).or_default();
            if v.last() != Some(&st) {
                v.push(st);
            }
        }
        e.check().unwrap();
    }
    use State::*;
    // Linux's server answers the client's FIN with its own FIN carrying the
    // ACK, so the connection goes from FIN_WAIT straight to LAST_ACK.
    assert_eq!(states[&8080], [SynSent, SynRecv, Established, FinWait, LastAck, TimeWait], "orderly close");
    // Half-closed: the server acknowledges the FIN and sends on (CLOSE_WAIT).
    assert_eq!(states[&8082], [SynSent, SynRecv, Established, FinWait, CloseWait, LastAck, TimeWait], "half-close");
    assert_eq!(states[&8083], [SynSent, SynRecv, Established, Close], "client reset");
    assert_eq!(states[&9], [SynSent, Close], "refused");
    assert_eq!(states[&8084], [SynSent, SynRecv, Established, FinWait, LastAck, TimeWait], "simultaneous close");
    assert_eq!(states[&8081], [SynSent, SynRecv, Established, FinWait, LastAck, TimeWait], "retransmitted SYN");
    assert!(frags_out >= 3 && frags_in >= 3, "fragments both ways: {frags_out} out, {frags_in} in");
    assert_eq!(e.counters().get(moat_nat::counters::C::FragTranslated) as usize, frags_out + frags_in - 2);
}
