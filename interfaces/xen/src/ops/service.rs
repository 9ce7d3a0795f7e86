//! The runtime's side of an ops device: every op a component asks for is
//! copied out of its page once, checked against what the component may do,
//! and only then handed to the [`Hypervisor`] (real hypercalls in the PVH
//! image, a fake grant table in host tests).
//!
//! What is checked:
//!
//! * **Capabilities** ([`Caps`]): copies and mappings need `grant_copy`;
//!   granting needs `grant_access`; event channels count against
//!   `event_channels`.
//! * **Memory**: the local side of a copy lies inside one page of a *space*
//!   the component maps — its own device pages, or a pool it has a port for
//!   ([`Space`]) — and a copy *into* it needs a space mapped writable.
//!   Grants are of the device's own pages only (a pool page holds other
//!   packets the other domain must not see), one grant per page; mappings go
//!   into the device's window slots only, one per slot.
//! * **Ownership**: a component can close, signal, end or unmap only
//!   channels, grants and mappings it made itself, named by the handle, grant
//!   or slot it got back.
//! * **The other domain**: never `DOMID_SELF` or another reserved id.
//!
//! A refused op gets [`status::DENIED`] (or `NO_SPACE`) and is counted; it
//! never reaches Xen.

use core::sync::atomic::Ordering;

use moat_ring::Region;
use zerocopy::{FromBytes, IntoBytes};

use super::{
    DEVICE_SPACE, EVENT_WORDS, Geometry, MAGIC, MAX_HANDLES, MAX_LOCAL_PAGES, MAX_OPS, MAX_WINDOW_PAGES, OPS_OFFSET,
    Op, VERSION, flag, header, kind, status,
};
use crate::hypercall::DOMID_FIRST_RESERVED;
use crate::{DomId, EvtchnPort, GrantRef, PAGE_SIZE};

/// What a component may do beyond its ports (its `[component.NAME.caps]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Copy to and from other domains' grants, and map their ring pages.
    pub grant_copy: bool,
    /// Grant its own device pages to another domain.
    pub grant_access: bool,
    /// Most event channels it may hold at once.
    pub event_channels: u16,
}

/// Memory the component may name as the local side of a copy: a pool it
/// has a port for. `base` is the platform's address of its first byte (a
/// guest physical address in the PVH image); the service only adds offsets
/// to it after checking them against `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Pool id ([`DEVICE_SPACE`] is the device's own pages and is added by
    /// the service itself).
    pub id: u16,
    /// Platform address of the first byte.
    pub base: u64,
    /// Bytes.
    pub len: u64,
    /// Whether the component maps it writable.
    pub writable: bool,
}

/// Spaces one component may have (its pools).
pub const MAX_SPACES: usize = 8;

/// A checked copy, ready for `GNTTABOP_copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyOp {
    /// From local to foreign.
    pub to_foreign: bool,
    /// The other domain.
    pub domid: DomId,
    /// Its grant.
    pub gref: GrantRef,
    /// Offset in its page.
    pub foreign_offset: u16,
    /// Platform address of the local side (inside one page).
    pub local: u64,
    /// Bytes.
    pub len: u16,
    /// Out: a `GNTST_*` code.
    pub status: i16,
}

