//! Client vifs: discovered under `backend/vif`, checked, given a slot, and
//! announced to rules, NAT and netback.
//!
//! A watch event under `backend/vif` says where to look: the whole list
//! (`backend/vif`), one frontend's devices (`backend/vif/<domid>`), or one
//! device (a key we read, or the device directory itself). Each device's
//! keys are read in one transaction, so they are seen as the toolstack
//! wrote them together. A device is announced up only if every key is
//! well-formed, `frontend-id` and `handle` match the path, `frontend` names
//! the matching frontend directory, and `online` is `1`.
//!
//! A slot is reused only after every listener was told the vif went down,
//! and a read that comes back for a slot reused meanwhile (the slot's
//! generation changed) is ignored.

use heapless::{Deque, Vec};
use moat_component::{Fault, Instant, MsgTx, Status};
use moat_control::{ClientEvent, NetbackCtl, Vif};
use moat_xen::xenstore::{Names, Path, PathBuf};
use moat_xen::xs_wire::XsdError;

use crate::Origin;
use crate::jobs::{Fail, Job, MAX_OPS, Op, OpKind};
use crate::parse;
use crate::system::Task;

/// Slots in the vif table.
pub const MAX_VIFS: usize = 64;
/// Frontends waiting to have their devices listed.
const SCAN_QUEUE: usize = 16;
/// The keys read for each device, in this order.
pub const KEYS: [&str; 7] = ["frontend-id", "handle", "mac", "ip", "online", "frontend", "mtu"];
/// Outputs told about each vif: rules, NAT, netback.
const OUTPUTS: u8 = 3;
const ALL_TOLD: u8 = (1 << OUTPUTS) - 1;

/// What a vif is announced with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Info {
    mac: [u8; 6],
    ipv4: [u8; 4],
    ipv6: Option<[u8; 16]>,
    mtu: u16,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    used: bool,
    epoch: u16,
    fid: u16,
    devid: u32,
    /// Keys may have changed: read them.
    dirty: bool,
    reading: bool,
    /// The vif vanished: free the slot once everyone was told.
    gone: bool,
    /// What listeners should believe: up with this, or down.
    up: Option<Info>,
    /// Outputs that were told "up" (bit per output).
    told: u8,
}

impl Slot {
    /// Its keys should be read now: changed, not being read, and (if it was
    /// withdrawn) every listener has heard that first.
    fn wants_read(&self) -> bool {
        self.used && !self.gone && self.dirty && !self.reading && !(self.up.is_none() && self.told != 0)
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    invalid: u64,
    table_full: u64,
    bad_name: u64,
    announced: u64,
    withdrawn: u64,
    read_failed: u64,
}

/// The vif table.
pub struct Vifs {
    slots: [Slot; MAX_VIFS],
    max: usize,
    rescan_all: bool,
    /// A full listing found more frontends than the scan queue holds:
    /// list again once the queue is empty and continue after this one.
    cursor: Option<u16>,
    /// A listing of `backend/vif` is in flight (one at a time, so the
    /// cursor it continues from is the one it was asked with).
    listing: bool,
    scan: Deque<u16, SCAN_QUEUE>,
    next_epoch: u16,
    counts: Counts,
}

fn components<'a>(p: &Path<'a>) -> impl Iterator<Item = &'a [u8]> {
    p.as_bytes().split(|b| *b == b'/')
}

impl Vifs {
    /// A table for at most `max` vifs.
    pub fn new(max: u8) -> Self {
        Vifs {
            slots: [Slot::default(); MAX_VIFS],
            max: usize::from(max).min(MAX_VIFS),
            rescan_all: false,
            cursor: None,
            listing: false,
            scan: Deque::new(),
            next_epoch: 1,
            counts: Counts::default(),
        }
    }

