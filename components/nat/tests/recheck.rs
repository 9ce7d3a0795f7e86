//! The NAT's half of the re-check exchange, engine by engine, against the
//! message contract of `moat_control::rules`: the test plays the rules
//! (`Changed`, answers to `Check`) and the remote ends.

mod common;

use common::*;
use moat_control::NatToRules;
use moat_control::rules::{Addr, CHECK_BATCH, FlowKey, L4, slots};
use moat_nat::counters::C;
use moat_nat::recheck::{ANSWER_TIMEOUT_NS, IN_FLIGHT};
use moat_nat::{Engine, Fate};
use moat_net::icmpv4::Icmpv4;
use moat_net::ipv4::Ipv4;
use moat_net::meta::Verdict;

const S: u64 = 1_000_000_000;
const OTHER: [u8; 4] = [1, 1, 1, 1];
const DNS: [u8; 4] = [10, 139, 1, 1];

fn sized(max_connections: u32) -> moat_nat::NatConfig {
    let mut cfg = config();
    cfg.max_connections = max_connections;
    cfg.max_per_client = max_connections;
    cfg
}

fn map(slots_: &[u8]) -> [u8; 32] {
    let mut m = [0u8; 32];
    for &s in slots_ {
        slots::set(&mut m, s);
    }
    m
}

/// A sent batch, as the rules would read it.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    slot: u8,
    batch: u32,
    flows: Vec<FlowKey>,
}

/// Every batch the engine sends now (as if the ring always had room).
fn checks(e: &mut Engine, now: u64) -> Vec<Check> {
    let mut out = Vec::new();
    let mut scan = u32::MAX;
    while let Some(NatToRules::Check { slot, batch, flows }) = e.next_check(now, &mut scan) {
        e.check_sent(now);
        out.push(Check { slot, batch, flows: flows.to_vec() });
        assert!(out.len() <= 1000, "bounded");
    }
    e.check().unwrap();
    out
}

fn denied_bits(c: &Check, refused: impl Fn(&FlowKey) -> bool) -> u16 {
    c.flows.iter().enumerate().filter(|(_, f)| refused(f)).fold(0, |m, (i, _)| m | 1 << i)
}

fn key(dst: [u8; 4], proto: u8, l4: L4) -> FlowKey {
    FlowKey { dst: Addr::V4(dst), proto, l4 }
}

/// The NAT's outside port of the packet it just translated.
fn nat_port(b: &Buf) -> u16 {
    tuple(b.packet()).2
}

fn echo_reply(from: [u8; 4], ident: u16) -> Vec<u8> {
    let mut p = moat_net::testing::ping_v4(from, UPLINK, ident, b"pong");
    p[20] = 0;
    let mut ip = Ipv4::parse(&mut p[..]).unwrap();
    Icmpv4::parse(ip.payload_mut()).unwrap().fill_checksum();
    p
}

/// Client 0 with TCP to two servers, a redirected DNS query and a ping;
/// client 1 with TCP to the second server. Returns the outside ports
/// (tcp SERVER, tcp OTHER, dns, ping, client 1's tcp OTHER).
fn opened(e: &mut Engine) -> [u16; 5] {
    let c = client_ip(0);
    let mut out = |p: Vec<u8>, slot: u8, v: Verdict| {
        let mut b = Buf::new(&p);
        assert_eq!(b.out(e, slot, v, 0).fate, Fate::Uplink);
        nat_port(&b)
    };
    [
        out(tcp(c, SERVER, 40000, 443, tcpf::SYN, b""), 0, Verdict::Accept),
        out(tcp(c, OTHER, 40001, 443, tcpf::SYN, b""), 0, Verdict::Accept),
        out(udp(c, DNS, 40002, 53, b"query"), 0, Verdict::Dns),
        out(moat_net::testing::ping_v4(c, SERVER, 7, b"ping"), 0, Verdict::Accept),
        out(tcp(client_ip(1), OTHER, 40003, 443, tcpf::SYN, b""), 1, Verdict::Accept),
    ]
}

