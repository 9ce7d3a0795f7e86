//! ICMP errors built in place, and NAT's rewrite of the packet they quote,
//! checked with smoltcp and etherparse.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};
use moat_net::icmp_error::{Built, Kind, Refused, V4_MAX, V6_MAX, build_v4, build_v6};
use moat_net::meta::HEADROOM;
use moat_net::rewrite::{self, End};
use proptest::prelude::*;
use smoltcp::wire as sm;

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 137, 0, 1);

/// A buffer laid out like a pool buffer: headroom, then the packet.
fn in_buffer(packet: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xee; HEADROOM as usize + packet.len() + 16];
    buf[HEADROOM as usize..HEADROOM as usize + packet.len()].copy_from_slice(packet);
    buf
}

fn error_v4(packet: &[u8], kind: Kind) -> Result<Vec<u8>, Refused> {
    let mut buf = in_buffer(packet);
    let Built { start, len } = build_v4(&mut buf, HEADROOM as usize, packet.len(), ROUTER, kind, 77)?;
    Ok(buf[start..start + len].to_vec())
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    PacketBuilder::ipv4(src, dst, 20).udp(sport, dport).write(&mut p, payload).unwrap();
    p
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    PacketBuilder::ipv4(src, dst, 20).tcp(sport, dport, 99, 512).ack(5).write(&mut p, payload).unwrap();
    p
}

#[test]
fn v4_error_is_what_smoltcp_and_etherparse_read() {
    let offending = udp4([10, 137, 0, 5], [8, 8, 8, 8], 5353, 53, b"query");
    let e = error_v4(&offending, Kind::V4_ADMIN_PROHIBITED).unwrap();
    let ip = sm::Ipv4Packet::new_checked(&e[..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit()), (ROUTER, Ipv4Addr::new(10, 137, 0, 5), 64));
    let icmp = sm::Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.data(), &offending[..], "the whole offending packet is quoted");
    let sliced = SlicedPacket::from_ip(&e).unwrap();
    let Some(TransportSlice::Icmpv4(m)) = sliced.transport else { panic!("not ICMP") };
    assert!(matches!(m.icmp_type(), Icmpv4Type::DestinationUnreachable(_)));
    assert_eq!(m.code_u8(), 13);
}

#[test]
fn v4_quote_is_capped_at_576_bytes() {
    let offending = udp4([10, 137, 0, 5], [8, 8, 8, 8], 1, 2, &[7; 1400]);
    let e = error_v4(&offending, Kind::V4_TTL_EXCEEDED).unwrap();
    assert_eq!(e.len(), V4_MAX);
    assert_eq!(&e[28..], &offending[..V4_MAX - 28]);
    assert!(sm::Icmpv4Packet::new_checked(&e[20..]).unwrap().verify_checksum());
}

#[test]
fn v4_errors_are_refused_where_the_rfcs_forbid_them() {
    let ok = udp4([10, 137, 0, 5], [8, 8, 8, 8], 1, 2, b"x");
    // About an ICMP error.
    let err = error_v4(&ok, Kind::V4_PORT_UNREACHABLE).unwrap();
    assert_eq!(error_v4(&err, Kind::V4_TTL_EXCEEDED), Err(Refused::AboutAnError));
    // About an echo request: allowed.
    let mut ping = Vec::new();
    PacketBuilder::ipv4([10, 137, 0, 5], [1, 1, 1, 1], 1).icmpv4_echo_request(1, 1).write(&mut ping, b"p").unwrap();
    assert!(error_v4(&ping, Kind::V4_TTL_EXCEEDED).is_ok());
    // To broadcast or multicast, from a non-unicast source.
    assert_eq!(error_v4(&udp4([10, 137, 0, 5], [255; 4], 1, 2, b""), Kind::V4_TTL_EXCEEDED), Err(Refused::NotUnicast));
    assert_eq!(
        error_v4(&udp4([10, 137, 0, 5], [224, 0, 0, 1], 1, 2, b""), Kind::V4_TTL_EXCEEDED),
        Err(Refused::NotUnicast)
    );
    assert_eq!(error_v4(&udp4([0; 4], [1, 1, 1, 1], 1, 2, b""), Kind::V4_TTL_EXCEEDED), Err(Refused::NotUnicast));
    // A non-initial fragment.
    let mut frag = ok.clone();
    frag[6] = 0x00;
    frag[7] = 0x10;
    assert_eq!(error_v4(&frag, Kind::V4_TTL_EXCEEDED), Err(Refused::NotFirstFragment));
    // No headroom, or a malformed packet.
    let mut buf = ok.clone();
    assert_eq!(build_v4(&mut buf, 0, ok.len(), ROUTER, Kind::V4_TTL_EXCEEDED, 0), Err(Refused::NoHeadroom));
    assert!(matches!(build_v4(&mut buf, 0, 10, ROUTER, Kind::V4_TTL_EXCEEDED, 0), Err(Refused::Malformed(_))));
    assert!(matches!(build_v4(&mut buf, 5, 1000, ROUTER, Kind::V4_TTL_EXCEEDED, 0), Err(Refused::Malformed(_))));
}

