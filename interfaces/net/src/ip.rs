//! Either IP version, and the one-call classification rules and NAT start
//! from.

use core::net::IpAddr;

use zerocopy::SplitByteSlice;

use crate::Error;
use crate::icmpv4::{self, Icmpv4};
use crate::icmpv6::Icmpv6;
use crate::ipv4::Ipv4;
use crate::ipv6::{self, Ipv6};
use crate::proto;
use crate::tcp::Tcp;
use crate::udp::Udp;

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not fragmented (or an atomic IPv6 fragment).
    Whole,
    /// Offset 0, more to come: carries the transport header, but its L4
    /// checksum covers bytes not here.
    First,
    /// Offset > 0: no transport header.
    Later,
}

/// An IPv4 or IPv6 packet, by the version nibble.
pub enum Ip<B> {
    /// IPv4.
    V4(Ipv4<B>),
    /// IPv6.
    V6(Ipv6<B>),
}

impl<B: SplitByteSlice> Ip<B> {
    /// Views `packet` with the parser its version nibble calls for.
    pub fn parse(packet: B) -> Result<Self, Error> {
        match packet.first().map(|b| b >> 4) {
            None => Err(Error::Truncated),
            Some(4) => Ipv4::parse(packet).map(Ip::V4),
            Some(6) => Ipv6::parse(packet).map(Ip::V6),
            Some(_) => Err(Error::BadVersion),
        }
    }
}

/// What the transport header says, as far as rules and NAT care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP ports and flags ([`crate::tcp::flags`]).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flag bits.
        flags: u16,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4 (in an IPv4 packet) or ICMPv6 (in an IPv6 packet).
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Identifier of a query/echo message.
        ident: Option<u16>,
        /// True for an error message (it quotes another packet).
        error: bool,
    },
    /// A later fragment: no transport header here.
    Fragment,
    /// A protocol moat does not look inside (ESP, GRE, SCTP, an unknown
    /// IPv6 extension header, no-next-header, …).
    Other,
}

/// One packet, classified: what rules and NAT decide on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Summary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Offset of the transport header in the packet.
    pub l4_offset: usize,
    /// Bytes from there to the end of the IP packet.
    pub l4_len: usize,
    /// The IP packet's length (the buffer may hold padding after it).
    pub total_len: usize,
    /// Fragment position.
    pub fragment: Fragment,
    /// For IPv6: a routing header with segments left (the destination is
    /// not final). Always false for IPv4.
    pub routed: bool,
    /// Transport details.
    pub transport: Transport,
}

/// Parses and checks an IP packet down to its transport header.
///
/// Lengths are checked at every layer: IP header and total length, IPv6
/// extension headers, TCP data offset, UDP length (against the IP payload,
/// except in a first fragment), the 8 ICMP header bytes. A first fragment too
/// short to hold its whole transport header is refused (the "tiny fragment"
/// evasion of RFC 1858). Checksums are not checked here — that is the csum
/// component's job, done once.
pub fn classify(packet: &[u8]) -> Result<Summary, Error> {
    match Ip::parse(packet)? {
        Ip::V4(ip) => {
            let fragment = ip.fragment();
            let l4 = ip.payload();
            let transport = transport(ip.protocol(), l4, fragment, false)?;
            Ok(Summary {
                src: ip.src().into(),
                dst: ip.dst().into(),
                protocol: ip.protocol(),
                ttl: ip.header().ttl,
                l4_offset: ip.header_len(),
                l4_len: l4.len(),
                total_len: ip.total_len(),
                fragment,
                routed: false,
                transport,
            })
        }
        Ip::V6(ip) => {
            let ext = ip.walk()?;
            let l4 = ip.payload().get(ext.offset..).ok_or(Error::BadExtHeader)?;
            let transport = transport(ext.upper, l4, ext.fragment, true)?;
            Ok(Summary {
                src: ip.src().into(),
                dst: ip.dst().into(),
                protocol: ext.upper,
                ttl: ip.header().hop_limit,
                l4_offset: ipv6::HEADER_LEN + ext.offset,
                l4_len: l4.len(),
                total_len: ip.total_len(),
                fragment: ext.fragment,
                routed: ext.segments_left != 0,
                transport,
            })
        }
    }
}

fn transport(protocol: u8, l4: &[u8], fragment: Fragment, v6: bool) -> Result<Transport, Error> {
    if fragment == Fragment::Later {
        return Ok(Transport::Fragment);
    }
    Ok(match protocol {
        proto::TCP => {
            let t = Tcp::parse(l4)?;
            Transport::Tcp { src_port: t.src_port(), dst_port: t.dst_port(), flags: t.flags() }
        }
        proto::UDP => {
            let u = if fragment == Fragment::First { Udp::parse_partial(l4)? } else { Udp::parse(l4)? };
            Transport::Udp { src_port: u.src_port(), dst_port: u.dst_port() }
        }
        proto::ICMP if !v6 => {
            let m = Icmpv4::parse(l4)?;
            Transport::Icmp { ty: m.ty(), code: m.code(), ident: m.ident(), error: icmpv4::is_error(m.ty()) }
        }
        proto::ICMPV6 if v6 => {
            let m = Icmpv6::parse(l4)?;
            Transport::Icmp { ty: m.ty(), code: m.code(), ident: m.ident(), error: crate::icmpv6::is_error(m.ty()) }
        }
        _ => Transport::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn classifies_and_refuses_tiny_first_fragments() {
        let mut p = vec![0u8; 20 + 20];
        crate::ipv4::write_header(
            &mut p,
            Ipv4Addr::new(10, 137, 0, 5),
            Ipv4Addr::new(1, 1, 1, 1),
            proto::TCP,
            20,
            1,
            64,
            0,
        )
        .unwrap();
        p[20..22].copy_from_slice(&4444u16.to_be_bytes());
        p[22..24].copy_from_slice(&443u16.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x02;
        let s = classify(&p).unwrap();
        assert_eq!(s.transport, Transport::Tcp { src_port: 4444, dst_port: 443, flags: 0x02 });
        assert_eq!((s.l4_offset, s.l4_len, s.total_len, s.fragment), (20, 20, 40, Fragment::Whole));
        p[32] = 0x60; // data offset 24 > 20 bytes of segment
        assert_eq!(classify(&p).err(), Some(Error::BadHeaderLen));
        // A first fragment with 8 bytes of TCP header.
        let mut f = vec![0u8; 28];
        crate::ipv4::write_header(
            &mut f,
            Ipv4Addr::new(10, 137, 0, 5),
            Ipv4Addr::new(1, 1, 1, 1),
            proto::TCP,
            8,
            1,
            64,
            0,
        )
        .unwrap();
        f[6] = 0x20; // MF
        assert_eq!(classify(&f).err(), Some(Error::Truncated));
        f[6] = 0x00;
        f[7] = 0x01; // offset 8: a later fragment, fine
        assert_eq!(classify(&f).unwrap().transport, Transport::Fragment);
        assert_eq!(classify(&[]).err(), Some(Error::Truncated));
        assert_eq!(classify(&[0x50; 40]).err(), Some(Error::BadVersion));
    }
}
