//! Differences between the real daemon and the test store that are
//! understood and documented (in `moat-test-xenstored`'s crate docs, with
//! the transcript lines that show them). Each is a pair of transcript lines
//! in one section of one comparison: what the real daemon's run wrote, and
//! what the test store's run wrote in its place (`None`: nothing).

/// One known difference.
#[derive(Debug)]
pub struct Known {
    /// A short name, printed when the difference is met.
    pub id: &'static str,
    /// Which comparison (`ops-dom0`, `ops-domain`, `component`), or `*`.
    pub what: &'static str,
    /// Which section.
    pub section: &'static str,
    /// The real daemon's line.
    pub real: Option<&'static str>,
    /// The test store's line.
    pub test: Option<&'static str>,
}

impl Known {
    /// Whether this difference may appear in `section` of `what`.
    pub fn applies(&self, what: &str, section: &str) -> bool {
        (self.what == "*" || self.what == what) && self.section == section
    }
}

/// Every known difference.
pub const KNOWN: &[Known] = &[];
