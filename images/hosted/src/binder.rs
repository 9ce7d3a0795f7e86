//! The hosted [`Binder`]: hands a component the endpoints its process
//! mapped, by port name, each at most once, checking kind and message type
//! against the checked `system.toml`.

use moat_component::{BindError, Binder, Channel, MsgRx, MsgTx, PortKind, Rx, Tx};
use moat_ring::{ByteConsumer, ByteProducer, Consumer, Message, Pool, Producer, Region};

use crate::plan::{Plan, PortWire, ProcSpec};
use crate::sys::Mapping;

/// Maps the regions of process `i`'s ports, for the rest of the process:
/// rings read-write, pools as the port declares (read-only pools through a
/// read-only descriptor). `None` for ports without a region.
pub fn map_ports(plan: &Plan, i: usize) -> std::io::Result<Vec<Option<Region>>> {
    let files = plan.files_of(i);
    let mut files = files.into_iter();
    let mut out = Vec::new();
    for p in &plan.procs[i].ports {
        match p.wire {
            PortWire::Ring { .. } | PortWire::Pool { .. } => {
                let (_, fd, size, writable) = files.next().expect("files_of lists every ring and pool port");
                out.push(Some(Mapping::map(fd, size, writable)?.leak()));
            }
            _ => out.push(None),
        }
    }
    Ok(out)
}

/// Binds one process's ports.
pub struct HostBinder<'a> {
    spec: &'a ProcSpec,
    regions: Vec<Option<Region>>,
    bound: Vec<bool>,
}

impl<'a> HostBinder<'a> {
    /// A binder over `regions` (one per port of `spec`, from [`map_ports`]).
    ///
    /// # Safety
    ///
    /// The regions must be the mappings of `spec`'s ports laid out by the
    /// same [`Plan`] (rings initialised), and no other binder over the same
    /// rings may exist for this process: each ring keeps one producer and
    /// one consumer system-wide.
    pub unsafe fn new(spec: &'a ProcSpec, regions: Vec<Option<Region>>) -> Self {
        let n = spec.ports.len();
        HostBinder { spec, regions, bound: vec![false; n] }
    }

    /// Binds every control ring port not bound yet and returns them, to be
    /// kept and never used: a TAP adapter playing a Xen driver leaves the
    /// driver's XenStore conversation idle.
    pub fn bind_idle_control(&mut self) -> Result<(Vec<MsgRx>, Vec<MsgTx>), BindError> {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for i in 0..self.spec.ports.len() {
            let p = &self.spec.ports[i];
            let control = matches!(p.wire, PortWire::Ring { slot_size: 1, .. });
            if self.bound[i] || !control {
                continue;
            }
            // Names live as long as the process: leaked once per port.
            let name: &'static str = Box::leak(p.name.clone().into_boxed_str());
            let message: &'static str = Box::leak(p.message.clone().into_boxed_str());
            match p.kind {
                PortKind::Rx => rx.push(self.msg_rx(name, message)?),
                PortKind::Tx => tx.push(self.msg_tx(name, message)?),
                _ => {}
            }
        }
        Ok((rx, tx))
    }

    /// The first port not bound, if any (its component and the system
    /// disagree).
    pub fn unbound(&self) -> Option<&str> {
        self.spec
            .ports
            .iter()
            .zip(&self.bound)
            .find(|(p, b)| !**b && !matches!(p.kind, PortKind::State | PortKind::Device))
            .map(|(p, _)| &*p.name)
    }

    fn take(&mut self, name: &'static str, kind: PortKind, message: &str) -> Result<(usize, Region), BindError> {
        let i = self.spec.ports.iter().position(|p| p.name == name).ok_or(BindError::Missing(name))?;
        let p = &self.spec.ports[i];
        if p.kind != kind || (kind != PortKind::Pool && p.message != message) || self.bound[i] {
            return Err(BindError::Mismatch(name));
        }
        let region = self.regions[i].ok_or(BindError::Layout(name))?;
        self.bound[i] = true;
        Ok((i, region))
    }

    fn ring(
        &mut self,
        name: &'static str,
        kind: PortKind,
        message: &str,
        slot: usize,
    ) -> Result<(u32, Channel, Region), BindError> {
        let (i, region) = self.take(name, kind, message)?;
        let p = &self.spec.ports[i];
        let PortWire::Ring { capacity, slot_size, .. } = p.wire else { return Err(BindError::Mismatch(name)) };
        if slot_size as usize != slot {
            return Err(BindError::Mismatch(name));
        }
        let ch = p.channel.and_then(Channel::new).ok_or(BindError::Layout(name))?;
        Ok((capacity, ch, region))
    }
}

