//! The manifest parser: every structural error is refused with the index of
//! what is wrong, and no byte string makes it panic.

use moat_runtime::layout::{
    self, Caps, ComponentSpec, ConfigEnvelope, ConfigError, Header, LayoutError, Manifest, PortKind, PortSpec,
    RegionKind, RegionSpec,
};
use moat_runtime::plan::Plan;
use proptest::prelude::*;

fn header(arena: u64) -> Header<'static> {
    Header {
        magic: layout::MAGIC,
        version: layout::VERSION,
        system: "t",
        arena_bytes: arena,
        policy_hash: [0; 32],
        planned: "",
        components: 0,
        regions: 0,
        ports: 0,
    }
}

const C: [ComponentSpec<'static>; 2] = [
    ComponentSpec { name: "a", kind: "k", priority: 1, budget: 8, stack: 4096, caps: NO_CAPS, config: &[] },
    ComponentSpec { name: "b", kind: "k", priority: 1, budget: 8, stack: 4096, caps: NO_CAPS, config: &[] },
];

const NO_CAPS: Caps<'static> =
    Caps { grant_copy: false, grant_access: false, event_channels: 0, xenstore_read: "", xenstore_write: "" };

fn ring(offset: u64) -> RegionSpec<'static> {
    RegionSpec { name: "r", offset, size: 4096, kind: RegionKind::Ring { capacity: 8, slot_size: 16 } }
}

fn port(component: u16, name: &'static str, kind: PortKind, region: u16, channel: u8) -> PortSpec<'static> {
    PortSpec { component, name, kind, message: "PacketDesc", region, writable: true, channel }
}

fn parse(arena: u64, c: &[ComponentSpec], r: &[RegionSpec], p: &[PortSpec]) -> Result<(), LayoutError> {
    let mut buf = vec![0; 8192];
    let n = layout::encode(&header(arena), c, r, p, &mut buf).unwrap();
    Manifest::parse(&buf[..n]).map(|_| ())
}

fn good_ports() -> Vec<PortSpec<'static>> {
    vec![port(0, "out", PortKind::Tx, 0, 0), port(1, "in", PortKind::Rx, 0, 0)]
}

#[test]
fn a_minimal_ring_system_parses() {
    assert_eq!(parse(4096, &C, &[ring(0)], &good_ports()), Ok(()));
}

#[test]
fn region_errors() {
    let p = good_ports();
    assert_eq!(parse(4096, &C, &[ring(8)], &p), Err(LayoutError::Region(0)), "misaligned");
    assert_eq!(parse(4095, &C, &[ring(0)], &p), Err(LayoutError::Region(0)), "outside the arena");
    let small = RegionSpec { kind: RegionKind::Ring { capacity: 512, slot_size: 16 }, ..ring(0) };
    assert_eq!(parse(4096, &C, &[small], &p), Err(LayoutError::Region(0)), "ring does not fit");
    let odd = RegionSpec { kind: RegionKind::Ring { capacity: 6, slot_size: 16 }, ..ring(0) };
    assert_eq!(parse(4096, &C, &[odd], &p), Err(LayoutError::Region(0)), "capacity not a power of two");
    let overlap = RegionSpec { size: 8192, ..ring(0) };
    let p2 = [p.clone(), vec![port(0, "o2", PortKind::Tx, 1, 1), port(1, "i2", PortKind::Rx, 1, 1)]].concat();
    assert_eq!(parse(16384, &C, &[overlap, ring(4096)], &p2), Err(LayoutError::Region(1)), "overlap");
    let pool =
        |id| RegionSpec { name: "p", offset: 0, size: 8192, kind: RegionKind::Pool { id, buf_size: 2048, count: 4 } };
    let pool2 = RegionSpec { offset: 8192, ..pool(1) };
    assert_eq!(parse(16384, &C, &[pool(1), pool2], &[]), Err(LayoutError::Region(1)), "duplicate pool id");
    let huge = RegionSpec { kind: RegionKind::Pool { id: 1, buf_size: 2048, count: 8 }, ..pool(1) };
    assert_eq!(parse(16384, &C, &[huge], &[]), Err(LayoutError::Region(0)), "pool larger than region");
    let wrap = RegionSpec { offset: u64::MAX - 4095, ..ring(0) };
    assert_eq!(parse(u64::MAX, &C, &[wrap], &p), Err(LayoutError::Region(0)), "offset + size overflows");
}

