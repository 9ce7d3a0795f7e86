//! The shared-ring page header of `io/ring.h`, used by netif and the other
//! split drivers.
//!
//! Indices are free-running `u32`; slot = `idx & (entries - 1)`. The frontend
//! initialises `req_prod = rsp_prod = 0` and `req_event = rsp_event = 1`.
//! A producer notifies iff `new - event < new - old` (wrapping), after a full
//! barrier between storing its index and loading the event.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout;

/// `RING_IDX`.
pub type RingIdx = u32;

/// The first 64 bytes of a shared ring page (`struct __name##_sring` up to
/// `ring[]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SringHeader {
    /// Requests published by the frontend.
    pub req_prod: RingIdx,
    /// "Notify me when `req_prod` passes this" (set by the backend).
    pub req_event: RingIdx,
    /// Responses published by the backend.
    pub rsp_prod: RingIdx,
    /// "Notify me when `rsp_prod` passes this" (set by the frontend).
    pub rsp_event: RingIdx,
    /// The `pvt` union (netif: `smartpoll_active` in byte 0).
    pub pvt: [u8; 4],
    /// Padding.
    pub pad: [u8; 44],
}
layout!(SringHeader, 64, req_prod @ 0, req_event @ 4, rsp_prod @ 8, rsp_event @ 12, pvt @ 16, pad @ 20);

/// Offset of the first entry in a shared ring page.
pub const SRING_ENTRIES_OFFSET: usize = core::mem::size_of::<SringHeader>();

/// Entries in a shared ring of `pages` pages whose entry (the union of
/// request and response) is `entry_size` bytes: what fits after the header,
/// rounded down to a power of two (`__CONST_RING_SIZE`).
pub const fn ring_entries(entry_size: usize, pages: usize) -> u32 {
    let fit = (pages * crate::PAGE_SIZE - SRING_ENTRIES_OFFSET) / entry_size;
    if fit == 0 {
        return 0;
    }
    1 << (usize::BITS - 1 - fit.leading_zeros())
}

/// `(new - event) < (new - old)`, wrapping: did publishing `old..new` pass
/// the peer's event index?
pub const fn need_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_down_to_a_power_of_two() {
        assert_eq!(ring_entries(12, 1), 256); // 336 fit
        assert_eq!(ring_entries(8, 1), 256); // 504 fit
        assert_eq!(ring_entries(4, 1), 512); // 1008 fit
        assert_eq!(ring_entries(4032, 1), 1);
        assert_eq!(ring_entries(4033, 1), 0);
        assert_eq!(ring_entries(12, 2), 512);
    }

    #[test]
    fn notify_iff_event_in_published_range() {
        assert!(need_notify(0, 1, 1));
        assert!(!need_notify(1, 2, 1), "event already passed");
        assert!(need_notify(u32::MAX, 1, 0), "wraps");
        assert!(!need_notify(5, 5, 5), "nothing published");
        assert!(need_notify(3, 10, 10));
        assert!(!need_notify(3, 10, 11));
    }
}
