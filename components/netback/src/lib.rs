//! `netback`: the Xen network backend for moat's client VMs.
//!
//! ```text
//!  client netfront ══ TX ring ══► [netback] to_csum  -> csum.from_clients
//!  client netfront ◄═ RX ring ═══ [netback] from_nat <- nat.to_clients
//!  xenstore.to_netback -> from_xenstore   [netback]   to_xenstore -> xenstore.from_netback
//! ```
//!
//! One instance serves every client vif (up to `max_clients`, at most
//! `moat_xen::ops::Backend::CLIENTS`). Each vif is a XenBus backend
//! ([`vif`]): the xenstore component announces it (`VifUp`), netback writes
//! its features and InitWait, watches the frontend, reads its ring
//! references and channel, binds the channel and maps the two ring pages
//! (through its ops device: components make no hypercalls), and goes
//! Connected. When the frontend closes, the ring breaks or the toolstack
//! takes the vif offline, it gives everything back, says Closed, and — moat
//! being a driver domain — removes the backend directory itself.
//!
//! Traffic ([`data`]):
//!
//! * **TX** (from the client): requests are copied off the mapped ring once
//!   and parsed ([`tx`]); each frame is copied out of the guest's granted
//!   pages with grant copy into a `client_buffers` buffer netback owns, so
//!   nothing is ever parsed in memory the guest can still write. Malformed
//!   requests are answered with an error and counted; a frontend that breaks
//!   the protocol is disconnected. ARP requests are answered locally with
//!   the one backend MAC ([`link`]); IPv4 from any address but the vif's own
//!   is dropped (anti-spoofing); IPv4 from it leaves, Ethernet stripped, for
//!   csum with `csum_blank` carried as `CSUM_BLANK`.
//! * **RX** (to the client): descriptors from the NAT wait in a small queue
//!   per vif until the client posts a buffer; the link header and the packet
//!   are grant-copied into its page, and the response goes into the slot of
//!   its request, with `data_validated` when csum verified the packet.
//! * **Fairness**: at most `tx_per_round` packets in and `rx_per_round` out
//!   per vif per round, vifs taken in turn, so one flooding client cannot
//!   starve the others.
//!
//! Offloads: moat advertises `feature-rx-copy` and `feature-sg` only. It
//! takes checksum offload from clients (completing `csum_blank`), and
//! refuses GSO, multicast control, split event channels and multiple
//! queues (none is advertised; a frontend asking anyway is refused).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod data;
pub mod link;
pub mod tx;
pub mod vif;

use heapless::Vec;
use moat_component::{
    BindError, Binder, BufferOwner, Channel, Component, Context, Custody, Fault, MsgRx, MsgTx, PacketDesc, Pool,
    PortDecl, Ports, Rx, Status, Tx,
};
use moat_control::{NetbackCtl, XsReply, XsRequest};
use moat_xen::ops::{Backend, Role, XenOps};
use serde::{Deserialize, Serialize};

use crate::data::{RxPkt, TxPkt};
use crate::vif::{Phase, Vif};

/// Slots in the vif table.
pub const MAX_VIFS: usize = Backend::CLIENTS as usize;
/// Packets in one batch's copies, across vifs.
pub const TX_INFLIGHT: usize = 64;
/// Frames in one batch's deliveries, across vifs.
pub const RX_INFLIGHT: usize = 96;

/// Configuration (`[component.netback] config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetbackConfig {
    /// Most client vifs (at most [`MAX_VIFS`]).
    pub max_clients: u8,
    /// Packets waiting per client for RX buffers (a power of two).
    pub rx_queue: u16,
    /// Packets taken from one client per round.
    pub tx_per_round: u8,
    /// Packets given to one client per round.
    pub rx_per_round: u8,
}

impl Default for NetbackConfig {
    /// `rx_queue` holds a burst the uplink brings in one go (netfront posts
    /// ~190 buffers to sys-net): at 64 frames, downloads on real Xen lost
    /// frames here (`rx.queue_full`) and TCP retransmitted 51–117 times per
    /// 10 s; at 256, none and 1–4 (BENCHMARKS.md, "Real Xen: iperf3").
    /// It costs 16 B per frame per client slot: 256 KiB at 64 clients.
    fn default() -> Self {
        NetbackConfig { max_clients: 64, rx_queue: 256, tx_per_round: 16, rx_per_round: 16 }
    }
}