#[test]
fn port_and_wiring_errors() {
    let r = [ring(0)];
    let with = |extra: PortSpec<'static>| [good_ports(), vec![extra]].concat();
    assert_eq!(
        parse(4096, &C, &r, &with(port(2, "x", PortKind::Rx, 0, 1))),
        Err(LayoutError::Port(2)),
        "no component 2"
    );
    assert_eq!(parse(4096, &C, &r, &with(port(0, "y", PortKind::Rx, 9, 1))), Err(LayoutError::Port(2)), "no region 9");
    assert_eq!(parse(4096, &C, &r, &with(port(0, "out", PortKind::Rx, 0, 1))), Err(LayoutError::Port(2)), "name twice");
    assert_eq!(
        parse(4096, &C, &r, &with(port(0, "z", PortKind::Rx, 0, 0))),
        Err(LayoutError::Port(2)),
        "channel twice"
    );
    assert_eq!(parse(4096, &C, &r, &with(port(0, "z", PortKind::Rx, 0, 64))), Err(LayoutError::Port(2)), "channel 64");
    assert_eq!(
        parse(4096, &C, &r, &with(port(0, "z", PortKind::Pool, 0, 255))),
        Err(LayoutError::Port(2)),
        "pool on a ring"
    );
    assert_eq!(
        parse(4096, &C, &r, &with(port(0, "z", PortKind::Device, 0, 3))),
        Err(LayoutError::Port(2)),
        "device in arena"
    );
    assert_eq!(
        parse(4096, &C, &r, &with(port(0, "z", PortKind::Rx, 0, 3))),
        Err(LayoutError::Wiring(0)),
        "two consumers"
    );
    let lonely = [port(0, "out", PortKind::Tx, 0, 0)];
    assert_eq!(parse(4096, &C, &r, &lonely), Err(LayoutError::Wiring(0)), "no consumer");
    let other =
        [port(0, "out", PortKind::Tx, 0, 0), PortSpec { message: "Other", ..port(1, "in", PortKind::Rx, 0, 0) }];
    assert_eq!(parse(4096, &C, &r, &other), Err(LayoutError::Wiring(0)), "message types differ");
    let state = RegionSpec { name: "s", offset: 0, size: 4096, kind: RegionKind::State { bytes: 4096 } };
    let shared = [port(0, "s", PortKind::State, 0, 255), port(1, "s", PortKind::State, 0, 255)];
    assert_eq!(parse(4096, &C, &[state], &shared), Err(LayoutError::Wiring(0)), "state shared");
    let big = RegionSpec { kind: RegionKind::State { bytes: 4097 }, ..state };
    assert_eq!(parse(4096, &C, &[big], &shared[..1]), Err(LayoutError::Region(0)), "state larger than its region");
}

