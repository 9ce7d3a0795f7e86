//! The connection table: fixed-capacity entries in a state region, two
//! keyed hash indexes (client-side and uplink-side tuples), and one age list
//! per state.
//!
//! * **Indexes**: separate chaining through links inside the entries, one
//!   bucket array per side, SipHash-1-3 under a per-boot key. A chain never
//!   grows past [`MAX_CHAIN`]: an insertion that would make it longer is
//!   refused (counted by the caller), so every lookup reads at most
//!   `MAX_CHAIN` entries whatever the traffic. With as many buckets as
//!   entries and a secret key, a chain of 16 is a 1-in-10¹³ event per bucket
//!   for honest traffic, and a client cannot aim for one.
//! * **Age lists**: every live entry sits in the list of its state, ordered
//!   by last activity (a refresh moves it to the tail). All entries of a list
//!   share one timeout, so each list's head is its next to expire: expiry
//!   pops heads (O(1) per entry) and the eviction victim is found among at
//!   most 16 heads.
//! * **Memory**: links are 1-based (0 = none) so a zeroed region is an
//!   empty table; entries never used are taken in order (`fresh`), freed
//!   ones are recycled through a free list. Nothing is ever cleared in bulk.

use crate::conn::{Conn, NIL, STATES, State, TIERS};
use crate::siphash::SipKey;

/// Longest hash chain allowed.
pub const MAX_CHAIN: usize = 16;

/// The client-side tuple: what a packet from the client carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutKey {
    /// IP protocol.
    pub proto: u8,
    /// Client address.
    pub client_ip: [u8; 4],
    /// Client port / ICMP identifier (0 for other protocols).
    pub client_port: u16,
    /// Destination as addressed by the client.
    pub remote_ip: [u8; 4],
    /// Remote port / ICMP request type (0 for other protocols).
    pub remote_port: u16,
}

/// The uplink-side tuple: what a reply from the remote carries (the
/// uplink address is implied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InKey {
    /// IP protocol.
    pub proto: u8,
    /// The remote as the uplink sees it (a DNS server for redirected flows).
    pub outside_ip: [u8; 4],
    /// Remote port / ICMP request type.
    pub remote_port: u16,
    /// Our port / ICMP identifier on the uplink.
    pub nat_port: u16,
}

impl OutKey {
    /// The key of an entry.
    pub fn of(c: &Conn) -> Self {
        OutKey {
            proto: c.proto,
            client_ip: c.client_ip,
            client_port: c.client_port,
            remote_ip: c.remote_ip,
            remote_port: c.remote_port,
        }
    }
    fn hash(&self, key: &SipKey) -> u64 {
        let a = u64::from(u32::from_be_bytes(self.client_ip)) << 32 | u64::from(u32::from_be_bytes(self.remote_ip));
        let b = u64::from(self.client_port) << 48 | u64::from(self.remote_port) << 32 | u64::from(self.proto) << 8 | 1;
        key.hash(a, b)
    }
}

impl InKey {
    fn hash(&self, key: &SipKey) -> u64 {
        let a = u64::from(u32::from_be_bytes(self.outside_ip));
        let b = u64::from(self.remote_port) << 48 | u64::from(self.nat_port) << 32 | u64::from(self.proto) << 8 | 2;
        key.hash(a, b)
    }
}

/// Why an entry could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Every entry is in use (the caller evicts and retries, or refuses).
    Table,
    /// One of the two hash chains is at [`MAX_CHAIN`].
    Chain,
}

#[derive(Clone, Copy, Debug, Default)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

/// The table over its three state regions.
pub struct Table<'a> {
    conns: &'a mut [Conn],
    heads_out: &'a mut [u32],
    heads_in: &'a mut [u32],
    mask: usize,
    key: SipKey,
    /// The outside addresses of the DNS servers, for redirected entries.
    dns: [[u8; 4]; 2],
    fresh: u32,
    free: u32,
    live: u32,
    lists: [List; STATES],
}

/// Bucket count for `capacity` entries: a power of two, at least as many.
pub const fn buckets(capacity: usize) -> usize {
    capacity.next_power_of_two()
}

