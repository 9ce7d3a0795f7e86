//! How a component shows its counters.

/// Receives a component's counters. Names are dotted paths
/// (`drop.bad_checksum`, `conn.tcp`), stable across versions so scripts and
/// tests can rely on them.
pub trait Status {
    /// One counter or gauge.
    fn put(&mut self, name: &str, value: u64);
}

/// Adapts a closure into a [`Status`] sink.
pub struct StatusFn<F: FnMut(&str, u64)>(pub F);

impl<F: FnMut(&str, u64)> Status for StatusFn<F> {
    fn put(&mut self, name: &str, value: u64) {
        (self.0)(name, value)
    }
}
