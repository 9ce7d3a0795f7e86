//! Scanning the 2-level event channel bitmaps of the shared info page
//! (pure logic over atomics, included and tested by images/pvh-test).

use core::sync::atomic::{AtomicU64, Ordering};

/// Clears and reports every pending event channel that is not masked.
/// Masked ones stay pending (Xen delivers them when unmasked).
pub fn take_pending(pending: &[AtomicU64], mask: &[AtomicU64], sink: &mut dyn FnMut(u32)) {
    for (w, (p, m)) in pending.iter().zip(mask).enumerate() {
        if p.load(Ordering::Acquire) == 0 {
            continue;
        }
        let deliverable = !m.load(Ordering::Acquire);
        let taken = p.fetch_and(!deliverable, Ordering::AcqRel) & deliverable;
        let mut bits = taken;
        while bits != 0 {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            sink(w as u32 * 64 + b);
        }
    }
}
