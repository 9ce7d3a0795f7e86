//! IPv6 (RFC 8200): the fixed header and a bounded walk over extension
//! headers — enough to find the upper-layer protocol, to know whether a
//! packet is a fragment, and to drop or pass the rest deliberately.

use core::net::Ipv6Addr;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::checksum::{Checksum, Delta};
use crate::ip::Fragment;
use crate::proto;
use crate::view::{split_upto, take_header};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers [`Ipv6::walk`] follows before refusing the packet.
/// Real traffic has at most three or four; a long chain is an evasion attempt
/// or garbage, and refusing it keeps the walk's work bounded.
pub const MAX_EXT_HEADERS: usize = 8;

/// The fixed 40-byte IPv6 header, as on the wire.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Version (4 bits, 6), traffic class (8), flow label (20).
    pub vtc_flow: [u8; 4],
    /// Bytes after this header (extension headers included).
    pub payload_len: U16,
    /// Type of the first extension header or of the upper layer.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

impl Ipv6Header {
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.vtc_flow[0] >> 4
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst)
    }
}

/// What the extension-header walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Ext {
    /// The upper-layer protocol (or the header the walk stopped at: ESP,
    /// no-next-header 59, anything it does not know as an extension header).
    pub upper: u8,
    /// Offset of the upper-layer header within the payload.
    pub offset: usize,
    /// Fragment position (from a fragment header, if any).
    pub fragment: Fragment,
    /// Fragment identification, if there was a fragment header.
    pub frag_ident: Option<u32>,
    /// Segments left in a routing header (if non-zero, the destination is not
    /// the final one and the pseudo-header cannot be formed from this header).
    pub segments_left: u8,
    /// Number of extension headers walked.
    pub count: u8,
}

/// A checked view of an IPv6 packet.
///
/// Construction guarantees: at least 40 bytes, version 6, payload length
/// within the bytes (for [`parse`](Self::parse)); bytes past it are ignored.
/// A zero payload length with a hop-by-hop header (a jumbogram) is
/// [`Error::Unsupported`].
pub struct Ipv6<B> {
    header: Ref<B, Ipv6Header>,
    payload: B,
    truncated: bool,
}

impl<B: SplitByteSlice> Ipv6<B> {
    /// A complete packet.
    pub fn parse(bytes: B) -> Result<Self, Error> {
        Self::parse_inner(bytes, false)
    }

    /// A packet quoted in an ICMPv6 error (payload possibly cut short).
    pub fn parse_quoted(bytes: B) -> Result<Self, Error> {
        Self::parse_inner(bytes, true)
    }

    fn parse_inner(bytes: B, allow_truncated: bool) -> Result<Self, Error> {
        let (header, rest) = take_header::<B, Ipv6Header>(bytes)?;
        if header.version() != 6 {
            return Err(Error::BadVersion);
        }
        let len = usize::from(header.payload_len.get());
        if len == 0 && header.next_header == proto::HOP_BY_HOP {
            return Err(Error::Unsupported);
        }
        let (payload, _trailing, truncated) = split_upto(rest, len)?;
        if truncated && !allow_truncated {
            return Err(Error::BadTotalLen);
        }
        Ok(Ipv6 { header, payload, truncated })
    }
}

impl<B: ByteSlice> Ipv6<B> {
    /// The fixed header.
    pub fn header(&self) -> &Ipv6Header {
        &self.header
    }
    /// Everything after the fixed header (extension headers and upper layer).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Fixed header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.header.payload_len.get())
    }
    /// True for a quoted packet cut short.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        self.header.src_addr()
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        self.header.dst_addr()
    }

    /// Walks the extension headers (at most [`MAX_EXT_HEADERS`]).
    ///
    /// Follows hop-by-hop (only first), routing, fragment (into the data only
    /// for a first fragment), destination options and AH; stops at anything
    /// else. Fails on a header that runs past the payload (unless the packet
    /// is a truncated quote, where it stops there) or on a chain that is too
    /// long or misordered.
    pub fn walk(&self) -> Result<Ipv6Ext, Error> {
        walk(self.header.next_header, &self.payload, self.truncated)
    }

    /// The pseudo-header sum for an upper-layer checksum over `l4_len` bytes
    /// with protocol `upper` (from [`walk`](Self::walk)).
    pub fn pseudo_header(&self, upper: u8, l4_len: u32) -> Checksum {
        Checksum::ipv6_pseudo(self.header.src, self.header.dst, upper, l4_len)
    }
}

