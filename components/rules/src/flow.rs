//! What the rules look at in a packet: its source (for the anti-spoof check)
//! and its [`FlowKey`] — destination, upper-layer protocol (after IPv6
//! extension headers), destination port or ICMP type — through moat-net's
//! checked views ([`moat_net::ip::classify`]).
//!
//! A fragment that is not the first has no transport header: its key carries
//! [`L4::None`], so only rules without ports or ICMP type can match it (the
//! tiny first fragments that would hide the ports are refused by the view).
//! An IPv6 packet with a routing header that still has segments left is
//! refused: its header destination is not where it is going, so the rules
//! could not judge it honestly.

use core::net::IpAddr;

use moat_control::rules::{Addr, FlowKey, L4};
use moat_net::ip::{Summary, Transport, classify};

/// Why a packet has no flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    /// The IP or transport header does not parse.
    Malformed(moat_net::Error),
    /// IPv6 with a routing header that is not done.
    Routed,
}

fn addr(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(a) => Addr::V4(a.octets()),
        IpAddr::V6(a) => Addr::V6(a.octets()),
    }
}

/// The flow key of a classified packet.
pub fn key(s: &Summary) -> FlowKey {
    let l4 = match s.transport {
        Transport::Tcp { dst_port, .. } | Transport::Udp { dst_port, .. } => L4::Port(dst_port),
        Transport::Icmp { ty, .. } => L4::Icmp(ty),
        Transport::Fragment | Transport::Other => L4::None,
    };
    FlowKey { dst: addr(s.dst), proto: s.protocol, l4 }
}

/// The source address and flow key of the IP packet `pkt`.
pub fn extract(pkt: &[u8]) -> Result<(Addr, FlowKey), FlowError> {
    let s = classify(pkt).map_err(FlowError::Malformed)?;
    if s.routed {
        return Err(FlowError::Routed);
    }
    Ok((addr(s.src), key(&s)))
}
