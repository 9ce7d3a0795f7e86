//! The NAT's half of the connection re-check (the exchange is described in
//! [`moat_control::rules`]): when the rules say a client's rules changed,
//! name that client's connections to them in [`NatToRules::Check`] batches
//! and remove the ones their answer
//! ([`RulesToNat::Denied`](moat_control::RulesToNat::Denied)) refuses.
//!
//! * **Walks.** A `Changed` marks its slots *pending*. One slot at a time is
//!   walked through the table in bounded steps (at most `scan` entries per
//!   call, like the client-down sweep), up to the table's high-water mark.
//!   Each live connection of the slot is named in the batch being filled:
//!   its original destination, protocol and port / ICMP request type
//!   ([`flow_key`]). A full batch (or the walk's end) makes it ready to send.
//! * **Bounded memory.** At most [`IN_FLIGHT`] batches exist at a time
//!   (filling, waiting for ring space, or waiting for their answer): at most
//!   `IN_FLIGHT × CHECK_BATCH` = 64 connections named, a few hundred bytes
//!   here. When all are taken the walk waits for answers.
//! * **Which connection a batch named.** Connection flag bit
//!   `CHECK_SHIFT + k` ([`crate::conn::flags`]) marks the connections batch
//!   `k` names. Removing an entry zeroes it, and a new entry starts without
//!   the bit, so an answer reaches exactly the connections its batch named:
//!   one removed meanwhile, or created after the batch was filled in the
//!   same table entry, is left alone. The bit is cleared when the batch ends.
//! * **Epochs.** Each slot remembers the epoch of the last `Changed` that
//!   named it. An answer judged at an older epoch is *superseded*: nothing
//!   is removed, because that `Changed` restarted the slot's walk (or marked
//!   it pending), so the same connections are named again and judged by the
//!   newer rules. Overlapping `Changed` messages likewise just restart or
//!   queue walks: "check again".
//! * **Broken answers.** A `Denied` for no batch waiting for one, for
//!   another slot than its batch's, or with bits past the batch's end is
//!   counted (`recheck.bad`) and ignored. The rules answer every `Check` in
//!   order, so an answer for a later batch means the earlier ones will never
//!   be answered: they end as *lost* (`recheck.lost`), as does a batch
//!   unanswered after [`ANSWER_TIMEOUT_NS`], and their slots are walked
//!   again. A `Changed` naming slots that cannot exist is counted and its
//!   other slots applied (checking too much is harmless; too little is not).

use heapless::Vec;
use moat_control::rules::{Addr, CHECK_BATCH, FlowKey, L4, NatToRules, slots};
use moat_net::proto;

use crate::clients::{Clients, SLOTS};
use crate::conn::{Conn, flags as cf};
use crate::counters::{C, Counters};
use crate::table::Table;

/// Batches that may exist at once: one per free connection flag bit.
pub const IN_FLIGHT: usize = 4;
/// A batch unanswered this long (ns) is given up and its slot walked again.
pub const ANSWER_TIMEOUT_NS: u64 = 10 * 1_000_000_000;
/// A batch position whose connection is gone (its entry was reused and
/// named again in the same batch).
const DEAD: u32 = u32::MAX;

const _: () = assert!(cf::CHECK_SHIFT as usize + IN_FLIGHT == 8, "one flag bit per batch");
const _: () = assert!(CHECK_BATCH <= 16, "Denied carries a u16 bitmap");

/// The flag bit of batch `k`.
pub const fn bit(k: usize) -> u8 {
    1 << (cf::CHECK_SHIFT as usize + k)
}

/// What the rules judge of a connection: the destination the client
/// addressed (not the DNS server a query was redirected to), the protocol,
/// and the port or ICMP request type.
pub fn flow_key(c: &Conn) -> FlowKey {
    let l4 = match c.proto {
        proto::TCP | proto::UDP => L4::Port(c.remote_port),
        proto::ICMP => L4::Icmp(c.remote_port as u8),
        _ => L4::None,
    };
    FlowKey { dst: Addr::V4(c.remote_ip), proto: c.proto, l4 }
}

/// `a` comes after `b` in wrapping sequence order.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Free,
    /// Being filled by the walk (the current batch).
    Filling,
    /// Complete, waiting for ring space (the current batch).
    Ready,
    /// Sent, waiting for its answer.
    Sent,
}

