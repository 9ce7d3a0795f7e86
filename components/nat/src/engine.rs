//! The per-packet decisions, apart from the rings: what happens to one
//! packet from a client or from the uplink, and the timers. Pure and
//! allocation-free over its tables, so tests, the fuzz target and the
//! benchmarks drive it directly; `lib.rs` only moves descriptors.
//!
//! Every rewrite goes through `moat_net::rewrite`, which updates each
//! affected checksum incrementally (RFC 1624) and checks everything before
//! changing a byte.

use core::net::Ipv4Addr;

use moat_net::icmp_error::{self, Kind};
use moat_net::icmpv4::{self, Icmpv4};
use moat_net::ip::{Fragment, Transport, classify};
use moat_net::ipv4::Ipv4;
use moat_net::meta::{Gso, GsoKind, Meta, Verdict, flags};
use moat_net::rewrite::{self, End};
use moat_net::{Error, proto};

use crate::clients::{Bucket, Clients};
use crate::config::NatConfig;
use crate::conn::{Conn, Dir, State, Step, flags as cf, tcp_opens, tcp_step};
use crate::counters::{C, Counters};
use crate::frag::{FragError, Rewrite, TrainKey, Trains};
use crate::ports::{Dest, PortMap, Record, Refused};
use crate::recheck::Recheck;
use crate::siphash::SipKey;
use crate::table::{Full, InKey, OutKey, Table};

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// To the uplink (`to_uplink`).
    Uplink,
    /// To client slot n (`to_clients`).
    Client(u8),
    /// Dropped; the counter says why.
    Drop(C),
}

/// What to do with a packet, and where it now lies in its buffer (an ICMP
/// error built in front of the packet starts earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Where it goes.
    pub fate: Fate,
    /// Offset of the packet in the buffer.
    pub start: usize,
    /// Its length.
    pub len: usize,
}

/// The state regions the engine works in (zeroed, sized by
/// [`crate::config::Sizes`]).
pub struct Regions<'a> {
    /// Connection entries.
    pub conns: &'a mut [Conn],
    /// Both connection bucket arrays.
    pub conn_heads: &'a mut [u32],
    /// Port records.
    pub records: &'a mut [Record],
    /// Port record buckets.
    pub record_heads: &'a mut [u32],
}

struct Settings {
    /// Learnt at run time (or configured), `None` until then.
    uplink: Option<[u8; 4]>,
    /// Configured; otherwise the uplink address.
    gateway: Option<Ipv4Addr>,
    client_dns: [[u8; 4]; 2],
    mtu: usize,
    max_per_client: u32,
    min_idle_ns: u64,
    icmp_rate: u32,
    icmp_burst: u32,
    icmp_total: u32,
}

/// Entries looked at per call when removing a departed client's connections.
const SWEEP: u32 = 4096;
/// Closed entries looked at, per closed state, for one of a client at its
/// limit (see [`Table::closed_of`]).
const RECYCLE_SCAN: u32 = 64;
/// Linux's `icmp_msgs_burst`.
const ICMP_TOTAL_BURST: u32 = 50;
const NS: u64 = 1_000_000_000;

/// The NAT's state and decisions.
pub struct Engine<'a> {
    s: Settings,
    table: Table<'a>,
    ports: PortMap<'a>,
    clients: Clients,
    trains: Trains,
    rng: SipKey,
    rng_n: u64,
    icmp_all: Bucket,
    ident: u16,
    sweep: Option<u32>,
    recheck: Recheck,
    counters: Counters,
}

fn has_ports(p: u8) -> bool {
    matches!(p, proto::TCP | proto::UDP | proto::ICMP)
}

/// The request type an ICMP query or reply belongs to.
fn request_of(ty: u8) -> Option<u8> {
    use icmpv4::ty::*;
    match ty {
        ECHO_REQUEST | TIMESTAMP | INFO_REQUEST | ADDR_MASK => Some(ty),
        ECHO_REPLY => Some(ECHO_REQUEST),
        TIMESTAMP_REPLY | INFO_REPLY | ADDR_MASK_REPLY => Some(ty - 1),
        _ => None,
    }
}

fn ipv4(a: core::net::IpAddr) -> Option<[u8; 4]> {
    match a {
        core::net::IpAddr::V4(a) => Some(a.octets()),
        core::net::IpAddr::V6(_) => None,
    }
}

