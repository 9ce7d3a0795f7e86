//! What the loader tells us at entry: `hvm_start_info` (moat-xen's
//! [`HvmStartInfo`]), its memory map and command line.
//!
//! Everything is copied out into [`BootInfo`] first thing, because the
//! loader put these structures in RAM the runtime later hands out.

use moat_xen::start_info::{HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE};
use zerocopy::FromBytes;

/// E820 type of usable RAM.
pub use moat_xen::start_info::memmap_type::RAM;

const MAX_ENTRIES: usize = 64;
const MAX_CMDLINE: usize = 512;

/// One memory map entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemEntry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type: [`RAM`] is usable.
    pub kind: u32,
}

/// The loader's hand-over, copied.
pub struct BootInfo {
    /// `hvm_start_info.version`.
    pub version: u32,
    memmap: [MemEntry; MAX_ENTRIES],
    entries: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
}

/// Why the hand-over was refused: not a PVH start (the magic found).
#[derive(Debug)]
pub struct BadMagic(#[allow(dead_code, reason = "printed through Debug")] pub u32);

/// Copies `len` bytes at physical address `paddr`.
///
/// # Safety
///
/// The range must be identity-mapped memory the loader filled.
unsafe fn copy_in(paddr: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: inside the caller's range.
        *b = unsafe { ((paddr as usize + i) as *const u8).read_volatile() };
    }
}

impl BootInfo {
    /// Copies what `paddr` points at.
    ///
    /// # Safety
    ///
    /// `paddr` must be the `ebx` the loader passed, and the first 4 GiB must
    /// be identity-mapped (the boot page tables do that).
    pub unsafe fn read(paddr: u32) -> Result<BootInfo, BadMagic> {
        let mut raw = [0u8; core::mem::size_of::<HvmStartInfo>()];
        // SAFETY: the loader put a start_info at paddr (caller's contract).
        unsafe { copy_in(u64::from(paddr), &mut raw) };
        let si = HvmStartInfo::read_from_bytes(&raw).map_err(|_| BadMagic(0))?;
        if si.magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(BadMagic(si.magic));
        }
        let mut info = BootInfo {
            version: si.version,
            memmap: [MemEntry::default(); MAX_ENTRIES],
            entries: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
        };
        // The memory map exists from version 1 on.
        if si.version >= 1 && si.memmap_paddr != 0 {
            let n = (si.memmap_entries as usize).min(MAX_ENTRIES);
            for i in 0..n {
                let mut e = [0u8; core::mem::size_of::<HvmMemmapTableEntry>()];
                // SAFETY: entry i < memmap_entries of the loader's table.
                unsafe { copy_in(si.memmap_paddr + (i * e.len()) as u64, &mut e) };
                let e = HvmMemmapTableEntry::read_from_bytes(&e).map_err(|_| BadMagic(0))?;
                info.memmap[i] = MemEntry { addr: e.addr, size: e.size, kind: e.r#type };
            }
            info.entries = n;
        }
        if si.cmdline_paddr != 0 {
            let mut n = 0;
            while n < MAX_CMDLINE {
                let mut b = [0u8];
                // SAFETY: a NUL-terminated string at cmdline_paddr; reading
                // stops at the NUL or after MAX_CMDLINE bytes.
                unsafe { copy_in(si.cmdline_paddr + n as u64, &mut b) };
                if b[0] == 0 {
                    break;
                }
                info.cmdline[n] = b[0];
                n += 1;
            }
            info.cmdline_len = n;
        }
        Ok(info)
    }

    /// The memory map.
    pub fn memmap(&self) -> &[MemEntry] {
        &self.memmap[..self.entries]
    }

    /// The command line (lossy: non-UTF-8 yields an empty line).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// True if the command line has the word `word`.
    pub fn has_flag(&self, word: &str) -> bool {
        self.cmdline().split_ascii_whitespace().any(|w| w == word)
    }

    /// The value of `key=value` on the command line.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.cmdline().split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }
}