    fn find(&self, fid: u16, devid: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.used && !s.gone && s.fid == fid && s.devid == devid)
    }

    fn queue_scan(&mut self, fid: u16) {
        if !self.scan.iter().any(|f| *f == fid) && self.scan.push_back(fid).is_err() {
            // Too much at once: list everything again (from the start)
            // once the queue has drained.
            self.rescan_all = true;
            self.cursor = None;
        }
    }

    fn vanish(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.gone = true;
        s.dirty = false;
        if s.up.take().is_some() {
            self.counts.withdrawn += 1;
        }
        if s.told == 0 {
            s.used = false;
        }
    }

    /// The `backend/vif` watch fired for `path`.
    pub fn on_event(&mut self, path: &Path<'_>) {
        let mut parts = components(path).skip(2);
        let Some(fid) = parts.next() else {
            self.rescan_all = true;
            return;
        };
        let Some(fid) = parse::number::<u16>(fid) else {
            self.counts.bad_name += 1;
            return;
        };
        let Some(devid) = parts.next() else {
            self.queue_scan(fid);
            return;
        };
        let Some(devid) = parse::number::<u32>(devid) else {
            self.counts.bad_name += 1;
            return;
        };
        let key = parts.next();
        match self.find(fid, devid) {
            Some(i) if key.is_none_or(|k| KEYS.iter().any(|w| w.as_bytes() == k)) => self.slots[i].dirty = true,
            Some(_) => {} // a key we do not read (netback's own, hotplug status, …)
            None => self.queue_scan(fid),
        }
    }

    /// `backend/vif` was listed. Frontends are scanned in ascending order,
    /// a queue's worth per listing, so any number of them is covered in
    /// bounded rounds.
    pub fn frontends_listed(&mut self, names: &Names<'_>) {
        let after = self.cursor;
        let mut batch: Vec<u16, SCAN_QUEUE> = Vec::new();
        let mut more = false;
        for n in names.iter() {
            let Some(fid) = parse::number::<u16>(n) else {
                self.counts.bad_name += 1;
                continue;
            };
            if after.is_some_and(|c| fid <= c) || batch.contains(&fid) {
                continue;
            }
            if batch.is_full() {
                more = true;
                if fid > *batch.last().expect("full") {
                    continue;
                }
                batch.pop();
            }
            let at = batch.iter().position(|b| *b > fid).unwrap_or(batch.len());
            batch.insert(at, fid).expect("room was made");
        }
        self.cursor = if more { batch.last().copied() } else { None };
        for fid in batch {
            self.queue_scan(fid);
        }
        for i in 0..MAX_VIFS {
            let s = self.slots[i];
            if s.used && !s.gone && !names.iter().any(|n| parse::number::<u16>(n) == Some(s.fid)) {
                self.vanish(i);
            }
        }
    }

    /// `backend/vif/<fid>` was listed.
    pub fn devices_listed(&mut self, fid: u16, names: &Names<'_>) {
        for n in names.iter() {
            let Some(devid) = parse::number::<u32>(n) else {
                self.counts.bad_name += 1;
                continue;
            };
            match self.find(fid, devid) {
                Some(i) => {
                    if self.slots[i].up.is_none() {
                        self.slots[i].dirty = true;
                    }
                }
                None => match self.slots[..self.max].iter().position(|s| !s.used) {
                    Some(i) => {
                        let epoch = self.next_epoch;
                        self.next_epoch = self.next_epoch.wrapping_add(1).max(1);
                        self.slots[i] = Slot { used: true, epoch, fid, devid, dirty: true, ..Slot::default() };
                    }
                    None => self.counts.table_full += 1,
                },
            }
        }
        for i in 0..MAX_VIFS {
            let s = self.slots[i];
            if s.used && !s.gone && s.fid == fid && !names.iter().any(|n| parse::number::<u32>(n) == Some(s.devid)) {
                self.vanish(i);
            }
        }
    }

    /// A listing job ended (its names, if any, were already handled).
    pub fn list_done(&mut self, fid: Option<u16>, result: Result<(), Fail>) {
        if fid.is_none() {
            self.listing = false;
        }
        match (fid, result) {
            (_, Ok(())) => {}
            // Nothing there (yet): every vif under it is gone.
            (None, Err(Fail::Store(XsdError::Enoent))) => {
                for i in 0..MAX_VIFS {
                    if self.slots[i].used && !self.slots[i].gone {
                        self.vanish(i);
                    }
                }
            }
            (Some(fid), Err(Fail::Store(XsdError::Enoent))) => {
                for i in 0..MAX_VIFS {
                    if self.slots[i].used && !self.slots[i].gone && self.slots[i].fid == fid {
                        self.vanish(i);
                    }
                }
            }
            // A slow store: list again (paced by the deadline that failed).
            (None, Err(f)) if f.is_transient() => self.rescan_all = true,
            (Some(fid), Err(f)) if f.is_transient() => self.queue_scan(fid),
            // Refused or disconnected: wait for the next watch event.
            (_, Err(_)) => self.counts.read_failed += 1,
        }
    }

    /// A device's keys came back.
    pub fn read_done(&mut self, slot: u8, epoch: u16, ops: &[Op], result: Result<(), Fail>) {
        let i = usize::from(slot);
        let Some(s) = self.slots.get_mut(i).filter(|s| s.used && s.epoch == epoch) else { return };
        s.reading = false;
        if s.gone {
            return;
        }
        let (fid, devid) = (s.fid, s.devid);
        let now = match result {
            Err(f) if f.is_transient() => {
                s.dirty = true;
                return;
            }
            // Clean disconnect: announced clients stay as they are.
            Err(Fail::Disconnected) => return,
            // Refused or too big: down (fail closed) until the keys change.
            Err(_) => {
                self.counts.read_failed += 1;
                None
            }
            Ok(()) if ops.iter().all(|o| !o.found) => {
                self.vanish(i);
                return;
            }
            Ok(()) => check(fid, devid, ops).unwrap_or_else(|()| {
                self.counts.invalid += 1;
                None
            }),
        };
        let s = &mut self.slots[i];
        match (s.up, now) {
            (Some(a), Some(b)) if a == b => {}
            (None, Some(b)) if s.told == 0 => s.up = Some(b),
            (None, Some(_)) => s.dirty = true, // still telling listeners it went down
            (Some(_), _) => {
                // Changed or went offline: down first; a change comes back up
                // after everyone heard.
                s.up = None;
                s.dirty = now.is_some();
                self.counts.withdrawn += 1;
            }
            (None, None) => {}
        }
    }

    /// The next discovery job, if any.
    pub fn next_job(&mut self, retries: u8, deadline: Instant) -> Option<Job<Origin>> {
        if self.max == 0 {
            return None;
        }
        if let Some(fid) = self.scan.pop_front() {
            let mut p = PathBuf::<32>::parse(b"backend/vif").ok()?;
            p.push_u32(u32::from(fid)).ok()?;
            let op = Op::new(OpKind::Directory, p.path().ok()?)?;
            return Some(Job::single(Origin::Task(Task::ListDevices(fid)), op, deadline));
        }
        if (self.rescan_all || self.cursor.is_some()) && !self.listing {
            self.rescan_all = false;
            self.listing = true;
            let op = Op::new(OpKind::Directory, Path::new(b"backend/vif").ok()?)?;
            return Some(Job::single(Origin::Task(Task::ListFrontends), op, deadline));
        }
        let i = self.slots.iter().position(Slot::wants_read)?;
        let s = &mut self.slots[i];
        s.dirty = false;
        s.reading = true;
        let mut ops: Vec<Op, MAX_OPS> = Vec::new();
        for key in KEYS {
            let mut p = PathBuf::<64>::parse(b"backend/vif").ok()?;
            p.push_u32(u32::from(s.fid)).ok()?.push_u32(s.devid).ok()?.push(key.as_bytes()).ok()?;
            ops.push(Op::new(OpKind::Read, p.path().ok()?)?).ok()?;
        }
        Some(Job::transaction(Origin::Task(Task::ReadVif(i as u8, s.epoch)), ops, retries, deadline))
    }

    /// True if [`next_job`](Self::next_job) has something to start. (A
    /// changed vif is re-read only once its withdrawal went out, which
    /// happens after this call's jobs were scheduled: the caller must come
    /// back for it, or the re-read waits for an unrelated wakeup.)
    pub fn has_job(&self) -> bool {
        self.max != 0
            && (!self.scan.is_empty()
                || ((self.rescan_all || self.cursor.is_some()) && !self.listing)
                || self.slots.iter().any(Slot::wants_read))
    }

    /// Tells listeners what changed, at most `budget` messages; true if
    /// anything went out.
    pub fn deliver(
        &mut self,
        rules: &mut MsgTx,
        nat: &mut MsgTx,
        netback: &mut MsgTx,
        budget: usize,
    ) -> Result<bool, Fault> {
        let mut sent = 0;
        let mut scratch = [0u8; 128];
        for i in 0..MAX_VIFS {
            let s = self.slots[i];
            if !s.used {
                continue;
            }
            let slot = i as u8;
            for k in 0..OUTPUTS {
                let bit = 1 << k;
                let ok = match (s.up, s.told & bit != 0) {
                    (Some(info), false) => {
                        let tx = [&mut *rules, &mut *nat, &mut *netback];
                        let done = up(tx, k, slot, &s, info, &mut scratch)?;
                        if done {
                            self.slots[i].told |= bit;
                            if self.slots[i].told == ALL_TOLD {
                                self.counts.announced += 1;
                            }
                        }
                        done
                    }
                    (None, true) => {
                        let tx = [&mut *rules, &mut *nat, &mut *netback];
                        let done = down(tx, k, slot, &s, &mut scratch)?;
                        if done {
                            self.slots[i].told &= !bit;
                        }
                        done
                    }
                    _ => continue,
                };
                if !ok {
                    return Ok(sent > 0);
                }
                sent += 1;
                if sent >= budget {
                    return Ok(true);
                }
            }
            let s = &mut self.slots[i];
            if s.gone && s.told == 0 {
                s.used = false;
            }
        }
        Ok(sent > 0)
    }

    /// True if listeners still have to be told something.
    pub fn pending(&self) -> bool {
        self.slots.iter().any(|s| s.used && ((s.up.is_some() && s.told != ALL_TOLD) || (s.up.is_none() && s.told != 0)))
    }

    /// Counters.
    pub fn status(&self, out: &mut dyn Status) {
        out.put("vif.up", self.slots.iter().filter(|s| s.used && s.up.is_some()).count() as u64);
        out.put("vif.known", self.slots.iter().filter(|s| s.used).count() as u64);
        out.put("vif.announced", self.counts.announced);
        out.put("vif.withdrawn", self.counts.withdrawn);
        out.put("vif.invalid", self.counts.invalid);
        out.put("vif.table_full", self.counts.table_full);
        out.put("vif.bad_name", self.counts.bad_name);
        out.put("vif.read_failed", self.counts.read_failed);
    }
}

