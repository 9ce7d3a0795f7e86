//! UDP (RFC 768) datagram view.

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::checksum::{Checksum, Delta, udp_field};
use crate::view::{split_upto, take_header};

/// Header length.
pub const HEADER_LEN: usize = 8;

/// Offset of the checksum field in the header.
pub const CHECKSUM_OFFSET: usize = 6;

/// The 8-byte UDP header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Header plus data, bytes.
    pub length: U16,
    /// Checksum; 0 means none (IPv4 only).
    pub checksum: U16,
}

/// The state of a UDP checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Field is 0: the sender did not compute one. Allowed over IPv4 only
    /// (RFC 8200 §8.1 forbids it over IPv6).
    Absent,
    /// Present and right.
    Valid,
    /// Present and wrong.
    Invalid,
}

/// A checked view of a UDP datagram.
///
/// Construction guarantees: at least 8 bytes, length field ≥ 8 and (for
/// [`parse`](Self::parse)) within the bytes; bytes past it are ignored, as
/// Linux does.
pub struct Udp<B> {
    header: Ref<B, UdpHeader>,
    payload: B,
    truncated: bool,
}

impl<B: SplitByteSlice> Udp<B> {
    /// A complete datagram.
    pub fn parse(datagram: B) -> Result<Self, Error> {
        Self::parse_inner(datagram, false)
    }

    /// A datagram in a first fragment or quoted in an ICMP error: the
    /// length field may exceed the bytes.
    pub fn parse_partial(datagram: B) -> Result<Self, Error> {
        Self::parse_inner(datagram, true)
    }

    fn parse_inner(datagram: B, allow_truncated: bool) -> Result<Self, Error> {
        let (header, rest) = take_header::<B, UdpHeader>(datagram)?;
        let len = usize::from(header.length.get());
        if len < HEADER_LEN {
            return Err(Error::BadTotalLen);
        }
        let (payload, _trailing, truncated) = split_upto(rest, len - HEADER_LEN)?;
        if truncated && !allow_truncated {
            return Err(Error::BadTotalLen);
        }
        Ok(Udp { header, payload, truncated })
    }
}

impl<B: ByteSlice> Udp<B> {
    /// The header.
    pub fn header(&self) -> &UdpHeader {
        &self.header
    }
    /// Data.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.header.src_port.get()
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.header.dst_port.get()
    }
    /// Length as the header says.
    pub fn len(&self) -> usize {
        usize::from(self.header.length.get())
    }
    /// True for a header-only datagram.
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }
    /// True if cut short (partial parse).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    fn sum(&self, mut c: Checksum) -> Checksum {
        c.add_bytes(Ref::bytes(&self.header));
        c.add_bytes(&self.payload);
        c
    }
    /// Checks the checksum given the IP `pseudo`-header sum (whose length
    /// must be this datagram's length field).
    pub fn checksum(&self, pseudo: Checksum) -> UdpChecksum {
        if self.header.checksum.get() == 0 {
            UdpChecksum::Absent
        } else if self.sum(pseudo).is_valid() {
            UdpChecksum::Valid
        } else {
            UdpChecksum::Invalid
        }
    }
    /// The checksum field value the datagram should carry (never 0).
    pub fn compute_checksum(&self, pseudo: Checksum) -> u16 {
        let mut c = self.sum(pseudo);
        c.add_u16(!self.header.checksum.get());
        udp_field(c.finish())
    }
}

impl<B: ByteSliceMut> Udp<B> {
    /// The header, writable (fix the checksum afterwards).
    pub fn header_mut(&mut self) -> &mut UdpHeader {
        &mut self.header
    }
    /// Data, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
    /// Fills the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo: Checksum) {
        let c = self.compute_checksum(pseudo);
        self.header.checksum = U16::new(c);
    }
    /// Applies a change made elsewhere in the checksummed region; an absent
    /// checksum stays absent.
    pub fn adjust_checksum(&mut self, d: Delta) {
        let c = d.apply_udp(self.header.checksum.get());
        self.header.checksum = U16::new(c);
    }
    /// Sets the source port, fixing the checksum.
    pub fn set_src_port(&mut self, port: u16) {
        let d = Delta::new().word(self.header.src_port.get(), port);
        self.header.src_port = U16::new(port);
        self.adjust_checksum(d);
    }
    /// Sets the destination port, fixing the checksum.
    pub fn set_dst_port(&mut self, port: u16) {
        let d = Delta::new().word(self.header.dst_port.get(), port);
        self.header.dst_port = U16::new(port);
        self.adjust_checksum(d);
    }
}
