/*
 * xs-relay: a PVH guest whose XenStore connection dom0 drives. dom0
 * (moat-xs-compare's RingLink) maps this domain's XenStore ring page with
 * the grant device and plays the guest's half of the ring: it writes
 * requests and reads replies and watch events itself. The one thing dom0
 * cannot do is signal the store's event channel on this domain's behalf,
 * so this guest watches the ring's indices and, whenever dom0 has moved
 * one (new requests, or room made in the reply ring), notifies the store.
 * oxenstored thus serves an ordinary domU ring connection, with a domU's
 * path and permissions, and no byte of it passes through this guest.
 *
 * (An earlier relay copied the ring to the PV console and dom0 used the
 * console's pty; xenconsoled replaces a pty it finds "broken", which cut
 * the connection about one run in three.)
 *
 * What it has to say goes to port 0xe9 (Xen's serial log, `(dN)` lines).
 * Built like tests/xen/tiny-pvh (32-bit, paging off: pointers are physical
 * addresses), whose start-up code, helpers and linker script it shares.
 */
#include "../../xen/tiny-pvh/xen.h"

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

/* XenStore page: req[1024] @0, rsp[1024] @1024, then the four indices. */
static volatile u8 *xs;
#define REQ_PROD (*(volatile u32 *)(xs + 2052))
#define RSP_CONS (*(volatile u32 *)(xs + 2056))

void guest_main(void)
{
    if (!xen_setup()) {
        debug("xs-relay: not on Xen\n");
        for (;;)
            __asm__ volatile("hlt");
    }

    xs = (volatile u8 *)(u32)(get_param(1) << 12); /* HVM_PARAM_STORE_PFN */
    u32 xs_port = get_param(2);
    debug("xs-relay: store port ");
    debug_u(xs_port);
    debug(": passing on events for dom0\n");
    if (!xs)
        for (;;)
            yield();

    /* Not a value the indices hold at start: the first look notifies once,
     * in case dom0 wrote before this guest ran. */
    u32 req_seen = 0xffffffff, rsp_seen = 0xffffffff;
    for (;;) {
        u32 req = REQ_PROD, rsp = RSP_CONS;
        barrier(); /* dom0's data is in the page before its index moved */
        if (req != req_seen || rsp != rsp_seen) {
            req_seen = req;
            rsp_seen = rsp;
            notify(xs_port);
        } else {
            yield();
        }
    }
}
