//! The hosted runtime on a graph of two echo components: each in its own
//! process, mapping only its regions, moving real descriptors, reporting
//! faults and crashes by name.

use std::path::Path;
use std::time::{Duration, Instant};

use moat_hosted::config::{HostedConfig, Offload};
use moat_hosted::supervisor::{Graph, Waker};
use moat_hosted::sys;
use moat_ring::{Consumer, Message, PacketDesc};

fn echo_system() -> moat_system::System {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/moat/tests/ok/echo.toml");
    moat_system::load(&path).unwrap_or_else(|r| panic!("{r}"))
}

/// No TAPs, and the test system's own pool geometry (no segmentation
/// offload raising the buffers to 64 KiB).
fn plain() -> HostedConfig {
    HostedConfig { offload: Offload { segmentation: false }, ..HostedConfig::default() }
}

/// Pops from `c` until `n` items came or 5 s passed.
fn collect<T: Message>(c: &mut Consumer<T>, w: &Waker, n: usize) -> Vec<T> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < n && Instant::now() < deadline {
        while let Some(x) = c.pop().unwrap() {
            out.push(x);
        }
        if c.release().needed() {
            w.notify();
        }
        if out.len() < n && !c.arm().unwrap() {
            sys::wait_readable(w.mine, 100);
            w.take();
        }
    }
    out
}

#[test]
fn packets_cross_two_processes_and_come_back() {
    let system = echo_system();
    let mut g = Graph::start(&system, &plain()).unwrap();
    let (mut source, source_w) = g.producer::<PacketDesc>("source").unwrap();
    let (mut source_free, source_free_w) = g.consumer::<PacketDesc>("source_free").unwrap();
    let (mut sink, sink_w) = g.consumer::<PacketDesc>("sink").unwrap();
    let (mut sink_free, sink_free_w) = g.producer::<PacketDesc>("sink_free").unwrap();
    let mut pool = g.pool(&system, "buffers").unwrap();
    let geo = *pool.geometry();
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let mut d = geo.whole(i % geo.count());
        d.len = 100 + i;
        if i < geo.count() {
            pool.packet_mut(&d).unwrap().fill(i as u8);
            source.push(&d).unwrap();
            sent.push(d);
        }
    }
    if source.publish().needed() {
        source_w.notify();
    }
    let got = collect(&mut sink, &sink_w, sent.len());
    assert_eq!(got, sent, "descriptors arrive unchanged and in order");
    for d in &got {
        assert!(pool.packet(d).unwrap().iter().all(|&b| b == (d.offset / geo.buf_size()) as u8));
        sink_free.push(d).unwrap();
    }
    if sink_free.publish().needed() {
        sink_free_w.notify();
    }
    let back = collect(&mut source_free, &source_free_w, sent.len());
    assert_eq!(back.len(), sent.len(), "every buffer comes home");
    let status = g.status();
    let first = &status.iter().find(|(n, _)| n == "first").unwrap().1;
    let get = |k: &str| first.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("packets"), Some(sent.len() as u64));
    assert_eq!(get("held"), Some(0));
    assert!(g.check().is_none(), "nothing failed");
    g.stop();
}

/// The shared mappings of `pid`: (memfd name, permissions).
fn shared_maps(pid: i32) -> Vec<(String, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut out: Vec<(String, String)> = maps
        .lines()
        .filter(|l| l.contains("/memfd:moat:"))
        .map(|l| {
            let perms = l.split_whitespace().nth(1).unwrap().to_string();
            let name = l.split("/memfd:moat:").nth(1).unwrap().trim_end_matches(" (deleted)").to_string();
            (name, perms)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_process_maps_only_its_own_regions() {
    let system = echo_system();
    let g = Graph::start(&system, &plain()).unwrap();
    let procs = g.processes();
    let pid = |n: &str| procs.iter().find(|(name, _)| name == n).unwrap().1;
    let rw = "rw-s".to_string();
    let ro = "r--s".to_string();
    assert_eq!(
        shared_maps(pid("first")),
        vec![
            ("pool:buffers".into(), ro.clone()),
            ("ring:first.input_free->runtime.source_free".into(), rw.clone()),
            ("ring:first.output->second.input".into(), rw.clone()),
            ("ring:runtime.source->first.input".into(), rw.clone()),
            ("ring:second.input_free->first.output_free".into(), rw.clone()),
        ]
    );
    assert_eq!(
        shared_maps(pid("second")),
        vec![
            ("pool:buffers".into(), ro),
            ("ring:first.output->second.input".into(), rw.clone()),
            ("ring:runtime.sink_free->second.output_free".into(), rw.clone()),
            ("ring:second.input_free->first.output_free".into(), rw.clone()),
            ("ring:second.output->runtime.sink".into(), rw),
        ]
    );
    // No process keeps a descriptor of any region: the read-only mapping
    // cannot be re-made writable.
    for (_, p) in &procs {
        for fd in std::fs::read_dir(format!("/proc/{p}/fd")).unwrap() {
            let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
            assert!(!target.to_string_lossy().contains("memfd:"), "{p} holds {target:?}");
        }
    }
}

#[test]
fn a_crash_is_reported_by_name_and_the_graph_fails_closed() {
    let system = echo_system();
    let mut g = Graph::start(&system, &plain()).unwrap();
    // (Not SIGSEGV: Rust's stack-overflow handler ignores one that no
    // faulting instruction raised.)
    assert!(g.signal("second", libc::SIGABRT));
    let deadline = Instant::now() + Duration::from_secs(5);
    let failure = loop {
        if let Some(f) = g.check() {
            break f;
        }
        assert!(Instant::now() < deadline, "crash not noticed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(failure.component, "second");
    assert!(failure.reason.contains("killed by signal 6"), "{failure}");
    for (name, pid) in g.processes() {
        assert!(!Path::new(&format!("/proc/{pid}/maps")).exists() || sys::try_wait(pid).is_none(), "{name}");
        // SAFETY: kill with signal 0 only checks whether the process exists.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "{name} still runs after the failure");
    }
}

#[test]
fn a_peer_that_breaks_the_ring_is_named_in_the_fault() {
    let system = echo_system();
    let mut g = Graph::start(&system, &plain()).unwrap();
    let (_source, source_w) = g.producer::<PacketDesc>("source").unwrap();
    // Write an impossible producer index into the ring, as a broken
    // runtime would, and wake the component.
    let ring = g.plan().played("source").unwrap().ring;
    let r = &g.plan().regions[ring];
    let m = sys::Mapping::map(&r.fd, r.size, true).unwrap();
    moat_ring::spsc::scribble_indices(&m.region(), Some(100_000), None).unwrap();
    source_w.notify();
    let deadline = Instant::now() + Duration::from_secs(5);
    let failure = loop {
        if let Some(f) = g.check() {
            break f;
        }
        assert!(Instant::now() < deadline, "fault not noticed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(failure.component, "first");
    assert!(failure.reason.contains("the peer on port `input` broke the ring protocol"), "{failure}");
    assert!(failure.reason.contains("exited with status 70"), "{failure}");
}
