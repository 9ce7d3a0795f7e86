/* PVH entry: 32-bit protected mode, paging off, no stack. */
#include "pvh-note.h"

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
