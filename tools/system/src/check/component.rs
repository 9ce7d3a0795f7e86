//! `[component.NAME]`: registry lookup or inline ports, scheduling fields,
//! config and capabilities.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use moat_component::PortKind;

use super::{Errors, NAME_HELP, is_name, wiring::Wired};
use crate::diag::Span;
use crate::model::{self, Wire};
use crate::raw;
use crate::registry::{self, Decoded, Entry};
use crate::size::Size;

/// Defaults for fields a component may leave out.
pub const DEFAULT_PRIORITY: u8 = 100;
/// Items per input per call.
pub const DEFAULT_BUDGET: u32 = 64;
/// Stack bytes.
pub const DEFAULT_STACK: u64 = 16 << 10;

const MAX_BUDGET: i64 = 65536;
const MAX_STACK: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// Longest absolute XenStore path (`XENSTORE_ABS_PATH_MAX`).
const XENSTORE_PATH_MAX: usize = 3072;

/// A port as declared (by the crate, or inline for a planned component).
pub(crate) struct Decl {
    pub name: String,
    pub kind: PortKind,
    pub message: String,
    pub writable: bool,
    /// Where to point when it is left unconnected.
    pub span: Span,
    /// Planned `state SIZE` ports: the size given.
    pub state: u64,
}

/// A component being checked.
pub(crate) struct Comp {
    pub name: String,
    pub crate_path: String,
    pub entry: Option<&'static Entry>,
    /// `None` when the ports are unknown (an error was reported): wiring
    /// then skips this component rather than report every reference.
    pub decl: Option<Vec<Decl>>,
    priority: u8,
    budget: u32,
    stack: u64,
    config_toml: toml::Table,
    decoded: Option<Decoded>,
    caps: model::Caps,
}

impl Comp {
    pub(crate) fn resolve(
        key: &Spanned<String>,
        raw: &raw::Component,
        doc: &Spanned<DeTable<'_>>,
        errs: &mut Errors,
    ) -> Comp {
        let name = key.get_ref().clone();
        let planned = raw.planned.as_ref().is_some_and(|p| *p.get_ref());
        let entry = registry::find(raw.krate.get_ref());
        let decl = match (entry, planned) {
            (Some(e), true) => {
                let span = raw.planned.as_ref().map_or(key.span(), Spanned::span);
                errs.at(
                    span,
                    format!("component `{name}` is marked planned, but its crate `{}` is registered", e.crate_path),
                    "remove `planned` and `ports`: the crate declares its own ports",
                );
                Some(from_entry(e, key.span()))
            }
            (Some(e), false) => {
                if let Some(p) = &raw.ports {
                    errs.at(
                        p.span(),
                        format!("`ports` given for component `{name}`, whose crate declares its own"),
                        "remove `ports`: they come from the crate's `Ports::DECL`",
                    );
                }
                Some(from_entry(e, key.span()))
            }
            (None, false) => {
                let known = registry::COMPONENTS.iter().map(|e| e.crate_path);
                errs.at(
                    raw.krate.span(),
                    format!("crate `{}` is not a registered component", raw.krate.get_ref()),
                    format!(
                        "registered crates: {}; if the crate does not exist yet, add `planned = true` and \
                         declare its `ports`",
                        crate::suggest::list(known)
                    ),
                );
                None
            }
            (None, true) => match &raw.ports {
                Some(p) => Some(inline_ports(p, errs)),
                None => {
                    errs.at(
                        key.span(),
                        format!("planned component `{name}` declares no `ports`"),
                        "add `[component.NAME.ports]` with a line per port, e.g. `input = \"rx PacketDesc\"`",
                    );
                    None
                }
            },
        };
        if let Some(d) = &decl {
            let channels = d.iter().filter(|p| matches!(p.kind, PortKind::Rx | PortKind::Tx | PortKind::Device));
            let n = channels.count();
            if n > usize::from(moat_component::Channel::MAX) {
                errs.at(
                    key.span(),
                    format!("component `{name}` has {n} ring and device ports"),
                    format!("each needs a notification channel and a component has {}", moat_component::Channel::MAX),
                );
            }
        }

        let priority = raw.priority.as_ref().map_or(DEFAULT_PRIORITY, |p| *p.get_ref());
        let budget = match &raw.budget {
            None => DEFAULT_BUDGET,
            Some(b) if (1..=MAX_BUDGET).contains(b.get_ref()) => *b.get_ref() as u32,
            Some(b) => {
                errs.at(
                    b.span(),
                    format!("budget {} is out of range", b.get_ref()),
                    format!("the budget is the most items taken from each input per call: 1 to {MAX_BUDGET}"),
                );
                DEFAULT_BUDGET
            }
        };
        let stack = match &raw.stack {
            None => DEFAULT_STACK,
            Some(s) => {
                let n = s.get_ref().0;
                if !n.is_multiple_of(PAGE) || !(PAGE..=MAX_STACK).contains(&n) {
                    errs.at(
                        s.span(),
                        format!("stack size {} is not a whole number of 4 KiB pages from 4 KiB to 1 MiB", Size(n)),
                        "write e.g. \"16KiB\"",
                    );
                }
                n
            }
        };

        let config_toml = raw.config.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default();
        let decoded = entry.and_then(|e| {
            let empty;
            let value = match config_value(doc, &name) {
                Some(v) => v,
                None => {
                    empty = Spanned::new(key.span(), DeValue::Table(DeTable::new()));
                    &empty
                }
            };
            e.decode_config(value).map_err(|d| errs.0.extend(d)).ok()
        });

        let caps = caps(&raw.caps, errs);
        Comp {
            name,
            crate_path: raw.krate.get_ref().clone(),
            entry,
            decl,
            priority,
            budget,
            stack,
            config_toml,
            decoded,
            caps,
        }
    }