#[test]
fn runtime_ends_have_no_channel_and_never_face_each_other() {
    let rt = |name, kind| PortSpec { channel: layout::NO_CHANNEL, ..port(layout::RUNTIME, name, kind, 0, 0) };
    let ok = [port(0, "out", PortKind::Tx, 0, 0), rt("sink", PortKind::Rx)];
    assert_eq!(parse(4096, &C, &[ring(0)], &ok), Ok(()));
    let with_channel = [port(0, "out", PortKind::Tx, 0, 0), port(layout::RUNTIME, "sink", PortKind::Rx, 0, 0)];
    assert_eq!(parse(4096, &C, &[ring(0)], &with_channel), Err(LayoutError::Port(1)), "runtime end with a channel");
    let both = [rt("a", PortKind::Tx), rt("b", PortKind::Rx)];
    assert_eq!(parse(4096, &C, &[ring(0)], &both), Err(LayoutError::Wiring(0)), "runtime on both ends");
    let twice = [ok[0], ok[1], port(1, "out", PortKind::Tx, 1, 0), rt("sink", PortKind::Rx)];
    let twice = [twice[0], twice[1], twice[2], PortSpec { region: 1, ..twice[3] }];
    assert_eq!(parse(8192, &C, &[ring(0), ring(4096)], &twice), Err(LayoutError::Port(3)), "label used twice");
    let state = RegionSpec { name: "s", offset: 0, size: 4096, kind: RegionKind::State { bytes: 1 } };
    let on_state = [PortSpec { kind: PortKind::State, ..rt("s", PortKind::Rx) }];
    assert_eq!(parse(4096, &C, &[state], &on_state), Err(LayoutError::Port(0)), "runtime end on state");
    // The scheduler sees them as peers of nobody it can call.
    let mut p = Plan::new("rt");
    p.component("a", "k", 1, 8, vec![]);
    p.ring_of::<u64>("a.out", "runtime.sink", 8).unwrap();
    assert!(p.ring_of::<u64>("runtime.x", "runtime.y", 8).is_err());
    assert!(p.ring_of::<u64>("runtime.sink", "a.in", 8).is_err(), "label used twice");
    let bytes = p.encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let (i, _) = m.find_port(0, "out").unwrap();
    assert_eq!(m.peer(i).unwrap().1.component, layout::RUNTIME);
    let s = moat_runtime::sched::Scheduler::new(&m, &[]).unwrap();
    let ch = moat_component::Channel::new(m.port(i).channel).unwrap();
    assert_eq!(s.route(0, ch), moat_runtime::sched::Route::Unserved);
}

#[test]
fn configuration_envelopes_are_checked_before_decoding() {
    let blob = moat_runtime::plan::config_blob(0x1234, &[7, 8]);
    assert_eq!(ConfigEnvelope::open(&blob, 0x1234), Ok(&[7u8, 8][..]));
    assert_eq!(ConfigEnvelope::open(&blob, 0x1235), Err(ConfigError::Layout { blob: 0x1234, code: 0x1235 }));
    assert_eq!(ConfigEnvelope::open(&[7, 8], 0x1234), Err(ConfigError::Envelope), "bare postcard");
    let mut other = blob.clone();
    other[0] ^= 1;
    assert_eq!(ConfigEnvelope::open(&other, 0x1234), Err(ConfigError::Envelope), "wrong magic");
    assert_eq!(ConfigEnvelope::peek(&blob).unwrap().payload, &[7, 8]);
}

#[test]
fn layout_hash_changes_with_every_declared_fact() {
    use moat_component::PortDecl;
    let base = [PortDecl::rx("in", "PacketDesc"), PortDecl::pool_rw("pool")];
    let h = |kind, ports: &[PortDecl], ty, size| layout::layout_hash(kind, ports, ty, size);
    let a = h("k", &base, "C", 4);
    assert_eq!(a, h("k", &base, "C", 4), "deterministic");
    let others = [
        h("j", &base, "C", 4),
        h("k", &base, "D", 4),
        h("k", &base, "C", 5),
        h("k", &base[..1], "C", 4),
        h("k", &[PortDecl::tx("in", "PacketDesc"), base[1]], "C", 4),
        h("k", &[PortDecl::rx("in", "Other"), base[1]], "C", 4),
        h("k", &[PortDecl::rx("inn", "PacketDesc"), base[1]], "C", 4),
        h("k", &[base[0], PortDecl::pool_ro("pool")], "C", 4),
    ];
    for (i, o) in others.iter().enumerate() {
        assert_ne!(a, *o, "change {i} must change the hash");
    }
}

