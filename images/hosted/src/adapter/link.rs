//! What both adapters do at the link layer: receive a frame straight into a
//! packet buffer so the IP packet lands at `HEADROOM`, classify it, answer
//! ARP, and send IP packets out with an Ethernet header in front.

use std::io::Result;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use moat_net::ethernet::{self, Arp, Ethernet, Mac, arp_op, ethertype};
use moat_net::meta::HEADROOM;

use crate::tap::{VNET_DATA_VALID, VNET_HDR_LEN, VNET_NEEDS_CSUM};

/// Where frames come from and go to: a TAP device, or a capture in replay.
/// Every frame is preceded by a `virtio_net_hdr` of [`VNET_HDR_LEN`] bytes.
pub trait Frames {
    /// One frame into `buf`, if one is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>>;
    /// Sends one frame made of `parts`, back to back.
    fn send(&mut self, parts: &[&[u8]]) -> Result<()>;
    /// A descriptor to poll for input, if any.
    fn fd(&self) -> Option<RawFd> {
        None
    }
}

/// Where a received frame starts in its buffer: vnet header, then Ethernet,
/// then the IP packet exactly at `HEADROOM`.
pub const FRAME_AT: usize = HEADROOM as usize - ethernet::HEADER_LEN - VNET_HDR_LEN;

/// The part of a `virtio_net_hdr` moat uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vnet {
    /// `VNET_NEEDS_CSUM` / `VNET_DATA_VALID`.
    pub flags: u8,
    /// `gso_type` (must be 0: no segmentation offload was offered).
    pub gso_type: u8,
}

impl Vnet {
    /// Reads the header at the front of `b`.
    pub fn parse(b: &[u8]) -> Option<Vnet> {
        (b.len() >= VNET_HDR_LEN).then(|| Vnet { flags: b[0], gso_type: b[1] })
    }

    /// A header with `flags` and everything else zero.
    pub fn bytes(flags: u8) -> [u8; VNET_HDR_LEN] {
        let mut h = [0u8; VNET_HDR_LEN];
        h[0] = flags;
        h
    }

    /// The descriptor flags this header means (`moat_net::meta::flags`).
    pub fn desc_flags(self) -> u16 {
        use moat_net::meta::flags;
        let mut f = 0;
        if self.flags & VNET_NEEDS_CSUM != 0 {
            f |= flags::CSUM_BLANK;
        }
        if self.flags & VNET_DATA_VALID != 0 {
            f |= flags::PEER_VALIDATED;
        }
        f
    }
}

/// What a received frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An IPv4 packet of this many bytes (Ethernet payload, padding
    /// included), at `HEADROOM`.
    Ipv4 {
        /// Source MAC.
        src_mac: Mac,
        /// Destination MAC.
        dst_mac: Mac,
        /// Payload bytes.
        len: usize,
    },
    /// An ARP packet.
    Arp,
    /// IPv6 (not carried yet).
    Ipv6,
    /// Anything else.
    Other,
    /// Shorter than a vnet and Ethernet header, or with segmentation
    /// offload the adapter never offered.
    Malformed,
}

/// Classifies the frame in `buf[FRAME_AT..FRAME_AT + n]` (as read).
pub fn classify(buf: &[u8], n: usize) -> Kind {
    let Some(frame) = buf.get(FRAME_AT..FRAME_AT + n) else { return Kind::Malformed };
    let Some(vnet) = Vnet::parse(frame) else { return Kind::Malformed };
    if vnet.gso_type != 0 {
        return Kind::Malformed;
    }
    let Ok(eth) = Ethernet::parse(&frame[VNET_HDR_LEN..]) else { return Kind::Malformed };
    match eth.ethertype() {
        ethertype::IPV4 => {
            Kind::Ipv4 { src_mac: eth.header().src, dst_mac: eth.header().dst, len: eth.payload().len() }
        }
        ethertype::ARP => Kind::Arp,
        ethertype::IPV6 => Kind::Ipv6,
        _ => Kind::Other,
    }
}

/// The ARP packet of a frame read into `buf` (see [`classify`]).
pub fn arp_of(buf: &[u8], n: usize) -> Option<moat_net::ethernet::ArpPacket> {
    let frame = buf.get(FRAME_AT + VNET_HDR_LEN..FRAME_AT + n)?;
    let eth = Ethernet::parse(frame).ok()?;
    Arp::parse(eth.payload()).ok().map(|a| *a.packet())
}

