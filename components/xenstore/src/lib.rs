//! `xenstore`: the only component that talks to XenStore.
//!
//! It owns the domain ring page (a device port; its channel is the XenStore
//! event channel) and does four jobs over that one connection:
//!
//! * **Clients.** It watches `backend/vif`, reads each device's
//!   `frontend-id`, `handle`, `mac`, `ip`, `online`, `frontend` and `mtu` in
//!   one transaction, checks them, gives the vif a client slot and
//!   announces it: [`ClientEvent`] to rules and NAT, [`NetbackCtl::VifUp`] to
//!   netback. A vif that goes offline, changes or vanishes is announced
//!   down, and its slot reused only after every listener heard that
//!   ([`vifs`]).
//! * **Uplink.** It watches its own `device/vif/<devid>` and tells netfront
//!   the backend, MAC, MTU and (from the backend's `ip`) address.
//! * **Identity and shutdown.** It reads its own `domid` and `name`, writes
//!   a status key, advertises `control/feature-poweroff`/`-reboot`, watches
//!   `control/shutdown`, acknowledges a request by clearing it, and reports
//!   it to the runtime as a [`RuntimeEvent`] ([`system`]); so too the end of
//!   start-up (`Ready`, with our domid and name) and each new value of an
//!   optional probe key.
//! * **Access for other components.** netback and netfront send
//!   [`XsRequest`]s; each path is checked against the prefixes
//!   `system.toml` grants that component ([`policy`]) before anything
//!   reaches XenStore. Transactions are retried on `EAGAIN` a bounded number
//!   of times; watches are multiplexed, with the initial event dropped when
//!   asked ([`clients`], [`watches`]).
//!
//! Requests go out as [`jobs`] (one request, or a transaction), at most
//! [`MAX_JOBS`] at once, each with a deadline. The store is input like any
//! other: replies are matched to the request, type and transaction they
//! answer; a reply to nothing, a malformed reply, an oversized message or a
//! broken ring index disconnects cleanly — every pending and later request
//! fails with `Disconnected`, announced clients stay as they are, and the
//! status shows why ([`conn`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod clients;
pub mod conn;
pub mod jobs;
pub mod parse;
pub mod policy;
pub mod system;
pub mod vifs;
pub mod watches;

use heapless::{String, Vec};
use moat_component::{
    BindError, Binder, Component, Context, Duration, Fault, Instant, MsgRx, MsgTx, PortDecl, Ports, Status,
};
use moat_control::{ClientEvent, NetbackCtl, NetfrontCtl, RuntimeEvent, XsRequest};
use moat_xen::xenstore::{Path, Response, XsRing};
use serde::{Deserialize, Serialize};

use crate::clients::{ClientId, Clients};
use crate::conn::{Broken, Conn, answers};
use crate::jobs::{Fail, Job, Step};
use crate::policy::Grant;
use crate::system::{System, Task};
use crate::vifs::Vifs;
use crate::watches::{Owner, Watches};

/// Most jobs in flight.
pub const MAX_JOBS: usize = 8;
/// Jobs moat's own work may use, leaving room for client requests.
pub const INTERNAL_JOBS: usize = 5;
/// How soon to look again at an output that had some room, but not enough.
pub const RECHECK: Duration = Duration::from_millis(10);
/// Abandoned (timed-out) requests whose late replies are still expected.
pub const MAX_ABANDONED: usize = 8;

/// Configuration, from `system.toml`. Fields left out take the Qubes
/// sys-firewall defaults; the `netback`/`netfront` grants are filled in by
/// `moat check` from those components' `caps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct XenstoreConfig {
    /// What netback may touch.
    pub netback: Grant,
    /// What netfront may touch.
    pub netfront: Grant,
    /// Most client vifs (at most [`vifs::MAX_VIFS`]); 0 disables discovery.
    pub max_clients: u8,
    /// The uplink device number under our own `device/vif/`, if any.
    pub uplink_devid: Option<u32>,
    /// Key written once connected (relative to our domain); empty for none.
    pub status_key: String<64>,
    /// Its value.
    pub status_value: String<32>,
    /// A key (relative to our domain) to watch for liveness probes: each
    /// new value is reported to the runtime ([`RuntimeEvent::Probe`]), which
    /// logs it. Empty for none.
    pub probe_key: String<64>,
    /// Handle `control/shutdown` (and advertise that we do).
    pub shutdown: bool,
    /// Our domain id, if known in advance; otherwise read from `domid`.
    pub domid: Option<u16>,
    /// Retries of a transaction that conflicts.
    pub tx_retries: u8,
    /// How long to wait for a reply, in milliseconds.
    pub timeout_ms: u32,
}

