//! Shared pieces of the runtime's tests: a relay component (echo's shape,
//! kept here so the runtime does not depend on a component crate), a
//! platform with a virtual clock, and leaked page-aligned memory.
#![allow(dead_code)]

use std::collections::HashMap;

use moat_component::{
    BindError, Binder, Component, Context, Custody, Fault, Instant, PacketDesc, PortDecl, Ports, Rx, Status, Tx,
};
use moat_runtime::sched::Platform;

/// Relays descriptors from `input` to `output`, buffers back the way they
/// came.
pub struct Relay {
    custody: Custody,
    pub packets: u64,
    /// Fault with this after so many packets (0: never).
    fail_after: u64,
}

pub struct RelayPorts {
    input: Rx<PacketDesc>,
    input_free: Tx<PacketDesc>,
    output: Tx<PacketDesc>,
    output_free: Rx<PacketDesc>,
    pool: moat_component::Pool,
}

impl Ports for RelayPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("input", "PacketDesc"),
        PortDecl::tx("input_free", "PacketDesc"),
        PortDecl::tx("output", "PacketDesc"),
        PortDecl::rx("output_free", "PacketDesc"),
        PortDecl::pool_ro("pool"),
    ];
    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(RelayPorts {
            input: b.rx("input")?,
            input_free: b.tx("input_free")?,
            output: b.tx("output")?,
            output_free: b.rx("output_free")?,
            pool: b.pool("pool")?,
        })
    }
}

impl Component for Relay {
    const NAME: &'static str = "relay";
    type Config = u64;
    type Ports = RelayPorts;

    fn init(fail_after: u64, p: &mut RelayPorts, _cx: &mut Context) -> Result<Self, Fault> {
        Ok(Relay { custody: Custody::new(*p.pool.geometry()), packets: 0, fail_after })
    }

    fn notified(&mut self, p: &mut RelayPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.output_free.pop()? else { break };
            if self.custody.give_back(&d).is_ok() && !p.input_free.push(&d)? {
                return Err(p.input_free.fault());
            }
        }
        let room = p.output.free()?.min(cx.budget());
        for _ in 0..room {
            let Some(d) = p.input.pop()? else { break };
            if self.custody.receive(&d).is_ok() {
                self.packets += 1;
                if self.fail_after != 0 && self.packets >= self.fail_after {
                    return Err(Fault::Internal("told to fail"));
                }
                let _ = p.output.push(&d)?;
            }
        }
        p.output.flush(cx);
        p.input_free.flush(cx);
        p.input.finish(cx)?;
        p.output_free.finish(cx)?;
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        out.put("packets", self.packets);
    }
}

/// A platform whose clock moves only when the loop waits (to the deadline
/// asked for), with outside events injected by the test.
#[derive(Default)]
pub struct TestPlatform {
    pub now: u64,
    pub sent: Vec<u32>,
    pub events: Vec<u32>,
    pub waits: u64,
    pub faults: Vec<(String, Fault)>,
    pub ticks: u64,
}

impl Platform for TestPlatform {
    fn now(&mut self) -> Instant {
        self.now += self.ticks;
        Instant::from_nanos(self.now)
    }
    fn send(&mut self, event: u32) {
        self.sent.push(event);
    }
    fn take_events(&mut self, sink: &mut dyn FnMut(u32)) {
        for e in self.events.drain(..) {
            sink(e);
        }
    }
    fn wait(&mut self, deadline: Option<Instant>) {
        self.waits += 1;
        if let Some(d) = deadline {
            self.now = self.now.max(d.as_nanos());
        }
    }
    fn fault(&mut self, component: &str, fault: Fault) {
        self.faults.push((component.into(), fault));
    }
}

struct Kept(*mut u8);
// SAFETY: only kept so the allocation stays reachable; never dereferenced.
unsafe impl Send for Kept {}
static KEPT: std::sync::Mutex<Vec<Kept>> = std::sync::Mutex::new(Vec::new());

/// Page-aligned zeroed memory that lives for the rest of the test process
/// (reachable from a static, so Miri does not count it as a leak).
pub fn memory(len: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(len.max(4096), 4096).unwrap();
    // SAFETY: non-zero size; kept for good.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null());
    KEPT.lock().unwrap().push(Kept(p));
    p
}

/// A page of device memory that lives for good.
pub fn device_region() -> moat_ring::Region {
    // SAFETY: fresh memory kept for good, used only as this device.
    unsafe { moat_ring::Region::from_raw(memory(4096), 4096, true) }.unwrap()
}

pub fn counters(s: &moat_runtime::sched::Scheduler<'_, '_>, i: usize) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    s.status(
        i,
        &mut moat_component::StatusFn(|k: &str, v| {
            m.insert(k.to_string(), v);
        }),
    );
    m
}
