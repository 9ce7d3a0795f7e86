//! A whole system on the host: laid out by `Plan`, checked by `Manifest`,
//! bound by `LayoutBinder`, run by `Scheduler` — the path an image takes,
//! with the self-test's traffic component driving relays.

mod common;

use common::{Relay, TestPlatform, counters, memory};
use moat_component::{BindError, Binder, Channel, Component, Context, Fault, Instant, PortDecl, Ports, Status};
use moat_ring::{Device, Region, RegionError};
use moat_runtime::binder::{self, DeviceMem, LayoutBinder};
use moat_runtime::instance::Placer;
use moat_runtime::layout::Manifest;
use moat_runtime::layout::layout_hash_of;
use moat_runtime::plan::{Plan, config_blob, config_of};
use moat_runtime::sched::{Route, Scheduler};
use moat_runtime::selftest::reflector::{Reflector, ReflectorConfig};
use moat_runtime::selftest::{Scenario, Traffic, TrafficConfig};
use moat_runtime::system::{self, Kind, StartError, kind};

const KINDS: &[Kind] = &[kind::<Traffic>(), kind::<Relay>(), kind::<Pinger>(), kind::<Reflector>()];

/// traffic -> relay -> reflector -> relay -> traffic: replies in the
/// reflector's own pool, which the traffic component reads.
fn round_trip(packets: u32, expect_src: [u8; 4]) -> Vec<u8> {
    let cfg = TrafficConfig { packets, payload: 100, scenario: Scenario::Replies, meta: 0 };
    let mut p = Plan::new("round-trip");
    p.component_of::<Traffic>("traffic", 10, 16, &cfg).unwrap();
    p.component_of::<Reflector>("far", 10, 16, &ReflectorConfig { expect_src, meta: 0xff }).unwrap();
    p.component_of::<Relay>("out", 20, 16, &0).unwrap();
    p.component_of::<Relay>("back", 20, 16, &0).unwrap();
    p.pool("client", 1, 2048, 32, &[("traffic.pool", true), ("out.pool", false), ("far.packets", false)]).unwrap();
    p.pool("uplink", 2, 2048, 32, &[("far.pool", true), ("back.pool", false), ("traffic.replies", false)]).unwrap();
    let d = |p: &mut Plan, a: &str, b: &str| {
        p.ring_of::<moat_component::PacketDesc>(a, b, 64).unwrap();
    };
    for (a, b) in [
        ("traffic.to_graph", "out.input"),
        ("out.input_free", "traffic.to_graph_free"),
        ("out.output", "far.from_graph"),
        ("far.from_graph_free", "out.output_free"),
        ("far.to_graph", "back.input"),
        ("back.input_free", "far.to_graph_free"),
        ("back.output", "traffic.from_graph"),
        ("traffic.from_graph_free", "back.output_free"),
    ] {
        d(&mut p, a, b);
    }
    p.encode().unwrap()
}

#[test]
fn replies_come_back_through_the_reflector_and_are_checked() {
    let packets = if cfg!(miri) { 40 } else { 300 };
    let bytes = round_trip(packets, moat_runtime::selftest::packet::CLIENT);
    let m = Manifest::parse(&bytes).unwrap();
    let mut s = start(&m, &[]).unwrap();
    let mut p = TestPlatform::default();
    let t = s.find("traffic").unwrap();
    run(&mut s, &mut p, t, 100_000);
    for _ in 0..100 {
        s.run_once(&mut p); // the last replies' buffers travel home
    }
    let c = counters(&s, t);
    assert_eq!((c["received"], c["reclaimed"], c["failed"]), (packets.into(), packets.into(), 0), "{c:?}");
    let f = counters(&s, s.find("far").unwrap());
    assert_eq!((f["received"], f["reflected"], f["reclaimed"]), (packets.into(), packets.into(), packets.into()));
    assert_eq!(f["bad.source"] + f["bad.packet"] + f["bad.descriptor"], 0, "{f:?}");

    // A reflector told to expect translated packets refuses untranslated
    // ones: nothing comes back, and it says why.
    let bytes = round_trip(8, [10, 138, 0, 2]);
    let m = Manifest::parse(&bytes).unwrap();
    let mut s = start(&m, &[]).unwrap();
    run(&mut s, &mut p, t, 200);
    let f = counters(&s, s.find("far").unwrap());
    assert_eq!((f["received"], f["bad.source"], f["reflected"]), (8, 8, 0), "{f:?}");
    assert_eq!(counters(&s, t)["received"], 0);
}

