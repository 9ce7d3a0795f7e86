//! `moat check [SYSTEM_TOML]`: validate and summarise.
//!
//! Errors go to stderr as `file:line:column: error: …` with a `help:` line,
//! and the exit status is 1. A valid file prints its graph to stdout:
//! components and their ports, pools and who maps them how, rings producer
//! to consumer, capabilities, policy files and the memory the graph needs.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use moat_system::Size;
use moat_system::model::{Caps, Component, Owner, Port, PortKind, System, Wire};

/// Arguments of `moat check`.
#[derive(clap::Args)]
pub struct Args {
    /// The system description to check.
    #[arg(value_name = "SYSTEM_TOML", default_value = "system.toml")]
    system: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    match moat_system::load(&args.system) {
        Ok(system) => {
            print!("{}", summary(&system, &args.system.display().to_string()));
            ExitCode::SUCCESS
        }
        Err(report) => {
            eprint!("{report}");
            let n = report.errors.len();
            eprintln!("moat check: {n} error{} in {}", if n == 1 { "" } else { "s" }, report.file);
            ExitCode::FAILURE
        }
    }
}

/// The human-readable graph.
pub fn summary(s: &System, file: &str) -> String {
    let mut o = String::new();
    let planned: Vec<&str> = s.components.iter().filter(|c| c.planned()).map(|c| c.name.as_str()).collect();
    let _ = writeln!(
        o,
        "{file}: ok: system `{}`, {}, {}, {}",
        s.name,
        count(s.components.len(), "component"),
        count(s.pools.len(), "pool"),
        count(s.rings.len(), "ring")
    );

    let _ = writeln!(o, "\ncomponents");
    let name_w = s.components.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &s.components {
        component(&mut o, s, c, name_w);
    }

    let _ = writeln!(o, "\npools");
    for p in &s.pools {
        let owner = match p.owner {
            Owner::Component(c) => s.components[c].name.as_str(),
            Owner::Runtime => "runtime",
        };
        let _ = writeln!(
            o,
            "  {}  id {}, {} x {} = {}, owner {owner}",
            p.name,
            p.id,
            p.count,
            Size(u64::from(p.buffer_size)),
            Size(p.bytes())
        );
        let maps: Vec<String> = p
            .maps
            .iter()
            .map(|&(c, port, w)| {
                let comp = &s.components[c];
                let port = &comp.ports[port].name;
                let name = if *port == p.name { comp.name.clone() } else { format!("{}.{port}", comp.name) };
                format!("{name} {}", if w { "rw" } else { "r" })
            })
            .collect();
        let _ = writeln!(o, "    mapped by: {}", maps.join(", "));
    }

    for (title, control) in [("packet rings", false), ("control rings", true)] {
        let rings: Vec<_> = s.rings.iter().filter(|r| r.is_control() == control).collect();
        if rings.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n{title} (producer -> consumer)");
        let ends: Vec<(String, String)> = rings.iter().map(|r| (s.end_name(&r.from), s.end_name(&r.to))).collect();
        let wf = ends.iter().map(|e| e.0.len()).max().unwrap_or(0);
        let wt = ends.iter().map(|e| e.1.len()).max().unwrap_or(0);
        for (r, (from, to)) in rings.iter().zip(&ends) {
            let cap = if control { format!("{} bytes", r.capacity) } else { format!("x {}", r.capacity) };
            let _ = writeln!(o, "  {from:wf$} -> {to:wt$}  {} {cap} ({})", r.message, Size(r.bytes()));
        }
    }

    let _ = writeln!(o, "\npolicy");
    if s.policy.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for p in &s.policy {
        let _ = writeln!(o, "  {}", p.display());
    }

    let m = s.memory_use();
    let _ = writeln!(o, "\nmemory (each region rounded up to 4 KiB pages)");
    let _ = writeln!(
        o,
        "  rings {}, pools {}, state {}, stacks {}: {} of {}",
        Size(m.rings),
        Size(m.pools),
        Size(m.state),
        Size(m.stacks),
        Size(m.total()),
        Size(s.memory)
    );
    if !planned.is_empty() {
        let _ = writeln!(
            o,
            "\nplanned (crates not written yet; ports from system.toml, config and state not checked): {}",
            planned.join(", ")
        );
    }
    o
}

fn component(o: &mut String, s: &System, c: &Component, name_w: usize) {
    let tag = if c.planned() { "  [planned]" } else { "" };
    let _ = writeln!(
        o,
        "  {:name_w$}  {}{tag}  priority {}, budget {}, stack {}",
        c.name,
        c.crate_path,
        c.priority,
        c.budget,
        Size(c.stack)
    );
    let port_w = c.ports.iter().map(|p| p.name.len()).max().unwrap_or(0);
    fn what(p: &Port) -> (&'static str, &str) {
        match p.kind {
            PortKind::Rx => ("rx", p.message.as_str()),
            PortKind::Tx => ("tx", p.message.as_str()),
            PortKind::Pool => ("pool", if p.writable { "rw" } else { "r" }),
            PortKind::State => ("state", ""),
            PortKind::Device => ("device", p.message.as_str()),
        }
    }
    let what_w = c.ports.iter().map(|p| what(p).1.len()).max().unwrap_or(0);
    for p in &c.ports {
        let (kind, what) = what(p);
        let peer = match p.wire {
            Wire::Ring(r) => {
                let r = &s.rings[r];
                if p.kind == PortKind::Rx {
                    format!("<- {}", s.end_name(&r.from))
                } else {
                    format!("-> {}", s.end_name(&r.to))
                }
            }
            Wire::Pool(i) => format!("maps {}", s.pools[i].name),
            Wire::State(n) => Size(n).to_string(),
            Wire::Device => "attached by the runtime".into(),
        };
        let _ = writeln!(o, "    {:port_w$}  {kind:6} {what:what_w$}  {peer}", p.name);
    }
    let config = inline_table(&c.config_toml);
    match &c.config_blob {
        Some(blob) => {
            let n = blob.len();
            let _ = writeln!(o, "    config {config} ({n} byte{} of postcard)", if n == 1 { "" } else { "s" });
        }
        None if !c.config_toml.is_empty() => {
            let _ = writeln!(o, "    config {config} (not checked)");
        }
        None => {}
    }
    if !c.caps.is_empty() {
        let _ = writeln!(o, "    caps   {}", caps(&c.caps));
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn inline_table(t: &toml::Table) -> String {
    if t.is_empty() {
        return "{}".into();
    }
    let fields: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", fields.join(", "))
}

fn caps(c: &Caps) -> String {
    let mut v = Vec::new();
    if c.grant_copy {
        v.push("grant_copy".to_string());
    }
    if c.grant_access {
        v.push("grant_access".to_string());
    }
    if c.event_channels > 0 {
        v.push(format!("event_channels {}", c.event_channels));
    }
    if !c.xenstore_read.is_empty() {
        v.push(format!("xenstore read {}", c.xenstore_read.join(" ")));
    }
    if !c.xenstore_write.is_empty() {
        v.push(format!("xenstore write {}", c.xenstore_write.join(" ")));
    }
    v.join("; ")
}
