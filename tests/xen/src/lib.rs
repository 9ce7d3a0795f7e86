//! Runs real-Xen scenarios from Rust tests and reads their verdict.
//!
//! The work is done by `scripts/run-scenario` (QEMU, Xen, dom0, the scenario
//! script inside dom0); this crate only calls it and parses the marker lines
//! it collects, so the scenarios run under `cargo nextest run --workspace`
//! like every other test. The marker contract is in `README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where this crate lives: `tests/xen` in the repository.
fn xen_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The outcome of one scenario run: its markers and where its logs are.
#[derive(Debug)]
pub struct Run {
    /// Results folder (`tests/results/<scenario>`), kept for reading.
    pub dir: PathBuf,
    /// Marker lines in order (`TESTBED-CHECK ok foo`, `TESTBED-TIME bar 1234`, …).
    pub markers: Vec<String>,
    /// The runner's own console output (its summary and the checks).
    pub output: String,
}

/// Runs `scenario` (a script in `tests/xen/scenarios`, without `.sh`), packing
/// each `(name, path)` of `files` as `/scenario/files/<name>` in dom0, with
/// its logs in `tests/results/<results>`.
///
/// Panics if the runner cannot be started; a failed scenario is not a panic
/// here: the caller asserts the markers it expects.
pub fn run_scenario(results: &str, scenario: &str, files: &[(&str, &Path)]) -> Run {
    run_scenario_within(results, scenario, files, None)
}

/// [`run_scenario`] with a bound on the whole QEMU run other than the
/// runner's default (480 s), for scenarios that boot several guests.
pub fn run_scenario_within(results: &str, scenario: &str, files: &[(&str, &Path)], secs: Option<u32>) -> Run {
    let mut cmd = Command::new(xen_dir().join("scripts/run-scenario"));
    cmd.arg("--results").arg(results);
    if let Some(secs) = secs {
        cmd.arg("--timeout").arg(secs.to_string());
    }
    for (name, path) in files {
        cmd.arg("--file").arg(format!("{name}={}", path.display()));
    }
    cmd.arg(scenario);
    let out = cmd.output().expect("cannot start tests/xen/scripts/run-scenario");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let dir = results_root().join(results);
    let text = std::fs::read_to_string(dir.join("markers.txt")).unwrap_or_default();
    Run { dir, markers: parse_markers(&text), output }
}

/// Builds `tiny-dns` (dom0's DNS responder for the network scenarios,
/// `tiny-dns/`) to `out`, statically with the host's gcc, and returns `out`.
pub fn build_tiny_dns(out: &Path) -> PathBuf {
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .arg(xen_dir().join("tiny-dns/tiny-dns.c"))
        .status()
        .expect("cannot run gcc");
    assert!(status.success(), "tiny-dns did not build");
    out.to_owned()
}

