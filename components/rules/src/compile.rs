//! The compiled classifier: first-match semantics, without walking the rules.
//!
//! Every rule has exactly one destination, so the rules of a client entry are
//! grouped into *nodes* by destination: one node for rules without one (and
//! one for `specialtarget=dns` rules without one), one per distinct network,
//! one per `dsthost` name. Inside a node the rules differ only in protocol and
//! port (or ICMP type), so each node keeps, per protocol bucket (TCP, UDP,
//! ICMP, other), the port line cut into segments each labelled with the
//! *first* rule covering it, and the first rule with no port condition (for
//! packets whose port is unknown: other protocols, later fragments).
//!
//! A packet then visits only the nodes whose destination contains its own:
//! networks are grouped by prefix length (one binary search per length the
//! entry uses), names through a sorted address → name index. Each visited
//! node answers with one binary search over its segments, and the smallest
//! rule number among the answers is the first rule that matches — the same
//! answer as walking the list ([`crate::reference`]), which the tests check.
//!
//! The cost per packet grows with the number of distinct prefix lengths and
//! the logarithm of the rules, not with the rules. Memory is linear: each rule
//! sits in one node and adds at most two segment boundaries per bucket.
//!
//! Addresses are compared as 128-bit numbers, IPv4 in the top 32 bits, so one
//! mask function serves both families.

use moat_control::rules::{FlowKey, L4, MAX_DNS};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::hosts::{HostTable, MAX_HOST_ADDRS};
use crate::lang::{Action, Addr, Dst, Proto, Rule};
use crate::policy::{ENTRY_SLOTS, MAX_NAMES, MAX_RULES, NameId, PolicyStore, StageError};

/// Most nodes: a plain and a DNS root per entry, and one per rule.
pub const MAX_NODES: usize = 2 * ENTRY_SLOTS + MAX_RULES;
/// Most segments: three buckets' worth per node, and two boundaries per
/// bucket a rule constrains (DNS rules constrain two).
pub const MAX_SEGS: usize = 3 * MAX_NODES + 4 * MAX_RULES;
/// Most (address, name) pairs in the name index.
pub const MAX_NAME_ADDRS: usize = MAX_NAMES * MAX_HOST_ADDRS;
/// "No rule" in rule-number fields.
pub const NONE: u16 = u16::MAX;

const NO_NODE: u32 = u32::MAX;
const TCP: usize = 0;
const UDP: usize = 1;
const ICMP: usize = 2;
const OTHER: usize = 3;
const BOUNDS: usize = 2 * MAX_RULES + 2;

// counts[] slots
const C_NODES: usize = 0;
const C_DIRS: usize = 1;
const C_SEGS: usize = 2;
const C_NAME_KEYS: usize = 3;
const C_NAME_ADDRS: usize = 4;
const C_DNS: usize = 5;
const C_ENTRIES: usize = 6;

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct EntryIx {
    root: [u32; 2],
    dir_start: u32,
    dir_len: u32,
    name_start: u32,
    name_len: u32,
    policy: u32,
}

