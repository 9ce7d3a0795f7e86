//! The packet layer: what moat's packet components agree a packet is.
//!
//! * [`meta`]: the meaning of a [`PacketDesc`](moat_ring::PacketDesc)'s
//!   `flags` and `meta` words — checksum state, interface, verdict,
//!   segmentation offload of super-packets.
//! * [`checksum`]: the Internet checksum (fast), pseudo-header sums, and
//!   RFC 1624 incremental updates ([`checksum::Delta`]).
//! * Views, one module per header: [`ethernet`] (with ARP), [`ipv4`],
//!   [`ipv6`] (with the extension-header walk), [`tcp`], [`udp`],
//!   [`icmpv4`], [`icmpv6`]; [`ip`] picks the version and
//!   [`classify`](ip::classify)s a packet in one call.
//! * [`rewrite`]: NAT's address/port rewrites with checksum fixups;
//!   [`icmp_error`]: an ICMP error built in place from the offending packet.
//!
//! # How views work
//!
//! Every view is generic over its bytes `B`: `&[u8]` to read, `&mut [u8]` to
//! change. The fixed part of each header is a `zerocopy` struct
//! (`Ipv4Header`, `TcpHeader`, …) with public big-endian fields, so nothing is
//! decoded twice and building a header is writing a struct.
//!
//! A view is made only by a checked constructor (`parse`, and `parse_quoted` /
//! `parse_partial` for packets cut short inside ICMP errors or first
//! fragments). Whatever length field the header has — IHL, total length,
//! payload length, data offset, UDP length, extension-header lengths — is
//! checked against the bytes given, so a view's accessors cannot read out of
//! bounds and nothing in this crate panics on input. A constructor returns an
//! [`Error`] that names the reason, for drop counters.
//!
//! Constructors check structure, not checksums: `checksum_ok` and friends are
//! separate so a component can count a bad checksum apart from a malformed
//! header. Setters that change a checksummed field fix the checksum
//! incrementally (`set_src`, `set_dst_port`, `decrement_ttl`, …); the raw
//! `header_mut` accessors do not, and say so.
//!
//! ```
//! use moat_net::{ip::{classify, Transport}, ipv4::Ipv4, tcp::Tcp};
//! # let mut packet = vec![0u8; 40];
//! # moat_net::ipv4::write_header(&mut packet, [10, 137, 0, 5].into(), [1, 1, 1, 1].into(), 6, 20, 1, 64, 0).unwrap();
//! # packet[20..24].copy_from_slice(&[0x11, 0x5c, 0x01, 0xbb]); // ports 4444 -> 443
//! # packet[32] = 0x50; // data offset 5
//! # { let mut ip = Ipv4::parse(&mut packet[..]).unwrap(); let p = ip.pseudo_header();
//! #   Tcp::parse(ip.payload_mut()).unwrap().fill_checksum(p); }
//! // Classify (what rules does).
//! let s = classify(&packet).unwrap();
//! assert!(matches!(s.transport, Transport::Tcp { dst_port: 443, .. }));
//! // Rewrite with checksum fixups (what NAT does).
//! let mut ip = Ipv4::parse(&mut packet[..]).unwrap();
//! let delta = ip.set_src([10, 138, 0, 2].into());
//! let mut tcp = Tcp::parse(ip.payload_mut()).unwrap();
//! tcp.adjust_checksum(delta); // the address is in TCP's pseudo-header
//! tcp.set_src_port(40000);
//! let ip = Ipv4::parse(&packet[..]).unwrap();
//! assert!(ip.checksum_ok());
//! assert!(Tcp::parse(ip.payload()).unwrap().checksum_ok(ip.pseudo_header()));
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checksum;
mod error;
pub mod ethernet;
pub mod icmp_error;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod meta;
pub mod rewrite;
pub mod tcp;
pub mod udp;
mod view;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::Error;

/// IP protocol / IPv6 next-header numbers.
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 no next header.
    pub const NO_NEXT: u8 = 59;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
}
