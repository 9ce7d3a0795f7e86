//! Monotonic time as the runtime hands it to components.

pub use core::time::Duration;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the runtime started. Never goes backwards; components
/// never read a clock themselves, so tests drive them with a virtual one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instant(u64);

impl Instant {
    /// The runtime's start.
    pub const ZERO: Instant = Instant(0);

    /// From nanoseconds since start.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }

    /// From seconds since start (tests and timeouts).
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(2);
        assert_eq!(t.saturating_add(Duration::from_millis(5)).as_nanos(), 2_005_000_000);
        assert_eq!(Instant::from_nanos(u64::MAX - 1).saturating_add(Duration::MAX).as_nanos(), u64::MAX);
        assert_eq!(Instant::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(t.saturating_since(Instant::from_secs(1)), Duration::from_secs(1));
    }
}
