//! Single-producer, single-consumer rings of plain-data messages.
//!
//! # Layout
//!
//! ```text
//! offset   0  prod        u32  written by the producer (free-running)
//! offset   4  cons_event  u32  written by the producer: "wake me when cons passes this"
//! offset  64  cons        u32  written by the consumer (free-running)
//! offset  68  prod_event  u32  written by the consumer: "wake me when prod passes this"
//! offset 128  slots       capacity × size_of::<T>()
//! ```
//!
//! Each cache line has exactly one writer. The capacity is a power of two held
//! in each endpoint's private handle and never read back from shared memory.
//!
//! # Signalling (Xen's event-index scheme, `io/ring.h`)
//!
//! The producer writes slots, stores `prod` with release ordering, issues a
//! full fence, then reads `prod_event` and notifies iff the new range of
//! indices it published covers the event (`new - event < new - old`, wrapping).
//! A consumer about to sleep stores `prod_event = cons + 1`, issues a full
//! fence and checks `prod` again ([`Consumer::arm`]): either the producer saw
//! the new event and will notify, or the consumer sees the new entries. The
//! same scheme runs the other way for a producer waiting for space.
//!
//! # Hostile peers
//!
//! Every index read from shared memory is checked against what this endpoint
//! knows: a consumer index that runs ahead of what was published, or a
//! producer index implying more than `capacity` outstanding entries, makes the
//! endpoint [`RingError::Faulty`]. The fault is sticky: a faulty endpoint
//! refuses all further work, and the component reports it.

use core::marker::PhantomData;

use crate::sync::{AtomicU32, Ordering, fence};
use crate::{Message, Notify};

#[cfg(not(loom))]
use crate::region::Region;

/// Bytes before the first slot.
pub const HEADER_SIZE: usize = 128;

/// The shared header. See the module documentation for the layout.
#[repr(C, align(64))]
pub struct Header {
    prod: AtomicU32,
    cons_event: AtomicU32,
    #[cfg(not(loom))]
    _producer_line: [u8; 56],
    cons: AtomicU32,
    prod_event: AtomicU32,
    #[cfg(not(loom))]
    _consumer_line: [u8; 56],
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Header>() == HEADER_SIZE);
    assert!(core::mem::offset_of!(Header, prod) == 0);
    assert!(core::mem::offset_of!(Header, cons_event) == 4);
    assert!(core::mem::offset_of!(Header, cons) == 64);
    assert!(core::mem::offset_of!(Header, prod_event) == 68);
};

/// Why a ring operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// No free slot (producer) — try again after the consumer releases.
    Full,
    /// The peer published an index that breaks the protocol. Sticky.
    Faulty,
    /// The region or capacity cannot hold a ring of this type.
    Layout,
}

/// Size and initial contents of a ring's region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Number of slots (a power of two).
    pub capacity: u32,
    /// Bytes per slot.
    pub slot_size: usize,
}

impl RingLayout {
    /// The layout of a ring of `capacity` messages of type `T`.
    pub fn of<T: Message>(capacity: u32) -> Result<RingLayout, RingError> {
        if capacity == 0 || !capacity.is_power_of_two() || capacity > 1 << 30 {
            return Err(RingError::Layout);
        }
        if core::mem::align_of::<T>() > HEADER_SIZE {
            return Err(RingError::Layout);
        }
        Ok(RingLayout { capacity, slot_size: core::mem::size_of::<T>() })
    }

    /// Bytes the region must hold.
    pub fn size(&self) -> usize {
        HEADER_SIZE + self.capacity as usize * self.slot_size
    }

    /// Writes the initial header (indices 0, events 1) into a fresh region.
    ///
    /// Called once by whoever lays out memory, before any endpoint attaches.
    #[cfg(not(loom))]
    pub fn init(&self, region: &Region) -> Result<(), RingError> {
        if region.len() < self.size() || !region.writable() {
            return Err(RingError::Layout);
        }
        // SAFETY: the region is at least HEADER_SIZE bytes, 64-byte aligned
        // (Region's invariant) and valid; AtomicU32 has no invalid bit
        // patterns, and the header is only ever accessed through atomics.
        let hdr = unsafe { &*(region.base() as *const Header) };
        hdr.prod.store(0, Ordering::Relaxed);
        hdr.cons.store(0, Ordering::Relaxed);
        hdr.prod_event.store(1, Ordering::Relaxed);
        hdr.cons_event.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(())
    }
}