impl<'a> Engine<'a> {
    /// An engine over zeroed `regions`, keyed from `seed` (per-boot entropy).
    pub fn new(cfg: &NatConfig, r: Regions<'a>, seed: [u8; 32]) -> Result<Self, &'static str> {
        let sizes = cfg.check()?;
        if r.conns.len() < sizes.conns
            || r.conn_heads.len() < sizes.conn_heads
            || r.records.len() < sizes.records
            || r.record_heads.len() < sizes.record_heads
        {
            return Err("state regions smaller than the configuration needs");
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&seed[..16]);
        let table_key = SipKey::new(k);
        k.copy_from_slice(&seed[16..]);
        let rng = SipKey::new(k);
        let mut pk = [0u8; 16];
        pk[..8].copy_from_slice(&rng.hash(u64::MAX, 1).to_le_bytes());
        pk[8..].copy_from_slice(&rng.hash(u64::MAX, 2).to_le_bytes());
        let dns = cfg.dns_servers.map(|a| a.octets());
        let table = Table::new(&mut r.conns[..sizes.conns], &mut r.conn_heads[..sizes.conn_heads], table_key, dns)
            .ok_or("connection table regions unusable")?;
        let ports = PortMap::new(
            &mut r.records[..sizes.records],
            &mut r.record_heads[..sizes.record_heads],
            SipKey::new(pk),
            cfg.port_min,
            cfg.port_max,
        )
        .ok_or("port allocator regions unusable")?;
        Ok(Engine {
            s: Settings {
                uplink: cfg.uplink_ip.map(|a| a.octets()),
                gateway: cfg.gateway_ip,
                client_dns: cfg.client_dns.map(|a| a.octets()),
                mtu: usize::from(cfg.uplink_mtu),
                max_per_client: cfg.max_per_client,
                min_idle_ns: u64::from(cfg.established_min_idle_secs) * NS,
                icmp_rate: cfg.icmp_per_client_per_sec,
                icmp_burst: cfg.icmp_per_client_burst,
                icmp_total: cfg.icmp_total_per_sec,
            },
            table,
            ports,
            clients: Clients::default(),
            trains: Trains::default(),
            ident: rng.hash(u64::MAX, 3) as u16,
            rng,
            rng_n: 0,
            icmp_all: Bucket::default(),
            sweep: None,
            recheck: Recheck::default(),
            counters: Counters::default(),
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts one event (for the component's ring-level errors).
    pub fn count(&mut self, c: C) {
        self.counters.bump(c);
    }

    /// The connection table (read-only).
    pub fn table(&self) -> &Table<'a> {
        &self.table
    }

    /// The client slots.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Ports in use on the uplink.
    pub fn ports_in_use(&self) -> u32 {
        self.ports.used()
    }

    /// Fragment trains in flight.
    pub fn trains(&self) -> usize {
        self.trains.len()
    }

    /// The uplink address, once known.
    pub fn uplink(&self) -> Option<[u8; 4]> {
        self.s.uplink
    }

    fn uplink_ip(&self) -> Result<[u8; 4], C> {
        self.s.uplink.ok_or(C::DropNoUplink)
    }

    /// The address clients know moat by.
    fn gateway(&self) -> Option<Ipv4Addr> {
        self.s.gateway.or(self.s.uplink.map(Ipv4Addr::from))
    }

    /// netfront says the uplink is up with an address (or down). The
    /// address is kept while the uplink is down, so connections survive
    /// sys-net reconnecting the vif; a new address replaces it (and
    /// connections made from the old one fade out: their replies no longer
    /// reach it).
    pub fn uplink_event(&mut self, e: &moat_control::UplinkEvent) {
        match *e {
            moat_control::UplinkEvent::Up { ipv4, mtu } => {
                if !crate::config::unicast(Ipv4Addr::from(ipv4)) {
                    self.counters.bump(C::UplinkEventsBad);
                    return;
                }
                self.s.uplink = Some(ipv4);
                if (576..=9216).contains(&mtu) {
                    self.s.mtu = usize::from(mtu);
                }
            }
            moat_control::UplinkEvent::Down => {}
        }
        self.counters.bump(C::UplinkEvents);
    }

    fn random(&mut self) -> u64 {
        self.rng_n += 1;
        self.rng.hash(self.rng_n, 0)
    }

    // --- clients and timers ------------------------------------------------

    /// Applies a client event. A `Down` starts removing the client's
    /// connections (see [`tick`](Self::tick)); until that is done
    /// [`accepts_client_events`](Self::accepts_client_events) is false.
    pub fn client_event(&mut self, e: &moat_control::ClientEvent) -> bool {
        match self.clients.apply(e) {
            Ok(()) => {
                if let moat_control::ClientEvent::Down { slot } = *e {
                    let ip = self.clients.get(slot).map_or([0; 4], |s| s.ip);
                    self.trains.forget_client(slot, ip);
                    self.sweep = Some(0);
                }
                self.counters.bump(C::ClientEvents);
                true
            }
            Err(_) => {
                self.counters.bump(C::ClientEventsBad);
                false
            }
        }
    }

    /// False while a departed client's connections are being removed: the
    /// caller holds further client events back (their slot may be reused).
    pub fn accepts_client_events(&self) -> bool {
        self.sweep.is_none()
    }

    /// Timer work, at most `budget` expiries and one sweep step; true if
    /// more is due now.
    pub fn tick(&mut self, now: u64, budget: u32) -> bool {
        for _ in 0..budget {
            let Some(i) = self.table.first_expired(now) else { break };
            self.remove(i, C::Expired);
        }
        self.trains.expire(now);
        if let Some(from) = self.sweep {
            let end = (from + SWEEP).min(self.table.capacity() as u32);
            for i in from..end {
                let c = self.table.get(i);
                if c.state != 0 && self.clients.get(c.slot).is_some_and(|s| s.draining) {
                    self.remove(i, C::RemovedClientDown);
                }
            }
            self.sweep = if end as usize >= self.table.capacity() {
                self.clients.drained();
                None
            } else {
                Some(end)
            };
        }
        self.sweep.is_some() || self.table.first_expired(now).is_some()
    }

    /// When [`tick`](Self::tick) or [`next_check`](Self::next_check) next
    /// has work (ns since boot).
    pub fn next_deadline(&self) -> Option<u64> {
        [self.table.next_deadline(), self.trains.next_deadline(), self.recheck.deadline()].into_iter().flatten().min()
    }

    // --- re-checks by the rules (see `recheck`) --------------------------------

    /// The re-check bookkeeping (read-only).
    pub fn rechecks(&self) -> &Recheck {
        &self.recheck
    }

    /// `RulesToNat::Changed`: the rules of these slots changed.
    pub fn rules_changed(&mut self, version: u32, epoch: u32, slots: &[u8; 32]) {
        self.recheck.changed(version, epoch, slots, &mut self.counters);
    }

    /// `RulesToNat::Denied`: removes the connections of batch `batch` the
    /// rules now refuse (unless the answer is broken or superseded).
    pub fn rules_denied(&mut self, epoch: u32, slot: u8, batch: u32, denied: u16) {
        let Some(v) = self.recheck.answer(epoch, slot, batch, denied, &mut self.table, &mut self.counters) else {
            return;
        };
        for idx in v.remove {
            if idx != u32::MAX {
                self.remove(idx, C::RemovedByRules);
            }
        }
        self.recheck.release(v.batch, &mut self.table);
    }

    /// The next `Check` batch to send the rules, walking at most `*scan`
    /// table entries to fill it; [`check_sent`](Self::check_sent) once it
    /// went out (until then the same batch comes back).
    pub fn next_check(&mut self, now: u64, scan: &mut u32) -> Option<moat_control::NatToRules> {
        self.recheck.next(&mut self.table, &self.clients, now, scan, &mut self.counters)
    }

    /// The batch [`next_check`](Self::next_check) returned was sent at `now`.
    pub fn check_sent(&mut self, now: u64) {
        self.recheck.sent(now, &mut self.counters);
    }

    /// Removes connection `idx`, releasing its port and its client's share.
    pub fn remove(&mut self, idx: u32, why: C) {
        let dest = self.dest(self.table.get(idx));
        let c = self.table.remove(idx);
        if c.state == 0 {
            return;
        }
        if has_ports(c.proto) {
            self.ports.release(&dest, c.nat_port);
        }
        if let Some(s) = self.clients.get_mut(c.slot) {
            s.conns = s.conns.saturating_sub(1);
        }
        self.counters.bump(why);
    }

    fn dest(&self, c: &Conn) -> Dest {
        let k = self.table.in_key(c);
        Dest { proto: c.proto, ip: k.outside_ip, port: c.remote_port }
    }

    /// A live connection: found, not past its timeout, its client still here.
    fn live(&mut self, idx: Option<u32>, now: u64) -> Option<u32> {
        let i = idx?;
        if self.table.expired(i, now) {
            self.remove(i, C::Expired);
            return None;
        }
        let c = self.table.get(i);
        self.clients.get(c.slot).filter(|s| s.up && s.ip == c.client_ip).map(|_| i)
    }

    // --- packets from clients ------------------------------------------------

    /// A packet from a client (after the rules), at `buf[start..start + len]`.
    pub fn outbound(&mut self, buf: &mut [u8], start: usize, len: usize, dflags: u16, meta: u32, now: u64) -> Decision {
        let d = self.outbound_inner(buf, start, len, dflags, meta, now).unwrap_or_else(|c| Decision {
            fate: Fate::Drop(c),
            start,
            len,
        });
        if let Fate::Drop(c) = d.fate {
            self.counters.bump(c);
        }
        d
    }

    fn outbound_inner(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        dflags: u16,
        meta: u32,
        now: u64,
    ) -> Result<Decision, C> {
        let word = moat_component::PacketDesc { meta, ..Default::default() };
        let meta = Meta::of(&word).map_err(|_| C::DropBadMeta)?;
        let gso = Gso::of(&word).map_err(|_| C::DropBadMeta)?;
        let slot = meta.iface.client_index().ok_or(C::DropBadMeta)?;
        let client = *self.clients.get(slot).filter(|s| s.up).ok_or(C::DropUnknownClient)?;
        match meta.verdict {
            Verdict::Accept | Verdict::Dns | Verdict::Reject => {}
            Verdict::Drop => return Err(C::DropVerdict),
            Verdict::None => return Err(C::DropNoVerdict),
        }
        let end = start.checked_add(len).ok_or(C::DropMalformed)?;
        let pkt = buf.get_mut(start..end).ok_or(C::DropMalformed)?;
        let s = self.checked(pkt, dflags)?;
        let src = ipv4(s.src).ok_or(C::DropIpv6)?;
        let dst = ipv4(s.dst).ok_or(C::DropIpv6)?;
        if src != client.ip {
            return Err(C::DropSpoofed);
        }
        let segment = segment_len(pkt, &s, gso)?;
        let here = |fate| Ok(Decision { fate, start, len });
        if meta.verdict == Verdict::Reject {
            return self.icmp_error(buf, start, len, slot, Kind::V4_ADMIN_PROHIBITED, C::SentReject, true, now);
        }
        if s.ttl <= 1 {
            return self.icmp_error(buf, start, len, slot, Kind::V4_TTL_EXCEEDED, C::SentTimeExceeded, true, now);
        }
        if meta.verdict == Verdict::Accept
            && let Some(to) = self.clients.slot_of(dst)
        {
            decrement_ttl(pkt)?;
            self.counters.bump(C::InterVm);
            return here(Fate::Client(to));
        }
        if Some(dst) == self.s.uplink || Some(dst) == self.gateway().map(|g| g.octets()) {
            return Err(C::DropToSelf);
        }
        let uplink = self.uplink_ip()?;
        // A super-packet leaves as segments: the MTU applies to each.
        if segment > self.s.mtu {
            let df = Ipv4::parse(&*pkt).map_err(|_| C::DropMalformed)?.header().dont_fragment();
            if !df {
                return Err(C::DropTooBig);
            }
            let kind = Kind::v4_frag_needed(self.s.mtu as u16);
            return self.icmp_error(buf, start, len, slot, kind, C::SentFragNeeded, false, now);
        }
        let dns = match meta.verdict {
            Verdict::Dns => Some(self.s.client_dns.iter().position(|&a| a == dst).ok_or(C::DropNotDns)?),
            _ => None,
        };
        match s.transport {
            Transport::Icmp { error: true, .. } => {
                self.outbound_icmp_error(pkt, slot, client.ip)?;
                self.counters.bump(C::IcmpErrorsOut);
                here(Fate::Uplink)
            }
            Transport::Fragment => {
                let (key, offset, plen, more) = train_of(pkt, true)?;
                let rw = self.trains.later(&key, offset, plen, more, now).map_err(frag_counter)?;
                readdress(pkt, rw)?;
                decrement_ttl(pkt)?;
                self.counters.bump(C::FragTranslated);
                here(Fate::Uplink)
            }
            t => {
                let (p, cport, rport, tflags) = match t {
                    Transport::Tcp { src_port, dst_port, flags } => (proto::TCP, src_port, dst_port, flags),
                    Transport::Udp { src_port, dst_port } => (proto::UDP, src_port, dst_port, 0),
                    Transport::Icmp { ty, ident: Some(id), .. } if request_of(ty) == Some(ty) => {
                        (proto::ICMP, id, u16::from(ty), 0)
                    }
                    Transport::Icmp { .. } => return Err(C::DropIcmpType),
                    _ => (s.protocol, 0, 0, 0),
                };
                let first = s.fragment == Fragment::First;
                let key = OutKey { proto: p, client_ip: src, client_port: cport, remote_ip: dst, remote_port: rport };
                let train = if first {
                    let (k, _, _, _) = train_of(pkt, true)?;
                    self.trains.room(&k, now).map_err(frag_counter)?;
                    Some(k)
                } else {
                    None
                };
                let found = self.table.find_out(&key);
                let idx = match self.live(found, now) {
                    Some(i) => {
                        self.step(i, Dir::Orig, tflags, now)?;
                        i
                    }
                    None => {
                        if p == proto::TCP && !tcp_opens(tflags) {
                            return Err(C::DropTcpNoConn);
                        }
                        self.create(key, slot, dns, now)?
                    }
                };
                let c = *self.table.get(idx);
                let port = has_ports(c.proto).then_some(c.nat_port);
                let outside = self.table.in_key(&c).outside_ip;
                rewrite::ipv4(pkt, End::Src, uplink.into(), port).map_err(|_| C::DropMalformed)?;
                if outside != dst {
                    rewrite::ipv4(pkt, End::Dst, outside.into(), None).map_err(|_| C::DropMalformed)?;
                    self.counters.bump(C::DnsRedirected);
                }
                decrement_ttl(pkt)?;
                if let Some(k) = train {
                    let plen = Ipv4::parse(&*pkt).map_err(|_| C::DropMalformed)?.payload().len() as u32;
                    let rw = Rewrite { src: uplink, dst: outside, fate: Fate::Uplink };
                    self.trains.first(k, plen, rw, now).map_err(frag_counter)?;
                }
                self.counters.bump(C::Outbound);
                here(Fate::Uplink)
            }
        }
    }

    /// Parses, and checks the checksum state: whole TCP/UDP/ICMP must come
    /// verified (`CSUM_OK`); fragments and other protocols, which csum
    /// cannot verify end to end, must at least have a right IPv4 header
    /// checksum (checked here).
    fn checked(&self, pkt: &[u8], dflags: u16) -> Result<moat_net::ip::Summary, C> {
        if dflags & !flags::ALL != 0 {
            return Err(C::DropBadFlags);
        }
        if pkt.first().is_some_and(|b| b >> 4 == 6) {
            return Err(C::DropIpv6);
        }
        let s = classify(pkt).map_err(|_| C::DropMalformed)?;
        if dflags & flags::CSUM_OK == 0 {
            let unverifiable = s.fragment != Fragment::Whole || matches!(s.transport, Transport::Other);
            if !unverifiable {
                return Err(C::DropNoCsum);
            }
            if !Ipv4::parse(pkt).map_err(|_| C::DropMalformed)?.checksum_ok() {
                return Err(C::DropBadIpChecksum);
            }
        }
        Ok(s)
    }

    /// Moves connection `i` on for a packet in direction `dir`.
    fn step(&mut self, i: u32, dir: Dir, tflags: u16, now: u64) -> Result<(), C> {
        let c = *self.table.get(i);
        let state = c.state().ok_or(C::DropMalformed)?;
        let stream = now >= (u64::from(c.created_s) + 2) * NS;
        let next = match state {
            State::UdpUnreplied if dir == Dir::Reply => State::UdpReplied,
            State::UdpReplied if stream => State::UdpAssured,
            State::IcmpUnreplied if dir == Dir::Reply => State::IcmpReplied,
            State::OtherUnreplied if dir == Dir::Reply => State::OtherReplied,
            State::UdpUnreplied
            | State::UdpReplied
            | State::UdpAssured
            | State::IcmpUnreplied
            | State::IcmpReplied
            | State::OtherUnreplied
            | State::OtherReplied => state,
            tcp => {
                let mut fins = c.flags & (cf::FIN_ORIG | cf::FIN_REPLY);
                match tcp_step(tcp, dir, tflags, &mut fins) {
                    Step::To(n) => {
                        self.table.set_flags(i, (c.flags & !(cf::FIN_ORIG | cf::FIN_REPLY)) | fins);
                        n
                    }
                    Step::Ignore => return Ok(()),
                    Step::Invalid => return Err(C::DropTcpInvalid),
                }
            }
        };
        self.table.touch(i, next, now);
        Ok(())
    }

    /// A new connection for `key` from client `slot`.
    fn create(&mut self, key: OutKey, slot: u8, dns: Option<usize>, now: u64) -> Result<u32, C> {
        let client = self.clients.get(slot).ok_or(C::RefusedClientLimit)?;
        if client.conns >= self.s.max_per_client {
            // At its limit, a client may reuse its own finished connections
            // (a busy client's TIME_WAITs would otherwise lock it out for
            // two minutes), never another's.
            let old = self.table.closed_of(slot, RECYCLE_SCAN).ok_or(C::RefusedClientLimit)?;
            self.remove(old, C::EvictedClientLimit);
        }
        if self.table.live() as usize >= self.table.capacity() {
            match self.table.first_expired(now) {
                Some(i) => self.remove(i, C::Expired),
                None => {
                    let v = self.table.victim(now, self.s.min_idle_ns).ok_or(C::RefusedTableFull)?;
                    let why = match self.table.get(v).state().map_or(0, State::tier) {
                        0 => C::EvictedClosed,
                        1 => C::EvictedUnreplied,
                        2 => C::EvictedOther,
                        _ => C::EvictedEstablished,
                    };
                    self.remove(v, why);
                }
            }
        }
        let state = match key.proto {
            proto::TCP => State::SynSent,
            proto::UDP => State::UdpUnreplied,
            proto::ICMP => State::IcmpUnreplied,
            _ => State::OtherUnreplied,
        };
        let dns_bits = dns.map_or(0, |i| ((i as u8 & 1) + 1) << cf::DNS_SHIFT);
        let mut c = Conn {
            last_seen: now,
            created_s: (now / NS) as u32,
            client_ip: key.client_ip,
            remote_ip: key.remote_ip,
            client_port: key.client_port,
            remote_port: key.remote_port,
            nat_port: 0,
            proto: key.proto,
            state: state as u8,
            slot,
            flags: dns_bits,
            ..Conn::default()
        };
        let dest = self.dest(&c);
        if has_ports(key.proto) {
            let r = self.random();
            c.nat_port = self.ports.alloc(&dest, r).map_err(|e| match e {
                Refused::Exhausted => C::RefusedPorts,
                Refused::NoRecord => C::RefusedPortRecord,
            })?;
        } else if self.table.find_in(&self.table.in_key(&c)).is_some() {
            // Address-only translation: one client at a time per (protocol,
            // remote), as Linux's generic tracker.
            return Err(C::RefusedPorts);
        }
        match self.table.insert(c) {
            Ok(i) => {
                if let Some(s) = self.clients.get_mut(slot) {
                    s.conns += 1;
                }
                self.counters.bump(C::Created);
                Ok(i)
            }
            Err(e) => {
                if has_ports(key.proto) {
                    self.ports.release(&dest, c.nat_port);
                }
                Err(match e {
                    Full::Chain => C::RefusedChain,
                    Full::Table => C::RefusedTableFull,
                })
            }
        }
    }

    /// A client's ICMP error about a packet it received from outside:
    /// translate the quote and the outer header back to the uplink view.
    fn outbound_icmp_error(&mut self, pkt: &mut [u8], slot: u8, client_ip: [u8; 4]) -> Result<(), C> {
        let Quoted { src: q_src, dst: q_dst, proto: p, sport, dport } = quoted_tuple(pkt)?;
        if q_dst != client_ip {
            return Err(C::DropIcmpUnmatched);
        }
        let key = OutKey { proto: p, client_ip, client_port: dport, remote_ip: q_src, remote_port: sport };
        let i = self.table.find_out(&key).ok_or(C::DropIcmpUnmatched)?;
        let c = *self.table.get(i);
        if c.slot != slot {
            return Err(C::DropIcmpUnmatched);
        }
        let port = has_ports(p).then_some(c.nat_port);
        let outside = self.table.in_key(&c).outside_ip;
        let bad = |_: Error| C::DropIcmpUnmatched;
        let uplink = self.uplink_ip()?;
        rewrite::ipv4_quoted(pkt, End::Dst, uplink.into(), port).map_err(bad)?;
        if outside != q_src {
            rewrite::ipv4_quoted(pkt, End::Src, outside.into(), None).map_err(bad)?;
            rewrite::ipv4(pkt, End::Dst, outside.into(), None).map_err(bad)?;
        }
        rewrite::ipv4(pkt, End::Src, uplink.into(), None).map_err(bad)?;
        decrement_ttl(pkt)
    }

    /// Builds an ICMP error in place for the sender (client `slot`),
    /// rate-limited per client (unless `per_client` is false: PMTU
    /// discovery must not be starved, as in Linux) and in all.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        slot: u8,
        kind: Kind,
        sent: C,
        per_client: bool,
        now: u64,
    ) -> Result<Decision, C> {
        self.ident = self.ident.wrapping_add(1);
        let gateway = self.gateway().ok_or(C::DropNoUplink)?;
        let built = icmp_error::build_v4(buf, start, len, gateway, kind, self.ident).map_err(|_| C::IcmpNotAllowed)?;
        if per_client && !self.clients.allow_icmp(slot, now, self.s.icmp_rate, self.s.icmp_burst) {
            return Err(C::IcmpRateLimited);
        }
        if !self.icmp_all.take(now, self.s.icmp_total, ICMP_TOTAL_BURST) {
            return Err(C::IcmpRateLimited);
        }
        self.counters.bump(sent);
        Ok(Decision { fate: Fate::Client(slot), start: built.start, len: built.len })
    }

    // --- packets from the uplink ---------------------------------------------

    /// A packet from the uplink (after csum), at `buf[start..start + len]`.
    pub fn inbound(&mut self, buf: &mut [u8], start: usize, len: usize, dflags: u16, now: u64) -> Decision {
        let d = self.inbound_inner(buf, start, len, dflags, now).unwrap_or_else(|c| Decision {
            fate: Fate::Drop(c),
            start,
            len,
        });
        if let Fate::Drop(c) = d.fate {
            self.counters.bump(c);
        }
        d
    }

    fn inbound_inner(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        dflags: u16,
        now: u64,
    ) -> Result<Decision, C> {
        let end = start.checked_add(len).ok_or(C::DropMalformed)?;
        let pkt = buf.get_mut(start..end).ok_or(C::DropMalformed)?;
        let s = self.checked(pkt, dflags)?;
        let src = ipv4(s.src).ok_or(C::DropIpv6)?;
        if self.s.uplink.is_none() || ipv4(s.dst) != self.s.uplink {
            return Err(C::DropNotForUs);
        }
        let here = |fate| Ok(Decision { fate, start, len });
        let (p, rport, nport, tflags) = match s.transport {
            Transport::Icmp { error: true, .. } => {
                let slot = self.inbound_icmp_error(pkt, now)?;
                self.counters.bump(C::IcmpErrorsIn);
                return here(Fate::Client(slot));
            }
            Transport::Fragment => {
                let (key, offset, plen, more) = train_of(pkt, false)?;
                let rw = self.trains.later(&key, offset, plen, more, now).map_err(frag_counter)?;
                let Fate::Client(slot) = rw.fate else { return Err(C::DropNoConn) };
                if !self.clients.get(slot).is_some_and(|s| s.up) {
                    return Err(C::DropClientDown);
                }
                decrement_ttl(pkt).map_err(|_| C::DropTtlInbound)?;
                readdress(pkt, rw)?;
                self.counters.bump(C::FragTranslated);
                return here(rw.fate);
            }
            Transport::Tcp { src_port, dst_port, flags } => (proto::TCP, src_port, dst_port, flags),
            Transport::Udp { src_port, dst_port } => (proto::UDP, src_port, dst_port, 0),
            Transport::Icmp { ty, ident: Some(id), .. } if request_of(ty).is_some_and(|r| r != ty) => {
                (proto::ICMP, u16::from(request_of(ty).unwrap_or(0)), id, 0)
            }
            Transport::Icmp { .. } => return Err(C::DropNoConn),
            Transport::Other => (s.protocol, 0, 0, 0),
        };
        let train = if s.fragment == Fragment::First {
            let (k, _, _, _) = train_of(pkt, false)?;
            self.trains.room(&k, now).map_err(frag_counter)?;
            Some(k)
        } else {
            None
        };
        let key = InKey { proto: p, outside_ip: src, remote_port: rport, nat_port: nport };
        let found = self.table.find_in(&key);
        let i = self.live(found, now).ok_or(C::DropNoConn)?;
        if s.ttl <= 1 {
            return Err(C::DropTtlInbound);
        }
        self.step(i, Dir::Reply, tflags, now)?;
        let c = *self.table.get(i);
        let port = has_ports(p).then_some(c.client_port);
        rewrite::ipv4(pkt, End::Dst, c.client_ip.into(), port).map_err(|_| C::DropMalformed)?;
        let seen_from = c.dns().map_or(src, |d| self.s.client_dns[d & 1]);
        if seen_from != src {
            rewrite::ipv4(pkt, End::Src, seen_from.into(), None).map_err(|_| C::DropMalformed)?;
        }
        decrement_ttl(pkt)?;
        if let Some(k) = train {
            let plen = Ipv4::parse(&*pkt).map_err(|_| C::DropMalformed)?.payload().len() as u32;
            let rw = Rewrite { src: seen_from, dst: c.client_ip, fate: Fate::Client(c.slot) };
            self.trains.first(k, plen, rw, now).map_err(frag_counter)?;
        }
        self.counters.bump(C::Inbound);
        here(Fate::Client(c.slot))
    }

    /// An ICMP error from outside about a packet we sent: find its
    /// connection by the quoted header and translate quote and outer header
    /// back to what the client sent. Returns the client slot.
    fn inbound_icmp_error(&mut self, pkt: &mut [u8], now: u64) -> Result<u8, C> {
        let Quoted { src: q_src, dst: q_dst, proto: p, sport, dport } = quoted_tuple(pkt)?;
        if Some(q_src) != self.s.uplink {
            return Err(C::DropIcmpUnmatched);
        }
        let key = InKey { proto: p, outside_ip: q_dst, remote_port: dport, nat_port: sport };
        let found = self.table.find_in(&key);
        let i = self.live(found, now).ok_or(C::DropIcmpUnmatched)?;
        let c = *self.table.get(i);
        let outer_src = Ipv4::parse(&*pkt).map_err(|_| C::DropMalformed)?.src().octets();
        let bad = |_: Error| C::DropIcmpUnmatched;
        decrement_ttl(pkt).map_err(|_| C::DropTtlInbound)?;
        let port = has_ports(p).then_some(c.client_port);
        rewrite::ipv4_quoted(pkt, End::Src, c.client_ip.into(), port).map_err(bad)?;
        if let Some(d) = c.dns() {
            let virt = self.s.client_dns[d & 1];
            rewrite::ipv4_quoted(pkt, End::Dst, virt.into(), None).map_err(bad)?;
            if outer_src == q_dst {
                rewrite::ipv4(pkt, End::Src, virt.into(), None).map_err(bad)?;
            }
        }
        rewrite::ipv4(pkt, End::Dst, c.client_ip.into(), None).map_err(bad)?;
        Ok(c.slot)
    }

    // --- self-check ----------------------------------------------------------

    /// Checks every invariant across the table, the port records, the
    /// client counts and the re-check marks (O(capacity); for tests and
    /// fuzzing): the table's own ([`Table::check`]: each live entry found by
    /// both keys, so no two share either tuple), each live port-using
    /// entry's port marked in use and the ports in use equal to those
    /// entries, per-client counts exact, and a connection marked by a
    /// re-check batch only while that batch names it ([`Recheck::check`]).
    pub fn check(&self) -> Result<(), &'static str> {
        self.table.check()?;
        self.recheck.check(&self.table)?;
        let ports = self.ports.check()?;
        let mut with_ports = 0;
        let mut per_client = [0u32; crate::clients::SLOTS];
        for i in 0..self.table.capacity() as u32 {
            let c = self.table.get(i);
            if c.state == 0 {
                continue;
            }
            per_client[usize::from(c.slot) % crate::clients::SLOTS] += 1;
            if has_ports(c.proto) {
                with_ports += 1;
                if !self.ports.in_use(&self.dest(c), c.nat_port) {
                    return Err("a connection's port is not marked in use");
                }
            }
        }
        if with_ports != ports {
            return Err("ports in use differ from connections holding one");
        }
        for (n, &count) in per_client.iter().enumerate() {
            if self.clients.get(n as u8).map_or(0, |s| s.conns) != count {
                return Err("a client's connection count is wrong");
            }
        }
        Ok(())
    }
}

/// The size of the packets `pkt` becomes on the link: its total length, or
/// for a super-packet (which must be whole TCP over IPv4) its headers plus
/// one segment's payload.
fn segment_len(pkt: &[u8], s: &moat_net::ip::Summary, gso: Option<Gso>) -> Result<usize, C> {
    let Some(g) = gso else { return Ok(s.total_len) };
    if g.kind() != GsoKind::TcpV4 || s.fragment != Fragment::Whole || !matches!(s.transport, Transport::Tcp { .. }) {
        return Err(C::DropBadGso);
    }
    // classify checked the data offset against the packet's bytes.
    let offset = pkt.get(s.l4_offset + 12).ok_or(C::DropMalformed)?;
    let headers = s.l4_offset + usize::from(offset >> 4) * 4;
    Ok(s.total_len.min(headers + usize::from(g.size())))
}

fn frag_counter(e: FragError) -> C {
    match e {
        FragError::NoTrain => C::FragNoTrain,
        FragError::Rejected => C::FragRejected,
        FragError::Poisoned => C::FragPoisoned,
        FragError::Full => C::FragFull,
    }
}

fn decrement_ttl(pkt: &mut [u8]) -> Result<(), C> {
    Ipv4::parse(pkt).map_err(|_| C::DropMalformed)?.decrement_ttl().map(drop).ok_or(C::DropMalformed)
}

/// The train key, byte offset, payload length and MF flag of a fragment.
fn train_of(pkt: &[u8], outbound: bool) -> Result<(TrainKey, u32, u32, bool), C> {
    let ip = Ipv4::parse(pkt).map_err(|_| C::DropMalformed)?;
    let h = ip.header();
    let key = TrainKey { outbound, src: h.src, dst: h.dst, proto: h.protocol, ident: h.ident.get() };
    Ok((key, h.frag_offset() as u32, ip.payload().len() as u32, h.more_fragments()))
}

/// Gives a later fragment its train's addresses.
fn readdress(pkt: &mut [u8], rw: Rewrite) -> Result<(), C> {
    let ip = Ipv4::parse(&*pkt).map_err(|_| C::DropMalformed)?;
    let (src, dst) = (ip.header().src, ip.header().dst);
    if src != rw.src {
        rewrite::ipv4(pkt, End::Src, rw.src.into(), None).map_err(|_| C::DropMalformed)?;
    }
    if dst != rw.dst {
        rewrite::ipv4(pkt, End::Dst, rw.dst.into(), None).map_err(|_| C::DropMalformed)?;
    }
    Ok(())
}

/// The quoted packet of an ICMP error: its addresses, protocol and ports,
/// where "ports" are the request type and identifier for
/// a quoted ICMP query (as the table keys them) and 0 for other protocols.
fn quoted_tuple(pkt: &[u8]) -> Result<Quoted, C> {
    let ip = Ipv4::parse(pkt).map_err(|_| C::DropMalformed)?;
    if ip.fragment() != Fragment::Whole {
        return Err(C::DropIcmpUnmatched);
    }
    let m = Icmpv4::parse(ip.payload()).map_err(|_| C::DropMalformed)?;
    let q = m.quoted().map_err(|_| C::DropIcmpUnmatched)?;
    if q.fragment() == Fragment::Later {
        return Err(C::DropIcmpUnmatched);
    }
    let l4 = q.payload();
    let word = |at: usize| l4.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(C::DropIcmpUnmatched);
    let (src, dst) = (q.header().src, q.header().dst);
    let (sport, dport) = match q.protocol() {
        proto::TCP | proto::UDP => (word(0)?, word(2)?),
        proto::ICMP => {
            let ty = *l4.first().ok_or(C::DropIcmpUnmatched)?;
            let req = request_of(ty).ok_or(C::DropIcmpUnmatched)?;
            // Our request going out (type = request): ident is the NAT's;
            // a reply the client got and complains about: ident is its own.
            // Either way the table keys ICMP as (ident, request type); the
            // caller reads (sport, dport) in its own direction.
            let id = word(4)?;
            if ty == req { (id, u16::from(req)) } else { (u16::from(req), id) }
        }
        _ => (0, 0),
    };
    Ok(Quoted { src, dst, proto: q.protocol(), sport, dport })
}

/// What [`quoted_tuple`] finds.
struct Quoted {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
}
