//! moat's own business with XenStore: who we are, our status key, the
//! shutdown protocol, and the uplink device.
//!
//! Start-up runs a short list of steps, each one job: read `domid` (unless
//! configured), set up the internal watches, read `name`, write the status
//! key, advertise `control/feature-poweroff` and `-reboot`. A step that
//! fails for a transient reason (timeout, disconnect) is retried after
//! [`RETRY`]; one the store refuses outright is given up and counted.
//!
//! Once every start-up step is done (or given up), the runtime hears
//! `Ready` with our domid and name, once. With a probe key configured, we
//! watch it and report each value it takes (nothing while it is absent or
//! empty, as at the watch's first firing).
//!
//! Shutdown: when `control/shutdown` fires we read it; if it holds a
//! request we read and clear it in one transaction (so a request written
//! meanwhile is not lost, and our own clearing write, which fires the watch
//! again, reads back empty and stops there), then tell the runtime.

use heapless::{String, Vec};
use moat_component::{Duration, Fault, Instant, MsgTx, Status};
use moat_control::xenstore::XsPath;
use moat_control::{NetfrontCtl, RuntimeEvent, RuntimeText, ShutdownReason, Uplink, runtime_text};
use moat_xen::xenstore::{Path, PathBuf};
use moat_xen::xs_wire::XsdError;

use crate::jobs::{Fail, Job, MAX_OPS, Op, OpKind};
use crate::watches::{Internal, Owner, Watches};
use crate::{Origin, XenstoreConfig, parse};

/// Delay before retrying a start-up step that failed for a transient reason.
pub const RETRY: Duration = Duration::from_secs(1);

/// moat's own jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Read `domid`.
    Domid,
    /// Read `name`.
    Name,
    /// Write the status key.
    Status,
    /// Advertise shutdown support.
    Features,
    /// Register an internal watch (table slot, generation).
    Watch(Internal, u8, u16),
    /// List `backend/vif`.
    ListFrontends,
    /// List `backend/vif/<domid>`.
    ListDevices(u16),
    /// Read a vif's keys (table slot, generation).
    ReadVif(u8, u16),
    /// Read `control/shutdown`.
    ReadShutdown,
    /// Read and clear `control/shutdown`.
    ClearShutdown,
    /// Read the uplink's frontend keys.
    ReadUplink,
    /// Read the uplink backend's `ip`.
    ReadUplinkIp,
    /// Read the probe key.
    ReadProbe,
}

/// Start-up steps still to do (bits).
mod step {
    pub const DOMID: u8 = 1;
    pub const WATCH_VIFS: u8 = 2;
    pub const WATCH_SHUTDOWN: u8 = 4;
    pub const WATCH_UPLINK: u8 = 8;
    pub const NAME: u8 = 16;
    pub const STATUS: u8 = 32;
    pub const FEATURES: u8 = 64;
    pub const WATCH_PROBE: u8 = 128;
}

/// State of moat's own XenStore business.
pub struct System {
    /// Our domain id.
    pub domid: Option<u16>,
    /// Our domain's name.
    pub name: String<64>,
    todo: u8,
    running: u8,
    /// Earliest time to retry failed steps.
    pub retry_at: Option<Instant>,
    shutdown_dirty: bool,
    shutdown_running: bool,
    report: Option<ShutdownReason>,
    uplink_dirty: bool,
    uplink_running: bool,
    staging: Option<Uplink>,
    uplink: Option<Uplink>,
    uplink_told: bool,
    gone_pending: Option<u32>,
    probe_dirty: bool,
    probe_running: bool,
    probe_report: Option<RuntimeText>,
    ready_sent: bool,
    counts: [u64; 7],
}

const SHUTDOWN_REQUESTS: usize = 0;
const SHUTDOWN_UNKNOWN: usize = 1;
const STEP_FAILED: usize = 2;
const UPLINK_INVALID: usize = 3;
const UPLINK_ANNOUNCED: usize = 4;
const STATUS_WRITTEN: usize = 5;
const PROBES: usize = 6;

