//! NAT throughput beside a `std::collections::HashMap` baseline measured in
//! the same run: packets per second on an established flow with 10k and
//! 64k live connections, and new connections per second on a full table.
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

criterion_group!(benches, established_path, new_connections);
criterion_main!(benches);
