//! Packet buffers: a pool region of fixed-size buffers, descriptors that name
//! them, and the bookkeeping that makes ownership checkable.
//!
//! A buffer is referenced by at most one queue at a time. Every pool has an
//! owner (the driver that fills it); a descriptor travels forward through
//! active rings and comes back the way it came through the paired free rings.
//! Each component that relays descriptors keeps a [`Custody`] set per pool, so
//! a buffer that arrives twice, or is handed back without having been handed
//! out, is caught at the first hop that sees it; the owner's [`BufferOwner`]
//! does the same for buffers coming home.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::region::Region;

/// Most buffers one pool may hold (bounds every bitmap and free list).
pub const MAX_POOL_BUFFERS: usize = 4096;

const WORDS: usize = MAX_POOL_BUFFERS / 64;

/// A packet descriptor: which bytes of which pool hold a packet.
///
/// `flags` and `meta` belong to the packet layer (`moat-net` gives them
/// meaning); this crate checks only `pool`, `offset` and `len`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketDesc {
    /// Pool id (as laid out by the build tool).
    pub pool: u16,
    /// Packet-layer flags (checksum state and the like).
    pub flags: u16,
    /// Byte offset of the packet's first byte within the pool region.
    pub offset: u32,
    /// Packet length in bytes.
    pub len: u32,
    /// Packet-layer metadata (interface, verdict, …).
    pub meta: u32,
}

const _: () = assert!(core::mem::size_of::<PacketDesc>() == 16);

/// Why a descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescError {
    /// Names a pool this endpoint does not know.
    WrongPool,
    /// Offset past the end of the pool.
    OutOfRange,
    /// Offset not 2-byte aligned (headers are read as 16-bit words).
    Misaligned,
    /// Data runs past the end of its buffer.
    TooLong,
    /// A buffer arrived that is already held here (handed over twice).
    Duplicate,
    /// A buffer was handed back that was never handed out.
    NotHeld,
    /// A writable view was asked of a read-only pool.
    ReadOnly,
    /// Pool geometry is impossible (size not a power of two, too many buffers,
    /// region too small).
    BadGeometry,
}

/// Shape of a pool: `count` buffers of `buf_size` bytes, back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    id: u16,
    shift: u32,
    count: u32,
}

impl PoolGeometry {
    /// A pool of `count` buffers of `buf_size` bytes (a power of two, 64 to
    /// 64 KiB).
    pub fn new(id: u16, buf_size: u32, count: u32) -> Result<Self, DescError> {
        if !buf_size.is_power_of_two() || !(64..=65536).contains(&buf_size) {
            return Err(DescError::BadGeometry);
        }
        if count == 0 || count as usize > MAX_POOL_BUFFERS {
            return Err(DescError::BadGeometry);
        }
        Ok(PoolGeometry { id, shift: buf_size.trailing_zeros(), count })
    }

    /// The pool id descriptors must carry.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Bytes per buffer.
    pub fn buf_size(&self) -> u32 {
        1 << self.shift
    }

    /// Number of buffers.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes the pool region must hold.
    pub fn region_size(&self) -> usize {
        (self.count as usize) << self.shift
    }

    /// Validates a descriptor against this pool; returns its buffer index.
    pub fn check(&self, d: &PacketDesc) -> Result<u32, DescError> {
        if d.pool != self.id {
            return Err(DescError::WrongPool);
        }
        let index = d.offset >> self.shift;
        if index >= self.count {
            return Err(DescError::OutOfRange);
        }
        if !d.offset.is_multiple_of(2) {
            return Err(DescError::Misaligned);
        }
        let within = d.offset & (self.buf_size() - 1);
        if d.len > self.buf_size() - within {
            return Err(DescError::TooLong);
        }
        Ok(index)
    }

    /// A descriptor covering all of buffer `index`.
    pub fn whole(&self, index: u32) -> PacketDesc {
        PacketDesc { pool: self.id, flags: 0, offset: index << self.shift, len: self.buf_size(), meta: 0 }
    }
}

