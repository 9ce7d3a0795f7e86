//! The checked graph: what `moat check` proved about a `system.toml`, in the
//! form `moat build` and the hosted runtime consume.
//!
//! Indices (`usize`) refer into [`System::components`], [`System::pools`]
//! and [`System::rings`]; every cross-reference has been resolved, so users
//! never look names up again.

use std::path::PathBuf;

pub use moat_component::PortKind;

use crate::registry::Entry;

/// A validated system.
#[derive(Debug)]
pub struct System {
    /// `[system] name`.
    pub name: String,
    /// Memory the VM is given, in bytes.
    pub memory: u64,
    /// Policy files, resolved against the directory of `system.toml`.
    pub policy: Vec<PathBuf>,
    /// Components, in file order.
    pub components: Vec<Component>,
    /// Pools, in file order; `pools[i].id` is `i + 1`.
    pub pools: Vec<Pool>,
    /// Rings, in file order.
    pub rings: Vec<Ring>,
}

/// One component instance.
#[derive(Debug)]
pub struct Component {
    /// Instance name (`[component.NAME]`).
    pub name: String,
    /// `crate` path, relative to the workspace root.
    pub crate_path: String,
    /// The registry entry; `None` for a planned component.
    pub entry: Option<&'static Entry>,
    /// Scheduling priority (higher runs first).
    pub priority: u8,
    /// Most items taken from each input per call (`Context::budget`).
    pub budget: u32,
    /// Stack size in bytes.
    pub stack: u64,
    /// Ports in declaration order, each with what it is wired to.
    pub ports: Vec<Port>,
    /// The `config` table as written.
    pub config_toml: toml::Table,
    /// The postcard encoding of the component's `Config` (`None` when
    /// planned: nothing to encode it with yet).
    pub config_blob: Option<Vec<u8>>,
    /// Capabilities.
    pub caps: Caps,
}

impl Component {
    /// True if the component's crate does not exist yet.
    pub fn planned(&self) -> bool {
        self.entry.is_none()
    }

    /// The port named `name`.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Bytes of private state over all state ports.
    pub fn state_bytes(&self) -> u64 {
        self.ports.iter().map(|p| if let Wire::State(n) = p.wire { n } else { 0 }).sum()
    }
}

/// One port and its wiring.
#[derive(Debug)]
pub struct Port {
    /// Name, unique within the component.
    pub name: String,
    /// Kind.
    pub kind: PortKind,
    /// Message type (rings) or device type (devices); empty otherwise.
    pub message: String,
    /// For pools: whether the component writes the buffers.
    pub writable: bool,
    /// Notification channel (ring and device ports, numbered in declaration
    /// order from 0).
    pub channel: Option<u8>,
    /// What it is wired to.
    pub wire: Wire,
}

/// What a port is wired to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Ring `rings[i]`.
    Ring(usize),
    /// Pool `pools[i]`.
    Pool(usize),
    /// A private state region of this many bytes (from `state_bytes`).
    State(u64),
    /// A device the runtime attaches.
    Device,
}

/// Capabilities beyond the component's ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// XenStore path prefixes it may read.
    pub xenstore_read: Vec<String>,
    /// XenStore path prefixes it may write.
    pub xenstore_write: Vec<String>,
    /// May it copy to and from pages other domains granted (netback).
    pub grant_copy: bool,
    /// May it grant its own pages to another domain (netfront).
    pub grant_access: bool,
    /// Most Xen event channels it may bind.
    pub event_channels: u16,
}

impl Caps {
    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        *self == Caps::default()
    }
}

/// One end of a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// `component.port`: indices into `components` and its `ports`.
    Port {
        /// Component index.
        component: usize,
        /// Port index within the component.
        port: usize,
    },
    /// `runtime.LABEL`: the image's runtime plays this end (policy loading,
    /// test rigs, hosted edges).
    Runtime(String),
}

/// A ring.
#[derive(Debug)]
pub struct Ring {
    /// Producer end.
    pub from: End,
    /// Consumer end.
    pub to: End,
    /// Message type both ends declare.
    pub message: String,
    /// Slots (packet rings) or bytes (control rings); a power of two.
    pub capacity: u32,
    /// Bytes per slot: the message's size for packet rings, 1 for control
    /// rings (postcard frames in a byte ring).
    pub slot_size: u32,
}

impl Ring {
    /// True for a control ring (a byte ring of postcard-encoded messages).
    pub fn is_control(&self) -> bool {
        crate::messages::plain_size(&self.message).is_none()
    }

    /// Bytes of the ring's region (header and slots).
    pub fn bytes(&self) -> u64 {
        moat_ring::spsc::HEADER_SIZE as u64 + u64::from(self.capacity) * u64::from(self.slot_size)
    }
}

/// Who fills a pool's buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This component.
    Component(usize),
    /// The runtime (test rigs, hosted edges).
    Runtime,
}

/// A packet buffer pool.
#[derive(Debug)]
pub struct Pool {
    /// Name (`[pool.NAME]`).
    pub name: String,
    /// Id carried in `PacketDesc::pool`.
    pub id: u16,
    /// Bytes per buffer.
    pub buffer_size: u32,
    /// Number of buffers.
    pub count: u32,
    /// Who fills it.
    pub owner: Owner,
    /// Who maps it: (component, port index, writable).
    pub maps: Vec<(usize, usize, bool)>,
}

impl Pool {
    /// Bytes of the pool's region.
    pub fn bytes(&self) -> u64 {
        u64::from(self.buffer_size) * u64::from(self.count)
    }
}

/// Memory the graph needs, by kind, each region rounded up to whole pages
/// (every region is mapped on its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// All rings.
    pub rings: u64,
    /// All pools.
    pub pools: u64,
    /// All state regions.
    pub state: u64,
    /// All stacks.
    pub stacks: u64,
}

/// Page size regions are rounded to.
pub const PAGE: u64 = 4096;

fn pages(n: u64) -> u64 {
    n.div_ceil(PAGE).saturating_mul(PAGE)
}

impl Memory {
    /// The sum.
    pub fn total(&self) -> u64 {
        self.rings.saturating_add(self.pools).saturating_add(self.state).saturating_add(self.stacks)
    }
}

impl System {
    /// What the graph's regions and stacks take.
    pub fn memory_use(&self) -> Memory {
        let sum = |it: &mut dyn Iterator<Item = u64>| it.map(pages).fold(0u64, u64::saturating_add);
        Memory {
            rings: sum(&mut self.rings.iter().map(Ring::bytes)),
            pools: sum(&mut self.pools.iter().map(Pool::bytes)),
            state: sum(&mut self
                .components
                .iter()
                .flat_map(|c| c.ports.iter())
                .filter_map(|p| if let Wire::State(n) = p.wire { Some(n) } else { None })),
            stacks: sum(&mut self.components.iter().map(|c| c.stack)),
        }
    }

    /// The component named `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// `component.port` or `runtime.label`, for printing.
    pub fn end_name(&self, end: &End) -> String {
        match end {
            End::Port { component, port } => {
                let c = &self.components[*component];
                format!("{}.{}", c.name, c.ports[*port].name)
            }
            End::Runtime(label) => format!("runtime.{label}"),
        }
    }
}