impl<'a> Table<'a> {
    /// A table over zeroed regions: `conns` entries, and `heads` holding two
    /// bucket arrays (`2 * buckets(conns.len())` words).
    pub fn new(conns: &'a mut [Conn], heads: &'a mut [u32], key: SipKey, dns: [[u8; 4]; 2]) -> Option<Self> {
        let n = buckets(conns.len());
        if conns.is_empty() || conns.len() >= u32::MAX as usize || heads.len() < 2 * n {
            return None;
        }
        let (heads_out, rest) = heads.split_at_mut(n);
        let heads_in = &mut rest[..n];
        Some(Table {
            conns,
            heads_out,
            heads_in,
            mask: n - 1,
            key,
            dns,
            fresh: 0,
            free: NIL,
            live: 0,
            lists: [List::default(); STATES],
        })
    }

    /// Entries the table can hold.
    pub fn capacity(&self) -> usize {
        self.conns.len()
    }

    /// Entries ever used: every entry from here on is free.
    pub fn used(&self) -> u32 {
        self.fresh
    }

    /// Entries in use.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Entries in `state`.
    pub fn count(&self, state: State) -> u32 {
        self.lists[state.index()].len
    }

    /// The entry at `idx` (0-based).
    pub fn get(&self, idx: u32) -> &Conn {
        &self.conns[idx as usize]
    }

    /// The uplink-side key of an entry.
    pub fn in_key(&self, c: &Conn) -> InKey {
        let outside_ip = c.dns().map_or(c.remote_ip, |i| self.dns[i & 1]);
        InKey { proto: c.proto, outside_ip, remote_port: c.remote_port, nat_port: c.nat_port }
    }

    /// The entry with this client-side key.
    pub fn find_out(&self, k: &OutKey) -> Option<u32> {
        let mut at = self.heads_out[k.hash(&self.key) as usize & self.mask];
        for _ in 0..MAX_CHAIN {
            let c = self.conns.get(at.checked_sub(1)? as usize)?;
            if c.client_ip == k.client_ip
                && c.remote_ip == k.remote_ip
                && c.client_port == k.client_port
                && c.remote_port == k.remote_port
                && c.proto == k.proto
            {
                return Some(at - 1);
            }
            at = c.next_out;
        }
        None
    }

    /// The entry with this uplink-side key.
    pub fn find_in(&self, k: &InKey) -> Option<u32> {
        let mut at = self.heads_in[k.hash(&self.key) as usize & self.mask];
        for _ in 0..MAX_CHAIN {
            let c = self.conns.get(at.checked_sub(1)? as usize)?;
            if c.nat_port == k.nat_port
                && c.remote_port == k.remote_port
                && c.proto == k.proto
                && self.in_key(c).outside_ip == k.outside_ip
            {
                return Some(at - 1);
            }
            at = c.next_in;
        }
        None
    }

    fn chain_len(&self, heads: &[u32], bucket: usize, out: bool) -> usize {
        let mut at = heads[bucket];
        let mut n = 0;
        while let Some(c) = at.checked_sub(1).and_then(|i| self.conns.get(i as usize)) {
            n += 1;
            if n >= MAX_CHAIN {
                break;
            }
            at = if out { c.next_out } else { c.next_in };
        }
        n
    }

    /// Whether an entry with these keys could be inserted now.
    pub fn can_insert(&self, out: &OutKey, inside: &InKey) -> Result<(), Full> {
        if self.free == NIL && self.fresh as usize >= self.conns.len() {
            return Err(Full::Table);
        }
        let bo = out.hash(&self.key) as usize & self.mask;
        let bi = inside.hash(&self.key) as usize & self.mask;
        if self.chain_len(self.heads_out, bo, true) >= MAX_CHAIN
            || self.chain_len(self.heads_in, bi, false) >= MAX_CHAIN
        {
            return Err(Full::Chain);
        }
        Ok(())
    }

