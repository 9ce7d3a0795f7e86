//! What both adapters do at the link layer: receive a frame straight into a
//! packet buffer so the IP packet lands at `HEADROOM`, classify it, answer
//! ARP, and send IP packets out with an Ethernet header in front.

use std::io::Result;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use moat_net::checksum::Checksum;
use moat_net::ethernet::{self, Arp, Ethernet, Mac, arp_op, ethertype};
use moat_net::meta::{Gso, GsoKind, HEADROOM};

use crate::tap::{VNET_DATA_VALID, VNET_HDR_LEN, VNET_NEEDS_CSUM};

/// Where frames come from and go to: a TAP device, or a capture in replay.
/// Every frame is preceded by a `virtio_net_hdr` of [`VNET_HDR_LEN`] bytes.
pub trait Frames {
    /// One frame into `buf`, if one is waiting: its length, which is more
    /// than `buf.len()` if it did not fit (and was cut).
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

/// A `virtio_net_hdr` (little-endian fields, as a TAP on a little-endian
/// machine has them unless told otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vnet {
    /// `VNET_NEEDS_CSUM` / `VNET_DATA_VALID`.
    pub flags: u8,
    /// `gso_type`: [`GSO_NONE`] or [`GSO_TCPV4`] (the only kind the TAPs
    /// offer; `GSO_ECN` is not offered, so never set).
    pub gso_type: u8,
    /// Bytes of headers in front of the payload (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment, for a super-packet.
    pub gso_size: u16,
    /// Where the partial checksum's coverage starts (from the frame's start).
    pub csum_start: u16,
    /// Where in it the checksum field is.
    pub csum_offset: u16,
}

/// A `virtio_net_hdr` asking for segmentation the TAPs never offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadGso;

/// `virtio_net_hdr.gso_type`: not a super-packet.
pub const GSO_NONE: u8 = 0;
/// `virtio_net_hdr.gso_type`: a TCP/IPv4 super-packet (TSO).
pub const GSO_TCPV4: u8 = 1;

