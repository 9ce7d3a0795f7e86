//! The component's side of an ops device: stage a batch, submit it, read
//! the results, take events, and reach its own pages and window slots.
//!
//! Everything here is safe: the region is reached only through
//! `moat_ring::Region`'s bounded volatile and atomic accessors, each op and
//! each result is copied across once, and the header the runtime wrote is
//! checked against the role's geometry before anything relies on it.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};

use moat_ring::{Device, Region, RegionError};
use zerocopy::{FromBytes, IntoBytes};

use super::{EVENT_WORDS, Geometry, MAGIC, MAX_OPS, OPS_OFFSET, Op, Role, VERSION, header, status};

/// A batch being staged, in flight, or done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Ops may be staged.
    Open,
    /// Submitted with this sequence number; results not back yet.
    InFlight(u32),
    /// Results are readable until [`XenOps::finish`].
    Done,
}

/// One component's ops device.
pub struct XenOps<R: Role> {
    region: Region,
    geo: Geometry,
    seq: u32,
    staged: usize,
    submitted: usize,
    state: State,
    _role: PhantomData<R>,
}

impl<R: Role> Device for XenOps<R> {
    const NAME: &'static str = R::NAME;

    // Implementing the trait's `unsafe fn` needs no unsafe code: every access
    // to the region is bounded, volatile or atomic.
    #[allow(unsafe_code)]
    unsafe fn attach(region: Region) -> Result<Self, RegionError> {
        XenOps::new(region)
    }
}

/// A failure to stage an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// The batch holds [`MAX_OPS`] ops already.
    Full,
    /// A batch is in flight or its results were not finished with.
    Busy,
}

/// Event handles that fired, as taken from the bitmap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events([u32; EVENT_WORDS]);

impl Events {
    /// True if `handle` fired.
    pub fn contains(&self, handle: u16) -> bool {
        let h = usize::from(handle);
        h < EVENT_WORDS * 32 && self.0[h / 32] & (1 << (h % 32)) != 0
    }

    /// True if none fired.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The handles that fired, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..EVENT_WORDS * 32).filter(|h| self.0[h / 32] & (1 << (h % 32)) != 0).map(|h| h as u16)
    }

    /// Adds `handle` (for callers that merge event sets).
    pub fn insert(&mut self, handle: u16) {
        let h = usize::from(handle);
        if h < EVENT_WORDS * 32 {
            self.0[h / 32] |= 1 << (h % 32);
        }
    }
}

impl<R: Role> XenOps<R> {
    /// Wraps `region`, checking the header the runtime wrote matches the
    /// role's geometry and the region is big enough.
    pub fn new(region: Region) -> Result<Self, RegionError> {
        let geo = R::GEOMETRY;
        if region.len() < geo.bytes() {
            return Err(RegionError::OutOfRange);
        }
        let word = |off| region.atomic_u32(off).map(|w| w.load(Ordering::Acquire));
        let ok = word(header::MAGIC)? == MAGIC
            && word(header::VERSION)? == VERSION
            && word(header::LOCAL_PAGES)? == geo.local_pages
            && word(header::WINDOW_PAGES)? == geo.window_pages
            && word(header::MAX_OPS)? == MAX_OPS as u32;
        if !ok {
            return Err(RegionError::OutOfRange);
        }
        let seq = word(header::SUBMIT)?;
        // A batch left from a previous life of the component is abandoned:
        // what it did is done, and the sequence continues past it.
        Ok(XenOps { region, geo, seq, staged: 0, submitted: 0, state: State::Open, _role: PhantomData })
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // Offsets are header constants inside the first page, checked in new().
        self.region.atomic_u32(off).expect("header words checked at attach")
    }

    /// The region's shape.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// True if ops may be staged now.
    pub fn open(&self) -> bool {
        self.state == State::Open
    }