#[test]
fn v6_error_is_what_smoltcp_reads() {
    let src: Ipv6Addr = "fd09:24ef:4179::a89:5".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let router: Ipv6Addr = "fd09:24ef:4179::a89:1".parse().unwrap();
    let mut offending = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), 1).udp(1, 2).write(&mut offending, &[3; 1500]).unwrap();
    let mut buf = in_buffer(&offending);
    let b = build_v6(&mut buf, HEADROOM as usize, offending.len(), router, Kind::V6_HOP_LIMIT).unwrap();
    let e = &buf[b.start..b.start + b.len];
    assert_eq!(e.len(), V6_MAX);
    let ip = sm::Ipv6Packet::new_checked(e).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (router, src));
    let icmp = sm::Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&router, &src));
    let sliced = SlicedPacket::from_ip(e).unwrap();
    let Some(TransportSlice::Icmpv6(m)) = sliced.transport else { panic!("not ICMPv6") };
    assert!(matches!(m.icmp_type(), Icmpv6Type::TimeExceeded(_)));
    // Multicast destination: only Packet Too Big may be sent.
    let mut mc = Vec::new();
    let group: Ipv6Addr = "ff02::1".parse().unwrap();
    PacketBuilder::ipv6(src.octets(), group.octets(), 1).udp(1, 2).write(&mut mc, b"").unwrap();
    let mut buf = in_buffer(&mc);
    assert_eq!(build_v6(&mut buf, HEADROOM as usize, mc.len(), router, Kind::V6_HOP_LIMIT), Err(Refused::NotUnicast));
    assert!(build_v6(&mut buf, HEADROOM as usize, mc.len(), router, Kind::v6_packet_too_big(1280)).is_ok());
}

proptest! {
    /// NAT on an error coming back: rewriting the quote of error(p) gives
    /// exactly error(p rewritten) — every checksum in it (outer ICMP, quoted
    /// IP header, quoted TCP/UDP when quoted) as a full recomputation gives.
    #[test]
    fn quoted_rewrite_commutes_with_building_the_error(
        tcp in any::<bool>(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        ports in any::<(u16, u16)>(),
        new_addr in any::<[u8; 4]>(),
        new_port in any::<u16>(),
        rewrite_src in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        prop_assume!(src[0] != 0 && src[0] < 224 && src[0] != 127 && dst[0] < 224);
        prop_assume!(new_addr[0] != 0 && new_addr[0] < 224 && new_addr[0] != 127);
        let make = |s: [u8; 4], d: [u8; 4], sp: u16, dp: u16| {
            if tcp { tcp4(s, d, sp, dp, &payload) } else { udp4(s, d, sp, dp, &payload) }
        };
        let original = make(src, dst, ports.0, ports.1);
        let (end, expected) = if rewrite_src {
            (End::Src, make(new_addr, dst, new_port, ports.1))
        } else {
            (End::Dst, make(src, new_addr, ports.0, new_port))
        };
        // The error goes to the quoted packet's source; keep that fixed so
        // the outer headers match, and rewrite the quote only.
        let mut e = error_v4(&original, Kind::V4_PORT_UNREACHABLE).unwrap();
        rewrite::ipv4_quoted(&mut e, end, Ipv4Addr::from(new_addr), Some(new_port)).unwrap();
        let mut want = error_v4(&expected, Kind::V4_PORT_UNREACHABLE).unwrap();
        if rewrite_src {
            // The expected error was addressed to the new source: point it
            // back with the plain rewrite (outer IP only) to compare.
            rewrite::ipv4(&mut want, End::Dst, Ipv4Addr::from(src), None).unwrap();
        }
        prop_assert_eq!(e, want);
    }
}

#[test]
fn quoted_rewrite_refuses_what_it_cannot_do_and_leaves_it_untouched() {
    let p = udp4([10, 137, 0, 5], [8, 8, 8, 8], 1, 2, b"abc");
    let mut not_error = p.clone();
    assert_eq!(rewrite::ipv4_quoted(&mut not_error, End::Src, ROUTER, None), Err(moat_net::Error::WrongProtocol));
    assert_eq!(not_error, p);
    // A quote cut after 2 bytes of UDP cannot have its destination port changed.
    let mut e = error_v4(&p, Kind::V4_TTL_EXCEEDED).unwrap();
    e.truncate(20 + 8 + 20 + 2);
    e[2..4].copy_from_slice(&50u16.to_be_bytes());
    let before = e.clone();
    assert_eq!(rewrite::ipv4_quoted(&mut e, End::Dst, ROUTER, Some(9)), Err(moat_net::Error::WrongProtocol));
    assert_eq!(e, before);
    assert!(rewrite::ipv4_quoted(&mut e, End::Src, ROUTER, Some(9)).is_ok(), "the source port was quoted");
    assert!(rewrite::ipv4_quoted(&mut e, End::Dst, ROUTER, None).is_ok(), "the address alone is fine");
}