/// Overwrites a ring's shared indices, as a hostile or broken peer could:
/// for tests of what endpoints do with garbage. Safe, because the indices are
/// atomics and every endpoint validates them.
#[cfg(not(loom))]
pub fn scribble_indices(region: &Region, prod: Option<u32>, cons: Option<u32>) -> Result<(), RingError> {
    if region.len() < HEADER_SIZE || !region.writable() {
        return Err(RingError::Layout);
    }
    // SAFETY: the region holds at least a header (checked), aligned by
    // Region's invariant; the header is only accessed through atomics.
    let hdr = unsafe { &*(region.base() as *const Header) };
    if let Some(p) = prod {
        hdr.prod.store(p, Ordering::Release);
    }
    if let Some(c) = cons {
        hdr.cons.store(c, Ordering::Release);
    }
    Ok(())
}

/// Where the header and slots live: a shared region, or (under loom) a model.
struct Shared<T> {
    #[cfg(not(loom))]
    hdr: core::ptr::NonNull<Header>,
    #[cfg(not(loom))]
    slots: core::ptr::NonNull<T>,
    #[cfg(loom)]
    model: std::sync::Arc<loom_model::Ring<T>>,
    _t: PhantomData<T>,
}

// SAFETY: the endpoints own their side of the protocol; slot accesses are
// ordered by the release/acquire pairs on the indices.
unsafe impl<T: Send> Send for Shared<T> {}

#[cfg(not(loom))]
impl<T: Message> Shared<T> {
    /// # Safety
    /// See [`Producer::attach`].
    unsafe fn new(region: &Region, capacity: u32) -> Result<Self, RingError> {
        let layout = RingLayout::of::<T>(capacity)?;
        if region.len() < layout.size() || !region.writable() {
            return Err(RingError::Layout);
        }
        let base = region.base();
        // SAFETY: the region is valid, 64-byte aligned and at least
        // HEADER_SIZE + capacity * size_of::<T>() bytes long, so both pointers
        // are in bounds; T's alignment divides 128 (checked by `of`).
        unsafe {
            Ok(Shared {
                hdr: core::ptr::NonNull::new_unchecked(base as *mut Header),
                slots: core::ptr::NonNull::new_unchecked(base.add(HEADER_SIZE) as *mut T),
                _t: PhantomData,
            })
        }
    }

    fn hdr(&self) -> &Header {
        // SAFETY: valid for the program's lifetime (Region's contract) and
        // only accessed through atomics.
        unsafe { self.hdr.as_ref() }
    }

    /// Writes slot `i` (already masked).
    fn write(&self, i: u32, value: &T) {
        // SAFETY: i < capacity (masked by the caller), so the slot is inside
        // the region; the producer is the only writer of slots, and the
        // consumer reads this slot only after the release store of `prod`
        // that follows.
        unsafe { self.slots.as_ptr().add(i as usize).write_volatile(*value) }
    }

    /// Copies slot `i` (already masked) out with one volatile read.
    fn read(&self, i: u32) -> T {
        // SAFETY: i < capacity, inside the region; the acquire load of `prod`
        // ordered the producer's write before this read, and T: FromBytes makes
        // any bytes a valid T even if a faulty peer scribbled on the slot.
        unsafe { self.slots.as_ptr().add(i as usize).read_volatile() }
    }
}

#[cfg(loom)]
mod loom_model {
    use super::Header;
    use crate::sync::AtomicU32;
    use loom::cell::UnsafeCell;

    /// Loom's stand-in for a ring region: same header protocol, slots as
    /// tracked cells so loom reports any read not ordered after its write.
    pub struct Ring<T> {
        pub hdr: Header,
        pub slots: Box<[UnsafeCell<T>]>,
    }

