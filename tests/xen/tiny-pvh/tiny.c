/*
 * tiny-pvh: a reference guest for the moat-on-xen contract (README.md).
 *
 * It does, in the simplest way that works, everything the scenario asks of
 * moat -- find Xen, install the hypercall page, map shared_info and the
 * grant table, use the console and XenStore rings and their event channels,
 * answer a watch, shut down on request -- and prints the contract's lines.
 * It exists to prove the scenario and the toolstack side right before moat
 * implements them; it is not moat and no test of moat uses it.
 *
 * 32-bit protected mode, paging off (as PVH starts us): pointers are
 * physical addresses and Xen's 32-bit hypercall ABI applies.
 */
#include "xen.h"

static u8 shared_page[4096] __attribute__((aligned(4096)));
static u8 grant_page[4096] __attribute__((aligned(4096)));


static volatile u8 *console;
static u32 console_port, store_port;

static void putc(char c)
{
    if (!console) { /* port 0xe9 is slow (an exit per byte): only before the ring */
        outb(0xe9, c);
        return;
    }
    volatile u32 *cons = (volatile u32 *)(console + 3080), *prod = (volatile u32 *)(console + 3084);
    while (*prod - *cons >= 2048)
        yield();
    console[1024 + (*prod & 2047)] = c;
    barrier();
    *prod = *prod + 1;
}

static void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

static void putu(u32 v)
{
    char b[11];
    int i = 10;
    b[i] = 0;
    do {
        b[--i] = '0' + v % 10;
        v /= 10;
    } while (v);
    puts(b + i);
}

static void line_end(void)
{
    putc('\n');
    if (console)
        notify(console_port);
}

static u32 len(const char *s)
{
    u32 n = 0;
    while (s[n])
        n++;
    return n;
}

