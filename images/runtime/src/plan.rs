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

use moat_component::{Component, PortDecl, PortKind as DeclKind};
use moat_ring::Message;

use crate::layout::{self, Caps, ComponentSpec, ConfigEnvelope, Header, PortKind, PortSpec, RegionKind, RegionSpec};

/// Wraps a postcard `payload` in the envelope the runtime checks, for code
/// whose [`layout::layout_hash`] is `layout`.
pub fn config_blob(layout: u64, payload: &[u8]) -> Vec<u8> {
    let env = ConfigEnvelope { magic: layout::CONFIG_MAGIC, version: layout::CONFIG_VERSION, layout, payload };
    // Encoding plain data into a Vec cannot fail.
    postcard::to_allocvec(&env).unwrap_or_else(|_| unreachable!("envelope encodes"))
}

/// The configuration blob of component type `C` for `config`.
pub fn config_of<C: Component>(config: &C::Config) -> Vec<u8>
where
    C::Config: serde::Serialize,
{
    let payload = postcard::to_allocvec(config).unwrap_or_else(|_| unreachable!("config encodes"));
    config_blob(layout::layout_hash_of::<C>(), &payload)
}

/// Owned [`Caps`] (the manifest borrows its strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapList {
    /// May copy to and from other domains' grants.
    pub grant_copy: bool,
    /// May grant its own pages.
    pub grant_access: bool,
    /// Most event channels.
    pub event_channels: u16,
    /// XenStore prefixes it may read.
    pub xenstore_read: Vec<String>,
    /// XenStore prefixes it may write.
    pub xenstore_write: Vec<String>,
}

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
    stack: u32,
    read: String,
    write: String,
    caps: CapList,
    decl: Option<&'static [PortDecl]>,
}

struct Reg {
    name: String,
    size: u64,
    kind: RegionKind,
}

struct Port {
    /// Index into `components`, or `None` for a runtime end.
    component: Option<usize>,
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
    policy_hash: [u8; 32],
    planned: String,
    rust_paths: Vec<(String, String)>,
}

/// One end of a ring as the plan sees it.
enum End {
    Port(usize, String),
    Runtime(String),
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(layout::PAGE) * layout::PAGE
}

impl Plan {
    /// An empty system called `system`.
    pub fn new(system: &str) -> Self {
        Plan {
            system: system.into(),
            components: Vec::new(),
            regions: Vec::new(),
            ports: Vec::new(),
            policy_hash: [0; 32],
            planned: String::new(),
            rust_paths: Vec::new(),
        }
    }

    /// Adds component instance `name` running code `kind` with configuration
    /// blob `config` (see [`config_blob`]).
    pub fn component(&mut self, name: &str, kind: &str, priority: u8, budget: u32, config: Vec<u8>) -> &mut Self {
        self.components.push(Comp {
            name: name.into(),
            kind: kind.into(),
            priority,
            budget,
            config,
            channels: 0,
            stack: 16384,
            read: String::new(),
            write: String::new(),
            caps: CapList::default(),
            decl: None,
        });
        self
    }

    /// Adds an instance of component type `C` with `config`, remembering its
    /// declared ports (for [`runtime_ends`](Self::runtime_ends) and
    /// [`expect_ports`](Self::expect_ports)) and its Rust path (for the
    /// image's table of kinds), and laying out the state regions its
    /// `state_bytes` asks for under `config`.
    pub fn component_of<C: Component>(
        &mut self,
        name: &str,
        priority: u8,
        budget: u32,
        config: &C::Config,
    ) -> Result<&mut Self, PlanError>
    where
        C::Config: serde::Serialize,
    {
        self.component(name, C::NAME, priority, budget, config_of::<C>(config));
        self.declare(name, <C::Ports as moat_component::Ports>::DECL);
        self.rust_path(C::NAME, core::any::type_name::<C>());
        let mut state = Vec::new();
        C::state_bytes(config, &mut |port, bytes| state.push((port, bytes)));
        for (port, bytes) in state {
            self.state(&format!("{name}.{port}"), bytes)?;
        }
        Ok(self)
    }

    /// Records the ports component `name` declares.
    pub fn declare(&mut self, name: &str, decl: &'static [PortDecl]) -> &mut Self {
        if let Some(c) = self.components.iter_mut().find(|c| c.name == name) {
            c.decl = Some(decl);
        }
        self
    }

