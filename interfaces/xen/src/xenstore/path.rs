//! XenStore paths: validated views and a fixed-capacity builder.
//!
//! The rules (`docs/misc/xenstore.txt`): ASCII alphanumerics and `-/_@`
//! only; no empty path, no doubled slash, no trailing slash except the root
//! `/`; absolute paths at most [`XENSTORE_ABS_PATH_MAX`] bytes, relative ones
//! (resolved under `/local/domain/<domid>/`) at most
//! [`XENSTORE_REL_PATH_MAX`]. A path starting with `@` names a special watch
//! (`@introduceDomain`, `@releaseDomain`).

use crate::xs_wire::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The empty path.
    Empty,
    /// A byte outside `[A-Za-z0-9-/_@]`.
    BadChar,
    /// `//` somewhere.
    DoubleSlash,
    /// A trailing `/` on anything but the root.
    TrailingSlash,
    /// Longer than the protocol allows.
    TooLong,
}

/// A valid XenStore path (absolute, relative, or a special `@` watch path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Path<'a>(&'a [u8]);

impl<'a> Path<'a> {
    /// The root, `/`.
    pub const ROOT: Path<'static> = Path(b"/");

    /// Checks `bytes` against the path rules.
    pub fn new(bytes: &'a [u8]) -> Result<Self, PathError> {
        validate(bytes)?;
        Ok(Path(bytes))
    }

    /// The bytes (no NUL).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// True for paths starting with `/`.
    pub fn is_absolute(&self) -> bool {
        self.0.first() == Some(&b'/')
    }

    /// True for `@` watch paths.
    pub fn is_special(&self) -> bool {
        self.0.first() == Some(&b'@')
    }

    /// XenStore's "child" relation: `self` equals `parent`, or `parent` is
    /// the root, or `parent/` is a prefix of `self`. Special paths relate only
    /// to themselves.
    pub fn is_child_of(&self, parent: &Path<'_>) -> bool {
        is_child(self.0, parent.0)
    }

    /// The last component (`c` of `/a/b/c`; the whole of a relative one-part
    /// path).
    pub fn leaf(&self) -> &'a [u8] {
        match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => self.0,
        }
    }

    /// The parent path, `None` for the root and for one-component relative
    /// paths.
    pub fn parent(&self) -> Option<Path<'a>> {
        let i = self.0.iter().rposition(|b| *b == b'/')?;
        match i {
            0 if self.0.len() == 1 => None,
            0 => Some(Path(&self.0[..1])),
            _ => Some(Path(&self.0[..i])),
        }
    }
}

/// `child` is `parent`, or below it (byte-level form of [`Path::is_child_of`]).
pub fn is_child(child: &[u8], parent: &[u8]) -> bool {
    if parent == b"/" {
        return child.first() == Some(&b'/');
    }
    child == parent || (child.len() > parent.len() && child.starts_with(parent) && child[parent.len()] == b'/')
}

fn validate(p: &[u8]) -> Result<(), PathError> {
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    let max = if p[0] == b'/' { XENSTORE_ABS_PATH_MAX } else { XENSTORE_REL_PATH_MAX };
    if p.len() > max {
        return Err(PathError::TooLong);
    }
    if !p.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')) {
        return Err(PathError::BadChar);
    }
    if p.windows(2).any(|w| w == b"//") {
        return Err(PathError::DoubleSlash);
    }
    if p.len() > 1 && p[p.len() - 1] == b'/' {
        return Err(PathError::TrailingSlash);
    }
    Ok(())
}

/// A path built in place, with room for `N` bytes: how a no-heap component
/// makes `backend/vif/<domid>/<devid>/mac` without allocating.
#[derive(Clone)]
pub struct PathBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for PathBuf<N> {
    fn default() -> Self {
        PathBuf { buf: [0; N], len: 0 }
    }
}

impl<const N: usize> core::fmt::Debug for PathBuf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PathBuf({:?})", core::str::from_utf8(self.as_bytes()).unwrap_or("<non-ascii>"))
    }
}

impl<const N: usize> PartialEq for PathBuf<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl<const N: usize> Eq for PathBuf<N> {}

impl<const N: usize> PathBuf<N> {
    /// A copy of a valid path.
    pub fn from_path(p: Path<'_>) -> Result<Self, PathError> {
        let mut b = Self::default();
        b.extend(p.as_bytes())?;
        Ok(b)
    }

