#!/bin/sh
# Benchmark, not a test: time from `xl create` to the guest's ready line on
# its PV console (as xenconsoled logs it), for the small Linux PVH guest and
# for moat's image, one after the other in the same dom0 of the same run.
# Each guest boots ROUNDS times (file `rounds`, default 3), alone.
#
# Inputs (run-scenario --file NAME=PATH): moat.pvh (optional: without it only
# Linux is timed), moat-ready (optional: an extended regex for moat's ready
# line instead of the contract's '^MOAT-TEST ready').
. ./lib.sh
rounds=$(cat /scenario/files/rounds 2>/dev/null || echo 3)
moat_ready=$(cat /scenario/files/moat-ready 2>/dev/null || echo '^MOAT-TEST ready')

i=1
while [ "$i" -le "$rounds" ]; do
  if boot_timed "linux-$i" "$(linux_guest "linux-$i")" '^TESTBED-GUEST ready' 200; then
    timeout 30 xl destroy "linux-$i"
  fi
  if [ -s /scenario/files/moat.pvh ]; then
    cat >"/tmp/moat-$i.cfg" <<CFG
name = "moat-$i"
type = "pvh"
kernel = "/scenario/files/moat.pvh"
memory = 32
maxmem = 32
vcpus = 1
on_poweroff = "preserve"
CFG
    boot_timed "moat-$i" "/tmp/moat-$i.cfg" "$moat_ready" 60
    timeout 30 xl destroy "moat-$i"
  fi
  i=$((i + 1))
done
finish
