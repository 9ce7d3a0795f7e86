//! x86-64 four-level page tables, built from a list of mappings.
//!
//! The PVH image maps each part of itself with the permissions it needs —
//! code read-execute, constants read-only, data and the shared arena
//! read-write and never executable, the stack's guard page and page zero not
//! at all — and later, one set of tables per component with only its own
//! regions. The builder works on a caller-supplied array of table pages and
//! their physical address, so it runs (and is tested) on the host too.

/// Entry bits.
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Bytes in a small page.
pub const PAGE_4K: u64 = 4096;
/// Bytes in a large (level-2) page.
pub const PAGE_2M: u64 = 2 << 20;

/// One page of 512 entries.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
pub struct Table(pub [u64; 512]);

impl Table {
    /// All entries not present.
    pub const EMPTY: Table = Table([0; 512]);
}

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Stores allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub execute: bool,
    /// Accessible from user mode (for components in their own address
    /// spaces, later).
    pub user: bool,
}

impl Access {
    /// Read-execute (code).
    pub const CODE: Access = Access { write: false, execute: true, user: false };
    /// Read-only data.
    pub const READ: Access = Access { write: false, execute: false, user: false };
    /// Read-write data.
    pub const DATA: Access = Access { write: true, execute: false, user: false };
}

/// Why a mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Address or length not page-aligned, or the range wraps.
    Misaligned,
    /// Part of the range is already mapped.
    Overlap(u64),
    /// No table pages left.
    OutOfTables,
    /// Beyond the 48-bit canonical lower half.
    OutOfRange,
}

/// A page-table tree being built in `pages`, whose first page is the root.
pub struct PageTables<'p> {
    pages: &'p mut [Table],
    phys: u64,
    used: usize,
    nx: bool,
}

impl<'p> PageTables<'p> {
    /// Empty tables in `pages`, which the CPU will see at physical address
    /// `phys`. `nx`: whether EFER.NXE is on (the NX bit is reserved
    /// otherwise, so non-executable mappings then stay executable).
    pub fn new(pages: &'p mut [Table], phys: u64, nx: bool) -> Result<Self, MapError> {
        if pages.is_empty() {
            return Err(MapError::OutOfTables);
        }
        if !phys.is_multiple_of(PAGE_4K) {
            return Err(MapError::Misaligned);
        }
        pages[0] = Table::EMPTY;
        Ok(PageTables { pages, phys, used: 1, nx })
    }

    /// Physical address of the root table (for CR3).
    pub fn root(&self) -> u64 {
        self.phys
    }

    /// Table pages used so far.
    pub fn used(&self) -> usize {
        self.used
    }

    fn leaf_bits(&self, a: Access) -> u64 {
        let mut bits = PRESENT;
        if a.write {
            bits |= WRITABLE;
        }
        if a.user {
            bits |= USER;
        }
        if !a.execute && self.nx {
            bits |= NO_EXECUTE;
        }
        bits
    }

