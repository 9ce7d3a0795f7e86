//! `[pool.NAME]`: geometry, who maps it how, and its owner.

use toml::Spanned;

use moat_component::PortKind;
use moat_ring::pool::MAX_POOL_BUFFERS;

use super::Wiring;
use crate::check::{RUNTIME, unknown_help};
use crate::model::{self, Owner, Wire};
use crate::raw;
use crate::size::Size;

impl Wiring<'_> {
    pub(super) fn pool(&mut self, index: usize, key: &Spanned<String>, pool: &raw::Pool) {
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
}
