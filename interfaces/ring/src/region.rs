//! A shared memory region: a base address and a length, nothing more.
//!
//! The runtime (PVH monitor or hosted launcher) maps regions and wraps them in
//! [`Region`] once, in `unsafe` code that knows the mapping is valid. From then
//! on every access goes through this crate's endpoints, which bound every
//! offset by the region's length.

use core::ptr::NonNull;

use zerocopy::FromBytes;

/// Alignment every region must have: one cache line, so ring headers can keep
/// producer and consumer indices on separate lines.
pub const REGION_ALIGN: usize = 64;

/// A contiguous range of memory that may be shared with other components.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: a Region is an address range; all accesses through it are atomic,
// volatile, or guarded by the ownership protocols of this crate, and the
// constructor's contract makes the memory valid for the program's lifetime.
unsafe impl Send for Region {}
// SAFETY: as for Send: shared references to a Region grant no unsynchronised
// access by themselves.
unsafe impl Sync for Region {}

/// Why a region could not be made or carved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The base address is null.
    Null,
    /// The base address or offset is not aligned to [`REGION_ALIGN`].
    Misaligned,
    /// The requested range does not lie inside the region.
    OutOfRange,
    /// A writable view was asked of a region mapped read-only.
    ReadOnly,
}

impl Region {
    /// Wraps a mapped memory range.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be mapped, readable (and writable if
    /// `writable`), and stay mapped for the rest of the program. Other parties
    /// may access it concurrently only through this crate's ring and pool
    /// protocols. Memory that backs a ring must have been initialised with
    /// [`crate::RingLayout::init`] before endpoints are attached.
    pub unsafe fn from_raw(base: *mut u8, len: usize, writable: bool) -> Result<Self, RegionError> {
        let base = NonNull::new(base).ok_or(RegionError::Null)?;
        if !(base.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
            return Err(RegionError::Misaligned);
        }
        Ok(Region { base, len, writable })
    }

    /// Allocates a zeroed, page-aligned region that lives for the rest of the
    /// process (for tests, benchmarks and the hosted image's private state).
    #[cfg(any(test, feature = "std"))]
    pub fn alloc_zeroed(len: usize) -> Region {
        let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).expect("region layout");
        // SAFETY: the layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: freshly allocated, zeroed, page-aligned, never freed (leaked
        // on purpose so endpoints can never dangle).
        unsafe { Region::from_raw(ptr, len, true) }.expect("aligned allocation")
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this mapping may be written.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The same memory, but marked read-only: what a component that only reads
    /// a pool is handed.
    pub fn read_only(self) -> Region {
        Region { writable: false, ..self }
    }

    /// A sub-range `offset..offset + len`; `offset` must be cache-line aligned.
    pub fn carve(&self, offset: usize, len: usize) -> Result<Region, RegionError> {
        if !offset.is_multiple_of(REGION_ALIGN) {
            return Err(RegionError::Misaligned);
        }
        let end = offset.checked_add(len).ok_or(RegionError::OutOfRange)?;
        if end > self.len {
            return Err(RegionError::OutOfRange);
        }
        // SAFETY: offset <= len, so the result stays inside the same mapping.
        let base = unsafe { self.base.add(offset) };
        Ok(Region { base, len, writable: self.writable })
    }

