/*
 * xs-relay: a PVH guest that is nothing but its XenStore connection, moved
 * to its PV console. Every byte that arrives on the console goes into the
 * XenStore request ring; every byte of the response ring goes out on the
 * console. In dom0, the console's tty (xenconsoled's pty) is then this
 * domain's own, unprivileged XenStore connection: the same byte stream of
 * messages as the daemon's socket, with the domain ring's path and the
 * permissions of a domU. moat-xs-compare uses it to run its script and the
 * xenstore component as a real domU against the real oxenstored.
 *
 * The guest prints nothing on its console (that stream is the relay);
 * what it has to say goes to port 0xe9 (Xen's serial log, `(dN)` lines).
 * Built like tests/xen/tiny-pvh (32-bit, paging off: pointers are physical
 * addresses), whose linker script it shares.
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

static void debug(const char *s)
{
    while (*s)
        outb(0xe9, *s++);
}

static void debug_u(u32 v)
{
    char b[11];
    int i = 10;
    b[i] = 0;
    do {
        b[--i] = '0' + v % 10;
        v /= 10;
    } while (v);
    debug(b + i);
}

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

/* Console page: in[1024] @0, out[2048] @1024, then the four indices. */
static volatile u8 *con;
#define IN_CONS (*(volatile u32 *)(con + 3072))
#define IN_PROD (*(volatile u32 *)(con + 3076))
#define OUT_CONS (*(volatile u32 *)(con + 3080))
#define OUT_PROD (*(volatile u32 *)(con + 3084))
/* XenStore page: req[1024] @0, rsp[1024] @1024, then the four indices. */
static volatile u8 *xs;
#define REQ_CONS (*(volatile u32 *)(xs + 2048))
#define REQ_PROD (*(volatile u32 *)(xs + 2052))
#define RSP_CONS (*(volatile u32 *)(xs + 2056))
#define RSP_PROD (*(volatile u32 *)(xs + 2060))

void relay_main(void)
{
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000));
    if (b != 0x566e6558 || c != 0x65584d4d || d != 0x4d4d566e) { /* "XenVMMXenVMM" */
        debug("xs-relay: not on Xen\n");
        for (;;)
            __asm__ volatile("hlt");
    }
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000002));
    __asm__ volatile("wrmsr" : : "c"(b), "a"((u32)hypercall_page), "d"(0));

    con = (volatile u8 *)(u32)(get_param(17) << 12); /* HVM_PARAM_CONSOLE_PFN */
    u32 con_port = get_param(18);
    xs = (volatile u8 *)(u32)(get_param(1) << 12); /* HVM_PARAM_STORE_PFN */
    u32 xs_port = get_param(2);
    debug("xs-relay: store port ");
    debug_u(xs_port);
    debug(", console port ");
    debug_u(con_port);
    debug(": relaying\n");
    if (!con || !xs)
        for (;;)
            yield();

    for (;;) {
        int moved = 0;
        /* Console input to XenStore requests. */
        u32 ic = IN_CONS, ip = IN_PROD;
        u32 qc = REQ_CONS, qp = REQ_PROD;
        barrier(); /* the producers' indices before their data */
        u32 n = 0;
        while (ic != ip && qp - qc < 1024) {
            xs[qp & 1023] = con[ic & 1023];
            ic++, qp++, n++;
        }
        if (n) {
            barrier(); /* data before indices */
            REQ_PROD = qp;
            IN_CONS = ic;
            barrier();
            notify(xs_port);
            notify(con_port);
            moved = 1;
        }
        /* XenStore responses and events to console output. */
        u32 sc = RSP_CONS, sp = RSP_PROD;
        u32 oc = OUT_CONS, op = OUT_PROD;
        barrier();
        n = 0;
        while (sc != sp && op - oc < 2048) {
            con[1024 + (op & 2047)] = xs[1024 + (sc & 1023)];
            sc++, op++, n++;
        }
        if (n) {
            barrier();
            OUT_PROD = op;
            RSP_CONS = sc;
            barrier();
            notify(con_port);
            notify(xs_port);
            moved = 1;
        }
        if (!moved)
            yield();
    }
}