    pub(crate) fn into_model(self, index: usize, wired: &Wired) -> model::Component {
        let mut next_channel = 0u8;
        let decl = self.decl.unwrap_or_default();
        let ports = decl
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let channel = matches!(d.kind, PortKind::Rx | PortKind::Tx | PortKind::Device).then(|| {
                    next_channel += 1;
                    next_channel - 1
                });
                let wire = match d.kind {
                    PortKind::State => {
                        let from_code = self.decoded.as_ref().and_then(|c| c.state.iter().find(|(n, _)| *n == d.name));
                        Wire::State(from_code.map_or(d.state, |(_, b)| *b as u64))
                    }
                    PortKind::Device => Wire::Device,
                    // Checked: every ring and pool port is wired once.
                    _ => wired.wires.get(&(index, i)).copied().unwrap_or(Wire::Device),
                };
                model::Port { name: d.name, kind: d.kind, message: d.message, writable: d.writable, channel, wire }
            })
            .collect();
        model::Component {
            name: self.name,
            crate_path: self.crate_path,
            entry: self.entry,
            priority: self.priority,
            budget: self.budget,
            stack: self.stack,
            ports,
            config_toml: self.config_toml,
            config_blob: self.decoded.map(|d| d.blob),
            caps: self.caps,
        }
    }
}

fn from_entry(e: &Entry, span: Span) -> Vec<Decl> {
    e.ports
        .iter()
        .map(|p| Decl {
            name: p.name.into(),
            kind: p.kind,
            message: p.message.into(),
            writable: p.writable,
            span: span.clone(),
            state: 0,
        })
        .collect()
}

/// The spanned `config` value of component `name`, straight from the TOML
/// tree, so errors inside it point at the offending value.
fn config_value<'a, 'i>(doc: &'a Spanned<DeTable<'i>>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    doc.get_ref().get("component")?.get_ref().get(name)?.get_ref().get("config")
}

const PORT_FORMS: &str =
    "write \"rx MESSAGE\", \"tx MESSAGE\", \"pool r\", \"pool rw\", \"state\", \"state SIZE\" or \"device TYPE\"";

