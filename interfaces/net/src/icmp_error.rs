//! Building an ICMP error in place from the packet that caused it.
//!
//! The offending packet stays where it is and becomes the quote; the new IP
//! and ICMP headers go in the headroom in front of it
//! ([`crate::meta::HEADROOM`] is 64 bytes; an ICMPv4 error needs 28, an
//! ICMPv6 error 48). Nothing is copied, and the buffer goes back the way a
//! rewritten packet would.
//!
//! The rules of RFC 1122 §3.2.2, RFC 1812 §4.3.2.7 and RFC 4443 §2.4(e) about
//! when an error must *not* be sent are checked here, so that no caller can
//! forget them: never about an ICMP error, a non-initial fragment, or a
//! packet whose source is not a unicast address; for IPv4 never about a
//! packet sent to broadcast or multicast.

use core::net::{Ipv4Addr, Ipv6Addr};

use zerocopy::IntoBytes;
use zerocopy::byteorder::network_endian::U16;

use crate::checksum::Checksum;
use crate::icmpv4::{self, IcmpHeader};
use crate::icmpv6;
use crate::ip::Fragment;
use crate::ipv4::{self, Ipv4};
use crate::ipv6::{self, Ipv6};
use crate::{Error, proto};

/// Bytes an ICMPv4 error puts in front of the quote.
pub const V4_OVERHEAD: usize = ipv4::MIN_HEADER_LEN + icmpv4::HEADER_LEN;
/// Bytes an ICMPv6 error puts in front of the quote.
pub const V6_OVERHEAD: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
/// Longest ICMPv4 error (RFC 1812 §4.3.2.3: at most 576 bytes).
pub const V4_MAX: usize = 576;
/// Longest ICMPv6 error (RFC 4443 §2.4(c): the minimum IPv6 MTU).
pub const V6_MAX: usize = 1280;

/// Why no error was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The offending packet does not parse.
    Malformed(Error),
    /// Less headroom in front of the packet than the new headers need.
    NoHeadroom,
    /// The offending packet is itself an ICMP error (or a redirect).
    AboutAnError,
    /// The offending packet is a non-initial fragment.
    NotFirstFragment,
    /// Source not unicast, or (IPv4) destination broadcast/multicast.
    NotUnicast,
}

/// The type, code and type-specific word of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// Type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// Bytes 4–7 of the ICMP header (unused, MTU, pointer).
    pub rest: [u8; 4],
}

impl Kind {
    /// ICMPv4 time exceeded in transit.
    pub const V4_TTL_EXCEEDED: Kind = Kind { ty: icmpv4::ty::TIME_EXCEEDED, code: 0, rest: [0; 4] };
    /// ICMPv4 communication administratively prohibited (a Qubes reject).
    pub const V4_ADMIN_PROHIBITED: Kind =
        Kind { ty: icmpv4::ty::DEST_UNREACHABLE, code: icmpv4::unreachable::ADMIN_PROHIBITED, rest: [0; 4] };
    /// ICMPv4 host administratively prohibited (Linux sys-firewall's reject).
    pub const V4_HOST_PROHIBITED: Kind =
        Kind { ty: icmpv4::ty::DEST_UNREACHABLE, code: icmpv4::unreachable::HOST_PROHIBITED, rest: [0; 4] };
    /// ICMPv4 port unreachable.
    pub const V4_PORT_UNREACHABLE: Kind =
        Kind { ty: icmpv4::ty::DEST_UNREACHABLE, code: icmpv4::unreachable::PORT, rest: [0; 4] };
    /// ICMPv6 time exceeded (hop limit).
    pub const V6_HOP_LIMIT: Kind = Kind { ty: icmpv6::ty::TIME_EXCEEDED, code: 0, rest: [0; 4] };
    /// ICMPv6 administratively prohibited.
    pub const V6_ADMIN_PROHIBITED: Kind =
        Kind { ty: icmpv6::ty::DEST_UNREACHABLE, code: icmpv6::unreachable::ADMIN_PROHIBITED, rest: [0; 4] };

    /// ICMPv4 fragmentation needed, with the next-hop MTU.
    pub const fn v4_frag_needed(mtu: u16) -> Kind {
        let m = mtu.to_be_bytes();
        Kind { ty: icmpv4::ty::DEST_UNREACHABLE, code: icmpv4::unreachable::FRAG_NEEDED, rest: [0, 0, m[0], m[1]] }
    }

    /// ICMPv6 packet too big, with the MTU.
    pub const fn v6_packet_too_big(mtu: u32) -> Kind {
        Kind { ty: icmpv6::ty::PACKET_TOO_BIG, code: 0, rest: mtu.to_be_bytes() }
    }
}

/// Where the built error is in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// Offset of the new IP header in the buffer.
    pub start: usize,
    /// Length of the error packet.
    pub len: usize,
}

