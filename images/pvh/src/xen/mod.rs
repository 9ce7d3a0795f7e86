//! The Xen platform layer: finding Xen, the hypercall page, shared info,
//! event channels, the grant table and grant copy, the console and XenStore
//! rings, Xen's clock, waiting with `SCHEDOP_poll`, and shutdown.
//!
//! Event delivery is polled: no upcall vector is registered and interrupts
//! stay off; the monitor scans the shared info page's pending bits and
//! sleeps in `SCHEDOP_poll` on its device ports until one fires or the next
//! timer is due.

pub mod console;
pub mod events;
pub mod fence;
pub mod grants;
pub mod hypercall;
pub mod ops;
pub mod time;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use moat_component::{Fault, Instant};
use moat_ring::{Device, Region};
use moat_runtime::binder::DeviceMem;
use moat_runtime::sched::{MAX_DEVICES, Platform};
use moat_xen::evtchn::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnPortArg, op as evop};
use moat_xen::grant::{GnttabCopy, GnttabCopyPtr};
use moat_xen::hypercall::{DOMID_SELF, cpuid as xcpuid, hvm_param, mapspace};
use moat_xen::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};

use crate::cpu::{cpuid, rdtsc};
use crate::memory::Memory;
use crate::println;

/// What CPUID says about the hypervisor.
#[derive(Clone, Copy, Debug)]
pub struct XenInfo {
    /// The CPUID leaf where Xen's leaves start.
    pub base: u32,
    /// Xen major version.
    pub major: u32,
    /// Xen minor version.
    pub minor: u32,
    /// The MSR that takes the hypercall page's address.
    pub msr: u32,
}

/// Finds Xen's CPUID leaves ("XenVMMXenVMM" at 0x40000000 + k * 0x100).
pub fn detect() -> Option<XenInfo> {
    if cpuid(1).2 & (1 << 31) == 0 {
        return None; // no hypervisor at all
    }
    (xcpuid::FIRST_LEAF..xcpuid::FIRST_LEAF + 0x1_0000).step_by(0x100).find_map(|base| {
        let (max, b, c, d) = cpuid(base);
        let sig = (b, c, d) == (xcpuid::SIGNATURE_EBX, xcpuid::SIGNATURE_ECX, xcpuid::SIGNATURE_EDX);
        if !sig || max < base + xcpuid::HYPERCALL_LEAF_OFFSET {
            return None;
        }
        let (version, ..) = cpuid(base + 1);
        let (_pages, msr, ..) = cpuid(base + xcpuid::HYPERCALL_LEAF_OFFSET);
        Some(XenInfo { base, major: version >> 16, minor: version & 0xffff, msr })
    })
}

const PENDING: usize = core::mem::offset_of!(SharedInfo, evtchn_pending);
const MASK: usize = core::mem::offset_of!(SharedInfo, evtchn_mask);

/// Grant table frames mapped at start.
pub const GRANT_FRAMES: u64 = 4;
/// Longest single `SCHEDOP_poll`, so the monitor re-checks its exit
/// conditions even with no timer pending.
const MAX_WAIT_NS: u64 = 10_000_000;

