#!/bin/sh
# moat as the firewall between client VMs and sys-net, on real Xen.
#
#   client-a (Linux) ─vif─┐
#   client-b (Linux) ─vif─┴─ moat (PVH) ─vif─ dom0: routes, HTTP 10.140.0.2, DNS 10.139.1.1
#        netfront      netback      netfront  netback (routed, proxy ARP, as Qubes' sys-net)
#
# dom0 plays sys-net: moat's uplink vif is routed (10.138.0.1 on the vif,
# a route to moat's 10.138.0.2, proxy ARP), and a network namespace holds the
# "internet": busybox httpd and dnsd on its loopback. The clients' vifs name moat as their
# backend (`backend=moat`); moat's netback serves them, its netfront talks to
# dom0's Linux netback, and the packets go through csum, rules and nat.
#
# Checked: both clients connect; ping, DNS (through moat's DNS redirect),
# HTTP and a download (100 MB unless big_mb says) with a matching SHA-256; a port the
# policy rejects gives an immediate ICMP refusal; a spoofed source reaches
# nothing and moat counts it; while client-b floods, client-a's fetch
# completes; client-a's vif detached and re-attached 50 times, each time
# connecting, with moat holding exactly the channels, mappings and watches
# of the vifs present at the end.
#
# Files: moat.pvh (the image `moat build` made from a system whose policy
# has client-a's rules, see tests/xen/systems/), tiny-dns (the DNS server,
# tests/xen/tiny-dns/), cycles (optional: detach/attach cycles, default 50),
# big_mb (optional: the download's size in MiB, default 100).
. ./lib.sh

image=/scenario/files/moat.pvh
cycles=50
[ -f /scenario/files/cycles ] && cycles=$(cat /scenario/files/cycles)
big_mb=100
[ -f /scenario/files/big_mb ] && big_mb=$(cat /scenario/files/big_mb)

# --- sys-net: the "internet" and routing (lib.sh) ---------------------------
sys_net 160m
head -c $((big_mb * 1048576)) /dev/urandom >/srv/big
big_sum=$(sha256sum /srv/big | cut -d' ' -f1)
head -c 10485760 /dev/urandom >/srv/ten
/scenario/files/tiny-dns 10.139.1.1 test.moat 10.140.0.2 >/results/tiny-dns.log 2>&1 &
check sys-net-ready wait_for 10 busybox wget -q -O /dev/null http://10.140.0.2/index.html

if ! start_moat "$image" 10.138.0.2; then
  finish
  exit 0
fi
moat=$(xl domid moat)
log=$(console_log moat)

# --- the clients -----------------------------------------------------------
client() { # NAME IP ROLE MAC
  extra="testbed_run=guest-client.sh testbed_ip=$2 testbed_gw=10.138.0.2 testbed_role=$3 testbed_sum=$big_sum"
  linux_guest "$1" "$extra" "vif = ['backend=moat,ip=$2,mac=$4']"
}
boot_timed client-a "$(client client-a 10.137.0.10 a 00:16:3e:5e:6c:0a)" '^TESTBED-GUEST ready' 400 &
pa=$!
boot_timed client-b "$(client client-b 10.137.0.11 b 00:16:3e:5e:6c:0b)" '^TESTBED-GUEST ready' 400 &
pb=$!
# Only these two: a bare `wait` would wait for tiny-dns too, for ever.
# A client that did not come up fails the run here: every later check
# would otherwise wait out its own time bound for nothing.
if ! wait "$pa" || ! wait "$pb"; then
  finish
  exit 0
fi
a=$(xl domid client-a)
b=$(xl domid client-b)
be() { xenstore-read "/local/domain/$moat/backend/vif/$1/$2/state" 2>/dev/null; }
# connected DOMID DEVID: moat's backend says Connected (a function, so that
# wait_for reads the state afresh each time).
connected() { [ "$(be "$1" "$2")" = 4 ]; }
check client-a-vif-connected wait_for 60 connected "$a" 0
check client-b-vif-connected wait_for 60 connected "$b" 0
la=$(console_log client-a)
lb=$(console_log client-b)
for t in ping dns http big reject spoof; do
  check "client-a-$t" wait_line "$la" "^TESTBED-GUEST $t ok" 600 moat client-a