    /// Inserts `c` (keys unique: the caller looked both up). Its links are
    /// set here; `c.state` must be a valid state.
    pub fn insert(&mut self, mut c: Conn) -> Result<u32, Full> {
        let out = OutKey::of(&c);
        let inside = self.in_key(&c);
        self.can_insert(&out, &inside)?;
        let state = State::from_code(c.state).ok_or(Full::Table)?;
        let idx = if self.free != NIL {
            let i = self.free - 1;
            self.free = self.conns[i as usize].next_age;
            i
        } else {
            self.fresh += 1;
            self.fresh - 1
        };
        let bo = out.hash(&self.key) as usize & self.mask;
        let bi = inside.hash(&self.key) as usize & self.mask;
        c.next_out = self.heads_out[bo];
        c.next_in = self.heads_in[bi];
        c.prev_age = NIL;
        c.next_age = NIL;
        self.conns[idx as usize] = c;
        self.heads_out[bo] = idx + 1;
        self.heads_in[bi] = idx + 1;
        self.push_tail(state, idx);
        self.live += 1;
        Ok(idx)
    }

    /// Removes entry `idx` and returns it as it was.
    pub fn remove(&mut self, idx: u32) -> Conn {
        let c = self.conns[idx as usize];
        if let Some(state) = c.state() {
            self.unlink_age(state, idx);
            let bo = OutKey::of(&c).hash(&self.key) as usize & self.mask;
            let bi = self.in_key(&c).hash(&self.key) as usize & self.mask;
            self.unlink_chain(bo, idx, true);
            self.unlink_chain(bi, idx, false);
            self.live -= 1;
        }
        self.conns[idx as usize] = Conn { next_age: self.free, ..Conn::default() };
        self.free = idx + 1;
        c
    }

    fn unlink_chain(&mut self, bucket: usize, idx: u32, out: bool) {
        let target = idx + 1;
        let heads = if out { &mut *self.heads_out } else { &mut *self.heads_in };
        let first = heads[bucket];
        let next_of = |c: &Conn| if out { c.next_out } else { c.next_in };
        if first == target {
            heads[bucket] = next_of(&self.conns[idx as usize]);
            return;
        }
        let mut at = first;
        for _ in 0..MAX_CHAIN {
            let Some(i) = at.checked_sub(1) else { return };
            let next = next_of(&self.conns[i as usize]);
            if next == target {
                let after = next_of(&self.conns[idx as usize]);
                let c = &mut self.conns[i as usize];
                if out {
                    c.next_out = after;
                } else {
                    c.next_in = after;
                }
                return;
            }
            at = next;
        }
    }

    fn push_tail(&mut self, state: State, idx: u32) {
        let l = &mut self.lists[state.index()];
        let tail = l.tail;
        l.tail = idx + 1;
        if l.head == NIL {
            l.head = idx + 1;
        }
        l.len += 1;
        self.conns[idx as usize].prev_age = tail;
        self.conns[idx as usize].next_age = NIL;
        if let Some(t) = tail.checked_sub(1) {
            self.conns[t as usize].next_age = idx + 1;
        }
    }

    fn unlink_age(&mut self, state: State, idx: u32) {
        let (prev, next) = (self.conns[idx as usize].prev_age, self.conns[idx as usize].next_age);
        let l = &mut self.lists[state.index()];
        match prev.checked_sub(1) {
            Some(p) => self.conns[p as usize].next_age = next,
            None => l.head = next,
        }
        match next.checked_sub(1) {
            Some(n) => self.conns[n as usize].prev_age = prev,
            None => l.tail = prev,
        }
        l.len -= 1;
    }

    /// A packet refreshed entry `idx`: it is now in `state`, last seen `now`.
    pub fn touch(&mut self, idx: u32, state: State, now: u64) {
        if let Some(old) = self.conns[idx as usize].state() {
            self.unlink_age(old, idx);
        }
        let c = &mut self.conns[idx as usize];
        c.state = state as u8;
        c.last_seen = now;
        self.push_tail(state, idx);
    }

    /// Changes an entry's flags (FIN bits), nothing else.
    pub fn set_flags(&mut self, idx: u32, flags: u8) {
        self.conns[idx as usize].flags = flags;
    }

    /// True if entry `idx` has outlived its state's timeout at `now`.
    pub fn expired(&self, idx: u32, now: u64) -> bool {
        let c = &self.conns[idx as usize];
        c.state().is_some_and(|s| now.saturating_sub(c.last_seen) >= s.timeout_ns())
    }

