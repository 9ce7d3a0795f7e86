//! Descriptors per second through one ring, same thread and across two
//! threads, at batch sizes 1/32/256 — beside `std::sync::mpsc` and
//! `crossbeam-channel` measured in the same run. Across threads every side
//! sleeps when it cannot proceed (eventfds for the ring, the channels' own
//! blocking), so the comparison is of real hand-offs, not of spinning.
//!
//! `cargo bench -p moat-ring --bench ring`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moat_ring::{Consumer, PacketDesc, Producer, Region, RingLayout};

const CAPACITY: u32 = 512;
const BATCHES: [usize; 3] = [1, 32, 256];
/// Descriptors per cross-thread measurement.
const CROSS: u64 = 200_000;

fn ring() -> (Producer<PacketDesc>, Consumer<PacketDesc>) {
    let layout = RingLayout::of::<PacketDesc>(CAPACITY).unwrap();
    let region = Region::alloc_zeroed(layout.size());
    layout.init(&region).unwrap();
    // SAFETY: fresh ring, one producer, one consumer.
    unsafe { (Producer::attach(&region, CAPACITY).unwrap(), Consumer::attach(&region, CAPACITY).unwrap()) }
}

fn desc(i: u64) -> PacketDesc {
    PacketDesc { offset: i as u32, len: 64, ..Default::default() }
}

fn same_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("same_thread");
    for batch in BATCHES {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("moat_ring", batch), &batch, |b, &batch| {
            let (mut p, mut c) = ring();
            let input: Vec<_> = (0..batch as u64).map(desc).collect();
            let mut out = vec![PacketDesc::default(); batch];
            b.iter(|| {
                p.push_batch(black_box(&input)).unwrap();
                let _ = p.publish();
                let n = c.pop_batch(&mut out).unwrap();
                let _ = c.release();
                black_box(&out[..n]);
            });
        });
        g.bench_with_input(BenchmarkId::new("std_mpsc", batch), &batch, |b, &batch| {
            let (tx, rx) = std::sync::mpsc::sync_channel(CAPACITY as usize);
            b.iter(|| {
                for i in 0..batch as u64 {
                    tx.send(black_box(desc(i))).unwrap();
                }
                for _ in 0..batch {
                    black_box(rx.recv().unwrap());
                }
            });
        });
        g.bench_with_input(BenchmarkId::new("crossbeam", batch), &batch, |b, &batch| {
            let (tx, rx) = crossbeam_channel::bounded(CAPACITY as usize);
            b.iter(|| {
                for i in 0..batch as u64 {
                    tx.send(black_box(desc(i))).unwrap();
                }
                for _ in 0..batch {
                    black_box(rx.recv().unwrap());
                }
            });
        });
    }
    g.finish();
}

/// A counting wakeup (what a runtime uses: an eventfd between processes).
struct Event(std::os::fd::OwnedFd);

impl Event {
    fn new() -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd returns a fresh descriptor that we own.
        Event(unsafe { std::os::fd::OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) })
    }
    fn signal(&self) {
        use std::os::fd::AsRawFd;
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
    fn wait(&self) {
        use std::os::fd::AsRawFd;
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a valid u64.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// Moves `CROSS` descriptors to a consumer thread in batches of `batch`,
/// both sides sleeping on eventfds through the event-index protocol, as
/// components do (neither side spins).
fn cross_ring(batch: usize) -> Duration {
    let (mut p, mut c) = ring();
    let data = std::sync::Arc::new(Event::new());
    let space = std::sync::Arc::new(Event::new());
    let (d, s) = (data.clone(), space.clone());
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut out = vec![PacketDesc::default(); batch];
        let mut got = 0;
        while got < CROSS {
            let n = c.pop_batch(&mut out).unwrap();
            got += n as u64;
            black_box(&out[..n]);
            if c.release().needed() {
                s.signal();
            }
            if n == 0 && !c.arm().unwrap() {
                d.wait();
            }
        }
    });
    let input: Vec<_> = (0..batch as u64).map(desc).collect();
    let mut sent = 0;
    while sent < CROSS {
        let want = (CROSS - sent).min(batch as u64) as usize;
        let n = p.push_batch(&input[..want]).unwrap();
        sent += n as u64;
        if p.publish().needed() {
            data.signal();
        }
        if n == 0 && !p.arm_space().unwrap() {
            space.wait();
        }
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn cross_channel<S, R>(tx: S, rx: R) -> Duration
where
    S: Fn(PacketDesc),
    R: FnMut() -> PacketDesc + Send + 'static,
{
    let mut rx = rx;
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        for _ in 0..CROSS {
            black_box(rx());
        }
    });
    for i in 0..CROSS {
        tx(desc(i));
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn cross_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread");
    g.throughput(Throughput::Elements(CROSS));
    g.sample_size(20);
    for batch in BATCHES {
        g.bench_with_input(BenchmarkId::new("moat_ring", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| (0..iters).map(|_| cross_ring(batch)).sum());
        });
    }
    g.bench_function(BenchmarkId::new("std_mpsc", 1), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(CAPACITY as usize);
                    cross_channel(move |d| tx.send(d).unwrap(), move || rx.recv().unwrap())
                })
                .sum()
        });
    });
    g.bench_function(BenchmarkId::new("crossbeam", 1), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = crossbeam_channel::bounded(CAPACITY as usize);
                    cross_channel(move |d| tx.send(d).unwrap(), move || rx.recv().unwrap())
                })
                .sum()
        });
    });
    g.finish();
}

criterion_group!(benches, same_thread, cross_thread);
criterion_main!(benches);
