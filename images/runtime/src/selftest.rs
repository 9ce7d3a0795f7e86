//! Synthetic traffic for an image's self-test: a component that plays both
//! edges of a graph.
//!
//! [`Traffic`] owns a packet pool. It writes numbered IPv4/UDP packets (valid
//! checksums, client 10.137.0.5 to 10.138.0.1) into its buffers and sends
//! them on `to_graph`; whatever comes out of the graph on `from_graph` is
//! checked against what the [`Scenario`] says the graph does to a packet,
//! handed back on `from_graph_free`, and the buffers come home on
//! `to_graph_free`. Its counters say how it went; `done` turns 1 when every
//! packet went through and every buffer is home.
//!
//! It runs under the same contract as every component, so the self-test
//! exercises the real binder, scheduler and rings of the image it runs in.
//! To test a new chain, wire it between `to_graph` and `from_graph` and, if
//! the chain changes packets, add a [`Scenario`] that says how.
#![forbid(unsafe_code)]

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
}

/// The traffic component's ports.
pub struct TrafficPorts {
    to_graph: Tx<PacketDesc>,
    to_graph_free: Rx<PacketDesc>,
    from_graph: Rx<PacketDesc>,
    from_graph_free: Tx<PacketDesc>,
    pool: moat_component::Pool,
}

impl Ports for TrafficPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::tx("to_graph", "PacketDesc"),
        PortDecl::rx("to_graph_free", "PacketDesc"),
        PortDecl::rx("from_graph", "PacketDesc"),
        PortDecl::tx("from_graph_free", "PacketDesc"),
        PortDecl::pool_rw("pool"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(TrafficPorts {
            to_graph: b.tx("to_graph")?,
            to_graph_free: b.rx("to_graph_free")?,
            from_graph: b.rx("from_graph")?,
            from_graph_free: b.tx("from_graph_free")?,
            pool: b.pool("pool")?,
        })
    }
}

/// The component.
pub struct Traffic {
    cfg: TrafficConfig,
    owner: BufferOwner,
    custody: Custody,
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
        defmt::info!("traffic: sending {=u32} packets of {=u16} payload bytes", cfg.packets, cfg.payload);
        Ok(Traffic {
            cfg,
            owner: BufferOwner::new(geo),
            custody: Custody::new(geo),
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
            if self.custody.receive(&d).is_err() {
                self.bad_descriptor += 1;
                continue;
            }
            match p.pool.packet(&d) {
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
            if self.custody.give_back(&d).is_err() || !p.from_graph_free.push(&d)? {
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
            let d = PacketDesc { offset: whole.offset + HEADROOM, len: 0, ..whole };
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

/// The RFC 1071 sum of `data`, folded, not complemented.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Writes packet number `seq` (IPv4 + UDP, `payload` bytes whose first four
/// are `seq`) into `out`; returns its length. `out` must hold it.
pub fn packet(seq: u32, payload: u16, out: &mut [u8]) -> usize {
    let src = [10, 137, 0, 5];
    let dst = [10, 138, 0, 1];
    let udp_len = 8 + payload;
    let total = 20 + udp_len;
    let ip = &mut out[..20];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = !(sum(0, ip) as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let sport = 1024 + (seq % 60000) as u16;
    let udp = &mut out[20..total as usize];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&7u16.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[8..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in udp[12..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    let pseudo = sum(sum(sum(0, &src), &dst), &[0, 17]) + u32::from(udp_len);
    let mut c = !(sum(sum(pseudo, &[]), udp) as u16);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    total as usize
}
