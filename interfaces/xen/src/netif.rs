//! The network interface rings (`io/netif.h`): TX carries frames from the
//! frontend to the backend, RX the other way. Both rings hold
//! [`NETIF_TX_RING_SIZE`] / [`NETIF_RX_RING_SIZE`] (256) entries per page.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{GrantRef, layout};

/// `XEN_NETIF_NR_SLOTS_MIN`: slots per packet a backend must accept.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;
/// `XEN_NETIF_MAX_TX_SIZE`.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;

/// `NETTXF_*` bits of [`NetifTxRequest::flags`].
pub mod txf {
    /// `NETTXF_csum_blank`: the L4 checksum holds only the pseudo-header sum.
    pub const CSUM_BLANK: u16 = 1 << 0;
    /// `NETTXF_data_validated`: the sender vouches for the data.
    pub const DATA_VALIDATED: u16 = 1 << 1;
    /// `NETTXF_more_data`: another fragment follows.
    pub const MORE_DATA: u16 = 1 << 2;
    /// `NETTXF_extra_info`: an extra-info slot follows.
    pub const EXTRA_INFO: u16 = 1 << 3;
}

/// `NETRXF_*` bits of [`NetifRxResponse::flags`].
pub mod rxf {
    /// `NETRXF_data_validated`.
    pub const DATA_VALIDATED: u16 = 1 << 0;
    /// `NETRXF_csum_blank`.
    pub const CSUM_BLANK: u16 = 1 << 1;
    /// `NETRXF_more_data`.
    pub const MORE_DATA: u16 = 1 << 2;
    /// `NETRXF_extra_info`.
    pub const EXTRA_INFO: u16 = 1 << 3;
    /// `NETRXF_gso_prefix`.
    pub const GSO_PREFIX: u16 = 1 << 4;
}

/// `XEN_NETIF_EXTRA_TYPE_*`.
pub mod extra_type {
    /// `XEN_NETIF_EXTRA_TYPE_NONE` (never valid on the wire).
    pub const NONE: u8 = 0;
    /// `XEN_NETIF_EXTRA_TYPE_GSO`.
    pub const GSO: u8 = 1;
    /// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
    pub const MCAST_ADD: u8 = 2;
    /// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
    pub const MCAST_DEL: u8 = 3;
    /// `XEN_NETIF_EXTRA_TYPE_HASH`.
    pub const HASH: u8 = 4;
    /// `XEN_NETIF_EXTRA_TYPE_MAX`.
    pub const MAX: u8 = 5;
}

/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1;

/// `XEN_NETIF_GSO_TYPE_*`.
pub mod gso_type {
    /// `XEN_NETIF_GSO_TYPE_NONE`.
    pub const NONE: u8 = 0;
    /// `XEN_NETIF_GSO_TYPE_TCPV4`.
    pub const TCPV4: u8 = 1;
    /// `XEN_NETIF_GSO_TYPE_TCPV6`.
    pub const TCPV6: u8 = 2;
}

/// `NETIF_RSP_*` statuses.
pub mod rsp {
    /// `NETIF_RSP_DROPPED`.
    pub const DROPPED: i16 = -2;
    /// `NETIF_RSP_ERROR`.
    pub const ERROR: i16 = -1;
    /// `NETIF_RSP_OKAY`.
    pub const OKAY: i16 = 0;
    /// `NETIF_RSP_NULL`: the slot held extra info, not data.
    pub const NULL: i16 = 1;
}

/// `struct netif_tx_request`. In the first slot of a packet `size` is the
/// whole packet's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetifTxRequest {
    /// Grant of the page holding this fragment.
    pub gref: GrantRef,
    /// Offset within the page.
    pub offset: u16,
    /// [`txf`] bits.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Fragment size (packet size in the first slot).
    pub size: u16,
}
layout!(NetifTxRequest, 12, gref @ 0, offset @ 4, flags @ 6, id @ 8, size @ 10);

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetifTxResponse {
    /// The request's id.
    pub id: u16,
    /// An [`rsp`] status.
    pub status: i16,
}
layout!(NetifTxResponse, 4, id @ 0, status @ 2);

/// `struct netif_rx_request`: a page the frontend offers for a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the page to fill.
    pub gref: GrantRef,
}
layout!(NetifRxRequest, 8, id @ 0, pad @ 2, gref @ 4);

