//! Hypercall numbers, their sub-operations, and the small argument structs of
//! the hypercalls a PVH guest needs to boot and poll (`xen.h`, `sched.h`,
//! `memory.h`, `hvm/hvm_op.h`, `hvm/params.h`), plus how to find Xen at all
//! (`arch-x86/cpuid.h`, `elfnote.h`).
//!
//! A hypercall is a `call` to `hypercall_page + 32 * number` with arguments in
//! `rdi, rsi, rdx, r10, r8` and the result in `rax` (negative errno on
//! failure).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{DomId, layout};

/// `__HYPERVISOR_memory_op`.
pub const MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_set_timer_op`: one-shot timer at an absolute system time
/// (ns), delivered as `VIRQ_TIMER`.
pub const SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_xen_version`.
pub const XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io` (privileged on release builds of Xen: a domU
/// writes to its console ring instead).
pub const CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_grant_table_op` (sub-ops in [`crate::grant`]).
pub const GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vcpu_op`.
pub const VCPU_OP: u32 = 24;
/// `__HYPERVISOR_sched_op` (sub-ops in [`sched_op`]).
pub const SCHED_OP: u32 = 29;
/// `__HYPERVISOR_event_channel_op` (sub-ops in [`crate::evtchn`]).
pub const EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_hvm_op` (sub-ops in [`hvm_op`]).
pub const HVM_OP: u32 = 34;

/// Bytes per hypercall stub in the hypercall page.
pub const HYPERCALL_STUB_SIZE: usize = 32;

/// `DOMID_SELF`: "the calling domain" wherever a domid is asked for.
pub const DOMID_SELF: DomId = 0x7FF0;
/// `DOMID_INVALID`.
pub const DOMID_INVALID: DomId = 0x7FF4;
/// Domain ids at or above this are special (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;

/// `CONSOLEIO_*` commands of [`CONSOLE_IO`].
pub mod console_io {
    /// `CONSOLEIO_write`.
    pub const WRITE: u32 = 0;
    /// `CONSOLEIO_read`.
    pub const READ: u32 = 1;
}

/// `SCHEDOP_*` commands of [`SCHED_OP`](super::SCHED_OP).
pub mod sched_op {
    /// `SCHEDOP_yield`: give up the CPU, stay runnable.
    pub const YIELD: u32 = 0;
    /// `SCHEDOP_block`: sleep until an event is pending.
    pub const BLOCK: u32 = 1;
    /// `SCHEDOP_shutdown`, argument [`SchedShutdown`](super::SchedShutdown).
    pub const SHUTDOWN: u32 = 2;
    /// `SCHEDOP_poll`, argument [`SchedPoll`](super::SchedPoll).
    pub const POLL: u32 = 3;
}

/// `SHUTDOWN_*` reasons for `SCHEDOP_shutdown`.
pub mod shutdown {
    /// `SHUTDOWN_poweroff`.
    pub const POWEROFF: u32 = 0;
    /// `SHUTDOWN_reboot`.
    pub const REBOOT: u32 = 1;
    /// `SHUTDOWN_suspend`.
    pub const SUSPEND: u32 = 2;
    /// `SHUTDOWN_crash`.
    pub const CRASH: u32 = 3;
    /// `SHUTDOWN_watchdog`.
    pub const WATCHDOG: u32 = 4;
}

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedShutdown {
    /// A [`shutdown`] reason.
    pub reason: u32,
}
layout!(SchedShutdown, 4, reason @ 0);

/// `struct sched_poll`: block until one of `ports` is pending or `timeout`
/// (absolute system time in ns, 0 = none) passes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedPoll {
    /// Guest address of an array of `evtchn_port_t`.
    pub ports: u64,
    /// Entries in that array.
    pub nr_ports: u32,
    /// Padding (the C compiler's).
    pub _pad: u32,
    /// Absolute timeout in ns of system time; 0 for none.
    pub timeout: u64,
}
layout!(SchedPoll, 24, ports @ 0, nr_ports @ 8, timeout @ 16);

/// `XENMEM_*` commands of [`MEMORY_OP`].
pub mod memory_op {
    /// `XENMEM_decrease_reservation`, argument
    /// [`XenMemoryReservation`](super::XenMemoryReservation): give frames
    /// back to Xen (their guest frames become holes, where grant mappings
    /// may then be placed).
    pub const DECREASE_RESERVATION: u32 = 1;
    /// `XENMEM_add_to_physmap`, argument [`XenAddToPhysmap`](super::XenAddToPhysmap).
    pub const ADD_TO_PHYSMAP: u32 = 7;
}

/// `XENMAPSPACE_*`: what `XENMEM_add_to_physmap` maps.
pub mod mapspace {
    /// `XENMAPSPACE_shared_info`: the shared info page (idx 0).
    pub const SHARED_INFO: u32 = 0;
    /// `XENMAPSPACE_grant_table`: grant table frame `idx`.
    pub const GRANT_TABLE: u32 = 1;
}