    /// Index of the table page at physical address `addr`.
    fn index_of(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.phys)?;
        let i = (off / PAGE_4K) as usize;
        (i < self.used).then_some(i)
    }

    /// The table below entry `slot` of table `t`, made if missing.
    fn child(&mut self, t: usize, slot: usize, at: u64) -> Result<usize, MapError> {
        let e = self.pages[t].0[slot];
        if e & PRESENT != 0 {
            if e & HUGE != 0 {
                return Err(MapError::Overlap(at));
            }
            return self.index_of(e & ADDR).ok_or(MapError::Overlap(at));
        }
        if self.used == self.pages.len() {
            return Err(MapError::OutOfTables);
        }
        let n = self.used;
        self.used += 1;
        self.pages[n] = Table::EMPTY;
        // Intermediate entries allow everything; the leaf decides.
        self.pages[t].0[slot] = (self.phys + n as u64 * PAGE_4K) | PRESENT | WRITABLE | USER;
        Ok(n)
    }

    /// Maps `virt..virt + len` to `phys..` with `access`, using 2 MiB pages
    /// where both addresses and the remaining length allow.
    pub fn map(&mut self, virt: u64, phys: u64, len: u64, access: Access) -> Result<(), MapError> {
        if !virt.is_multiple_of(PAGE_4K) || !phys.is_multiple_of(PAGE_4K) || !len.is_multiple_of(PAGE_4K) {
            return Err(MapError::Misaligned);
        }
        let end = virt.checked_add(len).ok_or(MapError::Misaligned)?;
        phys.checked_add(len).ok_or(MapError::Misaligned)?;
        if end > 1 << 47 {
            return Err(MapError::OutOfRange);
        }
        let bits = self.leaf_bits(access);
        let (mut v, mut p) = (virt, phys);
        while v < end {
            let l4 = ((v >> 39) & 511) as usize;
            let l3 = ((v >> 30) & 511) as usize;
            let l2 = ((v >> 21) & 511) as usize;
            let pdpt = self.child(0, l4, v)?;
            let pd = self.child(pdpt, l3, v)?;
            if v.is_multiple_of(PAGE_2M) && p.is_multiple_of(PAGE_2M) && end - v >= PAGE_2M {
                if self.pages[pd].0[l2] & PRESENT != 0 {
                    return Err(MapError::Overlap(v));
                }
                self.pages[pd].0[l2] = p | bits | HUGE;
                v += PAGE_2M;
                p += PAGE_2M;
                continue;
            }
            let pt = self.child(pd, l2, v)?;
            let l1 = ((v >> 12) & 511) as usize;
            if self.pages[pt].0[l1] & PRESENT != 0 {
                return Err(MapError::Overlap(v));
            }
            self.pages[pt].0[l1] = p | bits;
            v += PAGE_4K;
            p += PAGE_4K;
        }
        Ok(())
    }

    /// Where `virt` leads, and with which access, as the CPU would walk it.
    pub fn translate(&self, virt: u64) -> Option<(u64, Access)> {
        let mut t = 0;
        let mut allowed = Access { write: true, execute: true, user: true };
        for level in (1..=4).rev() {
            let e = self.pages[t].0[((virt >> (12 + 9 * (level - 1))) & 511) as usize];
            if e & PRESENT == 0 {
                return None;
            }
            allowed.write &= e & WRITABLE != 0;
            allowed.user &= e & USER != 0;
            allowed.execute &= e & NO_EXECUTE == 0;
            let size_bits = 12 + 9 * (level - 1);
            if level == 1 || (level == 2 && e & HUGE != 0) {
                let offset = virt & ((1u64 << size_bits) - 1);
                return Some(((e & ADDR & !((1u64 << size_bits) - 1)) + offset, allowed));
            }
            t = self.index_of(e & ADDR)?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4000_0000;

    fn tables(n: usize) -> std::vec::Vec<Table> {
        std::vec![Table::EMPTY; n]
    }

    #[test]
    fn maps_with_the_requested_permissions_and_nothing_else() {
        let mut pages = tables(16);
        let mut t = PageTables::new(&mut pages, BASE, true).unwrap();
        t.map(0x10_0000, 0x10_0000, 0x3000, Access::CODE).unwrap();
        t.map(0x10_3000, 0x10_3000, 0x1000, Access::READ).unwrap();
        t.map(0x10_5000, 0x10_5000, 0x2000, Access::DATA).unwrap(); // 0x104000 left out: a guard
        assert_eq!(t.translate(0x10_0123), Some((0x10_0123, Access::CODE)));
        assert_eq!(t.translate(0x10_3fff), Some((0x10_3fff, Access::READ)));
        assert_eq!(t.translate(0x10_4000), None, "guard page");
        assert_eq!(t.translate(0x10_6008), Some((0x10_6008, Access::DATA)));
        assert_eq!(t.translate(0x10_7000), None);
        assert_eq!(t.translate(0), None, "page zero stays unmapped");
        assert_eq!(t.used(), 4, "one table per level");
    }

    #[test]
    fn uses_large_pages_where_aligned_and_small_ones_at_the_edges() {
        let mut pages = tables(16);
        let mut t = PageTables::new(&mut pages, BASE, true).unwrap();
        // 4 KiB short of 2 MiB alignment at the start, 6 MiB long.
        t.map(0x1ff000, 0x7ff000, 0x60_0000, Access::DATA).unwrap();
        assert_eq!(t.translate(0x1ff000).unwrap().0, 0x7ff000);
        assert_eq!(t.translate(0x200000).unwrap().0, 0x800000);
        assert_eq!(t.translate(0x7fefff).unwrap().0, 0xdfefff);
        assert_eq!(t.translate(0x7ff000), None);
        // PML4 + PDPT + PD + two PTs (head and tail); middle is 2 MiB pages.
        assert_eq!(t.used(), 5);
    }

    #[test]
    fn refuses_overlaps_misalignment_and_running_out() {
        let mut pages = tables(4);
        let mut t = PageTables::new(&mut pages, BASE, true).unwrap();
        t.map(0x20_0000, 0x20_0000, PAGE_2M, Access::DATA).unwrap();
        assert_eq!(t.map(0x20_1000, 0x1000, 0x1000, Access::DATA), Err(MapError::Overlap(0x20_1000)));
        assert_eq!(t.map(0x20_0000, 0, PAGE_2M, Access::DATA), Err(MapError::Overlap(0x20_0000)));
        assert_eq!(t.map(0x1001, 0, 0x1000, Access::DATA), Err(MapError::Misaligned));
        assert_eq!(t.map(1 << 47, 0, 0x1000, Access::DATA), Err(MapError::OutOfRange));
        assert_eq!(t.map(!0xfffu64, 0, 0x2000, Access::DATA), Err(MapError::Misaligned));
        t.map(0x1000, 0x1000, 0x1000, Access::DATA).unwrap(); // fourth page: a PT
        assert_eq!(t.map(1 << 30, 1 << 30, 0x1000, Access::DATA), Err(MapError::OutOfTables));
    }

    #[test]
    fn without_nx_nothing_is_marked_no_execute() {
        let mut pages = tables(8);
        let mut t = PageTables::new(&mut pages, BASE, false).unwrap();
        t.map(0x1000, 0x1000, 0x1000, Access::DATA).unwrap();
        assert!(t.translate(0x1000).unwrap().1.execute);
        assert!(pages.iter().all(|p| p.0.iter().all(|e| e & NO_EXECUTE == 0)));
    }
}
