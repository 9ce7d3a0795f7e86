//! Client slots: who is connected at which address, how many connections
//! each holds, and each one's ICMP error allowance.

use moat_control::ClientEvent;
use moat_net::meta::Iface;

/// Client slots (`Iface::MAX_CLIENTS`).
pub const SLOTS: usize = Iface::MAX_CLIENTS as usize;
const MAP: usize = 512;

/// One client slot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    /// Its IPv4 address.
    pub ip: [u8; 4],
    /// Connected.
    pub up: bool,
    /// Gone, its connections still being removed.
    pub draining: bool,
    /// Connections it holds.
    pub conns: u32,
    bucket: Bucket,
}

/// A token bucket in nano-tokens (1e9 per token) so integer arithmetic is
/// exact at any rate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    tokens: u64,
    last: u64,
    started: bool,
}

const TOKEN: u64 = 1_000_000_000;

impl Bucket {
    /// Takes one token if there is one; refills at `rate` per second up to
    /// `burst`. A new bucket starts full.
    pub fn take(&mut self, now: u64, rate: u32, burst: u32) -> bool {
        let cap = u64::from(burst).saturating_mul(TOKEN);
        if !self.started {
            (self.tokens, self.started) = (cap, true);
        } else {
            let gained = now.saturating_sub(self.last).saturating_mul(u64::from(rate));
            self.tokens = self.tokens.saturating_add(gained).min(cap);
        }
        self.last = now;
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

/// Why a client event was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// Slot out of range.
    BadSlot,
    /// Another connected client has that address, or it is not unicast.
    BadAddress,
    /// `Up` for a slot that is up (with another address), or `Down` for one
    /// that is not.
    WrongState,
}

/// Every slot, and an address → slot map for inter-VM traffic.
pub struct Clients {
    slots: [Slot; SLOTS],
    /// Open addressing, slot + 1 (0 empty), rebuilt on every change.
    map: [u8; MAP],
}

impl Default for Clients {
    fn default() -> Self {
        Clients { slots: [Slot::default(); SLOTS], map: [0; MAP] }
    }
}

fn home(ip: [u8; 4]) -> usize {
    (u32::from_be_bytes(ip).wrapping_mul(0x9e37_79b1) >> 23) as usize
}

impl Clients {
    /// Slot `n`, if in range.
    pub fn get(&self, n: u8) -> Option<&Slot> {
        self.slots.get(usize::from(n))
    }

    /// Slot `n`, writable.
    pub fn get_mut(&mut self, n: u8) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(n))
    }

    /// The connected client with this address.
    pub fn slot_of(&self, ip: [u8; 4]) -> Option<u8> {
        let mut at = home(ip);
        for _ in 0..MAP {
            let s = self.map[at].checked_sub(1)?;
            if self.slots[usize::from(s)].ip == ip {
                return Some(s);
            }
            at = (at + 1) % MAP;
        }
        None
    }

    /// True if any slot is draining.
    pub fn draining(&self) -> bool {
        self.slots.iter().any(|s| s.draining)
    }

    /// Applies an event. `Down` marks the slot draining; the caller removes
    /// its connections and then calls [`drained`](Self::drained).
    pub fn apply(&mut self, e: &ClientEvent) -> Result<(), EventError> {
        match *e {
            ClientEvent::Up { slot, ipv4, .. } => {
                let s = self.slots.get(usize::from(slot)).ok_or(EventError::BadSlot)?;
                let a = core::net::Ipv4Addr::from(ipv4);
                if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || ipv4[0] >= 240 {
                    return Err(EventError::BadAddress);
                }
                if s.draining || (s.up && s.ip != ipv4) {
                    return Err(EventError::WrongState);
                }
                if self.slot_of(ipv4).is_some_and(|o| o != slot) {
                    return Err(EventError::BadAddress);
                }
                let s = &mut self.slots[usize::from(slot)];
                (s.ip, s.up) = (ipv4, true);
            }
            ClientEvent::Down { slot } => {
                let s = self.slots.get_mut(usize::from(slot)).ok_or(EventError::BadSlot)?;
                if !s.up {
                    return Err(EventError::WrongState);
                }
                (s.up, s.draining) = (false, true);
            }
        }
        self.rebuild();
        Ok(())
    }

    /// Every connection of draining slots is gone: they may be reused.
    pub fn drained(&mut self) {
        for s in &mut self.slots {
            if s.draining {
                *s = Slot::default();
            }
        }
    }

    fn rebuild(&mut self) {
        self.map = [0; MAP];
        for (n, s) in self.slots.iter().enumerate() {
            if s.up {
                let mut at = home(s.ip);
                while self.map[at] != 0 {
                    at = (at + 1) % MAP;
                }
                self.map[at] = n as u8 + 1;
            }
        }
    }

    /// Takes an ICMP-error token from client `n`'s bucket.
    pub fn allow_icmp(&mut self, n: u8, now: u64, rate: u32, burst: u32) -> bool {
        self.slots.get_mut(usize::from(n)).is_some_and(|s| s.bucket.take(now, rate, burst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(slot: u8, ip: [u8; 4]) -> ClientEvent {
        ClientEvent::Up { slot, ipv4: ip, ipv6: None, mac: [0; 6] }
    }

    #[test]
    fn slots_and_addresses() {
        let mut c = Clients::default();
        for n in 0..SLOTS as u8 {
            c.apply(&up(n, [10, 137, n, 5])).unwrap();
        }
        for n in 0..SLOTS as u8 {
            assert_eq!(c.slot_of([10, 137, n, 5]), Some(n));
        }
        assert_eq!(c.slot_of([10, 137, 0, 6]), None);
        assert_eq!(c.apply(&up(1, [10, 137, 0, 5])), Err(EventError::WrongState));
        assert_eq!(c.apply(&up(254, [10, 137, 9, 9])), Err(EventError::BadSlot));
        c.apply(&ClientEvent::Down { slot: 0 }).unwrap();
        assert_eq!(c.slot_of([10, 137, 0, 5]), None);
        assert_eq!(c.apply(&up(0, [10, 137, 0, 5])), Err(EventError::WrongState), "still draining");
        c.drained();
        c.apply(&up(0, [10, 137, 0, 5])).unwrap();
        assert_eq!(
            c.apply(&ClientEvent::Down { slot: 7 }).and(c.apply(&ClientEvent::Down { slot: 7 })),
            Err(EventError::WrongState)
        );
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let mut b = Bucket::default();
        let taken = (0..30).filter(|_| b.take(0, 10, 20)).count();
        assert_eq!(taken, 20, "a burst");
        assert!(!b.take(99_000_000, 10, 20), "0.099 s: less than one token back");
        assert!(b.take(100_000_000, 10, 20), "0.1 s: one token");
        assert!(!b.take(100_000_000, 10, 20));
        assert_eq!((0..100).filter(|_| b.take(u64::MAX, 10, 20)).count(), 20, "no overflow");
    }
}
