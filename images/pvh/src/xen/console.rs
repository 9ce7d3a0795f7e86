//! The PV console ring: where a domU's log goes (xenconsoled copies it to
//! `xl console` and the log files). Output only; input is ignored.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use moat_xen::console::{XENCONS_OUT_SIZE, XenconsInterface};

use super::hypercall;

/// The ring page's address (0 until set up) and its event channel.
pub struct XenConsole {
    page: AtomicU64,
    port: AtomicU32,
}

/// The one console ring.
pub static CONSOLE: XenConsole = XenConsole { page: AtomicU64::new(0), port: AtomicU32::new(0) };
/// `CONSOLE` as the console's sink type.
pub static SINK: &dyn crate::console::Sink = &CONSOLE;

const OUT: usize = core::mem::offset_of!(XenconsInterface, out);
const OUT_CONS: usize = core::mem::offset_of!(XenconsInterface, out_cons);
const OUT_PROD: usize = core::mem::offset_of!(XenconsInterface, out_prod);

impl XenConsole {
    /// Starts writing to the ring at `page` (mapped), notifying `port`.
    pub fn attach(&self, page: *mut u8, port: u32) {
        self.port.store(port, Ordering::Relaxed);
        self.page.store(page as u64, Ordering::Release);
    }

    fn index(&self, page: u64, offset: usize) -> &AtomicU32 {
        // SAFETY: page is a mapped console ring page (attach), the offset is
        // one of its u32 index fields, 4-byte aligned; xenconsoled updates
        // them concurrently, which atomics allow.
        unsafe { &*((page as usize + offset) as *const AtomicU32) }
    }

    fn notify(&self) {
        let mut arg = moat_xen::evtchn::EvtchnPortArg { port: self.port.load(Ordering::Relaxed) };
        hypercall::evtchn_op(moat_xen::evtchn::op::SEND, &mut arg);
    }

    /// Waits (bounded) until the daemon has read everything.
    pub fn flush(&self) {
        let page = self.page.load(Ordering::Acquire);
        if page == 0 {
            return;
        }
        for _ in 0..50_000_000u64 {
            if self.index(page, OUT_CONS).load(Ordering::Acquire) == self.index(page, OUT_PROD).load(Ordering::Relaxed)
            {
                return;
            }
            crate::cpu::pause();
        }
    }
}

impl crate::console::Sink for XenConsole {
    fn write(&self, bytes: &[u8]) {
        let page = self.page.load(Ordering::Acquire);
        if page == 0 {
            return;
        }
        let (cons, prod) = (self.index(page, OUT_CONS), self.index(page, OUT_PROD));
        let mut p = prod.load(Ordering::Relaxed);
        for &b in bytes {
            let mut spins = 0u32;
            // Full: wake the daemon and wait a bounded while, then drop.
            while p.wrapping_sub(cons.load(Ordering::Acquire)) as usize >= XENCONS_OUT_SIZE {
                if spins == 0 {
                    prod.store(p, Ordering::Release);
                    self.notify();
                }
                spins += 1;
                if spins > 1_000_000 {
                    return;
                }
                crate::cpu::pause();
            }
            let at = page as usize + OUT + (p as usize & (XENCONS_OUT_SIZE - 1));
            // SAFETY: `at` is inside the ring's `out` array (masked index);
            // the slot is ours until out_prod passes it.
            unsafe { (at as *mut u8).write_volatile(b) };
            p = p.wrapping_add(1);
        }
        fence(Ordering::Release);
        prod.store(p, Ordering::Release);
        self.notify();
    }
}
