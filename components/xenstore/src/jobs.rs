//! Jobs: one XenStore request, or a transaction of several, in flight.
//!
//! A job sends one wire request at a time and moves on when its reply
//! arrives. A transaction job starts a transaction, runs its operations
//! inside it, and ends it; if the commit fails with `EAGAIN` it starts over,
//! at most `retries` times. Read results are kept in the job until it is
//! done, so a retried transaction reports only what its committed run saw.

use heapless::Vec;
use moat_component::Instant;
use moat_xen::xenstore::{Path, PathBuf, Request, Response};
use moat_xen::xs_wire::XsdError;

use crate::policy::CANON_CAP;

/// Most operations in one job.
pub const MAX_OPS: usize = moat_control::xenstore::XS_TX_OPS;
/// Longest value a job reads or writes.
pub const VALUE_CAP: usize = moat_control::xenstore::XS_VALUE_MAX;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `XS_READ`.
    Read,
    /// `XS_WRITE`.
    Write,
    /// `XS_MKDIR`.
    Mkdir,
    /// `XS_RM`.
    Rm,
    /// `XS_DIRECTORY` (single-op jobs only; the names go to the caller
    /// straight from the reply).
    Directory,
    /// `XS_WATCH` of watch slot `slot` generation `epoch`.
    Watch {
        /// Watch table slot.
        slot: u8,
        /// Its generation (part of the wire token).
        epoch: u16,
    },
    /// `XS_UNWATCH`.
    Unwatch {
        /// Watch table slot.
        slot: u8,
        /// Its generation.
        epoch: u16,
    },
}

/// One operation, and after a read, its result.
#[derive(Clone, Debug)]
pub struct Op {
    /// What.
    pub kind: OpKind,
    /// Where (as it goes on the wire).
    pub path: PathBuf<CANON_CAP>,
    /// The value to write, or the value read.
    pub value: Vec<u8, VALUE_CAP>,
    /// After a read: the node existed.
    pub found: bool,
}

impl Op {
    /// An operation on `path`.
    pub fn new(kind: OpKind, path: Path<'_>) -> Option<Op> {
        Some(Op { kind, path: PathBuf::from_path(path).ok()?, value: Vec::new(), found: false })
    }

    /// A write of `value` to `path`.
    pub fn write(path: Path<'_>, value: &[u8]) -> Option<Op> {
        let mut op = Op::new(OpKind::Write, path)?;
        op.value = Vec::from_slice(value).ok()?;
        Some(op)
    }
}

/// Why a job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// XenStore said no.
    Store(XsdError),
    /// The transaction conflicted on every try.
    Conflict,
    /// No reply in time.
    Timeout,
    /// The connection is down.
    Disconnected,
    /// A value read was longer than [`VALUE_CAP`].
    TooLarge,
}

impl Fail {
    /// Worth trying again soon: the store was slow or others were writing.
    /// (Refusals and oversized values would fail the same way again, and a
    /// broken connection stays broken: retrying those would only spin.)
    pub fn is_transient(self) -> bool {
        matches!(self, Fail::Timeout | Fail::Conflict)
    }
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// A transaction job that has not started its transaction.
    Begin,
    /// Running operation `n`.
    Op(usize),
    /// Ending the transaction.
    End,
}

/// The next thing a job wants on the wire.
pub struct Wire<'a> {
    /// The request.
    pub request: Request<'a>,
    /// Its transaction id.
    pub tx_id: u32,
}

/// A job.
#[derive(Clone, Debug)]
pub struct Job<O> {
    /// Who asked, for the completion.
    pub origin: O,
    /// The operations.
    pub ops: Vec<Op, MAX_OPS>,
    tx: bool,
    tx_id: u32,
    stage: Stage,
    failure: Option<Fail>,
    retries_left: u8,
    /// When to give up waiting.
    pub deadline: Instant,
    /// The request id of the wire request in flight.
    pub in_flight: Option<u32>,
}

/// What a reply did to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// More to send.
    Next,
    /// Finished.
    Done(Result<(), Fail>),
}

impl<O> Job<O> {
    /// A job of one operation (no transaction).
    pub fn single(origin: O, op: Op, deadline: Instant) -> Self {
        let mut ops = Vec::new();
        let _ = ops.push(op);
        Job {
            origin,
            ops,
            tx: false,
            tx_id: 0,
            stage: Stage::Op(0),
            failure: None,
            retries_left: 0,
            deadline,
            in_flight: None,
        }
    }

    /// A transaction of `ops`, retried up to `retries` times on conflict.
    pub fn transaction(origin: O, ops: Vec<Op, MAX_OPS>, retries: u8, deadline: Instant) -> Self {
        Job {
            origin,
            ops,
            tx: true,
            tx_id: 0,
            stage: Stage::Begin,
            failure: None,
            retries_left: retries,
            deadline,
            in_flight: None,
        }
    }

    /// True if the job is waiting for a reply.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The operation a reply to the request in flight answers (`None` for
    /// transaction start/end).
    pub fn current(&self) -> Option<&Op> {
        match self.stage {
            Stage::Op(i) => self.ops.get(i),
            _ => None,
        }
    }

