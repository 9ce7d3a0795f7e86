//! Scenarios on real Xen 4.17 under QEMU (see `tests/xen/README.md`).
//!
//! Each test boots Xen and a Debian dom0 once and asserts the marker lines
//! the scenario printed; the logs stay in `tests/results/<scenario>/`.
//! nextest runs these one at a time (`.config/nextest.toml`, group
//! `real-xen`): each QEMU needs ~2 GB and a core.

use moat_testbed::run_scenario;
use std::path::PathBuf;

/// The small Linux PVH guest: proves the machinery (Xen, dom0, xl,
/// oxenstored, xenconsoled, shutdown and destroy) with a guest whose
/// behaviour is known, so a failure of moat's scenario is moat's.
#[test]
fn linux_guest_on_real_xen() {
    let run = run_scenario("linux-guest", "linux-guest", &[]);
    run.assert_checks(&[
        "linux-guest-create",
        "linux-guest-ready",
        "linux-guest-xenstore-name",
        "dom0-bridge",
        "linux-guest-ping-dom0",
        "linux-guest-vif-connected",
        "dom0-ping-linux-guest",
        "linux-guest-shutdown",
        "linux-guest-saw-shutdown",
        "linux-guest-shutdown-leaves-nothing",
        "linux-destroy-destroy",
        "linux-destroy-leaves-nothing",
    ]);
    let ms = run.time_ms("linux-guest-create-to-ready");
    assert!(ms.is_some_and(|ms| ms > 0), "no create-to-ready time");
}

/// moat's PVH image: `MOAT_PVH_IMAGE`, or built from `images/pvh` the way
/// its README says.
fn moat_image() -> PathBuf {
    let image = match std::env::var_os("MOAT_PVH_IMAGE") {
        Some(p) => PathBuf::from(p),
        None => moat_pvh_test::build_image(),
    };
    assert!(image.is_file(), "no image at {}", image.display());
    image
}

/// moat's image runs its self-test system on real Xen: Xen found, console
/// and XenStore rings, an event channel looped back, a grant copy, the
/// self-test's traffic, and the domain gone after its own shutdown. The
/// scenario is the image's (`images/pvh-test/xen/pvh-selftest.sh`).
#[test]
fn moat_selftest_on_real_xen() {
    let image = moat_image();
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../images/pvh-test/xen/pvh-selftest.sh");
    let run = run_scenario("pvh-selftest", scenario.to_str().expect("utf-8 path"), &[("moat.pvh", &image)]);
    run.assert_checks(&[
        "moat-create",
        "moat-selftest-done",
        "moat-on-xen",
        "moat-console-ring",
        "moat-xenstore-ring",
        "moat-evtchn-loopback",
        "moat-grant-copy",
        "moat-selftest-pass",
        "moat-shutdown",
    ]);
}

/// moat's image (the default `system.toml`) against the contract of issue 9
/// (`tests/xen/README.md`).
#[test]
fn moat_on_real_xen() {
    let image = moat_image();
    let run = run_scenario("moat-on-xen", "moat-on-xen", &[("moat.pvh", &image)]);
    run.assert_checks(MOAT_CHECKS);
}

/// The checks of moat's scenario, every one required.
const MOAT_CHECKS: &[&str] = &[
    "moat-create",
    "moat-ready",
    "moat-xen-detected",
    "moat-hypercall-page",
    "moat-shared-info",
    "moat-evtchn",
    "moat-gnttab",
    "moat-xenstore-identity",
    "moat-status-key",
    "moat-watch-event",
    "moat-xl-shutdown",
    "moat-saw-shutdown",
    "moat-shutdown-leaves-nothing",
    "moat-destroy-create",
    "moat-destroy-ready",
    "moat-destroy",
    "moat-destroy-leaves-nothing",
];

