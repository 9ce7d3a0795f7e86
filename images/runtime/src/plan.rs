//! Laying out a system (host side): components, rings, pools, state and
//! devices in, a checked [`crate::layout`] manifest out.
//!
//! This is the step `moat build` performs after checking `system.toml`; the
//! PVH image's build script uses it for the self-test system, and the hosted
//! image and tests use it directly. Every region starts on a page boundary
//! and is a whole number of pages, so a later runtime can map each region
//! into exactly the components that name it.

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use moat_component::{PortDecl, PortKind as DeclKind};
use moat_ring::Message;

use crate::layout::{self, ComponentSpec, Header, PortKind, PortSpec, RegionKind, RegionSpec};

/// A mistake in the system description, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

fn err<T>(msg: String) -> Result<T, PlanError> {
    Err(PlanError(msg))
}

struct Comp {
    name: String,
    kind: String,
    priority: u8,
    budget: u32,
    config: Vec<u8>,
    channels: u8,
}

struct Reg {
    name: String,
    size: u64,
    kind: RegionKind,
}

struct Port {
    component: usize,
    name: String,
    kind: PortKind,
    message: String,
    region: Option<usize>,
    writable: bool,
    channel: Option<u8>,
}

/// A system being laid out.
pub struct Plan {
    system: String,
    components: Vec<Comp>,
    regions: Vec<Reg>,
    ports: Vec<Port>,
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(layout::PAGE) * layout::PAGE
}

impl Plan {
    /// An empty system called `system`.
    pub fn new(system: &str) -> Self {
        Plan { system: system.into(), components: Vec::new(), regions: Vec::new(), ports: Vec::new() }
    }

    /// Adds component instance `name` running code `kind` with a postcard
    /// configuration blob.
    pub fn component(&mut self, name: &str, kind: &str, priority: u8, budget: u32, config: Vec<u8>) -> &mut Self {
        self.components.push(Comp { name: name.into(), kind: kind.into(), priority, budget, config, channels: 0 });
        self
    }

    fn endpoint(&self, at: &str) -> Result<(usize, String), PlanError> {
        let Some((c, p)) = at.split_once('.') else { return err(format!("`{at}` is not component.port")) };
        match self.components.iter().position(|x| x.name == c) {
            Some(i) => Ok((i, p.to_string())),
            None => err(format!("`{at}`: no component `{c}`")),
        }
    }

    fn channel(&mut self, component: usize) -> Result<u8, PlanError> {
        let c = &mut self.components[component];
        if c.channels >= moat_component::Channel::MAX {
            return err(format!("component `{}` has more than 64 channels", c.name));
        }
        c.channels += 1;
        Ok(c.channels - 1)
    }

    fn unwired(&self, component: usize, name: &str) -> Result<(), PlanError> {
        if self.ports.iter().any(|p| p.component == component && p.name == name) {
            return err(format!("port `{}.{name}` wired twice", self.components[component].name));
        }
        Ok(())
    }

    fn add_port(
        &mut self,
        component: usize,
        name: String,
        kind: PortKind,
        message: &str,
        region: Option<usize>,
        writable: bool,
    ) -> Result<(), PlanError> {
        self.unwired(component, &name)?;
        let channel = match kind {
            PortKind::Rx | PortKind::Tx | PortKind::Device => Some(self.channel(component)?),
            _ => None,
        };
        self.ports.push(Port { component, name, kind, message: message.into(), region, writable, channel });
        Ok(())
    }

    /// A ring from producer port `from` to consumer port `to` (both
    /// `component.port`) of `capacity` messages of `slot_size` bytes.
    pub fn ring(
        &mut self,
        from: &str,
        to: &str,
        message: &str,
        slot_size: usize,
        capacity: u32,
    ) -> Result<&mut Self, PlanError> {
        let (pc, pp) = self.endpoint(from)?;
        let (cc, cp) = self.endpoint(to)?;
        if !capacity.is_power_of_two() {
            return err(format!("ring {from} -> {to}: capacity {capacity} is not a power of two"));
        }
        self.unwired(pc, &pp)?;
        self.unwired(cc, &cp)?;
        let size = moat_ring::spsc::HEADER_SIZE as u64 + u64::from(capacity) * slot_size as u64;
        let region = self.regions.len();
        self.regions.push(Reg {
            name: format!("{from}->{to}"),
            size: round_up(size),
            kind: RegionKind::Ring { capacity, slot_size: slot_size as u32 },
        });
        self.add_port(pc, pp, PortKind::Tx, message, Some(region), true)?;
        self.add_port(cc, cp, PortKind::Rx, message, Some(region), true)?;
        Ok(self)
    }

    /// A ring of typed messages.
    pub fn ring_of<T: Message>(&mut self, from: &str, to: &str, capacity: u32) -> Result<&mut Self, PlanError> {
        self.ring(from, to, T::NAME, core::mem::size_of::<T>(), capacity)
    }

    /// A control byte ring carrying `message`.
    pub fn byte_ring(&mut self, from: &str, to: &str, message: &str, capacity: u32) -> Result<&mut Self, PlanError> {
        self.ring(from, to, message, 1, capacity)
    }

