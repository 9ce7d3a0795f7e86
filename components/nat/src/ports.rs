//! The port allocator: a free uplink port (or ICMP identifier) for a new
//! connection, unique per destination (protocol, remote address, remote
//! port), in bounded time, unpredictably chosen.
//!
//! # Why it never hangs
//!
//! The range is cut into blocks of 64 ports and blocks into superblocks of
//! 64 blocks (at most 16 superblocks for 65,536 ports). For each destination
//! that has connections, a *block record* holds a 64-bit map of the ports in
//! use in one block, and a *superblock record* a map of the blocks that are
//! full. Records live in a keyed hash table like the connections. An
//! allocation reads at most every superblock record of the destination (16)
//! and one block record: constant work, whatever the occupancy, and an exact
//! answer — a port is refused only when every port towards that destination
//! is taken (or, never in practice, when a record cannot be stored).
//!
//! # Why it is unpredictable (RFC 6056)
//!
//! The superblock to start from, the block among the non-full ones, and the
//! port among the free ones in it are all taken from a keyed pseudo-random
//! value (SipHash of a counter under a per-boot key, supplied by the
//! caller), in the spirit of RFC 6056's random port selection: ports are
//! neither sequential nor derived from the client's own port, and sharing a
//! port between destinations is what keeps the range from running out.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::conn::NIL;
use crate::siphash::SipKey;
use crate::table::MAX_CHAIN;

/// A destination: ports need only be unique towards one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dest {
    /// IP protocol.
    pub proto: u8,
    /// Remote address (as seen on the uplink).
    pub ip: [u8; 4],
    /// Remote port (ICMP: the request type).
    pub port: u16,
}

/// A block or superblock record: 24 bytes.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Ports in use (block) or blocks full (superblock), one bit each.
    pub bits: u64,
    /// Destination address.
    pub ip: [u8; 4],
    /// Destination port.
    pub port: u16,
    /// Block or superblock number.
    pub index: u16,
    /// Destination protocol.
    pub proto: u8,
    /// 0 free, [`BLOCK`] or [`SUPER`].
    pub level: u8,
    /// Padding (zero).
    pub pad: [u8; 2],
    /// Next record in the hash chain (or the free list), 1-based.
    pub next: u32,
}

const _: () = assert!(core::mem::size_of::<Record>() == 24);

/// A block record.
pub const BLOCK: u8 = 1;
/// A superblock record.
pub const SUPER: u8 = 2;

/// Why no port was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every port towards the destination is in use.
    Exhausted,
    /// A record could not be stored (its hash chain is full).
    NoRecord,
}

/// Records needed for `connections` live connections: at most one block
/// record each, one superblock record per 64 of them, and a margin.
pub const fn records_for(connections: usize) -> usize {
    connections + connections / 64 + 64
}

/// The allocator over its two state regions.
pub struct PortMap<'a> {
    recs: &'a mut [Record],
    heads: &'a mut [u32],
    mask: usize,
    key: SipKey,
    fresh: u32,
    free: u32,
    live: u32,
    min: u16,
    len: u32,
    blocks: u32,
    supers: u32,
    used: u32,
}

/// Picks a set bit of `mask` (non-zero) starting from a random position.
fn pick(mask: u64, r: u64) -> u32 {
    let rot = (r & 63) as u32;
    (mask.rotate_right(rot).trailing_zeros() + rot) & 63
}

