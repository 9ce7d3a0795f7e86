//! The monitor: starts the system an embedded manifest describes and runs
//! it, or runs the self-test system and judges it.
//!
//! The component kinds this image can run are listed in [`KINDS`]; adding a
//! component to the image is one line here and one dependency in
//! `Cargo.toml`.

use moat_component::{Duration, Instant, Status};
use moat_runtime::binder::{self, DeviceMem};
use moat_runtime::instance::Placer;
use moat_runtime::layout::Manifest;
use moat_runtime::sched::{Platform, Scheduler};
use moat_runtime::selftest::Traffic;
use moat_runtime::system::{self, Kind, kind};

use crate::memory::Memory;
use crate::println;

/// Every component type linked into the image.
pub static KINDS: &[Kind] = &[
    kind::<Traffic>(),
    kind::<moat_echo::Echo>(),
    kind::<moat_xenstore::Xenstore>(),
    kind::<moat_csum::Csum>(),
    kind::<moat_rules::Rules>(),
    kind::<moat_nat::Nat>(),
    kind::<moat_netback::Netback>(),
    kind::<moat_netfront::Netfront>(),
];

/// How often a running system prints its counters.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// RAM for the components' own state (each in pages of its own).
const COMPONENT_BYTES: u64 = 2 << 20;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The self-test passed.
    Pass,
    /// The self-test failed, or the system could not start.
    Fail,
}

struct Line<'a>(&'a str, bool);

impl Status for Line<'_> {
    fn put(&mut self, name: &str, value: u64) {
        if !self.1 {
            crate::print!("moat: status {}", self.0);
            self.1 = true;
        }
        crate::print!(" {}={}", name, value);
    }
}

fn print_status(s: &Scheduler<'_, '_>, m: &Manifest<'_>) {
    for (i, c) in m.components().enumerate() {
        let mut line = Line(c.name, false);
        s.status(i, &mut line);
        if line.1 {
            println!();
        }
    }
}

/// Starts the system in `bytes` and runs it. With `selftest`, stops when its
/// traffic component is done (or at `limit`) and judges the run; otherwise
/// runs for good.
pub fn run(
    bytes: &'static [u8],
    mem: &mut Memory,
    devices: &[DeviceMem],
    platform: &mut dyn Platform,
    selftest: bool,
    limit: Duration,
) -> Verdict {
    let m = match Manifest::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            println!("moat: manifest refused: {:?}", e);
            return Verdict::Fail;
        }
    };
    let h = m.header();
    println!(
        "moat: system '{}': {} components, {} regions, {} ports, arena {} KiB",
        h.system,
        m.component_count(),
        m.region_count(),
        m.port_count(),
        m.arena_bytes() / 1024
    );
    let (arena_mem, placer_mem) = match (mem.alloc(m.arena_bytes()), mem.alloc(COMPONENT_BYTES)) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => {
            println!("moat: not enough memory: {:?}", e);
            return Verdict::Fail;
        }
    };
    let arena_len = m.arena_bytes().next_multiple_of(4096) as usize;
    // SAFETY: fresh RAM from the allocator, mapped read-write, ours for good.
    let arena = match unsafe { binder::prepare(&m, arena_mem, arena_len) } {
        Ok(a) => a,
        Err(e) => {
            println!("moat: arena refused: {:?}", e);
            return Verdict::Fail;
        }
    };
    // Ops devices for the drivers (Xen only), after the platform's own.
    let mut all = [DeviceMem { kind: "", region: arena, event: 0 }; 8];
    let given = devices.len().min(all.len());
    all[..given].copy_from_slice(&devices[..given]);
    let ops = crate::xen::ops::attach(&m, arena_mem as u64, mem, &mut all[given..]);
    let devices = &all[..given + ops];
    // SAFETY: as above, a separate allocation.
    let mut placer = unsafe { Placer::new(placer_mem, COMPONENT_BYTES as usize) };
    let start = platform.now();
    let source = crate::entropy::source();
    if source == crate::entropy::Source::TscOnly {
        println!("moat: WARNING: no RDSEED/RDRAND: component seeds come from TSC jitter only");
    }
    // SAFETY: the arena was prepared for this manifest just now, and this is
    // the only start of this system.
    let mut s = match unsafe {
        system::start(&m, arena, devices, KINDS, &mut placer, start, &mut || crate::entropy::seed(source))
    } {
        Ok(s) => s,
        Err(e) => {
            println!("moat: system did not start: {:?}", e);
            return Verdict::Fail;
        }
    };
    println!(
        "moat: started at {} us; arena at {:#x}, components use {} KiB; RAM used up to {:#x}",
        start.as_nanos() / 1000,
        arena_mem as usize,
        placer.used() / 1024,
        mem.high_water()
    );
    let traffic = m.components().position(|c| c.kind == <Traffic as moat_component::Component>::NAME);
    if !selftest {
        // Every component's counters on the console now and then, for
        // whoever reads the log (the real-Xen scenarios check them).
        let mut report_at = start;
        s.run_until(platform, |s, now| {
            if now >= report_at {
                print_status(s, &m);
                crate::xen::ops::report();
                report_at = now.saturating_add(STATUS_EVERY);
            }
            false
        });
    }
    let Some(t) = traffic else {
        println!("moat: selftest: no traffic component in the self-test system");
        return Verdict::Fail;
    };
    let deadline = start.saturating_add(limit);
    let mut first = false;
    s.run_until(platform, |s, now: Instant| {
        if !first && s.counter(t, "received").unwrap_or(0) > 0 {
            first = true;
            println!("moat: selftest: first packet through at {} us", now.as_nanos() / 1000);
        }
        s.counter(t, "done") == Some(1) || s.faulted().is_some() || now > deadline
    });
    let now = platform.now();
    print_status(&s, &m);
    let c = |k| s.counter(t, k).unwrap_or(0);
    let (sent, received, done_ns, first_ns) = (c("sent"), c("received"), c("done_ns"), c("first_packet_ns"));
    println!(
        "moat: selftest: {} packets sent, {} received, first after {} us, all in {} us ({} passes)",
        sent,
        received,
        first_ns.saturating_sub(start.as_nanos()) / 1000,
        done_ns.saturating_sub(start.as_nanos()) / 1000,
        s.passes
    );
    if c("done") == 1 && c("failed") == 0 && s.faulted().is_none() {
        println!("moat: selftest PASS");
        Verdict::Pass
    } else {
        let why = match s.faulted() {
            Some(_) => "a component faulted",
            None if now > deadline => "timed out",
            None => "traffic mismatched",
        };
        println!("moat: selftest FAIL: {}", why);
        Verdict::Fail
    }
}