/// `struct xen_add_to_physmap`: place a Xen-owned page (shared info, a grant
/// table frame) at guest frame `gpfn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenAddToPhysmap {
    /// Domain whose physmap changes ([`DOMID_SELF`]).
    pub domid: DomId,
    /// Pages for `gmfn_range` (unused here).
    pub size: u16,
    /// A [`mapspace`] value.
    pub space: u32,
    /// Index into the space (grant frame number).
    pub idx: u64,
    /// Guest frame number where the page appears.
    pub gpfn: u64,
}
layout!(XenAddToPhysmap, 24, domid @ 0, size @ 2, space @ 4, idx @ 8, gpfn @ 16);

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenMemoryReservation {
    /// Guest address of an array of `nr_extents` guest frame numbers.
    pub extent_start: u64,
    /// Entries in that array.
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` frames.
    pub extent_order: u32,
    /// `XENMEMF_*` flags (0).
    pub mem_flags: u32,
    /// [`DOMID_SELF`].
    pub domid: DomId,
    /// Padding (the C compiler's).
    pub _pad: [u8; 6],
}
layout!(XenMemoryReservation, 32, extent_start @ 0, nr_extents @ 8, extent_order @ 16, mem_flags @ 20, domid @ 24);

/// `HVMOP_*` commands of [`HVM_OP`].
pub mod hvm_op {
    /// `HVMOP_set_param`, argument [`XenHvmParam`](super::XenHvmParam).
    pub const SET_PARAM: u32 = 0;
    /// `HVMOP_get_param`, argument [`XenHvmParam`](super::XenHvmParam).
    pub const GET_PARAM: u32 = 1;
    /// `HVMOP_set_evtchn_upcall_vector`, argument
    /// [`XenHvmEvtchnUpcallVector`](super::XenHvmEvtchnUpcallVector).
    pub const SET_EVTCHN_UPCALL_VECTOR: u32 = 23;
}

/// `HVM_PARAM_*` indices.
pub mod hvm_param {
    /// `HVM_PARAM_CALLBACK_IRQ`: how event upcalls are delivered.
    pub const CALLBACK_IRQ: u32 = 0;
    /// `HVM_PARAM_STORE_PFN`: the XenStore ring page's frame.
    pub const STORE_PFN: u32 = 1;
    /// `HVM_PARAM_STORE_EVTCHN`: the XenStore event channel.
    pub const STORE_EVTCHN: u32 = 2;
    /// `HVM_PARAM_CONSOLE_PFN`: the console ring page's frame.
    pub const CONSOLE_PFN: u32 = 17;
    /// `HVM_PARAM_CONSOLE_EVTCHN`: the console event channel.
    pub const CONSOLE_EVTCHN: u32 = 18;
    /// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: callback value `(2 << 56) | vector`.
    pub const CALLBACK_TYPE_VECTOR: u64 = 2;
    /// Shift of the callback type in a `CALLBACK_IRQ` value.
    pub const CALLBACK_TYPE_SHIFT: u32 = 56;
}

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenHvmParam {
    /// [`DOMID_SELF`].
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// An [`hvm_param`] index.
    pub index: u32,
    /// The value (in for set, out for get).
    pub value: u64,
}
layout!(XenHvmParam, 16, domid @ 0, pad @ 2, index @ 4, value @ 8);

/// `struct xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenHvmEvtchnUpcallVector {
    /// The vCPU.
    pub vcpu: u32,
    /// The interrupt vector events arrive on.
    pub vector: u8,
    /// Padding (the C compiler's).
    pub _pad: [u8; 3],
}
layout!(XenHvmEvtchnUpcallVector, 8, vcpu @ 0, vector @ 4);

/// CPUID: where Xen's leaves start (`XEN_CPUID_FIRST_LEAF`); Xen may appear
/// at `FIRST_LEAF + k * 0x100` when another hypervisor's leaves come first.
pub mod cpuid {
    /// `XEN_CPUID_FIRST_LEAF`.
    pub const FIRST_LEAF: u32 = 0x4000_0000;
    /// `XEN_CPUID_SIGNATURE_EBX` ("XenV").
    pub const SIGNATURE_EBX: u32 = 0x566e_6558;
    /// `XEN_CPUID_SIGNATURE_ECX` ("MMXe").
    pub const SIGNATURE_ECX: u32 = 0x6558_4d4d;
    /// `XEN_CPUID_SIGNATURE_EDX` ("nVMM").
    pub const SIGNATURE_EDX: u32 = 0x4d4d_566e;
    /// Leaf `base + 2`: eax = hypercall pages, ebx = the MSR that takes the
    /// hypercall page's physical address.
    pub const HYPERCALL_LEAF_OFFSET: u32 = 2;
}

/// ELF notes a Xen kernel carries (`elfnote.h`).
pub mod elfnote {
    /// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical PVH entry point.
    pub const PHYS32_ENTRY: u32 = 18;
    /// The note's name, NUL-terminated.
    pub const NAME: &[u8; 4] = b"Xen\0";
}

/// `VIRQ_*`: virtual interrupts bound with `EVTCHNOP_bind_virq`.
pub mod virq {
    /// `VIRQ_TIMER`: the per-vCPU timer (`set_timer_op`, `SCHEDOP_poll` timeout).
    pub const TIMER: u32 = 0;
}