/// A system file for `moat build`: the repository's `system.toml` with
/// `extra` policy files layered after its own, written into `dir` (policy
/// paths made absolute, since they resolve against the file's folder).
pub fn system_with_policies(dir: &Path, extra: &[&str]) -> PathBuf {
    let root = xen_dir().join("../..").canonicalize().expect("repository root");
    let text = std::fs::read_to_string(root.join("system.toml")).expect("system.toml");
    let mut out = String::new();
    let mut replaced = false;
    for line in text.lines() {
        if let Some(list) = line.strip_prefix("policy = [").and_then(|l| l.strip_suffix(']')) {
            let mut files: Vec<String> = list
                .split(',')
                .map(|f| f.trim().trim_matches('"'))
                .filter(|f| !f.is_empty())
                .map(|f| root.join(f).display().to_string())
                .collect();
            files.extend(extra.iter().map(|f| root.join(f).display().to_string()));
            let quoted: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
            let _ = writeln!(out, "policy = [{}]", quoted.join(", "));
            replaced = true;
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    assert!(replaced, "system.toml has no one-line `policy = [...]`");
    std::fs::create_dir_all(dir).expect("system dir");
    let path = dir.join("system.toml");
    std::fs::write(&path, out).expect("write system file");
    path
}

/// `MOAT_TESTBED_RESULTS`, or `tests/results` of the repository (the runner's
/// default too).
fn results_root() -> PathBuf {
    match std::env::var_os("MOAT_TESTBED_RESULTS") {
        Some(p) => PathBuf::from(p),
        None => xen_dir().join("../results"),
    }
}

/// The marker lines of a text: lines starting with `TESTBED-`, trailing
/// whitespace (a console's `\r`) removed.
pub fn parse_markers(text: &str) -> Vec<String> {
    text.lines().map(str::trim_end).filter(|l| l.starts_with("TESTBED-")).map(str::to_owned).collect()
}

impl Run {
    /// Whether the scenario printed `TESTBED-CHECK ok <name>`.
    pub fn check_ok(&self, name: &str) -> bool {
        let want = format!("TESTBED-CHECK ok {name}");
        self.markers.contains(&want)
    }

    /// The failed checks, as printed.
    pub fn failures(&self) -> Vec<&str> {
        self.markers.iter().filter(|m| m.starts_with("TESTBED-CHECK fail ")).map(String::as_str).collect()
    }

    /// Whether the scenario ran to its end (`TESTBED-SCENARIO done`).
    pub fn finished(&self) -> bool {
        self.markers.iter().any(|m| m == "TESTBED-SCENARIO done")
    }

    /// The milliseconds of `TESTBED-TIME <name> <ms>`, if printed.
    pub fn time_ms(&self, name: &str) -> Option<u64> {
        self.markers.iter().find_map(|m| {
            let rest = m.strip_prefix("TESTBED-TIME ")?;
            let (n, ms) = rest.split_once(' ')?;
            (n == name).then(|| ms.trim().parse().ok()).flatten()
        })
    }

    /// Panics, naming the logs to read, unless the scenario finished with no
    /// failed check and every check in `expected` passed.
    pub fn assert_checks(&self, expected: &[&str]) {
        let missing: Vec<&str> = expected.iter().copied().filter(|c| !self.check_ok(c)).collect();
        let failures = self.failures();
        if self.finished() && missing.is_empty() && failures.is_empty() {
            return;
        }
        let mut msg = String::new();
        let _ = writeln!(msg, "real-Xen scenario failed; logs in {}", self.dir.display());
        if !self.finished() {
            let _ = writeln!(msg, "  did not finish (no TESTBED-SCENARIO done)");
        }
        for f in &failures {
            let _ = writeln!(msg, "  {f}");
        }
        for m in &missing {
            let _ = writeln!(msg, "  missing: TESTBED-CHECK ok {m}");
        }
        let _ = writeln!(msg, "  serial log: {}", self.dir.join("serial.log").display());
        let _ = writeln!(msg, "runner output:\n{}", self.output);
        panic!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Run {
        Run { dir: PathBuf::from("/nowhere"), markers: parse_markers(text), output: String::new() }
    }

    #[test]
    fn markers_are_lines_starting_with_the_prefix() {
        let r = run("x TESTBED-CHECK ok a\r\nTESTBED-CHECK ok b\r\n(XEN) noise\nTESTBED-TIME t 42\n");
        assert_eq!(r.markers, ["TESTBED-CHECK ok b", "TESTBED-TIME t 42"]);
        assert!(r.check_ok("b"));
        assert!(!r.check_ok("a"));
        assert_eq!(r.time_ms("t"), Some(42));
        assert_eq!(r.time_ms("u"), None);
    }

    #[test]
    fn a_check_name_must_match_whole() {
        let r = run("TESTBED-CHECK ok moat-ready-late\nTESTBED-SCENARIO done\n");
        assert!(!r.check_ok("moat-ready"));
    }

    #[test]
    #[should_panic(expected = "missing: TESTBED-CHECK ok b")]
    fn a_missing_check_fails() {
        run("TESTBED-CHECK ok a\nTESTBED-SCENARIO done\n").assert_checks(&["a", "b"]);
    }

    #[test]
    #[should_panic(expected = "TESTBED-CHECK fail b: no")]
    fn a_failed_check_fails_even_if_not_expected() {
        run("TESTBED-CHECK ok a\nTESTBED-CHECK fail b: no\nTESTBED-SCENARIO done\n").assert_checks(&["a"]);
    }

    #[test]
    #[should_panic(expected = "did not finish")]
    fn an_unfinished_scenario_fails() {
        run("TESTBED-CHECK ok a\n").assert_checks(&["a"]);
    }

    #[test]
    fn a_finished_scenario_with_its_checks_passes() {
        run("TESTBED-CHECK ok a\nTESTBED-SCENARIO done\n").assert_checks(&["a"]);
    }
}
