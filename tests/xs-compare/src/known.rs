//! Differences between the real daemon and the test store that are
//! understood and documented (in `moat-test-xenstored`'s crate docs, under
//! "Where it knowingly differs"). Each is a block of transcript lines in
//! one section of one comparison: what the real daemon's run wrote, and
//! what the test store's run wrote in its place (either may be empty).
//! Patterns match whole lines; `*` stands for any text (domain ids,
//! transaction numbers).
//!
//! Only blocks listed here are forgiven, and only where they start at the
//! first line that differs: anything else, or the same difference in
//! another section, still fails.

/// One known difference.
#[derive(Debug)]
pub struct Known {
    /// A short name, printed when the difference is met.
    pub id: &'static str,
    /// Which comparisons (`ox-ops-dom0`, `ox-ops-domain`, `ox-component`;
    /// a pattern).
    pub what: &'static str,
    /// Which sections (a pattern).
    pub section: &'static str,
    /// The real daemon's lines.
    pub real: &'static [&'static str],
    /// The test store's lines.
    pub test: &'static [&'static str],
}

impl Known {
    /// Whether this difference may appear in `section` of `what`.
    pub fn applies(&self, what: &str, section: &str) -> bool {
        glob(self.what, what) && glob(self.section, section)
    }

    /// Whether the transcripts, from the first line that differs, start
    /// with this difference's blocks.
    pub fn matches(&self, real: &[String], test: &[String]) -> bool {
        let starts = |lines: &[String], pats: &[&str]| {
            lines.len() >= pats.len() && pats.iter().zip(lines).all(|(p, l)| glob(p, l))
        };
        !(self.real.is_empty() && self.test.is_empty()) && starts(real, self.real) && starts(test, self.test)
    }
}

/// `*` matches any run of characters; everything else itself.
pub fn glob(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, rest)) => {
            let Some(s) = s.strip_prefix(head) else { return false };
            (0..=s.len()).filter(|&k| s.is_char_boundary(k)).any(|k| glob(rest, &s[k..]))
        }
    }
}

/// Every known difference (filled from the real runs; see the crate docs
/// of `moat-test-xenstored` for why each is left as it is).
pub const KNOWN: &[Known] = &[];