/// Turns the IPv4 packet at `buf[start..start + len]` into an ICMPv4 error
/// from `from` back to its sender, in place.
///
/// The quote is the offending packet's header and as much of its payload as
/// keeps the error within 576 bytes. The new header has TTL 64, TOS 0xc0
/// (internetwork control, as Linux sends errors) and identification `ident`.
pub fn build_v4(
    buf: &mut [u8],
    start: usize,
    len: usize,
    from: Ipv4Addr,
    kind: Kind,
    ident: u16,
) -> Result<Built, Refused> {
    let packet = buf.get(start..start.saturating_add(len)).ok_or(Refused::Malformed(Error::Truncated))?;
    let ip = Ipv4::parse(packet).map_err(Refused::Malformed)?;
    if ip.fragment() == Fragment::Later {
        return Err(Refused::NotFirstFragment);
    }
    if ip.protocol() == proto::ICMP {
        // An error about an ICMP message we cannot read would be a guess.
        let t = ip.payload().first().copied().ok_or(Refused::Malformed(Error::Truncated))?;
        if icmpv4::is_error(t) {
            return Err(Refused::AboutAnError);
        }
    }
    let (src, dst) = (ip.src(), ip.dst());
    let bad_src = src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback();
    if bad_src || src.octets()[0] >= 240 || dst.is_broadcast() || dst.is_multicast() {
        return Err(Refused::NotUnicast);
    }
    let quote = ip.total_len().min(V4_MAX - V4_OVERHEAD);
    let at = start.checked_sub(V4_OVERHEAD).ok_or(Refused::NoHeadroom)?;
    let total = V4_OVERHEAD + quote;
    let out = buf.get_mut(at..at + total).ok_or(Refused::Malformed(Error::Truncated))?;
    let (head, rest) = out.split_at_mut(ipv4::MIN_HEADER_LEN);
    let icmp_len = (icmpv4::HEADER_LEN + quote) as u16;
    ipv4::write_header(head, from, src, proto::ICMP, icmp_len, ident, 64, 0xc0).map_err(Refused::Malformed)?;
    let mut h = IcmpHeader { ty: kind.ty, code: kind.code, checksum: U16::new(0), rest: kind.rest };
    let mut c = Checksum::new();
    c.add_bytes(h.as_bytes());
    c.add_bytes(&rest[icmpv4::HEADER_LEN..]);
    h.checksum = U16::new(c.finish());
    rest[..icmpv4::HEADER_LEN].copy_from_slice(h.as_bytes());
    Ok(Built { start: at, len: total })
}

/// Turns the IPv6 packet at `buf[start..start + len]` into an ICMPv6 error
/// from `from` back to its sender, in place, quoting as much as keeps it
/// within 1280 bytes (hop limit 64).
///
/// Besides the general rules, an error about a packet sent to a multicast
/// address is refused except Packet Too Big (RFC 4443 §2.4(e.3)).
pub fn build_v6(buf: &mut [u8], start: usize, len: usize, from: Ipv6Addr, kind: Kind) -> Result<Built, Refused> {
    let packet = buf.get(start..start.saturating_add(len)).ok_or(Refused::Malformed(Error::Truncated))?;
    let ip = Ipv6::parse(packet).map_err(Refused::Malformed)?;
    let ext = ip.walk().map_err(Refused::Malformed)?;
    if ext.fragment == Fragment::Later {
        return Err(Refused::NotFirstFragment);
    }
    if ext.upper == proto::ICMPV6 {
        let t = ip.payload().get(ext.offset).copied().ok_or(Refused::Malformed(Error::Truncated))?;
        if icmpv6::is_error(t) || t == icmpv6::ty::REDIRECT {
            return Err(Refused::AboutAnError);
        }
    }
    let (src, dst) = (ip.src(), ip.dst());
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
        return Err(Refused::NotUnicast);
    }
    if dst.is_multicast() && kind.ty != icmpv6::ty::PACKET_TOO_BIG {
        return Err(Refused::NotUnicast);
    }
    let quote = ip.total_len().min(V6_MAX - V6_OVERHEAD);
    let at = start.checked_sub(V6_OVERHEAD).ok_or(Refused::NoHeadroom)?;
    let total = V6_OVERHEAD + quote;
    let out = buf.get_mut(at..at + total).ok_or(Refused::Malformed(Error::Truncated))?;
    let (head, rest) = out.split_at_mut(ipv6::HEADER_LEN);
    let icmp_len = icmpv6::HEADER_LEN + quote;
    ipv6::write_header(head, from, src, proto::ICMPV6, icmp_len as u16, 64).map_err(Refused::Malformed)?;
    let mut h = IcmpHeader { ty: kind.ty, code: kind.code, checksum: U16::new(0), rest: kind.rest };
    let mut c = Checksum::ipv6_pseudo(from.octets(), src.octets(), proto::ICMPV6, icmp_len as u32);
    c.add_bytes(h.as_bytes());
    c.add_bytes(&rest[icmpv6::HEADER_LEN..]);
    h.checksum = U16::new(c.finish());
    rest[..icmpv6::HEADER_LEN].copy_from_slice(h.as_bytes());
    Ok(Built { start: at, len: total })
}