impl Vnet {
    /// Reads the header at the front of `b`.
    pub fn parse(b: &[u8]) -> Option<Vnet> {
        let b = b.get(..VNET_HDR_LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(Vnet {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// A header with `flags` and everything else zero.
    pub fn bytes(flags: u8) -> [u8; VNET_HDR_LEN] {
        Vnet { flags, ..Vnet::default() }.encode()
    }

    /// The header's bytes.
    pub fn encode(self) -> [u8; VNET_HDR_LEN] {
        let mut h = [0u8; VNET_HDR_LEN];
        h[0] = self.flags;
        h[1] = self.gso_type;
        for (i, v) in [self.hdr_len, self.gso_size, self.csum_start, self.csum_offset].into_iter().enumerate() {
            h[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    /// The segmentation it asks for: `Ok(None)` for an ordinary frame, `Err`
    /// for a kind the TAPs never offer or a super-packet of size 0.
    pub fn gso(self) -> std::result::Result<Option<Gso>, BadGso> {
        match self.gso_type {
            GSO_NONE => Ok(None),
            GSO_TCPV4 => Gso::new(GsoKind::TcpV4, self.gso_size).map(Some).ok_or(BadGso),
            _ => Err(BadGso),
        }
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
    /// Shorter than a vnet and Ethernet header, longer than the buffer it
    /// was read into, or with segmentation offload the adapter never
    /// offered.
    Malformed,
}

/// Classifies the frame in `buf[FRAME_AT..FRAME_AT + n]` (as read).
pub fn classify(buf: &[u8], n: usize) -> Kind {
    let Some(frame) = buf.get(FRAME_AT..FRAME_AT + n) else { return Kind::Malformed };
    let Some(vnet) = Vnet::parse(frame) else { return Kind::Malformed };
    if vnet.gso().is_err() {
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
/// when `csum_ok` (the kernel then skips checking it again). A super-packet
/// (`gso`) goes as one frame that the kernel cuts into segments: see
/// [`segmentation`].
pub fn send_ipv4(
    io: &mut dyn Frames,
    dst: Mac,
    src: Mac,
    packet: &[u8],
    csum_ok: bool,
    gso: Option<Gso>,
) -> std::result::Result<(), &'static str> {
    let mut eth = [0u8; ethernet::HEADER_LEN];
    ethernet::write_header(&mut eth, dst, src, ethertype::IPV4).map_err(|_| "error.tap_write")?;
    let result = match gso {
        None => io.send(&[&Vnet::bytes(if csum_ok { VNET_DATA_VALID } else { 0 }), &eth, packet]),
        Some(g) => {
            if !csum_ok {
                // The kernel would checksum whatever bytes it holds.
                return Err("drop.gso_unverified");
            }
            let mut headers = [0u8; MAX_HEADERS];
            let (vnet, n) = segmentation(packet, g, &mut headers).ok_or("drop.bad_gso")?;
            io.send(&[&vnet.encode(), &eth, &headers[..n], &packet[n..]])
        }
    };
    result.map_err(|_| "error.tap_write")
}

/// Most bytes of IPv4 and TCP headers (60 each).
pub const MAX_HEADERS: usize = 120;

/// How a TCP/IPv4 super-packet goes to a TAP, as a virtio driver sends TSO
/// (`NEEDS_CSUM` with a `GSO_TCPV4` header, as the virtio spec asks): the
/// vnet header, and in `headers` a copy of the packet's IP and TCP headers
/// (returned length) whose TCP checksum field holds the pseudo-header sum
/// over the whole length, not complemented — the partial checksum the
/// kernel completes for each segment after fixing the length up. (The
/// packet may be in a pool this process only reads, hence the copy.) The
/// payload follows unchanged. `None` if the packet is not whole TCP/IPv4
/// with its headers in `packet`.
pub fn segmentation(packet: &[u8], gso: Gso, headers: &mut [u8; MAX_HEADERS]) -> Option<(Vnet, usize)> {
    use moat_net::ip::{Fragment, Ip};
    if gso.kind() != GsoKind::TcpV4 {
        return None;
    }
    let Ok(Ip::V4(ip)) = Ip::parse(packet) else { return None };
    if ip.protocol() != moat_net::proto::TCP || ip.fragment() != Fragment::Whole || ip.total_len() != packet.len() {
        return None;
    }
    let ihl = ip.header_len();
    let tcp = moat_net::tcp::Tcp::parse(ip.payload()).ok()?;
    let n = ihl + tcp.header().header_len();
    let pseudo =
        Checksum::ipv4_pseudo(ip.header().src, ip.header().dst, moat_net::proto::TCP, (packet.len() - ihl) as u16);
    headers.get_mut(..n)?.copy_from_slice(packet.get(..n)?);
    headers[ihl + 16..ihl + 18].copy_from_slice(&pseudo.sum().to_be_bytes());
    let eth = ethernet::HEADER_LEN as u16;
    let vnet = Vnet {
        flags: VNET_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: eth + n as u16,
        gso_size: gso.size(),
        csum_start: eth + ihl as u16,
        csum_offset: 16,
    };
    Some((vnet, n))
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
        Ok(Some(f.len()))
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
        assert_eq!(classify(&buf, 4000), Kind::Malformed, "longer than the buffer");
        buf[FRAME_AT + 1] = GSO_TCPV4; // with gso_size 0: impossible
        assert_eq!(classify(&buf, frame.len()), Kind::Malformed);
        buf[FRAME_AT + 4] = 200; // gso_size
        assert!(matches!(classify(&buf, frame.len()), Kind::Ipv4 { .. }));
        for kind in [3, 4, 5, 0x81] {
            // UDP, TCPv6, UDP L4, TCPv4 with ECN: never offered
            buf[FRAME_AT + 1] = kind;
            assert_eq!(classify(&buf, frame.len()), Kind::Malformed, "{kind:#x}");
        }
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