    /// The request to send next. `token` receives the wire token of a watch
    /// operation.
    pub fn wire<'a>(&'a self, token: &'a mut [u8; 16]) -> Wire<'a> {
        match self.stage {
            Stage::Begin => Wire { request: Request::TransactionStart, tx_id: 0 },
            Stage::End => {
                Wire { request: Request::TransactionEnd { commit: self.failure.is_none() }, tx_id: self.tx_id }
            }
            Stage::Op(i) => {
                let op = &self.ops[i];
                let path = op.path.path().expect("built from a valid path");
                let request = match op.kind {
                    OpKind::Read => Request::Read(path),
                    OpKind::Write => Request::Write { path, value: &op.value },
                    OpKind::Mkdir => Request::Mkdir(path),
                    OpKind::Rm => Request::Rm(path),
                    OpKind::Directory => Request::Directory(path),
                    OpKind::Watch { slot, epoch } => Request::Watch { path, token: watch_token(slot, epoch, token) },
                    OpKind::Unwatch { slot, epoch } => {
                        Request::Unwatch { path, token: watch_token(slot, epoch, token) }
                    }
                };
                Wire { request, tx_id: self.tx_id }
            }
        }
    }

    /// Applies the reply to the request in flight.
    pub fn on_reply(&mut self, rsp: &Response<'_>) -> Step {
        self.in_flight = None;
        match self.stage {
            Stage::Begin => match rsp {
                Response::TransactionStart(id) => {
                    self.tx_id = *id;
                    self.stage = if self.ops.is_empty() { Stage::End } else { Stage::Op(0) };
                    Step::Next
                }
                Response::Error(e) => Step::Done(Err(Fail::Store(*e))),
                _ => Step::Done(Err(Fail::Store(XsdError::Eio))),
            },
            Stage::Op(i) => {
                let result = self.apply(i, rsp);
                match (result, self.tx) {
                    (Ok(()), _) if i + 1 < self.ops.len() => {
                        self.stage = Stage::Op(i + 1);
                        Step::Next
                    }
                    (Ok(()), false) => Step::Done(Ok(())),
                    (Ok(()), true) => {
                        self.stage = Stage::End;
                        Step::Next
                    }
                    (Err(f), false) => Step::Done(Err(f)),
                    (Err(f), true) => {
                        // End (abort) the transaction, then report.
                        self.failure = Some(f);
                        self.stage = Stage::End;
                        Step::Next
                    }
                }
            }
            Stage::End => match (rsp, self.failure) {
                (Response::Ok, None) => Step::Done(Ok(())),
                (Response::Ok, Some(f)) => Step::Done(Err(f)),
                (Response::Error(XsdError::Eagain), None) if self.retries_left > 0 => {
                    self.retries_left -= 1;
                    self.restart();
                    Step::Next
                }
                (Response::Error(XsdError::Eagain), None) => Step::Done(Err(Fail::Conflict)),
                (Response::Error(e), None) => Step::Done(Err(Fail::Store(*e))),
                (_, Some(f)) => Step::Done(Err(f)),
                _ => Step::Done(Err(Fail::Store(XsdError::Eio))),
            },
        }
    }

    fn restart(&mut self) {
        self.tx_id = 0;
        self.stage = Stage::Begin;
        for op in self.ops.iter_mut().filter(|o| o.kind == OpKind::Read) {
            op.value.clear();
            op.found = false;
        }
    }

    fn apply(&mut self, i: usize, rsp: &Response<'_>) -> Result<(), Fail> {
        let op = &mut self.ops[i];
        match (op.kind, rsp) {
            (OpKind::Read, Response::Read(v)) => {
                op.value = Vec::from_slice(v).map_err(|_| Fail::TooLarge)?;
                op.found = true;
                Ok(())
            }
            // Inside a transaction a missing node is a result, not a failure.
            (OpKind::Read, Response::Error(XsdError::Enoent)) if self.tx => {
                op.found = false;
                Ok(())
            }
            (OpKind::Directory, Response::Directory(_)) => Ok(()),
            (OpKind::Read | OpKind::Directory, Response::Error(e)) => Err(Fail::Store(*e)),
            (_, Response::Ok) if !matches!(op.kind, OpKind::Read | OpKind::Directory) => Ok(()),
            (_, Response::Error(e)) => Err(Fail::Store(*e)),
            _ => Err(Fail::Store(XsdError::Eio)),
        }
    }

    /// The job is being abandoned (timeout, disconnect): nothing more will
    /// be sent for it.
    pub fn abandon(&mut self) -> Option<u32> {
        self.in_flight.take()
    }
}

/// The wire token of watch `slot`, generation `epoch`: `m<slot>.<epoch>`.
pub fn watch_token(slot: u8, epoch: u16, buf: &mut [u8; 16]) -> &[u8] {
    let mut d = [0u8; 20];
    let mut n = 0;
    buf[n] = b'm';
    n += 1;
    for part in [u64::from(slot), u64::from(epoch)] {
        let s = moat_xen::xenstore::msg::fmt_u64(part, &mut d);
        buf[n..n + s.len()].copy_from_slice(s);
        n += s.len();
        buf[n] = b'.';
        n += 1;
    }
    &buf[..n - 1]
}

