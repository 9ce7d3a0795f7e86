//! Shared test helpers: an engine over leaked host memory, packet builders
//! and an independent checker (etherparse).
#![allow(dead_code)]

use core::net::Ipv4Addr;

use moat_nat::config::Sizes;
use moat_nat::conn::Conn;
use moat_nat::ports::Record;
use moat_nat::{Decision, Engine, NatConfig, Regions};
use moat_net::ipv4::Ipv4;
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_net::tcp::Tcp;

pub const UPLINK: [u8; 4] = [10, 138, 0, 2];
pub const GATEWAY: [u8; 4] = [10, 137, 0, 1];
pub const SERVER: [u8; 4] = [93, 184, 216, 34];
pub const REAL_DNS: [u8; 4] = [10, 138, 0, 1];

pub fn client_ip(slot: u8) -> [u8; 4] {
    [10, 137, slot, 5]
}

pub fn config() -> NatConfig {
    let mut c = NatConfig::new(Ipv4Addr::from(UPLINK));
    c.gateway_ip = Some(Ipv4Addr::from(GATEWAY));
    c.dns_servers = [Ipv4Addr::from(REAL_DNS), Ipv4Addr::new(10, 138, 0, 3)];
    c
}

fn leak<T: Clone + Default>(n: usize) -> &'static mut [T] {
    Box::leak(vec![T::default(); n].into_boxed_slice())
}

/// An engine over fresh zeroed memory, with clients 0..clients up.
pub fn engine(cfg: &NatConfig, clients: u8) -> Engine<'static> {
    let s = Sizes::of(cfg.max_connections);
    let regions = Regions {
        conns: leak::<Conn>(s.conns),
        conn_heads: leak::<u32>(s.conn_heads),
        records: leak::<Record>(s.records),
        record_heads: leak::<u32>(s.record_heads),
    };
    let mut e = Engine::new(cfg, regions, [42; 32]).unwrap();
    for slot in 0..clients {
        assert!(e.client_event(&up(slot)));
    }
    e
}

pub fn up(slot: u8) -> moat_control::ClientEvent {
    moat_control::ClientEvent::Up { slot, ipv4: client_ip(slot), ipv6: None, mac: [0, 0x16, 0x3e, 0, 0, slot] }
}

pub fn meta(slot: u8, verdict: Verdict) -> u32 {
    let mut d = moat_component::PacketDesc::default();
    Meta { iface: Iface::client(slot).unwrap(), verdict }.store(&mut d);
    d.meta
}

/// A packet in a buffer with headroom, as a pool buffer holds it.
pub struct Buf {
    pub bytes: Vec<u8>,
    pub start: usize,
    pub len: usize,
}

impl Buf {
    pub fn new(packet: &[u8]) -> Self {
        let start = HEADROOM as usize;
        let mut bytes = vec![0u8; 2048];
        bytes[start..start + packet.len()].copy_from_slice(packet);
        Buf { bytes, start, len: packet.len() }
    }
    pub fn packet(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }
    pub fn out(&mut self, e: &mut Engine, slot: u8, verdict: Verdict, now: u64) -> Decision {
        let d = e.outbound(&mut self.bytes, self.start, self.len, flags::CSUM_OK, meta(slot, verdict), now);
        (self.start, self.len) = (d.start, d.len);
        d
    }
    pub fn inb(&mut self, e: &mut Engine, now: u64) -> Decision {
        let d = e.inbound(&mut self.bytes, self.start, self.len, flags::CSUM_OK, now);
        (self.start, self.len) = (d.start, d.len);
        d
    }
}

pub mod tcpf {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// A TCP segment with these flags and valid checksums.
pub fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = moat_net::testing::tcp_v4(src, dst, sport, dport, payload);
    p[33] = flags;
    let mut ip = Ipv4::parse(&mut p[..]).unwrap();
    let pseudo = ip.pseudo_header();
    Tcp::parse(ip.payload_mut()).unwrap().fill_checksum(pseudo);
    p
}

pub fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    moat_net::testing::udp_v4(src, dst, sport, dport, payload)
}

/// Sets the TTL (fixing the header checksum).
pub fn with_ttl(mut p: Vec<u8>, ttl: u8) -> Vec<u8> {
    Ipv4::parse(&mut p[..]).unwrap().set_ttl(ttl);
    p
}

/// (src, dst, sport, dport) of a TCP/UDP packet, or ident in both ports for ICMP queries.
pub fn tuple(p: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
    let s = moat_net::ip::classify(p).unwrap();
    let (a, b) = match s.transport {
        moat_net::ip::Transport::Tcp { src_port, dst_port, .. } => (src_port, dst_port),
        moat_net::ip::Transport::Udp { src_port, dst_port } => (src_port, dst_port),
        moat_net::ip::Transport::Icmp { ident: Some(i), .. } => (i, i),
        _ => (0, 0),
    };
    let v4 = |a| match a {
        core::net::IpAddr::V4(a) => a.octets(),
        _ => panic!("v4"),
    };
    (v4(s.src), v4(s.dst), a, b)
}

/// Every checksum in the packet (IPv4 header, TCP/UDP/ICMP) recomputed by
/// etherparse, an implementation independent of moat-net, matches.
pub fn checksums_right(p: &[u8]) -> bool {
    use etherparse::{SlicedPacket, TransportSlice};
    let s = SlicedPacket::from_ip(p).expect("etherparse parses it");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else { return false };
    let h = ip.header().to_header();
    if h.calc_header_checksum() != h.header_checksum {
        return false;
    }
    match s.transport {
        Some(TransportSlice::Tcp(t)) => t.calc_checksum_ipv4(h.source, h.destination).unwrap() == t.checksum(),
        Some(TransportSlice::Udp(u)) => {
            u.checksum() == 0 || u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap() == u.checksum()
        }
        Some(TransportSlice::Icmpv4(m)) => m.icmp_type().calc_checksum(m.payload()) == m.checksum(),
        _ => true,
    }
}
