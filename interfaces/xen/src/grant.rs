//! Grant tables (`grant_table.h`): version-1 entries a domain writes to let
//! another domain at one of its pages, and the `grant_table_op` hypercall's
//! argument structs.
//!
//! To grant: write `frame` and `domid`, a write barrier, then `flags`. To
//! revoke: compare-and-swap `flags` to 0 while neither `GTF_reading` nor
//! `GTF_writing` is set.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{DomId, GrantHandle, GrantRef, layout};

/// `GNTTABOP_*` commands of [`crate::hypercall::GRANT_TABLE_OP`].
pub mod op {
    /// `GNTTABOP_map_grant_ref`, arguments [`GnttabMapGrantRef`](super::GnttabMapGrantRef).
    pub const MAP_GRANT_REF: u32 = 0;
    /// `GNTTABOP_unmap_grant_ref`, arguments [`GnttabUnmapGrantRef`](super::GnttabUnmapGrantRef).
    pub const UNMAP_GRANT_REF: u32 = 1;
    /// `GNTTABOP_setup_table`, argument [`GnttabSetupTable`](super::GnttabSetupTable).
    pub const SETUP_TABLE: u32 = 2;
    /// `GNTTABOP_copy`, arguments [`GnttabCopy`](super::GnttabCopy).
    pub const COPY: u32 = 5;
    /// `GNTTABOP_query_size`, argument [`GnttabQuerySize`](super::GnttabQuerySize).
    pub const QUERY_SIZE: u32 = 6;
    /// `GNTTABOP_set_version`.
    pub const SET_VERSION: u32 = 8;
}

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries 0..8 belong to the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `GTF_*` bits of [`GrantEntryV1::flags`].
pub mod gtf {
    /// `GTF_invalid`: no grant.
    pub const INVALID: u16 = 0;
    /// `GTF_permit_access`: `domid` may map or copy `frame`.
    pub const PERMIT_ACCESS: u16 = 1;
    /// `GTF_type_mask`.
    pub const TYPE_MASK: u16 = 3;
    /// `GTF_readonly`: read-only access.
    pub const READONLY: u16 = 1 << 2;
    /// `GTF_reading`: set by Xen while the grantee reads.
    pub const READING: u16 = 1 << 3;
    /// `GTF_writing`: set by Xen while the grantee writes.
    pub const WRITING: u16 = 1 << 4;
}

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GrantEntryV1 {
    /// [`gtf`] bits; written last when granting.
    pub flags: u16,
    /// The domain allowed in.
    pub domid: DomId,
    /// The granted guest frame.
    pub frame: u32,
}
layout!(GrantEntryV1, 8, flags @ 0, domid @ 2, frame @ 4);

/// Grant entries in one 4 KiB frame of a v1 table.
pub const ENTRIES_PER_FRAME: usize = crate::PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// `GNTST_*` status codes.
pub mod status {
    /// `GNTST_okay`.
    pub const OKAY: i16 = 0;
    /// `GNTST_general_error`.
    pub const GENERAL_ERROR: i16 = -1;
    /// `GNTST_bad_domain`.
    pub const BAD_DOMAIN: i16 = -2;
    /// `GNTST_bad_gntref`.
    pub const BAD_GNTREF: i16 = -3;
    /// `GNTST_bad_handle`.
    pub const BAD_HANDLE: i16 = -4;
    /// `GNTST_bad_virt_addr`.
    pub const BAD_VIRT_ADDR: i16 = -5;
    /// `GNTST_bad_dev_addr`.
    pub const BAD_DEV_ADDR: i16 = -6;
    /// `GNTST_no_device_space`.
    pub const NO_DEVICE_SPACE: i16 = -7;
    /// `GNTST_permission_denied`.
    pub const PERMISSION_DENIED: i16 = -8;
    /// `GNTST_bad_page`.
    pub const BAD_PAGE: i16 = -9;
    /// `GNTST_bad_copy_arg`: the copy crosses a page boundary.
    pub const BAD_COPY_ARG: i16 = -10;
    /// `GNTST_address_too_big`.
    pub const ADDRESS_TOO_BIG: i16 = -11;
    /// `GNTST_eagain`: try again.
    pub const EAGAIN: i16 = -12;
    /// `GNTST_no_space`.
    pub const NO_SPACE: i16 = -13;
}

/// `GNTMAP_*` flags of [`GnttabMapGrantRef::flags`].
pub mod gntmap {
    /// `GNTMAP_device_map`.
    pub const DEVICE_MAP: u32 = 1 << 0;
    /// `GNTMAP_host_map`.
    pub const HOST_MAP: u32 = 1 << 1;
    /// `GNTMAP_readonly`.
    pub const READONLY: u32 = 1 << 2;
}

