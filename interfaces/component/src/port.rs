//! Typed ports: what a component is given, and how the runtime gives it.

use moat_ring::{ByteConsumer, ByteProducer, Consumer, FrameError, Message, Pool, Producer, RingError};

use crate::{Channel, Context, Fault};

/// What kind of thing a port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// Consumer end of a ring.
    Rx,
    /// Producer end of a ring.
    Tx,
    /// A packet buffer pool (read-only or read-write as `system.toml` maps it).
    Pool,
    /// A private state region (tables sized from the configuration).
    State,
    /// Device memory shared with something outside moat (XenStore ring,
    /// console ring), wrapped by its interface crate, with a channel bound
    /// to the outside party's notifications (a Xen event channel).
    Device,
}

/// One port as a component declares it. `system.toml` must wire every `Rx`
/// and `Tx` port to a ring whose `message` matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortDecl {
    /// Port name, unique within the component.
    pub name: &'static str,
    /// Kind.
    pub kind: PortKind,
    /// Message type name for rings (`PacketDesc`, or a control message name
    /// for byte rings), device type for devices; empty for pools and state.
    pub message: &'static str,
    /// For pools: whether the component writes the buffers. `system.toml`
    /// may not map a pool writable for a component that only reads it.
    pub writable: bool,
}

impl PortDecl {
    /// A ring input.
    pub const fn rx(name: &'static str, message: &'static str) -> Self {
        PortDecl { name, kind: PortKind::Rx, message, writable: false }
    }
    /// A ring output.
    pub const fn tx(name: &'static str, message: &'static str) -> Self {
        PortDecl { name, kind: PortKind::Tx, message, writable: false }
    }
    /// A pool the component only reads.
    pub const fn pool_ro(name: &'static str) -> Self {
        PortDecl { name, kind: PortKind::Pool, message: "", writable: false }
    }
    /// A pool the component writes.
    pub const fn pool_rw(name: &'static str) -> Self {
        PortDecl { name, kind: PortKind::Pool, message: "", writable: true }
    }
    /// A private state region.
    pub const fn state(name: &'static str) -> Self {
        PortDecl { name, kind: PortKind::State, message: "", writable: true }
    }
    /// A device of type `device` (its `Device::NAME`).
    pub const fn device(name: &'static str, device: &'static str) -> Self {
        PortDecl { name, kind: PortKind::Device, message: device, writable: true }
    }
}

