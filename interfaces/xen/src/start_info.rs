//! What Xen (or QEMU) hands a PVH kernel at entry (`arch-x86/hvm/start_info.h`):
//! `ebx` holds the physical address of an [`HvmStartInfo`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_*`: ACPI address range types.
pub mod memmap_type {
    /// Usable RAM.
    pub const RAM: u32 = 1;
    /// Reserved.
    pub const RESERVED: u32 = 2;
    /// ACPI reclaimable.
    pub const ACPI: u32 = 3;
    /// ACPI NVS.
    pub const NVS: u32 = 4;
    /// Unusable.
    pub const UNUSABLE: u32 = 5;
    /// Disabled.
    pub const DISABLED: u32 = 6;
    /// Persistent memory.
    pub const PMEM: u32 = 7;
}

/// `struct hvm_start_info`. Fields from `memmap_paddr` on exist only when
/// `version >= 1`; a version-0 producer leaves them out, so read them only
/// then (and only if `memmap_entries` is non-zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Structure version (0 or 1).
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Entries at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0 if none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Version 1: physical address of an array of [`HvmMemmapTableEntry`].
    pub memmap_paddr: u64,
    /// Version 1: entries in the memory map (0: none given).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}
crate::layout!(HvmStartInfo, 56, magic @ 0, version @ 4, flags @ 8, nr_modules @ 12, modlist_paddr @ 16,
    cmdline_paddr @ 24, rsdp_paddr @ 32, memmap_paddr @ 40, memmap_entries @ 48, reserved @ 52);

/// `struct hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Physical address of its command line.
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}
layout!(HvmModlistEntry, 32, paddr @ 0, size @ 8, cmdline_paddr @ 16, reserved @ 24);

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HvmMemmapTableEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// A [`memmap_type`].
    pub r#type: u32,
    /// Must be zero.
    pub reserved: u32,
}
layout!(HvmMemmapTableEntry, 24, addr @ 0, size @ 8, r#type @ 16, reserved @ 20);
