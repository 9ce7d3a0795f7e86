//! Which XenStore paths a component may touch.
//!
//! `system.toml` grants each client component path prefixes for reading
//! and for writing. A prefix covers itself and everything below it (the
//! XenStore child relation, component by component: `backend/vif` does not
//! cover `backend/vif2`). A `*` component matches any one component, so
//! netback can be allowed `/local/domain/*/device/vif` to read its
//! frontends. Relative paths and prefixes are compared in their absolute
//! form under moat's own `/local/domain/<domid>`, so a component cannot
//! escape its grant by switching between the two spellings.

use heapless::{String, Vec};
use moat_xen::xenstore::Path;
use serde::{Deserialize, Serialize};

/// Longest prefix in the configuration.
pub const PREFIX_MAX: usize = 64;
/// Most prefixes per list.
pub const PREFIXES: usize = 4;
/// Room for an absolute path: a request path plus `/local/domain/65535/`.
pub const CANON_CAP: usize = 128;

/// What one client component may touch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Prefixes it may read, list and watch.
    pub read: Vec<String<PREFIX_MAX>, PREFIXES>,
    /// Prefixes it may write, create and remove under (reading them too).
    pub write: Vec<String<PREFIX_MAX>, PREFIXES>,
}

/// Why a grant is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPrefix;

impl Grant {
    /// Checks every prefix: a valid path once `*` components are allowed,
    /// with no trailing slash trouble.
    pub fn validate(&self) -> Result<(), BadPrefix> {
        for p in self.read.iter().chain(self.write.iter()) {
            let p = trim(p.as_bytes());
            if p == b"/" {
                continue;
            }
            if p.is_empty() || p.split(|b| *b == b'/').skip(usize::from(p[0] == b'/')).any(|c| c.is_empty()) {
                return Err(BadPrefix);
            }
            if !p.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'*')) {
                return Err(BadPrefix);
            }
            if p.split(|b| *b == b'/').any(|c| c.contains(&b'*') && c != b"*") {
                return Err(BadPrefix);
            }
        }
        Ok(())
    }

    /// May the holder read `path`?
    pub fn may_read(&self, path: &Path<'_>, own: u16) -> bool {
        self.read.iter().chain(self.write.iter()).any(|p| covers(p.as_bytes(), path, own))
    }

    /// May the holder write `path`?
    pub fn may_write(&self, path: &Path<'_>, own: u16) -> bool {
        self.write.iter().any(|p| covers(p.as_bytes(), path, own))
    }
}

fn trim(p: &[u8]) -> &[u8] {
    match p {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => p,
    }
}

/// A bounded byte buffer for the absolute forms being compared.
struct Abs {
    b: [u8; CANON_CAP],
    n: usize,
}

impl Abs {
    /// The absolute form of `p` (relative paths under `/local/domain/<own>`),
    /// or `None` if it does not fit.
    fn of(p: &[u8], own: u16) -> Option<Abs> {
        let mut a = Abs { b: [0; CANON_CAP], n: 0 };
        if p.first() != Some(&b'/') {
            let mut digits = [0u8; 20];
            a.push(b"/local/domain/")?;
            a.push(moat_xen::xenstore::msg::fmt_u64(u64::from(own), &mut digits))?;
            a.push(b"/")?;
        }
        a.push(p)?;
        Some(a)
    }

    fn push(&mut self, b: &[u8]) -> Option<()> {
        let end = self.n.checked_add(b.len()).filter(|e| *e <= CANON_CAP)?;
        self.b[self.n..end].copy_from_slice(b);
        self.n = end;
        Some(())
    }

    /// The components after the leading `/`.
    fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.b[1..self.n].split(|c| *c == b'/').filter(|c| !c.is_empty())
    }
}

/// Does `prefix` (from the configuration) cover `path`?
pub fn covers(prefix: &[u8], path: &Path<'_>, own: u16) -> bool {
    if path.is_special() {
        return false;
    }
    let (Some(a), Some(b)) = (Abs::of(trim(prefix), own), Abs::of(path.as_bytes(), own)) else {
        return false;
    };
    let mut have = b.components();
    for w in a.components() {
        match have.next() {
            Some(h) if w == b"*" || w == h => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(read: &[&str], write: &[&str]) -> Grant {
        Grant {
            read: read.iter().map(|s| String::try_from(*s).unwrap()).collect(),
            write: write.iter().map(|s| String::try_from(*s).unwrap()).collect(),
        }
    }

    fn p(s: &str) -> Path<'_> {
        Path::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn netback_grant() {
        let g = grant(&["/local/domain/*/device/vif"], &["backend/vif/"]);
        g.validate().unwrap();
        assert!(g.may_write(&p("backend/vif/3/0/state"), 7));
        assert!(g.may_write(&p("/local/domain/7/backend/vif/3/0/state"), 7), "same node, absolute");
        assert!(!g.may_write(&p("/local/domain/8/backend/vif/3/0/state"), 7), "another domain's");
        assert!(!g.may_write(&p("backend/vif2/3"), 7));
        assert!(!g.may_write(&p("backend"), 7), "a parent");
        assert!(!g.may_write(&p("control/shutdown"), 7));
        assert!(g.may_read(&p("/local/domain/3/device/vif/0/tx-ring-ref"), 7));
        assert!(g.may_read(&p("backend/vif/3"), 7), "write implies read");
        assert!(!g.may_read(&p("/local/domain/3/device/vbd/0"), 7));
        assert!(!g.may_read(&p("/local/domain/device/vif"), 7), "the wildcard needs a component");
        assert!(!g.may_read(&p("@releaseDomain"), 7));
    }

    #[test]
    fn bad_prefixes() {
        for bad in ["", "a//b", "a/b*", "a b", "a/../b"] {
            assert!(grant(&[bad], &[]).validate().is_err(), "{bad}");
        }
        assert!(grant(&["/"], &[]).validate().is_ok());
        assert!(grant(&["/"], &[]).may_read(&p("/anything"), 0));
    }
}
