//! The component contract.
//!
//! A moat component is a `#![no_std]`, `#![forbid(unsafe_code)]` library with
//! no heap. It has the two entry points of a Microkit protection domain:
//!
//! * [`Component::init`] — once, with its decoded configuration and its bound
//!   [`Ports`];
//! * [`Component::notified`] — whenever one of its channels was signalled or a
//!   timer it asked for fell due. It must never block and must do bounded work
//!   per call: at most [`Context::budget`] items from each input, then ask to
//!   be called [`again`](Context::again) if more is waiting, so one busy ring
//!   cannot starve the others.
//!
//! A component can only reach what its ports give it; ports are typed ring
//! endpoints, packet pools and private state slices that the runtime binds by
//! name from the layout `system.toml` describes ([`Binder`]). It learns the
//! time only from [`Context::now`], and asks for timers with
//! [`Context::wake_at`].
//!
//! Errors in the traffic are values the component counts and shows in its
//! [`status`](Component::status). A [`Fault`] is for what the component cannot
//! go on from (a peer that broke a ring protocol, an impossible
//! configuration); the runtime then reports the component by name and fails
//! closed.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod port;
mod status;
mod time;

pub use moat_ring::{
    BufferOwner, ByteConsumer, ByteProducer, Consumer, Custody, DescError, FrameError, Message, Notify, PacketDesc,
    Pool, PoolGeometry, Producer, RingError,
};
pub use port::{BindError, Binder, MsgRx, MsgTx, PortDecl, PortKind, Ports, Rx, Tx};
pub use status::{Status, StatusFn};
pub use time::{Duration, Instant};

/// A component: the unit of isolation, review and restart.
pub trait Component: Sized {
    /// Name used in `system.toml`, status output and fault reports.
    const NAME: &'static str;

    /// Configuration decoded (postcard) from the blob the build tool derives
    /// from `system.toml`. It is input like any other: validate it in `init`.
    type Config: serde::de::DeserializeOwned;

    /// The component's ports, bound by name.
    type Ports: Ports;

    /// Starts the component. Large tables live in state ports, not in `Self`,
    /// so this returns something small.
    fn init(config: Self::Config, ports: &mut Self::Ports, cx: &mut Context) -> Result<Self, Fault>;

    /// Does a bounded amount of work after a signal or timer.
    fn notified(&mut self, ports: &mut Self::Ports, cx: &mut Context) -> Result<(), Fault>;

    /// Reports counters (drops by reason, table sizes, …).
    fn status(&self, out: &mut dyn Status);

