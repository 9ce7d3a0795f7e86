//! The XenStore domain ring page as a device: two byte rings of
//! [`XENSTORE_RING_SIZE`] with free-running `u32` indices
//! (`struct xenstore_domain_interface`).
//!
//! [`XsRing`] is one side of the page. The guest side ([`XsRing::guest`],
//! what the xenstore component gets through its device port) writes
//! requests into `req` and reads replies and watch events from `rsp`; the
//! store side ([`XsRing::store`], for test stores) does the opposite.
//!
//! The peer's indices are never trusted: every load is checked against what
//! this side knows (its own index, and the peer index it saw last). A peer
//! index that runs backwards or implies more than the ring holds makes the
//! ring [`XsRingError::Faulty`] for good. Data bytes are copied with
//! volatile accesses, bracketed by acquire loads and release stores of the
//! indices, so no reference into the shared page is ever held.
//!
//! xenstored uses no event indices: each side signals the other after every
//! batch of bytes it wrote or consumed. [`XsRing::read`] and
//! [`XsRing::write`] return the byte counts so the caller knows when.

use core::sync::atomic::{AtomicU32, Ordering, fence};

use moat_ring::{Device, Region, RegionError};

use crate::xs_wire::{XENSTORE_RING_SIZE, XenstoreDomainInterface};

const RING: u32 = XENSTORE_RING_SIZE as u32;

/// What went wrong on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsRingError {
    /// The peer published impossible indices. Sticky.
    Faulty,
}

/// Offsets of one direction's data and indices.
#[derive(Clone, Copy, Debug)]
struct Dir {
    data: usize,
    prod: usize,
    cons: usize,
}

const REQ: Dir = Dir {
    data: core::mem::offset_of!(XenstoreDomainInterface, req),
    prod: core::mem::offset_of!(XenstoreDomainInterface, req_prod),
    cons: core::mem::offset_of!(XenstoreDomainInterface, req_cons),
};
const RSP: Dir = Dir {
    data: core::mem::offset_of!(XenstoreDomainInterface, rsp),
    prod: core::mem::offset_of!(XenstoreDomainInterface, rsp_prod),
    cons: core::mem::offset_of!(XenstoreDomainInterface, rsp_cons),
};

/// One side of a XenStore domain ring page.
#[derive(Debug)]
pub struct XsRing {
    region: Region,
    /// Direction this side writes.
    out: Dir,
    /// Direction this side reads.
    inn: Dir,
    /// Our producer index on `out` (the shared copy is only ever written).
    out_prod: u32,
    /// Peer's consumer index on `out`, as last seen.
    out_cons_seen: u32,
    /// Our consumer index on `inn`.
    in_cons: u32,
    faulty: bool,
}

impl Device for XsRing {
    const NAME: &'static str = "XenStoreRing";

    // Implementing the trait's `unsafe fn` needs no unsafe code: every
    // access to the page is atomic or volatile and bounds-checked.
    #[allow(unsafe_code)]
    unsafe fn attach(region: Region) -> Result<Self, RegionError> {
        XsRing::guest(region)
    }
}

impl XsRing {
    /// Bytes the page must have.
    pub const SIZE: usize = core::mem::size_of::<XenstoreDomainInterface>();

    /// The guest (client) side: writes `req`, reads `rsp`.
    ///
    /// Starts from the indices in the page. Replies already waiting belong
    /// to a previous life of this connection and are skipped (as Linux does
    /// at boot), so decoding starts on a message boundary.
    pub fn guest(region: Region) -> Result<Self, RegionError> {
        let mut r = Self::side(region, REQ, RSP)?;
        let prod = r.get(RSP.prod);
        if prod.wrapping_sub(r.in_cons) <= RING {
            r.in_cons = prod;
            r.put(RSP.cons, prod);
        } else {
            r.faulty = true;
        }
        Ok(r)
    }

    /// The store (server) side: writes `rsp`, reads `req`. For test stores.
    pub fn store(region: Region) -> Result<Self, RegionError> {
        Self::side(region, RSP, REQ)
    }

    fn side(region: Region, out: Dir, inn: Dir) -> Result<Self, RegionError> {
        if region.len() < Self::SIZE {
            return Err(RegionError::OutOfRange);
        }
        // Checks alignment, range and writability of every index word once,
        // so later loads and stores cannot fail.
        for off in [out.prod, out.cons, inn.prod, inn.cons] {
            region.atomic_u32(off)?;
        }
        let mut r = XsRing { region, out, inn, out_prod: 0, out_cons_seen: 0, in_cons: 0, faulty: false };
        r.out_prod = r.get(out.prod);
        r.out_cons_seen = r.get(out.cons);
        r.in_cons = r.get(inn.cons);
        if r.out_prod.wrapping_sub(r.out_cons_seen) > RING {
            r.faulty = true;
        }
        Ok(r)
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // Checked in `side`; an error here would be a bug in this file.
        self.region.atomic_u32(off).expect("index words checked at attach")
    }

