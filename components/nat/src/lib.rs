//! `nat`: connection tracking and IPv4 address/port translation between the
//! clients and the uplink.
//!
//! ```text
//!  rules.to_nat     -> from_rules      [nat] to_uplink     -> netfront.from_nat
//!  csum.to_nat      -> from_csum       [nat] to_clients    -> netback.from_nat
//!  xenstore         -> clients         (ClientEvent: slot <-> address, up/down)
//!  rules.to_nat_ctl -> from_rules_ctl  [nat] to_rules_ctl  -> rules.from_nat_ctl
//!  netfront         -> uplink          (UplinkEvent: the uplink address, learnt at run time)
//! ```
//!
//! * **Out** (from the rules, verdict in `meta`): `Accept` is translated to
//!   the uplink address and a port of ours (source NAT), or delivered to
//!   another client untranslated if addressed to one; `Dns` is also
//!   redirected to the uplink's real DNS server (`client_dns[i]` →
//!   `dns_servers[i]`); `Reject` becomes, in its own buffer, an ICMP
//!   administratively-prohibited (type 3 code 13) back to the client, as
//!   Linux sys-firewall's reject; `Drop` and an unset verdict are dropped.
//! * **In** (from csum, checksums verified): only packets of a known
//!   connection pass, translated back; ICMP errors are matched by the
//!   header they quote and translated inside and out, so traceroute and
//!   path MTU discovery work; everything else is dropped and counted.
//! * **Router duties**: TTL is decremented; a client packet whose TTL would
//!   expire is answered with ICMP time exceeded from `gateway_ip`; one that
//!   is larger than the uplink MTU with DF set, with fragmentation needed
//!   carrying the MTU.
//! * **Super-packets** (segmentation offload, `moat_net::meta::Gso`: up to
//!   64 KiB of TCP that the last link cuts into segments) are translated
//!   once, their checksums updated incrementally over the whole packet; the
//!   MTU and DF rules apply to each segment's size (headers plus the
//!   segment size), not to the total. What is forwarded keeps its
//!   segmentation; an ICMP error built from one is an ordinary packet. A
//!   super-packet that is not whole TCP/IPv4 is dropped (`drop.bad_gso`). Errors to clients are rate-limited per client and in
//!   all. (A packet from outside whose TTL expires here is dropped and
//!   counted without an error: `to_uplink` carries client buffers only.)
//! * **Tables** live in state regions sized from the configuration
//!   ([`config::Sizes`], [`config::BYTES_PER_CONNECTION`]): the
//!   [`table`] with per-state age lists for exact, amortised expiry and
//!   tiered eviction, and the [`ports`] allocator. Nothing is ever flushed.
//!   A client at `max_per_client` makes room by reusing its own oldest
//!   closed (CLOSE, TIME_WAIT) connection, never another client's
//!   (`conn.evicted.client_limit`).
//! * **Re-checks** ([`recheck`]): when a client's rules change, the rules
//!   say so (`RulesToNat::Changed`); the NAT names that client's
//!   connections back to them in small batches (`NatToRules::Check`) and
//!   removes those the answer refuses (`RulesToNat::Denied`, counted as
//!   `conn.removed.rules`), so a connection the new policy forbids stops
//!   letting replies in at once instead of when it times out. The walk is
//!   bounded per call, at most [`recheck::IN_FLIGHT`] batches exist at a
//!   time, and it starts only once the packets the rules judged before the
//!   change have been taken from `from_rules` (a connection they open is
//!   walked too). Counters: `recheck.{changed,batches,flows,superseded,
//!   lost,bad}`; gauges `recheck.{in_flight,pending_slots,hold}`,
//!   `rules.{version,epoch}`.
//! * **Fragments** are translated as trains ([`frag`]), not reassembled.
//! * **IPv6** is dropped and counted (`drop.ipv6`): Qubes sys-firewall
//!   masquerades IPv6 only when IPv6 is enabled for the qube, and moat does
//!   not translate it yet. Dropping is the fail-closed choice; forwarding
//!   it untranslated would expose the clients' addresses.
//!
//! Buffers go back the way they came: client buffers (from `from_rules`)
//! return on `from_rules_free` when dropped or when `to_uplink_free` /
//! `to_clients_free` hands them back; uplink buffers (from `from_csum`) on
//! `from_csum_free`. `to_clients` carries both pools, told apart by
//! `PacketDesc::pool`. One `Custody` per pool catches duplicates and
//! strangers.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod clients;
pub mod config;
pub mod conn;
pub mod counters;
pub mod engine;
pub mod frag;
pub mod ports;
pub mod recheck;
pub mod siphash;
pub mod table;

