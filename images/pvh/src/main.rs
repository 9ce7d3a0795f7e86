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

mod bare;
mod boot;
mod clock;
mod console;
mod cpu;
mod entropy;
mod log;
mod memory;
mod monitor;
mod start_info;
mod trap;
mod xen;

use moat_component::Duration;
use start_info::BootInfo;

const SELFTEST_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/selftest.manifest")).len();
const SYSTEM_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/system.manifest")).len();

/// The self-test system (see `selftest_plan.rs`), in its own section so
/// `moat inspect` can read it back.
#[unsafe(link_section = ".moat.selftest")]
#[used]
static SELFTEST: [u8; SELFTEST_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/selftest.manifest"));

/// The system to run (from `MOAT_MANIFEST` at build time; may be empty).
#[unsafe(link_section = ".moat.manifest")]
#[used]
static SYSTEM: [u8; SYSTEM_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/system.manifest"));

const KINDS_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/kinds.txt")).len();

/// The component kinds linked in, as `kind=rust::Path;…` (for `moat inspect`).
#[unsafe(link_section = ".moat.kinds")]
#[used]
static KINDS_TEXT: [u8; KINDS_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/kinds.txt"));

/// Longest the self-test may run before it counts as failed.
const SELFTEST_LIMIT: Duration = Duration::from_secs(20);

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
    if xen::hypercall::ready() {
        // Let xenconsoled read the last lines, then ask Xen to end the domain.
        xen::console::CONSOLE.flush();
        let reason = if how == Exit::Success {
            moat_xen::hypercall::shutdown::POWEROFF
        } else {
            moat_xen::hypercall::shutdown::CRASH
        };
        xen::hypercall::shutdown(reason);
    }
    cpu::outl(DEBUG_EXIT, how as u32);
    cpu::halt_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::fatal();
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
    let on_xen = xen::detect();
    if on_xen.is_none() {
        console::enable_com1();
    }
    println!("moat: PVH boot, start_info v{}, cmdline '{}'", info.version, info.cmdline());
    match on_xen {
        Some(x) => println!("moat: on Xen {}.{} (CPUID base {:#x})", x.major, x.minor, x.base),
        None => println!("moat: not on Xen: self-test mode, no devices"),
    }
    for e in info.memmap() {
        println!("moat:   mem {:#012x}-{:#012x} type {}", e.addr, e.addr + e.size, e.kind);
    }
    let mut mem = match memory::Memory::init(&info) {
        Ok(m) => m,
        Err(e) => {
            println!("moat: memory setup failed: {:?}", e);
            exit(Exit::Failure)
        }
    };
    println!("moat: page tables: {} pages, NX {}", mem.tables_used(), if mem.nx() { "on" } else { "unavailable" });
    if let Some(f) = info.option("fault") {
        fault(f);
    }
    let selftest = on_xen.is_none() || info.has_flag("selftest") || SYSTEM.is_empty();
    let verdict = match on_xen {
        None => {
            // Xen has its own clock; elsewhere the PIT is the reference.
            let (tsc, calibrated) = clock::Tsc::calibrate();
            println!(
                "moat: TSC {} kHz ({})",
                tsc.hz / 1000,
                if calibrated { "calibrated against the PIT" } else { "PIT silent: assumed 1 GHz" }
            );
            let mut platform = bare::Bare { clock: tsc };
            monitor::run(&SELFTEST, &mut mem, &[], &mut platform, true, SELFTEST_LIMIT)
        }
        Some(x) => {
            let mut platform = match xen::Xen::init(x, &mut mem) {
                Ok(p) => p,
                Err(e) => {
                    println!("moat: xen: platform setup failed: {:?}", e);
                    exit(Exit::Failure)
                }
            };
            if let Err(e) = platform.self_check(&mut mem) {
                println!("moat: xen: self-check failed: {:?}", e);
            }
            if selftest {
                if SYSTEM.is_empty() {
                    println!("moat: no system embedded (build without MOAT_MANIFEST): running the self-test");
                }
                monitor::run(&SELFTEST, &mut mem, &[], &mut platform, true, SELFTEST_LIMIT)
            } else {
                let store = platform.devices().first().copied();
                monitor::run(&SYSTEM, &mut mem, store.as_slice(), &mut platform, false, Duration::MAX)
            }
        }
    };
    match verdict {
        monitor::Verdict::Pass => exit(Exit::Success),
        monitor::Verdict::Fail => exit(Exit::Failure),
        monitor::Verdict::Shutdown(r) => shutdown(r),
    }
}

/// Stops the domain the way the toolstack asked (`xl shutdown`, `xl
/// reboot`): the console is flushed first so its last lines reach
/// xenconsoled.
fn shutdown(r: moat_control::ShutdownReason) -> ! {
    use moat_control::ShutdownReason as R;
    use moat_xen::hypercall::shutdown as code;
    println!("moat: shutting down ({})", monitor::reason_name(r));
    xen::console::CONSOLE.flush();
    let reason = match r {
        R::Poweroff => code::POWEROFF,
        R::Reboot => code::REBOOT,
        R::Suspend => code::SUSPEND,
        R::Crash => code::CRASH,
    };
    let rc = xen::hypercall::shutdown(reason);
    println!("moat: SCHEDOP_shutdown returned {}", rc);
    exit(Exit::Failure)
}

/// Faults on purpose (`fault=...` on the command line) so the boot test can
/// check what the exception handlers and page permissions do.
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
        "null" => {
            let p = core::hint::black_box(0usize) as *const u64;
            // SAFETY: deliberately reads page zero, which is left unmapped.
            let _ = unsafe { p.read_volatile() };
        }
        "write-code" => {
            let p = fault as fn(&str) as *mut u8;
            // SAFETY: deliberately writes to code, mapped read-execute; the
            // page-fault handler reports it and stops the image.
            unsafe { core::hint::black_box(p).write_volatile(0xcc) };
        }
        "exec-data" => {
            static RET: [u8; 1] = [0xc3];
            // SAFETY: deliberately jumps to a constant (a `ret`), mapped
            // non-executable; the page-fault handler reports it.
            let f: extern "C" fn() = unsafe { core::mem::transmute(core::hint::black_box(RET.as_ptr())) };
            f();
        }
        "stack" => {
            #[allow(unconditional_recursion)]
            fn deep(n: u64) -> u64 {
                let mut pad = [n; 64];
                core::hint::black_box(&mut pad);
                deep(n + 1) + pad[3]
            }
            core::hint::black_box(deep(0));
        }
        "panic" => panic!("on purpose"),
        _ => println!("moat: unknown fault kind"),
    }
}
