//! Synthetic traffic for an image's self-test: components that play the
//! edges of a graph.
//!
//! [`Traffic`] owns a packet pool. It writes numbered IPv4/UDP packets (valid
//! checksums, client 10.137.0.5 to 10.138.0.1) into its buffers and sends
//! them on `to_graph`; whatever comes out of the graph on `from_graph` (in
//! its own pool or the `replies` pool) is checked against what the
//! [`Scenario`] says the graph does to a packet, handed back on
//! `from_graph_free`, and the buffers come home on `to_graph_free`. Its
//! counters say how it went; `done` turns 1 when every packet went through
//! and every buffer is home.
//!
//! [`reflector::Reflector`] plays the far side of a firewall (netfront's
//! place): it answers every packet that reaches it with a reply from the
//! server, in a pool of its own, so the replies travel the inbound path back
//! to the client. [`clients::Clients`] announces the client to the
//! components that keep per-client state (xenstore's role).
//!
//! It runs under the same contract as every component, so the self-test
//! exercises the real binder, scheduler and rings of the image it runs in.
//! To test a new chain, wire it between `to_graph` and `from_graph` and, if
//! the chain changes packets, add a [`Scenario`] that says how.
#![forbid(unsafe_code)]

pub mod clients;
pub mod packet;
pub mod reflector;

pub use packet::packet;

use moat_component::{
    BindError, Binder, BufferOwner, Component, Context, Custody, Fault, PacketDesc, PortDecl, Ports, Rx, Status, Tx,
};
use serde::{Deserialize, Serialize};

/// Bytes left in front of each packet (`moat_net::meta::HEADROOM`).
pub const HEADROOM: u32 = 64;

/// What the graph under test does to each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scenario {
    /// Every packet comes out unchanged and in order (relays such as echo).
    Unchanged,
    /// Every packet is answered, in order, by the server: a UDP reply from
    /// 10.138.0.1:7 to the packet's own source address and port, carrying
    /// the same payload, with valid checksums (whatever translation happened
    /// on the way out was undone on the way back).
    Replies,
}

/// Configuration.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TrafficConfig {
    /// Packets to send.
    pub packets: u32,
    /// UDP payload bytes per packet (at least 4: the sequence number).
    pub payload: u16,
    /// What to expect.
    pub scenario: Scenario,
    /// The `meta` word of the packets sent (`moat_net::meta`: bits 0–7 the
    /// interface, 0 for client slot 0).
    pub meta: u32,
}

/// The traffic component's ports.
pub struct TrafficPorts {
    to_graph: Tx<PacketDesc>,
    to_graph_free: Rx<PacketDesc>,
    from_graph: Rx<PacketDesc>,
    from_graph_free: Tx<PacketDesc>,
    pool: moat_component::Pool,
    replies: moat_component::Pool,
}

impl Ports for TrafficPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::tx("to_graph", "PacketDesc"),
        PortDecl::rx("to_graph_free", "PacketDesc"),
        PortDecl::rx("from_graph", "PacketDesc"),
        PortDecl::tx("from_graph_free", "PacketDesc"),
        PortDecl::pool_rw("pool"),
        PortDecl::pool_ro("replies"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(TrafficPorts {
            to_graph: b.tx("to_graph")?,
            to_graph_free: b.rx("to_graph_free")?,
            from_graph: b.rx("from_graph")?,
            from_graph_free: b.tx("from_graph_free")?,
            pool: b.pool("pool")?,
            replies: b.pool("replies")?,
        })
    }
}

/// The component.
pub struct Traffic {
    cfg: TrafficConfig,
    owner: BufferOwner,
    custody: Custody,
    reply_custody: Custody,
    sent: u32,
    received: u32,
    reclaimed: u32,
    bad_content: u64,
    bad_order: u64,
    bad_descriptor: u64,
    bad_return: u64,
    start_ns: Option<u64>,
    first_ns: Option<u64>,
    done_ns: Option<u64>,
}

impl Traffic {
    /// True once every packet went through and every buffer is home.
    pub fn done(&self) -> bool {
        self.received == self.cfg.packets && self.reclaimed == self.cfg.packets
    }

    /// True if anything went wrong.
    pub fn failed(&self) -> bool {
        self.bad_content + self.bad_order + self.bad_descriptor + self.bad_return > 0
    }

    fn check(&mut self, got: &[u8]) {
        let mut want = [0u8; 2048];
        let n = packet(self.received, self.cfg.payload, &mut want);
        let bad = self.bad_order + self.bad_content;
        match self.cfg.scenario {
            Scenario::Unchanged => {
                if got.get(28..32) != want.get(28..32) {
                    self.bad_order += 1;
                } else if got != &want[..n] {
                    self.bad_content += 1;
                }
            }
            Scenario::Replies => {
                let sent = packet::client_flow(self.received);
                let reply = packet::Flow { src: sent.dst, dst: sent.src, sport: sent.dport, dport: sent.sport };
                let mut data = [0u8; 1500];
                let len = packet::payload(self.received, self.cfg.payload, &mut data);
                match packet::parse(got) {
                    Some((_, _, d)) if d.get(..4) != data.get(..4) => self.bad_order += 1,
                    Some((flow, ttl, d)) if flow == reply && ttl > 0 && d == &data[..len] => {}
                    _ => self.bad_content += 1,
                }
            }
        }
        if bad == 0 && self.bad_order + self.bad_content > 0 {
            // Once: the first mismatch says where to look; counters say the rest.
            defmt::warn!("traffic: packet {=u32} came out wrong ({=usize} bytes)", self.received, got.len());
        }
    }
}

