//! The checked model: what `moat build` and the hosted runtime get.

use std::path::Path;

use moat_system::model::{End, Owner, PortKind, Wire};

fn echo_system() -> moat_system::System {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../moat/tests/ok/echo.toml"));
    moat_system::load(path).unwrap_or_else(|r| panic!("{r}"))
}

#[test]
fn echo_line_resolves_every_reference() {
    let s = echo_system();
    assert_eq!(s.name, "echo-line");
    assert_eq!(s.memory, 4 << 20);
    let first = s.component("first").unwrap();
    let second = s.component("second").unwrap();
    assert_eq!(first.entry.unwrap().name, "echo");
    assert_eq!((first.priority, first.budget, first.stack), (110, 32, 16 << 10));
    assert_eq!((second.priority, second.budget, second.stack), (100, 64, 8 << 10), "defaults and explicit stack");

    // Channels are numbered over ring and device ports in declaration
    // order; the pool port has none.
    let channels: Vec<Option<u8>> = first.ports.iter().map(|p| p.channel).collect();
    assert_eq!(channels, [Some(0), Some(1), Some(2), Some(3), None]);

    // first.output -> second.input, and its free ring back.
    let Wire::Ring(r) = first.port("output").unwrap().wire else { panic!("output is a ring") };
    let ring = &s.rings[r];
    assert_eq!(ring.to, End::Port { component: 1, port: 0 });
    assert_eq!((ring.message.as_str(), ring.capacity, ring.slot_size), ("PacketDesc", 256, 16));
    assert_eq!(ring.bytes(), 128 + 256 * 16);
    assert!(!ring.is_control());
    assert_eq!(s.rings[0].from, End::Runtime("source".into()));

    // The pool, mapped under the components' own port name.
    let pool = &s.pools[0];
    assert_eq!((pool.id, pool.buffer_size, pool.count, &pool.owner), (1, 2048, 256, &Owner::Runtime));
    assert_eq!(pool.maps, [(0, 4, false), (1, 4, false)]);
    assert_eq!(first.port("pool").unwrap().wire, Wire::Pool(0));
    assert_eq!(first.port("pool").unwrap().kind, PortKind::Pool);

    // Config: the postcard encoding of EchoConfig.
    let blob = postcard::to_allocvec(&moat_echo::EchoConfig { count_bytes: true }).unwrap();
    assert_eq!(first.config_blob.as_deref(), Some(&blob[..]));

    let m = s.memory_use();
    assert_eq!(m.rings, 6 * 8192, "4224 bytes each, rounded to two pages");
    assert_eq!(m.pools, 512 << 10);
    assert_eq!(m.stacks, 24 << 10);
    assert_eq!(m.state, 0);
}

#[test]
fn planned_state_sizes_count_towards_memory() {
    let text = r#"
[system]
name = "t"
memory = "64MiB"
[component.table]
crate = "components/table"
planned = true
ports = { conns = "state 8MiB", input = "rx u64" }
[[ring]]
from = "runtime.feed"
to = "table.input"
message = "u64"
capacity = 8
"#;
    let s = moat_system::check_source(text, "t.toml", Path::new(".")).unwrap_or_else(|r| panic!("{r}"));
    let c = s.component("table").unwrap();
    assert!(c.planned());
    assert_eq!(c.port("conns").unwrap().wire, Wire::State(8 << 20));
    assert_eq!(c.state_bytes(), 8 << 20);
    assert_eq!(s.rings[0].slot_size, 8);
    assert_eq!(s.memory_use().state, 8 << 20);
}