#[test]
fn a_forbidden_connection_is_removed_and_the_others_stay() {
    let mut e = engine(&config(), 2);
    let [p_server, p_other, p_dns, p_ping, p_client1] = opened(&mut e);
    assert!(checks(&mut e, S).is_empty(), "nothing to check before a change");

    e.rules_changed(2, 5, &map(&[0]));
    let sent = checks(&mut e, S);
    assert_eq!(sent.len(), 1);
    let c = &sent[0];
    assert_eq!(c.slot, 0);
    assert_eq!(
        c.flows,
        [
            key(SERVER, 6, L4::Port(443)),
            key(OTHER, 6, L4::Port(443)),
            key(DNS, 17, L4::Port(53)),
            key(SERVER, 1, L4::Icmp(8)),
        ],
        "each of client 0's connections by the destination it addressed; not client 1's"
    );
    assert_eq!(e.rechecks().in_flight(), 1);

    // The new policy refuses anything to OTHER.
    e.rules_denied(5, 0, c.batch, denied_bits(c, |f| f.dst == Addr::V4(OTHER)));
    e.check().unwrap();
    assert_eq!(e.counters().get(C::RemovedByRules), 1);
    assert_eq!(e.table().live(), 4);
    assert_eq!(e.ports_in_use(), 4, "its port went back");
    assert_eq!(e.clients().get(0).unwrap().conns, 3);
    assert_eq!(e.rechecks().in_flight(), 0);

    // Its return traffic is dropped; the rest still translate.
    let mut gone = Buf::new(&tcp(OTHER, UPLINK, 443, p_other, tcpf::SYN | tcpf::ACK, b""));
    assert_eq!(gone.inb(&mut e, 2 * S).fate, Fate::Drop(C::DropNoConn));
    let mut ok = Buf::new(&tcp(SERVER, UPLINK, 443, p_server, tcpf::SYN | tcpf::ACK, b""));
    assert_eq!(ok.inb(&mut e, 2 * S).fate, Fate::Client(0));
    assert_eq!(tuple(ok.packet()), (SERVER, client_ip(0), 443, 40000));
    let mut dns = Buf::new(&udp(REAL_DNS, UPLINK, 53, p_dns, b"answer"));
    assert_eq!(dns.inb(&mut e, 2 * S).fate, Fate::Client(0));
    assert_eq!(tuple(dns.packet()), (DNS, client_ip(0), 53, 40002));
    let mut pong = Buf::new(&echo_reply(SERVER, p_ping));
    assert_eq!(pong.inb(&mut e, 2 * S).fate, Fate::Client(0));
    assert!(checksums_right(pong.packet()));
    // Client 1 was not named in the change: its connection to OTHER stays.
    let mut other1 = Buf::new(&tcp(OTHER, UPLINK, 443, p_client1, tcpf::SYN | tcpf::ACK, b""));
    assert_eq!(other1.inb(&mut e, 2 * S).fate, Fate::Client(1));
    assert_eq!(e.counters().get(C::DropNoConn), 1);
    assert_eq!(e.counters().get(C::RecheckBatches), 1);
    assert_eq!(e.counters().get(C::RecheckFlows), 4);
    e.check().unwrap();
}

#[test]
fn an_answer_judged_before_a_later_change_removes_nothing_and_the_slot_is_checked_again() {
    let mut e = engine(&config(), 2);
    let ports = opened(&mut e);
    e.rules_changed(2, 5, &map(&[0]));
    let first = checks(&mut e, S);
    // The policy changes again before the answer to the first batch.
    e.rules_changed(3, 6, &map(&[0]));
    let again = checks(&mut e, S);
    assert_eq!(again.len(), 1, "check again");
    assert_eq!(again[0].flows, first[0].flows);
    assert_ne!(again[0].batch, first[0].batch);
    // Epoch 5 refused everything, but epoch 6 came since: nothing goes.
    e.rules_denied(5, 0, first[0].batch, u16::MAX >> (16 - first[0].flows.len()));
    assert_eq!(e.counters().get(C::RecheckSuperseded), 1);
    assert_eq!(e.counters().get(C::RemovedByRules), 0);
    assert_eq!(e.table().live(), 5);
    e.check().unwrap();
    // Epoch 6 refuses the ping only.
    e.rules_denied(6, 0, again[0].batch, denied_bits(&again[0], |f| f.proto == 1));
    assert_eq!(e.counters().get(C::RemovedByRules), 1);
    let mut pong = Buf::new(&echo_reply(SERVER, ports[3]));
    assert_eq!(pong.inb(&mut e, 2 * S).fate, Fate::Drop(C::DropNoConn));
    e.check().unwrap();
    assert!(e.rechecks().idle());
}

