//! XenStore permissions: `<letter><domid>` strings, each followed by a NUL.
//!
//! The first entry names the owner (who may always read and write) and sets
//! the access of every domain not listed; later entries grant or deny
//! particular domains. Letters: `n` none, `r` read, `w` write, `b` both.

use crate::DomId;

/// Access one entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`.
    None,
    /// `r`.
    Read,
    /// `w`.
    Write,
    /// `b`.
    Both,
}

impl Access {
    /// The letter on the wire.
    pub const fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// True if this access allows reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// True if this access allows writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// What it grants.
    pub access: Access,
    /// To whom.
    pub domid: DomId,
}

/// Why a permission string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermError {
    /// No entries at all (a node always has an owner).
    Empty,
    /// Not `[nrwb]` followed by a decimal domid in `0..=65535`, or a missing
    /// NUL terminator.
    Malformed,
}

impl Perm {
    /// Parses one entry (without its NUL).
    pub fn parse(s: &[u8]) -> Result<Perm, PermError> {
        let (&letter, digits) = s.split_first().ok_or(PermError::Malformed)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(PermError::Malformed),
        };
        let domid = crate::xenstore::msg::parse_u64(digits)
            .and_then(|n| DomId::try_from(n).ok())
            .ok_or(PermError::Malformed)?;
        Ok(Perm { access, domid })
    }

    /// Writes the entry (without a NUL) into `out`; returns its length.
    pub fn format(&self, out: &mut [u8; 6]) -> usize {
        out[0] = self.access.letter();
        let mut digits = [0u8; 20];
        let d = crate::xenstore::msg::fmt_u64(u64::from(self.domid), &mut digits);
        out[1..1 + d.len()].copy_from_slice(d);
        1 + d.len()
    }
}

/// A validated list of permission entries as it sits in a payload
/// (`entry\0entry\0…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms<'a>(&'a [u8]);

impl<'a> Perms<'a> {
    /// Checks a payload fragment: one or more entries, each NUL-terminated.
    pub fn new(bytes: &'a [u8]) -> Result<Self, PermError> {
        if bytes.is_empty() {
            return Err(PermError::Empty);
        }
        if bytes.last() != Some(&0) {
            return Err(PermError::Malformed);
        }
        for entry in bytes[..bytes.len() - 1].split(|b| *b == 0) {
            Perm::parse(entry)?;
        }
        Ok(Perms(bytes))
    }

    /// The raw bytes, NULs included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The entries, owner first.
    pub fn iter(&self) -> impl Iterator<Item = Perm> + 'a {
        let body = &self.0[..self.0.len() - 1];
        body.split(|b| *b == 0).filter_map(|e| Perm::parse(e).ok())
    }

    /// The owner entry.
    pub fn owner(&self) -> Perm {
        self.iter().next().expect("validated: at least one entry")
    }

    /// Access `domid` has under XenStore's rules: the owner has full access;
    /// a listed domain gets its entry (the last one wins, as in xenstored);
    /// anyone else gets the owner entry's access. (Privileged domains are
    /// the store's business, not this function's.)
    pub fn access(&self, domid: DomId) -> Access {
        let owner = self.owner();
        if owner.domid == domid {
            return Access::Both;
        }
        self.iter().skip(1).filter(|p| p.domid == domid).last().map_or(owner.access, |p| p.access)
    }
}

/// Writes `perms` as a payload fragment (`entry\0…`) into `out`; returns the
/// length, or `None` if it does not fit or `perms` is empty.
pub fn encode_perms(perms: &[Perm], out: &mut [u8]) -> Option<usize> {
    if perms.is_empty() {
        return None;
    }
    let mut n = 0;
    for p in perms {
        let mut e = [0u8; 6];
        let len = p.format(&mut e);
        let end = n + len + 1;
        if end > out.len() {
            return None;
        }
        out[n..n + len].copy_from_slice(&e[..len]);
        out[n + len] = 0;
        n = end;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_formats_and_decides() {
        let p = Perms::new(b"n0\0r5\0b7\0w5\0").unwrap();
        let all: [Perm; 4] = core::array::from_fn(|i| p.iter().nth(i).unwrap());
        assert_eq!(all[0], Perm { access: Access::None, domid: 0 });
        assert_eq!(p.access(0), Access::Both, "owner");
        assert_eq!(p.access(5), Access::Write, "last entry wins");
        assert_eq!(p.access(7), Access::Both);
        assert_eq!(p.access(9), Access::None, "default is the owner entry's");
        let mut out = [0u8; 32];
        let n = encode_perms(&all, &mut out).unwrap();
        assert_eq!(&out[..n], p.as_bytes());
        assert!(encode_perms(&all, &mut out[..5]).is_none());
        assert!(encode_perms(&[], &mut out).is_none());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [&b""[..], b"\0", b"r1", b"x1\0", b"r\0", b"r-1\0", b"r65536\0", b"r1\0\0", b"r 1\0", b"r+1\0"] {
            assert!(Perms::new(bad).is_err(), "{bad:?}");
        }
        assert!(Perms::new(b"b65535\0").is_ok());
    }
}
