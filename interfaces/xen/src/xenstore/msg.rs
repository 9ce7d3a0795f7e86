//! XenStore messages: every request and reply payload of
//! `docs/misc/xenstore.txt`, encoded into and decoded from caller buffers.
//!
//! Decoding is strict: a payload must have exactly the shape its type
//! requires (NUL terminators included), numbers are plain decimal within
//! range, paths and permissions pass their validators. Anything else is
//! [`MsgError::Malformed`] (or a more precise error): from a store, that is a
//! protocol violation to count and disconnect on, never something to guess
//! at.

use crate::DomId;
use crate::xenstore::path::{Path, PathError};
use crate::xenstore::perms::{PermError, Perms};
use crate::xs_wire::{XENSTORE_PAYLOAD_MAX, XSD_SOCKMSG_SIZE, XsdError, XsdSockmsg, XsdSockmsgType};

/// Largest encoded message: header plus the largest payload.
pub const MAX_MESSAGE: usize = XSD_SOCKMSG_SIZE + XENSTORE_PAYLOAD_MAX;

/// Why a message could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// The payload would exceed [`XENSTORE_PAYLOAD_MAX`], or the output
    /// buffer is too small.
    TooBig,
    /// The payload does not have the shape its type requires.
    Malformed,
    /// A path in the payload is invalid.
    BadPath(PathError),
    /// A permission list in the payload is invalid.
    BadPerms(PermError),
    /// A type this side never sends or accepts in this direction.
    UnexpectedType(XsdSockmsgType),
    /// An `XS_ERROR` payload that names no known error.
    UnknownError,
}

impl From<PathError> for MsgError {
    fn from(e: PathError) -> Self {
        MsgError::BadPath(e)
    }
}

impl From<PermError> for MsgError {
    fn from(e: PermError) -> Self {
        MsgError::BadPerms(e)
    }
}

/// A watch token: opaque bytes without NUL, chosen by the watcher.
pub type Token<'a> = &'a [u8];