#[derive(Clone, Copy, Debug)]
struct Batch {
    phase: Phase,
    slot: u8,
    number: u32,
    sent_at: u64,
    len: usize,
    named: [u32; CHECK_BATCH],
}

impl Default for Batch {
    fn default() -> Self {
        Batch { phase: Phase::Free, slot: 0, number: 0, sent_at: 0, len: 0, named: [DEAD; CHECK_BATCH] }
    }
}

#[derive(Clone, Copy, Debug)]
struct Walk {
    slot: u8,
    at: u32,
}

/// An accepted answer: the connections to remove (then
/// [`Recheck::release`] the batch).
pub struct Verdicts {
    /// The batch answered.
    pub batch: usize,
    /// Entries to remove; [`u32::MAX`] for none.
    pub remove: [u32; CHECK_BATCH],
}

/// The re-check bookkeeping.
pub struct Recheck {
    pending: [u8; 32],
    told: [u8; 32],
    epochs: [u32; SLOTS],
    walk: Option<Walk>,
    batches: [Batch; IN_FLIGHT],
    /// The batch being filled or waiting to be sent.
    cur: Option<usize>,
    /// Its flows, in position order.
    flows: Vec<FlowKey, CHECK_BATCH>,
    next_number: u32,
    version: u32,
    epoch: u32,
}

impl Default for Recheck {
    fn default() -> Self {
        Recheck {
            pending: [0; 32],
            told: [0; 32],
            epochs: [0; SLOTS],
            walk: None,
            batches: [Batch::default(); IN_FLIGHT],
            cur: None,
            flows: Vec::new(),
            next_number: 0,
            version: 0,
            epoch: 0,
        }
    }
}

impl Recheck {
    /// Policy version and epoch of the last `Changed`.
    pub fn rules_version(&self) -> (u32, u32) {
        (self.version, self.epoch)
    }

