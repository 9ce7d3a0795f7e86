//! Segmentation offload end to end: large transfers in both directions go
//! through the graph as 64 KiB super-packets (the adapters' `gso.*`
//! counters), csum completes every checksum they arrive with, and what comes
//! out is intact — the bytes (SHA-256 of 32 MiB each way) and, on the way to
//! the server, the TCP checksums of every segment the kernel cut from moat's
//! super-packets, verified in software by the server's own stack.

use moat_e2e::{Moat, Mode, Topo};

/// `TcpInCsumErrors` of namespace `short` (segments dropped for a bad
/// checksum), from `nstat`.
fn csum_errors(topo: &Topo, short: &str) -> u64 {
    let out = topo.ok(short, 10, "nstat -az TcpInCsumErrors");
    out.lines()
        .find(|l| l.starts_with("TcpInCsumErrors"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no TcpInCsumErrors in {out}"))
}

#[test]
fn large_transfers_travel_as_super_packets_and_arrive_intact() {
    let mut topo = Topo::up(Mode::Moat);
    // The server checks every TCP checksum itself: sys-net cuts and
    // checksums segments before its link to the server (no TSO or checksum
    // offload on that veth), and the server's end does not vouch for them.
    topo.ok("net", 10, "ethtool -K srv tx off tso off gso off >/dev/null");
    topo.ok("srv", 10, "ethtool -K s0 rx off gro off >/dev/null");
    let mut moat = Moat::start(&topo, "system.toml");
    let errors_before = csum_errors(&topo, "srv");

    // Down: HTTP from the server.
    let want = std::fs::read_to_string(topo.dir.join("www/big.sha256")).unwrap();
    let got = topo.ok("c1", 60, "curl -sS --max-time 50 http://10.138.1.2/big.bin | sha256sum | cut -d' ' -f1");
    assert_eq!(got.trim(), want.trim(), "32 MiB down intact");

    // Up: the same file to a one-shot TCP sink on the server that prints
    // what it received.
    let sink = topo.dir.join("sink.sha256");
    topo.spawn(
        "srv",
        &format!(
            "python3 -c 'import socket,hashlib; s=socket.create_server((\"10.138.1.2\", 9000)); c,_=s.accept(); \
             h=hashlib.sha256(); [h.update(b) for b in iter(lambda: c.recv(1<<16), b\"\")]; \
             open(\"{}\",\"w\").write(h.hexdigest())'",
            sink.display()
        ),
    );
    let file = topo.dir.join("www/big.bin");
    topo.ok(
        "c1",
        60,
        &format!(
            "for i in $(seq 50); do python3 -c 'import socket,sys; c=socket.create_connection((\"10.138.1.2\", 9000)); \
             c.sendall(open(sys.argv[1],\"rb\").read()); c.close()' {} && exit 0; sleep 0.1; done; exit 1",
            file.display()
        ),
    );
    let mut up = String::new();
    for _ in 0..100 {
        up = std::fs::read_to_string(&sink).unwrap_or_default();
        if !up.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(up.trim(), want.trim(), "32 MiB up intact");
    assert_eq!(csum_errors(&topo, "srv") - errors_before, 0, "every segment's checksum right at the server");

    let st = moat.status();
    let c = |comp: &str, k: &str| st["components"][comp][k].as_u64().unwrap_or(0);
    // Both directions moved super-packets, read from and written to the TAPs.
    assert!(c("netback", "gso.in") > 100, "from the client: {}", c("netback", "gso.in"));
    assert!(c("netfront", "gso.out") > 100, "to sys-net: {}", c("netfront", "gso.out"));
    assert!(c("netfront", "gso.in") > 100, "from sys-net: {}", c("netfront", "gso.in"));
    assert!(c("netback", "gso.out") > 100, "to the client: {}", c("netback", "gso.out"));
    // csum completed the blank checksums on both sides and found nothing
    // corrupt; nothing was dropped for its segmentation anywhere.
    assert!(c("csum", "clients.pass.completed") > 100);
    assert!(c("csum", "uplink.pass.completed") > 100);
    for comp in ["netback", "csum", "nat", "netfront"] {
        let bad: Vec<_> = st["components"][comp]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| {
                (k.contains("bad_l4_checksum") || k.contains("bad_gso") || k.contains("too_big") || k.contains("gso_"))
                    && v.as_u64() != Some(0)
            })
            .collect();
        assert!(bad.is_empty(), "{comp}: {bad:?}");
    }
}
