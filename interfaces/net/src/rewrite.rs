//! Whole-packet rewrites for NAT, with every affected checksum updated
//! incrementally (RFC 1624) — never recomputed, so a packet that arrived with
//! a valid checksum leaves with one, and one that did not still does not.
//!
//! Each function checks everything it needs *before* changing a byte: on
//! `Err` the packet is untouched.
//!
//! * [`ipv4`] / [`ipv6`]: one end's address, and optionally its port (TCP,
//!   UDP) or query identifier (ICMP echo and other queries, whose identifier
//!   is shared by both ends).
//! * [`ipv4_quoted`]: the same change applied to the packet quoted inside an
//!   ICMPv4 error (what NAT does to errors coming back), fixing the quoted
//!   header's checksum, the quoted L4 checksum if it was quoted, and the ICMP
//!   checksum around them.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum::Delta;
use crate::icmpv4::{self, Icmpv4};
use crate::icmpv6::Icmpv6;
use crate::ip::Fragment;
use crate::ipv4::Ipv4;
use crate::ipv6::Ipv6;
use crate::tcp::Tcp;
use crate::udp::Udp;
use crate::{Error, proto};

/// Which end of a packet a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// Source address / port (SNAT, outbound).
    Src,
    /// Destination address / port (DNAT, return traffic).
    Dst,
}

/// Rewrites one end of an IPv4 packet: the address, and with `port` the TCP
/// or UDP port of that end or the ICMP query identifier.
///
/// Fixes the IPv4 header checksum and the TCP/UDP checksum (pseudo-header
/// and port); a UDP checksum of 0 (absent) stays 0. A later fragment has no
/// transport header: only its address changes and `port` is ignored (the
/// first fragment's rewrite already fixed the datagram's checksum).
/// [`Error::WrongProtocol`] if `port` is given for a protocol without one
/// (an ICMP error, ESP, …).
pub fn ipv4(packet: &mut [u8], end: End, addr: Ipv4Addr, port: Option<u16>) -> Result<(), Error> {
    let mut ip = Ipv4::parse(packet)?;
    let fragment = ip.fragment();
    let protocol = ip.protocol();
    if fragment != Fragment::Later {
        check_l4(protocol, ip.payload(), fragment, port, false)?;
    }
    let d = match end {
        End::Src => ip.set_src(addr),
        End::Dst => ip.set_dst(addr),
    };
    if fragment == Fragment::Later {
        return Ok(());
    }
    fix_l4(protocol, ip.payload_mut(), fragment, end, d, port, false)
}

/// Rewrites one end of an IPv6 packet; as [`ipv4`] (IPv6 has no header
/// checksum; ICMPv6's checksum covers the pseudo-header, so it is fixed for
/// the address too). A packet whose routing header has segments left is
/// refused ([`Error::Unsupported`]): its pseudo-header destination is not
/// the header's.
pub fn ipv6(packet: &mut [u8], end: End, addr: Ipv6Addr, port: Option<u16>) -> Result<(), Error> {
    let mut ip = Ipv6::parse(packet)?;
    let ext = ip.walk()?;
    if ext.segments_left != 0 {
        return Err(Error::Unsupported);
    }
    if ext.fragment != Fragment::Later {
        let l4 = ip.payload().get(ext.offset..).ok_or(Error::BadExtHeader)?;
        check_l4(ext.upper, l4, ext.fragment, port, true)?;
    }
    let d = match end {
        End::Src => ip.set_src(addr),
        End::Dst => ip.set_dst(addr),
    };
    if ext.fragment == Fragment::Later {
        return Ok(());
    }
    let l4 = ip.payload_mut().get_mut(ext.offset..).ok_or(Error::BadExtHeader)?;
    fix_l4(ext.upper, l4, ext.fragment, end, d, port, true)
}

/// Refuses, before anything changes, what [`fix_l4`] could not do.
fn check_l4(protocol: u8, l4: &[u8], fragment: Fragment, port: Option<u16>, v6: bool) -> Result<(), Error> {
    match protocol {
        proto::TCP => Tcp::parse(l4).map(drop),
        proto::UDP if fragment == Fragment::First => Udp::parse_partial(l4).map(drop),
        proto::UDP => Udp::parse(l4).map(drop),
        proto::ICMP if !v6 => {
            let m = Icmpv4::parse(l4)?;
            if port.is_some() && m.ident().is_none() { Err(Error::WrongProtocol) } else { Ok(()) }
        }
        proto::ICMPV6 if v6 => {
            let m = Icmpv6::parse(l4)?;
            if port.is_some() && m.ident().is_none() { Err(Error::WrongProtocol) } else { Ok(()) }
        }
        _ if port.is_some() => Err(Error::WrongProtocol),
        _ => Ok(()),
    }
}

