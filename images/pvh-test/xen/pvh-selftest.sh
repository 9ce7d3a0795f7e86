#!/bin/sh
# The PVH image on real Xen (the testbed of tests/xen, issue 9): boots the
# image as a PVH domU (32 MiB, 1 vCPU) with `selftest` on its command line
# and checks its PV console log (written by xenconsoled): Xen detected, the
# console and XenStore rings found, an event channel looped back to itself,
# a grant copy between two of its frames, the self-test passed, and the
# domain gone after its SCHEDOP_shutdown.
#
# Run with the testbed's runner (read-only use; results outside the repo):
#   MOAT_TESTBED_RESULTS=/tmp/results tests/xen/scripts/run-scenario \
#     --timeout 400 --file moat.pvh=target/pvh/x86_64-unknown-none/release/moat-pvh \
#     images/pvh-test/xen/pvh-selftest.sh
. ./lib.sh
image=/scenario/files/moat.pvh
cat >/tmp/moat.cfg <<CFG
name = "moat"
type = "pvh"
kernel = "$image"
cmdline = "selftest"
memory = 32
maxmem = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
CFG
t0=$(now_ms)
if xl create /tmp/moat.cfg >/results/xl-create.txt 2>&1; then
  ok moat-create
  log=$(console_log moat)
  check moat-selftest-done wait_line "$log" 'moat: (selftest PASS|selftest FAIL|EXCEPTION|PANIC)' 90
  echo "TESTBED-TIME moat-selftest $(( $(now_ms) - t0 )) ms"
  check moat-on-xen wait_line "$log" '^moat: on Xen 4\.17' 1
  check moat-console-ring wait_line "$log" 'moat: xen: console ring at pfn' 1
  check moat-xenstore-ring wait_line "$log" 'moat: xen: XenStore ring at pfn' 1
  check moat-evtchn-loopback wait_line "$log" 'event channel loopback .*: ok' 1
  check moat-grant-copy wait_line "$log" 'grant copy \(local frames\): ok' 1
  check moat-selftest-pass wait_line "$log" 'moat: selftest PASS' 1
  check moat-shutdown wait_gone moat 30
  cp "$log" /results/moat-console.log 2>/dev/null
else
  fail moat-create "$(tail -n 3 /results/xl-create.txt)"
fi
finish
