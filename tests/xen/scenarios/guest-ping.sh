# Runs inside the small Linux guest (guest-init's testbed_run=guest-ping.sh):
# brings eth0 (xen-netfront) up with testbed_ip= and pings testbed_peer=.
. /testbed/guest-lib.sh
peer=$(arg peer)
eth0_up
ip addr add "$(arg ip)" dev eth0
if ping -c 3 -W 5 "$peer" >/tmp/ping.txt 2>&1; then
  say ping ok "$peer"
else
  say ping failed "$peer: $(tail -n 2 /tmp/ping.txt | tr '\n' ' ')"
fi
