//! The engine packet by packet: translation both ways, checked by an
//! independent parser (etherparse); rejects, router duties, DNS, ICMP,
//! clients coming and going.

mod common;

use common::*;
use moat_nat::Fate;
use moat_nat::counters::C;
use moat_nat::table::OutKey;
use moat_net::icmpv4::Icmpv4;
use moat_net::ipv4::Ipv4;
use moat_net::meta::Verdict;

const S: u64 = 1_000_000_000;

/// What the packet looks like one hop later (TTL one less): what a client
/// or server must receive.
fn hop(p: &[u8]) -> Vec<u8> {
    let ttl = p[8];
    with_ttl(p.to_vec(), ttl - 1)
}

#[test]
fn udp_is_translated_both_ways_with_valid_checksums() {
    let mut e = engine(&config(), 4);
    let q = udp(client_ip(2), SERVER, 40000, 5000, b"hello");
    let mut b = Buf::new(&q);
    assert_eq!(b.out(&mut e, 2, Verdict::Accept, 0).fate, Fate::Uplink);
    let (src, dst, sport, dport) = tuple(b.packet());
    assert_eq!((src, dst, dport), (UPLINK, SERVER, 5000));
    assert!(sport >= 1024);
    assert!(checksums_right(b.packet()));
    assert_eq!(b.packet()[8], 63, "TTL decremented");
    // The reply, as the server sends it.
    let r = udp(SERVER, UPLINK, 5000, sport, b"world!");
    let mut rb = Buf::new(&r);
    assert_eq!(rb.inb(&mut e, S).fate, Fate::Client(2));
    assert_eq!(
        rb.packet(),
        hop(&udp(SERVER, client_ip(2), 5000, 40000, b"world!")),
        "exactly the reply the client expects"
    );
    // A stranger on another port gets nowhere.
    let mut x = Buf::new(&udp(SERVER, UPLINK, 5000, sport.wrapping_add(1), b"x"));
    assert_eq!(x.inb(&mut e, S).fate, Fate::Drop(C::DropNoConn));
    let mut y = Buf::new(&udp([1, 2, 3, 4], UPLINK, 5000, sport, b"x"));
    assert_eq!(y.inb(&mut e, S).fate, Fate::Drop(C::DropNoConn), "another remote, same port");
    assert_eq!(e.counters().get(C::DropNoConn), 2);
    e.check().unwrap();
}

#[test]
fn tcp_handshake_data_and_close() {
    let mut e = engine(&config(), 1);
    let c = client_ip(0);
    let mut syn = Buf::new(&tcp(c, SERVER, 50000, 443, tcpf::SYN, b""));
    assert_eq!(syn.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Uplink);
    let (_, _, port, _) = tuple(syn.packet());
    let inb =
        |e: &mut moat_nat::Engine, f: u8, t: u64| Buf::new(&tcp(SERVER, UPLINK, 443, port, f, b"")).inb(e, t).fate;
    let out = |e: &mut moat_nat::Engine, f: u8, t: u64| {
        Buf::new(&tcp(c, SERVER, 50000, 443, f, b"")).out(e, 0, Verdict::Accept, t).fate
    };
    assert_eq!(out(&mut e, tcpf::ACK, 1), Fate::Drop(C::DropTcpInvalid), "ACK before SYN/ACK");
    assert_eq!(inb(&mut e, tcpf::SYN | tcpf::ACK, 1), Fate::Client(0));
    assert_eq!(out(&mut e, tcpf::ACK, 2), Fate::Uplink);
    let st = |e: &moat_nat::Engine, s| e.table().count(s);
    assert_eq!(st(&e, moat_nat::conn::State::Established), 1);
    assert_eq!(out(&mut e, tcpf::FIN | tcpf::ACK, 3), Fate::Uplink);
    assert_eq!(inb(&mut e, tcpf::FIN | tcpf::ACK, 4), Fate::Client(0));
    assert_eq!(out(&mut e, tcpf::ACK, 5), Fate::Uplink);
    assert_eq!(st(&e, moat_nat::conn::State::TimeWait), 1);
    // A bare ACK with no connection is not a way in (nor out).
    let mut stray = Buf::new(&tcp(c, SERVER, 50001, 443, tcpf::ACK, b""));
    assert_eq!(stray.out(&mut e, 0, Verdict::Accept, 6).fate, Fate::Drop(C::DropTcpNoConn));
    // TIME_WAIT lasts 120 s from the last packet.
    assert!(!e.tick(5 + 120 * S - 1, 64));
    assert_eq!(e.table().live(), 1);
    e.tick(5 + 120 * S, 64);
    assert_eq!(e.table().live(), 0);
    assert_eq!(e.ports_in_use(), 0, "the port is free again");
    e.check().unwrap();
}

