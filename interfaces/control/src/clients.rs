//! Clients coming and going.
//!
//! Sent by whoever learns of client VMs (the xenstore component watching
//! `backend/vif`, or the hosted launcher's configuration) to every component
//! that keeps per-client state. A slot is the client's index everywhere in
//! moat (`moat_net::meta::Iface::client(slot)`); a slot is reused only after
//! its `Down`.

use serde::{Deserialize, Serialize};

/// A client appeared or vanished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientEvent {
    /// Client `slot` is connected with these addresses.
    Up {
        /// Client slot (0-based, below `moat_net::meta::Iface::MAX_CLIENTS`).
        slot: u8,
        /// The client's IPv4 address (Qubes: the vif's `ip`).
        ipv4: [u8; 4],
        /// The client's IPv6 address, if it has one.
        ipv6: Option<[u8; 16]>,
        /// The client's own MAC (the frontend's).
        mac: [u8; 6],
    },
    /// Client `slot` is gone; forget everything about it.
    Down {
        /// Client slot.
        slot: u8,
    },
}

impl ClientEvent {
    /// Message name for port declarations.
    pub const NAME: &'static str = "ClientEvent";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_postcard() {
        let up = ClientEvent::Up { slot: 3, ipv4: [10, 137, 0, 5], ipv6: None, mac: [0, 0x16, 0x3e, 1, 2, 3] };
        let bytes = postcard::to_allocvec(&up).unwrap();
        assert_eq!(postcard::from_bytes::<ClientEvent>(&bytes).unwrap(), up);
        assert!(postcard::from_bytes::<ClientEvent>(&[9]).is_err(), "unknown variant is an error");
    }
}
