//! IPv4 (RFC 791): header, options, fragments.
//!
//! [`Ipv4::parse`] is for packets moat forwards: the total length must fit
//! the bytes given (trailing bytes — Ethernet padding — are cut off).
//! [`Ipv4::parse_quoted`] is for the packet quoted inside an ICMP error, which
//! is usually cut short: the header must be whole, the payload is whatever is
//! there.

use core::net::Ipv4Addr;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::checksum::{self, Checksum, Delta};
use crate::ip::Fragment;
use crate::view::{split, split_upto, take_header};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The fixed 20 bytes of an IPv4 header, as on the wire.
///
/// Fields are public for building and inspecting; changing one by hand
/// leaves the header checksum stale — the [`Ipv4`] setters fix it.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Version (high nibble, 4) and header length in 32-bit words (low).
    pub version_ihl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Header plus payload, bytes.
    pub total_len: U16,
    /// Identification (groups fragments).
    pub ident: U16,
    /// Flags (bit 14 DF, bit 13 MF) and fragment offset in 8-byte units.
    pub flags_frag: U16,
    /// Time to live.
    pub ttl: u8,
    /// Payload protocol ([`crate::proto`]).
    pub protocol: u8,
    /// Header checksum.
    pub checksum: U16,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
}

const DF: u16 = 0x4000;
const MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

impl Ipv4Header {
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.version_ihl >> 4
    }
    /// Header length in bytes (IHL × 4), as the field says.
    pub fn header_len(&self) -> usize {
        usize::from(self.version_ihl & 0xf) * 4
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst)
    }
    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag.get() & DF != 0
    }
    /// More-fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.flags_frag.get() & MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.flags_frag.get() & OFFSET_MASK) * 8
    }
    /// Whether this is a whole datagram, its first fragment, or a later one.
    pub fn fragment(&self) -> Fragment {
        match (self.frag_offset(), self.more_fragments()) {
            (0, false) => Fragment::Whole,
            (0, true) => Fragment::First,
            _ => Fragment::Later,
        }
    }
}

/// A checked view of an IPv4 packet in `B` (`&[u8]` to read, `&mut [u8]` to
/// rewrite).
///
/// Construction guarantees: at least 20 bytes, version 4, IHL ≥ 5 and within
/// the bytes, total length ≥ header length and (for [`parse`](Self::parse))
/// within the bytes. The header checksum is *not* checked here
/// ([`checksum_ok`](Self::checksum_ok)), so that a caller can count it
/// separately.
pub struct Ipv4<B> {
    header: Ref<B, Ipv4Header>,
    options: B,
    payload: B,
    truncated: bool,
}

impl<B: SplitByteSlice> Ipv4<B> {
    /// A complete packet: the total length must fit in `bytes`; bytes after
    /// it are ignored.
    pub fn parse(bytes: B) -> Result<Self, Error> {
        Self::parse_inner(bytes, false)
    }

    /// A packet quoted in an ICMP error: header whole, payload possibly cut
    /// short ([`is_truncated`](Self::is_truncated)).
    pub fn parse_quoted(bytes: B) -> Result<Self, Error> {
        Self::parse_inner(bytes, true)
    }

    fn parse_inner(bytes: B, allow_truncated: bool) -> Result<Self, Error> {
        let (header, rest) = take_header::<B, Ipv4Header>(bytes)?;
        if header.version() != 4 {
            return Err(Error::BadVersion);
        }
        let hlen = header.header_len();
        if hlen < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let total = usize::from(header.total_len.get());
        if total < hlen {
            return Err(Error::BadTotalLen);
        }
        let (options, rest) = split(rest, hlen - MIN_HEADER_LEN, Error::BadHeaderLen)?;
        let (payload, _trailing, truncated) = split_upto(rest, total - hlen)?;
        if truncated && !allow_truncated {
            return Err(Error::BadTotalLen);
        }
        Ok(Ipv4 { header, options, payload, truncated })
    }
}

