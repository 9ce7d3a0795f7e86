//! The Qubes firewall rule language, as dom0 writes it into QubesDB
//! (`/qubes-firewall/<ip>/NNNN`) and as `qvm-firewall` users know it.
//!
//! A rule is space-separated `key=value` pairs in any order:
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `action` | `accept` \| `drop` | required |
//! | `proto` | `tcp` \| `udp` \| `icmp` | `icmp` means ICMPv6 for IPv6 packets |
//! | `dst4` | `A.B.C.D[/LEN]` | IPv4 destination network (host bits are masked off) |
//! | `dst6` | `IPV6[/LEN]` | IPv6 destination network |
//! | `dsthost` | name | destination host name (an address is taken as `dst4`/`dst6`, as `qvm-firewall` does) |
//! | `dstports` | `PORT` \| `LO-HI` | destination ports; needs `proto=tcp` or `proto=udp` |
//! | `icmptype` | `0`–`255` | needs `proto=icmp` |
//! | `specialtarget` | `dns` | the DNS servers (10.139.1.1/.2 in Qubes), TCP/UDP port 53 |
//!
//! At most one of `dst4`, `dst6`, `dsthost`. Parsing is strict, as dom0's own
//! validation is: unknown keys, repeated keys, bad values and the impossible
//! combinations above are errors that name the key ([`RuleError`]); the
//! caller adds which rule of which client. The printer writes dom0's order
//! (`action`, destination, `proto`, `specialtarget`, `dstports` as `LO-HI`,
//! `icmptype`), so parse → print → parse is the identity on meaning.
//!
//! `specialtarget=dns` follows Linux sys-firewall (qubesagent/firewall.py):
//! it means "destination is a DNS server, TCP or UDP, port 53", intersected
//! with whatever else the rule says. A `dstports` other than 53 makes such a
//! rule match nothing, as does `proto=icmp`; neither is an error there, so
//! neither is here.
//!
//! `dsthost` differs from Linux on purpose: Linux resolves the name when it
//! loads the rules and, if that fails, blocks the whole client. Here a name's
//! addresses arrive later from a resolver (`RulesControl::HostAddrs`), and
//! until they do only that rule matches nothing — still failing closed, since
//! an unmatched accept cannot let anything through.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

pub use moat_control::rules::{Action, Addr, MAX_RULE_TEXT};

/// Longest `dsthost` name (a DNS name's limit).
pub const MAX_HOST_LEN: usize = 253;

/// Transport protocol a rule names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1) for IPv4, ICMPv6 (58) for IPv6.
    Icmp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// A destination network, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: Addr,
    len: u8,
}

impl Prefix {
    /// The network of `addr` with `len` leading bits; `None` if `len` is
    /// longer than the address.
    pub fn new(addr: Addr, len: u8) -> Option<Prefix> {
        Some(Prefix { addr: mask(addr, len)?, len })
    }

    /// The network address.
    pub fn addr(&self) -> Addr {
        self.addr
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for a zero-length prefix (the whole family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if `a` (of the same family) lies in this network.
    pub fn contains(&self, a: Addr) -> bool {
        mask(a, self.len) == Some(self.addr)
    }
}

/// `a` with all but the first `len` bits cleared; `None` if `len` is too long
/// for the family.
pub fn mask(a: Addr, len: u8) -> Option<Addr> {
    match a {
        Addr::V4(b) if len <= 32 => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            Some(Addr::V4((u32::from_be_bytes(b) & m).to_be_bytes()))
        }
        Addr::V6(b) if len <= 128 => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            Some(Addr::V6((u128::from_be_bytes(b) & m).to_be_bytes()))
        }
        _ => None,
    }
}

/// Where a rule sends: anywhere, a network, or a named host whose addresses
/// arrive at run time. `N` is how the name is held (`&str` when parsed, an
/// index once stored in a policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dst<N> {
    /// No destination given.
    Any,
    /// `dst4=` or `dst6=`.
    Net(Prefix),
    /// `dsthost=`.
    Host(N),
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl Ports {
    /// True if `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

/// One rule. Fields left out match anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule<N> {
    /// What to do on a match.
    pub action: Action,
    /// Protocol.
    pub proto: Option<Proto>,
    /// Destination.
    pub dst: Dst<N>,
    /// Destination ports (TCP/UDP only).
    pub ports: Option<Ports>,
    /// ICMP type (ICMP only).
    pub icmp_type: Option<u8>,
    /// `specialtarget=dns`.
    pub dns: bool,
}

