//! `netfront`: moat's Xen network frontend towards sys-net.
//!
//! ```text
//!  nat.to_uplink     -> from_nat  [netfront] ══ TX ring ══► sys-net's netback
//!  csum.from_uplink  <- to_csum   [netfront] ◄═ RX ring ═══ sys-net's netback
//!  xenstore.to_netfront -> from_xenstore [netfront] to_xenstore -> xenstore.from_netfront
//!                                        [netfront] to_nat_uplink -> nat.uplink
//! ```
//!
//! The xenstore component says which device is the uplink
//! ([`NetfrontCtl::Uplink`]: backend, MAC, MTU, address). netfront watches
//! the backend's `state`; at InitWait it grants the backend its two ring
//! pages, the pages it posts for received frames (writable) and the pages it
//! puts frames to send in (read-only), allocates an event channel — all
//! through its ops device — writes `tx-ring-ref`, `rx-ring-ref`,
//! `event-channel`, `request-rx-copy=1`, `feature-rx-notify=1`,
//! `feature-no-csum-offload=1` and Connected; when the backend is Connected,
//! traffic flows and the NAT learns the address ([`UplinkEvent::Up`]). When
//! the backend closes or goes away, netfront ends its grants (retrying while
//! the backend still maps them), closes the channel, tells the NAT
//! ([`UplinkEvent::Down`]) and says Closed; when the backend comes back
//! (Initialising or InitWait again), it starts over.
//!
//! No pool page is ever granted: a page holds other packets the backend must
//! not see. Frames to send are copied into netfront's own pages; frames
//! received are copied out of them into `uplink_buffers` before anyone
//! looks at them (the backend can write its pages while they are granted).
//!
//! The gateway: frames leave addressed to the gateway's MAC, learnt by ARP
//! for `gateway_ip` (asked once a second until known, every minute after).
//! Qubes gives the gateway through QubesDB (`/qubes-gateway`); until moat
//! has a qubesdb component, `gateway_ip` comes from this component's
//! configuration. Without it, frames go to `fe:ff:ff:ff:ff:ff`, the MAC of
//! every Qubes backend vif (sys-net routes whatever reaches that MAC).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod arp;
pub mod data;
pub mod xs;

use core::net::Ipv4Addr;

use moat_component::{
    BindError, Binder, BufferOwner, Channel, Component, Context, Custody, Duration, Fault, Instant, MsgRx, MsgTx,
    PacketDesc, Pool, PortDecl, Ports, Rx, Status, Tx,
};
use moat_control::{NetfrontCtl, UplinkEvent, XsRequest};
use moat_xen::ops::{Frontend, Role, XenOps};
use moat_xen::sring::FrontRing;
use serde::{Deserialize, Serialize};

use crate::xs::Phase;

/// Frame slots for sending: two per TX page.
pub const TX_SLOTS: usize = 2 * Frontend::TX_PAGES as usize;
/// Pages posted for receiving.
pub const RX_PAGES: usize = Frontend::RX_PAGES as usize;
/// How often to ask for the gateway until it answers.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// How often to ask again once known.
pub const ARP_REFRESH: Duration = Duration::from_secs(60);
/// How often to try ending grants the backend still uses.
pub const GRANT_RETRY: Duration = Duration::from_millis(100);

/// Configuration (`[component.netfront] config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetfrontConfig {
    /// The gateway to ARP for (Qubes: `/qubes-gateway`). Without it, frames
    /// go to the Qubes backend vif MAC.
    pub gateway_ip: Option<Ipv4Addr>,
}

/// The ports, as `docs/graph.md` names them.
pub struct NetfrontPorts {
    from_nat: Rx<PacketDesc>,
    from_nat_free: Tx<PacketDesc>,
    to_csum: Tx<PacketDesc>,
    to_csum_free: Rx<PacketDesc>,
    from_xenstore: MsgRx,
    to_xenstore: MsgTx,
    to_nat_uplink: MsgTx,
    uplink_buffers: Pool,
    client_buffers: Pool,
    xen: XenOps<Frontend>,
    xen_ch: Channel,
}

