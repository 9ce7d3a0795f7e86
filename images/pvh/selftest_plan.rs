// The self-test system, laid out at build time (included by build.rs, and
// by the host tests in images/pvh-test that run the same system on the host).
//
// The real firewall components sit between two self-test components that
// play its edges: `client` (netback's place) sends numbered UDP packets from
// client 10.137.0.5 along `OUTBOUND`; `uplink` (netfront's place) checks
// what arrives (translated to the NAT's uplink address) and answers each
// with a reply from the server, which travels `INBOUND` back to the client,
// which checks that the translation was undone. `clients` announces the
// client to rules and nat, as xenstore does. Ports the paths and `CONTROL`
// do not wire are runtime ends nobody serves.
//
// Adding a component to the self-test is its `component_of` line below and
// its stage in the path(s) it sits on.

/// Packets the client sends (each from its own source port: as many NAT
/// connections).
pub const SELFTEST_PACKETS: u32 = 10_000;

/// The outbound path, client to uplink: (component, input port, output
/// port), each output feeding the next input.
pub const OUTBOUND: &[(&str, &str, &str)] =
    &[("csum", "from_clients", "to_rules"), ("rules", "from_csum", "to_nat"), ("nat", "from_rules", "to_uplink")];

/// The inbound path, uplink to client.
pub const INBOUND: &[(&str, &str, &str)] = &[("csum", "from_uplink", "to_nat"), ("nat", "from_csum", "to_clients")];

/// Control rings among the self-test's components, wired when both ends
/// are present: (producer, consumer, message, bytes).
pub const CONTROL: &[(&str, &str, &str, u32)] = &[
    ("clients.clients_to_rules", "rules.clients", "ClientEvent", 4096),
    ("clients.clients_to_nat", "nat.clients", "ClientEvent", 4096),
    ("rules.to_nat_ctl", "nat.from_rules_ctl", "RulesToNat", 4096),
    ("nat.to_rules_ctl", "rules.from_nat_ctl", "NatToRules", 4096),
];

/// The NAT's uplink address in the self-test.
pub const UPLINK_IP: [u8; 4] = [10, 138, 0, 2];

/// The self-test system, ready to encode (its `rust_paths` list the kinds
/// the image must link).
pub fn selftest_plan() -> moat_runtime::plan::Plan {
    use moat_component::PacketDesc;
    use moat_runtime::plan::Plan;
    use moat_runtime::selftest::clients::{Clients, ClientsConfig};
    use moat_runtime::selftest::packet::CLIENT;
    use moat_runtime::selftest::reflector::{Reflector, ReflectorConfig};
    use moat_runtime::selftest::{Scenario, Traffic, TrafficConfig};

    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/qubes-default.toml");
    let rules = moat_policy::compile_files(&[policy]).expect("the default policy compiles");
    let mut nat = moat_nat::NatConfig::new(UPLINK_IP.into());
    nat.max_connections = 16384; // every packet is a connection of its own
    nat.max_per_client = 16384;

    let mut p = Plan::new("selftest");
    let traffic = TrafficConfig { packets: SELFTEST_PACKETS, payload: 64, scenario: Scenario::Replies, meta: 0 };
    p.component_of::<Traffic>("client", 10, 64, &traffic).expect("client");
    let reflector = ReflectorConfig { expect_src: UPLINK_IP, meta: 0xff };
    p.component_of::<Reflector>("uplink", 10, 64, &reflector).expect("uplink");
    p.component_of::<Clients>("clients", 200, 8, &ClientsConfig { slot: 0, ipv4: CLIENT }).expect("clients");
    // The components under test, as system.toml configures them.
    p.component_of::<moat_csum::Csum>("csum", 100, 64, &moat_csum::CsumConfig::default()).expect("csum");
    p.component_of::<moat_rules::Rules>("rules", 100, 64, &rules).expect("rules");
    p.component_of::<moat_nat::Nat>("nat", 100, 64, &nat).expect("nat");

    // Pools as in the firewall: each edge fills its own and reads the
    // other's; every component on a path maps the pools it declares, with
    // the access it declares.
    let mut stages: Vec<&str> = OUTBOUND.iter().chain(INBOUND).map(|s| s.0).collect();
    stages.sort();
    stages.dedup();
    let pools = [(1, "client_buffers", "client.pool", "uplink.packets"), (2, "uplink_buffers", "uplink.pool", "client.replies")];
    for (id, pool, owner, reader) in pools {
        let mut maps = vec![(owner.to_string(), true), (reader.to_string(), false)];
        for c in &stages {
            if let Some(d) = p.declared(c).iter().find(|d| d.name == pool) {
                maps.push((format!("{c}.{pool}"), d.writable));
            }
        }
        let maps: Vec<(&str, bool)> = maps.iter().map(|(s, w)| (s.as_str(), *w)).collect();
        p.pool(pool, id, 2048, 512, &maps).expect("selftest pool");
    }
    for (from, to, path) in [("client", "uplink", OUTBOUND), ("uplink", "client", INBOUND)] {
        let mut out = (format!("{from}.to_graph"), format!("{from}.to_graph_free"));
        for (c, input, output) in path {
            p.ring_of::<PacketDesc>(&out.0, &format!("{c}.{input}"), 512).expect("selftest ring");
            p.ring_of::<PacketDesc>(&format!("{c}.{input}_free"), &out.1, 512).expect("selftest ring");
            out = (format!("{c}.{output}"), format!("{c}.{output}_free"));
        }
        p.ring_of::<PacketDesc>(&out.0, &format!("{to}.from_graph"), 512).expect("selftest ring");
        p.ring_of::<PacketDesc>(&format!("{to}.from_graph_free"), &out.1, 512).expect("selftest ring");
    }
    for (from, to, message, bytes) in CONTROL {
        let has = |at: &str| !p.declared(at.split('.').next().unwrap_or_default()).is_empty();
        if has(from) && has(to) {
            p.byte_ring(from, to, message, *bytes).expect("selftest control ring");
        }
    }
    let plain = |m: &str| (m == "PacketDesc").then_some(core::mem::size_of::<PacketDesc>());
    p.runtime_ends(64, plain).expect("runtime ends");
    p
}