#[test]
fn reject_becomes_admin_prohibited_to_the_client() {
    let mut e = engine(&config(), 1);
    let q = udp(client_ip(0), SERVER, 40000, 53, b"query");
    let mut b = Buf::new(&q);
    let d = b.out(&mut e, 0, Verdict::Reject, 0);
    assert_eq!(d.fate, Fate::Client(0));
    assert_eq!(d.start, 64 - 28, "built in the headroom in front of the packet");
    let p = b.packet();
    assert!(checksums_right(p));
    let ip = Ipv4::parse(p).unwrap();
    assert_eq!((ip.src().octets(), ip.dst().octets()), (GATEWAY, client_ip(0)));
    let m = Icmpv4::parse(ip.payload()).unwrap();
    assert_eq!((m.ty(), m.code()), (3, 13));
    assert_eq!(&m.body()[..q.len()], &q[..], "quotes the packet as sent");
    assert_eq!(e.table().live(), 0, "no connection for a rejected packet");
    assert_eq!(e.counters().get(C::SentReject), 1);
}

#[test]
fn icmp_errors_to_a_client_are_rate_limited() {
    let mut e = engine(&config(), 1);
    let q = udp(client_ip(0), SERVER, 40000, 53, b"query");
    let sent = (0..100).filter(|_| Buf::new(&q).out(&mut e, 0, Verdict::Reject, 0).fate == Fate::Client(0)).count();
    assert_eq!(sent, 20, "the default burst");
    assert_eq!(e.counters().get(C::IcmpRateLimited), 80);
    assert_eq!(Buf::new(&q).out(&mut e, 0, Verdict::Reject, S / 10).fate, Fate::Client(0), "10 per second");
}

#[test]
fn ttl_expiry_and_oversize_are_answered_like_a_router() {
    let mut e = engine(&config(), 1);
    let probe = with_ttl(udp(client_ip(0), SERVER, 40000, 33434, b"probe"), 1);
    let mut b = Buf::new(&probe);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Client(0));
    let ip = Ipv4::parse(b.packet()).unwrap();
    let m = Icmpv4::parse(ip.payload()).unwrap();
    assert_eq!((ip.src().octets(), m.ty(), m.code()), (GATEWAY, 11, 0));
    assert!(checksums_right(b.packet()));

    let mut big = udp(client_ip(0), SERVER, 40000, 9, &[0x5a; 1600]);
    big[6] |= 0x40; // DF
    let mut ipv = Ipv4::parse(&mut big[..]).unwrap();
    ipv.fill_checksum();
    let mut b = Buf::new(&big);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Client(0));
    let ip = Ipv4::parse(b.packet()).unwrap();
    let m = Icmpv4::parse(ip.payload()).unwrap();
    assert_eq!((m.ty(), m.code(), m.header().rest), (3, 4, [0, 0, 0x05, 0xdc]), "fragmentation needed, MTU 1500");
    assert!(checksums_right(b.packet()));
    let mut no_df = udp(client_ip(0), SERVER, 40000, 9, &[0x5a; 1600]);
    let _ = &mut no_df;
    assert_eq!(Buf::new(&no_df).out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Drop(C::DropTooBig));
}

#[test]
fn dns_is_redirected_and_answered_from_the_address_the_client_asked() {
    let mut e = engine(&config(), 1);
    let q = udp(client_ip(0), [10, 139, 1, 1], 40000, 53, b"\x12\x34query");
    let mut b = Buf::new(&q);
    assert_eq!(b.out(&mut e, 0, Verdict::Dns, 0).fate, Fate::Uplink);
    let (src, dst, sport, dport) = tuple(b.packet());
    assert_eq!((src, dst, dport), (UPLINK, REAL_DNS, 53));
    assert!(checksums_right(b.packet()));
    let mut r = Buf::new(&udp(REAL_DNS, UPLINK, 53, sport, b"\x12\x34answer"));
    assert_eq!(r.inb(&mut e, S).fate, Fate::Client(0));
    assert_eq!(r.packet(), hop(&udp([10, 139, 1, 1], client_ip(0), 53, 40000, b"\x12\x34answer")));
    let wrong = udp(client_ip(0), [8, 8, 8, 8], 40001, 53, b"q");
    assert_eq!(Buf::new(&wrong).out(&mut e, 0, Verdict::Dns, 0).fate, Fate::Drop(C::DropNotDns));
}

