//! A simulated Xen for host tests of moat's drivers.
//!
//! [`Xen`] models what the drivers rely on: pages of simulated guest
//! domains, each domain's grant table, grant copy, grant mapping, and
//! interdomain event channels. moat's side reaches it through
//! [`MoatHv`], an implementation of `moat_xen::ops::Hypervisor` — the same
//! trait the PVH image implements with hypercalls — so host tests run the
//! runtime's real checking code ([`moat_xen::ops::Service`]) between the
//! component and the simulated hypervisor. The peers ([`front::LinuxFront`],
//! [`back::LinuxBack`]) are written from the protocol (`io/ring.h`,
//! `io/netif.h`) independently of moat's own ring code.
//!
//! What it models, and how it differs from Xen:
//!
//! * Grants: a domain grants a page to one other domain, read-only or not;
//!   copies and maps check the grant is for the domain asking and allows
//!   the access; a grant in use by a mapping cannot be ended (as Xen's
//!   `GTF_reading`/`GTF_writing`). Grant references are small integers per
//!   domain from 8 up (0–7 are reserved in Xen too).
//! * Mapping: Xen maps the granting domain's frame at the mapper's address.
//!   Here pages are separate host allocations, so a mapping *moves* the page:
//!   its contents are copied into moat's window slot and, until unmapped,
//!   the owner reaches the page there ([`Xen::page`]). Everything is single
//!   threaded, so both sides see one page at a time, as with a real mapping.
//! * Copies honour the per-op rules `GNTTABOP_copy` checks (page bounds,
//!   permission, the grant being for the caller), with the same statuses.
//! * Event channels: `alloc_unbound`, `bind_interdomain`, `send`, `close`,
//!   a pending bit per port; closing one end makes the other unbound, as
//!   Xen does. No masking, no vCPU binding.
//! * Addresses: moat's memory (its ops device regions and pools) is
//!   registered with [`Xen::add_space`], which returns the base address the
//!   runtime's service uses; [`MoatHv`] turns addresses back into memory.

pub mod back;
pub mod front;

use std::collections::HashMap;

use moat_ring::{PacketDesc, Pool, Region};
use moat_xen::grant::status as gntst;
use moat_xen::ops::service::CopyOp;
use moat_xen::ops::{Hypervisor, status};
use moat_xen::{DomId, EvtchnPort, GrantRef, PAGE_SIZE};

/// A page of a simulated guest.
pub type PageId = usize;

/// `-EINVAL`, as event channel hypercalls fail.
pub const EINVAL: i16 = -22;

/// Memory moat registered, reached by address.
#[allow(clippy::len_without_is_empty)]
pub enum Mem {
    /// A region (an ops device).
    Region(Region),
    /// A packet pool (the test's writable view).
    Pool(Pool),
}

impl Mem {
    /// Bytes.
    pub fn len(&self) -> usize {
        match self {
            Mem::Region(r) => r.len(),
            Mem::Pool(p) => p.geometry().region_size(),
        }
    }

    /// Copies `out.len()` bytes at `off` out.
    pub fn read(&self, off: usize, out: &mut [u8]) {
        match self {
            Mem::Region(r) => r.read_volatile(off, out).expect("inside the region"),
            Mem::Pool(p) => {
                let (buf, within) = pool_buffer(p, off);
                out.copy_from_slice(&p.packet(&buf).expect("a buffer")[within..within + out.len()]);
            }
        }
    }

    /// Writes `data` at `off`.
    pub fn write(&mut self, off: usize, data: &[u8]) {
        match self {
            Mem::Region(r) => r.write_volatile(off, data).expect("inside the region"),
            Mem::Pool(p) => {
                let (buf, within) = pool_buffer(p, off);
                p.packet_mut(&buf).expect("a buffer")[within..within + data.len()].copy_from_slice(data);
            }
        }
    }
}

fn pool_buffer(p: &Pool, off: usize) -> (PacketDesc, usize) {
    let size = p.geometry().buf_size() as usize;
    (p.geometry().whole((off / size) as u32), off % size)
}

/// Where a granted frame lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A simulated guest's page.
    Guest(PageId),
    /// moat's memory at this address.
    Moat(u64),
}

