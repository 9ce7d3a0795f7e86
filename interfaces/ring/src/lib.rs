//! Typed shared-memory rings: the only way moat components talk to each other.
//!
//! Three things live here, and nowhere else in moat may touch shared memory:
//!
//! * [`Producer`] / [`Consumer`]: a single-producer, single-consumer ring of
//!   plain-data messages with Xen-style event-index signalling
//!   ([`spsc`]). A consumer copies every slot out exactly once and never hands
//!   out a reference into memory its peer can write.
//! * [`Pool`], [`PacketDesc`], [`Custody`], [`BufferOwner`]: fixed-size packet
//!   buffers in a pool region, moved between components as descriptors through
//!   active/free ring pairs (the sDDF ownership rule: one queue references a
//!   buffer at a time), with descriptor validation and double-return detection
//!   ([`pool`]).
//! * [`ByteProducer`] / [`ByteConsumer`]: a byte ring of length-framed,
//!   variable-size control messages, `postcard`-encoded ([`bytes`]).
//!
//! A peer is never trusted: indices that imply more outstanding entries than
//! the ring holds make the endpoint [`RingError::Faulty`] for good, and every
//! descriptor is checked against the pool geometry held privately here.
//!
//! `unsafe` is confined to this crate's [`region`] and the slot accessors of
//! [`spsc`]; constructing an endpoint is `unsafe` because only the runtime that
//! laid out memory can promise there is one producer and one consumer.
#![cfg_attr(not(any(test, feature = "std", loom)), no_std)]
#![deny(missing_docs)]

pub mod bytes;
pub mod pool;
pub mod region;
pub mod spsc;
mod sync;

pub use bytes::{ByteConsumer, ByteProducer, FrameError};
pub use pool::{BufferOwner, Custody, DescError, PacketDesc, Pool, PoolGeometry};
pub use region::{Region, RegionError};
pub use spsc::{Consumer, Producer, RingError, RingLayout};

/// A plain-data message that may cross a ring.
///
/// The `zerocopy` bounds guarantee every bit pattern is a valid value
/// (`FromBytes`), so a hostile peer can write anything into a slot and the
/// consumer still gets a well-formed (if meaningless) value to validate.
pub trait Message: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + Copy + Send + 'static {
    /// The name `system.toml` uses for this message type; both ends of a ring
    /// must declare the same one.
    const NAME: &'static str;
}

impl Message for u8 {
    const NAME: &'static str = "Bytes";
}

/// Plain integers, for tests, benchmarks and simple counters.
impl Message for u64 {
    const NAME: &'static str = "u64";
}

impl Message for PacketDesc {
    const NAME: &'static str = "PacketDesc";
}

/// Memory a component reaches through a device port: a page shared with
/// something outside moat (the XenStore ring, the console ring, …), wrapped by
/// the interface crate that knows its protocol.
///
/// The runtime attaches devices; components only ever see the safe wrapper.
pub trait Device: Sized {
    /// The name `system.toml` and port declarations use for this device type.
    const NAME: &'static str;

    /// Wraps the device memory.
    ///
    /// # Safety
    ///
    /// `region` must be the device's memory, valid for the rest of the
    /// program, and this must be the only handle on this side of it.
    unsafe fn attach(region: Region) -> Result<Self, RegionError>;
}

/// Whether the peer must be woken after a publish or release.
///
/// Returned instead of acting, so that the caller batches notifications and a
/// runtime decides how a signal is delivered (event channel, eventfd, …).
#[must_use = "a peer that asked to be woken must be notified"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// The peer asked to be woken: signal its channel.
    Yes,
    /// The peer is not waiting (or nothing changed).
    No,
}

impl Notify {
    /// True if the peer must be signalled.
    pub fn needed(self) -> bool {
        self == Notify::Yes
    }
}