/// `GNTCOPY_*` flags of [`GnttabCopy::flags`].
pub mod gntcopy {
    /// `GNTCOPY_source_gref`: `source.u` is a grant reference.
    pub const SOURCE_GREF: u16 = 1 << 0;
    /// `GNTCOPY_dest_gref`: `dest.u` is a grant reference.
    pub const DEST_GREF: u16 = 1 << 1;
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabMapGrantRef {
    /// In: where to map (guest physical address for a PVH guest).
    pub host_addr: u64,
    /// In: [`gntmap`] flags.
    pub flags: u32,
    /// In: the grant reference.
    pub r#ref: GrantRef,
    /// In: the granting domain.
    pub dom: DomId,
    /// Out: a [`status`] code.
    pub status: i16,
    /// Out: handle for unmapping.
    pub handle: GrantHandle,
    /// Out: bus address (device maps).
    pub dev_bus_addr: u64,
}
layout!(GnttabMapGrantRef, 32, host_addr @ 0, flags @ 8, r#ref @ 12, dom @ 16, status @ 18, handle @ 20,
    dev_bus_addr @ 24);

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabUnmapGrantRef {
    /// In: the mapped address.
    pub host_addr: u64,
    /// In: the bus address (device maps).
    pub dev_bus_addr: u64,
    /// In: the handle from the map.
    pub handle: GrantHandle,
    /// Out: a [`status`] code.
    pub status: i16,
    /// Padding (the C compiler's).
    pub _pad: [u8; 2],
}
layout!(GnttabUnmapGrantRef, 24, host_addr @ 0, dev_bus_addr @ 8, handle @ 16, status @ 20);

/// `struct gnttab_setup_table`: for a PVH guest, only to learn the frame
/// count; it maps its frames with `XENMEM_add_to_physmap` instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabSetupTable {
    /// In: [`crate::hypercall::DOMID_SELF`].
    pub dom: DomId,
    /// Padding (the C compiler's).
    pub _pad0: u16,
    /// In: frames wanted.
    pub nr_frames: u32,
    /// Out: a [`status`] code.
    pub status: i16,
    /// Padding (the C compiler's).
    pub _pad1: [u8; 6],
    /// In: guest address of an array of `nr_frames` `xen_pfn_t` (out values).
    pub frame_list: u64,
}
layout!(GnttabSetupTable, 24, dom @ 0, nr_frames @ 4, status @ 8, frame_list @ 16);

/// `struct gnttab_copy_ptr`: one side of a grant copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabCopyPtr {
    /// `union { grant_ref_t ref; xen_pfn_t gmfn; }`: a grant reference (low
    /// 32 bits, with the matching [`gntcopy`] flag) or a local guest frame.
    pub u: u64,
    /// The domain owning the page (`DOMID_SELF` for a local frame).
    pub domid: DomId,
    /// Byte offset within the page.
    pub offset: u16,
    /// Padding (the C compiler's).
    pub _pad: u32,
}
layout!(GnttabCopyPtr, 16, u @ 0, domid @ 8, offset @ 10);

impl GnttabCopyPtr {
    /// A page another domain granted us.
    pub const fn gref(r: GrantRef, domid: DomId, offset: u16) -> Self {
        GnttabCopyPtr { u: r as u64, domid, offset, _pad: 0 }
    }

    /// One of our own guest frames.
    pub const fn local(gfn: u64, offset: u16) -> Self {
        GnttabCopyPtr { u: gfn, domid: crate::hypercall::DOMID_SELF, offset, _pad: 0 }
    }
}

/// `struct gnttab_copy`: Xen copies `len` bytes; neither side may cross a
/// page boundary.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabCopy {
    /// In: where from.
    pub source: GnttabCopyPtr,
    /// In: where to.
    pub dest: GnttabCopyPtr,
    /// In: bytes.
    pub len: u16,
    /// In: [`gntcopy`] flags.
    pub flags: u16,
    /// Out: a [`status`] code.
    pub status: i16,
    /// Padding (the C compiler's).
    pub _pad: u16,
}
layout!(GnttabCopy, 40, source @ 0, dest @ 16, len @ 32, flags @ 34, status @ 36);

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabQuerySize {
    /// In: [`crate::hypercall::DOMID_SELF`].
    pub dom: DomId,
    /// Padding (the C compiler's).
    pub _pad0: u16,
    /// Out: frames in use.
    pub nr_frames: u32,
    /// Out: most frames allowed.
    pub max_nr_frames: u32,
    /// Out: a [`status`] code.
    pub status: i16,
    /// Padding (the C compiler's).
    pub _pad1: u16,
}
layout!(GnttabQuerySize, 16, dom @ 0, nr_frames @ 4, max_nr_frames @ 8, status @ 12);

/// Linux's grant device, `/dev/xen/gntdev` (`xen/sys/gntdev.h`): how a
/// program in dom0 maps a page another domain granted it. The testbed's
/// XenStore comparison maps a domain's XenStore page this way (reserved
/// entry [`GNTTAB_RESERVED_XENSTORE`], granted to the store's domain when
/// the domain is built) to be that domain's side of its XenStore ring.
pub mod gntdev {
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

    use crate::layout;

    /// `IOCTL_GNTDEV_MAP_GRANT_REF`: `_IOC(_IOC_NONE, 'G', 0, sizeof(struct
    /// ioctl_gntdev_map_grant_ref))`, with one grant.
    pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 =
        ((core::mem::size_of::<IoctlGntdevMapGrantRef>() as u32) << 16) | ((b'G' as u32) << 8);

    /// `struct ioctl_gntdev_grant_ref`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
    pub struct IoctlGntdevGrantRef {
        /// The granting domain.
        pub domid: u32,
        /// The grant reference in its table.
        pub r#ref: u32,
    }
    layout!(IoctlGntdevGrantRef, 8, domid @ 0, r#ref @ 4);

    /// `struct ioctl_gntdev_map_grant_ref` with its one-element array.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
    pub struct IoctlGntdevMapGrantRef {
        /// In: grants in `refs` (1 here).
        pub count: u32,
        /// Padding.
        pub pad: u32,
        /// Out: the offset to pass to `mmap` for these grants.
        pub index: u64,
        /// In: the grant.
        pub refs: [IoctlGntdevGrantRef; 1],
    }
    layout!(IoctlGntdevMapGrantRef, 24, count @ 0, pad @ 4, index @ 8, refs @ 16);
}
