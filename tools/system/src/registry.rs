//! The component registry: every component crate `moat check` and
//! `moat build` know, each entry built from the crate's own [`Component`]
//! impl, so the port declarations and config type checked here are the ones
//! the code uses.
//!
//! Adding a component is one line in [`COMPONENTS`] (plus the crate as a
//! dependency of this one):
//!
//! ```ignore
//! Entry::of::<moat_nat::Nat>("components/nat"),
//! ```
//!
//! and removing `planned = true` and the inline `ports` from its
//! `[component.NAME]` in `system.toml`.

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use moat_component::{Component, PortDecl, Ports};

use crate::diag::{Diagnostic, HELP};

/// The registered components.
pub static COMPONENTS: &[Entry] = &[
    Entry::of::<moat_echo::Echo>("components/echo"),
    Entry::of::<moat_csum::Csum>("components/csum"),
    Entry::of::<moat_xenstore::Xenstore>("components/xenstore"),
    Entry::of::<moat_nat::Nat>("components/nat"),
    Entry::of::<moat_netback::Netback>("components/netback"),
    Entry::of::<moat_netfront::Netfront>("components/netfront"),
    Entry::of::<moat_rules::Rules>("components/rules"),
];

/// The entry whose crate is at `crate_path` (as written in `system.toml`).
pub fn find(crate_path: &str) -> Option<&'static Entry> {
    let path = crate_path.trim_start_matches("./").trim_end_matches('/');
    COMPONENTS.iter().find(|e| e.crate_path == path)
}

/// What a [`DeValue`] config is turned into.
type DecodeFn = for<'a> fn(&Spanned<DeValue<'a>>) -> Result<Decoded, Vec<Diagnostic>>;

/// One registered component crate.
pub struct Entry {
    /// Crate path relative to the workspace root.
    pub crate_path: &'static str,
    /// `Component::NAME`.
    pub name: &'static str,
    /// `Ports::DECL`.
    pub ports: &'static [PortDecl],
    /// The component type's Rust path (`moat_csum::Csum`): what an image
    /// names to link it.
    pub type_name: fn() -> &'static str,
    /// The `Config` type's name and size, which the configuration blob's
    /// layout hash covers (`moat_runtime::layout::layout_hash`).
    pub config_type: fn() -> &'static str,
    /// `size_of::<Config>()`.
    pub config_size: usize,
    decode: DecodeFn,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("crate_path", &self.crate_path).field("name", &self.name).finish()
    }
}

/// A component's configuration, checked and encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// `postcard` encoding of `C::Config` (the payload of the blob the
    /// build tool hands to `init`).
    pub blob: Vec<u8>,
    /// Bytes per state port, from `Component::state_bytes`.
    pub state: Vec<(&'static str, usize)>,
}

