//! Properties with a virtual clock: translation is a bijection,
//! reverse(forward(p)) restores p, no two live connections share an outside
//! tuple, entries expire exactly at their state's timeout, eviction follows
//! the documented order, and port exhaustion is a clean refusal.

mod common;

use std::collections::HashMap;

use common::*;
use moat_nat::Fate;
use moat_nat::conn::State;
use moat_nat::counters::C;
use moat_nat::table::OutKey;
use moat_net::meta::Verdict;
use proptest::prelude::*;

const S: u64 = 1_000_000_000;
const DESTS: [[u8; 4]; 3] = [SERVER, [1, 1, 1, 1], [9, 9, 9, 9]];

/// The model of a UDP flow: Linux's two timeouts and the 2-second rule.
#[derive(Clone, Copy, Debug)]
struct Flow {
    created: u64,
    last: u64,
    state: State,
    outside: Option<u16>,
}

impl Flow {
    fn timeout(&self) -> u64 {
        self.state.timeout_ns()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Out { client: u8, cport: u16, dest: usize, dport: u16 },
    In { pick: prop::sample::Index },
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 1000u16..1006, 0usize..3, 53u16..55).prop_map(|(client, cport, dest, dport)| Op::Out { client, cport, dest, dport }),
        3 => any::<prop::sample::Index>().prop_map(|pick| Op::In { pick }),
        2 => prop_oneof![0u64..3000, 25_000u64..35_000, 100_000u64..130_000].prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn translation_is_a_bijection_that_expires_exactly(ops in proptest::collection::vec(op(), 1..120)) {
        let mut cfg = config();
        cfg.max_connections = 1024;
        cfg.max_per_client = 1024;
        let mut e = engine(&cfg, 3);
        let mut now = 1;
        let mut model: HashMap<(u8, u16, usize, u16), Flow> = HashMap::new();
        for op in ops {
            match op {
                Op::Out { client, cport, dest, dport } => {
                    let p = udp(client_ip(client), DESTS[dest], cport, dport, b"out");
                    let mut b = Buf::new(&p);
                    prop_assert_eq!(b.out(&mut e, client, Verdict::Accept, now).fate, Fate::Uplink);
                    prop_assert!(checksums_right(b.packet()));
                    let (src, dst, sport, dp) = tuple(b.packet());
                    prop_assert_eq!((src, dst, dp), (UPLINK, DESTS[dest], dport));
                    let f = model.entry((client, cport, dest, dport)).or_insert(Flow { created: now, last: now, state: State::UdpUnreplied, outside: None });
                    if let Some(o) = f.outside {
                        prop_assert_eq!(o, sport, "a live flow keeps its outside port");
                    }
                    f.outside = Some(sport);
                    f.last = now;
                    if f.state == State::UdpReplied && now >= (f.created / S + 2) * S {
                        f.state = State::UdpAssured;
                    }
                }
                Op::In { pick } => {
                    if model.is_empty() { continue; }
                    let keys: Vec<_> = { let mut k: Vec<_> = model.keys().copied().collect(); k.sort(); k };
                    let k = keys[pick.index(keys.len())];
                    let f = model.get_mut(&k).unwrap();
                    let (client, cport, dest, dport) = k;
                    let outside = f.outside.unwrap();
                    let r = udp(DESTS[dest], UPLINK, dport, outside, b"in");
                    let mut b = Buf::new(&r);
                    prop_assert_eq!(b.inb(&mut e, now).fate, Fate::Client(client));
                    // reverse(forward(p)): exactly the reply to what the client sent.
                    let want = with_ttl(udp(DESTS[dest], client_ip(client), dport, cport, b"in"), 63);
                    prop_assert_eq!(b.packet(), &want[..]);
                    f.last = now;
                    let stream = now >= (f.created / S + 2) * S;
                    f.state = match f.state {
                        State::UdpUnreplied => State::UdpReplied,
                        State::UdpReplied if stream => State::UdpAssured,
                        s => s,
                    };
                }
                Op::Wait { ms } => {
                    now += ms * 1_000_000;
                    e.tick(now, 1 << 20);
                    model.retain(|_, f| now - f.last < f.timeout());
                }
            }
            e.check().map_err(TestCaseError::fail)?;
            // The engine holds exactly the model's live flows, each under
            // both its tuples (check() proved the outside ones distinct).
            let t = e.table();
            let mut live = 0;
            for (&(client, cport, dest, dport), f) in &model {
                let key = OutKey { proto: 17, client_ip: client_ip(client), client_port: cport, remote_ip: DESTS[dest], remote_port: dport };
                let i = t.find_out(&key);
                prop_assert!(i.is_some_and(|i| !t.expired(i, now)), "{:?} should be live", key);
                let c = t.get(i.unwrap());
                prop_assert_eq!(c.state().unwrap(), f.state);
                prop_assert_eq!(Some(c.nat_port), f.outside);
                live += 1;
            }
            let unexpired = (0..t.capacity() as u32).filter(|&i| t.get(i).state != 0 && !t.expired(i, now)).count();
            prop_assert_eq!(unexpired, live, "nothing lives that the model says expired");
        }
    }
}

