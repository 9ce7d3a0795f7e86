//! Flow keys from packets an independent implementation (etherparse) built.

use etherparse::{IpNumber, Ipv6RawExtHeader, PacketBuilder};
use moat_control::rules::{Addr, FlowKey, L4};
use moat_rules::flow::{FlowError, extract};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum T {
    Tcp(u16, u16),
    Udp(u16, u16),
    Echo(u16),
}

fn build(v6: bool, src: [u8; 16], dst: [u8; 16], t: T, payload: &[u8]) -> Vec<u8> {
    let b = if v6 {
        PacketBuilder::ipv6(src, dst, 64)
    } else {
        let s: [u8; 4] = src[..4].try_into().unwrap();
        let d: [u8; 4] = dst[..4].try_into().unwrap();
        PacketBuilder::ipv4(s, d, 64)
    };
    let mut out = Vec::new();
    match t {
        T::Tcp(sp, dp) => b.tcp(sp, dp, 1, 1024).write(&mut out, payload).unwrap(),
        T::Udp(sp, dp) => b.udp(sp, dp).write(&mut out, payload).unwrap(),
        T::Echo(id) if v6 => b.icmpv6_echo_request(id, 1).write(&mut out, payload).unwrap(),
        T::Echo(id) => b.icmpv4_echo_request(id, 1).write(&mut out, payload).unwrap(),
    }
    out
}

fn arb_t() -> impl Strategy<Value = T> {
    prop_oneof![
        any::<(u16, u16)>().prop_map(|(a, b)| T::Tcp(a, b)),
        any::<(u16, u16)>().prop_map(|(a, b)| T::Udp(a, b)),
        any::<u16>().prop_map(T::Echo),
    ]
}

proptest! {
    #[test]
    fn keys_match_etherparse(v6 in any::<bool>(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), t in arb_t(),
                             payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let pkt = build(v6, src, dst, t, &payload);
        let (got_src, key) = extract(&pkt).unwrap();
        let addr = |b: [u8; 16]| if v6 { Addr::V6(b) } else { Addr::V4(b[..4].try_into().unwrap()) };
        prop_assert_eq!(got_src, addr(src));
        let want = match t {
            T::Tcp(_, dp) => FlowKey { dst: addr(dst), proto: 6, l4: L4::Port(dp) },
            T::Udp(_, dp) => FlowKey { dst: addr(dst), proto: 17, l4: L4::Port(dp) },
            T::Echo(_) => FlowKey { dst: addr(dst), proto: if v6 { 58 } else { 1 }, l4: L4::Icmp(if v6 { 128 } else { 8 }) },
        };
        prop_assert_eq!(key, want);
        // Cut short anywhere inside the headers: refused, never a panic.
        let cut = pkt.len().min(20 + usize::from(v6) * 20 + 7);
        prop_assert!(extract(&pkt[..cut]).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let _ = extract(&bytes);
    }
}

#[test]
fn ipv6_extension_headers_are_walked() {
    // Hop-by-hop and destination options before TCP port 443.
    let hbh = Ipv6RawExtHeader::new_raw(IpNumber::IPV6_DESTINATION_OPTIONS, &[0; 6]).unwrap();
    let dopt = Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[0; 6]).unwrap();
    let mut tcp = etherparse::TcpHeader::new(1, 443, 1, 1024);
    let dst = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let src = [0xfd; 16];
    let payload_len = (hbh.header_len() + dopt.header_len() + tcp.header_len()) as u16;
    let ip = etherparse::Ipv6Header {
        payload_length: payload_len,
        next_header: IpNumber::IPV6_HEADER_HOP_BY_HOP,
        hop_limit: 64,
        source: src,
        destination: dst,
        ..Default::default()
    };
    tcp.checksum = 0;
    let mut pkt = Vec::new();
    ip.write(&mut pkt).unwrap();
    hbh.write(&mut pkt).unwrap();
    dopt.write(&mut pkt).unwrap();
    tcp.write(&mut pkt).unwrap();
    let (_, key) = extract(&pkt).unwrap();
    assert_eq!(key, FlowKey { dst: Addr::V6(dst), proto: 6, l4: L4::Port(443) });
}

#[test]
fn routed_ipv6_and_later_fragments() {
    // A routing header with segments left: the header destination is not final.
    // next header, length 0 (8 bytes), routing type 0, segments left 1.
    let rh = [IpNumber::TCP.0, 0, 0, 1, 0, 0, 0, 0];
    let tcp = etherparse::TcpHeader::new(1, 443, 1, 1024);
    let ip = etherparse::Ipv6Header {
        payload_length: (8 + tcp.header_len()) as u16,
        next_header: IpNumber::IPV6_ROUTE_HEADER,
        hop_limit: 64,
        source: [0xfd; 16],
        destination: [0x20; 16],
        ..Default::default()
    };
    let mut pkt = Vec::new();
    ip.write(&mut pkt).unwrap();
    pkt.extend_from_slice(&rh);
    tcp.write(&mut pkt).unwrap();
    assert_eq!(extract(&pkt), Err(FlowError::Routed));
    pkt[40 + 3] = 0; // segments left 0: done routing, fine
    assert_eq!(extract(&pkt).unwrap().1.l4, L4::Port(443));

    // An IPv4 fragment at offset 8: no ports.
    let mut p = build(false, [10; 16], [1; 16], T::Tcp(1, 443), b"0123456789abcdef");
    p[6] = 0;
    p[7] = 1;
    let (_, key) = extract(&p).unwrap();
    assert_eq!(key.l4, L4::None);
    assert_eq!(key.proto, 6);
}
