//! `[[ring]]`: both ends resolved, the right way round, carrying the same
//! message, with a usable capacity.

use toml::Spanned;

use moat_component::PortKind;

use super::{Role, Wiring};
use crate::check::{NAME_HELP, RUNTIME, is_name, unknown_help};
use crate::messages::{MAX_RING, MIN_CONTROL_RING, plain_size};
use crate::model::{self, End, Wire};
use crate::raw;

impl Wiring<'_> {
    pub(super) fn ring(&mut self, ring: &Spanned<raw::Ring>) {
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
                self.errs.at(span, format!("invalid runtime port name `{port}`"), NAME_HELP);
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
}