/// The scenario itself, with `tiny-pvh` (a small C guest that implements the
/// contract, `tests/xen/tiny-pvh`): proves that the checks can pass on real
/// Xen and that the toolstack side (paths, permissions, watches, `xl
/// shutdown` of a PVH guest) is what the contract says, so that a failure
/// with moat's image is moat's. Now that moat's own image passes the same
/// scenario (`moat_on_real_xen`), this is for when that test fails: it
/// tells a broken scenario or testbed from a broken moat, at the cost of
/// another Xen boot, so the suite leaves it out.
#[test]
#[ignore = "diagnostic for moat_on_real_xen failures; run with --run-ignored all"]
fn moat_scenario_passes_with_the_reference_guest() {
    let image = build_tiny_pvh("tiny-pvh", &[]);
    let run = run_scenario("moat-on-xen-tiny", "moat-on-xen", &[("moat.pvh", &image)]);
    run.assert_checks(MOAT_CHECKS);
}

/// The crash report dom0 writes for every domain a scenario leaves crashed
/// (`scripts/crash-report`: registers, code at rip, stack, IDT), checked on
/// a guest that triple-faults on purpose with a known stack
/// (`tiny-pvh/crash.S`): what the next emulator triple fault in a
/// scenario will be read from.
#[test]
fn crash_report_on_real_xen() {
    let image = build_tiny_pvh("crash-pvh", &["crash"]);
    let run = run_scenario("crash-report", "crash-report", &[("crash-pvh", &image)]);
    run.assert_checks(&[
        "crashy-create",
        "crashy-triple-fault",
        "crashy-preserved",
        "crash-report-registers",
        "crash-report-code",
        "crash-report-stack",
        "crash-report-idt",
    ]);
    // dom0's own report on the guest the scenario left crashed
    let report = std::fs::read_to_string(run.dir.join("crash-crashy.txt")).unwrap_or_default();
    assert!(
        report.lines().any(|l| l.starts_with("code at rip-16: ") && l.contains(" 0f 0b")),
        "dom0's crash report has no ud2 at rip:\n{report}"
    );
}

/// Builds `tiny-pvh/build OUT ARGS` to `OUT` in the test's scratch
/// directory and returns its path.
fn build_tiny_pvh(name: &str, args: &[&str]) -> PathBuf {
    let image = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let built = std::process::Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tiny-pvh/build"))
        .arg(&image)
        .args(args)
        .status()
        .expect("cannot run tiny-pvh/build");
    assert!(built.success(), "tiny-pvh/build {name} failed");
    image
}

/// Builds a workspace binary with cargo (a no-op when it is up to date) and
/// returns its path, from cargo's own account of what it built.
fn cargo_bin(package: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["build", "--quiet", "--message-format=json", "-p", package, "--bin", package])
        .output()
        .expect("cannot run cargo");
    assert!(out.status.success(), "cargo build -p {package} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == package)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    exe.unwrap_or_else(|| panic!("cargo built no executable for {package}"))
}

/// The test XenStore against the real oxenstored (issues 6 and 9): the same
/// script of operations, as dom0 over the daemon's socket and as an
/// unprivileged domain through a relay guest's ring, and the real xenstore
/// component as that domain, compared line by line with runs against
/// `moat-test-xenstored` (`tests/xs-compare`). Every section must match, up
/// to the differences documented in the test store's crate docs.
#[test]
fn test_xenstore_matches_oxenstored() {
    let bin = cargo_bin("moat-xs-compare");
    let relay = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xs-relay");
    let built = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../xs-compare/relay/build"))
        .arg(&relay)
        .status()
        .expect("cannot run xs-compare/relay/build");
    assert!(built.success(), "the relay guest did not build");
    let run = run_scenario("xenstore-compare", "xenstore-compare", &[("moat-xs-compare", &bin), ("xs-relay", &relay)]);
    run.assert_checks(XS_CHECKS);
}