/// Access to the bytes of a pool's buffers.
pub struct Pool {
    region: Region,
    geo: PoolGeometry,
}

impl Pool {
    /// Attaches to the pool in `region`.
    ///
    /// # Safety
    ///
    /// `region` must be valid (see [`Region::from_raw`]), and every component
    /// mapping it must follow the ownership rule: the buffers named by the
    /// descriptors a component currently holds are accessed by that component
    /// alone until it passes the descriptor on.
    pub unsafe fn attach(region: Region, geo: PoolGeometry) -> Result<Pool, DescError> {
        if region.len() < geo.region_size() {
            return Err(DescError::BadGeometry);
        }
        Ok(Pool { region, geo })
    }

    /// The pool's shape.
    pub fn geometry(&self) -> &PoolGeometry {
        &self.geo
    }

    /// Whether this component may write the pool's buffers.
    pub fn writable(&self) -> bool {
        self.region.writable()
    }

    /// The packet bytes a descriptor names.
    pub fn packet(&self, d: &PacketDesc) -> Result<&[u8], DescError> {
        self.geo.check(d)?;
        // SAFETY: check() proved offset..offset+len lies inside one buffer of
        // the region; the ownership rule (attach's contract) means no one else
        // writes this buffer while we hold its descriptor.
        Ok(unsafe { core::slice::from_raw_parts(self.region.base().add(d.offset as usize), d.len as usize) })
    }

    /// The packet bytes a descriptor names, writable.
    pub fn packet_mut(&mut self, d: &PacketDesc) -> Result<&mut [u8], DescError> {
        let (buf, start) = self.buffer_mut(d)?;
        Ok(&mut buf[start..start + d.len as usize])
    }

    /// The whole buffer holding a descriptor's packet, and where the packet
    /// starts in it: for adding or stripping headers in the headroom.
    pub fn buffer_mut(&mut self, d: &PacketDesc) -> Result<(&mut [u8], usize), DescError> {
        if !self.region.writable() {
            return Err(DescError::ReadOnly);
        }
        let index = self.geo.check(d)?;
        let size = self.geo.buf_size() as usize;
        let start = (index as usize) << self.geo.shift;
        // SAFETY: index < count, so start..start+size is one buffer inside the
        // writable region; `&mut self` makes this the only view we hand out,
        // and the ownership rule keeps other components away from it.
        let buf = unsafe { core::slice::from_raw_parts_mut(self.region.base().add(start), size) };
        Ok((buf, d.offset as usize - start))
    }
}

/// A set of buffers of one pool, one bit each.
#[derive(Clone)]
struct BufferSet {
    bits: [u64; WORDS],
    len: u32,
}

impl BufferSet {
    const fn new() -> Self {
        BufferSet { bits: [0; WORDS], len: 0 }
    }

    fn insert(&mut self, index: u32) -> bool {
        let (w, b) = (index as usize / 64, index % 64);
        let fresh = self.bits[w] & (1 << b) == 0;
        self.bits[w] |= 1 << b;
        // A branch, not `len += fresh as u32`: rustc 1.95's
        // SimplifyComparisonIntegral drops that update in optimised builds
        // (rust-lang/rust#158206); see `remove`.
        if fresh {
            self.len += 1;
        }
        fresh
    }

    fn remove(&mut self, index: u32) -> bool {
        let (w, b) = (index as usize / 64, index % 64);
        let present = self.bits[w] & (1 << b) != 0;
        self.bits[w] &= !(1 << b);
        // `self.len -= present as u32` compiles to nothing at opt-level 2
        // and 3 with rustc 1.95.0 (rust-lang/rust#158206): `held()` then
        // only ever grew in release builds.
        if present {
            self.len -= 1;
        }
        present
    }
}

