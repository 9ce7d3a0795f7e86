//! A XenStore client that writes down everything it sends and receives:
//! the transcript that is compared between the real daemon and the test
//! store.
//!
//! Messages are encoded and decoded with moat-xen's codec (so the codec is
//! checked against the real daemon as well). What cannot be encoded (bad
//! paths, unknown types) goes out raw; what cannot be decoded is written
//! down as such, never guessed at.
//!
//! Watch events are written down as they arrive, between the replies:
//! their position says what the store did first. Events caused by another
//! connection arrive at no fixed time, so the script calls
//! [`Conn::sync`] after such changes: a request whose reply comes after
//! every event the store queued before it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use moat_xen::xenstore::msg::MAX_MESSAGE;
use moat_xen::xenstore::{Decoder, Path, Perms, Request, Response};
use moat_xen::xs_wire::XsdSockmsgType;

use crate::link::Link;

/// The lines written so far, shared by the connections of one run.
#[derive(Debug, Default)]
pub struct Transcript {
    /// One line per request, reply, event or note.
    pub lines: Vec<String>,
    /// Transaction ids in the order first seen, for normalising.
    txs: HashMap<u32, usize>,
}

impl Transcript {
    /// A transaction id as written: `#n` for the n-th id the store handed
    /// out in this run, the number itself for ids it never gave.
    pub fn tx(&self, raw: u32) -> String {
        match self.txs.get(&raw) {
            Some(n) => format!("#{n}"),
            None => raw.to_string(),
        }
    }

    fn new_tx(&mut self, raw: u32) -> String {
        let n = self.txs.len() + 1;
        self.txs.entry(raw).or_insert(n);
        self.tx(raw)
    }

    /// Adds a line.
    pub fn push(&mut self, line: String) {
        self.lines.push(line);
    }
}

/// A whole message: type, request id, transaction id, payload.
type Frame = (u32, u32, u32, Vec<u8>);

/// A run's transcript, shared by its connections.
pub type Log = Rc<RefCell<Transcript>>;

/// A reply, as the script needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Anything that succeeded (with its payload, for reads).
    Ok(Vec<u8>),
    /// A transaction was started (the raw id).
    Tx(u32),
    /// An error reply, by name.
    Err(String),
    /// The store dropped the connection, or never answered.
    Gone,
}

/// One connection, writing down under `label`.
pub struct Conn<L: Link> {
    link: L,
    decoder: Box<Decoder>,
    label: &'static str,
    next_id: u32,
    log: Log,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Set once the store dropped us.
    pub gone: bool,
    /// While false, nothing is written down (setup and cleanup).
    pub recording: bool,
    /// Child lists as the store sent them; otherwise sorted, since
    /// oxenstored sorts them and cxenstored and the test store keep them
    /// in creation order (see `known`): only the section about the order
    /// itself looks at it.
    pub raw_order: bool,
}

impl<L: Link> Conn<L> {
    /// A connection over `link`, writing lines starting with `label`.
    pub fn new(link: L, label: &'static str, log: &Log) -> Self {
        Conn {
            link,
            decoder: Box::new(Decoder::new()),
            label,
            next_id: 1,
            log: log.clone(),
            timeout: Duration::from_secs(20),
            gone: false,
            recording: true,
            raw_order: false,
        }
    }

    /// Adds a line as it is (headings, summaries).
    pub fn log_line(&self, s: String) {
        self.log.borrow_mut().push(s);
    }

    fn note(&self, s: String) {
        if self.recording {
            self.log.borrow_mut().push(format!("{}{s}", self.label));
        }
    }

