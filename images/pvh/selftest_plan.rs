// The self-test system, laid out at build time (included by build.rs, and
// by the host test in images/pvh-test that runs the same system on the host).
//
// Traffic → echo → echo → traffic, buffers back the same way. To put more
// components on the path, add them between `to_graph` and `from_graph`.

/// Packets the self-test sends.
pub const SELFTEST_PACKETS: u32 = 10_000;

/// The self-test system's manifest.
pub fn selftest_plan() -> Vec<u8> {
    use moat_runtime::plan::Plan;
    use moat_runtime::selftest::{Scenario, TrafficConfig};

    let traffic = TrafficConfig { packets: SELFTEST_PACKETS, payload: 64, scenario: Scenario::Unchanged };
    let echo = moat_echo::EchoConfig { count_bytes: true };
    fn cfg<T: serde::Serialize>(v: &T) -> Vec<u8> {
        postcard::to_allocvec(v).expect("configuration encodes")
    }
    let mut p = Plan::new("selftest");
    p.component("traffic", "selftest-traffic", 10, 64, cfg(&traffic));
    p.component("echo1", "echo", 20, 64, cfg(&echo));
    p.component("echo2", "echo", 20, 64, cfg(&echo));
    let desc = |p: &mut Plan, from: &str, to: &str| {
        p.ring_of::<moat_component::PacketDesc>(from, to, 256).map(|_| ()).expect("selftest ring")
    };
    p.pool("buffers", 1, 2048, 512, &[("traffic.pool", true), ("echo1.pool", false), ("echo2.pool", false)])
        .expect("selftest pool");
    desc(&mut p, "traffic.to_graph", "echo1.input");
    desc(&mut p, "echo1.input_free", "traffic.to_graph_free");
    desc(&mut p, "echo1.output", "echo2.input");
    desc(&mut p, "echo2.input_free", "echo1.output_free");
    desc(&mut p, "echo2.output", "traffic.from_graph");
    desc(&mut p, "traffic.from_graph_free", "echo2.output_free");
    p.expect_ports("traffic", <moat_runtime::selftest::TrafficPorts as moat_component::Ports>::DECL)
        .expect("traffic ports");
    for e in ["echo1", "echo2"] {
        p.expect_ports(e, <moat_echo::EchoPorts as moat_component::Ports>::DECL).expect("echo ports");
    }
    p.encode().expect("selftest system")
}