impl<N> Rule<N> {
    /// The same rule with its host name mapped (stored as an index, say).
    pub fn map_host<M>(self, f: impl FnOnce(N) -> M) -> Rule<M> {
        let dst = match self.dst {
            Dst::Any => Dst::Any,
            Dst::Net(p) => Dst::Net(p),
            Dst::Host(n) => Dst::Host(f(n)),
        };
        Rule {
            action: self.action,
            proto: self.proto,
            dst,
            ports: self.ports,
            icmp_type: self.icmp_type,
            dns: self.dns,
        }
    }

    /// A rule that matches everything: `action=<action>` (a client's default).
    pub const fn all(action: Action) -> Self {
        Rule { action, proto: None, dst: Dst::Any, ports: None, icmp_type: None, dns: false }
    }
}

/// The keys of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `action`
    Action,
    /// `proto`
    Proto,
    /// `dst4`
    Dst4,
    /// `dst6`
    Dst6,
    /// `dsthost`
    Dsthost,
    /// `dstports`
    Dstports,
    /// `icmptype`
    Icmptype,
    /// `specialtarget`
    Specialtarget,
}

impl Key {
    const ALL: [Key; 8] =
        [Key::Action, Key::Proto, Key::Dst4, Key::Dst6, Key::Dsthost, Key::Dstports, Key::Icmptype, Key::Specialtarget];

    /// The key as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Key::Action => "action",
            Key::Proto => "proto",
            Key::Dst4 => "dst4",
            Key::Dst6 => "dst6",
            Key::Dsthost => "dsthost",
            Key::Dstports => "dstports",
            Key::Icmptype => "icmptype",
            Key::Specialtarget => "specialtarget",
        }
    }

    fn parse(s: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Small number for status reports (1-based; 0 means no key).
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// Inverse of [`code`](Self::code).
    pub fn from_code(c: u8) -> Option<Key> {
        Key::ALL.get(usize::from(c).checked_sub(1)?).copied()
    }
}

/// What is wrong with a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// The rule is empty.
    Empty = 1,
    /// Longer than [`MAX_RULE_TEXT`].
    TooLong,
    /// A word without `=`.
    NotKeyValue,
    /// A key the language does not have.
    UnknownKey,
    /// A key given twice.
    Repeated,
    /// No `action`.
    NoAction,
    /// `action` not `accept` or `drop`.
    BadAction,
    /// `proto` not `tcp`, `udp` or `icmp`.
    BadProto,
    /// Not an IPv4 address.
    BadIpv4,
    /// Not an IPv6 address.
    BadIpv6,
    /// Prefix length not a number within the address size.
    BadPrefixLen,
    /// Host name empty, too long, or with characters dom0 does not allow.
    BadHost,
    /// `dstports` not `PORT` or `LO-HI`.
    BadPorts,
    /// A port above 65535.
    PortRange,
    /// `LO` above `HI`.
    PortsReversed,
    /// `icmptype` not a number 0–255.
    BadIcmpType,
    /// `specialtarget` not `dns`.
    BadSpecialTarget,
    /// More than one of `dst4`, `dst6`, `dsthost`.
    TwoDestinations,
    /// `dstports` without `proto=tcp` or `proto=udp`.
    PortsNeedTcpOrUdp,
    /// `icmptype` without `proto=icmp`.
    IcmpTypeNeedsIcmp,
}

impl ErrorKind {
    const ALL: [ErrorKind; 20] = [
        ErrorKind::Empty,
        ErrorKind::TooLong,
        ErrorKind::NotKeyValue,
        ErrorKind::UnknownKey,
        ErrorKind::Repeated,
        ErrorKind::NoAction,
        ErrorKind::BadAction,
        ErrorKind::BadProto,
        ErrorKind::BadIpv4,
        ErrorKind::BadIpv6,
        ErrorKind::BadPrefixLen,
        ErrorKind::BadHost,
        ErrorKind::BadPorts,
        ErrorKind::PortRange,
        ErrorKind::PortsReversed,
        ErrorKind::BadIcmpType,
        ErrorKind::BadSpecialTarget,
        ErrorKind::TwoDestinations,
        ErrorKind::PortsNeedTcpOrUdp,
        ErrorKind::IcmpTypeNeedsIcmp,
    ];

    /// Inverse of `kind as u8`.
    pub fn from_code(c: u8) -> Option<ErrorKind> {
        ErrorKind::ALL.get(usize::from(c).checked_sub(1)?).copied()
    }

