//! The supervisor: lays the system out, forks one process per component
//! and adapter, waits until each is ready, plays the ring ends no process
//! owns, gathers status, and fails closed when any process stops.
//!
//! Failing closed: the moment a process faults or dies, the adapters are
//! killed first (no frame crosses a TAP after that), then everything else;
//! the report names the component and says why it stopped.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use moat_ring::{ByteConsumer, ByteProducer, Consumer, Message, Pool, Producer, Region};
use moat_system::System;

use crate::config::HostedConfig;
use crate::plan::{self, Plan, Runs};
use crate::process;
use crate::sys::{self, Mapping};

/// One child process.
#[derive(Debug)]
struct Child {
    name: String,
    pid: libc::pid_t,
    ctrl: OwnedFd,
    adapter: bool,
    ended: Option<libc::c_int>,
    fault: Option<String>,
}

/// Counters of one process.
pub type Counters = Vec<(String, u64)>;

/// A running graph.
#[derive(Debug)]
pub struct Graph {
    plan: Plan,
    children: Vec<Child>,
    base_ns: u64,
    taken: Vec<String>,
}

/// Wakes a peer, and is woken by it, for one ring end the supervisor plays.
#[derive(Clone, Copy, Debug)]
pub struct Waker {
    /// Signal this to wake the process at the other end.
    pub peer: RawFd,
    /// Becomes readable when the other end signals us.
    pub mine: RawFd,
}

impl Waker {
    /// Wakes the peer.
    pub fn notify(&self) {
        sys::signal(self.peer)
    }
    /// Clears and reports our own wake.
    pub fn take(&self) -> bool {
        sys::drain(self.mine)
    }
}

/// Why the graph stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Instance name.
    pub component: String,
    /// Why, in words.
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "component `{}` stopped: {}", self.component, self.reason)
    }
}

