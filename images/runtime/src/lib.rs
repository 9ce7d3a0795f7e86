//! What every moat image shares.
//!
//! * [`harness`] (feature `std`): binds one component's ports to rings, pools
//!   and state that a host test creates, and drives the component through the
//!   real contract — the way every component is tested on the host.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
pub mod harness;