/// The ports, as `docs/graph.md` names them.
pub struct NetbackPorts {
    to_csum: Tx<PacketDesc>,
    to_csum_free: Rx<PacketDesc>,
    from_nat: Rx<PacketDesc>,
    from_nat_free: Tx<PacketDesc>,
    from_xenstore: MsgRx,
    to_xenstore: MsgTx,
    client_buffers: Pool,
    uplink_buffers: Pool,
    xen: XenOps<Backend>,
    xen_ch: Channel,
    rxq: Option<&'static mut [PacketDesc]>,
}

impl Ports for NetbackPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::tx("to_csum", "PacketDesc"),
        PortDecl::rx("to_csum_free", "PacketDesc"),
        PortDecl::rx("from_nat", "PacketDesc"),
        PortDecl::tx("from_nat_free", "PacketDesc"),
        PortDecl::rx("from_xenstore", NetbackCtl::NAME),
        PortDecl::tx("to_xenstore", XsRequest::NAME),
        PortDecl::pool_rw("client_buffers"),
        PortDecl::pool_ro("uplink_buffers"),
        PortDecl::device("xen", Backend::NAME),
        PortDecl::state("rx_queue"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        let (xen, xen_ch) = b.device::<XenOps<Backend>>("xen")?;
        let n = b.state_len("rx_queue")? / core::mem::size_of::<PacketDesc>();
        Ok(NetbackPorts {
            to_csum: b.tx("to_csum")?,
            to_csum_free: b.rx("to_csum_free")?,
            from_nat: b.rx("from_nat")?,
            from_nat_free: b.tx("from_nat_free")?,
            from_xenstore: b.msg_rx("from_xenstore", NetbackCtl::NAME)?,
            to_xenstore: b.msg_tx("to_xenstore", XsRequest::NAME)?,
            client_buffers: b.pool("client_buffers")?,
            uplink_buffers: b.pool("uplink_buffers")?,
            xen,
            xen_ch,
            rxq: Some(b.state::<PacketDesc>("rx_queue", n)?),
        })
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Connections made.
    pub connects: u64,
    /// Connections ended.
    pub disconnects: u64,
    /// Frontends disconnected for breaking the protocol.
    pub fatal: u64,
    /// Frontends whose keys were refused.
    pub bad_keys: u64,
    /// Connect ops that failed (bind or map).
    pub connect_failed: u64,
    /// Packets from clients, passed on.
    pub tx_packets: u64,
    /// Their bytes (frames).
    pub tx_bytes: u64,
    /// Malformed, by [`tx::Malformed`].
    pub tx_malformed: [u64; 6],
    /// Copies out of a client's page that failed (grant revoked, bad ref).
    pub tx_copy_failed: u64,
    /// Rounds that stopped for want of a buffer.
    pub tx_no_buffer: u64,
    /// Spoofed sources dropped.
    pub spoofed: u64,
    /// IPv6 dropped.
    pub ipv6: u64,
    /// Other ethertypes dropped.
    pub ethertype: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ARP frames not answered (not for us, or the reply queue full).
    pub arp_ignored: u64,
    /// Packets delivered to clients.
    pub rx_packets: u64,
    /// Their bytes (frames).
    pub rx_bytes: u64,
    /// Packets for a client not connected.
    pub rx_no_client: u64,
    /// Packets dropped because the client's queue was full.
    pub rx_queue_full: u64,
    /// Copies into a client's page that failed.
    pub rx_copy_failed: u64,
    /// Packets too big for a client's page, or of no IP version.
    pub rx_bad_packet: u64,
    /// Descriptors refused (wrong pool, duplicates).
    pub bad_descriptors: u64,
    /// Buffers handed back that were not lent.
    pub bad_returns: u64,
    /// XenStore requests sent.
    pub xs_requests: u64,
    /// XenStore requests that failed.
    pub xs_failed: u64,
    /// Control messages that did not decode, or replies to nothing.
    pub bad_control: u64,
    /// Ops the runtime refused (a bug: netback only asks for its own).
    pub ops_refused: u64,
    /// Ops batches submitted.
    pub batches: u64,
}

