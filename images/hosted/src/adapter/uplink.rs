//! The uplink adapter: netfront's link-layer role over one TAP towards
//! sys-net.
//!
//! moat has one address on the uplink; it answers ARP for it and learns the
//! gateway's MAC from the gateway's ARP traffic, asking once a second until
//! it knows it (and every minute after, to follow a change). IPv4 frames
//! addressed to moat's MAC go into the graph tagged `Iface::UPLINK`; the NAT
//! decides what they may reach. Packets from the graph leave with the
//! gateway's MAC; while it is unknown they are dropped and counted.
//!
//! The uplink TAP offers no checksum offload, so the kernel completes every
//! checksum before moat sees the frame (csum refuses `CSUM_BLANK` from the
//! uplink, as a real netfront asks sys-net for full checksums).

use std::net::Ipv4Addr;

use moat_component::{
    BindError, Binder, Channel, Context, Duration, Fault, Instant, MsgTx, PacketDesc, PortDecl, Status,
};
use moat_control::UplinkEvent;
use moat_net::ethernet::{Mac, arp_op};
use moat_net::meta::{Gso, HEADROOM, Iface, Meta, Verdict, flags};

use super::Edge;
use super::link::{self, Frames, Kind};
use crate::config::Uplink as Config;
use crate::kinds::Task;

/// The ports it plays: netfront's.
pub const DECL: &[PortDecl] = &super::decl("uplink_buffers", "client_buffers");

/// How often to ask for the gateway's MAC until it answers.
const ARP_RETRY: Duration = Duration::from_secs(1);
/// How often to ask again once known.
const ARP_REFRESH: Duration = Duration::from_secs(60);

/// The adapter.
pub struct Uplink {
    edge: Edge,
    /// netfront's `to_nat_uplink` port, if the system wires it: the adapter
    /// tells the NAT the configured address there, as netfront tells it the
    /// address sys-net's toolstack gave.
    announce: Option<MsgTx>,
    announced: bool,
    config: Config,
    link: Box<dyn Frames>,
    gateway_mac: Option<Mac>,
    next_arp: Instant,
    arp_sent: u64,
    arp_answered: u64,
    /// The TAP said "no more" at the last read (see the clients adapter).
    drained: bool,
}

impl Uplink {
    /// Binds netfront's ports; `link` carries the uplink's frames.
    pub fn start<B: Binder>(b: &mut B, config: Config, link: Box<dyn Frames>) -> Result<Uplink, Fault> {
        let edge = Edge::bind(b, "uplink_buffers", "client_buffers")?;
        let announce = match b.msg_tx("to_nat_uplink", UplinkEvent::NAME) {
            Ok(tx) => Some(tx),
            Err(BindError::Missing(_)) => None,
            Err(e) => return Err(Fault::Bind(e)),
        };
        Ok(Uplink {
            edge,
            announce,
            announced: false,
            config,
            link,
            gateway_mac: None,
            next_arp: Instant::ZERO,
            arp_sent: 0,
            arp_answered: 0,
            drained: false,
        })
    }

    /// The gateway's MAC, once learnt.
    pub fn gateway_mac(&self) -> Option<Mac> {
        self.gateway_mac
    }

    fn arp(&mut self, a: &moat_net::ethernet::ArpPacket) {
        if Ipv4Addr::from(a.spa) == self.config.gateway {
            self.gateway_mac = Some(a.sha);
        }
        if a.oper.get() == arp_op::REQUEST && Ipv4Addr::from(a.tpa) == self.config.address {
            match link::answer_arp(&mut *self.link, a, self.config.mac) {
                Ok(()) => self.arp_answered += 1,
                Err(_) => self.edge.count("error.tap_write"),
            }
        }
    }

