//! Real Linux traffic through the hosted moat's processes and TAP adapters,
//! with the csum component between them and no NAT (sys-net routes the
//! clients back): the runtime and the adapters end to end.

use moat_e2e::{Moat, Mode, Topo};

const SYSTEM: &str = "tests/e2e/systems/csum-router.toml";

#[test]
fn ping_dns_http_and_a_large_download_go_through() {
    let topo = Topo::up(Mode::MoatRouted);
    let mut moat = Moat::start(&topo, SYSTEM);
    for c in ["c1", "c2"] {
        let out = topo.ok(c, 20, "ping -c 3 -i 0.2 -W 2 10.138.1.2");
        assert!(out.contains("3 received"), "{out}");
        let out = topo.ok(c, 20, "dig +short +time=2 +tries=3 server.test @10.139.1.1");
        assert_eq!(out.trim(), "10.138.1.2");
        assert_eq!(topo.ok(c, 20, "curl -sS --max-time 10 http://server.test/index.html").trim(), "hello");
    }
    let want = std::fs::read_to_string(topo.dir.join("www/big.sha256")).unwrap();
    let got = topo.ok("c1", 60, "curl -sS --max-time 50 http://10.138.1.2/big.bin | sha256sum | cut -d' ' -f1");
    assert_eq!(got.trim(), want.trim(), "32 MiB arrive intact");
    // The client answers ARP with the one gateway MAC, as Qubes' netback.
    let neigh = topo.ok("c1", 5, "ip neigh show 10.137.0.1");
    assert!(neigh.contains("fe:ff:ff:ff:ff:ff"), "{neigh}");
    let st = moat.status();
    let csum = &st["components"]["csum"];
    // 32 MiB came in as at least 512 super-packets of at most 64 KiB
    // (segmentation offload; ~23,000 full-size segments without), each
    // verified or its blank checksum completed, none corrupt.
    let n = |k: &str| csum[k].as_u64().unwrap_or(0);
    assert!(n("uplink.pass.verified") + n("uplink.pass.completed") >= 512, "{csum}");
    assert!(st["components"]["netfront"]["gso.in"].as_u64().unwrap_or(0) > 0, "{st}");
    assert_eq!(n("uplink.drop.bad_l4_checksum"), 0);
}

#[test]
fn many_parallel_connections_all_complete() {
    let topo = Topo::up(Mode::MoatRouted);
    let _moat = Moat::start(&topo, SYSTEM);
    let out = topo.ok(
        "c1",
        60,
        "seq 200 | xargs -P 50 -I{} curl -sS -o /dev/null --max-time 20 -w '%{http_code}\\n' \
         http://10.138.1.2/index.html | sort | uniq -c",
    );
    assert_eq!(out.trim(), "200 200", "every one of 200 requests answered 200: {out}");
}

#[test]
fn a_spoofed_source_never_reaches_the_uplink() {
    let topo = Topo::up(Mode::MoatRouted);
    let mut moat = Moat::start(&topo, SYSTEM);
    topo.ok("c1", 5, "ip addr add 10.137.0.99/32 dev eth0");
    topo.count_on_uplink("10.137.0.99");
    let out = topo.run("c1", 20, "ping -c 5 -i 0.2 -W 1 -I 10.137.0.99 10.138.1.2");
    assert!(!out.status.success(), "a spoofed ping got an answer");
    // The real address still works, so the counter would have counted.
    topo.ok("c1", 20, "ping -c 2 -i 0.2 -W 2 10.138.1.2");
    assert_eq!(topo.uplink_count(), 0, "spoofed packets reached sys-net");
    assert!(moat.counter("netback", "client[10.137.0.10].drop.spoofed") >= 5);
    assert!(moat.counter("netback", "drop.spoofed") >= 5);
}

#[test]
fn a_flooding_client_does_not_stop_the_others_download() {
    let mut topo = Topo::up(Mode::MoatRouted);
    let _moat = Moat::start(&topo, SYSTEM);
    // c2 sends small UDP datagrams as fast as Python can, for 40 s at most.
    let flood = "python3 -c \"import socket,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
end=time.time()+40\n\
while time.time()<end:\n\
 for _ in range(1000):\n\
  try: s.sendto(b'x'*64,('10.138.1.2',9))\n\
  except OSError: pass\n\"";
    topo.spawn("c2", flood);
    topo.spawn("c2", flood);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let want = std::fs::read_to_string(topo.dir.join("www/big.sha256")).unwrap();
    let got = topo.ok("c1", 40, "curl -sS --max-time 30 http://10.138.1.2/big.bin | sha256sum | cut -d' ' -f1");
    assert_eq!(got.trim(), want.trim(), "the download finished intact within 30 s under the flood");
}

#[test]
fn a_crashed_component_is_named_and_the_graph_fails_closed() {
    let topo = Topo::up(Mode::MoatRouted);
    let mut moat = Moat::start(&topo, SYSTEM);
    topo.ok("c1", 20, "ping -c 1 -W 2 10.138.1.2");
    // SAFETY: kill on a pid moat reported as its csum process.
    unsafe { libc::kill(moat.pid("csum"), libc::SIGABRT) };
    let (status, _) = moat.wait_exit(10);
    let status = status.expect("moat exits when a component dies");
    assert_eq!(status.code(), Some(1));
    let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&moat.status_file).unwrap()).unwrap();
    assert_eq!(st["failure"]["component"], "csum", "{st}");
    assert!(st["failure"]["reason"].as_str().unwrap().contains("killed by signal 6"), "{st}");
    let out = topo.run("c1", 10, "ping -c 3 -i 0.2 -W 1 10.138.1.2");
    assert!(!out.status.success(), "traffic still passes after the failure");
}
