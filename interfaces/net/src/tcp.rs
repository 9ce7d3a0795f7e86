//! TCP (RFC 9293) segment view.

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::checksum::{Checksum, Delta};
use crate::view::{split, take_header};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Offset of the checksum field in the header.
pub const CHECKSUM_OFFSET: usize = 16;

/// The fixed 20 bytes of a TCP header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Sequence number.
    pub seq: U32,
    /// Acknowledgement number.
    pub ack: U32,
    /// Data offset (high 4 bits, in 32-bit words), reserved, flags (low 9).
    pub offset_flags: U16,
    /// Receive window.
    pub window: U16,
    /// Checksum (pseudo-header, header, data).
    pub checksum: U16,
    /// Urgent pointer.
    pub urgent: U16,
}

/// TCP flag bits as in [`TcpHeader::flags`].
pub mod flags {
    /// No more data from sender.
    pub const FIN: u16 = 0x001;
    /// Synchronise sequence numbers.
    pub const SYN: u16 = 0x002;
    /// Reset the connection.
    pub const RST: u16 = 0x004;
    /// Push.
    pub const PSH: u16 = 0x008;
    /// Acknowledgement field significant.
    pub const ACK: u16 = 0x010;
    /// Urgent pointer significant.
    pub const URG: u16 = 0x020;
    /// ECN echo.
    pub const ECE: u16 = 0x040;
    /// Congestion window reduced.
    pub const CWR: u16 = 0x080;
}

impl TcpHeader {
    /// Header length in bytes as the data offset says.
    pub fn header_len(&self) -> usize {
        usize::from(self.offset_flags.get() >> 12) * 4
    }
    /// The flag bits ([`flags`]).
    pub fn flags(&self) -> u16 {
        self.offset_flags.get() & 0x1ff
    }
}

/// A checked view of a TCP segment (the IP payload).
///
/// Construction guarantees: at least 20 bytes, data offset ≥ 5 and within
/// the bytes. The checksum needs the IP pseudo-header, so it is checked
/// separately ([`checksum_ok`](Self::checksum_ok)).
pub struct Tcp<B> {
    header: Ref<B, TcpHeader>,
    options: B,
    payload: B,
}

impl<B: SplitByteSlice> Tcp<B> {
    /// Views `segment` (all of it: the IP layer has cut it to length).
    pub fn parse(segment: B) -> Result<Self, Error> {
        let (header, rest) = take_header::<B, TcpHeader>(segment)?;
        let hlen = header.header_len();
        if hlen < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let (options, payload) = split(rest, hlen - MIN_HEADER_LEN, Error::BadHeaderLen)?;
        Ok(Tcp { header, options, payload })
    }
}

impl<B: ByteSlice> Tcp<B> {
    /// The fixed header.
    pub fn header(&self) -> &TcpHeader {
        &self.header
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.options
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
    /// Flag bits ([`flags`]).
    pub fn flags(&self) -> u16 {
        self.header.flags()
    }
    /// Segment length (header, options, data).
    pub fn len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len() + self.payload.len()
    }
    /// Never true (a segment has at least its header); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }
    fn sum(&self, mut c: Checksum) -> Checksum {
        c.add_bytes(Ref::bytes(&self.header));
        c.add_bytes(&self.options);
        c.add_bytes(&self.payload);
        c
    }
    /// True if the checksum is right given the IP `pseudo`-header sum.
    pub fn checksum_ok(&self, pseudo: Checksum) -> bool {
        self.sum(pseudo).is_valid()
    }
    /// The checksum the field should hold, whatever it holds now.
    pub fn compute_checksum(&self, pseudo: Checksum) -> u16 {
        let mut c = self.sum(pseudo);
        // Take the field back out: adding its complement subtracts it.
        c.add_u16(!self.header.checksum.get());
        c.finish()
    }
}

impl<B: ByteSliceMut> Tcp<B> {
    /// The fixed header, writable (fix the checksum afterwards).
    pub fn header_mut(&mut self) -> &mut TcpHeader {
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
    /// Applies a change made elsewhere in the checksummed region (an address
    /// in the pseudo-header).
    pub fn adjust_checksum(&mut self, d: Delta) {
        let c = d.apply(self.header.checksum.get());
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
