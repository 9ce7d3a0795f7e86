//! Binding a component's ports from a manifest: the [`Binder`] every image
//! uses.
//!
//! The runtime prepares the arena once ([`prepare`]: zeroed, every ring's
//! header initialised), then makes one [`LayoutBinder`] per component start.
//! The binder hands out each port at most once, checks the kind and message
//! type the component asks for against the manifest, and refuses a ring
//! whose slot size is not the message's size — so a component can only get
//! the endpoints `system.toml` wired to it, typed as both ends agreed.

use moat_component::{BindError, Binder, Channel, MsgRx, MsgTx, Rx, Tx};
use moat_ring::{
    ByteConsumer, ByteProducer, Consumer, Device, Message, Pool, PoolGeometry, Producer, Region, RingLayout,
};

use crate::layout::{LayoutError, MAX_PORTS, Manifest, PortKind, PortSpec, RegionKind};

/// Device memory the platform supplies for device ports (the XenStore ring
/// page and its event channel, …), found by device type name.
#[derive(Clone, Copy, Debug)]
pub struct DeviceMem {
    /// Device type (`Device::NAME`, the port's `message`).
    pub kind: &'static str,
    /// The memory.
    pub region: Region,
    /// The platform's number for the outside party's notifications (a Xen
    /// event channel port).
    pub event: u32,
}

/// Zeroes the arena and initialises every ring header in it.
///
/// # Safety
///
/// `base..base + len` must be writable memory that nothing else uses, valid
/// for the rest of the program, and page-aligned.
pub unsafe fn prepare(manifest: &Manifest<'_>, base: *mut u8, len: usize) -> Result<Region, LayoutError> {
    if (len as u64) < manifest.arena_bytes() {
        return Err(LayoutError::Region(0));
    }
    // SAFETY: the caller gives us this writable memory for good.
    unsafe { core::ptr::write_bytes(base, 0, len) };
    // SAFETY: as above; Region checks the alignment.
    let arena = unsafe { Region::from_raw(base, len, true) }.map_err(|_| LayoutError::Region(0))?;
    for (i, r) in manifest.regions().enumerate() {
        if let RegionKind::Ring { capacity, slot_size } = r.kind {
            let region = arena.carve(r.offset as usize, r.size as usize).map_err(|_| LayoutError::Region(i))?;
            RingLayout { capacity, slot_size: slot_size as usize }.init(&region).map_err(|_| LayoutError::Region(i))?;
        }
    }
    Ok(arena)
}

/// The consumer end of a control ring the runtime itself plays
/// (`runtime.LABEL` as the `to` of a byte ring): how a component tells the
/// runtime something (the xenstore component's `RuntimeEvent`s). The
/// runtime reads it between scheduling passes; runtime ends have no
/// channel, so it polls.
///
/// # Safety
///
/// `arena` must be the memory returned by [`prepare`] for this manifest, and
/// this end must be attached at most once for the life of the program (one
/// consumer per ring).
pub unsafe fn runtime_msg_rx(
    manifest: &Manifest<'_>,
    arena: Region,
    label: &'static str,
    message: &str,
) -> Result<ByteConsumer, BindError> {
    let (_, p) = manifest.find_port(usize::from(crate::layout::RUNTIME), label).ok_or(BindError::Missing(label))?;
    if p.kind != PortKind::Rx || p.message != message {
        return Err(BindError::Mismatch(label));
    }
    let r = manifest.region(p.region as usize);
    let RegionKind::Ring { capacity, slot_size: 1 } = r.kind else {
        return Err(BindError::Mismatch(label));
    };
    let region = arena.carve(r.offset as usize, r.size as usize).map_err(|_| BindError::Layout(label))?;
    // SAFETY: prepare() initialised this ring (a byte ring of `capacity`);
    // the manifest gives it one Rx port, this runtime end, which the caller
    // attaches once.
    unsafe { ByteConsumer::attach(&region, capacity) }.map_err(|_| BindError::Layout(label))
}

/// Binds one component's ports from the manifest.
pub struct LayoutBinder<'m, 'a> {
    manifest: &'m Manifest<'a>,
    arena: Region,
    component: usize,
    devices: &'m [DeviceMem],
    bound: [u64; MAX_PORTS / 64],
}

impl<'m, 'a> LayoutBinder<'m, 'a> {
    /// A binder for component `component` of `manifest`.
    ///
    /// # Safety
    ///
    /// `arena` must be the memory returned by [`prepare`] for this manifest.
    /// While endpoints this binder hands out are alive, no other binder for
    /// the same component may exist (so every ring keeps one producer and one
    /// consumer); a restarted component is bound again only after its old
    /// ports were dropped. `devices` must satisfy [`Device::attach`]'s
    /// contract, each used by at most one port in the system.
    pub unsafe fn new(
        manifest: &'m Manifest<'a>,
        arena: Region,
        component: usize,
        devices: &'m [DeviceMem],
    ) -> Result<Self, BindError> {
        if component >= manifest.component_count() || (arena.len() as u64) < manifest.arena_bytes() {
            return Err(BindError::Layout("component or arena"));
        }
        Ok(LayoutBinder { manifest, arena, component, devices, bound: [0; MAX_PORTS / 64] })
    }