fn chain(packets: u32, relays: &[u64]) -> Vec<u8> {
    let cfg = TrafficConfig { packets, payload: 64, scenario: Scenario::Unchanged, meta: 0 };
    let mut p = Plan::new("chain");
    p.component_of::<Traffic>("traffic", 10, 16, &cfg).unwrap();
    for (i, fail) in relays.iter().enumerate() {
        p.component_of::<Relay>(&format!("r{i}"), 20, 16, fail).unwrap();
    }
    let names: Vec<String> = (0..relays.len()).map(|i| format!("r{i}")).collect();
    let pools: Vec<String> = names.iter().map(|n| format!("{n}.pool")).collect();
    let mut maps = vec![("traffic.pool", true), ("traffic.replies", false)];
    maps.extend(pools.iter().map(|p| (p.as_str(), false)));
    p.pool("buffers", 1, 2048, 32, &maps).unwrap();
    let mut prev = ("traffic.to_graph".to_string(), "traffic.to_graph_free".to_string());
    for n in &names {
        p.ring_of::<moat_component::PacketDesc>(&prev.0, &format!("{n}.input"), 64).unwrap();
        p.ring_of::<moat_component::PacketDesc>(&format!("{n}.input_free"), &prev.1, 64).unwrap();
        prev = (format!("{n}.output"), format!("{n}.output_free"));
    }
    p.ring_of::<moat_component::PacketDesc>(&prev.0, "traffic.from_graph", 64).unwrap();
    p.ring_of::<moat_component::PacketDesc>("traffic.from_graph_free", &prev.1, 64).unwrap();
    for n in &names {
        p.expect_ports(n, <Relay as Component>::Ports::DECL).unwrap();
    }
    p.expect_ports("traffic", <Traffic as Component>::Ports::DECL).unwrap();
    p.encode().unwrap()
}

fn start<'a>(m: &Manifest<'a>, devices: &[DeviceMem]) -> Result<Scheduler<'static, 'a>, StartError<'a>> {
    let len = m.arena_bytes() as usize;
    // SAFETY: fresh leaked memory for this system alone.
    let arena = unsafe { binder::prepare(m, memory(len), len) }.unwrap();
    // SAFETY: as above.
    let mut placer = unsafe { Placer::new(memory(1 << 20), 1 << 20) };
    // SAFETY: the arena was prepared for this manifest; started once.
    unsafe { system::start(m, arena, devices, KINDS, &mut placer, Instant::ZERO, &mut || [7; 32]) }
}

fn run(s: &mut Scheduler<'_, '_>, p: &mut TestPlatform, traffic: usize, max_passes: u64) {
    let mut passes = 0;
    s.run_until(p, |s, _| {
        passes += 1;
        s.counter(traffic, "done") == Some(1) || s.faulted().is_some() || passes >= max_passes
    });
}

#[test]
fn traffic_crosses_a_chain_and_every_buffer_comes_home() {
    let packets = if cfg!(miri) { 40 } else { 500 };
    let bytes = chain(packets, &[0, 0, 0]);
    let m = Manifest::parse(&bytes).unwrap();
    let mut s = start(&m, &[]).unwrap();
    let mut p = TestPlatform::default();
    let t = s.find("traffic").unwrap();
    run(&mut s, &mut p, t, 100_000);
    let c = counters(&s, t);
    assert_eq!((c["sent"], c["received"], c["reclaimed"]), (packets.into(), packets.into(), packets.into()));
    assert_eq!(c["failed"], 0, "{c:?}");
    assert_eq!(c["done"], 1);
    for r in ["r0", "r1", "r2"] {
        assert_eq!(counters(&s, s.find(r).unwrap())["packets"], u64::from(packets));
    }
    assert!(p.faults.is_empty() && s.stray == 0);
    // 32 buffers for 500 packets: buffers were reused, so returns worked.
    assert!(packets > 32);
}