/// `struct netif_rx_response`. Must go in the same slot as its request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetifRxResponse {
    /// The request's id.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// [`rxf`] bits.
    pub flags: u16,
    /// Fragment length, or a negative [`rsp`] error.
    pub status: i16,
}
layout!(NetifRxResponse, 8, id @ 0, offset @ 2, flags @ 4, status @ 6);

/// `struct netif_extra_info`: occupies a request (or response) slot after a
/// slot flagged `extra_info`.
#[repr(C, align(2))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetifExtraInfo {
    /// An [`extra_type`].
    pub r#type: u8,
    /// [`XEN_NETIF_EXTRA_FLAG_MORE`].
    pub flags: u8,
    /// The union `u`, raw; see [`NetifExtraInfo::gso`].
    pub u: [u8; 6],
}
layout!(NetifExtraInfo, 8, r#type @ 0, flags @ 1, u @ 2);

/// The `u.gso` member of [`NetifExtraInfo`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GsoInfo {
    /// `u.gso.size`: the MSS.
    pub size: u16,
    /// `u.gso.type`: a [`gso_type`].
    pub r#type: u8,
    /// `u.gso.features`.
    pub features: u16,
}

impl NetifExtraInfo {
    /// Reads `u` as `u.gso` (meaningful when `type` is GSO).
    pub fn gso(&self) -> GsoInfo {
        let u = &self.u;
        GsoInfo { size: u16::from_le_bytes([u[0], u[1]]), r#type: u[2], features: u16::from_le_bytes([u[4], u[5]]) }
    }

    /// An extra-info slot carrying GSO information.
    pub fn new_gso(gso: GsoInfo, more: bool) -> Self {
        let s = gso.size.to_le_bytes();
        let f = gso.features.to_le_bytes();
        NetifExtraInfo {
            r#type: extra_type::GSO,
            flags: if more { XEN_NETIF_EXTRA_FLAG_MORE } else { 0 },
            u: [s[0], s[1], gso.r#type, 0, f[0], f[1]],
        }
    }
}

/// Offsets within `u` of the GSO fields (checked against the C union).
pub mod gso_offset {
    /// `u.gso.size`.
    pub const SIZE: usize = 0;
    /// `u.gso.type`.
    pub const TYPE: usize = 2;
    /// `u.gso.features`.
    pub const FEATURES: usize = 4;
}

/// Bytes per TX ring entry (the request/response union).
pub const NETIF_TX_ENTRY_SIZE: usize = 12;
/// Bytes per RX ring entry.
pub const NETIF_RX_ENTRY_SIZE: usize = 8;
/// Entries in a one-page TX ring.
pub const NETIF_TX_RING_SIZE: u32 = crate::ring::ring_entries(NETIF_TX_ENTRY_SIZE, 1);
/// Entries in a one-page RX ring.
pub const NETIF_RX_RING_SIZE: u32 = crate::ring::ring_entries(NETIF_RX_ENTRY_SIZE, 1);

const _: () = {
    use core::mem::size_of;
    let tx = if size_of::<NetifTxRequest>() > size_of::<NetifTxResponse>() {
        size_of::<NetifTxRequest>()
    } else {
        size_of::<NetifTxResponse>()
    };
    assert!(tx == NETIF_TX_ENTRY_SIZE);
    assert!(size_of::<NetifRxRequest>() == NETIF_RX_ENTRY_SIZE);
    assert!(size_of::<NetifRxResponse>() == NETIF_RX_ENTRY_SIZE);
    assert!(size_of::<NetifExtraInfo>() <= NETIF_RX_ENTRY_SIZE);
    assert!(NETIF_TX_RING_SIZE == 256 && NETIF_RX_RING_SIZE == 256);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_round_trips_through_the_union() {
        let g = GsoInfo { size: 1448, r#type: gso_type::TCPV6, features: 0xA55A };
        let e = NetifExtraInfo::new_gso(g, true);
        assert_eq!(e.gso(), g);
        assert_eq!(e.flags, XEN_NETIF_EXTRA_FLAG_MORE);
        assert_eq!(&zerocopy::IntoBytes::as_bytes(&e)[2..4], &1448u16.to_le_bytes());
    }
}