/// Sends an ARP packet from `sha`/`spa` to `tha`/`tpa` (Ethernet destination
/// `eth_dst`).
pub fn send_arp(
    io: &mut dyn Frames,
    oper: u16,
    eth_dst: Mac,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Result<()> {
    let mut frame = [0u8; VNET_HDR_LEN + ethernet::HEADER_LEN + ethernet::ARP_LEN];
    let (_, rest) = frame.split_at_mut(VNET_HDR_LEN);
    ethernet::write_header(rest, eth_dst, sha, ethertype::ARP).map_err(|_| std::io::Error::other("arp"))?;
    ethernet::write_arp(&mut rest[ethernet::HEADER_LEN..], oper, sha, spa, tha, tpa)
        .map_err(|_| std::io::Error::other("arp"))?;
    io.send(&[&frame])
}

/// Answers an ARP request: "`target` is at `mac`".
pub fn answer_arp(io: &mut dyn Frames, req: &moat_net::ethernet::ArpPacket, mac: Mac) -> Result<()> {
    send_arp(io, arp_op::REPLY, req.sha, mac, Ipv4Addr::from(req.tpa), req.sha, Ipv4Addr::from(req.spa))
}

/// Sends the IP packet `packet` to `dst` from `src`, marking it validated
/// when `csum_ok` (the kernel then skips checking it again).
pub fn send_ipv4(io: &mut dyn Frames, dst: Mac, src: Mac, packet: &[u8], csum_ok: bool) -> Result<()> {
    let vnet = Vnet::bytes(if csum_ok { VNET_DATA_VALID } else { 0 });
    let mut eth = [0u8; ethernet::HEADER_LEN];
    ethernet::write_header(&mut eth, dst, src, ethertype::IPV4).map_err(|_| std::io::Error::other("eth"))?;
    io.send(&[&vnet, &eth, packet])
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &Mac) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The destination address of an IPv4 packet, if it has a whole header.
pub fn ipv4_dst(packet: &[u8]) -> Option<Ipv4Addr> {
    (packet.len() >= 20 && packet[0] >> 4 == 4).then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
}

/// The source address of an IPv4 packet, if it has a whole header.
pub fn ipv4_src(packet: &[u8]) -> Option<Ipv4Addr> {
    (packet.len() >= 20 && packet[0] >> 4 == 4).then(|| Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]))
}

/// A frame queue that is not a device: what replay feeds and collects, and
/// what tests use to play the kernel side of a TAP.
#[derive(Debug, Default)]
pub struct Queue {
    /// Frames waiting to be received (vnet header included).
    pub rx: std::collections::VecDeque<Vec<u8>>,
    /// Frames sent (vnet header included).
    pub tx: Vec<Vec<u8>>,
}

impl Frames for Queue {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        let Some(f) = self.rx.pop_front() else { return Ok(None) };
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Ok(Some(n))
    }

    fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.tx.push(parts.concat());
        Ok(())
    }
}

impl<F: Frames + ?Sized> Frames for Box<F> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        (**self).recv(buf)
    }
    fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        (**self).send(parts)
    }
    fn fd(&self) -> Option<RawFd> {
        (**self).fd()
    }
}

/// Shared queue handle for replay and tests: the adapter owns one clone,
/// the driver another.
#[derive(Clone, Debug, Default)]
pub struct SharedQueue(pub std::rc::Rc<std::cell::RefCell<Queue>>);

impl Frames for SharedQueue {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.0.borrow_mut().recv(buf)
    }
    fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.0.borrow_mut().send(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(parse_mac("fe:ff:ff:ff:ff:ff"), Some([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]));
        assert_eq!(format_mac(&[0, 0x16, 0x3e, 1, 2, 0xab]), "00:16:3e:01:02:ab");
        for bad in ["", "fe:ff", "fe:ff:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:f", "gg:ff:ff:ff:ff:ff", "fe-ff-ff-ff-ff-ff"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_are_classified_and_ip_lands_at_headroom() {
        let mut buf = vec![0u8; 2048];
        let ip = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 137, 0, 5], [10, 138, 0, 1], 64)
            .udp(1000, 53);
        let mut frame = Vnet::bytes(VNET_NEEDS_CSUM).to_vec();
        ip.write(&mut frame, b"hello").unwrap();
        buf[FRAME_AT..FRAME_AT + frame.len()].copy_from_slice(&frame);
        let k = classify(&buf, frame.len());
        assert_eq!(k, Kind::Ipv4 { src_mac: [2; 6], dst_mac: [4; 6], len: 20 + 8 + 5 });
        assert_eq!(buf[HEADROOM as usize] >> 4, 4, "the IP header starts at HEADROOM");
        assert_eq!(ipv4_src(&buf[HEADROOM as usize..]), Some(Ipv4Addr::new(10, 137, 0, 5)));
        assert_eq!(Vnet::parse(&frame).unwrap().desc_flags(), moat_net::meta::flags::CSUM_BLANK);
        assert_eq!(classify(&buf, 12), Kind::Malformed);
        buf[FRAME_AT + 1] = 1; // gso_type TCPv4: never offered
        assert_eq!(classify(&buf, frame.len()), Kind::Malformed);
    }

    #[test]
    fn arp_requests_get_answers() {
        let mut q = Queue::default();
        let client = [0, 0x16, 0x3e, 0, 0, 1];
        send_arp(&mut q, arp_op::REQUEST, [0xff; 6], client, [10, 137, 0, 5].into(), [0; 6], [10, 137, 0, 1].into())
            .unwrap();
        let req = q.tx.pop().unwrap();
        let mut buf = vec![0u8; 256];
        buf[FRAME_AT..FRAME_AT + req.len()].copy_from_slice(&req);
        assert_eq!(classify(&buf, req.len()), Kind::Arp);
        let a = arp_of(&buf, req.len()).unwrap();
        answer_arp(&mut q, &a, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        let reply = q.tx.pop().unwrap();
        let parsed = etherparse::SlicedPacket::from_ethernet(&reply[VNET_HDR_LEN..]).unwrap();
        let Some(etherparse::NetSlice::Arp(arp)) = parsed.net else { panic!("not ARP: {parsed:?}") };
        assert_eq!(arp.operation(), etherparse::ArpOperation::REPLY);
        assert_eq!(arp.sender_hw_addr(), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(arp.sender_protocol_addr(), [10, 137, 0, 1]);
        assert_eq!(arp.target_hw_addr(), client);
        assert_eq!(arp.target_protocol_addr(), [10, 137, 0, 5]);
    }
}