/// A request, client to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `XS_CONTROL`: implementation-specific command and parameters, raw.
    Control(&'a [u8]),
    /// `XS_DIRECTORY`: the children of a node.
    Directory(Path<'a>),
    /// `XS_DIRECTORY_PART`: children from a byte offset into the list.
    DirectoryPart {
        /// The node.
        path: Path<'a>,
        /// Byte offset into the child list.
        offset: u32,
    },
    /// `XS_READ`.
    Read(Path<'a>),
    /// `XS_GET_PERMS`.
    GetPerms(Path<'a>),
    /// `XS_WATCH`: fires once at once, then on every change at or below.
    Watch {
        /// Node (or `@` special) to watch.
        path: Path<'a>,
        /// Echoed in every event.
        token: Token<'a>,
    },
    /// `XS_UNWATCH`.
    Unwatch {
        /// As given to `Watch`.
        path: Path<'a>,
        /// As given to `Watch`.
        token: Token<'a>,
    },
    /// `XS_TRANSACTION_START` (header `tx_id` must be 0).
    TransactionStart,
    /// `XS_TRANSACTION_END`: commit (`T`) or abort (`F`) the header's `tx_id`.
    TransactionEnd {
        /// Commit rather than discard.
        commit: bool,
    },
    /// `XS_INTRODUCE` (dom0 only).
    Introduce {
        /// The new domain.
        domid: DomId,
        /// Its store ring's frame.
        mfn: u64,
        /// Its unbound store event channel.
        evtchn: u32,
    },
    /// `XS_RELEASE` (dom0 only).
    Release(DomId),
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath(DomId),
    /// `XS_WRITE`: creates missing parents.
    Write {
        /// The node.
        path: Path<'a>,
        /// Its new value (binary, no terminator).
        value: &'a [u8],
    },
    /// `XS_MKDIR`.
    Mkdir(Path<'a>),
    /// `XS_RM`: removes the node and everything below.
    Rm(Path<'a>),
    /// `XS_SET_PERMS`.
    SetPerms {
        /// The node.
        path: Path<'a>,
        /// Owner first.
        perms: Perms<'a>,
    },
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced(DomId),
    /// `XS_RESUME` (dom0 only).
    Resume(DomId),
    /// `XS_SET_TARGET` (dom0 only).
    SetTarget {
        /// The domain that gains access.
        domid: DomId,
        /// The domain it targets.
        target: DomId,
    },
    /// `XS_RESET_WATCHES`: drop all of this connection's watches and
    /// transactions.
    ResetWatches,
}

/// A reply or event, store to client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// `XS_ERROR`.
    Error(XsdError),
    /// `OK`: the success reply of every request without a payload of its own.
    Ok,
    /// `XS_READ`: the value.
    Read(&'a [u8]),
    /// `XS_DIRECTORY`: child names.
    Directory(Names<'a>),
    /// `XS_DIRECTORY_PART`.
    DirectoryPart {
        /// The node's generation count (changes when the node changes).
        generation: u64,
        /// Child names from the requested offset.
        names: Names<'a>,
        /// The list ends in this part.
        complete: bool,
    },
    /// `XS_GET_PERMS`.
    GetPerms(Perms<'a>),
    /// `XS_TRANSACTION_START`: the new transaction id.
    TransactionStart(u32),
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath(Path<'a>),
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced(bool),
    /// `XS_CONTROL`: raw.
    Control(&'a [u8]),
    /// `XS_WATCH_EVENT`: unsolicited, `req_id` and `tx_id` 0.
    WatchEvent {
        /// The node that changed (or the watched path, on removal of a
        /// parent).
        path: Path<'a>,
        /// The watch's token.
        token: Token<'a>,
    },
}

/// A list of NUL-terminated child names, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names<'a>(&'a [u8]);

impl<'a> Names<'a> {
    /// The empty list.
    pub const EMPTY: Names<'static> = Names(b"");

    /// Checks `name\0name\0…` (possibly empty): every name a non-empty single
    /// path component.
    pub fn new(bytes: &'a [u8]) -> Result<Self, MsgError> {
        if bytes.is_empty() {
            return Ok(Names(bytes));
        }
        if bytes.last() != Some(&0) {
            return Err(MsgError::Malformed);
        }
        for name in bytes[..bytes.len() - 1].split(|b| *b == 0) {
            check_name(name)?;
        }
        Ok(Names(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let body = self.0.split_last().map_or(&[][..], |(_, b)| b);
        body.split(|b| *b == 0).filter(|n| !n.is_empty())
    }

    /// Number of names.
    pub fn count(&self) -> usize {
        self.iter().count()
    }
}

/// A valid child name: one non-empty path component.
pub fn check_name(name: &[u8]) -> Result<(), MsgError> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(MsgError::Malformed);
    }
    Path::new(name)?;
    Ok(())
}

impl<'a> Request<'a> {
    /// The header type of this request.
    pub fn ty(&self) -> XsdSockmsgType {
        use XsdSockmsgType as T;
        match self {
            Request::Control(_) => T::Control,
            Request::Directory(_) => T::Directory,
            Request::DirectoryPart { .. } => T::DirectoryPart,
            Request::Read(_) => T::Read,
            Request::GetPerms(_) => T::GetPerms,
            Request::Watch { .. } => T::Watch,
            Request::Unwatch { .. } => T::Unwatch,
            Request::TransactionStart => T::TransactionStart,
            Request::TransactionEnd { .. } => T::TransactionEnd,
            Request::Introduce { .. } => T::Introduce,
            Request::Release(_) => T::Release,
            Request::GetDomainPath(_) => T::GetDomainPath,
            Request::Write { .. } => T::Write,
            Request::Mkdir(_) => T::Mkdir,
            Request::Rm(_) => T::Rm,
            Request::SetPerms { .. } => T::SetPerms,
            Request::IsDomainIntroduced(_) => T::IsDomainIntroduced,
            Request::Resume(_) => T::Resume,
            Request::SetTarget { .. } => T::SetTarget,
            Request::ResetWatches => T::ResetWatches,
        }
    }

    /// Encodes header and payload into `out`; returns the message length.
    pub fn encode(&self, req_id: u32, tx_id: u32, out: &mut [u8]) -> Result<usize, MsgError> {
        let mut w = Writer::new(out)?;
        match *self {
            Request::Control(raw) => w.put(raw)?,
            Request::Directory(p) | Request::Read(p) | Request::GetPerms(p) | Request::Mkdir(p) | Request::Rm(p) => {
                w.string(p.as_bytes())?
            }
            Request::DirectoryPart { path, offset } => {
                w.string(path.as_bytes())?;
                w.number(u64::from(offset))?;
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                check_token(token)?;
                w.string(path.as_bytes())?;
                w.string(token)?;
            }
            Request::TransactionStart | Request::ResetWatches => w.string(b"")?,
            Request::TransactionEnd { commit } => w.string(if commit { b"T" } else { b"F" })?,
            Request::Introduce { domid, mfn, evtchn } => {
                w.number(u64::from(domid))?;
                w.number(mfn)?;
                w.number(u64::from(evtchn))?;
            }
            Request::Release(d) | Request::GetDomainPath(d) | Request::IsDomainIntroduced(d) | Request::Resume(d) => {
                w.number(u64::from(d))?
            }
            Request::Write { path, value } => {
                w.string(path.as_bytes())?;
                w.put(value)?;
            }
            Request::SetPerms { path, perms } => {
                w.string(path.as_bytes())?;
                w.put(perms.as_bytes())?;
            }
            Request::SetTarget { domid, target } => {
                w.number(u64::from(domid))?;
                w.number(u64::from(target))?;
            }
        }
        w.finish(self.ty() as u32, req_id, tx_id)
    }

    /// Decodes the payload of a request of type `ty`.
    pub fn decode(ty: XsdSockmsgType, p: &'a [u8]) -> Result<Self, MsgError> {
        use XsdSockmsgType as T;
        Ok(match ty {
            T::Control => Request::Control(p),
            T::Directory => Request::Directory(path(one(p)?)?),
            T::Read => Request::Read(path(one(p)?)?),
            T::GetPerms => Request::GetPerms(path(one(p)?)?),
            T::Mkdir => Request::Mkdir(path(one(p)?)?),
            T::Rm => Request::Rm(path(one(p)?)?),
            T::DirectoryPart => {
                let [a, b] = strings(p)?;
                let offset = parse_u64(b).and_then(|n| u32::try_from(n).ok()).ok_or(MsgError::Malformed)?;
                Request::DirectoryPart { path: path(a)?, offset }
            }
            T::Watch | T::Unwatch => {
                let [a, token] = strings(p)?;
                let path = path(a)?;
                if ty == T::Watch { Request::Watch { path, token } } else { Request::Unwatch { path, token } }
            }
            T::TransactionStart => {
                empty(p)?;
                Request::TransactionStart
            }
            T::ResetWatches => {
                empty(p)?;
                Request::ResetWatches
            }
            T::TransactionEnd => match one(p)? {
                b"T" => Request::TransactionEnd { commit: true },
                b"F" => Request::TransactionEnd { commit: false },
                _ => return Err(MsgError::Malformed),
            },
            T::Introduce => {
                let [d, m, e] = strings(p)?;
                Request::Introduce { domid: domid(d)?, mfn: number(m)?, evtchn: u32_of(e)? }
            }
            T::Release => Request::Release(domid(one(p)?)?),
            T::GetDomainPath => Request::GetDomainPath(domid(one(p)?)?),
            T::IsDomainIntroduced => Request::IsDomainIntroduced(domid(one(p)?)?),
            T::Resume => Request::Resume(domid(one(p)?)?),
            T::SetTarget => {
                let [d, t] = strings(p)?;
                Request::SetTarget { domid: domid(d)?, target: domid(t)? }
            }
            T::Write => {
                let nul = p.iter().position(|b| *b == 0).ok_or(MsgError::Malformed)?;
                Request::Write { path: path(&p[..nul])?, value: &p[nul + 1..] }
            }
            T::SetPerms => {
                let nul = p.iter().position(|b| *b == 0).ok_or(MsgError::Malformed)?;
                Request::SetPerms { path: path(&p[..nul])?, perms: Perms::new(&p[nul + 1..])? }
            }
            T::WatchEvent | T::Error => return Err(MsgError::UnexpectedType(ty)),
        })
    }
}

impl<'a> Response<'a> {
    /// The header type this response goes out with, in reply to a request of
    /// type `request`.
    pub fn header_type(&self, request: XsdSockmsgType) -> XsdSockmsgType {
        match self {
            Response::Error(_) => XsdSockmsgType::Error,
            Response::WatchEvent { .. } => XsdSockmsgType::WatchEvent,
            _ => request,
        }
    }

    /// Encodes a reply to a request of type `request` (ignored for errors
    /// and watch events, which have their own types).
    pub fn encode(&self, request: XsdSockmsgType, req_id: u32, tx_id: u32, out: &mut [u8]) -> Result<usize, MsgError> {
        let mut w = Writer::new(out)?;
        match *self {
            Response::Error(e) => w.string(e.name().as_bytes())?,
            Response::Ok => w.string(b"OK")?,
            Response::Read(v) | Response::Control(v) => w.put(v)?,
            Response::Directory(names) => w.put(names.as_bytes())?,
            Response::DirectoryPart { generation, names, complete } => {
                w.number(generation)?;
                w.put(names.as_bytes())?;
                if complete {
                    w.string(b"")?;
                }
            }
            Response::GetPerms(perms) => w.put(perms.as_bytes())?,
            Response::TransactionStart(id) => w.number(u64::from(id))?,
            Response::GetDomainPath(p) => w.string(p.as_bytes())?,
            Response::IsDomainIntroduced(yes) => w.string(if yes { b"T" } else { b"F" })?,
            Response::WatchEvent { path, token } => {
                check_token(token)?;
                w.string(path.as_bytes())?;
                w.string(token)?;
            }
        }
        let (req_id, tx_id) = match self {
            Response::WatchEvent { .. } => (0, 0),
            _ => (req_id, tx_id),
        };
        w.finish(self.header_type(request) as u32, req_id, tx_id)
    }

    /// Decodes a message from the store whose header type is `ty`: an error,
    /// a watch event, or the reply to a request of type `ty`.
    pub fn decode(ty: XsdSockmsgType, p: &'a [u8]) -> Result<Self, MsgError> {
        use XsdSockmsgType as T;
        Ok(match ty {
            T::Error => Response::Error(XsdError::from_name(one(p)?).ok_or(MsgError::UnknownError)?),
            T::WatchEvent => {
                let [a, token] = strings(p)?;
                Response::WatchEvent { path: path(a)?, token }
            }
            T::Read => Response::Read(p),
            T::Control => Response::Control(p),
            T::Directory => {
                // A lone NUL is an empty list too (tolerated, never sent).
                Response::Directory(if p == b"\0" { Names::EMPTY } else { Names::new(p)? })
            }
            T::DirectoryPart => {
                let nul = p.iter().position(|b| *b == 0).ok_or(MsgError::Malformed)?;
                let generation = number(&p[..nul])?;
                let rest = &p[nul + 1..];
                // The list ends with an extra empty string when complete.
                let (names, complete) = match rest {
                    [] => (rest, false),
                    [0] => (&rest[..0], true),
                    [.., 0, 0] => (&rest[..rest.len() - 1], true),
                    _ => (rest, false),
                };
                Response::DirectoryPart { generation, names: Names::new(names)?, complete }
            }
            T::GetPerms => Response::GetPerms(Perms::new(p)?),
            T::TransactionStart => Response::TransactionStart(u32_of(one(p)?)?),
            T::GetDomainPath => Response::GetDomainPath(path(one(p)?)?),
            T::IsDomainIntroduced => match one(p)? {
                b"T" => Response::IsDomainIntroduced(true),
                b"F" => Response::IsDomainIntroduced(false),
                _ => return Err(MsgError::Malformed),
            },
            T::Watch
            | T::Unwatch
            | T::TransactionEnd
            | T::Introduce
            | T::Release
            | T::Write
            | T::Mkdir
            | T::Rm
            | T::SetPerms
            | T::Resume
            | T::SetTarget
            | T::ResetWatches => match one(p)? {
                b"OK" => Response::Ok,
                _ => return Err(MsgError::Malformed),
            },
        })
    }
}

/// Header and payload of one complete message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header, with `type` already known to be a defined type.
    pub header: XsdSockmsg,
    /// The type, decoded.
    pub ty: XsdSockmsgType,
    /// `header.len` bytes of payload.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits one whole message (header and exactly `len` bytes of payload).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MsgError> {
        let (h, payload) = bytes.split_at_checked(XSD_SOCKMSG_SIZE).ok_or(MsgError::Malformed)?;
        let header = header_of(h.try_into().map_err(|_| MsgError::Malformed)?);
        if header.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(MsgError::TooBig);
        }
        if payload.len() != header.len as usize {
            return Err(MsgError::Malformed);
        }
        let ty = XsdSockmsgType::from_u32(header.r#type).ok_or(MsgError::Malformed)?;
        Ok(Frame { header, ty, payload })
    }
}

/// Reads a header from its 16 little-endian bytes.
pub fn header_of(b: &[u8; XSD_SOCKMSG_SIZE]) -> XsdSockmsg {
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    XsdSockmsg { r#type: word(0), req_id: word(4), tx_id: word(8), len: word(12) }
}

struct Writer<'o> {
    out: &'o mut [u8],
    n: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut [u8]) -> Result<Self, MsgError> {
        if out.len() < XSD_SOCKMSG_SIZE {
            return Err(MsgError::TooBig);
        }
        Ok(Writer { out, n: XSD_SOCKMSG_SIZE })
    }

    fn put(&mut self, b: &[u8]) -> Result<(), MsgError> {
        let end = self.n + b.len();
        if end > self.out.len() || end - XSD_SOCKMSG_SIZE > XENSTORE_PAYLOAD_MAX {
            return Err(MsgError::TooBig);
        }
        self.out[self.n..end].copy_from_slice(b);
        self.n = end;
        Ok(())
    }

    /// A NUL-terminated string (which must hold no NUL itself).
    fn string(&mut self, s: &[u8]) -> Result<(), MsgError> {
        if s.contains(&0) {
            return Err(MsgError::Malformed);
        }
        self.put(s)?;
        self.put(&[0])
    }

    fn number(&mut self, n: u64) -> Result<(), MsgError> {
        let mut d = [0u8; 20];
        let s = fmt_u64(n, &mut d);
        self.string(s)
    }

    fn finish(self, ty: u32, req_id: u32, tx_id: u32) -> Result<usize, MsgError> {
        let len = (self.n - XSD_SOCKMSG_SIZE) as u32;
        for (i, v) in [ty, req_id, tx_id, len].into_iter().enumerate() {
            self.out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        Ok(self.n)
    }
}

fn check_token(t: &[u8]) -> Result<(), MsgError> {
    if t.contains(&0) { Err(MsgError::Malformed) } else { Ok(()) }
}

/// Exactly `K` NUL-terminated strings and nothing else.
fn strings<const K: usize>(p: &[u8]) -> Result<[&[u8]; K], MsgError> {
    let mut out = [&p[..0]; K];
    let mut rest = p;
    for slot in out.iter_mut() {
        let nul = rest.iter().position(|b| *b == 0).ok_or(MsgError::Malformed)?;
        *slot = &rest[..nul];
        rest = &rest[nul + 1..];
    }
    if rest.is_empty() { Ok(out) } else { Err(MsgError::Malformed) }
}

fn one(p: &[u8]) -> Result<&[u8], MsgError> {
    let [s] = strings(p)?;
    Ok(s)
}

/// An empty payload, or a single NUL (what clients actually send).
fn empty(p: &[u8]) -> Result<(), MsgError> {
    if p.is_empty() || p == b"\0" { Ok(()) } else { Err(MsgError::Malformed) }
}

fn path(b: &[u8]) -> Result<Path<'_>, MsgError> {
    Ok(Path::new(b)?)
}

fn number(b: &[u8]) -> Result<u64, MsgError> {
    parse_u64(b).ok_or(MsgError::Malformed)
}

fn u32_of(b: &[u8]) -> Result<u32, MsgError> {
    u32::try_from(number(b)?).map_err(|_| MsgError::Malformed)
}

fn domid(b: &[u8]) -> Result<DomId, MsgError> {
    DomId::try_from(number(b)?).map_err(|_| MsgError::Malformed)
}

/// Plain unsigned decimal: 1 to 20 ASCII digits, no sign, no spaces, no
/// overflow.
pub fn parse_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 {
        return None;
    }
    d.iter().try_fold(0u64, |n, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Formats `n` in decimal into `buf`; returns the digits.
pub fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests;