    fn get(&self, off: usize) -> u32 {
        self.word(off).load(Ordering::Acquire)
    }

    fn put(&self, off: usize, v: u32) {
        self.word(off).store(v, Ordering::Release)
    }

    fn fault(&mut self) -> XsRingError {
        self.faulty = true;
        XsRingError::Faulty
    }

    /// Bytes that can be written now.
    pub fn writable(&mut self) -> Result<u32, XsRingError> {
        if self.faulty {
            return Err(XsRingError::Faulty);
        }
        let cons = self.get(self.out.cons);
        // The peer's consumer index may only move forward, up to our producer.
        let advanced = cons.wrapping_sub(self.out_cons_seen);
        if advanced > self.out_prod.wrapping_sub(self.out_cons_seen) {
            return Err(self.fault());
        }
        self.out_cons_seen = cons;
        Ok(RING - self.out_prod.wrapping_sub(cons))
    }

    /// Bytes waiting to be read.
    pub fn readable(&mut self) -> Result<u32, XsRingError> {
        if self.faulty {
            return Err(XsRingError::Faulty);
        }
        let prod = self.get(self.inn.prod);
        let avail = prod.wrapping_sub(self.in_cons);
        if avail > RING {
            return Err(self.fault());
        }
        Ok(avail)
    }

