//! Serving the components that need XenStore (netback, netfront).
//!
//! Each client has at most one request in flight and one reply waiting for
//! room in its output ring; its next request stays in its input ring until
//! then, which is all the backpressure it needs. Every path is checked
//! against the client's [`Grant`] before anything reaches XenStore. Watch
//! events wait in a small queue per client; if that overflows, the watch is
//! flagged and one event for the watched path itself is delivered later
//! (XenStore watchers must rescan on any event anyway).

use heapless::{Deque, String, Vec};
use moat_component::{Fault, Instant, MsgTx, Status};
use moat_control::xenstore::{XS_DIR_MAX, XS_NAME_MAX, XsPath, XsValue};
use moat_control::{NetbackCtl, NetfrontCtl, XsError, XsOp, XsReply, XsRequest};
use moat_xen::xenstore::{Names, Path};
use moat_xen::xs_wire::XsdError;

use crate::Origin;
use crate::jobs::{Fail, Job, MAX_OPS, Op, OpKind};
use crate::policy::Grant;
use crate::watches::{Owner, Watches};

/// Bytes for one incoming request frame (the largest transaction fits).
pub const REQUEST_BUF: usize = 2048;
/// Scratch for encoding one outgoing message.
const REPLY_BUF: usize = 2048;
/// Watch events waiting per client.
const EVENT_QUEUE: usize = 8;

/// A client component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientId {
    /// netback.
    Netback,
    /// netfront.
    Netfront,
}

impl ClientId {
    fn index(self) -> usize {
        self as usize
    }
}

/// What a client's in-flight request was, to shape its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The client's request id.
    pub id: u32,
    /// Which kind of request.
    pub kind: Kind,
}

/// Request kinds, by reply shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Replies with a value.
    Read,
    /// Replies `Done`.
    Done,
    /// Replies with names (built when the listing arrives).
    Directory,
    /// A watch in table slot `slot`.
    Watch(u8, u16),
    /// An unwatch of table slot `slot`.
    Unwatch(u8, u16),
    /// Replies with the reads of a transaction.
    Transaction,
}

#[derive(Default)]
struct One {
    in_flight: bool,
    reply: Option<XsReply>,
    events: Deque<(u32, XsPath), EVENT_QUEUE>,
    requests: u64,
    forbidden: u64,
    bad_messages: u64,
    events_coalesced: u64,
}

/// Both clients.
#[derive(Default)]
pub struct Clients {
    c: [One; 2],
}

fn xs_error(f: Fail) -> XsError {
    match f {
        Fail::Store(XsdError::Enoent) => XsError::NotFound,
        Fail::Store(XsdError::Eacces | XsdError::Eperm) => XsError::AccessDenied,
        Fail::Store(XsdError::Einval | XsdError::E2big) => XsError::Invalid,
        Fail::Store(XsdError::Eagain) | Fail::Conflict => XsError::Conflict,
        Fail::Store(e) => XsError::Store(e.errno() as u16),
        Fail::Timeout => XsError::Timeout,
        Fail::Disconnected => XsError::Disconnected,
        Fail::TooLarge => XsError::TooLarge,
    }
}

fn path_of(p: &XsPath) -> Result<Path<'_>, XsError> {
    Path::new(p.as_bytes()).map_err(|_| XsError::Invalid)
}

fn xs_path(p: &Path<'_>) -> Option<XsPath> {
    core::str::from_utf8(p.as_bytes()).ok().and_then(|s| String::try_from(s).ok())
}

impl Clients {
    /// True if the client may have its next request taken.
    pub fn ready(&self, c: ClientId) -> bool {
        let one = &self.c[c.index()];
        !one.in_flight && one.reply.is_none()
    }

    /// True if something waits for room in the client's output.
    pub fn pending(&self, c: ClientId, watches: &Watches) -> bool {
        let one = &self.c[c.index()];
        one.reply.is_some() || !one.events.is_empty() || watches.overflowed(c).is_some()
    }

    /// A frame that did not decode as an [`XsRequest`] (it has no id to
    /// answer).
    pub fn bad_message(&mut self, c: ClientId) {
        self.c[c.index()].bad_messages += 1;
    }

    fn fail(&mut self, c: ClientId, id: u32, error: XsError) -> Option<Job<Origin>> {
        if error == XsError::Forbidden {
            self.c[c.index()].forbidden += 1;
        }
        self.c[c.index()].reply = Some(XsReply::Failed { id, error });
        None
    }