#[test]
fn a_change_during_a_walk_restarts_it() {
    let cfg = sized(1024);
    let mut e = engine(&cfg, 1);
    for i in 0..40u16 {
        let mut b = Buf::new(&udp(client_ip(0), SERVER, 1000 + i, 53, b"q"));
        b.out(&mut e, 0, Verdict::Accept, 0);
    }
    e.rules_changed(1, 1, &map(&[0]));
    let mut scan = 20;
    let Some(NatToRules::Check { batch, flows, .. }) = e.next_check(0, &mut scan) else { panic!("a full batch") };
    e.check_sent(0);
    assert_eq!(flows.len(), CHECK_BATCH);
    e.rules_denied(1, 0, batch, 0);
    // The walk is at entry 16 when the rules change again: the first 16
    // were judged by the old rules and must be named again.
    e.rules_changed(2, 2, &map(&[0]));
    let rest: usize = checks(&mut e, 0).iter().map(|c| c.flows.len()).sum();
    assert_eq!(rest, 40);
    e.check().unwrap();
}

#[test]
fn a_connection_created_after_its_batch_was_sent_is_not_affected() {
    let cfg = sized(64);
    let mut e = engine(&cfg, 1);
    let c = client_ip(0);
    let mut old = Buf::new(&udp(c, OTHER, 1000, 53, b"q"));
    assert_eq!(old.out(&mut e, 0, Verdict::Accept, 0).fate, Fate::Uplink);
    e.rules_changed(1, 1, &map(&[0]));
    let sent = checks(&mut e, 0);
    assert_eq!(sent[0].flows, [key(OTHER, 17, L4::Port(53))]);
    // The connection times out, and a new one to the same place takes its
    // table entry (the only free one) before the answer comes.
    assert!(!e.tick(31 * S, 100));
    assert_eq!(e.table().live(), 0);
    let mut new = Buf::new(&udp(c, OTHER, 1000, 53, b"q"));
    assert_eq!(new.out(&mut e, 0, Verdict::Accept, 31 * S).fate, Fate::Uplink);
    assert!(e.table().get(0).state().is_some(), "the same entry");
    e.rules_denied(1, 0, sent[0].batch, 1);
    assert_eq!(e.counters().get(C::RemovedByRules), 0, "the answer was about the old one");
    assert_eq!(e.table().live(), 1);
    e.check().unwrap();
}

#[test]
fn broken_answers_are_counted_and_ignored() {
    let mut e = engine(&config(), 2);
    opened(&mut e);
    e.rules_changed(1, 1, &map(&[0]));
    let sent = checks(&mut e, S);
    let b = sent[0].batch;
    e.rules_denied(1, 0, b.wrapping_add(100), 0xffff); // never sent
    e.rules_denied(1, 1, b, 0b1); // the wrong slot
    e.rules_denied(1, 0, b, 1 << 4); // past the batch's 4 flows
    assert_eq!(e.counters().get(C::RecheckBad), 3);
    assert_eq!(e.table().live(), 5);
    assert_eq!(e.rechecks().in_flight(), 1, "still waiting for the real answer");
    e.rules_denied(1, 0, b, 0);
    e.rules_denied(1, 0, b, 0b1); // answered twice
    assert_eq!(e.counters().get(C::RecheckBad), 4);
    assert_eq!(e.table().live(), 5);
    // Slots that cannot exist: counted, the real slot still checked.
    let mut m = map(&[1]);
    slots::set(&mut m, 255);
    e.rules_changed(2, 2, &m);
    assert_eq!(e.counters().get(C::RecheckBad), 5);
    let sent = checks(&mut e, S);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].slot, 1);
    e.check().unwrap();
}

