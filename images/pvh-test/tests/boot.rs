//! The PVH image `moat build` makes from the repository's `system.toml`
//! boots under QEMU (`-kernel`, PVH entry), runs its self-test through the
//! real components (client packets out through csum, rules and nat, answered
//! at the uplink, back through csum and nat), prints the components' defmt
//! logs, and exits through isa-debug-exit; its exception handlers and
//! page permissions report deliberate faults.

use std::time::Duration;

use moat_pvh_test::{boot, build_image, counter, status};

include!("../../pvh/selftest_plan.rs");

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn selftest_passes_under_qemu() {
    let image = build_image();
    let b = boot(&image, "", TIMEOUT);
    let out = &b.output;
    assert_eq!(b.status, Some(status::SUCCESS), "image did not exit with success:\n{out}");
    assert!(out.contains("moat: PVH boot, start_info v1"), "{out}");
    assert!(out.contains("moat: not on Xen: self-test mode"), "{out}");
    assert!(out.contains("NX on"), "{out}");
    assert!(out.contains("moat: selftest PASS"), "{out}");
    let n = u64::from(SELFTEST_PACKETS);
    for key in ["sent", "received", "reclaimed"] {
        assert_eq!(counter(out, "client", key), Some(n), "client {key}:\n{out}");
    }
    for key in ["failed", "bad.content", "bad.order", "bad.descriptor", "bad.return"] {
        assert_eq!(counter(out, "client", key), Some(0), "client {key}:\n{out}");
    }
    assert!(out.contains(&format!("moat: selftest: client: {n} packets sent, {n} received")), "{out}");
    // Out through csum, rules and nat; answered; back through csum and nat.
    assert_eq!(counter(out, "uplink", "reflected"), Some(n), "every packet reached the uplink translated:\n{out}");
    assert_eq!(counter(out, "uplink", "bad.source"), Some(0), "untranslated packets at the uplink:\n{out}");
    for side in ["clients", "uplink"] {
        assert_eq!(counter(out, "csum", &format!("{side}.pass.verified")), Some(n), "csum {side}:\n{out}");
        assert_eq!(counter(out, "csum", &format!("{side}.held")), Some(0), "csum kept buffers:\n{out}");
    }
    assert_eq!(counter(out, "rules", "verdict.accept"), Some(n), "rules:\n{out}");
    assert_eq!(counter(out, "rules", "held"), Some(0), "rules kept buffers:\n{out}");
    assert_eq!(counter(out, "nat", "conn.created"), Some(n), "nat:\n{out}");
    assert_eq!(counter(out, "nat", "held.client_buffers"), Some(0), "nat kept buffers:\n{out}");
    assert_eq!(counter(out, "nat", "held.uplink_buffers"), Some(0), "nat kept buffers:\n{out}");
}

#[test]
fn component_logs_reach_the_console_and_decode_with_the_image_table() {
    let image = build_image();
    let b = boot(&image, "", TIMEOUT);
    assert_eq!(b.status, Some(status::SUCCESS), "{}", b.output);
    let decoder = moat::log::Decoder::new(&std::fs::read(&image).unwrap()).unwrap();
    let logs: Vec<String> = b.output.lines().filter_map(|l| decoder.line(l)).collect();
    let n = SELFTEST_PACKETS;
    for want in [
        format!("INFO  client: traffic: sending {n} packets of 64 payload bytes"),
        format!("INFO  client: traffic: all {n} packets through, every buffer home"),
        "INFO  uplink: reflector: answering packets from [10, 138, 0, 2]".to_string(),
        "INFO  clients: clients: client 0 is [10, 137, 0, 5]".to_string(),
    ] {
        assert!(logs.iter().any(|l| l.ends_with(&want)), "no `{want}` in {logs:#?}\n{}", b.output);
    }
    assert!(logs.iter().all(|l| l.starts_with('[')), "every frame decodes with a timestamp: {logs:#?}");
    assert!(b.output.contains("log frames (0 dropped)"), "{}", b.output);
}

#[test]
fn the_command_line_reaches_the_image() {
    let image = build_image();
    let b = boot(&image, "selftest quiet=1", TIMEOUT);
    assert!(b.output.contains("cmdline 'selftest quiet=1'"), "{}", b.output);
    assert_eq!(b.status, Some(status::SUCCESS), "{}", b.output);
}

/// Boots with `fault=KIND` and returns what the image printed after it
/// started faulting.
fn fault(kind: &str, want: i32) -> String {
    let image = build_image();
    let b = boot(&image, &format!("fault={kind}"), TIMEOUT);
    assert_eq!(b.status, Some(want), "fault={kind}:\n{}", b.output);
    let at = b.output.find("faulting on purpose").unwrap_or_else(|| panic!("no fault marker:\n{}", b.output));
    assert!(!b.output.contains("selftest PASS"), "the image went on after fault={kind}");
    b.output[at..].to_string()
}

#[test]
fn invalid_opcode_is_reported() {
    let out = fault("ud", status::TRAP);
    assert!(out.contains("EXCEPTION invalid opcode (vector 6)"), "{out}");
    assert!(out.contains("rip=0x0000000000"), "{out}");
}

#[test]
fn page_faults_report_address_and_cause() {
    let out = fault("pf", status::TRAP);
    assert!(out.contains("EXCEPTION page fault (vector 14)"), "{out}");
    assert!(out.contains("cr2=0x0000004000000000 (not-present read data)"), "{out}");
    let out = fault("null", status::TRAP);
    assert!(out.contains("cr2=0x0000000000000000 (not-present read data)"), "page zero is unmapped:\n{out}");
}

#[test]
fn code_is_not_writable_and_data_not_executable() {
    let out = fault("write-code", status::TRAP);
    assert!(out.contains("error=0x3") && out.contains("(protection write data)"), "{out}");
    let out = fault("exec-data", status::TRAP);
    assert!(out.contains("error=0x11") && out.contains("(protection read fetch)"), "{out}");
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported() {
    let out = fault("stack", status::TRAP);
    assert!(out.contains("EXCEPTION double fault (vector 8)"), "{out}");
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let out = fault("panic", status::PANIC);
    assert!(out.contains("moat: PANIC: panicked at") && out.contains("on purpose"), "{out}");
}
