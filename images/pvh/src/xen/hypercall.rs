//! Calling Xen: the hypercall page, and typed wrappers over the hypercalls
//! the platform uses.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use moat_xen::hypercall::{self as hc, DOMID_SELF};
use zerocopy::IntoBytes;

static READY: AtomicBool = AtomicBool::new(false);

/// Asks Xen to fill the hypercall page (the MSR CPUID named).
pub fn install(msr: u32) {
    let page = crate::boot::hypercall_page_addr() as u64;
    // SAFETY: the MSR Xen named takes the guest-physical address of a page
    // for Xen to fill with hypercall stubs; ours is reserved for exactly that
    // (int3-filled, page-aligned, identity-mapped, executable).
    unsafe { crate::cpu::wrmsr(msr, page) };
    READY.store(true, Ordering::Release);
}

/// True once the hypercall page is installed (we run on Xen).
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Hypercall `nr` with up to three arguments; negative errno on failure.
///
/// # Safety
///
/// The arguments must be what hypercall `nr` expects; pointers must point at
/// live, identity-mapped memory of the right type for the duration of the
/// call (Xen reads and writes it by guest-physical address).
pub unsafe fn call(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    if !READY.load(Ordering::Acquire) {
        return -38; // ENOSYS: not on Xen, or too early
    }
    let stub = crate::boot::hypercall_page_addr() + 32 * nr as usize;
    let ret: i64;
    // SAFETY: the stub is Xen's code for hypercall `nr`; it follows the
    // hypercall ABI (arguments in rdi, rsi, rdx; result in rax; argument
    // registers may be clobbered by debug builds of Xen) and the caller
    // vouches for the arguments.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        )
    };
    ret
}

/// A hypercall whose second argument is a pointer to `arg`.
fn with_arg<T: IntoBytes + zerocopy::FromBytes>(nr: u32, cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: `arg` is a live, exclusively borrowed, identity-mapped value of
    // the ABI struct that (nr, cmd) takes (the callers pair them from
    // moat-xen's definitions).
    unsafe { call(nr, u64::from(cmd), arg as *mut T as u64, 0) }
}

/// `XENVER_version`: Xen's version as `major << 16 | minor` (negative errno
/// on failure). The first hypercall made, so it also proves the page works.
pub fn xen_version() -> i64 {
    // SAFETY: XENVER_version (0) takes no argument buffer (NULL).
    unsafe { call(hc::XEN_VERSION, 0, 0, 0) }
}

/// `SCHEDOP_shutdown`.
pub fn shutdown(reason: u32) -> i64 {
    with_arg(hc::SCHED_OP, hc::sched_op::SHUTDOWN, &mut hc::SchedShutdown { reason })
}

/// `SCHEDOP_poll` on `ports` until one is pending or system time `timeout`
/// (0: none).
pub fn poll(ports: &[u32], timeout: u64) -> i64 {
    let mut arg = hc::SchedPoll { ports: ports.as_ptr() as u64, nr_ports: ports.len() as u32, _pad: 0, timeout };
    with_arg(hc::SCHED_OP, hc::sched_op::POLL, &mut arg)
}

/// `HVMOP_get_param` for this domain.
pub fn get_param(index: u32) -> Result<u64, i64> {
    let mut arg = hc::XenHvmParam { domid: DOMID_SELF, pad: 0, index, value: 0 };
    match with_arg(hc::HVM_OP, hc::hvm_op::GET_PARAM, &mut arg) {
        0 => Ok(arg.value),
        e => Err(e),
    }
}

/// `XENMEM_add_to_physmap`: places Xen page `idx` of `space` at our frame
/// `gpfn`.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut arg = hc::XenAddToPhysmap { domid: DOMID_SELF, size: 0, space, idx, gpfn };
    with_arg(hc::MEMORY_OP, hc::memory_op::ADD_TO_PHYSMAP, &mut arg)
}

/// An `EVTCHNOP_*` with its argument struct.
pub fn evtchn_op<T: IntoBytes + zerocopy::FromBytes>(cmd: u32, arg: &mut T) -> i64 {
    with_arg(hc::EVENT_CHANNEL_OP, cmd, arg)
}

/// `GNTTABOP_*` over `count` argument structs starting at `args`.
pub fn grant_table_op<T: IntoBytes + zerocopy::FromBytes>(cmd: u32, args: &mut [T]) -> i64 {
    // SAFETY: `args` is a live, exclusively borrowed array of the struct
    // `cmd` takes, and its length is the count passed.
    unsafe { call(hc::GRANT_TABLE_OP, u64::from(cmd), args.as_mut_ptr() as u64, args.len() as u64) }
}