/// The platform's hypercalls, for checked requests only.
pub trait Hypervisor {
    /// `GNTTABOP_copy` over `ops`, filling in each status.
    fn copy(&mut self, ops: &mut [CopyOp]);
    /// `GNTTABOP_map_grant_ref` of `domid`'s `gref` at local address `at`;
    /// the mapping's handle.
    fn map(&mut self, domid: DomId, gref: GrantRef, at: u64, readonly: bool) -> Result<u32, i16>;
    /// `GNTTABOP_unmap_grant_ref`.
    fn unmap(&mut self, at: u64, handle: u32) -> Result<(), i16>;
    /// Grants the page at `at` to `domid`.
    fn grant(&mut self, domid: DomId, at: u64, readonly: bool) -> Result<GrantRef, i16>;
    /// Ends a grant made by [`grant`](Self::grant); [`status::BUSY`] while it
    /// is in use.
    fn end_grant(&mut self, gref: GrantRef) -> Result<(), i16>;
    /// `EVTCHNOP_alloc_unbound`.
    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, i16>;
    /// `EVTCHNOP_bind_interdomain`.
    fn bind_interdomain(&mut self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, i16>;
    /// `EVTCHNOP_close`.
    fn close(&mut self, port: EvtchnPort);
    /// `EVTCHNOP_send`.
    fn send(&mut self, port: EvtchnPort);
}

/// Counters, for the runtime's status output and the drivers' leak checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Batches carried out.
    pub batches: u64,
    /// Ops carried out (whatever their status).
    pub ops: u64,
    /// Ops refused.
    pub denied: u64,
    /// Event channels held now.
    pub channels: u32,
    /// Grants held now.
    pub grants: u32,
    /// Window slots mapped now.
    pub maps: u32,
}

/// Copies batched into one hypercall.
const COPY_CHUNK: usize = 32;

/// One component's ops device, as the runtime serves it.
pub struct Service {
    region: Region,
    base: u64,
    geo: Geometry,
    caps: Caps,
    spaces: [Option<Space>; MAX_SPACES],
    /// Handle → Xen port.
    handles: [Option<EvtchnPort>; MAX_HANDLES],
    /// Local page → grant.
    grants: [Option<GrantRef>; MAX_LOCAL_PAGES],
    /// Window slot → mapping handle.
    maps: [Option<u32>; MAX_WINDOW_PAGES],
    done: u32,
    counts: Counts,
}

/// Why a service could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The region is smaller than the geometry.
    Region,
    /// The geometry is bigger than the service's tables.
    Geometry,
    /// More spaces than [`MAX_SPACES`], or one named [`DEVICE_SPACE`].
    Spaces,
}

fn foreign(domid: DomId) -> bool {
    domid < DOMID_FIRST_RESERVED
}

impl Service {
    /// Serves the device in `region` (at platform address `base`) for a
    /// component with `caps` that maps `spaces`. Writes the header the
    /// component's side checks when it attaches.
    pub fn new(region: Region, base: u64, geo: Geometry, caps: Caps, spaces: &[Space]) -> Result<Self, SetupError> {
        if region.len() < geo.bytes() || !region.writable() {
            return Err(SetupError::Region);
        }
        if geo.local_pages as usize > MAX_LOCAL_PAGES || geo.window_pages as usize > MAX_WINDOW_PAGES {
            return Err(SetupError::Geometry);
        }
        if spaces.len() > MAX_SPACES || spaces.iter().any(|s| s.id == DEVICE_SPACE) {
            return Err(SetupError::Spaces);
        }
        let mut table = [None; MAX_SPACES];
        for (t, s) in table.iter_mut().zip(spaces) {
            *t = Some(*s);
        }
        let s = Service {
            region,
            base,
            geo,
            caps,
            spaces: table,
            handles: [None; MAX_HANDLES],
            grants: [None; MAX_LOCAL_PAGES],
            maps: [None; MAX_WINDOW_PAGES],
            done: 0,
            counts: Counts::default(),
        };
        let put = |off: usize, v: u32| s.word(off).store(v, Ordering::Relaxed);
        put(header::VERSION, VERSION);
        put(header::LOCAL_PAGES, geo.local_pages);
        put(header::WINDOW_PAGES, geo.window_pages);
        put(header::MAX_OPS, MAX_OPS as u32);
        put(header::COUNT, 0);
        put(header::SUBMIT, 0);
        put(header::DENIED, 0);
        for i in 0..EVENT_WORDS {
            put(header::EVENTS + 4 * i, 0);
        }
        s.word(header::DONE).store(0, Ordering::Relaxed);
        s.word(header::MAGIC).store(MAGIC, Ordering::Release);
        Ok(s)
    }