done
grep '^TESTBED-GUEST' "$la" | sed 's/^/client-a: /'
check client-b-ping wait_line "$lb" '^TESTBED-GUEST ping ok' 60
moat_fresh_status
check moat-counted-the-spoof [ "$(moat_status netback drop.spoofed)" -ge 1 ]
check moat-counted-the-reject [ "$(moat_status nat icmp.sent.reject)" -ge 1 ]

# --- a flood from client-b while client-a fetches -----------------------------
touch /srv/flood-now
check client-b-flooding wait_line "$lb" '^TESTBED-GUEST flood started' 60
t0=$(now_ms)
touch /srv/fetch-now
check client-a-fetch-under-flood wait_line "$la" '^TESTBED-GUEST flood-fetch ok' 300 moat client-a
echo "TESTBED-TIME client-a-fetch-10MB-under-flood $(($(now_ms) - t0))"
check client-b-flood-done wait_line "$lb" '^TESTBED-GUEST flood done' 300 moat client-b

# --- detach and re-attach client-a's vif --------------------------------------
gone() { ! xenstore-exists "/local/domain/$moat/backend/vif/$a/$1"; }
i=0
dev=0
while [ "$i" -lt "$cycles" ]; do
  i=$((i + 1))
  xl network-detach client-a "$dev" >>/results/xl-network.txt 2>&1
  wait_for 30 gone "$dev" || { fail "cycle-$i-detach" "backend dir of vif $dev still there"; break; }
  xl network-attach client-a backend=moat ip=10.137.0.10 mac=00:16:3e:5e:6c:0a >>/results/xl-network.txt 2>&1
  dev=$(xenstore-list "/local/domain/$a/device/vif" 2>/dev/null | sort -n | tail -n 1)   # "10" lists before "9"
  wait_for 60 connected "$a" "$dev" || { fail "cycle-$i-connect" "vif $dev not connected"; break; }
done
[ "$i" -eq "$cycles" ] && connected "$a" "$dev" && ok "vif-detach-attach-$cycles-cycles"
moat_fresh_status
moat_fresh_status
check moat-channels-after-cycles [ "$(moat_status netback held.channels)" = 2 ]
check moat-maps-after-cycles [ "$(moat_status netback held.maps)" = 4 ]
check moat-watches-after-cycles [ "$(moat_status netback held.watches)" = 2 ]
check moat-connects-counted [ "$(moat_status netback vif.connects)" -ge $((cycles + 2)) ]
# Buffers not yet home may rest in the free rings on their way back (each
# consumer is woken for a batch of 1/32 of its ring: 32 of 1024 here, on
# two rings back to netback), never more; a leak per cycle would pass that.
echo "moat: netback held.buffers=$(moat_status netback held.buffers) after the cycles"
check moat-buffers-home [ "$(moat_status netback held.buffers)" -le 64 ]
check moat-ops-refused-none [ "$(moat_status netback error.ops_refused)" = 0 ]
grep '^moat: ops:' "$log" | tail -n 4
# The image's last check before Xen writes for the drivers (pvh xen/fence.rs):
# a copy, map or grant outside the arena and the devices' pages is a bug above.
fenced_none() { grep '^moat: ops: grant references' "$log" | tail -n 1 | grep -q 'ops fenced off 0$'; }
check moat-ops-fenced-none fenced_none

# --- shutdown: moat goes, clients' vifs close --------------------------------
check clients-shutdown sh -c 'xl shutdown -w client-a >/dev/null 2>&1; xl shutdown -w client-b >/dev/null 2>&1; true'
check moat-xl-shutdown timeout 60 xl shutdown -w moat
cp "$log" /results/moat-console.log 2>/dev/null
finish
