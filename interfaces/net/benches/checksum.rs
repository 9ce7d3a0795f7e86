//! Internet checksum throughput beside memcpy over the same buffers, in the
//! same run: memcpy reads and writes every byte, the checksum only reads,
//! so memcpy's rate is the practical ceiling. A textbook one-word-at-a-time
//! sum is shown too, for what wide accumulation buys.
//!
//! `cargo bench -p moat-net --bench checksum`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moat_net::checksum;

fn textbook(bytes: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in bytes.chunks(2) {
        acc += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65536] {
        let src: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("memcpy", size), &src, |b, s| {
            b.iter(|| {
                dst.copy_from_slice(black_box(s));
                black_box(&mut dst);
            })
        });
        g.bench_with_input(BenchmarkId::new("moat", size), &src, |b, s| b.iter(|| checksum::checksum(black_box(s))));
        g.bench_with_input(BenchmarkId::new("textbook", size), &src, |b, s| b.iter(|| textbook(black_box(s))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
