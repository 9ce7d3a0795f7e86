//! The rule parser on anything: errors only, never a panic; what parses
//! prints and parses back to the same rule; and whatever parses, installed
//! as a policy, gives the same first match compiled as interpreted.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use moat_control::rules::{Action, Addr, FlowKey, L4, RulesControl};
use moat_rules::compile::NONE;
use moat_rules::engine::OwnedState;
use moat_rules::{lang, reference};

static STATE: Mutex<Option<OwnedState>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.lines().collect();
    // The last 8 bytes (if any) pick the packets to judge.
    let keys: Vec<FlowKey> = data
        .chunks(8)
        .rev()
        .take(4)
        .map(|c| {
            let b = |i: usize| c.get(i).copied().unwrap_or(0);
            let dst = if b(0) & 1 == 0 {
                Addr::V4([10, b(1) & 3, b(2), b(3)])
            } else {
                let mut a = [0u8; 16];
                a[0] = 0x20;
                a[15] = b(1);
                Addr::V6(a)
            };
            let l4 = match b(4) % 3 {
                0 => L4::Port(u16::from_be_bytes([b(5), b(6)])),
                1 => L4::Icmp(b(5)),
                _ => L4::None,
            };
            FlowKey { dst, proto: b(7) % 20, l4 }
        })
        .collect();
    for line in &lines {
        if let Ok(rule) = lang::parse(line) {
            let printed = rule.to_string();
            assert_eq!(lang::parse(&printed), Ok(rule), "{line:?} printed as {printed:?}");
        }
    }
    lines.truncate(64);
    let mut guard = STATE.lock().unwrap();
    let state = guard.get_or_insert_with(OwnedState::new);
    let mut e = state.engine();
    e.control(&RulesControl::Begin { version: 1, keep: false }).unwrap();
    e.control(&RulesControl::Default { policy: Action::Drop }).unwrap();
    for line in &lines {
        let _ = e.control(&RulesControl::Rule { text: line });
    }
    if e.control(&RulesControl::Commit { version: 1 }).is_err() {
        return;
    }
    for k in &keys {
        let want = reference::first_match(e.policy(), 0, k, e.hosts());
        let got = e.tables().lookup(0, k);
        assert_eq!((got != NONE).then_some(usize::from(got)), want, "{k:?}");
    }
});