fn path(s: &[u8]) -> Option<Path<'_>> {
    Path::new(s).ok()
}

impl System {
    /// Start-up steps per the configuration.
    pub fn new(c: &XenstoreConfig) -> Self {
        let mut todo = step::NAME;
        if c.domid.is_none() {
            todo |= step::DOMID;
        }
        if c.max_clients > 0 {
            todo |= step::WATCH_VIFS;
        }
        if c.shutdown {
            todo |= step::WATCH_SHUTDOWN | step::FEATURES;
        }
        if c.uplink_devid.is_some() {
            todo |= step::WATCH_UPLINK;
        }
        if !c.status_key.is_empty() {
            todo |= step::STATUS;
        }
        if !c.probe_key.is_empty() {
            todo |= step::WATCH_PROBE;
        }
        System {
            domid: c.domid,
            name: String::new(),
            todo,
            running: 0,
            retry_at: None,
            shutdown_dirty: false,
            shutdown_running: false,
            report: None,
            uplink_dirty: false,
            uplink_running: false,
            staging: None,
            uplink: None,
            uplink_told: false,
            gone_pending: None,
            probe_dirty: false,
            probe_running: false,
            probe_report: None,
            ready_sent: false,
            counts: [0; 7],
        }
    }

    /// `control/shutdown` fired.
    pub fn shutdown_changed(&mut self) {
        self.shutdown_dirty = true;
    }

    /// The uplink's frontend directory fired.
    pub fn uplink_changed(&mut self) {
        self.uplink_dirty = true;
    }

    /// The probe key fired.
    pub fn probe_changed(&mut self) {
        self.probe_dirty = true;
    }

    /// The next job of ours, if any.
    pub fn next_job(
        &mut self,
        c: &XenstoreConfig,
        w: &mut Watches,
        now: Instant,
        deadline: Instant,
    ) -> Option<Job<Origin>> {
        let task = |t| Origin::Task(t);
        let ready = self.retry_at.is_none_or(|t| t <= now);
        if ready {
            self.retry_at = None;
        }
        let pending = self.todo & !self.running;
        let pick = |bit: u8| ready && pending & bit != 0;
        let single = |t, op| Some(Job::single(task(t), op, deadline));
        if pick(step::DOMID) {
            self.running |= step::DOMID;
            return single(Task::Domid, Op::new(OpKind::Read, path(b"domid")?)?);
        }
        for (bit, kind) in [
            (step::WATCH_VIFS, Internal::Vifs),
            (step::WATCH_SHUTDOWN, Internal::Shutdown),
            (step::WATCH_UPLINK, Internal::Uplink),
            (step::WATCH_PROBE, Internal::Probe),
        ] {
            if !pick(bit) {
                continue;
            }
            let p: PathBuf<72> = match kind {
                Internal::Vifs => PathBuf::parse(b"backend/vif").ok()?,
                Internal::Shutdown => PathBuf::parse(b"control/shutdown").ok()?,
                Internal::Uplink => {
                    let mut p = PathBuf::parse(b"device/vif").ok()?;
                    p.push_u32(c.uplink_devid.unwrap_or(0)).ok()?;
                    p
                }
                Internal::Probe => PathBuf::parse(c.probe_key.as_bytes()).ok()?,
            };
            let (slot, epoch) = match w.find_internal(kind) {
                Some(found) => found,
                None => w.add(Owner::Internal(kind), p.path().ok()?, false)?,
            };
            self.running |= bit;
            let op = Op::new(OpKind::Watch { slot, epoch }, p.path().ok()?)?;
            return single(Task::Watch(kind, slot, epoch), op);
        }
        if pick(step::NAME) {
            self.running |= step::NAME;
            return single(Task::Name, Op::new(OpKind::Read, path(b"name")?)?);
        }
        if pick(step::STATUS) {
            self.running |= step::STATUS;
            return single(Task::Status, Op::write(path(c.status_key.as_bytes())?, c.status_value.as_bytes())?);
        }
        if pick(step::FEATURES) {
            self.running |= step::FEATURES;
            let mut ops: Vec<Op, MAX_OPS> = Vec::new();
            ops.push(Op::write(path(b"control/feature-poweroff")?, b"1")?).ok()?;
            ops.push(Op::write(path(b"control/feature-reboot")?, b"1")?).ok()?;
            return Some(Job::transaction(task(Task::Features), ops, c.tx_retries, deadline));
        }
        if self.shutdown_dirty && !self.shutdown_running {
            self.shutdown_dirty = false;
            self.shutdown_running = true;
            return single(Task::ReadShutdown, Op::new(OpKind::Read, path(b"control/shutdown")?)?);
        }
        if self.probe_dirty && !self.probe_running {
            self.probe_dirty = false;
            self.probe_running = true;
            return single(Task::ReadProbe, Op::new(OpKind::Read, path(c.probe_key.as_bytes())?)?);
        }
        if self.uplink_dirty && !self.uplink_running && self.domid.is_some() {
            let devid = c.uplink_devid?;
            self.uplink_dirty = false;
            self.uplink_running = true;
            let mut ops: Vec<Op, MAX_OPS> = Vec::new();
            for key in [&b"backend"[..], b"backend-id", b"mac", b"mtu"] {
                let mut p = PathBuf::<48>::parse(b"device/vif").ok()?;
                p.push_u32(devid).ok()?.push(key).ok()?;
                ops.push(Op::new(OpKind::Read, p.path().ok()?)?).ok()?;
            }
            return Some(Job::transaction(task(Task::ReadUplink), ops, c.tx_retries, deadline));
        }
        None
    }

