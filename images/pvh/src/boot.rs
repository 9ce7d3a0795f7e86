//! The PVH entry: from 32-bit protected mode with paging off to Rust in long
//! mode.
//!
//! Xen's domain builder and QEMU's `-kernel` both enter at the address in the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note with `ebx` holding the physical address of
//! `hvm_start_info`, flat 4 GiB segments, and no stack, GDT or IDT. This code
//! zeroes `.bss`, identity-maps the first 4 GiB with 2 MiB pages (enough to
//! reach Rust; [`crate::paging`] replaces these tables with ones that map each
//! part of the image with its own permissions), enables PAE, long mode and
//! NX (when the CPU has it), loads a minimal GDT and jumps to 64-bit code,
//! which calls `pvh_main(start_info_paddr)`.

use core::arch::global_asm;

/// Bytes of the boot (and only) kernel stack. A guard page below it is left
/// unmapped by the final page tables, so an overflow faults instead of
/// corrupting `.bss`.
pub const STACK_SIZE: usize = 256 * 1024;

// The ELF note Xen and QEMU look for: name "Xen", type 18
// (XEN_ELFNOTE_PHYS32_ENTRY), an 8-byte payload with the entry's physical
// address. It lives in its own section, which the linker script places in a
// PT_NOTE segment.
global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4
    "#
);

// The hypercall page: Xen overwrites it with one 32-byte stub per hypercall
// when the guest writes its address to the MSR CPUID names. Until then it is
// int3, so a premature hypercall traps and is reported.
global_asm!(
    r#"
    .section .hypercall_page, "ax", @progbits
    .balign 4096
    .global hypercall_page
    hypercall_page:
    .fill 4096, 1, 0xcc
    "#
);

// Boot stack, guard page and the temporary page tables, all in .bss (zeroed
// by the entry code before first use, whatever the loader did).
global_asm!(
    r#"
    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_stack_guard
    boot_stack_guard:
    .skip 4096
    .global boot_stack_bottom
    boot_stack_bottom:
    .skip {stack}
    .global boot_stack_top
    boot_stack_top:
    boot_pml4:
    .skip 4096
    boot_pdpt:
    .skip 4096
    boot_pd:
    .skip 4 * 4096
    "#,
    stack = const STACK_SIZE,
);

global_asm!(
    r#"
    .section .rodata.boot, "a"
    .balign 16
    boot_gdt:
    .quad 0
    .quad 0x00209A0000000000
    .quad 0x0000920000000000
    boot_gdt_end:
    .balign 8
    boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
    pvh_start32:
    cli
    cld
    mov ebp, ebx

    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    mov esp, offset boot_stack_top

    mov eax, offset boot_pdpt
    or eax, 3
    mov dword ptr [boot_pml4], eax

    mov eax, offset boot_pd
    or eax, 3
    mov dword ptr [boot_pdpt], eax
    add eax, 4096
    mov dword ptr [boot_pdpt + 8], eax
    add eax, 4096
    mov dword ptr [boot_pdpt + 16], eax
    add eax, 4096
    mov dword ptr [boot_pdpt + 24], eax

    mov edi, offset boot_pd
    mov eax, 0x83
    mov ecx, 2048
    .Lfill_pd:
    mov dword ptr [edi], eax
    mov dword ptr [edi + 4], 0
    add eax, 0x200000
    add edi, 8
    dec ecx
    jnz .Lfill_pd

    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax

    mov eax, 0x80000001
    cpuid
    xor esi, esi
    bt edx, 20
    jnc .Lno_nx
    mov esi, 0x800
    .Lno_nx:
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    or eax, esi
    wrmsr

    mov eax, cr0
    and eax, 0xFFFFFFF3
    or eax, 0x80010003
    mov cr0, eax

    lgdt [boot_gdtr]
    mov eax, 0x08
    push eax
    mov eax, offset long_entry
    push eax
    retf

    .code64
    long_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    mov edi, ebp
    xor ebp, ebp
    call pvh_main
    .Lhang:
    cli
    hlt
    jmp .Lhang
    "#
);

unsafe extern "C" {
    static boot_stack_guard: u8;
    static hypercall_page: u8;
}

/// Physical address of the stack's guard page (left unmapped).
pub fn stack_guard() -> usize {
    // Taking a raw address of an extern static is safe; it is never read.
    &raw const boot_stack_guard as usize
}

/// Physical address of the hypercall page.
pub fn hypercall_page_addr() -> usize {
    &raw const hypercall_page as usize
}
