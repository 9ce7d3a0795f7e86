//! IPv4 fragments: translated as *trains*, not reassembled.
//!
//! Reassembly would need a buffer larger than any pool buffer (a 3000-byte
//! EDNS answer does not fit a 2 KiB buffer) and would hold the whole
//! datagram back. Instead, the first fragment (offset 0, carrying the
//! transport header) is translated like any packet, and its translation is
//! remembered under (direction, source, destination, protocol, IP
//! identification); the later fragments of that datagram get the same
//! address rewrite (they carry no ports, and the first fragment's
//! incremental checksum fix already covers the whole datagram).
//!
//! Each train records which byte ranges it has passed. A fragment that
//! overlaps one already passed (the RFC 1858 / RFC 3128 overlap attacks that
//! rewrite a transport header behind a filter's back), that runs past the
//! datagram's end or past 65,535 bytes, or that would need a ninth separate
//! range, *poisons* the train: it and every later fragment of the datagram
//! are dropped and counted, so the receiver never completes it.
//!
//! A later fragment with no train (its first fragment was lost, or arrives
//! later) is dropped and counted: the datagram is lost as if the path had
//! lost a fragment, and the sender's retry (DNS falls back to TCP) recovers.
//! Linux sends fragments in order. Trains live 30 s (Linux `ipfrag_time`);
//! at most [`TRAINS`] at once and [`PER_SOURCE`] per source address.

use crate::engine::Fate;

/// Trains tracked at once.
pub const TRAINS: usize = 64;
/// Trains one source address may have at once.
pub const PER_SOURCE: usize = 8;
/// Separate byte ranges a train may have passed.
const SPANS: usize = 8;
/// Lifetime of a train (ns).
pub const LIFETIME_NS: u64 = 30_000_000_000;

/// Identifies a datagram (RFC 791: source, destination, protocol, ID) and
/// which way it travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainKey {
    /// From a client (true) or from the uplink.
    pub outbound: bool,
    /// Source address as received.
    pub src: [u8; 4],
    /// Destination address as received.
    pub dst: [u8; 4],
    /// Protocol.
    pub proto: u8,
    /// IP identification.
    pub ident: u16,
}

/// What the later fragments of a train become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// New source address.
    pub src: [u8; 4],
    /// New destination address.
    pub dst: [u8; 4],
    /// Where they go.
    pub fate: Fate,
}

/// Why a fragment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// No train for this later fragment.
    NoTrain,
    /// It overlaps, runs past the end, or the train is in too many pieces;
    /// the train is poisoned.
    Rejected,
    /// Part of a poisoned train.
    Poisoned,
    /// No room for another train (in all, or for this source).
    Full,
}

#[derive(Clone, Copy, Debug)]
struct Train {
    key: TrainKey,
    rewrite: Rewrite,
    spans: [(u32, u32); SPANS],
    used: usize,
    end: Option<u32>,
    poisoned: bool,
    expires: u64,
}

/// The trains in flight.
pub struct Trains {
    trains: [Option<Train>; TRAINS],
}

impl Default for Trains {
    fn default() -> Self {
        Trains { trains: [None; TRAINS] }
    }
}

impl Train {
    /// Adds `[start, end)`; false if it overlaps or cannot be recorded.
    fn add(&mut self, start: u32, end: u32, last: bool) -> bool {
        if end > 65535 || self.end.is_some_and(|e| end > e) {
            return false;
        }
        if last {
            if self.end.is_some() || self.spans[..self.used].iter().any(|&(_, e)| e > end) {
                return false;
            }
            self.end = Some(end);
        }
        if self.spans[..self.used].iter().any(|&(s, e)| start < e && s < end) {
            return false;
        }
        // Merge with touching neighbours, else append.
        let mut merged = (start, end);
        let mut kept = 0;
        for i in 0..self.used {
            let (s, e) = self.spans[i];
            if e == merged.0 || s == merged.1 {
                merged = (merged.0.min(s), merged.1.max(e));
            } else {
                self.spans[kept] = (s, e);
                kept += 1;
            }
        }
        if kept == SPANS {
            return false;
        }
        self.spans[kept] = merged;
        self.used = kept + 1;
        true
    }

    fn complete(&self) -> bool {
        self.end.is_some_and(|e| self.used == 1 && self.spans[0] == (0, e))
    }
}

impl Trains {
    fn find(&self, key: &TrainKey) -> Option<usize> {
        self.trains.iter().position(|t| t.as_ref().is_some_and(|t| t.key == *key))
    }