    /// One of our jobs finished; returns a follow-up task to start at once
    /// (see [`System::job_for`]).
    pub fn complete(
        &mut self,
        task: Task,
        ops: &[Op],
        result: Result<(), Fail>,
        w: &mut Watches,
        now: Instant,
    ) -> Option<Task> {
        let transient = |r: &Result<(), Fail>| matches!(r, Err(Fail::Timeout | Fail::Disconnected));
        let value = |i: usize| ops.get(i).filter(|o| o.found).map(|o| &o.value[..]);
        let step_done = |bit: u8, me: &mut Self| {
            me.running &= !bit;
            if result.is_ok() {
                me.todo &= !bit;
            } else if transient(&result) {
                me.retry_at = Some(now.saturating_add(RETRY));
            } else {
                me.todo &= !bit;
                me.counts[STEP_FAILED] += 1;
            }
        };
        match task {
            Task::Domid => {
                let id = result.ok().and_then(|_| value(0)).and_then(parse::number::<u16>);
                match id {
                    Some(d) => {
                        self.domid = Some(d);
                        step_done(step::DOMID, self);
                    }
                    None => {
                        // Without our domid nothing else works: keep trying.
                        self.running &= !step::DOMID;
                        self.retry_at = Some(now.saturating_add(RETRY));
                        self.counts[STEP_FAILED] += 1;
                    }
                }
            }
            Task::Name => {
                if let (Ok(()), Some(v)) = (result, value(0)) {
                    self.name.clear();
                    for ch in core::str::from_utf8(v).unwrap_or("").chars().take(64) {
                        let _ = self.name.push(ch);
                    }
                }
                step_done(step::NAME, self);
            }
            Task::Status => {
                if result.is_ok() {
                    self.counts[STATUS_WRITTEN] += 1;
                }
                step_done(step::STATUS, self);
            }
            Task::Features => step_done(step::FEATURES, self),
            Task::Watch(kind, slot, epoch) => {
                let bit = match kind {
                    Internal::Vifs => step::WATCH_VIFS,
                    Internal::Shutdown => step::WATCH_SHUTDOWN,
                    Internal::Uplink => step::WATCH_UPLINK,
                    Internal::Probe => step::WATCH_PROBE,
                };
                match result {
                    Ok(()) => {
                        if let Some(x) = w.get(slot, epoch) {
                            x.active = true;
                        }
                    }
                    Err(_) => {
                        w.remove(slot, epoch);
                    }
                }
                step_done(bit, self);
            }
            Task::ReadShutdown => {
                self.shutdown_running = false;
                match result {
                    Ok(()) if value(0).is_some_and(|v| !v.is_empty()) => return Some(Task::ClearShutdown),
                    Ok(()) | Err(Fail::Store(XsdError::Enoent)) => {}
                    Err(f) => self.shutdown_dirty = f.is_transient(),
                }
            }
            Task::ClearShutdown => {
                self.shutdown_running = false;
                match (result, ops.first()) {
                    (Ok(()), Some(op)) if op.found && !op.value.is_empty() => match ShutdownReason::parse(&op.value) {
                        Some(r) => {
                            self.report = Some(r);
                            self.counts[SHUTDOWN_REQUESTS] += 1;
                        }
                        None => self.counts[SHUTDOWN_UNKNOWN] += 1,
                    },
                    (Ok(()), _) => {}
                    (Err(f), _) => self.shutdown_dirty = f.is_transient(),
                }
            }
            Task::ReadProbe => {
                self.probe_running = false;
                match result {
                    Ok(()) => {
                        if let Some(v) = value(0).filter(|v| !v.is_empty()) {
                            // Not UTF-8: reported as a marker that it changed.
                            self.probe_report =
                                Some(runtime_text(v).unwrap_or_else(|| runtime_text(b"?").unwrap_or_default()));
                            self.counts[PROBES] += 1;
                        }
                    }
                    Err(Fail::Store(XsdError::Enoent)) => {}
                    Err(f) => self.probe_dirty = f.is_transient(),
                }
            }
            Task::ReadUplink => {
                self.uplink_running = false;
                return self.uplink_read(ops, result);
            }
            Task::ReadUplinkIp => {
                self.uplink_running = false;
                let mut up = self.staging.take()?;
                if let (Ok(()), Some(v)) = (result, value(0)) {
                    (up.ipv4, up.ipv6) = parse::any_ip(v);
                } else if result.is_err_and(|f| f.is_transient()) {
                    self.uplink_dirty = true;
                    return None;
                }
                if self.uplink.as_ref() != Some(&up) {
                    self.uplink = Some(up);
                    self.uplink_told = false;
                }
            }
            Task::ListFrontends | Task::ListDevices(_) | Task::ReadVif(..) => {}
        }
        None
    }