impl Default for XenstoreConfig {
    /// A Qubes sys-firewall.
    fn default() -> Self {
        fn s<const N: usize>(v: &str) -> String<N> {
            String::try_from(v).expect("fits")
        }
        XenstoreConfig {
            netback: Grant {
                read: Vec::from_iter([s("/local/domain/*/device/vif")]),
                write: Vec::from_iter([s("backend/vif")]),
            },
            netfront: Grant {
                read: Vec::from_iter([s("/local/domain/*/backend/vif")]),
                write: Vec::from_iter([s("device/vif")]),
            },
            max_clients: 64,
            uplink_devid: Some(0),
            status_key: s("data/moat-status"),
            status_value: s("running"),
            probe_key: String::new(),
            shutdown: true,
            domid: None,
            tx_retries: 8,
            timeout_ms: 10_000,
        }
    }
}

/// The ports.
pub struct XenstorePorts {
    /// The XenStore connection (ring page, decoder, outgoing message).
    conn: Conn,
    from_netback: MsgRx,
    to_netback: MsgTx,
    from_netfront: MsgRx,
    to_netfront: MsgTx,
    clients_to_rules: MsgTx,
    clients_to_nat: MsgTx,
    to_runtime: MsgTx,
}

impl Ports for XenstorePorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::device("store", "XenStoreRing"),
        PortDecl::rx("from_netback", XsRequest::NAME),
        PortDecl::tx("to_netback", NetbackCtl::NAME),
        PortDecl::rx("from_netfront", XsRequest::NAME),
        PortDecl::tx("to_netfront", NetfrontCtl::NAME),
        PortDecl::tx("clients_to_rules", ClientEvent::NAME),
        PortDecl::tx("clients_to_nat", ClientEvent::NAME),
        PortDecl::tx("to_runtime", RuntimeEvent::NAME),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        let (ring, channel) = b.device::<XsRing>("store")?;
        Ok(XenstorePorts {
            conn: Conn::new(ring, channel),
            from_netback: b.msg_rx("from_netback", XsRequest::NAME)?,
            to_netback: b.msg_tx("to_netback", NetbackCtl::NAME)?,
            from_netfront: b.msg_rx("from_netfront", XsRequest::NAME)?,
            to_netfront: b.msg_tx("to_netfront", NetfrontCtl::NAME)?,
            clients_to_rules: b.msg_tx("clients_to_rules", ClientEvent::NAME)?,
            clients_to_nat: b.msg_tx("clients_to_nat", ClientEvent::NAME)?,
            to_runtime: b.msg_tx("to_runtime", RuntimeEvent::NAME)?,
        })
    }
}

/// Who a job is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client component's request.
    Client(ClientId, clients::Pending),
    /// moat's own work.
    Task(Task),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Requests sent to the store.
    pub requests: u64,
    /// Replies received.
    pub replies: u64,
    /// Watch events received.
    pub events: u64,
    /// Events for unknown or stale watches, or outside their watch.
    pub stray_events: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Late replies to timed-out requests.
    pub late_replies: u64,
    /// Jobs that failed (any reason).
    pub failed_jobs: u64,
}

/// The component. (The connection lives in the ports, so a message
/// borrowed from it can be handled while this changes.)
pub struct Xenstore {
    config: XenstoreConfig,
    timeout: Duration,
    now: Instant,
    jobs: [Option<Job<Origin>>; MAX_JOBS],
    next_job: usize,
    abandoned: Vec<u32, MAX_ABANDONED>,
    watches: Watches,
    clients: Clients,
    vifs: Vifs,
    system: System,
    stats: Stats,
    /// Why the store connection is down, if it is.
    broken: Option<Broken>,
    /// Set once the pending jobs were failed after a disconnect.
    disconnect_handled: bool,
}

