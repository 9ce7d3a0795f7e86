//! Policy files: loading, merging, validating, and compiling them into the
//! rules component's configuration blob ([`moat_rules::RulesConfig`]).
//!
//! The format and the merge rules are documented in `docs/policies.md`. In
//! short: a file has a `[defaults]` table (settings and the rules for
//! clients no entry names) and `[client.<name>]` tables (a Qubes VM name, or
//! an address), rules written in the Qubes rule syntax. Several files merge
//! in order; a later file may replace what an earlier one set only in a
//! table that says `override = true`, and anything else set twice is a
//! conflict. Every error names the file, line and column.
//!
//! Entry point for `moat check` and the build tool: [`compile_files`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use moat_control::rules::{Action, Addr, DropMode, InterVm, MAX_DNS, RulesControl};
use moat_rules::RulesConfig;
use moat_rules::engine::{Applied, OwnedState};
use moat_rules::lang::{self, Dst};
use moat_rules::policy::{MAX_ENTRIES, MAX_NAMES, MAX_RULES, valid_client_name};
use serde::Deserialize;
use toml::Spanned;

/// A place in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The file as it was named.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One problem with the policy files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub at: Loc,
    /// What.
    pub message: String,
    /// The other place, for conflicts.
    pub other: Option<Loc>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)?;
        if let Some(o) = &self.other {
            write!(f, " (first set at {o})")?;
        }
        Ok(())
    }
}

/// Everything wrong with a set of policy files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// A policy file's text and the name to report it by.
#[derive(Clone, Debug)]
pub struct Source {
    /// Name used in diagnostics (usually the path).
    pub name: String,
    /// The TOML text.
    pub text: String,
}

/// One rule, validated, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// The rule printed in dom0's canonical form.
    pub text: String,
    /// Where it was written.
    pub at: Loc,
}

/// The rules of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySpec {
    /// What happens when no rule matches.
    pub policy: Action,
    /// First match wins.
    pub rules: Vec<RuleSpec>,
}

/// One client's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// Qubes VM name, unless the table was named by an address.
    pub name: Option<String>,
    /// IPv4 address.
    pub ipv4: Option<[u8; 4]>,
    /// IPv6 address.
    pub ipv6: Option<[u8; 16]>,
    /// Its rules.
    pub entry: EntrySpec,
    /// Where its table was first opened.
    pub at: Loc,
}

/// Merged, validated policy files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How refused packets are refused.
    pub drop: DropMode,
    /// Client-to-client traffic.
    pub inter_vm: InterVm,
    /// What `specialtarget=dns` means.
    pub dns: Vec<Addr>,
    /// The entry for clients no client table names.
    pub default: EntrySpec,
    /// Client entries, ordered by table name.
    pub clients: Vec<ClientSpec>,
}

// ---- the file format -----------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    defaults: Option<S<TableDoc>>,
    #[serde(default)]
    client: BTreeMap<S<String>, S<TableDoc>>,
}

/// `[defaults]` and `[client.X]` share their keys; `dns`, `drop` and
/// `inter_vm` are refused in client tables after parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableDoc {
    #[serde(rename = "override", default)]
    override_: bool,
    replace_clients: Option<S<bool>>,
    drop: Option<S<String>>,
    inter_vm: Option<S<String>>,
    dns: Option<S<Vec<S<String>>>>,
    ip: Option<S<String>>,
    ip6: Option<S<String>>,
    policy: Option<S<String>>,
    rules: Option<S<Vec<S<String>>>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    errors: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn loc(&self, offset: usize) -> Loc {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Loc { file: self.file.to_string(), line, col }
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let at = self.loc(offset);
        self.errors.push(Diagnostic { at, message: message.into(), other: None });
    }
}

/// A value as merged so far, and where it was set.
#[derive(Clone)]
struct Set<T> {
    value: T,
    at: Loc,
}

#[derive(Default, Clone)]
struct Layer {
    drop: Option<Set<DropMode>>,
    inter_vm: Option<Set<InterVm>>,
    dns: Option<Set<Vec<Addr>>>,
    ipv4: Option<Set<[u8; 4]>>,
    ipv6: Option<Set<[u8; 16]>>,
    policy: Option<Set<Action>>,
    rules: Option<Set<Vec<RuleSpec>>>,
    opened: Option<Loc>,
}

/// Sets `slot` from a new value at `at`: refused if an earlier file set it
/// and this table does not say `override = true`.
fn merge<T>(ctx: &mut Ctx<'_>, slot: &mut Option<Set<T>>, value: T, offset: usize, override_: bool, key: &str) {
    let at = ctx.loc(offset);
    if let Some(old) = slot
        && !override_
    {
        let message = format!(
            "`{key}` is already set by an earlier policy file; say `override = true` in this table to replace it"
        );
        ctx.errors.push(Diagnostic { at, message, other: Some(old.at.clone()) });
        return;
    }
    *slot = Some(Set { value, at });
}

