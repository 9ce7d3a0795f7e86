//! A policy as the rules component keeps it: settings, one entry per client
//! (plus the default entry for clients no entry names), each with its rules
//! in order and its `policy` action for when none matches.
//!
//! It lives in a state port, so it is plain bytes (`zerocopy`, alignment 1,
//! no padding) with fixed capacities, and every field is decoded defensively:
//! all-zero bytes are a valid, empty policy whose default entry drops
//! everything.
//!
//! Capacities (per policy):
//!
//! | what | most | why |
//! |---|---|---|
//! | client entries | [`MAX_ENTRIES`] (64) + the default | Qubes systems rarely have more VMs behind one firewall |
//! | rules, all entries together | [`MAX_RULES`] (2048) | one client may use 1000+ |
//! | distinct `dsthost` names | [`MAX_NAMES`] (64) | each needs resolving |
//! | client name length | [`MAX_CLIENT_NAME`] (31) | Qubes' limit for VM names |
//!
//! A policy is built by appending, the way control messages deliver it:
//! start an entry ([`PolicyStore::begin_default`],
//! [`PolicyStore::begin_client`]), push its rules, start the next. A rule
//! that does not parse *fails its entry closed*: its rules are dropped, its
//! action becomes drop, and the error is kept for the status.

use core::ops::Range;

use moat_control::rules::{DropMode, InterVm, MAX_DNS};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::lang::{self, Action, Addr, Dst, Key, Ports, Prefix, Proto, Rule, RuleError};

/// Most client entries in a policy (the default entry comes on top).
pub const MAX_ENTRIES: usize = 64;
/// Most rules in a policy, all entries together.
pub const MAX_RULES: usize = 2048;
/// Most distinct `dsthost` names in a policy.
pub const MAX_NAMES: usize = 64;
/// Longest Qubes VM name.
pub const MAX_CLIENT_NAME: usize = 31;

/// Entry slots: the default entry is number 0.
pub const ENTRY_SLOTS: usize = MAX_ENTRIES + 1;

/// A `dsthost` name, as an index into its policy's name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameId(pub u16);

/// The settings a policy carries besides its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How refused packets are refused.
    pub drop: DropMode,
    /// Client-to-client traffic.
    pub inter_vm: InterVm,
    /// What `specialtarget=dns` means.
    pub dns: heapless::Vec<Addr, MAX_DNS>,
}

impl Default for Settings {
    /// Qubes' defaults: reject, inter-VM dropped, DNS at 10.139.1.1 and .2.
    fn default() -> Self {
        let dns = heapless::Vec::from_slice(&[Addr::V4([10, 139, 1, 1]), Addr::V4([10, 139, 1, 2])]);
        Settings { drop: DropMode::Reject, inter_vm: InterVm::Drop, dns: dns.unwrap_or_default() }
    }
}

/// How a client is recognised; an entry matches a client if any identity
/// it gives is the client's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ident<'a> {
    /// IPv4 address.
    pub ipv4: Option<[u8; 4]>,
    /// IPv6 address.
    pub ipv6: Option<[u8; 16]>,
    /// Qubes VM name.
    pub name: Option<&'a str>,
}

impl Ident<'_> {
    fn overlaps(&self, o: &Ident<'_>) -> bool {
        fn same<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            a.is_some() && a == b
        }
        same(self.ipv4, o.ipv4) || same(self.ipv6, o.ipv6) || same(self.name, o.name)
    }
}

/// Qubes' rule for VM names: a letter, then letters, digits, `-`, `_`, `.`;
/// at most 31 characters.
pub fn valid_client_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CLIENT_NAME
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// One entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Who it is for (all `None` for the default entry).
    pub ident: Ident<'a>,
    /// Action when no rule matches.
    pub policy: Action,
    /// Its rules, as indices into the policy's rule list.
    pub rules: Range<usize>,
    /// The rule (by position among those given) that failed the entry, and why.
    pub error: Option<(u16, RuleError)>,
}

