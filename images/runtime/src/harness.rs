//! A host harness for one component.
//!
//! The test creates each port's ring or pool by name and keeps the far end;
//! the harness then binds the component through the same [`Binder`] contract a
//! real runtime uses, and calls it with a virtual clock:
//!
//! ```ignore
//! let mut h = Harness::new();
//! let mut input = h.input::<PacketDesc>("in", 64);
//! let mut output = h.output::<PacketDesc>("out", 64);
//! let mut echo = h.start::<Echo>(EchoConfig::default())?;
//! input.push(&desc)?; let _ = input.publish();
//! echo.call(Instant::ZERO)?;
//! assert_eq!(output.pop()?, Some(desc));
//! ```

use std::collections::HashMap;
use std::string::String;
use std::vec::Vec;

use moat_component::{
    BindError, Binder, Channel, Component, Context, Fault, Instant, MsgRx, MsgTx, PortKind, Ports, Rx, Signals, Tx,
};
use moat_ring::{ByteConsumer, ByteProducer, Consumer, Message, Pool, PoolGeometry, Producer, Region, RingLayout};

struct Port {
    kind: PortKind,
    message: String,
    region: Region,
    capacity: u32,
    channel: Channel,
    geometry: Option<PoolGeometry>,
    bound: bool,
}

/// Builds the ports of one component under test.
#[derive(Default)]
pub struct Harness {
    ports: HashMap<&'static str, Port>,
    next_channel: u8,
    seed: [u8; 32],
    /// State port sizes the component's `state_bytes` asked for.
    state_sizes: HashMap<&'static str, usize>,
}

fn ring_region<T: Message>(capacity: u32) -> Region {
    let layout = RingLayout::of::<T>(capacity).expect("ring capacity must be a power of two");
    let region = Region::alloc_zeroed(layout.size());
    layout.init(&region).expect("fresh region");
    region
}

impl Harness {
    /// No ports yet; the seed handed to `init` is all zeros.
    pub fn new() -> Self {
        Self::default()
    }

    /// The per-boot entropy `init` will see (tests choose it for
    /// reproducibility).
    pub fn seed(&mut self, seed: [u8; 32]) -> &mut Self {
        self.seed = seed;
        self
    }

    fn add(&mut self, name: &'static str, kind: PortKind, message: &str, region: Region, capacity: u32) -> Channel {
        let channel = Channel::new(self.next_channel).expect("at most 64 ports");
        self.next_channel += 1;
        let port = Port { kind, message: message.into(), region, capacity, channel, geometry: None, bound: false };
        assert!(self.ports.insert(name, port).is_none(), "port {name} declared twice");
        channel
    }

    /// A ring into the component's `Rx` port `name`; the test keeps the producer.
    pub fn input<T: Message>(&mut self, name: &'static str, capacity: u32) -> Producer<T> {
        let region = ring_region::<T>(capacity);
        self.add(name, PortKind::Rx, T::NAME, region, capacity);
        // SAFETY: the harness attaches only the consumer end for the
        // component; this is the one producer.
        unsafe { Producer::attach(&region, capacity) }.expect("fresh ring")
    }

    /// A ring out of the component's `Tx` port `name`; the test keeps the consumer.
    pub fn output<T: Message>(&mut self, name: &'static str, capacity: u32) -> Consumer<T> {
        let region = ring_region::<T>(capacity);
        self.add(name, PortKind::Tx, T::NAME, region, capacity);
        // SAFETY: the harness attaches only the producer end for the
        // component; this is the one consumer.
        unsafe { Consumer::attach(&region, capacity) }.expect("fresh ring")
    }

    /// A control byte ring into port `name` carrying `message`.
    pub fn msg_input(&mut self, name: &'static str, message: &str, capacity: u32) -> ByteProducer {
        let region = ring_region::<u8>(capacity);
        self.add(name, PortKind::Rx, message, region, capacity);
        // SAFETY: one producer (this), one consumer (the component).
        unsafe { ByteProducer::attach(&region, capacity) }.expect("fresh ring")
    }