fn parse_action(ctx: &mut Ctx<'_>, v: &S<String>) -> Option<Action> {
    match v.get_ref().as_str() {
        "accept" => Some(Action::Accept),
        "drop" => Some(Action::Drop),
        _ => {
            ctx.error(v.span().start, "`policy` must be \"accept\" or \"drop\"");
            None
        }
    }
}

fn parse_rules(ctx: &mut Ctx<'_>, what: &str, rules: &S<Vec<S<String>>>) -> Option<Vec<RuleSpec>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, r) in rules.get_ref().iter().enumerate() {
        match lang::parse(r.get_ref()) {
            Ok(rule) => out.push(RuleSpec { text: rule.to_string(), at: ctx.loc(r.span().start) }),
            Err(e) => {
                // Point into the string: its opening quote, then the word.
                ctx.error(r.span().start + 1 + usize::from(e.at), format!("{what}, rule {i}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn parse_addr(s: &str) -> Option<Addr> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(Addr::V4(a.octets()));
    }
    s.parse::<Ipv6Addr>().ok().map(|a| Addr::V6(a.octets()))
}

/// Reads one table into `layer`.
fn apply_table(ctx: &mut Ctx<'_>, layer: &mut Layer, t: &S<TableDoc>, what: &str, is_default: bool) {
    let o = t.get_ref().override_;
    let doc = t.get_ref();
    if layer.opened.is_none() {
        layer.opened = Some(ctx.loc(t.span().start));
    }
    if is_default {
        if doc.ip.is_some() || doc.ip6.is_some() {
            let at = doc.ip.as_ref().or(doc.ip6.as_ref()).map_or(t.span().start, |v| v.span().start);
            ctx.error(at, "`ip` and `ip6` belong in [client.<name>] tables, not in [defaults]");
        }
    } else {
        if let Some(v) = &doc.replace_clients {
            ctx.error(v.span().start, "`replace_clients` belongs in [defaults]");
        }
        for (key, v) in [("drop", &doc.drop), ("inter_vm", &doc.inter_vm)] {
            if let Some(v) = v {
                ctx.error(v.span().start, format!("`{key}` is a setting of the whole policy: put it in [defaults]"));
            }
        }
        if let Some(v) = &doc.dns {
            ctx.error(v.span().start, "`dns` is a setting of the whole policy: put it in [defaults]");
        }
    }
    if let (true, Some(v)) = (is_default, &doc.drop) {
        match v.get_ref().as_str() {
            "reject" => merge(ctx, &mut layer.drop, DropMode::Reject, v.span().start, o, "drop"),
            "silent" => merge(ctx, &mut layer.drop, DropMode::Silent, v.span().start, o, "drop"),
            _ => ctx.error(v.span().start, "`drop` must be \"reject\" or \"silent\""),
        }
    }
    if let (true, Some(v)) = (is_default, &doc.inter_vm) {
        match v.get_ref().as_str() {
            "drop" => merge(ctx, &mut layer.inter_vm, InterVm::Drop, v.span().start, o, "inter_vm"),
            "rules" => merge(ctx, &mut layer.inter_vm, InterVm::Rules, v.span().start, o, "inter_vm"),
            _ => ctx.error(v.span().start, "`inter_vm` must be \"drop\" or \"rules\""),
        }
    }
    if let (true, Some(v)) = (is_default, &doc.dns) {
        let mut addrs = Vec::new();
        for a in v.get_ref() {
            match parse_addr(a.get_ref()) {
                Some(x) if !addrs.contains(&x) => addrs.push(x),
                Some(_) => ctx.error(a.span().start, "DNS address listed twice"),
                None => ctx.error(a.span().start, "not an IPv4 or IPv6 address"),
            }
        }
        if addrs.len() > MAX_DNS {
            ctx.error(v.span().start, format!("at most {MAX_DNS} DNS addresses"));
        }
        merge(ctx, &mut layer.dns, addrs, v.span().start, o, "dns");
    }
    if let Some(v) = &doc.ip {
        match v.get_ref().parse::<Ipv4Addr>() {
            Ok(a) => merge(ctx, &mut layer.ipv4, a.octets(), v.span().start, o, "ip"),
            Err(_) => ctx.error(v.span().start, "`ip` must be an IPv4 address"),
        }
    }
    if let Some(v) = &doc.ip6 {
        match v.get_ref().parse::<Ipv6Addr>() {
            Ok(a) => merge(ctx, &mut layer.ipv6, a.octets(), v.span().start, o, "ip6"),
            Err(_) => ctx.error(v.span().start, "`ip6` must be an IPv6 address"),
        }
    }
    if let Some(v) = &doc.policy
        && let Some(a) = parse_action(ctx, v)
    {
        merge(ctx, &mut layer.policy, a, v.span().start, o, "policy");
    }
    if let Some(v) = &doc.rules
        && let Some(r) = parse_rules(ctx, what, v)
    {
        merge(ctx, &mut layer.rules, r, v.span().start, o, "rules");
    }
}

/// Loads and merges policy files given as text, in order.
pub fn load_sources(sources: &[Source]) -> Result<Policy, Errors> {
    let mut errors = Vec::new();
    let mut defaults = Layer::default();
    let mut clients: BTreeMap<String, Layer> = BTreeMap::new();
    for src in sources {
        let mut ctx = Ctx { file: &src.name, text: &src.text, errors: &mut errors };
        let doc: FileDoc = match toml::from_str(&src.text) {
            Ok(d) => d,
            Err(e) => {
                let msg = e.message().trim_end().to_string();
                ctx.error(e.span().map_or(0, |s| s.start), msg);
                continue;
            }
        };
        if let Some(d) = &doc.defaults {
            if let Some(r) = &d.get_ref().replace_clients
                && *r.get_ref()
            {
                if d.get_ref().override_ {
                    // A kill switch must not inherit an earlier file's
                    // per-client exceptions.
                    clients.clear();
                } else {
                    ctx.error(r.span().start, "`replace_clients` needs `override = true` in the same table");
                }
            }
            apply_table(&mut ctx, &mut defaults, d, "[defaults]", true);
        }
        for (name, t) in &doc.client {
            let key = name.get_ref();
            let what = format!("[client.{key}]");
            let layer = clients.entry(key.clone()).or_default();
            if parse_addr(key).is_none() && !valid_client_name(key) {
                ctx.error(
                    name.span().start,
                    format!("client `{key}`: not a Qubes VM name (a letter, then letters, digits, '-', '_', '.'; at most 31) nor an address"),
                );
            }
            apply_table(&mut ctx, layer, t, &what, false);
        }
    }
    let policy = finish(defaults, clients, &mut errors);
    if errors.is_empty() { Ok(policy) } else { Err(Errors(errors)) }
}

fn entry(layer: &Layer) -> EntrySpec {
    EntrySpec {
        // dom0's default for every VM, and fail-closed for the unknown.
        policy: layer.policy.as_ref().map_or(Action::Drop, |s| s.value),
        rules: layer.rules.as_ref().map_or_else(Vec::new, |s| s.value.clone()),
    }
}

/// Applies defaults, checks identities and capacities.
fn finish(defaults: Layer, clients: BTreeMap<String, Layer>, errors: &mut Vec<Diagnostic>) -> Policy {
    let mut out = Policy {
        drop: defaults.drop.as_ref().map_or(DropMode::Reject, |s| s.value),
        inter_vm: defaults.inter_vm.as_ref().map_or(InterVm::Drop, |s| s.value),
        dns: defaults
            .dns
            .as_ref()
            .map_or_else(|| vec![Addr::V4([10, 139, 1, 1]), Addr::V4([10, 139, 1, 2])], |s| s.value.clone()),
        default: entry(&defaults),
        clients: Vec::new(),
    };
    let mut claimed: Vec<(Addr, Loc, String)> = Vec::new();
    for (key, layer) in &clients {
        let Some(at) = layer.opened.clone() else { continue };
        let mut name = Some(key.clone());
        let mut ipv4 = layer.ipv4.as_ref().map(|s| s.value);
        let mut ipv6 = layer.ipv6.as_ref().map(|s| s.value);
        match parse_addr(key) {
            Some(Addr::V4(a)) => {
                name = None;
                if ipv4.is_some_and(|b| b != a) {
                    errors.push(Diagnostic {
                        at: at.clone(),
                        message: format!("client `{key}`: `ip` differs from the table's name"),
                        other: None,
                    });
                }
                ipv4 = Some(a);
            }
            Some(Addr::V6(a)) => {
                name = None;
                if ipv6.is_some_and(|b| b != a) {
                    errors.push(Diagnostic {
                        at: at.clone(),
                        message: format!("client `{key}`: `ip6` differs from the table's name"),
                        other: None,
                    });
                }
                ipv6 = Some(a);
            }
            None => {}
        }
        for a in ipv4.map(Addr::V4).into_iter().chain(ipv6.map(Addr::V6)) {
            if let Some((_, other, who)) = claimed.iter().find(|(b, _, _)| *b == a) {
                errors.push(Diagnostic {
                    at: at.clone(),
                    message: format!("client `{key}`: address {} is also client `{who}`'s", lang::ShowAddr(a)),
                    other: Some(other.clone()),
                });
            }
            claimed.push((a, at.clone(), key.clone()));
        }
        out.clients.push(ClientSpec { name, ipv4, ipv6, entry: entry(layer), at });
    }
    if out.clients.len() > MAX_ENTRIES {
        errors.push(Diagnostic {
            at: out.clients[MAX_ENTRIES].at.clone(),
            message: format!("more than {MAX_ENTRIES} clients"),
            other: None,
        });
    }
    let all_rules = || out.default.rules.iter().chain(out.clients.iter().flat_map(|c| &c.entry.rules));
    if let Some(r) = all_rules().nth(MAX_RULES) {
        let total = all_rules().count();
        errors.push(Diagnostic {
            at: r.at.clone(),
            message: format!("{total} rules in all; at most {MAX_RULES}"),
            other: None,
        });
    }
    let mut names: Vec<&str> = Vec::new();
    for r in all_rules() {
        if let Ok(rule) = lang::parse(&r.text)
            && let Dst::Host(h) = rule.dst
            && !names.contains(&h)
        {
            names.push(h);
            if names.len() == MAX_NAMES + 1 {
                errors.push(Diagnostic {
                    at: r.at.clone(),
                    message: format!("more than {MAX_NAMES} distinct dsthost names"),
                    other: None,
                });
            }
        }
    }
    out
}

/// Loads and merges policy files from disk, in order.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Policy, Errors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let name = p.as_ref().display().to_string();
        match std::fs::read_to_string(p) {
            Ok(text) => sources.push(Source { name, text }),
            Err(e) => errors.push(Diagnostic {
                at: Loc { file: name, line: 1, col: 1 },
                message: format!("cannot read: {e}"),
                other: None,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    load_sources(&sources)
}

impl Policy {
    /// The control messages that install this policy as `version`.
    pub fn messages(&self, version: u32) -> Vec<RulesControl<'_>> {
        let mut m = vec![
            RulesControl::Begin { version, keep: false },
            RulesControl::Settings {
                drop: self.drop,
                inter_vm: self.inter_vm,
                dns: heapless::Vec::from_slice(&self.dns[..self.dns.len().min(MAX_DNS)]).unwrap_or_default(),
            },
            RulesControl::Default { policy: self.default.policy },
        ];
        m.extend(self.default.rules.iter().map(|r| RulesControl::Rule { text: &r.text }));
        for c in &self.clients {
            m.push(RulesControl::Client {
                ipv4: c.ipv4,
                ipv6: c.ipv6,
                name: c.name.as_deref(),
                policy: c.entry.policy,
            });
            m.extend(c.entry.rules.iter().map(|r| RulesControl::Rule { text: &r.text }));
        }
        m.push(RulesControl::Commit { version });
        m
    }

    /// The rules component's configuration for this policy, after installing
    /// it in a rules engine exactly as the component will (so anything the
    /// component would refuse is refused here).
    pub fn to_config(&self, version: u32) -> Result<RulesConfig, Errors> {
        let at = self.clients.first().map(|c| c.at.clone()).unwrap_or(Loc { file: "<policy>".into(), line: 1, col: 1 });
        let fail = |message: String| Errors(vec![Diagnostic { at: at.clone(), message, other: None }]);
        let mut config = RulesConfig::default();
        for m in self.messages(version) {
            config.push(&m).map_err(|_| {
                fail(format!(
                    "the policy is larger than the {} bytes a configuration blob holds; deliver it on the \
                     `policy` ring at run time (Policy::messages)",
                    moat_rules::CONFIG_BYTES
                ))
            })?;
        }
        let mut state = OwnedState::new();
        let mut engine = state.engine();
        let mut last = None;
        config.replay(
            |m| {
                last = Some(
                    engine.control(m).map_err(|e| fail(format!("the rules component refuses this policy: {e:?}")))?,
                );
                Ok(())
            },
            fail("internal: the configuration does not decode".into()),
        )?;
        match last {
            Some(Applied::Committed(v)) if v == version => Ok(config),
            other => Err(fail(format!("internal: policy not committed ({other:?})"))),
        }
    }
}

/// Validates policy files and compiles them into the rules component's
/// configuration (policy version 1). This is what `moat check` and the build
/// tool call for a system's `policy = [...]` list.
pub fn compile_files<P: AsRef<Path>>(paths: &[P]) -> Result<RulesConfig, Errors> {
    load_files(paths)?.to_config(1)
}