impl Ports for NetfrontPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("from_nat", "PacketDesc"),
        PortDecl::tx("from_nat_free", "PacketDesc"),
        PortDecl::tx("to_csum", "PacketDesc"),
        PortDecl::rx("to_csum_free", "PacketDesc"),
        PortDecl::rx("from_xenstore", NetfrontCtl::NAME),
        PortDecl::tx("to_xenstore", XsRequest::NAME),
        PortDecl::tx("to_nat_uplink", UplinkEvent::NAME),
        PortDecl::pool_rw("uplink_buffers"),
        PortDecl::pool_ro("client_buffers"),
        PortDecl::device("xen", Frontend::NAME),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        let (xen, xen_ch) = b.device::<XenOps<Frontend>>("xen")?;
        Ok(NetfrontPorts {
            from_nat: b.rx("from_nat")?,
            from_nat_free: b.tx("from_nat_free")?,
            to_csum: b.tx("to_csum")?,
            to_csum_free: b.rx("to_csum_free")?,
            from_xenstore: b.msg_rx("from_xenstore", NetfrontCtl::NAME)?,
            to_xenstore: b.msg_tx("to_xenstore", XsRequest::NAME)?,
            to_nat_uplink: b.msg_tx("to_nat_uplink", UplinkEvent::NAME)?,
            uplink_buffers: b.pool("uplink_buffers")?,
            client_buffers: b.pool("client_buffers")?,
            xen,
            xen_ch,
        })
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Packets sent.
    pub tx_packets: u64,
    /// Their bytes (frames).
    pub tx_bytes: u64,
    /// TX responses with an error status.
    pub tx_errors: u64,
    /// Packets received and passed on.
    pub rx_packets: u64,
    /// Their bytes (frames).
    pub rx_bytes: u64,
    /// RX responses with an error status, or naming bytes outside the page.
    pub rx_errors: u64,
    /// Multi-slot or extra-info frames dropped (not negotiated).
    pub rx_unasked: u64,
    /// Packets dropped: the gateway's MAC unknown.
    pub no_gateway: u64,
    /// Packets dropped: not connected.
    pub not_connected: u64,
    /// Packets dropped: too big for a slot.
    pub too_big: u64,
    /// IPv6 dropped (not carried yet).
    pub ipv6: u64,
    /// Other ethertypes received.
    pub ethertype: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// Responses naming slots or pages not outstanding (a broken backend).
    pub bad_responses: u64,
    /// Ring protocol violations (the backend's indices).
    pub ring_broken: u64,
    /// Descriptors refused.
    pub bad_descriptors: u64,
    /// Buffers handed back that were not lent.
    pub bad_returns: u64,
    /// Control messages that did not decode, or replies to nothing.
    pub bad_control: u64,
    /// Connect ops that failed.
    pub connect_failed: u64,
    /// Ops the runtime refused.
    pub ops_refused: u64,
    /// XenStore requests sent.
    pub xs_requests: u64,
    /// XenStore requests that failed.
    pub xs_failed: u64,
    /// Ops batches.
    pub batches: u64,
}

/// The component.
pub struct Netfront {
    config: NetfrontConfig,
    /// The handshake.
    pub link: xs::Link,
    owner: BufferOwner,
    from_nat: Custody,
    /// Grants of local pages (by page).
    grants: [Option<u32>; Frontend::GEOMETRY.local_pages as usize],
    handle: Option<u16>,
    port: u32,
    tx: Option<FrontRing>,
    rx: Option<FrontRing>,
    /// Which TX slots hold a frame the backend has not answered.
    tx_busy: [bool; TX_SLOTS],
    /// The RX page posted in each ring slot (`u8::MAX`: none).
    rx_slot_page: [u8; 256],
    /// Dropping responses until the end of a chain.
    rx_skipping: bool,
    gateway_mac: Option<[u8; 6]>,
    arp_at: Instant,
    grant_retry_at: Option<Instant>,
    notify: bool,
    /// What to tell the NAT next.
    tell_nat: Option<UplinkEvent>,
    now: Instant,
    counts: Counts,
}

