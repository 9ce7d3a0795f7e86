#!/bin/sh
# The small Linux guest on real Xen: PVH boot, PV console, XenStore
# identity, clean shutdown on `xl shutdown`, and nothing left after either
# shutdown or `xl destroy`. It proves the machinery that moat's scenario
# relies on, with a guest whose behaviour is known.
. ./lib.sh

if boot_timed linux-guest "$(linux_guest linux-guest)" '^TESTBED-GUEST ready' 90; then
  id=$(xl domid linux-guest)
  check linux-guest-xenstore-name [ "$(xenstore-read "/local/domain/$id/name")" = linux-guest ]
  # The second guest (for xl destroy) boots while the first shuts down.
  xl create "$(linux_guest linux-destroy)" >/results/xl-create-linux-destroy.txt 2>&1 &
  check linux-guest-shutdown timeout 60 xl shutdown -w linux-guest
  check linux-guest-saw-shutdown wait_line "$(console_log linux-guest)" '^TESTBED-GUEST shutdown' 5
  check linux-guest-shutdown-leaves-nothing leaves_nothing linux-guest "$id"
  wait
  if wait_line "$(console_log linux-destroy)" '^TESTBED-GUEST ready' 90; then
    id=$(xl domid linux-destroy)
    check linux-destroy-destroy timeout 30 xl destroy linux-destroy
    check linux-destroy-leaves-nothing leaves_nothing linux-destroy "$id"
  else
    fail linux-destroy-ready "no ready line within 90 s"
  fi
fi
finish
