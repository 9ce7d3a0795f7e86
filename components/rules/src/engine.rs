//! Everything the rules component decides, without its rings: clients,
//! staging and swapping policies, judging packets, re-checking connections.
//!
//! Two policies and two compiled tables live in state ports; one pair is
//! active, the other is where the next version is staged and compiled. A
//! commit flips `active` — one store, between two packets — so a packet is
//! judged by exactly one complete version. Per-rule hit counters belong to
//! the active version and restart with each.

use core::fmt::Write;

use moat_component::Status;
use moat_control::ClientEvent;
use moat_control::rules::{FlowKey, InterVm, L4, RulesControl, slots};
use moat_net::meta::Verdict;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::compile::{NONE, Scratch, Tables, wide};
use crate::hosts::HostTable;
use crate::lang::{Action, Addr, Dst, RuleError, ShowAddr};
use crate::policy::{ENTRY_SLOTS, Entry, Ident, MAX_RULES, NameId, PolicyStore, StageError};
use moat_control::rules::DropMode;

/// Client slots the component tracks (`Iface::MAX_CLIENTS`, rounded up).
pub const SLOTS: usize = 256;
const MAX_CLIENTS: usize = moat_net::meta::Iface::MAX_CLIENTS as usize;

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct SlotRec {
    ipv4: [u8; 4],
    ipv6: [u8; 16],
    up: u8,
    has6: u8,
    entry: [u8; 2],
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct BindRec {
    ipv4: [u8; 4],
    len: u8,
    name: [u8; crate::policy::MAX_CLIENT_NAME],
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct AddrSlot {
    w: [u32; 4],
    family: u32,
    slot: u32,
}

/// Clients, their names and an address index, for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ClientTable {
    slots: [SlotRec; SLOTS],
    binds: [BindRec; SLOTS],
    index: [AddrSlot; 2 * SLOTS],
    n_index: u32,
}

impl ClientTable {
    fn bound_name(&self, ipv4: [u8; 4]) -> Option<&str> {
        let b = self.binds.iter().find(|b| b.len != 0 && b.ipv4 == ipv4)?;
        core::str::from_utf8(b.name.get(..usize::from(b.len))?).ok()
    }

    fn rebuild_index(&mut self) {
        let mut n = 0;
        for (i, s) in self.slots.iter().enumerate().filter(|(_, s)| s.up == 1) {
            let w4 = compile_words(Addr::V4(s.ipv4));
            self.index[n] = AddrSlot { w: w4, family: 4, slot: i as u32 };
            n += 1;
            if s.has6 == 1 {
                self.index[n] = AddrSlot { w: compile_words(Addr::V6(s.ipv6)), family: 6, slot: i as u32 };
                n += 1;
            }
        }
        self.index[..n].sort_unstable_by_key(|a| (a.family, a.w));
        self.n_index = n as u32;
    }

    fn is_client(&self, a: Addr) -> bool {
        let (f, _) = wide(a);
        let key = (u32::from(f), compile_words(a));
        let idx = &self.index[..(self.n_index as usize).min(2 * SLOTS)];
        idx.binary_search_by(|x| (x.family, x.w).cmp(&key)).is_ok()
    }
}

fn compile_words(a: Addr) -> [u32; 4] {
    let v = wide(a).1;
    [(v >> 96) as u32, (v >> 64) as u32, (v >> 32) as u32, v as u32]
}

/// Hit counters of the active policy, for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Hits {
    rule: [u64; MAX_RULES],
    policy: [u64; ENTRY_SLOTS],
}

/// The state ports, borrowed.
pub struct State<'s> {
    /// Two policies: active and staging.
    pub policies: &'s mut [PolicyStore],
    /// Their compiled tables.
    pub tables: &'s mut [Tables],
    /// Compile scratch.
    pub scratch: &'s mut Scratch,
    /// `dsthost` addresses.
    pub hosts: &'s mut HostTable,
    /// Clients.
    pub clients: &'s mut ClientTable,
    /// Hit counters.
    pub hits: &'s mut Hits,
}

