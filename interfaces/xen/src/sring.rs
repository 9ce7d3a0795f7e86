//! Both ends of an `io/ring.h` shared ring, over a page reached through a
//! `moat_ring::Region` (netfront's own page, or a frontend's page netback
//! mapped into its window).
//!
//! The page may be written by the other domain at any moment, so indices
//! are loaded and stored atomically, entries are copied out once with
//! volatile reads before anyone looks at them, and the other side's index is
//! checked before it is used: a backend whose frontend claims more requests
//! than there are free slots, or a frontend whose backend claims responses
//! to requests never made, gets [`Broken`] (and should disconnect). The
//! private indices (`req_cons`, `rsp_prod_pvt`, `req_prod_pvt`, `rsp_cons`)
//! never come from the page.
//!
//! Barriers follow `ring.h`: the producer's index store is a release (its
//! entries are visible first), the consumer's index load an acquire, and
//! between storing one's own index and loading the peer's event index there
//! is a `SeqCst` fence (the one place x86 reorders).

use core::sync::atomic::{AtomicU32, Ordering, fence};

use moat_ring::{Region, RegionError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{SRING_ENTRIES_OFFSET, need_notify, ring_entries};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// The other side broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken;

/// A shared ring page: its indices and its entries.
#[derive(Clone, Copy, Debug)]
pub struct Sring {
    page: Region,
    entry: usize,
    size: u32,
}

impl Sring {
    /// The ring in `page` with entries of `entry` bytes (the union of
    /// request and response).
    pub fn new(page: Region, entry: usize) -> Result<Self, RegionError> {
        let size = ring_entries(entry, 1);
        if size == 0 || entry > 16 {
            return Err(RegionError::OutOfRange);
        }
        if page.len() < SRING_ENTRIES_OFFSET + size as usize * entry {
            return Err(RegionError::OutOfRange);
        }
        for off in [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT] {
            page.atomic_u32(off)?;
        }
        Ok(Sring { page, entry, size })
    }

    /// Entries (a power of two).
    pub fn size(&self) -> u32 {
        self.size
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // Checked in new().
        self.page.atomic_u32(off).expect("index words checked")
    }

    fn at(&self, idx: u32) -> usize {
        SRING_ENTRIES_OFFSET + (idx & (self.size - 1)) as usize * self.entry
    }

    /// Copies entry `idx` out (the first `entry` bytes of the result).
    pub fn read_raw(&self, idx: u32) -> [u8; 16] {
        let mut raw = [0u8; 16];
        self.page.read_volatile(self.at(idx), &mut raw[..self.entry]).expect("entry inside the page");
        raw
    }

    /// Copies entry `idx` out as a `T`.
    pub fn read<T: FromBytes>(&self, idx: u32) -> T {
        let raw = self.read_raw(idx);
        T::read_from_prefix(&raw).map(|(t, _)| t).expect("entry types are at most 16 bytes")
    }

    /// Writes `value` into entry `idx`.
    pub fn write<T: IntoBytes + Immutable + KnownLayout>(&self, idx: u32, value: &T) {
        let bytes = value.as_bytes();
        let n = bytes.len().min(self.entry);
        self.page.write_volatile(self.at(idx), &bytes[..n]).expect("entry inside the page");
    }
}

/// The backend's end: consumes requests, produces responses.
#[derive(Clone, Copy, Debug)]
pub struct BackRing {
    ring: Sring,
    req_cons: u32,
    rsp_prod_pvt: u32,
    rsp_published: u32,
}

impl BackRing {
    /// Attaches to a ring the frontend initialised (indices start at 0).
    pub fn new(ring: Sring) -> Self {
        BackRing { ring, req_cons: 0, rsp_prod_pvt: 0, rsp_published: 0 }
    }

    /// The ring.
    pub fn ring(&self) -> &Sring {
        &self.ring
    }

    /// Index of the next request to consume.
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Index of the next response to produce.
    pub fn rsp_prod(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Requests published and not consumed yet. A frontend that publishes
    /// more requests than the ring has free slots is broken.
    pub fn pending(&self) -> Result<u32, Broken> {
        let prod = self.ring.word(REQ_PROD).load(Ordering::Acquire);
        if prod.wrapping_sub(self.rsp_prod_pvt) > self.ring.size {
            return Err(Broken);
        }
        Ok(prod.wrapping_sub(self.req_cons))
    }

    /// Copies request `ahead` places after the next one out, without
    /// consuming it. The caller checked [`pending`](Self::pending).
    pub fn peek_raw(&self, ahead: u32) -> [u8; 16] {
        self.ring.read_raw(self.req_cons.wrapping_add(ahead))
    }

    /// Consumes `n` requests (after peeking them).
    pub fn consume(&mut self, n: u32) {
        self.req_cons = self.req_cons.wrapping_add(n);
    }

    /// Responses owed: requests consumed and not answered.
    pub fn owed(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Writes the next response (in the slot of the oldest unanswered
    /// request). Returns false, writing nothing, if no response is owed.
    pub fn respond<T: IntoBytes + Immutable + KnownLayout>(&mut self, rsp: &T) -> bool {
        if self.owed() == 0 {
            return false;
        }
        self.ring.write(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the responses written; true if the frontend asked to be
    /// notified.
    pub fn publish(&mut self) -> bool {
        let (old, new) = (self.rsp_published, self.rsp_prod_pvt);
        if old == new {
            return false;
        }
        self.ring.word(RSP_PROD).store(new, Ordering::Release);
        self.rsp_published = new;
        fence(Ordering::SeqCst);
        let event = self.ring.word(RSP_EVENT).load(Ordering::Acquire);
        need_notify(old, new, event)
    }

    /// Before sleeping: true if requests are waiting; otherwise asks to be
    /// notified of the next one and checks again (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check(&mut self) -> Result<bool, Broken> {
        if self.pending()? > 0 {
            return Ok(true);
        }
        self.ring.word(REQ_EVENT).store(self.req_cons.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(self.pending()? > 0)
    }

    /// Asks to be notified when the frontend publishes past what it has
    /// published now (the rest of a packet whose first slots are there);
    /// true if it published more meanwhile.
    pub fn wait_for_more(&mut self) -> Result<bool, Broken> {
        let before = self.pending()?;
        let prod = self.req_cons.wrapping_add(before);
        self.ring.word(REQ_EVENT).store(prod.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(self.pending()? != before)
    }
}

/// The frontend's end: produces requests, consumes responses.
#[derive(Clone, Copy, Debug)]
pub struct FrontRing {
    ring: Sring,
    req_prod_pvt: u32,
    req_published: u32,
    rsp_cons: u32,
}

impl FrontRing {
    /// Initialises the shared page (`SHARED_RING_INIT`) and attaches.
    pub fn init(ring: Sring) -> Self {
        let zero = [0u8; 64];
        let mut off = 0;
        while off < ring.page.len() {
            let n = zero.len().min(ring.page.len() - off);
            ring.page.write_volatile(off, &zero[..n]).expect("inside the page");
            off += n;
        }
        ring.word(REQ_EVENT).store(1, Ordering::Relaxed);
        ring.word(RSP_EVENT).store(1, Ordering::Release);
        FrontRing { ring, req_prod_pvt: 0, req_published: 0, rsp_cons: 0 }
    }

    /// The ring.
    pub fn ring(&self) -> &Sring {
        &self.ring
    }

    /// Index of the next request to produce.
    pub fn req_prod(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Index of the next response to consume.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Requests that may be pushed now.
    pub fn free(&self) -> u32 {
        self.ring.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes the next request; false if the ring is full.
    pub fn push<T: IntoBytes + Immutable + KnownLayout>(&mut self, req: &T) -> bool {
        if self.free() == 0 {
            return false;
        }
        self.ring.write(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the requests written; true if the backend asked to be
    /// notified.
    pub fn publish(&mut self) -> bool {
        let (old, new) = (self.req_published, self.req_prod_pvt);
        if old == new {
            return false;
        }
        self.ring.word(REQ_PROD).store(new, Ordering::Release);
        self.req_published = new;
        fence(Ordering::SeqCst);
        let event = self.ring.word(REQ_EVENT).load(Ordering::Acquire);
        need_notify(old, new, event)
    }

    /// Responses published and not consumed. A backend that answers
    /// requests never made is broken.
    pub fn pending(&self) -> Result<u32, Broken> {
        let prod = self.ring.word(RSP_PROD).load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.rsp_cons);
        if n > self.req_published.wrapping_sub(self.rsp_cons) {
            return Err(Broken);
        }
        Ok(n)
    }

    /// Copies the next response out and consumes it. The caller checked
    /// [`pending`](Self::pending).
    pub fn take_raw(&mut self) -> [u8; 16] {
        let raw = self.ring.read_raw(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        raw
    }

    /// Before sleeping: true if responses are waiting; otherwise asks to be
    /// notified of the next one and checks again.
    pub fn final_check(&mut self) -> Result<bool, Broken> {
        if self.pending()? > 0 {
            return Ok(true);
        }
        self.ring.word(RSP_EVENT).store(self.rsp_cons.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(self.pending()? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};

    fn pair(entry: usize) -> (FrontRing, BackRing) {
        let page = Region::alloc_zeroed(4096);
        page.write_volatile(0, &[0xAA; 64]).unwrap();
        let f = FrontRing::init(Sring::new(page, entry).unwrap());
        let b = BackRing::new(Sring::new(page, entry).unwrap());
        (f, b)
    }

    #[test]
    fn requests_and_responses_cross_with_notifications() {
        let (mut f, mut b) = pair(12);
        assert_eq!(f.ring().size(), 256);
        assert_eq!(b.pending(), Ok(0));
        let req = NetifTxRequest { gref: 9, offset: 10, flags: 0, id: 3, size: 60 };
        assert!(f.push(&req));
        assert!(f.publish(), "req_event starts at 1: the first request notifies");
        assert_eq!(b.pending(), Ok(1));
        let got: NetifTxRequest = NetifTxRequest::read_from_prefix(&b.peek_raw(0)).unwrap().0;
        assert_eq!(got, req);
        b.consume(1);
        assert!(b.respond(&NetifTxResponse { id: 3, status: 0 }));
        assert!(!b.respond(&NetifTxResponse { id: 4, status: 0 }), "only one is owed");
        assert!(b.publish(), "rsp_event starts at 1");
        assert_eq!(f.pending(), Ok(1));
        let rsp = NetifTxResponse::read_from_prefix(&f.take_raw()).unwrap().0;
        assert_eq!(rsp, NetifTxResponse { id: 3, status: 0 });
        // Nobody asked for more notifications yet.
        assert!(f.push(&req));
        assert!(!f.publish());
        assert_eq!(b.pending(), Ok(1));
        // The backend sleeps after consuming: the next push notifies.
        b.consume(1);
        assert_eq!(b.final_check(), Ok(false));
        assert!(f.push(&req));
        assert!(f.publish());
        assert_eq!(b.final_check(), Ok(true));
    }

    #[test]
    fn a_lying_peer_is_broken() {
        let (mut f, b) = pair(8);
        let page = b.ring().page;
        page.atomic_u32(REQ_PROD).unwrap().store(257, Ordering::Release);
        assert_eq!(b.pending(), Err(Broken), "more requests than slots");
        page.atomic_u32(REQ_PROD).unwrap().store(256, Ordering::Release);
        assert_eq!(b.pending(), Ok(256), "a full ring is fine");
        // The frontend published 2; the backend claims 3 answers.
        assert!(f.push(&NetifRxRequest::default()) && f.push(&NetifRxRequest::default()));
        let _ = f.publish();
        page.atomic_u32(RSP_PROD).unwrap().store(3, Ordering::Release);
        assert_eq!(f.pending(), Err(Broken));
        page.atomic_u32(RSP_PROD).unwrap().store(2, Ordering::Release);
        assert_eq!(f.pending(), Ok(2));
        let _ = NetifRxResponse::default();
    }

    #[test]
    fn indices_wrap() {
        let (mut f, mut b) = pair(8);
        for round in 0..1000u32 {
            for _ in 0..(round % 7 + 1) {
                assert!(f.push(&NetifRxRequest { id: round as u16, pad: 0, gref: round }));
            }
            let _ = f.publish();
            let n = b.pending().unwrap();
            assert_eq!(n, round % 7 + 1);
            for _ in 0..n {
                let r = NetifRxRequest::read_from_prefix(&b.peek_raw(0)).unwrap().0;
                assert_eq!(r.gref, round);
                b.consume(1);
                assert!(b.respond(&NetifRxResponse { id: r.id, offset: 0, flags: 0, status: 1 }));
            }
            let _ = b.publish();
            assert_eq!(f.pending(), Ok(n));
            for _ in 0..n {
                let _ = f.take_raw();
            }
        }
        assert!(f.req_prod() > 3000);
    }
}