fn inline_ports(ports: &Spanned<raw::Named<Spanned<String>>>, errs: &mut Errors) -> Vec<Decl> {
    let mut out = Vec::new();
    for (key, spec) in &ports.get_ref().0 {
        if !is_name(key.get_ref()) {
            errs.at(key.span(), format!("invalid port name `{}`", key.get_ref()), NAME_HELP);
        }
        let Some((kind, message, writable, state)) = parse_port(spec.get_ref()) else {
            errs.at(spec.span(), format!("invalid port declaration \"{}\"", spec.get_ref()), PORT_FORMS);
            continue;
        };
        out.push(Decl { name: key.get_ref().clone(), kind, message, writable, span: key.span(), state });
    }
    out
}

fn parse_port(spec: &str) -> Option<(PortKind, String, bool, u64)> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let type_name = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    Some(match words.as_slice() {
        ["rx", m] if type_name(m) => (PortKind::Rx, (*m).into(), false, 0),
        ["tx", m] if type_name(m) => (PortKind::Tx, (*m).into(), false, 0),
        ["pool", "r"] => (PortKind::Pool, String::new(), false, 0),
        ["pool", "rw"] => (PortKind::Pool, String::new(), true, 0),
        ["state"] => (PortKind::State, String::new(), true, 0),
        ["state", size] => (PortKind::State, String::new(), true, crate::size::parse(size).ok()?.0),
        ["device", t] if type_name(t) => (PortKind::Device, (*t).into(), true, 0),
        _ => return None,
    })
}

fn caps(raw: &raw::Caps, errs: &mut Errors) -> model::Caps {
    let paths = |list: &[Spanned<String>], errs: &mut Errors| {
        let mut out = Vec::new();
        for p in list {
            if !xenstore_path(p.get_ref()) {
                errs.at(
                    p.span(),
                    format!("invalid XenStore path prefix \"{}\"", p.get_ref()),
                    "XenStore paths use letters, digits and `-/_@`, with no empty segment (`//`), \
                     at most 3072 bytes; a lone `*` component matches any one component",
                );
            }
            out.push(p.get_ref().clone());
        }
        out
    };
    model::Caps {
        xenstore_read: paths(&raw.xenstore_read, errs),
        xenstore_write: paths(&raw.xenstore_write, errs),
        grant_copy: raw.grant_copy,
        grant_access: raw.grant_access,
        event_channels: raw.event_channels,
    }
}

/// A XenStore path prefix: relative (to the domain's home) or absolute.
fn xenstore_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= XENSTORE_PATH_MAX
        && !p.contains("//")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "-/_@*".contains(c))
        && p.split('/').all(|seg| seg == "*" || !seg.contains('*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forms() {
        assert_eq!(parse_port("rx PacketDesc").map(|p| p.0), Some(PortKind::Rx));
        assert_eq!(parse_port("  tx   ClientEvent ").map(|p| p.1), Some("ClientEvent".into()));
        assert_eq!(parse_port("pool rw").map(|p| p.2), Some(true));
        assert_eq!(parse_port("pool r").map(|p| p.2), Some(false));
        assert_eq!(parse_port("state 8MiB").map(|p| p.3), Some(8 << 20));
        assert_eq!(parse_port("device XenStore").map(|p| p.0), Some(PortKind::Device));
        for bad in ["", "rx", "rx Packet-Desc", "pool w", "state lots", "tx A B", "txx A"] {
            assert!(parse_port(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn xenstore_paths() {
        assert!(xenstore_path("backend/vif/"));
        assert!(xenstore_path("/local/domain/0/backend/vif"));
        assert!(xenstore_path("@introduceDomain"));
        assert!(xenstore_path("/local/domain/*/device/vif"));
        for bad in ["", "a//b", "a b", "a.b", "ü", "/local/domain/1*/x"] {
            assert!(!xenstore_path(bad), "{bad:?}");
        }
    }
}
