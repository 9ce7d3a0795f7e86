//! Thin wrappers over the x86 instructions the runtime needs. Each is one
//! instruction with no memory effects beyond what its name says.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port output has no effect on this program's memory; the ports
    // used (debug console, UART, PIT, debug-exit) are device registers.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for outb.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for outb; reading these device registers has no memory effect.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) }
    v
}

/// `cpuid` leaf `leaf`, subleaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// `cpuid` leaf `leaf`, subleaf `sub`: (eax, ebx, ecx, edx).
pub fn cpuid_sub(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads a model-specific register.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an architectural MSR the caller names.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
///
/// The write must not break the memory model the program relies on (the
/// callers write EFER bits that are already set and the Xen hypercall MSR).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// The faulting address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reads a control register.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Switches to the page tables rooted at `pml4`.
///
/// # Safety
///
/// The tables must map everything the program touches from here on (code,
/// stack, data, devices) at the same addresses as before.
pub unsafe fn set_cr3(pml4: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) }
}

/// EFER (extended feature enable) MSR.
pub const EFER: u32 = 0xC000_0080;
/// EFER.NXE: the no-execute bit is honoured in page tables.
pub const EFER_NXE: u64 = 1 << 11;

/// Spin-loop hint.
pub fn pause() {
    core::hint::spin_loop()
}

/// Stops this CPU for good (interrupts are never enabled, so `hlt` only
/// returns for an NMI or SMI; loop anyway).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli/hlt touch no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
