//! The pure parts of the image's Xen layer, compiled for the host from the
//! image's own source files: event channel bitmap scanning and the
//! vcpu_time_info arithmetic.

use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../../pvh/src/xen/events.rs"]
mod events;
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
