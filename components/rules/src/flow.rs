//! What the rules look at in a packet: source address (for the anti-spoof
//! check) and the [`FlowKey`] (destination, protocol, port or ICMP type).
//!
//! NOTE: this is a minimal private extraction written before moat-net's
//! packet views existed; it should move to those views once they land.
//!
//! The header bytes are copied out of the pool once, before anything is
//! looked at, so a buggy neighbour writing the buffer cannot make a check and
//! a use see different bytes. IPv6 extension headers are walked (hop-by-hop,
//! routing, destination options, fragment, AH) as Linux's `ipv6_find_hdr`
//! does for `ip6tables -p`, but only within the copied window: a chain longer
//! than that is refused as malformed. A fragment that is not the first has no
//! transport header: its key carries [`L4::None`], so only rules without
//! ports or ICMP type can match it.

use moat_control::rules::{Addr, FlowKey, L4};

/// Header bytes copied and looked at.
pub const WINDOW: usize = 256;
/// Most IPv6 extension headers walked.
const MAX_EXT: usize = 8;

/// Why a packet has no flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    /// Too short for its IP header, or its lengths disagree with the buffer.
    Truncated,
    /// Not IPv4 or IPv6.
    Version,
    /// A first fragment (or whole packet) too short for its transport header.
    ShortL4,
    /// IPv6 extension headers beyond the window or too many of them.
    ExtChain,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The source address and flow key of the IP packet `pkt`.
pub fn extract(pkt: &[u8]) -> Result<(Addr, FlowKey), FlowError> {
    let mut win = [0u8; WINDOW];
    let n = pkt.len().min(WINDOW);
    win[..n].copy_from_slice(&pkt[..n]);
    let b = &win[..n];
    match b.first().map(|v| v >> 4) {
        Some(4) => v4(b, pkt.len()),
        Some(6) => v6(b, pkt.len()),
        Some(_) => Err(FlowError::Version),
        None => Err(FlowError::Truncated),
    }
}

fn v4(b: &[u8], len: usize) -> Result<(Addr, FlowKey), FlowError> {
    if b.len() < 20 {
        return Err(FlowError::Truncated);
    }
    let ihl = usize::from(b[0] & 0xf) * 4;
    let total = usize::from(be16(b, 2).ok_or(FlowError::Truncated)?);
    if ihl < 20 || total < ihl || total > len {
        return Err(FlowError::Truncated);
    }
    let src = Addr::V4([b[12], b[13], b[14], b[15]]);
    let dst = Addr::V4([b[16], b[17], b[18], b[19]]);
    let proto = b[9];
    let later_fragment = be16(b, 6).ok_or(FlowError::Truncated)? & 0x1fff != 0;
    let l4 = if later_fragment { L4::None } else { l4(b, ihl, total, proto, 1)? };
    Ok((src, FlowKey { dst, proto, l4 }))
}

fn v6(b: &[u8], len: usize) -> Result<(Addr, FlowKey), FlowError> {
    if b.len() < 40 {
        return Err(FlowError::Truncated);
    }
    let end = 40 + usize::from(be16(b, 4).ok_or(FlowError::Truncated)?);
    if end > len {
        return Err(FlowError::Truncated);
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[8..24]);
    let src = Addr::V6(a);
    a.copy_from_slice(&b[24..40]);
    let dst = Addr::V6(a);
    let (mut nh, mut off) = (b[6], 40);
    for _ in 0..MAX_EXT {
        let ext = match nh {
            0 | 43 | 60 => (usize::from(*b.get(off + 1).ok_or(FlowError::ExtChain)?) + 1) * 8,
            51 => (usize::from(*b.get(off + 1).ok_or(FlowError::ExtChain)?) + 2) * 4,
            44 => {
                let frag = be16(b, off + 2).ok_or(FlowError::ExtChain)? >> 3;
                if frag != 0 {
                    let proto = *b.get(off).ok_or(FlowError::ExtChain)?;
                    return Ok((src, FlowKey { dst, proto, l4: L4::None }));
                }
                8
            }
            proto => return Ok((src, FlowKey { dst, proto, l4: l4(b, off, end, proto, 58)? })),
        };
        nh = *b.get(off).ok_or(FlowError::ExtChain)?;
        off += ext;
        if off > end {
            return Err(FlowError::Truncated);
        }
    }
    Err(FlowError::ExtChain)
}

/// The port or ICMP type at `off` (transport header), within `end`.
fn l4(b: &[u8], off: usize, end: usize, proto: u8, icmp: u8) -> Result<L4, FlowError> {
    let need = match proto {
        6 | 17 => 4,
        p if p == icmp => 1,
        _ => return Ok(L4::None),
    };
    if off + need > end {
        return Err(FlowError::ShortL4);
    }
    if off + need > b.len() {
        return Err(FlowError::ExtChain);
    }
    Ok(match proto {
        6 | 17 => L4::Port(u16::from_be_bytes([b[off + 2], b[off + 3]])),
        _ => L4::Icmp(b[off]),
    })
}