#[test]
fn notifications_follow_the_rings_and_idle_components_are_not_called() {
    let bytes = chain(4, &[0]);
    let m = Manifest::parse(&bytes).unwrap();
    let mut s = start(&m, &[]).unwrap();
    let (t, r) = (s.find("traffic").unwrap(), s.find("r0").unwrap());
    let (to_graph, _) = m.find_port(t, "to_graph").unwrap();
    let (input, spec) = m.find_port(r, "input").unwrap();
    assert_eq!(m.peer(to_graph).unwrap().0, input);
    let ch = Channel::new(m.port(to_graph).channel).unwrap();
    assert_eq!(s.route(t, ch), Route::Local { task: r as u8, channel: spec.channel });
    let mut p = TestPlatform::default();
    run(&mut s, &mut p, t, 1000);
    assert_eq!(s.counter(t, "done"), Some(1));
    let mut settle = 0;
    while s.busy() && settle < 10 {
        s.run_once(&mut p);
        settle += 1;
    }
    let calls = (s.calls(t), s.calls(r));
    // Nothing left to do: further passes call no one and the loop waits.
    assert_eq!(s.run_once(&mut p), 0);
    assert!(!s.busy());
    assert_eq!((s.calls(t), s.calls(r)), calls);
}

#[test]
fn a_fault_is_reported_by_name_and_that_component_is_not_called_again() {
    let bytes = chain(20, &[0, 3]);
    let m = Manifest::parse(&bytes).unwrap();
    let mut s = start(&m, &[]).unwrap();
    let mut p = TestPlatform::default();
    let t = s.find("traffic").unwrap();
    run(&mut s, &mut p, t, 1000);
    assert_eq!(p.faults, vec![("r1".to_string(), Fault::Internal("told to fail"))]);
    assert_eq!(s.faulted(), Some(("r1", Fault::Internal("told to fail"))));
    let r1 = s.find("r1").unwrap();
    let calls = s.calls(r1);
    for _ in 0..10 {
        s.run_once(&mut p);
    }
    assert_eq!(s.calls(r1), calls);
    let c = counters(&s, t);
    assert!(c["received"] < 3, "fail closed: nothing passes the faulted relay ({c:?})");
}

