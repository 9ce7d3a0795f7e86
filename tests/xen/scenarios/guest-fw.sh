# Runs inside the Linux firewall guest of fw-compare.sh (testbed_run=
# guest-fw.sh): Linux as Qubes' sys-firewall. eth0 (netfront) is the uplink
# to dom0 with testbed_ip=; xen-netback serves the client's vif, which this
# script configures as Qubes' vif-route-qubes does (the firewall's address on
# it, a route to testbed_client=, proxy ARP); forwarding goes through the
# nftables ruleset below. testbed_offload=off turns segmentation and
# checksum offloads off on eth0 and the vif, as moat's drivers have none.
# nft, ethtool and iperf3 are Debian's, in /usr (guest-init's PATH has busybox only).
export PATH="$PATH:/usr/sbin:/usr/bin"
. /testbed/guest-lib.sh
addr=$(arg ip)
client=$(arg client)
offload=$(arg offload)
# crc32c first: libcrc32c (conntrack's) asks the crypto API for it when it
# loads, and busybox's modprobe does not follow the soft dependency.
for m in xen-netback crc32c_generic nf_conntrack nf_nat nf_tables nft_ct nft_chain_nat nft_masq nft_reject_ipv4; do
  modprobe "$m" || say "modprobe $m failed"
done
noffload() { ethtool -K "$1" sg off tso off gso off gro off tx off rx off >/dev/null 2>&1 || say "ethtool $1 failed"; }
routed "$addr" 10.138.0.1
[ "$offload" = off ] && noffload eth0
echo 1 >/proc/sys/net/ipv4/ip_forward

# What a Qubes 4.2 sys-firewall holds for one client whose rules are the
# default (qvm-firewall's `accept`, with DNS allowed): the `qubes` tables of
# qubes-core-agent-linux (antispoof in raw prerouting, masquerade on the
# uplink, stateful input and forward) and the per-client chain that
# qubes-firewall adds. Qubes matches its vifs by interface group 2, which
# vif-route-qubes gives each of them; busybox's ip cannot set a group, so
# the rules match the same interfaces by name ("vif*").
cat >/tmp/qubes.nft <<NFT
table ip qubes {
  set downstream { type ipv4_addr; elements = { $client } }
  set allowed { type ifname . ipv4_addr; }
  chain custom-input {}
  chain custom-forward {}
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    iifname "vif*" goto antispoof
    ip saddr @downstream counter drop
  }
  chain antispoof {
    iifname . ip saddr @allowed accept
    counter drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "vif*" accept
    oif lo accept
    masquerade
  }
  chain input {
    type filter hook input priority filter; policy drop;
    jump custom-input
    ct state invalid counter drop
    iifname "vif*" udp dport 68 counter drop
    ct state established,related accept
    iifname "vif*" meta l4proto icmp accept
    iif lo accept
    iifname "vif*" counter reject with icmp type host-prohibited
    counter
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    jump custom-forward
    ct state invalid counter drop
    ct state established,related accept
    oifname "vif*" counter drop
  }
}
table ip qubes-firewall {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname != "vif*" accept
    ip saddr $client jump client
  }
  chain client {
    ip daddr { 10.139.1.1, 10.139.1.2 } tcp dport 53 accept
    ip daddr { 10.139.1.1, 10.139.1.2 } udp dport 53 accept
    accept
  }
  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
    iifname != "vif*" ip saddr $client drop
  }
  chain postrouting {
    type filter hook postrouting priority -300; policy accept;
    oifname != "vif*" ip daddr $client drop
  }
}
NFT
if out=$(nft -f /tmp/qubes.nft 2>&1); then
  say nft ok
else
  say nft failed "$(echo "$out" | tr '\n' ' ')"
  say modules "$(lsmod | awk 'NR > 1 { print $1 }' | tr '\n' ' ')"
fi
say fw ready

# The client's vif: what vif-route-qubes does in a real sys-firewall (dom0
# writes hotplug-status for it, standing in for `xl devd`).
( i=0
  while [ $i -lt 1200 ]; do
    for d in /sys/class/net/vif*; do
      [ -e "$d" ] || continue
      v=${d##*/}
      ip link set "$v" up
      ip addr add "$addr/32" dev "$v"
      ip route add "$client/32" dev "$v"
      echo 1 >"/proc/sys/net/ipv4/conf/$v/proxy_arp"
      [ "$offload" = off ] && noffload "$v"
      nft add element ip qubes allowed "{ \"$v\" . $client }"
      say vif "$v" up "$(ethtool -k "$v" 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-receive-offload|scatter-gather):' | tr '\n' ' ')"
      exit 0
    done
    sleep 0.5
    i=$((i + 1))
  done
  say vif none ) &