/// Why a packet got its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Rule number `0` of the policy's rule list.
    Rule(u16),
    /// No rule matched; entry `0`'s policy applied.
    Policy(u16),
    /// The source address is not the client's.
    Spoofed,
    /// The slot has no client.
    UnknownClient,
    /// Client-to-client traffic, dropped by the policy's settings.
    InterVm,
}

/// What one control message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Part of a staged policy.
    Staged,
    /// A rule failed its client's entry closed (the staging goes on).
    RuleFailed(RuleError),
    /// A new version is active.
    Committed(u32),
    /// Names' addresses or a client name changed.
    Updated,
}

#[derive(Clone, Copy, Default)]
struct Stage {
    open: bool,
    keep: bool,
    version: u32,
    entry: Option<usize>,
    broken: Option<StageError>,
}

#[derive(Default)]
struct Counters {
    verdicts: [u64; 5],
    spoofed: u64,
    unknown_client: u64,
    inter_vm: u64,
    swaps: u64,
    rejected: u64,
    last_reject: u8,
    rule_errors: u64,
    host_errors: u64,
    bad_client_events: u64,
}

/// The rules component's decisions.
pub struct Engine<'s> {
    s: State<'s>,
    active: usize,
    drop: DropMode,
    inter_vm: InterVm,
    stage: Stage,
    epoch: u32,
    changed: [u8; 32],
    changed_pending: bool,
    n: Counters,
}

