//! What a descriptor's `flags` and `meta` words mean.
//!
//! Between the drivers, descriptors name **IP packets** (the drivers strip and
//! add Ethernet); buffers keep at least [`HEADROOM`] bytes in front of the
//! packet so a driver can prepend a link header in place.
//!
//! `flags` records checksum state, so that the csum component validates once
//! and the NAT can then update checksums incrementally (RFC 1624) instead of
//! recomputing them; `meta` records which client a packet belongs to, the
//! rules component's verdict and, for a *super-packet*, how it is to be cut
//! into segments ([`Gso`]).
//!
//! # The `meta` word
//!
//! ```text
//! bits  0..7   interface (Iface): client slot 0..253, 0xff the uplink
//! bits  8..11  verdict (Verdict)
//! bits 12..15  segmentation offload kind (GsoKind): 0 none, 1 TCP/IPv4, 2 TCP/IPv6
//! bits 16..31  segment size (Gso::size): 0 if and only if the kind is 0
//! ```
//!
//! Bits 12..31 were zero before segmentation offload existed, and zero still
//! means "an ordinary packet", so every older encoding keeps its meaning.
//! Any other value of bits 12..31 is refused by [`Meta::of`] and [`Gso::of`].
//!
//! # Super-packets (segmentation offload)
//!
//! A driver whose peer offers segmentation offload (Linux TSO/GSO: a TAP
//! with `TUN_F_TSO4`, a netif with `feature-gso-tcpv4`) may hand the graph
//! one TCP packet of up to 64 KiB that stands for a train of segments: its
//! IP and TCP headers are those of the first segment except that the IP
//! total length covers the whole payload, and [`Gso::size`] is the TCP
//! payload each segment carries (the MSS). Whoever finally puts it on a
//! link cuts it (the kernel behind a TAP, the peer of a netif), copying the
//! headers into each segment with the lengths, IP identification, sequence
//! number and checksums fixed up. Components in between treat it as one
//! packet, with these rules:
//!
//! * checksums cover the whole super-packet (the pseudo-header with its full
//!   length): csum completes or verifies them that way, and incremental
//!   updates keep them right;
//! * anything that limits *packet* size (the uplink MTU, DF and ICMP
//!   fragmentation needed) applies to each segment's size, IP header + TCP
//!   header + [`Gso::size`], not to the total length;
//! * header rewrites (addresses, ports, TTL) happen once, and every segment
//!   inherits them;
//! * a packet built from it (an ICMP error quoting it) is an ordinary
//!   packet: its `meta` has bits 12..31 zero;
//! * a component or driver that cannot send a super-packet on drops it and
//!   counts why — it never passes it on as one over-sized packet.
//!
//! Only whole (unfragmented) TCP packets can be super-packets.

use moat_ring::PacketDesc;

/// Bytes drivers leave free in front of a packet for a link-layer header.
pub const HEADROOM: u32 = 64;

/// Checksum state bits in [`PacketDesc::flags`].
pub mod flags {
    /// The L4 checksum field holds only the pseudo-header sum and must be
    /// completed (netif `csum_blank`, Linux `CHECKSUM_PARTIAL`).
    pub const CSUM_BLANK: u16 = 1 << 0;
    /// The sender says it validated the data (netif `data_validated`). Never
    /// trusted for anything moat forwards; kept for statistics.
    pub const PEER_VALIDATED: u16 = 1 << 1;
    /// moat's csum component completed or verified every checksum in the
    /// packet (IPv4 header and L4). Downstream components may then update
    /// checksums incrementally; the netback may flag `data_validated`.
    pub const CSUM_OK: u16 = 1 << 2;
    /// All bits defined so far; others must be zero.
    pub const ALL: u16 = CSUM_BLANK | PEER_VALIDATED | CSUM_OK;
}

/// Which side of moat a packet belongs to: a client slot, or the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Iface(u8);

impl Iface {
    /// The uplink (sys-net side).
    pub const UPLINK: Iface = Iface(0xff);
    /// Most client slots a system can have.
    pub const MAX_CLIENTS: u8 = 254;