#[test]
fn each_state_expires_exactly_at_its_timeout() {
    for (state, setup) in [
        (State::UdpUnreplied, 0),
        (State::UdpReplied, 1),
        (State::UdpAssured, 2),
        (State::SynSent, 3),
        (State::Established, 4),
    ] {
        let mut e = engine(&config(), 1);
        let t0 = 10 * S;
        let c = client_ip(0);
        let mut last = t0;
        let out = |e: &mut moat_nat::Engine, p: Vec<u8>, t| Buf::new(&p).out(e, 0, Verdict::Accept, t).fate;
        let mut b = Buf::new(&if setup >= 3 {
            tcp(c, SERVER, 1000, 80, tcpf::SYN, b"")
        } else {
            udp(c, SERVER, 1000, 80, b"")
        });
        assert_eq!(b.out(&mut e, 0, Verdict::Accept, t0).fate, Fate::Uplink);
        let port = tuple(b.packet()).2;
        if setup == 1 || setup == 2 {
            let at = if setup == 1 { t0 + S } else { t0 + 3 * S };
            let mut r = Buf::new(&udp(SERVER, UPLINK, 80, port, b""));
            assert_eq!(r.inb(&mut e, at).fate, Fate::Client(0));
            if setup == 2 {
                assert_eq!(out(&mut e, udp(c, SERVER, 1000, 80, b""), at + S), Fate::Uplink);
                last = at + S;
            } else {
                last = at;
            }
        }
        if setup == 4 {
            let mut r = Buf::new(&tcp(SERVER, UPLINK, 80, port, tcpf::SYN | tcpf::ACK, b""));
            assert_eq!(r.inb(&mut e, t0 + S).fate, Fate::Client(0));
            assert_eq!(out(&mut e, tcp(c, SERVER, 1000, 80, tcpf::ACK, b""), t0 + 2 * S), Fate::Uplink);
            last = t0 + 2 * S;
        }
        assert_eq!(e.table().count(state), 1, "{state:?}");
        let deadline = last + state.timeout_ns();
        assert_eq!(e.next_deadline(), Some(deadline), "{state:?}: the timer asked for");
        e.tick(deadline - 1, 64);
        assert_eq!(e.table().live(), 1, "{state:?}: still there 1 ns before");
        e.tick(deadline, 64);
        assert_eq!(e.table().live(), 0, "{state:?}: gone at the timeout");
        assert_eq!(e.counters().get(C::Expired), 1);
    }
}

