/* The PVH entry point note (XEN_ELFNOTE_PHYS32_ENTRY) naming _start, which
 * Xen enters in 32-bit protected mode with paging off and no stack. Shared
 * by start.S (tiny-pvh, the xenstore relay) and crash.S. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 8, 18          /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start, 0