    /// Client slot `n` (0-based), if in range.
    pub const fn client(n: u8) -> Option<Iface> {
        if n < Self::MAX_CLIENTS { Some(Iface(n)) } else { None }
    }

    /// The client slot, or `None` for the uplink and unused values.
    pub const fn client_index(self) -> Option<u8> {
        if self.0 < Self::MAX_CLIENTS { Some(self.0) } else { None }
    }

    /// The raw byte.
    pub const fn raw(self) -> u8 {
        self.0
    }
}

/// The rules component's decision about a packet from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Verdict {
    /// Not classified yet.
    None = 0,
    /// Forward.
    Accept = 1,
    /// Drop silently.
    Drop = 2,
    /// Drop and answer the client with ICMP administratively prohibited.
    Reject = 3,
    /// Matched `specialtarget=dns`: redirect to the uplink's DNS servers.
    Dns = 4,
}

impl Verdict {
    fn from_bits(b: u32) -> Option<Verdict> {
        Some(match b {
            0 => Verdict::None,
            1 => Verdict::Accept,
            2 => Verdict::Drop,
            3 => Verdict::Reject,
            4 => Verdict::Dns,
            _ => return None,
        })
    }
}

/// The `meta` word's interface and verdict (bits 0–11; see the module
/// documentation for the layout). [`Gso`] has bits 12–31.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The client a packet comes from (outbound) or goes to (inbound), or the
    /// uplink.
    pub iface: Iface,
    /// The rules' verdict.
    pub verdict: Verdict,
}

/// A `meta` word with bits set that no version defines, an unknown verdict or
/// an impossible segmentation encoding: another component is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMeta;

impl Meta {
    /// Decodes a descriptor's `meta` word, refusing undefined values (in
    /// bits 12–31 too: a word [`Gso::of`] refuses is refused here).
    pub fn of(d: &PacketDesc) -> Result<Meta, BadMeta> {
        Gso::of(d)?;
        let verdict = Verdict::from_bits((d.meta >> 8) & 0xf).ok_or(BadMeta)?;
        Ok(Meta { iface: Iface(d.meta as u8), verdict })
    }

    /// Encodes into bits 0–11 of a descriptor's `meta` word. Bits 12–31
    /// (segmentation, [`Gso::store`]) are left as they are, so a component
    /// that sets a verdict or an interface keeps a super-packet one.
    pub fn store(self, d: &mut PacketDesc) {
        d.meta = (d.meta & !0xfff) | u32::from(self.iface.0) | (self.verdict as u32) << 8;
    }
}

/// What kind of super-packet a descriptor names (`meta` bits 12–15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GsoKind {
    /// TCP over IPv4 (Linux `SKB_GSO_TCPV4`, virtio `GSO_TCPV4`, netif
    /// `XEN_NETIF_GSO_TYPE_TCPV4`).
    TcpV4 = 1,
    /// TCP over IPv6 (`SKB_GSO_TCPV6`, virtio `GSO_TCPV6`,
    /// `XEN_NETIF_GSO_TYPE_TCPV6`).
    TcpV6 = 2,
}

/// Segmentation offload: the packet is a super-packet to be cut into
/// segments of [`size`](Self::size) TCP payload bytes (see the module
/// documentation). Made only by [`Gso::new`], so the size is never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gso {
    kind: GsoKind,
    size: u16,
}

impl Gso {
    /// A super-packet of `kind` with `size` payload bytes per segment;
    /// `None` if `size` is zero.
    pub const fn new(kind: GsoKind, size: u16) -> Option<Gso> {
        if size == 0 { None } else { Some(Gso { kind, size }) }
    }

    /// The kind.
    pub const fn kind(self) -> GsoKind {
        self.kind
    }

    /// Transport payload bytes per segment (the MSS), at least 1.
    pub const fn size(self) -> u16 {
        self.size
    }

