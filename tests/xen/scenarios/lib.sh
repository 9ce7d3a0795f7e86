# Helpers for scenario scripts; they run inside dom0 (POSIX sh) with
# /scenario as working directory. Every result is a marker line on stdout:
#   TESTBED-CHECK ok <name>
#   TESTBED-CHECK fail <name>: <why>
#   TESTBED-TIME <name> <milliseconds>
#   TESTBED-SCENARIO done
# The runner and the Rust tests decide pass/fail from these alone.

guest_kernel=/guest/vmlinux
guest_initrd=/guest/initrd.cpio

ok() { echo "TESTBED-CHECK ok $1"; }
fail() { echo "TESTBED-CHECK fail $1: $2"; }
# check NAME CMD...: ok if CMD succeeds.
check() {
  n=$1
  shift
  if "$@"; then ok "$n"; else fail "$n" "failed: $*"; fi
}
finish() { echo "TESTBED-SCENARIO done"; }

# Milliseconds since dom0 booted (10 ms resolution).
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# The PV console of a domain as xenconsoled logs it.
console_log() { echo "/var/log/xen/console/guest-$1.log"; }

# wait_line FILE EXTENDED-REGEX SECONDS [DOMAIN...]: poll until FILE has a
# matching line. With DOMAINs, give up early (after saying so) once one of
# them has stopped running: a crashed guest will not print the line.
# (sh has no local variables: the names are the function's own, since a
# caller such as check() keeps its own in n, f and the like.)
wait_line() {
  wl_file=$1 wl_re=$2 wl_end=$(($(now_ms) + $3 * 1000)) wl_polls=0
  shift 3
  while [ "$(now_ms)" -lt "$wl_end" ]; do
    grep -Eq -- "$wl_re" "$wl_file" 2>/dev/null && return 0
    wl_polls=$((wl_polls + 1))
    if [ $((wl_polls % 40)) = 0 ]; then
      for wl_dom in "$@"; do
        running "$wl_dom" || { echo "TESTBED-NOTE $wl_dom stopped running while waiting for '$wl_re'"; return 1; }
      done
    fi
    sleep 0.05
  done
  return 1
}

# running DOMAIN: xl lists it, neither crashed nor shut down.
running() { xl list "$1" 2>/dev/null | awk 'NR == 2 && $5 !~ /[cs]/ { ok = 1 } END { exit !ok }'; }

# wait_gone NAME SECONDS: until xl no longer lists the domain.
wait_gone() {
  end=$(($(now_ms) + $2 * 1000))
  while [ "$(now_ms)" -lt "$end" ]; do
    xl domid "$1" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  return 1
}

# leaves_nothing NAME DOMID: within 10 s, no domain, no XenStore entries,
# nothing in the backend directories that mentions the domain. (xl's
# reaper tears the device backends down just after the domain dies.)
leaves_nothing() {
  end=$(($(now_ms) + 10000))
  while [ "$(now_ms)" -lt "$end" ]; do
    nothing_left "$1" "$2" && return 0
    sleep 0.2
  done
  return 1
}
nothing_left() {
  ! xl domid "$1" >/dev/null 2>&1 &&
    ! xenstore-exists "/local/domain/$2" &&
    ! xenstore-exists "/libxl/$2" &&
    ! xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep -q "/$2/" &&
    ! xl list | awk 'NR > 1 { print $2 }' | grep -qx "$2"
}

# linux_guest NAME [EXTRA-CMDLINE [EXTRA-CONFIG-LINE]]: write an xl config
# for the small Linux guest (PVH, Debian's kernel, busybox initramfs) and
# print its path. on_reboot stays libxl's restart: Xen turns a triple fault
# into a reboot, and the emulator's faults (README, Known gaps) hit Linux
# guests mostly during boot, where booting again absorbs them. (moat's
# config keeps moat instead, for the crash report.)
# tsc_early_khz: Xen already knows the TSC's rate; without it Linux
# calibrates against the emulated PIT, which takes ~30 s under TCG.
linux_guest() {
  khz=$(xl info | awk '$1 == "cpu_mhz" { printf "%d", $3 * 1000 }')
  cat >"/tmp/$1.cfg" <<CFG
name = "$1"
type = "pvh"
kernel = "$guest_kernel"
ramdisk = "$guest_initrd"
extra = "console=hvc0 quiet loglevel=3 tsc_early_khz=$khz $2"
memory = 256
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
$3
CFG
  echo "/tmp/$1.cfg"
}