    /// Batches waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.batches.iter().filter(|b| b.phase == Phase::Sent).count()
    }

    /// Slots waiting to be walked, and the one being walked.
    pub fn pending(&self) -> usize {
        self.pending.iter().map(|b| b.count_ones() as usize).sum::<usize>() + usize::from(self.walk.is_some())
    }

    /// True if nothing is pending, walked, or waiting.
    pub fn idle(&self) -> bool {
        self.pending() == 0 && self.batches.iter().all(|b| b.phase == Phase::Free)
    }

    /// `RulesToNat::Changed`.
    pub fn changed(&mut self, version: u32, epoch: u32, map: &[u8; 32], n: &mut Counters) {
        n.bump(C::RecheckChanged);
        (self.version, self.epoch) = (version, epoch);
        let mut bad = false;
        for s in 0..=u8::MAX {
            if !slots::contains(map, s) {
                continue;
            }
            if usize::from(s) >= SLOTS {
                bad = true;
                continue;
            }
            self.epochs[usize::from(s)] = epoch;
            slots::set(&mut self.told, s);
            match &mut self.walk {
                Some(w) if w.slot == s => w.at = 0,
                _ => slots::set(&mut self.pending, s),
            }
        }
        if bad {
            n.bump(C::RecheckBad);
        }
    }

    /// The next batch to send, walking at most `*scan` entries (decremented)
    /// to fill it. `None`: nothing to send now (nothing to check, every
    /// batch taken, or `*scan` used up). Call [`sent`](Self::sent) once it
    /// went out; until then the same batch comes back.
    pub fn next(
        &mut self,
        t: &mut Table,
        clients: &Clients,
        now: u64,
        scan: &mut u32,
        n: &mut Counters,
    ) -> Option<NatToRules> {
        self.expire(t, now, n);
        // Each round returns, or ends a walk (a pending bit is consumed), or
        // makes the current batch ready (returned next round).
        for _ in 0..=2 * SLOTS + 2 {
            if let Some(k) = self.cur
                && self.batches[k].phase == Phase::Ready
            {
                let b = &self.batches[k];
                return Some(NatToRules::Check { slot: b.slot, batch: b.number, flows: self.flows.clone() });
            }
            let w = match self.walk {
                Some(w) => w,
                None => {
                    let slot = self.next_slot(clients)?;
                    Walk { slot, at: 0 }
                }
            };
            self.walk = Some(w);
            if !clients.get(w.slot).is_some_and(|c| c.up) {
                self.abort_walk(t);
                continue;
            }
            let k = match self.cur {
                Some(k) => k,
                None => {
                    let k = self.batches.iter().position(|b| b.phase == Phase::Free)?;
                    let number = self.next_number;
                    self.next_number = number.wrapping_add(1);
                    self.batches[k] = Batch { phase: Phase::Filling, slot: w.slot, number, ..Batch::default() };
                    self.cur = Some(k);
                    k
                }
            };
            if *scan == 0 {
                return None;
            }
            let end = t.used();
            let mut at = w.at;
            while *scan > 0 && at < end && self.batches[k].len < CHECK_BATCH {
                *scan -= 1;
                let c = *t.get(at);
                if c.state != 0 && c.slot == w.slot && c.flags & bit(k) == 0 {
                    self.name(k, at, &c, t);
                }
                at += 1;
            }
            let done = at >= end;
            self.walk = if done { None } else { Some(Walk { slot: w.slot, at }) };
            let len = self.batches[k].len;
            if len == CHECK_BATCH || (done && len > 0) {
                self.batches[k].phase = Phase::Ready;
            } else if done {
                self.release(k, t);
            } else {
                return None;
            }
        }
        None
    }

    /// The batch [`next`](Self::next) returned went out at `now`.
    pub fn sent(&mut self, now: u64, n: &mut Counters) {
        let Some(k) = self.cur.take() else { return };
        let b = &mut self.batches[k];
        if b.phase != Phase::Ready {
            self.cur = Some(k);
            return;
        }
        b.phase = Phase::Sent;
        b.sent_at = now;
        n.bump(C::RecheckBatches);
        for _ in 0..b.len {
            n.bump(C::RecheckFlows);
        }
        self.flows.clear();
    }

    /// `RulesToNat::Denied`: the connections to remove, if the answer is
    /// sound and current.
    pub fn answer(
        &mut self,
        epoch: u32,
        slot: u8,
        number: u32,
        denied: u16,
        t: &mut Table,
        n: &mut Counters,
    ) -> Option<Verdicts> {
        let found = self.batches.iter().position(|b| b.phase == Phase::Sent && b.number == number);
        let Some(k) = found else {
            n.bump(C::RecheckBad);
            return None;
        };
        let b = self.batches[k];
        if b.slot != slot || u32::from(denied) >> b.len != 0 {
            n.bump(C::RecheckBad);
            return None;
        }
        for j in 0..IN_FLIGHT {
            if self.batches[j].phase == Phase::Sent && after(number, self.batches[j].number) {
                self.lose(j, t, n);
            }
        }
        if slots::contains(&self.told, slot) && after(self.epochs[usize::from(slot)], epoch) {
            n.bump(C::RecheckSuperseded);
            self.release(k, t);
            return None;
        }
        let mut remove = [DEAD; CHECK_BATCH];
        for (i, &idx) in b.named[..b.len].iter().enumerate() {
            if denied & (1 << i) != 0 && idx != DEAD && t.get(idx).flags & bit(k) != 0 {
                remove[i] = idx;
            }
        }
        Some(Verdicts { batch: k, remove })
    }

    /// Ends batch `k`: clears its flag bit from the connections it named
    /// that are still there.
    pub fn release(&mut self, k: usize, t: &mut Table) {
        let b = self.batches[k];
        for &idx in &b.named[..b.len] {
            if idx != DEAD {
                let f = t.get(idx).flags;
                if f & bit(k) != 0 {
                    t.set_flags(idx, f & !bit(k));
                }
            }
        }
        self.batches[k] = Batch::default();
        if self.cur == Some(k) {
            self.cur = None;
            self.flows.clear();
        }
    }

    /// When the oldest unanswered batch times out.
    pub fn deadline(&self) -> Option<u64> {
        let sent = self.batches.iter().filter(|b| b.phase == Phase::Sent);
        sent.map(|b| b.sent_at.saturating_add(ANSWER_TIMEOUT_NS)).min()
    }

    fn expire(&mut self, t: &mut Table, now: u64, n: &mut Counters) {
        for k in 0..IN_FLIGHT {
            let b = &self.batches[k];
            if b.phase == Phase::Sent && now >= b.sent_at.saturating_add(ANSWER_TIMEOUT_NS) {
                self.lose(k, t, n);
            }
        }
    }

    /// Batch `k` will never be answered: end it and walk its slot again.
    fn lose(&mut self, k: usize, t: &mut Table, n: &mut Counters) {
        let slot = self.batches[k].slot;
        self.release(k, t);
        match &mut self.walk {
            Some(w) if w.slot == slot => w.at = 0,
            _ => slots::set(&mut self.pending, slot),
        }
        n.bump(C::RecheckLost);
    }

    /// Takes the lowest pending slot that has connections.
    fn next_slot(&mut self, clients: &Clients) -> Option<u8> {
        for s in 0..SLOTS as u8 {
            if slots::contains(&self.pending, s) {
                self.pending[usize::from(s / 8)] &= !(1 << (s % 8));
                if clients.get(s).is_some_and(|c| c.up && c.conns > 0) {
                    return Some(s);
                }
            }
        }
        None
    }

    /// The walked client went away: its connections go anyway.
    fn abort_walk(&mut self, t: &mut Table) {
        self.walk = None;
        if let Some(k) = self.cur
            && self.batches[k].phase == Phase::Filling
        {
            self.release(k, t);
        }
    }

    /// Names entry `idx` (connection `c`) in batch `k`.
    fn name(&mut self, k: usize, idx: u32, c: &Conn, t: &mut Table) {
        let b = &mut self.batches[k];
        // The entry lacks our bit, so if it is already named here, that
        // connection was removed and this is another one in its place.
        for p in &mut b.named[..b.len] {
            if *p == idx {
                *p = DEAD;
            }
        }
        b.named[b.len] = idx;
        b.len += 1;
        let _ = self.flows.push(flow_key(c));
        t.set_flags(idx, c.flags | bit(k));
    }

    /// Checks the bookkeeping against the table (O(capacity); tests and
    /// fuzzing): at most one current batch; a connection carries bit `k`
    /// only if batch `k` exists and names it; flows match the current batch.
    pub fn check(&self, t: &Table) -> Result<(), &'static str> {
        let current = self.batches.iter().filter(|b| matches!(b.phase, Phase::Filling | Phase::Ready)).count();
        match self.cur {
            Some(k) if current == 1 && matches!(self.batches[k].phase, Phase::Filling | Phase::Ready) => {
                if self.flows.len() != self.batches[k].len {
                    return Err("current batch and its flows differ");
                }
            }
            None if current == 0 => {}
            _ => return Err("current batch is not the one being filled"),
        }
        for i in 0..t.used() {
            let c = t.get(i);
            for (k, b) in self.batches.iter().enumerate() {
                if c.flags & bit(k) == 0 {
                    continue;
                }
                if c.state == 0 || b.phase == Phase::Free || !b.named[..b.len].contains(&i) {
                    return Err("a connection is marked by a batch that does not name it");
                }
                if c.slot != b.slot {
                    return Err("a batch names another client's connection");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_check_fits_the_components_frame_buffer() {
        let worst = FlowKey { dst: Addr::V4([255; 4]), proto: 255, l4: L4::Port(u16::MAX) };
        let flows = Vec::from_slice(&[worst; CHECK_BATCH]).unwrap();
        let m = NatToRules::Check { slot: 253, batch: u32::MAX, flows };
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert!(bytes.len() <= 256, "lib.rs encodes checks in 256 bytes: {}", bytes.len());
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(after(1, 0) && !after(0, 1) && !after(5, 5));
        assert!(after(2, u32::MAX), "2 comes after the wrap");
        assert!(!after(u32::MAX, 2));
    }

    #[test]
    fn flow_keys_name_what_the_client_addressed() {
        let c = Conn { remote_ip: [10, 139, 1, 1], remote_port: 53, proto: proto::UDP, ..Conn::default() };
        assert_eq!(flow_key(&c), FlowKey { dst: Addr::V4([10, 139, 1, 1]), proto: 17, l4: L4::Port(53) });
        let ping = Conn { remote_ip: [1, 1, 1, 1], remote_port: 8, proto: proto::ICMP, ..Conn::default() };
        assert_eq!(flow_key(&ping).l4, L4::Icmp(8));
        let gre = Conn { remote_ip: [1, 1, 1, 1], proto: 47, ..Conn::default() };
        assert_eq!(flow_key(&gre).l4, L4::None);
    }
}
