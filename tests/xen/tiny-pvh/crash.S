/* crash-pvh: a PVH guest that triple-faults on purpose, with a known stack
 * and code, so the testbed's crash report (scripts/crash-report) can be
 * checked against what it must find: `ud2` at rip, the marker words on the
 * stack, an empty IDT. Built by `build OUT crash`. */
#include "pvh-note.h"

    .text
    .globl _start
_start:
    mov $stack_top, %esp
    push $0x74616f6d        /* "moat" */
    push $0x68736172        /* "rash" */
    lidt idt_empty
    ud2                     /* #UD with no IDT: #GP, #DF, triple fault */

    .data
idt_empty:
    .word 0
    .long 0

    .bss
    .balign 4096
    .skip 4096
stack_top:

    .section .note.GNU-stack, "", @progbits
