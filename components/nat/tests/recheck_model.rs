//! The re-check exchange under arbitrary interleavings, against a model of
//! the rules (a deny mask per client over a few destinations, an epoch per
//! change, answers in order on one ring): the engine's invariants hold
//! after every step; an answer removes only connections its epoch's policy
//! refuses, and nothing if the NAT heard of a later change since; once everything is delivered and answered, no connection the
//! current policy refuses is left; and a needless re-check removes nothing.
//! Changes announced ahead of older answers, bogus answers (never-sent
//! batches, wrong slots, bits past a batch), lost checks, clients leaving
//! and time passing are mixed in.

mod common;

use std::collections::{HashSet, VecDeque};

use common::*;
use moat_control::NatToRules;
use moat_control::rules::{Addr, RulesToNat, slots};
use moat_nat::Engine;
use moat_nat::counters::C;
use moat_nat::recheck::ANSWER_TIMEOUT_NS;
use moat_nat::table::OutKey;
use moat_net::meta::Verdict;
use proptest::prelude::*;

const CLIENTS: u8 = 3;
const DESTS: [[u8; 4]; 3] = [SERVER, [1, 1, 1, 1], [9, 9, 9, 9]];

#[derive(Clone, Debug)]
enum Op {
    Out { client: u8, kind: u8, dest: usize, port: u16 },
    Change { client: u8, deny: u8, ahead: bool },
    Deliver,
    Pump { scan: u32, room: bool },
    Answer,
    Lose,
    Bogus { kind: u8, bits: u16 },
    Wait { secs: u64 },
    Leave { client: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..CLIENTS, 0u8..3, 0usize..3, 1u16..40)
            .prop_map(|(client, kind, dest, port)| Op::Out { client, kind, dest, port }),
        2 => (0..CLIENTS, 0u8..8, prop::bool::weighted(0.3))
            .prop_map(|(client, deny, ahead)| Op::Change { client, deny, ahead }),
        4 => Just(Op::Deliver),
        4 => (prop_oneof![1u32..20, Just(u32::MAX)], prop::bool::weighted(0.8))
            .prop_map(|(scan, room)| Op::Pump { scan, room }),
        3 => Just(Op::Answer),
        1 => Just(Op::Lose),
        1 => (0u8..3, any::<u16>()).prop_map(|(kind, bits)| Op::Bogus { kind, bits }),
        1 => prop_oneof![0u64..3, 5u64..40].prop_map(|secs| Op::Wait { secs }),
        1 => (0..CLIENTS).prop_map(|client| Op::Leave { client }),
    ]
}

/// The model of the rules and the rings between them and the NAT.
struct Rules {
    /// Deny mask per client, by epoch (index = epoch).
    history: Vec<[u8; CLIENTS as usize]>,
    to_nat: VecDeque<RulesToNat>,
    to_rules: VecDeque<(u8, u32, Vec<Addr>)>,
    /// Batches sent and not yet answered (slot, number, flows), for
    /// plausible bogus answers.
    sent: Vec<(u8, u32, usize)>,
    highest: u32,
    /// The epoch of the last `Changed` the NAT received, per client.
    told: [u32; CLIENTS as usize],
}

impl Rules {
    fn new() -> Self {
        Rules {
            history: vec![[0; CLIENTS as usize]],
            to_nat: VecDeque::new(),
            to_rules: VecDeque::new(),
            sent: vec![],
            highest: 0,
            told: [0; CLIENTS as usize],
        }
    }
    fn epoch(&self) -> u32 {
        self.history.len() as u32 - 1
    }
    fn refuses(&self, epoch: u32, slot: u8, dst: &Addr) -> bool {
        let deny = self.history[epoch as usize][usize::from(slot)];
        DESTS.iter().enumerate().any(|(i, d)| *dst == Addr::V4(*d) && deny & (1 << i) != 0)
    }
    /// Answers the oldest check by the policy of the moment.
    fn answer(&mut self) {
        if let Some((slot, batch, flows)) = self.to_rules.pop_front() {
            let e = self.epoch();
            let denied =
                flows.iter().enumerate().filter(|(_, f)| self.refuses(e, slot, f)).fold(0, |m, (i, _)| m | 1 << i);
            self.to_nat.push_back(RulesToNat::Denied { epoch: e, slot, batch, denied });
            self.sent.retain(|s| s.1 != batch);
        }
    }
}

fn live(e: &Engine) -> HashSet<(u8, OutKey)> {
    let t = e.table();
    let all = (0..t.capacity() as u32).map(|i| *t.get(i));
    all.filter(|c| c.state != 0).map(|c| (c.slot, OutKey::of(&c))).collect()
}

fn deliver(e: &mut Engine, r: &mut Rules, m: RulesToNat) -> Result<(), TestCaseError> {
    match m {
        RulesToNat::Changed { version, epoch, slots: map } => {
            for s in 0..CLIENTS {
                if slots::contains(&map, s) {
                    r.told[usize::from(s)] = epoch;
                }
            }
            e.rules_changed(version, epoch, &map)
        }
        RulesToNat::Denied { epoch, slot, batch, denied } => {
            let before = live(e);
            e.rules_denied(epoch, slot, batch, denied);
            for (s, k) in before.difference(&live(e)) {
                prop_assert_eq!(*s, slot, "only the answered client's connections go");
                prop_assert!(epoch >= r.told[usize::from(slot)], "{:?} removed by a superseded answer", k);
                prop_assert!(
                    r.refuses(epoch, slot, &Addr::V4(k.remote_ip)),
                    "{:?} removed though epoch {}'s policy allows it",
                    k,
                    epoch
                );
            }
        }
    }
    Ok(())
}

