//! Packets per second through the csum component, bound by the host
//! harness to real rings and a real pool: 64-byte and 1500-byte IPv4
//! packets, verified (uplink side) and completed (client side, csum_blank).
//! Each iteration hands csum a batch, drains its output, hands the buffers
//! back and drains the returns — the whole relay, as in the graph. The
//! `echo` component does the same relay without looking at the packets: its
//! rate, measured in the same run, is what the rings alone cost.
//!
//! `cargo bench -p moat-csum --bench csum`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moat_component::{Consumer, Instant, PacketDesc, PoolGeometry, Producer};
use moat_csum::{Csum, CsumConfig};
use moat_net::meta::{HEADROOM, flags};
use moat_net::testing;
use moat_runtime::harness::{Harness, Running};

const BATCH: u32 = 64;

struct Rig {
    input: Producer<PacketDesc>,
    input_free: Consumer<PacketDesc>,
    output: Consumer<PacketDesc>,
    output_free: Producer<PacketDesc>,
    csum: Running<Csum>,
    descs: Vec<PacketDesc>,
}

/// A rig whose `side` input carries BATCH copies of `packet` flagged `f`.
fn rig(uplink: bool, packet: &[u8], f: u16) -> Rig {
    let mut h = Harness::new();
    let names = |up: bool| {
        if up {
            ["from_uplink", "from_uplink_free", "to_nat", "to_nat_free"]
        } else {
            ["from_clients", "from_clients_free", "to_rules", "to_rules_free"]
        }
    };
    let mut ours = None;
    for up in [false, true] {
        let n = names(up);
        let ends = (h.input(n[0], 256), h.output(n[1], 256), h.output(n[2], 256), h.input(n[3], 256));
        if up == uplink {
            ours = Some(ends);
        }
    }
    let (input, input_free, output, output_free) = ours.unwrap();
    let id = if uplink { 2 } else { 1 };
    let mut pool = h.pool(
        if uplink { "uplink_buffers" } else { "client_buffers" },
        PoolGeometry::new(id, 2048, BATCH).unwrap(),
        true,
    );
    h.pool(if uplink { "client_buffers" } else { "uplink_buffers" }, PoolGeometry::new(3 - id, 2048, 8).unwrap(), true);
    let descs: Vec<_> = (0..BATCH)
        .map(|i| {
            let d = PacketDesc { pool: id, flags: f, offset: i * 2048 + HEADROOM, len: packet.len() as u32, meta: 0 };
            pool.packet_mut(&d).unwrap().copy_from_slice(packet);
            d
        })
        .collect();
    let mut csum = h.start::<Csum>(CsumConfig::default()).unwrap();
    csum.budget = BATCH;
    Rig { input, input_free, output, output_free, csum, descs }
}

impl Rig {
    fn round(&mut self) {
        for d in &self.descs {
            self.input.push(d).unwrap();
        }
        let _ = self.input.publish();
        self.csum.call(Instant::ZERO).unwrap();
        while let Some(d) = self.output.pop().unwrap() {
            // Completion rewrites the field each time; start from blank again.
            self.output_free.push(&PacketDesc { flags: self.descs[0].flags, ..d }).unwrap();
        }
        let _ = self.output.release();
        let _ = self.output_free.publish();
        self.csum.call(Instant::ZERO).unwrap();
        let mut n = 0;
        while self.input_free.pop().unwrap().is_some() {
            n += 1;
        }
        let _ = self.input_free.release();
        assert_eq!(n, BATCH, "every buffer came home: {:?}", self.csum.status());
        black_box(n);
    }
}

/// `echo` bound with the test's ends of its four rings.
type EchoRig =
    (Producer<PacketDesc>, Consumer<PacketDesc>, Consumer<PacketDesc>, Producer<PacketDesc>, Running<moat_echo::Echo>);

/// The same round through `echo` (relay only).
fn echo_round(h: &mut EchoRig, descs: &[PacketDesc]) {
    let (input, input_free, output, output_free, echo) = h;
    for d in descs {
        input.push(d).unwrap();
    }
    let _ = input.publish();
    echo.call(Instant::ZERO).unwrap();
    while let Some(d) = output.pop().unwrap() {
        output_free.push(&d).unwrap();
    }
    let _ = output.release();
    let _ = output_free.publish();
    echo.call(Instant::ZERO).unwrap();
    let mut n = 0;
    while input_free.pop().unwrap().is_some() {
        n += 1;
    }
    let _ = input_free.release();
    assert_eq!(n, descs.len());
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("csum");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let (a, b) = ([10, 137, 0, 5], [93, 184, 216, 34]);
    for size in [64usize, 1500] {
        let udp = testing::udp_v4(a, b, 5353, 53, &vec![7u8; size - 28]);
        let tcp = testing::tcp_v4(a, b, 40000, 443, &vec![7u8; size - 40]);
        let mut r = rig(true, &udp, 0);
        g.bench_function(BenchmarkId::new("verify_udp", size), |bch| bch.iter(|| r.round()));
        let mut r = rig(true, &tcp, 0);
        g.bench_function(BenchmarkId::new("verify_tcp", size), |bch| bch.iter(|| r.round()));
        let mut r = rig(false, &tcp, flags::CSUM_BLANK);
        g.bench_function(BenchmarkId::new("complete_tcp", size), |bch| bch.iter(|| r.round()));
        let mut h = Harness::new();
        let ends =
            (h.input("input", 256), h.output("input_free", 256), h.output("output", 256), h.input("output_free", 256));
        h.pool("pool", PoolGeometry::new(1, 2048, BATCH).unwrap(), false);
        let mut echo = h.start::<moat_echo::Echo>(moat_echo::EchoConfig::default()).unwrap();
        echo.budget = BATCH;
        let mut e = (ends.0, ends.1, ends.2, ends.3, echo);
        let descs: Vec<_> = (0..BATCH)
            .map(|i| PacketDesc { pool: 1, offset: i * 2048 + HEADROOM, len: size as u32, ..Default::default() })
            .collect();
        g.bench_function(BenchmarkId::new("echo_relay", size), |bch| bch.iter(|| echo_round(&mut e, &descs)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
