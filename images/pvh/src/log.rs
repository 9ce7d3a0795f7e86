//! The image's defmt logger: components log with `defmt::info!` and friends;
//! each statement becomes one frame in a [`LogRing`], tagged with the
//! component that was running, and [`drain`] prints the frames on the
//! console between scheduling passes as
//!
//! ```text
//! moat: log COMPONENT HEX
//! ```
//!
//! which `moat log IMAGE [capture]` decodes with the defmt table the image's
//! ELF carries (the `.defmt` section and its symbols). Components hold no
//! logger state and need no `unsafe`; the logger is the runtime's, and so
//! is the ring.
//!
//! Timestamps are the scheduler's time of the current call (microseconds
//! since the monitor's clock started), recorded by the platform's `now`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use moat_runtime::layout::Manifest;
use moat_runtime::log::{LogRing, MAX_FRAME, MONITOR};

/// Bytes of log ring: a few hundred frames between two drains.
const LOG_BYTES: usize = 16384;

struct Shared {
    ring: UnsafeCell<LogRing<LOG_BYTES>>,
    encoder: UnsafeCell<defmt::Encoder>,
}

// SAFETY: one CPU and no interrupt handlers that log: the ring and encoder
// are touched by the logger between acquire and release (which TAKEN makes
// exclusive) and by `drain`, which the monitor calls outside any component
// call, never while a frame is being written.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared { ring: UnsafeCell::new(LogRing::new()), encoder: UnsafeCell::new(defmt::Encoder::new()) };
static TAKEN: AtomicBool = AtomicBool::new(false);
static NESTED: AtomicBool = AtomicBool::new(false);
static NOW_US: AtomicU64 = AtomicU64::new(0);

/// Records the time stamped on frames from now on.
pub fn stamp(nanos: u64) {
    NOW_US.store(nanos / 1000, Ordering::Relaxed);
}

defmt::timestamp!("{=u64:us}", NOW_US.load(Ordering::Relaxed));

#[defmt::global_logger]
struct Logger;

// SAFETY: acquire/release bracket every frame and TAKEN makes the bracket
// exclusive: a nested acquire (a log statement inside a Format impl, an
// exception while logging) is marked NESTED and its frame discarded instead
// of touching the shared encoder.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            NESTED.store(true, Ordering::Relaxed);
            return;
        }
        // SAFETY: TAKEN was clear and is now ours (see the impl comment).
        let (ring, enc) = unsafe { (&mut *SHARED.ring.get(), &mut *SHARED.encoder.get()) };
        ring.begin(moat_runtime::log::current());
        enc.start_frame(|b| ring.write(b));
    }

    unsafe fn flush() {}

    unsafe fn release() {
        if NESTED.swap(false, Ordering::Relaxed) {
            return;
        }
        // SAFETY: between our acquire and this release we hold TAKEN.
        let (ring, enc) = unsafe { (&mut *SHARED.ring.get(), &mut *SHARED.encoder.get()) };
        enc.end_frame(|b| ring.write(b));
        ring.commit();
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        if NESTED.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: as for release.
        let (ring, enc) = unsafe { (&mut *SHARED.ring.get(), &mut *SHARED.encoder.get()) };
        enc.write(bytes, |b| ring.write(b));
    }
}

/// Prints every waiting frame with the name of the component (in `m`) that
/// logged it. Call outside component calls.
pub fn drain(m: &Manifest<'_>) {
    if TAKEN.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: no frame is being written (TAKEN is clear and nothing logs
    // while the monitor runs this).
    let ring = unsafe { &mut *SHARED.ring.get() };
    let mut frame = [0u8; MAX_FRAME];
    while let Some((tag, len)) = ring.pop(&mut frame) {
        let name = if tag == MONITOR || usize::from(tag) >= m.component_count() {
            "monitor"
        } else {
            m.component(usize::from(tag)).name
        };
        crate::print!("moat: log {} ", name);
        let mut hex = [0u8; 2 * MAX_FRAME];
        for (i, b) in frame[..len].iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        crate::console::write_bytes(&hex[..2 * len]);
        crate::console::write_bytes(b"\n");
    }
}

/// Frames committed and dropped so far.
pub fn counts() -> (u64, u64) {
    if TAKEN.load(Ordering::Acquire) {
        return (0, 0);
    }
    // SAFETY: as in drain; only reads two counters.
    let ring = unsafe { &*SHARED.ring.get() };
    (ring.frames, ring.dropped)
}

const HEX: &[u8; 16] = b"0123456789abcdef";
