//! `moat run --hosted`: start the graph, feed it its clients, print status
//! on `SIGUSR1`, on an interval and at exit, reload the policy files on
//! `SIGHUP` (an atomic replacement in the rules component), and fail closed
//! when any process stops.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use moat_control::ClientEvent;
use moat_control::rules::RulesControl;
use moat_ring::ByteProducer;
use moat_system::System;

use crate::config::HostedConfig;
use crate::supervisor::{Counters, Failure, Graph, Waker};
use crate::sys;

/// How `serve` reports.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print status this often.
    pub interval: Option<Duration>,
    /// Also write each status as JSON to this file (replaced each time).
    pub status_json: Option<PathBuf>,
}

/// Frames waiting to go into one control ring the supervisor writes.
struct Feed {
    label: String,
    message: String,
    ring: ByteProducer,
    waker: Waker,
    pending: VecDeque<Vec<u8>>,
}

impl Feed {
    /// Sends what fits; true if everything went.
    fn pump(&mut self) -> Result<bool, String> {
        while let Some(f) = self.pending.front() {
            match self.ring.send(f) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(moat_ring::FrameError::Ring(moat_ring::RingError::Full)) => {
                    if self.ring.publish().needed() {
                        self.waker.notify();
                    }
                    if self.ring.arm_space().map_err(|e| format!("{}: {e:?}", self.label))? {
                        continue;
                    }
                    return Ok(false);
                }
                Err(e) => return Err(format!("{}: frame refused: {e:?}", self.label)),
            }
        }
        if self.ring.publish().needed() {
            self.waker.notify();
        }
        Ok(true)
    }
}