/// The component.
pub struct Netback {
    config: NetbackConfig,
    vifs: [Vif; MAX_VIFS],
    owner: BufferOwner,
    /// Buffers of each pool NAT lent us on `from_nat`: client, uplink.
    from_nat: [Custody; 2],
    tx_inflight: Vec<TxPkt, TX_INFLIGHT>,
    rx_inflight: Vec<RxPkt, RX_INFLIGHT>,
    /// The vif and kind of the XenStore request in flight.
    xs_in_flight: Option<u32>,
    /// Round-robin starting points.
    rr_data: usize,
    rr_xs: usize,
    /// A round stopped for want of a buffer: kick TX when one returns.
    starved: bool,
    /// Largest frame a buffer holds.
    max_frame: u16,
    counts: Counts,
}

impl Netback {
    /// Counters (for tests).
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The vif in `slot` (for tests).
    pub fn vif(&self, slot: u8) -> Option<&Vif> {
        self.vifs.get(usize::from(slot))
    }
}

impl Component for Netback {
    const NAME: &'static str = "netback";
    type Config = NetbackConfig;
    type Ports = NetbackPorts;

    fn init(config: NetbackConfig, p: &mut NetbackPorts, _cx: &mut Context) -> Result<Self, Fault> {
        if usize::from(config.max_clients) > MAX_VIFS || config.max_clients == 0 {
            return Err(Fault::Config("max_clients must be 1 to 64"));
        }
        if !config.rx_queue.is_power_of_two() || config.tx_per_round == 0 || config.rx_per_round == 0 {
            return Err(Fault::Config("rx_queue must be a power of two, the per-round limits positive"));
        }
        if !p.client_buffers.writable() {
            return Err(Fault::Config("netback owns client_buffers and must map it rw"));
        }
        let (cg, ug) = (*p.client_buffers.geometry(), *p.uplink_buffers.geometry());
        if cg.id() == ug.id() {
            return Err(Fault::Config("client_buffers and uplink_buffers must be different pools"));
        }
        for g in [cg, ug] {
            if g.buf_size() > moat_xen::PAGE_SIZE as u32 || g.buf_size() < 128 {
                return Err(Fault::Config("pool buffers must be 128 B to 4 KiB (a grant copy stays in one page)"));
            }
        }
        let need = usize::from(config.max_clients) * usize::from(config.rx_queue);
        if p.rxq.as_ref().is_none_or(|q| q.len() < need) {
            return Err(Fault::Config("rx_queue state is smaller than max_clients * rx_queue"));
        }
        let headroom = moat_net::meta::HEADROOM as u16 - moat_net::ethernet::HEADER_LEN as u16;
        Ok(Netback {
            max_frame: cg.buf_size() as u16 - headroom,
            config,
            vifs: [const { Vif::free() }; MAX_VIFS],
            owner: BufferOwner::new(cg),
            from_nat: [Custody::new(cg), Custody::new(ug)],
            tx_inflight: Vec::new(),
            rx_inflight: Vec::new(),
            xs_in_flight: None,
            rr_data: 0,
            rr_xs: 0,
            starved: false,
            counts: Counts::default(),
        })
    }