/// Why a port could not be bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindError {
    /// The layout has no port of this name for this component.
    Missing(&'static str),
    /// The port exists but is another kind or carries another message type.
    Mismatch(&'static str),
    /// The ring or pool memory is unusable.
    Layout(&'static str),
}

/// A component's set of ports, bound by name.
pub trait Ports: Sized {
    /// Every port, for `moat check` and the build tool.
    const DECL: &'static [PortDecl];

    /// Binds every port from the runtime's layout.
    fn bind<B: Binder>(binder: &mut B) -> Result<Self, BindError>;
}

/// Implemented by runtimes (and test harnesses): hands out the endpoints
/// `system.toml` wired to a component.
pub trait Binder {
    /// The consumer end of the ring wired to port `name`.
    fn rx<T: Message>(&mut self, name: &'static str) -> Result<Rx<T>, BindError>;
    /// The producer end of the ring wired to port `name`.
    fn tx<T: Message>(&mut self, name: &'static str) -> Result<Tx<T>, BindError>;
    /// The reading end of the control byte ring wired to port `name`.
    fn msg_rx(&mut self, name: &'static str, message: &'static str) -> Result<MsgRx, BindError>;
    /// The writing end of the control byte ring wired to port `name`.
    fn msg_tx(&mut self, name: &'static str, message: &'static str) -> Result<MsgTx, BindError>;
    /// The pool mapped as `name`.
    fn pool(&mut self, name: &'static str) -> Result<Pool, BindError>;
    /// The device wired to port `name`, and the channel its outside party
    /// signals on (notify that channel to signal it back).
    fn device<D: moat_ring::Device>(&mut self, name: &'static str) -> Result<(D, crate::Channel), BindError>;
    /// Bytes the layout set aside for state port `name` — what the
    /// component's `Component::state_bytes` asked for under its
    /// configuration — so that `Ports::bind`, which does not see the
    /// configuration, can size the tables it then takes with
    /// [`state`](Self::state). A runtime that lays out no state says
    /// `Missing`.
    fn state_len(&mut self, name: &'static str) -> Result<usize, BindError> {
        Err(BindError::Missing(name))
    }
    /// `count` zeroed items of private state, for the life of the component.
    /// (The `'static` borrow comes from memory the runtime set aside for this
    /// port alone, not from `name`.)
    #[allow(clippy::mut_from_ref)]
    fn state<T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
        &mut self,
        name: &'static str,
        count: usize,
    ) -> Result<&'static mut [T], BindError>;
}

/// An input: the consumer end of a typed ring and its channel.
pub struct Rx<T: Message> {
    ring: Consumer<T>,
    ch: Channel,
    name: &'static str,
}

impl<T: Message> Rx<T> {
    /// Wraps a consumer (runtimes only).
    pub fn new(ring: Consumer<T>, ch: Channel, name: &'static str) -> Self {
        Rx { ring, ch, name }
    }

    /// The channel this ring signals on.
    pub fn channel(&self) -> Channel {
        self.ch
    }

    /// The port's name (for fault reports).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The fault to report if the peer broke the protocol.
    pub fn fault(&self) -> Fault {
        Fault::Peer(self.name)
    }

    /// Next message, if any. `Err` only for a faulty peer.
    pub fn pop(&mut self) -> Result<Option<T>, Fault> {
        self.ring.pop().map_err(|_| self.fault())
    }

    /// Up to `out.len()` messages.
    pub fn pop_batch(&mut self, out: &mut [T]) -> Result<usize, Fault> {
        self.ring.pop_batch(out).map_err(|_| self.fault())
    }

    /// Ends a call's work on this input: releases consumed slots (waking a
    /// producer that waits for space) and re-arms; if messages are still
    /// waiting, asks to be called again.
    pub fn finish(&mut self, cx: &mut Context) -> Result<(), Fault> {
        if self.ring.release().needed() {
            cx.notify(self.ch);
        }
        if self.ring.arm().map_err(|_| self.fault())? {
            cx.again();
        }
        Ok(())
    }

    /// As [`finish`](Self::finish), for an input whose messages may wait:
    /// buffers handed back on a `_free` ring. Re-arms to be woken only once
    /// a batch of them waits (1/32 of the ring), and asks to be called again
    /// only for a whole batch; fewer are taken on the next call for any
    /// other reason. So a packet's buffer does not wake every process on
    /// its way home, one at a time.
    ///
    /// Nothing waits for good: a free ring holds every buffer that can come
    /// its way, so the buffers resting in such rings along a path (fewer
    /// than 1/32 of each) are a small part of the pool, and the owner, which
    /// re-arms its own free ring with [`finish`](Self::finish) when it runs
    /// out, always has the rest coming.
    pub fn finish_returns(&mut self, cx: &mut Context) -> Result<(), Fault> {
        if self.ring.release().needed() {
            cx.notify(self.ch);
        }
        let batch = (self.ring.capacity() / RETURN_BATCH_DIVISOR).max(1);
        if self.ring.arm_after(batch).map_err(|_| self.fault())? {
            cx.again();
        }
        Ok(())
    }

    /// The underlying consumer.
    pub fn ring(&mut self) -> &mut Consumer<T> {
        &mut self.ring
    }
}

/// [`Rx::finish_returns`] is woken once this fraction of its ring waits.
pub const RETURN_BATCH_DIVISOR: u32 = 32;

/// An output: the producer end of a typed ring and its channel.
pub struct Tx<T: Message> {
    ring: Producer<T>,
    ch: Channel,
    name: &'static str,
}

impl<T: Message> Tx<T> {
    /// Wraps a producer (runtimes only).
    pub fn new(ring: Producer<T>, ch: Channel, name: &'static str) -> Self {
        Tx { ring, ch, name }
    }

    /// The channel this ring signals on.
    pub fn channel(&self) -> Channel {
        self.ch
    }

    /// The port's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The fault to report if the peer broke the protocol.
    pub fn fault(&self) -> Fault {
        Fault::Peer(self.name)
    }

    /// Free slots now.
    pub fn free(&mut self) -> Result<u32, Fault> {
        self.ring.free().map_err(|_| self.fault())
    }

    /// Writes one message (visible at [`flush`](Self::flush)). `Ok(false)`
    /// when the ring is full.
    pub fn push(&mut self, value: &T) -> Result<bool, Fault> {
        match self.ring.push(value) {
            Ok(()) => Ok(true),
            Err(RingError::Full) => Ok(false),
            Err(_) => Err(self.fault()),
        }
    }

    /// Publishes what was pushed, signalling the consumer if it asked.
    pub fn flush(&mut self, cx: &mut Context) {
        if self.ring.publish().needed() {
            cx.notify(self.ch);
        }
    }

    /// Asks to be woken when space frees up; true if there is space now.
    pub fn wait_space(&mut self) -> Result<bool, Fault> {
        self.ring.arm_space().map_err(|_| self.fault())
    }

    /// The underlying producer.
    pub fn ring(&mut self) -> &mut Producer<T> {
        &mut self.ring
    }
}

/// A control input: the reading end of a byte ring of framed messages.
pub struct MsgRx {
    ring: ByteConsumer,
    ch: Channel,
    name: &'static str,
}

impl MsgRx {
    /// Wraps a byte consumer (runtimes only).
    pub fn new(ring: ByteConsumer, ch: Channel, name: &'static str) -> Self {
        MsgRx { ring, ch, name }
    }

    /// The channel this ring signals on.
    pub fn channel(&self) -> Channel {
        self.ch
    }

    /// The fault to report if the peer broke the protocol.
    pub fn fault(&self) -> Fault {
        Fault::Peer(self.name)
    }

    /// Next complete message decoded from `buf`-sized frame. Frames that do
    /// not decode or do not fit come back as `Err(FrameError::…)` to count;
    /// a broken ring is a [`Fault`].
    pub fn recv<'b, M: serde::Deserialize<'b>>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Result<M, FrameError>>, Fault> {
        match self.ring.recv_msg(buf) {
            Ok(Some(m)) => Ok(Some(Ok(m))),
            Ok(None) => Ok(None),
            Err(FrameError::Ring(_)) => Err(self.fault()),
            Err(e) => Ok(Some(Err(e))),
        }
    }

    /// Hands consumed bytes back (waking a writer that waits for space)
    /// without re-arming: for a component that will not take more until
    /// something else happens (a reply it waits for), so a waiting message
    /// must not make it run again at once.
    pub fn release(&mut self, cx: &mut Context) {
        if self.ring.release().needed() {
            cx.notify(self.ch);
        }
    }

    /// As [`Rx::finish`].
    pub fn finish(&mut self, cx: &mut Context) -> Result<(), Fault> {
        if self.ring.release().needed() {
            cx.notify(self.ch);
        }
        if self.ring.arm().map_err(|_| self.fault())? {
            cx.again();
        }
        Ok(())
    }
}

/// A control output: the writing end of a byte ring of framed messages.
pub struct MsgTx {
    ring: ByteProducer,
    ch: Channel,
    name: &'static str,
}

impl MsgTx {
    /// Wraps a byte producer (runtimes only).
    pub fn new(ring: ByteProducer, ch: Channel, name: &'static str) -> Self {
        MsgTx { ring, ch, name }
    }

    /// The channel this ring signals on.
    pub fn channel(&self) -> Channel {
        self.ch
    }

    /// The fault to report if the peer broke the protocol.
    pub fn fault(&self) -> Fault {
        Fault::Peer(self.name)
    }

    /// Encodes and writes one message. `Ok(false)` when it does not fit now.
    pub fn send<M: serde::Serialize>(&mut self, msg: &M, scratch: &mut [u8]) -> Result<bool, Fault> {
        match self.ring.send_msg(msg, scratch) {
            Ok(()) => Ok(true),
            Err(FrameError::Ring(RingError::Full)) => Ok(false),
            Err(FrameError::Ring(_)) => Err(self.fault()),
            Err(_) => Err(Fault::Internal("control message does not fit its ring")),
        }
    }

    /// Publishes what was sent, signalling the reader if it asked.
    pub fn flush(&mut self, cx: &mut Context) {
        if self.ring.publish().needed() {
            cx.notify(self.ch);
        }
    }

    /// Asks to be woken when the reader frees space (after a send that did
    /// not fit); true if there is space now.
    pub fn wait_space(&mut self) -> Result<bool, Fault> {
        self.ring.arm_space().map_err(|_| self.fault())
    }
}