    /// A port the manifest wired to this component that the component did
    /// not bind (a system/crate mismatch worth reporting).
    pub fn unbound(&self) -> Option<&'a str> {
        self.manifest
            .ports()
            .find(|(i, p)| p.component as usize == self.component && self.bound[i / 64] & (1 << (i % 64)) == 0)
            .map(|(_, p)| p.name)
    }

    fn take(
        &mut self,
        name: &'static str,
        kind: PortKind,
        message: Option<&str>,
    ) -> Result<(PortSpec<'a>, Region), BindError> {
        let (i, p) = self.manifest.find_port(self.component, name).ok_or(BindError::Missing(name))?;
        if p.kind != kind || message.is_some_and(|m| m != p.message) || self.bound[i / 64] & (1 << (i % 64)) != 0 {
            return Err(BindError::Mismatch(name));
        }
        let region = if kind == PortKind::Device {
            self.devices.iter().find(|d| d.kind == p.message).ok_or(BindError::Layout(name))?.region
        } else {
            let r = self.manifest.region(p.region as usize);
            self.arena.carve(r.offset as usize, r.size as usize).map_err(|_| BindError::Layout(name))?
        };
        self.bound[i / 64] |= 1 << (i % 64);
        Ok((p, region))
    }

    fn ring(
        &mut self,
        name: &'static str,
        kind: PortKind,
        message: &str,
        slot: usize,
    ) -> Result<(Region, u32, Channel), BindError> {
        let (p, region) = self.take(name, kind, Some(message))?;
        let RegionKind::Ring { capacity, slot_size } = self.manifest.region(p.region as usize).kind else {
            return Err(BindError::Mismatch(name));
        };
        if slot_size as usize != slot {
            return Err(BindError::Mismatch(name));
        }
        let ch = Channel::new(p.channel).ok_or(BindError::Layout(name))?;
        Ok((region, capacity, ch))
    }
}

impl Binder for LayoutBinder<'_, '_> {
    fn rx<T: Message>(&mut self, name: &'static str) -> Result<Rx<T>, BindError> {
        let (region, capacity, ch) = self.ring(name, PortKind::Rx, T::NAME, core::mem::size_of::<T>())?;
        // SAFETY: prepare() initialised this ring for this slot size and
        // capacity (checked above); the manifest gives the ring exactly one Rx
        // port, bound once by the one binder of its component (new's contract).
        let ring = unsafe { Consumer::attach(&region, capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(Rx::new(ring, ch, name))
    }

    fn tx<T: Message>(&mut self, name: &'static str) -> Result<Tx<T>, BindError> {
        let (region, capacity, ch) = self.ring(name, PortKind::Tx, T::NAME, core::mem::size_of::<T>())?;
        // SAFETY: as for rx, with exactly one Tx port per ring.
        let ring = unsafe { Producer::attach(&region, capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(Tx::new(ring, ch, name))
    }

    fn msg_rx(&mut self, name: &'static str, message: &'static str) -> Result<MsgRx, BindError> {
        let (region, capacity, ch) = self.ring(name, PortKind::Rx, message, 1)?;
        // SAFETY: as for rx.
        let ring = unsafe { ByteConsumer::attach(&region, capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgRx::new(ring, ch, name))
    }

    fn msg_tx(&mut self, name: &'static str, message: &'static str) -> Result<MsgTx, BindError> {
        let (region, capacity, ch) = self.ring(name, PortKind::Tx, message, 1)?;
        // SAFETY: as for tx.
        let ring = unsafe { ByteProducer::attach(&region, capacity) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgTx::new(ring, ch, name))
    }

    fn pool(&mut self, name: &'static str) -> Result<Pool, BindError> {
        let (p, region) = self.take(name, PortKind::Pool, None)?;
        let RegionKind::Pool { id, buf_size, count } = self.manifest.region(p.region as usize).kind else {
            return Err(BindError::Mismatch(name));
        };
        let geo = PoolGeometry::new(id, buf_size, count).map_err(|_| BindError::Layout(name))?;
        let view = if p.writable { region } else { region.read_only() };
        // SAFETY: the region is the pool's, sized for its geometry (checked
        // by Manifest::parse); every component mapping it follows the
        // descriptor ownership rule, which their custody checks enforce.
        unsafe { Pool::attach(view, geo) }.map_err(|_| BindError::Layout(name))
    }

    fn device<D: Device>(&mut self, name: &'static str) -> Result<(D, Channel), BindError> {
        let (p, region) = self.take(name, PortKind::Device, Some(D::NAME))?;
        let ch = Channel::new(p.channel).ok_or(BindError::Layout(name))?;
        // SAFETY: the platform's device memory (new's contract), bound once.
        let device = unsafe { D::attach(region) }.map_err(|_| BindError::Layout(name))?;
        Ok((device, ch))
    }

    fn state_len(&mut self, name: &'static str) -> Result<usize, BindError> {
        let bytes = self.manifest.state_bytes(self.component, name).ok_or(BindError::Missing(name))?;
        usize::try_from(bytes).map_err(|_| BindError::Layout(name))
    }

    fn state<T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
        &mut self,
        name: &'static str,
        count: usize,
    ) -> Result<&'static mut [T], BindError> {
        let (_, region) = self.take(name, PortKind::State, None)?;
        // SAFETY: a state region has exactly one port (Manifest::parse), bound
        // once by this component's only binder, so this is the only view.
        let state: &'static mut [T] = unsafe { region.into_state(count) }.map_err(|_| BindError::Layout(name))?;
        // A restarted component starts from zeroed state, as the contract says.
        zerocopy::IntoBytes::as_mut_bytes(state).fill(0);
        Ok(state)
    }
}