    /// Sends `req` in transaction `tx`, writes down request and reply.
    pub fn call(&mut self, tx: u32, req: Request<'_>) -> Reply {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = match req.encode(self.next_id, tx, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                self.note(format!("> {} (cannot encode: {e:?})", describe(&req)));
                return Reply::Err("unencodable".into());
            }
        };
        let what = format!("{}{}", describe(&req), self.tx_suffix(tx));
        self.exchange(&buf[..n], what)
    }

    /// Sends a message of type `ty` with a raw `payload` (what the codec
    /// would refuse to build), described as `what`.
    pub fn raw(&mut self, ty: u32, tx: u32, payload: &[u8], what: &str) -> Reply {
        let mut msg = Vec::with_capacity(16 + payload.len());
        for w in [ty, self.next_id, tx, payload.len() as u32] {
            msg.extend_from_slice(&w.to_le_bytes());
        }
        msg.extend_from_slice(payload);
        let what = format!("RAW {what}{}", self.tx_suffix(tx));
        self.exchange(&msg, what)
    }

    fn tx_suffix(&self, tx: u32) -> String {
        if tx == 0 { String::new() } else { format!(" [tx {}]", self.log.borrow().tx(tx)) }
    }

    fn exchange(&mut self, msg: &[u8], what: String) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        self.note(format!("> {what}"));
        if self.gone {
            self.note("< (connection gone)".into());
            return Reply::Gone;
        }
        if let Err(e) = self.link.send(msg) {
            self.gone = true;
            self.note(format!("< DROPPED ({})", e.kind()));
            return Reply::Gone;
        }
        self.await_reply(id)
    }

    /// Waits for the reply to request `id`, writing down events on the way.
    fn await_reply(&mut self, id: u32) -> Reply {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_frame(deadline) {
                Ok(Some((ty, req_id, tx_id, payload))) => {
                    if let Some(r) = self.on_frame(id, ty, req_id, tx_id, &payload) {
                        return r;
                    }
                }
                Ok(None) => {
                    self.note("< TIMEOUT".into());
                    self.gone = true;
                    return Reply::Gone;
                }
                Err(e) => {
                    self.gone = true;
                    self.note(format!("< DROPPED ({})", e.kind()));
                    return Reply::Gone;
                }
            }
        }
    }

    /// The next whole message, or `None` at the deadline.
    fn next_frame(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            if self.decoder.is_complete() {
                let f = self.decoder.message().expect("complete");
                let out = (f.header.r#type, f.header.req_id, f.header.tx_id, f.payload.to_vec());
                self.decoder.next();
                return Ok(Some(out));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            let space = self.decoder.space();
            if space.is_empty() {
                return Err(io::Error::other("decoder poisoned"));
            }
            let n = self.link.recv(space, wait)?;
            if n > 0 {
                self.decoder.filled(n).map_err(|e| io::Error::other(format!("stream: {e:?}")))?;
            }
        }
    }

    /// Handles one message; the reply if it answers `id`.
    fn on_frame(&mut self, id: u32, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Option<Reply> {
        let Some(t) = XsdSockmsgType::from_u32(ty) else {
            self.note(format!("< UNDECODABLE type {ty} {}", show(payload)));
            return Some(Reply::Err(format!("type {ty}")));
        };
        let rsp = match Response::decode(t, payload) {
            Ok(r) => r,
            Err(e) => {
                self.note(format!("< UNDECODABLE {t:?} {} ({e:?})", show(payload)));
                if t == XsdSockmsgType::WatchEvent {
                    return None;
                }
                let name = String::from_utf8_lossy(payload.strip_suffix(b"\0").unwrap_or(payload)).into_owned();
                return Some(if t == XsdSockmsgType::Error { Reply::Err(name) } else { Reply::Ok(payload.to_vec()) });
            }
        };
        if let Response::WatchEvent { path, token } = rsp {
            let odd = if req_id != 0 || tx_id != 0 { format!(" (req {req_id} tx {tx_id})") } else { String::new() };
            self.note(format!("! EVENT {} {}{odd}", show(path.as_bytes()), show(token)));
            return None;
        }
        let mut line = String::from("< ");
        if req_id != id {
            let _ = write!(line, "(reply to {req_id}, not {id}) ");
        }
        let reply = match rsp {
            Response::Error(e) => {
                let _ = write!(line, "ERROR {}", e.name());
                Reply::Err(e.name().into())
            }
            Response::Ok => {
                line.push_str("OK");
                Reply::Ok(Vec::new())
            }
            Response::Read(v) => {
                let _ = write!(line, "VALUE {}", show(v));
                Reply::Ok(v.to_vec())
            }
            Response::Directory(names) => {
                line.push_str("NAMES");
                let mut shown: Vec<String> = names.iter().map(show).collect();
                if !self.raw_order {
                    shown.sort();
                }
                for n in shown {
                    let _ = write!(line, " {n}");
                }
                Reply::Ok(names.as_bytes().to_vec())
            }
            Response::DirectoryPart { names, complete, .. } => {
                line.push_str("PART");
                for n in names.iter() {
                    let _ = write!(line, " {}", show(n));
                }
                line.push_str(if complete { " (complete)" } else { " (more)" });
                Reply::Ok(names.as_bytes().to_vec())
            }
            Response::GetPerms(p) => {
                let _ = write!(line, "PERMS {}", perms_text(&p));
                Reply::Ok(p.as_bytes().to_vec())
            }
            Response::TransactionStart(raw) => {
                let n = self.log.borrow_mut().new_tx(raw);
                let _ = write!(line, "TX {n}");
                Reply::Tx(raw)
            }
            Response::GetDomainPath(p) => {
                let _ = write!(line, "PATH {}", show(p.as_bytes()));
                Reply::Ok(p.as_bytes().to_vec())
            }
            Response::IsDomainIntroduced(b) => {
                let _ = write!(line, "BOOL {b}");
                Reply::Ok(vec![u8::from(b)])
            }
            Response::Control(v) => {
                let _ = write!(line, "CONTROL {}", show(v));
                Reply::Ok(v.to_vec())
            }
            Response::WatchEvent { .. } => unreachable!("handled above"),
        };
        if tx_id != 0 {
            let _ = write!(line, " [tx {}]", self.log.borrow().tx(tx_id));
        }
        self.note(line);
        if req_id == id { Some(reply) } else { None }
    }

    /// Collects the events the store queued for us so far (a request whose
    /// reply comes after them: `GET_DOMAIN_PATH 0`, not written down).
    pub fn sync(&mut self) {
        if self.gone {
            return;
        }
        let mut buf = vec![0u8; 64];
        let n = Request::GetDomainPath(0).encode(self.next_id, 0, &mut buf).expect("small");
        let id = self.next_id;
        self.next_id += 1;
        if self.link.send(&buf[..n]).is_err() {
            self.gone = true;
            self.note("< DROPPED (sync)".into());
            return;
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_frame(deadline) {
                Ok(Some((ty, req_id, tx_id, payload))) => {
                    if req_id == id && ty != XsdSockmsgType::WatchEvent as u32 {
                        return;
                    }
                    if let Some(r) = self.on_frame(0, ty, req_id, tx_id, &payload) {
                        self.note(format!("  (stray reply {r:?})"));
                    }
                }
                Ok(None) | Err(_) => {
                    self.gone = true;
                    self.note("< DROPPED (sync)".into());
                    return;
                }
            }
        }
    }

    // --- shorthands; paths must be valid for the codec (use `raw` if not) ---

    /// `READ`.
    pub fn read(&mut self, tx: u32, p: &str) -> Reply {
        self.call(tx, Request::Read(path(p)))
    }
    /// `WRITE`.
    pub fn write(&mut self, tx: u32, p: &str, v: &[u8]) -> Reply {
        self.call(tx, Request::Write { path: path(p), value: v })
    }
    /// `MKDIR`.
    pub fn mkdir(&mut self, tx: u32, p: &str) -> Reply {
        self.call(tx, Request::Mkdir(path(p)))
    }
    /// `RM`.
    pub fn rm(&mut self, tx: u32, p: &str) -> Reply {
        self.call(tx, Request::Rm(path(p)))
    }
    /// `DIRECTORY`.
    pub fn dir(&mut self, tx: u32, p: &str) -> Reply {
        self.call(tx, Request::Directory(path(p)))
    }
    /// `GET_PERMS`.
    pub fn get_perms(&mut self, tx: u32, p: &str) -> Reply {
        self.call(tx, Request::GetPerms(path(p)))
    }
    /// `SET_PERMS` from space-separated entries (`"n5 r0"`).
    pub fn set_perms(&mut self, tx: u32, p: &str, perms: &str) -> Reply {
        let bytes: Vec<u8> = perms.split(' ').flat_map(|e| e.bytes().chain([0])).collect();
        let perms = Perms::new(&bytes).expect("valid permissions in the script");
        self.call(tx, Request::SetPerms { path: path(p), perms })
    }
    /// `WATCH`.
    pub fn watch(&mut self, p: &str, token: &str) -> Reply {
        self.call(0, Request::Watch { path: path(p), token: token.as_bytes() })
    }
    /// `UNWATCH`.
    pub fn unwatch(&mut self, p: &str, token: &str) -> Reply {
        self.call(0, Request::Unwatch { path: path(p), token: token.as_bytes() })
    }
    /// `TRANSACTION_START`; the raw id (0 if refused).
    pub fn start(&mut self) -> u32 {
        match self.call(0, Request::TransactionStart) {
            Reply::Tx(id) => id,
            _ => 0,
        }
    }
    /// `TRANSACTION_END`.
    pub fn end(&mut self, tx: u32, commit: bool) -> Reply {
        self.call(tx, Request::TransactionEnd { commit })
    }

    /// The link, for the shim that hands it to the component.
    pub fn into_link(self) -> L {
        self.link
    }
}

/// A path the script knows to be valid.
pub fn path(p: &str) -> Path<'_> {
    Path::new(p.as_bytes()).unwrap_or_else(|e| panic!("script path {p:?}: {e:?}"))
}