    fn notified(&mut self, p: &mut NetbackPorts, cx: &mut Context) -> Result<(), Fault> {
        self.control(p, cx)?;
        self.returns(p, cx)?;
        for h in p.xen.take_events().iter() {
            if let Some(v) = self.vifs.iter_mut().find(|v| v.handle == Some(h)) {
                v.tx_kick = true;
                v.rx_kick = true;
            }
        }
        if let Some(n) = p.xen.poll() {
            self.completed(p, n)?;
            p.xen.finish();
        }
        self.intake(p, cx)?;
        self.release_queues(p)?;
        if p.xen.open() {
            self.plan(p)?;
            if p.xen.submit() {
                self.counts.batches += 1;
                cx.notify(p.xen_ch);
            }
        }
        self.xenstore(p, cx)?;
        p.to_csum.flush(cx);
        p.from_nat_free.flush(cx);
        p.to_xenstore.flush(cx);
        p.to_csum_free.finish(cx)?;
        p.from_nat.finish(cx)?;
        p.from_xenstore.finish(cx)?;
        // Work left that no signal will bring back: run again.
        if !p.xen.in_flight() && self.work_left() {
            cx.again();
        }
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        let c = &self.counts;
        let count = |f: fn(&Vif) -> bool| self.vifs.iter().filter(|v| f(v)).count() as u64;
        out.put("vif.connected", count(|v| v.phase == Phase::Connected));
        out.put("vif.known", count(|v| v.phase != Phase::Free));
        out.put("vif.connects", c.connects);
        out.put("vif.disconnects", c.disconnects);
        out.put("held.channels", count(|v| v.handle.is_some()));
        out.put("held.maps", self.vifs.iter().map(|v| u64::from(v.tx_mapped) + u64::from(v.rx_mapped)).sum());
        out.put("held.watches", count(|v| v.watching));
        out.put("held.buffers", u64::from(self.owner.outstanding()));
        out.put("held.nat_buffers", u64::from(self.from_nat[0].held() + self.from_nat[1].held()));
        out.put("rx.queued", self.vifs.iter().map(|v| u64::from(v.rxq_len)).sum());
        out.put("tx.packets", c.tx_packets);
        out.put("tx.bytes", c.tx_bytes);
        for (m, n) in tx::Malformed::ALL.iter().zip(c.tx_malformed) {
            out.put(m.name(), n);
        }
        out.put("tx.copy_failed", c.tx_copy_failed);
        out.put("tx.no_buffer", c.tx_no_buffer);
        out.put("drop.spoofed", c.spoofed);
        out.put("drop.ipv6", c.ipv6);
        out.put("drop.ethertype", c.ethertype);
        out.put("arp.replies", c.arp_replies);
        out.put("arp.ignored", c.arp_ignored);
        out.put("rx.packets", c.rx_packets);
        out.put("rx.bytes", c.rx_bytes);
        out.put("rx.no_client", c.rx_no_client);
        out.put("rx.queue_full", c.rx_queue_full);
        out.put("rx.copy_failed", c.rx_copy_failed);
        out.put("rx.bad_packet", c.rx_bad_packet);
        out.put("error.fatal", c.fatal);
        out.put("error.bad_keys", c.bad_keys);
        out.put("error.connect", c.connect_failed);
        out.put("error.bad_descriptor", c.bad_descriptors);
        out.put("error.bad_return", c.bad_returns);
        out.put("error.bad_control", c.bad_control);
        out.put("error.ops_refused", c.ops_refused);
        out.put("xs.requests", c.xs_requests);
        out.put("xs.failed", c.xs_failed);
        out.put("ops.batches", c.batches);
    }

    fn state_bytes(config: &NetbackConfig, out: &mut dyn FnMut(&'static str, usize)) {
        let n = usize::from(config.max_clients.min(MAX_VIFS as u8)) * usize::from(config.rx_queue);
        out("rx_queue", n.max(1) * core::mem::size_of::<PacketDesc>());
    }
}

impl Netback {
    /// Messages from the xenstore component.
    fn control(&mut self, p: &mut NetbackPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut buf = [0u8; 1024];
        for _ in 0..cx.budget() {
            let msg = match p.from_xenstore.recv::<NetbackCtl>(&mut buf)? {
                None => break,
                Some(Err(_)) => {
                    self.counts.bad_control += 1;
                    continue;
                }
                Some(Ok(m)) => m,
            };
            match msg {
                NetbackCtl::VifUp(info) => {
                    let slot = usize::from(info.slot);
                    if slot >= usize::from(self.config.max_clients) {
                        self.counts.bad_control += 1;
                        continue;
                    }
                    let v = &mut self.vifs[slot];
                    if v.phase == Phase::Free {
                        v.start(info);
                    } else {
                        // The old life of this slot is still going away.
                        v.down();
                        v.next_up = Some(info);
                    }
                }
                NetbackCtl::VifDown { slot, frontend_id, devid } => {
                    let matches = self
                        .vifs
                        .get_mut(usize::from(slot))
                        .filter(|v| v.info.as_ref().is_some_and(|i| i.frontend_id == frontend_id && i.devid == devid));
                    match matches {
                        Some(v) => {
                            v.next_up = None;
                            v.down();
                        }
                        None => self.counts.bad_control += 1,
                    }
                }
                NetbackCtl::Xs(reply) => self.xs_reply(&reply),
            }
        }
        Ok(())
    }

