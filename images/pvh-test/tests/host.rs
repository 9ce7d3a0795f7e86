//! The image's self-test system, run on the host through the same runtime
//! code (manifest, binder, scheduler) and the same components the image
//! links, so a failure here points at the system rather than at booting.

use moat_component::{Fault, Instant};
use moat_runtime::binder;
use moat_runtime::instance::Placer;
use moat_runtime::layout::Manifest;
use moat_runtime::sched::Platform;
use moat_runtime::selftest::Traffic;
use moat_runtime::system::{self, Kind, kind};

include!("../../pvh/selftest_plan.rs");

const KINDS: &[Kind] = &[
    kind::<Traffic>(),
    kind::<moat_runtime::selftest::reflector::Reflector>(),
    kind::<moat_runtime::selftest::clients::Clients>(),
    kind::<moat_csum::Csum>(),
    kind::<moat_rules::Rules>(),
    kind::<moat_nat::Nat>(),
];

struct Host(u64);
impl Platform for Host {
    fn now(&mut self) -> Instant {
        self.0 += 100;
        Instant::from_nanos(self.0)
    }
    fn send(&mut self, _: u32) {
        unreachable!("the self-test system has no devices")
    }
    fn take_events(&mut self, _: &mut dyn FnMut(u32)) {}
    fn wait(&mut self, _: Option<Instant>) {}
    fn fault(&mut self, c: &str, f: Fault) {
        panic!("{c} faulted: {f:?}")
    }
}

fn memory(len: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: non-zero size; leaked on purpose (the system lives for good).
    unsafe { std::alloc::alloc_zeroed(layout) }
}

#[test]
fn selftest_system_passes_on_the_host() {
    let bytes = selftest_plan().encode().unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let len = m.arena_bytes() as usize;
    // SAFETY: fresh memory for this system alone.
    let arena = unsafe { binder::prepare(&m, memory(len), len) }.unwrap();
    // SAFETY: as above.
    let mut placer = unsafe { Placer::new(memory(1 << 20), 1 << 20) };
    // SAFETY: prepared for this manifest; started once.
    let mut s = unsafe { system::start(&m, arena, &[], KINDS, &mut placer, Instant::ZERO, &mut || [7; 32]) }.unwrap();
    let t = s.find("client").unwrap();
    let mut host = Host(0);
    let mut passes = 0;
    s.run_until(&mut host, |s, _| {
        passes += 1;
        s.counter(t, "done") == Some(1) || passes > 1_000_000
    });
    let n = u64::from(SELFTEST_PACKETS);
    let c = |name: &str, key: &str| s.counter(s.find(name).unwrap(), key);
    let mut status = String::new();
    for i in 0..m.component_count() {
        s.status(i, &mut moat_component::StatusFn(|k: &str, v| status.push_str(&format!(" {}.{k}={v}", s.name(i)))));
    }
    assert_eq!(c("client", "received"), Some(n), "{status}");
    assert_eq!(c("client", "failed"), Some(0), "{status}");
    assert_eq!(c("uplink", "reflected"), Some(n), "{status}");
    assert_eq!(c("csum", "clients.pass.verified"), Some(n), "{status}");
    assert_eq!(c("csum", "uplink.pass.verified"), Some(n), "{status}");
    assert_eq!(c("rules", "verdict.accept"), Some(n), "{status}");
    assert_eq!(c("nat", "conn.live"), Some(n), "every packet opened a connection:{status}");
}
