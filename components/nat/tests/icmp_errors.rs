//! ICMP errors from the uplink about translated packets come back to the
//! client translated inside and out; the errors are built here with
//! etherparse (independent of moat-net) and the results checked by both.

mod common;

use common::*;
use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice, icmpv4};
use moat_nat::Fate;
use moat_nat::counters::C;
use moat_net::icmpv4::Icmpv4;
use moat_net::ipv4::Ipv4;
use moat_net::meta::Verdict;

const HOP: [u8; 4] = [10, 138, 0, 1];

/// An ICMP error from `from` to `to` quoting `quoted`, built by etherparse.
fn error(from: [u8; 4], to: [u8; 4], ty: Icmpv4Type, quoted: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(from, to, 64).icmpv4(ty);
    let mut out = Vec::new();
    b.write(&mut out, quoted).unwrap();
    out
}

/// The quoted packet of an ICMP error, re-parsed by etherparse, and whether
/// its IPv4 header checksum and (if whole) its UDP checksum are right.
fn quote_checks(p: &[u8]) -> (Vec<u8>, bool) {
    let s = SlicedPacket::from_ip(p).unwrap();
    let Some(TransportSlice::Icmpv4(m)) = s.transport else { panic!("not ICMP") };
    let quote = m.payload().to_vec();
    let q = etherparse::Ipv4HeaderSlice::from_slice(&quote).unwrap().to_header();
    let mut ok = q.calc_header_checksum() == q.header_checksum;
    if let Ok(SlicedPacket { transport: Some(TransportSlice::Udp(u)), .. }) = SlicedPacket::from_ip(&quote) {
        ok &= u.to_header().calc_checksum_ipv4(&q, u.payload()).unwrap() == u.checksum();
    }
    (quote, ok)
}

#[test]
fn time_exceeded_for_a_translated_probe_comes_back_as_the_client_sent_it() {
    let mut e = engine(&config(), 1);
    let probe = with_ttl(udp(client_ip(0), SERVER, 44444, 33434, b"traceroute probe"), 2);
    let mut b = Buf::new(&probe);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Uplink);
    // The next hop receives it with TTL 1 and answers time exceeded,
    // quoting it whole.
    let at_hop = b.packet().to_vec();
    assert_eq!(at_hop[8], 1);
    let te = error(HOP, UPLINK, Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit), &at_hop);
    let mut eb = Buf::new(&te);
    assert_eq!(eb.inb(&mut e, 1).fate, Fate::Client(0));
    let got = eb.packet();
    assert!(checksums_right(got), "outer IPv4 and ICMP checksums (etherparse)");
    let ip = Ipv4::parse(got).unwrap();
    assert!(ip.checksum_ok(), "outer IPv4 checksum (moat-net)");
    assert_eq!((ip.src().octets(), ip.dst().octets()), (HOP, client_ip(0)));
    let m = Icmpv4::parse(ip.payload()).unwrap();
    assert!(m.checksum_ok(), "ICMP checksum (moat-net)");
    let (quote, ok) = quote_checks(got);
    assert!(ok, "quoted IPv4 header and UDP checksums (etherparse)");
    // The quote is the client's own probe as it left the client's view of
    // the path: its addresses, ports and checksum, TTL as the hop saw it.
    assert_eq!(quote, with_ttl(probe.clone(), 1), "inner packet restored exactly");
    assert_eq!(e.counters().get(C::IcmpErrorsIn), 1);
}

