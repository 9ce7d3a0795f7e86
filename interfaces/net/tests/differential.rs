//! moat-net against two independent implementations: packets built by
//! etherparse must parse to the same fields as etherparse and smoltcp see,
//! checksums must agree with theirs, and arbitrary bytes must be accepted or
//! refused exactly where smoltcp's checked constructors accept or refuse them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpAuthHeader, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, Ipv6RoutingExtensions, PacketBuilder, SlicedPacket, TransportSlice,
};
use moat_net::ip::{Fragment, Transport, classify};
use moat_net::ipv4::Ipv4;
use moat_net::ipv6::Ipv6;
use moat_net::rewrite::{self, End};
use moat_net::{icmpv4::Icmpv4, icmpv6::Icmpv6, proto, tcp::Tcp, udp::Udp};
use proptest::prelude::*;
use smoltcp::wire as sm;

#[derive(Clone, Debug)]
enum L4 {
    Tcp { sport: u16, dport: u16, seq: u32, syn: bool },
    Udp { sport: u16, dport: u16 },
    Echo { id: u16, seq: u16 },
}

#[derive(Clone, Debug)]
struct Spec {
    v6: bool,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    ttl: u8,
    options: Vec<u8>,
    exts: Vec<u8>,
    l4: L4,
    payload: Vec<u8>,
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<bool>()).prop_map(|(sport, dport, seq, syn)| L4::Tcp {
            sport,
            dport,
            seq,
            syn
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Udp { sport, dport }),
        (any::<u16>(), any::<u16>()).prop_map(|(id, seq)| L4::Echo { id, seq }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<[u8; 16]>(), any::<[u8; 16]>()),
        1u8..=255,
        (0usize..=10).prop_flat_map(|words| prop::collection::vec(any::<u8>(), words * 4)),
        prop::collection::vec(0u8..5, 0..4),
        l4(),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(v6, (src4, dst4, src6, dst6), ttl, options, exts, l4, payload)| Spec {
            v6,
            src4,
            dst4,
            src6,
            dst6,
            ttl,
            options,
            exts,
            l4,
            payload,
        })
}

/// Builds the packet with etherparse (IPv4 options, IPv6 extension headers
/// in etherparse's canonical order).
fn build(s: &Spec) -> Vec<u8> {
    let ip = if s.v6 {
        let mut exts = Ipv6Extensions::default();
        let raw = |n: usize| Ipv6RawExtHeader::new_raw(IpNumber(59), &vec![0x01; 6 + 8 * n]).unwrap();
        // Routing type 0x01 would do; segments left must be 0 (final destination).
        let routing = Ipv6RawExtHeader::new_raw(IpNumber(59), &[0x02, 0, 0, 0, 0, 0]).unwrap();
        for &e in &s.exts {
            match e {
                0 => exts.hop_by_hop_options = Some(raw(0)),
                1 => exts.destination_options = Some(raw(1)),
                2 => {
                    exts.routing =
                        Some(Ipv6RoutingExtensions { routing: routing.clone(), final_destination_options: None })
                }
                3 => exts.fragment = Some(Ipv6FragmentHeader::new(IpNumber(59), IpFragOffset::ZERO, false, 0xabcd)),
                _ => exts.auth = Some(IpAuthHeader::new(IpNumber(59), 1, 2, &[0; 8]).unwrap()),
            }
        }
        let h = Ipv6Header { hop_limit: s.ttl, source: s.src6, destination: s.dst6, ..Default::default() };
        IpHeaders::Ipv6(h, exts)
    } else {
        let mut h = Ipv4Header::new(0, s.ttl, IpNumber::TCP, s.src4, s.dst4).unwrap();
        h.options = s.options[..].try_into().unwrap();
        IpHeaders::Ipv4(h, Default::default())
    };
    let b = PacketBuilder::ip(ip);
    let mut out = Vec::new();
    match (&s.l4, s.v6) {
        (L4::Tcp { sport, dport, seq, syn }, _) => {
            let t = b.tcp(*sport, *dport, *seq, 1000);
            let t = if *syn { t.syn() } else { t.ack(7).psh() };
            t.write(&mut out, &s.payload).unwrap()
        }
        (L4::Udp { sport, dport }, _) => b.udp(*sport, *dport).write(&mut out, &s.payload).unwrap(),
        (L4::Echo { id, seq }, false) => b.icmpv4_echo_request(*id, *seq).write(&mut out, &s.payload).unwrap(),
        (L4::Echo { id, seq }, true) => b.icmpv6_echo_request(*id, *seq).write(&mut out, &s.payload).unwrap(),
    }
    out
}