/// Parses a wire token made by [`watch_token`].
pub fn parse_token(t: &[u8]) -> Option<(u8, u16)> {
    let rest = t.strip_prefix(b"m")?;
    let dot = rest.iter().position(|b| *b == b'.')?;
    Some((crate::parse::number(&rest[..dot])?, crate::parse::number(&rest[dot + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_xen::xenstore::Names;

    fn p(s: &str) -> Path<'_> {
        Path::new(s.as_bytes()).unwrap()
    }

    fn reads(paths: &[&str]) -> Vec<Op, MAX_OPS> {
        paths.iter().map(|s| Op::new(OpKind::Read, p(s)).unwrap()).collect()
    }

    #[test]
    fn tokens_round_trip() {
        let mut b = [0u8; 16];
        assert_eq!(watch_token(15, 65535, &mut b), b"m15.65535");
        assert_eq!(parse_token(b"m15.65535"), Some((15, 65535)));
        for bad in [&b"15.1"[..], b"m15", b"m.1", b"m1.", b"m300.1", b"m1.1.1", b"x1.1"] {
            assert_eq!(parse_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn transaction_runs_retries_and_reports_reads() {
        let mut j = Job::transaction((), reads(&["a", "b"]), 1, Instant::ZERO);
        let mut t = [0u8; 16];
        assert_eq!(j.wire(&mut t).request, Request::TransactionStart);
        assert_eq!(j.on_reply(&Response::TransactionStart(9)), Step::Next);
        let w = j.wire(&mut t);
        assert_eq!((w.request, w.tx_id), (Request::Read(p("a")), 9));
        assert_eq!(j.on_reply(&Response::Read(b"old")), Step::Next);
        assert_eq!(j.on_reply(&Response::Error(XsdError::Enoent)), Step::Next, "missing is a result");
        assert_eq!(j.wire(&mut t).request, Request::TransactionEnd { commit: true });
        assert_eq!(j.on_reply(&Response::Error(XsdError::Eagain)), Step::Next, "one retry");
        assert!(j.ops[0].value.is_empty(), "results of the failed run are dropped");
        assert_eq!(j.wire(&mut t).request, Request::TransactionStart);
        j.on_reply(&Response::TransactionStart(10));
        j.on_reply(&Response::Read(b"new"));
        j.on_reply(&Response::Read(b"b"));
        assert_eq!(j.wire(&mut t).tx_id, 10);
        assert_eq!(j.on_reply(&Response::Error(XsdError::Eagain)), Step::Done(Err(Fail::Conflict)), "retries used up");

        let mut j = Job::transaction((), reads(&["a"]), 3, Instant::ZERO);
        j.on_reply(&Response::TransactionStart(1));
        j.on_reply(&Response::Read(b"v"));
        assert_eq!(j.on_reply(&Response::Ok), Step::Done(Ok(())));
        assert_eq!((&j.ops[0].value[..], j.ops[0].found), (&b"v"[..], true));
    }

    #[test]
    fn failure_inside_a_transaction_aborts_it() {
        let mut ops = reads(&["a"]);
        ops.push(Op::write(p("b"), b"1").unwrap()).unwrap();
        let mut j = Job::transaction((), ops, 3, Instant::ZERO);
        let mut t = [0u8; 16];
        j.on_reply(&Response::TransactionStart(1));
        j.on_reply(&Response::Read(b"v"));
        assert_eq!(j.on_reply(&Response::Error(XsdError::Eacces)), Step::Next);
        assert_eq!(j.wire(&mut t).request, Request::TransactionEnd { commit: false });
        assert_eq!(j.on_reply(&Response::Ok), Step::Done(Err(Fail::Store(XsdError::Eacces))));
    }

    #[test]
    fn single_ops_and_unexpected_replies() {
        let mut j = Job::single((), Op::new(OpKind::Read, p("a")).unwrap(), Instant::ZERO);
        assert_eq!(j.on_reply(&Response::Error(XsdError::Enoent)), Step::Done(Err(Fail::Store(XsdError::Enoent))));
        let mut j = Job::single((), Op::new(OpKind::Read, p("a")).unwrap(), Instant::ZERO);
        assert_eq!(j.on_reply(&Response::Read(&[0; VALUE_CAP + 1])), Step::Done(Err(Fail::TooLarge)));
        let mut j = Job::single((), Op::write(p("a"), b"x").unwrap(), Instant::ZERO);
        assert_eq!(j.on_reply(&Response::Read(b"?")), Step::Done(Err(Fail::Store(XsdError::Eio))));
        let mut j = Job::single((), Op::new(OpKind::Directory, p("a")).unwrap(), Instant::ZERO);
        assert_eq!(j.on_reply(&Response::Directory(Names::EMPTY)), Step::Done(Ok(())));
    }
}
