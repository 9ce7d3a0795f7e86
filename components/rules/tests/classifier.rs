//! The compiled classifier against the reference interpreter, on generated
//! rule sets (up to 1000 rules) and packets.

use moat_control::rules::{Action, Addr, FlowKey, L4, RulesControl};
use moat_rules::compile::NONE;
use moat_rules::engine::Applied;
use moat_rules::engine::OwnedState;
use moat_rules::{Engine, reference};
use proptest::prelude::*;

/// Addresses rules and packets are drawn from, so that they meet often:
/// nested IPv4 networks, the DNS servers, IPv6, and some strays.
const V4: &[[u8; 4]] = &[
    [10, 0, 0, 0],
    [10, 1, 0, 0],
    [10, 1, 2, 0],
    [10, 1, 2, 3],
    [10, 139, 1, 1],
    [10, 139, 1, 2],
    [192, 0, 2, 7],
    [0, 0, 0, 0],
];
const V6: &[u16] = &[0x2001, 0xfd09, 0xfe80];
const NAMES: &[&str] = &["a.example", "b.example", "c.example", "dns.example"];
const PORTS: &[u16] = &[0, 1, 52, 53, 54, 80, 443, 1023, 1024, 65534, 65535];

fn v6(top: u16, low: u8) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&top.to_be_bytes());
    b[15] = low;
    b
}

fn arb_addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        4 => prop::sample::select(V4).prop_map(Addr::V4),
        3 => (0u8..16).prop_map(|x| Addr::V4([10, 1, 2, x])),
        1 => any::<[u8; 4]>().prop_map(Addr::V4),
        2 => (prop::sample::select(V6), 0u8..4).prop_map(|(t, l)| Addr::V6(v6(t, l))),
    ]
}

fn show(a: Addr, len: u8) -> String {
    match a {
        Addr::V4(b) => format!("dst4={}/{}", std::net::Ipv4Addr::from(b), len.min(32)),
        Addr::V6(b) => format!("dst6={}/{}", std::net::Ipv6Addr::from(b), len),
    }
}

fn arb_port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => prop::sample::select(PORTS), 1 => any::<u16>()]
}

/// A rule as text; always valid.
fn arb_rule() -> impl Strategy<Value = String> {
    let dst = prop_oneof![
        3 => Just(String::new()),
        4 => (arb_addr(), prop_oneof![Just(0u8), Just(8), Just(16), Just(24), Just(32), Just(64), Just(128), 0u8..=128])
            .prop_map(|(a, l)| show(a, if matches!(a, Addr::V4(_)) { l.min(32) } else { l })),
        2 => prop::sample::select(NAMES).prop_map(|n| format!("dsthost={n}")),
    ];
    let proto = prop_oneof![Just(""), Just("tcp"), Just("udp"), Just("icmp")];
    (any::<bool>(), dst, proto, arb_port(), arb_port(), 0u8..12, any::<(bool, bool, u8)>()).prop_map(
        |(accept, dst, proto, p1, p2, t, (ports, icmp, dns))| {
            let mut w = vec![format!("action={}", if accept { "accept" } else { "drop" })];
            if !dst.is_empty() {
                w.push(dst);
            }
            if !proto.is_empty() {
                w.push(format!("proto={proto}"));
            }
            if ports && (proto == "tcp" || proto == "udp") {
                w.push(format!("dstports={}-{}", p1.min(p2), p1.max(p2)));
            }
            if icmp && proto == "icmp" {
                w.push(format!("icmptype={t}"));
            }
            if dns % 8 == 0 {
                w.push("specialtarget=dns".into());
            }
            w.join(" ")
        },
    )
}