    /// A control byte ring out of port `name` carrying `message`.
    pub fn msg_output(&mut self, name: &'static str, message: &str, capacity: u32) -> ByteConsumer {
        let region = ring_region::<u8>(capacity);
        self.add(name, PortKind::Tx, message, region, capacity);
        // SAFETY: one consumer (this), one producer (the component).
        unsafe { ByteConsumer::attach(&region, capacity) }.expect("fresh ring")
    }

    /// A pool mapped by the component as `name` (read-only unless
    /// `writable`); the test gets its own writable view and must follow the
    /// ownership rule (touch only buffers it has not handed over).
    pub fn pool(&mut self, name: &'static str, geometry: PoolGeometry, writable: bool) -> Pool {
        let region = Region::alloc_zeroed(geometry.region_size());
        let view = if writable { region } else { region.read_only() };
        self.add(name, PortKind::Pool, "", view, 0);
        self.ports.get_mut(name).expect("just added").geometry = Some(geometry);
        // SAFETY: fresh region; the test and the component share it under
        // the descriptor ownership rule.
        unsafe { Pool::attach(region, geometry) }.expect("sized for the geometry")
    }

    /// Writes garbage indices into port `name`'s ring, as a broken peer would.
    pub fn scribble(&self, name: &str, prod: Option<u32>, cons: Option<u32>) {
        let port = self.ports.get(name).unwrap_or_else(|| panic!("no port {name}"));
        moat_ring::spsc::scribble_indices(&port.region, prod, cons).expect("a ring port");
    }

    /// Device memory of `len` bytes for port `name`; the test keeps a view of
    /// the same region to play the outside party.
    pub fn device(&mut self, name: &'static str, device: &str, len: usize) -> Region {
        let region = Region::alloc_zeroed(len);
        self.add(name, PortKind::Device, device, region, 0);
        region
    }

    /// The channel of port `name` (to check what the component signalled).
    pub fn channel(&self, name: &str) -> Channel {
        self.ports.get(name).unwrap_or_else(|| panic!("no port {name}")).channel
    }

    /// Binds the component's ports and runs its `init`.
    pub fn start<C: Component>(&mut self, config: C::Config) -> Result<Running<C>, Fault> {
        // As a runtime would lay out state regions from the configuration.
        let mut sizes = HashMap::new();
        C::state_bytes(&config, &mut |name, bytes| {
            sizes.insert(name, bytes);
        });
        self.state_sizes = sizes;
        let mut ports = C::Ports::bind(self)?;
        let unbound: Vec<_> = self.ports.iter().filter(|(_, p)| !p.bound).map(|(n, _)| *n).collect();
        assert!(unbound.is_empty(), "ports made but not bound by {}: {unbound:?}", C::NAME);
        let mut cx = Context::new(Instant::ZERO, Signals::ALL, 64).with_seed(self.seed);
        let component = C::init(config, &mut ports, &mut cx)?;
        Ok(Running { component, ports, budget: 64, last: Outcome::from(&mut cx) })
    }

    fn take(&mut self, name: &'static str, kind: PortKind, message: &str) -> Result<&mut Port, BindError> {
        let port = self.ports.get_mut(name).ok_or(BindError::Missing(name))?;
        if port.kind != kind || port.message != message || port.bound {
            return Err(BindError::Mismatch(name));
        }
        port.bound = true;
        Ok(port)
    }
}