    /// Bytes of private state each of its state ports needs under `config`;
    /// the build tool lays those regions out. Stateless components keep the
    /// default.
    fn state_bytes(_config: &Self::Config, _out: &mut dyn FnMut(&'static str, usize)) {}
}

/// Why a component stopped. The runtime prints it with the component's name
/// and fails closed (no traffic passes the graph while a component is down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The peer on this port broke the ring or ownership protocol.
    Peer(&'static str),
    /// The configuration blob was unusable; the text says which part.
    Config(&'static str),
    /// A port could not be bound.
    Bind(BindError),
    /// An internal invariant failed; the text says which.
    Internal(&'static str),
}

impl From<BindError> for Fault {
    fn from(e: BindError) -> Self {
        Fault::Bind(e)
    }
}

/// A local notification channel (0..64): each ring end has one, and signals
/// on it reach the component at the other end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(u8);

impl Channel {
    /// Most channels one component may have.
    pub const MAX: u8 = 64;

    /// Channel `n`, if below [`Channel::MAX`].
    pub const fn new(n: u8) -> Option<Channel> {
        if n < Self::MAX { Some(Channel(n)) } else { None }
    }

    /// The channel's number.
    pub const fn index(self) -> u8 {
        self.0
    }
}

/// A set of channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals(u64);

impl Signals {
    /// No channel.
    pub const NONE: Signals = Signals(0);
    /// Every channel (what a runtime passes when it does not track which
    /// channel fired, and on the first call).
    pub const ALL: Signals = Signals(u64::MAX);

    /// From a raw bit mask.
    pub const fn from_bits(bits: u64) -> Self {
        Signals(bits)
    }

    /// The raw bit mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True if `ch` is in the set.
    pub const fn contains(self, ch: Channel) -> bool {
        self.0 & (1 << ch.0) != 0
    }

    /// Adds `ch`.
    pub fn insert(&mut self, ch: Channel) {
        self.0 |= 1 << ch.0;
    }

    /// True if the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The channels in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        (0..Channel::MAX).filter(move |i| self.0 & (1 << i) != 0).map(Channel)
    }
}

/// What the runtime tells a component on each call, and what the component
/// asks of the runtime in return.
#[derive(Debug)]
pub struct Context {
    now: Instant,
    signals: Signals,
    budget: u32,
    notify: Signals,
    wake_at: Option<Instant>,
    again: bool,
    seed: [u8; 32],
}

impl Context {
    /// A context for one call: the time, the channels that fired, and the
    /// most items the component may take from each input.
    pub fn new(now: Instant, signals: Signals, budget: u32) -> Self {
        Context {
            now,
            signals,
            budget: budget.max(1),
            notify: Signals::NONE,
            wake_at: None,
            again: false,
            seed: [0; 32],
        }
    }

    /// For runtimes: hands the component 32 bytes of fresh entropy (read
    /// from the platform at boot: RDSEED/RDRAND, `getrandom`). Runtimes set
    /// it on the `init` call; a build-time configuration blob is reproducible
    /// and therefore never secret, so per-boot secrets come from here.
    pub fn with_seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = seed;
        self
    }

    /// Per-boot entropy for keyed hashes and port randomisation. Set on the
    /// `init` call; take what you need there.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The monotonic time of this call.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Channels signalled since the last call (a hint: always drain inputs
    /// up to the budget anyway).
    pub fn signals(&self) -> Signals {
        self.signals
    }

    /// Most items to take from each input in this call.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Signal the component at the other end of `ch` after this call.
    pub fn notify(&mut self, ch: Channel) {
        self.notify.insert(ch);
    }

    /// Call me again at `t` (the earliest request in a call wins).
    pub fn wake_at(&mut self, t: Instant) {
        self.wake_at = Some(match self.wake_at {
            Some(old) if old <= t => old,
            _ => t,
        });
    }

    /// Call me again soon: I stopped at my budget with work left.
    pub fn again(&mut self) {
        self.again = true;
    }

    /// For runtimes: channels to signal.
    pub fn take_notify(&mut self) -> Signals {
        core::mem::take(&mut self.notify)
    }

    /// For runtimes: the timer requested, if any.
    pub fn requested_wake(&self) -> Option<Instant> {
        self.wake_at
    }

    /// For runtimes: whether the component asked to run again at once.
    pub fn wants_again(&self) -> bool {
        self.again
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_context() {
        let mut s = Signals::NONE;
        s.insert(Channel::new(3).unwrap());
        s.insert(Channel::new(63).unwrap());
        assert!(Channel::new(64).is_none());
        assert_eq!(s.iter().map(Channel::index).collect::<heapless_vec::V>().0, [3, 63]);
        let mut cx = Context::new(Instant::from_nanos(5), s, 0);
        assert_eq!(cx.budget(), 1, "a zero budget still makes progress");
        cx.wake_at(Instant::from_nanos(100));
        cx.wake_at(Instant::from_nanos(50));
        cx.wake_at(Instant::from_nanos(70));
        assert_eq!(cx.requested_wake(), Some(Instant::from_nanos(50)));
        cx.notify(Channel::new(1).unwrap());
        assert_eq!(cx.take_notify().bits(), 2);
        assert!(cx.take_notify().is_empty());
    }

    mod heapless_vec {
        /// A tiny collector so the test stays no_std.
        pub struct V(pub [u8; 2]);
        impl FromIterator<u8> for V {
            fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
                let mut v = V([0; 2]);
                for (i, x) in iter.into_iter().enumerate() {
                    v.0[i] = x;
                }
                v
            }
        }
    }
}