/// Our verdict on every checksum in a whole packet.
fn checksums_ok(p: &[u8]) -> bool {
    let s = classify(p).unwrap();
    let l4 = &p[s.l4_offset..s.l4_offset + s.l4_len];
    match (s.src, s.dst) {
        (IpAddr::V4(_), _) => {
            let ip = Ipv4::parse(p).unwrap();
            let pseudo = ip.pseudo_header();
            ip.checksum_ok()
                && match s.protocol {
                    proto::TCP => Tcp::parse(l4).unwrap().checksum_ok(pseudo),
                    proto::UDP => Udp::parse(l4).unwrap().checksum(pseudo) == moat_net::udp::UdpChecksum::Valid,
                    proto::ICMP => Icmpv4::parse(l4).unwrap().checksum_ok(),
                    _ => unreachable!(),
                }
        }
        (IpAddr::V6(_), _) => {
            let ip = Ipv6::parse(p).unwrap();
            let pseudo = ip.pseudo_header(s.protocol, s.l4_len as u32);
            match s.protocol {
                proto::TCP => Tcp::parse(l4).unwrap().checksum_ok(pseudo),
                proto::UDP => Udp::parse(l4).unwrap().checksum(pseudo) == moat_net::udp::UdpChecksum::Valid,
                proto::ICMPV6 => Icmpv6::parse(l4).unwrap().checksum_ok(pseudo),
                _ => unreachable!(),
            }
        }
    }
}

