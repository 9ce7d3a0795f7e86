//! Xen operations for components that cannot make hypercalls.
//!
//! netback and netfront need grant copies, grant mappings of ring pages,
//! grants of their own pages and interdomain event channels. Components run
//! without privileges, so they ask the runtime: each driver gets a device
//! port whose memory is an *ops page* — a batch of [`Op`]s the component
//! fills in and the runtime carries out after the component's call, checking
//! every one against that component's own memory and capabilities
//! ([`service`]). The component sees the results on its next call
//! ([`device`]).
//!
//! # The device region
//!
//! ```text
//! page 0..2   control: header, event bitmap, op slots
//! local       pages the component owns: copy targets and sources, pages it
//!             may grant to another domain, its own shared rings
//! window      slots where the runtime maps other domains' ring pages
//! ```
//!
//! How many local and window pages a device has depends on its type
//! ([`Role`]): the runtime reads it from the device type name, lays the
//! region out and writes the geometry into the header, which the component
//! checks against its own copy of the numbers when it attaches.
//!
//! # A batch
//!
//! The component writes ops into slots `0..n`, then `count = n`, then bumps
//! `submit` (release) and notifies its device channel. The runtime copies
//! each op out once, checks it, performs it, writes its results back into
//! the slot, stores `done = submit` (release) and signals the channel back.
//! One batch is in flight at a time. Ops run in slot order.
//!
//! # Events
//!
//! An event channel the component allocated or bound has a small *handle*
//! (0..[`MAX_HANDLES`]). When Xen signals the channel, the runtime sets the
//! handle's bit in the event bitmap and signals the device channel; the
//! component takes the bits with an atomic swap.

pub mod device;
pub mod service;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{DomId, GrantRef, PAGE_SIZE, layout};

pub use device::{Batch, Events, XenOps};
pub use service::{Caps, Hypervisor, Service, Space};

/// `"mops"`: first word of the control page.
pub const MAGIC: u32 = u32::from_le_bytes(*b"mops");
/// Version of this layout.
pub const VERSION: u32 = 1;
/// Control pages at the start of every ops device.
pub const CONTROL_PAGES: usize = 2;
/// Offset of the first op slot.
pub const OPS_OFFSET: usize = 256;
/// Op slots in one batch.
pub const MAX_OPS: usize = (CONTROL_PAGES * PAGE_SIZE - OPS_OFFSET) / core::mem::size_of::<Op>();
/// Event channel handles one component may hold (bits in the bitmap).
pub const MAX_HANDLES: usize = 256;
/// Most local pages any role has.
pub const MAX_LOCAL_PAGES: usize = 512;
/// Most window slots any role has.
pub const MAX_WINDOW_PAGES: usize = 256;

/// Byte offsets of the header words.
pub mod header {
    /// [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// [`super::VERSION`].
    pub const VERSION: usize = 4;
    /// Local pages.
    pub const LOCAL_PAGES: usize = 8;
    /// Window slots.
    pub const WINDOW_PAGES: usize = 12;
    /// Op slots.
    pub const MAX_OPS: usize = 16;
    /// Ops in the submitted batch (component writes).
    pub const COUNT: usize = 20;
    /// Sequence number of the submitted batch (component writes, last).
    pub const SUBMIT: usize = 24;
    /// Sequence number of the last batch carried out (runtime writes, last).
    pub const DONE: usize = 28;
    /// Ops the runtime refused, ever (runtime writes; for status).
    pub const DENIED: usize = 32;
    /// Event bitmap: [`super::MAX_HANDLES`] bits in `u32` words.
    pub const EVENTS: usize = 64;
}

/// Words of the event bitmap.
pub const EVENT_WORDS: usize = MAX_HANDLES / 32;

/// A driver role: the device type name and the shape of its region.
pub trait Role {
    /// Device type name (`Device::NAME`, as components declare it).
    const NAME: &'static str;
    /// The region's shape.
    const GEOMETRY: Geometry;
}

/// The shape of an ops device region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Pages the component owns.
    pub local_pages: u32,
    /// Slots for other domains' pages.
    pub window_pages: u32,
}

impl Geometry {
    /// Bytes of the whole region.
    pub const fn bytes(&self) -> usize {
        (CONTROL_PAGES + self.local_pages as usize + self.window_pages as usize) * PAGE_SIZE
    }

    /// Offset of local page `i`.
    pub const fn local_offset(&self, i: u32) -> usize {
        (CONTROL_PAGES + i as usize) * PAGE_SIZE
    }

    /// Offset of window slot `i`.
    pub const fn window_offset(&self, i: u32) -> usize {
        (CONTROL_PAGES + self.local_pages as usize + i as usize) * PAGE_SIZE
    }