/// The buffers of one pool that a relaying component currently holds
/// (itself or lent further downstream).
///
/// A buffer arriving that is already held, or going back that is not held, is
/// an error naming the peer that broke the ownership rule.
#[derive(Clone)]
pub struct Custody {
    geo: PoolGeometry,
    held: BufferSet,
}

impl Custody {
    /// Nothing held.
    pub const fn new(geo: PoolGeometry) -> Self {
        Custody { geo, held: BufferSet::new() }
    }

    /// The pool this tracks.
    pub fn geometry(&self) -> &PoolGeometry {
        &self.geo
    }

    /// A descriptor arrived from upstream: validate and take custody.
    pub fn receive(&mut self, d: &PacketDesc) -> Result<u32, DescError> {
        let index = self.geo.check(d)?;
        if !self.held.insert(index) {
            return Err(DescError::Duplicate);
        }
        Ok(index)
    }

    /// A descriptor goes back upstream: it must be one we hold.
    pub fn give_back(&mut self, d: &PacketDesc) -> Result<u32, DescError> {
        let index = self.geo.check(d)?;
        if !self.held.remove(index) {
            return Err(DescError::NotHeld);
        }
        Ok(index)
    }

    /// True if buffer of `d` is held here.
    pub fn holds(&self, d: &PacketDesc) -> bool {
        match self.geo.check(d) {
            Ok(index) => self.held.bits[index as usize / 64] & (1 << (index % 64)) != 0,
            Err(_) => false,
        }
    }

    /// Number of buffers held.
    pub fn held(&self) -> u32 {
        self.held.len
    }
}

/// The owner's view of a pool: which buffers are home and free to fill, and
/// which are out. Buffers come home through [`reclaim`](Self::reclaim), which
/// refuses one that is already home.
pub struct BufferOwner {
    out: Custody,
    free: [u16; MAX_POOL_BUFFERS],
    nfree: u32,
}

impl BufferOwner {
    /// All buffers home.
    pub fn new(geo: PoolGeometry) -> Self {
        let mut free = [0u16; MAX_POOL_BUFFERS];
        // Hand out low indices first (LIFO: the last one freed is reused first,
        // while it is still in cache).
        for (i, slot) in free.iter_mut().take(geo.count() as usize).enumerate() {
            *slot = (geo.count() as usize - 1 - i) as u16;
        }
        BufferOwner { out: Custody::new(geo), free, nfree: geo.count() }
    }

    /// The pool's shape.
    pub fn geometry(&self) -> &PoolGeometry {
        self.out.geometry()
    }

    /// Takes a free buffer: a descriptor covering all of it.
    pub fn alloc(&mut self) -> Option<PacketDesc> {
        if self.nfree == 0 {
            return None;
        }
        self.nfree -= 1;
        let index = self.free[self.nfree as usize] as u32;
        let d = self.out.geo.whole(index);
        let inserted = self.out.held.insert(index);
        debug_assert!(inserted, "free list and out-set disagree");
        Some(d)
    }

    /// A buffer comes home; the descriptor may point anywhere inside it.
    pub fn reclaim(&mut self, d: &PacketDesc) -> Result<(), DescError> {
        let index = self.out.give_back(d)?;
        self.free[self.nfree as usize] = index as u16;
        self.nfree += 1;
        Ok(())
    }

    /// Buffers currently out.
    pub fn outstanding(&self) -> u32 {
        self.out.held()
    }