    /// Checks a request and makes its job, or answers it at once.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        c: ClientId,
        req: XsRequest,
        grant: &Grant,
        own: u16,
        up: bool,
        watches: &mut Watches,
        retries: u8,
        deadline: Instant,
    ) -> Option<Job<Origin>> {
        let id = req.id();
        self.c[c.index()].requests += 1;
        if !up {
            return self.fail(c, id, XsError::Disconnected);
        }
        let built = build(c, &req, grant, own, watches, retries, deadline);
        match built {
            Ok(job) => {
                self.c[c.index()].in_flight = true;
                Some(job)
            }
            Err(e) => self.fail(c, id, e),
        }
    }

    /// The listing for a client's directory request arrived.
    pub fn directory(&mut self, c: ClientId, pending: Pending, names: &Names<'_>) {
        let mut out: Vec<String<XS_NAME_MAX>, XS_DIR_MAX> = Vec::new();
        let mut truncated = false;
        for n in names.iter() {
            match core::str::from_utf8(n).ok().and_then(|s| String::try_from(s).ok()) {
                Some(s) if out.push(s.clone()).is_ok() => {}
                _ => truncated = true,
            }
        }
        self.c[c.index()].reply = Some(XsReply::Directory { id: pending.id, names: out, truncated });
    }

    /// A client's job finished.
    pub fn complete(
        &mut self,
        c: ClientId,
        p: Pending,
        job: &Job<Origin>,
        result: Result<(), Fail>,
        watches: &mut Watches,
    ) {
        let one = &mut self.c[c.index()];
        one.in_flight = false;
        let id = p.id;
        let reply = match (p.kind, result) {
            (Kind::Watch(slot, epoch), r) => match r {
                Ok(()) => {
                    if let Some(w) = watches.get(slot, epoch) {
                        w.active = true;
                    }
                    XsReply::Done { id }
                }
                Err(f) => {
                    watches.remove(slot, epoch);
                    XsReply::Failed { id, error: xs_error(f) }
                }
            },
            (Kind::Unwatch(slot, epoch), r) => {
                // Gone locally whatever the store said: later events for it
                // are stray.
                watches.remove(slot, epoch);
                match r {
                    Ok(()) | Err(Fail::Store(XsdError::Enoent)) => XsReply::Done { id },
                    Err(f) => XsReply::Failed { id, error: xs_error(f) },
                }
            }
            (_, Err(f)) => XsReply::Failed { id, error: xs_error(f) },
            (Kind::Directory, Ok(())) => return, // already built from the listing
            (Kind::Done, Ok(())) => XsReply::Done { id },
            (Kind::Read, Ok(())) => {
                XsReply::Value { id, value: XsValue::from_slice(&job.ops[0].value).unwrap_or_default() }
            }
            (Kind::Transaction, Ok(())) => {
                let reads = job
                    .ops
                    .iter()
                    .filter(|o| o.kind == OpKind::Read)
                    .map(|o| o.found.then(|| XsValue::from_slice(&o.value).unwrap_or_default()))
                    .collect();
                XsReply::Transaction { id, reads }
            }
        };
        one.reply = Some(reply);
    }

    /// A client's watch fired.
    pub fn on_event(&mut self, c: ClientId, token: u32, slot: u8, path: &Path<'_>, watches: &mut Watches) {
        let one = &mut self.c[c.index()];
        let queued = xs_path(path).is_some_and(|p| one.events.push_back((token, p)).is_ok());
        if !queued {
            one.events_coalesced += 1;
            if let Some(w) = watches.at(slot) {
                w.overflow = true;
            }
        }
    }

    /// Sends what waits: the reply, then events. True if anything went
    /// out. (Bounded: one reply, [`EVENT_QUEUE`] events, one event per
    /// watch.)
    pub fn deliver(&mut self, c: ClientId, tx: &mut MsgTx, watches: &mut Watches) -> Result<bool, Fault> {
        let one = &mut self.c[c.index()];
        let mut sent = false;
        if let Some(r) = one.reply.take() {
            if !send(c, tx, r.clone())? {
                one.reply = Some(r);
                return Ok(sent);
            }
            sent = true;
        }
        while let Some((token, path)) = one.events.pop_front() {
            if !send(c, tx, XsReply::Event { token, path: path.clone() })? {
                let _ = one.events.push_front((token, path));
                return Ok(sent);
            }
            sent = true;
        }
        while let Some(slot) = watches.overflowed(c) {
            let w = watches.at(slot).expect("found");
            let Owner::Client(_, token) = w.owner else { break };
            let path = w.path.path().ok().and_then(|p| xs_path(&p)).unwrap_or_default();
            if !send(c, tx, XsReply::Event { token, path })? {
                return Ok(sent);
            }
            sent = true;
            watches.at(slot).expect("found").overflow = false;
        }
        Ok(sent)
    }

    /// Counters.
    pub fn status(&self, out: &mut dyn Status) {
        for (name, one) in [("netback", &self.c[0]), ("netfront", &self.c[1])] {
            let mut key = String::<48>::new();
            for (what, v) in [
                ("requests", one.requests),
                ("forbidden", one.forbidden),
                ("bad_message", one.bad_messages),
                ("events_coalesced", one.events_coalesced),
            ] {
                key.clear();
                let _ = key.push_str("client.");
                let _ = key.push_str(name);
                let _ = key.push('.');
                let _ = key.push_str(what);
                out.put(&key, v);
            }
        }
    }
}