    /// The geometry of device type `name`, if it is an ops device.
    pub fn of(name: &str) -> Option<Geometry> {
        [(Backend::NAME, Backend::GEOMETRY), (Frontend::NAME, Frontend::GEOMETRY)]
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| g)
    }
}

/// netback's device: a local page per client for link-layer scratch, and
/// two window slots per client for its TX and RX rings.
pub struct Backend;

impl Backend {
    /// Clients the device has room for.
    pub const CLIENTS: u32 = 64;
}

impl Role for Backend {
    const NAME: &'static str = "XenBackend";
    const GEOMETRY: Geometry = Geometry { local_pages: Self::CLIENTS, window_pages: 2 * Self::CLIENTS };
}

/// netfront's device: its two shared ring pages, then pages it posts for
/// frames from the backend, then pages it puts frames for the backend in.
pub struct Frontend;

impl Frontend {
    /// Local page of the TX ring.
    pub const TX_RING: u32 = 0;
    /// Local page of the RX ring.
    pub const RX_RING: u32 = 1;
    /// Pages for received frames (one frame each), from local page 2.
    pub const RX_PAGES: u32 = 128;
    /// Pages for frames to send (two 2 KiB slots each), after those.
    pub const TX_PAGES: u32 = 64;
    /// First RX page.
    pub const RX_FIRST: u32 = 2;
    /// First TX page.
    pub const TX_FIRST: u32 = Self::RX_FIRST + Self::RX_PAGES;
}

impl Role for Frontend {
    const NAME: &'static str = "XenFrontend";
    const GEOMETRY: Geometry = Geometry { local_pages: Self::TX_FIRST + Self::TX_PAGES, window_pages: 0 };
}

const _: () = {
    assert!(Backend::GEOMETRY.local_pages as usize <= MAX_LOCAL_PAGES);
    assert!(Backend::GEOMETRY.window_pages as usize <= MAX_WINDOW_PAGES);
    assert!(Frontend::GEOMETRY.local_pages as usize <= MAX_LOCAL_PAGES);
    assert!(header::EVENTS + EVENT_WORDS * 4 <= OPS_OFFSET);
};

/// What an [`Op`] asks for.
pub mod kind {
    /// Nothing (an unused slot; answered `OKAY`).
    pub const NOP: u8 = 0;
    /// Grant copy between a foreign grant and the component's memory
    /// (`flags`: [`super::flag::TO_FOREIGN`] for the other direction).
    pub const COPY: u8 = 1;
    /// Map a foreign grant into window slot `local_offset`; out: `handle`
    /// is unused, `status` says how it went.
    pub const MAP: u8 = 2;
    /// Unmap window slot `local_offset`.
    pub const UNMAP: u8 = 3;
    /// Grant local page `local_offset` to `domid` (`flags`:
    /// [`super::flag::READONLY`]); out: `gref`.
    pub const GRANT: u8 = 4;
    /// End the grant `gref` (status [`super::status::BUSY`] while the other
    /// domain still uses it: try again later).
    pub const END_GRANT: u8 = 5;
    /// A port `domid` may bind to; out: `handle` and `port` (Xen's number,
    /// for XenStore).
    pub const ALLOC_UNBOUND: u8 = 6;
    /// Bind to `domid`'s `port`; out: `handle` and `port` (ours).
    pub const BIND: u8 = 7;
    /// Close event channel `handle`.
    pub const CLOSE: u8 = 8;
    /// Signal event channel `handle`.
    pub const SEND: u8 = 9;
}

/// [`Op::flags`] bits.
pub mod flag {
    /// `COPY`: from the component's memory to the foreign page.
    pub const TO_FOREIGN: u8 = 1;
    /// `GRANT`, `MAP`: read-only.
    pub const READONLY: u8 = 2;
}

/// [`Op::status`] values beyond Xen's own (`GNTST_*` from grant ops, which
/// are -1 to -13, and `-errno` from event channel ops).
pub mod status {
    /// Done.
    pub const OKAY: i16 = 0;
    /// The runtime refused: outside the component's memory or capabilities,
    /// or naming a handle, grant or slot it does not hold.
    pub const DENIED: i16 = -1000;
    /// The grant is still mapped or being copied by the other domain.
    pub const BUSY: i16 = -1001;
    /// The component holds as many channels, grants or mappings as it may.
    pub const NO_SPACE: i16 = -1002;
    /// Not carried out: an unknown kind, or past the batch's end.
    pub const INVALID: i16 = -1003;
}

/// Local space of the device's own pages (any other value is a pool id).
pub const DEVICE_SPACE: u16 = 0;