    fn uplink_read(&mut self, ops: &[Op], result: Result<(), Fail>) -> Option<Task> {
        if result.is_err() {
            if result.is_err_and(|f| f.is_transient()) {
                self.uplink_dirty = true;
            }
            return None;
        }
        let val = |i: usize| ops.get(i).filter(|o| o.found).map(|o| &o.value[..]);
        let Some(backend) = val(0) else {
            // The device directory is gone.
            if let Some(old) = self.uplink.take()
                && self.uplink_told
            {
                self.gone_pending = Some(old.devid);
            }
            self.uplink_told = false;
            return None;
        };
        let parsed = (|| {
            let b = Path::new(backend).ok().filter(|p| p.is_absolute())?;
            let backend: XsPath = String::try_from(core::str::from_utf8(b.as_bytes()).ok()?).ok()?;
            Some(Uplink {
                devid: 0,
                backend_id: parse::number::<u16>(val(1)?)?,
                backend,
                mac: parse::mac(val(2)?)?,
                mtu: parse::mtu(val(3))?,
                ipv4: None,
                ipv6: None,
            })
        })();
        match parsed {
            Some(up) => {
                self.staging = Some(up);
                Some(Task::ReadUplinkIp)
            }
            None => {
                self.counts[UPLINK_INVALID] += 1;
                None
            }
        }
    }