impl Entry {
    /// The entry for component `C`, whose crate lives at `crate_path`.
    ///
    /// `C::Config` must deserialize from a TOML table (a struct; an empty
    /// struct for no configuration) and serialize, for postcard.
    pub const fn of<C: Component>(crate_path: &'static str) -> Entry
    where
        C::Config: Serialize,
    {
        Entry {
            crate_path,
            name: C::NAME,
            ports: <C::Ports as Ports>::DECL,
            type_name: std::any::type_name::<C>,
            config_type: std::any::type_name::<C::Config>,
            config_size: size_of::<C::Config>(),
            decode: decode::<C>,
        }
    }

    /// Checks a `config` value (spans from the `system.toml` it came from)
    /// and encodes it.
    pub fn decode_config(&self, config: &Spanned<DeValue<'_>>) -> Result<Decoded, Vec<Diagnostic>> {
        // The component's Deserialize and state_bytes are code we did not
        // write running on user input; a panic there is reported, not fatal.
        std::panic::catch_unwind(|| (self.decode)(config)).unwrap_or_else(|_| {
            Err(vec![
                Diagnostic::new(
                    config.span(),
                    format!("component crate `{}` panicked while decoding this config", self.crate_path),
                )
                .help("this is a bug in the component: its Config or state_bytes must reject bad values, not panic"),
            ])
        })
    }
}

fn decode<C: Component>(config: &Spanned<DeValue<'_>>) -> Result<Decoded, Vec<Diagnostic>>
where
    C::Config: Serialize,
{
    let cfg = C::Config::deserialize(ValueDeserializer::from(config.clone())).map_err(|e| {
        let mut d = Diagnostic::from_toml(&e).with_default_span(config.span());
        if let Some(key) = d.message.strip_prefix("missing key ").map(String::from) {
            d.message = format!("missing config field {key}");
            d.help = Some(format!("the component's `config` needs {key}"));
        } else if d.message.starts_with("invalid") || d.help.is_none() {
            d.help = Some(format!("`config` is decoded as the `Config` of `{}`", C::NAME));
        }
        vec![d]
    })?;
    // Serde ignores fields a struct does not have unless it says otherwise,
    // and component crates should not have to. What the decoded config
    // serializes back to is exactly what it understood; anything else in the
    // table was a typo or a stale setting.
    let known = toml::Value::try_from(&cfg).ok();
    let mut errors = Vec::new();
    unknown_keys(config, known.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let blob = postcard::to_stdvec(&cfg)
        .map_err(|e| vec![Diagnostic::new(config.span(), format!("config does not encode with postcard: {e}"))])?;
    let mut state = Vec::new();
    C::state_bytes(&cfg, &mut |name, bytes| state.push((name, bytes)));
    Ok(Decoded { blob, state })
}

/// Reports keys of `input` that the serialized config `known` lacks.
fn unknown_keys(input: &Spanned<DeValue<'_>>, known: Option<&toml::Value>, errors: &mut Vec<Diagnostic>) {
    match (input.get_ref(), known) {
        (DeValue::Table(table), Some(toml::Value::Table(k))) => {
            for (key, value) in table.iter() {
                match k.get(key.get_ref().as_ref()) {
                    Some(sub) => unknown_keys(value, Some(sub), errors),
                    None => errors.push(unknown(key, k)),
                }
            }
        }
        (DeValue::Table(table), None) => {
            for (key, _) in table.iter() {
                errors.push(unknown(key, &toml::Table::new()));
            }
        }
        (DeValue::Array(items), Some(toml::Value::Array(k))) => {
            for (item, known) in items.iter().zip(k) {
                unknown_keys(item, Some(known), errors);
            }
        }
        _ => {}
    }
}

fn unknown(key: &Spanned<std::borrow::Cow<'_, str>>, known: &toml::Table) -> Diagnostic {
    let names: Vec<&str> = known.keys().map(String::as_str).collect();
    let help = if names.is_empty() {
        "this table takes no fields".to_string()
    } else {
        let mut h = String::new();
        if let Some(s) = crate::suggest::closest(key.get_ref(), names.iter().copied()) {
            h = format!("did you mean `{s}`? ");
        }
        h + "fields here: " + &crate::suggest::list(names.iter().copied())
    };
    Diagnostic::split(Some(key.span()), &format!("unknown config field `{}`{HELP}{help}", key.get_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_found_by_its_path() {
        for e in COMPONENTS {
            assert!(std::ptr::eq(find(e.crate_path).unwrap(), e));
            assert!(std::ptr::eq(find(&format!("./{}/", e.crate_path)).unwrap(), e));
        }
        assert!(find("components/nope").is_none());
    }

    fn decode_str(text: &str) -> Result<Decoded, Vec<Diagnostic>> {
        let v = DeValue::parse(text).unwrap();
        find("components/echo").unwrap().decode_config(&v)
    }

    #[test]
    fn echo_config_is_encoded_with_postcard() {
        let d = decode_str("{ count_bytes = true }").unwrap();
        assert_eq!(d.blob, postcard::to_stdvec(&moat_echo::EchoConfig { count_bytes: true }).unwrap());
        assert!(d.state.is_empty(), "echo keeps no state regions");
    }

    /// A component whose `state_bytes` panics on a config value it should
    /// have refused: checking reports it instead of dying.
    struct Careless;

    #[derive(Serialize, Deserialize)]
    struct CarelessConfig {
        entries: u64,
    }

    impl Component for Careless {
        const NAME: &'static str = "careless";
        type Config = CarelessConfig;
        type Ports = moat_echo::EchoPorts;
        fn init(
            _: CarelessConfig,
            _: &mut Self::Ports,
            _: &mut moat_component::Context,
        ) -> Result<Self, moat_component::Fault> {
            Err(moat_component::Fault::Internal("not for running"))
        }
        fn notified(
            &mut self,
            _: &mut Self::Ports,
            _: &mut moat_component::Context,
        ) -> Result<(), moat_component::Fault> {
            Ok(())
        }
        fn status(&self, _: &mut dyn moat_component::Status) {}
        fn state_bytes(config: &CarelessConfig, out: &mut dyn FnMut(&'static str, usize)) {
            let bytes = usize::try_from(config.entries.checked_mul(64).expect("entries overflow")).unwrap();
            out("table", bytes);
        }
    }

    #[test]
    fn a_panicking_component_is_reported_not_fatal() {
        let e = Entry::of::<Careless>("components/careless");
        let ok = e.decode_config(&DeValue::parse("{ entries = 2 }").unwrap()).unwrap();
        assert_eq!(ok.state, [("table", 128)]);
        let v = DeValue::parse("{ entries = 0x7fffffffffffffff }").unwrap();
        let err = e.decode_config(&v).unwrap_err();
        assert_eq!(err[0].message, "component crate `components/careless` panicked while decoding this config");
        assert_eq!(err[0].span, Some(0..32), "the whole config");
    }

    #[test]
    fn unknown_and_ill_typed_fields_point_at_themselves() {
        let e = decode_str("{ count_bytes = true, cout = 1 }").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].message, "unknown config field `cout`");
        assert_eq!(e[0].span, Some(22..26));
        let e = decode_str("{ count_bytes = 3 }").unwrap_err();
        assert_eq!(e[0].span, Some(16..17));
        assert!(e[0].message.contains("invalid type"), "{}", e[0].message);
    }
}