    fn xs_reply(&mut self, reply: &XsReply) {
        if let XsReply::Event { token, .. } = reply {
            let (slot, life) = ((token >> 16) as usize, *token as u16);
            // A late event for a watch being removed finds nobody.
            if let Some(v) = self.vifs.get_mut(slot).filter(|v| v.life == life && v.phase != Phase::Free) {
                v.xs |= vif::need::READ_STATE;
            }
            return;
        }
        let id = match reply {
            XsReply::Done { id }
            | XsReply::Value { id, .. }
            | XsReply::Directory { id, .. }
            | XsReply::Transaction { id, .. }
            | XsReply::Failed { id, .. } => *id,
            XsReply::Event { .. } => return,
        };
        if self.xs_in_flight != Some(id) {
            self.counts.bad_control += 1;
            return;
        }
        self.xs_in_flight = None;
        if matches!(reply, XsReply::Failed { .. }) {
            self.counts.xs_failed += 1;
        }
        let (slot, life, kind) = vif::split_id(id);
        let Some(v) = self.vifs.get_mut(usize::from(slot)).filter(|v| v.life == life) else { return };
        if vif::on_reply(v, kind, reply).is_err() {
            self.counts.bad_keys += 1;
        }
        if vif::finished(v) {
            let next = v.next_up.take();
            let life = v.life;
            *v = Vif::free();
            v.life = life;
            if let Some(info) = next {
                v.start(info);
            }
        }
    }

    /// Sends the next XenStore request, if none is in flight.
    fn xenstore(&mut self, p: &mut NetbackPorts, cx: &mut Context) -> Result<(), Fault> {
        if self.xs_in_flight.is_some() {
            return Ok(());
        }
        let n = self.vifs.len();
        for k in 0..n {
            let slot = (self.rr_xs + k) % n;
            let v = &mut self.vifs[slot];
            if v.xs == 0 {
                continue;
            }
            // Needs go lowest bit first; the removal waits out its grace.
            if v.xs & v.xs.wrapping_neg() == vif::need::REMOVE
                && let Some(at) = v.closed_at.map(|t| t.saturating_add(vif::REMOVE_GRACE))
                && cx.now() < at
            {
                cx.wake_at(at);
                continue;
            }
            let saved = (v.xs, v.state_written);
            let Some(req) = vif::next_request(v, slot as u8) else { continue };
            let mut scratch = [0u8; 2048];
            if !p.to_xenstore.send(&req, &mut scratch)? {
                // No room: put the need back and wait for space.
                (v.xs, v.state_written) = saved;
                let _ = p.to_xenstore.wait_space()?;
                return Ok(());
            }
            if matches!(req, XsRequest::Write { .. }) && v.state_written == Some(moat_xen::xenbus::XenbusState::Closed)
            {
                v.closed_at = Some(cx.now());
            }
            self.xs_in_flight = Some(req.id());
            self.counts.xs_requests += 1;
            self.rr_xs = (slot + 1) % n;
            return Ok(());
        }
        Ok(())
    }

    /// Buffers csum hands back.
    fn returns(&mut self, p: &mut NetbackPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.to_csum_free.pop()? else { break };
            match self.owner.reclaim(&d) {
                Ok(()) => {
                    if self.starved {
                        self.starved = false;
                        for v in self.vifs.iter_mut().filter(|v| v.connected()) {
                            v.tx_kick = true;
                        }
                    }
                }
                Err(_) => self.counts.bad_returns += 1,
            }
        }
        Ok(())
    }

    fn work_left(&self) -> bool {
        self.vifs.iter().any(|v| {
            (v.connected() && (v.tx_kick || (v.rx_kick && (v.rxq_len > 0 || v.arp_len[usize::from(v.arp_head)] > 0))))
                || v.notify
                || v.want_bind
                || v.want_map_tx
                || v.want_map_rx
                || (v.phase == Phase::Closing && v.ops == 0)
        })
    }
}

/// The device type name netback's `xen` port asks for.
pub const DEVICE: &str = Backend::NAME;

const _: () = assert!(MAX_VIFS <= Backend::GEOMETRY.local_pages as usize);
