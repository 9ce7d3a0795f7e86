//! Atomics, switched to loom's models under `--cfg loom` so the ring protocol
//! can be model-checked with the same code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, Ordering, fence};