impl<'s> Engine<'s> {
    /// Starts with an empty policy (everything dropped) over zeroed or stale
    /// state.
    pub fn new(s: State<'s>) -> Result<Self, &'static str> {
        if s.policies.len() < 2 || s.tables.len() < 2 {
            return Err("rules state: two policies and two tables needed");
        }
        let e = Engine {
            s,
            active: 0,
            drop: DropMode::Reject,
            inter_vm: InterVm::Drop,
            stage: Stage::default(),
            epoch: 0,
            changed: [0; 32],
            changed_pending: false,
            n: Counters::default(),
        };
        // A fresh start forgets whatever an earlier run left in the state
        // ports (a restarted component must not trust it).
        for p in e.s.policies.iter_mut() {
            p.zero();
        }
        for t in e.s.tables.iter_mut() {
            t.zero();
        }
        e.s.hosts.zero();
        e.s.clients.zero();
        e.s.hits.zero();
        e.s.policies[0].clear(0);
        e.s.tables[0].compile(&e.s.policies[0], e.s.hosts, e.s.scratch).map_err(|_| "rules state: empty policy")?;
        Ok(e)
    }

    /// The active policy.
    pub fn policy(&self) -> &PolicyStore {
        &self.s.policies[self.active]
    }

    /// The active compiled tables.
    pub fn tables(&self) -> &Tables {
        &self.s.tables[self.active]
    }

    /// The name addresses.
    pub fn hosts(&self) -> &HostTable {
        self.s.hosts
    }

    /// Version of the active policy.
    pub fn version(&self) -> u32 {
        self.policy().version()
    }

    /// Counts changes of judgement (swaps, name addresses, client names).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The entry client `slot` is judged by, if it is up.
    pub fn entry_of(&self, slot: u8) -> Option<usize> {
        let s = self.s.clients.slots.get(usize::from(slot)).filter(|s| s.up == 1)?;
        Some(usize::from(u16::from_le_bytes(s.entry)))
    }

    // ---- clients ---------------------------------------------------------

    /// A client came or went.
    pub fn client_event(&mut self, ev: &ClientEvent) {
        match *ev {
            ClientEvent::Up { slot, ipv4, ipv6, .. } if usize::from(slot) < MAX_CLIENTS => {
                let rec = &mut self.s.clients.slots[usize::from(slot)];
                *rec =
                    SlotRec { ipv4, ipv6: ipv6.unwrap_or([0; 16]), up: 1, has6: ipv6.is_some() as u8, entry: [0; 2] };
                let e = self.entry_for(self.active, usize::from(slot));
                self.s.clients.slots[usize::from(slot)].entry = (e as u16).to_le_bytes();
            }
            ClientEvent::Down { slot } if usize::from(slot) < MAX_CLIENTS => {
                self.s.clients.slots[usize::from(slot)] = SlotRec::new_zeroed();
            }
            _ => {
                self.n.bad_client_events += 1;
                return;
            }
        }
        self.s.clients.rebuild_index();
    }

    /// The entry of policy `which` a client matches: by address first, then
    /// by a name bound to its IPv4 address, else the default entry.
    fn entry_for(&self, which: usize, slot: usize) -> usize {
        let p = &self.s.policies[which];
        let s = &self.s.clients.slots[slot];
        let by_addr = (1..p.entry_count()).find(|&i| {
            p.entry(i).is_some_and(|e| e.ident.ipv4 == Some(s.ipv4) || (s.has6 == 1 && e.ident.ipv6 == Some(s.ipv6)))
        });
        let by_name = || {
            let name = self.s.clients.bound_name(s.ipv4)?;
            (1..p.entry_count()).find(|&i| p.entry(i).is_some_and(|e| e.ident.name == Some(name)))
        };
        by_addr.or_else(by_name).unwrap_or(0)
    }

    // ---- control ---------------------------------------------------------

    /// Applies one control message.
    pub fn control(&mut self, msg: &RulesControl<'_>) -> Result<Applied, StageError> {
        let r = self.control_inner(msg);
        // A staging message that fails spoils the staged policy; the others
        // (addresses, names) fail on their own.
        let staging = matches!(
            msg,
            RulesControl::Settings { .. }
                | RulesControl::Default { .. }
                | RulesControl::Client { .. }
                | RulesControl::Rule { .. }
        );
        if let (Err(e), true, true) = (r, staging, self.stage.open) {
            self.stage.broken.get_or_insert(e);
        }
        r
    }

    fn staged(&mut self) -> Result<&mut PolicyStore, StageError> {
        if !self.stage.open {
            return Err(StageError::NotStaging);
        }
        Ok(&mut self.s.policies[1 - self.active])
    }

    fn control_inner(&mut self, msg: &RulesControl<'_>) -> Result<Applied, StageError> {
        match *msg {
            RulesControl::Begin { version, keep } => {
                let (a, b) = self.s.policies.split_at_mut(1);
                let (active, staged) = if self.active == 0 { (&a[0], &mut b[0]) } else { (&b[0], &mut a[0]) };
                if keep {
                    staged.copy_from(active);
                    staged.set_version(version);
                } else {
                    staged.clear(version);
                }
                self.stage = Stage { open: true, keep, version, entry: None, broken: None };
                Ok(Applied::Staged)
            }
            RulesControl::Settings { drop, inter_vm, ref dns } => {
                let settings = crate::policy::Settings { drop, inter_vm, dns: dns.clone() };
                self.staged()?.set_settings(&settings);
                Ok(Applied::Staged)
            }
            RulesControl::Default { policy } => {
                self.staged()?.begin_default(policy);
                self.stage.entry = Some(0);
                Ok(Applied::Staged)
            }
            RulesControl::Client { ipv4, ipv6, name, policy } => {
                let keep = self.stage.keep;
                let i = self.staged()?.begin_client(Ident { ipv4, ipv6, name }, policy, keep)?;
                self.stage.entry = Some(i);
                Ok(Applied::Staged)
            }
            RulesControl::Rule { text } => {
                if !self.stage.open {
                    return Err(StageError::NotStaging);
                }
                if self.stage.broken.is_some() {
                    return Ok(Applied::Staged);
                }
                let entry = self.stage.entry.ok_or(StageError::NoEntry)?;
                match self.staged()?.push_rule(entry, text)? {
                    Ok(()) => Ok(Applied::Staged),
                    Err(e) => {
                        self.n.rule_errors += 1;
                        Ok(Applied::RuleFailed(e))
                    }
                }
            }
            RulesControl::Commit { version } => self.commit(version),
            RulesControl::Abort => {
                self.stage = Stage::default();
                Ok(Applied::Staged)
            }
            RulesControl::HostAddrs { name, ref addrs } => self.host_addrs(name, addrs),
            RulesControl::Name { ipv4, name } => self.bind_name(ipv4, name),
        }
    }

    fn commit(&mut self, version: u32) -> Result<Applied, StageError> {
        let stage = core::mem::take(&mut self.stage);
        let result = if !stage.open {
            Err(StageError::NotStaging)
        } else if let Some(e) = stage.broken {
            Err(e)
        } else if version != stage.version {
            Err(StageError::Version)
        } else {
            let next = 1 - self.active;
            let s = &mut self.s;
            s.tables[next].compile(&s.policies[next], s.hosts, s.scratch).map(|()| next)
        };
        let next = match result {
            Ok(next) => next,
            Err(e) => {
                self.n.rejected += 1;
                self.n.last_reject = e as u8;
                return Err(e);
            }
        };
        // Which clients' judgement changes, before switching.
        let settings_same = {
            let (old, new) = (self.s.policies[self.active].settings(), self.s.policies[next].settings());
            old.inter_vm == new.inter_vm && old.dns == new.dns
        };
        // memo[old][new]: 0 not compared yet, 1 differ, 2 same.
        let mut memo = [[0u8; ENTRY_SLOTS]; ENTRY_SLOTS];
        for slot in 0..MAX_CLIENTS {
            if self.s.clients.slots[slot].up != 1 {
                continue;
            }
            let old_e = usize::from(u16::from_le_bytes(self.s.clients.slots[slot].entry)).min(ENTRY_SLOTS - 1);
            let new_e = self.entry_for(next, slot);
            self.s.clients.slots[slot].entry = (new_e as u16).to_le_bytes();
            let m = &mut memo[old_e][new_e];
            if *m == 0 {
                let p = &self.s.policies;
                *m = 1 + same_entry(&p[self.active], old_e, &p[next], new_e) as u8;
            }
            let same = settings_same && *m == 2;
            if !same {
                slots::set(&mut self.changed, slot as u8);
                self.changed_pending = true;
            }
        }
        self.active = next;
        let settings = self.s.policies[next].settings();
        (self.drop, self.inter_vm) = (settings.drop, settings.inter_vm);
        self.s.hits.rule = [0; MAX_RULES];
        self.s.hits.policy = [0; ENTRY_SLOTS];
        self.epoch = self.epoch.wrapping_add(1);
        self.n.swaps += 1;
        Ok(Applied::Committed(version))
    }

    fn host_addrs(&mut self, name: &str, addrs: &[Addr]) -> Result<Applied, StageError> {
        let before = self.s.hosts.get(name);
        let (active, staged, open) =
            (&self.s.policies[self.active], &self.s.policies[1 - self.active], self.stage.open);
        let in_use = |n: &str| active.find_name(n).is_some() || (open && staged.find_name(n).is_some());
        if let Err(e) = self.s.hosts.set(name, addrs, in_use) {
            self.n.host_errors += 1;
            return Err(match e {
                crate::hosts::HostError::BadName => StageError::BadIdent,
                crate::hosts::HostError::Full => StageError::TooManyNames,
            });
        }
        if self.s.hosts.get(name) == before {
            return Ok(Applied::Updated);
        }
        let s = &mut self.s;
        s.tables[self.active].index_names(&s.policies[self.active], s.hosts)?;
        if let Some(id) = self.policy().find_name(name) {
            self.mark_entries(|p, e| p.rules_of(e).any(|r| r.dst == Dst::Host(id)));
        }
        Ok(Applied::Updated)
    }

    fn bind_name(&mut self, ipv4: [u8; 4], name: &str) -> Result<Applied, StageError> {
        if !name.is_empty() && !crate::policy::valid_client_name(name) {
            return Err(StageError::BadIdent);
        }
        let binds = &mut self.s.clients.binds;
        let slot = binds.iter().position(|b| b.len != 0 && b.ipv4 == ipv4);
        let slot = match slot.or_else(|| binds.iter().position(|b| b.len == 0)) {
            Some(i) => i,
            None if name.is_empty() => return Ok(Applied::Updated),
            None => return Err(StageError::TooManyEntries),
        };
        let mut rec = BindRec::new_zeroed();
        if !name.is_empty() {
            rec.ipv4 = ipv4;
            rec.len = name.len() as u8;
            rec.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        binds[slot] = rec;
        for slot in 0..MAX_CLIENTS {
            let s = self.s.clients.slots[slot];
            if s.up != 1 || s.ipv4 != ipv4 {
                continue;
            }
            let (old, new) = (usize::from(u16::from_le_bytes(s.entry)), self.entry_for(self.active, slot));
            self.s.clients.slots[slot].entry = (new as u16).to_le_bytes();
            if !same_entry(self.policy(), old, self.policy(), new) {
                slots::set(&mut self.changed, slot as u8);
                self.changed_pending = true;
                self.epoch = self.epoch.wrapping_add(1);
            }
        }
        Ok(Applied::Updated)
    }

    /// Marks the slots whose entry satisfies `f` as changed.
    fn mark_entries(&mut self, f: impl Fn(&PolicyStore, usize) -> bool) {
        let mut hit = [false; ENTRY_SLOTS];
        for (e, h) in hit.iter_mut().enumerate().take(self.policy().entry_count()) {
            *h = f(self.policy(), e);
        }
        let mut any = false;
        for slot in 0..MAX_CLIENTS {
            let s = &self.s.clients.slots[slot];
            if s.up == 1 && hit.get(usize::from(u16::from_le_bytes(s.entry))) == Some(&true) {
                slots::set(&mut self.changed, slot as u8);
                any = true;
            }
        }
        if any {
            self.changed_pending = true;
            self.epoch = self.epoch.wrapping_add(1);
        }
    }

    /// The slots to tell the NAT about since the last call, if any.
    pub fn take_changed(&mut self) -> Option<[u8; 32]> {
        if !self.changed_pending {
            return None;
        }
        self.changed_pending = false;
        Some(core::mem::take(&mut self.changed))
    }

    /// True if some change has not been told to the NAT yet.
    pub fn changed_pending(&self) -> bool {
        self.changed_pending
    }

    /// Puts back what [`take_changed`](Self::take_changed) returned (the
    /// message did not fit its ring).
    pub fn untake_changed(&mut self, map: [u8; 32]) {
        for (a, b) in self.changed.iter_mut().zip(map) {
            *a |= b;
        }
        self.changed_pending = true;
    }

    // ---- packets ---------------------------------------------------------

    /// Judges one outbound packet of client `slot` from `src`, counting it.
    pub fn judge(&mut self, slot: u8, src: Addr, key: &FlowKey) -> (Verdict, Why) {
        let (v, why) = match self.s.clients.slots.get(usize::from(slot)).filter(|s| s.up == 1) {
            None => (Verdict::Drop, Why::UnknownClient),
            Some(s) if !own_addr(s, src) => (Verdict::Drop, Why::Spoofed),
            Some(s) => self.decide(usize::from(u16::from_le_bytes(s.entry)), key),
        };
        match why {
            Why::Rule(g) => self.s.hits.rule[usize::from(g) % MAX_RULES] += 1,
            Why::Policy(e) => self.s.hits.policy[usize::from(e) % ENTRY_SLOTS] += 1,
            Why::Spoofed => self.n.spoofed += 1,
            Why::UnknownClient => self.n.unknown_client += 1,
            Why::InterVm => self.n.inter_vm += 1,
        }
        self.n.verdicts[v as usize] += 1;
        (v, why)
    }

    /// True if the current rules refuse a new packet of `key` from client
    /// `slot` (the NAT's re-check; nothing is counted).
    pub fn denies(&self, slot: u8, key: &FlowKey) -> bool {
        match self.entry_of(slot) {
            None => true,
            Some(e) => matches!(self.decide(e, key).0, Verdict::Drop | Verdict::Reject),
        }
    }

    fn decide(&self, entry: usize, key: &FlowKey) -> (Verdict, Why) {
        if self.inter_vm == InterVm::Drop && self.s.clients.is_client(key.dst) {
            return (Verdict::Drop, Why::InterVm);
        }
        let t = self.tables();
        let g = t.lookup(entry, key);
        let (action, why) =
            if g == NONE { (t.policy(entry), Why::Policy(entry as u16)) } else { (t.action(g), Why::Rule(g)) };
        let verdict = match action {
            Action::Accept if is_dns_query(t, key) => Verdict::Dns,
            Action::Accept => Verdict::Accept,
            Action::Drop if self.drop == DropMode::Silent => Verdict::Drop,
            Action::Drop => Verdict::Reject,
        };
        (verdict, why)
    }

    // ---- status ----------------------------------------------------------

    /// Reports counters (see the crate documentation for names).
    pub fn status(&self, out: &mut dyn Status) {
        let n = &self.n;
        for (name, v) in ["none", "accept", "drop", "reject", "dns"].iter().zip(n.verdicts) {
            put(out, format_args!("verdict.{name}"), v);
        }
        out.put("drop.spoofed", n.spoofed);
        out.put("drop.unknown_client", n.unknown_client);
        out.put("drop.inter_vm", n.inter_vm);
        out.put("policy.version", u64::from(self.version()));
        out.put("policy.epoch", u64::from(self.epoch));
        out.put("policy.swaps", n.swaps);
        out.put("policy.rejected", n.rejected);
        out.put("policy.last_reject", u64::from(n.last_reject));
        out.put("policy.rule_errors", n.rule_errors);
        out.put("policy.staging", u64::from(self.stage.open));
        out.put("error.host_addrs", n.host_errors);
        out.put("error.client_event", n.bad_client_events);
        let p = self.policy();
        out.put("policy.entries", p.entry_count() as u64);
        out.put("policy.rules", p.rule_count() as u64);
        let (nodes, segs) = self.tables().usage();
        out.put("policy.nodes", u64::from(nodes));
        out.put("policy.segments", u64::from(segs));
        let mut unresolved = 0;
        for id in 0..p.name_count() {
            let Some(name) = p.name(NameId(id as u16)) else { continue };
            let k = self.s.hosts.get(name).len();
            unresolved += (k == 0) as u64;
            put(out, format_args!("dsthost.{name}.addrs"), k as u64);
        }
        out.put("dsthost.unresolved", unresolved);
        for i in 0..p.entry_count() {
            let Some(e) = p.entry(i) else { continue };
            let label = Label(&e);
            for (k, g) in e.rules.clone().enumerate() {
                put(out, format_args!("hits.{label}.{k}"), self.s.hits.rule[g]);
            }
            put(out, format_args!("hits.{label}.policy"), self.s.hits.policy[i]);
            if let Some((rule, err)) = e.error {
                put(out, format_args!("error.{label}.rule"), u64::from(rule));
                put(out, format_args!("error.{label}.field"), u64::from(err.key.map_or(0, |k| k.code())));
                put(out, format_args!("error.{label}.kind"), err.kind as u64);
            }
        }
    }
}

fn own_addr(s: &SlotRec, src: Addr) -> bool {
    match src {
        Addr::V4(a) => a == s.ipv4,
        Addr::V6(a) => s.has6 == 1 && a == s.ipv6,
    }
}

fn is_dns_query(t: &Tables, key: &FlowKey) -> bool {
    (key.proto == 6 || key.proto == 17) && key.l4 == L4::Port(53) && t.is_dns(key.dst)
}

/// True if entry `a` of `pa` and entry `b` of `pb` judge every packet alike
/// (same rules in the same order, names compared by text, same policy).
fn same_entry(pa: &PolicyStore, a: usize, pb: &PolicyStore, b: usize) -> bool {
    let (Some(ea), Some(eb)) = (pa.entry(a), pb.entry(b)) else { return false };
    if ea.policy != eb.policy || ea.rules.len() != eb.rules.len() {
        return false;
    }
    ea.rules.zip(eb.rules).all(|(i, j)| match (pa.rule(i), pb.rule(j)) {
        (Some(x), Some(y)) => {
            fn name(p: &PolicyStore, d: Dst<NameId>) -> Option<&str> {
                match d {
                    Dst::Host(n) => p.name(n),
                    _ => None,
                }
            }
            x.map_host(|_| ()) == y.map_host(|_| ()) && name(pa, x.dst) == name(pb, y.dst)
        }
        _ => false,
    })
}

/// How an entry is named in status keys: its VM name, else its address,
/// else `default`.
struct Label<'a, 'b>(&'a Entry<'b>);

impl core::fmt::Display for Label<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let id = &self.0.ident;
        match (id.name, id.ipv4, id.ipv6) {
            (Some(n), _, _) => f.write_str(n),
            (None, Some(a), _) => write!(f, "{}", ShowAddr(Addr::V4(a))),
            (None, None, Some(a)) => write!(f, "{}", ShowAddr(Addr::V6(a))),
            _ => f.write_str("default"),
        }
    }
}

