//! One process's event loop: wait on the eventfds of its ring ports, its
//! timer, its extra descriptors (TAPs) and its control socket; call the task
//! with the channels that fired; deliver the notifications it asks for.
//!
//! The control socket carries short text messages. From the supervisor:
//! `status` and `stop`. To it: `ready`, `status\n` followed by one
//! `name value` line per counter, and `fault TEXT` just before the process
//! exits because its component stopped.

use std::os::fd::RawFd;

use moat_component::{Channel, Context, Fault, Instant, Signals, StatusFn};

use crate::kinds::Task;
use crate::sys;

const TOKEN_TIMER: u64 = 1000;
const TOKEN_CTRL: u64 = 1001;
const TOKEN_EXTRA: u64 = 2000;

/// Most bytes of one status message (counters past it are cut).
pub const MAX_STATUS: usize = 60 * 1024;

/// A process's wake descriptors.
#[derive(Clone, Debug, Default)]
pub struct Wakes {
    /// (channel, descriptor that wakes this process for it).
    pub mine: Vec<(u8, RawFd)>,
    /// Per channel: descriptor that wakes the peer.
    pub peer: Vec<(u8, RawFd)>,
}

/// Why the loop ended.
#[derive(Debug)]
pub enum Ended {
    /// The supervisor said `stop` or closed the socket.
    Stopped,
    /// The task faulted.
    Fault(Fault),
    /// The loop itself failed (epoll, timer).
    Io(std::io::Error),
}

/// Monotonic time since `base_ns`, as components see it.
pub fn now(base_ns: u64) -> Instant {
    Instant::from_nanos(sys::monotonic_ns().saturating_sub(base_ns))
}

/// Human words for a fault.
pub fn describe(f: &Fault) -> String {
    match f {
        Fault::Peer(port) => format!("the peer on port `{port}` broke the ring protocol"),
        Fault::Config(what) => format!("bad configuration: {what}"),
        Fault::Bind(e) => format!("cannot bind ports: {e:?}"),
        Fault::Internal(what) => format!("internal error: {what}"),
    }
}

/// Formats a task's counters as a status message.
pub fn status_message(task: &dyn Task) -> Vec<u8> {
    let mut out = b"status\n".to_vec();
    task.status(&mut StatusFn(|k: &str, v| {
        if out.len() + k.len() + 24 <= MAX_STATUS {
            out.extend_from_slice(format!("{k} {v}\n").as_bytes());
        }
    }));
    out
}

/// The loop.
pub struct Loop {
    epoll: sys::Epoll,
    timer: std::os::fd::OwnedFd,
    wakes: Wakes,
    ctrl: RawFd,
    extra: Vec<RawFd>,
    watching: u64,
    budget: u32,
    base_ns: u64,
    armed_at: Option<Instant>,
    again: bool,
    /// Calls made (for the status).
    pub calls: u64,
}

impl Loop {
    /// Sets up the waits.
    pub fn new(wakes: Wakes, ctrl: RawFd, extra: Vec<RawFd>, budget: u32, base_ns: u64) -> std::io::Result<Loop> {
        let epoll = sys::Epoll::new()?;
        for &(ch, fd) in &wakes.mine {
            epoll.add_edge(fd, u64::from(ch))?;
        }
        let timer = sys::timerfd()?;
        epoll.add(std::os::fd::AsRawFd::as_raw_fd(&timer), TOKEN_TIMER)?;
        epoll.add(ctrl, TOKEN_CTRL)?;
        for (i, &fd) in extra.iter().enumerate() {
            epoll.add(fd, TOKEN_EXTRA + i as u64)?;
        }
        let watching = if extra.is_empty() { 0 } else { u64::MAX >> (64 - extra.len()) };
        Ok(Loop { epoll, timer, wakes, ctrl, extra, watching, budget, base_ns, armed_at: None, again: false, calls: 0 })
    }

    /// Acts on what a call asked for: notifications, timer, again.
    pub fn after_call(&mut self, cx: &mut Context) -> std::io::Result<()> {
        let notify = cx.take_notify();
        for ch in notify.iter() {
            if let Some(&(_, fd)) = self.wakes.peer.iter().find(|(c, _)| *c == ch.index()) {
                sys::signal(fd);
            }
        }
        // Re-armed only for an earlier time: a component that moves its
        // deadline later on every packet (the NAT's idle timeouts) would
        // otherwise cost a system call per packet. A timer left armed for
        // an earlier time just calls the component early (or for nothing),
        // and it asks again.
        if let Some(t) = cx.requested_wake()
            && self.armed_at.is_none_or(|armed| t < armed)
        {
            let at = self.base_ns.saturating_add(t.as_nanos()).max(1);
            sys::timer_set(std::os::fd::AsRawFd::as_raw_fd(&self.timer), at, 0)?;
            self.armed_at = Some(t);
        }
        self.again = cx.wants_again();
        Ok(())
    }

    /// Runs `task` until it faults or the supervisor stops it.
    pub fn run(&mut self, task: &mut dyn Task) -> Ended {
        let mut fired = Vec::new();
        let mut signals = Signals::ALL;
        loop {
            let want = task.wants_input();
            for (i, &fd) in self.extra.iter().enumerate() {
                let bit = 1u64 << i;
                if (want ^ self.watching) & bit != 0 {
                    if let Err(e) = self.epoll.set_input(fd, TOKEN_EXTRA + i as u64, want & bit != 0) {
                        return Ended::Io(e);
                    }
                    self.watching ^= bit;
                }
            }
            let timeout = if self.again || !signals.is_empty() { 0 } else { -1 };
            if let Err(e) = self.epoll.wait(&mut fired, timeout) {
                return Ended::Io(e);
            }
            for &token in &fired {
                match token {
                    TOKEN_TIMER => {
                        sys::drain(std::os::fd::AsRawFd::as_raw_fd(&self.timer));
                        self.armed_at = None;
                        signals = Signals::ALL;
                    }
                    TOKEN_CTRL => {
                        let mut buf = [0u8; 64];
                        match sys::recv_msg(self.ctrl, &mut buf, true) {
                            Ok(0) => return Ended::Stopped,
                            Ok(n) if &buf[..n] == b"stop" => return Ended::Stopped,
                            Ok(n) if &buf[..n] == b"status" => {
                                let mut msg = status_message(task);
                                msg.extend_from_slice(format!("runtime.calls {}\n", self.calls).as_bytes());
                                let _ = sys::send_msg(self.ctrl, &msg);
                            }
                            _ => {}
                        }
                    }
                    t if t >= TOKEN_EXTRA => {
                        if let Some(ch) = Channel::new(63u8.saturating_sub((t - TOKEN_EXTRA) as u8)) {
                            signals.insert(ch);
                        }
                    }
                    ch => {
                        // Edge-triggered: nothing to drain.
                        if let Some(c) = u8::try_from(ch).ok().and_then(Channel::new) {
                            signals.insert(c);
                        }
                    }
                }
            }
            if signals.is_empty() && !self.again {
                continue;
            }
            let mut cx = Context::new(now(self.base_ns), signals, self.budget);
            signals = Signals::NONE;
            self.calls += 1;
            if let Err(f) = task.notified(&mut cx) {
                return Ended::Fault(f);
            }
            if let Err(e) = self.after_call(&mut cx) {
                return Ended::Io(e);
            }
        }
    }
}
