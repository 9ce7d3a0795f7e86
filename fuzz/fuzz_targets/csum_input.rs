//! The csum component's input path through the real ring and pool code:
//! arbitrary descriptors (any pool, offset, length, flags, meta) over
//! arbitrary buffer contents, in both directions. No panic, no fault (the
//! fuzzer plays well-behaved neighbours), and every descriptor is accounted
//! for: forwarded, handed back, or counted as bad. Forwarded buffers are
//! then handed back downstream-to-upstream, so each run ends with csum
//! holding nothing — checked, and what lets one rig serve every run (the
//! harness's rings are never freed, by design).
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use moat_component::{Consumer, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_csum::{Csum, CsumConfig};
use moat_runtime::harness::{Harness, Running};

struct Side {
    input: Producer<PacketDesc>,
    input_free: Consumer<PacketDesc>,
    output: Consumer<PacketDesc>,
    output_free: Producer<PacketDesc>,
    pool: Pool,
    name: &'static str,
}

struct Rig {
    sides: [Side; 2],
    csum: Running<Csum>,
    _h: Harness,
}

fn rig() -> Rig {
    let mut h = Harness::new();
    let mut side = |names: [&'static str; 5], id: u16, name| Side {
        input: h.input(names[0], 64),
        input_free: h.output(names[1], 64),
        output: h.output(names[2], 64),
        output_free: h.input(names[3], 64),
        pool: h.pool(names[4], PoolGeometry::new(id, 2048, 8).unwrap(), true),
        name,
    };
    let c = side(["from_clients", "from_clients_free", "to_rules", "to_rules_free", "client_buffers"], 1, "clients");
    let u = side(["from_uplink", "from_uplink_free", "to_nat", "to_nat_free", "uplink_buffers"], 2, "uplink");
    let csum = h.start::<Csum>(CsumConfig::default()).unwrap();
    Rig { sides: [c, u], csum, _h: h }
}

thread_local! {
    static RIG: RefCell<Rig> = RefCell::new(rig());
}

fn bad(s: &HashMap<String, u64>, side: &str) -> u64 {
    s[&format!("{side}.error.bad_descriptor")]
}

fuzz_target!(|input: (Vec<(u8, u16, u16, u16, u32)>, &[u8])| {
    let (descs, bytes) = input;
    RIG.with_borrow_mut(|r| {
        for (k, side) in r.sides.iter_mut().enumerate() {
            for i in 0..8 {
                let whole = PacketDesc { pool: k as u16 + 1, offset: i * 2048, len: 2048, ..Default::default() };
                let n = bytes.len().min(2048);
                side.pool.packet_mut(&whole).unwrap()[..n].copy_from_slice(&bytes[..n]);
            }
        }
        let before = r.csum.status();
        let mut sent = [0u64; 2];
        for (which, pool, flags, offset, len) in descs.into_iter().take(64) {
            let d = PacketDesc { pool, flags, offset: u32::from(offset), len: len & 0xfff, meta: (which >> 1).into() };
            let k = usize::from(which & 1);
            if r.sides[k].input.push(&d).is_ok() {
                sent[k] += 1;
            }
        }
        for s in &mut r.sides {
            let _ = s.input.publish();
        }
        r.csum.settle(Instant::ZERO, 64).expect("well-behaved neighbours cause no fault");
        let after = r.csum.status();
        for (k, s) in r.sides.iter_mut().enumerate() {
            let out: Vec<_> = std::iter::from_fn(|| s.output.pop().unwrap()).collect();
            let _ = s.output.release();
            let back = std::iter::from_fn(|| s.input_free.pop().unwrap()).count() as u64;
            let _ = s.input_free.release();
            assert_eq!(out.len() as u64 + back + bad(&after, s.name) - bad(&before, s.name), sent[k]);
            for d in out {
                assert!(d.len <= 2048);
                s.output_free.push(&d).unwrap();
            }
            let _ = s.output_free.publish();
        }
        r.csum.settle(Instant::ZERO, 64).unwrap();
        let s = r.csum.status();
        for side in &mut r.sides {
            std::iter::from_fn(|| side.input_free.pop().unwrap()).for_each(drop);
            let _ = side.input_free.release();
            assert_eq!(s[&format!("{}.held", side.name)], 0, "everything came home");
        }
    });
});
