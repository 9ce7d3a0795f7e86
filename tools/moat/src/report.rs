//! The report `moat build` prints and `moat inspect` prints again: made from
//! the image file alone (its ELF and embedded manifests), so the two agree.

use std::fmt::Write as _;

use moat_runtime::instance::COMPONENT_RESERVE;
use moat_runtime::layout::{ConfigEnvelope, Manifest, PortKind, RUNTIME, RegionKind};
use moat_system::Size;

use crate::image::{Image, sha256};

/// Pages the Xen platform layer takes at boot (shared info, 4 grant table
/// frames, a console page and a spare), counted in the RAM total.
pub const XEN_PAGES: u64 = 7 * 4096;

fn pages(n: u64) -> u64 {
    n.div_ceil(4096) * 4096
}

/// RAM one mode of the image needs: the loaded image (with `.bss`), the
/// system's arena, the components' reserved pages and the Xen pages.
pub fn ram(img: &Image<'_>, m: &Manifest<'_>) -> u64 {
    let loaded: u64 = img.segments.iter().map(|s| pages(s.mem)).sum();
    loaded + pages(m.arena_bytes()) + COMPONENT_RESERVE + XEN_PAGES
}

/// The report for the image at `path`.
pub fn report(path: &str, img: &Image<'_>) -> Result<String, String> {
    let mut o = String::new();
    let selftest =
        Manifest::parse(img.selftest).map_err(|e| format!(".moat.selftest is not a valid manifest: {e:?}"))?;
    let system = if img.manifest.is_empty() {
        None
    } else {
        Some(Manifest::parse(img.manifest).map_err(|e| format!(".moat.manifest is not a valid manifest: {e:?}"))?)
    };
    let _ = writeln!(o, "image {path}");
    let _ = writeln!(o, "  sha256 {}", sha256(img.bytes));
    let _ = writeln!(
        o,
        "  {} bytes, PVH entry {:#x} (XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment)",
        img.bytes.len(),
        img.entry
    );
    for s in &img.segments {
        let _ = writeln!(o, "  segment {} at {:#x}: {} in memory, {} in the file", s.perms(), s.addr, s.mem, s.file);
    }

    let _ = writeln!(o, "\ncode by component kind (symbol bytes; inlined code counts where it landed)");
    for a in &img.code {
        let _ = writeln!(o, "  {:24} code {:>8}  statics {:>8}", a.kind, a.code, a.statics);
    }

    match &system {
        Some(m) => system_report(&mut o, img, m, "system"),
        None => {
            let _ = writeln!(o, "\nno system embedded: the image runs its self-test everywhere");
        }
    }
    let names: Vec<&str> = selftest.components().map(|c| c.name).collect();
    let _ = writeln!(
        o,
        "\nself-test system: {} ({}), arena {}, RAM needed {}",
        names.join(", "),
        selftest.component_count(),
        Size(selftest.arena_bytes()),
        Size(ram(img, &selftest))
    );
    Ok(o)
}