fn send(c: ClientId, tx: &mut MsgTx, reply: XsReply) -> Result<bool, Fault> {
    let mut scratch = [0u8; REPLY_BUF];
    match c {
        ClientId::Netback => tx.send(&NetbackCtl::Xs(reply), &mut scratch),
        ClientId::Netfront => tx.send(&NetfrontCtl::Xs(reply), &mut scratch),
    }
}

/// Turns a checked request into a job.
fn build(
    c: ClientId,
    req: &XsRequest,
    grant: &Grant,
    own: u16,
    watches: &mut Watches,
    retries: u8,
    deadline: Instant,
) -> Result<Job<Origin>, XsError> {
    let read_ok = |p: &Path<'_>| if grant.may_read(p, own) { Ok(()) } else { Err(XsError::Forbidden) };
    let write_ok = |p: &Path<'_>| if grant.may_write(p, own) { Ok(()) } else { Err(XsError::Forbidden) };
    let op = |kind, p: &Path<'_>| Op::new(kind, *p).ok_or(XsError::Invalid);
    let single = |id, kind, op| Ok(Job::single(Origin::Client(c, Pending { id, kind }), op, deadline));
    match req {
        XsRequest::Read { id, path } => {
            let p = path_of(path)?;
            read_ok(&p)?;
            single(*id, Kind::Read, op(OpKind::Read, &p)?)
        }
        XsRequest::Directory { id, path } => {
            let p = path_of(path)?;
            read_ok(&p)?;
            single(*id, Kind::Directory, op(OpKind::Directory, &p)?)
        }
        XsRequest::Write { id, path, value } => {
            let p = path_of(path)?;
            write_ok(&p)?;
            single(*id, Kind::Done, Op::write(p, value).ok_or(XsError::Invalid)?)
        }
        XsRequest::Mkdir { id, path } => {
            let p = path_of(path)?;
            write_ok(&p)?;
            single(*id, Kind::Done, op(OpKind::Mkdir, &p)?)
        }
        XsRequest::Rm { id, path } => {
            let p = path_of(path)?;
            write_ok(&p)?;
            single(*id, Kind::Done, op(OpKind::Rm, &p)?)
        }
        XsRequest::Watch { id, path, token, skip_initial } => {
            let p = path_of(path)?;
            if p.is_special() {
                return Err(XsError::Forbidden);
            }
            read_ok(&p)?;
            if watches.find_client(c, *token).is_some() {
                return Err(XsError::BadWatch);
            }
            let (slot, epoch) = watches.add(Owner::Client(c, *token), p, *skip_initial).ok_or(XsError::BadWatch)?;
            single(*id, Kind::Watch(slot, epoch), op(OpKind::Watch { slot, epoch }, &p)?)
        }
        XsRequest::Unwatch { id, token } => {
            let (slot, epoch) = watches.find_client(c, *token).ok_or(XsError::BadWatch)?;
            let w = watches.get(slot, epoch).expect("found");
            if w.removing {
                return Err(XsError::BadWatch);
            }
            w.removing = true;
            let p = w.path.path().map_err(|_| XsError::Invalid)?;
            let op = Op::new(OpKind::Unwatch { slot, epoch }, p).ok_or(XsError::Invalid)?;
            single(*id, Kind::Unwatch(slot, epoch), op)
        }
        XsRequest::Transaction { id, ops } => {
            if ops.is_empty() {
                return Err(XsError::Invalid);
            }
            let mut out: Vec<Op, MAX_OPS> = Vec::new();
            for o in ops {
                let made = match o {
                    XsOp::Read(path) => {
                        let p = path_of(path)?;
                        read_ok(&p)?;
                        op(OpKind::Read, &p)?
                    }
                    XsOp::Write(path, value) => {
                        let p = path_of(path)?;
                        write_ok(&p)?;
                        Op::write(p, value).ok_or(XsError::Invalid)?
                    }
                    XsOp::Mkdir(path) => {
                        let p = path_of(path)?;
                        write_ok(&p)?;
                        op(OpKind::Mkdir, &p)?
                    }
                    XsOp::Rm(path) => {
                        let p = path_of(path)?;
                        write_ok(&p)?;
                        op(OpKind::Rm, &p)?
                    }
                };
                out.push(made).map_err(|_| XsError::Invalid)?;
            }
            let origin = Origin::Client(c, Pending { id: *id, kind: Kind::Transaction });
            Ok(Job::transaction(origin, out, retries, deadline))
        }
    }
}
