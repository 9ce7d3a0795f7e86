//! XenBus device states (`io/xenbus.h`), written as decimal ASCII to the
//! `state` key of a frontend or backend directory.

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum XenbusState {
    /// `XenbusStateUnknown`.
    Unknown = 0,
    /// `XenbusStateInitialising`.
    Initialising = 1,
    /// `XenbusStateInitWait`: the backend published its features.
    InitWait = 2,
    /// `XenbusStateInitialised`.
    Initialised = 3,
    /// `XenbusStateConnected`.
    Connected = 4,
    /// `XenbusStateClosing`.
    Closing = 5,
    /// `XenbusStateClosed`.
    Closed = 6,
    /// `XenbusStateReconfiguring`.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    Reconfigured = 8,
}

impl XenbusState {
    /// From the number in a `state` key; `None` outside 0..=8.
    pub const fn from_u32(n: u32) -> Option<Self> {
        use XenbusState::*;
        Some(match n {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => return None,
        })
    }

    /// Parses a `state` value: decimal ASCII, surrounding whitespace and a
    /// trailing NUL tolerated (some toolstacks write one).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let v = trim(value);
        if v.is_empty() || v.len() > 3 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = v.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        Self::from_u32(n)
    }

    /// The value to write: one ASCII digit.
    pub const fn as_ascii(self) -> &'static [u8] {
        const DIGITS: &[u8; 9] = b"012345678";
        let i = self as usize;
        DIGITS.split_at(i).1.split_at(1).0
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if first.is_ascii_whitespace() || *first == 0 {
            v = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if last.is_ascii_whitespace() || *last == 0 {
            v = rest;
        } else {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for n in 0..=8u32 {
            let s = XenbusState::from_u32(n).unwrap();
            assert_eq!(XenbusState::parse(s.as_ascii()), Some(s));
            assert_eq!(s as u32, n);
        }
        assert_eq!(XenbusState::parse(b" 4\n\0"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"9"), None);
        assert_eq!(XenbusState::parse(b""), None);
        assert_eq!(XenbusState::parse(b"-1"), None);
        assert_eq!(XenbusState::parse(b"0004"), None, "too long");
        assert_eq!(XenbusState::parse(b"4x"), None);
    }
}