    /// The oldest expired entry, if any (each list's head is its oldest).
    pub fn first_expired(&self, now: u64) -> Option<u32> {
        self.lists.iter().filter_map(|l| l.head.checked_sub(1)).find(|&i| self.expired(i, now))
    }

    /// When the next entry expires (ns since boot), if any is live.
    pub fn next_deadline(&self) -> Option<u64> {
        State::ALL
            .iter()
            .filter_map(|s| {
                let h = self.lists[s.index()].head.checked_sub(1)?;
                Some(self.conns[h as usize].last_seen.saturating_add(s.timeout_ns()))
            })
            .min()
    }

    /// The entry to evict to make room: the least recently active entry of
    /// the lowest tier that has one; a tier-3 (established) entry only if it
    /// has been idle for `min_idle` ns. `None`: nothing may be evicted.
    pub fn victim(&self, now: u64, min_idle: u64) -> Option<u32> {
        for tier in 0..TIERS {
            let oldest = State::ALL
                .iter()
                .filter(|s| s.tier() == tier)
                .filter_map(|s| self.lists[s.index()].head.checked_sub(1))
                .min_by_key(|&i| self.conns[i as usize].last_seen);
            if let Some(i) = oldest
                && (tier + 1 < TIERS || now.saturating_sub(self.conns[i as usize].last_seen) >= min_idle)
            {
                return Some(i);
            }
        }
        None
    }

    /// The least recently active closed (tier 0: TCP CLOSE, TIME_WAIT)
    /// entry of client `slot`, looking at no more than `scan` entries from
    /// the oldest end of each closed list. For a client at its connection
    /// limit, whose own finished connections may make room (as Linux
    /// reuses a TIME_WAIT entry for a new SYN) but nobody else's may.
    pub fn closed_of(&self, slot: u8, scan: u32) -> Option<u32> {
        State::ALL
            .iter()
            .filter(|s| s.tier() == 0)
            .filter_map(|s| {
                let mut at = self.lists[s.index()].head;
                for _ in 0..scan {
                    let i = at.checked_sub(1)?;
                    let c = &self.conns[i as usize];
                    if c.slot == slot {
                        return Some(i);
                    }
                    at = c.next_age;
                }
                None
            })
            .min_by_key(|&i| self.conns[i as usize].last_seen)
    }

    /// Checks every structural invariant (O(capacity); for tests and fuzzing):
    /// each live entry is found by both its keys, lists are consistent and
    /// sorted, counts add up, chains are bounded, free entries are zeroed.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut seen = 0u32;
        for (i, c) in self.conns.iter().enumerate().take(self.fresh as usize) {
            if c.state == 0 {
                continue;
            }
            seen += 1;
            if self.find_out(&OutKey::of(c)) != Some(i as u32) {
                return Err("live entry not found by its client-side key");
            }
            if self.find_in(&self.in_key(c)) != Some(i as u32) {
                return Err("live entry not found by its uplink-side key");
            }
        }
        if seen != self.live {
            return Err("live count differs from live entries");
        }
        let mut total = 0;
        for s in State::ALL {
            let l = &self.lists[s.index()];
            let (mut at, mut prev, mut n, mut last) = (l.head, NIL, 0u32, 0u64);
            while let Some(i) = at.checked_sub(1) {
                let c = self.conns.get(i as usize).ok_or("age link out of range")?;
                if c.state != s as u8 || c.prev_age != prev || c.last_seen < last {
                    return Err("age list broken or out of order");
                }
                n += 1;
                if n > self.live {
                    return Err("age list loops");
                }
                (prev, last, at) = (at, c.last_seen, c.next_age);
            }
            if prev != l.tail || n != l.len {
                return Err("age list tail or length wrong");
            }
            total += n;
        }
        if total != self.live {
            return Err("age lists do not hold every live entry");
        }
        for heads in [&*self.heads_out, &*self.heads_in] {
            for (b, _) in heads.iter().enumerate() {
                if self.chain_len(heads, b, core::ptr::eq(heads, &*self.heads_out)) > MAX_CHAIN {
                    return Err("chain too long");
                }
            }
        }
        Ok(())
    }
}
