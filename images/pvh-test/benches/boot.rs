//! Time from starting QEMU to the image's first console line, and to the
//! first self-test packet through the component graph, measured in the same
//! run for comparison (the difference is the image's own start-up: page
//! tables, TSC calibration, laying out and starting the system).
//!
//! `cargo bench -p moat-pvh-test --bench boot`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use moat_pvh_test::{boot_until, build_image, status};

fn boot_to(c: &mut Criterion) {
    let image = build_image();
    let mut g = c.benchmark_group("pvh_boot");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    for (name, marker) in [
        ("qemu_start_to_first_line", "moat: PVH boot"),
        ("qemu_start_to_first_packet", "selftest: first packet through"),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = boot_until(&image, "", Duration::from_secs(60), &[marker]);
                    assert_eq!(run.status, Some(status::SUCCESS), "{}", run.output);
                    total += run.marks.first().expect("marker seen").1;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, boot_to);
criterion_main!(benches);
