//! The early console: every line goes to the debug port 0xe9 (QEMU's
//! `-debugcon`, Xen's `(dN)` log with `guest_loglvl=all`), to COM1 when not on
//! Xen, and to the PV console ring once [`set_sink`] has installed it.
//!
//! Once the ring is there, port 0xe9 falls silent: on Xen every byte written
//! to a port is a VM exit (a status report is a few thousand of them), and
//! the ring carries the same lines to the toolstack's log. An exception or a
//! panic turns the port back on ([`fatal`]), so the last words also reach
//! Xen's own log if the ring's reader is gone.
//!
//! There are no interrupts and one CPU, so output is never interleaved except
//! by an exception while printing, which only costs a garbled line.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::cpu::{inb, outb};

const DEBUGCON: u16 = 0xe9;
const COM1: u16 = 0x3f8;

static COM1_ON: AtomicBool = AtomicBool::new(false);
static DEBUGCON_ON: AtomicBool = AtomicBool::new(true);

/// Where output goes besides the ports (the Xen console ring).
pub trait Sink: Sync {
    /// Writes bytes; may drop them if the reader is too slow.
    fn write(&self, bytes: &[u8]);
}

static SINK: AtomicPtr<&'static dyn Sink> = AtomicPtr::new(core::ptr::null_mut());

/// Programs COM1 for 115200 8N1 and starts using it. Not called on Xen,
/// where a PVH guest has no UART and every port access is a VM exit.
pub fn enable_com1() {
    outb(COM1 + 1, 0x00); // no interrupts
    outb(COM1 + 3, 0x80); // DLAB on
    outb(COM1, 0x01); // divisor 1: 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1, DLAB off
    outb(COM1 + 2, 0xc7); // FIFO on, cleared
    COM1_ON.store(true, Ordering::Relaxed);
}

/// Adds a sink that receives everything printed from now on, in place of
/// port 0xe9.
pub fn set_sink(sink: &'static &'static dyn Sink) {
    SINK.store(sink as *const _ as *mut _, Ordering::Release);
    DEBUGCON_ON.store(false, Ordering::Relaxed);
}

/// From now on, print on port 0xe9 too (exceptions and panics: what they
/// print must get out whatever state the ring is in).
pub fn fatal() {
    DEBUGCON_ON.store(true, Ordering::Relaxed);
}

fn com1_put(b: u8) {
    // Bounded wait for the transmit holding register; a missing UART reads
    // 0xff, which looks empty, so this never hangs.
    for _ in 0..100_000 {
        if inb(COM1 + 5) & 0x20 != 0 {
            break;
        }
        crate::cpu::pause();
    }
    outb(COM1, b);
}

/// Writes raw bytes to every console.
pub fn write_bytes(bytes: &[u8]) {
    let com1 = COM1_ON.load(Ordering::Relaxed);
    let debugcon = DEBUGCON_ON.load(Ordering::Relaxed);
    for &b in bytes {
        if debugcon {
            outb(DEBUGCON, b);
        }
        if com1 {
            if b == b'\n' {
                com1_put(b'\r');
            }
            com1_put(b);
        }
    }
    let sink = SINK.load(Ordering::Acquire);
    if !sink.is_null() {
        // SAFETY: the pointer came from a `&'static &'static dyn Sink` in
        // set_sink and is never freed.
        unsafe { (*sink).write(bytes) }
    }
}

/// A `fmt::Write` over the consoles.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints formatted text followed by a newline.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}

/// Prints formatted text.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::Console, $($arg)*);
    }};
}