#[test]
fn pings_are_tracked_by_identifier() {
    let mut e = engine(&config(), 2);
    let mut a = Buf::new(&moat_net::testing::ping_v4(client_ip(0), SERVER, 7, b"abcdefgh"));
    let mut b = Buf::new(&moat_net::testing::ping_v4(client_ip(1), SERVER, 7, b"abcdefgh"));
    a.out(&mut e, 0, Verdict::Accept, 0);
    b.out(&mut e, 1, Verdict::Accept, 0);
    let (ia, ib) = (tuple(a.packet()).2, tuple(b.packet()).2);
    assert_ne!(ia, ib, "same identifier from two clients, two identifiers outside");
    assert!(checksums_right(a.packet()));
    // The echo reply to the second.
    let mut reply = moat_net::testing::ping_v4(SERVER, UPLINK, ib, b"abcdefgh");
    reply[20] = 0;
    let mut ip = Ipv4::parse(&mut reply[..]).unwrap();
    Icmpv4::parse(ip.payload_mut()).unwrap().fill_checksum();
    let mut rb = Buf::new(&reply);
    assert_eq!(rb.inb(&mut e, S).fate, Fate::Client(1));
    assert_eq!(tuple(rb.packet()), (SERVER, client_ip(1), 7, 7));
    assert!(checksums_right(rb.packet()));
    // An echo request from outside is not let in.
    let mut probe = Buf::new(&moat_net::testing::ping_v4(SERVER, UPLINK, ia, b""));
    assert_eq!(probe.inb(&mut e, S).fate, Fate::Drop(C::DropNoConn));
}

#[test]
fn inter_vm_traffic_is_delivered_untranslated() {
    let mut e = engine(&config(), 3);
    let p = udp(client_ip(0), client_ip(2), 1000, 2000, b"hi");
    let mut b = Buf::new(&p);
    assert_eq!(b.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Client(2));
    assert_eq!(b.packet(), hop(&p));
    assert_eq!(e.table().live(), 0);
}

#[test]
fn spoofed_unknown_and_unverified_packets_are_dropped() {
    let mut e = engine(&config(), 2);
    let p = udp(client_ip(1), SERVER, 1000, 2000, b"hi");
    assert_eq!(Buf::new(&p).out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Drop(C::DropSpoofed));
    assert_eq!(Buf::new(&p).out(&mut e, 7, Verdict::Accept, 0).fate, Fate::Drop(C::DropUnknownClient));
    assert_eq!(Buf::new(&p).out(&mut e, 1, Verdict::Drop, 0).fate, Fate::Drop(C::DropVerdict));
    assert_eq!(Buf::new(&p).out(&mut e, 1, Verdict::None, 0).fate, Fate::Drop(C::DropNoVerdict));
    let mut b = Buf::new(&p);
    let d = e.outbound(&mut b.bytes, b.start, b.len, 0, meta(1, Verdict::Accept), 0);
    assert_eq!(d.fate, Fate::Drop(C::DropNoCsum));
    let v6 = moat_net::testing::udp_v6([0xfd; 16], [0x20; 16], 1, 2, b"x");
    assert_eq!(Buf::new(&v6).out(&mut e, 1, Verdict::Accept, 0).fate, Fate::Drop(C::DropIpv6));
    assert_eq!(Buf::new(&p[..10]).out(&mut e, 1, Verdict::Accept, 0).fate, Fate::Drop(C::DropMalformed));
    let to_me = udp(client_ip(1), GATEWAY, 1000, 2000, b"hi");
    assert_eq!(Buf::new(&to_me).out(&mut e, 1, Verdict::Accept, 0).fate, Fate::Drop(C::DropToSelf));
    assert_eq!(e.table().live(), 0);
}