impl Binder for Harness {
    fn rx<T: Message>(&mut self, name: &'static str) -> Result<Rx<T>, BindError> {
        let p = self.take(name, PortKind::Rx, T::NAME)?;
        // SAFETY: the test holds the only producer; this is the only consumer.
        let ring = unsafe { Consumer::attach(&p.region, p.capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(Rx::new(ring, p.channel, name))
    }

    fn tx<T: Message>(&mut self, name: &'static str) -> Result<Tx<T>, BindError> {
        let p = self.take(name, PortKind::Tx, T::NAME)?;
        // SAFETY: the test holds the only consumer; this is the only producer.
        let ring = unsafe { Producer::attach(&p.region, p.capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(Tx::new(ring, p.channel, name))
    }

    fn msg_rx(&mut self, name: &'static str, message: &'static str) -> Result<MsgRx, BindError> {
        let p = self.take(name, PortKind::Rx, message)?;
        // SAFETY: as for rx.
        let ring = unsafe { ByteConsumer::attach(&p.region, p.capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgRx::new(ring, p.channel, name))
    }

    fn msg_tx(&mut self, name: &'static str, message: &'static str) -> Result<MsgTx, BindError> {
        let p = self.take(name, PortKind::Tx, message)?;
        // SAFETY: as for tx.
        let ring = unsafe { ByteProducer::attach(&p.region, p.capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgTx::new(ring, p.channel, name))
    }

    fn pool(&mut self, name: &'static str) -> Result<Pool, BindError> {
        let p = self.take(name, PortKind::Pool, "")?;
        let geometry = p.geometry.ok_or(BindError::Layout(name))?;
        // SAFETY: the region was sized for this geometry; ownership is shared
        // with the test under the descriptor rule.
        unsafe { Pool::attach(p.region, geometry) }.map_err(|_| BindError::Layout(name))
    }

    fn device<D: moat_ring::Device>(&mut self, name: &'static str) -> Result<(D, Channel), BindError> {
        let p = self.take(name, PortKind::Device, D::NAME)?;
        // SAFETY: the harness made this region for this port alone; the test
        // that keeps the other view plays the outside party.
        let device = unsafe { D::attach(p.region) }.map_err(|_| BindError::Layout(name))?;
        Ok((device, p.channel))
    }

    fn state_len(&mut self, name: &'static str) -> Result<usize, BindError> {
        self.state_sizes.get(name).copied().ok_or(BindError::Missing(name))
    }

    fn state<T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
        &mut self,
        name: &'static str,
        count: usize,
    ) -> Result<&'static mut [T], BindError> {
        if self.ports.contains_key(name) {
            return Err(BindError::Mismatch(name));
        }
        let bytes = count.checked_mul(core::mem::size_of::<T>()).ok_or(BindError::Layout(name))?;
        let region = Region::alloc_zeroed(bytes.max(64));
        self.add(name, PortKind::State, "", region, 0);
        self.ports.get_mut(name).expect("just added").bound = true;
        // SAFETY: the region was allocated for this one state port just now
        // and no other view of it is ever made.
        unsafe { region.into_state(count) }.map_err(|_| BindError::Layout(name))
    }
}

/// What one call asked of the runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Channels the component signalled.
    pub notified: Signals,
    /// Timer requested.
    pub wake_at: Option<Instant>,
    /// Asked to be called again at once.
    pub again: bool,
}

impl Outcome {
    fn from(cx: &mut Context) -> Self {
        Outcome { notified: cx.take_notify(), wake_at: cx.requested_wake(), again: cx.wants_again() }
    }
}

/// A started component under test.
pub struct Running<C: Component> {
    /// The component (tests may inspect it).
    pub component: C,
    /// Its bound ports.
    pub ports: C::Ports,
    /// Budget passed on each call.
    pub budget: u32,
    /// What the last call asked for.
    pub last: Outcome,
}

impl<C: Component> Running<C> {
    /// One call of `notified` with every channel signalled.
    pub fn call(&mut self, now: Instant) -> Result<Outcome, Fault> {
        self.call_with(now, Signals::ALL)
    }

    /// One call of `notified` with the given signals.
    pub fn call_with(&mut self, now: Instant, signals: Signals) -> Result<Outcome, Fault> {
        let mut cx = Context::new(now, signals, self.budget);
        self.component.notified(&mut self.ports, &mut cx)?;
        self.last = Outcome::from(&mut cx);
        Ok(self.last)
    }

    /// Calls until the component stops asking to run again (at most `limit`
    /// calls — a component that never settles is a bug the test should see).
    pub fn settle(&mut self, now: Instant, limit: usize) -> Result<usize, Fault> {
        for n in 1..=limit {
            if !self.call(now)?.again {
                return Ok(n);
            }
        }
        panic!("{} still asks to run again after {limit} calls", C::NAME);
    }

    /// The component's counters.
    pub fn status(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        self.component.status(&mut moat_component::StatusFn(|k: &str, v| {
            out.insert(k.into(), v);
        }));
        out
    }
}
