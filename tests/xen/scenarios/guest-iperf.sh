# Runs inside a client guest of fw-compare.sh (testbed_run=guest-iperf.sh):
# eth0 gets testbed_ip= (a /32) with the default route through testbed_gw=,
# the firewall's address. Round after round, when dom0 serves go-<side>-<n>
# (testbed_side=), it runs iperf3 to dom0's server for testbed_secs= seconds,
# upload then download (-R), and prints what the receiver counted.
# nft, ethtool and iperf3 are Debian's, in /usr (guest-init's PATH has busybox only).
export PATH="$PATH:/usr/sbin:/usr/bin"
. /testbed/guest-lib.sh
side=$(arg side)
secs=$(arg secs)
offload=$(arg offload)
srv=10.140.0.2
routed "$(arg ip)" "$(arg gw)"
[ "$offload" = off ] && { ethtool -K eth0 sg off tso off gso off gro off tx off rx off >/dev/null 2>&1 || say "ethtool eth0 failed"; }
say offloads "$(ethtool -k eth0 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-receive-offload|scatter-gather):' | tr '\n' ' ')"
i=0
until ping -c 1 -W 2 "$srv" >/dev/null 2>&1 || [ $i -ge 90 ]; do i=$((i + 1)); done
if [ $i -lt 90 ]; then say net ok; else say net failed; fi
( r=1
  while :; do
    until wget -q -O /dev/null "http://$srv/go-$side-$r" 2>/dev/null; do sleep 1; done
    for dir in up down; do
      flag=
      [ "$dir" = down ] && flag=-R
      timeout $((secs * 4 + 30)) iperf3 -c "$srv" -t "$secs" -f m $flag >"/tmp/iperf-$r-$dir.txt" 2>&1
      mbps=$(awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { print v }' "/tmp/iperf-$r-$dir.txt")
      say iperf round=$r dir=$dir mbps=${mbps:-none} "$(grep -E 'sender|receiver|error' "/tmp/iperf-$r-$dir.txt" | tr -s ' ' | tr '\n' '|')"
    done
    say iperf round=$r done
    r=$((r + 1))
  done ) &