    fn word(&self, off: usize) -> &core::sync::atomic::AtomicU32 {
        // Header offsets are constants inside the first page; new() checked
        // the region covers the geometry (at least two pages).
        self.region.atomic_u32(off).expect("header inside the region")
    }

    /// Counters.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The Xen ports the component holds (to poll and route events).
    pub fn ports(&self) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.handles.iter().flatten().copied()
    }

    /// Carries out a submitted batch, if there is one. True if one was done
    /// (signal the component).
    pub fn run(&mut self, hv: &mut dyn Hypervisor) -> bool {
        let submit = self.word(header::SUBMIT).load(Ordering::Acquire);
        if submit == self.done {
            return false;
        }
        let count = (self.word(header::COUNT).load(Ordering::Relaxed) as usize).min(MAX_OPS);
        let mut chunk = [CopyOp::default(); COPY_CHUNK];
        let mut slots = [0usize; COPY_CHUNK];
        let mut n = 0;
        for i in 0..count {
            let mut op = self.read_op(i);
            if op.kind == kind::COPY {
                match self.check_copy(&op) {
                    Ok(c) => {
                        chunk[n] = c;
                        slots[n] = i;
                        n += 1;
                        if n == COPY_CHUNK {
                            self.flush(hv, &mut chunk[..n], &slots[..n]);
                            n = 0;
                        }
                    }
                    Err(st) => {
                        op.status = st;
                        self.write_op(i, &op);
                    }
                }
                continue;
            }
            // Everything before this op happens first.
            self.flush(hv, &mut chunk[..n], &slots[..n]);
            n = 0;
            op.status = self.other(hv, &mut op);
            self.write_op(i, &op);
        }
        self.flush(hv, &mut chunk[..n], &slots[..n]);
        self.counts.batches += 1;
        self.counts.ops += count as u64;
        self.word(header::DENIED).store(self.counts.denied as u32, Ordering::Relaxed);
        self.done = submit;
        self.word(header::DONE).store(submit, Ordering::Release);
        true
    }

    /// Xen signalled `port`. True if it is one of this component's: its
    /// handle's bit is set (signal the component).
    pub fn event(&mut self, port: EvtchnPort) -> bool {
        let Some(h) = self.handles.iter().position(|p| *p == Some(port)) else { return false };
        self.word(header::EVENTS + 4 * (h / 32)).fetch_or(1 << (h % 32), Ordering::AcqRel);
        true
    }

    fn read_op(&self, i: usize) -> Op {
        let mut raw = [0u8; core::mem::size_of::<Op>()];
        // i < MAX_OPS: the slot lies inside the control pages.
        self.region.read_volatile(OPS_OFFSET + i * raw.len(), &mut raw).expect("op slot inside the region");
        Op::read_from_bytes(&raw).unwrap_or(Op::ZERO)
    }

    fn write_op(&self, i: usize, op: &Op) {
        let at = OPS_OFFSET + i * core::mem::size_of::<Op>();
        self.region.write_volatile(at, op.as_bytes()).expect("op slot inside the region");
    }

    fn flush(&mut self, hv: &mut dyn Hypervisor, chunk: &mut [CopyOp], slots: &[usize]) {
        if chunk.is_empty() {
            return;
        }
        hv.copy(chunk);
        for (c, &i) in chunk.iter().zip(slots) {
            let mut op = self.read_op(i);
            op.status = c.status;
            self.write_op(i, &op);
        }
    }

    fn deny(&mut self, st: i16) -> i16 {
        self.counts.denied += 1;
        st
    }

    /// The local side of a copy, checked.
    fn check_copy(&mut self, op: &Op) -> Result<CopyOp, i16> {
        let denied = status::DENIED;
        let len = u64::from(op.len);
        let to_foreign = op.flags & flag::TO_FOREIGN != 0;
        let ok_shape = self.caps.grant_copy
            && op.flags & !flag::TO_FOREIGN == 0
            && (1..=PAGE_SIZE as u64).contains(&len)
            && u64::from(op.foreign_offset) + len <= PAGE_SIZE as u64
            && foreign(op.domid);
        if !ok_shape {
            return Err(self.deny(denied));
        }
        let space = if op.space == DEVICE_SPACE {
            Space {
                id: DEVICE_SPACE,
                base: self.base + self.geo.local_offset(0) as u64,
                len: u64::from(self.geo.local_pages) * PAGE_SIZE as u64,
                writable: true,
            }
        } else {
            match self.spaces.iter().flatten().find(|s| s.id == op.space) {
                Some(s) => *s,
                None => return Err(self.deny(denied)),
            }
        };
        let off = u64::from(op.local_offset);
        let inside = off + len <= space.len;
        let at = space.base + off;
        let one_page = at % PAGE_SIZE as u64 + len <= PAGE_SIZE as u64;
        if !inside || !one_page || (!to_foreign && !space.writable) {
            return Err(self.deny(denied));
        }
        Ok(CopyOp {
            to_foreign,
            domid: op.domid,
            gref: op.gref,
            foreign_offset: op.foreign_offset,
            local: at,
            len: op.len,
            status: 0,
        })
    }

    /// Every op but copies; returns its status (outputs go into `op`).
    fn other(&mut self, hv: &mut dyn Hypervisor, op: &mut Op) -> i16 {
        let denied = status::DENIED;
        match op.kind {
            kind::NOP => status::OKAY,
            kind::MAP => {
                let slot = op.local_offset as usize;
                let ok = self.caps.grant_copy
                    && slot < self.geo.window_pages as usize
                    && self.maps[slot].is_none()
                    && foreign(op.domid)
                    && op.flags & !flag::READONLY == 0;
                if !ok {
                    return self.deny(denied);
                }
                let at = self.base + self.geo.window_offset(slot as u32) as u64;
                match hv.map(op.domid, op.gref, at, op.flags & flag::READONLY != 0) {
                    Ok(h) => {
                        self.maps[slot] = Some(h);
                        self.counts.maps += 1;
                        status::OKAY
                    }
                    Err(e) => e,
                }
            }
            kind::UNMAP => {
                let slot = op.local_offset as usize;
                let Some(h) = self.maps.get(slot).copied().flatten() else { return self.deny(denied) };
                let at = self.base + self.geo.window_offset(slot as u32) as u64;
                match hv.unmap(at, h) {
                    Ok(()) => {
                        self.maps[slot] = None;
                        self.counts.maps -= 1;
                        status::OKAY
                    }
                    Err(e) => e,
                }
            }
            kind::GRANT => {
                let page = op.local_offset as usize;
                let ok = self.caps.grant_access
                    && page < self.geo.local_pages as usize
                    && self.grants[page].is_none()
                    && foreign(op.domid)
                    && op.flags & !flag::READONLY == 0;
                if !ok {
                    return self.deny(denied);
                }
                let at = self.base + self.geo.local_offset(page as u32) as u64;
                match hv.grant(op.domid, at, op.flags & flag::READONLY != 0) {
                    Ok(g) => {
                        self.grants[page] = Some(g);
                        self.counts.grants += 1;
                        op.gref = g;
                        status::OKAY
                    }
                    Err(e) => e,
                }
            }
            kind::END_GRANT => {
                let Some(page) = self.grants.iter().position(|g| *g == Some(op.gref)) else {
                    return self.deny(denied);
                };
                match hv.end_grant(op.gref) {
                    Ok(()) => {
                        self.grants[page] = None;
                        self.counts.grants -= 1;
                        status::OKAY
                    }
                    Err(e) => e,
                }
            }
            kind::ALLOC_UNBOUND | kind::BIND => {
                if !foreign(op.domid) {
                    return self.deny(denied);
                }
                let limit = usize::from(self.caps.event_channels).min(MAX_HANDLES);
                let held = self.handles.iter().flatten().count();
                let free = self.handles[..limit].iter().position(Option::is_none);
                let Some(h) = free.filter(|_| held < limit) else { return self.deny(status::NO_SPACE) };
                let made = if op.kind == kind::BIND {
                    hv.bind_interdomain(op.domid, op.port)
                } else {
                    hv.alloc_unbound(op.domid)
                };
                match made {
                    Ok(port) => {
                        self.handles[h] = Some(port);
                        self.counts.channels += 1;
                        op.handle = h as u16;
                        op.port = port;
                        status::OKAY
                    }
                    Err(e) => e,
                }
            }
            kind::CLOSE | kind::SEND => {
                let h = usize::from(op.handle);
                let Some(port) = self.handles.get(h).copied().flatten() else { return self.deny(denied) };
                if op.kind == kind::SEND {
                    hv.send(port);
                } else {
                    hv.close(port);
                    self.handles[h] = None;
                    self.counts.channels -= 1;
                    // A late event for the closed port must not reach a
                    // handle reused later.
                    self.word(header::EVENTS + 4 * (h / 32)).fetch_and(!(1 << (h % 32)), Ordering::AcqRel);
                }
                status::OKAY
            }
            _ => self.deny(status::INVALID),
        }
    }

    /// Ends everything the component holds (after it stopped for good):
    /// closes its channels, unmaps its window, ends its grants. Returns how
    /// many grants are still in use by the other side (call again later).
    pub fn release_all(&mut self, hv: &mut dyn Hypervisor) -> usize {
        for h in 0..MAX_HANDLES {
            if let Some(port) = self.handles[h].take() {
                hv.close(port);
                self.counts.channels -= 1;
            }
        }
        for slot in 0..MAX_WINDOW_PAGES {
            if let Some(h) = self.maps[slot] {
                let at = self.base + self.geo.window_offset(slot as u32) as u64;
                if hv.unmap(at, h).is_ok() {
                    self.maps[slot] = None;
                    self.counts.maps -= 1;
                }
            }
        }
        for page in 0..MAX_LOCAL_PAGES {
            if let Some(g) = self.grants[page]
                && hv.end_grant(g).is_ok()
            {
                self.grants[page] = None;
                self.counts.grants -= 1;
            }
        }
        self.counts.grants as usize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::vec::Vec;

    use super::super::{Backend, Frontend, Role, XenOps};
    use super::*;

    /// A hypervisor that records what it was asked.
    #[derive(Default)]
    pub struct FakeHv {
        pub copies: Vec<CopyOp>,
        pub sent: Vec<u32>,
        pub closed: Vec<u32>,
        pub granted: Vec<(DomId, u64, bool)>,
        pub busy: bool,
        pub next_port: u32,
    }

    impl Hypervisor for FakeHv {
        fn copy(&mut self, ops: &mut [CopyOp]) {
            for o in ops.iter_mut() {
                o.status = if o.gref == 666 { crate::grant::status::BAD_GNTREF } else { 0 };
                self.copies.push(*o);
            }
        }
        fn map(&mut self, _: DomId, gref: GrantRef, _: u64, _: bool) -> Result<u32, i16> {
            if gref == 666 { Err(crate::grant::status::BAD_GNTREF) } else { Ok(gref + 1000) }
        }
        fn unmap(&mut self, _: u64, _: u32) -> Result<(), i16> {
            Ok(())
        }
        fn grant(&mut self, domid: DomId, at: u64, ro: bool) -> Result<GrantRef, i16> {
            self.granted.push((domid, at, ro));
            Ok(7 + self.granted.len() as u32)
        }
        fn end_grant(&mut self, _: GrantRef) -> Result<(), i16> {
            if self.busy { Err(status::BUSY) } else { Ok(()) }
        }
        fn alloc_unbound(&mut self, _: DomId) -> Result<EvtchnPort, i16> {
            self.next_port += 1;
            Ok(99 + self.next_port)
        }
        fn bind_interdomain(&mut self, _: DomId, port: EvtchnPort) -> Result<EvtchnPort, i16> {
            Ok(port + 500)
        }
        fn close(&mut self, port: EvtchnPort) {
            self.closed.push(port);
        }
        fn send(&mut self, port: EvtchnPort) {
            self.sent.push(port);
        }
    }

    pub fn service_for<R: Role>(region: Region, caps: Caps) -> Service {
        let pools = [
            Space { id: 1, base: 0x100_0000, len: 8192, writable: true },
            Space { id: 2, base: 0x200_0000, len: 8192, writable: false },
        ];
        Service::new(region, 0x4000_0000, R::GEOMETRY, caps, &pools).unwrap()
    }

    fn one(dev: &mut XenOps<Backend>, svc: &mut Service, hv: &mut FakeHv, op: Op) -> Op {
        dev.push(op).unwrap();
        assert!(dev.submit());
        assert!(svc.run(hv));
        dev.poll().unwrap();
        let r = dev.result(0).unwrap();
        dev.finish();
        r
    }

    const ALL: Caps = Caps { grant_copy: true, grant_access: true, event_channels: 2 };

    #[test]
    fn copies_stay_inside_the_components_memory() {
        let region = Region::alloc_zeroed(Backend::GEOMETRY.bytes());
        let mut svc = service_for::<Backend>(region, ALL);
        let mut dev = XenOps::<Backend>::new(region).unwrap();
        let mut hv = FakeHv::default();
        let local0 = 0x4000_0000 + 2 * 4096;
        // Into a writable pool, and out of a read-only one.
        assert!(one(&mut dev, &mut svc, &mut hv, Op::copy_in(3, 5, 100, 1, 4096 + 50, 1500)).ok());
        assert!(one(&mut dev, &mut svc, &mut hv, Op::copy_out(3, 5, 0, 2, 2048, 2048)).ok());
        assert!(one(&mut dev, &mut svc, &mut hv, Op::copy_out(3, 5, 0, 0, 4096 * 63, 4096)).ok());
        assert_eq!(hv.copies[0].local, 0x100_0000 + 4096 + 50);
        assert!(!hv.copies[0].to_foreign && hv.copies[1].to_foreign);
        assert_eq!(hv.copies[2].local, local0 + 4096 * 63);
        let denied = [
            Op::copy_in(3, 5, 0, 2, 0, 64),                       // into a read-only pool
            Op::copy_in(3, 5, 0, 1, 8192 - 10, 64),               // past the pool
            Op::copy_in(3, 5, 0, 1, 4096 - 10, 64),               // across a page
            Op::copy_in(3, 5, 4090, 1, 0, 64),                    // across the foreign page
            Op::copy_in(3, 5, 0, 1, 0, 0),                        // empty
            Op::copy_in(3, 5, 0, 1, 0, 4097),                     // too long
            Op::copy_in(3, 5, 0, 9, 0, 64),                       // no such space
            Op::copy_in(0x7ff0, 5, 0, 1, 0, 64),                  // DOMID_SELF
            Op::copy_in(3, 5, 0, 0, 4096 * 64, 64),               // past the device pages (into the window)
            Op { flags: 0x80, ..Op::copy_in(3, 5, 0, 1, 0, 64) }, // unknown flag
        ];
        for op in denied {
            assert_eq!(one(&mut dev, &mut svc, &mut hv, op).status, status::DENIED, "{op:?}");
        }
        assert_eq!(hv.copies.len(), 3, "nothing refused reached the hypervisor");
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::copy_in(3, 666, 0, 1, 0, 64)).status, -3, "Xen's own status");
        assert_eq!(svc.counts().denied, denied.len() as u64);
    }

    #[test]
    fn capabilities_gate_every_kind() {
        let region = Region::alloc_zeroed(Backend::GEOMETRY.bytes());
        let mut svc = service_for::<Backend>(region, Caps::default());
        let mut dev = XenOps::<Backend>::new(region).unwrap();
        let mut hv = FakeHv::default();
        for op in [Op::copy_in(3, 5, 0, 1, 0, 64), Op::map(3, 5, 0), Op::grant(3, 0, false)] {
            assert_eq!(one(&mut dev, &mut svc, &mut hv, op).status, status::DENIED, "{op:?}");
        }
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::alloc_unbound(3)).status, status::NO_SPACE);
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op { kind: 77, ..Op::ZERO }).status, status::INVALID);
        assert!(hv.copies.is_empty() && hv.granted.is_empty());
    }

    #[test]
    fn channels_grants_and_maps_are_owned_and_counted() {
        let region = Region::alloc_zeroed(Backend::GEOMETRY.bytes());
        let mut svc = service_for::<Backend>(region, ALL);
        let mut dev = XenOps::<Backend>::new(region).unwrap();
        let mut hv = FakeHv::default();
        let a = one(&mut dev, &mut svc, &mut hv, Op::bind(4, 12));
        assert!(a.ok() && a.port == 512 && a.handle == 0);
        let b = one(&mut dev, &mut svc, &mut hv, Op::alloc_unbound(4));
        assert!(b.ok() && b.handle == 1);
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::alloc_unbound(4)).status, status::NO_SPACE, "quota of 2");
        assert_eq!(svc.ports().collect::<Vec<_>>(), [512, 100]);
        assert!(one(&mut dev, &mut svc, &mut hv, Op::close(0)).ok());
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::close(0)).status, status::DENIED, "closed already");
        assert_eq!(hv.closed, [512]);
        assert!(!svc.event(512), "a closed port is nobody's");
        assert_eq!(svc.counts().channels, 1);

        // Grants: device pages only, one per page, ended by the grant.
        let g = one(&mut dev, &mut svc, &mut hv, Op::grant(4, 3, true));
        assert!(g.ok());
        assert_eq!(hv.granted, [(4, 0x4000_0000 + 5 * 4096, true)]);
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::grant(4, 3, false)).status, status::DENIED, "granted already");
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::grant(4, 64, false)).status, status::DENIED, "not a page");
        hv.busy = true;
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::end_grant(g.gref)).status, status::BUSY);
        hv.busy = false;
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::end_grant(g.gref + 1)).status, status::DENIED, "not ours");
        assert!(one(&mut dev, &mut svc, &mut hv, Op::end_grant(g.gref)).ok());
        assert_eq!(svc.counts().grants, 0);

        // Maps: window slots only, one per slot.
        assert!(one(&mut dev, &mut svc, &mut hv, Op::map(4, 20, 127)).ok());
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::map(4, 21, 127)).status, status::DENIED);
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::map(4, 21, 128)).status, status::DENIED);
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::map(4, 666, 1)).status, -3);
        assert_eq!(svc.counts().maps, 1);
        assert!(one(&mut dev, &mut svc, &mut hv, Op::unmap(127)).ok());
        assert_eq!(one(&mut dev, &mut svc, &mut hv, Op::unmap(127)).status, status::DENIED);
        assert_eq!(svc.counts().maps, 0);
        assert_eq!(svc.release_all(&mut hv), 0);
        assert_eq!(svc.counts().channels, 0);
    }

    #[test]
    fn a_hostile_count_is_clamped() {
        let region = Region::alloc_zeroed(Frontend::GEOMETRY.bytes());
        let mut svc = service_for::<Frontend>(region, ALL);
        let mut hv = FakeHv::default();
        region.atomic_u32(header::COUNT).unwrap().store(u32::MAX, Ordering::Relaxed);
        region.atomic_u32(header::SUBMIT).unwrap().store(1, Ordering::Release);
        assert!(svc.run(&mut hv));
        assert_eq!(svc.counts().ops, MAX_OPS as u64, "garbage slots are answered, never more than fit");
    }
}
