//! The `system.toml` schema as written, before any cross-checking.
//!
//! Every struct denies unknown keys, so a misspelt key is an error at the
//! key rather than a setting silently ignored. Values keep their spans
//! (`Spanned`) so later checks can point at them. `docs/system-toml.md`
//! documents each field.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use toml::Spanned;

use crate::size::Size;

/// The whole file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub system: Spanned<System>,
    #[serde(default)]
    pub component: Named<Component>,
    #[serde(default)]
    pub pool: Named<Pool>,
    #[serde(default)]
    pub ring: Vec<Spanned<Ring>>,
}

/// `[system]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub name: Spanned<String>,
    pub memory: Spanned<Size>,
    #[serde(default)]
    pub policy: Vec<Spanned<String>>,
}

/// `[component.NAME]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Component {
    #[serde(rename = "crate")]
    pub krate: Spanned<String>,
    pub planned: Option<Spanned<bool>>,
    pub ports: Option<Spanned<Named<Spanned<String>>>>,
    pub priority: Option<Spanned<u8>>,
    pub budget: Option<Spanned<i64>>,
    pub stack: Option<Spanned<Size>>,
    pub config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub caps: Caps,
}

/// `[component.NAME.caps]`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    #[serde(default)]
    pub xenstore_read: Vec<Spanned<String>>,
    #[serde(default)]
    pub xenstore_write: Vec<Spanned<String>>,
    #[serde(default)]
    pub grant_copy: bool,
    #[serde(default)]
    pub grant_access: bool,
    #[serde(default)]
    pub event_channels: u16,
}

/// `[pool.NAME]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub buffer_size: Spanned<Size>,
    pub count: Spanned<i64>,
    pub owner: Spanned<String>,
    pub map: Spanned<Named<Spanned<String>>>,
}

/// `[[ring]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    pub message: Spanned<String>,
    pub capacity: Spanned<i64>,
}

/// A TOML table kept in file order, with the span of each key (so
/// `[component.echo]` errors point at `echo`).
#[derive(Debug)]
pub struct Named<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(Named(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