fn up(tx: [&mut MsgTx; 3], k: u8, slot: u8, s: &Slot, info: Info, scratch: &mut [u8]) -> Result<bool, Fault> {
    let [rules, nat, netback] = tx;
    let ev = ClientEvent::Up { slot, ipv4: info.ipv4, ipv6: info.ipv6, mac: info.mac };
    match k {
        0 => rules.send(&ev, scratch),
        1 => nat.send(&ev, scratch),
        _ => netback.send(
            &NetbackCtl::VifUp(Vif {
                slot,
                frontend_id: s.fid,
                devid: s.devid,
                mac: info.mac,
                ipv4: info.ipv4,
                ipv6: info.ipv6,
                mtu: info.mtu,
            }),
            scratch,
        ),
    }
}

fn down(tx: [&mut MsgTx; 3], k: u8, slot: u8, s: &Slot, scratch: &mut [u8]) -> Result<bool, Fault> {
    let [rules, nat, netback] = tx;
    match k {
        0 => rules.send(&ClientEvent::Down { slot }, scratch),
        1 => nat.send(&ClientEvent::Down { slot }, scratch),
        _ => netback.send(&NetbackCtl::VifDown { slot, frontend_id: s.fid, devid: s.devid }, scratch),
    }
}

/// Checks a device's keys (in [`KEYS`] order). `Ok(None)`: well-formed
/// but not online.
fn check(fid: u16, devid: u32, ops: &[Op]) -> Result<Option<Info>, ()> {
    let val = |i: usize| ops.get(i).filter(|o| o.found).map(|o| &o.value[..]);
    let need = |i: usize| val(i).ok_or(());
    if parse::number::<u16>(need(0)?) != Some(fid) || parse::number::<u32>(need(1)?) != Some(devid) {
        return Err(());
    }
    let mac = parse::mac(need(2)?).ok_or(())?;
    let (ipv4, ipv6) = parse::ip(need(3)?).ok_or(())?;
    let mut want = PathBuf::<64>::parse(b"/local/domain").map_err(|_| ())?;
    want.push_u32(u32::from(fid)).map_err(|_| ())?.push(b"device").map_err(|_| ())?;
    want.push(b"vif").map_err(|_| ())?.push_u32(devid).map_err(|_| ())?;
    if need(5)? != want.as_bytes() {
        return Err(());
    }
    let mtu = parse::mtu(val(6)).ok_or(())?;
    match val(4) {
        Some(b"1") => Ok(Some(Info { mac, ipv4, ipv6, mtu })),
        Some(b"0") | None => Ok(None),
        Some(_) => Err(()),
    }
}
