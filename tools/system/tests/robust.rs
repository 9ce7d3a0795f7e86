//! `system.toml` is user input: no edit of a valid file, and no string at
//! all, makes checking panic; every error points inside the file. Plus the
//! limits too large to write out as test files.

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

const FIREWALL: &str = include_str!("../../../system.toml");
const ECHO: &str = include_str!("../../moat/tests/ok/echo.toml");

const ECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../moat/tests/ok");
/// Where the repository's system.toml lives (its policy paths start there).
const ROOT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn check(text: &str) -> Result<moat_system::System, moat_system::Report> {
    let dir = if text.contains("sys-firewall") { ROOT_DIR } else { ECHO_DIR };
    moat_system::check_source(text, "t.toml", Path::new(dir))
}

fn assert_sane(text: &str) {
    if let Err(r) = check(text) {
        assert!(!r.errors.is_empty());
        for d in &r.errors {
            assert!(!d.message.is_empty());
            if let Some(s) = &d.span {
                assert!(s.start <= text.len(), "span {s:?} outside a {}-byte file", text.len());
            }
        }
        // Rendering (line and column) must not panic either.
        let _ = r.to_string();
    }
}

/// Small edits: TOML punctuation, digits, names and keys that mean
/// something here, so mutants get past the parser into the cross-checks.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[\\[\\]{}=.,\"'#\n ]",
        "[0-9]{1,6}",
        "[a-z_]{1,8}",
        Just("runtime".into()),
        Just("planned = true\n".into()),
        Just("rw".into()),
        Just("tx PacketDesc".into()),
        Just("MiB".into()),
        Just("\n[[ring]]\n".into()),
    ]
}

fn mutate(base: &str, edits: &[(usize, usize, String)]) -> String {
    let mut text = base.to_string();
    for (at, del, ins) in edits {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + del).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.replace_range(at..end, ins);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn edited_systems_never_panic(
        echo in any::<bool>(),
        edits in prop::collection::vec((any::<usize>(), 0usize..12, fragment()), 1..4),
    ) {
        assert_sane(&mutate(if echo { ECHO } else { FIREWALL }, &edits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        assert_sane(&text);
    }
}

#[test]
fn bases_are_valid() {
    check(FIREWALL).unwrap();
    check(ECHO).unwrap();
}

#[test]
fn too_many_channels() {
    let mut t = String::from(
        "[system]\nname = \"t\"\nmemory = \"64MiB\"\n[component.big]\ncrate = \"c/big\"\nplanned = true\n[component.big.ports]\n",
    );
    for i in 0..65 {
        let _ = writeln!(t, "p{i} = \"rx u64\"");
    }
    for i in 0..65 {
        let _ = write!(t, "[[ring]]\nfrom = \"runtime.p{i}\"\nto = \"big.p{i}\"\nmessage = \"u64\"\ncapacity = 1\n");
    }
    let r = check(&t).unwrap_err();
    assert_eq!(
        r.to_string(),
        "t.toml:4:12: error: component `big` has 65 ring and device ports\n  \
         help: each needs a notification channel and a component has 64\n"
    );
    // 64 is fine.
    let t = t
        .replace("p64 = \"rx u64\"\n", "")
        .replace("[[ring]]\nfrom = \"runtime.p64\"\nto = \"big.p64\"\nmessage = \"u64\"\ncapacity = 1\n", "");
    check(&t).unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn too_many_pools() {
    let mut t = String::from("[system]\nname = \"t\"\nmemory = \"1GiB\"\n");
    for i in 0..65536 {
        let _ = writeln!(t, "[pool.p{i}]\nbuffer_size = 64\ncount = 1\nowner = \"runtime\"\nmap = {{}}");
    }
    let r = check(&t).unwrap_err();
    let text = r.to_string();
    assert_eq!(
        text,
        "t.toml:327679:7: error: too many pools\n  help: descriptors name pools with 16 bits: at most 65535 pools\n"
    );
}
