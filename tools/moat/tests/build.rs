//! `moat build` and `moat inspect` on real images: the report says what the
//! ELF holds (checked here independently with the `object` crate), inspect
//! repeats it, builds are reproducible, and what is not a system or not an
//! image is refused.
//!
//! Each build runs cargo for `images/pvh`: a few seconds when nothing
//! changed, a minute or two from cold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moat_runtime::layout::Manifest;
use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, SymbolKind};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn moat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat")).current_dir(root()).args(args).output().expect("run moat")
}

/// `moat build -q` of `system` into `out`; returns the report.
fn build(system: &str, out: &Path, target_dir: Option<&Path>) -> String {
    let out_s = out.display().to_string();
    let mut args = vec!["build", "-q", system, "--out", &out_s];
    let t = target_dir.map(|t| t.display().to_string());
    if let Some(t) = &t {
        args.extend(["--target-dir", t]);
    }
    let o = moat(&args);
    assert!(o.status.success(), "moat build {system} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `moat_system::Size`'s rendering, so expected lines can be written here.
fn size(n: u64) -> String {
    moat_system::Size(n).to_string()
}

#[test]
fn the_report_says_what_the_elf_holds_and_inspect_repeats_it() {
    let out = root().join("target/moat-tests/sys-firewall.pvh");
    let report = build("system.toml", &out, None);
    let data = std::fs::read(&out).unwrap();

    // The file: size, hash, segments.
    assert!(report.starts_with(&format!("image {}\n", out.display())), "{report}");
    assert!(report.contains(&format!("  sha256 {}\n", hex(&Sha256::digest(&data)))), "{report}");
    assert!(report.contains(&format!("  {} bytes, PVH entry 0x", data.len())), "{report}");
    let hdr = FileHeader64::<LE>::parse(&*data).unwrap();
    let mut loaded = 0;
    for ph in hdr.program_headers(LE, &*data).unwrap().iter().filter(|p| p.p_type(LE) == PT_LOAD) {
        let line = format!("at {:#x}: {} in memory, {} in the file\n", ph.p_paddr(LE), ph.p_memsz(LE), ph.p_filesz(LE));
        assert!(report.contains(&line), "no `{line}` in\n{report}");
        loaded += ph.p_memsz(LE).div_ceil(4096) * 4096;
    }

    // Code by kind: symbols naming each linked kind's module, the rest to
    // the runtime; together every function in the image.
    let file = object::File::parse(&*data).unwrap();
    let kinds = std::str::from_utf8(file.section_by_name(".moat.kinds").unwrap().data().unwrap()).unwrap();
    let kinds: Vec<(&str, &str)> = kinds.split(';').map(|kv| kv.split_once('=').unwrap()).collect();
    let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
    assert_eq!(
        names,
        [
            "csum",
            "nat",
            "netback",
            "netfront",
            "rules",
            "selftest-clients",
            "selftest-reflector",
            "selftest-traffic",
            "xenstore"
        ],
        "the system's kinds and the self-test's, sorted"
    );
    let module = |path: &str| format!("{}::", path.rsplit_once("::").unwrap().0);
    let modules: Vec<String> = kinds.iter().map(|(_, path)| module(path)).collect();
    let text: Vec<(String, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .map(|s| (s.name().unwrap().to_string(), s.size()))
        .collect();
    let mut code = vec![0u64; kinds.len() + 1];
    for (name, size) in &text {
        let name = format!("{:#}", rustc_demangle::demangle(name));
        let owner = (0..kinds.len()).filter(|&i| name.contains(&modules[i])).max_by_key(|&i| modules[i].len());
        code[owner.unwrap_or(kinds.len())] += size;
    }
    for (i, (kind, _)) in kinds.iter().enumerate() {
        assert!(code[i] > 100, "{kind} has code in the image");
        assert!(report.contains(&format!("  {kind:24} code {:>8}", code[i])), "{kind} code {}:\n{report}", code[i]);
    }
    assert_eq!(code.iter().sum::<u64>(), text.iter().map(|(_, s)| s).sum::<u64>(), "every function counted once");
    assert!(report.contains(&format!("  {:24} code {:>8}", "runtime", code[kinds.len()])), "{report}");
    assert!(report.contains(&format!("  csum (csum): priority 100, budget 64, code {} B", code[0])), "{report}");

    // The system: what system.toml says, as laid out into the image.
    let system = moat_system::load(&root().join("system.toml")).unwrap();
    let planned: Vec<&str> = system.components.iter().filter(|c| c.planned()).map(|c| c.name.as_str()).collect();
    if planned.is_empty() {
        assert!(!report.contains("not in this image (planned)"), "{report}");
    } else {
        assert!(report.contains(&format!("  not in this image (planned): {}\n", planned.join(", "))), "{report}");
    }
    let m_bytes = file.section_by_name(".moat.manifest").unwrap().data().unwrap();
    let m = Manifest::parse(m_bytes).unwrap();
    assert!(report.contains(&format!("regions (arena {}, each page-aligned)", size(m.arena_bytes()))));
    for r in m.regions() {
        assert!(report.contains(&format!("{:#09x} {:>9}  {:30} ", r.offset, size(r.size), r.name)), "{}", r.name);
    }
    // Rings between components in the image are served; those with a
    // planned peer (or a runtime end) are not, and say so.
    let rings = report.split("\nrings (producer -> consumer)\n").nth(1).unwrap().split("\n\n").next().unwrap();
    assert_eq!(rings.lines().count(), system.rings.len(), "{rings}");
    let runtime_ends = m.ports().filter(|(_, p)| p.component == moat_runtime::layout::RUNTIME).count();
    assert_eq!(rings.lines().filter(|l| l.ends_with("  [unserved end]")).count(), runtime_ends, "{rings}");
    assert!(rings.contains("  xenstore.to_runtime -> runtime.events  RuntimeEvent 1024 bytes  [unserved end]\n"));
    assert!(rings.contains("  netback.to_csum -> csum.from_clients  PacketDesc x 1024\n"), "{rings}");
    assert!(rings.contains("  csum.to_rules -> rules.from_csum  PacketDesc x 1024\n"), "{rings}");
    assert!(rings.contains("  xenstore.clients_to_nat -> nat.clients  ClientEvent 4096 bytes\n"), "{rings}");
    assert!(report.contains("\ncapabilities\n  xenstore: event_channels 1\n  netback: grant_copy; "), "{report}");
    assert!(report.contains("\n  csum: none\n"), "{report}");
    assert!(
        report.contains(
            "  devices: xenstore.store (XenStoreRing), netback.xen (XenBackend), netfront.xen (XenFrontend)\n"
        ),
        "{report}"
    );
    let policy = std::fs::read(root().join("policies/qubes-default.toml")).unwrap();
    let mut h = Sha256::new();
    h.update((policy.len() as u64).to_le_bytes());
    h.update(&policy);
    assert!(report.contains(&format!("  policy sha256 {}\n", hex(&h.finalize()))), "{report}");
    let ram = loaded + m.arena_bytes().div_ceil(4096) * 4096 + (2 << 20) + 7 * 4096;
    assert!(report.contains(&format!("Xen pages 28 KiB = {}\n", size(ram))), "RAM {ram}:\n{report}");

    // inspect prints the same report from the file alone.
    let o = moat(&["inspect", &out.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), report);
}

/// Two target directories mean two build workspaces (`<target>/moat/ws`),
/// the only paths through which cargo and rustc see the source tree: the
/// same check as two checkouts at different paths.
#[test]
fn builds_are_reproducible_across_target_directories() {
    let a = root().join("target/moat-tests/repro-a.pvh");
    let b = root().join("target/moat-tests/repro-b.pvh");
    let ra = build("system.toml", &a, None);
    let rb = build("system.toml", &b, Some(&root().join("target/moat-repro")));
    let (da, db) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(da == db, "two builds of the same inputs differ ({} and {} bytes)", da.len(), db.len());
    let sha = |r: &str| r.lines().find(|l| l.starts_with("  sha256 ")).unwrap().to_string();
    assert_eq!(sha(&ra), sha(&rb));
    for needle in [root().display().to_string(), std::env::var("HOME").unwrap_or("/root".into())] {
        let found = da.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "the image names the build machine's path {needle}");
    }
}

#[test]
fn a_system_of_registered_components_links_exactly_its_kinds() {
    let out = root().join("target/moat-tests/echo-line.pvh");
    let report = build("tools/moat/tests/ok/echo.toml", &out, Some(&root().join("target/moat-echo")));
    let data = std::fs::read(&out).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let kinds = std::str::from_utf8(file.section_by_name(".moat.kinds").unwrap().data().unwrap()).unwrap();
    let names: Vec<&str> = kinds.split(';').map(|kv| kv.split_once('=').unwrap().0).collect();
    assert!(kinds.contains("echo=moat_echo::Echo"), "{kinds}");
    assert!(!names.contains(&"xenstore"), "only what the system and the self-test name: {kinds}");
    assert!(report.contains("  first (echo): priority 110, budget 32, code "), "{report}");
    assert!(report.contains(", stack 8 KiB, config "), "second's stack:\n{report}");
    assert!(report.contains("  runtime.source -> first.input  PacketDesc x 256  [unserved end]"), "{report}");
    assert!(report.contains("  first.output -> second.input  PacketDesc x 256\n"), "{report}");
    assert!(!report.contains("planned"), "nothing planned:\n{report}");
    // The policy hash covers the listed file's bytes.
    let policy = std::fs::read(root().join("tools/moat/tests/ok/policy.toml")).unwrap();
    let mut h = Sha256::new();
    h.update((policy.len() as u64).to_le_bytes());
    h.update(&policy);
    assert!(report.contains(&format!("  policy sha256 {}\n", hex(&h.finalize()))), "{report}");
}

#[test]
fn a_system_that_does_not_check_is_not_built() {
    let o = moat(&["build", "tools/moat/tests/errors/unknown_port.toml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("error: component `echo` has no port"), "{err}");
    assert!(err.ends_with("moat build: 1 error in tools/moat/tests/errors/unknown_port.toml\n"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn inspect_refuses_what_is_not_a_moat_image() {
    let o = moat(&["inspect", env!("CARGO_BIN_EXE_moat")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("not a PVH image"), "{err}");
    let o = moat(&["inspect", "system.toml"]);
    assert!(String::from_utf8(o.stderr).unwrap().contains("not a 64-bit ELF"));
}