    /// Writes as much of `data` as fits and publishes it; returns how much.
    /// Signal the peer if it is non-zero.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, XsRingError> {
        let n = (self.writable()? as usize).min(data.len());
        let mut done = 0;
        while done < n {
            let at = (self.out_prod.wrapping_add(done as u32) & (RING - 1)) as usize;
            let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
            self.region
                .write_volatile(self.out.data + at, &data[done..done + chunk])
                .expect("inside the page, checked at attach");
            done += chunk;
        }
        if n > 0 {
            self.out_prod = self.out_prod.wrapping_add(n as u32);
            self.put(self.out.prod, self.out_prod);
        }
        Ok(n)
    }

    /// Reads up to `out.len()` bytes and frees their space; returns how
    /// many. Signal the peer if it is non-zero.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, XsRingError> {
        let n = (self.readable()? as usize).min(out.len());
        let mut done = 0;
        while done < n {
            let at = (self.in_cons.wrapping_add(done as u32) & (RING - 1)) as usize;
            let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
            self.region
                .read_volatile(self.inn.data + at, &mut out[done..done + chunk])
                .expect("inside the page, checked at attach");
            done += chunk;
        }
        if n > 0 {
            self.in_cons = self.in_cons.wrapping_add(n as u32);
            // Our reads of the data must be done before the peer may reuse
            // the space: the release store orders them.
            self.put(self.inn.cons, self.in_cons);
        }
        Ok(n)
    }

    /// A full barrier, for a caller that re-checks the ring after deciding
    /// to sleep.
    pub fn barrier(&self) {
        fence(Ordering::SeqCst);
    }

    /// `server_features` from the page (written by the store).
    pub fn server_features(&self) -> u32 {
        self.get(core::mem::offset_of!(XenstoreDomainInterface, server_features))
    }

    /// `connection` from the page.
    pub fn connection(&self) -> u32 {
        self.get(core::mem::offset_of!(XenstoreDomainInterface, connection))
    }

    /// `error` from the page: non-zero means the store gave up on us.
    pub fn server_error(&self) -> u32 {
        self.get(core::mem::offset_of!(XenstoreDomainInterface, error))
    }

    /// True once the peer broke the index protocol.
    pub fn is_faulty(&self) -> bool {
        self.faulty
    }

    /// Writes raw index values into the page, as a broken or hostile peer
    /// could (for tests of what the other side does with them).
    pub fn scribble(
        region: &Region,
        req_cons: Option<u32>,
        req_prod: Option<u32>,
        rsp_cons: Option<u32>,
        rsp_prod: Option<u32>,
    ) {
        for (off, v) in [(REQ.cons, req_cons), (REQ.prod, req_prod), (RSP.cons, rsp_cons), (RSP.prod, rsp_prod)] {
            if let (Some(v), Ok(w)) = (v, region.atomic_u32(off)) {
                w.store(v, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Region {
        Region::alloc_zeroed(4096)
    }

    #[test]
    fn bytes_cross_in_both_directions_and_wrap() {
        let p = page();
        let mut g = XsRing::guest(p).unwrap();
        let mut s = XsRing::store(p).unwrap();
        let data: [u8; 700] = core::array::from_fn(|i| i as u8);
        let mut buf = [0u8; 1024];
        for round in 0..5 {
            assert_eq!(g.write(&data).unwrap(), 700, "round {round}");
            assert_eq!(g.write(&data).unwrap(), 324, "only what fits");
            assert_eq!(g.writable().unwrap(), 0);
            assert_eq!(s.read(&mut buf).unwrap(), 1024);
            assert_eq!(&buf[..700], &data[..]);
            assert_eq!(&buf[700..1024], &data[..324]);
            assert_eq!(s.write(&data[..300]).unwrap(), 300);
            assert_eq!(g.read(&mut buf[..100]).unwrap(), 100);
            assert_eq!(g.read(&mut buf[100..]).unwrap(), 200);
            assert_eq!(&buf[..300], &data[..300]);
        }
    }

    #[test]
    fn indices_near_u32_max_wrap_cleanly() {
        let p = page();
        XsRing::scribble(&p, Some(u32::MAX - 10), Some(u32::MAX - 10), Some(u32::MAX - 5), Some(u32::MAX - 5));
        let mut g = XsRing::guest(p).unwrap();
        let mut s = XsRing::store(p).unwrap();
        let data = [7u8; 100];
        assert_eq!(g.write(&data).unwrap(), 100);
        let mut buf = [0u8; 200];
        assert_eq!(s.read(&mut buf).unwrap(), 100);
        assert_eq!(s.write(&data).unwrap(), 100);
        assert_eq!(g.read(&mut buf).unwrap(), 100);
        assert!(!g.is_faulty() && !s.is_faulty());
    }

    #[test]
    fn garbage_indices_fault_the_reader_for_good() {
        let p = page();
        let mut g = XsRing::guest(p).unwrap();
        XsRing::scribble(&p, None, None, None, Some(5000));
        let mut buf = [0u8; 16];
        assert_eq!(g.read(&mut buf), Err(XsRingError::Faulty));
        XsRing::scribble(&p, None, None, None, Some(0));
        assert_eq!(g.read(&mut buf), Err(XsRingError::Faulty), "sticky");
        assert_eq!(g.write(b"x"), Err(XsRingError::Faulty));
    }

    #[test]
    fn consumer_index_running_ahead_or_back_is_a_fault() {
        let p = page();
        let mut g = XsRing::guest(p).unwrap();
        g.write(&[1; 10]).unwrap();
        XsRing::scribble(&p, Some(11), None, None, None);
        assert_eq!(g.writable(), Err(XsRingError::Faulty), "consumed more than was written");

        let p = page();
        let mut g = XsRing::guest(p).unwrap();
        g.write(&[1; 10]).unwrap();
        XsRing::scribble(&p, Some(8), None, None, None);
        assert_eq!(g.writable(), Ok(1024 - 2));
        XsRing::scribble(&p, Some(4), None, None, None);
        assert_eq!(g.writable(), Err(XsRingError::Faulty), "consumer index went back");
    }

    #[test]
    fn attach_checks_the_page() {
        assert_eq!(XsRing::guest(Region::alloc_zeroed(2048)).unwrap_err(), RegionError::OutOfRange);
        assert_eq!(XsRing::guest(page().read_only()).unwrap_err(), RegionError::ReadOnly);
        let p = page();
        XsRing::scribble(&p, Some(0), Some(2000), None, None);
        assert!(XsRing::guest(p).unwrap().is_faulty(), "our own index already inconsistent");
        let p = page();
        XsRing::scribble(&p, None, None, Some(0), Some(30));
        let mut g = XsRing::guest(p).unwrap();
        assert_eq!(g.readable(), Ok(0), "stale replies skipped at attach");
    }

    #[test]
    fn two_threads_stream_through_the_page() {
        // The data path under real concurrency (and under Miri's race
        // detector): a store thread echoes every byte back.
        let p = page();
        let total = if cfg!(miri) { 3000 } else { 200_000 };
        let echo = std::thread::spawn(move || {
            let mut s = XsRing::store(p).unwrap();
            let mut buf = [0u8; 300];
            let mut moved = 0;
            while moved < total {
                let n = s.read(&mut buf).unwrap();
                let mut w = 0;
                while w < n {
                    w += s.write(&buf[w..n]).unwrap();
                    std::thread::yield_now();
                }
                moved += n;
                std::thread::yield_now();
            }
        });
        let mut g = XsRing::guest(p).unwrap();
        let (mut sent, mut got) = (0usize, 0usize);
        let mut buf = [0u8; 512];
        while got < total {
            if sent < total {
                let chunk: [u8; 97] = core::array::from_fn(|i| ((sent + i) % 251) as u8);
                sent += g.write(&chunk[..(total - sent).min(97)]).unwrap();
            }
            let n = g.read(&mut buf).unwrap();
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((got + i) % 251) as u8);
            }
            got += n;
            std::thread::yield_now();
        }
        echo.join().unwrap();
    }
}
