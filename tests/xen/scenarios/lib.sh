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

# wait_line FILE EXTENDED-REGEX SECONDS: poll until FILE has a matching line.
wait_line() {
  end=$(($(now_ms) + $3 * 1000))
  while [ "$(now_ms)" -lt "$end" ]; do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

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
# print its path.
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
