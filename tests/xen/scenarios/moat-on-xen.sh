#!/bin/sh
# moat's PVH image on real Xen (issue 9): booted by `xl create` with the
# settings Qubes uses for a firewall (type pvh, 32 MiB, one vCPU), checked
# through what the real toolstack sees: its PV console log (via xenconsoled),
# oxenstored's contents, watches, `xl shutdown` and `xl destroy`. The marker
# lines moat prints are the contract in tests/xen/README.md.
#
# Input: /scenario/files/moat.pvh (run-scenario --file moat.pvh=PATH).
# Timing against a Linux guest is the boot-times scenario's job.
. ./lib.sh
image=/scenario/files/moat.pvh

moat_cfg() {
  cat >"/tmp/$1.cfg" <<CFG
name = "$1"
type = "pvh"
kernel = "$image"
memory = 32
maxmem = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
CFG
  echo "/tmp/$1.cfg"
}

# marker NAME REGEX: the console log of NAME has a line matching REGEX.
marker() { grep -Eq -- "$2" "$(console_log "$1")" 2>/dev/null; }

if [ ! -s "$image" ]; then
  fail moat-image "no image at $image"
  finish
  exit 0
fi

if boot_timed moat "$(moat_cfg moat)" '^MOAT-TEST ready' 60; then
  id=$(xl domid moat)
  log=$(console_log moat)
  check moat-xen-detected marker moat '^MOAT-TEST xen version=4\.17( |$)'
  check moat-hypercall-page marker moat '^MOAT-TEST hypercall-page ok'
  check moat-shared-info marker moat '^MOAT-TEST shared-info ok'
  store=$(xenstore-read "/local/domain/$id/store/port")
  cons=$(xenstore-read "/local/domain/$id/console/port")
  check moat-evtchn marker moat "^MOAT-TEST evtchn ok store=$store console=$cons( |$)"
  check moat-gnttab marker moat '^MOAT-TEST gnttab ok frames=[1-9][0-9]*( |$)'
  check moat-xenstore-identity marker moat "^MOAT-TEST xenstore domid=$id name=moat( |$)"
  check moat-status-key [ "$(xenstore-read "/local/domain/$id/data/moat-status")" = ready ]

  nonce="ping-$(cut -d' ' -f1 /proc/uptime | tr -d .)"
  xenstore-write "/local/domain/$id/data/moat-ping" "$nonce"
  check moat-watch-event wait_line "$log" "^MOAT-TEST ping value=$nonce( |$)" 10

  check moat-xl-shutdown timeout 60 xl shutdown -w moat
  check moat-saw-shutdown marker moat '^MOAT-TEST shutdown reason=poweroff( |$)'
  check moat-shutdown-leaves-nothing leaves_nothing moat "$id"
  # If it did not go, make room for the next one.
  xl destroy moat 2>/dev/null
fi

if boot_timed moat-destroy "$(moat_cfg moat-destroy)" '^MOAT-TEST ready' 60; then
  id=$(xl domid moat-destroy)
  check moat-destroy timeout 30 xl destroy moat-destroy
  check moat-destroy-leaves-nothing leaves_nothing moat-destroy "$id"
fi
finish
