//! NAT throughput beside a `std::collections::HashMap` baseline measured in
//! the same run: packets per second on an established flow with 10k and
//! 64k live connections, and new connections per second on a full table.
//! Also the cost of one complete re-check exchange (a client's rules
//! changed) on a full table, beside a bare pass over the same table.
//! Run: `cargo bench -p moat-nat --bench nat`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moat_net::meta::flags;

#[path = "setup.rs"]
mod setup;
use setup::*;

fn established_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(1));
    for live in [10_000u32, 65_536] {
        let (mut e, data) = established(65_536, live);
        let mut buf = buffer(&data);
        let len = data.len();
        g.bench_function(BenchmarkId::new("moat", live), |b| {
            b.iter(|| {
                buf[64..64 + len].copy_from_slice(&data);
                black_box(e.outbound(&mut buf, 64, len, flags::CSUM_OK, meta(0), 2 * S))
            })
        });
        let (mut t, data) = established_baseline(live);
        let mut pkt = data.clone();
        g.bench_function(BenchmarkId::new("std_hashmap", live), |b| {
            b.iter(|| {
                pkt.copy_from_slice(&data);
                black_box(t.outbound(&mut pkt, 2 * S))
            })
        });
    }
    g.finish();
}

fn new_connections(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_connection");
    g.throughput(Throughput::Elements(1));
    // A full table: every new flow evicts the oldest unreplied one.
    let cap = 65_536u32;
    let (mut e, _) = established(cap, cap);
    let (_, template) = filler(0);
    let len = template.len();
    let mut buf = buffer(&template);
    let mut i = cap;
    g.bench_function(BenchmarkId::new("moat", cap), |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let slot = refill(&mut buf[64..64 + len], i);
            black_box(e.outbound(&mut buf, 64, len, flags::CSUM_OK, meta(slot), 2 * S))
        })
    });
    let (mut t, _) = established_baseline(cap);
    let mut pkt = template.clone();
    let mut i = cap;
    g.bench_function(BenchmarkId::new("std_hashmap", cap), |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            refill(&mut pkt, i);
            black_box(t.outbound(&mut pkt, 2 * S))
        })
    });
    g.finish();
    eprintln!(
        "bytes per connection at 65536: moat {} (all state regions), std_hashmap {} (hashbrown layout)",
        moat_bytes_per_conn(cap),
        baseline_bytes_per_conn(cap as usize)
    );
}

/// One client's rules change on a full 65,536 table (16 clients, 4,096
/// connections each): every batch named, sent and answered (nothing
/// refused, so the table is the same for the next iteration), 4,096 entries
/// walked per call as the component does. Beside it, the floor: one plain
/// pass over the table picking that client's entries.
fn recheck_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("recheck");
    let cap = 65_536u32;
    let (mut e, _) = established(cap, cap);
    let mut map = [0u8; 32];
    moat_control::rules::slots::set(&mut map, 3);
    let mut epoch = 0;
    g.bench_function(BenchmarkId::new("moat_exchange", cap), |b| {
        b.iter(|| {
            epoch += 1;
            e.rules_changed(1, epoch, &map);
            let mut batches = 0;
            while !e.rechecks().idle() {
                let mut scan = 4096;
                while let Some(moat_control::NatToRules::Check { slot, batch, .. }) = e.next_check(2 * S, &mut scan) {
                    e.check_sent(2 * S);
                    e.rules_denied(epoch, slot, batch, 0);
                    batches += 1;
                }
            }
            black_box(batches)
        })
    });
    let (e, _) = established(cap, cap);
    g.bench_function(BenchmarkId::new("bare_pass", cap), |b| {
        b.iter(|| {
            let t = e.table();
            black_box((0..t.capacity() as u32).filter(|&i| t.get(i).slot == 3 && t.get(i).state != 0).count())
        })
    });
    g.finish();
}

criterion_group!(benches, established_path, new_connections, recheck_exchange);
criterion_main!(benches);
