//! The comparison's machinery on the host, with the test store on both
//! sides: the script and the component run the same through every path
//! (ring, shim), the transcripts say what the operations did, and the
//! comparison finds a difference when there is one.

use std::time::Duration;

use moat_xs_compare::link::TestLink;
use moat_xs_compare::{Client, TestDomains, compare, component_on, component_on_test_store, ops, ops_on, test_store};

fn unexplained(what: &str, real: &[String], test: &[String]) -> Vec<String> {
    compare(what, real, test).into_iter().filter_map(|v| v.diff.map(|d| format!("{}: {d}", v.section))).collect()
}

#[test]
fn the_script_is_deterministic_as_dom0_and_as_a_domain() {
    for (client, domid) in [(Client::Dom0, 0), (Client::Domain { domid: 5, name: "xs-relay".into() }, 5)] {
        let store = test_store();
        let c = match &client {
            Client::Dom0 => TestLink::dom0(&store),
            Client::Domain { domid, name } => TestLink::domain(&store, *domid, name),
        };
        let mut domains = TestDomains { store: store.clone(), domid: 4000 };
        let a = ops_on(c, TestLink::dom0(&store), ops::View { domid, spare: true }, &mut domains);
        let b = moat_xs_compare::ops_on_test_store(&client, true);
        assert_eq!(unexplained("self", &a, &b), Vec::<String>::new());
        assert!(a.len() > 300, "the whole script ran ({} lines)", a.len());
    }
}

#[test]
fn the_transcript_records_what_the_store_did() {
    let t = moat_xs_compare::ops_on_test_store(&Client::Domain { domid: 5, name: "n".into() }, true);
    let has = |l: &str| t.iter().any(|x| x.starts_with(l));
    assert!(has("c> READ domid") && has("c< VALUE 5"));
    assert!(has("c! EVENT data/xsc/w tw"), "the initial event, relative");
    assert!(has("c! EVENT data/xsc/w/x tw"), "a change below the watch");
    assert!(has("c! EVENT @releaseDomain rel"));
    assert!(has("c< ERROR EAGAIN"), "a conflicting transaction");
    assert!(has("c< ERROR EACCES"), "dom0's nodes are not a domain's");
    assert!(has("c< TX #1"), "transaction ids are numbered by first use");
    let i = t.iter().position(|l| l.starts_with("c< DROPPED")).expect("the connection was dropped at last");
    assert!(t[i + 1..].iter().all(|l| l.starts_with('#') || l.starts_with("c>") || l == "c< (connection gone)"));
    assert_eq!(t.last().map(String::as_str), Some("c< (connection gone)"), "ran to the end");
}

#[test]
fn the_component_runs_the_same_through_the_shim() {
    let direct = component_on_test_store(3, "xs-relay", 40);
    let store = test_store();
    let shimmed =
        component_on(TestLink::domain(&store, 3, "xs-relay"), TestLink::dom0(&store), 3, 40, Duration::from_millis(20));
    assert_eq!(unexplained("component", &shimmed, &direct), Vec::<String>::new());
    let has = |l: &str| direct.iter().any(|x| x.starts_with(l));
    assert!(has("rules: Up { slot: 0, ipv4: [10, 137, 0, 7]"), "{direct:#?}");
    assert!(has("netback: VifUp"));
    assert!(has("rules: Down { slot: 0 }"));
    assert!(has("netfront: Uplink"));
    assert!(has("runtime: Shutdown(Poweroff)"));
    assert!(has("t< VALUE running"), "the status key");
    assert!(!has("did not settle") && !has("component fault") && !has("store link"));
}

#[test]
fn a_difference_is_found_and_a_known_one_is_not_reported() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let real = l(&["# s", "c> READ x", "c< VALUE 1", "# u", "c> READ y", "c< OK"]);
    let test = l(&["# s", "c> READ x", "c< VALUE 2", "# u", "c> READ y", "c< OK"]);
    let v = compare("self", &real, &test);
    assert!(v[0].diff.as_ref().is_some_and(|d| d.contains("VALUE 1") && d.contains("VALUE 2")));
    assert_eq!(v[1].diff, None);
    let missing = l(&["# s", "c> READ x", "c< VALUE 1"]);
    let v = compare("self", &real, &missing);
    assert!(v[1].diff.is_some(), "a section missing on one side");
}

#[test]
#[ignore]
fn dump_component() {
    for l in component_on_test_store(3, "xs-relay", 40) {
        println!("{l}");
    }
}

#[test]
fn known_blocks_match_whole_lines_with_wildcards() {
    use moat_xs_compare::known::{Known, glob};
    assert!(glob("c< OK [tx #*]", "c< OK [tx #12]"));
    assert!(glob("*", ""));
    assert!(!glob("c< OK", "c< OK [tx #1]"), "whole lines only");
    assert!(!glob("a*b", "a-c"));
    let k = Known {
        id: "x",
        what: "ox-ops-*",
        section: "s",
        after: "c> END*",
        real: &["c< OK [tx #*]"],
        test: &["c< ERROR EAGAIN*"],
    };
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(k.applies("ox-ops-dom0", "s") && !k.applies("ox-component", "s") && !k.applies("ox-ops-dom0", "t"));
    assert!(k.matches("c> END [tx #4]", &l(&["c< OK [tx #4]", "more"]), &l(&["c< ERROR EAGAIN [tx #4]"])));
    assert!(
        !k.matches("c> READ x", &l(&["c< OK [tx #4]", "more"]), &l(&["c< ERROR EAGAIN [tx #4]"])),
        "after another request"
    );
    assert!(!k.matches("c> END", &l(&["c< OK [tx #4]"]), &l(&["c< ERROR EINVAL"])));
    assert!(!k.matches("c> END", &l(&[]), &l(&["c< ERROR EAGAIN"])), "a block runs past the end");
}

#[test]
fn events_of_one_change_compare_in_any_order_but_not_across_replies() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let real = l(&["# s", "c> WRITE x", "c< OK", "c! EVENT x b", "c! EVENT x a", "c> READ x"]);
    let test = l(&["# s", "c> WRITE x", "c< OK", "c! EVENT x a", "c! EVENT x b", "c> READ x"]);
    assert_eq!(compare("self", &real, &test)[0].diff, None);
    let late = l(&["# s", "c> WRITE x", "c! EVENT x a", "c< OK", "c! EVENT x b", "c> READ x"]);
    assert!(compare("self", &real, &late)[0].diff.is_some(), "an event before the reply is a difference");
}
