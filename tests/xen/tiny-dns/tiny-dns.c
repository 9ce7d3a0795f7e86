/*
 * tiny-dns: a minimal DNS responder for the real-Xen testbed's "sys-net"
 * (dom0's busybox has no DNS server). Answers A queries for one name with
 * one address, NXDOMAIN for anything else, over UDP on one address.
 *
 *   tiny-dns LISTEN-ADDR NAME ADDR      e.g. tiny-dns 10.139.1.1 test.moat 10.140.0.2
 *
 * Built statically with the host's gcc (tests/xen/src/lib.rs) and packed
 * into the scenario; it is test machinery, not part of moat.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* The question's name as dotted text; returns bytes of the name field. */
static int qname(const unsigned char *p, int n, char *out, int cap) {
    int i = 0, o = 0;
    while (i < n && p[i] != 0) {
        int len = p[i++];
        if (len > 63 || i + len > n || o + len + 1 >= cap)
            return -1;
        if (o)
            out[o++] = '.';
        memcpy(out + o, p + i, len);
        o += len;
        i += len;
    }
    if (i >= n)
        return -1;
    out[o] = 0;
    return i + 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tiny-dns LISTEN-ADDR NAME ADDR\n");
        return 2;
    }
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(53)};
    struct in_addr answer;
    if (!inet_aton(argv[1], &me.sin_addr) || !inet_aton(argv[3], &answer)) {
        fprintf(stderr, "tiny-dns: bad address\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof me) < 0) {
        perror("tiny-dns: bind");
        return 1;
    }
    unsigned char q[512], r[600];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        int n = recvfrom(s, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 12 || (q[2] & 0x80) || q[4] != 0 || q[5] != 1)
            continue; /* not a one-question query */
        char name[256];
        int nl = qname(q + 12, n - 12, name, sizeof name);
        if (nl < 0 || 12 + nl + 4 > n)
            continue;
        int qend = 12 + nl + 4;
        int qtype = q[12 + nl] << 8 | q[12 + nl + 1];
        int hit = strcasecmp(name, argv[2]) == 0;
        memcpy(r, q, qend);
        r[2] = 0x84 | (q[2] & 0x01); /* response, authoritative, RD copied */
        r[3] = hit ? 0x00 : 0x03;    /* NOERROR or NXDOMAIN */
        r[6] = 0;
        r[7] = hit && qtype == 1;
        memset(r + 8, 0, 4);
        int len = qend;
        if (r[7]) {
            unsigned char a[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
            memcpy(a + 12, &answer, 4);
            memcpy(r + len, a, 16);
            len += 16;
        }
        sendto(s, r, len, 0, (struct sockaddr *)&from, fl);
        printf("tiny-dns: %s type %d from %s: %s\n", name, qtype, inet_ntoa(from.sin_addr), hit ? "answered" : "nxdomain");
        fflush(stdout);
    }
}