/// Applies the pseudo-header change `d` and the port change to the
/// transport header (already checked by [`check_l4`]).
fn fix_l4(
    protocol: u8,
    l4: &mut [u8],
    fragment: Fragment,
    end: End,
    d: Delta,
    port: Option<u16>,
    v6: bool,
) -> Result<(), Error> {
    match protocol {
        proto::TCP => {
            let mut t = Tcp::parse(l4)?;
            t.adjust_checksum(d);
            match (end, port) {
                (End::Src, Some(p)) => t.set_src_port(p),
                (End::Dst, Some(p)) => t.set_dst_port(p),
                (_, None) => {}
            }
        }
        proto::UDP => {
            let mut u = if fragment == Fragment::First { Udp::parse_partial(l4)? } else { Udp::parse(l4)? };
            u.adjust_checksum(d);
            match (end, port) {
                (End::Src, Some(p)) => u.set_src_port(p),
                (End::Dst, Some(p)) => u.set_dst_port(p),
                (_, None) => {}
            }
        }
        proto::ICMP if !v6 => {
            // No pseudo-header in ICMPv4: only the identifier matters.
            if let Some(p) = port {
                Icmpv4::parse(l4)?.set_ident(p)?;
            }
        }
        proto::ICMPV6 if v6 => {
            let mut m = Icmpv6::parse(l4)?;
            m.adjust_checksum(d);
            if let Some(p) = port {
                m.set_ident(p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rewrites one end of the packet quoted in an ICMPv4 error (the quoted
/// packet's `end`, which for an error coming back through NAT is the end
/// that was translated on the way out).
///
/// Fixes, in order: the quoted IPv4 header checksum; the quoted TCP/UDP
/// checksum when the quote reaches it (TCP needs 18 quoted bytes, UDP 8; an
/// absent UDP checksum stays absent); the quoted port or ICMP identifier
/// when `port` is given and quoted; and the outer ICMP checksum for all of
/// it. The outer IP header is not touched (rewrite it with [`ipv4`]).
/// [`Error::WrongProtocol`] if the packet is not an ICMPv4 error, or `port`
/// is given but the quote does not reach it.
pub fn ipv4_quoted(packet: &mut [u8], end: End, addr: Ipv4Addr, port: Option<u16>) -> Result<(), Error> {
    let mut ip = Ipv4::parse(packet)?;
    if ip.protocol() != proto::ICMP || ip.fragment() != Fragment::Whole {
        return Err(Error::WrongProtocol);
    }
    let (mut icmp_header, body) = Icmpv4::parse(ip.payload_mut())?.into_parts();
    if !icmpv4::is_error(icmp_header.ty) {
        return Err(Error::WrongProtocol);
    }
    let mut quoted = Ipv4::parse_quoted(body)?;
    let protocol = quoted.protocol();
    let l4_quoted = quoted.fragment() != Fragment::Later;
    // Where the port (or identifier) and the L4 checksum sit, if quoted.
    let (port_at, csum_at) = match (protocol, end) {
        (proto::TCP, End::Src) => (Some(0), Some(16)),
        (proto::TCP, End::Dst) => (Some(2), Some(16)),
        (proto::UDP, End::Src) => (Some(0), Some(6)),
        (proto::UDP, End::Dst) => (Some(2), Some(6)),
        (proto::ICMP, _) => (Some(4), Some(2)),
        _ => (None, None),
    };
    let l4_len = quoted.payload().len();
    let fits = |at: Option<usize>| l4_quoted && at.is_some_and(|a| a + 2 <= l4_len);
    if port.is_some() && !(fits(port_at) && (protocol != proto::ICMP || quoted_is_query(quoted.payload()))) {
        return Err(Error::WrongProtocol);
    }

    let old_ip_csum = quoted.header().checksum.get();
    let d_addr = match end {
        End::Src => quoted.set_src(addr),
        End::Dst => quoted.set_dst(addr),
    };
    let mut outer = d_addr.and(Delta::of_field(old_ip_csum, quoted.header().checksum.get()));

    let l4 = quoted.payload_mut();
    let word = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    // The quoted L4 checksum covers the pseudo-header (not for ICMP) and the port.
    let mut d_l4 = if protocol == proto::ICMP { Delta::new() } else { d_addr };
    if let (Some(p), Some(at)) = (port, port_at) {
        let old = word(l4, at);
        l4[at..at + 2].copy_from_slice(&p.to_be_bytes());
        d_l4 = d_l4.word(old, p);
        outer = outer.and(Delta::new().word(old, p));
    }
    if let Some(at) = csum_at.filter(|_| fits(csum_at)) {
        let old = word(l4, at);
        let new = if protocol == proto::UDP { d_l4.apply_udp(old) } else { d_l4.apply(old) };
        l4[at..at + 2].copy_from_slice(&new.to_be_bytes());
        outer = outer.and(Delta::of_field(old, new));
    }
    let c = outer.apply(icmp_header.checksum.get());
    icmp_header.checksum.set(c);
    Ok(())
}

fn quoted_is_query(l4: &[u8]) -> bool {
    l4.first().is_some_and(|&t| icmpv4::is_query(t))
}
