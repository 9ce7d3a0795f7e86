//! `moat check`: one test per error message, each with its own small file
//! under `errors/` (most are `ok/base.toml` changed in one place), asserting
//! the exact text and line:column; plus the valid systems and their summary.

use std::path::Path;
use std::process::{Command, Output};

fn moat_check(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat")).current_dir(dir).arg("check").args(args).output().expect("run moat")
}

fn tests_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").leak()
}

/// Checks `errors/NAME.toml` and asserts it fails with exactly `expected`
/// (then the error count).
fn expect_error(name: &str, expected: &str) {
    let file = format!("errors/{name}.toml");
    let out = moat_check(tests_dir(), &[&file]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let n = expected.lines().filter(|l| l.starts_with("errors/")).count();
    let count = format!("moat check: {n} error{} in {file}\n", if n == 1 { "" } else { "s" });
    assert_eq!(stderr, format!("{expected}{count}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no summary for an invalid file");
}

#[test]
fn budget_range() {
    expect_error(
        "budget_range",
        r#"errors/budget_range.toml:8:10: error: budget 0 is out of range
  help: the budget is the most items taken from each input per call: 1 to 65536
"#,
    );
}

#[test]
fn capacity_not_pow2() {
    expect_error(
        "capacity_not_pow2",
        r#"errors/capacity_not_pow2.toml:20:12: error: ring capacity 100 is not a power of two
  help: use 64 or 128
"#,
    );
}

#[test]
fn capacity_too_large() {
    expect_error(
        "capacity_too_large",
        r#"errors/capacity_too_large.toml:20:12: error: ring capacity 131072 is larger than 65536
  help: capacity is a power of two from 1 to 65536 (slots)
"#,
    );
}

#[test]
fn capacity_zero() {
    expect_error(
        "capacity_zero",
        r#"errors/capacity_zero.toml:20:12: error: ring capacity 0 is too small
  help: capacity is a power of two from 1 to 65536 (slots)
"#,
    );
}

#[test]
fn config_missing_field() {
    expect_error(
        "config_missing_field",
        r#"errors/config_missing_field.toml:6:12: error: missing config field `count_bytes`
  help: the component's `config` needs `count_bytes`
"#,
    );
}

#[test]
fn config_unknown_field() {
    expect_error(
        "config_unknown_field",
        r#"errors/config_unknown_field.toml:8:33: error: unknown config field `cout_bytes`
  help: did you mean `count_bytes`? fields here: `count_bytes`
"#,
    );
}

#[test]
fn config_wrong_type() {
    expect_error(
        "config_wrong_type",
        r#"errors/config_wrong_type.toml:8:26: error: invalid type: string "yes", expected a boolean
  help: `config` is decoded as the `Config` of `echo`
"#,
    );
}

#[test]
fn connected_twice() {
    expect_error(
        "connected_twice",
        r#"errors/connected_twice.toml:42:6: error: `echo.input` is already connected at line 18
  help: a port is connected exactly once; remove one of the two
"#,
    );
}

#[test]
fn control_ring_small() {
    expect_error(
        "control_ring_small",
        r#"errors/control_ring_small.toml:51:12: error: control ring capacity 16 is too small
  help: `ClientEvent` is a control message: the ring counts bytes and holds whole postcard frames; use at least 64
"#,
    );
}

#[test]
fn crate_unregistered() {
    // The help lists whatever is registered today.
    let registered: Vec<String> =
        moat_system::registry::COMPONENTS.iter().map(|e| format!("`{}`", e.crate_path)).collect();
    expect_error(
        "crate_unregistered",
        &format!(
            "errors/crate_unregistered.toml:7:9: error: crate `components/ehco` is not a registered component\n  \
             help: registered crates: {}; if the crate does not exist yet, add `planned = true` and declare its \
             `ports`\n",
            registered.join(", ")
        ),
    );
}

#[test]
fn direction_from_rx() {
    expect_error(
        "direction_from_rx",
        r#"errors/direction_from_rx.toml:35:8: error: `echo.output_free` is an input (rx) port, but `from` needs an output (tx) port
  help: `from` names the producer's tx port and `to` the consumer's rx port; are they swapped?
"#,
    );
}

#[test]
fn direction_to_tx() {
    expect_error(
        "direction_to_tx",
        r#"errors/direction_to_tx.toml:30:6: error: `echo.output` is an output (tx) port, but `to` needs an input (rx) port
  help: `from` names the producer's tx port and `to` the consumer's rx port; are they swapped?
"#,
    );
}

#[test]
fn duplicate_table() {
    expect_error(
        "duplicate_table",
        r#"errors/duplicate_table.toml:40:12: error: duplicate key
  help: a TOML table or key may be defined only once; merge the two
"#,
    );
}

#[test]
fn memory_exceeded() {
    expect_error(
        "memory_exceeded",
        r#"errors/memory_exceeded.toml:4:10: error: the graph needs 64 KiB (rings 16 KiB, pools 32 KiB, state 0 B, stacks 16 KiB) but memory is 48 KiB
  help: raise `memory`, or shrink pools, rings, stacks or component tables
"#,
    );
}

#[test]
fn message_mismatch() {
    expect_error(
        "message_mismatch",
        r#"errors/message_mismatch.toml:18:6: error: `later.out` sends `ClientEvent` but `echo.input` receives `PacketDesc`
  help: both ends of a ring must declare the same message type
"#,
    );
}

#[test]
fn missing_field() {
    expect_error(
        "missing_field",
        r#"errors/missing_field.toml:16:1: error: missing key `message`
  help: add `message` to this table (docs/system-toml.md lists every key)
"#,
    );
}

#[test]
fn missing_system() {
    expect_error(
        "missing_system",
        r#"errors/missing_system.toml:1:1: error: missing key `system`
  help: add a [system] table with `name` and `memory`
"#,
    );
}

#[test]
fn name_duplicate() {
    expect_error(
        "name_duplicate",
        r#"errors/name_duplicate.toml:40:7: error: `echo` names both a component and a pool
  help: components and pools share one namespace; rename one of them
"#,
    );
}

#[test]
fn name_invalid() {
    expect_error(
        "name_invalid",
        r#"errors/name_invalid.toml:6:12: error: invalid component name `Echo`
  help: names are lowercase letters, digits and `_`, starting with a letter
"#,
    );
}

#[test]
fn name_reserved() {
    expect_error(
        "name_reserved",
        r#"errors/name_reserved.toml:40:7: error: `runtime` cannot name a pool
  help: it is reserved for the image's runtime in ring ends and pool owners; choose another name
"#,
    );
}

#[test]
fn planned_registered() {
    expect_error(
        "planned_registered",
        r#"errors/planned_registered.toml:8:11: error: component `echo` is marked planned, but its crate `components/echo` is registered
  help: remove `planned` and `ports`: the crate declares its own ports
"#,
    );
}

#[test]
fn planned_without_ports() {
    expect_error(
        "planned_without_ports",
        r#"errors/planned_without_ports.toml:40:12: error: planned component `later` declares no `ports`
  help: add `[component.NAME.ports]` with a line per port, e.g. `input = "rx PacketDesc"`
"#,
    );
}

#[test]
fn policy_missing() {
    expect_error(
        "policy_missing",
        r#"errors/policy_missing.toml:5:11: error: policy file "policies/missing.toml" not found
  help: policy paths are relative to the directory that holds this file
"#,
    );
}

#[test]
fn policy_broken() {
    expect_error(
        "policy_broken",
        r#"errors/policy_broken.toml:5:11: error: the policy does not compile:
    errors/policies/broken.toml:3:35: [defaults], rule 0: field `dstports`: low port above high port
  help: fix the policy files; `docs/policies.md` describes the format
"#,
    );
}

#[test]
fn policy_none() {
    expect_error(
        "policy_none",
        r#"errors/policy_none.toml:2:1: error: the rules component has no policy
  help: list policy files in `[system] policy`, e.g. ["policies/qubes-default.toml"]
"#,
    );
}

#[test]
fn pool_access_invalid() {
    expect_error(
        "pool_access_invalid",
        r#"errors/pool_access_invalid.toml:14:16: error: pool access must be "r" or "rw", not "w"
  help: "r" maps the buffers read-only, "rw" read-write
"#,
    );
}

#[test]
fn pool_buffer_size() {
    expect_error(
        "pool_buffer_size",
        r#"errors/pool_buffer_size.toml:11:15: error: buffer size 3 KiB is not a power of two from 64 B to 64 KiB
  help: 2KiB holds a 1500-byte packet and its headroom
"#,
    );
}

#[test]
fn pool_count() {
    expect_error(
        "pool_count",
        r#"errors/pool_count.toml:12:9: error: pool count 5000 is out of range
  help: a pool holds 1 to 4096 buffers
"#,
    );
}

#[test]
fn pool_mapped_twice() {
    expect_error(
        "pool_mapped_twice",
        r#"errors/pool_mapped_twice.toml:44:9: error: `echo.pool` is already mapped at line 14
  help: a port is mapped exactly once; remove one of the two
"#,
    );
}

#[test]
fn pool_no_such_port() {
    expect_error(
        "pool_no_such_port",
        r#"errors/pool_no_such_port.toml:14:9: error: component `echo` has no pool port `buffers`
  help: its pool ports: `pool`; to map pool `buffers` to one of them, write `"echo.PORT" = "r"`
"#,
    );
}

#[test]
fn pool_owner_not_mapping() {
    expect_error(
        "pool_owner_not_mapping",
        r#"errors/pool_owner_not_mapping.toml:13:9: error: owner `later` does not map pool `pool`
  help: the owner fills the buffers: add `later = "rw"` to `map`
"#,
    );
}

#[test]
fn pool_owner_readonly() {
    expect_error(
        "pool_owner_readonly",
        r#"errors/pool_owner_readonly.toml:13:9: error: owner `echo` maps pool `pool` read-only
  help: the owner fills the buffers: map it "rw"
"#,
    );
}

#[test]
fn pool_owner_unknown() {
    expect_error(
        "pool_owner_unknown",
        r#"errors/pool_owner_unknown.toml:13:9: error: no component `ecoh`
  help: did you mean `echo`? components: `echo`
"#,
    );
}

#[test]
fn pool_r_writable_port() {
    expect_error(
        "pool_r_writable_port",
        r#"errors/pool_r_writable_port.toml:14:39: error: `later.buffers` is mapped "r", but `later` writes it
  help: map it "rw": the component declares this pool port writable
"#,
    );
}

#[test]
fn pool_runtime_in_map() {
    expect_error(
        "pool_runtime_in_map",
        r#"errors/pool_runtime_in_map.toml:14:21: error: `runtime` needs no pool mapping
  help: the runtime lays out every pool; remove it from `map`
"#,
    );
}

#[test]
fn pool_rw_readonly_port() {
    expect_error(
        "pool_rw_readonly_port",
        r#"errors/pool_rw_readonly_port.toml:14:16: error: `echo.pool` is mapped "rw", but `echo` only reads it
  help: map it "r": the component declares this pool port read-only
"#,
    );
}

#[test]
fn pool_unknown_component() {
    expect_error(
        "pool_unknown_component",
        r#"errors/pool_unknown_component.toml:14:21: error: no component `ecoh`
  help: did you mean `echo`? components: `echo`
"#,
    );
}

#[test]
fn pool_unmapped() {
    expect_error(
        "pool_unmapped",
        r#"errors/pool_unmapped.toml:6:12: error: pool port `echo.pool` (r) is not mapped
  help: add `"echo.pool" = "r"` to the `map` of a [pool.NAME]
"#,
    );
}

#[test]
fn port_decl_invalid() {
    expect_error(
        "port_decl_invalid",
        r#"errors/port_decl_invalid.toml:45:9: error: invalid port declaration "recv PacketDesc"
  help: write "rx MESSAGE", "tx MESSAGE", "pool r", "pool rw", "state", "state SIZE" or "device TYPE"
"#,
    );
}

#[test]
fn port_name_invalid() {
    expect_error(
        "port_name_invalid",
        r#"errors/port_name_invalid.toml:45:1: error: invalid port name `In`
  help: names are lowercase letters, digits and `_`, starting with a letter
"#,
    );
}

#[test]
fn ports_not_planned() {
    expect_error(
        "ports_not_planned",
        r#"errors/ports_not_planned.toml:40:1: error: `ports` given for component `echo`, whose crate declares its own
  help: remove `ports`: they come from the crate's `Ports::DECL`
"#,
    );
}

#[test]
fn ring_end_malformed() {
    expect_error(
        "ring_end_malformed",
        r#"errors/ring_end_malformed.toml:18:6: error: ring end "echo" is not COMPONENT.PORT
  help: write e.g. `to = "echo.input"`
"#,
    );
}

#[test]
fn ring_end_not_ring_port() {
    expect_error(
        "ring_end_not_ring_port",
        r#"errors/ring_end_not_ring_port.toml:30:6: error: `echo.pool` is a pool port, not a ring port
  help: pools are wired by the `map` of a [pool.NAME]
"#,
    );
}

#[test]
fn ring_message_wrong() {
    expect_error(
        "ring_message_wrong",
        r#"errors/ring_message_wrong.toml:19:11: error: ring says message `PacketDsc`, but its ends carry `PacketDesc`
  help: write `message = "PacketDesc"`
"#,
    );
}

#[test]
fn runtime_both_ends() {
    expect_error(
        "runtime_both_ends",
        r#"errors/runtime_both_ends.toml:41:8: error: a ring needs a component at one end at least
  help: the runtime can feed or drain a component, not itself
"#,
    );
}

#[test]
fn runtime_connected_twice() {
    expect_error(
        "runtime_connected_twice",
        r#"errors/runtime_connected_twice.toml:35:8: error: `runtime.in` is already connected at line 17
  help: a port is connected exactly once; give each runtime end its own name
"#,
    );
}

#[test]
fn runtime_name_invalid() {
    expect_error(
        "runtime_name_invalid",
        r#"errors/runtime_name_invalid.toml:17:8: error: invalid runtime port name `In`
  help: names are lowercase letters, digits and `_`, starting with a letter
"#,
    );
}

#[test]
fn size_decimal_unit() {
    expect_error(
        "size_decimal_unit",
        r#"errors/size_decimal_unit.toml:4:10: error: size "16MB" is ambiguous: "MB" could mean powers of 1000 or of 1024
  help: moat sizes use binary units: write "16MiB"
"#,
    );
}

#[test]
fn size_invalid() {
    expect_error(
        "size_invalid",
        r#"errors/size_invalid.toml:11:15: error: invalid size "lots"
  help: write a number of bytes (4096) or a number with KiB, MiB or GiB ("16MiB")
"#,
    );
}

#[test]
fn stack_size() {
    expect_error(
        "stack_size",
        r#"errors/stack_size.toml:8:9: error: stack size 4.9 KiB is not a whole number of 4 KiB pages from 4 KiB to 1 MiB
  help: write e.g. "16KiB"
"#,
    );
}

#[test]
fn system_name_invalid() {
    expect_error(
        "system_name_invalid",
        r#"errors/system_name_invalid.toml:3:8: error: invalid system name "my firewall"
  help: it becomes the Qubes VM name: at most 31 letters, digits, `-` and `_`, starting with a letter
"#,
    );
}

#[test]
fn toml_syntax() {
    expect_error(
        "toml_syntax",
        r#"errors/toml_syntax.toml:10:11: error: unclosed table, expected `]`
"#,
    );
}

#[test]
fn unconnected() {
    expect_error(
        "unconnected",
        r#"errors/unconnected.toml:6:12: error: port `echo.output_free` (rx PacketDesc) is not connected
  help: add a [[ring]] with `to = "echo.output_free"`
"#,
    );
}

#[test]
fn unknown_component() {
    expect_error(
        "unknown_component",
        r#"errors/unknown_component.toml:18:6: error: no component `ecoh`
  help: did you mean `echo`? components: `echo`
"#,
    );
}

#[test]
fn unknown_key_caps() {
    expect_error(
        "unknown_key_caps",
        r#"errors/unknown_key_caps.toml:41:1: error: unknown key `grant_cpy`
  help: did you mean `grant_copy`? keys here: `xenstore_read`, `xenstore_write`, `grant_copy`, `grant_access`, `event_channels`
"#,
    );
}

#[test]
fn unknown_key_component() {
    expect_error(
        "unknown_key_component",
        r#"errors/unknown_key_component.toml:8:1: error: unknown key `prioritty`
  help: did you mean `priority`? keys here: `crate`, `planned`, `ports`, `priority`, `budget`, `stack`, `config`, `caps`
"#,
    );
}

#[test]
fn unknown_key_pool() {
    expect_error(
        "unknown_key_pool",
        r#"errors/unknown_key_pool.toml:13:1: error: unknown key `owners`
  help: did you mean `owner`? keys here: `buffer_size`, `count`, `owner`, `map`
"#,
    );
}

#[test]
fn unknown_key_ring() {
    expect_error(
        "unknown_key_ring",
        r#"errors/unknown_key_ring.toml:20:1: error: unknown key `capactiy`
  help: did you mean `capacity`? keys here: `from`, `to`, `message`, `capacity`
"#,
    );
}

#[test]
fn unknown_key_system() {
    expect_error(
        "unknown_key_system",
        r#"errors/unknown_key_system.toml:5:1: error: unknown key `nmae`
  help: did you mean `name`? keys here: `name`, `memory`, `policy`
"#,
    );
}

#[test]
fn unknown_port() {
    expect_error(
        "unknown_port",
        r#"errors/unknown_port.toml:18:6: error: component `echo` has no port `inptu`
  help: did you mean `input`? its ring ports: `input`, `input_free`, `output`, `output_free`
"#,
    );
}

#[test]
fn wrong_type() {
    expect_error(
        "wrong_type",
        r#"errors/wrong_type.toml:8:12: error: invalid type: string "high", expected u8
  help: docs/system-toml.md gives each key's type and range
"#,
    );
}

#[test]
fn xenstore_path_invalid() {
    expect_error(
        "xenstore_path_invalid",
        r#"errors/xenstore_path_invalid.toml:41:18: error: invalid XenStore path prefix "backend//vif"
  help: XenStore paths use letters, digits and `-/_@`, with no empty segment (`//`), at most 3072 bytes; a lone `*` component matches any one component
"#,
    );
}

// --- valid systems ---------------------------------------------------------

#[test]
fn base_is_valid() {
    let out = moat_check(tests_dir(), &["ok/base.toml"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(out.status.success());
}

/// The echo line: every kind of wiring (component and runtime ring ends,
/// renamed pool ports, defaults and explicit fields), summarised exactly.
#[test]
fn echo_summary() {
    let out = moat_check(tests_dir(), &["ok/echo.toml"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), include_str!("ok/echo.summary"));
}

/// The repository's own `system.toml` (the firewall graph of
/// docs/graph.md), found by default in the current directory.
#[test]
fn repository_system_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = moat_check(&root, &[]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("system.toml: ok: system `sys-firewall`, 6 components, 2 pools, 25 rings\n"),
        "{stdout}"
    );
}

#[test]
fn unreadable_file() {
    let out = moat_check(tests_dir(), &["errors/no-such-file.toml"]);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "errors/no-such-file.toml: error: cannot read: No such file or directory (os error 2)\n\
         moat check: 1 error in errors/no-such-file.toml\n"
    );
    assert_eq!(out.status.code(), Some(1));
}