/// Why a staged policy cannot be used as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StageError {
    /// A message that needs staging arrived outside `Begin` … `Commit`.
    NotStaging = 1,
    /// A rule arrived before any entry was started.
    NoEntry,
    /// More than [`MAX_ENTRIES`] client entries.
    TooManyEntries,
    /// More than [`MAX_RULES`] rules.
    TooManyRules,
    /// More than [`MAX_NAMES`] `dsthost` names.
    TooManyNames,
    /// A client entry with no identity, or an invalid VM name.
    BadIdent,
    /// Two entries claim the same address or name.
    Conflict,
    /// `Commit` for another version than `Begin` started.
    Version,
    /// The compiled form would not fit its tables.
    Capacity,
}

// ---- storage -------------------------------------------------------------

const F_V4: u8 = 1;
const F_V6: u8 = 2;
const F_NAME: u8 = 4;
const F_FAILED: u8 = 8;

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct AddrRec {
    family: u8,
    b: [u8; 16],
}

impl AddrRec {
    fn of(a: Addr) -> Self {
        let mut b = [0; 16];
        match a {
            Addr::V4(v) => {
                b[..4].copy_from_slice(&v);
                AddrRec { family: 4, b }
            }
            Addr::V6(v) => AddrRec { family: 6, b: v },
        }
    }

