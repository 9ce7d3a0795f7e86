//! Sizes in `system.toml`: a number of bytes, or a string with a binary unit
//! (`"2KiB"`, `"16MiB"`, `"1GiB"`).
//!
//! Decimal units (`MB`) are refused rather than guessed: `16MB` could mean
//! 16 000 000 or 16 777 216 bytes, and a firewall's memory budget should not
//! depend on which the reader assumed.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use crate::diag::HELP;

/// A size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

const UNITS: [(&str, u32); 5] = [("", 0), ("B", 0), ("KiB", 10), ("MiB", 20), ("GiB", 30)];
const DECIMAL: [(&str, &str); 9] = [
    ("k", "KiB"),
    ("K", "KiB"),
    ("kB", "KiB"),
    ("KB", "KiB"),
    ("M", "MiB"),
    ("MB", "MiB"),
    ("G", "GiB"),
    ("GB", "GiB"),
    ("Mb", "MiB"),
];

/// Parses `"16MiB"`; the error is the message (with help) to show.
pub fn parse(text: &str) -> Result<Size, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let usage = "write a number of bytes (4096) or a number with KiB, MiB or GiB (\"16MiB\")";
    if number.is_empty() {
        return Err(format!("invalid size \"{text}\"{HELP}{usage}"));
    }
    let Ok(n) = number.parse::<u64>() else {
        return Err(format!("size \"{text}\" is too large"));
    };
    if let Some((_, binary)) = DECIMAL.iter().find(|(d, _)| *d == unit) {
        return Err(format!(
            "size \"{text}\" is ambiguous: \"{unit}\" could mean powers of 1000 or of 1024{HELP}\
             moat sizes use binary units: write \"{number}{binary}\""
        ));
    }
    let Some((_, shift)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!("invalid size \"{text}\": unknown unit \"{unit}\"{HELP}{usage}"));
    };
    n.checked_mul(1 << shift).map(Size).ok_or_else(|| format!("size \"{text}\" is too large"))
}

impl fmt::Display for Size {
    /// Exact when the size is a whole number of units, else one decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in UNITS.iter().rev() {
            let one = 1u64 << shift;
            if n >= one && *shift > 0 {
                return if n.is_multiple_of(one) {
                    write!(f, "{} {unit}", n >> shift)
                } else {
                    write!(f, "{:.1} {unit}", n as f64 / one as f64)
                };
            }
        }
        write!(f, "{n} B")
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string like \"16MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units() {
        assert_eq!(parse("16MiB"), Ok(Size(16 << 20)));
        assert_eq!(parse("2KiB"), Ok(Size(2048)));
        assert_eq!(parse("1GiB"), Ok(Size(1 << 30)));
        assert_eq!(parse("100B"), Ok(Size(100)));
        assert_eq!(parse("4096"), Ok(Size(4096)));
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        assert!(parse("16MB").unwrap_err().contains("write \"16MiB\""));
        assert!(parse("16 MiB").unwrap_err().contains("unknown unit \" MiB\""));
        assert!(parse("").unwrap_err().starts_with("invalid size"));
        assert!(parse("MiB").unwrap_err().starts_with("invalid size"));
        assert!(parse("99999999999999999999").unwrap_err().contains("too large"));
        assert!(parse("17179869184GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn displays_whole_units_exactly() {
        assert_eq!(Size(16 << 20).to_string(), "16 MiB");
        assert_eq!(Size(2048).to_string(), "2 KiB");
        assert_eq!(Size(1536).to_string(), "1.5 KiB");
        assert_eq!(Size(100).to_string(), "100 B");
        assert_eq!(Size(0).to_string(), "0 B");
    }
}
