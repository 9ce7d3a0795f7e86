//! Parsing the values the toolstack writes: decimal numbers, MACs, the
//! Qubes `ip` key. XenStore content is untrusted input: everything is
//! checked, nothing is assumed to be well-formed.

use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// A decimal number that fits `T` (no sign, no spaces, 1–10 digits).
pub fn number<T: TryFrom<u64>>(v: &[u8]) -> Option<T> {
    if v.len() > 10 {
        return None;
    }
    moat_xen::xenstore::msg::parse_u64(v).and_then(|n| T::try_from(n).ok())
}

/// `00:16:3e:5e:6c:00` (hex digits either case).
pub fn mac(v: &[u8]) -> Option<[u8; 6]> {
    if v.len() != 17 {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, part) in v.split(|b| *b == b':').enumerate() {
        if i >= 6 || part.len() != 2 || !part.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let s = core::str::from_utf8(part).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// The Qubes `ip` key: space-separated addresses, the IPv4 one first,
/// optionally an IPv6 one.
pub fn ip(v: &[u8]) -> Option<([u8; 4], Option<[u8; 16]>)> {
    let s = core::str::from_utf8(v).ok()?;
    let mut tokens = s.split(' ').filter(|t| !t.is_empty());
    let v4 = Ipv4Addr::from_str(tokens.next()?).ok()?;
    let mut v6 = None;
    for t in tokens {
        match Ipv6Addr::from_str(t) {
            Ok(a) if v6.is_none() => v6 = Some(a.octets()),
            _ => return None,
        }
    }
    Some((v4.octets(), v6))
}

/// Like [`ip`], but the IPv4 address is optional (an uplink may have only
/// IPv6, or nothing we understand).
pub fn any_ip(v: &[u8]) -> (Option<[u8; 4]>, Option<[u8; 16]>) {
    let Ok(s) = core::str::from_utf8(v) else { return (None, None) };
    let (mut v4, mut v6) = (None, None);
    for t in s.split(' ').filter(|t| !t.is_empty()) {
        if let Ok(a) = Ipv4Addr::from_str(t) {
            v4.get_or_insert(a.octets());
        } else if let Ok(a) = Ipv6Addr::from_str(t) {
            v6.get_or_insert(a.octets());
        }
    }
    (v4, v6)
}

/// An MTU: 68 (IPv4's minimum) to 65535; absent means 1500.
pub fn mtu(v: Option<&[u8]>) -> Option<u16> {
    match v {
        None => Some(1500),
        Some(v) => number::<u16>(v).filter(|m| *m >= 68),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(mac(b"00:16:3e:5E:6c:00"), Some([0, 0x16, 0x3e, 0x5e, 0x6c, 0]));
        for bad in [
            &b""[..],
            b"00:16:3e:5e:6c",
            b"00:16:3e:5e:6c:00:11",
            b"0:16:3e:5e:6c:000",
            b"00-16-3e-5e-6c-00",
            b"gg:16:3e:5e:6c:00",
            b"+0:16:3e:5e:6c:00",
        ] {
            assert_eq!(mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn qubes_ip_key() {
        assert_eq!(ip(b"10.137.0.5"), Some(([10, 137, 0, 5], None)));
        let (v4, v6) = ip(b"10.137.0.5 fd09:24ef:4179::a89:5").unwrap();
        assert_eq!(v4, [10, 137, 0, 5]);
        assert_eq!(v6.unwrap()[15], 5);
        for bad in [&b""[..], b"10.137.0", b"fd09::1", b"10.137.0.5 junk", b"10.137.0.5 ::1 ::2", b"10.137.0.256"] {
            assert_eq!(ip(bad), None, "{bad:?}");
        }
        assert_eq!(
            any_ip(b"fd09::1 10.138.0.2"),
            (Some([10, 138, 0, 2]), Some(Ipv6Addr::from_str("fd09::1").unwrap().octets()))
        );
        assert_eq!(any_ip(b"\xff"), (None, None));
    }

    #[test]
    fn numbers_and_mtu() {
        assert_eq!(number::<u16>(b"65535"), Some(65535));
        assert_eq!(number::<u16>(b"65536"), None);
        assert_eq!(number::<u32>(b"4294967295"), Some(u32::MAX));
        assert_eq!(number::<u32>(b"04294967295"), None, "too many digits");
        assert_eq!(number::<u32>(b"-1"), None);
        assert_eq!(mtu(None), Some(1500));
        assert_eq!(mtu(Some(b"9000")), Some(9000));
        assert_eq!(mtu(Some(b"67")), None);
    }
}
