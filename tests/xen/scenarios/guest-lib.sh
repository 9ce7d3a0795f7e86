# Sourced by the guest-*.sh scripts, inside a Linux guest of the testbed
# (guest-init runs /testbed/<testbed_run=>; this file is packed beside them).

say() { echo "TESTBED-GUEST $*"; }

# arg NAME: the value of testbed_NAME= on the kernel command line.
arg() {
  for a in $(cat /proc/cmdline); do
    case "$a" in "testbed_$1="*) echo "${a#*=}"; return ;; esac
  done
}

# eth0_up: waits (20 s at most) for netfront's eth0, brings it up.
eth0_up() {
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
  ip link set eth0 up
}

# routed ADDR GW: eth0 gets ADDR as a /32, as Qubes gives it, a route to GW
# and the default route through GW (the firewall answers ARP for all).
routed() {
  eth0_up
  ip addr add "$1/32" dev eth0
  ip route add "$2/32" dev eth0
  ip route add default via "$2" dev eth0
}