/// smoltcp's verdict on the same checksums.
fn smoltcp_checksums_ok(p: &[u8], l4_offset: usize) -> bool {
    let (src, dst, protocol, ip_ok) = if p[0] >> 4 == 4 {
        let ip = sm::Ipv4Packet::new_checked(p).unwrap();
        (
            sm::IpAddress::Ipv4(ip.src_addr()),
            sm::IpAddress::Ipv4(ip.dst_addr()),
            u8::from(ip.next_header()),
            ip.verify_checksum(),
        )
    } else {
        let ip = sm::Ipv6Packet::new_checked(p).unwrap();
        // smoltcp has no extension-header walk to compare; the protocol is
        // ours, the addresses and the sums are its.
        let proto = classify(p).unwrap().protocol;
        (sm::IpAddress::Ipv6(ip.src_addr()), sm::IpAddress::Ipv6(ip.dst_addr()), proto, true)
    };
    let total = classify(p).unwrap().total_len;
    let l4 = &p[l4_offset..total];
    ip_ok
        && match (protocol, src, dst) {
            (proto::TCP, s, d) => sm::TcpPacket::new_checked(l4).unwrap().verify_checksum(&s, &d),
            (proto::UDP, s, d) => sm::UdpPacket::new_checked(l4).unwrap().verify_checksum(&s, &d),
            (proto::ICMP, _, _) => sm::Icmpv4Packet::new_checked(l4).unwrap().verify_checksum(),
            (proto::ICMPV6, sm::IpAddress::Ipv6(s), sm::IpAddress::Ipv6(d)) => {
                sm::Icmpv6Packet::new_checked(l4).unwrap().verify_checksum(&s, &d)
            }
            _ => unreachable!(),
        }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Same fields as etherparse sees, same checksum verdict as smoltcp.
    #[test]
    fn parses_like_etherparse_and_sums_like_smoltcp(s in spec()) {
        let p = build(&s);
        let ours = classify(&p).expect("etherparse-built packet must parse");
        let theirs = SlicedPacket::from_ip(&p).expect("etherparse reads its own");
        match theirs.net.as_ref().unwrap() {
            etherparse::NetSlice::Ipv4(ip) => {
                prop_assert_eq!(ours.src, IpAddr::V4(Ipv4Addr::from(ip.header().source())));
                prop_assert_eq!(ours.dst, IpAddr::V4(Ipv4Addr::from(ip.header().destination())));
                prop_assert_eq!(ours.protocol, ip.header().protocol().0);
                prop_assert_eq!(ours.l4_offset, ip.header().slice().len());
                prop_assert_eq!(ours.ttl, ip.header().ttl());
            }
            etherparse::NetSlice::Ipv6(ip) => {
                prop_assert_eq!(ours.src, IpAddr::V6(Ipv6Addr::from(ip.header().source())));
                prop_assert_eq!(ours.dst, IpAddr::V6(Ipv6Addr::from(ip.header().destination())));
                prop_assert_eq!(ours.protocol, ip.payload().ip_number.0);
                prop_assert_eq!(ours.l4_offset, 40 + ip.extensions().slice().len());
                prop_assert_eq!(ours.routed, false, "etherparse's routing headers have segments_left 0");
            }
            _ => unreachable!(),
        }
        prop_assert_eq!(ours.fragment, Fragment::Whole);
        match (theirs.transport.as_ref().unwrap(), ours.transport) {
            (TransportSlice::Tcp(t), Transport::Tcp { src_port, dst_port, flags }) => {
                prop_assert_eq!((src_port, dst_port), (t.source_port(), t.destination_port()));
                prop_assert_eq!(flags & 0x02 != 0, t.syn());
            }
            (TransportSlice::Udp(u), Transport::Udp { src_port, dst_port }) => {
                prop_assert_eq!((src_port, dst_port), (u.source_port(), u.destination_port()));
            }
            (TransportSlice::Icmpv4(m), Transport::Icmp { ty, ident, error, .. }) => {
                prop_assert_eq!(ty, m.type_u8());
                prop_assert_eq!(ident, Some(u16::from_be_bytes([m.bytes5to8()[0], m.bytes5to8()[1]])));
                prop_assert!(!error);
            }
            (TransportSlice::Icmpv6(m), Transport::Icmp { ty, ident, .. }) => {
                prop_assert_eq!(ty, m.type_u8());
                prop_assert_eq!(ident, Some(u16::from_be_bytes([m.bytes5to8()[0], m.bytes5to8()[1]])));
            }
            (t, o) => prop_assert!(false, "transport differs: {:?} vs {:?}", t, o),
        }
        prop_assert!(checksums_ok(&p), "etherparse's checksums are right");
        prop_assert!(smoltcp_checksums_ok(&p, ours.l4_offset));

        // Corrupt one byte of the covered region: both must see it.
        let mut bad = p.clone();
        // (In the data, or in the checksum field itself: not a length or type
        // field, which would make the packet malformed rather than corrupt.)
        let header = ours.l4_len - s.payload.len();
        let csum_at = match s.l4 { L4::Tcp { .. } => 16, L4::Udp { .. } => 6, L4::Echo { .. } => 2 };
        let at = ours.l4_offset + if s.payload.is_empty() { csum_at } else { header + s.payload.len() / 2 };
        bad[at] ^= 0x5a;
        prop_assert!(!checksums_ok(&bad));
        prop_assert!(!smoltcp_checksums_ok(&bad, ours.l4_offset));
    }

    /// Our recomputed checksums equal what etherparse wrote.
    #[test]
    fn computes_what_etherparse_writes(s in spec()) {
        let mut p = build(&s);
        let orig = p.clone();
        let c = classify(&p).unwrap();
        let (o, n) = (c.l4_offset, c.l4_len);
        if p[0] >> 4 == 4 {
            let mut ip = Ipv4::parse(&mut p[..]).unwrap();
            ip.header_mut().checksum.set(0x1111);
            ip.fill_checksum();
            let pseudo = ip.pseudo_header();
            match c.protocol {
                proto::TCP => Tcp::parse(ip.payload_mut()).unwrap().fill_checksum(pseudo),
                proto::UDP => Udp::parse(ip.payload_mut()).unwrap().fill_checksum(pseudo),
                _ => Icmpv4::parse(ip.payload_mut()).unwrap().fill_checksum(),
            }
        } else {
            let ip = Ipv6::parse(&p[..]).unwrap();
            let pseudo = ip.pseudo_header(c.protocol, n as u32);
            let l4 = &mut p[o..o + n];
            match c.protocol {
                proto::TCP => Tcp::parse(l4).unwrap().fill_checksum(pseudo),
                proto::UDP => Udp::parse(l4).unwrap().fill_checksum(pseudo),
                _ => Icmpv6::parse(l4).unwrap().fill_checksum(pseudo),
            }
        }
        prop_assert_eq!(p, orig);
    }

    /// Whatever the bytes, IPv4/TCP/UDP views accept exactly what smoltcp's
    /// checked constructors accept (smoltcp does not check the version in
    /// `new_checked`, so that is added here).
    #[test]
    fn accepts_and_refuses_like_smoltcp(mut b in prop::collection::vec(any::<u8>(), 0..120), ihl in 0u8..16, total in 0u16..130) {
        if b.len() >= 4 {
            b[0] = 0x40 | ihl;
            b[2..4].copy_from_slice(&total.to_be_bytes());
        }
        let theirs = sm::Ipv4Packet::new_checked(&b[..]).is_ok();
        prop_assert_eq!(Ipv4::parse(&b[..]).is_ok(), theirs);
        // TCP: data offset in the high nibble of byte 12.
        if b.len() > 12 { b[12] = (b[12] & 0x0f) | (ihl << 4); }
        prop_assert_eq!(Tcp::parse(&b[..]).is_ok(), sm::TcpPacket::new_checked(&b[..]).is_ok());
        if b.len() >= 6 { b[4..6].copy_from_slice(&total.to_be_bytes()); }
        prop_assert_eq!(Udp::parse(&b[..]).is_ok(), sm::UdpPacket::new_checked(&b[..]).is_ok());
        prop_assert_eq!(Icmpv4::parse(&b[..]).is_ok(), b.len() >= 8);
        // And nothing in the classifier panics on it, as IPv4 or as IPv6.
        let _ = classify(&b);
        if !b.is_empty() { b[0] = 0x60 | (b[0] & 0xf); }
        let _ = classify(&b);
    }

    /// RFC 1624: NAT's incremental rewrite leaves exactly the checksums a full
    /// recomputation (by etherparse) gives.
    #[test]
    fn incremental_rewrite_equals_recompute(s in spec(), addr4 in any::<[u8; 4]>(), addr6 in any::<[u8; 16]>(), port in any::<u16>(), src in any::<bool>(), with_port in any::<bool>()) {
        let mut p = build(&s);
        let end = if src { End::Src } else { End::Dst };
        let port = with_port.then_some(port);
        let mut expect = s.clone();
        match (&mut expect.l4, end, port) {
            (L4::Tcp { sport, .. } | L4::Udp { sport, .. }, End::Src, Some(x)) => *sport = x,
            (L4::Tcp { dport, .. } | L4::Udp { dport, .. }, End::Dst, Some(x)) => *dport = x,
            (L4::Echo { id, .. }, _, Some(x)) => *id = x,
            _ => {}
        }
        if s.v6 {
            match end { End::Src => expect.src6 = addr6, End::Dst => expect.dst6 = addr6 }
            rewrite::ipv6(&mut p, end, Ipv6Addr::from(addr6), port).unwrap();
        } else {
            match end { End::Src => expect.src4 = addr4, End::Dst => expect.dst4 = addr4 }
            rewrite::ipv4(&mut p, end, Ipv4Addr::from(addr4), port).unwrap();
        }
        let want = build(&expect);
        // etherparse writes a UDP checksum of 0 as 0xFFFF too; the rest must
        // be byte-identical.
        prop_assert_eq!(p, want);
    }
}

#[test]
fn later_ipv6_fragments_are_not_walked_into() {
    let exts = Ipv6Extensions {
        fragment: Some(Ipv6FragmentHeader::new(IpNumber::TCP, IpFragOffset::try_new(3).unwrap(), true, 7)),
        ..Default::default()
    };
    let h = Ipv6Header { hop_limit: 9, ..Default::default() };
    let mut p = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(h, exts)).udp(1, 2).write(&mut p, &[0; 8]).unwrap();
    let s = classify(&p).unwrap();
    assert_eq!((s.fragment, s.transport, s.l4_offset), (Fragment::Later, Transport::Fragment, 48));
}