# boot_timed NAME CONFIG READY-REGEX SECONDS: xl create, wait for the ready
# line on the PV console, and print TESTBED-TIME NAME-create-to-ready.
boot_timed() {
  t0=$(now_ms)
  if ! xl create "$2" >"/results/xl-create-$1.txt" 2>&1; then
    # xl 4.17's parent process sometimes aborts ("corrupted double-linked
    # list") after its forked child has created the domain: that is the
    # toolstack's bug, not the guest's, so judge by whether the domain exists.
    if xl domid "$1" >/dev/null 2>&1; then
      echo "TESTBED-NOTE $1: xl create exited non-zero but the domain exists: $(tail -n 1 "/results/xl-create-$1.txt")"
    else
      fail "$1-create" "xl create: $(tail -n 3 "/results/xl-create-$1.txt" | tr '\n' ' ')"
      return 1
    fi
  fi
  ok "$1-create"
  if wait_line "$(console_log "$1")" "$3" "$4"; then
    echo "TESTBED-TIME $1-create-to-ready $(($(now_ms) - t0))"
    ok "$1-ready"
  else
    fail "$1-ready" "no line matching '$3' within $4 s"
    return 1
  fi
}

# bridge NAME CIDR: a dom0 bridge for guests' vifs (Linux netback), with
# dom0's own address on it. Everything stays inside the emulated machine.
bridge() {
  ip link add "$1" type bridge &&
    ip addr add "$2" dev "$1" &&
    ip link set "$1" up
}

# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
  end=$(($(now_ms) + $1 * 1000))
  shift
  while [ "$(now_ms)" -lt "$end" ]; do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

# --- dom0 as Qubes' sys-net, for the network scenarios ----------------------

# sys_net SRV-SIZE: the "internet" on dom0's own loopback (its kernel has no
# veth: the testbed keeps only Xen's modules): 10.140.0.2 serves HTTP from a
# tmpfs of SRV-SIZE at /srv, 10.139.1.1 is the address Qubes clients use for
# DNS; dom0 routes between them and the firewalls' uplink vifs.
sys_net() {
  sysctl -qw net.ipv4.ip_forward=1
  ip link set lo up # dom0's /init leaves it down
  ip addr add 10.140.0.2/32 dev lo
  ip addr add 10.139.1.1/32 dev lo
  mkdir -p /srv
  mount -t tmpfs -o "size=$1" tmpfs /srv
  echo "moat says hello" >/srv/index.html
  busybox httpd -p 10.140.0.2:80 -h /srv
  # A firewall's uplink vif, routed as Qubes' vif-route-qubes does it: dom0
  # is 10.138.0.1 on every such vif, with a route to the address the vif's
  # `ip=` gave the firewall, and answers ARP for the rest.
  cat >/tmp/vif-uplink <<'SH'
#!/bin/sh
case "$1" in
  online|add)
    ip=$(xenstore-read "$XENBUS_PATH/ip")
    ip link set "$vif" up
    ip addr add 10.138.0.1/32 dev "$vif"
    ip route add "$ip/32" dev "$vif"
    echo 1 >"/proc/sys/net/ipv4/conf/$vif/proxy_arp"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected ;;
esac
exit 0
SH
  chmod 755 /tmp/vif-uplink
}

# start_moat IMAGE UPLINK-IP: `xl create` moat's image as domain `moat` with
# its uplink vif on dom0 (IP and MAC 00:16:3e:00:00:02), then wait until it
# has started and its netfront is connected (checks moat-create,
# moat-started, moat-uplink-connected). Fails when moat did not come up.
start_moat() {
  cat >/tmp/moat.cfg <<CFG
name = "moat"
type = "pvh"
kernel = "$1"
memory = 32
maxmem = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
on_reboot = "preserve"
vif = ['ip=$2,mac=00:16:3e:00:00:02,script=/tmp/vif-uplink']
CFG
  if ! xl create /tmp/moat.cfg >/results/xl-create-moat.txt 2>&1 && ! xl domid moat >/dev/null 2>&1; then
    fail moat-create "$(tail -n 3 /results/xl-create-moat.txt | tr '\n' ' ')"
    return 1
  fi
  ok moat-create
  # For the Rust side: which domain's triple fault would be moat's.
  echo "TESTBED-NOTE moat-domid $(xl domid moat)"
  check moat-started wait_line "$(console_log moat)" '^moat: started at' 60
  if wait_line "$(console_log moat)" '^moat: status netfront .*uplink.connected=1' 60; then
    ok moat-uplink-connected
  else
    fail moat-uplink-connected "no connected uplink in moat's status within 60 s"
    return 1
  fi
}

# moat_status COMPONENT KEY: the value in moat's latest status line.
moat_status() {
  grep "^moat: status $1 " "$(console_log moat)" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# moat_fresh_status: wait for moat's next status report (every 5 s).
moat_fresh_status() {
  n=$(grep -c '^moat: status netback ' "$(console_log moat)")
  end=$(($(now_ms) + 20000))
  while [ "$(now_ms)" -lt "$end" ]; do
    [ "$(grep -c '^moat: status netback ' "$(console_log moat)")" -gt "$n" ] && return 0
    sleep 0.5
  done
  return 1
}
