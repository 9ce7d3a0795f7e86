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
    /// Why an earlier attempt was run again (see [`run_scenario_within`]),
    /// with where its logs were kept.
    pub reruns: Vec<String>,
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
///
/// A failed run is run once more when, and only when, Xen logged a triple
/// fault in it and every one of them is excused: in Xen's own state (the
/// emulated VMRUN/#VMEXIT itself), or in a domain that is not moat (the
/// Linux guests, which triple-fault under QEMU 7.2's emulated SVM right
/// after VM exits; README, Known gaps). A triple fault in moat's own state,
/// every other failure, and a second failure fail as they are. The first
/// attempt's logs are kept in `<results>-emulator-fault` and named in
/// [`Run::reruns`].
pub fn run_scenario_within(results: &str, scenario: &str, files: &[(&str, &Path)], secs: Option<u32>) -> Run {
    let first = run_once(results, scenario, files, secs);
    // Xen's console as it went out live (dom0 sends `xl dmesg` only if it
    // got to the end; its copy is tagged `@@xl-dmesg.txt@@` and left out).
    // A guest's console can share a line with Xen's: Xen's part is kept.
    let serial = std::fs::read(first.dir.join("serial.log")).unwrap_or_default();
    let xen: String = String::from_utf8_lossy(&serial)
        .lines()
        .filter(|l| !l.starts_with("@@"))
        .filter_map(|l| l.find("(XEN)").map(|at| format!("{}\n", &l[at..])))
        .collect();
    let faults = triple_faults(&xen);
    let moat = first.moat_domid();
    let excused = |f: &TripleFault| f.in_xen || moat.is_some_and(|m| m != f.dom);
    if first.passed() || faults.is_empty() || !faults.iter().all(excused) {
        return first;
    }
    let kept = results_root().join(format!("{results}-emulator-fault"));
    let _ = std::fs::remove_dir_all(&kept);
    let what: Vec<String> =
        faults.iter().map(|f| format!("d{} in {} state", f.dom, if f.in_xen { "Xen's" } else { "its own" })).collect();
    let note = match std::fs::rename(&first.dir, &kept) {
        Ok(()) => format!("triple faults ({}); first attempt's logs in {}", what.join(", "), kept.display()),
        Err(e) => format!("triple faults ({}); first attempt's logs lost ({e})", what.join(", ")),
    };
    eprintln!("real-Xen scenario {results}: run again: {note}");
    let mut again = run_once(results, scenario, files, secs);
    again.reruns.push(note);
    again
}

/// A `Triple fault` line in Xen's log and the state Xen dumped after it.
#[derive(Debug, PartialEq)]
pub struct TripleFault {
    /// The domain whose vCPU it was (`d<dom>v0`).
    pub dom: u32,
    /// The dumped state is Xen's own (code segment `e008`, the
    /// hypervisor's): the shutdown came out of the emulated VMRUN/#VMEXIT,
    /// not from anything the guest ran. A guest's own triple fault leaves
    /// the guest's state (`crash_report_on_real_xen` shows one).
    pub in_xen: bool,
}

/// The triple faults in Xen's log, in order.
pub fn triple_faults(xen_log: &str) -> Vec<TripleFault> {
    let lines: Vec<&str> = xen_log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("Triple fault") else { continue };
        // "... d3v0 Triple fault - ..."
        let word = line[..at].split_whitespace().last().unwrap_or("");
        let Some(dom) = word.strip_prefix('d').and_then(|w| w.split('v').next()).and_then(|d| d.parse().ok()) else {
            continue;
        };
        let rip = lines.iter().skip(i + 1).take(6).find(|l| l.contains("RIP:"));
        out.push(TripleFault { dom, in_xen: rip.is_some_and(|l| l.contains(" e008:[<")) });
    }
    out
}

fn run_once(results: &str, scenario: &str, files: &[(&str, &Path)], secs: Option<u32>) -> Run {
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
    Run { dir, markers: parse_markers(&text), output, reruns: Vec::new() }
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

    /// moat's domain id, when the scenario printed it
    /// (`TESTBED-NOTE moat-domid <id>`, lib.sh's `start_moat`).
    pub fn moat_domid(&self) -> Option<u32> {
        self.markers.iter().find_map(|m| m.strip_prefix("TESTBED-NOTE moat-domid ")?.trim().parse().ok())
    }

    /// Whether the scenario finished with no failed check.
    pub fn passed(&self) -> bool {
        self.finished() && self.failures().is_empty()
    }

    /// Panics, naming the logs to read, unless the scenario finished with no
    /// failed check and every check in `expected` passed.
    pub fn assert_checks(&self, expected: &[&str]) {
        let missing: Vec<&str> = expected.iter().copied().filter(|c| !self.check_ok(c)).collect();
        if self.passed() && missing.is_empty() {
            return;
        }
        let failures = self.failures();
        let mut msg = String::new();
        let _ = writeln!(msg, "real-Xen scenario failed; logs in {}", self.dir.display());
        for r in &self.reruns {
            let _ = writeln!(msg, "  (this was a second attempt: {r})");
        }
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
        Run { dir: PathBuf::from("/nowhere"), markers: parse_markers(text), output: String::new(), reruns: Vec::new() }
    }

    /// Xen 4.17's dump after a triple fault, with the RIP line given.
    fn fault(dom: u32, rip: &str) -> String {
        format!(
            "(XEN) [  243.110256] d{dom}v0 Triple fault - invoking HVM shutdown action 1\n\
             (XEN) [  243.111831] *** Dumping Dom{dom} vcpu#0 state: ***\n\
             (XEN) [  243.112916] ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----\n\
             (XEN) [  243.113103] CPU:    0\n\
             (XEN) [  243.113221] RIP:    {rip}\n\
             (XEN) [  243.113377] RFLAGS: 0000000000000246   CONTEXT: hvm guest (d{dom}v0)\n"
        )
    }

    #[test]
    fn triple_faults_name_the_domain_and_whose_state() {
        let log = format!(
            "(XEN) noise\n{}{}{}",
            fault(3, "e008:[<ffff82d0402044a5>]"),
            fault(1, "0008:[<0000000000156408>]"),
            fault(12, "0000:[<0000000000100016>]")
        );
        let f = |dom, in_xen| TripleFault { dom, in_xen };
        assert_eq!(triple_faults(&log), [f(3, true), f(1, false), f(12, false)]);
        // no dump after it: not Xen's state
        assert_eq!(triple_faults("(XEN) [ 1.0] d2v0 Triple fault - invoking HVM shutdown action 1\n"), [f(2, false)]);
        assert_eq!(triple_faults("(XEN) nothing\n"), []);
    }

    #[test]
    fn moat_domid_comes_from_its_note() {
        assert_eq!(run("TESTBED-NOTE moat-domid 7\n").moat_domid(), Some(7));
        assert_eq!(run("TESTBED-NOTE other 7\n").moat_domid(), None);
    }

    #[test]
    fn passed_needs_the_end_and_no_failure() {
        assert!(run("TESTBED-CHECK ok a\nTESTBED-SCENARIO done\n").passed());
        assert!(!run("TESTBED-CHECK ok a\n").passed());
        assert!(!run("TESTBED-CHECK fail a: x\nTESTBED-SCENARIO done\n").passed());
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
