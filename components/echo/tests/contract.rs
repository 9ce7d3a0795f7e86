//! The contract end to end: echo bound through the harness, driven by a test
//! that plays both neighbours.

use moat_component::{Instant, PacketDesc, PoolGeometry};
use moat_echo::{Echo, EchoConfig};
use moat_runtime::harness::Harness;

struct Rig {
    up: moat_component::Producer<PacketDesc>,
    up_free: moat_component::Consumer<PacketDesc>,
    down: moat_component::Consumer<PacketDesc>,
    down_free: moat_component::Producer<PacketDesc>,
    echo: moat_runtime::harness::Running<Echo>,
    h: Harness,
}

fn rig(capacity: u32) -> Rig {
    let mut h = Harness::new();
    let up = h.input("input", capacity);
    let up_free = h.output("input_free", capacity);
    let down = h.output("output", capacity);
    let down_free = h.input("output_free", capacity);
    h.pool("pool", PoolGeometry::new(1, 2048, 64).unwrap(), false);
    let echo = h.start::<Echo>(EchoConfig { count_bytes: true }).unwrap();
    Rig { up, up_free, down, down_free, echo, h }
}

fn desc(i: u32) -> PacketDesc {
    PacketDesc { pool: 1, offset: i * 2048 + 64, len: 100 + i, flags: 0, meta: i }
}

#[test]
fn relays_in_order_and_returns_buffers_the_way_they_came() {
    let mut r = rig(64);
    for i in 0..10 {
        r.up.push(&desc(i)).unwrap();
    }
    assert!(r.up.publish().needed());
    let out = r.echo.call(Instant::ZERO).unwrap();
    assert!(out.notified.contains(r.h.channel("output")), "downstream was woken");
    for i in 0..10 {
        assert_eq!(r.down.pop().unwrap(), Some(desc(i)));
    }
    let _ = r.down.release();
    for i in 0..10 {
        r.down_free.push(&desc(i)).unwrap();
    }
    let _ = r.down_free.publish();
    r.echo.call(Instant::ZERO).unwrap();
    for i in 0..10 {
        assert_eq!(r.up_free.pop().unwrap(), Some(desc(i)));
    }
    let s = r.echo.status();
    assert_eq!(s["packets"], 10);
    assert_eq!(s["bytes"], (0..10).map(|i| 100 + i).sum::<u64>());
    assert_eq!(s["held"], 0);
}

#[test]
fn bounded_work_per_call_and_asks_again() {
    let mut r = rig(256);
    r.echo.budget = 16;
    for i in 0..40 {
        r.up.push(&desc(i % 64)).unwrap();
    }
    let _ = r.up.publish();
    let first = r.echo.call(Instant::ZERO).unwrap();
    assert!(first.again, "work left after the budget");
    assert_eq!(r.down.available().unwrap(), 16);
}

#[test]
fn duplicates_and_strangers_are_counted_not_forwarded() {
    let mut r = rig(64);
    r.up.push(&desc(3)).unwrap();
    r.up.push(&desc(3)).unwrap(); // the same buffer twice
    r.up.push(&PacketDesc { pool: 9, ..desc(4) }).unwrap(); // unknown pool
    r.up.push(&PacketDesc { offset: 64 * 2048, ..desc(4) }).unwrap(); // out of range
    let _ = r.up.publish();
    r.echo.call(Instant::ZERO).unwrap();
    assert_eq!(r.down.pop().unwrap(), Some(desc(3)));
    assert_eq!(r.down.pop().unwrap(), None);
    r.down_free.push(&desc(5)).unwrap(); // never sent
    r.down_free.push(&desc(3)).unwrap();
    r.down_free.push(&desc(3)).unwrap(); // handed back twice
    let _ = r.down_free.publish();
    r.echo.call(Instant::ZERO).unwrap();
    assert_eq!(r.up_free.pop().unwrap(), Some(desc(3)));
    assert_eq!(r.up_free.pop().unwrap(), None);
    let s = r.echo.status();
    assert_eq!(s["drop.bad_descriptor"], 3);
    assert_eq!(s["error.bad_return"], 2);
}

#[test]
fn faulty_peer_is_a_fault_naming_the_port() {
    let mut r = rig(64);
    r.h.scribble("input", Some(1000), None);
    assert_eq!(r.echo.call(Instant::ZERO).unwrap_err(), moat_component::Fault::Peer("input"));
}