/// Fills a 16-entry table with connections of every tier, then opens new
/// ones: victims go closed first, then unreplied, then other unestablished,
/// then established idle long enough — oldest first within a tier — and an
/// active established connection is never evicted: the newcomer is refused.
#[test]
fn eviction_follows_the_documented_order() {
    let mut cfg = config();
    cfg.max_connections = 16;
    cfg.max_per_client = 16;
    let mut e = engine(&cfg, 2);
    let c = client_ip(0);
    let mut t = S;
    let mut port = 2000;
    let mut open = |e: &mut moat_nat::Engine, kind: &str, t: &mut u64| -> u16 {
        port += 1;
        *t += S / 1000;
        let (out, reply): (Vec<u8>, Option<Vec<u8>>) = match kind {
            "unreplied" => (udp(c, SERVER, port, 53, b""), None),
            "replied" => (udp(c, SERVER, port, 53, b""), Some(vec![])),
            "established" | "closed" => (tcp(c, SERVER, port, 80, tcpf::SYN, b""), Some(vec![])),
            _ => unreachable!(),
        };
        let mut b = Buf::new(&out);
        assert_eq!(b.out(e, 0, Verdict::Accept, *t).fate, Fate::Uplink);
        let nat = tuple(b.packet()).2;
        if reply.is_some() {
            let r = if kind == "replied" {
                udp(SERVER, UPLINK, 53, nat, b"")
            } else {
                tcp(SERVER, UPLINK, 80, nat, tcpf::SYN | tcpf::ACK, b"")
            };
            assert_eq!(Buf::new(&r).inb(e, *t).fate, Fate::Client(0));
        }
        if kind == "established" || kind == "closed" {
            assert_eq!(
                Buf::new(&tcp(c, SERVER, port, 80, tcpf::ACK, b"")).out(e, 0, Verdict::Accept, *t).fate,
                Fate::Uplink
            );
        }
        if kind == "closed" {
            assert_eq!(
                Buf::new(&tcp(c, SERVER, port, 80, tcpf::RST, b"")).out(e, 0, Verdict::Accept, *t).fate,
                Fate::Uplink
            );
        }
        port
    };
    let mut made = Vec::new();
    for kind in ["established", "replied", "unreplied", "closed"].iter().cycle().take(16) {
        made.push((*kind, open(&mut e, kind, &mut t)));
    }
    assert_eq!(e.table().live(), 16);
    let alive = |e: &moat_nat::Engine, (kind, p): (&str, u16)| {
        let proto = if kind == "established" || kind == "closed" { 6 } else { 17 };
        let dport = if proto == 6 { 80 } else { 53 };
        let k = OutKey { proto, client_ip: c, client_port: p, remote_ip: SERVER, remote_port: dport };
        e.table().find_out(&k).is_some()
    };
    // New unreplied flows, one at a time; which old one goes each time?
    let mut order = Vec::new();
    for i in 0..12u16 {
        t += S / 1000;
        let before: Vec<_> = made.iter().copied().filter(|&m| alive(&e, m)).collect();
        // From another client: this one is at its own limit.
        let mut b = Buf::new(&udp(client_ip(1), [1, 1, 1, 1], 9000 + i, 53, b""));
        assert_eq!(b.out(&mut e, 1, Verdict::Accept, t).fate, Fate::Uplink);
        let gone: Vec<_> = before.into_iter().filter(|&m| !alive(&e, m)).collect();
        if let [g] = gone[..] {
            order.push(g);
        }
    }
    let kinds: Vec<&str> = order.iter().map(|g| g.0).collect();
    assert_eq!(&kinds[..4], ["closed"; 4]);
    assert_eq!(&kinds[4..8], ["unreplied"; 4]);
    // Then the newcomers themselves (unreplied, oldest first) before
    // anything replied or established.
    assert!(kinds[8..].iter().all(|k| *k != "established" && *k != "replied"));
    let closed: Vec<u16> = order[..4].iter().map(|g| g.1).collect();
    assert!(closed.windows(2).all(|w| w[0] < w[1]), "oldest first: {closed:?}");
    assert_eq!(e.counters().get(C::EvictedClosed), 4);
    assert_eq!(e.counters().get(C::EvictedEstablished), 0);
    // Refresh the established ones, then fill the table with them only.
    let mut e = engine(&cfg, 2);
    let mut t = S;
    for _ in 0..16 {
        open(&mut e, "established", &mut t);
    }
    let newcomer = udp(client_ip(1), [1, 1, 1, 1], 7, 53, b"");
    let mut b = Buf::new(&newcomer);
    assert_eq!(b.out(&mut e, 1, Verdict::Accept, t + S).fate, Fate::Drop(C::RefusedTableFull), "active ones stay");
    let mut b = Buf::new(&newcomer);
    assert_eq!(b.out(&mut e, 1, Verdict::Accept, t + 2 * S + 120 * S).fate, Fate::Uplink, "idle for 120 s: evictable");
    assert_eq!(e.counters().get(C::EvictedEstablished), 1);
    e.check().unwrap();
}

/// Every port towards one destination, then more: refused at once and
/// counted; other destinations unaffected. Bounded by iteration count.
#[test]
fn port_exhaustion_is_a_clean_refusal() {
    let mut cfg = config();
    cfg.max_per_client = 9000;
    let mut e = engine(&cfg, 8);
    let range = 65535 - 1024 + 1;
    let mut seen = vec![false; 65536];
    let mut n = 0;
    'fill: for client in 0..8u8 {
        for cport in 0..8064u16 {
            let mut b = Buf::new(&udp(client_ip(client), SERVER, 10000 + cport, 53, b""));
            assert_eq!(b.out(&mut e, client, Verdict::Accept, S).fate, Fate::Uplink, "flow {n}");
            let p = usize::from(tuple(b.packet()).2);
            assert!(!seen[p], "port {p} given twice");
            seen[p] = true;
            n += 1;
            if n == range {
                break 'fill;
            }
        }
    }
    assert_eq!(e.ports_in_use() as usize, range);
    for i in 0..100u16 {
        let mut b = Buf::new(&udp(client_ip(7), SERVER, 30000 + i, 53, b""));
        assert_eq!(b.out(&mut e, 7, Verdict::Accept, S).fate, Fate::Drop(C::RefusedPorts));
    }
    assert_eq!(e.counters().get(C::RefusedPorts), 100);
    let mut b = Buf::new(&udp(client_ip(7), SERVER, 30000, 54, b""));
    assert_eq!(b.out(&mut e, 7, Verdict::Accept, S).fate, Fate::Uplink, "another destination port still works");
    e.check().unwrap();
}
