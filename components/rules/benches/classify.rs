//! Classification cost per packet, compiled beside the reference
//! interpreter, at 10, 100 and 1000 rules; and compile time for 1000 rules.
//!
//! The rule sets look like real large policies: mostly network blocks
//! (`drop dst4=…/24`, `/32`) and service rules (`accept dst4=… proto=tcp
//! dstports=…`), some `dsthost` rules and a DNS rule, then the policy. The
//! packets hit rules all along the list and miss about a third of the time
//! (a miss is the reference interpreter's worst case: it reads every rule).
//!
//! cargo bench -p moat-rules --bench classify

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use moat_control::rules::{Action, Addr, FlowKey, L4, RulesControl};
use moat_rules::engine::{Engine, OwnedState};
use moat_rules::{Scratch, Tables, reference};
use zerocopy::FromZeros;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn rules(n: usize) -> Vec<String> {
    let mut g = Lcg(n as u64);
    let mut out = vec!["action=accept specialtarget=dns".to_string()];
    while out.len() < n {
        let (a, b, c) = (g.next() % 200 + 20, g.next() % 256, g.next() % 256);
        out.push(match g.next() % 8 {
            0..=2 => format!("action=drop dst4={a}.{b}.{c}.0/24"),
            3 => format!("action=drop dst4={a}.{b}.{c}.{}/32", g.next() % 256),
            4 | 5 => format!(
                "action=accept dst4={a}.{b}.0.0/16 proto=tcp dstports={}",
                [22, 80, 443, 8080][g.next() as usize % 4]
            ),
            6 => format!("action=accept proto=udp dstports={}-{}", 1000 + g.next() % 5000, 7000 + g.next() % 100),
            _ => format!("action=accept dsthost=h{}.example proto=tcp dstports=443", g.next() % 16),
        });
    }
    out
}

/// Packets aimed at the rules' own networks (so they match along the list)
/// and at addresses no rule names.
fn keys(rules: &[String]) -> Vec<FlowKey> {
    let mut g = Lcg(99);
    let nets: Vec<[u8; 4]> = rules
        .iter()
        .filter_map(|r| r.split("dst4=").nth(1))
        .map(|s| {
            let o: Vec<u8> = s.split(['.', '/', ' ']).take(4).map(|x| x.parse().unwrap()).collect();
            [o[0], o[1], o[2], o[3]]
        })
        .collect();
    (0..256)
        .map(|i| {
            let dst = if i % 3 == 0 || nets.is_empty() {
                [1, 2, (g.next() % 256) as u8, 4]
            } else {
                let n = nets[g.next() as usize % nets.len()];
                [n[0], n[1], n[2], (g.next() % 256) as u8]
            };
            let (proto, l4) = match g.next() % 4 {
                0 => (17, L4::Port((g.next() % 10000) as u16)),
                1 => (1, L4::Icmp(8)),
                _ => (6, L4::Port([22, 80, 443, 8080, 25][g.next() as usize % 5])),
            };
            FlowKey { dst: Addr::V4(dst), proto, l4 }
        })
        .collect()
}

fn install<'s>(st: &'s mut OwnedState, rules: &[String]) -> Engine<'s> {
    let mut e = st.engine();
    for h in 0..16 {
        let addrs = heapless::Vec::from_slice(&[Addr::V4([30, 0, 0, h])]).unwrap();
        e.control(&RulesControl::HostAddrs { name: &format!("h{h}.example"), addrs }).unwrap();
    }
    e.control(&RulesControl::Begin { version: 1, keep: false }).unwrap();
    e.control(&RulesControl::Default { policy: Action::Drop }).unwrap();
    for r in rules {
        e.control(&RulesControl::Rule { text: r }).unwrap();
    }
    e.control(&RulesControl::Commit { version: 1 }).unwrap();
    e
}

fn classify(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    for n in [10, 100, 1000] {
        let rules = rules(n);
        let keys = keys(&rules);
        let mut st = OwnedState::new();
        let e = install(&mut st, &rules);
        for k in &keys {
            assert_eq!(
                e.tables().lookup(0, k) as usize,
                reference::first_match(e.policy(), 0, k, e.hosts()).unwrap_or(0xffff)
            );
        }
        let mut i = 0;
        g.bench_function(BenchmarkId::new("compiled", n), |b| {
            b.iter(|| {
                i = (i + 1) & 255;
                black_box(e.tables().lookup(0, black_box(&keys[i])))
            })
        });
        g.bench_function(BenchmarkId::new("reference", n), |b| {
            b.iter(|| {
                i = (i + 1) & 255;
                black_box(reference::first_match(e.policy(), 0, black_box(&keys[i]), e.hosts()))
            })
        });
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let rules = rules(1000);
    let mut st = OwnedState::new();
    let e = install(&mut st, &rules);
    let mut tables = Tables::new_box_zeroed().unwrap();
    let mut scratch = Scratch::new_box_zeroed().unwrap();
    c.bench_function("compile/1000", |b| {
        b.iter(|| tables.compile(black_box(e.policy()), e.hosts(), &mut scratch).unwrap())
    });
}

fn judge(c: &mut Criterion) {
    let rules = rules(1000);
    let keys = keys(&rules);
    let mut st = OwnedState::new();
    let mut e = install(&mut st, &rules);
    e.client_event(&moat_control::ClientEvent::Up { slot: 0, ipv4: [10, 137, 0, 5], ipv6: None, mac: [0; 6] });
    let mut i = 0;
    c.bench_function("judge/1000", |b| {
        b.iter(|| {
            i = (i + 1) & 255;
            black_box(e.judge(0, Addr::V4([10, 137, 0, 5]), black_box(&keys[i])))
        })
    });
}

criterion_group!(benches, classify, compile, judge);
criterion_main!(benches);
