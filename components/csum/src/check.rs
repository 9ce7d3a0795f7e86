//! The decision for one packet: complete, verify, or drop — and why.
//!
//! Pure and allocation-free, so it is tested and fuzzed apart from the
//! rings. The component only moves descriptors around it.

use moat_net::checksum::{Checksum, udp_field};
use moat_net::icmpv4::Icmpv4;
use moat_net::icmpv6::Icmpv6;
use moat_net::ip::{Fragment, Ip};
use moat_net::meta::{Gso, GsoKind, flags};
use moat_net::tcp::Tcp;
use moat_net::udp::{Udp, UdpChecksum};
use moat_net::{Error, proto};

/// Where a packet came from: the rules for `CSUM_BLANK` differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// From the client VMs (netback). Linux frontends send TCP/UDP with
    /// `csum_blank`, which moat completes.
    Clients,
    /// From sys-net (netfront). moat's netfront asks for full checksums
    /// (`feature-no-csum-offload`), so a blank packet here is refused: a
    /// checksum computed now would vouch for bytes nobody checked.
    Uplink,
}

/// A packet that may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passed {
    /// The IP packet's length (the descriptor is cut to it: Ethernet padding
    /// goes no further).
    pub len: usize,
    /// What was done, for the counters and the descriptor flags.
    pub how: Pass,
}

/// How a packet passed. Only the first three set `CSUM_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// IPv4 header (if any) and L4 checksums verified.
    Verified,
    /// `csum_blank`: the L4 checksum was computed here (IPv4 header verified).
    Completed,
    /// IPv4 UDP with no checksum (field 0, allowed by RFC 768); header
    /// verified.
    UdpNoChecksum,
    /// A fragment: the IPv4 header was verified, but the L4 checksum covers
    /// the whole datagram and cannot be checked here. No `CSUM_OK`.
    UnverifiedFragment,
    /// A protocol whose checksum moat does not know (or an IPv6 packet with a
    /// routing header still under way); header verified. No `CSUM_OK`.
    UnverifiedOther,
}

impl Pass {
    /// Every variant, in counter order.
    pub const ALL: [Pass; 5] =
        [Pass::Verified, Pass::Completed, Pass::UdpNoChecksum, Pass::UnverifiedFragment, Pass::UnverifiedOther];

    /// Counter name (`<side>.pass.<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Pass::Verified => "verified",
            Pass::Completed => "completed",
            Pass::UdpNoChecksum => "udp_no_checksum",
            Pass::UnverifiedFragment => "unverified_fragment",
            Pass::UnverifiedOther => "unverified_other",
        }
    }

    /// Whether every checksum in the packet is now known good.
    pub const fn csum_ok(self) -> bool {
        matches!(self, Pass::Verified | Pass::Completed | Pass::UdpNoChecksum)
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The descriptor's `flags` has bits no version defines.
    BadFlags,
    /// The descriptor's `meta` word does not decode.
    BadMeta,
    /// The packet does not parse (the [`Error`] says which check failed).
    Malformed(Error),
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// TCP, UDP, ICMP or ICMPv6 checksum wrong.
    BadL4Checksum,
    /// UDP over IPv6 without a checksum (RFC 8200 §8.1 forbids it).
    Udp6NoChecksum,
    /// `csum_blank` on a packet that is not whole TCP or UDP: nothing says
    /// where its checksum is (Linux netback refuses these too).
    BlankUnsupported,
    /// `csum_blank` from the uplink (see [`Side::Uplink`]).
    BlankFromUplink,
    /// The descriptor names a super-packet ([`Gso`]) the packet cannot be:
    /// not whole TCP over the IP version its kind says.
    BadGso,
}

impl Reason {
    /// Number of counters ([`Reason::index`] range).
    pub const COUNT: usize = 8 + Error::ALL.len();

    /// Counter index.
    pub const fn index(self) -> usize {
        match self {
            Reason::BadFlags => 0,
            Reason::BadMeta => 1,
            Reason::BadIpChecksum => 2,
            Reason::BadL4Checksum => 3,
            Reason::Udp6NoChecksum => 4,
            Reason::BlankUnsupported => 5,
            Reason::BlankFromUplink => 6,
            Reason::BadGso => 7,
            Reason::Malformed(e) => 8 + e.index(),
        }
    }

    /// Counter name (`<side>.drop.<name>`), by index.
    pub const fn name_of(index: usize) -> &'static str {
        match index {
            0 => "bad_flags",
            1 => "bad_meta",
            2 => "bad_ip_checksum",
            3 => "bad_l4_checksum",
            4 => "udp6_no_checksum",
            5 => "blank_unsupported",
            6 => "blank_from_uplink",
            7 => "bad_gso",
            i if i - 8 < Error::ALL.len() => Error::ALL[i - 8].name(),
            _ => "unknown",
        }
    }
}

impl From<Error> for Reason {
    fn from(e: Error) -> Self {
        Reason::Malformed(e)
    }
}

/// Checks (and for `csum_blank`, completes) one IP packet in place: an
/// ordinary packet (no segmentation offload), and blank checksums only from
/// clients. See [`check_with`].
pub fn check(packet: &mut [u8], desc_flags: u16, side: Side) -> Result<Passed, Reason> {
    check_with(packet, desc_flags, None, side, false)
}