use moat_component::{
    BindError, Binder, Component, Context, Custody, Fault, MsgRx, MsgTx, PacketDesc, Pool, PortDecl, Ports, Rx, Status,
    Tx,
};
use moat_control::rules::RulesToNat;
use moat_control::{ClientEvent, UplinkEvent};
use moat_net::meta::{Gso, Iface, Meta, Verdict, flags};

pub use config::NatConfig;
use conn::{Conn, State};
use counters::C;
pub use engine::{Decision, Engine, Fate, Regions};
use ports::Record;

/// The NAT's ports, as `docs/graph.md` names them.
pub struct NatPorts {
    from_rules: Rx<PacketDesc>,
    from_rules_free: Tx<PacketDesc>,
    to_uplink: Tx<PacketDesc>,
    to_uplink_free: Rx<PacketDesc>,
    from_csum: Rx<PacketDesc>,
    from_csum_free: Tx<PacketDesc>,
    to_clients: Tx<PacketDesc>,
    to_clients_free: Rx<PacketDesc>,
    clients: MsgRx,
    uplink: MsgRx,
    from_rules_ctl: MsgRx,
    to_rules_ctl: MsgTx,
    client_buffers: Pool,
    uplink_buffers: Pool,
    regions: Option<Regions<'static>>,
}

fn state<B: Binder, T>(b: &mut B, name: &'static str) -> Result<&'static mut [T], BindError>
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable,
{
    let n = b.state_len(name)? / core::mem::size_of::<T>();
    b.state::<T>(name, n)
}

impl Ports for NatPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("from_rules", "PacketDesc"),
        PortDecl::tx("from_rules_free", "PacketDesc"),
        PortDecl::tx("to_uplink", "PacketDesc"),
        PortDecl::rx("to_uplink_free", "PacketDesc"),
        PortDecl::rx("from_csum", "PacketDesc"),
        PortDecl::tx("from_csum_free", "PacketDesc"),
        PortDecl::tx("to_clients", "PacketDesc"),
        PortDecl::rx("to_clients_free", "PacketDesc"),
        PortDecl::rx("clients", ClientEvent::NAME),
        PortDecl::rx("uplink", UplinkEvent::NAME),
        PortDecl::rx("from_rules_ctl", "RulesToNat"),
        PortDecl::tx("to_rules_ctl", "NatToRules"),
        PortDecl::pool_rw("client_buffers"),
        PortDecl::pool_rw("uplink_buffers"),
        PortDecl::state("conns"),
        PortDecl::state("conn_heads"),
        PortDecl::state("port_records"),
        PortDecl::state("port_heads"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(NatPorts {
            from_rules: b.rx("from_rules")?,
            from_rules_free: b.tx("from_rules_free")?,
            to_uplink: b.tx("to_uplink")?,
            to_uplink_free: b.rx("to_uplink_free")?,
            from_csum: b.rx("from_csum")?,
            from_csum_free: b.tx("from_csum_free")?,
            to_clients: b.tx("to_clients")?,
            to_clients_free: b.rx("to_clients_free")?,
            clients: b.msg_rx("clients", ClientEvent::NAME)?,
            uplink: b.msg_rx("uplink", UplinkEvent::NAME)?,
            from_rules_ctl: b.msg_rx("from_rules_ctl", "RulesToNat")?,
            to_rules_ctl: b.msg_tx("to_rules_ctl", "NatToRules")?,
            client_buffers: b.pool("client_buffers")?,
            uplink_buffers: b.pool("uplink_buffers")?,
            regions: Some(Regions {
                conns: state::<B, Conn>(b, "conns")?,
                conn_heads: state::<B, u32>(b, "conn_heads")?,
                records: state::<B, Record>(b, "port_records")?,
                record_heads: state::<B, u32>(b, "port_heads")?,
            }),
        })
    }
}

