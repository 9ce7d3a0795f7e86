//! The uplink's address, learnt at run time.
//!
//! sys-net's toolstack gives moat its uplink address (the backend's `ip`
//! key); netfront learns it from the xenstore component, and tells the NAT
//! when the uplink comes up — the address every client connection leaves
//! from — and when it goes down.

use serde::{Deserialize, Serialize};

/// The uplink came up or went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UplinkEvent {
    /// Connected, with this address.
    Up {
        /// moat's IPv4 address on the uplink.
        ipv4: [u8; 4],
        /// The uplink's MTU.
        mtu: u16,
    },
    /// Disconnected: nothing can leave until the next `Up`.
    Down,
}

impl UplinkEvent {
    /// Message name for port declarations.
    pub const NAME: &'static str = "UplinkEvent";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_postcard() {
        for e in [UplinkEvent::Up { ipv4: [10, 138, 0, 5], mtu: 1500 }, UplinkEvent::Down] {
            let bytes = postcard::to_allocvec(&e).unwrap();
            assert_eq!(postcard::from_bytes::<UplinkEvent>(&bytes).unwrap(), e);
        }
        assert!(postcard::from_bytes::<UplinkEvent>(&[7]).is_err());
    }
}
