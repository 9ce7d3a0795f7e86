#!/bin/sh
# Benchmark, not a test: iperf3 from a client VM through moat and through a
# Linux firewall guest, in the same dom0 of the same run.
#
#   client-moat  (Linux) ─vif─ moat (PVH; netback, netfront) ─vif─┐
#   client-linux (Linux) ─vif─ fw-linux (Linux; xen-netback,     ─vif─┴─ dom0: sys-net,
#                              nftables as Qubes' sys-firewall)          iperf3 -s on 10.140.0.2
#
# dom0 plays sys-net as in moat-clients (lib.sh: sys_net, routed uplink
# vifs). moat is the default system (policies/qubes-default.toml); fw-linux
# is the small Linux guest with xen-netback loaded, the client's vif backed
# by it (`backend=fw-linux`), and Qubes' sys-firewall nftables rules
# (guest-fw.sh). Both firewalls NAT their client to their uplink address.
#
# Each round runs iperf3 -t SECS upload, then download (-R), on the moat side
# and then on the Linux side; the idle side's client is paused meanwhile.
# Output: TESTBED-RATE <side>-<dir>-<round> <Mbit/s> (the receiver's figure),
# the medians, and the moat/Linux ratios. Under TCG the absolute numbers
# mean little; the ratio is the figure.
#
# Inputs (run-scenario --file NAME=PATH): moat.pvh (the image), rounds
# (default 3), secs (default 10), offload (`off`: the Linux side runs with
# segmentation/checksum offloads off on the client's and firewall's
# interfaces and dom0's vif, as moat's drivers offer none; default `on`,
# Linux as it ships).
. ./lib.sh
rounds=$(cat /scenario/files/rounds 2>/dev/null || echo 3)
secs=$(cat /scenario/files/secs 2>/dev/null || echo 10)
offload=$(cat /scenario/files/offload 2>/dev/null || echo on)
srv=10.140.0.2

sys_net 16m
iperf3 -s -B "$srv" -D --logfile /results/iperf3-server.log
check sys-net-ready wait_for 10 busybox wget -q -O /dev/null "http://$srv/index.html"
if ! start_moat /scenario/files/moat.pvh 10.138.0.2; then
  finish
  exit 0
fi

fw="testbed_run=guest-fw.sh testbed_ip=10.138.0.3 testbed_client=10.137.0.12 testbed_offload=$offload"
boot_timed fw-linux "$(linux_guest fw-linux "$fw" "vif = ['ip=10.138.0.3,mac=00:16:3e:00:00:03,script=/tmp/vif-uplink']")" \
  '^TESTBED-GUEST ready' 400 &
pf=$!
client() { # SIDE IP GATEWAY MAC BACKEND
  args="testbed_run=guest-iperf.sh testbed_ip=$2 testbed_gw=$3 testbed_side=$1 testbed_secs=$secs testbed_offload=$offload"
  linux_guest "client-$1" "$args" "vif = ['backend=$5,ip=$2,mac=$4']"
}
boot_timed client-moat "$(client moat 10.137.0.10 10.138.0.2 00:16:3e:5e:6c:0a moat)" '^TESTBED-GUEST ready' 400 &
pm=$!
wait "$pf"
check fw-linux-up wait_line "$(console_log fw-linux)" '^TESTBED-GUEST fw ready' 120
check fw-linux-nft grep -q '^TESTBED-GUEST nft ok' "$(console_log fw-linux)"
grep -a 'TESTBED-GUEST' "$(console_log fw-linux)" | sed 's/^/fw-linux: /'
if [ "$offload" = off ]; then
  # dom0's side of fw-linux's uplink: no segmentation offload either.
  fwvif=vif$(xl domid fw-linux).0
  ethtool -K "$fwvif" sg off tso off gso off gro off tx off >/dev/null 2>&1 || echo "TESTBED-NOTE ethtool $fwvif failed"
