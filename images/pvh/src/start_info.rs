//! What the loader tells us at entry: `hvm_start_info` (Xen's
//! `arch-x86/hvm/start_info.h`), its memory map and command line.
//!
//! Everything is copied out into [`BootInfo`] first thing, because the
//! loader put these structures in RAM the runtime later hands out.
//!
//! TEMPORARY: the two structs below are the minimum needed to boot; they are
//! replaced by `moat_xen::start_info` once that crate lands on main.

/// `hvm_start_info.magic`.
pub const MAGIC: u32 = 0x336e_c578;

/// `struct hvm_start_info` (56 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);

/// `struct hvm_memmap_table_entry` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemEntry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type: 1 is usable RAM.
    pub kind: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<MemEntry>() == 24);

/// E820 type of usable RAM.
pub const RAM: u32 = 1;

const MAX_ENTRIES: usize = 64;
const MAX_CMDLINE: usize = 512;

/// The loader's hand-over, copied.
pub struct BootInfo {
    /// `hvm_start_info.version`.
    pub version: u32,
    memmap: [MemEntry; MAX_ENTRIES],
    entries: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
}

/// Why the hand-over was refused.
#[derive(Debug)]
pub enum BootError {
    /// Not a PVH start (wrong magic).
    Magic(u32),
}

impl BootInfo {
    /// Copies what `paddr` points at.
    ///
    /// # Safety
    ///
    /// `paddr` must be the `ebx` the loader passed, and the first 4 GiB must
    /// be identity-mapped (the boot page tables do that).
    pub unsafe fn read(paddr: u32) -> Result<BootInfo, BootError> {
        // SAFETY: the loader put a start_info at paddr (caller's contract);
        // it is plain data and may be unaligned.
        let si = unsafe { (paddr as usize as *const HvmStartInfo).read_unaligned() };
        if si.magic != MAGIC {
            return Err(BootError::Magic(si.magic));
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
                let p = si.memmap_paddr as usize + i * core::mem::size_of::<MemEntry>();
                // SAFETY: the loader's table has memmap_entries entries at
                // memmap_paddr (bounded by MAX_ENTRIES), identity-mapped.
                info.memmap[i] = unsafe { (p as *const MemEntry).read_unaligned() };
            }
            info.entries = n;
        }
        if si.cmdline_paddr != 0 {
            let mut n = 0;
            while n < MAX_CMDLINE {
                // SAFETY: a NUL-terminated string at cmdline_paddr; reading
                // stops at the NUL or after MAX_CMDLINE bytes.
                let b = unsafe { ((si.cmdline_paddr as usize + n) as *const u8).read() };
                if b == 0 {
                    break;
                }
                info.cmdline[n] = b;
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