    /// A pool of `count` buffers of `buf_size` bytes with id `id`, mapped at
    /// each `component.port` given, writable where the flag says.
    pub fn pool(
        &mut self,
        name: &str,
        id: u16,
        buf_size: u32,
        count: u32,
        maps: &[(&str, bool)],
    ) -> Result<&mut Self, PlanError> {
        let geo = moat_ring::PoolGeometry::new(id, buf_size, count)
            .map_err(|e| PlanError(format!("pool `{name}`: {e:?}")))?;
        for (at, _) in maps {
            let (c, p) = self.endpoint(at)?;
            self.unwired(c, &p)?;
        }
        let region = self.regions.len();
        self.regions.push(Reg {
            name: name.into(),
            size: round_up(geo.region_size() as u64),
            kind: RegionKind::Pool { id, buf_size, count },
        });
        for (at, writable) in maps {
            let (c, p) = self.endpoint(at)?;
            self.add_port(c, p, PortKind::Pool, "", Some(region), *writable)?;
        }
        Ok(self)
    }

    /// `bytes` of private state for state port `at`.
    pub fn state(&mut self, at: &str, bytes: usize) -> Result<&mut Self, PlanError> {
        let (c, p) = self.endpoint(at)?;
        self.unwired(c, &p)?;
        let region = self.regions.len();
        self.regions.push(Reg { name: at.into(), size: round_up(bytes.max(1) as u64), kind: RegionKind::State });
        self.add_port(c, p, PortKind::State, "", Some(region), true)?;
        Ok(self)
    }

    /// Device `device` (supplied by the platform) at port `at`.
    pub fn device(&mut self, at: &str, device: &str) -> Result<&mut Self, PlanError> {
        let (c, p) = self.endpoint(at)?;
        self.add_port(c, p, PortKind::Device, device, None, true)?;
        Ok(self)
    }

    /// Checks that `component` has every port `decl` declares, of the same
    /// kind and message, and no others.
    pub fn expect_ports(&self, component: &str, decl: &[PortDecl]) -> Result<(), PlanError> {
        let Some(ci) = self.components.iter().position(|c| c.name == component) else {
            return err(format!("no component `{component}`"));
        };
        for d in decl {
            let Some(p) = self.ports.iter().find(|p| p.component == ci && p.name == d.name) else {
                if d.kind == DeclKind::State {
                    continue; // state ports may be laid out lazily by the binder's caller
                }
                return err(format!("{component}.{} is declared but not wired", d.name));
            };
            let kind: DeclKind = p.kind.into();
            if kind != d.kind
                || (matches!(d.kind, DeclKind::Rx | DeclKind::Tx | DeclKind::Device) && p.message != d.message)
            {
                return err(format!(
                    "{component}.{}: wired as {:?} `{}`, declared {:?} `{}`",
                    d.name, kind, p.message, d.kind, d.message
                ));
            }
            if d.kind == DeclKind::Pool && p.writable && !d.writable {
                return err(format!("{component}.{}: mapped writable but declared read-only", d.name));
            }
        }
        for p in self.ports.iter().filter(|p| p.component == ci) {
            if !decl.iter().any(|d| d.name == p.name) {
                return err(format!("{component}.{} is wired but not declared", p.name));
            }
        }
        Ok(())
    }

    /// Lays the regions out back to back from offset 0 and encodes the
    /// manifest, checking it with [`layout::Manifest::parse`] on the way out.
    pub fn encode(&self) -> Result<Vec<u8>, PlanError> {
        let mut offset = 0u64;
        let mut regions = Vec::new();
        for r in &self.regions {
            regions.push(RegionSpec { name: &r.name, offset, size: r.size, kind: r.kind });
            offset += r.size;
        }
        let components: Vec<_> = self
            .components
            .iter()
            .map(|c| ComponentSpec {
                name: &c.name,
                kind: &c.kind,
                priority: c.priority,
                budget: c.budget,
                config: &c.config,
            })
            .collect();
        let ports: Vec<_> = self
            .ports
            .iter()
            .map(|p| PortSpec {
                component: p.component as u16,
                name: &p.name,
                kind: p.kind,
                message: &p.message,
                region: p.region.map_or(layout::NO_REGION, |r| r as u16),
                writable: p.writable,
                channel: p.channel.unwrap_or(layout::NO_CHANNEL),
            })
            .collect();
        let header = Header {
            magic: layout::MAGIC,
            version: layout::VERSION,
            system: &self.system,
            arena_bytes: offset,
            components: 0,
            regions: 0,
            ports: 0,
        };
        let mut out = std::vec![0u8; 4096 + 256 * (components.len() + regions.len() + ports.len()) + self.components.iter().map(|c| c.config.len()).sum::<usize>()];
        let n = layout::encode(&header, &components, &regions, &ports, &mut out)
            .map_err(|e| PlanError(format!("encoding: {e:?}")))?;
        out.truncate(n);
        layout::Manifest::parse(&out).map_err(|e| PlanError(format!("laid-out manifest is invalid: {e:?}")))?;
        Ok(out)
    }
}