    fn message(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty rule",
            ErrorKind::TooLong => "rule longer than 512 bytes",
            ErrorKind::NotKeyValue => "expected key=value",
            ErrorKind::UnknownKey => {
                "unknown key (known: action, proto, dst4, dst6, dsthost, dstports, icmptype, specialtarget)"
            }
            ErrorKind::Repeated => "given twice",
            ErrorKind::NoAction => "rule has no action",
            ErrorKind::BadAction => "must be accept or drop",
            ErrorKind::BadProto => "must be tcp, udp or icmp",
            ErrorKind::BadIpv4 => "not an IPv4 address",
            ErrorKind::BadIpv6 => "not an IPv6 address",
            ErrorKind::BadPrefixLen => "prefix length must be a number up to the address size (32 or 128)",
            ErrorKind::BadHost => "host name must be 1-253 characters of a-z, 0-9, '-', '.', '_'",
            ErrorKind::BadPorts => "must be PORT or LO-HI",
            ErrorKind::PortRange => "port above 65535",
            ErrorKind::PortsReversed => "low port above high port",
            ErrorKind::BadIcmpType => "must be a number 0-255",
            ErrorKind::BadSpecialTarget => "only dns is known",
            ErrorKind::TwoDestinations => "only one of dst4, dst6, dsthost may be given",
            ErrorKind::PortsNeedTcpOrUdp => "dstports needs proto=tcp or proto=udp",
            ErrorKind::IcmpTypeNeedsIcmp => "icmptype needs proto=icmp",
        }
    }
}

/// A rule that does not parse: which key (if the error is about one), where
/// in the text, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleError {
    /// The key the error is about.
    pub key: Option<Key>,
    /// Byte offset in the rule of the word at fault.
    pub at: u16,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            Some(k) => write!(f, "field `{}`: {}", k.as_str(), self.kind.message()),
            None => f.write_str(self.kind.message()),
        }
    }
}

fn err(key: Option<Key>, at: usize, kind: ErrorKind) -> RuleError {
    RuleError { key, at: at.min(usize::from(u16::MAX)) as u16, kind }
}

/// Parses one rule.
pub fn parse(text: &str) -> Result<Rule<&str>, RuleError> {
    if text.len() > MAX_RULE_TEXT {
        return Err(err(None, 0, ErrorKind::TooLong));
    }
    let mut seen = [None::<usize>; 8];
    let mut rule = Rule { action: Action::Drop, proto: None, dst: Dst::Any, ports: None, icmp_type: None, dns: false };
    let mut any = false;
    for (at, word) in words(text) {
        any = true;
        let Some((k, v)) = word.split_once('=') else {
            return Err(err(None, at, ErrorKind::NotKeyValue));
        };
        let key = Key::parse(k).ok_or(err(None, at, ErrorKind::UnknownKey))?;
        let e = |kind| err(Some(key), at, kind);
        if seen[key as usize].is_some() {
            return Err(e(ErrorKind::Repeated));
        }
        seen[key as usize] = Some(at);
        match key {
            Key::Action => rule.action = parse_action(v).ok_or(e(ErrorKind::BadAction))?,
            Key::Proto => rule.proto = Some(parse_proto(v).ok_or(e(ErrorKind::BadProto))?),
            Key::Dst4 | Key::Dst6 | Key::Dsthost => {
                if !matches!(rule.dst, Dst::Any) {
                    return Err(e(ErrorKind::TwoDestinations));
                }
                rule.dst = parse_dst(key, v).map_err(e)?;
            }
            Key::Dstports => rule.ports = Some(parse_ports(v).map_err(e)?),
            Key::Icmptype => rule.icmp_type = Some(parse_u8(v).ok_or(e(ErrorKind::BadIcmpType))?),
            Key::Specialtarget => {
                if v != "dns" {
                    return Err(e(ErrorKind::BadSpecialTarget));
                }
                rule.dns = true;
            }
        }
    }
    if !any {
        return Err(err(None, 0, ErrorKind::Empty));
    }
    if seen[Key::Action as usize].is_none() {
        return Err(err(None, 0, ErrorKind::NoAction));
    }
    if let Some(at) = seen[Key::Dstports as usize]
        && !matches!(rule.proto, Some(Proto::Tcp | Proto::Udp))
    {
        return Err(err(Some(Key::Dstports), at, ErrorKind::PortsNeedTcpOrUdp));
    }
    if let Some(at) = seen[Key::Icmptype as usize]
        && rule.proto != Some(Proto::Icmp)
    {
        return Err(err(Some(Key::Icmptype), at, ErrorKind::IcmpTypeNeedsIcmp));
    }
    Ok(rule)
}