#[test]
fn frag_needed_and_unreachable_for_tcp_and_ping_come_back() {
    let mut e = engine(&config(), 1);
    // TCP SYN, then fragmentation needed quoting only 28 bytes of it (an
    // old router's 8-byte quote: ports and sequence number only).
    let syn = tcp(client_ip(0), SERVER, 50000, 443, tcpf::SYN, b"");
    let mut b = Buf::new(&syn);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Uplink);
    let sent = b.packet().to_vec();
    let ty =
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 });
    let mut eb = Buf::new(&error(HOP, UPLINK, ty, &sent[..28]));
    assert_eq!(eb.inb(&mut e, 1).fate, Fate::Client(0));
    assert!(checksums_right(eb.packet()));
    let (quote, ok) = quote_checks(eb.packet());
    assert!(ok);
    assert_eq!(&quote[..], &with_ttl(syn.clone(), 63)[..28]);
    assert_eq!(&eb.packet()[6 + 20..8 + 20], &1400u16.to_be_bytes(), "the MTU is kept");

    // Ping, then host unreachable quoting the echo request.
    let ping = moat_net::testing::ping_v4(client_ip(0), SERVER, 77, b"payload!");
    let mut b = Buf::new(&ping);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Uplink);
    let ty = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host);
    let mut eb = Buf::new(&error(HOP, UPLINK, ty.clone(), b.packet()));
    assert_eq!(eb.inb(&mut e, 1).fate, Fate::Client(0));
    assert!(checksums_right(eb.packet()));
    let (quote, _) = quote_checks(eb.packet());
    assert_eq!(quote, with_ttl(ping.clone(), 63));
    let s = SlicedPacket::from_ip(&quote).unwrap();
    let Some(TransportSlice::Icmpv4(inner)) = s.transport else { panic!() };
    assert_eq!(inner.icmp_type(), Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 77, seq: 1 }));
    assert_eq!(inner.icmp_type().calc_checksum(inner.payload()), inner.checksum(), "inner ICMP checksum");

    // An error about a packet we never sent is dropped.
    let stranger = udp(UPLINK, SERVER, 1234, 53, b"");
    let mut eb = Buf::new(&error(HOP, UPLINK, ty, &stranger));
    assert_eq!(eb.inb(&mut e, 1).fate, Fate::Drop(C::DropIcmpUnmatched));
}

#[test]
fn errors_about_redirected_dns_name_the_address_the_client_asked() {
    let mut e = engine(&config(), 1);
    let q = udp(client_ip(0), [10, 139, 1, 2], 5353, 53, b"query");
    let mut b = Buf::new(&q);
    assert_eq!(b.out(&mut e, 0, Verdict::Dns, 0).fate, Fate::Uplink);
    // The real server (10.138.0.3) says port unreachable.
    let ty = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
    let mut eb = Buf::new(&error([10, 138, 0, 3], UPLINK, ty, b.packet()));
    assert_eq!(eb.inb(&mut e, 1).fate, Fate::Client(0));
    let ip = Ipv4::parse(eb.packet()).unwrap();
    assert_eq!(ip.src().octets(), [10, 139, 1, 2], "from the address the client asked");
    let (quote, ok) = quote_checks(eb.packet());
    assert!(ok && checksums_right(eb.packet()));
    assert_eq!(quote, with_ttl(q, 63));
}

#[test]
fn a_clients_port_unreachable_about_a_reply_goes_out_translated() {
    let mut e = engine(&config(), 1);
    let mut b = Buf::new(&udp(client_ip(0), SERVER, 6000, 7000, b"q"));
    b.out(&mut e, 0, Verdict::Accept, 0);
    let nat = tuple(b.packet()).2;
    let reply = udp(SERVER, UPLINK, 7000, nat, b"late answer");
    let mut r = Buf::new(&reply);
    assert_eq!(r.inb(&mut e, 1).fate, Fate::Client(0));
    // The client's socket is gone: it answers port unreachable.
    let ty = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
    let mut eb = Buf::new(&error(client_ip(0), SERVER, ty, r.packet()));
    assert_eq!(eb.out(&mut e, 0, Verdict::Accept, 2).fate, Fate::Uplink);
    let ip = Ipv4::parse(eb.packet()).unwrap();
    assert_eq!((ip.src().octets(), ip.dst().octets()), (UPLINK, SERVER));
    let (quote, ok) = quote_checks(eb.packet());
    assert!(ok && checksums_right(eb.packet()));
    assert_eq!(quote, with_ttl(reply, 63), "the server sees its own packet quoted");
}