impl<B: ByteSlice> Ipv4<B> {
    /// The fixed header.
    pub fn header(&self) -> &Ipv4Header {
        &self.header
    }
    /// Option bytes (0–40).
    pub fn options(&self) -> &[u8] {
        &self.options
    }
    /// The options, parsed one by one.
    pub fn option_iter(&self) -> Options<'_> {
        Options { rest: &self.options }
    }
    /// The payload (exactly total length − header length bytes, unless
    /// truncated).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Header length with options.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }
    /// Total length as the header says.
    pub fn total_len(&self) -> usize {
        usize::from(self.header.total_len.get())
    }
    /// True for a quoted packet whose payload is shorter than its header says.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        self.header.src_addr()
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        self.header.dst_addr()
    }
    /// Payload protocol.
    pub fn protocol(&self) -> u8 {
        self.header.protocol
    }
    /// Fragment position.
    pub fn fragment(&self) -> Fragment {
        self.header.fragment()
    }
    /// True if the header checksum (options included) is right.
    pub fn checksum_ok(&self) -> bool {
        self.header_sum().is_valid()
    }
    fn header_sum(&self) -> Checksum {
        let mut c = Checksum::new();
        c.add_bytes(Ref::bytes(&self.header));
        c.add_bytes(&self.options);
        c
    }
    /// The pseudo-header sum for this packet's TCP/UDP checksum (the L4
    /// length is the payload length the header declares).
    pub fn pseudo_header(&self) -> Checksum {
        let l4_len = (self.total_len() - self.header_len()) as u16;
        Checksum::ipv4_pseudo(self.header.src, self.header.dst, self.header.protocol, l4_len)
    }
    /// The fixed header's bytes and the option bytes (together, the region
    /// the header checksum covers).
    pub fn header_bytes(&self) -> (&[u8], &[u8]) {
        (Ref::bytes(&self.header), &self.options)
    }
}

impl<B: ByteSliceMut> Ipv4<B> {
    /// The fixed header, writable. Fixing the checksum afterwards is the
    /// caller's job ([`fill_checksum`](Self::fill_checksum)).
    pub fn header_mut(&mut self) -> &mut Ipv4Header {
        &mut self.header
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
    /// The header and the payload at once (rewrite the address here, the
    /// port in the payload, apply the returned delta there).
    pub fn parts_mut(&mut self) -> (&mut Ipv4Header, &mut [u8]) {
        (&mut self.header, &mut self.payload)
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.header.checksum = U16::new(0);
        let c = self.header_sum().finish();
        self.header.checksum = U16::new(c);
    }

    /// Sets the source address, fixing the header checksum. Returns the
    /// change to apply to the TCP/UDP checksum, whose pseudo-header includes
    /// the address.
    pub fn set_src(&mut self, addr: Ipv4Addr) -> Delta {
        let d = Delta::new().bytes(&self.header.src, &addr.octets());
        self.header.src = addr.octets();
        self.apply_header(d);
        d
    }

    /// Sets the destination address; as [`set_src`](Self::set_src).
    pub fn set_dst(&mut self, addr: Ipv4Addr) -> Delta {
        let d = Delta::new().bytes(&self.header.dst, &addr.octets());
        self.header.dst = addr.octets();
        self.apply_header(d);
        d
    }

    /// Sets the TTL, fixing the header checksum (the TTL is not in any
    /// pseudo-header).
    pub fn set_ttl(&mut self, ttl: u8) {
        let old = u16::from_be_bytes([self.header.ttl, self.header.protocol]);
        self.header.ttl = ttl;
        let new = u16::from_be_bytes([ttl, self.header.protocol]);
        self.apply_header(Delta::new().word(old, new));
    }

    /// Forwarding: decrements the TTL and returns the new value, or refuses
    /// (returns `None`, packet unchanged) if it would reach zero — the caller
    /// then owes the sender a time-exceeded error.
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.header.ttl.checked_sub(1).filter(|&t| t > 0)?;
        self.set_ttl(ttl);
        Some(ttl)
    }

    fn apply_header(&mut self, d: Delta) {
        let c = d.apply(self.header.checksum.get());
        self.header.checksum = U16::new(c);
    }
}

/// The well-known options, by type byte.
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert.
    pub const ROUTER_ALERT: u8 = 148;
}

/// One IPv4 option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// Type byte (copied flag, class, number); see [`option`].
    pub kind: u8,
    /// Bytes after the type and length bytes (empty for NOP).
    pub data: &'a [u8],
}

/// Iterator over IPv4 options; yields `Err(BadOption)` once and stops if the
/// options do not parse.
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<Ipv4Option<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            option::END => {
                self.rest = &[];
                None
            }
            option::NOP => {
                self.rest = after;
                Some(Ok(Ipv4Option { kind, data: &[] }))
            }
            _ => {
                let len = after.first().map(|&l| usize::from(l));
                match len {
                    Some(len) if len >= 2 && len <= self.rest.len() => {
                        let data = &self.rest[2..len];
                        self.rest = &self.rest[len..];
                        Some(Ok(Ipv4Option { kind, data }))
                    }
                    _ => {
                        self.rest = &[];
                        Some(Err(Error::BadOption))
                    }
                }
            }
        }
    }
}