    fn get(&self) -> Option<Addr> {
        match self.family {
            4 => Some(Addr::V4([self.b[0], self.b[1], self.b[2], self.b[3]])),
            6 => Some(Addr::V6(self.b)),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct SettingsRec {
    drop: u8,
    inter_vm: u8,
    ndns: u8,
    dns: [AddrRec; MAX_DNS],
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct EntryRec {
    ipv4: [u8; 4],
    ipv6: [u8; 16],
    name: [u8; MAX_CLIENT_NAME],
    name_len: u8,
    start: [u8; 2],
    len: [u8; 2],
    policy: u8,
    flags: u8,
    err_rule: [u8; 2],
    err_at: [u8; 2],
    err_key: u8,
    err_kind: u8,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct NameRec {
    len: u8,
    b: [u8; lang::MAX_HOST_LEN],
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
/// One stored rule (storage; opaque).
pub struct RuleRec {
    dst: [u8; 16],
    name: [u8; 2],
    lo: [u8; 2],
    hi: [u8; 2],
    action: u8,
    proto: u8,
    dst_kind: u8,
    dst_len: u8,
    flags: u8,
    icmp: u8,
}

const R_PORTS: u8 = 1;
const R_ICMP: u8 = 2;
const R_DNS: u8 = 4;

impl RuleRec {
    fn of(r: &Rule<NameId>) -> Self {
        let mut rec = RuleRec::new_zeroed();
        rec.action = (r.action == Action::Accept) as u8;
        rec.proto = match r.proto {
            None => 0,
            Some(Proto::Tcp) => 1,
            Some(Proto::Udp) => 2,
            Some(Proto::Icmp) => 3,
        };
        match r.dst {
            Dst::Any => {}
            Dst::Net(p) => {
                let a = AddrRec::of(p.addr());
                rec.dst_kind = a.family;
                rec.dst = a.b;
                rec.dst_len = p.len();
            }
            Dst::Host(NameId(n)) => {
                rec.dst_kind = 1;
                rec.name = n.to_le_bytes();
            }
        }
        if let Some(p) = r.ports {
            rec.flags |= R_PORTS;
            rec.lo = p.lo.to_le_bytes();
            rec.hi = p.hi.to_le_bytes();
        }
        if let Some(t) = r.icmp_type {
            rec.flags |= R_ICMP;
            rec.icmp = t;
        }
        if r.dns {
            rec.flags |= R_DNS;
        }
        rec
    }

    fn get(&self) -> Option<Rule<NameId>> {
        let proto = match self.proto {
            0 => None,
            1 => Some(Proto::Tcp),
            2 => Some(Proto::Udp),
            3 => Some(Proto::Icmp),
            _ => return None,
        };
        let dst = match self.dst_kind {
            0 => Dst::Any,
            1 => Dst::Host(NameId(u16::from_le_bytes(self.name))),
            f => Dst::Net(Prefix::new(AddrRec { family: f, b: self.dst }.get()?, self.dst_len)?),
        };
        let ports = (self.flags & R_PORTS != 0)
            .then_some(Ports { lo: u16::from_le_bytes(self.lo), hi: u16::from_le_bytes(self.hi) });
        Some(Rule {
            action: if self.action == 1 { Action::Accept } else { Action::Drop },
            proto,
            dst,
            ports,
            icmp_type: (self.flags & R_ICMP != 0).then_some(self.icmp),
            dns: self.flags & R_DNS != 0,
        })
    }
}

/// A whole policy in plain bytes, for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PolicyStore {
    version: [u8; 4],
    nentries: [u8; 2],
    nrules: [u8; 2],
    nnames: [u8; 2],
    settings: SettingsRec,
    entries: [EntryRec; ENTRY_SLOTS],
    names: [NameRec; MAX_NAMES],
    rules: [RuleRec; MAX_RULES],
}

fn get16(b: [u8; 2]) -> usize {
    usize::from(u16::from_le_bytes(b))
}

fn put16(n: usize) -> [u8; 2] {
    (n as u16).to_le_bytes()
}

impl PolicyStore {
    /// Empties the policy: Qubes default settings, a default entry that
    /// drops everything, no rules.
    pub fn clear(&mut self, version: u32) {
        self.version = version.to_le_bytes();
        self.nentries = put16(1);
        self.nrules = put16(0);
        self.nnames = put16(0);
        self.set_settings(&Settings::default());
        self.entries[0] = EntryRec::new_zeroed();
    }

    /// Becomes a copy of `other`.
    pub fn copy_from(&mut self, other: &PolicyStore) {
        self.as_mut_bytes().copy_from_slice(other.as_bytes());
    }

    /// The policy's version.
    pub fn version(&self) -> u32 {
        u32::from_le_bytes(self.version)
    }

    /// Sets the version.
    pub fn set_version(&mut self, v: u32) {
        self.version = v.to_le_bytes();
    }

    /// Its settings.
    pub fn settings(&self) -> Settings {
        let s = &self.settings;
        let mut dns = heapless::Vec::new();
        for a in s.dns.iter().take(usize::from(s.ndns)).filter_map(AddrRec::get) {
            let _ = dns.push(a);
        }
        Settings {
            drop: if s.drop == 1 { DropMode::Silent } else { DropMode::Reject },
            inter_vm: if s.inter_vm == 1 { InterVm::Rules } else { InterVm::Drop },
            dns,
        }
    }

    /// Replaces its settings.
    pub fn set_settings(&mut self, s: &Settings) {
        let mut rec = SettingsRec::new_zeroed();
        rec.drop = (s.drop == DropMode::Silent) as u8;
        rec.inter_vm = (s.inter_vm == InterVm::Rules) as u8;
        rec.ndns = s.dns.len() as u8;
        for (slot, a) in rec.dns.iter_mut().zip(&s.dns) {
            *slot = AddrRec::of(*a);
        }
        self.settings = rec;
    }

    /// Number of entries, the default entry (number 0) included.
    pub fn entry_count(&self) -> usize {
        get16(self.nentries).clamp(1, ENTRY_SLOTS)
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        get16(self.nrules).min(MAX_RULES)
    }

    /// Number of `dsthost` names.
    pub fn name_count(&self) -> usize {
        get16(self.nnames).min(MAX_NAMES)
    }

    /// Entry `i` (0 is the default entry).
    pub fn entry(&self, i: usize) -> Option<Entry<'_>> {
        if i >= self.entry_count() {
            return None;
        }
        let e = &self.entries[i];
        let name = (e.flags & F_NAME != 0)
            .then(|| core::str::from_utf8(e.name.get(..usize::from(e.name_len))?).ok())
            .flatten();
        let start = get16(e.start).min(self.rule_count());
        let end = (start + get16(e.len)).min(self.rule_count());
        let error = (e.flags & F_FAILED != 0).then(|| {
            let kind = lang::ErrorKind::from_code(e.err_kind).unwrap_or(lang::ErrorKind::Empty);
            let err = RuleError { key: Key::from_code(e.err_key), at: u16::from_le_bytes(e.err_at), kind };
            (u16::from_le_bytes(e.err_rule), err)
        });
        Some(Entry {
            ident: Ident {
                ipv4: (e.flags & F_V4 != 0).then_some(e.ipv4),
                ipv6: (e.flags & F_V6 != 0).then_some(e.ipv6),
                name,
            },
            policy: if e.policy == 1 { Action::Accept } else { Action::Drop },
            rules: start..end,
            error,
        })
    }

    /// Rule `i` of the policy (entries' ranges index this list).
    pub fn rule(&self, i: usize) -> Option<Rule<NameId>> {
        if i >= self.rule_count() {
            return None;
        }
        self.rules[i].get()
    }

    /// The text of name `id`.
    pub fn name(&self, id: NameId) -> Option<&str> {
        let n = self.names[..self.name_count()].get(usize::from(id.0))?;
        core::str::from_utf8(n.b.get(..usize::from(n.len))?).ok()
    }

    /// The id of `name`, if the policy uses it.
    pub fn find_name(&self, name: &str) -> Option<NameId> {
        (0..self.name_count()).map(|i| NameId(i as u16)).find(|&id| self.name(id) == Some(name))
    }

    /// Starts (or restarts, dropping its rules) the default entry.
    pub fn begin_default(&mut self, policy: Action) {
        self.restart(0, policy);
    }

    /// Starts the entry of a client and returns its number. With `replace`,
    /// an entry with exactly this identity is restarted in place; any other
    /// overlap with an existing entry is a [`StageError::Conflict`].
    pub fn begin_client(&mut self, ident: Ident<'_>, policy: Action, replace: bool) -> Result<usize, StageError> {
        if ident == Ident::default() || ident.name.is_some_and(|n| !valid_client_name(n)) {
            return Err(StageError::BadIdent);
        }
        for i in 1..self.entry_count() {
            let old = self.entry(i).map(|e| e.ident).unwrap_or_default();
            if old.overlaps(&ident) {
                if replace && old == ident {
                    self.restart(i, policy);
                    return Ok(i);
                }
                return Err(StageError::Conflict);
            }
        }
        let i = self.entry_count();
        if i >= ENTRY_SLOTS {
            return Err(StageError::TooManyEntries);
        }
        let mut e = EntryRec::new_zeroed();
        if let Some(a) = ident.ipv4 {
            e.ipv4 = a;
            e.flags |= F_V4;
        }
        if let Some(a) = ident.ipv6 {
            e.ipv6 = a;
            e.flags |= F_V6;
        }
        if let Some(n) = ident.name {
            e.name[..n.len()].copy_from_slice(n.as_bytes());
            e.name_len = n.len() as u8;
            e.flags |= F_NAME;
        }
        self.entries[i] = e;
        self.nentries = put16(i + 1);
        self.restart(i, policy);
        Ok(i)
    }

    /// Empties entry `i`'s rules, clears its error, sets its policy and
    /// moves it to the end of the rule list so rules can be appended.
    fn restart(&mut self, i: usize, policy: Action) {
        let (start, len) = (get16(self.entries[i].start), get16(self.entries[i].len));
        self.remove_rules(start, len);
        let start = put16(self.rule_count());
        let e = &mut self.entries[i];
        e.flags &= F_V4 | F_V6 | F_NAME;
        e.policy = (policy == Action::Accept) as u8;
        e.start = start;
        e.len = put16(0);
    }

    fn remove_rules(&mut self, start: usize, len: usize) {
        let n = self.rule_count();
        if len == 0 || start >= n {
            return;
        }
        let len = len.min(n - start);
        self.rules.copy_within(start + len..n, start);
        self.nrules = put16(n - len);
        for e in &mut self.entries[..get16(self.nentries).min(ENTRY_SLOTS)] {
            if get16(e.start) > start {
                e.start = put16(get16(e.start) - len);
            }
        }
    }

    /// Parses `text` and appends it to entry `i`, which must be the entry
    /// started last. A rule that does not parse fails the entry closed
    /// (`Ok(Err(..))`); a failed entry ignores further rules.
    pub fn push_rule(&mut self, i: usize, text: &str) -> Result<Result<(), RuleError>, StageError> {
        let e = self.entries.get(i).filter(|_| i < self.entry_count()).ok_or(StageError::NoEntry)?;
        if e.flags & F_FAILED != 0 {
            return Ok(Ok(()));
        }
        match lang::parse(text) {
            Ok(rule) => self.push_parsed(i, rule).map(Ok),
            Err(err) => {
                self.fail(i, err);
                Ok(Err(err))
            }
        }
    }

    fn fail(&mut self, i: usize, err: RuleError) {
        let (start, len) = (get16(self.entries[i].start), get16(self.entries[i].len));
        self.remove_rules(start, len);
        let e = &mut self.entries[i];
        e.flags |= F_FAILED;
        e.policy = 0;
        e.err_rule = (len as u16).to_le_bytes();
        e.err_at = err.at.to_le_bytes();
        e.err_key = err.key.map_or(0, Key::code);
        e.err_kind = err.kind as u8;
        e.len = put16(0);
    }

    /// Appends a parsed rule to entry `i` (the entry started last).
    pub fn push_parsed(&mut self, i: usize, rule: Rule<&str>) -> Result<(), StageError> {
        if i >= self.entry_count() {
            return Err(StageError::NoEntry);
        }
        let n = self.rule_count();
        if get16(self.entries[i].start) + get16(self.entries[i].len) != n {
            return Err(StageError::NoEntry);
        }
        if n >= MAX_RULES {
            return Err(StageError::TooManyRules);
        }
        let id = match rule.dst {
            Dst::Host(h) => self.intern(h)?,
            _ => NameId(0),
        };
        let rule = rule.map_host(|_| id);
        self.rules[n] = RuleRec::of(&rule);
        self.nrules = put16(n + 1);
        let len = get16(self.entries[i].len);
        self.entries[i].len = put16(len + 1);
        Ok(())
    }

    fn intern(&mut self, h: &str) -> Result<NameId, StageError> {
        if let Some(id) = self.find_name(h) {
            return Ok(id);
        }
        if self.name_count() >= MAX_NAMES {
            self.collect_names();
        }
        let n = self.name_count();
        if n >= MAX_NAMES || !lang::valid_host(h) {
            return Err(StageError::TooManyNames);
        }
        let rec = &mut self.names[n];
        rec.len = h.len() as u8;
        rec.b[..h.len()].copy_from_slice(h.as_bytes());
        self.nnames = put16(n + 1);
        Ok(NameId(n as u16))
    }

    /// Drops names no rule uses any more (entries replaced while staging
    /// from a kept policy leave some behind), renumbering the rest.
    fn collect_names(&mut self) {
        let mut remap = [u16::MAX; MAX_NAMES];
        for r in &self.rules[..self.rule_count()] {
            if r.dst_kind == 1 {
                let id = usize::from(u16::from_le_bytes(r.name));
                if id < MAX_NAMES {
                    remap[id] = 0;
                }
            }
        }
        let mut next = 0;
        for (old, slot) in remap.iter_mut().enumerate().take(self.name_count()) {
            if *slot == 0 {
                self.names[next] = self.names[old];
                *slot = next as u16;
                next += 1;
            }
        }
        self.nnames = put16(next);
        let n = self.rule_count();
        for r in &mut self.rules[..n] {
            if r.dst_kind == 1 {
                let id = usize::from(u16::from_le_bytes(r.name));
                r.name = remap.get(id).copied().unwrap_or(u16::MAX).to_le_bytes();
            }
        }
    }

    /// The rules of entry `i`, decoded (undecodable ones skipped).
    pub fn rules_of(&self, i: usize) -> impl Iterator<Item = Rule<NameId>> + '_ {
        let range = self.entry(i).map_or(0..0, |e| e.rules);
        range.filter_map(|r| self.rule(r))
    }
}
