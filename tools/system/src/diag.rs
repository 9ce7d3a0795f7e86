//! Diagnostics: what is wrong, where (line and column), and what to do.
//!
//! Every error `moat check` prints has the shape
//!
//! ```text
//! system.toml:12:7: error: component `echo` has no port `inptu`
//!   help: did you mean `input`?
//! ```
//!
//! so editors can jump to it and a test can assert it exactly.

use std::fmt;
use std::ops::Range;

/// A byte range in the source text.
pub type Span = Range<usize>;

/// One error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the source (byte offsets); `None` for errors about the file
    /// as a whole (it could not be read).
    pub span: Option<Span>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// Marks where a serde custom error's message ends and its help begins, so
/// errors raised inside `Deserialize` impls can carry help too.
pub(crate) const HELP: &str = "\u{1f}help: ";

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { span: Some(span), message: message.into(), help: None }
    }

    /// Adds what to do.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at `span` if the error did not say where it was.
    pub(crate) fn with_default_span(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }

    /// From a message that may carry a [`HELP`] part.
    pub(crate) fn split(span: Option<Span>, text: &str) -> Self {
        match text.split_once(HELP) {
            Some((m, h)) => Diagnostic { span, message: m.into(), help: Some(h.into()) },
            None => Diagnostic { span, message: text.into(), help: None },
        }
    }

    /// From a TOML parse or deserialisation error, with serde's wording
    /// turned into ours where we know better.
    pub(crate) fn from_toml(e: &toml::de::Error) -> Self {
        let d = Diagnostic::split(e.span(), e.message().trim_end());
        if d.help.is_some() {
            return d;
        }
        explain(d)
    }
}

/// Adds what to do to serde's "unknown field", "missing field" and the
/// parser's "duplicate key".
fn explain(mut d: Diagnostic) -> Diagnostic {
    let quoted = |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(String::from).collect() };
    if let Some(rest) = d.message.strip_prefix("unknown field ") {
        let names = quoted(rest);
        let (key, known) = names.split_first().map_or((String::new(), &[][..]), |(k, v)| (k.clone(), v));
        let mut help = String::new();
        if let Some(s) = crate::suggest::closest(&key, known.iter().map(String::as_str)) {
            help = format!("did you mean `{s}`? ");
        }
        help += &match known {
            [] => "this table takes no keys".to_string(),
            _ => format!("keys here: {}", crate::suggest::list(known.iter().map(String::as_str))),
        };
        d.message = format!("unknown key `{key}`");
        d.help = Some(help);
    } else if let Some(rest) = d.message.strip_prefix("missing field ") {
        let key = quoted(rest).into_iter().next().unwrap_or_default();
        d.message = format!("missing key `{key}`");
        d.help = Some(match key.as_str() {
            "system" => "add a [system] table with `name` and `memory`".into(),
            _ => format!("add `{key}` to this table (docs/system-toml.md lists every key)"),
        });
    } else if d.message.starts_with("invalid type") || d.message.starts_with("invalid value") {
        d.help = Some("docs/system-toml.md gives each key's type and range".into());
    } else if d.message == "duplicate key" {
        d.help = Some("a TOML table or key may be defined only once; merge the two".into());
    }
    d
}

/// 1-based line and column (in characters) of byte offset `at` in `source`.
/// Offsets past the end or inside a character are clamped, never a panic.
pub fn line_col(source: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Every error found in one file, ready to print.
#[derive(Clone, Debug)]
pub struct Report {
    /// The file as the user named it (printed in front of each error).
    pub file: String,
    /// The file's text (for line and column).
    pub source: String,
    /// The errors, in file order.
    pub errors: Vec<Diagnostic>,
}

impl Report {
    /// Where `d` is, as `line:column` (empty for whole-file errors).
    pub fn position(&self, d: &Diagnostic) -> Option<(usize, usize)> {
        d.span.as_ref().map(|s| line_col(&self.source, s.start))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.errors {
            match self.position(d) {
                Some((line, col)) => write!(f, "{}:{line}:{col}: error: {}", self.file, d.message)?,
                None => write!(f, "{}: error: {}", self.file, d.message)?,
            }
            writeln!(f)?;
            if let Some(h) = &d.help {
                writeln!(f, "  help: {h}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let s = "a = 1\nbé = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        // `=` after "bé " is the 4th character but the 5th byte of the line.
        assert_eq!(line_col(s, 6 + 4), (2, 4));
        assert_eq!(line_col(s, 8), (2, 2), "inside `é` clamps to its start");
        assert_eq!(line_col(s, 999), (3, 1), "past the end clamps");
    }

    #[test]
    fn serde_wording_becomes_ours() {
        let d = explain(Diagnostic::split(None, "unknown field `prioritty`, expected one of `crate`, `priority`"));
        assert_eq!(d.message, "unknown key `prioritty`");
        assert_eq!(d.help.as_deref(), Some("did you mean `priority`? keys here: `crate`, `priority`"));
        let d = explain(Diagnostic::split(None, "unknown field `x`, there are no fields"));
        assert_eq!(d.help.as_deref(), Some("this table takes no keys"));
        let d = explain(Diagnostic::split(None, "missing field `to`"));
        assert_eq!(d.message, "missing key `to`");
    }

    #[test]
    fn help_travels_through_serde_messages() {
        let d = Diagnostic::split(Some(0..1), &format!("bad{HELP}do this"));
        assert_eq!(d.message, "bad");
        assert_eq!(d.help.as_deref(), Some("do this"));
    }
}