impl Xenstore {
    /// Our domain id, once known.
    pub fn domid(&self) -> Option<u16> {
        self.system.domid
    }

    /// Our domain's name, once read.
    pub fn name(&self) -> &str {
        &self.system.name
    }

    /// Why the store connection is down, if it is.
    pub fn broken(&self) -> Option<Broken> {
        self.broken
    }
}

impl Component for Xenstore {
    const NAME: &'static str = "xenstore";
    type Config = XenstoreConfig;
    type Ports = XenstorePorts;

    fn init(config: XenstoreConfig, _ports: &mut XenstorePorts, cx: &mut Context) -> Result<Self, Fault> {
        config.netback.validate().map_err(|_| Fault::Config("netback grant has a bad prefix"))?;
        config.netfront.validate().map_err(|_| Fault::Config("netfront grant has a bad prefix"))?;
        if usize::from(config.max_clients) > vifs::MAX_VIFS {
            return Err(Fault::Config("max_clients above the vif table size"));
        }
        if !config.status_key.is_empty() && Path::new(config.status_key.as_bytes()).is_err() {
            return Err(Fault::Config("status_key is not a XenStore path"));
        }
        if !config.probe_key.is_empty() && Path::new(config.probe_key.as_bytes()).is_err() {
            return Err(Fault::Config("probe_key is not a XenStore path"));
        }
        if config.timeout_ms == 0 {
            return Err(Fault::Config("timeout_ms must be positive"));
        }
        // Start at once: the first call sets up the watches.
        cx.again();
        Ok(Xenstore {
            timeout: Duration::from_millis(u64::from(config.timeout_ms)),
            now: cx.now(),
            vifs: Vifs::new(config.max_clients),
            system: System::new(&config),
            config,
            jobs: core::array::from_fn(|_| None),
            next_job: 0,
            abandoned: Vec::new(),
            watches: Watches::default(),
            clients: Clients::default(),
            stats: Stats::default(),
            broken: None,
            disconnect_handled: false,
        })
    }

    fn notified(&mut self, p: &mut XenstorePorts, cx: &mut Context) -> Result<(), Fault> {
        let budget = cx.budget() as usize;
        self.now = cx.now();
        // 1. What the store sent.
        p.conn.flush();
        for _ in 0..budget {
            let result = match p.conn.receive() {
                Some(f) => self.on_frame(f.ty, f.header.req_id, f.header.tx_id, f.payload),
                None => break,
            };
            p.conn.next();
            if let Err(why) = result {
                p.conn.break_off(why);
                break;
            }
        }
        // 2. Deadlines.
        if let Err(why) = self.expire() {
            p.conn.break_off(why);
        }
        self.broken = p.conn.broken;
        if self.broken.is_some() {
            self.disconnected();
        }
        // 3. New work: client requests first, then our own.
        let up = self.broken.is_none();
        self.take_requests(p, up, budget)?;
        if up {
            self.schedule();
        }
        // 4. Send what the jobs want.
        for _ in 0..budget {
            p.conn.flush();
            if !p.conn.can_send() {
                break;
            }
            let Some(i) = self.ready_job() else { break };
            let job = self.jobs[i].as_mut().expect("ready");
            let mut token = [0u8; 16];
            let wire = job.wire(&mut token);
            match p.conn.send(&wire.request, wire.tx_id) {
                Some(id) => {
                    job.in_flight = Some(id);
                    self.stats.requests += 1;
                }
                None => {
                    // Only an unencodable request gets here (our sizes are
                    // bounded, so: a bug). Fail the job, keep going.
                    let job = self.jobs[i].take().expect("ready");
                    self.complete(job, Err(Fail::Store(moat_xen::xs_wire::XsdError::Einval)));
                }
            }
        }
        // A send may have found the ring broken.
        self.broken = p.conn.broken;
        if self.broken.is_some() {
            self.disconnected();
        }
        // 5. Tell the rest of moat; ask to be woken when a full output
        //    frees up.
        self.deliver(p, cx)?;
        // 6. Signals, timers, and whether to come back at once.
        if p.conn.take_moved() {
            cx.notify(p.conn.channel);
        }
        for tx in
            [&mut p.to_netback, &mut p.to_netfront, &mut p.clients_to_rules, &mut p.clients_to_nat, &mut p.to_runtime]
        {
            tx.flush(cx);
        }
        // A client whose request cannot be taken yet is not asked for more:
        // its next request stays put until something it waits for happens
        // (a reply, a free job, our domid), with no spinning meanwhile.
        let up = self.broken.is_none();
        for (c, rx) in [(ClientId::Netback, &mut p.from_netback), (ClientId::Netfront, &mut p.from_netfront)] {
            if self.can_take(c, up) {
                rx.finish(cx)?;
            } else {
                rx.release(cx);
            }
        }
        if let Some(t) = self.next_deadline() {
            cx.wake_at(t);
        }
        // Work that step 5 made possible (a withdrawn vif may be re-read
        // once its withdrawal went out) is started on the next call.
        let more = up && self.system.domid.is_some() && self.free_job(true).is_some() && self.vifs.has_job();
        if p.conn.pending() || (p.conn.can_send() && self.ready_job().is_some()) || more {
            cx.again();
        }
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        let s = &self.stats;
        out.put("store.connected", u64::from(self.broken.is_none()));
        out.put("store.requests", s.requests);
        out.put("store.replies", s.replies);
        out.put("store.events", s.events);
        out.put("error.store_broken", self.broken.map_or(0, broken_code));
        out.put("error.stray_event", s.stray_events);
        out.put("error.timeout", s.timeouts);
        out.put("error.late_reply", s.late_replies);
        out.put("error.job_failed", s.failed_jobs);
        out.put("jobs.active", self.jobs.iter().flatten().count() as u64);
        out.put("watches", self.watches.count() as u64);
        self.system.status(out);
        self.vifs.status(out);
        self.clients.status(out);
    }
}

