//! The PV console ring page (`io/console.h`): byte rings with free-running
//! indices; `out` goes from the guest to the console daemon.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout;

/// Bytes in the `in` ring.
pub const XENCONS_IN_SIZE: usize = 1024;
/// Bytes in the `out` ring.
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `struct xencons_interface`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenconsInterface {
    /// Input from the console daemon.
    pub r#in: [u8; XENCONS_IN_SIZE],
    /// Output to the console daemon.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest's read index into `in`.
    pub in_cons: u32,
    /// Daemon's write index into `in`.
    pub in_prod: u32,
    /// Daemon's read index into `out`.
    pub out_cons: u32,
    /// Guest's write index into `out`.
    pub out_prod: u32,
}
layout!(XenconsInterface, 3088, r#in @ 0, out @ 1024, in_cons @ 3072, in_prod @ 3076, out_cons @ 3080,
    out_prod @ 3084);
