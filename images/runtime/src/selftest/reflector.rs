//! The far side of a firewall in the self-test (netfront's place): every
//! UDP packet that reaches it is checked and answered.
//!
//! A packet on `from_graph` must be IPv4/UDP with valid checksums, a TTL
//! left, and come from `expect_src` (the firewall's uplink address when a
//! NAT translated it, else the client's) to the server. The reply goes out
//! in a buffer of the reflector's own pool on `to_graph`: from the server's
//! address and port to the packet's source address and port, with the same
//! payload. The packet's buffer goes back on `from_graph_free`; replies come
//! home on `to_graph_free`. Counters say what arrived and what was wrong.
#![forbid(unsafe_code)]

use moat_component::{
    BindError, Binder, BufferOwner, Component, Context, Custody, Fault, PacketDesc, PortDecl, Ports, Rx, Status, Tx,
};
use serde::{Deserialize, Serialize};

use super::HEADROOM;
use super::packet::{self, Flow};

/// Configuration.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ReflectorConfig {
    /// The source address packets must arrive from.
    pub expect_src: [u8; 4],
    /// The `meta` word of the replies (0xff: from the uplink).
    pub meta: u32,
}

/// The reflector's ports (named like [`super::Traffic`]'s).
pub struct ReflectorPorts {
    from_graph: Rx<PacketDesc>,
    from_graph_free: Tx<PacketDesc>,
    to_graph: Tx<PacketDesc>,
    to_graph_free: Rx<PacketDesc>,
    pool: moat_component::Pool,
    packets: moat_component::Pool,
}

impl Ports for ReflectorPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("from_graph", "PacketDesc"),
        PortDecl::tx("from_graph_free", "PacketDesc"),
        PortDecl::tx("to_graph", "PacketDesc"),
        PortDecl::rx("to_graph_free", "PacketDesc"),
        PortDecl::pool_rw("pool"),
        PortDecl::pool_ro("packets"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(ReflectorPorts {
            from_graph: b.rx("from_graph")?,
            from_graph_free: b.tx("from_graph_free")?,
            to_graph: b.tx("to_graph")?,
            to_graph_free: b.rx("to_graph_free")?,
            pool: b.pool("pool")?,
            packets: b.pool("packets")?,
        })
    }
}

/// The component.
pub struct Reflector {
    cfg: ReflectorConfig,
    owner: BufferOwner,
    custody: Custody,
    received: u64,
    reflected: u64,
    reclaimed: u64,
    bad_packet: u64,
    bad_source: u64,
    bad_descriptor: u64,
    bad_return: u64,
}

impl Reflector {
    /// Answers the packet in `d`, if it is what a server should get.
    fn reflect(&mut self, p: &mut ReflectorPorts, d: &PacketDesc) -> Result<(), Fault> {
        let mut copy = [0u8; 2048];
        let n = match p.packets.packet(d) {
            Ok(bytes) => {
                let n = bytes.len().min(copy.len());
                copy[..n].copy_from_slice(&bytes[..n]);
                n
            }
            Err(_) => {
                self.bad_descriptor += 1;
                return Ok(());
            }
        };
        let Some((flow, ttl, data)) = packet::parse(&copy[..n]) else {
            self.bad_packet += 1;
            return Ok(());
        };
        if flow.src != self.cfg.expect_src || flow.dst != packet::SERVER || ttl == 0 {
            self.bad_source += 1;
            return Ok(());
        }
        // Room was checked by the caller: one buffer and one slot per packet.
        let Some(whole) = self.owner.alloc() else { return Err(Fault::Internal("reply buffer vanished")) };
        let reply = PacketDesc { offset: whole.offset + HEADROOM, len: 0, meta: self.cfg.meta, ..whole };
        let (buf, start) = p.pool.buffer_mut(&reply).map_err(|_| Fault::Internal("own buffer refused"))?;
        let back = Flow { src: flow.dst, dst: flow.src, sport: flow.dport, dport: flow.sport };
        let len = packet::udp(back, self.reflected as u16, data, &mut buf[start..]);
        if len == 0 || !p.to_graph.push(&PacketDesc { len: len as u32, ..reply })? {
            return Err(Fault::Internal("to_graph refused a reply despite room"));
        }
        self.reflected += 1;
        Ok(())
    }
}

impl Component for Reflector {
    const NAME: &'static str = "selftest-reflector";
    type Config = ReflectorConfig;
    type Ports = ReflectorPorts;

    fn init(cfg: ReflectorConfig, p: &mut ReflectorPorts, _cx: &mut Context) -> Result<Self, Fault> {
        if !p.pool.writable() {
            return Err(Fault::Config("the reflector's pool must be writable"));
        }
        defmt::info!("reflector: answering packets from {=[u8]:?}", cfg.expect_src[..]);
        Ok(Reflector {
            cfg,
            owner: BufferOwner::new(*p.pool.geometry()),
            custody: Custody::new(*p.packets.geometry()),
            received: 0,
            reflected: 0,
            reclaimed: 0,
            bad_packet: 0,
            bad_source: 0,
            bad_descriptor: 0,
            bad_return: 0,
        })
    }

    fn notified(&mut self, p: &mut ReflectorPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.to_graph_free.pop()? else { break };
            match self.owner.reclaim(&d) {
                Ok(()) => self.reclaimed += 1,
                Err(_) => self.bad_return += 1,
            }
        }
        // Take a packet only when its reply has a buffer and a slot.
        let room = p.to_graph.free()?.min(p.from_graph_free.free()?).min(cx.budget());
        for _ in 0..room {
            if self.owner.available() == 0 {
                break;
            }
            let Some(d) = p.from_graph.pop()? else { break };
            if self.custody.receive(&d).is_err() {
                self.bad_descriptor += 1;
                continue;
            }
            self.received += 1;
            self.reflect(p, &d)?;
            if self.custody.give_back(&d).is_err() || !p.from_graph_free.push(&d)? {
                return Err(Fault::Internal("from_graph_free refused a buffer it lent"));
            }
        }
        if p.to_graph.free()? == 0 && p.to_graph.wait_space()? {
            cx.again();
        }
        p.to_graph.flush(cx);
        p.from_graph_free.flush(cx);
        p.to_graph_free.finish(cx)?;
        p.from_graph.finish(cx)?;
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        out.put("received", self.received);
        out.put("reflected", self.reflected);
        out.put("reclaimed", self.reclaimed);
        out.put("bad.packet", self.bad_packet);
        out.put("bad.source", self.bad_source);
        out.put("bad.descriptor", self.bad_descriptor);
        out.put("bad.return", self.bad_return);
    }
}
