# Runs inside a Linux client guest of moat-clients.sh (testbed_run=
# guest-client.sh): eth0 gets testbed_ip= (a /32, as Qubes gives), a route
# to testbed_gw= and the default route through it (moat answers ARP for
# every address). Role a tests, role b floods when told; every result is a
# TESTBED-GUEST line on the console.
. /testbed/guest-lib.sh
role=$(arg role)
sum=$(arg sum)
srv=10.140.0.2
routed "$(arg ip)" "$(arg gw)"
echo "nameserver 10.139.1.1" >/etc/resolv.conf
# The first packets may go while moat's side still connects.
i=0
until ping -c 1 -W 2 "$srv" >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i + 1)); done
# wait_url URL: until the server has the file (dom0's signal).
wait_url() { until wget -q -O /dev/null "$1" 2>/dev/null; do sleep 2; done; }

if ping -c 3 -W 5 "$srv" >/tmp/ping.txt 2>&1; then say ping ok; else say ping failed "$(tail -n 2 /tmp/ping.txt | tr '\n' ' ')"; fi

if [ "$role" = b ]; then
  ( wait_url "http://$srv/flood-now"
    say flood started
    # About a minute of full-size UDP datagrams as fast as the guest can.
    dd if=/dev/zero bs=1400 count=40000 2>/dev/null | nc -u -w 1 "$srv" 9
    dd if=/dev/zero bs=1400 count=40000 2>/dev/null | nc -u -w 1 "$srv" 9
    say flood done ) &
  exit 0
fi

got=$(nslookup test.moat 2>/dev/null | awk '/^Address/ { a = $NF } END { print a }')
if [ "$got" = "$srv" ]; then say dns ok; else say dns failed "got '$got'"; fi

if [ "$(wget -q -O - "http://$srv/index.html" 2>/dev/null)" = "moat says hello" ]; then say http ok; else say http failed; fi

t0=$(cut -d' ' -f1 /proc/uptime)
got=$(wget -q -O - "http://$srv/big" 2>/dev/null | sha256sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
if [ "$got" = "$sum" ]; then say big ok seconds=$(awk "BEGIN { print $t1 - $t0 }"); else say big failed "sum $got"; fi

# The policy rejects TCP 8081 for this client: refused at once (ICMP
# admin-prohibited), not a timeout.
t0=$(cut -d' ' -f1 /proc/uptime)
out=$(nc -w 20 "$srv" 8081 </dev/null 2>&1)
t1=$(cut -d' ' -f1 /proc/uptime)
fast=$(awk "BEGIN { print ($t1 - $t0 < 10) ? 1 : 0 }")
case "$out" in
  *"o route"*|*"nreachable"*|*"rohibited"*) [ "$fast" = 1 ] && say reject ok "$out" || say reject failed "slow: $out" ;;
  *) say reject failed "'$out'" ;;
esac

# A spoofed source: an address moat did not give this client.
ip addr add 10.137.0.99/32 dev eth0
if ping -c 2 -W 3 -I 10.137.0.99 "$srv" >/dev/null 2>&1; then say spoof failed "a reply came"; else say spoof ok; fi
ip addr del 10.137.0.99/32 dev eth0

( wait_url "http://$srv/fetch-now"
  t0=$(cut -d' ' -f1 /proc/uptime)
  if [ "$(wget -q -O - "http://$srv/ten" 2>/dev/null | wc -c)" = 10485760 ]; then
    say flood-fetch ok seconds=$(awk "BEGIN { print $(cut -d' ' -f1 /proc/uptime) - $t0 }")
  else
    say flood-fetch failed
  fi ) &
