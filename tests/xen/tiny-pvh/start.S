/* PVH entry: 32-bit protected mode, paging off, no stack. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 8, 18          /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start, 0

    .text
    .globl _start
_start:
    mov $stack_top, %esp
    call guest_main
1:  hlt
    jmp 1b

    .bss
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .skip 4096
    .skip 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