    impl<T: Copy + Default> Ring<T> {
        pub fn new(capacity: u32) -> Self {
            Ring {
                hdr: Header {
                    prod: AtomicU32::new(0),
                    cons_event: AtomicU32::new(1),
                    cons: AtomicU32::new(0),
                    prod_event: AtomicU32::new(1),
                },
                slots: (0..capacity).map(|_| UnsafeCell::new(T::default())).collect(),
            }
        }
    }
}

#[cfg(loom)]
impl<T: Message> Shared<T> {
    fn hdr(&self) -> &Header {
        &self.model.hdr
    }
    fn write(&self, i: u32, value: &T) {
        // SAFETY: loom checks that no other access races with this one.
        self.model.slots[i as usize].with_mut(|p| unsafe { *p = *value })
    }
    fn read(&self, i: u32) -> T {
        // SAFETY: loom checks that no other access races with this one.
        self.model.slots[i as usize].with(|p| unsafe { *p })
    }
}

/// A connected producer/consumer pair over a loom model ring.
#[cfg(loom)]
pub fn loom_pair<T: Message + Default>(capacity: u32) -> (Producer<T>, Consumer<T>) {
    let model = std::sync::Arc::new(loom_model::Ring::new(capacity));
    let mask = capacity - 1;
    let p = Producer::from_shared(Shared { model: model.clone(), _t: PhantomData }, mask);
    let c = Consumer::from_shared(Shared { model, _t: PhantomData }, mask);
    (p, c)
}

/// True if publishing `old..new` crossed the peer's requested event.
fn crosses(event: u32, old: u32, new: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The writing end of a ring.
pub struct Producer<T> {
    shared: Shared<T>,
    mask: u32,
    /// Next index to write (private).
    prod: u32,
    /// Last index stored to shared memory.
    published: u32,
    /// Last consumer index seen and validated.
    cons_seen: u32,
    faulty: bool,
}

impl<T: Message> Producer<T> {
    /// Attaches the producer end of the ring in `region`.
    ///
    /// # Safety
    ///
    /// `region` must hold a ring initialised by [`RingLayout::init`] for the
    /// same `T` and `capacity`, and no other producer may ever be attached to
    /// it (the slots have exactly one writer).
    #[cfg(not(loom))]
    pub unsafe fn attach(region: &Region, capacity: u32) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        let shared = unsafe { Shared::new(region, capacity)? };
        let mut p = Producer::from_shared(shared, capacity - 1);
        // Resume from whatever state the ring is in (a restarted component).
        let hdr = p.shared.hdr();
        let prod = hdr.prod.load(Ordering::Acquire);
        let cons = hdr.cons.load(Ordering::Acquire);
        p.prod = prod;
        p.published = prod;
        p.cons_seen = cons;
        p.faulty = prod.wrapping_sub(cons) > capacity;
        Ok(p)
    }

    fn from_shared(shared: Shared<T>, mask: u32) -> Self {
        Producer { shared, mask, prod: 0, published: 0, cons_seen: 0, faulty: false }
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// True once the consumer has broken the protocol.
    pub fn is_faulty(&self) -> bool {
        self.faulty
    }

    fn fault(&mut self) -> RingError {
        self.faulty = true;
        RingError::Faulty
    }

    /// Re-reads the consumer index and validates it: it may only move forward,
    /// and never past what we published.
    fn refresh(&mut self) -> Result<(), RingError> {
        let cons = self.shared.hdr().cons.load(Ordering::Acquire);
        let moved = cons.wrapping_sub(self.cons_seen);
        let allowed = self.published.wrapping_sub(self.cons_seen);
        if moved > allowed {
            return Err(self.fault());
        }
        self.cons_seen = cons;
        Ok(())
    }

    /// Free slots, after looking at the consumer's index.
    pub fn free(&mut self) -> Result<u32, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        self.refresh()?;
        Ok(self.capacity() - self.prod.wrapping_sub(self.cons_seen))
    }

    /// Writes one message; it becomes visible at the next [`publish`](Self::publish).
    pub fn push(&mut self, value: &T) -> Result<(), RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        if self.prod.wrapping_sub(self.cons_seen) >= self.capacity() {
            self.refresh()?;
            if self.prod.wrapping_sub(self.cons_seen) >= self.capacity() {
                return Err(RingError::Full);
            }
        }
        self.shared.write(self.prod & self.mask, value);
        self.prod = self.prod.wrapping_add(1);
        Ok(())
    }

    /// Writes as many of `values` as fit; returns how many.
    pub fn push_batch(&mut self, values: &[T]) -> Result<usize, RingError> {
        let room = self.free()? as usize;
        let n = room.min(values.len());
        for v in &values[..n] {
            self.shared.write(self.prod & self.mask, v);
            self.prod = self.prod.wrapping_add(1);
        }
        Ok(n)
    }

    /// Makes pushed messages visible to the consumer; says whether it must be
    /// woken.
    pub fn publish(&mut self) -> Notify {
        let old = self.published;
        let new = self.prod;
        if old == new || self.faulty {
            return Notify::No;
        }
        let hdr = self.shared.hdr();
        // Release: the slot writes above happen-before the consumer's acquire
        // load of `prod`.
        hdr.prod.store(new, Ordering::Release);
        // Full fence: our store of `prod` and our load of `prod_event` must not
        // be reordered, or we could miss a consumer that just armed.
        fence(Ordering::SeqCst);
        let event = hdr.prod_event.load(Ordering::Relaxed);
        self.published = new;
        if crosses(event, old, new) { Notify::Yes } else { Notify::No }
    }

    /// Call when the ring was full and you are about to wait: asks the
    /// consumer to notify when it frees a slot. Returns true if a slot is
    /// already free (do not wait).
    pub fn arm_space(&mut self) -> Result<bool, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        let hdr = self.shared.hdr();
        hdr.cons_event.store(self.cons_seen.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.free()? > 0)
    }
}

