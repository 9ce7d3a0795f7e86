//! Pools and rings: every ring and pool port of every component wired
//! exactly once, the right way round, with matching message types and
//! matching access.

mod pools;
mod rings;

use std::collections::{HashMap, HashSet};

use moat_component::PortKind;

use super::{Comp, Errors, unknown_help};
use crate::diag::{Span, line_col};
use crate::model::{self, Wire};
use crate::raw;

/// What wiring produced.
pub(crate) struct Wired {
    pub pools: Vec<model::Pool>,
    pub rings: Vec<model::Ring>,
    /// (component, port) to its ring or pool.
    pub wires: HashMap<(usize, usize), Wire>,
}

struct Wiring<'a> {
    source: &'a str,
    comps: &'a [Comp],
    index: &'a HashMap<&'a str, usize>,
    errs: &'a mut Errors,
    /// Ports some ring or pool mentioned, and where first.
    touched: HashMap<(usize, usize), Span>,
    runtime: HashMap<String, Span>,
    /// Components (or, for `None`, all) with a reference that did not
    /// resolve: the reference probably meant one of their ports, so they
    /// are not also reported as unconnected.
    vague: HashSet<Option<usize>>,
    out: Wired,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    From,
    To,
}

pub(crate) fn wire(
    source: &str,
    file: &raw::File,
    comps: &[Comp],
    index: &HashMap<&str, usize>,
    errs: &mut Errors,
) -> Wired {
    let mut w = Wiring {
        source,
        comps,
        index,
        errs,
        touched: HashMap::new(),
        runtime: HashMap::new(),
        vague: HashSet::new(),
        out: Wired { pools: Vec::new(), rings: Vec::new(), wires: HashMap::new() },
    };
    for (i, (key, pool)) in file.pool.0.iter().enumerate() {
        w.pool(i, key, pool);
    }
    for ring in &file.ring {
        w.ring(ring);
    }
    w.unconnected();
    w.out
}

impl Wiring<'_> {
    fn line(&self, span: &Span) -> usize {
        line_col(self.source, span.start).0
    }

    /// The component called `name`, or an error at `span`.
    fn component(&mut self, name: &str, span: Span) -> Option<usize> {
        if let Some(&c) = self.index.get(name) {
            return Some(c);
        }
        let names = self.comps.iter().map(|c| c.name.as_str());
        self.errs.at(span, format!("no component `{name}`"), unknown_help("components", name, names));
        self.vague.insert(None);
        None
    }

    /// Records that `(c, p)` is wired at `span`; false (and an error) if it
    /// already was.
    fn touch(&mut self, c: usize, p: usize, span: Span, what: &str) -> bool {
        if let Some(first) = self.touched.get(&(c, p)) {
            let line = self.line(first);
            let name = self.port_name(c, p);
            self.errs.at(
                span,
                format!("`{name}` is already {what} at line {line}"),
                format!("a port is {what} exactly once; remove one of the two"),
            );
            return false;
        }
        self.touched.insert((c, p), span);
        true
    }

    fn port_name(&self, c: usize, p: usize) -> String {
        let comp = &self.comps[c];
        let port = comp.decl.as_deref().and_then(|d| d.get(p)).map_or("?", |d| d.name.as_str());
        format!("{}.{port}", comp.name)
    }

    fn unconnected(&mut self) {
        if self.vague.contains(&None) {
            return;
        }
        for (c, comp) in self.comps.iter().enumerate() {
            let Some(decl) = comp.decl.as_deref() else { continue };
            if self.vague.contains(&Some(c)) {
                continue;
            }
            for (p, d) in decl.iter().enumerate() {
                if self.touched.contains_key(&(c, p)) {
                    continue;
                }
                let name = format!("{}.{}", comp.name, d.name);
                match d.kind {
                    PortKind::Rx => self.errs.at(
                        d.span.clone(),
                        format!("port `{name}` (rx {}) is not connected", d.message),
                        format!("add a [[ring]] with `to = \"{name}\"`"),
                    ),
                    PortKind::Tx => self.errs.at(
                        d.span.clone(),
                        format!("port `{name}` (tx {}) is not connected", d.message),
                        format!("add a [[ring]] with `from = \"{name}\"`"),
                    ),
                    PortKind::Pool => {
                        let access = if d.writable { "rw" } else { "r" };
                        self.errs.at(
                            d.span.clone(),
                            format!("pool port `{name}` ({access}) is not mapped"),
                            format!("add `\"{name}\" = \"{access}\"` to the `map` of a [pool.NAME]"),
                        )
                    }
                    PortKind::State | PortKind::Device => {}
                }
            }
        }
    }
}
