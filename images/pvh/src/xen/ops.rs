//! Ops devices on Xen: the hypercalls behind `moat_xen::ops`, for the
//! drivers (netback, netfront), which make none themselves.
//!
//! For each device port of an ops type the manifest names (`XenBackend`,
//! `XenFrontend`), [`attach`] gives the component a region of fresh pages
//! laid out as the type says and a `moat_xen::ops::Service` over it: the
//! component's pools (from its pool ports in the manifest, with their
//! access) are the memory its copies may touch, and its capabilities bound
//! what it may ask. The service checks every op before it reaches [`Hv`],
//! which only issues the hypercalls:
//!
//! * copies: `GNTTABOP_copy`, the local side by guest frame (the image is
//!   identity-mapped, so an address is its frame);
//! * maps: `GNTTABOP_map_grant_ref` into the device's window, whose frames
//!   were given back to Xen at attach (`XENMEM_decrease_reservation`), so a
//!   mapping fills a hole and an unmap leaves one again;
//! * grants: entries of our own grant table (references 8 up; 0–7 belong to
//!   the toolstack), revoked with a compare-and-swap only while the other
//!   side is neither reading nor writing;
//! * event channels: `alloc_unbound`, `bind_interdomain` (unmasked at once),
//!   `send`, `close`.
//!
//! Each device has a made-up event number ([`EVENT_BASE`] + its index): the
//! scheduler's notification of it runs the device's batch ([`run`]), and
//! [`take_completions`] / [`route`] turn finished batches and Xen events on
//! the device's channels into that number, which the scheduler delivers to
//! the component's device channel.
//!
//! The state lives in one static: one CPU, no interrupt handlers, and a
//! reentrancy flag that makes overlapping use a panic instead of aliasing.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use moat_ring::Region;
use moat_runtime::binder::DeviceMem;
use moat_runtime::layout::{Manifest, PortKind, RegionKind};
use moat_xen::evtchn::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnPortArg, op as evop};
use moat_xen::grant::{
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef, gntcopy, gntmap, op as gop, status as gst,
};
use moat_xen::hypercall::{DOMID_SELF, MEMORY_OP, XenMemoryReservation, memory_op};
use moat_xen::ops::service::CopyOp;
use moat_xen::ops::{Backend, Caps, Frontend, Geometry, Hypervisor, Role, Service, Space, status};
use moat_xen::{DomId, EvtchnPort, GrantRef, PAGE_SIZE};

use super::fence::Fence;
use super::grants::Grants;
use super::hypercall;
use crate::memory::Memory;
use crate::println;

/// Event numbers of ops devices start here (Xen's ports are far below).
pub const EVENT_BASE: u32 = 0x4000_0000;
/// Ops devices one system may have.
pub const MAX_DRIVERS: usize = 4;
/// Most ports `SCHEDOP_poll` takes.
pub const MAX_POLL: usize = 128;

/// The hypercalls behind checked ops.
struct Hv<'a> {
    grants: &'a mut Grants,
    fence: &'a mut Fence,
}

fn foreign(domid: DomId, gref: GrantRef, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::gref(gref, domid, offset)
}

