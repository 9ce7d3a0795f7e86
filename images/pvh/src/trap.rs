//! GDT, TSS and IDT, and the exception handlers.
//!
//! The runtime never enables interrupts (it polls), so only CPU exceptions
//! arrive here. Each one is reported — vector, name, error code, `rip`, `rsp`,
//! `cr2` for page faults, the general registers — and the image stops with the
//! "trap" exit status. A double fault runs on its own stack (IST1), so a
//! kernel stack overflow, which faults on the unmapped guard page and then
//! cannot push the page-fault frame, is still reported.
//!
//! The tables are arrays of atomics: the CPU reads them as plain memory, and
//! Rust code never needs a `static mut` to fill them.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const CODE: u16 = 0x08;
const TSS_SEL: u16 = 0x18;

/// Exceptions for which the CPU pushes an error code.
const HAS_ERROR: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

// One stub per exception vector: pushes a zero where the CPU pushes no error
// code, then the vector, then jumps to the common path, which saves the
// general registers and calls `trap_handler(&TrapFrame)`.
global_asm!(
    r#"
    .section .text.trap, "ax"
    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    trap_stub_\v:
    push 0
    push \v
    jmp trap_common
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
    trap_stub_\v:
    push \v
    jmp trap_common
    .endr

    trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    and rsp, -16
    call trap_handler
    ud2

    .section .rodata.trap, "a"
    .balign 8
    .global trap_stubs
    trap_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\v
    .endr

    .section .bss.trap, "aw", @nobits
    .balign 4096
    ist1_bottom:
    .skip 16384
    .global ist1_top
    ist1_top:
    "#
);

unsafe extern "C" {
    static trap_stubs: [u64; 32];
    static ist1_top: u8;
}

/// What the stubs push, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

static GDT: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static TSS: [AtomicU32; 26] = [const { AtomicU32::new(0) }; 26];
static IDT: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT (with a TSS whose IST1 is the double-fault stack) and the
/// IDT. Called once, early, before anything can fault on purpose.
pub fn init() {
    let ist1 = &raw const ist1_top as u64;
    // TSS: IST1 at byte offset 36; I/O map base past the end (no I/O bitmap).
    TSS[9].store(ist1 as u32, Ordering::Relaxed);
    TSS[10].store((ist1 >> 32) as u32, Ordering::Relaxed);
    TSS[25].store(104 << 16, Ordering::Relaxed);

    GDT[1].store(0x0020_9A00_0000_0000, Ordering::Relaxed); // 64-bit code
    GDT[2].store(0x0000_9200_0000_0000, Ordering::Relaxed); // data
    let base = TSS.as_ptr() as u64;
    let limit = 103u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, available 64-bit TSS
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    GDT[3].store(low, Ordering::Relaxed);
    GDT[4].store(base >> 32, Ordering::Relaxed);

    for (v, &stub) in (0..32).zip(stubs().iter()) {
        let ist = if v == 8 || v == 2 || v == 18 { 1 } else { 0 };
        let low = (stub & 0xffff)
            | (u64::from(CODE) << 16)
            | (ist << 32)
            | (0x8e << 40) // present interrupt gate, DPL 0
            | (((stub >> 16) & 0xffff) << 48);
        IDT[2 * v].store(low, Ordering::Relaxed);
        IDT[2 * v + 1].store(stub >> 32, Ordering::Relaxed);
    }

    let gdtr = Pointer { limit: (core::mem::size_of_val(&GDT) - 1) as u16, base: GDT.as_ptr() as u64 };
    let idtr = Pointer { limit: (core::mem::size_of_val(&IDT) - 1) as u16, base: IDT.as_ptr() as u64 };
    // SAFETY: the GDT keeps the code (0x08) and data (0x10) selectors the
    // boot code loaded, so reloading it changes no segment in use; the TSS
    // descriptor points at a static TSS; the IDT's gates point at the stubs
    // above. All three tables are statics that live forever.
    unsafe {
        asm!("lgdt [{}]", in(reg) &gdtr, options(readonly, nostack, preserves_flags));
        asm!("ltr {0:x}", in(reg) TSS_SEL, options(nostack, preserves_flags));
        asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags));
    }
}

fn stubs() -> &'static [u64; 32] {
    // SAFETY: a read-only table the assembler filled with the stub addresses.
    unsafe { &trap_stubs }
}

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD error",
        21 => "control protection",
        _ => "reserved",
    }
}

#[unsafe(no_mangle)]
extern "C" fn trap_handler(f: &TrapFrame) -> ! {
    crate::console::fatal();
    let has_error = HAS_ERROR.contains(&(f.vector as u8));
    crate::println!();
    crate::println!("moat: EXCEPTION {} (vector {})", name(f.vector), f.vector);
    if has_error {
        crate::println!("moat:   error=0x{:x}", f.error);
    }
    crate::println!("moat:   rip=0x{:016x} cs=0x{:x} rflags=0x{:x} rsp=0x{:016x}", f.rip, f.cs, f.rflags, f.rsp);
    if f.vector == 14 {
        crate::println!(
            "moat:   cr2=0x{:016x} ({} {} {})",
            crate::cpu::cr2(),
            if f.error & 1 != 0 { "protection" } else { "not-present" },
            if f.error & 2 != 0 { "write" } else { "read" },
            if f.error & 16 != 0 { "fetch" } else { "data" },
        );
    }
    crate::println!(
        "moat:   rax={:x} rbx={:x} rcx={:x} rdx={:x} rsi={:x} rdi={:x} rbp={:x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp
    );
    crate::println!(
        "moat:   r8={:x} r9={:x} r10={:x} r11={:x} r12={:x} r13={:x} r14={:x} r15={:x}",
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15
    );
    crate::exit(crate::Exit::Trap)
}