    /// The job for a follow-up task.
    pub fn job_for(&mut self, t: Task, c: &XenstoreConfig, deadline: Instant) -> Option<Job<Origin>> {
        match t {
            Task::ClearShutdown => {
                let p = path(b"control/shutdown")?;
                let mut ops: Vec<Op, MAX_OPS> = Vec::new();
                ops.push(Op::new(OpKind::Read, p)?).ok()?;
                ops.push(Op::write(p, b"")?).ok()?;
                self.shutdown_running = true;
                Some(Job::transaction(Origin::Task(t), ops, c.tx_retries, deadline))
            }
            Task::ReadUplinkIp => {
                let up = self.staging.as_mut()?;
                up.devid = c.uplink_devid.unwrap_or(0);
                let mut p =
                    PathBuf::<{ moat_control::xenstore::XS_PATH_MAX + 8 }>::parse(up.backend.as_bytes()).ok()?;
                p.push(b"ip").ok()?;
                self.uplink_running = true;
                Some(Job::single(Origin::Task(t), Op::new(OpKind::Read, p.path().ok()?)?, deadline))
            }
            _ => None,
        }
    }

    /// Tells netfront and the runtime what they need to know.
    /// True if anything went out.
    pub fn deliver(&mut self, netfront: &mut MsgTx, runtime: &mut MsgTx) -> Result<bool, Fault> {
        let mut scratch = [0u8; 256];
        let mut sent = false;
        if self.ready_due() {
            let name = runtime_text(self.name.as_bytes()).unwrap_or_default();
            let domid = self.domid.unwrap_or(u16::MAX);
            if !runtime.send(&RuntimeEvent::Ready { domid, name }, &mut scratch)? {
                return Ok(sent);
            }
            self.ready_sent = true;
            sent = true;
        }
        if let Some(r) = self.report
            && runtime.send(&RuntimeEvent::Shutdown(r), &mut scratch)?
        {
            self.report = None;
            sent = true;
        }
        if let Some(v) = &self.probe_report
            && runtime.send(&RuntimeEvent::Probe(v.clone()), &mut scratch)?
        {
            self.probe_report = None;
            sent = true;
        }
        if let Some(devid) = self.gone_pending {
            if !netfront.send(&NetfrontCtl::UplinkGone { devid }, &mut scratch)? {
                return Ok(sent);
            }
            self.gone_pending = None;
            sent = true;
        }
        if let (Some(up), false) = (&self.uplink, self.uplink_told)
            && netfront.send(&NetfrontCtl::Uplink(up.clone()), &mut scratch)?
        {
            self.uplink_told = true;
            self.counts[UPLINK_ANNOUNCED] += 1;
            sent = true;
        }
        Ok(sent)
    }

    /// Start-up is over (every step done or given up, our domid known) and
    /// the runtime has not heard so yet.
    fn ready_due(&self) -> bool {
        !self.ready_sent && self.todo == 0 && self.running == 0 && self.domid.is_some()
    }

    /// True if netfront or the runtime still has to be told something.
    pub fn pending(&self) -> (bool, bool) {
        (
            self.gone_pending.is_some() || (self.uplink.is_some() && !self.uplink_told),
            self.report.is_some() || self.probe_report.is_some() || self.ready_due(),
        )
    }

    /// Counters.
    pub fn status(&self, out: &mut dyn Status) {
        out.put("identity.domid", self.domid.map_or(u64::MAX, u64::from));
        out.put("startup.pending", u64::from(self.todo.count_ones()));
        out.put("startup.failed", self.counts[STEP_FAILED]);
        out.put("status_key.written", self.counts[STATUS_WRITTEN]);
        out.put("startup.ready", u64::from(self.ready_sent));
        out.put("probe.values", self.counts[PROBES]);
        out.put("shutdown.requests", self.counts[SHUTDOWN_REQUESTS]);
        out.put("shutdown.unknown", self.counts[SHUTDOWN_UNKNOWN]);
        out.put("uplink.up", u64::from(self.uplink.is_some()));
        out.put("uplink.announced", self.counts[UPLINK_ANNOUNCED]);
        out.put("uplink.invalid", self.counts[UPLINK_INVALID]);
    }
}