    /// Decodes bits 12–31 of a descriptor's `meta` word: `None` for an
    /// ordinary packet, `Err` for an encoding no version defines (an unknown
    /// kind, a kind with size 0, or a size without a kind).
    pub fn of(d: &PacketDesc) -> Result<Option<Gso>, BadMeta> {
        let kind = (d.meta >> 12) & 0xf;
        let size = (d.meta >> 16) as u16;
        match (kind, size) {
            (0, 0) => Ok(None),
            (1, s) if s != 0 => Ok(Some(Gso { kind: GsoKind::TcpV4, size: s })),
            (2, s) if s != 0 => Ok(Some(Gso { kind: GsoKind::TcpV6, size: s })),
            _ => Err(BadMeta),
        }
    }

    /// Encodes `gso` into bits 12–31 of a descriptor's `meta` word (`None`
    /// clears them: an ordinary packet), leaving bits 0–11 as they are.
    pub fn store(gso: Option<Gso>, d: &mut PacketDesc) {
        let bits = gso.map_or(0, |g| (g.kind as u32) << 12 | u32::from(g.size) << 16);
        d.meta = (d.meta & 0xfff) | bits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_refuses_garbage() {
        let mut d = PacketDesc::default();
        for verdict in [Verdict::None, Verdict::Accept, Verdict::Drop, Verdict::Reject, Verdict::Dns] {
            for iface in [Iface::client(0).unwrap(), Iface::client(253).unwrap(), Iface::UPLINK] {
                let m = Meta { iface, verdict };
                m.store(&mut d);
                assert_eq!(Meta::of(&d), Ok(m));
            }
        }
        assert_eq!(Meta::of(&PacketDesc { meta: 5 << 8, ..d }), Err(BadMeta));
        assert_eq!(Meta::of(&PacketDesc { meta: 1 << 12, ..d }), Err(BadMeta), "a kind without a size");
        assert_eq!(Meta::of(&PacketDesc { meta: 1 << 16, ..d }), Err(BadMeta), "a size without a kind");
        assert_eq!(Meta::of(&PacketDesc { meta: 3 << 12 | 1 << 16, ..d }), Err(BadMeta), "an unknown kind");
        assert!(Iface::client(254).is_none());
        assert_eq!(Iface::UPLINK.client_index(), None);
    }

    #[test]
    fn words_from_before_segmentation_offload_keep_their_meaning() {
        // Every word the old encoding allowed (bits 12..31 zero) decodes as
        // before and names no super-packet.
        for meta in 0..0x1000u32 {
            let d = PacketDesc { meta, ..PacketDesc::default() };
            let verdict_ok = (meta >> 8) & 0xf <= 4;
            assert_eq!(Meta::of(&d).is_ok(), verdict_ok, "{meta:#x}");
            assert_eq!(Gso::of(&d), Ok(None));
        }
    }

    #[test]
    fn gso_round_trips_beside_meta_and_survives_meta_store() {
        assert_eq!(Gso::new(GsoKind::TcpV4, 0), None, "a segment carries something");
        let m = Meta { iface: Iface::client(7).unwrap(), verdict: Verdict::None };
        for kind in [GsoKind::TcpV4, GsoKind::TcpV6] {
            for size in [1, 536, 1448, 9000, u16::MAX] {
                let g = Gso::new(kind, size).unwrap();
                let mut d = PacketDesc::default();
                m.store(&mut d);
                Gso::store(Some(g), &mut d);
                assert_eq!(Gso::of(&d), Ok(Some(g)));
                assert_eq!(Meta::of(&d), Ok(m), "meta bits untouched by Gso::store");
                // A verdict set later (what rules does) keeps the super-packet.
                let judged = Meta { verdict: Verdict::Accept, ..m };
                judged.store(&mut d);
                assert_eq!(Gso::of(&d), Ok(Some(g)));
                assert_eq!(Meta::of(&d), Ok(judged));
                Gso::store(None, &mut d);
                assert_eq!(Gso::of(&d), Ok(None));
                assert_eq!(Meta::of(&d), Ok(judged));
                assert_eq!(d.meta >> 12, 0, "an ordinary packet has the old encoding");
            }
        }
    }
}