impl Graph {
    /// Starts every process of `system` (Xen drivers substituted as the
    /// hosted config says) and waits until each is running.
    pub fn start(system: &System, hosted: &HostedConfig) -> Result<Graph, String> {
        let plan = plan::plan(system, &hosted.substitute, hosted.offload.segmentation).map_err(|e| e.to_string())?;
        let cpus = hosted.cpus.resolve()?;
        let base_ns = sys::monotonic_ns();
        let mut graph = Graph { plan, children: Vec::new(), base_ns, taken: Vec::new() };
        for i in 0..graph.plan.procs.len() {
            let (mine, theirs) = sys::seqpacket_pair().map_err(|e| e.to_string())?;
            // SAFETY: the child only runs `child_main`, which ends in
            // `exit_now`; it uses the plan and config copied into its
            // address space by fork and never returns into our callers.
            match unsafe { sys::fork() }.map_err(|e| format!("fork: {e}"))? {
                sys::Forked::Child => {
                    drop(mine);
                    process::child_main(&graph.plan, i, theirs.as_raw_fd(), base_ns, hosted, cpus.as_deref())
                }
                sys::Forked::Parent(pid) => {
                    let spec = &graph.plan.procs[i];
                    graph.children.push(Child {
                        name: spec.name.clone(),
                        pid,
                        ctrl: mine,
                        adapter: matches!(spec.runs, Runs::Adapter(_)),
                        ended: None,
                        fault: None,
                    });
                }
            }
        }
        for i in 0..graph.children.len() {
            let c = &graph.children[i];
            let mut buf = [0u8; 4096];
            let n = if sys::wait_readable(c.ctrl.as_raw_fd(), 10_000) {
                sys::recv_msg(c.ctrl.as_raw_fd(), &mut buf, true).unwrap_or(0)
            } else {
                0
            };
            if &buf[..n] != b"ready" {
                let name = c.name.clone();
                let why = match std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.strip_prefix("fault ")) {
                    Some(f) => f.to_string(),
                    None if n == 0 => "did not start (no word within 10 s, or died)".into(),
                    None => format!("said {:?} instead of ready", String::from_utf8_lossy(&buf[..n])),
                };
                graph.kill_all();
                return Err(Failure { component: name, reason: why }.to_string());
            }
        }
        Ok(graph)
    }

    /// The layout.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Instance names and pids of the processes.
    pub fn processes(&self) -> Vec<(String, libc::pid_t)> {
        self.children.iter().map(|c| (c.name.clone(), c.pid)).collect()
    }

    /// Nanoseconds of `CLOCK_MONOTONIC` at time zero of the components.
    pub fn base_ns(&self) -> u64 {
        self.base_ns
    }

    fn take_end(&mut self, label: &str, producer: bool, message: &str) -> Result<(Region, u32, Waker), String> {
        if self.taken.iter().any(|t| t == label) {
            return Err(format!("ring end `{label}` is already taken"));
        }
        let end = self.plan.played(label).ok_or(format!("no ring end `{label}` is played by the runtime"))?;
        if end.producer != producer || end.message != message {
            return Err(format!(
                "ring end `{label}` is the {} of a `{}` ring",
                if end.producer { "producer" } else { "consumer" },
                end.message
            ));
        }
        let r = &self.plan.regions[end.ring];
        let region = Mapping::map(&r.fd, r.size, true).map_err(|e| e.to_string())?.leak();
        let [to_cons, to_prod] = &self.plan.wakes[end.ring];
        let (mine, peer) = if producer { (to_prod, to_cons) } else { (to_cons, to_prod) };
        let waker = Waker { peer: peer.as_raw_fd(), mine: mine.as_raw_fd() };
        let capacity = end.capacity;
        self.taken.push(label.into());
        Ok((region, capacity, waker))
    }

    /// The producer of the runtime end `label` (`runtime.LABEL` without
    /// `runtime.`, or `component.port` of a component the supervisor plays).
    pub fn producer<T: Message>(&mut self, label: &str) -> Result<(Producer<T>, Waker), String> {
        let (region, cap, w) = self.take_end(label, true, T::NAME)?;
        // SAFETY: the plan gives this end to no process; taking it once
        // (checked) makes this its only producer.
        let p = unsafe { Producer::attach(&region, cap) }.map_err(|e| format!("{e:?}"))?;
        Ok((p, w))
    }

    /// The consumer of the runtime end `label`.
    pub fn consumer<T: Message>(&mut self, label: &str) -> Result<(Consumer<T>, Waker), String> {
        let (region, cap, w) = self.take_end(label, false, T::NAME)?;
        // SAFETY: as for `producer`, consumer end.
        let c = unsafe { Consumer::attach(&region, cap) }.map_err(|e| format!("{e:?}"))?;
        Ok((c, w))
    }

    /// The writer of the control ring end `label` carrying `message`.
    pub fn byte_producer(&mut self, label: &str, message: &str) -> Result<(ByteProducer, Waker), String> {
        let (region, cap, w) = self.take_end(label, true, message)?;
        // SAFETY: as for `producer`.
        let p = unsafe { ByteProducer::attach(&region, cap) }.map_err(|e| format!("{e:?}"))?;
        Ok((p, w))
    }

    /// The reader of the control ring end `label` carrying `message`.
    pub fn byte_consumer(&mut self, label: &str, message: &str) -> Result<(ByteConsumer, Waker), String> {
        let (region, cap, w) = self.take_end(label, false, message)?;
        // SAFETY: as for `consumer`.
        let c = unsafe { ByteConsumer::attach(&region, cap) }.map_err(|e| format!("{e:?}"))?;
        Ok((c, w))
    }

    /// A writable view of pool `name` (for a runtime-owned pool: the
    /// runtime fills its buffers and must follow the ownership rule).
    pub fn pool(&mut self, system: &System, name: &str) -> Result<Pool, String> {
        let j = system.pools.iter().position(|p| p.name == name).ok_or(format!("no pool `{name}`"))?;
        let p = &system.pools[j];
        let geo = moat_ring::PoolGeometry::new(p.id, p.buffer_size, p.count).map_err(|e| format!("{e:?}"))?;
        let r = &self.plan.regions[self.plan.rings + j];
        let region = Mapping::map(&r.fd, r.size, true).map_err(|e| e.to_string())?.leak();
        // SAFETY: the pool's region, sized for its geometry; the caller
        // follows the ownership rule like every other mapper.
        unsafe { Pool::attach(region, geo) }.map_err(|e| format!("{e:?}"))
    }

    /// Notices processes that stopped: returns the first failure, after
    /// failing closed (every process killed, adapters first).
    pub fn check(&mut self) -> Option<Failure> {
        let mut failed = None;
        for (i, c) in self.children.iter_mut().enumerate() {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sys::recv_msg(c.ctrl.as_raw_fd(), &mut buf, true) {
                if n == 0 {
                    break;
                }
                if let Some(f) = std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.strip_prefix("fault ")) {
                    c.fault = Some(f.to_string());
                }
            }
            if c.ended.is_none() {
                c.ended = sys::try_wait(c.pid);
            }
            if failed.is_none() && (c.ended.is_some() || c.fault.is_some()) {
                failed = Some(i);
            }
        }
        let i = failed?;
        self.kill_all();
        let c = &self.children[i];
        let mut reason = c.fault.clone().unwrap_or_default();
        if let Some(st) = c.ended {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&format!("process {}", sys::describe_status(st)));
        }
        Some(Failure { component: c.name.clone(), reason })
    }

    /// Asks every live process for its counters (waiting up to a second
    /// for each).
    pub fn status(&mut self) -> Vec<(String, Counters)> {
        let mut out = Vec::new();
        for c in &mut self.children {
            if c.ended.is_some() {
                continue;
            }
            let fd = c.ctrl.as_raw_fd();
            if sys::send_msg(fd, b"status").is_err() {
                continue;
            }
            let mut buf = vec![0u8; crate::worker::MAX_STATUS + 4096];
            let deadline = sys::monotonic_ns() + 1_000_000_000;
            while sys::monotonic_ns() < deadline {
                if !sys::wait_readable(fd, 100) {
                    continue;
                }
                let Ok(n) = sys::recv_msg(fd, &mut buf, true) else { continue };
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(body) = text.strip_prefix("status\n") {
                    let counters = body
                        .lines()
                        .filter_map(|l| l.rsplit_once(' '))
                        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
                        .collect();
                    out.push((c.name.clone(), counters));
                    break;
                }
                if let Some(f) = text.strip_prefix("fault ") {
                    c.fault = Some(f.to_string());
                    break;
                }
            }
        }
        out
    }

    /// The control socket of each live process (to wait on in a loop).
    pub fn control_fds(&self) -> Vec<RawFd> {
        self.children.iter().filter(|c| c.ended.is_none()).map(|c| c.ctrl.as_raw_fd()).collect()
    }

    /// Sends `signal` to the process running `component` (tests use it to
    /// crash one on purpose).
    pub fn signal(&self, component: &str, signal: libc::c_int) -> bool {
        match self.children.iter().find(|c| c.name == component) {
            Some(c) => {
                sys::kill(c.pid, signal);
                true
            }
            None => false,
        }
    }

    /// Stops every process in order: adapters first (no more traffic), then
    /// the rest; each gets a second to finish before it is killed.
    pub fn stop(&mut self) {
        for adapters in [true, false] {
            for c in self.children.iter_mut().filter(|c| c.adapter == adapters && c.ended.is_none()) {
                let _ = sys::send_msg(c.ctrl.as_raw_fd(), b"stop");
                let deadline = sys::monotonic_ns() + 1_000_000_000;
                while c.ended.is_none() && sys::monotonic_ns() < deadline {
                    c.ended = sys::try_wait(c.pid);
                    std::thread::sleep(Duration::from_millis(2));
                }
                if c.ended.is_none() {
                    sys::kill(c.pid, libc::SIGKILL);
                    c.ended = sys::wait(c.pid);
                }
            }
        }
    }

    /// Kills everything at once, adapters first (fail closed).
    fn kill_all(&mut self) {
        for adapters in [true, false] {
            for c in self.children.iter().filter(|c| c.adapter == adapters && c.ended.is_none()) {
                sys::kill(c.pid, libc::SIGKILL);
            }
        }
        for c in &mut self.children {
            if c.ended.is_none() {
                c.ended = sys::wait(c.pid);
            }
        }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        self.kill_all();
    }
}