fn pump(e: &mut Engine, r: &mut Rules, now: u64, scan: u32, room: bool) {
    let mut scan = scan;
    if let Some(NatToRules::Check { slot, batch, flows }) = e.next_check(now, &mut scan)
        && room
    {
        e.check_sent(now);
        r.highest = r.highest.max(batch);
        r.sent.push((slot, batch, flows.len()));
        r.to_rules.push_back((slot, batch, flows.iter().map(|f| f.dst).collect()));
    }
}

/// Delivers and answers everything until the exchange is over.
fn settle(e: &mut Engine, r: &mut Rules, now: &mut u64) -> Result<(), TestCaseError> {
    for _ in 0..2000 {
        while let Some(m) = r.to_nat.pop_front() {
            deliver(e, r, m)?;
        }
        pump(e, r, *now, u32::MAX, true);
        r.answer();
        e.check().map_err(TestCaseError::fail)?;
        let quiet = r.to_nat.is_empty() && r.to_rules.is_empty();
        if quiet && e.rechecks().idle() {
            return Ok(());
        }
        if quiet && e.rechecks().in_flight() > 0 {
            // Only lost checks are left: their answers time out.
            *now += ANSWER_TIMEOUT_NS;
        }
    }
    Err(TestCaseError::fail("the exchange does not settle"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rechecks_remove_exactly_what_the_rules_refuse(ops in proptest::collection::vec(op(), 1..160)) {
        let mut cfg = config();
        cfg.max_connections = 64;
        cfg.max_per_client = 40;
        let mut e = engine(&cfg, CLIENTS);
        let mut r = Rules::new();
        let mut now = 1u64;
        for op in ops {
            match op {
                Op::Out { client, kind, dest, port } => {
                    let (c, d) = (client_ip(client), DESTS[dest]);
                    let p = match kind {
                        0 => udp(c, d, 1000 + port, 53, b"q"),
                        1 => tcp(c, d, 2000 + port, 443, tcpf::SYN, b""),
                        _ => moat_net::testing::ping_v4(c, d, port, b"p"),
                    };
                    // The rules judge it by the policy of the moment.
                    let refused = r.refuses(r.epoch(), client, &Addr::V4(d));
                    let v = if refused { Verdict::Reject } else { Verdict::Accept };
                    Buf::new(&p).out(&mut e, client, v, now);
                }
                Op::Change { client, deny, ahead } => {
                    let mut next = *r.history.last().unwrap();
                    next[usize::from(client)] = deny;
                    r.history.push(next);
                    let mut map = [0u8; 32];
                    slots::set(&mut map, client);
                    let m = RulesToNat::Changed { version: r.epoch(), epoch: r.epoch(), slots: map };
                    // `ahead`: the rules announce the change before answers
                    // they judged earlier (the epochs tell them apart).
                    if ahead { r.to_nat.push_front(m) } else { r.to_nat.push_back(m) }
                }
                Op::Deliver => {
                    if let Some(m) = r.to_nat.pop_front() {
                        deliver(&mut e, &mut r, m)?;
                    }
                }
                Op::Pump { scan, room } => pump(&mut e, &mut r, now, scan, room),
                Op::Answer => r.answer(),
                Op::Lose => {
                    r.to_rules.pop_front();
                }
                Op::Bogus { kind, bits } => {
                    let bad_before = e.counters().get(C::RecheckBad);
                    let epoch = r.epoch();
                    let (slot, batch, denied) = match (kind, r.sent.first()) {
                        (1, Some(&(slot, batch, _))) => ((slot + 1) % CLIENTS, batch, bits),
                        (2, Some(&(slot, batch, len))) if len < 16 => (slot, batch, bits | 1 << len),
                        _ => (0, r.highest.wrapping_add(100_000), bits),
                    };
                    let before = live(&e);
                    // Straight in, as a broken peer would slip it between two real ones.
                    e.rules_denied(epoch, slot, batch, denied);
                    prop_assert_eq!(e.counters().get(C::RecheckBad), bad_before + 1, "counted");
                    prop_assert_eq!(live(&e), before, "and ignored");
                }
                Op::Wait { secs } => {
                    now += secs * 1_000_000_000;
                    while e.tick(now, 64) {}
                }
                Op::Leave { client } => {
                    if e.accepts_client_events() && e.client_event(&moat_control::ClientEvent::Down { slot: client }) {
                        while e.tick(now, 64) {}
                        prop_assert!(e.client_event(&up(client)));
                    }
                }
            }
            e.check().map_err(TestCaseError::fail)?;
        }

        settle(&mut e, &mut r, &mut now)?;
        let epoch = r.epoch();
        for (slot, k) in live(&e) {
            prop_assert!(!r.refuses(epoch, slot, &Addr::V4(k.remote_ip)), "{:?} of client {} outlived the exchange", k, slot);
        }
        // Checking again with nothing changed removes nothing.
        let before = live(&e);
        let mut all = [0u8; 32];
        for s in 0..CLIENTS {
            slots::set(&mut all, s);
        }
        r.to_nat.push_back(RulesToNat::Changed { version: epoch, epoch, slots: all });
        settle(&mut e, &mut r, &mut now)?;
        prop_assert_eq!(live(&e), before);
    }
}