#[derive(Clone, Copy, Debug)]
struct Grant {
    frame: Frame,
    to: DomId,
    readonly: bool,
    maps: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortState {
    Unbound(DomId),
    Bound(DomId, EvtchnPort),
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct Port {
    state: PortState,
    pending: bool,
}

struct Page {
    owner: DomId,
    home: Region,
    mapped_at: Option<u64>,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Copy ops carried out (successful ones).
    pub copies: u64,
    /// Bytes they moved.
    pub copy_bytes: u64,
    /// Copy ops that failed.
    pub copy_failures: u64,
    /// Maps done.
    pub maps: u64,
    /// Unmaps done.
    pub unmaps: u64,
    /// Notifications sent.
    pub sends: u64,
}

/// The simulated hypervisor.
pub struct Xen {
    /// The domain the runtime's service acts for (moat).
    pub moat: DomId,
    pages: Vec<Page>,
    spaces: Vec<(u64, Mem)>,
    grants: HashMap<(DomId, GrantRef), Grant>,
    next_gref: HashMap<DomId, GrantRef>,
    ports: HashMap<(DomId, EvtchnPort), Port>,
    next_port: HashMap<DomId, EvtchnPort>,
    maps: HashMap<u64, (DomId, GrantRef, PageId)>,
    next_handle: u32,
    /// Counters.
    pub stats: Stats,
}

/// Bases handed out for moat's spaces are this far apart.
const SPACE_STRIDE: u64 = 1 << 32;

impl Xen {
    /// A hypervisor with moat as domain `moat`.
    pub fn new(moat: DomId) -> Self {
        Xen {
            moat,
            pages: Vec::new(),
            spaces: Vec::new(),
            grants: HashMap::new(),
            next_gref: HashMap::new(),
            ports: HashMap::new(),
            next_port: HashMap::new(),
            maps: HashMap::new(),
            next_handle: 1,
            stats: Stats::default(),
        }
    }

    /// Registers moat memory; returns its base address.
    pub fn add_space(&mut self, mem: Mem) -> u64 {
        let base = (self.spaces.len() as u64 + 1) * SPACE_STRIDE;
        self.spaces.push((base, mem));
        base
    }

    /// moat memory registered at `base` (for tests to read and fill
    /// buffers).
    pub fn mem(&mut self, base: u64) -> &mut Mem {
        &mut self.spaces.iter_mut().find(|(b, _)| *b == base).expect("a registered space").1
    }

    fn space(&mut self, at: u64) -> Option<(&mut Mem, usize)> {
        let (base, mem) = self.spaces.iter_mut().find(|(b, m)| at >= *b && at < *b + m.len() as u64)?;
        let off = (at - *base) as usize;
        Some((mem, off))
    }

    /// A fresh zeroed page for domain `dom`.
    pub fn alloc_page(&mut self, dom: DomId) -> PageId {
        self.pages.push(Page { owner: dom, home: Region::alloc_zeroed(PAGE_SIZE), mapped_at: None });
        self.pages.len() - 1
    }

    /// Where page `p` is now (its home, or moat's window slot while mapped).
    pub fn page(&mut self, p: PageId) -> Region {
        let page = &self.pages[p];
        match page.mapped_at {
            None => page.home,
            Some(at) => match self.space(at) {
                Some((Mem::Region(r), off)) => r.carve(off, PAGE_SIZE).expect("window slot"),
                _ => panic!("mapped page lost its window"),
            },
        }
    }

    /// Copies `out.len()` bytes of page `p` at `off`.
    pub fn read_page(&mut self, p: PageId, off: usize, out: &mut [u8]) {
        self.page(p).read_volatile(off, out).expect("inside the page");
    }

    /// Writes `data` into page `p` at `off`.
    pub fn write_page(&mut self, p: PageId, off: usize, data: &[u8]) {
        self.page(p).write_volatile(off, data).expect("inside the page");
    }

    /// Domain `dom` grants its page `p` to `to`.
    pub fn grant(&mut self, dom: DomId, p: PageId, to: DomId, readonly: bool) -> GrantRef {
        assert_eq!(self.pages[p].owner, dom, "granting another domain's page");
        self.grant_frame(dom, Frame::Guest(p), to, readonly)
    }

    fn grant_frame(&mut self, dom: DomId, frame: Frame, to: DomId, readonly: bool) -> GrantRef {
        let next = self.next_gref.entry(dom).or_insert(8);
        let g = *next;
        *next += 1;
        self.grants.insert((dom, g), Grant { frame, to, readonly, maps: 0 });
        g
    }

    /// Domain `dom` ends its grant; false (and the grant stays) while it is
    /// mapped.
    pub fn end_grant(&mut self, dom: DomId, gref: GrantRef) -> bool {
        match self.grants.get(&(dom, gref)) {
            Some(g) if g.maps > 0 => false,
            Some(_) => {
                self.grants.remove(&(dom, gref));
                true
            }
            None => true,
        }
    }

    /// Grants `dom` holds.
    pub fn grants_of(&self, dom: DomId) -> usize {
        self.grants.keys().filter(|(d, _)| *d == dom).count()
    }

    /// The frame behind `granter`'s grant `gref`, if it is for `to` and
    /// allows `write` access.
    fn resolve(&self, granter: DomId, gref: GrantRef, to: DomId, write: bool) -> Result<Frame, i16> {
        let g = self.grants.get(&(granter, gref)).ok_or(gntst::BAD_GNTREF)?;
        if g.to != to {
            return Err(gntst::PERMISSION_DENIED);
        }
        if write && g.readonly {
            return Err(gntst::PERMISSION_DENIED);
        }
        Ok(g.frame)
    }

    fn frame_read(&mut self, f: Frame, off: usize, out: &mut [u8]) {
        match f {
            Frame::Guest(p) => self.read_page(p, off, out),
            Frame::Moat(at) => {
                let (mem, base) = self.space(at).expect("moat frame");
                mem.read(base + off, out);
            }
        }
    }

    fn frame_write(&mut self, f: Frame, off: usize, data: &[u8]) {
        match f {
            Frame::Guest(p) => self.write_page(p, off, data),
            Frame::Moat(at) => {
                let (mem, base) = self.space(at).expect("moat frame");
                mem.write(base + off, data);
            }
        }
    }

    /// A grant copy done by `dom` (any domain): `foreign` is another
    /// domain's grant to `dom`, `local` the caller's frame.
    #[allow(clippy::too_many_arguments)]
    pub fn copy(
        &mut self,
        dom: DomId,
        to_foreign: bool,
        granter: DomId,
        gref: GrantRef,
        foreign_offset: u16,
        local: Frame,
        local_offset: usize,
        len: u16,
    ) -> i16 {
        let len = usize::from(len);
        if usize::from(foreign_offset) + len > PAGE_SIZE || local_offset % PAGE_SIZE + len > PAGE_SIZE {
            self.stats.copy_failures += 1;
            return gntst::BAD_COPY_ARG;
        }
        let frame = match self.resolve(granter, gref, dom, to_foreign) {
            Ok(f) => f,
            Err(e) => {
                self.stats.copy_failures += 1;
                return e;
            }
        };
        let mut buf = vec![0u8; len];
        if to_foreign {
            self.frame_read(local, local_offset, &mut buf);
            self.frame_write(frame, usize::from(foreign_offset), &buf);
        } else {
            self.frame_read(frame, usize::from(foreign_offset), &mut buf);
            self.frame_write(local, local_offset, &buf);
        }
        self.stats.copies += 1;
        self.stats.copy_bytes += len as u64;
        gntst::OKAY
    }

    /// `dom` maps `granter`'s grant of one of moat's frames and gets the
    /// page (a simulated backend mapping netfront's ring).
    pub fn map_moat_frame(&mut self, dom: DomId, granter: DomId, gref: GrantRef) -> Result<Region, i16> {
        match self.resolve(granter, gref, dom, true)? {
            Frame::Moat(at) => {
                self.grants.get_mut(&(granter, gref)).expect("resolved").maps += 1;
                match self.space(at) {
                    Some((Mem::Region(r), off)) => Ok(r.carve(off, PAGE_SIZE).expect("a page")),
                    _ => Err(gntst::BAD_PAGE),
                }
            }
            Frame::Guest(_) => Err(gntst::BAD_PAGE),
        }
    }

    /// Undoes [`map_moat_frame`](Self::map_moat_frame).
    pub fn unmap_moat_frame(&mut self, granter: DomId, gref: GrantRef) {
        if let Some(g) = self.grants.get_mut(&(granter, gref)) {
            g.maps = g.maps.saturating_sub(1);
        }
    }

    /// Pages of moat's currently mapped by moat (leak check).
    pub fn moat_maps(&self) -> usize {
        self.maps.len()
    }

    // --- event channels -------------------------------------------------

    fn new_port(&mut self, dom: DomId, state: PortState) -> EvtchnPort {
        let next = self.next_port.entry(dom).or_insert(1);
        let p = *next;
        *next += 1;
        self.ports.insert((dom, p), Port { state, pending: false });
        p
    }

    /// `EVTCHNOP_alloc_unbound` for `dom`.
    pub fn alloc_unbound(&mut self, dom: DomId, remote: DomId) -> EvtchnPort {
        self.new_port(dom, PortState::Unbound(remote))
    }

    /// `EVTCHNOP_bind_interdomain` for `dom`.
    pub fn bind(&mut self, dom: DomId, remote: DomId, rport: EvtchnPort) -> Result<EvtchnPort, i16> {
        match self.ports.get(&(remote, rport)) {
            Some(p) if p.state == PortState::Unbound(dom) => {}
            _ => return Err(EINVAL),
        }
        let local = self.new_port(dom, PortState::Bound(remote, rport));
        self.ports.get_mut(&(remote, rport)).expect("checked").state = PortState::Bound(dom, local);
        Ok(local)
    }

    /// `EVTCHNOP_send` from `dom`.
    pub fn send(&mut self, dom: DomId, port: EvtchnPort) {
        self.stats.sends += 1;
        if let Some(Port { state: PortState::Bound(rd, rp), .. }) = self.ports.get(&(dom, port)).copied()
            && let Some(peer) = self.ports.get_mut(&(rd, rp))
        {
            peer.pending = true;
        }
    }

    /// `EVTCHNOP_close` from `dom`.
    pub fn close(&mut self, dom: DomId, port: EvtchnPort) {
        if let Some(p) = self.ports.get_mut(&(dom, port)) {
            let old = p.state;
            p.state = PortState::Closed;
            if let PortState::Bound(rd, rp) = old
                && let Some(peer) = self.ports.get_mut(&(rd, rp))
            {
                peer.state = PortState::Unbound(dom);
            }
        }
        self.ports.remove(&(dom, port));
    }

    /// Takes `dom`'s pending ports.
    pub fn take_pending(&mut self, dom: DomId) -> Vec<EvtchnPort> {
        let mut out: Vec<EvtchnPort> = self
            .ports
            .iter_mut()
            .filter(|((d, _), p)| *d == dom && p.pending)
            .map(|((_, port), p)| {
                p.pending = false;
                *port
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Ports `dom` holds open (leak check).
    pub fn ports_of(&self, dom: DomId) -> usize {
        self.ports.keys().filter(|(d, _)| *d == dom).count()
    }

    /// Whether `dom`'s `port` is bound to the other end.
    pub fn is_bound(&self, dom: DomId, port: EvtchnPort) -> bool {
        matches!(self.ports.get(&(dom, port)), Some(Port { state: PortState::Bound(..), .. }))
    }
}

/// moat's view of the simulated hypervisor, for the runtime's service.
pub struct MoatHv<'a>(pub &'a mut Xen);

impl Hypervisor for MoatHv<'_> {
    fn copy(&mut self, ops: &mut [CopyOp]) {
        let x = &mut *self.0;
        let me = x.moat;
        for o in ops {
            let base = o.local - o.local % PAGE_SIZE as u64;
            let off = (o.local % PAGE_SIZE as u64) as usize;
            o.status = x.copy(me, o.to_foreign, o.domid, o.gref, o.foreign_offset, Frame::Moat(base), off, o.len);
        }
    }

    fn map(&mut self, domid: DomId, gref: GrantRef, at: u64, readonly: bool) -> Result<u32, i16> {
        let x = &mut *self.0;
        let frame = x.resolve(domid, gref, x.moat, !readonly)?;
        let Frame::Guest(p) = frame else { return Err(gntst::BAD_PAGE) };
        if x.pages[p].mapped_at.is_some() {
            // One mapping at a time is all the simulation supports.
            return Err(gntst::NO_DEVICE_SPACE);
        }
        let window = match x.space(at) {
            Some((Mem::Region(r), off)) => r.carve(off, PAGE_SIZE).map_err(|_| gntst::BAD_VIRT_ADDR)?,
            _ => return Err(gntst::BAD_VIRT_ADDR),
        };
        let mut content = vec![0u8; PAGE_SIZE];
        x.pages[p].home.read_volatile(0, &mut content).expect("a page");
        window.write_volatile(0, &content).expect("a page");
        x.pages[p].mapped_at = Some(at);
        x.grants.get_mut(&(domid, gref)).expect("resolved").maps += 1;
        x.maps.insert(at, (domid, gref, p));
        x.stats.maps += 1;
        let h = x.next_handle;
        x.next_handle += 1;
        Ok(h)
    }

    fn unmap(&mut self, at: u64, _handle: u32) -> Result<(), i16> {
        let x = &mut *self.0;
        let (domid, gref, p) = x.maps.remove(&at).ok_or(gntst::BAD_HANDLE)?;
        let window = x.page(p);
        let mut content = vec![0u8; PAGE_SIZE];
        window.read_volatile(0, &mut content).expect("a page");
        // What moat sees in the slot afterwards is not the guest's page.
        window.write_volatile(0, &[0xEE; PAGE_SIZE]).expect("a page");
        x.pages[p].home.write_volatile(0, &content).expect("a page");
        x.pages[p].mapped_at = None;
        if let Some(g) = x.grants.get_mut(&(domid, gref)) {
            g.maps -= 1;
        }
        x.stats.unmaps += 1;
        Ok(())
    }

    fn grant(&mut self, domid: DomId, at: u64, readonly: bool) -> Result<GrantRef, i16> {
        let x = &mut *self.0;
        let me = x.moat;
        Ok(x.grant_frame(me, Frame::Moat(at), domid, readonly))
    }

    fn end_grant(&mut self, gref: GrantRef) -> Result<(), i16> {
        let x = &mut *self.0;
        let me = x.moat;
        if x.end_grant(me, gref) { Ok(()) } else { Err(status::BUSY) }
    }

    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, i16> {
        let x = &mut *self.0;
        let me = x.moat;
        Ok(x.alloc_unbound(me, remote))
    }

    fn bind_interdomain(&mut self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, i16> {
        let x = &mut *self.0;
        let me = x.moat;
        x.bind(me, remote, port)
    }

    fn close(&mut self, port: EvtchnPort) {
        let x = &mut *self.0;
        let me = x.moat;
        x.close(me, port);
    }

    fn send(&mut self, port: EvtchnPort) {
        let x = &mut *self.0;
        let me = x.moat;
        x.send(me, port);
    }
}

/// Moves every control frame waiting in `from` to `to`, as the runtime
/// does between two components' byte rings; true if any moved. Test beds
/// use it to play the runtime between the xenstore component and a driver.
pub fn relay(from: &mut moat_ring::ByteConsumer, to: &mut moat_ring::ByteProducer) -> bool {
    let mut buf = [0u8; 4096];
    let mut moved = false;
    while let Ok(Some(frame)) = from.recv(&mut buf) {
        let frame = frame.to_vec();
        to.send(&frame).expect("relayed frame fits");
        moved = true;
    }
    let _ = from.release();
    let _ = to.publish();
    moved
}

/// Helpers for peers implementing `io/ring.h` on a page.
pub mod ring {
    use std::sync::atomic::{AtomicU32, Ordering};

    use moat_ring::Region;

    /// `req_prod`.
    pub const REQ_PROD: usize = 0;
    /// `req_event`.
    pub const REQ_EVENT: usize = 4;
    /// `rsp_prod`.
    pub const RSP_PROD: usize = 8;
    /// `rsp_event`.
    pub const RSP_EVENT: usize = 12;
    /// First entry.
    pub const ENTRIES: usize = 64;

    /// An index word of the page.
    pub fn word(page: &Region, off: usize) -> &AtomicU32 {
        page.atomic_u32(off).expect("index word")
    }

    /// Loads an index.
    pub fn get(page: &Region, off: usize) -> u32 {
        word(page, off).load(Ordering::SeqCst)
    }

    /// Stores an index.
    pub fn set(page: &Region, off: usize, v: u32) {
        word(page, off).store(v, Ordering::SeqCst)
    }

    /// Reads `len` bytes of entry `idx` in a ring of 256 entries of
    /// `stride` bytes (the request/response union).
    pub fn read(page: &Region, idx: u32, stride: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        page.read_volatile(ENTRIES + (idx % 256) as usize * stride, &mut v).expect("entry");
        v
    }

    /// Writes entry `idx`.
    pub fn write(page: &Region, idx: u32, stride: usize, data: &[u8]) {
        assert!(data.len() <= stride);
        page.write_volatile(ENTRIES + (idx % 256) as usize * stride, data).expect("entry");
    }

    /// Did publishing `old..new` pass `event`?
    pub fn notify(old: u32, new: u32, event: u32) -> bool {
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }
}
