//! The transcripts the real oxenstored (Xen 4.17, the testbed's dom0) gave
//! in a passing run of `test_xenstore_matches_oxenstored`, kept in
//! `recorded/` (ops-domain as domain 3 `xs-relay-ops-domain`, component as
//! domain 2 `xs-relay-component`), compared with fresh test-store runs on
//! the host: a change to the test store or the script that would make the
//! real-Xen comparison fail fails here first, without Xen. When the script
//! changes on purpose, record again (the real-Xen test leaves
//! `tests/results/xenstore-compare/xs-ox-*-real.txt`).

use moat_xs_compare::{Client, Daemon, compare, component_on_test_store, ops_on_test_store, ops_on_test_store_like};

fn recorded(name: &str) -> Vec<String> {
    recorded_from("ox", name)
}

fn recorded_from(daemon: &str, name: &str) -> Vec<String> {
    let path = format!("{}/recorded/{daemon}-4.17-{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).lines().map(str::to_string).collect()
}

fn assert_matches(what: &str, real: &[String], test: &[String]) {
    let verdicts = compare(what, real, test);
    let bad: Vec<String> =
        verdicts.iter().filter_map(|v| v.diff.as_ref().map(|d| format!("{}: {d}", v.section))).collect();
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
    assert!(verdicts.len() >= 10, "{what}: the whole run was compared ({} sections)", verdicts.len());
}

#[test]
fn the_script_as_dom0_matches_the_recorded_oxenstored() {
    assert_matches("ox-ops-dom0", &recorded("ops-dom0"), &ops_on_test_store(&Client::Dom0, true));
}

#[test]
fn the_script_as_a_domain_matches_the_recorded_oxenstored() {
    let client = Client::Domain { domid: 3, name: "xs-relay-ops-domain".into() };
    assert_matches("ox-ops-domain", &recorded("ops-domain"), &ops_on_test_store(&client, false));
}

#[test]
fn the_component_matches_its_run_on_the_recorded_oxenstored() {
    assert_matches("ox-component", &recorded("component"), &component_on_test_store(2, "xs-relay-component", 40));
}

/// cxenstored (what Qubes runs), from its one recorded run: the script's
/// sections match up to the `cx-*` and `*-ops-*` known differences, with
/// the test store in cxenstored's event order. (Its component section
/// cannot be compared yet: cxenstored refuses permissions naming the
/// made-up frontend domains, see `moat-test-xenstored`'s docs.)
#[test]
fn the_script_as_dom0_matches_the_recorded_cxenstored() {
    assert_matches(
        "cx-ops-dom0",
        &recorded_from("cx", "ops-dom0"),
        &ops_on_test_store_like(Daemon::Cx, &Client::Dom0, true),
    );
}

#[test]
fn the_script_as_a_domain_matches_the_recorded_cxenstored() {
    let client = Client::Domain { domid: 3, name: "xs-relay-ops-domain".into() };
    assert_matches(
        "cx-ops-domain",
        &recorded_from("cx", "ops-domain"),
        &ops_on_test_store_like(Daemon::Cx, &client, false),
    );
}

#[test]
fn the_recorded_runs_still_show_every_known_difference() {
    // Each known difference was met in the recorded runs: an entry that no
    // longer matches anything should go (or the recording is stale).
    let mut met = Vec::new();
    let client = Client::Domain { domid: 3, name: "xs-relay-ops-domain".into() };
    for (what, real, test) in [
        ("ox-ops-dom0", recorded("ops-dom0"), ops_on_test_store(&Client::Dom0, true)),
        ("ox-ops-domain", recorded("ops-domain"), ops_on_test_store(&client, false)),
        ("cx-ops-dom0", recorded_from("cx", "ops-dom0"), ops_on_test_store_like(Daemon::Cx, &Client::Dom0, true)),
        ("cx-ops-domain", recorded_from("cx", "ops-domain"), ops_on_test_store_like(Daemon::Cx, &client, false)),
    ] {
        for v in compare(what, &real, &test) {
            met.extend(v.known);
        }
    }
    let unmet: Vec<&str> = moat_xs_compare::known::KNOWN.iter().map(|k| k.id).filter(|id| !met.contains(id)).collect();
    assert!(unmet.is_empty(), "known differences not met: {unmet:?}");
}
