//! The whole firewall (csum, rules, nat between the TAP adapters) with real
//! Linux traffic: what the shipped policies let through gets through, what
//! they refuse is dropped or rejected where the client sees it, nothing
//! unsolicited gets in, and a policy replaced while traffic flows applies
//! at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use moat_e2e::{Moat, Mode, Topo, root};

/// A copy of the repository's system.toml whose `policy` lists `policies`
/// (absolute paths), in the topology's work directory.
fn system_with(topo: &Topo, policies: &[PathBuf]) -> String {
    let text = std::fs::read_to_string(root().join("system.toml")).unwrap();
    let list: Vec<String> = policies.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    let mut out = String::new();
    let mut replaced = false;
    for line in text.lines() {
        if line.starts_with("policy = [") {
            out.push_str(&format!("policy = [{}]\n", list.join(", ")));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(replaced, "system.toml has no policy line");
    let path = topo.dir.join("system.toml");
    std::fs::write(&path, out).unwrap();
    path.display().to_string()
}

fn shipped(name: &str) -> PathBuf {
    root().join("policies").join(name).canonicalize().unwrap()
}

#[test]
fn the_qubes_default_passes_traffic_and_traceroute_sees_moat() {
    let topo = Topo::up(Mode::Moat);
    let mut moat = Moat::start(&topo, "system.toml");
    for c in ["c1", "c2"] {
        assert!(topo.ok(c, 20, "ping -c 3 -i 0.2 -W 2 10.138.1.2").contains("3 received"));
        assert_eq!(topo.ok(c, 20, "dig +short +time=2 +tries=3 server.test").trim(), "10.138.1.2");
        assert_eq!(topo.ok(c, 20, "curl -sS --max-time 10 http://server.test/index.html").trim(), "hello");
    }
    // ICMP time exceeded comes back through the NAT: moat is hop 1,
    // sys-net hop 2, the server 3.
    let out = topo.ok("c1", 40, "traceroute -n -q 1 -w 2 -m 5 10.138.1.2");
    let hops: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(hops, ["10.138.0.2", "10.138.0.1", "10.138.1.2"], "{out}");
    let want = std::fs::read_to_string(topo.dir.join("www/big.sha256")).unwrap();
    let got = topo.ok("c1", 60, "curl -sS --max-time 50 http://10.138.1.2/big.bin | sha256sum | cut -d' ' -f1");
    assert_eq!(got.trim(), want.trim(), "32 MiB arrive intact through the NAT");
    let out = topo.ok(
        "c2",
        60,
        "seq 200 | xargs -P 50 -I{} curl -sS -o /dev/null --max-time 20 -w '%{http_code}\\n' \
         http://10.138.1.2/index.html | sort | uniq -c",
    );
    assert_eq!(out.trim(), "200 200", "{out}");
    // The server saw only moat's address.
    let st = moat.status();
    assert!(st["components"]["nat"]["conn.created"].as_u64().unwrap() >= 200);
    assert!(st["components"]["nat"]["icmp.sent.time_exceeded"].as_u64().unwrap() >= 1);
}

#[test]
fn inter_vm_traffic_is_dropped_and_nothing_unsolicited_gets_in() {
    let topo = Topo::up(Mode::Moat);
    let mut moat = Moat::start(&topo, "system.toml");
    // Client to client: dropped silently (Linux sys-firewall's default).
    let out = topo.run("c1", 10, "ping -c 3 -i 0.2 -W 1 10.137.0.11");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Packet filtered"), "dropped, not rejected");
    assert!(moat.counter("rules", "drop.inter_vm") >= 3);
    // sys-net (and the internet) sends to a client without being asked.
    topo.ok(
        "c1",
        10,
        "nft add table ip e2e; nft add chain ip e2e in '{ type filter hook prerouting priority -400; }'; \
                      nft add rule ip e2e in iifname eth0 ip saddr != 10.137.0.1 ip daddr 10.137.0.10 counter",
    );
    topo.ok("net", 5, "ip route add 10.137.0.0/16 via 10.138.0.2");
    let out = topo.run("net", 10, "ping -c 3 -i 0.2 -W 1 10.137.0.10");
    assert!(!out.status.success());
    topo.run("srv", 10, "ping -c 3 -i 0.2 -W 1 10.138.0.2; echo x > /dev/udp/10.138.0.2/40000");
    topo.run("net", 10, "bash -c 'for p in 22 80 1024 40000; do echo x > /dev/udp/10.137.0.10/$p; done'");
    let counted = topo.ok("c1", 5, "nft list chain ip e2e in");
    assert!(counted.contains("counter packets 0 "), "unsolicited packets reached the client:\n{counted}");
    assert!(moat.counter("nat", "drop.no_conn") >= 3);
    // The client's own connections still work.
    topo.ok("c1", 20, "curl -sS --max-time 10 http://10.138.1.2/index.html");
}

#[test]
fn the_lockdown_policy_allows_dns_and_rejects_the_rest_visibly() {
    let topo = Topo::up(Mode::Moat);
    let system = system_with(&topo, &[shipped("qubes-default.toml"), shipped("lockdown.toml")]);
    let mut moat = Moat::start(&topo, &system);
    assert_eq!(topo.ok("c1", 20, "dig +short +time=2 +tries=3 server.test").trim(), "10.138.1.2");
    // Refused with ICMP administratively prohibited, which the client sees.
    let out = topo.run("c1", 10, "ping -c 2 -i 0.3 -W 2 10.138.1.2");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Packet filtered"), "{out:?}");
    let out = topo.run("c1", 10, "curl -sS --max-time 5 http://10.138.1.2/index.html");
    assert!(!out.status.success());
    // Error 7 (could not connect) at once, not 28 (timed out): the reject
    // arrived.
    assert!(String::from_utf8_lossy(&out.stderr).contains("(7) Failed to connect"), "{out:?}");
    // HTTPS to a named host is allowed only once its name resolves (it
    // never does here): refused too.
    let out = topo.run("c1", 10, "curl -sS --max-time 5 https://10.138.1.2/");
    assert!(!out.status.success());
    assert!(moat.counter("nat", "icmp.sent.reject") >= 2);
}

#[test]
fn the_kill_switch_lets_only_the_vpn_endpoint_through() {
    let mut topo = Topo::up(Mode::Moat);
    // The VPN endpoint lives on the server, behind sys-net.
    topo.ok("srv", 5, "ip addr add 198.51.100.7/32 dev lo");
    topo.ok("net", 5, "ip route add 198.51.100.7/32 via 10.138.1.2");
    let got = topo.dir.join("vpn.txt");
    topo.spawn(
        "srv",
        &format!(
            "python3 -c \"import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('198.51.100.7',51820))\nwhile True:\n d,a=s.recvfrom(100)\n open('{}','ab').write(d)\n s.sendto(d,a)\"",
            got.display()
        ),
    );
    let system = system_with(&topo, &[shipped("qubes-default.toml"), shipped("kill-switch.toml")]);
    let _moat = Moat::start(&topo, &system);
    std::thread::sleep(Duration::from_millis(300));
    let out = topo.ok(
        "c1",
        10,
        "python3 -c \"import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\n\
         s.sendto(b'handshake',('198.51.100.7',51820))\nprint(s.recvfrom(100)[0].decode())\"",
    );
    assert_eq!(out.trim(), "handshake", "the VPN endpoint answers through the NAT");
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "handshake");
    // Not even DNS, and refusals are visible.
    assert!(!topo.run("c1", 10, "dig +short +time=1 +tries=1 server.test @10.139.1.1").status.success());
    let out = topo.run("c1", 10, "ping -c 2 -i 0.3 -W 2 10.138.1.2");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Packet filtered"), "{out:?}");
    let out = topo.run("c1", 10, "ping -c 1 -W 2 198.51.100.7");
    assert!(!out.status.success(), "ICMP to the endpoint is not the VPN port");
}

/// Bytes of `big.bin` the topology serves.
const BIG: u64 = 32 << 20;

/// What the client's kernel has received on its connection to the server
/// (`ss`'s `bytes_received`, 0 if there is none), and the `ss` line.
fn received_from_server(topo: &Topo) -> (u64, String) {
    let line = topo.ok("c1", 10, "ss -tinH dst 10.138.1.2");
    let n = line.split("bytes_received:").nth(1).and_then(|s| s.split_whitespace().next()?.parse().ok());
    (n.unwrap_or(0), line)
}

#[test]
fn a_policy_replaced_while_traffic_flows_applies_at_once() {
    let topo = Topo::up(Mode::Moat);
    let policy = topo.dir.join("policy.toml");
    std::fs::copy(shipped("qubes-default.toml"), &policy).unwrap();
    let system = system_with(&topo, std::slice::from_ref(&policy));
    let mut moat = Moat::start(&topo, &system);
    // A download throttled to last ~20 s is under way while the policy
    // changes; so are pings. `--limit-rate` throttles only curl's reads:
    // the client's kernel takes whatever its receive window allows, and
    // that window may grow to tcp_rmem's maximum, which a namespace
    // inherits from the host (32 MiB here). With a window that size the
    // whole file could arrive before the new policy does (curl then drains
    // its socket and succeeds however well moat cuts the connection), so
    // the client's receive buffer is kept small: the transfer on the wire
    // stays within 256 KiB of curl's throttled reads.
    topo.ok("c1", 10, "sysctl -qw net.ipv4.tcp_rmem='4096 65536 262144'");
    let log = topo.dir.join("dl.log");
    let dl = std::process::Command::new("ip")
        .args(["netns", "exec", &topo.ns("c1"), "sh", "-c"])
        .arg(format!(
            "curl -sS --max-time 30 --limit-rate 1600K -o /dev/null -w '%{{size_download}} bytes in %{{time_total}} s\n' \
             http://10.138.1.2/big.bin > {} 2>&1; echo $? >> {}",
            log.display(),
            log.display()
        ))
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    assert!(topo.ok("c1", 10, "ping -c 2 -i 0.2 -W 2 10.138.1.2").contains("2 received"));
    let nat = moat.status()["components"]["nat"].clone();
    assert_eq!(nat["conn.state.established"], 1, "the download is under way: {nat}");
    // New policy: DNS only, refusals rejected.
    std::fs::write(
        &policy,
        "[defaults]\ndrop = \"reject\"\ninter_vm = \"drop\"\npolicy = \"drop\"\n\
         rules = [\"action=accept specialtarget=dns\"]\n",
    )
    .unwrap();
    moat.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while moat.counter("rules", "policy.version") != 2 {
        assert!(Instant::now() < deadline, "policy version 2 never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rules refuse the client's packets from now on; the NAT's part is
    // to forget the connection, so the server's packets stop too.
    let deadline = Instant::now() + Duration::from_secs(10);
    let at_cut = loop {
        let st = moat.status();
        let nat = &st["components"]["nat"];
        if nat["conn.state.established"] == 0 && nat["conn.removed.rules"].as_u64() >= Some(1) {
            break st;
        }
        assert!(Instant::now() < deadline, "the NAT kept the download the new policy refuses: {nat}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let cut = started.elapsed();
    let (received, socket) = received_from_server(&topo);
    // The test means something only if the download was still under way.
    assert!(
        received + (1 << 20) < BIG,
        "the download had (almost) all arrived before the policy changed ({received} bytes after {cut:?}): \
         the test's timing is off\n{socket}"
    );
    let out = topo.run("c1", 10, "ping -c 2 -i 0.3 -W 2 10.138.1.2");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Packet filtered"), "{out:?}");
    assert_eq!(topo.ok("c1", 20, "dig +short +time=2 +tries=3 server.test").trim(), "10.138.1.2");
    // The download that was running is cut: its packets are refused now.
    let mut dl = dl;
    let status = dl.wait().unwrap();
    assert!(status.success());
    let log = std::fs::read_to_string(&log).unwrap();
    let end = moat.status();
    assert_ne!(
        log.lines().last(),
        Some("0"),
        "the open connection survived the new policy:\ncurl: {log}\ncut after {cut:?} with {received} bytes in: \
         {socket}\nnat at the cut: {}\nnat at the end: {}\nrules at the end: {}",
        at_cut["components"]["nat"],
        end["components"]["nat"],
        end["components"]["rules"],
    );
}

#[test]
fn a_flooding_client_does_not_stop_the_others_fetch_through_the_nat() {
    let mut topo = Topo::up(Mode::Moat);
    let _moat = Moat::start(&topo, "system.toml");
    let flood = "python3 -c \"import socket,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
end=time.time()+40\n\
while time.time()<end:\n\
 for p in range(1000):\n\
  try: s.sendto(b'x'*64,('10.138.1.2',9+p))\n\
  except OSError: pass\n\"";
    topo.spawn("c2", flood);
    topo.spawn("c2", flood);
    std::thread::sleep(Duration::from_secs(1));
    let want = std::fs::read_to_string(topo.dir.join("www/big.sha256")).unwrap();
    let got = topo.ok("c1", 40, "curl -sS --max-time 30 http://10.138.1.2/big.bin | sha256sum | cut -d' ' -f1");
    assert_eq!(got.trim(), want.trim(), "c1's download finished within 30 s while c2 flooded");
}