/// Checks (and for `csum_blank`, completes) one IP packet in place.
///
/// `flags` are the descriptor's; `CSUM_OK` and `PEER_VALIDATED` on input are
/// ignored — nothing upstream is trusted to have checked anything. `gso` is
/// the descriptor's segmentation offload: a super-packet must be whole TCP
/// over the IP version its kind names, and its checksum is completed or
/// verified over all of it (the pseudo-header with the full length), as the
/// segments' checksums are derived from it. `uplink_blank`: the uplink
/// driver negotiated checksum offload with sys-net, so blank checksums from
/// the uplink are completed as from clients (see [`Side::Uplink`]). On `Err`
/// the packet may have been partly examined but is unchanged.
pub fn check_with(
    packet: &mut [u8],
    desc_flags: u16,
    gso: Option<Gso>,
    side: Side,
    uplink_blank: bool,
) -> Result<Passed, Reason> {
    if desc_flags & !flags::ALL != 0 {
        return Err(Reason::BadFlags);
    }
    let blank = desc_flags & flags::CSUM_BLANK != 0;
    if blank && side == Side::Uplink && !uplink_blank {
        return Err(Reason::BlankFromUplink);
    }
    let whole_tcp = |kind: GsoKind, upper: u8, fragment: Fragment| {
        gso.is_none_or(|g| g.kind() == kind && upper == proto::TCP && fragment == Fragment::Whole)
    };
    match Ip::parse(&mut *packet)? {
        Ip::V4(mut ip) => {
            if !ip.checksum_ok() {
                return Err(Reason::BadIpChecksum);
            }
            let len = ip.total_len();
            let (src, dst, protocol, fragment) = (ip.header().src, ip.header().dst, ip.protocol(), ip.fragment());
            if !whole_tcp(GsoKind::TcpV4, protocol, fragment) {
                return Err(Reason::BadGso);
            }
            let pseudo = |l4_len: usize| Checksum::ipv4_pseudo(src, dst, protocol, l4_len as u16);
            let how = l4(ip.payload_mut(), protocol, fragment, false, blank, pseudo)?;
            Ok(Passed { len, how })
        }
        Ip::V6(mut ip) => {
            let ext = ip.walk()?;
            let len = ip.total_len();
            let (src, dst) = (ip.header().src, ip.header().dst);
            let pseudo = |l4_len: usize| Checksum::ipv6_pseudo(src, dst, ext.upper, l4_len as u32);
            let l4_bytes = ip.payload_mut().get_mut(ext.offset..).ok_or(Error::BadExtHeader)?;
            if !whole_tcp(GsoKind::TcpV6, ext.upper, ext.fragment) || (gso.is_some() && ext.segments_left != 0) {
                return Err(Reason::BadGso);
            }
            if ext.segments_left != 0 {
                // The pseudo-header's destination is the routing header's
                // last address, not the one in the header: not ours to judge.
                return if blank {
                    Err(Reason::BlankUnsupported)
                } else {
                    Ok(Passed { len, how: Pass::UnverifiedOther })
                };
            }
            let how = l4(l4_bytes, ext.upper, ext.fragment, true, blank, pseudo)?;
            Ok(Passed { len, how })
        }
    }
}

/// The transport layer: complete (blank) or verify.
fn l4(
    bytes: &mut [u8],
    protocol: u8,
    fragment: Fragment,
    v6: bool,
    blank: bool,
    pseudo: impl Fn(usize) -> Checksum,
) -> Result<Pass, Reason> {
    if fragment != Fragment::Whole {
        // Linux never leaves a fragment's checksum blank (it completes
        // before fragmenting), so a blank fragment is nonsense.
        return if blank { Err(Reason::BlankUnsupported) } else { Ok(Pass::UnverifiedFragment) };
    }
    let len = bytes.len();
    match protocol {
        proto::TCP => {
            let mut t = Tcp::parse(bytes)?;
            if blank {
                // Computed from our own pseudo-header, not from what the
                // field holds: the result is right whatever the sender put
                // there (Linux puts the folded pseudo-header sum).
                t.fill_checksum(pseudo(len));
                Ok(Pass::Completed)
            } else if t.checksum_ok(pseudo(len)) {
                Ok(Pass::Verified)
            } else {
                Err(Reason::BadL4Checksum)
            }
        }
        proto::UDP => {
            let mut u = Udp::parse(bytes)?;
            // The pseudo-header carries the UDP length (bytes past it, if
            // any, are not covered).
            let p = pseudo(u.len());
            if blank {
                u.fill_checksum(p);
                debug_assert_eq!(u.header().checksum.get(), udp_field(u.header().checksum.get()));
                return Ok(Pass::Completed);
            }
            match (u.checksum(p), v6) {
                (UdpChecksum::Valid, _) => Ok(Pass::Verified),
                (UdpChecksum::Absent, false) => Ok(Pass::UdpNoChecksum),
                (UdpChecksum::Absent, true) => Err(Reason::Udp6NoChecksum),
                (UdpChecksum::Invalid, _) => Err(Reason::BadL4Checksum),
            }
        }
        _ if blank => Err(Reason::BlankUnsupported),
        proto::ICMP if !v6 => {
            if Icmpv4::parse(&*bytes)?.checksum_ok() {
                Ok(Pass::Verified)
            } else {
                Err(Reason::BadL4Checksum)
            }
        }
        proto::ICMPV6 if v6 => {
            if Icmpv6::parse(&*bytes)?.checksum_ok(pseudo(len)) {
                Ok(Pass::Verified)
            } else {
                Err(Reason::BadL4Checksum)
            }
        }
        _ => Ok(Pass::UnverifiedOther),
    }
}