/// Table entries a call may walk for re-checks (as the client-down sweep).
const RECHECK_SCAN: u32 = 4096;

/// The component.
pub struct Nat {
    engine: Engine<'static>,
    client_custody: Custody,
    uplink_custody: Custody,
    /// Packets still to take from `from_rules` before re-check walks may
    /// run: those in the ring when the last `Changed` arrived, which the
    /// rules may have judged under the old policy.
    hold: u32,
}

impl Nat {
    /// The engine (for tests).
    pub fn engine(&self) -> &Engine<'static> {
        &self.engine
    }
}

impl Component for Nat {
    const NAME: &'static str = "nat";
    type Config = NatConfig;
    type Ports = NatPorts;

    fn init(config: NatConfig, p: &mut NatPorts, cx: &mut Context) -> Result<Self, Fault> {
        if !p.client_buffers.writable() || !p.uplink_buffers.writable() {
            return Err(Fault::Config("nat needs client_buffers and uplink_buffers mapped rw"));
        }
        if p.client_buffers.geometry().id() == p.uplink_buffers.geometry().id() {
            return Err(Fault::Config("client_buffers and uplink_buffers must be different pools"));
        }
        let regions = p.regions.take().ok_or(Fault::Internal("nat started twice"))?;
        let engine = Engine::new(&config, regions, cx.seed()).map_err(Fault::Config)?;
        Ok(Nat {
            engine,
            client_custody: Custody::new(*p.client_buffers.geometry()),
            uplink_custody: Custody::new(*p.uplink_buffers.geometry()),
            hold: 0,
        })
    }

    fn notified(&mut self, p: &mut NatPorts, cx: &mut Context) -> Result<(), Fault> {
        let now = cx.now().as_nanos();
        self.control(p, cx)?;
        self.returns(p, cx)?;
        self.outbound(p, cx, now)?;
        self.inbound(p, cx, now)?;
        if self.engine.tick(now, cx.budget()) {
            cx.again();
        }
        self.recheck(p, cx, now)?;
        if let Some(t) = self.engine.next_deadline() {
            cx.wake_at(moat_component::Instant::from_nanos(t));
        }
        p.to_uplink.flush(cx);
        p.to_clients.flush(cx);
        p.from_rules_free.flush(cx);
        p.from_csum_free.flush(cx);
        p.to_rules_ctl.flush(cx);
        p.from_rules.finish(cx)?;
        p.from_csum.finish(cx)?;
        // Returns wait for a batch: they need not wake the NAT one at a time.
        p.to_uplink_free.finish_returns(cx)?;
        p.to_clients_free.finish_returns(cx)
    }

    fn status(&self, out: &mut dyn Status) {
        self.engine.counters().each(|name, v| out.put(name, v));
        let t = self.engine.table();
        out.put("conn.live", u64::from(t.live()));
        out.put("conn.capacity", t.capacity() as u64);
        let mut name = [0u8; 48];
        for s in State::ALL {
            let prefix = b"conn.state.";
            let n = prefix.len() + s.name().len();
            name[..prefix.len()].copy_from_slice(prefix);
            name[prefix.len()..n].copy_from_slice(s.name().as_bytes());
            out.put(core::str::from_utf8(&name[..n]).unwrap_or("conn.state.?"), u64::from(t.count(s)));
        }
        out.put("ports.in_use", u64::from(self.engine.ports_in_use()));
        out.put("frag.trains", self.engine.trains() as u64);
        out.put("held.client_buffers", u64::from(self.client_custody.held()));
        out.put("held.uplink_buffers", u64::from(self.uplink_custody.held()));
        out.put("uplink.known", u64::from(self.engine.uplink().is_some()));
        let r = self.engine.rechecks();
        out.put("recheck.in_flight", r.in_flight() as u64);
        out.put("recheck.pending_slots", r.pending() as u64);
        out.put("recheck.hold", u64::from(self.hold));
        let (version, epoch) = r.rules_version();
        out.put("rules.version", u64::from(version));
        out.put("rules.epoch", u64::from(epoch));
    }