/// Words separated by ASCII whitespace, with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let base = text.as_ptr() as usize;
    text.split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - base, w))
}

fn parse_action(v: &str) -> Option<Action> {
    match v {
        "accept" => Some(Action::Accept),
        "drop" => Some(Action::Drop),
        _ => None,
    }
}

fn parse_proto(v: &str) -> Option<Proto> {
    match v {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "icmp" => Some(Proto::Icmp),
        _ => None,
    }
}

/// A decimal number of at most `digits` digits (no sign, no spaces).
fn parse_num(v: &str, digits: usize) -> Option<u32> {
    if v.is_empty() || v.len() > digits || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn parse_u8(v: &str) -> Option<u8> {
    u8::try_from(parse_num(v, 3)?).ok()
}

fn parse_dst(key: Key, v: &str) -> Result<Dst<&str>, ErrorKind> {
    let (host, len) = match v.split_once('/') {
        Some((h, l)) => (h, Some(l)),
        None => (v, None),
    };
    let v4 = || Ipv4Addr::from_str(host).ok().map(|a| Addr::V4(a.octets()));
    let v6 = || Ipv6Addr::from_str(host).ok().map(|a| Addr::V6(a.octets()));
    let addr = match key {
        Key::Dst4 => v4().ok_or(ErrorKind::BadIpv4)?,
        Key::Dst6 => v6().ok_or(ErrorKind::BadIpv6)?,
        // `qvm-firewall … dsthost=ADDR` stores an address as dst4/dst6; a
        // name may not carry a prefix length.
        _ => match v4().or_else(v6) {
            Some(a) => a,
            None if len.is_some() => return Err(ErrorKind::BadHost),
            None if valid_host(host) => return Ok(Dst::Host(host)),
            None => return Err(ErrorKind::BadHost),
        },
    };
    let full = if matches!(addr, Addr::V4(_)) { 32 } else { 128 };
    let len = match len {
        None => full,
        Some(l) => parse_num(l, 3).filter(|&n| n <= u32::from(full)).ok_or(ErrorKind::BadPrefixLen)? as u8,
    };
    Ok(Dst::Net(Prefix::new(addr, len).ok_or(ErrorKind::BadPrefixLen)?))
}

/// dom0's rule for names: lower-case letters, digits, `-`, `.`, `_`.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_LEN
        && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

fn parse_ports(v: &str) -> Result<Ports, ErrorKind> {
    let (lo, hi) = v.split_once('-').unwrap_or((v, v));
    let num = |s: &str| -> Result<u16, ErrorKind> {
        let n = parse_num(s, 5).ok_or(ErrorKind::BadPorts)?;
        u16::try_from(n).map_err(|_| ErrorKind::PortRange)
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err(ErrorKind::PortsReversed);
    }
    Ok(Ports { lo, hi })
}

/// Writes an address the usual way (dotted quad, RFC 5952 IPv6).
pub struct ShowAddr(pub Addr);

impl fmt::Display for ShowAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Addr::V4(b) => Ipv4Addr::from(b).fmt(f),
            Addr::V6(b) => Ipv6Addr::from(b).fmt(f),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", ShowAddr(self.addr), self.len)
    }
}

/// Prints in dom0's order, with `dstports` always as `LO-HI`.
impl<N: fmt::Display> fmt::Display for Rule<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.action {
            Action::Accept => "action=accept",
            Action::Drop => "action=drop",
        })?;
        match &self.dst {
            Dst::Any => {}
            Dst::Net(p) if matches!(p.addr, Addr::V4(_)) => write!(f, " dst4={p}")?,
            Dst::Net(p) => write!(f, " dst6={p}")?,
            Dst::Host(n) => write!(f, " dsthost={n}")?,
        }
        if let Some(p) = self.proto {
            write!(f, " proto={}", p.as_str())?;
        }
        if self.dns {
            f.write_str(" specialtarget=dns")?;
        }
        if let Some(p) = self.ports {
            write!(f, " dstports={}-{}", p.lo, p.hi)?;
        }
        if let Some(t) = self.icmp_type {
            write!(f, " icmptype={t}")?;
        }
        Ok(())
    }
}
