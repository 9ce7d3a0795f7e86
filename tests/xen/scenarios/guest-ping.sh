# Runs inside the small Linux guest (guest-init's testbed_run=guest-ping.sh):
# brings eth0 (xen-netfront) up with testbed_ip= and pings testbed_peer=.
for a in $(cat /proc/cmdline); do
  case "$a" in
    testbed_ip=*) addr=${a#*=} ;;
    testbed_peer=*) peer=${a#*=} ;;
  esac
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up && ip addr add "$addr" dev eth0
if ping -c 3 -W 5 "$peer" >/tmp/ping.txt 2>&1; then
  echo "TESTBED-GUEST ping ok $peer"
else
  echo "TESTBED-GUEST ping failed $peer: $(tail -n 2 /tmp/ping.txt | tr '\n' ' ')"
fi