fn perms_text(p: &Perms<'_>) -> String {
    let mut s = String::new();
    for (i, e) in p.iter().enumerate() {
        let mut b = [0u8; 6];
        let n = e.format(&mut b);
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    s
}

/// A request in one line.
pub fn describe(req: &Request<'_>) -> String {
    let p = |x: &Path<'_>| show(x.as_bytes());
    match req {
        Request::Read(x) => format!("READ {}", p(x)),
        Request::Directory(x) => format!("DIRECTORY {}", p(x)),
        Request::GetPerms(x) => format!("GET_PERMS {}", p(x)),
        Request::Mkdir(x) => format!("MKDIR {}", p(x)),
        Request::Rm(x) => format!("RM {}", p(x)),
        Request::Write { path, value } => format!("WRITE {} = {}", p(path), show(value)),
        Request::SetPerms { path, perms } => format!("SET_PERMS {} {}", p(path), perms_text(perms)),
        Request::Watch { path, token } => format!("WATCH {} {}", p(path), show(token)),
        Request::Unwatch { path, token } => format!("UNWATCH {} {}", p(path), show(token)),
        Request::DirectoryPart { path, offset } => format!("DIRECTORY_PART {} {offset}", p(path)),
        Request::TransactionStart => "TRANSACTION_START".into(),
        Request::TransactionEnd { commit } => format!("TRANSACTION_END {}", if *commit { "T" } else { "F" }),
        Request::GetDomainPath(d) => format!("GET_DOMAIN_PATH {d}"),
        Request::IsDomainIntroduced(d) => format!("IS_DOMAIN_INTRODUCED {d}"),
        Request::Release(d) => format!("RELEASE {d}"),
        Request::Resume(d) => format!("RESUME {d}"),
        Request::Introduce { domid, mfn, evtchn } => format!("INTRODUCE {domid} {mfn} {evtchn}"),
        Request::SetTarget { domid, target } => format!("SET_TARGET {domid} {target}"),
        Request::ResetWatches => "RESET_WATCHES".into(),
        Request::Control(c) => format!("CONTROL {}", show(c)),
    }
}

/// Bytes as a short, comparable text: printable ASCII quoted, anything else
/// escaped; long values by length, start and a checksum.
pub fn show(b: &[u8]) -> String {
    if !b.is_empty() && b.len() <= 48 && b.iter().all(|c| c.is_ascii_graphic() && *c != b'"' && *c != b'\\') {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut s = String::from("\"");
    let body = if b.len() > 48 { &b[..24] } else { b };
    for &c in body {
        match c {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    if b.len() > 48 {
        // FNV-1a: enough to see that two long values differ.
        let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3));
        let _ = write!(s, "... ({} bytes, fnv {h:016x})", b.len());
    }
    s
}