/// A narrow rule (long prefix, few ports), so that in a long list packets
/// stop at many different rules instead of the first broad one.
fn arb_narrow_rule() -> impl Strategy<Value = String> {
    let dst = prop_oneof![
        8 => (arb_addr(), 24u8..=32, 100u8..=128).prop_map(|(a, l4, l6)| show(a, if matches!(a, Addr::V4(_)) { l4 } else { l6 })),
        1 => prop::sample::select(NAMES).prop_map(|n| format!("dsthost={n}")),
    ];
    let l4 = prop_oneof![
        4 => (prop_oneof![Just("tcp"), Just("udp")], arb_port(), 0u16..4)
            .prop_map(|(p, lo, k)| format!("proto={p} dstports={lo}-{}", lo.saturating_add(k))),
        1 => (0u8..12).prop_map(|t| format!("proto=icmp icmptype={t}")),
    ];
    (any::<bool>(), dst, l4, any::<u8>()).prop_map(|(accept, dst, l4, dns)| {
        let action = if accept { "accept" } else { "drop" };
        let dns = if dns % 16 == 0 { " specialtarget=dns" } else { "" };
        format!("action={action} {dst} {l4}{dns}")
    })
}

fn arb_key() -> impl Strategy<Value = FlowKey> {
    let l4 = prop_oneof![3 => arb_port().prop_map(L4::Port), 2 => (0u8..12).prop_map(L4::Icmp), 1 => Just(L4::None)];
    let proto = prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(47), any::<u8>()];
    (arb_addr(), proto, l4).prop_map(|(dst, proto, l4)| FlowKey { dst, proto, l4 })
}

/// Installs `entries` (rule lists; the first is the default entry) as one
/// policy, with some names resolved.
fn engine<'s>(
    st: &'s mut OwnedState,
    entries: &[Vec<String>],
    resolved: &[(usize, Vec<Addr>)],
    policies: &[bool],
) -> Engine<'s> {
    let mut e = st.engine();
    for (n, addrs) in resolved {
        let addrs = heapless::Vec::from_slice(&addrs[..addrs.len().min(8)]).unwrap();
        e.control(&RulesControl::HostAddrs { name: NAMES[*n], addrs }).unwrap();
    }
    e.control(&RulesControl::Begin { version: 1, keep: false }).unwrap();
    let settings = RulesControl::Settings {
        drop: Default::default(),
        inter_vm: Default::default(),
        dns: heapless::Vec::from_slice(&[
            Addr::V4([10, 139, 1, 1]),
            Addr::V4([10, 139, 1, 2]),
            Addr::V6(v6(0xfd09, 1)),
        ])
        .unwrap(),
    };
    e.control(&settings).unwrap();
    for (i, rules) in entries.iter().enumerate() {
        let policy = if policies.get(i).copied().unwrap_or(false) { Action::Accept } else { Action::Drop };
        let start = if i == 0 {
            RulesControl::Default { policy }
        } else {
            RulesControl::Client { ipv4: Some([10, 137, 0, i as u8]), ipv6: None, name: None, policy }
        };
        e.control(&start).unwrap();
        for r in rules {
            assert!(matches!(e.control(&RulesControl::Rule { text: r }), Ok(Applied::Staged)), "{r}");
        }
    }
    assert_eq!(e.control(&RulesControl::Commit { version: 1 }), Ok(Applied::Committed(1)));
    e
}

fn agree(e: &Engine<'_>, entry: usize, key: &FlowKey) -> Result<(), TestCaseError> {
    let want = reference::first_match(e.policy(), entry, key, e.hosts());
    let got = e.tables().lookup(entry, key);
    let got = (got != NONE).then_some(usize::from(got));
    prop_assert_eq!(got, want, "entry {} key {:?}", entry, key);
    Ok(())
}

