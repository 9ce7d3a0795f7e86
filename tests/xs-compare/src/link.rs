//! Byte streams to a XenStore: the real daemon's Unix socket, a domain's
//! own XenStore ring mapped into dom0 through the grant device, or a
//! connection to the in-process test store over a real ring page.
//!
//! Every way to the store is a stream of the same header-and-payload
//! messages, so the client ([`crate::conn`]) and the shim that gives the
//! xenstore component its ring page ([`crate::component`]) work on any of
//! them alike.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use moat_hosted::sys::{Mapping, map_grant};
use moat_ring::Region;
use moat_test_xenstored::{ConnId, Who, XenStored};
use moat_xen::grant::GNTTAB_RESERVED_XENSTORE;
use moat_xen::xenstore::XsRing;

/// A byte stream to a store.
pub trait Link {
    /// Sends all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Copies what has arrived into `buf`, waiting at most `wait` for the
    /// first byte; `Ok(0)` if nothing came. An error means the store
    /// dropped the connection.
    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<usize>;
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<usize> {
        (**self).recv(buf, wait)
    }
}

/// A stream read by a thread of its own, so that reads can time out.
pub struct StreamLink {
    writer: Box<dyn Write + Send>,
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Received and not yet handed out.
    pending: VecDeque<u8>,
    closed: Option<io::ErrorKind>,
}

impl StreamLink {
    /// The daemon's Unix socket (`/run/xenstored/socket`): a dom0,
    /// privileged connection.
    pub fn unix(path: &Path) -> io::Result<Self> {
        let s = UnixStream::connect(path)?;
        Ok(Self::new(s.try_clone()?, s))
    }

    fn new(mut reader: impl Read + Send + 'static, writer: impl Write + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Err(io::ErrorKind::UnexpectedEof.into()));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        StreamLink { writer: Box::new(writer), chunks: rx, pending: VecDeque::new(), closed: None }
    }

    fn take(&mut self, r: io::Result<Vec<u8>>) {
        match r {
            Ok(v) => self.pending.extend(v),
            Err(e) => self.closed = Some(e.kind()),
        }
    }
}

impl Link for StreamLink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<usize> {
        if self.pending.is_empty() && self.closed.is_none() {
            match self.chunks.recv_timeout(wait) {
                Ok(r) => self.take(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.closed = Some(io::ErrorKind::BrokenPipe),
            }
        }
        while let Ok(r) = self.chunks.try_recv() {
            self.take(r);
        }
        if self.pending.is_empty()
            && let Some(kind) = self.closed
        {
            return Err(kind.into());
        }
        let n = buf.len().min(self.pending.len());
        for (i, b) in self.pending.drain(..n).enumerate() {
            buf[i] = b;
        }
        Ok(n)
    }
}

/// The test store, shared by its connections (single-threaded).
pub type Shared = Rc<RefCell<XenStored>>;

/// A connection to the test store over a ring page of its own, as a
/// domain has one: the store side is the test store's, this is the guest
/// side.
pub struct TestLink {
    store: Shared,
    conn: ConnId,
    ring: XsRing,
    out: VecDeque<u8>,
}

impl TestLink {
    /// A privileged dom0 connection (what the daemon's socket gives).
    pub fn dom0(store: &Shared) -> Self {
        let page = Region::alloc_zeroed(4096);
        let conn = store.borrow_mut().attach(Who::DOM0, page);
        Self::on(store, conn, page)
    }

    /// Domain `domid`, introduced the way the test store's
    /// [`XenStored::connect`] does it.
    pub fn domain(store: &Shared, domid: u16, name: &str) -> Self {
        let page = Region::alloc_zeroed(4096);
        let conn = store.borrow_mut().connect(domid, name, page);
        Self::on(store, conn, page)
    }

    fn on(store: &Shared, conn: ConnId, page: Region) -> Self {
        TestLink { store: store.clone(), conn, ring: XsRing::guest(page).expect("a ring page"), out: VecDeque::new() }
    }

    fn dead(&self) -> io::Result<()> {
        match self.store.borrow().dead(self.conn) {
            Some(why) => Err(io::Error::new(io::ErrorKind::ConnectionReset, why.to_string())),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // The store consumes everything it is given each poll, so this ends.
        for _ in 0..10_000 {
            self.dead()?;
            let n = self.ring.write(self.out.make_contiguous()).map_err(|e| io::Error::other(format!("{e:?}")))?;
            self.out.drain(..n);
            self.store.borrow_mut().poll();
            if self.out.is_empty() {
                return Ok(());
            }
        }
        Err(io::Error::other("the test store does not read its ring"))
    }
}

impl Link for TestLink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend(bytes);
        self.flush()
    }

    fn recv(&mut self, buf: &mut [u8], _wait: Duration) -> io::Result<usize> {
        self.flush()?;
        let n = self.ring.read(buf).map_err(|e| io::Error::other(format!("{e:?}")))?;
        if n == 0 {
            self.dead()?;
        }
        Ok(n)
    }
}

/// Domain `domid`'s own XenStore connection, driven from dom0: its ring
/// page (grant [`GNTTAB_RESERVED_XENSTORE`], which the toolstack grants to
/// the store's domain, dom0 here, when it builds the domain) mapped with
/// the grant device, and this side playing the guest's half of the ring.
/// The domain itself runs the relay guest (`relay/relay.c`), which only
/// forwards the event the daemon needs each time the ring's indices move
/// (dom0 cannot signal the domain's store channel itself). So the daemon
/// sees exactly a domU's ring connection, with its permissions, and nothing
/// in between buffers, translates or drops bytes.
pub struct RingLink {
    // Field order is drop order: the ring before the page it points into.
    ring: XsRing,
    _page: Mapping,
    _dev: OwnedFd,
    /// Sent, not yet in the request ring: like a socket's send buffer, a
    /// message longer than the ring (the script's oversized ones) is taken
    /// whole and fed in while we wait for the reply, so the daemon decides
    /// what to do with it, not this link.
    out: VecDeque<u8>,
}

impl RingLink {
    /// Maps `domid`'s XenStore page through `/dev/xen/gntdev`.
    pub fn domain(domid: u16) -> io::Result<Self> {
        let dev: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/xen/gntdev")?
            .into();
        let page = map_grant(&dev, domid, GNTTAB_RESERVED_XENSTORE)?;
        let ring = XsRing::guest(page.region()).map_err(|e| io::Error::other(format!("ring page: {e:?}")))?;
        Ok(RingLink { ring, _page: page, _dev: dev, out: VecDeque::new() })
    }

    /// Moves what fits of the pending requests into the ring.
    fn push(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let n = self.ring.write(self.out.make_contiguous()).map_err(ring_error)?;
            if n == 0 {
                break;
            }
            self.out.drain(..n);
        }
        Ok(())
    }
}

fn ring_error(e: moat_xen::xenstore::XsRingError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("XenStore ring: {e:?}"))
}

impl Link for RingLink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend(bytes);
        self.push()
    }

    /// Polls: the relay and the daemon run in other domains, so there is
    /// nothing here to block on.
    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<usize> {
        let until = Instant::now() + wait;
        let mut pause = Duration::from_micros(50);
        loop {
            self.push()?;
            let n = self.ring.read(buf).map_err(ring_error)?;
            if n > 0 || Instant::now() >= until {
                return Ok(n);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }
}
