//! ICMPv6 (RFC 4443) basics: errors with their quoted packet, echo, and the
//! neighbour-discovery types by number.

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, Ref, SplitByteSlice};

use crate::Error;
use crate::checksum::{Checksum, Delta};
pub use crate::icmpv4::IcmpHeader;
use crate::ipv6::Ipv6;
use crate::view::take_header;

/// Header length.
pub const HEADER_LEN: usize = 8;

/// ICMPv6 message types.
pub mod ty {
    /// Destination unreachable (error).
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big (error; MTU in bytes 4–7).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem (error; pointer in bytes 4–7).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Multicast listener query.
    pub const MLD_QUERY: u8 = 130;
    /// Multicast listener report.
    pub const MLD_REPORT: u8 = 131;
    /// Multicast listener done.
    pub const MLD_DONE: u8 = 132;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
    /// Multicast listener report, version 2.
    pub const MLD2_REPORT: u8 = 143;
}

/// Destination-unreachable codes.
pub mod unreachable {
    /// No route.
    pub const NO_ROUTE: u8 = 0;
    /// Administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
    /// Reject route to destination.
    pub const REJECT_ROUTE: u8 = 6;
}

/// True for error types (below 128).
pub const fn is_error(t: u8) -> bool {
    t < 128
}

/// A checked view of an ICMPv6 message: at least the 8-byte header. The
/// checksum includes the IPv6 pseudo-header.
pub struct Icmpv6<B> {
    header: Ref<B, IcmpHeader>,
    body: B,
}

impl<B: SplitByteSlice> Icmpv6<B> {
    /// Views `message` (all of it).
    pub fn parse(message: B) -> Result<Self, Error> {
        let (header, body) = take_header::<B, IcmpHeader>(message)?;
        Ok(Icmpv6 { header, body })
    }

    /// For an error, the quoted packet; [`Error::WrongProtocol`] otherwise.
    pub fn into_quoted(self) -> Result<Ipv6<B>, Error> {
        if !is_error(self.header.ty) {
            return Err(Error::WrongProtocol);
        }
        Ipv6::parse_quoted(self.body)
    }

    /// The header and the body.
    pub fn into_parts(self) -> (Ref<B, IcmpHeader>, B) {
        (self.header, self.body)
    }
}

impl<B: ByteSlice> Icmpv6<B> {
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
    /// Everything after the header.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// Message length.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }
    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Identifier of an echo request or reply.
    pub fn ident(&self) -> Option<u16> {
        matches!(self.header.ty, ty::ECHO_REQUEST | ty::ECHO_REPLY)
            .then(|| u16::from_be_bytes([self.header.rest[0], self.header.rest[1]]))
    }
    /// The quoted packet of an error, read-only.
    pub fn quoted(&self) -> Result<Ipv6<&[u8]>, Error> {
        if !is_error(self.header.ty) {
            return Err(Error::WrongProtocol);
        }
        Ipv6::parse_quoted(&self.body[..])
    }
    fn sum(&self, mut c: Checksum) -> Checksum {
        c.add_bytes(Ref::bytes(&self.header));
        c.add_bytes(&self.body);
        c
    }
    /// True if the checksum is right given the pseudo-header sum.
    pub fn checksum_ok(&self, pseudo: Checksum) -> bool {
        self.sum(pseudo).is_valid()
    }
    /// The checksum the field should hold.
    pub fn compute_checksum(&self, pseudo: Checksum) -> u16 {
        let mut c = self.sum(pseudo);
        c.add_u16(!self.header.checksum.get());
        c.finish()
    }
}

impl<B: ByteSliceMut> Icmpv6<B> {
    /// The header, writable.
    pub fn header_mut(&mut self) -> &mut IcmpHeader {
        &mut self.header
    }
    /// The body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.body
    }
    /// Fills the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo: Checksum) {
        let c = self.compute_checksum(pseudo);
        self.header.checksum = U16::new(c);
    }
    /// Applies a change made elsewhere in the checksummed region.
    pub fn adjust_checksum(&mut self, d: Delta) {
        let c = d.apply(self.header.checksum.get());
        self.header.checksum = U16::new(c);
    }
    /// Sets the identifier of an echo message, fixing the checksum.
    pub fn set_ident(&mut self, id: u16) -> Result<(), Error> {
        let old = self.ident().ok_or(Error::WrongProtocol)?;
        self.header.rest[..2].copy_from_slice(&id.to_be_bytes());
        self.adjust_checksum(Delta::new().word(old, id));
        Ok(())
    }
}