fn arb_resolved() -> impl Strategy<Value = Vec<(usize, Vec<Addr>)>> {
    prop::collection::vec((0..NAMES.len() - 1, prop::collection::vec(arb_addr(), 1..4)), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compiled_equals_reference_up_to_1000_rules(
        rules in prop::collection::vec(arb_narrow_rule(), 0..1000),
        resolved in arb_resolved(),
        keys in prop::collection::vec(arb_key(), 200),
        policy in any::<bool>(),
    ) {
        let mut st = OwnedState::new();
    let e = engine(&mut st, std::slice::from_ref(&rules), &resolved, &[policy]);
        let mut matched = std::collections::BTreeSet::new();
        for k in &keys {
            agree(&e, 0, k)?;
            matched.insert(e.tables().lookup(0, k));
        }
        // The generators are meant to make rules and packets meet: with
        // enough rules, packets stop at many different ones.
        if rules.len() > 300 {
            prop_assert!(matched.len() >= 4, "only {} distinct outcomes", matched.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn compiled_equals_reference_small_sets_many_entries(
        entries in prop::collection::vec(prop::collection::vec(arb_rule(), 0..24), 1..6),
        resolved in arb_resolved(),
        keys in prop::collection::vec(arb_key(), 64),
        policies in prop::collection::vec(any::<bool>(), 6),
    ) {
        let mut st = OwnedState::new();
    let e = engine(&mut st, &entries, &resolved, &policies);
        for entry in 0..entries.len() {
            for k in &keys {
                agree(&e, entry, k)?;
            }
        }
        // Names re-resolved after compiling: the index is rebuilt in place.
        let mut e = e;
        e.control(&RulesControl::HostAddrs {
            name: NAMES[0],
            addrs: heapless::Vec::from_slice(&[Addr::V4([10, 1, 2, 3]), Addr::V6(v6(0x2001, 1))]).unwrap(),
        }).unwrap();
        for k in &keys {
            agree(&e, 0, k)?;
        }
    }
}

#[test]
fn first_match_wins_over_later_more_specific_rules() {
    let rules = ["action=drop dst4=10.0.0.0/8", "action=accept dst4=10.1.2.3/32 proto=tcp dstports=443"];
    let mut st = OwnedState::new();
    let e = engine(&mut st, &[rules.iter().map(|s| s.to_string()).collect()], &[], &[true]);
    let k = FlowKey { dst: Addr::V4([10, 1, 2, 3]), proto: 6, l4: L4::Port(443) };
    assert_eq!(e.tables().lookup(0, &k), 0, "the /8 drop comes first");
    let k = FlowKey { dst: Addr::V4([11, 1, 2, 3]), ..k };
    assert_eq!(e.tables().lookup(0, &k), NONE, "no rule: the policy decides");
    assert_eq!(e.tables().policy(0), Action::Accept);
}

#[test]
fn unresolved_names_match_nothing_until_resolved() {
    let mut st = OwnedState::new();
    let e0 = engine(&mut st, &[vec!["action=accept dsthost=a.example".into()]], &[], &[false]);
    let mut e = e0;
    let k = FlowKey { dst: Addr::V4([192, 0, 2, 7]), proto: 6, l4: L4::Port(443) };
    assert_eq!(e.tables().lookup(0, &k), NONE);
    e.control(&RulesControl::HostAddrs {
        name: "a.example",
        addrs: heapless::Vec::from_slice(&[Addr::V4([192, 0, 2, 7])]).unwrap(),
    })
    .unwrap();
    assert_eq!(e.tables().lookup(0, &k), 0);
    e.control(&RulesControl::HostAddrs { name: "a.example", addrs: heapless::Vec::new() }).unwrap();
    assert_eq!(e.tables().lookup(0, &k), NONE, "forgotten again");
}

#[test]
fn dns_rules_follow_linux() {
    let rules = [
        "action=drop specialtarget=dns proto=udp dstports=1-1024", // skipped: ports are not 53
        "action=drop specialtarget=dns proto=icmp",                // skipped: not TCP/UDP
        "action=accept specialtarget=dns dst4=10.139.1.1",         // only the first server
        "action=drop specialtarget=dns",
    ];
    let mut st = OwnedState::new();
    let e = engine(&mut st, &[rules.iter().map(|s| s.to_string()).collect()], &[], &[true]);
    let q = |a: [u8; 4], proto, port| FlowKey { dst: Addr::V4(a), proto, l4: L4::Port(port) };
    assert_eq!(e.tables().lookup(0, &q([10, 139, 1, 1], 17, 53)), 2);
    assert_eq!(e.tables().lookup(0, &q([10, 139, 1, 2], 6, 53)), 3);
    assert_eq!(e.tables().lookup(0, &q([10, 139, 1, 2], 6, 80)), NONE, "port 80: no DNS rule");
    assert_eq!(e.tables().lookup(0, &q([10, 139, 1, 3], 17, 53)), NONE, "not a DNS server");
}