    /// The ports component `name` declares (empty if not recorded).
    pub fn declared(&self, name: &str) -> &'static [PortDecl] {
        self.components.iter().find(|c| c.name == name).and_then(|c| c.decl).unwrap_or(&[])
    }

    /// Records that code `kind` is the Rust type at `path` (`moat_csum::Csum`).
    pub fn rust_path(&mut self, kind: &str, path: &str) -> &mut Self {
        if !self.rust_paths.iter().any(|(k, _)| k == kind) {
            self.rust_paths.push((kind.into(), path.into()));
        }
        self
    }

    /// Every kind with its Rust path, sorted by kind.
    pub fn rust_paths(&self) -> Vec<(String, String)> {
        let mut v = self.rust_paths.clone();
        v.sort();
        v
    }

    /// Sets component `name`'s stack size and capabilities.
    pub fn set_component(&mut self, name: &str, stack: u32, caps: CapList) -> Result<&mut Self, PlanError> {
        let Some(c) = self.components.iter_mut().find(|c| c.name == name) else {
            return err(format!("no component `{name}`"));
        };
        c.stack = stack;
        c.read = caps.xenstore_read.join(" ");
        c.write = caps.xenstore_write.join(" ");
        c.caps = caps;
        Ok(self)
    }

    /// Sets the policy hash the header carries.
    pub fn policy_hash(&mut self, hash: [u8; 32]) -> &mut Self {
        self.policy_hash = hash;
        self
    }

    /// Records the planned components (not in the image).
    pub fn planned(&mut self, names: &[&str]) -> &mut Self {
        self.planned = names.join(" ");
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

    fn end(&self, at: &str) -> Result<End, PlanError> {
        match at.strip_prefix("runtime.") {
            Some(label) if !label.is_empty() => {
                if self.ports.iter().any(|p| p.component.is_none() && p.name == label) {
                    return err(format!("runtime end `{at}` used twice"));
                }
                Ok(End::Runtime(label.into()))
            }
            _ => self.endpoint(at).map(|(c, p)| End::Port(c, p)),
        }
    }

    fn unwired(&self, component: usize, name: &str) -> Result<(), PlanError> {
        if self.ports.iter().any(|p| p.component == Some(component) && p.name == name) {
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
        self.ports.push(Port {
            component: Some(component),
            name,
            kind,
            message: message.into(),
            region,
            writable,
            channel,
        });
        Ok(())
    }

    /// A ring from producer port `from` to consumer port `to` (each
    /// `component.port`, or `runtime.LABEL` for an end the runtime plays) of
    /// `capacity` messages of `slot_size` bytes.
    pub fn ring(
        &mut self,
        from: &str,
        to: &str,
        message: &str,
        slot_size: usize,
        capacity: u32,
    ) -> Result<&mut Self, PlanError> {
        let producer = self.end(from)?;
        let consumer = self.end(to)?;
        if !capacity.is_power_of_two() {
            return err(format!("ring {from} -> {to}: capacity {capacity} is not a power of two"));
        }
        if let (End::Runtime(_), End::Runtime(_)) = (&producer, &consumer) {
            return err(format!("ring {from} -> {to}: the runtime cannot play both ends"));
        }
        for e in [&producer, &consumer] {
            if let End::Port(c, p) = e {
                self.unwired(*c, p)?;
            }
        }
        let size = moat_ring::spsc::HEADER_SIZE as u64 + u64::from(capacity) * slot_size as u64;
        let region = self.regions.len();
        self.regions.push(Reg {
            name: format!("{from}->{to}"),
            size: round_up(size),
            kind: RegionKind::Ring { capacity, slot_size: slot_size as u32 },
        });
        for (e, kind) in [(producer, PortKind::Tx), (consumer, PortKind::Rx)] {
            match e {
                End::Port(c, p) => self.add_port(c, p, kind, message, Some(region), true)?,
                End::Runtime(label) => self.ports.push(Port {
                    component: None,
                    name: label,
                    kind,
                    message: message.into(),
                    region: Some(region),
                    writable: true,
                    channel: None,
                }),
            }
        }
        Ok(self)
    }

    /// Gives every ring port a component declared (see
    /// [`declare`](Self::declare)) but that is not wired yet a ring to a
    /// runtime end labelled `component.port`, of `capacity` slots for
    /// packet messages or a 64-byte control ring. `plain` says the slot size
    /// of a plain message type (`None` for control messages). Returns the
    /// labels, so reports can say which ends nobody serves.
    pub fn runtime_ends(
        &mut self,
        capacity: u32,
        plain: impl Fn(&str) -> Option<usize>,
    ) -> Result<Vec<String>, PlanError> {
        let mut todo = Vec::new();
        for (ci, c) in self.components.iter().enumerate() {
            for d in c.decl.unwrap_or(&[]) {
                let wired = self.ports.iter().any(|p| p.component == Some(ci) && p.name == d.name);
                if !wired && matches!(d.kind, DeclKind::Rx | DeclKind::Tx) {
                    todo.push((format!("{}.{}", c.name, d.name), d.kind, d.message));
                }
            }
        }
        let mut labels = Vec::new();
        for (at, kind, message) in todo {
            let label = format!("runtime.{at}");
            let (from, to) =
                if kind == DeclKind::Tx { (at.as_str(), label.as_str()) } else { (label.as_str(), at.as_str()) };
            match plain(message) {
                Some(size) => self.ring(from, to, message, size, capacity)?,
                None => self.byte_ring(from, to, message, 64)?,
            };
            labels.push(at);
        }
        Ok(labels)
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
        let kind = RegionKind::State { bytes: bytes as u64 };
        self.regions.push(Reg { name: at.into(), size: round_up(bytes.max(1) as u64), kind });
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
            let Some(p) = self.ports.iter().find(|p| p.component == Some(ci) && p.name == d.name) else {
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
        for p in self.ports.iter().filter(|p| p.component == Some(ci)) {
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
                stack: c.stack,
                caps: Caps {
                    grant_copy: c.caps.grant_copy,
                    grant_access: c.caps.grant_access,
                    event_channels: c.caps.event_channels,
                    xenstore_read: &c.read,
                    xenstore_write: &c.write,
                },
                config: &c.config,
            })
            .collect();
        let ports: Vec<_> = self
            .ports
            .iter()
            .map(|p| PortSpec {
                component: p.component.map_or(layout::RUNTIME, |c| c as u16),
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
            policy_hash: self.policy_hash,
            planned: &self.planned,
            components: 0,
            regions: 0,
            ports: 0,
        };
        let strings: usize = self.components.iter().map(|c| c.config.len() + c.read.len() + c.write.len()).sum();
        let mut out = std::vec![0u8; 4096 + self.planned.len() + 256 * (components.len() + regions.len() + ports.len()) + strings];
        let n = layout::encode(&header, &components, &regions, &ports, &mut out)
            .map_err(|e| PlanError(format!("encoding: {e:?}")))?;
        out.truncate(n);
        layout::Manifest::parse(&out).map_err(|e| PlanError(format!("laid-out manifest is invalid: {e:?}")))?;
        Ok(out)
    }
}