#[test]
fn header_and_component_errors() {
    let mut buf = vec![0; 4096];
    let n = layout::encode(&Header { version: layout::VERSION + 1, ..header(0) }, &C, &[], &[], &mut buf).unwrap();
    assert_eq!(Manifest::parse(&buf[..n]).err(), Some(LayoutError::BadHeader));
    let dup = [C[0], C[0]];
    assert_eq!(parse(0, &dup, &[], &[]), Err(LayoutError::Component(1)));
    let lazy = [ComponentSpec { budget: 0, ..C[0] }];
    assert_eq!(parse(0, &lazy, &[], &[]), Err(LayoutError::Component(0)));
    let n = layout::encode(&header(4096), &C, &[ring(0)], &good_ports(), &mut buf).unwrap();
    buf[n] = 0;
    assert_eq!(Manifest::parse(&buf[..n + 1]).err(), Some(LayoutError::Trailing));
    assert_eq!(Manifest::parse(&buf[..n - 1]).err(), Some(LayoutError::Decode));
    assert_eq!(Manifest::parse(&[]).err(), Some(LayoutError::BadHeader));
}

#[test]
fn plan_lays_regions_out_page_aligned_and_disjoint() {
    let mut p = Plan::new("plan");
    p.component("a", "k", 1, 8, vec![1, 2, 3]).component("b", "k", 2, 8, vec![]);
    p.ring_of::<u64>("a.out", "b.in", 1024).unwrap();
    p.pool("buf", 1, 2048, 10, &[("a.pool", true), ("b.pool", false)]).unwrap();
    p.state("b.t", 5000).unwrap();
    p.device("b.dev", "xenstore").unwrap();
    assert!(p.ring_of::<u64>("a.x", "c.y", 8).is_err(), "unknown component");
    assert!(p.ring_of::<u64>("a.out", "b.y", 8).is_err(), "port wired twice");
    let bytes = p.encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let regions: Vec<_> = m.regions().collect();
    assert_eq!(
        regions.iter().map(|r| (r.offset, r.size)).collect::<Vec<_>>(),
        [(0, 12288), (12288, 20480), (32768, 8192)]
    );
    assert_eq!(m.arena_bytes(), 40960);
    assert_eq!(m.component(0).config, &[1, 2, 3]);
    let (_, dev) = m.find_port(1, "dev").unwrap();
    assert_eq!((dev.kind, dev.message, dev.region), (PortKind::Device, "xenstore", layout::NO_REGION));
    let (_, pool) = m.find_port(1, "pool").unwrap();
    assert!(!pool.writable);
}

fn sample() -> Vec<u8> {
    let mut p = Plan::new("fuzz");
    p.component("a", "k", 1, 8, vec![9; 5]).component("b", "k", 2, 8, vec![]);
    p.ring_of::<u64>("a.out", "b.in", 16).unwrap();
    p.byte_ring("b.ctl", "a.ctl", "Ctl", 64).unwrap();
    p.pool("buf", 1, 2048, 2, &[("a.pool", true), ("b.pool", false)]).unwrap();
    p.state("b.t", 100).unwrap();
    p.encode().unwrap()
}

proptest! {
    // Under Miri: few cases, and no failure file (Miri isolates the file system).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 512 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// Corrupted manifests are refused or, if they still parse, keep every
    /// invariant; parsing never panics.
    #[test]
    fn corrupted_manifests_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut bytes = sample();
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] = v;
        }
        let len = bytes.len() - cut % 4;
        if let Ok(m) = Manifest::parse(&bytes[..len]) {
            let mut end = 0;
            for r in m.regions() {
                prop_assert!(r.offset % 4096 == 0 && r.offset >= end && r.offset + r.size <= m.arena_bytes());
                end = r.offset + r.size;
            }
            for (i, p) in m.ports() {
                prop_assert!((p.component as usize) < m.component_count());
                if matches!(p.kind, PortKind::Rx | PortKind::Tx) {
                    prop_assert!(m.peer(i).is_some());
                }
            }
        }
    }
}