impl Hypervisor for Hv<'_> {
    fn copy(&mut self, ops: &mut [CopyOp]) {
        let mut batch = [GnttabCopy::default(); 32];
        let mut index = [0usize; 32];
        let mut n = 0;
        let mut i = 0;
        while i < ops.len() || n > 0 {
            // Fill the batch with fenced ops; a refused one never reaches Xen.
            while i < ops.len() && n < batch.len() {
                let o = &mut ops[i];
                i += 1;
                if !self.fence.check(o.local, u64::from(o.len)) {
                    o.status = gst::GENERAL_ERROR;
                    continue;
                }
                let local = GnttabCopyPtr::local(o.local / PAGE_SIZE as u64, (o.local % PAGE_SIZE as u64) as u16);
                batch[n] = if o.to_foreign {
                    GnttabCopy {
                        source: local,
                        dest: foreign(o.domid, o.gref, o.foreign_offset),
                        len: o.len,
                        flags: gntcopy::DEST_GREF,
                        ..GnttabCopy::default()
                    }
                } else {
                    GnttabCopy {
                        source: foreign(o.domid, o.gref, o.foreign_offset),
                        dest: local,
                        len: o.len,
                        flags: gntcopy::SOURCE_GREF,
                        ..GnttabCopy::default()
                    }
                };
                index[n] = i - 1;
                n += 1;
            }
            if n == 0 {
                break;
            }
            let rc = hypercall::grant_table_op(gop::COPY, &mut batch[..n]);
            for (c, &k) in batch[..n].iter().zip(index[..n].iter()) {
                ops[k].status = if rc < 0 { gst::GENERAL_ERROR } else { c.status };
            }
            n = 0;
        }
    }

    fn map(&mut self, domid: DomId, gref: GrantRef, at: u64, readonly: bool) -> Result<u32, i16> {
        if !self.fence.check(at, PAGE_SIZE as u64) {
            return Err(gst::GENERAL_ERROR);
        }
        let flags = gntmap::HOST_MAP | if readonly { gntmap::READONLY } else { 0 };
        let mut op = [GnttabMapGrantRef { host_addr: at, flags, r#ref: gref, dom: domid, ..Default::default() }];
        let rc = hypercall::grant_table_op(gop::MAP_GRANT_REF, &mut op);
        match (rc, op[0].status) {
            (0, gst::OKAY) => Ok(op[0].handle),
            (0, s) => Err(s),
            _ => Err(gst::GENERAL_ERROR),
        }
    }

    fn unmap(&mut self, at: u64, handle: u32) -> Result<(), i16> {
        let mut op = [GnttabUnmapGrantRef { host_addr: at, dev_bus_addr: 0, handle, ..Default::default() }];
        let rc = hypercall::grant_table_op(gop::UNMAP_GRANT_REF, &mut op);
        match (rc, op[0].status) {
            (0, gst::OKAY) => Ok(()),
            (0, s) => Err(s),
            _ => Err(gst::GENERAL_ERROR),
        }
    }

    fn grant(&mut self, domid: DomId, at: u64, readonly: bool) -> Result<GrantRef, i16> {
        // The other domain may write there: our device pages only.
        if !self.fence.check(at, PAGE_SIZE as u64) {
            return Err(gst::GENERAL_ERROR);
        }
        let frame = u32::try_from(at / PAGE_SIZE as u64).map_err(|_| gst::ADDRESS_TOO_BIG)?;
        self.grants.grant(domid, frame, readonly).ok_or(status::NO_SPACE)
    }

    fn end_grant(&mut self, gref: GrantRef) -> Result<(), i16> {
        self.grants.end(gref)
    }

    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, i16> {
        let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
        match hypercall::evtchn_op(evop::ALLOC_UNBOUND, &mut a) {
            0 => {
                hypercall::evtchn_op(evop::UNMASK, &mut EvtchnPortArg { port: a.port });
                Ok(a.port)
            }
            e => Err(e.clamp(i64::from(i16::MIN), -1) as i16),
        }
    }

    fn bind_interdomain(&mut self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, i16> {
        let mut a = EvtchnBindInterdomain { remote_dom: remote, _pad: 0, remote_port: port, local_port: 0 };
        match hypercall::evtchn_op(evop::BIND_INTERDOMAIN, &mut a) {
            0 => {
                hypercall::evtchn_op(evop::UNMASK, &mut EvtchnPortArg { port: a.local_port });
                Ok(a.local_port)
            }
            e => Err(e.clamp(i64::from(i16::MIN), -1) as i16),
        }
    }

    fn close(&mut self, port: EvtchnPort) {
        hypercall::evtchn_op(evop::CLOSE, &mut EvtchnPortArg { port });
    }

    fn send(&mut self, port: EvtchnPort) {
        hypercall::evtchn_op(evop::SEND, &mut EvtchnPortArg { port });
    }
}

struct Driver {
    service: Service,
    done: bool,
}

/// Every ops device and the grant table they share.
pub struct Drivers {
    grants: Grants,
    fence: Fence,
    list: [Option<Driver>; MAX_DRIVERS],
}

struct Global {
    cell: UnsafeCell<Option<Drivers>>,
    busy: AtomicBool,
}

// SAFETY: one CPU, no interrupt handler touches it, and `with` refuses
// reentrant use, so no two references to the contents ever exist.
unsafe impl Sync for Global {}

static DRIVERS: Global = Global { cell: UnsafeCell::new(None), busy: AtomicBool::new(false) };

fn with<R>(f: impl FnOnce(&mut Drivers) -> R) -> Option<R> {
    assert!(!DRIVERS.busy.swap(true, Ordering::Acquire), "ops devices used reentrantly");
    // SAFETY: the busy flag makes this the only reference to the cell's
    // contents until it is cleared below.
    let r = unsafe { (*DRIVERS.cell.get()).as_mut().map(f) };
    DRIVERS.busy.store(false, Ordering::Release);
    r
}

/// Starts the ops machinery over our grant table (`Xen::init` calls it).
pub fn init(grant_table: *mut u8) {
    assert!(!DRIVERS.busy.swap(true, Ordering::Acquire), "ops devices used reentrantly");
    // SAFETY: as in `with`; nothing else holds the contents.
    unsafe {
        *DRIVERS.cell.get() =
            Some(Drivers { grants: Grants::new(grant_table), fence: Fence::new(), list: [const { None }; MAX_DRIVERS] });
    }
    DRIVERS.busy.store(false, Ordering::Release);
}

/// What a component may do: from the device type until the manifest
/// carries each component's `caps` (then from there).
fn caps_for(kind: &str) -> Caps {
    if kind == Backend::NAME {
        Caps { grant_copy: true, grant_access: false, event_channels: Backend::CLIENTS as u16 }
    } else {
        Caps { grant_copy: false, grant_access: true, event_channels: 2 }
    }
}

/// Gives back the window's frames so mappings fill holes.
fn release_frames(first: u64, count: u64) -> bool {
    let mut frames = [0u64; 256];
    let n = (count as usize).min(frames.len());
    for (i, f) in frames.iter_mut().take(n).enumerate() {
        *f = first + i as u64;
    }
    let mut r = XenMemoryReservation {
        extent_start: frames.as_mut_ptr() as u64,
        nr_extents: n as u64,
        domid: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: XENMEM_decrease_reservation with a reservation struct whose
    // extent array (identity-mapped stack memory) holds `n` frames of ours
    // that nothing uses (the window was just allocated and is only touched
    // after a mapping fills it).
    let rc = unsafe { hypercall::call(MEMORY_OP, u64::from(memory_op::DECREASE_RESERVATION), &mut r as *mut _ as u64, 0) };
    rc == n as i64
}

/// Lays out an ops device for every device port of an ops type in `m`,
/// whose arena is at `arena_base`; writes their `DeviceMem`s into `out`
/// and returns how many. Not on Xen (no grant table): none.
pub fn attach(m: &Manifest<'_>, arena_base: u64, mem: &mut Memory, out: &mut [DeviceMem]) -> usize {
    let mut n = 0;
    let mut arena_fenced = false;
    for (_, p) in m.ports() {
        if p.kind != PortKind::Device || n >= out.len().min(MAX_DRIVERS) {
            continue;
        }
        let (kind, geo): (&'static str, Geometry) = match p.message {
            k if k == Backend::NAME => (Backend::NAME, Backend::GEOMETRY),
            k if k == Frontend::NAME => (Frontend::NAME, Frontend::GEOMETRY),
            _ => continue,
        };
        let mut spaces = [Space { id: 0, base: 0, len: 0, writable: false }; 8];
        let mut ns = 0;
        for (_, q) in m.ports().filter(|(_, q)| q.component == p.component && q.kind == PortKind::Pool) {
            let r = m.region(q.region as usize);
            let RegionKind::Pool { id, buf_size, count } = r.kind else { continue };
            if ns < spaces.len() {
                let len = u64::from(buf_size) * u64::from(count);
                spaces[ns] = Space { id, base: arena_base + r.offset, len, writable: q.writable };
                ns += 1;
            }
        }
        let bytes = geo.bytes() as u64;
        let Ok(base) = mem.alloc(bytes) else {
            println!("moat: ops: no memory for {} ({} KiB)", kind, bytes / 1024);
            continue;
        };
        // SAFETY: fresh RAM from the allocator, mapped read-write, ours for
        // good; zeroed before anything reads it.
        let region = unsafe {
            core::ptr::write_bytes(base, 0, bytes as usize);
            Region::from_raw(base, bytes as usize, true)
        };
        let Ok(region) = region else { continue };
        let caps = caps_for(kind);
        let Ok(service) = Service::new(region, base as u64, geo, caps, &spaces[..ns]) else {
            println!("moat: ops: {} refused its layout", kind);
            continue;
        };
        if geo.window_pages > 0 {
            let first = (base as u64 + geo.window_offset(0) as u64) / PAGE_SIZE as u64;
            if !release_frames(first, u64::from(geo.window_pages)) {
                println!("moat: ops: window frames not given back (mappings will replace RAM)");
            }
        }
        let added = with(|d| {
            let slot = d.list.iter().position(Option::is_none)?;
            // Xen may write for the drivers into the arena (their pools) and
            // the devices' own pages, nowhere else.
            if !arena_fenced {
                arena_fenced = d.fence.allow(arena_base, m.arena_bytes());
            }
            d.fence.allow(base as u64, bytes);
            d.list[slot] = Some(Driver { service, done: false });
            Some(slot)
        });
        let Some(Some(slot)) = added else {
            println!("moat: ops: not on Xen, {} unavailable", kind);
            continue;
        };
        out[n] = DeviceMem { kind, region, event: EVENT_BASE + slot as u32 };
        println!(
            "moat: ops: {} for {} at {:#x}, {} pages; caps copy={} grant={} channels={}",
            kind,
            m.component(p.component as usize).name,
            base as usize,
            bytes / PAGE_SIZE as u64,
            caps.grant_copy,
            caps.grant_access,
            caps.event_channels
        );
        n += 1;
    }
    n
}

/// True if `event` is an ops device's.
pub fn is_ops(event: u32) -> bool {
    (EVENT_BASE..EVENT_BASE + MAX_DRIVERS as u32).contains(&event)
}

/// The component notified device `event`: carry out its batch.
pub fn run(event: u32) {
    let i = (event - EVENT_BASE) as usize;
    with(|d| {
        let Drivers { grants, fence, list } = d;
        if let Some(dr) = list.get_mut(i).and_then(Option::as_mut) {
            let mut hv = Hv { grants, fence };
            dr.done |= dr.service.run(&mut hv);
        }
    });
}

/// Finished batches, as their devices' events.
pub fn take_completions(sink: &mut dyn FnMut(u32)) {
    with(|d| {
        for (i, dr) in d.list.iter_mut().enumerate() {
            if let Some(dr) = dr.as_mut().filter(|dr| dr.done) {
                dr.done = false;
                sink(EVENT_BASE + i as u32);
            }
        }
    });
}

/// Xen signalled `port`: if an ops device's component holds it, its bit is
/// set and the device's event goes to `sink`. True if it was one.
pub fn route(port: u32, sink: &mut dyn FnMut(u32)) -> bool {
    with(|d| {
        for (i, dr) in d.list.iter_mut().enumerate() {
            if let Some(dr) = dr.as_mut()
                && dr.service.event(port)
            {
                sink(EVENT_BASE + i as u32);
                return true;
            }
        }
        false
    })
    .unwrap_or(false)
}

/// True if a batch is done and not yet delivered (do not sleep).
pub fn pending() -> bool {
    with(|d| d.list.iter().flatten().any(|dr| dr.done)).unwrap_or(false)
}

/// Adds the ports the drivers hold to `ports` (for `SCHEDOP_poll`);
/// returns the new length.
pub fn poll_ports(ports: &mut [u32; MAX_POLL], mut n: usize) -> usize {
    with(|d| {
        for p in d.list.iter().flatten().flat_map(|dr| dr.service.ports()) {
            if n < MAX_POLL {
                ports[n] = p;
                n += 1;
            }
        }
        n
    })
    .unwrap_or(n)
}

/// Counters of every device, for the status report.
pub fn report() {
    let _ = with(|d| {
        println!(
            "moat: ops: grant references in use {}; ops fenced off {}",
            d.grants.count(),
            d.fence.refused()
        );
        for (i, dr) in d.list.iter().enumerate() {
            if let Some(dr) = dr {
                let c = dr.service.counts();
                println!(
                    "moat: ops: device {} batches={} ops={} denied={} channels={} grants={} maps={}",
                    i, c.batches, c.ops, c.denied, c.channels, c.grants, c.maps
                );
            }
        }
    });
}