#[test]
fn a_departed_clients_connections_go_in_bounded_steps() {
    let mut cfg = config();
    cfg.max_connections = 10000;
    let mut e = engine(&cfg, 2);
    for i in 0..300u16 {
        for slot in 0..2 {
            let p = udp(client_ip(slot), SERVER, 1000 + i, 53, b"q");
            assert_eq!(Buf::new(&p).out(&mut e, slot, Verdict::Accept, 0).fate, Fate::Uplink);
        }
    }
    assert!(e.client_event(&moat_control::ClientEvent::Down { slot: 1 }));
    assert!(!e.accepts_client_events(), "slot reuse waits for the sweep");
    assert!(!e.client_event(&up(1)), "and an Up meanwhile is refused");
    let mut calls = 0;
    while e.tick(S, 64) {
        calls += 1;
        assert!(calls < 10, "bounded");
    }
    assert_eq!(e.table().live(), 300);
    assert_eq!(e.counters().get(C::RemovedClientDown), 300);
    assert!(e.accepts_client_events());
    assert!(e.client_event(&up(1)));
    e.check().unwrap();
}

/// A client at `max_per_client` whose connections are finished (a burst of
/// short HTTP requests leaves them in TIME_WAIT for two minutes) opens new
/// ones by recycling its own oldest closed entry; it never takes another
/// client's, nor one of its own that is still open.
#[test]
fn a_client_at_its_limit_reuses_its_own_closed_connections() {
    let mut cfg = config();
    cfg.max_per_client = 4;
    let mut e = engine(&cfg, 2);
    let mut t = 0;
    let mut open = |e: &mut moat_nat::Engine, slot: u8, port: u16, close: bool| -> Fate {
        t += S / 1000;
        let c = client_ip(slot);
        let mut b = Buf::new(&tcp(c, SERVER, port, 80, tcpf::SYN, b""));
        let fate = b.out(e, slot, Verdict::Accept, t).fate;
        if fate != Fate::Uplink {
            return fate;
        }
        let nat = tuple(b.packet()).2;
        assert_eq!(
            Buf::new(&tcp(SERVER, UPLINK, 80, nat, tcpf::SYN | tcpf::ACK, b"")).inb(e, t).fate,
            Fate::Client(slot)
        );
        assert_eq!(
            Buf::new(&tcp(c, SERVER, port, 80, tcpf::ACK, b"")).out(e, slot, Verdict::Accept, t).fate,
            Fate::Uplink
        );
        if close {
            assert_eq!(
                Buf::new(&tcp(c, SERVER, port, 80, tcpf::RST, b"")).out(e, slot, Verdict::Accept, t).fate,
                Fate::Uplink
            );
        }
        fate
    };
    // Client 1: four closed connections of its own.
    for p in 0..4 {
        assert_eq!(open(&mut e, 1, 3000 + p, true), Fate::Uplink);
    }
    // Client 0: two open, two closed; then two more reuse the closed ones.
    for (p, close) in [(1, false), (2, true), (3, false), (4, true)] {
        assert_eq!(open(&mut e, 0, 2000 + p, close), Fate::Uplink);
    }
    let alive = |e: &moat_nat::Engine, slot: u8, port: u16| {
        let k = OutKey { proto: 6, client_ip: client_ip(slot), client_port: port, remote_ip: SERVER, remote_port: 80 };
        e.table().find_out(&k).is_some()
    };
    assert_eq!(open(&mut e, 0, 2005, false), Fate::Uplink);
    assert!(!alive(&e, 0, 2002), "the oldest closed one went");
    assert!(alive(&e, 0, 2004));
    assert_eq!(open(&mut e, 0, 2006, false), Fate::Uplink);
    assert!(!alive(&e, 0, 2004));
    // Now all four are open: refused, and client 1's closed ones stay.
    assert_eq!(open(&mut e, 0, 2007, false), Fate::Drop(C::RefusedClientLimit));
    assert!((0..4).all(|p| alive(&e, 1, 3000 + p)));
    assert!([2001, 2003, 2005, 2006].iter().all(|&p| alive(&e, 0, p)));
    assert_eq!(e.counters().get(C::EvictedClientLimit), 2);
    assert_eq!(e.clients().get(0).unwrap().conns, 4);
    e.check().unwrap();
}
