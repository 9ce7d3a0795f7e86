//! The packet layer: what moat's packet components agree a packet is.
//!
//! * [`meta`]: the meaning of a [`PacketDesc`](moat_ring::PacketDesc)'s
//!   `flags` and `meta` words — checksum state, interface, verdict.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod meta;