/// Formats a status key into a stack buffer (keys longer than it are cut).
fn put(out: &mut dyn Status, key: core::fmt::Arguments<'_>, v: u64) {
    let mut s = heapless::String::<320>::new();
    let _ = s.write_fmt(key);
    out.put(&s, v);
}

#[cfg(any(test, feature = "std"))]
mod owned {
    extern crate std;
    use std::boxed::Box;

    use zerocopy::FromZeros;

    use super::*;

    /// State on the heap, for an engine outside a component (tests,
    /// benchmarks, host tools).
    pub struct OwnedState {
        policies: Box<[PolicyStore]>,
        tables: Box<[Tables]>,
        scratch: Box<Scratch>,
        hosts: Box<HostTable>,
        clients: Box<ClientTable>,
        hits: Box<Hits>,
    }

    impl Default for OwnedState {
        fn default() -> Self {
            Self::new()
        }
    }

    impl OwnedState {
        /// Allocates zeroed state (about 760 KiB).
        pub fn new() -> Self {
            fn many<T: FromZeros>(n: usize) -> Box<[T]> {
                <[T]>::new_box_zeroed_with_elems(n).expect("allocation")
            }
            fn one<T: FromZeros>() -> Box<T> {
                T::new_box_zeroed().expect("allocation")
            }
            OwnedState { policies: many(2), tables: many(2), scratch: one(), hosts: one(), clients: one(), hits: one() }
        }

        /// A fresh engine over this state (whatever it held before is
        /// forgotten).
        pub fn engine(&mut self) -> Engine<'_> {
            let state = State {
                policies: &mut self.policies,
                tables: &mut self.tables,
                scratch: &mut self.scratch,
                hosts: &mut self.hosts,
                clients: &mut self.clients,
                hits: &mut self.hits,
            };
            Engine::new(state).expect("two policies and two tables")
        }
    }
}

#[cfg(any(test, feature = "std"))]
pub use owned::OwnedState;
