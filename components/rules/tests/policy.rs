//! The policy store and staging: identities, replacement, capacities, and
//! which clients the NAT hears about.

use moat_control::ClientEvent;
use moat_control::rules::{Action, RulesControl, slots};
use moat_rules::Engine;
use moat_rules::engine::{Applied, OwnedState};
use moat_rules::policy::{Ident, MAX_ENTRIES, MAX_NAMES, MAX_RULES, PolicyStore, StageError};
use zerocopy::FromZeros;

fn store() -> Box<PolicyStore> {
    let mut p = PolicyStore::new_box_zeroed().unwrap();
    p.clear(1);
    p
}

fn v4(n: u8) -> Ident<'static> {
    Ident { ipv4: Some([10, 137, 0, n]), ..Ident::default() }
}

fn texts(p: &PolicyStore, e: usize) -> Vec<String> {
    p.rules_of(e).map(|r| r.map_host(|n| p.name(n).unwrap().to_string()).to_string()).collect()
}

#[test]
fn zeroed_store_is_an_empty_policy_that_drops() {
    let p = PolicyStore::new_box_zeroed().unwrap();
    assert_eq!(p.entry_count(), 1);
    let e = p.entry(0).unwrap();
    assert_eq!((e.policy, e.rules.len(), e.error), (Action::Drop, 0, None));
}

#[test]
fn identities_must_be_unique() {
    let mut p = store();
    assert_eq!(p.begin_client(Ident::default(), Action::Drop, false), Err(StageError::BadIdent));
    let bad_name = Ident { name: Some("9lives"), ..Ident::default() };
    assert_eq!(p.begin_client(bad_name, Action::Drop, false), Err(StageError::BadIdent));
    let work = Ident { ipv4: Some([10, 137, 0, 5]), name: Some("work"), ..Ident::default() };
    assert_eq!(p.begin_client(work, Action::Drop, false), Ok(1));
    assert_eq!(p.begin_client(v4(5), Action::Drop, false), Err(StageError::Conflict), "same address");
    let named = Ident { name: Some("work"), ..Ident::default() };
    assert_eq!(p.begin_client(named, Action::Drop, true), Err(StageError::Conflict), "partial overlap");
    assert_eq!(p.begin_client(work, Action::Accept, false), Err(StageError::Conflict), "twice in one staging");
    assert_eq!(p.begin_client(work, Action::Accept, true), Ok(1), "replaced when staging kept the policy");
    assert_eq!(p.entry(1).unwrap().policy, Action::Accept);
}

#[test]
fn replacing_an_entry_keeps_the_others() {
    let mut p = store();
    for n in 1..=3 {
        let e = p.begin_client(v4(n), Action::Drop, false).unwrap();
        for port in [n, n + 10] {
            p.push_rule(e, &format!("action=accept proto=tcp dstports={port}")).unwrap().unwrap();
        }
    }
    let e = p.begin_client(v4(2), Action::Accept, true).unwrap();
    assert_eq!(e, 2);
    p.push_rule(e, "action=drop dsthost=x.example").unwrap().unwrap();
    assert_eq!(texts(&p, 1), ["action=accept proto=tcp dstports=1-1", "action=accept proto=tcp dstports=11-11"]);
    assert_eq!(texts(&p, 2), ["action=drop dsthost=x.example"]);
    assert_eq!(texts(&p, 3), ["action=accept proto=tcp dstports=3-3", "action=accept proto=tcp dstports=13-13"]);
    assert_eq!(p.rule_count(), 5);
    assert_eq!(p.push_rule(1, "action=accept"), Err(StageError::NoEntry), "only the entry started last grows");
}

#[test]
fn a_failed_entry_drops_everything_and_ignores_the_rest() {
    let mut p = store();
    let e = p.begin_client(v4(1), Action::Accept, false).unwrap();
    p.push_rule(e, "action=accept proto=tcp").unwrap().unwrap();
    let err = p.push_rule(e, "action=accept proto=sctp").unwrap().unwrap_err();
    assert_eq!(p.push_rule(e, "action=accept"), Ok(Ok(())));
    let entry = p.entry(e).unwrap();
    assert_eq!((entry.policy, entry.rules.len(), entry.error), (Action::Drop, 0, Some((1, err))));
}