    /// Trains in flight.
    pub fn len(&self) -> usize {
        self.trains.iter().flatten().count()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a first fragment for `key` could start a train now.
    pub fn room(&mut self, key: &TrainKey, now: u64) -> Result<(), FragError> {
        self.expire(now);
        match self.find(key) {
            Some(i) if self.trains[i].is_some_and(|t| t.poisoned) => return Err(FragError::Poisoned),
            Some(_) => return Ok(()),
            None => {}
        }
        let same_source = self.trains.iter().flatten().filter(|t| t.key.src == key.src).count();
        if same_source >= PER_SOURCE || self.trains.iter().all(Option::is_some) {
            return Err(FragError::Full);
        }
        Ok(())
    }

    /// The first fragment of `key`, `len` payload bytes, was translated:
    /// later fragments get `rewrite`. Call [`room`](Self::room) first.
    pub fn first(&mut self, key: TrainKey, len: u32, rewrite: Rewrite, now: u64) -> Result<(), FragError> {
        if let Some(i) = self.find(&key) {
            let t = self.trains[i].as_mut().ok_or(FragError::NoTrain)?;
            if t.poisoned || !t.add(0, len, false) {
                t.poisoned = true;
                return Err(FragError::Rejected);
            }
            return Ok(());
        }
        let slot = self.trains.iter().position(Option::is_none).ok_or(FragError::Full)?;
        let mut t = Train {
            key,
            rewrite,
            spans: [(0, 0); SPANS],
            used: 0,
            end: None,
            poisoned: false,
            expires: now.saturating_add(LIFETIME_NS),
        };
        let _ = t.add(0, len, false);
        self.trains[slot] = Some(t);
        Ok(())
    }

    /// A later fragment: bytes `[offset, offset + len)`, `more` if MF is set.
    pub fn later(&mut self, key: &TrainKey, offset: u32, len: u32, more: bool, now: u64) -> Result<Rewrite, FragError> {
        self.expire(now);
        let i = self.find(key).ok_or(FragError::NoTrain)?;
        let t = self.trains[i].as_mut().ok_or(FragError::NoTrain)?;
        if t.poisoned {
            return Err(FragError::Poisoned);
        }
        if !t.add(offset, offset.saturating_add(len), !more) {
            t.poisoned = true;
            return Err(FragError::Rejected);
        }
        let r = t.rewrite;
        if t.complete() {
            self.trains[i] = None;
        }
        Ok(r)
    }

    /// Forgets trains past their lifetime; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        for t in &mut self.trains {
            if t.is_some_and(|t| now >= t.expires) {
                *t = None;
                n += 1;
            }
        }
        n
    }

    /// Forgets the trains from or to client `slot` at `ip` (it went away).
    pub fn forget_client(&mut self, slot: u8, ip: [u8; 4]) {
        for t in &mut self.trains {
            if t.is_some_and(|t| t.rewrite.fate == Fate::Client(slot) || (t.key.outbound && t.key.src == ip)) {
                *t = None;
            }
        }
    }

    /// The earliest expiry, if any train is in flight.
    pub fn next_deadline(&self) -> Option<u64> {
        self.trains.iter().flatten().map(|t| t.expires).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TrainKey {
        TrainKey { outbound: false, src: [8, 8, 8, 8], dst: [10, 138, 0, 2], proto: 17, ident: 7 }
    }
    const RW: Rewrite = Rewrite { src: [8, 8, 8, 8], dst: [10, 137, 0, 5], fate: Fate::Client(3) };

    #[test]
    fn in_order_train_completes() {
        let mut t = Trains::default();
        t.room(&key(), 0).unwrap();
        t.first(key(), 1480, RW, 0).unwrap();
        assert_eq!(t.later(&key(), 1480, 1480, true, 1), Ok(RW));
        assert_eq!(t.later(&key(), 2960, 48, false, 2), Ok(RW));
        assert!(t.is_empty(), "complete trains are forgotten");
        assert_eq!(t.later(&key(), 2960, 48, false, 3), Err(FragError::NoTrain));
    }

    #[test]
    fn overlaps_and_oversize_poison_the_train() {
        let mut t = Trains::default();
        t.first(key(), 1480, RW, 0).unwrap();
        assert_eq!(t.later(&key(), 8, 100, true, 0), Err(FragError::Rejected), "overwrites the header");
        assert_eq!(t.later(&key(), 1480, 100, false, 0), Err(FragError::Poisoned));
        let k2 = TrainKey { ident: 8, ..key() };
        t.first(k2, 1480, RW, 0).unwrap();
        assert_eq!(t.later(&k2, 65528, 16, false, 0), Err(FragError::Rejected), "past 65535");
        let k3 = TrainKey { ident: 9, ..key() };
        t.first(k3, 1480, RW, 0).unwrap();
        assert_eq!(t.later(&k3, 2960, 8, false, 0), Ok(RW), "out of order is fine");
        assert_eq!(t.later(&k3, 1480, 1488, true, 0), Err(FragError::Rejected), "runs past the end");
    }

    #[test]
    fn bounded_per_source_and_expire() {
        let mut t = Trains::default();
        for i in 0..PER_SOURCE as u16 {
            let k = TrainKey { ident: i, ..key() };
            t.room(&k, 0).unwrap();
            t.first(k, 8, RW, 0).unwrap();
        }
        assert_eq!(t.room(&TrainKey { ident: 99, ..key() }, 0), Err(FragError::Full));
        assert_eq!(t.room(&TrainKey { ident: 99, src: [1, 1, 1, 1], ..key() }, 0), Ok(()));
        assert_eq!(t.next_deadline(), Some(LIFETIME_NS));
        assert_eq!(t.expire(LIFETIME_NS), PER_SOURCE);
    }
}