impl Component for Traffic {
    const NAME: &'static str = "selftest-traffic";
    type Config = TrafficConfig;
    type Ports = TrafficPorts;

    fn init(cfg: TrafficConfig, p: &mut TrafficPorts, _cx: &mut Context) -> Result<Self, Fault> {
        let geo = *p.pool.geometry();
        if !p.pool.writable() {
            return Err(Fault::Config("the traffic pool must be writable"));
        }
        if cfg.payload < 4 || u32::from(cfg.payload) + 28 + HEADROOM > geo.buf_size() || cfg.payload > 1400 {
            return Err(Fault::Config("payload does not fit a buffer"));
        }
        let reply_custody = Custody::new(*p.replies.geometry());
        defmt::info!("traffic: sending {=u32} packets of {=u16} payload bytes", cfg.packets, cfg.payload);
        Ok(Traffic {
            cfg,
            owner: BufferOwner::new(geo),
            custody: Custody::new(geo),
            reply_custody,
            sent: 0,
            received: 0,
            reclaimed: 0,
            bad_content: 0,
            bad_order: 0,
            bad_descriptor: 0,
            bad_return: 0,
            start_ns: None,
            first_ns: None,
            done_ns: None,
        })
    }

    fn notified(&mut self, p: &mut TrafficPorts, cx: &mut Context) -> Result<(), Fault> {
        let now = cx.now().as_nanos();
        self.start_ns.get_or_insert(now);
        // Buffers coming home.
        for _ in 0..cx.budget() {
            let Some(d) = p.to_graph_free.pop()? else { break };
            match self.owner.reclaim(&d) {
                Ok(()) => self.reclaimed += 1,
                Err(_) => self.bad_return += 1,
            }
        }
        // Packets out of the graph: check, then hand the buffer back.
        let room = p.from_graph_free.free()?.min(cx.budget());
        for _ in 0..room {
            let Some(d) = p.from_graph.pop()? else { break };
            let (pool, custody) = if d.pool == p.pool.geometry().id() {
                (&p.pool, &mut self.custody)
            } else {
                (&p.replies, &mut self.reply_custody)
            };
            if custody.receive(&d).is_err() {
                self.bad_descriptor += 1;
                continue;
            }
            match pool.packet(&d) {
                Ok(bytes) => {
                    let bytes: &[u8] = bytes;
                    let mut copy = [0u8; 2048];
                    let n = bytes.len().min(copy.len());
                    copy[..n].copy_from_slice(&bytes[..n]);
                    self.check(&copy[..n]);
                }
                Err(_) => self.bad_descriptor += 1,
            }
            self.first_ns.get_or_insert(now);
            self.received += 1;
            let custody = if d.pool == p.pool.geometry().id() { &mut self.custody } else { &mut self.reply_custody };
            if custody.give_back(&d).is_err() || !p.from_graph_free.push(&d)? {
                return Err(Fault::Internal("from_graph_free refused a buffer it lent"));
            }
        }
        // New packets, as far as buffers, ring space and budget allow.
        let room = p.to_graph.free()?.min(cx.budget());
        for _ in 0..room {
            if self.sent == self.cfg.packets {
                break;
            }
            let Some(whole) = self.owner.alloc() else { break };
            let d = PacketDesc { offset: whole.offset + HEADROOM, len: 0, meta: self.cfg.meta, ..whole };
            let (buf, start) = p.pool.buffer_mut(&d).map_err(|_| Fault::Internal("own buffer refused"))?;
            let len = packet(self.sent, self.cfg.payload, &mut buf[start..]);
            let d = PacketDesc { len: len as u32, ..d };
            if !p.to_graph.push(&d)? {
                return Err(Fault::Internal("to_graph full despite room"));
            }
            self.sent += 1;
        }
        // Out of ring space with packets left: ask to be woken when a slot
        // frees (running out of buffers needs nothing: their return wakes us).
        if self.sent < self.cfg.packets && p.to_graph.free()? == 0 && p.to_graph.wait_space()? {
            cx.again();
        }
        if self.done() && self.done_ns.is_none() {
            self.done_ns = Some(now);
            defmt::info!("traffic: all {=u32} packets through, every buffer home", self.received);
        }
        p.to_graph.flush(cx);
        p.from_graph_free.flush(cx);
        p.to_graph_free.finish(cx)?;
        p.from_graph.finish(cx)?;
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        out.put("sent", u64::from(self.sent));
        out.put("received", u64::from(self.received));
        out.put("reclaimed", u64::from(self.reclaimed));
        out.put("bad.content", self.bad_content);
        out.put("bad.order", self.bad_order);
        out.put("bad.descriptor", self.bad_descriptor);
        out.put("bad.return", self.bad_return);
        out.put("failed", u64::from(self.failed()));
        out.put("done", u64::from(self.done()));
        out.put("start_ns", self.start_ns.unwrap_or(0));
        out.put("first_packet_ns", self.first_ns.unwrap_or(0));
        out.put("done_ns", self.done_ns.unwrap_or(0));
    }
}
