//! What a descriptor's `flags` and `meta` words mean.
//!
//! Between the drivers, descriptors name **IP packets** (the drivers strip and
//! add Ethernet); buffers keep at least [`HEADROOM`] bytes in front of the
//! packet so a driver can prepend a link header in place.
//!
//! `flags` records checksum state, so that the csum component validates once
//! and the NAT can then update checksums incrementally (RFC 1624) instead of
//! recomputing them; `meta` records which client a packet belongs to and the
//! rules component's verdict.

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

/// The `meta` word: bits 0–7 interface, bits 8–11 verdict, bits 12–31 zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The client a packet comes from (outbound) or goes to (inbound), or the
    /// uplink.
    pub iface: Iface,
    /// The rules' verdict.
    pub verdict: Verdict,
}

/// A `meta` word with bits set that no version defines, or an unknown
/// verdict: another component is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMeta;

impl Meta {
    /// Decodes a descriptor's `meta` word, refusing undefined values.
    pub fn of(d: &PacketDesc) -> Result<Meta, BadMeta> {
        if d.meta >> 12 != 0 {
            return Err(BadMeta);
        }
        let verdict = Verdict::from_bits((d.meta >> 8) & 0xf).ok_or(BadMeta)?;
        Ok(Meta { iface: Iface(d.meta as u8), verdict })
    }

    /// Encodes into a descriptor's `meta` word.
    pub fn store(self, d: &mut PacketDesc) {
        d.meta = u32::from(self.iface.0) | (self.verdict as u32) << 8;
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
        assert_eq!(Meta::of(&PacketDesc { meta: 1 << 12, ..d }), Err(BadMeta));
        assert!(Iface::client(254).is_none());
        assert_eq!(Iface::UPLINK.client_index(), None);
    }
}