/// One check per section of each comparison (the program prints them).
const XS_CHECKS: &[&str] = &[
    "xs-compare-inputs",
    "xs-ox-ops-dom0-identity",
    "xs-ox-ops-dom0-tree",
    "xs-ox-ops-dom0-watches",
    "xs-ox-ops-dom0-special-watches",
    "xs-ox-ops-dom0-transactions-conflict",
    "xs-ox-ops-dom0-transactions-isolation-and-commit",
    "xs-ox-ops-dom0-limits-watches",
    "xs-ox-component-relay-up",
    "xs-ox-component-start",
    "xs-ox-component-a-client-vif-appears",
    "xs-ox-component-netback-s-requests-through-the-component",
    "xs-ox-component-the-uplink",
    "xs-ox-component-a-shutdown-request",
    "xs-ox-ops-domain-relay-up",
    "xs-ox-ops-domain-identity",
    "xs-ox-ops-domain-perms",
    "xs-ox-ops-domain-watches-events-need-read-permission",
    "xs-ox-ops-domain-watches",
    "xs-ox-ops-domain-transactions-conflict",
    "xs-ox-ops-domain-risky-unknown-types",
];
/// Two Linux clients through moat on real Xen (issue 10, `moat-clients`):
/// moat's netback serves both clients' vifs, its netfront is a frontend of
/// dom0's Linux netback (dom0 plays sys-net), and the packets go through
/// csum, rules and nat. The image is the default system with the testbed's
/// client rules layered on (`systems/testbed-policy.toml`). The whole
/// scenario as issue 10 asks for it: a 100 MB download, 50 detach/attach
/// cycles.
#[test]
#[ignore = "5-20 min of QEMU; the suite runs moat_clients_quick_on_real_xen, the same scenario smaller (tests/xen/README.md); run with --run-ignored all"]
fn moat_clients_on_real_xen() {
    moat_clients("moat-clients", 50, 100);
}

/// The same scenario with a 16 MB download and 5 detach/attach cycles, so
/// the suite sends real clients' traffic through moat on real Xen on every
/// run: every check of the whole one, at a few minutes of QEMU.
#[test]
fn moat_clients_quick_on_real_xen() {
    moat_clients("moat-clients-quick", 5, 16);
}

fn moat_clients(results: &str, cycles: u32, big_mb: u32) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(results);
    let system = moat_testbed::system_with_policies(&dir, &["tests/xen/systems/testbed-policy.toml"]);
    let image = moat_pvh_test::build_image_from(&system, &dir.join("moat.pvh"));
    let dns = moat_testbed::build_tiny_dns(&dir.join("tiny-dns"));
    let (cycles_file, big_file) = (dir.join("cycles"), dir.join("big_mb"));
    std::fs::write(&cycles_file, cycles.to_string()).unwrap();
    std::fs::write(&big_file, big_mb.to_string()).unwrap();
    let run = moat_testbed::run_scenario_within(
        results,
        "moat-clients",
        &[("moat.pvh", &image), ("tiny-dns", &dns), ("cycles", &cycles_file), ("big_mb", &big_file)],
        Some(1500),
    );
    let cycles_check = format!("vif-detach-attach-{cycles}-cycles");
    run.assert_checks(&[
        "sys-net-ready",
        "moat-create",
        "moat-started",
        "moat-uplink-connected",
        "client-a-create",
        "client-a-ready",
        "client-b-create",
        "client-b-ready",
        "client-a-vif-connected",
        "client-b-vif-connected",
        "client-a-ping",
        "client-a-dns",
        "client-a-http",
        "client-a-big",
        "client-a-reject",
        "client-a-spoof",
        "client-b-ping",
        "moat-counted-the-spoof",
        "moat-counted-the-reject",
        "client-b-flooding",
        "client-a-fetch-under-flood",
        "client-b-flood-done",
        &cycles_check,
        "moat-channels-after-cycles",
        "moat-maps-after-cycles",
        "moat-watches-after-cycles",
        "moat-connects-counted",
        "moat-buffers-home",
        "moat-ops-refused-none",
        "moat-ops-fenced-none",
        "clients-shutdown",
        "moat-xl-shutdown",
    ]);
}
