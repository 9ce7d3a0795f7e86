//! Drives the established path N times, for `valgrind --tool=callgrind`
//! instruction counts per packet (see BENCHMARKS.md, section NAT):
//! `per_packet moat|std N` with 10,000 live connections.

use std::hint::black_box;

use moat_net::meta::flags;

#[path = "../benches/setup.rs"]
mod setup;
use setup::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("moat", String::as_str);
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    match which {
        "moat" => {
            let (mut e, data) = established(65_536, 10_000);
            let mut buf = buffer(&data);
            for _ in 0..n {
                buf[64..64 + data.len()].copy_from_slice(&data);
                black_box(e.outbound(&mut buf, 64, data.len(), flags::CSUM_OK, meta(0), 2 * S));
            }
        }
        _ => {
            let (mut t, data) = established_baseline(10_000);
            let mut pkt = data.clone();
            for _ in 0..n {
                pkt.copy_from_slice(&data);
                black_box(t.outbound(&mut pkt, 2 * S));
            }
        }
    }
}