    /// Parses and copies `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, PathError> {
        Self::from_path(Path::new(bytes)?)
    }

    /// Appends `/segment`; the segment must be a non-empty single component.
    pub fn push(&mut self, segment: &[u8]) -> Result<&mut Self, PathError> {
        if segment.is_empty() {
            return Err(PathError::Empty);
        }
        if segment.contains(&b'/') {
            return Err(PathError::DoubleSlash);
        }
        let save = self.len;
        if !(self.len == 1 && self.buf[0] == b'/') {
            self.extend(b"/")?;
        }
        if let Err(e) = self.extend(segment) {
            self.len = save;
            return Err(e);
        }
        if let Err(e) = validate(self.as_bytes()) {
            self.len = save;
            return Err(e);
        }
        Ok(self)
    }

    /// Appends a number as a decimal component.
    pub fn push_u32(&mut self, n: u32) -> Result<&mut Self, PathError> {
        let mut digits = [0u8; 20];
        let s = crate::xenstore::msg::fmt_u64(u64::from(n), &mut digits);
        self.push(s)
    }

    /// Cuts back to the first `len` bytes (for reusing a prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), PathError> {
        let end = self.len.checked_add(bytes.len()).filter(|e| *e <= N).ok_or(PathError::TooLong)?;
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before anything was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path, if what was built is one (always, once non-empty).
    pub fn path(&self) -> Result<Path<'_>, PathError> {
        Path::new(self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_per_the_spec() {
        for ok in [&b"/"[..], b"/local/domain/0", b"backend/vif/3/0", b"@releaseDomain", b"a-b_c@d", b"domid"] {
            assert!(Path::new(ok).is_ok(), "{:?}", core::str::from_utf8(ok));
        }
        assert_eq!(Path::new(b""), Err(PathError::Empty));
        assert_eq!(Path::new(b"/a//b"), Err(PathError::DoubleSlash));
        assert_eq!(Path::new(b"//"), Err(PathError::DoubleSlash));
        assert_eq!(Path::new(b"/a/"), Err(PathError::TrailingSlash));
        assert_eq!(Path::new(b"/a b"), Err(PathError::BadChar));
        assert_eq!(Path::new(b"/a\0b"), Err(PathError::BadChar));
        assert_eq!(Path::new(b"/a.b"), Err(PathError::BadChar));
        let mut long = [b'a'; XENSTORE_ABS_PATH_MAX + 1];
        long[0] = b'/';
        assert!(Path::new(&long[..XENSTORE_ABS_PATH_MAX]).is_ok());
        assert_eq!(Path::new(&long), Err(PathError::TooLong));
        let rel = [b'a'; XENSTORE_REL_PATH_MAX + 1];
        assert!(Path::new(&rel[..XENSTORE_REL_PATH_MAX]).is_ok());
        assert_eq!(Path::new(&rel), Err(PathError::TooLong));
    }

    #[test]
    fn child_relation() {
        let p = |s: &'static [u8]| Path::new(s).unwrap();
        assert!(p(b"/a/b").is_child_of(&p(b"/a")));
        assert!(p(b"/a").is_child_of(&p(b"/a")));
        assert!(p(b"/a").is_child_of(&Path::ROOT));
        assert!(!p(b"/ab").is_child_of(&p(b"/a")));
        assert!(!p(b"/a").is_child_of(&p(b"/a/b")));
        assert!(!p(b"@releaseDomain").is_child_of(&Path::ROOT));
        assert!(p(b"backend/vif/1").is_child_of(&p(b"backend/vif")));
        assert_eq!(p(b"/a/b/c").leaf(), b"c");
        assert_eq!(p(b"/a/b/c").parent(), Some(p(b"/a/b")));
        assert_eq!(p(b"/a").parent(), Some(Path::ROOT));
        assert_eq!(Path::ROOT.parent(), None);
        assert_eq!(p(b"x").parent(), None);
        assert_eq!(p(b"x/y").parent(), Some(p(b"x")));
    }

    #[test]
    fn builder_validates_and_bounds() {
        let mut b = PathBuf::<32>::parse(b"backend/vif").unwrap();
        b.push_u32(17).unwrap().push(b"0").unwrap().push(b"mac").unwrap();
        assert_eq!(b.as_bytes(), b"backend/vif/17/0/mac");
        let keep = b.len();
        assert_eq!(b.push(b"x/y").unwrap_err(), PathError::DoubleSlash);
        assert_eq!(b.push(b"a b").unwrap_err(), PathError::BadChar);
        assert_eq!(b.push(b"0123456789abc").unwrap_err(), PathError::TooLong);
        assert_eq!(b.len(), keep, "a failed push leaves the path as it was");
        let mut r = PathBuf::<8>::parse(b"/").unwrap();
        r.push(b"a").unwrap();
        assert_eq!(r.as_bytes(), b"/a");
    }
}
