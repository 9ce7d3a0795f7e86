//! The clients adapter: netback's link-layer role over one TAP per client.
//!
//! From a client: a frame is read straight into a `client_buffers` buffer
//! (vnet header and Ethernet in the headroom, the IP packet at `HEADROOM`).
//! ARP requests for any address but the client's own are answered with
//! [`CLIENT_GATEWAY_MAC`] (Qubes' netback convention: the client's whole
//! world is one MAC away). An IPv4 packet goes on only if its source MAC and
//! source address are the client's (anti-spoofing; counted `drop.spoofed`),
//! tagged with the client's slot, `CSUM_BLANK` if the kernel left the
//! checksum partial.
//!
//! To a client: the packet's destination address picks the client; if the
//! descriptor names a client slot too, the two must agree.

use std::net::Ipv4Addr;

use moat_component::{Binder, Channel, Context, Fault, PacketDesc, PortDecl, Status};
use moat_net::ethernet::arp_op;
use moat_net::meta::{Gso, HEADROOM, Iface, Meta, Verdict, flags};

use super::Edge;
use super::link::{self, Frames, Kind};
use crate::config::{CLIENT_GATEWAY_MAC, Client};
use crate::kinds::Task;

/// The ports it plays: netback's.
pub const DECL: &[PortDecl] = &super::decl("client_buffers", "uplink_buffers");

/// Per-client counters.
#[derive(Clone, Debug, Default)]
struct Counts {
    rx: u64,
    tx: u64,
    arp_answered: u64,
    spoofed: u64,
}

/// The adapter.
pub struct Clients {
    edge: Edge,
    clients: Vec<Client>,
    links: Vec<Box<dyn Frames>>,
    counts: Vec<Counts>,
    first: usize,
    /// Per client: its TAP said "no more" (`EAGAIN`) at the last read, so
    /// it is read again only when epoll says it is readable.
    drained: Vec<bool>,
}

impl Clients {
    /// Binds netback's ports; `links[i]` carries client `i`'s frames.
    pub fn start<B: Binder>(b: &mut B, clients: Vec<Client>, links: Vec<Box<dyn Frames>>) -> Result<Clients, Fault> {
        if clients.len() != links.len() || clients.len() > usize::from(Iface::MAX_CLIENTS) {
            return Err(Fault::Config("one link per client, at most 254"));
        }
        let edge = Edge::bind(b, "client_buffers", "uplink_buffers")?;
        let counts = vec![Counts::default(); clients.len()];
        let drained = vec![false; clients.len()];
        Ok(Clients { edge, clients, links, counts, first: 0, drained })
    }

    fn slot_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.clients.iter().position(|c| c.ip == ip)
    }

    /// Reads up to a budget of frames from client `i`.
    fn receive(&mut self, i: usize, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some((d, buf)) = self.edge.buffer()? else { return Ok(()) };
            let n = match self.links[i].recv(&mut buf[link::FRAME_AT..]) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.edge.unused(&d);
                    self.drained[i] = true;
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
            let c = &self.clients[i];
            let verdict: Result<usize, &'static str> = match kind {
                Kind::Ipv4 { src_mac, .. } if src_mac != c.mac => Err("drop.wrong_mac"),
                Kind::Ipv4 { dst_mac, .. } if dst_mac != CLIENT_GATEWAY_MAC => Err("drop.not_for_gateway"),
                Kind::Ipv4 { len, .. } => match link::ipv4_src(&buf[HEADROOM as usize..HEADROOM as usize + len]) {
                    Some(src) if src == c.ip => Ok(len),
                    Some(_) => {
                        self.counts[i].spoofed += 1;
                        Err("drop.spoofed")
                    }
                    None => Err("drop.malformed"),
                },
                Kind::Arp => {
                    let arp = link::arp_of(buf, n);
                    self.edge.unused(&d);
                    match arp {
                        Some(a) if a.oper.get() == arp_op::REQUEST && a.tpa != c.ip.octets() && a.sha == c.mac => {
                            match link::answer_arp(&mut *self.links[i], &a, CLIENT_GATEWAY_MAC) {
                                Ok(()) => self.counts[i].arp_answered += 1,
                                Err(_) => self.edge.count("error.tap_write"),
                            }
                        }
                        _ => self.edge.count("arp.ignored"),
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
                    Meta { iface: Iface::client(i as u8).expect("checked at start"), verdict: Verdict::None }
                        .store(&mut out);
                    self.counts[i].rx += 1;
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

impl Task for Clients {
    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault> {
        self.edge.reclaim_returns(cx)?;
        let Clients { edge, clients, links, counts, .. } = self;
        edge.drain(cx, |d, packet| {
            let dst = link::ipv4_dst(packet).ok_or("drop.to_client_not_ipv4")?;
            let slot = clients.iter().position(|c| c.ip == dst).ok_or("drop.to_unknown_client")?;
            let tagged = Meta::of(d).ok().and_then(|m| m.iface.client_index());
            if tagged.is_some_and(|t| usize::from(t) != slot) {
                return Err("drop.to_client_mismatch");
            }
            let gso = Gso::of(d).map_err(|_| "drop.bad_meta")?;
            let csum_ok = d.flags & flags::CSUM_OK != 0;
            link::send_ipv4(&mut *links[slot], clients[slot].mac, CLIENT_GATEWAY_MAC, packet, csum_ok, gso)?;
            counts[slot].tx += 1;
            Ok(())
        })?;
        // Take turns at being first, so no client always gets the buffers.
        // A TAP is read when epoll saw it readable or when the last read
        // stopped before it was empty: not once per call and client.
        let n = self.clients.len();
        for k in 0..n {
            let i = (self.first + k) % n;
            if self.drained[i] && !Channel::new(63 - i as u8).is_some_and(|ch| cx.signals().contains(ch)) {
                continue;
            }
            self.drained[i] = false;
            self.receive(i, cx)?;
            if self.edge.blocked {
                break;
            }
        }
        if n > 0 {
            self.first = (self.first + 1) % n;
        }
        self.edge.finish(cx)
    }

    fn status(&self, out: &mut dyn Status) {
        self.edge.status(out);
        for (c, k) in self.clients.iter().zip(&self.counts) {
            let p = c.ip;
            out.put(&format!("client[{p}].rx"), k.rx);
            out.put(&format!("client[{p}].tx"), k.tx);
            out.put(&format!("client[{p}].arp_answered"), k.arp_answered);
            out.put(&format!("client[{p}].drop.spoofed"), k.spoofed);
        }
    }

    fn fds(&self) -> Vec<std::os::fd::RawFd> {
        self.links.iter().filter_map(|l| l.fd()).collect()
    }

    fn wants_input(&self) -> u64 {
        if self.edge.blocked { 0 } else { u64::MAX }
    }
}

impl Clients {
    /// The slot of the client with address `ip` (for tests).
    pub fn slot(&self, ip: Ipv4Addr) -> Option<usize> {
        self.slot_of(ip)
    }
}