/// A number for each reason the store was given up on (0: it was not).
fn broken_code(b: Broken) -> u64 {
    match b {
        Broken::RingIndices => 1,
        Broken::Stream(_) => 2,
        Broken::MalformedReply => 3,
        Broken::UnexpectedReply => 4,
        Broken::StoreError(_) => 5,
        Broken::Unresponsive => 6,
    }
}

impl Xenstore {
    /// Handles one message from the store.
    fn on_frame(
        &mut self,
        ty: moat_xen::xs_wire::XsdSockmsgType,
        req_id: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<(), Broken> {
        let rsp = Response::decode(ty, payload).map_err(|_| Broken::MalformedReply)?;
        if let Response::WatchEvent { path, token } = rsp {
            self.stats.events += 1;
            match self.watches.event(token, &path) {
                Ok(Some((owner, slot))) => self.on_event(owner, slot, &path),
                Ok(None) => {}
                Err(_) => self.stats.stray_events += 1,
            }
            return Ok(());
        }
        self.stats.replies += 1;
        let Some(i) = self.jobs.iter().position(|j| j.as_ref().is_some_and(|j| j.in_flight == Some(req_id))) else {
            if let Some(k) = self.abandoned.iter().position(|a| *a == req_id) {
                self.abandoned.swap_remove(k);
                self.stats.late_replies += 1;
                return Ok(());
            }
            return Err(Broken::UnexpectedReply);
        };
        let job = self.jobs[i].as_mut().expect("found");
        let mut token = [0u8; 16];
        let wire = job.wire(&mut token);
        if !answers(wire.request.ty(), ty) || wire.tx_id != tx_id {
            return Err(Broken::UnexpectedReply);
        }
        if let (Some(op), Response::Directory(names)) = (job.current(), &rsp)
            && op.kind == jobs::OpKind::Directory
        {
            let origin = job.origin;
            self.on_directory(origin, names);
        }
        let job = self.jobs[i].as_mut().expect("found");
        if let Step::Done(result) = job.on_reply(&rsp) {
            let job = self.jobs[i].take().expect("found");
            self.complete(job, result);
        }
        Ok(())
    }

    /// A watch fired.
    fn on_event(&mut self, owner: Owner, slot: u8, path: &Path<'_>) {
        match owner {
            Owner::Internal(watches::Internal::Vifs) => self.vifs.on_event(path),
            Owner::Internal(watches::Internal::Shutdown) => self.system.shutdown_changed(),
            Owner::Internal(watches::Internal::Uplink) => self.system.uplink_changed(),
            Owner::Internal(watches::Internal::Probe) => self.system.probe_changed(),
            Owner::Client(client, token) => self.clients.on_event(client, token, slot, path, &mut self.watches),
        }
    }

    /// A directory listing arrived for a job.
    fn on_directory(&mut self, origin: Origin, names: &moat_xen::xenstore::Names<'_>) {
        match origin {
            Origin::Task(Task::ListFrontends) => self.vifs.frontends_listed(names),
            Origin::Task(Task::ListDevices(fid)) => self.vifs.devices_listed(fid, names),
            Origin::Client(c, pending) => self.clients.directory(c, pending, names),
            Origin::Task(_) => {}
        }
    }

    /// A job finished.
    fn complete(&mut self, job: Job<Origin>, result: Result<(), Fail>) {
        if result.is_err() {
            self.stats.failed_jobs += 1;
        }
        match job.origin {
            Origin::Client(c, pending) => self.clients.complete(c, pending, &job, result, &mut self.watches),
            Origin::Task(task) => {
                let ops = &job.ops;
                match task {
                    Task::ListFrontends => self.vifs.list_done(None, result),
                    Task::ListDevices(fid) => self.vifs.list_done(Some(fid), result),
                    Task::ReadVif(slot, epoch) => self.vifs.read_done(slot, epoch, ops, result),
                    _ => {
                        let next = self.system.complete(task, ops, result, &mut self.watches, self.now);
                        let deadline = self.now.saturating_add(self.timeout);
                        if let Some(job) = next.and_then(|t| self.system.job_for(t, &self.config, deadline)) {
                            // The job that just finished left a slot free.
                            let started = self.start(job);
                            debug_assert!(started);
                        }
                    }
                }
            }
        }
    }

    /// A job slot for new work, if `internal` work may have one.
    fn free_job(&self, internal: bool) -> Option<usize> {
        let used = self.jobs.iter().flatten().filter(|j| matches!(j.origin, Origin::Task(_))).count();
        if internal && used >= INTERNAL_JOBS {
            return None;
        }
        self.jobs.iter().position(Option::is_none)
    }

    /// Starts a job if a slot is free; false if not.
    fn start(&mut self, job: Job<Origin>) -> bool {
        let internal = matches!(job.origin, Origin::Task(_));
        match self.free_job(internal) {
            Some(i) => {
                self.jobs[i] = Some(job);
                true
            }
            None => false,
        }
    }

    /// The next job with something to send, round robin.
    fn ready_job(&mut self) -> Option<usize> {
        for k in 0..MAX_JOBS {
            let i = (self.next_job + k) % MAX_JOBS;
            if self.jobs[i].as_ref().is_some_and(|j| !j.busy()) {
                self.next_job = (i + 1) % MAX_JOBS;
                return Some(i);
            }
        }
        None
    }

    /// Fails jobs past their deadline.
    fn expire(&mut self) -> Result<(), Broken> {
        let now = self.now;
        for i in 0..MAX_JOBS {
            if self.jobs[i].as_ref().is_some_and(|j| j.deadline <= now) {
                let mut job = self.jobs[i].take().expect("checked");
                self.stats.timeouts += 1;
                if let Some(id) = job.abandon()
                    && self.abandoned.push(id).is_err()
                {
                    // The store stopped answering altogether.
                    self.complete(job, Err(Fail::Timeout));
                    return Err(Broken::Unresponsive);
                }
                self.complete(job, Err(Fail::Timeout));
            }
        }
        Ok(())
    }

    /// The earliest job deadline.
    fn next_deadline(&self) -> Option<Instant> {
        let jobs = self.jobs.iter().flatten().map(|j| j.deadline).min();
        match (jobs, self.system.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fails everything after the connection broke (once).
    fn disconnected(&mut self) {
        if self.disconnect_handled {
            return;
        }
        self.disconnect_handled = true;
        for i in 0..MAX_JOBS {
            if let Some(mut job) = self.jobs[i].take() {
                job.abandon();
                self.complete(job, Err(Fail::Disconnected));
            }
        }
        self.abandoned.clear();
    }

    /// Starts our own pending work while job slots allow.
    fn schedule(&mut self) {
        let now = self.now;
        let deadline = now.saturating_add(self.timeout);
        while self.free_job(true).is_some() {
            let domid = self.system.domid;
            let job = match self.system.next_job(&self.config, &mut self.watches, now, deadline) {
                Some(j) => j,
                None => match domid.and_then(|_| self.vifs.next_job(self.config.tx_retries, deadline)) {
                    Some(j) => j,
                    None => break,
                },
            };
            let started = self.start(job);
            debug_assert!(started, "a slot was free");
        }
    }

    /// Could a request from `c` be taken now? One request in flight per
    /// client, room to hold its reply, a free job, and (requests wait in
    /// their ring until then) our own domain id known.
    fn can_take(&self, c: ClientId, up: bool) -> bool {
        self.clients.ready(c) && (!up || (self.free_job(false).is_some() && self.system.domid.is_some()))
    }

    /// Takes client requests.
    fn take_requests(&mut self, p: &mut XenstorePorts, up: bool, budget: usize) -> Result<(), Fault> {
        let deadline = self.now.saturating_add(self.timeout);
        for c in [ClientId::Netback, ClientId::Netfront] {
            // At most `budget` frames per client per call, garbage included.
            for _ in 0..budget {
                if !self.can_take(c, up) {
                    break;
                }
                let rx = match c {
                    ClientId::Netback => &mut p.from_netback,
                    ClientId::Netfront => &mut p.from_netfront,
                };
                let mut buf = [0u8; clients::REQUEST_BUF];
                let req = match rx.recv::<XsRequest>(&mut buf)? {
                    None => break,
                    Some(Err(_)) => {
                        self.clients.bad_message(c);
                        continue;
                    }
                    Some(Ok(r)) => r,
                };
                let grant = match c {
                    ClientId::Netback => &self.config.netback,
                    ClientId::Netfront => &self.config.netfront,
                };
                let own = self.system.domid.unwrap_or(0);
                let started =
                    self.clients.request(c, req, grant, own, up, &mut self.watches, self.config.tx_retries, deadline);
                if let Some(job) = started {
                    let ok = self.start(job);
                    debug_assert!(ok, "a slot was free");
                }
            }
        }
        Ok(())
    }

    /// Sends announcements, replies and events that are waiting; for each
    /// output still holding something back, asks to be woken when it has
    /// room (or to run again if it has room already).
    fn deliver(&mut self, p: &mut XenstorePorts, cx: &mut Context) -> Result<(), Fault> {
        let budget = cx.budget() as usize;
        let mut progress =
            self.vifs.deliver(&mut p.clients_to_rules, &mut p.clients_to_nat, &mut p.to_netback, budget)?;
        progress |= self.system.deliver(&mut p.to_netfront, &mut p.to_runtime)?;
        progress |= self.clients.deliver(ClientId::Netback, &mut p.to_netback, &mut self.watches)?;
        progress |= self.clients.deliver(ClientId::Netfront, &mut p.to_netfront, &mut self.watches)?;
        let vifs = self.vifs.pending();
        let (netfront, runtime) = self.system.pending();
        let waiting = [
            (vifs, &mut p.clients_to_rules),
            (vifs, &mut p.clients_to_nat),
            (vifs || self.clients.pending(ClientId::Netback, &self.watches), &mut p.to_netback),
            (netfront || self.clients.pending(ClientId::Netfront, &self.watches), &mut p.to_netfront),
            (runtime, &mut p.to_runtime),
        ];
        for (pending, tx) in waiting {
            // Some room but not enough for the next message, and nothing
            // went out this call: look again a little later rather than
            // spin (the wakeup armed here may already have passed).
            if pending && tx.wait_space()? {
                if progress {
                    cx.again();
                } else {
                    cx.wake_at(self.now.saturating_add(RECHECK));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The component and its ports are plain values the runtime keeps; keep
    /// an eye on their size (no heap, so this is all the memory there is).
    #[test]
    fn sizes_stay_bounded() {
        let (component, ports) = (core::mem::size_of::<Xenstore>(), core::mem::size_of::<XenstorePorts>());
        std::println!("xenstore: component {component} bytes, ports {ports} bytes");
        assert!(component < 40 * 1024, "component is {component} bytes");
        assert!(ports < 8 * 1024, "ports are {ports} bytes");
    }
}
