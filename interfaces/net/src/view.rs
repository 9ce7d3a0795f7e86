//! The two primitives every view is built from: take a fixed header off the
//! front, and split the rest at a checked length. Neither can panic.

use zerocopy::{FromBytes, Immutable, KnownLayout, Ref, SplitByteSlice};

use crate::Error;

/// Splits a fixed-size header `H` off the front of `bytes`.
pub(crate) fn take_header<B: SplitByteSlice, H: FromBytes + KnownLayout + Immutable>(
    bytes: B,
) -> Result<(Ref<B, H>, B), Error> {
    Ref::from_prefix(bytes).map_err(|_| Error::Truncated)
}

/// Splits `bytes` at `at`, or fails with `err` if it is shorter.
pub(crate) fn split<B: SplitByteSlice>(bytes: B, at: usize, err: Error) -> Result<(B, B), Error> {
    bytes.split_at(at).map_err(|_| err)
}

/// Splits `bytes` at `at`, or at its end if it is shorter (for packets
/// quoted, truncated, inside ICMP errors). The flag says whether the cut fell
/// short.
pub(crate) fn split_upto<B: SplitByteSlice>(bytes: B, at: usize) -> Result<(B, B, bool), Error> {
    let short = at > bytes.len();
    let at = at.min(bytes.len());
    // Cannot fail (at <= len); an error rather than a panic path all the same.
    let (a, b) = split(bytes, at, Error::Truncated)?;
    Ok((a, b, short))
}