impl<B: ByteSliceMut> Ipv6<B> {
    /// The fixed header, writable (no header checksum in IPv6).
    pub fn header_mut(&mut self) -> &mut Ipv6Header {
        &mut self.header
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
    /// Header and payload at once.
    pub fn parts_mut(&mut self) -> (&mut Ipv6Header, &mut [u8]) {
        (&mut self.header, &mut self.payload)
    }
    /// Sets the source address; returns the change for the upper-layer
    /// checksum (pseudo-header).
    pub fn set_src(&mut self, addr: Ipv6Addr) -> Delta {
        let d = Delta::new().bytes(&self.header.src, &addr.octets());
        self.header.src = addr.octets();
        d
    }
    /// Sets the destination address; as [`set_src`](Self::set_src).
    pub fn set_dst(&mut self, addr: Ipv6Addr) -> Delta {
        let d = Delta::new().bytes(&self.header.dst, &addr.octets());
        self.header.dst = addr.octets();
        d
    }
    /// Forwarding: decrements the hop limit, or refuses (`None`, unchanged)
    /// if it would reach zero.
    pub fn decrement_hop_limit(&mut self) -> Option<u8> {
        let h = self.header.hop_limit.checked_sub(1).filter(|&h| h > 0)?;
        self.header.hop_limit = h;
        Some(h)
    }
}

/// The walk itself, over the bytes after the fixed header.
fn walk(first: u8, payload: &[u8], truncated: bool) -> Result<Ipv6Ext, Error> {
    let mut ext =
        Ipv6Ext { upper: first, offset: 0, fragment: Fragment::Whole, frag_ident: None, segments_left: 0, count: 0 };
    loop {
        let nh = ext.upper;
        let len = match nh {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS | proto::FRAGMENT | proto::AH => {
                let at = ext.offset;
                let Some(h) = payload.get(at..at + 2) else {
                    return if truncated { Ok(ext) } else { Err(Error::BadExtHeader) };
                };
                match nh {
                    proto::FRAGMENT => 8,
                    proto::AH => (usize::from(h[1]) + 2) * 4,
                    _ => (usize::from(h[1]) + 1) * 8,
                }
            }
            _ => return Ok(ext),
        };
        if nh == proto::HOP_BY_HOP && ext.count != 0 {
            return Err(Error::BadExtHeader);
        }
        if usize::from(ext.count) == MAX_EXT_HEADERS {
            return Err(Error::BadExtHeader);
        }
        let at = ext.offset;
        let Some(h) = payload.get(at..at + len) else {
            return if truncated { Ok(ext) } else { Err(Error::BadExtHeader) };
        };
        ext.count += 1;
        ext.upper = h[0];
        ext.offset = at + len;
        match nh {
            proto::ROUTING => ext.segments_left = ext.segments_left.max(h[3]),
            proto::FRAGMENT => {
                let off = u16::from_be_bytes([h[2], h[3]]) & 0xfff8;
                let more = h[3] & 1 != 0;
                ext.frag_ident = Some(u32::from_be_bytes([h[4], h[5], h[6], h[7]]));
                ext.fragment = match (off, more) {
                    (0, false) => Fragment::Whole, // atomic fragment (RFC 6946)
                    (0, true) => Fragment::First,
                    _ => Fragment::Later,
                };
                if ext.fragment == Fragment::Later {
                    // What follows is the middle of the datagram, not headers.
                    return Ok(ext);
                }
            }
            _ => {}
        }
    }
}

/// Writes a fixed header (traffic class and flow label zero).
pub fn write_header(
    out: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload_len: u16,
    hop_limit: u8,
) -> Result<(), Error> {
    let h = Ipv6Header {
        vtc_flow: [0x60, 0, 0, 0],
        payload_len: U16::new(payload_len),
        next_header,
        hop_limit,
        src: src.octets(),
        dst: dst.octets(),
    };
    h.write_to_prefix(out).map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, ext: &[u8], upper_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        write_header(&mut p, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, first, (ext.len() + upper_len) as u16, 64)
            .unwrap();
        p.extend_from_slice(ext);
        p.resize(p.len() + upper_len, 0);
        p
    }

    #[test]
    fn walks_a_chain_to_the_upper_layer() {
        // hop-by-hop (8) -> dest opts (16) -> TCP
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = packet(0, &ext, 20);
        let w = Ipv6::parse(&p[..]).unwrap().walk().unwrap();
        assert_eq!((w.upper, w.offset, w.count, w.fragment), (6, 24, 2, Fragment::Whole));
    }

    #[test]
    fn fragments_and_routing() {
        let first = packet(44, &[17, 0, 0, 1, 0, 0, 0, 9], 8);
        let w = Ipv6::parse(&first[..]).unwrap().walk().unwrap();
        assert_eq!((w.upper, w.offset, w.fragment, w.frag_ident), (17, 8, Fragment::First, Some(9)));
        // A later fragment whose data happens to look like a header: not walked.
        let later = packet(44, &[0, 0, 0, 8, 0, 0, 0, 9], 8);
        let w = Ipv6::parse(&later[..]).unwrap().walk().unwrap();
        assert_eq!((w.upper, w.offset, w.fragment), (0, 8, Fragment::Later));
        let routed = packet(43, &[6, 2, 0, 1, 0, 0, 0, 0], 16 + 20);
        assert_eq!(Ipv6::parse(&routed[..]).unwrap().walk().unwrap().segments_left, 1);
    }

    #[test]
    fn refuses_bad_chains() {
        let late_hbh = packet(60, &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(Ipv6::parse(&late_hbh[..]).unwrap().walk().err(), Some(Error::BadExtHeader));
        let past_end = packet(60, &[6, 3, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(Ipv6::parse(&past_end[..]).unwrap().walk().err(), Some(Error::BadExtHeader));
        let mut long = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            long.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = packet(60, &long, 0);
        assert_eq!(Ipv6::parse(&p[..]).unwrap().walk().err(), Some(Error::BadExtHeader));
        let jumbo = packet(0, &[], 0);
        assert_eq!(Ipv6::parse(&jumbo[..]).err(), Some(Error::Unsupported));
        let mut short = packet(6, &[], 20);
        short.truncate(50);
        assert_eq!(Ipv6::parse(&short[..]).err(), Some(Error::BadTotalLen));
        assert!(Ipv6::parse_quoted(&short[..]).unwrap().is_truncated());
        assert_eq!(Ipv6::parse(&short[..39]).err(), Some(Error::Truncated));
    }
}