#[test]
fn few_batches_are_in_flight_and_every_connection_is_named_once() {
    let cfg = sized(4096);
    let mut e = engine(&cfg, 2);
    let n = 150u16;
    for i in 0..n {
        for slot in 0..2 {
            let dst = if i % 3 == 0 { OTHER } else { SERVER };
            let mut b = Buf::new(&udp(client_ip(slot), dst, 1000 + i, 53, b"q"));
            assert_eq!(b.out(&mut e, slot, Verdict::Accept, 0).fate, Fate::Uplink);
        }
    }
    e.rules_changed(1, 1, &map(&[0, 1]));
    let mut named = 0;
    let mut rounds = 0;
    while !e.rechecks().idle() {
        let sent = checks(&mut e, S);
        assert!(sent.len() <= IN_FLIGHT, "at most {IN_FLIGHT} batches wait for answers");
        assert!(e.rechecks().in_flight() <= IN_FLIGHT);
        for c in &sent {
            assert!(c.flows.len() <= CHECK_BATCH);
            named += c.flows.len();
            e.rules_denied(1, c.slot, c.batch, denied_bits(c, |f| f.dst == Addr::V4(OTHER)));
        }
        rounds += 1;
        assert!(rounds < 100, "bounded");
    }
    assert_eq!(named, 2 * usize::from(n));
    assert_eq!(e.counters().get(C::RemovedByRules), 2 * 50);
    assert_eq!(e.table().live(), 2 * 100);
    e.check().unwrap();
}

#[test]
fn the_walk_is_bounded_per_call() {
    let cfg = sized(4096);
    let mut e = engine(&cfg, 1);
    for i in 0..1000u16 {
        let mut b = Buf::new(&udp(client_ip(0), SERVER, 1000 + i, 53, b"q"));
        b.out(&mut e, 0, Verdict::Accept, 0);
    }
    e.rules_changed(1, 1, &map(&[0]));
    let mut scan = 10;
    assert!(e.next_check(0, &mut scan).is_none(), "ten entries do not fill a batch");
    assert_eq!(scan, 0);
    let mut scan = 6;
    let Some(NatToRules::Check { flows, .. }) = e.next_check(0, &mut scan) else { panic!("a full batch") };
    assert_eq!((flows.len(), scan), (CHECK_BATCH, 0));
    // Not sent (the ring was full): the same batch comes back.
    let mut scan = 100;
    let again = e.next_check(0, &mut scan);
    assert_eq!(scan, 100);
    assert!(matches!(again, Some(NatToRules::Check { flows: f, .. }) if f == flows));
    e.check().unwrap();
}

#[test]
fn unanswered_batches_are_given_up_and_checked_again() {
    let cfg = sized(1024);
    let mut e = engine(&cfg, 1);
    for i in 0..40u16 {
        let mut b = Buf::new(&udp(client_ip(0), SERVER, 1000 + i, 53, b"q"));
        b.out(&mut e, 0, Verdict::Accept, 0);
    }
    e.rules_changed(1, 1, &map(&[0]));
    let sent = checks(&mut e, 0);
    assert_eq!(sent.len(), 3);
    // The rules answer the second: the first will never be answered.
    e.rules_denied(1, 0, sent[1].batch, 0);
    assert_eq!(e.counters().get(C::RecheckLost), 1);
    assert_eq!(e.next_deadline(), Some(ANSWER_TIMEOUT_NS), "the third's answer is awaited");
    // The third never comes either.
    let again = checks(&mut e, ANSWER_TIMEOUT_NS);
    assert_eq!(e.counters().get(C::RecheckLost), 2);
    let flows: usize = again.iter().map(|c| c.flows.len()).sum();
    assert_eq!(flows, 40, "the slot is walked again");
    e.check().unwrap();
}

#[test]
fn a_departed_clients_walk_ends() {
    let mut e = engine(&config(), 2);
    opened(&mut e);
    e.rules_changed(1, 1, &map(&[0, 1]));
    assert!(e.client_event(&moat_control::ClientEvent::Down { slot: 0 }));
    let sent = checks(&mut e, 0);
    assert_eq!(sent.iter().map(|c| c.slot).collect::<Vec<_>>(), [1]);
    while e.tick(S, 64) {}
    assert_eq!(e.table().live(), 1);
    e.check().unwrap();
}