impl Netfront {
    /// Counters.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The gateway's MAC, once known.
    pub fn gateway_mac(&self) -> Option<[u8; 6]> {
        self.gateway_mac
    }

    fn holds(&self) -> bool {
        self.handle.is_some() || self.grants.iter().any(Option::is_some)
    }
}

impl Component for Netfront {
    const NAME: &'static str = "netfront";
    type Config = NetfrontConfig;
    type Ports = NetfrontPorts;

    fn init(config: NetfrontConfig, p: &mut NetfrontPorts, cx: &mut Context) -> Result<Self, Fault> {
        if !p.uplink_buffers.writable() {
            return Err(Fault::Config("netfront owns uplink_buffers and must map it rw"));
        }
        let (ug, cg) = (*p.uplink_buffers.geometry(), *p.client_buffers.geometry());
        if ug.id() == cg.id() {
            return Err(Fault::Config("client_buffers and uplink_buffers must be different pools"));
        }
        if ug.buf_size() < 256 {
            return Err(Fault::Config("uplink buffers must hold at least 256 bytes"));
        }
        Ok(Netfront {
            config,
            link: xs::Link::default(),
            owner: BufferOwner::new(ug),
            from_nat: Custody::new(cg),
            grants: [None; Frontend::GEOMETRY.local_pages as usize],
            handle: None,
            port: 0,
            tx: None,
            rx: None,
            tx_busy: [false; TX_SLOTS],
            rx_slot_page: [u8::MAX; 256],
            rx_skipping: false,
            gateway_mac: None,
            arp_at: Instant::ZERO,
            grant_retry_at: None,
            notify: false,
            tell_nat: None,
            now: cx.now(),
            counts: Counts::default(),
        })
    }

    fn notified(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        self.now = cx.now();
        self.control(p, cx)?;
        self.returns(p, cx)?;
        if !p.xen.take_events().is_empty() {
            self.link.kick = true;
        }
        if let Some(n) = p.xen.poll() {
            self.completed(p, n);
            p.xen.finish();
        }
        // The rings are looked at on every call; a kick only says there is
        // reason to.
        self.link.kick = false;
        if self.link.phase == Phase::Connected {
            self.receive(p, cx)?;
            self.send(p, cx)?;
        } else {
            self.drop_from_nat(p, cx)?;
        }
        if p.xen.open() {
            self.plan(p);
            if p.xen.submit() {
                self.counts.batches += 1;
                cx.notify(p.xen_ch);
            }
        }
        self.xenstore(p)?;
        if let Some(e) = self.link.nat.take() {
            // The latest state is what the NAT needs.
            self.tell_nat = Some(e);
        }
        self.tell(p)?;
        p.to_csum.flush(cx);
        p.from_nat_free.flush(cx);
        p.to_xenstore.flush(cx);
        p.to_nat_uplink.flush(cx);
        p.to_csum_free.finish(cx)?;
        p.from_xenstore.finish(cx)?;
        if self.link.phase == Phase::Connected {
            if self.tx_free() > 0 {
                p.from_nat.finish(cx)?;
            } else {
                // No slot free: hand back what was read but do not re-arm;
                // the backend's responses (its event) bring us back.
                if p.from_nat.ring().release().needed() {
                    cx.notify(p.from_nat.channel());
                }
            }
            // Asking for the gateway is the only timer while connected (and
            // only when there is a gateway to ask for).
            if self.config.gateway_ip.is_some() {
                cx.wake_at(self.arp_at);
            }
        } else {
            p.from_nat.finish(cx)?;
        }
        if let Some(t) = self.grant_retry_at {
            cx.wake_at(t);
        }
        if !p.xen.in_flight() && (self.notify || self.link.kick || self.wants_ops()) {
            cx.again();
        }
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        let c = &self.counts;
        out.put("uplink.connected", u64::from(self.link.phase == Phase::Connected));
        out.put("uplink.connects", self.link.connects);
        out.put("uplink.disconnects", self.link.disconnects);
        out.put("uplink.gateway_known", u64::from(self.gateway_mac.is_some()));
        out.put("held.grants", self.grants.iter().flatten().count() as u64);
        out.put("held.channels", u64::from(self.handle.is_some()));
        out.put("held.watches", u64::from(self.link.watching));
        out.put("held.buffers", u64::from(self.owner.outstanding()));
        out.put("held.nat_buffers", u64::from(self.from_nat.held()));
        out.put("tx.packets", c.tx_packets);
        out.put("tx.bytes", c.tx_bytes);
        out.put("tx.errors", c.tx_errors);
        out.put("tx.in_flight", self.tx_busy.iter().filter(|b| **b).count() as u64);
        out.put("rx.packets", c.rx_packets);
        out.put("rx.bytes", c.rx_bytes);
        out.put("rx.errors", c.rx_errors);
        out.put("rx.unasked", c.rx_unasked);
        out.put("drop.no_gateway", c.no_gateway);
        out.put("drop.not_connected", c.not_connected);
        out.put("drop.too_big", c.too_big);
        out.put("drop.ipv6", c.ipv6);
        out.put("drop.ethertype", c.ethertype);
        out.put("arp.requests", c.arp_requests);
        out.put("arp.replies", c.arp_replies);
        out.put("error.bad_response", c.bad_responses);
        out.put("error.ring", c.ring_broken);
        out.put("error.bad_descriptor", c.bad_descriptors);
        out.put("error.bad_return", c.bad_returns);
        out.put("error.bad_control", c.bad_control);
        out.put("error.connect", c.connect_failed);
        out.put("error.ops_refused", c.ops_refused);
        out.put("xs.requests", c.xs_requests);
        out.put("xs.failed", c.xs_failed);
        out.put("ops.batches", c.batches);
    }
}

