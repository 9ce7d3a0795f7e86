#!/bin/sh
# The test XenStore (tests/xenstored) against a real XenStore daemon: the
# same operations, and the real xenstore component, on both; every
# difference not documented in tests/xenstored's crate docs fails a check
# (issues 6 and 9). The comparing program is moat-xs-compare
# (tests/xs-compare), built on the host; it prints the TESTBED-CHECK lines
# itself, one per section of each comparison.
#
# 1. ops-dom0: its script as dom0, over the daemon's socket (a paused
#    spare domain is created and destroyed for the special watches).
# 2. component: the xenstore component as an unprivileged domain, through
#    the XenStore ring of a relay guest (tests/xs-compare/relay): dom0 maps
#    that ring page with the grant device and drives the guest's half of
#    it; the guest only passes on the store's event.
# 3. ops-domain: the script again, as another relay domain.
#
# The daemon is oxenstored (what dom0's /init starts), or cxenstored (the C
# xenstored, what Qubes runs) when /scenario/files/daemon says
# `cxenstored`: oxenstored is then replaced before anything runs.
#
# Input: /scenario/files/moat-xs-compare, /scenario/files/xs-relay, and
# optionally /scenario/files/daemon (run-scenario --file NAME=PATH).
# Transcripts: /results/xs-*.txt.
. ./lib.sh
bin=/scenario/files/moat-xs-compare
relay=/scenario/files/xs-relay
chmod 755 "$bin" 2>/dev/null
sock=/run/xenstored/socket
daemon=ox
grep -qx cxenstored /scenario/files/daemon 2>/dev/null && daemon=cx

if [ ! -x "$bin" ] || [ ! -s "$relay" ]; then
  fail xs-compare-inputs "need $bin and $relay"
  finish
  exit 0
fi
ok xs-compare-inputs

# Replaces oxenstored with cxenstored, as dom0's /init started it: the
# daemon, dom0's keys (xen-init-dom0), xenconsoled.
to_cxenstored() {
  for p in $(pidof xenconsoled oxenstored); do kill "$p"; done
  i=0
  while pidof oxenstored xenconsoled >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  rm -f /run/xenstored/socket /run/xenstored/socket_ro
  /usr/lib/xen-4.17/bin/xenstored --pid-file=/run/cxenstored.pid || return 1
  i=0
  until xenstore-read /local >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
  xen-init-dom0 >/results/xen-init-dom0-cx.txt 2>&1 || return 1
  xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || return 1
  pidof xenstored >/dev/null && ! pidof oxenstored >/dev/null
}
if [ $daemon = cx ]; then
  check xs-cx-daemon-up to_cxenstored
fi

# relay_up NAME: starts a relay domain, prints its domid once the daemon
# knows the domain (its ring page is then granted to dom0 and introduced).
relay_up() {
  cat >"/tmp/$1.cfg" <<CFG
name = "$1"
type = "pvh"
kernel = "$relay"
memory = 16
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
CFG
  xl create "/tmp/$1.cfg" >"/results/xl-create-$1.txt" 2>&1 || xl domid "$1" >/dev/null 2>&1 || return 1
  id=$(xl domid "$1") || return 1
  end=$(($(now_ms) + 20000))
  while [ "$(now_ms)" -lt "$end" ]; do
    [ "$(xenstore-read "/local/domain/$id/name" 2>/dev/null)" = "$1" ] && { echo "$id"; return 0; }
    sleep 0.1
  done
  return 1
}

t0=$(now_ms)
"$bin" ops-dom0 --daemon $daemon --socket "$sock" --spare-kernel "$relay" --out /results
echo "TESTBED-TIME xs-$daemon-ops-dom0 $(($(now_ms) - t0))"

for what in component ops-domain; do
  name="xs-relay-$what"
  t0=$(now_ms)
  if set -- $(relay_up "$name") && [ $# -eq 1 ]; then
    ok "xs-$daemon-$what-relay-up"
    "$bin" "$what" --daemon $daemon --socket "$sock" --domid "$1" --name "$name" --out /results
    echo "TESTBED-TIME xs-$daemon-$what $(($(now_ms) - t0))"
  else
    fail "xs-$daemon-$what-relay-up" "no relay domain known to the daemon"
  fi
  xl destroy "$name" 2>/dev/null
done
finish