fi
boot_timed client-linux "$(client linux 10.137.0.12 10.138.0.3 00:16:3e:5e:6c:0c fw-linux)" '^TESTBED-GUEST ready' 400 &
pl=$!
# fw-linux's netback waits for hotplug-status before it connects the vif;
# in a real driver domain `xl devd` runs the vif script and writes it.
fwid=$(xl domid fw-linux)
hotplug() {
  c=$(xl domid client-linux 2>/dev/null) &&
    xenstore-exists "/local/domain/$fwid/backend/vif/$c/0/state" &&
    xenstore-write "/local/domain/$fwid/backend/vif/$c/0/hotplug-status" connected
}
check fw-linux-hotplug wait_for 300 hotplug
wait "$pm" "$pl"
sides=
for side in moat linux; do
  if wait_line "$(console_log "client-$side")" '^TESTBED-GUEST net (ok|failed)' 300 &&
    grep -q '^TESTBED-GUEST net ok' "$(console_log "client-$side")"; then
    ok "client-$side-net"
    sides="$sides $side"
  else
    fail "client-$side-net" "no ping to $srv through its firewall"
  fi
done
check fw-linux-vif wait_line "$(console_log fw-linux)" '^TESTBED-GUEST vif vif' 60
grep -h '^TESTBED-GUEST \(offloads\|vif\)' "$(console_log client-moat)" "$(console_log client-linux)" "$(console_log fw-linux)"
xl pause client-moat
xl pause client-linux

# measure SIDE ROUND: wake the side's client, tell it to go, read its rates.
measure() {
  l=$(console_log "client-$1")
  xl unpause "client-$1"
  touch "/srv/go-$1-$2"
  if wait_line "$l" "^TESTBED-GUEST iperf round=$2 done" $((secs * 10 + 120)); then
    for dir in up down; do
      v=$(sed -n "s/^TESTBED-GUEST iperf round=$2 dir=$dir mbps=\([0-9.]*\).*/\1/p" "$l" | tail -n 1)
      echo "TESTBED-RATE $1-$dir-$2 ${v:-none}"
      [ -n "$v" ] && echo "$v" >>"/tmp/rates-$1-$dir"
    done
    ok "$1-round-$2"
  else
    fail "$1-round-$2" "no result within $((secs * 10 + 120)) s"
  fi
  xl pause "client-$1"
}
r=1
while [ "$r" -le "$rounds" ]; do
  for side in $sides; do measure "$side" "$r"; done
  r=$((r + 1))
done
grep -h '^TESTBED-GUEST iperf' "$(console_log client-moat)" "$(console_log client-linux)"

median() { sort -n "$1" 2>/dev/null | awk '{ v[NR] = $1 } END { if (NR == 0) print "none"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for dir in up down; do
  m=$(median "/tmp/rates-moat-$dir")
  l=$(median "/tmp/rates-linux-$dir")
  echo "TESTBED-RATE moat-$dir-median $m"
  echo "TESTBED-RATE linux-$dir-median $l"
  echo "TESTBED-RATE ratio-moat-to-linux-$dir $(awk -v m="$m" -v l="$l" 'BEGIN { if (l + 0 > 0 && m + 0 > 0) printf "%.3f\n", m / l; else print "none" }')"
done
echo "TESTBED-NOTE iperf3 server saw: $(grep -o 'Accepted connection from [0-9.]*' /results/iperf3-server.log | sort | uniq -c | tr -s ' ' | tr '\n' ';')"

xl unpause client-moat
xl unpause client-linux
moat_fresh_status
grep -E '^moat: (status|ops:)' "$(console_log moat)" | tail -n 12 | sed 's/^/moat-final: /'
check moat-ops-refused-none [ "$(moat_status netback error.ops_refused)" = 0 ]
timeout 60 xl shutdown -w client-moat >/dev/null 2>&1
timeout 60 xl shutdown -w client-linux >/dev/null 2>&1
check moat-xl-shutdown timeout 60 xl shutdown -w moat
cp "$(console_log moat)" /results/moat-console.log 2>/dev/null
finish