impl Binder for HostBinder<'_> {
    fn rx<T: Message>(&mut self, name: &'static str) -> Result<Rx<T>, BindError> {
        let (cap, ch, region) = self.ring(name, PortKind::Rx, T::NAME, size_of::<T>())?;
        // SAFETY: the plan wires this ring's consumer end to this port only,
        // and `new`'s contract makes this the only binding of it.
        let ring = unsafe { Consumer::attach(&region, cap) }.map_err(|_| BindError::Layout(name))?;
        Ok(Rx::new(ring, ch, name))
    }

    fn tx<T: Message>(&mut self, name: &'static str) -> Result<Tx<T>, BindError> {
        let (cap, ch, region) = self.ring(name, PortKind::Tx, T::NAME, size_of::<T>())?;
        // SAFETY: as for rx, producer end.
        let ring = unsafe { Producer::attach(&region, cap) }.map_err(|_| BindError::Layout(name))?;
        Ok(Tx::new(ring, ch, name))
    }

    fn msg_rx(&mut self, name: &'static str, message: &'static str) -> Result<MsgRx, BindError> {
        let (cap, ch, region) = self.ring(name, PortKind::Rx, message, 1)?;
        // SAFETY: as for rx.
        let ring = unsafe { ByteConsumer::attach(&region, cap) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgRx::new(ring, ch, name))
    }

    fn msg_tx(&mut self, name: &'static str, message: &'static str) -> Result<MsgTx, BindError> {
        let (cap, ch, region) = self.ring(name, PortKind::Tx, message, 1)?;
        // SAFETY: as for tx.
        let ring = unsafe { ByteProducer::attach(&region, cap) }.map_err(|_| BindError::Layout(name))?;
        Ok(MsgTx::new(ring, ch, name))
    }

    fn pool(&mut self, name: &'static str) -> Result<Pool, BindError> {
        let (i, region) = self.take(name, PortKind::Pool, "")?;
        let PortWire::Pool { geometry, .. } = self.spec.ports[i].wire else { return Err(BindError::Mismatch(name)) };
        // SAFETY: the region is this pool's mapping, sized for its geometry;
        // every process that maps it follows the descriptor ownership rule.
        unsafe { Pool::attach(region, geometry) }.map_err(|_| BindError::Layout(name))
    }

    fn device<D: moat_ring::Device>(&mut self, name: &'static str) -> Result<(D, Channel), BindError> {
        // The hosted image has no Xen devices to attach.
        Err(BindError::Missing(name))
    }

    fn state_len(&mut self, name: &'static str) -> Result<usize, BindError> {
        let p = self.spec.ports.iter().find(|p| p.name == name).ok_or(BindError::Missing(name))?;
        match p.wire {
            PortWire::State(n) if n > 0 => usize::try_from(n).map_err(|_| BindError::Layout(name)),
            PortWire::State(_) => Err(BindError::Layout(name)),
            _ => Err(BindError::Mismatch(name)),
        }
    }

    fn state<T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
        &mut self,
        name: &'static str,
        count: usize,
    ) -> Result<&'static mut [T], BindError> {
        let i = self.spec.ports.iter().position(|p| p.name == name).ok_or(BindError::Missing(name))?;
        let p = &self.spec.ports[i];
        let PortWire::State(declared) = p.wire else { return Err(BindError::Mismatch(name)) };
        if self.bound[i] {
            return Err(BindError::Mismatch(name));
        }
        let bytes = count.checked_mul(size_of::<T>()).ok_or(BindError::Layout(name))?;
        if declared != 0 && bytes as u64 > declared {
            // The component asks for more than its state_bytes promised
            // (what the memory budget was checked against).
            return Err(BindError::Layout(name));
        }
        let region = Mapping::anonymous(bytes.max(64)).map_err(|_| BindError::Layout(name))?.leak();
        self.bound[i] = true;
        // SAFETY: a fresh private mapping for this one port, never viewed
        // any other way.
        unsafe { region.into_state(count) }.map_err(|_| BindError::Layout(name))
    }
}