static int eq(const char *a, const char *b, u32 n)
{
    for (u32 i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* ---- XenStore: byte rings at store page, free-running indices ---- */
static volatile u8 *store;
#define REQ_CONS (*(volatile u32 *)(store + 2048))
#define REQ_PROD (*(volatile u32 *)(store + 2052))
#define RSP_CONS (*(volatile u32 *)(store + 2056))
#define RSP_PROD (*(volatile u32 *)(store + 2060))

static void xs_put(const void *data, u32 n)
{
    const u8 *p = data;
    for (u32 i = 0; i < n; i++) {
        while (REQ_PROD - REQ_CONS >= 1024)
            yield();
        store[REQ_PROD & 1023] = p[i];
        barrier();
        REQ_PROD = REQ_PROD + 1;
    }
    notify(store_port);
}

static void xs_get(void *data, u32 n)
{
    u8 *p = data;
    for (u32 i = 0; i < n; i++) {
        while (RSP_PROD == RSP_CONS)
            yield();
        barrier();
        p[i] = store[1024 + (RSP_CONS & 1023)];
        barrier();
        RSP_CONS = RSP_CONS + 1;
    }
    notify(store_port);
}

struct xs_hdr { u32 type, req_id, tx_id, len; };
static char reply[4097];
static int ping_fired, shutdown_fired;

/* Reads one message; a watch event only raises its flag. */
static u32 xs_read_msg(void)
{
    struct xs_hdr h;
    xs_get(&h, sizeof h);
    if (h.len > 4096)
        h.len = 4096; /* oxenstored never sends more */
    xs_get(reply, h.len);
    reply[h.len] = 0;
    if (h.type == 15) { /* WATCH_EVENT: path\0token\0 */
        const char *token = reply + len(reply) + 1;
        if (eq(token, "ping", 5))
            ping_fired = 1;
        if (eq(token, "shutdown", 9))
            shutdown_fired = 1;
    }
    return h.type;
}

/* One request of two strings (the second without its NUL when `raw`). */
static u32 xs_request(u32 type, const char *a, const char *b, int raw)
{
    static u32 id;
    u32 la = len(a) + 1, lb = b ? len(b) + !raw : 0;
    struct xs_hdr h = { type, ++id, 0, la + lb };
    xs_put(&h, sizeof h);
    xs_put(a, la);
    if (b)
        xs_put(b, lb);
    u32 t;
    while ((t = xs_read_msg()) == 15)
        ;
    return t;
}

static int xs_read(const char *path) { return xs_request(2, path, 0, 0) == 2; }
static int xs_write(const char *path, const char *v) { return xs_request(11, path, v, 1) == 11; }
static int xs_watch(const char *path, const char *token) { return xs_request(4, path, token, 0) == 4; }

static long add_to_physmap(u32 space, u32 idx, void *page)
{
    struct { u16 domid, size; u32 space, idx, gpfn; } a = { DOMID_SELF, 0, space, idx, (u32)page >> 12 };
    return hypercall(12, 7, (u32)&a, 0); /* memory_op(XENMEM_add_to_physmap) */
}

static void marker(const char *s)
{
    puts("MOAT-TEST ");
    puts(s);
}

static void shutdown_now(void)
{
    u32 reason = 0; /* SHUTDOWN_poweroff */
    hypercall(29, 2, (u32)&reason, 0);
    for (;;)
        yield();
}

void guest_main(void)
{
    if (!xen_setup()) {
        puts("tiny-pvh: not on Xen\n");
        for (;;)
            __asm__ volatile("hlt");
    }

    u32 version = hypercall(17, 0, 0, 0); /* xen_version(XENVER_version) */
    console = (volatile u8 *)(u32)(get_param(17) << 12);
    console_port = get_param(18);
    store = (volatile u8 *)(u32)(get_param(1) << 12);
    store_port = get_param(2);

    marker("xen version=");
    putu(version >> 16);
    putc('.');
    putu(version & 0xffff);
    line_end();
    marker("hypercall-page ok");
    line_end();
    if (add_to_physmap(0, 0, shared_page) == 0) {
        /* Xen fills vcpu_info[0]'s time record (in the first 64 bytes, at an
         * offset that depends on the guest's mode) when it next runs us. */
        volatile u32 *w = (volatile u32 *)shared_page;
        int seen = 0;
        for (int tries = 0; tries < 100 && !seen; tries++) {
            yield();
            for (int i = 0; i < 16; i++)
                seen |= w[i] != 0;
        }
        if (seen) {
            marker("shared-info ok");
            line_end();
        }
    }
    if (console && store && console_port && store_port) {
        marker("evtchn ok store=");
        putu(store_port);
        puts(" console=");
        putu(console_port);
        line_end();
    }
    if (add_to_physmap(1, 0, grant_page) == 0) {
        struct { u16 dom; u16 pad; u32 nr_frames, max_nr_frames; short status; } q = { DOMID_SELF, 0, 0, 0, 0 };
        if (hypercall(20, 6, (u32)&q, 1) == 0 && q.status == 0) { /* GNTTABOP_query_size */
            marker("gnttab ok frames=");
            putu(q.nr_frames);
            line_end();
        }
    }

    if (!store)
        shutdown_now();
    static char domid[16], name[64];
    if (xs_read("domid"))
        for (u32 i = 0; i < 15 && reply[i]; i++)
            domid[i] = reply[i];
    if (xs_read("name"))
        for (u32 i = 0; i < 63 && reply[i]; i++)
            name[i] = reply[i];
    marker("xenstore domid=");
    puts(domid);
    puts(" name=");
    puts(name);
    line_end();
    xs_write("data/moat-status", "ready");
    xs_watch("data/moat-ping", "ping");
    xs_watch("control/shutdown", "shutdown");
    xs_write("control/feature-poweroff", "1");
    marker("ready");
    line_end();

    for (;;) {
        while (RSP_PROD == RSP_CONS && !ping_fired && !shutdown_fired)
            yield();
        if (RSP_PROD != RSP_CONS)
            xs_read_msg();
        if (ping_fired) {
            ping_fired = 0;
            if (xs_read("data/moat-ping")) {
                marker("ping value=");
                puts(reply);
                line_end();
            }
        }
        if (shutdown_fired) {
            shutdown_fired = 0;
            if (xs_read("control/shutdown") && eq(reply, "poweroff", 9)) {
                xs_write("control/shutdown", "");
                marker("shutdown reason=poweroff");
                line_end();
                shutdown_now();
            }
        }
    }
}