/// A device for the routing test: any memory will do.
struct TestDev(#[allow(dead_code)] Region);
impl Device for TestDev {
    const NAME: &'static str = "testdev";
    unsafe fn attach(region: Region) -> Result<Self, RegionError> {
        Ok(TestDev(region))
    }
}

/// Answers each outside event on its device channel, and ticks a timer.
struct Pinger {
    ch: Channel,
    pings: u64,
    ticks: u64,
    seed: u8,
}
struct PingerPorts(#[allow(dead_code)] TestDev, Channel);
impl Ports for PingerPorts {
    const DECL: &'static [PortDecl] = &[PortDecl::device("dev", "testdev")];
    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        let (d, ch) = b.device::<TestDev>("dev")?;
        Ok(PingerPorts(d, ch))
    }
}
impl Component for Pinger {
    const NAME: &'static str = "pinger";
    type Config = u64;
    type Ports = PingerPorts;
    fn init(_: u64, p: &mut PingerPorts, cx: &mut Context) -> Result<Self, Fault> {
        cx.wake_at(Instant::from_nanos(1_000));
        Ok(Pinger { ch: p.1, pings: 0, ticks: 0, seed: cx.seed()[0] })
    }
    fn notified(&mut self, _: &mut PingerPorts, cx: &mut Context) -> Result<(), Fault> {
        if cx.signals() != moat_component::Signals::ALL && cx.signals().contains(self.ch) {
            self.pings += 1;
            cx.notify(self.ch);
        }
        if cx.now() >= Instant::from_nanos(1_000 * (self.ticks + 1)) {
            self.ticks += 1;
        }
        if self.ticks < 5 {
            cx.wake_at(Instant::from_nanos(1_000 * (self.ticks + 1)));
        }
        Ok(())
    }
    fn status(&self, out: &mut dyn Status) {
        out.put("pings", self.pings);
        out.put("ticks", self.ticks);
        out.put("seed", u64::from(self.seed));
    }
}

#[test]
fn device_events_reach_their_port_and_notifications_reach_the_platform() {
    let mut p = Plan::new("dev");
    p.component("pinger", "pinger", 1, 8, config_of::<Pinger>(&0u64));
    p.device("pinger.dev", "testdev").unwrap();
    let bytes = p.encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let dev = DeviceMem { kind: "testdev", region: common::device_region(), event: 42 };
    let mut s = start(&m, &[dev]).unwrap();
    let mut plat = TestPlatform::default();
    s.run_once(&mut plat); // first call: every channel, not a ping
    plat.events = vec![7, 42, 42];
    s.run_once(&mut plat);
    assert_eq!(s.counter(0, "pings"), Some(1), "two events before one call are one signal");
    assert_eq!(s.counter(0, "seed"), Some(7), "init saw the runtime's entropy");
    assert_eq!(plat.sent, vec![42]);
    // Timers: the loop waits to each deadline, the component ticks five times.
    s.run_until(&mut plat, |s, _| s.counter(0, "ticks") == Some(5));
    assert_eq!(plat.now, 5_000);
    assert!(plat.waits >= 5);
    assert_eq!(s.next_deadline(), None);
    // Unknown device: refused when routes are made.
    assert!(matches!(start(&m, &[]), Err(StartError::Route(_))));
}

#[test]
fn start_refuses_unknown_kinds_and_unbound_ports() {
    let mut p = Plan::new("bad");
    p.component("x", "nosuch", 1, 8, vec![]);
    let bytes = p.encode().unwrap();
    assert_eq!(start(&Manifest::parse(&bytes).unwrap(), &[]).err(), Some(StartError::UnknownKind("x", "nosuch")));

    let mut p = Plan::new("extra");
    p.component("pinger", "pinger", 1, 8, config_of::<Pinger>(&0u64));
    p.device("pinger.dev", "testdev").unwrap();
    p.state("pinger.extra", 64).unwrap();
    let bytes = p.encode().unwrap();
    let dev = DeviceMem { kind: "testdev", region: common::device_region(), event: 1 };
    assert_eq!(start(&Manifest::parse(&bytes).unwrap(), &[dev]).err(), Some(StartError::Unbound("pinger", "extra")));

    let mut p = Plan::new("badconfig");
    p.component("pinger", "pinger", 1, 8, config_blob(layout_hash_of::<Pinger>(), &[0xff; 3]));
    p.device("pinger.dev", "testdev").unwrap();
    let bytes = p.encode().unwrap();
    assert!(matches!(
        start(&Manifest::parse(&bytes).unwrap(), &[dev]),
        Err(StartError::Fault("pinger", Fault::Config(_)))
    ));

    // A blob made for other code (here: bare postcard, and the relay's hash)
    // is refused before anything decodes it.
    for blob in [postcard::to_allocvec(&0u64).unwrap(), config_blob(layout_hash_of::<Relay>(), &[0])] {
        let mut p = Plan::new("otherconfig");
        p.component("pinger", "pinger", 1, 8, blob);
        p.device("pinger.dev", "testdev").unwrap();
        let bytes = p.encode().unwrap();
        assert!(matches!(start(&Manifest::parse(&bytes).unwrap(), &[dev]), Err(StartError::Config("pinger", _))));
    }
}

#[test]
fn binder_hands_out_each_port_once_typed_as_wired() {
    let mut p = Plan::new("bind");
    p.component("a", "a", 1, 8, vec![]);
    p.component("b", "b", 1, 8, vec![]);
    p.ring_of::<u64>("a.out", "b.in", 8).unwrap();
    p.byte_ring("b.ctl", "a.ctl", "Ctl", 256).unwrap();
    p.pool("buf", 3, 2048, 4, &[("a.pool", true), ("b.pool", false)]).unwrap();
    p.state("a.table", 100).unwrap();
    let bytes = p.encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let len = m.arena_bytes() as usize;
    // SAFETY: fresh memory for this manifest.
    let arena = unsafe { binder::prepare(&m, memory(len), len) }.unwrap();
    // SAFETY: one binder per component, arena prepared.
    let (mut a, mut b) =
        unsafe { (LayoutBinder::new(&m, arena, 0, &[]).unwrap(), LayoutBinder::new(&m, arena, 1, &[]).unwrap()) };
    assert_eq!(a.rx::<u64>("out").err(), Some(BindError::Mismatch("out")), "wrong direction");
    assert_eq!(a.tx::<moat_component::PacketDesc>("out").err(), Some(BindError::Mismatch("out")), "wrong type");
    assert_eq!(a.tx::<u64>("nope").err(), Some(BindError::Missing("nope")));
    let mut tx = a.tx::<u64>("out").unwrap();
    assert_eq!(a.tx::<u64>("out").err(), Some(BindError::Mismatch("out")), "bound twice");
    let mut rx = b.rx::<u64>("in").unwrap();
    assert!(tx.ring().push(&7).is_ok());
    let _ = tx.ring().publish();
    assert_eq!(rx.pop().unwrap(), Some(7));
    assert_eq!(a.msg_rx("ctl", "Other").err(), Some(BindError::Mismatch("ctl")));
    assert!(a.msg_rx("ctl", "Ctl").is_ok() && b.msg_tx("ctl", "Ctl").is_ok());
    assert!(a.pool("pool").unwrap().writable());
    assert!(!b.pool("pool").unwrap().writable(), "mapped read-only for b");
    assert_eq!(a.unbound(), Some("table"));
    assert_eq!(a.state::<u64>("table", 513).err(), Some(BindError::Layout("table")), "larger than laid out");
    assert_eq!(a.state_len("table"), Ok(100), "the bytes asked for, not the page-rounded region");
    assert_eq!(a.state_len("pool").err(), Some(BindError::Missing("pool")), "not a state port");
    assert_eq!(b.unbound(), None);
    assert_eq!(a.unbound(), None);
}

#[test]
fn the_runtime_reads_its_own_control_ring_ends() {
    let mut p = Plan::new("rt-end");
    p.component("a", "a", 1, 8, vec![]);
    p.byte_ring("a.events", "runtime.events", "Ev", 256).unwrap();
    p.byte_ring("runtime.policy", "a.policy", "Pol", 256).unwrap();
    p.ring_of::<u64>("a.out", "runtime.sink", 8).unwrap();
    let bytes = p.encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let len = m.arena_bytes() as usize;
    // SAFETY: fresh memory for this manifest.
    let arena = unsafe { binder::prepare(&m, memory(len), len) }.unwrap();
    // SAFETY: one binder for a; each runtime end attached once (the failed
    // attempts attach nothing).
    let (mut a, rx) = unsafe {
        assert_eq!(binder::runtime_msg_rx(&m, arena, "events", "Other").err(), Some(BindError::Mismatch("events")));
        assert_eq!(binder::runtime_msg_rx(&m, arena, "policy", "Pol").err(), Some(BindError::Mismatch("policy")));
        assert_eq!(binder::runtime_msg_rx(&m, arena, "sink", "u64").err(), Some(BindError::Mismatch("sink")));
        assert_eq!(binder::runtime_msg_rx(&m, arena, "nope", "Ev").err(), Some(BindError::Missing("nope")));
        (LayoutBinder::new(&m, arena, 0, &[]).unwrap(), binder::runtime_msg_rx(&m, arena, "events", "Ev"))
    };
    let mut rx = rx.unwrap();
    let mut tx = a.msg_tx("events", "Ev").unwrap();
    let mut scratch = [0u8; 64];
    assert!(tx.send(&(7u16, 9u8), &mut scratch).unwrap());
    assert!(tx.send(&(8u16, 1u8), &mut scratch).unwrap());
    let mut cx = Context::new(Instant::ZERO, moat_component::Signals::ALL, 8);
    tx.flush(&mut cx);
    let mut buf = [0u8; 64];
    assert_eq!(rx.recv_msg::<(u16, u8)>(&mut buf).unwrap(), Some((7, 9)));
    assert_eq!(rx.recv_msg::<(u16, u8)>(&mut buf).unwrap(), Some((8, 1)));
    assert_eq!(rx.recv_msg::<(u16, u8)>(&mut buf).unwrap(), None);
}
