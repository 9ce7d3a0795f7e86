//! The pure parts of the image's Xen layer, compiled for the host from the
//! image's own source files: event channel bitmap scanning, the
//! vcpu_time_info arithmetic, the grant table and the fence on what Xen may
//! write for the drivers.

use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../../pvh/src/xen/events.rs"]
mod events;
#[path = "../../pvh/src/xen/fence.rs"]
mod fence;
#[path = "../../pvh/src/xen/time.rs"]
mod time;

fn bitmap(bits: &[u32]) -> Vec<AtomicU64> {
    let v: Vec<AtomicU64> = (0..64).map(|_| AtomicU64::new(0)).collect();
    for &b in bits {
        v[b as usize / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
    }
    v
}

#[test]
fn pending_unmasked_channels_are_taken_once_and_masked_ones_stay() {
    let pending = bitmap(&[1, 3, 63, 64, 700, 4095]);
    let mask = bitmap(&[3, 700]);
    let mut got = vec![];
    events::take_pending(&pending, &mask, &mut |p| got.push(p));
    assert_eq!(got, [1, 63, 64, 4095]);
    let left: Vec<u32> =
        (0..4096).filter(|&p| pending[p as usize / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0).collect();
    assert_eq!(left, [3, 700], "masked events stay pending for when they are unmasked");
    got.clear();
    events::take_pending(&pending, &mask, &mut |p| got.push(p));
    assert!(got.is_empty(), "taken events are cleared");
}

#[test]
fn vcpu_time_scaling_follows_the_pvclock_formula() {
    // mul is a 32.32 fraction: 0x8000_0000 is one half.
    assert_eq!(time::scale_delta(1_000, 0x8000_0000, 0), 500);
    assert_eq!(time::scale_delta(1_000, 0x8000_0000, 1), 1_000, "shift left doubles first");
    assert_eq!(time::scale_delta(1_000, 0x8000_0000, -1), 250, "negative shift halves first");
    // A 3 GHz TSC: Xen would give shift -1, mul = 2/3 * 2^32.
    let mul = ((2u128 << 32) / 3) as u32;
    let ns = time::scale_delta(3_000_000_000, mul, -1);
    assert!((999_999_990..=1_000_000_000).contains(&ns), "{ns}");
    // No overflow for a large delta (an hour at 4 GHz).
    assert_eq!(time::scale_delta(14_400_000_000_000, 0x4000_0000, 0), 3_600_000_000_000);
    assert_eq!(time::system_time(5_000, 100, 0x8000_0000, 0, 1_100), 5_500);
}

#[path = "../../pvh/src/xen/grants.rs"]
mod grants;

#[test]
fn grants_are_written_flags_last_and_end_only_when_unused() {
    use moat_xen::grant::{GrantEntryV1, gtf};
    use zerocopy::FromBytes;
    let table = Box::leak(vec![0u64; grants::GRANT_REFS as usize].into_boxed_slice());
    let base = table.as_mut_ptr().cast::<u8>();
    let mut g = grants::Grants::new(base);
    let entry = |r: u32| {
        // SAFETY: r < GRANT_REFS, inside the table allocated above.
        let bytes = unsafe { std::slice::from_raw_parts(base.add(r as usize * 8), 8) };
        GrantEntryV1::read_from_bytes(bytes).unwrap()
    };
    let a = g.grant(7, 0x1234, true).unwrap();
    let b = g.grant(9, 0x5678, false).unwrap();
    assert_eq!(a, grants::FIRST_REF, "0-7 are the toolstack's");
    assert_eq!(entry(a), GrantEntryV1 { flags: gtf::PERMIT_ACCESS | gtf::READONLY, domid: 7, frame: 0x1234 });
    assert_eq!(entry(b), GrantEntryV1 { flags: gtf::PERMIT_ACCESS, domid: 9, frame: 0x5678 });
    // Xen marks the entry in use (as while the other side maps it).
    // SAFETY: the flags word of entry b, inside the table.
    let flags = unsafe { std::sync::atomic::AtomicU16::from_ptr(base.add(b as usize * 8).cast()) };
    flags.fetch_or(gtf::READING, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(g.end(b), Err(moat_xen::ops::status::BUSY));
    assert_eq!(entry(b).flags & gtf::PERMIT_ACCESS, gtf::PERMIT_ACCESS, "still granted");
    flags.fetch_and(!gtf::READING, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(g.end(b), Ok(()));
    assert_eq!(entry(b).flags, 0);
    assert_eq!(g.end(b), Err(moat_xen::ops::status::DENIED), "ended already");
    assert_eq!(g.end(3), Err(moat_xen::ops::status::DENIED), "a toolstack reference");
    // The table fills up, then refuses.
    while g.grant(1, 1, false).is_some() {}
    assert_eq!(g.count(), grants::GRANT_REFS - grants::FIRST_REF);
    assert_eq!(g.end(a), Ok(()));
    assert_eq!(g.grant(1, 1, false), Some(a), "a freed reference is reused");
}

#[test]
fn the_fence_admits_one_page_inside_an_allowed_range_only() {
    let mut f = fence::Fence::new();
    assert!(!f.admits(0x20_0000, 64), "an empty fence admits nothing");
    let arena = 0x20_0000;
    let device = 0x80_0000;
    assert!(f.allow(arena, 3 * 4096 - 100));
    assert!(f.allow(device, 4096));
    assert!(!f.allow(0x1000, 0), "an empty range");
    assert!(!f.allow(u64::MAX - 10, 4096), "a wrapping range");
    for (at, len) in [(arena, 1), (arena + 4096 - 60, 60), (arena + 2 * 4096, 4096 - 100), (device + 100, 1514)] {
        assert!(f.check(at, len), "{at:#x}+{len}");
    }
    let refused = [
        (arena - 8, 8),               // just below: the image (stack, tables) lies there
        (arena + 4096 - 60, 61),      // crosses a page
        (arena + 3 * 4096 - 110, 20), // past the arena's end, inside its last page
        (arena + 3 * 4096, 64),       // the gap between ranges
        (device + 4096, 1),           // past the device
        (arena, 0),                   // empty
        (arena, 4097),                // longer than a page
        (u64::MAX - 3, 8),            // wraps around
        (0x18_e1e8, 40),              // a stack address of the image
    ];
    for (at, len) in refused {
        assert!(!f.check(at, len), "{at:#x}+{len}");
    }
    assert_eq!(f.refused(), refused.len() as u64, "every refusal is counted, no admission is");
    while f.allow(0x100_0000, 4096) {}
    assert!(!f.allow(0x200_0000, 4096), "a full fence takes no more");
    assert!(!f.admits(0x200_0000, 1));
}
