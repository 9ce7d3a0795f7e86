//! Every frame Linux produced in `tests/data/*.pcap` (see
//! `tests/data/capture`) parses, and to the same fields etherparse reads.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use moat_net::ethernet::{Arp, Ethernet, ethertype};
use moat_net::ip::{Fragment, Transport, classify};
use pcap_file::pcap::PcapReader;

fn frames(name: &str) -> Vec<Vec<u8>> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "..", "tests", "data", name].iter().collect();
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    std::iter::from_fn(|| r.next_packet().map(|p| p.unwrap().data.into_owned())).collect()
}

#[test]
fn captured_frames_parse_like_etherparse_reads_them() {
    let mut n = 0;
    for name in ["client.pcap", "server.pcap"] {
        for f in frames(name) {
            n += 1;
            let eth = Ethernet::parse(&f[..]).unwrap();
            let theirs = SlicedPacket::from_ethernet(&f).unwrap();
            match (eth.ethertype(), theirs.net.as_ref().unwrap()) {
                (ethertype::ARP, NetSlice::Arp(a)) => {
                    let ours = Arp::parse(eth.payload()).unwrap();
                    assert_eq!(ours.packet().spa[..], *a.sender_protocol_addr());
                    assert_eq!(ours.packet().tpa[..], *a.target_protocol_addr());
                    assert_eq!(ours.oper(), a.operation().0);
                }
                (ethertype::IPV4, NetSlice::Ipv4(ip)) => {
                    let s = classify(eth.payload()).unwrap();
                    assert_eq!(s.src, IpAddr::from(ip.header().source()));
                    assert_eq!(s.dst, IpAddr::from(ip.header().destination()));
                    assert_eq!(s.fragment != Fragment::Whole, ip.is_payload_fragmented());
                    assert_eq!(s.total_len, usize::from(ip.header().total_len()));
                    transport_agrees(s.transport, theirs.transport.as_ref());
                }
                (ethertype::IPV6, NetSlice::Ipv6(ip)) => {
                    let s = classify(eth.payload()).unwrap();
                    assert_eq!(s.src, IpAddr::from(ip.header().source()));
                    assert_eq!(s.protocol, ip.payload().ip_number.0);
                    assert_eq!(s.l4_offset, 40 + ip.extensions().slice().len());
                    assert_eq!(s.fragment != Fragment::Whole, ip.is_payload_fragmented());
                    transport_agrees(s.transport, theirs.transport.as_ref());
                }
                (t, _) => panic!("ethertype {t:#x} disagrees"),
            }
        }
    }
    assert!(n > 200, "{n} frames");
}

fn transport_agrees(ours: Transport, theirs: Option<&TransportSlice>) {
    match (ours, theirs) {
        (Transport::Tcp { src_port, dst_port, .. }, Some(TransportSlice::Tcp(t))) => {
            assert_eq!((src_port, dst_port), (t.source_port(), t.destination_port()))
        }
        (Transport::Udp { src_port, dst_port }, Some(TransportSlice::Udp(u))) => {
            assert_eq!((src_port, dst_port), (u.source_port(), u.destination_port()))
        }
        (Transport::Icmp { ty, code, .. }, Some(TransportSlice::Icmpv4(m))) => {
            assert_eq!((ty, code), (m.type_u8(), m.code_u8()))
        }
        (Transport::Icmp { ty, code, .. }, Some(TransportSlice::Icmpv6(m))) => {
            assert_eq!((ty, code), (m.type_u8(), m.code_u8()))
        }
        // etherparse leaves fragments' transport unparsed.
        (Transport::Fragment, None) => {}
        (Transport::Tcp { .. } | Transport::Udp { .. } | Transport::Icmp { .. }, None) => {}
        (o, t) => panic!("transport disagrees: {o:?} vs {t:?}"),
    }
}
