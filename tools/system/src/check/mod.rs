//! Validation: from the raw schema to the checked [`System`].
//!
//! The file is parsed once into a spanned TOML tree (so component configs
//! can be decoded with their own spans) and deserialized into the raw
//! schema; a syntax or schema error stops there. The cross-checks then
//! collect every error they can find without piling consequences on one
//! mistake: a ring naming a component that failed to resolve is skipped,
//! and a port a ring or pool mentions is not also reported unconnected.

mod component;
mod grants;
mod policy;
mod wiring;

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use crate::diag::{Diagnostic, Span};
use crate::model::System;
use crate::raw;
use crate::size::Size;
use crate::suggest;

pub(crate) use component::Comp;

/// Reserved for ring ends and pool owners the image's runtime plays.
pub(crate) const RUNTIME: &str = "runtime";

/// Collected errors.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<Diagnostic>);

impl Errors {
    pub(crate) fn at(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.0.push(Diagnostic::new(span, message).help(help));
    }
}

/// Checks `source`; `base_dir` is where relative policy paths start.
pub(crate) fn check(source: &str, base_dir: &Path) -> Result<System, Vec<Diagnostic>> {
    let doc = DeTable::parse(source).map_err(|e| vec![Diagnostic::from_toml(&e)])?;
    let file = raw::File::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| vec![Diagnostic::from_toml(&e).with_default_span(0..0)])?;

    let mut errs = Errors::default();
    let sys = file.system.get_ref();
    check_system_name(&sys.name, &mut errs);
    let policy = check_policy(&sys.policy, base_dir, &mut errs);
    check_names(&file, &mut errs);

    let spans: Vec<_> = file.component.0.iter().map(|(k, _)| k.span()).collect();
    let comps: Vec<Comp> = file.component.0.iter().map(|(k, c)| Comp::resolve(k, c, &doc, &mut errs)).collect();
    let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let wired = wiring::wire(source, &file, &comps, &index, &mut errs);

    if !errs.0.is_empty() {
        return Err(sorted(errs.0));
    }
    let mut system = System {
        name: sys.name.get_ref().clone(),
        memory: sys.memory.get_ref().0,
        policy,
        components: comps.into_iter().enumerate().map(|(i, c)| c.into_model(i, &wired)).collect(),
        pools: wired.pools,
        rings: wired.rings,
    };
    grants::derive(&mut system, |i| spans[i].clone(), &mut errs);
    let policy_span = sys.policy.first().map_or_else(|| file.system.span(), |p| p.span());
    policy::derive(&mut system, policy_span, &mut errs);
    check_memory(&system, &sys.memory, &mut errs);
    if errs.0.is_empty() { Ok(system) } else { Err(sorted(errs.0)) }
}

fn sorted(mut v: Vec<Diagnostic>) -> Vec<Diagnostic> {
    v.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    v
}

/// Lowercase letters, digits and `_`, starting with a letter: names appear
/// in `component.port` references, symbols and status output.
pub(crate) fn is_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(crate) const NAME_HELP: &str = "names are lowercase letters, digits and `_`, starting with a letter";

fn check_system_name(name: &Spanned<String>, errs: &mut Errors) {
    let n = name.get_ref();
    let ok = (1..=31).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        errs.at(
            name.span(),
            format!("invalid system name \"{n}\""),
            "it becomes the Qubes VM name: at most 31 letters, digits, `-` and `_`, starting with a letter",
        );
    }
}

fn check_policy(paths: &[Spanned<String>], base: &Path, errs: &mut Errors) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let path = base.join(p.get_ref());
        if !path.is_file() {
            errs.at(
                p.span(),
                format!("policy file \"{}\" not found", p.get_ref()),
                "policy paths are relative to the directory that holds this file",
            );
        }
        out.push(path);
    }
    out
}

/// Components and pools share one namespace (`map` keys, owners and ring
/// ends name components; image symbols and status output name both).
fn check_names(file: &raw::File, errs: &mut Errors) {
    let mut seen: HashMap<&str, (&str, Span)> = HashMap::new();
    let all =
        file.component.0.iter().map(|(k, _)| ("component", k)).chain(file.pool.0.iter().map(|(k, _)| ("pool", k)));
    for (what, key) in all {
        let name = key.get_ref().as_str();
        if name == RUNTIME {
            errs.at(
                key.span(),
                format!("`{RUNTIME}` cannot name a {what}"),
                "it is reserved for the image's runtime in ring ends and pool owners; choose another name",
            );
        } else if !is_name(name) {
            errs.at(key.span(), format!("invalid {what} name `{name}`"), NAME_HELP);
        } else if let Some((first, _)) = seen.get(name) {
            errs.at(
                key.span(),
                format!("`{name}` names both a {first} and a {what}"),
                "components and pools share one namespace; rename one of them",
            );
        } else {
            seen.insert(name, (what, key.span()));
        }
    }
}

fn check_memory(system: &System, memory: &Spanned<Size>, errs: &mut Errors) {
    let m = system.memory_use();
    if m.total() > system.memory {
        errs.at(
            memory.span(),
            format!(
                "the graph needs {} (rings {}, pools {}, state {}, stacks {}) but memory is {}",
                Size(m.total()),
                Size(m.rings),
                Size(m.pools),
                Size(m.state),
                Size(m.stacks),
                Size(system.memory)
            ),
            "raise `memory`, or shrink pools, rings, stacks or component tables",
        );
    }
}

/// "did you mean `x`? components: …" for an unknown name.
pub(crate) fn unknown_help<'a>(what: &str, name: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    let list = suggest::list(known.clone());
    match suggest::closest(name, known) {
        Some(s) => format!("did you mean `{s}`? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}
