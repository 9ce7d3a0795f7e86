//! Helpers for the end-to-end tests: build the namespace topology
//! (`tests/e2e/topo`), run the `moat` binary on it, run commands in the
//! namespaces with time limits, and read moat's status.
//!
//! Everything a test makes is removed when its [`Topo`] drops, also when the
//! test fails (namespaces, TAPs, processes).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `moat` binary next to the test binary (cargo builds it for the
/// workspace's tests), or `$MOAT_BIN`.
pub fn moat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOAT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/PROFILE/deps");
    let bin = dir.join("moat");
    if !bin.exists() {
        let st = Command::new(env!("CARGO")).args(["build", "-q", "-p", "moat"]).current_dir(root()).status();
        assert!(st.is_ok_and(|s| s.success()), "cannot build the moat binary");
    }
    bin
}

/// How the firewall in the middle is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// moat with NAT (the firewall system).
    Moat,
    /// moat without NAT (csum-router): sys-net routes clients back.
    MoatRouted,
    /// Linux with Qubes' sys-firewall nftables rules.
    Linux,
}

/// A topology of namespaces, torn down on drop.
pub struct Topo {
    /// Namespace prefix.
    pub tag: String,
    /// Work directory (`hosted.toml`, `www/`).
    pub dir: PathBuf,
    procs: Vec<Child>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Topo {
    /// Builds the topology.
    pub fn up(mode: Mode) -> Topo {
        let tag = format!("me{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let m = match mode {
            Mode::Moat => "moat",
            Mode::MoatRouted => "moat-routed",
            Mode::Linux => "linux",
        };
        let topo = Topo { tag: tag.clone(), dir: PathBuf::from(format!("/tmp/moat-e2e-{tag}")), procs: Vec::new() };
        let out = Command::new(root().join("tests/e2e/topo")).args(["up", &tag, m]).output().expect("run topo");
        assert!(out.status.success(), "topo up failed: {}", String::from_utf8_lossy(&out.stderr));
        topo
    }

    /// The full name of namespace `short` (`c1`, `c2`, `net`, `srv`, `fw`).
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    /// Runs `sh -c cmd` in namespace `short`, killed after `secs`.
    pub fn run(&self, short: &str, secs: u32, cmd: &str) -> Output {
        Command::new("timeout")
            .args(["-s", "KILL", &secs.to_string(), "ip", "netns", "exec", &self.ns(short), "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("run a command in a namespace")
    }

    /// As [`run`](Self::run), asserting success; returns stdout.
    pub fn ok(&self, short: &str, secs: u32, cmd: &str) -> String {
        let out = self.run(short, secs, cmd);
        assert!(
            out.status.success(),
            "`{cmd}` in {short} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `sh -c cmd` in namespace `short` in the background (killed on
    /// drop).
    pub fn spawn(&mut self, short: &str, cmd: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(short), "sh", "-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in a namespace");
        self.procs.push(child);
    }

    /// Counts IPv4 packets whose source is `src` arriving on sys-net's
    /// uplink interface from now on (an nftables counter in sys-net), so a
    /// test can prove something never got there.
    pub fn count_on_uplink(&self, src: &str) {
        let rules = format!(
            "nft add table ip e2e; nft add chain ip e2e pre '{{ type filter hook prerouting priority -400; }}'; \
             nft add rule ip e2e pre iifname vif0 ip saddr {src} counter"
        );
        self.ok("net", 10, &rules);
    }

    /// The packets [`count_on_uplink`](Self::count_on_uplink) counted.
    pub fn uplink_count(&self) -> u64 {
        let out = self.ok("net", 10, "nft list chain ip e2e pre");
        out.split("counter packets ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new(root().join("tests/e2e/topo")).args(["down", &self.tag]).output();
    }
}

/// A running `moat run --hosted`.
pub struct Moat {
    child: Child,
    /// Status JSON file.
    pub status_file: PathBuf,
    /// Process ids by component, from moat's start line.
    pub pids: Vec<(String, i32)>,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Moat {
    /// Starts moat on `system` (relative to the workspace root) with the
    /// topology's hosted config, and waits until it says it is ready and its
    /// uplink knows the gateway.
    pub fn start(topo: &Topo, system: &str) -> Moat {
        let status_file = topo.dir.join("status.json");
        let mut child = Command::new(moat_bin())
            .current_dir(root())
            .args(["run", "--hosted", system, "--config"])
            .arg(topo.dir.join("hosted.toml"))
            .arg("--status-json")
            .arg(&status_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moat");
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pids = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("moat did not get ready"));
            if let Some(rest) = line.split(": ").nth(2).filter(|_| line.starts_with("moat: running")) {
                for p in rest.split_whitespace() {
                    let (name, pid) = p.trim_end_matches(']').split_once('[').expect("name[pid]");
                    pids.push((name.to_string(), pid.parse().expect("pid")));
                }
            }
            if line == "moat: ready" {
                break;
            }
        }
        let mut moat = Moat { child, status_file, pids, stdout: rx };
        let deadline = Instant::now() + Duration::from_secs(10);
        while moat.counter("netfront", "arp.gateway_known") != 1 {
            assert!(Instant::now() < deadline, "moat's uplink never learnt the gateway's MAC");
            std::thread::sleep(Duration::from_millis(100));
        }
        moat
    }

    /// Fresh status: signals moat and waits for the JSON file to change.
    pub fn status(&mut self) -> serde_json::Value {
        let before = std::fs::metadata(&self.status_file).and_then(|m| m.modified()).ok();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = std::fs::metadata(&self.status_file).and_then(|m| m.modified()).ok();
            if now.is_some()
                && now != before
                && let Ok(Ok(v)) = std::fs::read_to_string(&self.status_file).map(|t| serde_json::from_str(&t))
            {
                return v;
            }
            assert!(Instant::now() < deadline, "no status from moat");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks moat to reload its policy files (SIGHUP).
    pub fn hup(&self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    /// One counter of one component (0 if absent).
    pub fn counter(&mut self, component: &str, key: &str) -> u64 {
        self.status()["components"][component][key].as_u64().unwrap_or(0)
    }

    /// The pid of `component`'s process.
    pub fn pid(&self, component: &str) -> i32 {
        self.pids.iter().find(|(n, _)| n == component).unwrap_or_else(|| panic!("no process {component}")).1
    }

    /// Waits up to `secs` for moat to exit; its status and the lines it
    /// printed since the last call.
    pub fn wait_exit(&mut self, secs: u64) -> (Option<std::process::ExitStatus>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut st = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                st = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        (st, self.stdout.try_iter().collect())
    }
}

impl Drop for Moat {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if the rules and nat components are registered (the firewall
/// system can run hosted).
pub fn firewall_ready() -> bool {
    moat_system::registry::find("components/rules").is_some() && moat_system::registry::find("components/nat").is_some()
}