/// The reading end of a ring.
pub struct Consumer<T> {
    shared: Shared<T>,
    mask: u32,
    /// Next index to read (private).
    cons: u32,
    /// Last index stored to shared memory.
    released: u32,
    /// Last producer index seen and validated.
    prod_seen: u32,
    faulty: bool,
}

impl<T: Message> Consumer<T> {
    /// Attaches the consumer end of the ring in `region`.
    ///
    /// # Safety
    ///
    /// `region` must hold a ring initialised by [`RingLayout::init`] for the
    /// same `T` and `capacity`, and no other consumer may ever be attached.
    #[cfg(not(loom))]
    pub unsafe fn attach(region: &Region, capacity: u32) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        let shared = unsafe { Shared::new(region, capacity)? };
        let mut c = Consumer::from_shared(shared, capacity - 1);
        let hdr = c.shared.hdr();
        let cons = hdr.cons.load(Ordering::Acquire);
        let prod = hdr.prod.load(Ordering::Acquire);
        c.cons = cons;
        c.released = cons;
        c.prod_seen = cons;
        c.faulty = prod.wrapping_sub(cons) > capacity;
        Ok(c)
    }

    fn from_shared(shared: Shared<T>, mask: u32) -> Self {
        Consumer { shared, mask, cons: 0, released: 0, prod_seen: 0, faulty: false }
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// True once the producer has broken the protocol.
    pub fn is_faulty(&self) -> bool {
        self.faulty
    }

    fn fault(&mut self) -> RingError {
        self.faulty = true;
        RingError::Faulty
    }

    /// Marks the producer faulty because a higher-level protocol carried in
    /// the messages was broken (a frame length the ring cannot hold, say).
    /// Sticky, like an index fault.
    pub fn poison(&mut self) -> RingError {
        self.fault()
    }

    /// Re-reads the producer index and validates it: outstanding entries
    /// (published but not yet released by us) never exceed the capacity, and
    /// the index never moves backwards past what we already read.
    fn refresh(&mut self) -> Result<(), RingError> {
        let prod = self.shared.hdr().prod.load(Ordering::Acquire);
        let outstanding = prod.wrapping_sub(self.released);
        let unread = prod.wrapping_sub(self.cons);
        if outstanding > self.capacity() || unread > outstanding {
            return Err(self.fault());
        }
        self.prod_seen = prod;
        Ok(())
    }

    /// Messages ready to read, after looking at the producer's index.
    pub fn available(&mut self) -> Result<u32, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        self.refresh()?;
        Ok(self.prod_seen.wrapping_sub(self.cons))
    }

    /// Copies the next message out, if any.
    pub fn pop(&mut self) -> Result<Option<T>, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        if self.cons == self.prod_seen {
            self.refresh()?;
            if self.cons == self.prod_seen {
                return Ok(None);
            }
        }
        let value = self.shared.read(self.cons & self.mask);
        self.cons = self.cons.wrapping_add(1);
        Ok(Some(value))
    }

    /// Copies up to `out.len()` messages out; returns how many.
    pub fn pop_batch(&mut self, out: &mut [T]) -> Result<usize, RingError> {
        let n = (self.available()? as usize).min(out.len());
        for slot in &mut out[..n] {
            *slot = self.shared.read(self.cons & self.mask);
            self.cons = self.cons.wrapping_add(1);
        }
        Ok(n)
    }

    /// Looks at the message `ahead` places past the next one without
    /// consuming anything. Each slot should still be read only once: callers
    /// skip what they peeked with [`skip`](Self::skip).
    pub fn peek(&mut self, ahead: u32) -> Result<Option<T>, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        if self.prod_seen.wrapping_sub(self.cons) <= ahead {
            self.refresh()?;
            if self.prod_seen.wrapping_sub(self.cons) <= ahead {
                return Ok(None);
            }
        }
        Ok(Some(self.shared.read(self.cons.wrapping_add(ahead) & self.mask)))
    }

    /// Consumes `n` messages already looked at with [`peek`](Self::peek).
    pub fn skip(&mut self, n: u32) -> Result<(), RingError> {
        if self.prod_seen.wrapping_sub(self.cons) < n {
            return Err(RingError::Layout);
        }
        self.cons = self.cons.wrapping_add(n);
        Ok(())
    }

    /// Hands consumed slots back to the producer; says whether it must be
    /// woken (it was waiting for space).
    pub fn release(&mut self) -> Notify {
        let old = self.released;
        let new = self.cons;
        if old == new || self.faulty {
            return Notify::No;
        }
        let hdr = self.shared.hdr();
        // Release: our slot reads complete before the producer may reuse them.
        hdr.cons.store(new, Ordering::Release);
        fence(Ordering::SeqCst);
        let event = hdr.cons_event.load(Ordering::Relaxed);
        self.released = new;
        if crosses(event, old, new) { Notify::Yes } else { Notify::No }
    }

    /// Call before sleeping: asks the producer to notify on the next publish,
    /// then checks once more. Returns true if messages are waiting (do not
    /// sleep: a notification may never come for them).
    pub fn arm(&mut self) -> Result<bool, RingError> {
        self.arm_after(1)
    }

    /// As [`arm`](Self::arm), but asks to be notified only once `n`
    /// messages wait (`n` taken between 1 and the capacity): for messages
    /// that may wait and are cheaper taken in batches, like buffers coming
    /// home. Returns true if `n` are already waiting (do not sleep); fewer
    /// stay until a notification for the `n`th, or any other call.
    pub fn arm_after(&mut self, n: u32) -> Result<bool, RingError> {
        if self.faulty {
            return Err(RingError::Faulty);
        }
        let n = n.clamp(1, self.mask + 1);
        let hdr = self.shared.hdr();
        hdr.prod_event.store(self.cons.wrapping_add(n), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.available()? >= n)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::pool::PacketDesc;

    fn ring(capacity: u32) -> (Producer<u64>, Consumer<u64>, Region) {
        let layout = RingLayout::of::<u64>(capacity).unwrap();
        let region = Region::alloc_zeroed(layout.size());
        layout.init(&region).unwrap();
        // SAFETY: fresh region, initialised, one producer and one consumer.
        let p = unsafe { Producer::attach(&region, capacity).unwrap() };
        // SAFETY: as above.
        let c = unsafe { Consumer::attach(&region, capacity).unwrap() };
        (p, c, region)
    }

    /// Raw view of the header for tests that play a hostile peer.
    fn hdr(region: &Region) -> &Header {
        // SAFETY: the region holds an initialised header.
        unsafe { &*(region.base() as *const Header) }
    }

    #[test]
    fn layout_rejects_bad_capacity() {
        assert_eq!(RingLayout::of::<PacketDesc>(0), Err(RingError::Layout));
        assert_eq!(RingLayout::of::<PacketDesc>(12), Err(RingError::Layout));
        assert_eq!(RingLayout::of::<PacketDesc>(1 << 31), Err(RingError::Layout));
        assert_eq!(RingLayout::of::<PacketDesc>(256).unwrap().size(), 128 + 256 * 16);
        let small = Region::alloc_zeroed(128);
        // SAFETY: attach checks the size before touching memory.
        assert!(matches!(unsafe { Producer::<PacketDesc>::attach(&small, 4) }, Err(RingError::Layout)));
        assert_eq!(RingLayout::of::<PacketDesc>(4).unwrap().init(&small), Err(RingError::Layout));
    }

    #[test]
    fn push_pop_fill_and_drain() {
        let (mut p, mut c, _r) = ring(4);
        for i in 0..4 {
            p.push(&i).unwrap();
        }
        assert_eq!(p.push(&9), Err(RingError::Full));
        assert_eq!(c.pop(), Ok(None), "nothing visible before publish");
        assert_eq!(p.publish(), Notify::Yes, "consumer asked for the first entry");
        for i in 0..4 {
            assert_eq!(c.pop(), Ok(Some(i)));
        }
        assert_eq!(c.pop(), Ok(None));
        assert_eq!(p.push(&9), Err(RingError::Full), "no space until released");
        let _ = c.release();
        p.push(&9).unwrap();
    }

    #[test]
    fn notifies_only_when_asked() {
        let (mut p, mut c, _r) = ring(8);
        p.push(&1).unwrap();
        assert!(p.publish().needed());
        p.push(&2).unwrap();
        assert!(!p.publish().needed(), "consumer has not re-armed");
        assert_eq!(c.pop_batch(&mut [0; 8]), Ok(2));
        assert_eq!(c.arm(), Ok(false));
        p.push(&3).unwrap();
        assert!(p.publish().needed(), "consumer re-armed");
    }

    #[test]
    fn arm_after_notifies_once_a_batch_waits() {
        let (mut p, mut c, _r) = ring(8);
        assert_eq!(c.arm_after(3), Ok(false));
        p.push(&1).unwrap();
        p.push(&2).unwrap();
        assert!(!p.publish().needed(), "two of three");
        assert_eq!(c.arm_after(3), Ok(false), "two waiting: may sleep");
        p.push(&3).unwrap();
        assert!(p.publish().needed(), "the third crosses the event");
        assert_eq!(c.arm_after(3), Ok(true), "three waiting: do not sleep");
        assert_eq!(c.pop_batch(&mut [0; 8]), Ok(3));
        let _ = c.release();
        // A batch larger than the ring means the ring full.
        assert_eq!(c.arm_after(100), Ok(false));
        for i in 0..7 {
            p.push(&i).unwrap();
        }
        assert!(!p.publish().needed());
        p.push(&7).unwrap();
        assert!(p.publish().needed(), "a full ring always notifies");
        assert_eq!(c.arm_after(0), Ok(true), "0 means 1");
    }

    #[test]
    fn arm_sees_entries_published_before_it() {
        let (mut p, mut c, _r) = ring(8);
        p.push(&1).unwrap();
        let _ = p.publish();
        assert_eq!(c.arm(), Ok(true), "must not sleep with an entry waiting");
    }

    #[test]
    fn producer_waiting_for_space_is_woken() {
        let (mut p, mut c, _r) = ring(2);
        p.push(&1).unwrap();
        p.push(&2).unwrap();
        let _ = p.publish();
        assert_eq!(p.arm_space(), Ok(false));
        assert_eq!(c.pop(), Ok(Some(1)));
        assert!(c.release().needed());
        assert_eq!(p.free(), Ok(1));
    }

    #[test]
    fn wraps_at_u32_max() {
        let (_, _, region) = ring(4);
        let h = hdr(&region);
        h.prod.store(u32::MAX - 2, Ordering::Relaxed);
        h.cons.store(u32::MAX - 2, Ordering::Relaxed);
        // SAFETY: re-attaching after the previous endpoints were dropped.
        let mut p = unsafe { Producer::<u64>::attach(&region, 4).unwrap() };
        // SAFETY: as above.
        let mut c = unsafe { Consumer::<u64>::attach(&region, 4).unwrap() };
        for round in 0..10u64 {
            for i in 0..3 {
                p.push(&(round * 10 + i)).unwrap();
            }
            let _ = p.publish();
            let mut out = [0; 4];
            assert_eq!(c.pop_batch(&mut out), Ok(3));
            assert_eq!(&out[..3], &[round * 10, round * 10 + 1, round * 10 + 2]);
            let _ = c.release();
        }
        assert!(h.prod.load(Ordering::Relaxed) < 100, "indices wrapped");
    }

    #[test]
    fn hostile_producer_index_is_faulty() {
        let (mut p, mut c, region) = ring(4);
        p.push(&1).unwrap();
        let _ = p.publish();
        assert_eq!(c.available(), Ok(1));
        hdr(&region).prod.store(1000, Ordering::Relaxed);
        assert_eq!(c.pop(), Ok(Some(1)), "already-validated entry is still readable");
        assert_eq!(c.pop(), Err(RingError::Faulty));
        hdr(&region).prod.store(1, Ordering::Relaxed);
        assert_eq!(c.pop(), Err(RingError::Faulty), "fault is sticky");
        assert!(c.is_faulty());
        assert_eq!(c.arm(), Err(RingError::Faulty));
    }

    #[test]
    fn hostile_producer_moving_backwards_is_faulty() {
        let (mut p, mut c, region) = ring(8);
        for i in 0..4 {
            p.push(&i).unwrap();
        }
        let _ = p.publish();
        assert_eq!(c.pop_batch(&mut [0; 3]), Ok(3));
        hdr(&region).prod.store(1, Ordering::Relaxed);
        assert_eq!(c.available(), Err(RingError::Faulty));
    }

    #[test]
    fn hostile_consumer_index_is_faulty() {
        let (mut p, _c, region) = ring(4);
        p.push(&1).unwrap();
        let _ = p.publish();
        hdr(&region).cons.store(3, Ordering::Relaxed); // past what was published
        assert_eq!(p.free(), Err(RingError::Faulty));
        assert_eq!(p.push(&2), Err(RingError::Faulty));
        assert!(p.is_faulty());
    }

    #[test]
    fn garbage_header_on_attach_is_faulty() {
        let (_, _, region) = ring(4);
        hdr(&region).prod.store(0xdead_beef, Ordering::Relaxed);
        // SAFETY: re-attaching; the old endpoints are gone.
        let mut c = unsafe { Consumer::<u64>::attach(&region, 4).unwrap() };
        assert_eq!(c.pop(), Err(RingError::Faulty));
    }

    #[test]
    fn peek_and_skip() {
        let (mut p, mut c, _r) = ring(4);
        p.push(&7).unwrap();
        p.push(&8).unwrap();
        let _ = p.publish();
        assert_eq!(c.peek(1), Ok(Some(8)));
        assert_eq!(c.peek(2), Ok(None));
        assert_eq!(c.skip(3), Err(RingError::Layout));
        c.skip(1).unwrap();
        assert_eq!(c.pop(), Ok(Some(8)));
    }
}