/// Writes a minimal header (no options, DF clear) with a correct checksum
/// into the front of `out`; for building packets (ICMP errors, tests).
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: u16,
    ident: u16,
    ttl: u8,
    tos: u8,
) -> Result<(), Error> {
    let total = payload_len.checked_add(MIN_HEADER_LEN as u16).ok_or(Error::BadTotalLen)?;
    let mut h = Ipv4Header {
        version_ihl: 0x45,
        tos,
        total_len: U16::new(total),
        ident: U16::new(ident),
        flags_frag: U16::new(0),
        ttl,
        protocol,
        checksum: U16::new(0),
        src: src.octets(),
        dst: dst.octets(),
    };
    h.checksum = U16::new(checksum::checksum(h.as_bytes()));
    h.write_to_prefix(out).map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(total: u16, ihl: u8, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(ihl) * 4 + payload];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p
    }

    #[test]
    fn checked_constructor_refuses_what_does_not_fit() {
        assert_eq!(Ipv4::parse(&[0x45u8; 19][..]).err(), Some(Error::Truncated));
        let mut p = packet(28, 5, 8);
        p[0] = 0x65;
        assert_eq!(Ipv4::parse(&p[..]).err(), Some(Error::BadVersion));
        assert_eq!(Ipv4::parse(&packet(28, 4, 12)[..]).err(), Some(Error::BadHeaderLen));
        assert_eq!(Ipv4::parse(&packet(60, 15, 0)[..40]).err(), Some(Error::BadHeaderLen), "IHL past the bytes");
        assert_eq!(Ipv4::parse(&packet(19, 5, 8)[..]).err(), Some(Error::BadTotalLen));
        assert_eq!(Ipv4::parse(&packet(29, 5, 8)[..]).err(), Some(Error::BadTotalLen));
        let q = packet(1000, 5, 8);
        let quoted = Ipv4::parse_quoted(&q[..]).unwrap();
        assert!(quoted.is_truncated());
        assert_eq!(quoted.payload().len(), 8);
        let padded = packet(28, 5, 30);
        let v = Ipv4::parse(&padded[..]).unwrap();
        assert_eq!(v.payload().len(), 8, "Ethernet padding cut off");
        assert!(!v.is_truncated());
    }

    #[test]
    fn setters_keep_the_header_checksum_right() {
        let mut p = packet(28, 6, 8);
        p[20..24].copy_from_slice(&[option::NOP, option::NOP, option::NOP, option::END]);
        let mut v = Ipv4::parse(&mut p[..]).unwrap();
        v.fill_checksum();
        assert!(v.checksum_ok());
        let _ = v.set_src(Ipv4Addr::new(10, 137, 0, 5));
        let _ = v.set_dst(Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(v.decrement_ttl(), Some(63));
        assert!(v.checksum_ok());
        let before = v.header().checksum;
        v.fill_checksum();
        assert_eq!(v.header().checksum, before, "incremental equals recomputed");
        v.set_ttl(1);
        assert_eq!(v.decrement_ttl(), None);
        assert_eq!(v.header().ttl, 1);
        assert!(v.checksum_ok());
    }

    #[test]
    fn options_parse_or_fail_cleanly() {
        let opts = |o: &[u8]| {
            let mut p = packet(20 + o.len() as u16, 5 + (o.len() / 4) as u8, 0);
            p[20..20 + o.len()].copy_from_slice(o);
            Ipv4::parse(&p[..])
                .unwrap()
                .option_iter()
                .collect::<Vec<_>>()
                .iter()
                .map(|r| r.map(|o| (o.kind, o.data.to_vec())))
                .collect::<Vec<_>>()
        };
        assert_eq!(opts(&[7, 7, 4, 1, 2, 3, 4, 0]), vec![Ok((7, vec![4, 1, 2, 3, 4]))]);
        assert_eq!(opts(&[1, 1, 148, 4, 0, 0, 0, 0]), vec![Ok((1, vec![])), Ok((1, vec![])), Ok((148, vec![0, 0]))]);
        assert_eq!(opts(&[7, 9, 4, 0]), vec![Err(Error::BadOption)]);
        assert_eq!(opts(&[7, 1, 4, 0]), vec![Err(Error::BadOption)]);
        assert_eq!(opts(&[1, 1, 1, 7]), vec![Ok((1, vec![])), Ok((1, vec![])), Ok((1, vec![])), Err(Error::BadOption)]);
    }

    #[test]
    fn fragments() {
        let mut p = packet(28, 5, 8);
        let mut set = |v: u16| {
            p[6..8].copy_from_slice(&v.to_be_bytes());
            Ipv4::parse(&p[..]).unwrap().fragment()
        };
        assert_eq!(set(0), Fragment::Whole);
        assert_eq!(set(DF), Fragment::Whole);
        assert_eq!(set(MF), Fragment::First);
        assert_eq!(set(MF | 1), Fragment::Later);
        assert_eq!(set(185), Fragment::Later);
    }
}
