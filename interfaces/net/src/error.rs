//! Why a packet view could not be made.

/// Why bytes are not the packet a view expects. Every check a constructor
/// makes maps to one of these, so a component can count drops by reason
/// ([`Error::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than the fixed part of the header.
    Truncated,
    /// IP version nibble is not the one expected.
    BadVersion,
    /// A header-length field (IPv4 IHL, TCP data offset, an IPv6 extension
    /// header length) is below the minimum or runs past the bytes given.
    BadHeaderLen,
    /// A length field covering the whole packet (IPv4 total length, IPv6
    /// payload length, UDP length) is below the header or past the bytes
    /// given.
    BadTotalLen,
    /// IPv4 options that do not parse (option length 0/1 or past the header).
    BadOption,
    /// An IPv6 extension-header chain that is malformed (hop-by-hop not
    /// first) or longer than [`crate::ipv6::MAX_EXT_HEADERS`].
    BadExtHeader,
    /// A well-formed packet of a kind this layer does not handle (ARP for
    /// other hardware, an IPv6 jumbogram).
    Unsupported,
    /// The packet carries another protocol than the operation needs (a port
    /// rewrite on an ICMP error, a TCP view of a UDP packet).
    WrongProtocol,
}

impl Error {
    /// A stable short name for status counters (`drop.<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLen => "bad_header_len",
            Error::BadTotalLen => "bad_total_len",
            Error::BadOption => "bad_option",
            Error::BadExtHeader => "bad_ext_header",
            Error::Unsupported => "unsupported",
            Error::WrongProtocol => "wrong_protocol",
        }
    }

    /// Every variant, for status output that lists all counters.
    pub const ALL: [Error; 8] = [
        Error::Truncated,
        Error::BadVersion,
        Error::BadHeaderLen,
        Error::BadTotalLen,
        Error::BadOption,
        Error::BadExtHeader,
        Error::Unsupported,
        Error::WrongProtocol,
    ];

    /// Index into [`Error::ALL`] (for counter arrays).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