#[test]
fn capacities() {
    let mut p = store();
    for n in 0..MAX_ENTRIES {
        p.begin_client(Ident { ipv4: Some([10, 0, 0, n as u8]), ..Ident::default() }, Action::Drop, false).unwrap();
    }
    assert_eq!(p.begin_client(v4(200), Action::Drop, false), Err(StageError::TooManyEntries));
    let mut p = store();
    p.begin_default(Action::Drop);
    for _ in 0..MAX_RULES {
        p.push_rule(0, "action=accept").unwrap().unwrap();
    }
    assert_eq!(p.push_rule(0, "action=accept"), Err(StageError::TooManyRules));
    let mut p = store();
    p.begin_default(Action::Drop);
    for n in 0..MAX_NAMES {
        p.push_rule(0, &format!("action=accept dsthost=h{n}.example")).unwrap().unwrap();
    }
    assert_eq!(p.push_rule(0, "action=accept dsthost=one-more.example"), Err(StageError::TooManyNames));
    assert_eq!(p.push_rule(0, "action=accept dsthost=h3.example"), Ok(Ok(())), "a known name needs no room");
}

#[test]
fn names_of_replaced_entries_are_collected() {
    let mut p = store();
    let e = p.begin_client(v4(1), Action::Drop, false).unwrap();
    for n in 0..MAX_NAMES {
        p.push_rule(e, &format!("action=accept dsthost=old{n}.example")).unwrap().unwrap();
    }
    let e = p.begin_client(v4(1), Action::Drop, true).unwrap();
    for n in 0..MAX_NAMES {
        p.push_rule(e, &format!("action=accept dsthost=new{n}.example")).unwrap().unwrap();
    }
    assert_eq!(p.name_count(), MAX_NAMES);
    assert_eq!(texts(&p, e)[63], "action=accept dsthost=new63.example");
    assert!(p.find_name("old0.example").is_none());
}

fn install(e: &mut Engine<'_>, version: u32, default: &[&str], work: &[&str]) -> Result<Applied, StageError> {
    e.control(&RulesControl::Begin { version, keep: false })?;
    e.control(&RulesControl::Default { policy: Action::Drop })?;
    for r in default {
        e.control(&RulesControl::Rule { text: r })?;
    }
    e.control(&RulesControl::Client { ipv4: Some([10, 137, 0, 5]), ipv6: None, name: None, policy: Action::Drop })?;
    for r in work {
        e.control(&RulesControl::Rule { text: r })?;
    }
    e.control(&RulesControl::Commit { version })
}

#[test]
fn the_nat_hears_only_about_clients_whose_rules_changed() {
    let mut st = OwnedState::new();
    let mut e = st.engine();
    install(&mut e, 1, &["action=accept"], &["action=accept proto=tcp"]).unwrap();
    e.client_event(&ClientEvent::Up { slot: 0, ipv4: [10, 137, 0, 5], ipv6: None, mac: [0; 6] });
    e.client_event(&ClientEvent::Up { slot: 1, ipv4: [10, 137, 0, 6], ipv6: None, mac: [0; 6] });
    assert_eq!(e.take_changed(), None);
    install(&mut e, 2, &["action=accept"], &["action=accept proto=tcp"]).unwrap();
    assert_eq!(e.take_changed(), None, "same rules: nothing to re-check");
    install(&mut e, 3, &["action=accept"], &["action=accept proto=udp"]).unwrap();
    let m = e.take_changed().unwrap();
    assert!(slots::contains(&m, 0) && !slots::contains(&m, 1));
    install(&mut e, 4, &["action=drop"], &["action=accept proto=udp"]).unwrap();
    let m = e.take_changed().unwrap();
    assert!(!slots::contains(&m, 0) && slots::contains(&m, 1));
    assert_eq!(e.epoch(), 4);
    assert_eq!(e.version(), 4);
}

#[test]
fn staging_messages_out_of_place_are_refused() {
    let mut st = OwnedState::new();
    let mut e = st.engine();
    assert_eq!(e.control(&RulesControl::Rule { text: "action=accept" }), Err(StageError::NotStaging));
    assert_eq!(e.control(&RulesControl::Commit { version: 1 }), Err(StageError::NotStaging));
    e.control(&RulesControl::Begin { version: 1, keep: false }).unwrap();
    e.control(&RulesControl::Abort).unwrap();
    assert_eq!(e.control(&RulesControl::Commit { version: 1 }), Err(StageError::NotStaging), "aborted");
    e.control(&RulesControl::Begin { version: 1, keep: false }).unwrap();
    let dup = RulesControl::Client { ipv4: Some([1, 2, 3, 4]), ipv6: None, name: None, policy: Action::Drop };
    e.control(&dup).unwrap();
    assert_eq!(e.control(&dup), Err(StageError::Conflict));
    assert_eq!(e.control(&RulesControl::Commit { version: 1 }), Err(StageError::Conflict), "the first error sticks");
    assert_eq!(e.version(), 0);
}