/// One operation in an ops page. Inputs and outputs share the slot; the
/// component's `tag` comes back untouched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Op {
    /// A [`kind`].
    pub kind: u8,
    /// [`flag`] bits.
    pub flags: u8,
    /// Out: a [`status`].
    pub status: i16,
    /// The other domain.
    pub domid: DomId,
    /// `COPY`: bytes.
    pub len: u16,
    /// `COPY`, `MAP`: the foreign grant; `GRANT`: out, the new grant;
    /// `END_GRANT`: the grant to end.
    pub gref: GrantRef,
    /// `COPY`: offset in the foreign page.
    pub foreign_offset: u16,
    /// `COPY`: [`DEVICE_SPACE`] or a pool id.
    pub space: u16,
    /// `COPY`: byte offset in the space; `GRANT`: local page; `MAP`,
    /// `UNMAP`: window slot.
    pub local_offset: u32,
    /// `BIND`: the remote port; out for `ALLOC_UNBOUND` and `BIND`: Xen's
    /// number of our end.
    pub port: u32,
    /// `CLOSE`, `SEND`: the handle; out for `ALLOC_UNBOUND` and `BIND`.
    pub handle: u16,
    /// Zero.
    pub pad: u16,
    /// The component's own cookie.
    pub tag: u32,
}
layout!(Op, 32, kind @ 0, flags @ 1, status @ 2, domid @ 4, len @ 6, gref @ 8, foreign_offset @ 12, space @ 14,
    local_offset @ 16, port @ 20, handle @ 24, pad @ 26, tag @ 28);

impl Op {
    /// Copies `len` bytes from `domid`'s grant `gref` at `foreign_offset`
    /// into `space` at `local_offset`. Neither side may cross a page.
    pub const fn copy_in(
        domid: DomId,
        gref: GrantRef,
        foreign_offset: u16,
        space: u16,
        local_offset: u32,
        len: u16,
    ) -> Op {
        Op { kind: kind::COPY, domid, gref, foreign_offset, space, local_offset, len, ..Op::ZERO }
    }

    /// Copies `len` bytes from `space` at `local_offset` into `domid`'s
    /// grant `gref` at `foreign_offset`.
    pub const fn copy_out(
        domid: DomId,
        gref: GrantRef,
        foreign_offset: u16,
        space: u16,
        local_offset: u32,
        len: u16,
    ) -> Op {
        Op { flags: flag::TO_FOREIGN, ..Op::copy_in(domid, gref, foreign_offset, space, local_offset, len) }
    }

    /// Maps `domid`'s grant `gref` (read-write) into window slot `slot`.
    pub const fn map(domid: DomId, gref: GrantRef, slot: u32) -> Op {
        Op { kind: kind::MAP, domid, gref, local_offset: slot, ..Op::ZERO }
    }

    /// Unmaps window slot `slot`.
    pub const fn unmap(slot: u32) -> Op {
        Op { kind: kind::UNMAP, local_offset: slot, ..Op::ZERO }
    }

    /// Grants local page `page` to `domid`.
    pub const fn grant(domid: DomId, page: u32, readonly: bool) -> Op {
        Op {
            kind: kind::GRANT,
            domid,
            local_offset: page,
            flags: if readonly { flag::READONLY } else { 0 },
            ..Op::ZERO
        }
    }

    /// Ends grant `gref`.
    pub const fn end_grant(gref: GrantRef) -> Op {
        Op { kind: kind::END_GRANT, gref, ..Op::ZERO }
    }

    /// A port `remote` may bind to.
    pub const fn alloc_unbound(remote: DomId) -> Op {
        Op { kind: kind::ALLOC_UNBOUND, domid: remote, ..Op::ZERO }
    }

    /// Binds to `remote`'s `port`.
    pub const fn bind(remote: DomId, port: u32) -> Op {
        Op { kind: kind::BIND, domid: remote, port, ..Op::ZERO }
    }

    /// Closes channel `handle`.
    pub const fn close(handle: u16) -> Op {
        Op { kind: kind::CLOSE, handle, ..Op::ZERO }
    }

    /// Signals channel `handle`.
    pub const fn send(handle: u16) -> Op {
        Op { kind: kind::SEND, handle, ..Op::ZERO }
    }

    /// All zero.
    pub const ZERO: Op = Op {
        kind: 0,
        flags: 0,
        status: 0,
        domid: 0,
        len: 0,
        gref: 0,
        foreign_offset: 0,
        space: 0,
        local_offset: 0,
        port: 0,
        handle: 0,
        pad: 0,
        tag: 0,
    };

    /// The same op carrying `tag`.
    pub const fn tagged(self, tag: u32) -> Op {
        Op { tag, ..self }
    }

    /// True if the op succeeded.
    pub const fn ok(&self) -> bool {
        self.status == status::OKAY
    }
}

const _: () = assert!(MAX_OPS >= 240);
