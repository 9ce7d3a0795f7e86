//! Building the PVH image and booting it under QEMU, for the boot test and
//! the boot benchmark.
//!
//! The image is the one `moat build` makes from the repository's
//! `system.toml` (the tool's library does the same as the command), so the
//! boot test boots what a user would install. QEMU runs with the image's
//! debug console (port 0xe9) in a file and `isa-debug-exit` at 0xf4; a run is
//! judged by what the image printed and the exit status it chose.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Where the tests' image goes (beside the image build's target directory).
pub fn image_path() -> PathBuf {
    root().join("target/pvh-test/sys-firewall.pvh")
}

/// Builds the image for the repository's `system.toml` with `moat build`
/// (a no-op for cargo when it is up to date) and returns its path.
pub fn build_image() -> PathBuf {
    build_image_from(&root().join("system.toml"), &image_path())
}

/// Builds the image for the system file `system` into `out` with `moat
/// build` and returns its path.
pub fn build_image_from(system: &Path, out: &Path) -> PathBuf {
    let opts = moat::build::Options {
        system: system.to_owned(),
        out: Some(out.to_owned()),
        target_dir: None,
        progress: false,
    };
    match moat::build::build(&opts) {
        Ok(b) => b.image,
        Err(moat::build::Error::Check(r)) => panic!("{} does not check:\n{r}", system.display()),
        Err(moat::build::Error::Other(e)) => panic!("moat build failed: {e}"),
    }
}

/// What one boot printed and how it ended.
#[derive(Debug)]
pub struct Boot {
    /// Everything the image wrote to its debug console.
    pub output: String,
    /// QEMU's exit status: `(code << 1) | 1` for a code the image wrote to
    /// isa-debug-exit; `None` if the run was killed at the timeout.
    pub status: Option<i32>,
    /// Wall time from starting QEMU to each line that matched a marker
    /// given to [`boot_until`], in order.
    pub marks: Vec<(String, Duration)>,
}

/// Exit statuses QEMU reports for the image's exit codes.
pub mod status {
    /// `Exit::Success`.
    pub const SUCCESS: i32 = 0x10 << 1 | 1;
    /// `Exit::Failure`.
    pub const FAILURE: i32 = 0x11 << 1 | 1;
    /// `Exit::Trap`.
    pub const TRAP: i32 = 0x12 << 1 | 1;
    /// `Exit::Panic`.
    pub const PANIC: i32 = 0x13 << 1 | 1;
}

/// Boots `image` with `append` as its command line, waits at most
/// `timeout`.
pub fn boot(image: &Path, append: &str, timeout: Duration) -> Boot {
    boot_until(image, append, timeout, &[])
}

/// As [`boot`], also timing when each of `markers` first appears in the
/// output.
pub fn boot_until(image: &Path, append: &str, timeout: Duration, markers: &[&str]) -> Boot {
    let dir = std::env::temp_dir().join(format!("moat-pvh-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("debugcon.log");
    let _ = std::fs::remove_file(&log);
    std::fs::write(&log, b"").expect("create the console log");
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-M", "q35", "-accel", "tcg", "-m", "128", "-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-serial", "none", "-monitor", "none"])
        .arg("-debugcon")
        .arg(format!("file:{}", log.display()))
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(image)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64 (tests/setup installs it)");
    let mut marks = Vec::new();
    let mut pending: Vec<&str> = markers.to_vec();
    let status = loop {
        if !pending.is_empty() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            pending.retain(|m| {
                if text.contains(m) {
                    marks.push((m.to_string(), start.elapsed()));
                    false
                } else {
                    true
                }
            });
        }
        if let Some(s) = child.try_wait().expect("wait for qemu") {
            break s.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(if pending.is_empty() { 10 } else { 1 }));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let mut output = std::fs::read_to_string(&log).unwrap_or_default();
    if !err.is_empty() {
        output.push_str("\n[qemu stderr]\n");
        output.push_str(&err);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Boot { output, status, marks }
}

/// The `key=value` counters of component `name` from the image's final
/// `moat: status NAME ...` line.
pub fn counters(output: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("moat: status {name} ");
    output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One counter.
pub fn counter(output: &str, name: &str, key: &str) -> Option<u64> {
    counters(output, name).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}