impl Netfront {
    fn control(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut buf = [0u8; 1024];
        for _ in 0..cx.budget() {
            match p.from_xenstore.recv::<NetfrontCtl>(&mut buf)? {
                None => break,
                Some(Err(_)) => self.counts.bad_control += 1,
                Some(Ok(NetfrontCtl::Uplink(u))) => {
                    if let Some(ev) = self.link.uplink(u) {
                        self.tell_nat = Some(ev);
                    }
                }
                Some(Ok(NetfrontCtl::UplinkGone { .. })) => self.link.gone(),
                Some(Ok(NetfrontCtl::Xs(r))) => {
                    if !self.link.reply(&r) {
                        self.counts.bad_control += 1;
                    } else if matches!(r, moat_control::XsReply::Failed { .. }) {
                        self.counts.xs_failed += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn xenstore(&mut self, p: &mut NetfrontPorts) -> Result<(), Fault> {
        if self.link.in_flight.is_some() {
            return Ok(());
        }
        let Some(req) = self.link.next_request(&self.grants, self.port) else { return Ok(()) };
        let mut scratch = [0u8; 2048];
        if p.to_xenstore.send(&req, &mut scratch)? {
            self.link.in_flight = Some(req.id());
            self.counts.xs_requests += 1;
        } else {
            self.link.unsend(&req);
            let _ = p.to_xenstore.wait_space()?;
        }
        Ok(())
    }

    fn tell(&mut self, p: &mut NetfrontPorts) -> Result<(), Fault> {
        if let Some(ev) = self.tell_nat {
            let mut scratch = [0u8; 64];
            if p.to_nat_uplink.send(&ev, &mut scratch)? {
                self.tell_nat = None;
            } else {
                let _ = p.to_nat_uplink.wait_space()?;
            }
        }
        Ok(())
    }

    fn returns(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.to_csum_free.pop()? else { break };
            if self.owner.reclaim(&d).is_err() {
                self.counts.bad_returns += 1;
            }
        }
        Ok(())
    }
}