    /// True if a submitted batch has not come back yet.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, State::InFlight(_))
    }

    /// Ops staged and not yet submitted.
    pub fn staged(&self) -> usize {
        self.staged
    }

    /// Room left in the batch being staged.
    pub fn room(&self) -> usize {
        if self.open() { MAX_OPS - self.staged } else { 0 }
    }

    /// Stages `op`; returns its slot.
    pub fn push(&mut self, op: Op) -> Result<usize, Batch> {
        if !self.open() {
            return Err(Batch::Busy);
        }
        if self.staged >= MAX_OPS {
            return Err(Batch::Full);
        }
        let at = OPS_OFFSET + self.staged * core::mem::size_of::<Op>();
        self.region.write_volatile(at, Op { status: status::INVALID, ..op }.as_bytes()).expect("slot inside page");
        self.staged += 1;
        Ok(self.staged - 1)
    }

    /// Submits the staged ops. Returns true if there was anything to submit:
    /// then notify the device channel.
    pub fn submit(&mut self) -> bool {
        if !self.open() || self.staged == 0 {
            return false;
        }
        self.seq = self.seq.wrapping_add(1);
        self.word(header::COUNT).store(self.staged as u32, Ordering::Relaxed);
        self.word(header::SUBMIT).store(self.seq, Ordering::Release);
        self.submitted = self.staged;
        self.staged = 0;
        self.state = State::InFlight(self.seq);
        true
    }

    /// If the batch in flight came back, its op count (results are then
    /// readable with [`result`](Self::result) until [`finish`](Self::finish)).
    pub fn poll(&mut self) -> Option<usize> {
        match self.state {
            State::InFlight(seq) if self.word(header::DONE).load(Ordering::Acquire) == seq => {
                self.state = State::Done;
                Some(self.submitted)
            }
            State::Done => Some(self.submitted),
            _ => None,
        }
    }

    /// Result of op `i` of the finished batch (copied out).
    pub fn result(&self, i: usize) -> Option<Op> {
        if self.state != State::Done || i >= self.submitted {
            return None;
        }
        let mut raw = [0u8; core::mem::size_of::<Op>()];
        let at = OPS_OFFSET + i * raw.len();
        self.region.read_volatile(at, &mut raw).ok()?;
        Op::read_from_bytes(&raw).ok()
    }

    /// Done with the results: the next batch may be staged.
    pub fn finish(&mut self) {
        if self.state == State::Done {
            self.state = State::Open;
            self.submitted = 0;
        }
    }

    /// Takes the event handles that fired since the last call.
    pub fn take_events(&mut self) -> Events {
        let mut e = Events::default();
        for (i, w) in e.0.iter_mut().enumerate() {
            *w = self.word(header::EVENTS + 4 * i).swap(0, Ordering::AcqRel);
        }
        e
    }

    /// Ops the runtime refused since the device was made.
    pub fn denied(&self) -> u32 {
        self.word(header::DENIED).load(Ordering::Relaxed)
    }

    /// Local page `i`, if it exists.
    pub fn local_page(&self, i: u32) -> Option<Region> {
        if i >= self.geo.local_pages {
            return None;
        }
        self.region.carve(self.geo.local_offset(i), crate::PAGE_SIZE).ok()
    }

    /// Window slot `i`, if it exists. Its contents mean something only while
    /// a mapping the component asked for is in place.
    pub fn window_page(&self, i: u32) -> Option<Region> {
        if i >= self.geo.window_pages {
            return None;
        }
        self.region.carve(self.geo.window_offset(i), crate::PAGE_SIZE).ok()
    }

    /// Byte offset of local page `i` in [`super::DEVICE_SPACE`] (for copies).
    pub fn local_space_offset(page: u32) -> u32 {
        page * crate::PAGE_SIZE as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::service::tests::{FakeHv, service_for};
    use super::super::*;
    use super::*;

    #[test]
    fn a_batch_goes_round_trip() {
        let region = Region::alloc_zeroed(Backend::GEOMETRY.bytes());
        let mut svc = service_for::<Backend>(region, Caps { grant_copy: true, grant_access: false, event_channels: 4 });
        let mut dev = XenOps::<Backend>::new(region).unwrap();
        let mut hv = FakeHv::default();
        assert!(!dev.submit(), "nothing staged");
        dev.push(Op::alloc_unbound(5).tagged(7)).unwrap();
        dev.push(Op::send(0)).unwrap();
        dev.push(Op::send(9)).unwrap();
        assert!(dev.submit());
        assert_eq!(dev.push(Op::ZERO), Err(Batch::Busy));
        assert_eq!(dev.poll(), None);
        assert!(svc.run(&mut hv));
        assert_eq!(dev.poll(), Some(3));
        let a = dev.result(0).unwrap();
        assert!(a.ok() && a.tag == 7 && a.handle == 0 && a.port == 100);
        assert!(dev.result(1).unwrap().ok());
        assert_eq!(dev.result(2).unwrap().status, status::DENIED, "not a handle we hold");
        assert_eq!(hv.sent, [100]);
        dev.finish();
        assert!(dev.open());
        assert!(!svc.run(&mut hv), "nothing new submitted");
        // Events for our port come back as our handle.
        assert!(svc.event(100));
        assert!(!svc.event(101), "not ours");
        let e = dev.take_events();
        assert!(e.contains(0) && !e.contains(1));
        assert!(dev.take_events().is_empty(), "taken once");
        assert_eq!(dev.denied(), 1);
    }

    #[test]
    fn attach_checks_the_header() {
        let region = Region::alloc_zeroed(Backend::GEOMETRY.bytes());
        assert!(XenOps::<Backend>::new(region).is_err(), "no header");
        let _ = service_for::<Backend>(region, Caps::default());
        assert!(XenOps::<Backend>::new(region).is_ok());
        assert!(XenOps::<Frontend>::new(region).is_err(), "another role's geometry");
        let small = region.carve(0, 8192).unwrap();
        assert!(XenOps::<Backend>::new(small).is_err());
    }

    #[test]
    fn a_full_batch_refuses_more() {
        let region = Region::alloc_zeroed(Frontend::GEOMETRY.bytes());
        let _svc = service_for::<Frontend>(region, Caps::default());
        let mut dev = XenOps::<Frontend>::new(region).unwrap();
        for _ in 0..MAX_OPS {
            dev.push(Op::ZERO).unwrap();
        }
        assert_eq!(dev.push(Op::ZERO), Err(Batch::Full));
        assert_eq!(dev.room(), 0);
    }
}
