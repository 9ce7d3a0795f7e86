//! The last check before Xen writes into our memory on a driver's behalf:
//! the local side of every grant copy and grant map must lie inside memory
//! handed out for exactly that (the shared arena, whose pools the copies
//! target, and the ops devices' own pages), inside one page.
//!
//! `moat_xen::ops::Service` already confines each op to one page of a space
//! the component owns; this fence does not trust that. It knows nothing of
//! components or pools, only address ranges, so a wrong space base, a
//! service bug or a corrupted op can at worst hit another packet buffer,
//! never the image itself (code, stack, page tables, IDT, statics all lie
//! below the first range). Pure address arithmetic, compiled for the host
//! by images/pvh-test to test it.

/// Ranges one fence holds (the arena and up to `MAX_DRIVERS` devices).
pub const MAX_RANGES: usize = 8;

const PAGE: u64 = 4096;

/// Address ranges Xen may write to for the drivers, and what was stopped.
pub struct Fence {
    ranges: [(u64, u64); MAX_RANGES],
    n: usize,
    refused: u64,
}

impl Fence {
    /// A fence that admits nothing yet.
    pub const fn new() -> Self {
        Fence { ranges: [(0, 0); MAX_RANGES], n: 0, refused: 0 }
    }

    /// Admits `[base, base + len)`; false (nothing changes) if the fence is
    /// full, the range is empty or it wraps around.
    pub fn allow(&mut self, base: u64, len: u64) -> bool {
        let Some(end) = base.checked_add(len) else { return false };
        if len == 0 || self.n == MAX_RANGES {
            return false;
        }
        self.ranges[self.n] = (base, end);
        self.n += 1;
        true
    }

    /// True if `[at, at + len)` is non-empty, stays inside one page and lies
    /// wholly inside one admitted range.
    pub fn admits(&self, at: u64, len: u64) -> bool {
        let Some(end) = at.checked_add(len) else { return false };
        let one_page = len > 0 && at % PAGE + len <= PAGE;
        one_page && self.ranges[..self.n].iter().any(|&(lo, hi)| lo <= at && end <= hi)
    }

    /// [`admits`](Self::admits), counting a refusal.
    pub fn check(&mut self, at: u64, len: u64) -> bool {
        let ok = self.admits(at, len);
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Ops stopped here (each one a bug above: reported, never issued).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}