    fn receive(&mut self, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some((d, buf)) = self.edge.buffer()? else { return Ok(()) };
            let n = match self.link.recv(&mut buf[link::FRAME_AT..]) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.edge.unused(&d);
                    self.drained = true;
                    return Ok(());
                }
                Err(_) => {
                    self.edge.unused(&d);
                    self.edge.count("error.tap_read");
                    return Ok(());
                }
            };
            if n > buf.len() - link::FRAME_AT {
                // The kernel cut it to the buffer: a super-packet longer
                // than a buffer holds.
                self.edge.unused(&d);
                self.edge.count("drop.too_big");
                continue;
            }
            let kind = link::classify(buf, n);
            let vnet = link::Vnet::parse(&buf[link::FRAME_AT..]).unwrap_or_default();
            let verdict = match kind {
                Kind::Ipv4 { dst_mac, .. } if dst_mac != self.config.mac => Err("drop.not_for_us"),
                Kind::Ipv4 { len, .. } => Ok(len),
                Kind::Arp => {
                    let arp = link::arp_of(buf, n);
                    self.edge.unused(&d);
                    match arp {
                        Some(a) => self.arp(&a),
                        None => self.edge.count("drop.malformed"),
                    }
                    continue;
                }
                Kind::Ipv6 => Err("drop.ipv6"),
                Kind::Other => Err("drop.not_ip"),
                Kind::Malformed => Err("drop.malformed"),
            };
            match verdict {
                Ok(len) => {
                    let mut out = PacketDesc {
                        pool: d.pool,
                        flags: vnet.desc_flags(),
                        offset: d.offset + HEADROOM,
                        len: len as u32,
                        meta: 0,
                    };
                    // classify refused every segmentation the TAP never offers.
                    Gso::store(vnet.gso().ok().flatten(), &mut out);
                    Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut out);
                    self.edge.send(&out)?;
                }
                Err(why) => {
                    self.edge.unused(&d);
                    self.edge.count(why);
                }
            }
        }
        cx.again();
        Ok(())
    }
}

impl Task for Uplink {
    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault> {
        if let (Some(tx), false) = (self.announce.as_mut(), self.announced) {
            let up = UplinkEvent::Up { ipv4: self.config.address.octets(), mtu: 1500 };
            self.announced = tx.send(&up, &mut [0u8; 64])?;
            tx.flush(cx);
        }
        if cx.now() >= self.next_arp {
            let c = &self.config;
            match link::send_arp(&mut *self.link, arp_op::REQUEST, [0xff; 6], c.mac, c.address, [0; 6], c.gateway) {
                Ok(()) => self.arp_sent += 1,
                Err(_) => self.edge.count("error.tap_write"),
            }
            let wait = if self.gateway_mac.is_some() { ARP_REFRESH } else { ARP_RETRY };
            self.next_arp = cx.now().saturating_add(wait);
        }
        self.edge.reclaim_returns(cx)?;
        // Receive first: an ARP answer from the gateway in this batch lets
        // this call's outbound packets go. The TAP is read when epoll saw it
        // readable or the last read stopped before it was empty.
        if !self.drained || Channel::new(63).is_some_and(|ch| cx.signals().contains(ch)) {
            self.drained = false;
            self.receive(cx)?;
        }
        let Uplink { edge, config, link, gateway_mac, .. } = self;
        edge.drain(cx, |d, packet| {
            let mac = gateway_mac.ok_or("drop.gateway_unknown")?;
            let gso = Gso::of(d).map_err(|_| "drop.bad_meta")?;
            link::send_ipv4(&mut **link, mac, config.mac, packet, d.flags & flags::CSUM_OK != 0, gso)
        })?;
        cx.wake_at(if self.gateway_mac.is_some() {
            self.next_arp
        } else {
            self.next_arp.min(cx.now().saturating_add(ARP_RETRY))
        });
        self.edge.finish(cx)
    }

    fn status(&self, out: &mut dyn Status) {
        self.edge.status(out);
        out.put("arp.gateway_known", u64::from(self.gateway_mac.is_some()));
        out.put("arp.requests_sent", self.arp_sent);
        out.put("arp.answered", self.arp_answered);
    }

    fn fds(&self) -> Vec<std::os::fd::RawFd> {
        self.link.fd().into_iter().collect()
    }

    fn wants_input(&self) -> u64 {
        if self.edge.blocked { 0 } else { u64::MAX }
    }
}
