//! The platform when not on Xen (QEMU `-kernel`, bare metal): a TSC clock,
//! no devices, and waiting by spinning.

use moat_component::{Fault, Instant};
use moat_runtime::sched::Platform;

use crate::clock::Tsc;

/// Longest single spin in `wait`, so the monitor re-checks its own exit
/// conditions regularly even with no timer pending.
const MAX_SPIN_NS: u64 = 1_000_000;

/// No hypervisor: only a clock.
pub struct Bare {
    /// The calibrated TSC.
    pub clock: Tsc,
}

impl Platform for Bare {
    fn now(&mut self) -> Instant {
        let now = self.clock.now();
        crate::log::stamp(now.as_nanos());
        now
    }

    fn send(&mut self, _event: u32) {
        // No devices exist here, so no route leads outside.
    }

    fn take_events(&mut self, _sink: &mut dyn FnMut(u32)) {}

    fn wait(&mut self, deadline: Option<Instant>) {
        let now = self.clock.now();
        let limit = now.as_nanos().saturating_add(MAX_SPIN_NS);
        let until = deadline.map_or(limit, |d| d.as_nanos().min(limit));
        while self.clock.now().as_nanos() < until {
            crate::cpu::pause();
        }
    }

    fn fault(&mut self, component: &str, fault: Fault) {
        crate::println!("moat: component {} FAULT: {:?} (stopped; its traffic stops with it)", component, fault);
    }
}
