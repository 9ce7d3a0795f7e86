/*
 * The little of Xen the testbed's C guests need (tiny-pvh, and the
 * XenStore comparison's relay in tests/xs-compare/relay): 32-bit protected
 * mode, paging off, as PVH starts them, so pointers are physical addresses
 * and Xen's 32-bit hypercall ABI applies. start.S enters guest_main().
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define DOMID_SELF 0x7ff0

extern u8 hypercall_page[4096];

static long hypercall(u32 nr, u32 a1, u32 a2, u32 a3)
{
    long r = (long)(hypercall_page + nr * 32);
    __asm__ volatile("call *%0" : "+a"(r), "+b"(a1), "+c"(a2), "+d"(a3) : : "memory", "esi", "edi");
    return r;
}

static void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
/* A full barrier (x86: a locked instruction). */
static void barrier(void) { __asm__ volatile("lock; addl $0,(%%esp)" : : : "memory"); }

static void notify(u32 port)
{
    u32 send = port;
    hypercall(32, 4, (u32)&send, 0); /* event_channel_op(EVTCHNOP_send) */
}

static void yield(void) { hypercall(29, 0, 0, 0); } /* sched_op(SCHEDOP_yield) */

static u64 get_param(u32 index)
{
    struct { u16 domid; u16 pad; u32 index; u64 value; } p = { DOMID_SELF, 0, index, 0 };
    if (hypercall(34, 1, (u32)&p, 0)) /* hvm_op(HVMOP_get_param) */
        return 0;
    return p.value;
}

/* Finds Xen (CPUID leaves 0x40000000..) and installs the hypercall page;
 * 0 if this is not Xen. */
static int xen_setup(void)
{
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000));
    if (b != 0x566e6558 || c != 0x65584d4d || d != 0x4d4d566e) /* "XenVMMXenVMM" */
        return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000002));
    __asm__ volatile("wrmsr" : : "c"(b), "a"((u32)hypercall_page), "d"(0));
    return 1;
}
