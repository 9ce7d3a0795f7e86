//! ICMPv4 (RFC 792): queries and errors, including the packet an error
//! quotes.

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use crate::Error;
use crate::checksum::{Checksum, Delta};
use crate::ipv4::Ipv4;
use crate::view::take_header;

/// Header length (type, code, checksum, four type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// The 8-byte header shared by ICMPv4 and ICMPv6.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpHeader {
    /// Message type.
    pub ty: u8,
    /// Code (meaning depends on the type).
    pub code: u8,
    /// Checksum.
    pub checksum: U16,
    /// Identifier and sequence number for queries; unused, pointer or MTU
    /// for errors.
    pub rest: [u8; 4],
}

/// ICMPv4 message types.
pub mod ty {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (error).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (error, deprecated).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect (error).
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 9;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 10;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem (error).
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request (obsolete).
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply (obsolete).
    pub const INFO_REPLY: u8 = 16;
    /// Address mask request.
    pub const ADDR_MASK: u8 = 17;
    /// Address mask reply.
    pub const ADDR_MASK_REPLY: u8 = 18;
}

/// Destination-unreachable codes.
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (the MTU goes in bytes 6–7).
    pub const FRAG_NEEDED: u8 = 4;
    /// Host administratively prohibited (what Linux's
    /// `icmp-host-prohibited` reject sends).
    pub const HOST_PROHIBITED: u8 = 10;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// True for the error types, which quote the packet that caused them and
/// must never be answered with another error.
pub const fn is_error(t: u8) -> bool {
    matches!(t, ty::DEST_UNREACHABLE | ty::SOURCE_QUENCH | ty::REDIRECT | ty::TIME_EXCEEDED | ty::PARAM_PROBLEM)
}

/// True for the query types whose bytes 4–5 are an identifier (what NAT
/// treats as the "port" of an ICMP flow).
pub const fn is_query(t: u8) -> bool {
    matches!(
        t,
        ty::ECHO_REPLY
            | ty::ECHO_REQUEST
            | ty::TIMESTAMP
            | ty::TIMESTAMP_REPLY
            | ty::INFO_REQUEST
            | ty::INFO_REPLY
            | ty::ADDR_MASK
            | ty::ADDR_MASK_REPLY
    )
}

/// A checked view of an ICMPv4 message (the IP payload): at least the
/// 8-byte header. The checksum covers the message alone (no pseudo-header).
pub struct Icmpv4<B> {
    header: Ref<B, IcmpHeader>,
    body: B,
}

impl<B: SplitByteSlice> Icmpv4<B> {
    /// Views `message` (all of it).
    pub fn parse(message: B) -> Result<Self, Error> {
        let (header, body) = take_header::<B, IcmpHeader>(message)?;
        Ok(Icmpv4 { header, body })
    }

    /// For an error, the quoted packet (header whole, payload as much as was
    /// quoted); [`Error::WrongProtocol`] for other types.
    pub fn into_quoted(self) -> Result<Ipv4<B>, Error> {
        if !is_error(self.header.ty) {
            return Err(Error::WrongProtocol);
        }
        Ipv4::parse_quoted(self.body)
    }

    /// The header and the body, for rewriting both (the quote of an error).
    pub fn into_parts(self) -> (Ref<B, IcmpHeader>, B) {
        (self.header, self.body)
    }
}

impl<B: ByteSlice> Icmpv4<B> {
    /// The header.
    pub fn header(&self) -> &IcmpHeader {
        &self.header
    }
    /// Message type.
    pub fn ty(&self) -> u8 {
        self.header.ty
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.header.code
    }
    /// Everything after the 8-byte header.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// The identifier of a query type, `None` for other types.
    pub fn ident(&self) -> Option<u16> {
        is_query(self.header.ty).then(|| u16::from_be_bytes([self.header.rest[0], self.header.rest[1]]))
    }
    /// The sequence number of a query type.
    pub fn seq(&self) -> Option<u16> {
        is_query(self.header.ty).then(|| u16::from_be_bytes([self.header.rest[2], self.header.rest[3]]))
    }
    /// The quoted packet of an error, read-only.
    pub fn quoted(&self) -> Result<Ipv4<&[u8]>, Error> {
        if !is_error(self.header.ty) {
            return Err(Error::WrongProtocol);
        }
        Ipv4::parse_quoted(&self.body[..])
    }
    fn sum(&self) -> Checksum {
        let mut c = Checksum::new();
        c.add_bytes(Ref::bytes(&self.header));
        c.add_bytes(&self.body);
        c
    }
    /// True if the checksum is right.
    pub fn checksum_ok(&self) -> bool {
        self.sum().is_valid()
    }
    /// The checksum the field should hold.
    pub fn compute_checksum(&self) -> u16 {
        let mut c = self.sum();
        c.add_u16(!self.header.checksum.get());
        c.finish()
    }
}

impl<B: ByteSliceMut> Icmpv4<B> {
    /// The header, writable (fix the checksum afterwards).
    pub fn header_mut(&mut self) -> &mut IcmpHeader {
        &mut self.header
    }
    /// The body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.body
    }
    /// Fills the checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.header.checksum = U16::new(c);
    }
    /// Applies a change made in the body (a rewritten quote).
    pub fn adjust_checksum(&mut self, d: Delta) {
        let c = d.apply(self.header.checksum.get());
        self.header.checksum = U16::new(c);
    }
    /// Sets the identifier of a query, fixing the checksum;
    /// [`Error::WrongProtocol`] for other types.
    pub fn set_ident(&mut self, id: u16) -> Result<(), Error> {
        let old = self.ident().ok_or(Error::WrongProtocol)?;
        self.header.rest[..2].copy_from_slice(&id.to_be_bytes());
        self.adjust_checksum(Delta::new().word(old, id));
        Ok(())
    }
}