/// Why the platform could not start.
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug in the boot report")]
pub enum XenError {
    /// A hypercall failed: which, and its errno.
    Hypercall(&'static str, i64),
    /// Memory could not be had or mapped.
    Memory(crate::memory::MemError),
}

impl From<crate::memory::MemError> for XenError {
    fn from(e: crate::memory::MemError) -> Self {
        XenError::Memory(e)
    }
}

fn check(what: &'static str, rc: i64) -> Result<(), XenError> {
    if rc < 0 { Err(XenError::Hypercall(what, rc)) } else { Ok(()) }
}

/// The platform on Xen.
pub struct Xen {
    shared: *mut u8,
    grant_table: *mut u8,
    time_base: u64,
    store: Option<DeviceMem>,
    ports: [u32; MAX_DEVICES],
    nports: usize,
    /// The PV console's event channel, if Xen gave us a console.
    console_port: Option<u32>,
}

impl Xen {
    /// Sets up hypercalls, shared info, the console ring, the grant table
    /// and the XenStore device.
    ///
    /// Each step that works prints its `MOAT-TEST` line (tests/xen/README.md),
    /// once the console ring is there to carry it.
    pub fn init(info: XenInfo, mem: &mut Memory) -> Result<Xen, XenError> {
        hypercall::install(info.msr);
        let version = hypercall::xen_version();
        check("xen_version", version)?;
        let shared = mem.alloc(4096)?;
        check("add_to_physmap(shared_info)", hypercall::add_to_physmap(mapspace::SHARED_INFO, 0, shared as u64 >> 12))?;
        let mut xen = Xen {
            shared,
            grant_table: core::ptr::null_mut(),
            time_base: 0,
            store: None,
            ports: [0; MAX_DEVICES],
            nports: 0,
            console_port: None,
        };
        xen.time_base = xen.system_time();

        if let (Ok(pfn), Ok(port)) =
            (hypercall::get_param(hvm_param::CONSOLE_PFN), hypercall::get_param(hvm_param::CONSOLE_EVTCHN))
            && pfn != 0
        {
            let page = mem.map_page(pfn << 12)?;
            console::CONSOLE.attach(page, port as u32);
            crate::console::set_sink(&console::SINK);
            // The lines before this went to port 0xe9 only; repeat who we are.
            println!("moat: on Xen {}.{} (CPUID base {:#x})", info.major, info.minor, info.base);
            println!("moat: xen: console ring at pfn {:#x}, event channel {}", pfn, port);
            xen.console_port = Some(port as u32);
        }
        println!("MOAT-TEST xen version={}.{}", version >> 16, version & 0xffff);
        println!("MOAT-TEST hypercall-page ok");
        println!("MOAT-TEST shared-info ok");

        let gt = mem.alloc(GRANT_FRAMES * 4096)?;
        for i in 0..GRANT_FRAMES {
            check(
                "add_to_physmap(grant_table)",
                hypercall::add_to_physmap(mapspace::GRANT_TABLE, i, (gt as u64 >> 12) + i),
            )?;
        }
        xen.grant_table = gt;
        ops::init(gt);
        println!("MOAT-TEST gnttab ok frames={}", GRANT_FRAMES);

        let pfn =
            hypercall::get_param(hvm_param::STORE_PFN).map_err(|e| XenError::Hypercall("get_param(STORE_PFN)", e))?;
        let port = hypercall::get_param(hvm_param::STORE_EVTCHN)
            .map_err(|e| XenError::Hypercall("get_param(STORE_EVTCHN)", e))?;
        if pfn != 0 {
            let page = mem.map_page(pfn << 12)?;
            // SAFETY: the XenStore ring page Xen named, mapped read-write, for
            // the rest of the program; only the xenstore component's device
            // port ever attaches it.
            let region =
                unsafe { Region::from_raw(page, 4096, true) }.map_err(|_| XenError::Hypercall("store page", 0))?;
            let kind = <moat_xen::xenstore::ring::XsRing as Device>::NAME;
            xen.store = Some(DeviceMem { kind, region, event: port as u32 });
            xen.watch(port as u32);
            println!("moat: xen: XenStore ring at pfn {:#x}, event channel {}", pfn, port);
        }
        Ok(xen)
    }

    /// Device memories for the system's device ports (the XenStore ring).
    pub fn devices(&self) -> &[DeviceMem] {
        self.store.as_slice()
    }

    /// Adds `port` to the set `SCHEDOP_poll` waits on, and unmasks it.
    pub fn watch(&mut self, port: u32) {
        if self.nports < MAX_DEVICES {
            self.ports[self.nports] = port;
            self.nports += 1;
        }
        hypercall::evtchn_op(evop::UNMASK, &mut EvtchnPortArg { port });
    }

    fn shared_u64s(&self, offset: usize) -> &[AtomicU64] {
        // SAFETY: the shared info page is mapped for good at `shared`; the
        // 64-word bitmaps at these offsets are updated by Xen with atomic
        // bit operations, so viewing them as atomics is sound.
        unsafe { core::slice::from_raw_parts((self.shared as usize + offset) as *const AtomicU64, 64) }
    }

    fn time_u32(&self, field: usize) -> &AtomicU32 {
        let at = core::mem::offset_of!(SharedInfo, vcpu_info) + core::mem::offset_of!(VcpuInfo, time) + field;
        // SAFETY: an aligned u32 inside vcpu 0's time record on the mapped
        // shared info page, which Xen updates concurrently.
        unsafe { &*((self.shared as usize + at) as *const AtomicU32) }
    }

    fn time_u64(&self, field: usize) -> &AtomicU64 {
        let at = core::mem::offset_of!(SharedInfo, vcpu_info) + core::mem::offset_of!(VcpuInfo, time) + field;
        // SAFETY: as time_u32, for an aligned u64 field.
        unsafe { &*((self.shared as usize + at) as *const AtomicU64) }
    }

    /// Xen system time in ns, read under the record's version seqlock.
    pub fn system_time(&self) -> u64 {
        loop {
            let v = self.time_u32(core::mem::offset_of!(VcpuTimeInfo, version)).load(Ordering::Acquire);
            let ts = self.time_u64(core::mem::offset_of!(VcpuTimeInfo, tsc_timestamp)).load(Ordering::Relaxed);
            let st = self.time_u64(core::mem::offset_of!(VcpuTimeInfo, system_time)).load(Ordering::Relaxed);
            let mul = self.time_u32(core::mem::offset_of!(VcpuTimeInfo, tsc_to_system_mul)).load(Ordering::Relaxed);
            let shift_word = self.time_u32(core::mem::offset_of!(VcpuTimeInfo, tsc_shift)).load(Ordering::Relaxed);
            let tsc = rdtsc();
            fence(Ordering::Acquire);
            let v2 = self.time_u32(core::mem::offset_of!(VcpuTimeInfo, version)).load(Ordering::Relaxed);
            if v == v2 && v & 1 == 0 {
                return time::system_time(st, ts, mul, shift_word as u8 as i8, tsc);
            }
        }
    }