    /// The region as `count` items of private state.
    ///
    /// # Safety
    ///
    /// No other view of this memory exists or will ever be made (the region
    /// is private to the one component that gets the slice).
    pub unsafe fn into_state<
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable,
    >(
        self,
        count: usize,
    ) -> Result<&'static mut [T], RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let bytes = count.checked_mul(core::mem::size_of::<T>()).ok_or(RegionError::OutOfRange)?;
        if bytes > self.len {
            return Err(RegionError::OutOfRange);
        }
        // SAFETY: base..base+bytes is inside the valid, writable mapping, and
        // the caller promises this is the only view of it.
        let mem = unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), bytes) };
        <[T]>::mut_from_bytes_with_elems(mem, count).map_err(|_| RegionError::Misaligned)
    }

    /// The `u32` at `offset` as an atomic: how device wrappers in interface
    /// crates (the XenStore ring, the console ring) load and store the
    /// free-running indices they share with a party outside moat.
    ///
    /// `offset` must be 4-byte aligned and inside the region, and the region
    /// writable (device pages always are; a read-only mapping would fault on
    /// a store).
    pub fn atomic_u32(&self, offset: usize) -> Result<&core::sync::atomic::AtomicU32, RegionError> {
        if !offset.is_multiple_of(4) {
            return Err(RegionError::Misaligned);
        }
        let end = offset.checked_add(4).ok_or(RegionError::OutOfRange)?;
        if end > self.len {
            return Err(RegionError::OutOfRange);
        }
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        // SAFETY: offset..offset+4 lies inside the mapping, which stays valid
        // for the program's lifetime (from_raw's contract); base is 64-byte
        // aligned and offset 4-byte aligned, which AtomicU32 needs; every bit
        // pattern is a valid u32; and other parties touch this word only
        // through atomics or (outside the Rust program) plain word stores.
        Ok(unsafe { core::sync::atomic::AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }

    /// Raw pointer to the first byte, for this crate's accessors.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Copies bytes out of the region with volatile reads (used for data the
    /// peer may still be writing, such as a byte ring's slots).
    pub fn read_volatile(&self, offset: usize, out: &mut [u8]) -> Result<(), RegionError> {
        let end = offset.checked_add(out.len()).ok_or(RegionError::OutOfRange)?;
        if end > self.len {
            return Err(RegionError::OutOfRange);
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: offset + i < end <= len, inside the mapping.
            *b = unsafe { self.base.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies bytes into the region with volatile writes.
    pub fn write_volatile(&self, offset: usize, data: &[u8]) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let end = offset.checked_add(data.len()).ok_or(RegionError::OutOfRange)?;
        if end > self.len {
            return Err(RegionError::OutOfRange);
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: offset + i < end <= len, inside a writable mapping.
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_stays_inside() {
        let r = Region::alloc_zeroed(8192);
        assert!(r.carve(0, 8192).is_ok());
        assert_eq!(r.carve(64, 8192).unwrap_err(), RegionError::OutOfRange);
        assert_eq!(r.carve(3, 10).unwrap_err(), RegionError::Misaligned);
        assert_eq!(r.carve(usize::MAX - 63, 64).unwrap_err(), RegionError::OutOfRange);
        assert_eq!(r.carve(4096, usize::MAX).unwrap_err(), RegionError::OutOfRange);
        let sub = r.carve(4096, 128).unwrap();
        assert_eq!(sub.len(), 128);
    }

    #[test]
    fn volatile_copies_are_bounded() {
        let r = Region::alloc_zeroed(128);
        r.write_volatile(120, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut out = [0u8; 8];
        r.read_volatile(120, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(r.read_volatile(121, &mut out), Err(RegionError::OutOfRange));
        assert_eq!(r.write_volatile(usize::MAX, &out), Err(RegionError::OutOfRange));
        let ro = r.read_only();
        assert_eq!(ro.write_volatile(0, &out), Err(RegionError::ReadOnly));
    }

    #[test]
    fn atomic_words_are_bounded_and_shared() {
        use core::sync::atomic::Ordering;
        let r = Region::alloc_zeroed(64);
        r.atomic_u32(60).unwrap().store(0xA5A5_0001, Ordering::Release);
        let mut out = [0u8; 4];
        r.read_volatile(60, &mut out).unwrap();
        assert_eq!(u32::from_le_bytes(out), 0xA5A5_0001, "the same memory as the byte view");
        assert_eq!(r.atomic_u32(61).unwrap_err(), RegionError::Misaligned);
        assert_eq!(r.atomic_u32(64).unwrap_err(), RegionError::OutOfRange);
        assert_eq!(r.atomic_u32(usize::MAX - 3).unwrap_err(), RegionError::OutOfRange);
        assert_eq!(r.read_only().atomic_u32(0).unwrap_err(), RegionError::ReadOnly);
        // Another thread sees stores through its own view.
        let seen = std::thread::spawn(move || {
            let w = r.atomic_u32(0).unwrap();
            while w.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            w.load(Ordering::Acquire)
        });
        r.atomic_u32(0).unwrap().store(7, Ordering::Release);
        assert_eq!(seen.join().unwrap(), 7);
    }

    #[test]
    fn state_slices_are_sized_and_typed() {
        let r = Region::alloc_zeroed(4096);
        // SAFETY: this test holds the only view.
        let s: &mut [u64] = unsafe { r.into_state(512) }.unwrap();
        s[511] = 7;
        assert_eq!(s.iter().sum::<u64>(), 7);
        // SAFETY: fails its size check before making a view.
        assert_eq!(unsafe { r.into_state::<u64>(513) }.unwrap_err(), RegionError::OutOfRange);
        // SAFETY: fails its permission check before making a view.
        assert_eq!(unsafe { r.read_only().into_state::<u64>(1) }.unwrap_err(), RegionError::ReadOnly);
    }

    #[test]
    fn rejects_null_and_misaligned() {
        // SAFETY: both calls fail their checks before anything is dereferenced.
        unsafe {
            assert_eq!(Region::from_raw(core::ptr::null_mut(), 64, true).unwrap_err(), RegionError::Null);
            assert_eq!(
                Region::from_raw(core::ptr::without_provenance_mut(8), 64, true).unwrap_err(),
                RegionError::Misaligned
            );
        }
    }
}
