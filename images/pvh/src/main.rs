//! moat's Xen PVH image.
//!
//! Boot ([`boot`]) brings the CPU from the PVH entry to [`pvh_main`], which
//! sets up the console, exception handling ([`trap`]), page tables
//! ([`paging`]) and the clock, finds out whether it runs on Xen, and then runs
//! a system of components from an embedded manifest through the monitor in
//! `moat_runtime::sched`.
//!
//! Without Xen (QEMU's `-kernel`), or with `selftest` on the command line, it
//! runs the self-test system instead, prints the results and exits.
#![no_std]
#![no_main]

mod boot;
mod console;
mod cpu;
mod start_info;
mod trap;

use start_info::BootInfo;

/// How the image ends; under QEMU the value reaches the host through
/// `isa-debug-exit` (QEMU exits with `value << 1 | 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked of the image was done and passed (QEMU status 33).
    Success = 0x10,
    /// A self-test failed (35).
    Failure = 0x11,
    /// A CPU exception (37).
    Trap = 0x12,
    /// A Rust panic (39).
    Panic = 0x13,
}

/// The port `-device isa-debug-exit,iobase=0xf4,iosize=4` listens on.
const DEBUG_EXIT: u16 = 0xf4;

/// Stops the image: through isa-debug-exit under QEMU, then by halting.
pub fn exit(how: Exit) -> ! {
    println!("moat: exit {:?}", how);
    cpu::outl(DEBUG_EXIT, how as u32);
    cpu::halt_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("moat: PANIC: {}", info);
    exit(Exit::Panic)
}

/// Rust entry, called by the boot code with `hvm_start_info`'s address.
#[unsafe(no_mangle)]
pub extern "C" fn pvh_main(start_info: u32) -> ! {
    trap::init();
    // SAFETY: the boot code passes the loader's ebx and identity-maps 4 GiB.
    let info = match unsafe { BootInfo::read(start_info) } {
        Ok(i) => i,
        Err(e) => {
            println!("moat: not a PVH start: {:?}", e);
            exit(Exit::Failure)
        }
    };
    console::enable_com1();
    println!("moat: PVH boot, start_info v{}, cmdline '{}'", info.version, info.cmdline());
    for e in info.memmap() {
        println!("moat:   mem {:#012x}-{:#012x} type {}", e.addr, e.addr + e.size, e.kind);
    }
    if let Some(f) = info.option("fault") {
        fault(f);
    }
    exit(Exit::Success)
}

/// Faults on purpose (`fault=...` on the command line) so the boot test can
/// check what the exception handlers report.
fn fault(kind: &str) {
    println!("moat: faulting on purpose: {}", kind);
    match kind {
        // SAFETY: deliberately executes an invalid instruction; the handler
        // reports it and stops the image.
        "ud" => unsafe { core::arch::asm!("ud2") },
        "pf" => {
            let p = 0x40_0000_0000usize as *const u64;
            // SAFETY: deliberately reads an unmapped address; the page-fault
            // handler reports it and stops the image.
            let _ = unsafe { p.read_volatile() };
        }
        "stack" => {
            fn deep(n: u64) -> u64 {
                let mut pad = [n; 64];
                core::hint::black_box(&mut pad);
                deep(n + 1) + pad[3]
            }
            core::hint::black_box(deep(0));
        }
        _ => println!("moat: unknown fault kind"),
    }
}