    /// `EVTCHNOP_alloc_unbound`: a port `remote` may bind to.
    pub fn alloc_unbound(&mut self, remote: u16) -> Result<u32, XenError> {
        let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
        check("alloc_unbound", hypercall::evtchn_op(evop::ALLOC_UNBOUND, &mut a))?;
        Ok(a.port)
    }

    /// `EVTCHNOP_bind_interdomain`.
    pub fn bind_interdomain(&mut self, remote: u16, remote_port: u32) -> Result<u32, XenError> {
        let mut a = EvtchnBindInterdomain { remote_dom: remote, _pad: 0, remote_port, local_port: 0 };
        check("bind_interdomain", hypercall::evtchn_op(evop::BIND_INTERDOMAIN, &mut a))?;
        Ok(a.local_port)
    }

    /// `EVTCHNOP_close`.
    pub fn close(&mut self, port: u32) {
        hypercall::evtchn_op(evop::CLOSE, &mut EvtchnPortArg { port });
    }

    /// `GNTTABOP_copy` over `ops`; each op's `status` says how it went.
    pub fn grant_copy(&mut self, ops: &mut [GnttabCopy]) -> Result<(), XenError> {
        check("grant_copy", hypercall::grant_table_op(moat_xen::grant::op::COPY, ops))
    }

    /// The grant table frames (for granting our pages to other domains).
    #[allow(dead_code, reason = "the netfront driver grants its rings through it (issue 10)")]
    pub fn grant_table(&self) -> *mut u8 {
        self.grant_table
    }

    /// Exercises event channels and grant copy against this domain itself,
    /// so a boot on Xen shows they work before any driver relies on them.
    pub fn self_check(&mut self, mem: &mut Memory) -> Result<(), XenError> {
        let a = self.alloc_unbound(DOMID_SELF)?;
        let b = self.bind_interdomain(DOMID_SELF, a)?;
        hypercall::evtchn_op(evop::UNMASK, &mut EvtchnPortArg { port: a });
        hypercall::evtchn_op(evop::SEND, &mut EvtchnPortArg { port: b });
        let mut seen = false;
        events::take_pending(self.shared_u64s(PENDING), self.shared_u64s(MASK), &mut |p| seen |= p == a);
        self.close(b);
        self.close(a);
        println!("moat: xen: event channel loopback {} -> {}: {}", b, a, if seen { "ok" } else { "NOT DELIVERED" });

        let pages = mem.alloc(2 * 4096)?;
        let (src, dst) = (pages, pages.wrapping_add(4096));
        for i in 0..64 {
            // SAFETY: inside the two fresh pages just allocated and mapped.
            unsafe { src.add(100 + i).write_volatile(i as u8 ^ 0x5a) };
        }
        let mut op = [GnttabCopy {
            source: GnttabCopyPtr::local(src as u64 >> 12, 100),
            dest: GnttabCopyPtr::local(dst as u64 >> 12, 200),
            len: 64,
            ..GnttabCopy::default()
        }];
        self.grant_copy(&mut op)?;
        // SAFETY: as above.
        let ok = op[0].status == 0 && (0..64).all(|i| unsafe { dst.add(200 + i).read_volatile() } == i as u8 ^ 0x5a);
        println!(
            "moat: xen: grant copy (local frames): {} (status {})",
            if ok { "ok" } else { "FAILED" },
            op[0].status
        );
        if !(seen && ok) {
            return Err(XenError::Hypercall("self-check", -1));
        }
        // Event channels work (the loopback above); these are the ones the
        // toolstack gave us.
        if let (Some(store), Some(console)) = (self.store, self.console_port) {
            println!("MOAT-TEST evtchn ok store={} console={}", store.event, console);
        }
        Ok(())
    }
}

impl Platform for Xen {
    fn now(&mut self) -> Instant {
        let now = Instant::from_nanos(self.system_time().saturating_sub(self.time_base));
        crate::log::stamp(now.as_nanos());
        now
    }

    fn send(&mut self, event: u32) {
        if ops::is_ops(event) {
            ops::run(event);
            return;
        }
        hypercall::evtchn_op(evop::SEND, &mut EvtchnPortArg { port: event });
    }

    fn take_events(&mut self, sink: &mut dyn FnMut(u32)) {
        ops::take_completions(sink);
        events::take_pending(self.shared_u64s(PENDING), self.shared_u64s(MASK), &mut |port| {
            if !ops::route(port, sink) {
                sink(port)
            }
        });
    }

    fn wait(&mut self, deadline: Option<Instant>) {
        if ops::pending() {
            return;
        }
        let now = self.system_time();
        let cap = now.saturating_add(MAX_WAIT_NS);
        let until = deadline.map_or(cap, |d| d.as_nanos().saturating_add(self.time_base).min(cap));
        if until > now {
            let mut ports = [0u32; ops::MAX_POLL];
            ports[..self.nports].copy_from_slice(&self.ports[..self.nports]);
            let n = ops::poll_ports(&mut ports, self.nports);
            hypercall::poll(&ports[..n], until);
        }
    }

    fn fault(&mut self, component: &str, fault: Fault) {
        println!("moat: component {} FAULT: {:?} (stopped; its traffic stops with it)", component, fault);
    }
}
