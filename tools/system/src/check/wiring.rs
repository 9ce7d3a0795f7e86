//! Pools and rings: every ring and pool port of every component wired
//! exactly once, the right way round, with matching message types and
//! matching access.

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use moat_component::PortKind;
use moat_ring::pool::MAX_POOL_BUFFERS;

use super::{Comp, Errors, RUNTIME, is_name, unknown_help};
use crate::diag::{Span, line_col};
use crate::messages::{MAX_RING, MIN_CONTROL_RING, plain_size};
use crate::model::{self, End, Owner, Wire};
use crate::raw;
use crate::size::Size;

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
        let decl = comp.decl.as_deref().unwrap_or_default();
        format!("{}.{}", comp.name, decl[p].name)
    }

    fn pool(&mut self, index: usize, key: &Spanned<String>, pool: &raw::Pool) {
        let name = key.get_ref();
        let size = pool.buffer_size.get_ref().0;
        if !size.is_power_of_two() || !(64..=65536).contains(&size) {
            self.errs.at(
                pool.buffer_size.span(),
                format!("buffer size {} is not a power of two from 64 B to 64 KiB", Size(size)),
                "2KiB holds a 1500-byte packet and its headroom",
            );
        }
        let count = *pool.count.get_ref();
        if !(1..=MAX_POOL_BUFFERS as i64).contains(&count) {
            self.errs.at(
                pool.count.span(),
                format!("pool count {count} is out of range"),
                format!("a pool holds 1 to {MAX_POOL_BUFFERS} buffers"),
            );
        }
        let Ok(id) = u16::try_from(index + 1) else {
            self.errs.at(key.span(), "too many pools", "descriptors name pools with 16 bits: at most 65535 pools");
            return;
        };

        let mut maps = Vec::new();
        for (mkey, access) in &pool.map.get_ref().0 {
            let (cname, port) = match mkey.get_ref().split_once('.') {
                Some((c, p)) => (c, p),
                None => (mkey.get_ref().as_str(), name.as_str()),
            };
            if cname == RUNTIME {
                self.errs.at(
                    mkey.span(),
                    format!("`{RUNTIME}` needs no pool mapping"),
                    "the runtime lays out every pool; remove it from `map`",
                );
                continue;
            }
            let Some(c) = self.component(cname, mkey.span()) else { continue };
            let Some(decl) = self.comps[c].decl.as_deref() else { continue };
            let Some(p) = decl.iter().position(|d| d.name == port && d.kind == PortKind::Pool) else {
                let pools: Vec<&str> =
                    decl.iter().filter(|d| d.kind == PortKind::Pool).map(|d| d.name.as_str()).collect();
                let mut help = unknown_help("its pool ports", port, pools.iter().copied());
                if !mkey.get_ref().contains('.') && !pools.is_empty() {
                    let a = access.get_ref();
                    help += &format!("; to map pool `{name}` to one of them, write `\"{cname}.PORT\" = \"{a}\"`");
                }
                self.errs.at(mkey.span(), format!("component `{cname}` has no pool port `{port}`"), help);
                self.vague.insert(Some(c));
                continue;
            };
            if !self.touch(c, p, mkey.span(), "mapped") {
                continue;
            }
            let writable = match access.get_ref().as_str() {
                "r" => false,
                "rw" => true,
                other => {
                    self.errs.at(
                        access.span(),
                        format!("pool access must be \"r\" or \"rw\", not \"{other}\""),
                        "\"r\" maps the buffers read-only, \"rw\" read-write",
                    );
                    continue;
                }
            };
            let declared = decl[p].writable;
            if writable && !declared {
                self.errs.at(
                    access.span(),
                    format!("`{cname}.{port}` is mapped \"rw\", but `{cname}` only reads it"),
                    "map it \"r\": the component declares this pool port read-only",
                );
            } else if !writable && declared {
                self.errs.at(
                    access.span(),
                    format!("`{cname}.{port}` is mapped \"r\", but `{cname}` writes it"),
                    "map it \"rw\": the component declares this pool port writable",
                );
            }
            self.out.wires.insert((c, p), Wire::Pool(index));
            maps.push((c, p, writable));
        }

        let owner = pool.owner.get_ref();
        let owner = if owner == RUNTIME {
            Owner::Runtime
        } else {
            let Some(c) = self.component(owner, pool.owner.span()) else { return };
            if self.comps[c].decl.is_some() {
                match maps.iter().find(|m| m.0 == c) {
                    None => self.errs.at(
                        pool.owner.span(),
                        format!("owner `{owner}` does not map pool `{name}`"),
                        format!("the owner fills the buffers: add `{owner} = \"rw\"` to `map`"),
                    ),
                    Some(m) if !m.2 => self.errs.at(
                        pool.owner.span(),
                        format!("owner `{owner}` maps pool `{name}` read-only"),
                        "the owner fills the buffers: map it \"rw\"",
                    ),
                    Some(_) => {}
                }
            }
            Owner::Component(c)
        };
        self.out.pools.push(model::Pool {
            name: name.clone(),
            id,
            buffer_size: size as u32,
            count: count.clamp(0, MAX_POOL_BUFFERS as i64) as u32,
            owner,
            maps,
        });
    }

    fn ring(&mut self, ring: &Spanned<raw::Ring>) {
        let r = ring.get_ref();
        self.capacity(r);
        let from = self.end(&r.from, Role::From);
        let to = self.end(&r.to, Role::To);
        let (Some(from), Some(to)) = (from, to) else { return };
        if let (End::Runtime(_), End::Runtime(_)) = (&from, &to) {
            self.errs.at(
                r.from.span(),
                "a ring needs a component at one end at least",
                "the runtime can feed or drain a component, not itself",
            );
            return;
        }
        let message = |e: &End| match e {
            End::Port { component, port } => self.comps[*component].decl.as_ref().map(|d| d[*port].message.clone()),
            End::Runtime(_) => None,
        };
        let (mf, mt) = (message(&from), message(&to));
        if let (Some(a), Some(b)) = (&mf, &mt)
            && a != b
        {
            self.errs.at(
                r.to.span(),
                format!("`{}` sends `{a}` but `{}` receives `{b}`", r.from.get_ref(), r.to.get_ref()),
                "both ends of a ring must declare the same message type",
            );
            return;
        }
        let Some(m) = mf.or(mt) else { return };
        if *r.message.get_ref() != m {
            self.errs.at(
                r.message.span(),
                format!("ring says message `{}`, but its ends carry `{m}`", r.message.get_ref()),
                format!("write `message = \"{m}\"`"),
            );
        }
        let index = self.out.rings.len();
        for e in [&from, &to] {
            if let End::Port { component, port } = e {
                self.out.wires.insert((*component, *port), Wire::Ring(index));
            }
        }
        let capacity = u32::try_from(*r.capacity.get_ref()).unwrap_or(0);
        self.out.rings.push(model::Ring { from, to, slot_size: plain_size(&m).unwrap_or(1), message: m, capacity });
    }

    fn capacity(&mut self, r: &raw::Ring) {
        let cap = *r.capacity.get_ref();
        let control = plain_size(r.message.get_ref()).is_none();
        let unit = if control { "bytes, for a control ring" } else { "slots" };
        let range = format!("capacity is a power of two from 1 to {MAX_RING} ({unit})");
        let span = r.capacity.span();
        if cap < 1 {
            self.errs.at(span, format!("ring capacity {cap} is too small"), range);
        } else if cap > i64::from(MAX_RING) {
            self.errs.at(span, format!("ring capacity {cap} is larger than {MAX_RING}"), range);
        } else if !(cap as u64).is_power_of_two() {
            let below = 1u64 << (63 - (cap as u64).leading_zeros());
            self.errs.at(
                span,
                format!("ring capacity {cap} is not a power of two"),
                format!("use {below} or {}", below * 2),
            );
        } else if control && cap < i64::from(MIN_CONTROL_RING) {
            self.errs.at(
                span,
                format!("control ring capacity {cap} is too small"),
                format!(
                    "`{}` is a control message: the ring counts bytes and holds whole postcard frames; use at \
                     least {MIN_CONTROL_RING}",
                    r.message.get_ref()
                ),
            );
        }
    }

    /// Resolves `component.port` (or `runtime.label`) for one end.
    fn end(&mut self, text: &Spanned<String>, role: Role) -> Option<End> {
        let span = text.span();
        let t = text.get_ref();
        let key = if role == Role::From { "from" } else { "to" };
        let Some((cname, port)) = t.split_once('.').filter(|(c, p)| !c.is_empty() && !p.is_empty() && !p.contains('.'))
        else {
            self.errs.at(
                span,
                format!("ring end \"{t}\" is not COMPONENT.PORT"),
                format!("write e.g. `{key} = \"echo.{}\"`", if role == Role::From { "output" } else { "input" }),
            );
            self.vague.insert(None);
            return None;
        };
        if cname == RUNTIME {
            if !is_name(port) {
                self.errs.at(span, format!("invalid runtime port name `{port}`"), super::NAME_HELP);
                return None;
            }
            if let Some(first) = self.runtime.get(port) {
                let line = self.line(first);
                self.errs.at(
                    span,
                    format!("`{t}` is already connected at line {line}"),
                    "a port is connected exactly once; give each runtime end its own name",
                );
                return None;
            }
            self.runtime.insert(port.into(), span);
            return Some(End::Runtime(port.into()));
        }
        let c = self.component(cname, span.clone())?;
        let decl = self.comps[c].decl.as_deref()?;
        let Some(p) = decl.iter().position(|d| d.name == port) else {
            let rings = decl.iter().filter(|d| matches!(d.kind, PortKind::Rx | PortKind::Tx)).map(|d| d.name.as_str());
            let help = unknown_help("its ring ports", port, rings);
            self.errs.at(span, format!("component `{cname}` has no port `{port}`"), help);
            self.vague.insert(Some(c));
            return None;
        };
        let kind = decl[p].kind;
        let (what, help) = match kind {
            PortKind::Rx | PortKind::Tx => ("", ""),
            PortKind::Pool => ("a pool port", "pools are wired by the `map` of a [pool.NAME]"),
            PortKind::State => ("a state port", "state regions are sized by the component and need no wiring"),
            PortKind::Device => ("a device port", "devices are attached by the runtime and need no wiring"),
        };
        if !what.is_empty() {
            self.touched.entry((c, p)).or_insert(span.clone());
            self.errs.at(span, format!("`{t}` is {what}, not a ring port"), help);
            return None;
        }
        if !self.touch(c, p, span.clone(), "connected") {
            return None;
        }
        let want = if role == Role::From { PortKind::Tx } else { PortKind::Rx };
        if kind != want {
            let (is, needs) = if kind == PortKind::Rx {
                ("an input (rx)", "an output (tx)")
            } else {
                ("an output (tx)", "an input (rx)")
            };
            self.errs.at(
                span,
                format!("`{t}` is {is} port, but `{key}` needs {needs} port"),
                "`from` names the producer's tx port and `to` the consumer's rx port; are they swapped?",
            );
            return None;
        }
        Some(End::Port { component: c, port: p })
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