fn system_report(o: &mut String, img: &Image<'_>, m: &Manifest<'_>, title: &str) {
    let h = m.header();
    let _ = writeln!(o, "\n{title} `{}`", h.system);
    let policy = if h.policy_hash == [0; 32] {
        "none".to_string()
    } else {
        h.policy_hash.iter().map(|b| format!("{b:02x}")).collect()
    };
    let _ = writeln!(o, "  policy sha256 {policy}");
    if !h.planned.is_empty() {
        let _ = writeln!(o, "  not in this image (planned): {}", h.planned.split(' ').collect::<Vec<_>>().join(", "));
    }

    let _ = writeln!(o, "\ncomponents");
    for (i, c) in m.components().enumerate() {
        let state: u64 = m
            .ports()
            .filter(|(_, p)| p.component as usize == i && p.kind == PortKind::State)
            .map(|(_, p)| m.region(p.region as usize).size)
            .sum();
        let code = img.code.iter().find(|a| a.kind == c.kind).map_or(0, |a| a.code);
        let layout =
            ConfigEnvelope::peek(c.config).map_or("no envelope".to_string(), |e| format!("layout {:016x}", e.layout));
        let _ = writeln!(
            o,
            "  {} ({}): priority {}, budget {}, code {} B, state {}, stack {}, config {} B ({layout})",
            c.name,
            c.kind,
            c.priority,
            c.budget,
            code,
            Size(state),
            Size(u64::from(c.stack)),
            c.config.len()
        );
    }

    let _ = writeln!(o, "\nregions (arena {}, each page-aligned)", Size(m.arena_bytes()));
    for (r, reg) in m.regions().enumerate() {
        let kind = match reg.kind {
            RegionKind::Ring { capacity, slot_size } => format!("ring {capacity} x {slot_size} B"),
            RegionKind::Pool { id, buf_size, count } => format!("pool {id}: {count} x {buf_size} B"),
            RegionKind::State { bytes } => format!("state {bytes} B"),
        };
        let users: Vec<String> = m
            .ports()
            .filter(|(_, p)| p.region as usize == r)
            .map(|(_, p)| {
                let who = if p.component == RUNTIME {
                    "runtime (unserved)".to_string()
                } else {
                    m.component(p.component as usize).name.to_string()
                };
                let how = match p.kind {
                    PortKind::Pool if !p.writable => "r",
                    PortKind::Rx => "rw consumer",
                    PortKind::Tx => "rw producer",
                    _ => "rw",
                };
                format!("{who} {how}")
            })
            .collect();
        let _ = writeln!(
            o,
            "  {:#09x} {:>9}  {:30} {kind}; {}",
            reg.offset,
            Size(reg.size).to_string(),
            reg.name,
            users.join(", ")
        );
    }

    let _ = writeln!(o, "\nrings (producer -> consumer)");
    for (r, reg) in m.regions().enumerate() {
        let RegionKind::Ring { capacity, slot_size } = reg.kind else { continue };
        let end = |kind| {
            m.ports().find(|(_, p)| p.region as usize == r && p.kind == kind).map(|(_, p)| {
                if p.component == RUNTIME {
                    format!("runtime.{}", p.name)
                } else {
                    format!("{}.{}", m.component(p.component as usize).name, p.name)
                }
            })
        };
        let (from, to) = (end(PortKind::Tx).unwrap_or_default(), end(PortKind::Rx).unwrap_or_default());
        let message = m.ports().find(|(_, p)| p.region as usize == r).map_or("", |(_, p)| p.message);
        let cap = if slot_size == 1 { format!("{capacity} bytes") } else { format!("x {capacity}") };
        let unserved = if from.starts_with("runtime.") || to.starts_with("runtime.") { "  [unserved end]" } else { "" };
        let _ = writeln!(o, "  {from} -> {to}  {message} {cap}{unserved}");
    }

    let _ = writeln!(o, "\ncapabilities");
    for c in m.components() {
        let caps = &c.caps;
        let mut v = Vec::new();
        if caps.grant_copy {
            v.push("grant_copy".to_string());
        }
        if caps.grant_access {
            v.push("grant_access".to_string());
        }
        if caps.event_channels > 0 {
            v.push(format!("event_channels {}", caps.event_channels));
        }
        if !caps.xenstore_read.is_empty() {
            v.push(format!("xenstore read {}", caps.xenstore_read));
        }
        if !caps.xenstore_write.is_empty() {
            v.push(format!("xenstore write {}", caps.xenstore_write));
        }
        let _ = writeln!(o, "  {}: {}", c.name, if v.is_empty() { "none".into() } else { v.join("; ") });
    }
    let devices: Vec<String> = m
        .ports()
        .filter(|(_, p)| p.kind == PortKind::Device)
        .map(|(_, p)| format!("{}.{} ({})", m.component(p.component as usize).name, p.name, p.message))
        .collect();
    if !devices.is_empty() {
        let _ = writeln!(o, "  devices: {}", devices.join(", "));
    }

    let loaded: u64 = img.segments.iter().map(|s| pages(s.mem)).sum();
    let _ = writeln!(o, "\nRAM the {title} needs");
    let _ = writeln!(
        o,
        "  image {} + arena {} + component pages {} + Xen pages {} = {}",
        Size(loaded),
        Size(pages(m.arena_bytes())),
        Size(COMPONENT_RESERVE),
        Size(XEN_PAGES),
        Size(ram(img, m))
    );
}
