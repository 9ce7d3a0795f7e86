//! Ethernet II frames and ARP (RFC 826) for Ethernet/IPv4 — what the drivers
//! strip, add and answer at the edges.

use core::net::Ipv4Addr;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::view::take_header;

/// Ethernet header length (no VLAN tag).
pub const HEADER_LEN: usize = 14;

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC.
pub const BROADCAST: Mac = [0xff; 6];

/// EtherType values.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (moat does not pass tagged frames).
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// The 14-byte Ethernet II header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// EtherType ([`ethertype`]); values below 0x0600 are 802.3 lengths.
    pub ethertype: U16,
}

/// A checked view of an Ethernet frame: at least the 14-byte header.
pub struct Ethernet<B> {
    header: Ref<B, EthernetHeader>,
    payload: B,
}

impl<B: SplitByteSlice> Ethernet<B> {
    /// Views `frame`.
    pub fn parse(frame: B) -> Result<Self, Error> {
        let (header, payload) = take_header::<B, EthernetHeader>(frame)?;
        Ok(Ethernet { header, payload })
    }
    /// Header and payload.
    pub fn into_parts(self) -> (Ref<B, EthernetHeader>, B) {
        (self.header, self.payload)
    }
}

impl<B: ByteSlice> Ethernet<B> {
    /// The header.
    pub fn header(&self) -> &EthernetHeader {
        &self.header
    }
    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        self.header.ethertype.get()
    }
    /// Everything after the header (may include padding past the IP packet).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl<B: ByteSliceMut> Ethernet<B> {
    /// The header, writable.
    pub fn header_mut(&mut self) -> &mut EthernetHeader {
        &mut self.header
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
}

/// Writes an Ethernet header into the front of `out` (a driver prepending a
/// link header in the headroom).
pub fn write_header(out: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> Result<(), Error> {
    EthernetHeader { dst, src, ethertype: U16::new(ethertype) }.write_to_prefix(out).map_err(|_| Error::Truncated)
}

/// ARP length for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;

/// ARP operations.
pub mod arp_op {
    /// Request.
    pub const REQUEST: u16 = 1;
    /// Reply.
    pub const REPLY: u16 = 2;
}

/// An ARP packet for Ethernet and IPv4 (the only kind moat handles).
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Hardware type (1, Ethernet).
    pub htype: U16,
    /// Protocol type (0x0800).
    pub ptype: U16,
    /// Hardware address length (6).
    pub hlen: u8,
    /// Protocol address length (4).
    pub plen: u8,
    /// Operation ([`arp_op`]).
    pub oper: U16,
    /// Sender hardware address.
    pub sha: Mac,
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: Mac,
    /// Target protocol address.
    pub tpa: [u8; 4],
}

/// A checked view of an Ethernet/IPv4 ARP packet: 28 bytes with those
/// types and lengths, operation request or reply ([`Error::Unsupported`]
/// otherwise). Bytes after the 28 (padding) are ignored.
pub struct Arp<B> {
    packet: Ref<B, ArpPacket>,
}

impl<B: SplitByteSlice> Arp<B> {
    /// Views `bytes`.
    pub fn parse(bytes: B) -> Result<Self, Error> {
        let (packet, _padding) = take_header::<B, ArpPacket>(bytes)?;
        let p = &*packet;
        if p.htype.get() != 1 || p.ptype.get() != ethertype::IPV4 || p.hlen != 6 || p.plen != 4 {
            return Err(Error::Unsupported);
        }
        if !matches!(p.oper.get(), arp_op::REQUEST | arp_op::REPLY) {
            return Err(Error::Unsupported);
        }
        Ok(Arp { packet })
    }
}

impl<B: ByteSlice> Arp<B> {
    /// The packet.
    pub fn packet(&self) -> &ArpPacket {
        &self.packet
    }
    /// Operation.
    pub fn oper(&self) -> u16 {
        self.packet.oper.get()
    }
    /// Sender IP.
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.packet.spa)
    }
    /// Target IP.
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.packet.tpa)
    }
}

impl<B: ByteSliceMut> Arp<B> {
    /// Turns a request into the reply saying "`target_ip` is at `mac`", in
    /// place: sender and target swap, operation becomes reply. The caller
    /// decides whether to answer at all.
    pub fn make_reply(&mut self, mac: Mac) {
        let p = &mut *self.packet;
        p.oper = U16::new(arp_op::REPLY);
        p.tha = p.sha;
        core::mem::swap(&mut p.spa, &mut p.tpa);
        p.sha = mac;
    }
}

/// Writes an ARP packet into the front of `out`.
pub fn write_arp(out: &mut [u8], oper: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Result<(), Error> {
    ArpPacket {
        htype: U16::new(1),
        ptype: U16::new(ethertype::IPV4),
        hlen: 6,
        plen: 4,
        oper: U16::new(oper),
        sha,
        spa: spa.octets(),
        tha,
        tpa: tpa.octets(),
    }
    .write_to_prefix(out)
    .map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_request_becomes_reply() {
        let mut buf = [0u8; 46];
        let client: Mac = [0, 0x16, 0x3e, 0, 0, 1];
        let ours: Mac = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
        write_arp(
            &mut buf,
            arp_op::REQUEST,
            client,
            Ipv4Addr::new(10, 137, 0, 5),
            [0; 6],
            Ipv4Addr::new(10, 137, 0, 1),
        )
        .unwrap();
        let mut a = Arp::parse(&mut buf[..]).unwrap();
        assert_eq!(a.target_ip(), Ipv4Addr::new(10, 137, 0, 1));
        a.make_reply(ours);
        let p = *a.packet();
        assert_eq!((p.oper.get(), p.sha, p.tha), (arp_op::REPLY, ours, client));
        assert_eq!(a.sender_ip(), Ipv4Addr::new(10, 137, 0, 1));
        assert_eq!(a.target_ip(), Ipv4Addr::new(10, 137, 0, 5));
        buf[7] = 3;
        assert_eq!(Arp::parse(&buf[..]).err(), Some(Error::Unsupported));
        assert_eq!(Arp::parse(&buf[..27]).err(), Some(Error::Truncated));
    }
}
