//! Our own grant table: granting pages to other domains and ending those
//! grants (pure logic over the table's memory; compiled for the host by
//! images/pvh-test to test it).
//!
//! To grant: write the frame and the domain, a write barrier, then the
//! flags. To end: compare-and-swap the flags to 0, only while the other
//! domain is neither reading nor writing (Xen sets those bits while it maps
//! or copies).

use core::sync::atomic::{AtomicU16, Ordering, fence};

use moat_xen::grant::gtf;
use moat_xen::ops::status;
use moat_xen::{DomId, GrantRef};

/// Grant references in the table (the frames `Xen::init` maps).
pub const GRANT_REFS: u32 = 4 * 512;
/// References 0–7 are the toolstack's.
pub const FIRST_REF: u32 = 8;

/// The table and which references are in use.
pub struct Grants {
    table: *mut u8,
    used: [u64; GRANT_REFS as usize / 64],
}

impl Grants {
    /// Over the table at `table` ([`GRANT_REFS`] entries of 8 bytes, mapped
    /// for good, shared with Xen).
    pub fn new(table: *mut u8) -> Self {
        Grants { table, used: [0; GRANT_REFS as usize / 64] }
    }

    fn word<T>(&self, r: GrantRef, off: usize) -> *mut T {
        self.table.wrapping_add(r as usize * 8 + off).cast()
    }

    fn flags(&self, r: GrantRef) -> &AtomicU16 {
        // SAFETY: r < GRANT_REFS (callers check), so the entry lies inside
        // the table `new` was given; its flags word is shared with Xen, which
        // changes it atomically.
        unsafe { AtomicU16::from_ptr(self.word(r, 0)) }
    }

    fn in_use(&self, r: GrantRef) -> bool {
        self.used[r as usize / 64] & (1 << (r % 64)) != 0
    }

    /// Grants `frame` to `domid`; the reference, or `None` if the table is
    /// full.
    pub fn grant(&mut self, domid: DomId, frame: u32, readonly: bool) -> Option<GrantRef> {
        let r = (FIRST_REF..GRANT_REFS).find(|&r| !self.in_use(r))?;
        self.used[r as usize / 64] |= 1 << (r % 64);
        // SAFETY: inside the table (r < GRANT_REFS); the entry is free
        // (flags 0), so Xen reads neither field until the flags are set.
        unsafe {
            self.word::<u16>(r, 2).write_volatile(domid);
            self.word::<u32>(r, 4).write_volatile(frame);
        }
        fence(Ordering::Release);
        let ro = if readonly { gtf::READONLY } else { 0 };
        self.flags(r).store(gtf::PERMIT_ACCESS | ro, Ordering::Release);
        Some(r)
    }

    /// Ends grant `r`: [`status::BUSY`] while the other domain uses it,
    /// [`status::DENIED`] if it is not one of ours.
    pub fn end(&mut self, r: GrantRef) -> Result<(), i16> {
        if !(FIRST_REF..GRANT_REFS).contains(&r) || !self.in_use(r) {
            return Err(status::DENIED);
        }
        let flags = self.flags(r);
        loop {
            let f = flags.load(Ordering::Acquire);
            if f & (gtf::READING | gtf::WRITING) != 0 {
                return Err(status::BUSY);
            }
            if flags.compare_exchange(f, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                break;
            }
        }
        self.used[r as usize / 64] &= !(1 << (r % 64));
        Ok(())
    }

    /// References in use.
    pub fn count(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}
