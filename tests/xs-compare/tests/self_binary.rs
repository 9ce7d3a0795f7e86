//! `moat-xs-compare self`: the program the testbed runs in dom0, run on the
//! host with the test store on both sides. Every section of the script must
//! be compared and match, and the transcript must be written where asked,
//! so the program itself (argument parsing, checks, transcripts) is tested
//! without Xen.

use std::process::Command;

#[test]
fn self_mode_prints_one_passing_check_per_section_and_writes_the_transcript() {
    let out_dir = std::env::temp_dir().join(format!("xs-compare-self-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_moat-xs-compare"))
        .args(["self", "--out"])
        .arg(&out_dir)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let checks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("TESTBED-CHECK ")).collect();
    assert!(checks.iter().all(|l| l.starts_with("TESTBED-CHECK ok xs-ox-self-")), "{stdout}");
    for section in
        ["identity", "tree", "perms", "watches", "special-watches", "transactions-conflict", "limits-watches"]
    {
        let want = format!("TESTBED-CHECK ok xs-ox-self-{section}");
        assert!(checks.contains(&want.as_str()), "no {want} in\n{stdout}");
    }
    assert!(checks.len() >= 20, "every section compared: {}", checks.len());
    let real = std::fs::read_to_string(out_dir.join("xs-ox-self-real.txt")).expect("the transcript");
    assert!(real.lines().count() > 300, "the whole script is in the transcript");
    assert!(real.contains("# special watches") && real.contains("c! EVENT @introduceDomain intro"), "{real}");
    assert!(!out_dir.join("xs-ox-self-test.txt").exists(), "the second transcript only when something differed");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn bad_arguments_are_an_error_not_a_pass() {
    for args in
        [&["nonsense"][..], &["ops-dom0"], &["self", "--bogus", "x"], &["component", "--socket", "/nonexistent"]]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_moat-xs-compare")).args(args).output().expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}");
        assert!(stdout.contains("TESTBED-CHECK fail xs-compare:"), "{args:?}: {stdout}");
        assert!(!stdout.contains("TESTBED-CHECK ok"), "{args:?}: {stdout}");
    }
}

#[test]
fn again_compares_a_saved_transcript_and_finds_a_changed_line() {
    let dir = std::env::temp_dir().join(format!("xs-compare-again-{}", std::process::id()));
    let st =
        Command::new(env!("CARGO_BIN_EXE_moat-xs-compare")).args(["self", "--out"]).arg(&dir).output().expect("runs");
    assert!(st.status.success());
    let saved = dir.join("xs-ox-self-real.txt");
    let run = |file: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_moat-xs-compare"))
            .args(["again", "ops-dom0", "--real"])
            .arg(file)
            .output()
            .expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = run(&saved);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("TESTBED-CHECK ok xs-ox-ops-dom0-perms"), "{out}");
    // One reply changed: that section, and only that one, fails.
    let text = std::fs::read_to_string(&saved).unwrap().replacen("c< VALUE Domain-0", "c< VALUE Domain-1", 1);
    let changed = dir.join("changed.txt");
    std::fs::write(&changed, text).unwrap();
    let (code, out) = run(&changed);
    assert_eq!(code, Some(1), "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("TESTBED-CHECK fail")).collect();
    assert_eq!(fails.len(), 1, "{out}");
    assert!(fails[0].starts_with("TESTBED-CHECK fail xs-ox-ops-dom0-identity:") && fails[0].contains("Domain-1"));
    let _ = std::fs::remove_dir_all(&dir);
}