    fn state_bytes(config: &NatConfig, out: &mut dyn FnMut(&'static str, usize)) {
        config::Sizes::of(config.max_connections).bytes(out);
    }
}

/// Hands a buffer back on a free ring, which holds every buffer its peer
/// lent us and so cannot be full unless the peer lied about its size.
fn give_back(tx: &mut Tx<PacketDesc>, d: &PacketDesc) -> Result<(), Fault> {
    if tx.push(d)? { Ok(()) } else { Err(tx.fault()) }
}

/// The descriptor for a decision: the packet may have moved in its buffer
/// (an ICMP error built in front of it), and gets the interface it goes to.
/// A super-packet stays one (its segmentation in `meta` travels on).
fn forwarded(d: &PacketDesc, start: usize, dec: &Decision, iface: Iface) -> PacketDesc {
    let mut out = *d;
    // dec.start and start are offsets in one buffer (≤ 64 KiB).
    out.offset = (d.offset as usize - start + dec.start) as u32;
    out.len = dec.len as u32;
    if dec.start != start {
        // A packet built here: every checksum in it is fresh, and it is an
        // ordinary packet even if it quotes a super-packet.
        out.flags = flags::CSUM_OK;
        Gso::store(None, &mut out);
    }
    Meta { iface, verdict: Verdict::Accept }.store(&mut out);
    out
}

impl Nat {
    fn control(&mut self, p: &mut NatPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut buf = [0u8; 64];
        for _ in 0..cx.budget() {
            if !self.engine.accepts_client_events() {
                break;
            }
            match p.clients.recv::<ClientEvent>(&mut buf)? {
                None => break,
                Some(Ok(e)) => {
                    self.engine.client_event(&e);
                }
                Some(Err(_)) => self.engine.count(C::ControlBad),
            }
        }
        if self.engine.accepts_client_events() {
            p.clients.finish(cx)?;
        }
        let mut buf = [0u8; 32];
        for _ in 0..cx.budget() {
            match p.uplink.recv::<UplinkEvent>(&mut buf)? {
                None => break,
                Some(Ok(e)) => self.engine.uplink_event(&e),
                Some(Err(_)) => self.engine.count(C::ControlBad),
            }
        }
        p.uplink.finish(cx)?;
        // Always drained: the rules wait for room here before reading more
        // of our checks, so holding back would deadlock the exchange.
        let mut buf = [0u8; 256];
        for _ in 0..cx.budget() {
            match p.from_rules_ctl.recv::<RulesToNat>(&mut buf)? {
                None => break,
                Some(Ok(RulesToNat::Changed { version, epoch, slots })) => {
                    self.engine.rules_changed(version, epoch, &slots);
                    let queued = p.from_rules.ring().available().map_err(|_| p.from_rules.fault())?;
                    self.hold = self.hold.max(queued);
                }
                Some(Ok(RulesToNat::Denied { epoch, slot, batch, denied })) => {
                    self.engine.rules_denied(epoch, slot, batch, denied);
                }
                Some(Err(_)) => self.engine.count(C::ControlBad),
            }
        }
        p.from_rules_ctl.finish(cx)
    }

    /// Sends the rules the connections to re-check, as far as batches and
    /// ring space allow. Waits while `hold` packets judged before the last
    /// change are still to come: a connection they open must be walked too.
    fn recheck(&mut self, p: &mut NatPorts, cx: &mut Context, now: u64) -> Result<(), Fault> {
        if self.hold > 0 {
            return Ok(());
        }
        let mut scan = RECHECK_SCAN;
        let mut scratch = [0u8; 256];
        // Each batch sent takes one of the few batch slots: bounded.
        for _ in 0..=recheck::IN_FLIGHT {
            let Some(msg) = self.engine.next_check(now, &mut scan) else { break };
            let sent = p.to_rules_ctl.send(&msg, &mut scratch)?
                || (p.to_rules_ctl.wait_space()? && p.to_rules_ctl.send(&msg, &mut scratch)?);
            if !sent {
                // Woken when the rules free space.
                return Ok(());
            }
            self.engine.check_sent(now);
        }
        if scan == 0 {
            cx.again();
        }
        Ok(())
    }

