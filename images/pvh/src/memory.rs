//! Physical memory: the final page tables and a bump allocator over the RAM
//! after the image.
//!
//! The image is identity-mapped (virtual = physical) but, unlike the boot
//! tables, only what is used is mapped, each part with its own permissions:
//! code read-execute, constants read-only, data/bss/stack read-write and
//! non-executable, the stack's guard page and everything else (page zero
//! included) not at all. Memory handed out later — the shared arena, the
//! components' pages, Xen's shared pages — is mapped read-write,
//! non-executable, as it is handed out.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use moat_runtime::paging::{Access, MapError, PageTables, Table};

use crate::start_info::{BootInfo, RAM};

/// Table pages available (each maps up to 1 GiB with 2 MiB pages, or 2 MiB
/// with 4 KiB pages).
const TABLE_PAGES: usize = 64;

struct Pool(UnsafeCell<[Table; TABLE_PAGES]>);
// SAFETY: handed out once (TAKEN), then used by one owner on one CPU.
unsafe impl Sync for Pool {}
static TABLES: Pool = Pool(UnsafeCell::new([Table::EMPTY; TABLE_PAGES]));
static TAKEN: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn addr(sym: &u8) -> u64 {
    sym as *const u8 as u64
}

/// Why memory could not be set up or handed out.
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug in the boot report")]
pub enum MemError {
    /// The page tables refused a mapping.
    Map(MapError),
    /// The RAM after the image is too small.
    Exhausted { wanted: u64, left: u64 },
    /// The loader's memory map has no RAM where the image ends.
    NoRam,
}

impl From<MapError> for MemError {
    fn from(e: MapError) -> Self {
        MemError::Map(e)
    }
}

/// The page tables and the RAM not yet handed out.
pub struct Memory {
    tables: PageTables<'static>,
    next: u64,
    end: u64,
}

impl Memory {
    /// Builds the final tables and switches to them.
    pub fn init(info: &BootInfo) -> Result<Memory, MemError> {
        assert!(!TAKEN.swap(true, Ordering::AcqRel), "memory initialised twice");
        // SAFETY: TAKEN guarantees this is the only reference ever made to
        // the table pool.
        let pages: &'static mut [Table; TABLE_PAGES] = unsafe { &mut *TABLES.0.get() };
        let phys = pages.as_ptr() as u64;
        let nx = crate::cpu::rdmsr(crate::cpu::EFER) & crate::cpu::EFER_NXE != 0;
        let mut tables = PageTables::new(pages, phys, nx)?;
        // SAFETY: addresses of linker symbols only.
        let (start, text_end, rodata_end, end) =
            unsafe { (addr(&__image_start), addr(&__text_end), addr(&__rodata_end), addr(&__image_end)) };
        let guard = crate::boot::stack_guard() as u64;
        tables.map(start, start, text_end - start, Access::CODE)?;
        tables.map(text_end, text_end, rodata_end - text_end, Access::READ)?;
        tables.map(rodata_end, rodata_end, guard - rodata_end, Access::DATA)?;
        tables.map(guard + 4096, guard + 4096, end - guard - 4096, Access::DATA)?;
        let ram = info.memmap().iter().find(|e| e.kind == RAM && e.addr <= end && end < e.addr + e.size);
        let ram_end = ram.map(|e| (e.addr + e.size) & !0xfff).ok_or(MemError::NoRam)?;
        // SAFETY: the new tables map the code, constants, data, bss and stack
        // (all this program touches) at the same addresses as the boot
        // tables did; the loader's structures were copied out already.
        unsafe { crate::cpu::set_cr3(tables.root()) };
        Ok(Memory { tables, next: end.next_multiple_of(4096), end: ram_end })
    }

    /// Whether data pages are non-executable (EFER.NXE).
    pub fn nx(&self) -> bool {
        crate::cpu::rdmsr(crate::cpu::EFER) & crate::cpu::EFER_NXE != 0
    }

    /// Hands out `bytes` (rounded up to pages) of RAM, mapped read-write.
    /// The memory is the caller's for good; it is not zeroed.
    pub fn alloc(&mut self, bytes: u64) -> Result<*mut u8, MemError> {
        let bytes = bytes.max(1).next_multiple_of(4096);
        let left = self.end - self.next;
        if bytes > left {
            return Err(MemError::Exhausted { wanted: bytes, left });
        }
        let at = self.next;
        self.tables.map(at, at, bytes, Access::DATA)?;
        self.next += bytes;
        Ok(at as *mut u8)
    }

    /// Maps one page outside RAM (a Xen-provided page) read-write.
    pub fn map_page(&mut self, paddr: u64) -> Result<*mut u8, MemError> {
        self.tables.map(paddr, paddr, 4096, Access::DATA)?;
        Ok(paddr as *mut u8)
    }

    /// RAM handed out so far ends here.
    pub fn high_water(&self) -> u64 {
        self.next
    }

    /// Table pages used.
    pub fn tables_used(&self) -> usize {
        self.tables.used()
    }
}