/// The low `n` bits (n ≤ 64).
fn low_bits(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

impl<'a> PortMap<'a> {
    /// An allocator for ports `min..=max` over zeroed regions (`heads` a
    /// power of two long).
    pub fn new(recs: &'a mut [Record], heads: &'a mut [u32], key: SipKey, min: u16, max: u16) -> Option<Self> {
        if min > max || recs.is_empty() || recs.len() >= u32::MAX as usize || !heads.len().is_power_of_two() {
            return None;
        }
        let len = u32::from(max - min) + 1;
        let blocks = len.div_ceil(64);
        Some(PortMap {
            mask: heads.len() - 1,
            recs,
            heads,
            key,
            fresh: 0,
            free: NIL,
            live: 0,
            min,
            len,
            blocks,
            supers: blocks.div_ceil(64),
            used: 0,
        })
    }

    /// Ports in use (over all destinations).
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Records in use.
    pub fn records(&self) -> u32 {
        self.live
    }

    /// Size of the port range.
    pub fn range(&self) -> u32 {
        self.len
    }

    fn hash(&self, d: &Dest, level: u8, index: u16) -> usize {
        let a = u64::from(u32::from_be_bytes(d.ip)) << 32 | u64::from(d.port) << 16 | u64::from(index);
        let b = u64::from(d.proto) << 8 | u64::from(level) | 3 << 16;
        self.key.hash(a, b) as usize & self.mask
    }

    fn find(&self, d: &Dest, level: u8, index: u16) -> Option<u32> {
        let mut at = self.heads[self.hash(d, level, index)];
        for _ in 0..MAX_CHAIN {
            let r = self.recs.get(at.checked_sub(1)? as usize)?;
            if r.level == level && r.index == index && r.ip == d.ip && r.port == d.port && r.proto == d.proto {
                return Some(at - 1);
            }
            at = r.next;
        }
        None
    }

    fn bits(&self, d: &Dest, level: u8, index: u16) -> u64 {
        self.find(d, level, index).map_or(0, |i| self.recs[i as usize].bits)
    }

    /// Whether a new record for (`d`, `level`, `index`) could be stored.
    fn room(&self, d: &Dest, level: u8, index: u16, extra: u32) -> bool {
        let spare = (self.recs.len() as u32 - self.fresh) + self.free_len_hint();
        if spare < extra + 1 {
            return false;
        }
        let mut at = self.heads[self.hash(d, level, index)];
        let mut n = 0;
        while let Some(r) = at.checked_sub(1).and_then(|i| self.recs.get(i as usize)) {
            n += 1;
            if n >= MAX_CHAIN {
                return false;
            }
            at = r.next;
        }
        true
    }

    /// Free records beyond `fresh`: capacity minus live minus untouched.
    fn free_len_hint(&self) -> u32 {
        self.fresh - self.live
    }

    fn set(&mut self, d: &Dest, level: u8, index: u16, bits: u64) {
        match self.find(d, level, index) {
            Some(i) if bits != 0 => self.recs[i as usize].bits = bits,
            Some(i) => self.remove(i),
            None if bits != 0 => self.add(d, level, index, bits),
            None => {}
        }
    }

    fn add(&mut self, d: &Dest, level: u8, index: u16, bits: u64) {
        let i = if self.free != NIL {
            let i = self.free - 1;
            self.free = self.recs[i as usize].next;
            i
        } else {
            self.fresh += 1;
            self.fresh - 1
        };
        let b = self.hash(d, level, index);
        self.recs[i as usize] =
            Record { bits, ip: d.ip, port: d.port, index, proto: d.proto, level, pad: [0; 2], next: self.heads[b] };
        self.heads[b] = i + 1;
        self.live += 1;
    }

    fn remove(&mut self, i: u32) {
        let r = self.recs[i as usize];
        let d = Dest { proto: r.proto, ip: r.ip, port: r.port };
        let b = self.hash(&d, r.level, r.index);
        if self.heads[b] == i + 1 {
            self.heads[b] = r.next;
        } else {
            let mut at = self.heads[b];
            for _ in 0..MAX_CHAIN {
                let Some(p) = at.checked_sub(1) else { break };
                if self.recs[p as usize].next == i + 1 {
                    self.recs[p as usize].next = r.next;
                    break;
                }
                at = self.recs[p as usize].next;
            }
        }
        self.recs[i as usize] = Record { next: self.free, ..Record::default() };
        self.free = i + 1;
        self.live -= 1;
    }

    /// Ports that exist in block `b` (the last block may be partial).
    fn block_mask(&self, b: u32) -> u64 {
        low_bits(self.len - b * 64)
    }

    /// Blocks that exist in superblock `s`.
    fn super_mask(&self, s: u32) -> u64 {
        low_bits(self.blocks - s * 64)
    }

    /// A free port towards `d`, marked in use; `r` is fresh randomness.
    /// At most `supers + 1` record lookups (17 for the whole port space).
    pub fn alloc(&mut self, d: &Dest, r: u64) -> Result<u16, Refused> {
        let start = (r >> 32) as u32 % self.supers;
        for i in 0..self.supers {
            let s = (start + i) % self.supers;
            let open = self.super_mask(s) & !self.bits(d, SUPER, s as u16);
            if open == 0 {
                continue;
            }
            let b = s * 64 + pick(open, r);
            let in_use = self.bits(d, BLOCK, b as u16);
            let all = self.block_mask(b);
            let free = all & !in_use;
            if free == 0 {
                // The superblock map says not full: the maps disagree. Cannot
                // happen (see `check`); refuse rather than loop.
                return Err(Refused::NoRecord);
            }
            let bit = pick(free, r >> 8);
            let now = in_use | 1 << bit;
            let fills = now == all;
            // Make sure every record this needs can be stored before
            // changing anything.
            let new_block = in_use == 0;
            let sup = self.bits(d, SUPER, s as u16);
            let new_super = fills && sup == 0;
            if (new_block && !self.room(d, BLOCK, b as u16, u32::from(new_super)))
                || (new_super && !self.room(d, SUPER, s as u16, u32::from(new_block)))
            {
                return Err(Refused::NoRecord);
            }
            self.set(d, BLOCK, b as u16, now);
            if fills {
                self.set(d, SUPER, s as u16, sup | 1 << (b % 64));
            }
            self.used += 1;
            return Ok(self.min + (b * 64 + bit) as u16);
        }
        Err(Refused::Exhausted)
    }

    /// True if `port` is in use towards `d`.
    pub fn in_use(&self, d: &Dest, port: u16) -> bool {
        let Some(off) = port.checked_sub(self.min).map(u32::from).filter(|&o| o < self.len) else { return false };
        self.bits(d, BLOCK, (off / 64) as u16) & 1 << (off % 64) != 0
    }

    /// Marks `port` free again towards `d` (a no-op if it was not in use).
    pub fn release(&mut self, d: &Dest, port: u16) {
        let Some(off) = port.checked_sub(self.min).map(u32::from).filter(|&o| o < self.len) else { return };
        let (b, bit) = (off / 64, off % 64);
        let in_use = self.bits(d, BLOCK, b as u16);
        if in_use & 1 << bit == 0 {
            return;
        }
        if in_use == self.block_mask(b) {
            let s = b / 64;
            let sup = self.bits(d, SUPER, s as u16);
            self.set(d, SUPER, s as u16, sup & !(1 << (b % 64)));
        }
        self.set(d, BLOCK, b as u16, in_use & !(1 << bit));
        self.used -= 1;
    }

    /// Checks the records agree with each other and with `used` (O(records);
    /// for tests and fuzzing). Returns the number of ports in use.
    pub fn check(&self) -> Result<u32, &'static str> {
        let mut ports = 0;
        let mut live = 0;
        for (i, r) in self.recs.iter().enumerate().take(self.fresh as usize) {
            if r.level == 0 {
                continue;
            }
            live += 1;
            let d = Dest { proto: r.proto, ip: r.ip, port: r.port };
            if self.find(&d, r.level, r.index) != Some(i as u32) || r.bits == 0 {
                return Err("port record lost or empty");
            }
            match r.level {
                BLOCK => {
                    let b = u32::from(r.index);
                    if b >= self.blocks || r.bits & !self.block_mask(b) != 0 {
                        return Err("block record out of range");
                    }
                    ports += r.bits.count_ones();
                    let full = r.bits == self.block_mask(b);
                    let marked = self.bits(&d, SUPER, (b / 64) as u16) & 1 << (b % 64) != 0;
                    if full != marked {
                        return Err("superblock map disagrees with a block");
                    }
                }
                SUPER => {
                    let s = u32::from(r.index);
                    for b in 0..64 {
                        if r.bits & 1 << b != 0 {
                            let blk = s * 64 + b;
                            if blk >= self.blocks || self.bits(&d, BLOCK, blk as u16) != self.block_mask(blk) {
                                return Err("superblock marks a block that is not full");
                            }
                        }
                    }
                }
                _ => return Err("bad record level"),
            }
        }
        if live != self.live || ports != self.used {
            return Err("port counts wrong");
        }
        Ok(ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(recs: &mut Vec<Record>, heads: &mut Vec<u32>, min: u16, max: u16) -> PortMap<'static> {
        let recs: &'static mut [Record] = Box::leak(core::mem::take(recs).into_boxed_slice());
        let heads: &'static mut [u32] = Box::leak(core::mem::take(heads).into_boxed_slice());
        PortMap::new(recs, heads, SipKey::new([7; 16]), min, max).unwrap()
    }

    #[test]
    fn fills_a_destination_exactly_then_refuses_and_others_still_work() {
        let n = 65536 - 1024;
        let mut m = map(&mut vec![Record::default(); records_for(n)], &mut vec![0; 131072], 1024, 65535);
        let d = Dest { proto: 17, ip: [93, 184, 216, 34], port: 53 };
        let key = SipKey::new([1; 16]);
        let mut seen = vec![false; 65536];
        for i in 0..n as u64 {
            let p = m.alloc(&d, key.hash(i, 0)).unwrap_or_else(|e| panic!("port {i}: {e:?}"));
            assert!(p >= 1024 && !seen[usize::from(p)], "port {p} twice");
            seen[usize::from(p)] = true;
        }
        assert_eq!(m.alloc(&d, 5), Err(Refused::Exhausted));
        let other = Dest { port: 443, ..d };
        assert!(m.alloc(&other, 9).is_ok());
        assert_eq!(m.check(), Ok(n as u32 + 1));
        m.release(&d, 40000);
        assert_eq!(m.alloc(&d, 77), Ok(40000), "the one free port is found");
        for p in 1024..=65535u16 {
            m.release(&d, p);
        }
        m.release(&other, 0);
        assert_eq!(m.check(), Ok(1));
    }

    #[test]
    fn partial_ranges_never_give_ports_outside() {
        let mut m = map(&mut vec![Record::default(); 200], &mut vec![0; 256], 60000, 60099);
        let d = Dest { proto: 6, ip: [1, 1, 1, 1], port: 443 };
        for i in 0..100u64 {
            let p = m.alloc(&d, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).unwrap();
            assert!((60000..=60099).contains(&p));
        }
        assert_eq!(m.alloc(&d, 1), Err(Refused::Exhausted));
        m.check().unwrap();
    }
}