/// The frames the runtime owes a control ring carrying `message` at start.
///
/// `ClientEvent`: one `Up` per configured client (the supervisor plays
/// xenstore). `RulesControl`: the VM name of each client that has one (the
/// policy itself is in the rules component's configuration). Other
/// messages: nothing.
pub fn frames_for(message: &str, hosted: &HostedConfig) -> Vec<Vec<u8>> {
    match message {
        "RulesControl" => hosted
            .clients
            .iter()
            .filter_map(|c| {
                let name = c.name.as_deref()?;
                let msg = RulesControl::Name { ipv4: c.ip.octets(), name };
                Some(postcard::to_stdvec(&msg).expect("a RulesControl encodes"))
            })
            .collect(),
        "ClientEvent" => hosted
            .clients
            .iter()
            .enumerate()
            .map(|(slot, c)| {
                let ev = ClientEvent::Up { slot: slot as u8, ipv4: c.ip.octets(), ipv6: None, mac: c.mac };
                postcard::to_stdvec(&ev).expect("a ClientEvent encodes")
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn feeds(graph: &mut Graph, hosted: &HostedConfig) -> Result<Vec<Feed>, String> {
    let ends: Vec<_> = graph.plan().played.iter().filter(|e| e.producer).cloned().collect();
    let mut out = Vec::new();
    for e in ends {
        let frames = frames_for(&e.message, hosted);
        if (frames.is_empty() && e.message != "RulesControl") || moat_system::plain_size(&e.message).is_some() {
            continue;
        }
        let (ring, waker) = graph.byte_producer(&e.label, &e.message)?;
        out.push(Feed { label: e.label, message: e.message, ring, waker, pending: frames.into() });
    }
    Ok(out)
}

/// Formats status for people: non-zero counters per process, then every
/// drop by reason and every connection gauge gathered in one place.
pub fn format_status(at: Duration, status: &[(String, Counters)]) -> String {
    let mut s = format!("moat status at {:.1} s\n", at.as_secs_f64());
    let mut drops = String::new();
    let mut conns = String::new();
    for (name, counters) in status {
        let _ = writeln!(s, "  {name}");
        for (k, v) in counters.iter().filter(|(_, v)| *v != 0) {
            let _ = writeln!(s, "    {k} {v}");
            if k.contains("drop") {
                let _ = writeln!(drops, "  {name}: {k} {v}");
            }
            if k.starts_with("conn") || k.contains("connections") {
                let _ = writeln!(conns, "  {name}: {k} {v}");
            }
        }
    }
    s.push_str("drops by reason\n");
    s.push_str(if drops.is_empty() { "  none\n" } else { &drops });
    s.push_str("connections\n");
    s.push_str(if conns.is_empty() { "  none\n" } else { &conns });
    s
}

/// Status as JSON: `{"time_s": …, "components": {name: {counter: value}}, "failure": …}`.
pub fn status_json(at: Duration, status: &[(String, Counters)], failure: Option<&Failure>) -> String {
    let components: serde_json::Map<String, serde_json::Value> = status
        .iter()
        .map(|(n, c)| (n.clone(), c.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(*v))).collect()))
        .collect();
    serde_json::json!({
        "time_s": at.as_secs_f64(),
        "components": components,
        "failure": failure.map(|f| serde_json::json!({"component": f.component, "reason": f.reason})),
    })
    .to_string()
}

fn report(graph: &mut Graph, opts: &RunOptions, failure: Option<&Failure>) {
    let at = Duration::from_nanos(sys::monotonic_ns().saturating_sub(graph.base_ns()));
    let status = graph.status();
    print!("{}", format_status(at, &status));
    if let Some(path) = &opts.status_json {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, status_json(at, &status, failure)).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

const TOKEN_SIGNAL: u64 = 1;
const TOKEN_TICK: u64 = 2;
const TOKEN_FEED: u64 = 100;
const TOKEN_CHILD: u64 = 10_000;

/// The frames that replace the rules' policy with what `system`'s policy
/// files say now, as `version` (sent on SIGHUP).
pub fn policy_frames(system: &System, version: u32) -> Result<Vec<Vec<u8>>, String> {
    let policy = moat_policy::load_files(&system.policy).map_err(|e| e.to_string())?;
    policy
        .messages(version)
        .iter()
        .map(|m| postcard::to_stdvec(m).map_err(|e| format!("policy message does not encode: {e}")))
        .collect()
}

/// Settings the system and the hosted config both hold must agree: the
/// NAT's `uplink_ip` is the uplink adapter's address.
pub fn check_agreement(system: &System, hosted: &HostedConfig) -> Result<(), String> {
    let Some(up) = &hosted.uplink else { return Ok(()) };
    for c in system.components.iter().filter(|c| c.crate_path.trim_start_matches("./") == "components/nat") {
        let ip = c.config_toml.get("uplink_ip").and_then(|v| v.as_str());
        if let Some(ip) = ip.filter(|ip| ip.parse() != Ok(up.address)) {
            return Err(format!(
                "component `{}` translates to uplink_ip {ip}, but the hosted config's uplink address is {}",
                c.name, up.address
            ));
        }
    }
    Ok(())
}

/// Runs the system until SIGINT/SIGTERM (`Ok`) or until a process stops
/// (`Err`, after failing closed).
pub fn serve(system: &System, hosted: &HostedConfig, opts: &RunOptions) -> Result<(), String> {
    let sigfd = sys::signalfd(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGHUP, libc::SIGCHLD])
        .map_err(|e| e.to_string())?;
    // The configuration blob installed policy version 1.
    let mut policy_version = 1;
    let mut graph = Graph::start(system, hosted)?;
    let mut feeds = feeds(&mut graph, hosted)?;
    let epoll = sys::Epoll::new().map_err(|e| e.to_string())?;
    epoll.add(sigfd.as_raw_fd(), TOKEN_SIGNAL).map_err(|e| e.to_string())?;
    let tick = sys::timerfd().map_err(|e| e.to_string())?;
    if let Some(every) = opts.interval {
        let ns = every.as_nanos() as u64;
        sys::timer_set(tick.as_raw_fd(), sys::monotonic_ns() + ns, ns).map_err(|e| e.to_string())?;
    }
    epoll.add(tick.as_raw_fd(), TOKEN_TICK).map_err(|e| e.to_string())?;
    for (i, f) in feeds.iter().enumerate() {
        epoll.add(f.waker.mine, TOKEN_FEED + i as u64).map_err(|e| e.to_string())?;
    }
    for (i, fd) in graph.control_fds().into_iter().enumerate() {
        epoll.add(fd, TOKEN_CHILD + i as u64).map_err(|e| e.to_string())?;
    }
    let names: Vec<String> = graph.processes().iter().map(|(n, p)| format!("{n}[{p}]")).collect();
    println!("moat: running `{}` hosted, one process each: {}", system.name, names.join(" "));
    println!("moat: ready");
    let mut fired = Vec::new();
    loop {
        for f in &mut feeds {
            f.pump()?;
        }
        epoll.wait(&mut fired, -1).map_err(|e| e.to_string())?;
        let mut show = false;
        let mut quit = false;
        for &t in &fired {
            match t {
                TOKEN_SIGNAL => {
                    while let Some(sig) = sys::read_signal(sigfd.as_raw_fd()) {
                        match sig as libc::c_int {
                            libc::SIGUSR1 => show = true,
                            libc::SIGHUP => match feeds.iter_mut().find(|f| f.message == "RulesControl") {
                                Some(feed) => match policy_frames(system, policy_version + 1) {
                                    Ok(frames) => {
                                        policy_version += 1;
                                        println!("moat: loading policy version {policy_version}");
                                        feed.pending.extend(frames);
                                    }
                                    Err(e) => eprintln!("moat: policy not reloaded, the old one stays:\n{e}"),
                                },
                                None => eprintln!("moat: SIGHUP: this system has no runtime.policy ring"),
                            },
                            libc::SIGINT | libc::SIGTERM => quit = true,
                            _ => {}
                        }
                    }
                }
                TOKEN_TICK => {
                    sys::drain(tick.as_raw_fd());
                    show = true;
                }
                t if (TOKEN_FEED..TOKEN_CHILD).contains(&t) => {
                    if let Some(f) = feeds.get(t as usize - TOKEN_FEED as usize) {
                        f.waker.take();
                    }
                }
                _ => {}
            }
        }
        if let Some(failure) = graph.check() {
            eprintln!("moat: {failure}");
            eprintln!("moat: failed closed: every process stopped, the TAP adapters first");
            report(&mut graph, opts, Some(&failure));
            return Err(failure.to_string());
        }
        if show || quit {
            report(&mut graph, opts, None);
        }
        if quit {
            graph.stop();
            println!("moat: stopped");
            return Ok(());
        }
    }
}