    /// Buffers coming back from downstream go back upstream.
    fn returns(&mut self, p: &mut NatPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.to_uplink_free.pop()? else { break };
            match self.client_custody.give_back(&d) {
                Ok(_) => give_back(&mut p.from_rules_free, &d)?,
                Err(_) => self.engine.count(C::BadReturns),
            }
        }
        let client_pool = p.client_buffers.geometry().id();
        for _ in 0..cx.budget() {
            let Some(d) = p.to_clients_free.pop()? else { break };
            let (custody, free) = if d.pool == client_pool {
                (&mut self.client_custody, &mut p.from_rules_free)
            } else {
                (&mut self.uplink_custody, &mut p.from_csum_free)
            };
            match custody.give_back(&d) {
                Ok(_) => give_back(free, &d)?,
                Err(_) => self.engine.count(C::BadReturns),
            }
        }
        Ok(())
    }

    fn outbound(&mut self, p: &mut NatPorts, cx: &mut Context, now: u64) -> Result<(), Fault> {
        let mut room_up = p.to_uplink.free()?;
        let mut room_cl = p.to_clients.free()?;
        for _ in 0..cx.budget() {
            if room_up == 0 || room_cl == 0 {
                let _ = p.to_uplink.wait_space()?;
                let _ = p.to_clients.wait_space()?;
                break;
            }
            let Some(d) = p.from_rules.pop()? else { break };
            self.hold = self.hold.saturating_sub(1);
            if self.client_custody.receive(&d).is_err() {
                self.engine.count(C::BadDescriptors);
                continue;
            }
            let (buf, start) =
                p.client_buffers.buffer_mut(&d).map_err(|_| Fault::Internal("a held buffer is not writable"))?;
            let dec = self.engine.outbound(buf, start, d.len as usize, d.flags, d.meta, now);
            match dec.fate {
                Fate::Uplink => {
                    let pushed = p.to_uplink.push(&forwarded(&d, start, &dec, Iface::UPLINK))?;
                    debug_assert!(pushed, "room was checked");
                    room_up -= 1;
                }
                Fate::Client(n) => {
                    let iface = Iface::client(n).ok_or(Fault::Internal("client slot out of range"))?;
                    let pushed = p.to_clients.push(&forwarded(&d, start, &dec, iface))?;
                    debug_assert!(pushed, "room was checked");
                    room_cl -= 1;
                }
                Fate::Drop(_) => {
                    let _ = self.client_custody.give_back(&d);
                    give_back(&mut p.from_rules_free, &d)?;
                }
            }
        }
        Ok(())
    }

    fn inbound(&mut self, p: &mut NatPorts, cx: &mut Context, now: u64) -> Result<(), Fault> {
        let mut room = p.to_clients.free()?;
        for _ in 0..cx.budget() {
            if room == 0 {
                let _ = p.to_clients.wait_space()?;
                break;
            }
            let Some(d) = p.from_csum.pop()? else { break };
            if self.uplink_custody.receive(&d).is_err() {
                self.engine.count(C::BadDescriptors);
                continue;
            }
            if Gso::of(&d).is_err() {
                // Bits of `meta` no version defines: it would travel on.
                self.engine.count(C::DropBadMeta);
                let _ = self.uplink_custody.give_back(&d);
                give_back(&mut p.from_csum_free, &d)?;
                continue;
            }
            let (buf, start) =
                p.uplink_buffers.buffer_mut(&d).map_err(|_| Fault::Internal("a held buffer is not writable"))?;
            let dec = self.engine.inbound(buf, start, d.len as usize, d.flags, now);
            match dec.fate {
                Fate::Client(n) => {
                    let iface = Iface::client(n).ok_or(Fault::Internal("client slot out of range"))?;
                    let pushed = p.to_clients.push(&forwarded(&d, start, &dec, iface))?;
                    debug_assert!(pushed, "room was checked");
                    room -= 1;
                }
                Fate::Uplink | Fate::Drop(_) => {
                    let _ = self.uplink_custody.give_back(&d);
                    give_back(&mut p.from_csum_free, &d)?;
                }
            }
        }
        Ok(())
    }
}