/// Nodes of one (family, dns, prefix length) of an entry: `keys[start..start+len]`, sorted.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct Dir {
    start: u32,
    len: u32,
    plen: u8,
    family: u8,
    dns: u8,
    _pad: u8,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct Node {
    seg_off: [u32; 3],
    seg_len: [u16; 3],
    any: [u16; 4],
    _pad: u16,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct NameKey {
    name: u16,
    dns: u16,
    node: u32,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct NameAddr {
    w: [u32; 4],
    family: u16,
    name: u16,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
/// A segment of a port line (storage; opaque).
pub struct Seg {
    start: u16,
    rule: u16,
}

/// One compiled policy, for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Tables {
    // 8-byte aligned first; `_pad` makes the size a multiple of 8 (the
    // derive refuses padding, so a capacity change that needs another pad
    // fails to compile rather than silently).
    keys: [[u64; 2]; MAX_NODES],
    counts: [u32; 8],
    dns: [[u32; 5]; MAX_DNS],
    entries: [EntryIx; ENTRY_SLOTS],
    dirs: [Dir; MAX_NODES],
    nodes: [Node; MAX_NODES],
    name_keys: [NameKey; MAX_RULES],
    name_addrs: [NameAddr; MAX_NAME_ADDRS],
    acts: [u8; MAX_RULES],
    segs: [Seg; MAX_SEGS],
    _pad: u32,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
struct Work {
    w: [u32; 4],
    class: u8,
    family: u8,
    dns: u8,
    plen: u8,
    name: u16,
    rule: u16,
}

impl Work {
    fn node_key(&self) -> (u8, u8, u8, u8, [u32; 4], u16) {
        (self.class, self.family, self.dns, self.plen, self.w, self.name)
    }
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
/// Compile working memory (storage; opaque).
pub struct Paint {
    bounds: [u32; BOUNDS],
    next: [u32; BOUNDS],
    owner: [u16; BOUNDS],
}

/// Working memory for [`Tables::compile`], for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Scratch {
    work: [Work; MAX_RULES],
    paint: Paint,
}

/// An address as (family, 128-bit number with IPv4 in the top bits).
pub(crate) fn wide(a: Addr) -> (u8, u128) {
    match a {
        Addr::V4(b) => (4, u128::from(u32::from_be_bytes(b)) << 96),
        Addr::V6(b) => (6, u128::from_be_bytes(b)),
    }
}

fn top(plen: u8) -> u128 {
    if plen == 0 { 0 } else { u128::MAX << (128 - u32::from(plen.min(128))) }
}

fn words(v: u128) -> [u32; 4] {
    [(v >> 96) as u32, (v >> 64) as u32, (v >> 32) as u32, v as u32]
}

fn unwords(w: &[u32; 4]) -> u128 {
    u128::from(w[0]) << 96 | u128::from(w[1]) << 64 | u128::from(w[2]) << 32 | u128::from(w[3])
}

/// The protocol bucket of a packet.
fn bucket(proto: u8, family: u8) -> usize {
    match (proto, family) {
        (6, _) => TCP,
        (17, _) => UDP,
        (1, 4) | (58, 6) => ICMP,
        _ => OTHER,
    }
}

/// A `specialtarget=dns` rule that can never match (Linux skips it): ports
/// other than 53, or ICMP.
pub(crate) fn dead<N>(r: &Rule<N>) -> bool {
    r.dns && (r.ports.is_some_and(|p| (p.lo, p.hi) != (53, 53)) || r.proto == Some(Proto::Icmp))
}

/// Whether rule `r` can match packets of bucket `b`, and if so on which
/// port/type interval (`None`: any, including unknown).
fn applies<N>(r: &Rule<N>, b: usize) -> Option<Option<(u32, u32)>> {
    let proto_ok = match r.proto {
        None => true,
        Some(Proto::Tcp) => b == TCP,
        Some(Proto::Udp) => b == UDP,
        Some(Proto::Icmp) => b == ICMP,
    };
    if !proto_ok {
        return None;
    }
    if r.dns {
        return (b == TCP || b == UDP).then_some(Some((53, 53)));
    }
    if let Some(p) = r.ports {
        return (b == TCP || b == UDP).then_some(Some((u32::from(p.lo), u32::from(p.hi))));
    }
    if let Some(t) = r.icmp_type {
        return (b == ICMP).then_some(Some((u32::from(t), u32::from(t))));
    }
    Some(None)
}

impl Tables {
    /// Compiles `p`, with name addresses from `hosts`, replacing whatever
    /// these tables held.
    pub fn compile(&mut self, p: &PolicyStore, hosts: &HostTable, s: &mut Scratch) -> Result<(), StageError> {
        self.counts = [0; 8];
        let settings = p.settings();
        for (slot, a) in self.dns.iter_mut().zip(&settings.dns) {
            let (f, v) = wide(*a);
            let w = words(v);
            *slot = [u32::from(f), w[0], w[1], w[2], w[3]];
        }
        self.counts[C_DNS] = settings.dns.len() as u32;
        self.index_names(p, hosts)?;
        for e in 0..p.entry_count() {
            self.compile_entry(p, e, s)?;
        }
        self.counts[C_ENTRIES] = p.entry_count() as u32;
        Ok(())
    }

    /// Rebuilds only the address → name index (a name's addresses changed).
    pub fn index_names(&mut self, p: &PolicyStore, hosts: &HostTable) -> Result<(), StageError> {
        let mut n = 0;
        for id in 0..p.name_count() {
            let Some(name) = p.name(NameId(id as u16)) else { continue };
            for a in hosts.get(name) {
                let slot = self.name_addrs.get_mut(n).ok_or(StageError::Capacity)?;
                let (f, v) = wide(a);
                *slot = NameAddr { w: words(v), family: u16::from(f), name: id as u16 };
                n += 1;
            }
        }
        self.name_addrs[..n].sort_unstable_by_key(|a| (a.family, a.w, a.name));
        self.counts[C_NAME_ADDRS] = n as u32;
        Ok(())
    }

    fn compile_entry(&mut self, p: &PolicyStore, e: usize, s: &mut Scratch) -> Result<(), StageError> {
        let Some(entry) = p.entry(e) else { return Ok(()) };
        let mut ix = EntryIx {
            root: [NO_NODE; 2],
            dir_start: self.counts[C_DIRS],
            dir_len: 0,
            name_start: self.counts[C_NAME_KEYS],
            name_len: 0,
            policy: (entry.policy == Action::Accept) as u32,
        };
        let mut nw = 0;
        for g in entry.rules {
            let Some(rule) = p.rule(g) else { continue };
            self.acts[g] = (rule.action == Action::Accept) as u8;
            if dead(&rule) {
                continue;
            }
            let mut w = Work { w: [0; 4], class: 0, family: 0, dns: rule.dns as u8, plen: 0, name: 0, rule: g as u16 };
            match rule.dst {
                Dst::Any => {}
                Dst::Net(pfx) => {
                    let (f, v) = wide(pfx.addr());
                    (w.class, w.family, w.plen, w.w) = (1, f, pfx.len(), words(v & top(pfx.len())));
                }
                Dst::Host(NameId(n)) => (w.class, w.name) = (2, n),
            }
            s.work[nw] = w;
            nw += 1;
        }
        s.work[..nw].sort_unstable_by_key(|w| (w.node_key(), w.rule));
        let mut i = 0;
        while i < nw {
            let head = s.work[i];
            let j = i + s.work[i..nw].iter().take_while(|w| w.node_key() == head.node_key()).count();
            let node = self.counts[C_NODES];
            if node as usize >= MAX_NODES {
                return Err(StageError::Capacity);
            }
            self.counts[C_NODES] += 1;
            match head.class {
                0 => ix.root[usize::from(head.dns)] = node,
                1 => {
                    let last = (ix.dir_len > 0).then(|| self.dirs[(ix.dir_start + ix.dir_len - 1) as usize]);
                    if last.is_none_or(|d| (d.family, d.dns, d.plen) != (head.family, head.dns, head.plen)) {
                        let d = self.counts[C_DIRS] as usize;
                        self.dirs[d] =
                            Dir { start: node, len: 0, plen: head.plen, family: head.family, dns: head.dns, _pad: 0 };
                        self.counts[C_DIRS] += 1;
                        ix.dir_len += 1;
                    }
                    self.dirs[(ix.dir_start + ix.dir_len - 1) as usize].len += 1;
                    let v = unwords(&head.w);
                    self.keys[node as usize] = [(v >> 64) as u64, v as u64];
                }
                _ => {
                    let k = self.counts[C_NAME_KEYS] as usize;
                    self.name_keys[k] = NameKey { name: head.name, dns: u16::from(head.dns), node };
                    self.counts[C_NAME_KEYS] += 1;
                    ix.name_len += 1;
                }
            }
            self.build_node(node as usize, p, &s.work[i..j], &mut s.paint)?;
            i = j;
        }
        self.entries[e] = ix;
        Ok(())
    }

    /// Fills one node's buckets from its rules (in rule order).
    fn build_node(
        &mut self,
        node: usize,
        p: &PolicyStore,
        group: &[Work],
        paint: &mut Paint,
    ) -> Result<(), StageError> {
        let mut out = Node { seg_off: [0; 3], seg_len: [0; 3], any: [NONE; 4], _pad: 0 };
        for b in [TCP, UDP, ICMP, OTHER] {
            // Constrained rules before the first unconstrained one; that one
            // covers every port the earlier ones leave open.
            let mut nb = 2;
            paint.bounds[0] = 0;
            paint.bounds[1] = if b == ICMP { 256 } else { 65536 };
            for w in group {
                let Some(rule) = p.rule(usize::from(w.rule)) else { continue };
                match applies(&rule, b) {
                    None => {}
                    Some(None) => {
                        out.any[b] = w.rule;
                        break;
                    }
                    Some(Some((lo, hi))) => {
                        paint.bounds[nb] = lo;
                        paint.bounds[nb + 1] = hi + 1;
                        nb += 2;
                    }
                }
            }
            if b == OTHER || nb == 2 {
                continue;
            }
            let off = self.counts[C_SEGS] as usize;
            let n = paint_bucket(p, group, b, out.any[b], nb, paint, &mut self.segs[off..])?;
            out.seg_off[b] = off as u32;
            out.seg_len[b] = n as u16;
            self.counts[C_SEGS] += n as u32;
        }
        self.nodes[node] = out;
        Ok(())
    }

    /// True if `a` is one of the DNS servers `specialtarget=dns` means.
    pub fn is_dns(&self, a: Addr) -> bool {
        let (f, v) = wide(a);
        let w = words(v);
        let n = (self.counts[C_DNS] as usize).min(MAX_DNS);
        self.dns[..n].iter().any(|d| d[0] == u32::from(f) && d[1..] == w)
    }

    fn node_match(&self, node: u32, b: usize, val: Option<u16>) -> u16 {
        let Some(n) = self.nodes.get(node as usize) else { return NONE };
        if let (true, Some(v)) = (b < OTHER, val) {
            let (off, len) = (n.seg_off[b] as usize, usize::from(n.seg_len[b]));
            if let Some(segs) = self.segs.get(off..off + len).filter(|s| !s.is_empty()) {
                let i = segs.partition_point(|s| s.start <= v);
                return segs[i.saturating_sub(1)].rule;
            }
        }
        n.any[b]
    }

    /// The number (in the policy's rule list) of the first rule of entry
    /// `entry` that matches `key`, or [`NONE`].
    pub fn lookup(&self, entry: usize, key: &FlowKey) -> u16 {
        if entry >= self.counts[C_ENTRIES] as usize {
            return NONE;
        }
        let e = &self.entries[entry];
        let (fam, v) = wide(key.dst);
        let dns = self.is_dns(key.dst);
        let b = bucket(key.proto, fam);
        let val = match (b, key.l4) {
            (TCP | UDP, L4::Port(p)) => Some(p),
            (ICMP, L4::Icmp(t)) => Some(u16::from(t)),
            _ => None,
        };
        let mut best = NONE;
        for (i, root) in e.root.into_iter().enumerate() {
            if root != NO_NODE && (i == 0 || dns) {
                best = best.min(self.node_match(root, b, val));
            }
        }
        let dirs = self.dirs.get(e.dir_start as usize..(e.dir_start + e.dir_len) as usize).unwrap_or(&[]);
        for d in dirs {
            if d.family != fam || (d.dns == 1 && !dns) {
                continue;
            }
            let want = v & top(d.plen);
            let want = [(want >> 64) as u64, want as u64];
            let keys = self.keys.get(d.start as usize..(d.start + d.len) as usize).unwrap_or(&[]);
            if let Ok(i) = keys.binary_search(&want) {
                best = best.min(self.node_match(d.start + i as u32, b, val));
            }
        }
        if e.name_len > 0 {
            best = best.min(self.lookup_names(e, fam, v, dns, b, val));
        }
        best
    }

    fn lookup_names(&self, e: &EntryIx, fam: u8, v: u128, dns: bool, b: usize, val: Option<u16>) -> u16 {
        let keys = self.name_keys.get(e.name_start as usize..(e.name_start + e.name_len) as usize).unwrap_or(&[]);
        let addrs = &self.name_addrs[..(self.counts[C_NAME_ADDRS] as usize).min(MAX_NAME_ADDRS)];
        let w = words(v);
        let first = addrs.partition_point(|a| (a.family, a.w) < (u16::from(fam), w));
        let mut best = NONE;
        for a in addrs[first..].iter().take_while(|a| (a.family, a.w) == (u16::from(fam), w)) {
            for d in [0, 1].into_iter().filter(|&d| d == 0 || dns) {
                // Name nodes are sorted by (dns, name), as the compile sort left them.
                if let Ok(i) = keys.binary_search_by_key(&(d, a.name), |k| (k.dns, k.name)) {
                    best = best.min(self.node_match(keys[i].node, b, val));
                }
            }
        }
        best
    }

    /// What rule `g` does.
    pub fn action(&self, g: u16) -> Action {
        if self.acts.get(usize::from(g)) == Some(&1) { Action::Accept } else { Action::Drop }
    }

    /// What entry `e` does when no rule matches (drop for an unknown entry).
    pub fn policy(&self, e: usize) -> Action {
        let known = e < self.counts[C_ENTRIES] as usize;
        if known && self.entries[e].policy == 1 { Action::Accept } else { Action::Drop }
    }

    /// Entries compiled (0 for tables never compiled: everything drops).
    pub fn entry_count(&self) -> usize {
        self.counts[C_ENTRIES] as usize
    }

    /// (nodes, segments) in use, for the status.
    pub fn usage(&self) -> (u32, u32) {
        (self.counts[C_NODES], self.counts[C_SEGS])
    }
}

/// Cuts one bucket's port line into segments labelled with the first rule
/// covering them (`any` where no constrained rule does). Rules are painted in
/// order onto the elementary intervals between boundaries, a union-find
/// pointer skipping what is already painted, so the work is near-linear.
fn paint_bucket(
    p: &PolicyStore,
    group: &[Work],
    b: usize,
    any: u16,
    nb: usize,
    paint: &mut Paint,
    out: &mut [Seg],
) -> Result<usize, StageError> {
    let bounds = &mut paint.bounds[..nb];
    bounds.sort_unstable();
    let mut m = 1;
    for i in 1..nb {
        if bounds[i] != bounds[m - 1] {
            bounds[m] = bounds[i];
            m += 1;
        }
    }
    let bounds = &paint.bounds[..m];
    // Intervals 0..m-1; index m-1 is the sentinel past the end.
    let intervals = m - 1;
    for k in 0..m {
        paint.owner[k] = NONE;
        paint.next[k] = k as u32;
    }
    for w in group {
        if w.rule >= any {
            break;
        }
        let Some(rule) = p.rule(usize::from(w.rule)) else { continue };
        let Some(Some((lo, hi))) = applies(&rule, b) else { continue };
        let end = bounds.partition_point(|&x| x < hi + 1);
        let mut k = find(&mut paint.next, bounds.partition_point(|&x| x < lo));
        while k < end {
            paint.owner[k] = w.rule;
            paint.next[k] = k as u32 + 1;
            k = find(&mut paint.next, k + 1);
        }
    }
    let mut n = 0;
    let mut last = None;
    for (&start, &owner) in bounds[..intervals].iter().zip(&paint.owner[..intervals]) {
        let rule = if owner == NONE { any } else { owner };
        if last != Some(rule) {
            *out.get_mut(n).ok_or(StageError::Capacity)? = Seg { start: start as u16, rule };
            n += 1;
            last = Some(rule);
        }
    }
    Ok(n)
}

/// The first unpainted interval at or after `k` (path halving).
fn find(next: &mut [u32], mut k: usize) -> usize {
    while next[k] as usize != k {
        let up = next[next[k] as usize];
        next[k] = up;
        k = up as usize;
    }
    k
}
