#!/bin/sh
# The small Linux guest on real Xen: PVH boot, PV console, XenStore
# identity, a vif (netfront to dom0's netback on a bridge, ping both ways),
# clean shutdown on `xl shutdown`, and nothing left after either
# shutdown or `xl destroy`. It proves the machinery that moat's scenario
# relies on, with a guest whose behaviour is known.
. ./lib.sh

check dom0-bridge bridge xenbr0 10.137.0.1/16
net="testbed_run=guest-ping.sh testbed_ip=10.137.0.10/16 testbed_peer=10.137.0.1"
vif="vif = ['bridge=xenbr0,mac=00:16:3e:00:00:10']"
if boot_timed linux-guest "$(linux_guest linux-guest "$net" "$vif")" '^TESTBED-GUEST ready' 90; then
  id=$(xl domid linux-guest)
  check linux-guest-xenstore-name [ "$(xenstore-read "/local/domain/$id/name")" = linux-guest ]
  # netfront (the guest) and netback (dom0's Linux) connected over XenStore,
  # and packets flow both ways over the bridge.
  check linux-guest-ping-dom0 wait_line "$(console_log linux-guest)" '^TESTBED-GUEST ping ok' 30
  check linux-guest-vif-connected [ "$(xenstore-read "/local/domain/0/backend/vif/$id/0/state")" = 4 ]
  check dom0-ping-linux-guest busybox ping -c 2 -W 5 10.137.0.10
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
