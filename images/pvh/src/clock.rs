//! The monotonic clock when not on Xen: the TSC, calibrated against the
//! PIT's channel 2 (which every PC and QEMU machine has, gated through port
//! 0x61).

use moat_component::Instant;

use crate::cpu::{inb, outb, rdtsc};

const PIT_HZ: u64 = 1_193_182;

/// Nanoseconds from TSC ticks: `ns = ticks * mult >> 32`.
#[derive(Clone, Copy, Debug)]
pub struct Tsc {
    t0: u64,
    mult: u64,
    /// Ticks per second found by calibration.
    pub hz: u64,
}

impl Tsc {
    /// Measures the TSC against 10 ms of PIT countdown. If the PIT never
    /// answers, assumes 1 GHz and says so (`false`).
    pub fn calibrate() -> (Tsc, bool) {
        let count: u16 = (PIT_HZ / 100) as u16; // 10 ms
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) & !0x01); // speaker off, gate low
        outb(0x43, 0xb0); // channel 2, lo/hi byte, mode 0, binary
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        outb(0x61, (gate & !0x02) | 0x01); // gate high: counting starts
        let start = rdtsc();
        let mut ok = false;
        for _ in 0..200_000_000u64 {
            if inb(0x61) & 0x20 != 0 {
                ok = true;
                break;
            }
        }
        let ticks = rdtsc().wrapping_sub(start);
        outb(0x61, gate);
        let hz = if ok && ticks > 0 { ticks * PIT_HZ / u64::from(count) } else { 1_000_000_000 };
        (Tsc::with_hz(hz), ok)
    }

    /// A clock running at `hz`, starting now.
    pub fn with_hz(hz: u64) -> Tsc {
        let mult = ((1_000_000_000u128 << 32) / u128::from(hz.max(1))) as u64;
        Tsc { t0: rdtsc(), mult, hz }
    }

    /// Time since the clock started.
    pub fn now(&self) -> Instant {
        let ticks = rdtsc().wrapping_sub(self.t0);
        Instant::from_nanos(((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64)
    }
}
