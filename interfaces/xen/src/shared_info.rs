//! The shared info page (`xen.h`, `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`):
//! per-vCPU event and time state, and the 2-level event channel bitmaps.
//!
//! Xen writes this page at any time. Use the offsets (`core::mem::offset_of!`)
//! with atomic accesses; never take a reference to a field.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout;

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a slot in the shared info page.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Event channels in the 2-level ABI (`EVTCHN_2L_NR_CHANNELS`).
pub const EVTCHN_2L_NR_CHANNELS: usize = 64 * 64;

/// `XEN_PVCLOCK_TSC_STABLE_BIT` in [`VcpuTimeInfo::flags`].
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1;

/// `struct vcpu_time_info`: system time = `system_time` +
/// ((tsc - `tsc_timestamp`) << `tsc_shift`) * `tsc_to_system_mul` >> 32, read
/// under the `version` seqlock (odd = being updated).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuTimeInfo {
    /// Seqlock: odd while Xen updates the record.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at the last update.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point).
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta first (may be negative).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
layout!(VcpuTimeInfo, 32, version @ 0, pad0 @ 4, tsc_timestamp @ 8, system_time @ 16, tsc_to_system_mul @ 24,
    tsc_shift @ 28, flags @ 29, pad1 @ 30);

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArchVcpuInfo {
    /// PV guests' faulting address.
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}
layout!(ArchVcpuInfo, 16, cr2 @ 0, pad @ 8);

/// `struct vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending; the guest clears it.
    pub evtchn_upcall_pending: u8,
    /// Set by the guest to hold off upcalls.
    pub evtchn_upcall_mask: u8,
    /// Padding (the C compiler's).
    pub _pad: [u8; 6],
    /// Which words of `evtchn_pending` may have bits set.
    pub evtchn_pending_sel: u64,
    /// Architecture part.
    pub arch: ArchVcpuInfo,
    /// Time.
    pub time: VcpuTimeInfo,
}
layout!(VcpuInfo, 64, evtchn_upcall_pending @ 0, evtchn_upcall_mask @ 1, evtchn_pending_sel @ 8, arch @ 16,
    time @ 32);

/// `struct arch_shared_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArchSharedInfo {
    /// Valid p2m entries (PV only).
    pub max_pfn: u64,
    /// PV p2m frame list list.
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// PV p2m cr3.
    pub p2m_cr3: u64,
    /// PV p2m virtual address.
    pub p2m_vaddr: u64,
    /// PV p2m generation.
    pub p2m_generation: u64,
}
layout!(ArchSharedInfo, 48, max_pfn @ 0, pfn_to_mfn_frame_list_list @ 8, nmi_reason @ 16, p2m_cr3 @ 24,
    p2m_vaddr @ 32, p2m_generation @ 40);

/// `struct shared_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SharedInfo {
    /// One record per legacy vCPU.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Pending bit per event channel (2-level ABI).
    pub evtchn_pending: [u64; 64],
    /// Mask bit per event channel.
    pub evtchn_mask: [u64; 64],
    /// Wall clock seqlock.
    pub wc_version: u32,
    /// Wall clock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wall clock nanoseconds.
    pub wc_nsec: u32,
    /// Wall clock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}
layout!(SharedInfo, 3136, vcpu_info @ 0, evtchn_pending @ 2048, evtchn_mask @ 2560, wc_version @ 3072,
    wc_sec @ 3076, wc_nsec @ 3080, wc_sec_hi @ 3084, arch @ 3088);
