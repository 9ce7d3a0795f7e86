// The self-test system, laid out at build time (included by build.rs, and
// by the host tests in images/pvh-test that run the same system on the host).
//
// Two traffic components play the edges of the firewall graph: `client`
// (netback's place) sends packets into the outbound path, `uplink`
// (netfront's place) into the inbound one; each checks what comes out at
// the far end. Between them run the real components, in the order of
// `OUTBOUND` and `INBOUND`. Ports of those components that the paths do
// not use (control rings, …) are runtime ends nobody serves.
//
// Adding a component to the self-test is one `component_of` line below and
// its stage in the path(s) it sits on.

/// Packets each traffic component sends.
pub const SELFTEST_PACKETS: u32 = 10_000;

/// The outbound path, client to uplink: (component, input port, output
/// port), each output feeding the next input.
pub const OUTBOUND: &[(&str, &str, &str)] = &[("csum", "from_clients", "to_rules")];

/// The inbound path, uplink to client.
pub const INBOUND: &[(&str, &str, &str)] = &[("csum", "from_uplink", "to_nat")];

/// The self-test system, ready to encode (its `rust_paths` list the kinds
/// the image must link).
pub fn selftest_plan() -> moat_runtime::plan::Plan {
    use moat_component::PacketDesc;
    use moat_runtime::plan::Plan;
    use moat_runtime::selftest::{Scenario, Traffic, TrafficConfig};

    let traffic = TrafficConfig { packets: SELFTEST_PACKETS, payload: 64, scenario: Scenario::Unchanged };
    let mut p = Plan::new("selftest");
    p.component_of::<Traffic>("client", 10, 64, &traffic).expect("client");
    p.component_of::<Traffic>("uplink", 10, 64, &traffic).expect("uplink");
    // The components under test, with their default configurations.
    p.component_of::<moat_csum::Csum>("csum", 20, 64, &moat_csum::CsumConfig {}).expect("csum");

    // Pools as in the firewall: each edge fills its own; every component on
    // a path maps the pools it declares, with the access it declares.
    let mut stages: Vec<&str> = OUTBOUND.iter().chain(INBOUND).map(|s| s.0).collect();
    stages.sort();
    stages.dedup();
    for (id, pool, edge) in [(1, "client_buffers", "client.pool"), (2, "uplink_buffers", "uplink.pool")] {
        let mut maps = vec![(edge.to_string(), true)];
        for c in &stages {
            if let Some(d) = p.declared(c).iter().find(|d| d.name == pool) {
                maps.push((format!("{c}.{pool}"), d.writable));
            }
        }
        let maps: Vec<(&str, bool)> = maps.iter().map(|(s, w)| (s.as_str(), *w)).collect();
        p.pool(pool, id, 2048, 256, &maps).expect("selftest pool");
    }
    for (edge, path) in [("client", OUTBOUND), ("uplink", INBOUND)] {
        let mut out = (format!("{edge}.to_graph"), format!("{edge}.to_graph_free"));
        for (c, input, output) in path {
            p.ring_of::<PacketDesc>(&out.0, &format!("{c}.{input}"), 256).expect("selftest ring");
            p.ring_of::<PacketDesc>(&format!("{c}.{input}_free"), &out.1, 256).expect("selftest ring");
            out = (format!("{c}.{output}"), format!("{c}.{output}_free"));
        }
        p.ring_of::<PacketDesc>(&out.0, &format!("{edge}.from_graph"), 256).expect("selftest ring");
        p.ring_of::<PacketDesc>(&format!("{edge}.from_graph_free"), &out.1, 256).expect("selftest ring");
    }
    let plain = |m: &str| (m == "PacketDesc").then_some(core::mem::size_of::<PacketDesc>());
    p.runtime_ends(256, plain).expect("runtime ends");
    p
}
