//! The log ring: component log frames waiting for the monitor to print them.
//!
//! Components log with `defmt` (`defmt::info!` and friends need no `unsafe`
//! and no state in the component); the image's global logger encodes each
//! statement into a frame and commits it here, tagged with the component
//! that was running ([`set_current`]). The monitor drains the ring between
//! scheduling passes and prints each frame on the console as a text line
//! that `moat log` decodes with the image's defmt table.
//!
//! Bounded: a frame longer than [`MAX_FRAME`] or one that finds the ring
//! full is dropped and counted, never waited for. Logging never blocks a
//! component and never grows.

use core::sync::atomic::{AtomicU8, Ordering};

/// Longest frame kept (a defmt frame with a few arguments is 5–30 bytes).
pub const MAX_FRAME: usize = 192;

/// The component tag of frames logged outside any component (the monitor).
pub const MONITOR: u8 = u8::MAX;

static CURRENT: AtomicU8 = AtomicU8::new(MONITOR);

/// Records which component runs now (its manifest index), or [`MONITOR`].
pub fn set_current(component: usize) {
    CURRENT.store(u8::try_from(component).unwrap_or(MONITOR), Ordering::Relaxed);
}

/// The component running now.
pub fn current() -> u8 {
    CURRENT.load(Ordering::Relaxed)
}

/// A byte ring of tagged frames: `[component, len_lo, len_hi, bytes…]`.
pub struct LogRing<const N: usize> {
    buf: [u8; N],
    /// Free-running write and read positions.
    head: usize,
    tail: usize,
    stage: [u8; MAX_FRAME],
    staged: usize,
    overlong: bool,
    tag: u8,
    /// Frames dropped (ring full or frame too long).
    pub dropped: u64,
    /// Frames committed.
    pub frames: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        LogRing {
            buf: [0; N],
            head: 0,
            tail: 0,
            stage: [0; MAX_FRAME],
            staged: 0,
            overlong: false,
            tag: MONITOR,
            dropped: 0,
            frames: 0,
        }
    }

    /// Starts a frame from component `tag`, discarding one left unfinished.
    pub fn begin(&mut self, tag: u8) {
        self.staged = 0;
        self.overlong = false;
        self.tag = tag;
    }

    /// Appends to the frame being built.
    pub fn write(&mut self, bytes: &[u8]) {
        match self.stage.get_mut(self.staged..self.staged + bytes.len()) {
            Some(dst) if !self.overlong => {
                dst.copy_from_slice(bytes);
                self.staged += bytes.len();
            }
            _ => self.overlong = true,
        }
    }

    /// Commits the frame being built, or drops it if it is too long or the
    /// ring has no room.
    pub fn commit(&mut self) {
        let need = 3 + self.staged;
        if self.overlong || need > N - (self.head - self.tail) {
            self.dropped += 1;
            return;
        }
        let len = (self.staged as u16).to_le_bytes();
        let (tag, staged) = (self.tag, self.staged);
        self.put(&[tag, len[0], len[1]]);
        let stage = self.stage;
        self.put(&stage[..staged]);
        self.frames += 1;
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.buf[self.head % N] = b;
            self.head = self.head.wrapping_add(1);
        }
    }

    fn get(&mut self) -> u8 {
        let b = self.buf[self.tail % N];
        self.tail = self.tail.wrapping_add(1);
        b
    }

    /// Takes the oldest frame into `out`: its component tag and length.
    pub fn pop(&mut self, out: &mut [u8; MAX_FRAME]) -> Option<(u8, usize)> {
        if self.head == self.tail {
            return None;
        }
        let tag = self.get();
        let len = usize::from(u16::from_le_bytes([self.get(), self.get()]));
        for b in out.iter_mut().take(len) {
            *b = self.get();
        }
        Some((tag, len))
    }
}

/// The defmt logger of host builds (feature `std`): host builds compile
/// `info!` and below out unless `DEFMT_LOG` is set, but a binary that links
/// a component must still link if one is compiled in. Frames are counted and
/// discarded; the hosted runtime and the PVH image have loggers of their
/// own.
#[cfg(feature = "std")]
pub mod host {
    use core::sync::atomic::{AtomicU64, Ordering};

    /// Frames logged on the host.
    pub static FRAMES: AtomicU64 = AtomicU64::new(0);

    #[defmt::global_logger]
    struct HostLogger;

    // SAFETY: the logger keeps no state but an atomic counter, so acquire
    // and release have nothing to make exclusive.
    unsafe impl defmt::Logger for HostLogger {
        fn acquire() {}
        unsafe fn flush() {}
        unsafe fn release() {
            FRAMES.fetch_add(1, Ordering::Relaxed);
        }
        unsafe fn write(_bytes: &[u8]) {}
    }

    defmt::timestamp!("{=u64}", 0);

    #[cfg(test)]
    mod tests {
        #[test]
        fn host_logger_counts_frames() {
            let before = super::FRAMES.load(super::Ordering::Relaxed);
            <super::HostLogger as defmt::Logger>::acquire();
            // SAFETY: acquired just above, released once.
            unsafe {
                <super::HostLogger as defmt::Logger>::write(&[1, 2]);
                <super::HostLogger as defmt::Logger>::release();
            }
            assert!(super::FRAMES.load(super::Ordering::Relaxed) > before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_in_order_with_their_tags() {
        let mut r = LogRing::<64>::new();
        r.begin(3);
        r.write(&[1, 2]);
        r.write(&[3]);
        r.commit();
        r.begin(MONITOR);
        r.write(&[9]);
        r.commit();
        let mut out = [0; MAX_FRAME];
        assert_eq!(r.pop(&mut out), Some((3, 3)));
        assert_eq!(out[..3], [1, 2, 3]);
        assert_eq!(r.pop(&mut out), Some((MONITOR, 1)));
        assert_eq!(out[0], 9);
        assert_eq!(r.pop(&mut out), None);
        assert_eq!((r.frames, r.dropped), (2, 0));
    }

    #[test]
    fn full_ring_and_long_frames_drop_and_count_and_wrap_keeps_frames_whole() {
        let mut r = LogRing::<16>::new();
        let mut out = [0; MAX_FRAME];
        for round in 0..20u8 {
            r.begin(round);
            r.write(&[round; 5]);
            r.commit(); // 8 bytes: two fit
            r.begin(round);
            r.write(&[round; 5]);
            r.commit();
            r.begin(round);
            r.write(&[round; 5]);
            r.commit(); // no room: dropped
            for _ in 0..2 {
                assert_eq!(r.pop(&mut out), Some((round, 5)));
                assert_eq!(out[..5], [round; 5]);
            }
        }
        assert_eq!((r.frames, r.dropped), (40, 20));
        r.begin(0);
        r.write(&[0; MAX_FRAME]);
        r.write(&[0]);
        r.commit();
        assert_eq!(r.dropped, 21, "too long for a frame");
        assert_eq!(r.pop(&mut out), None);
    }

    #[test]
    fn current_component_is_recorded() {
        set_current(4);
        assert_eq!(current(), 4);
        set_current(1000);
        assert_eq!(current(), MONITOR);
    }
}