    /// Buffers home.
    pub fn available(&self) -> u32 {
        self.nfree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> PoolGeometry {
        PoolGeometry::new(3, 2048, 8).unwrap()
    }

    #[test]
    fn geometry_rules() {
        assert_eq!(PoolGeometry::new(0, 1000, 8), Err(DescError::BadGeometry));
        assert_eq!(PoolGeometry::new(0, 32, 8), Err(DescError::BadGeometry));
        assert_eq!(PoolGeometry::new(0, 2048, 0), Err(DescError::BadGeometry));
        assert_eq!(PoolGeometry::new(0, 2048, 4097), Err(DescError::BadGeometry));
        assert_eq!(geo().region_size(), 16384);
    }

    #[test]
    fn descriptor_validation() {
        let g = geo();
        let ok = PacketDesc { pool: 3, offset: 2048 + 64, len: 1500, ..Default::default() };
        assert_eq!(g.check(&ok), Ok(1));
        assert_eq!(g.check(&PacketDesc { pool: 4, ..ok }), Err(DescError::WrongPool));
        assert_eq!(g.check(&PacketDesc { offset: 8 * 2048, ..ok }), Err(DescError::OutOfRange));
        assert_eq!(g.check(&PacketDesc { offset: u32::MAX - 1, ..ok }), Err(DescError::OutOfRange));
        assert_eq!(g.check(&PacketDesc { offset: 2049, ..ok }), Err(DescError::Misaligned));
        assert_eq!(g.check(&PacketDesc { offset: 2048 + 600, ..ok }), Err(DescError::TooLong));
        assert_eq!(g.check(&PacketDesc { len: u32::MAX, ..ok }), Err(DescError::TooLong));
        assert_eq!(g.check(&PacketDesc { offset: 2048 + 548, ..ok }), Ok(1), "ends exactly at the buffer end");
    }

    #[test]
    fn custody_catches_duplicates_and_strangers() {
        let mut c = Custody::new(geo());
        let d = geo().whole(5);
        assert_eq!(c.receive(&d), Ok(5));
        assert_eq!(c.receive(&PacketDesc { offset: d.offset + 100, len: 10, ..d }), Err(DescError::Duplicate));
        assert!(c.holds(&d));
        assert_eq!(c.give_back(&d), Ok(5));
        assert_eq!(c.give_back(&d), Err(DescError::NotHeld));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn owner_detects_double_return() {
        let mut o = BufferOwner::new(geo());
        let a = o.alloc().unwrap();
        let b = o.alloc().unwrap();
        assert_ne!(a.offset, b.offset);
        assert_eq!(o.outstanding(), 2);
        o.reclaim(&a).unwrap();
        assert_eq!(o.reclaim(&a), Err(DescError::NotHeld), "handed back twice");
        let never = geo().whole(7);
        assert_eq!(o.reclaim(&never), Err(DescError::NotHeld));
        o.reclaim(&b).unwrap();
        assert_eq!(o.outstanding(), 0, "counts come down too (also under --release)");
        let all: Vec<_> = core::iter::from_fn(|| o.alloc()).collect();
        assert_eq!(all.len(), 8);
        assert!(o.alloc().is_none());
    }

    #[test]
    fn pool_views_are_bounded_and_respect_read_only() {
        let g = geo();
        let region = Region::alloc_zeroed(g.region_size());
        // SAFETY: fresh region, this test is its only user.
        let mut pool = unsafe { Pool::attach(region, g).unwrap() };
        let d = PacketDesc { pool: 3, offset: 2048 * 2 + 14, len: 4, ..Default::default() };
        pool.packet_mut(&d).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        let (buf, start) = pool.buffer_mut(&d).unwrap();
        assert_eq!(start, 14);
        assert_eq!(&buf[14..18], &[1, 2, 3, 4]);
        assert_eq!(pool.packet(&d).unwrap(), &[1, 2, 3, 4]);
        // SAFETY: same region, read-only view, no concurrent writers.
        let mut ro = unsafe { Pool::attach(region.read_only(), g).unwrap() };
        assert_eq!(ro.packet_mut(&d).unwrap_err(), DescError::ReadOnly);
        assert_eq!(ro.packet(&d).unwrap(), &[1, 2, 3, 4]);
        // SAFETY: attach checks the size before anything is read.
        assert!(unsafe { Pool::attach(Region::alloc_zeroed(100), g) }.is_err());
    }
}
