//! The system manifest: what the build tool laid out and the runtime obeys.
//!
//! One postcard-encoded blob describes a system: its components (which code,
//! priority, budget, configuration blob), the regions of the shared-memory
//! *arena* (rings, pools, private state, each page-aligned at a fixed offset)
//! and the ports that tie components to regions. A runtime maps the arena,
//! checks the manifest with [`Manifest::parse`], binds each component's ports
//! from it ([`crate::binder`]) and routes notifications along its rings
//! ([`crate::sched`]).
//!
//! The manifest is input: `parse` checks every index, offset, size and
//! pairing before anything trusts it, and returns an error naming what is
//! wrong. Everything after `parse` may assume the invariants listed on
//! [`Manifest`].
//!
//! # Encoding
//!
//! ```text
//! Header                     postcard
//! ComponentSpec × components postcard, one after another
//! RegionSpec    × regions
//! PortSpec      × ports
//! ```
//!
//! Items are decoded lazily from the borrowed bytes (no heap, no big tables);
//! `parse` records where each item starts.
//!
//! # Configuration blobs
//!
//! A component's `config` is an envelope ([`ConfigEnvelope`]): a magic, a
//! version and a [`layout_hash`] of the component's ports, message and
//! configuration types around the postcard payload. Postcard is not
//! self-describing, so a blob made for another build of a component would
//! decode into nonsense; the runtime compares the hash with the one of the
//! code it links and refuses a mismatch before decoding anything.
//!
//! # Runtime ends
//!
//! A ring end whose port is [`RUNTIME`] is played by the runtime rather than
//! a component: `runtime.LABEL` ends of `system.toml`, and ends whose
//! component is planned (not built yet). The runtime leaves them unserved
//! for now: the component sees a ring nobody fills or drains.
//!
//! # Why per-component address spaces can follow
//!
//! Regions are page-aligned and each port says whether its component may
//! write; that is exactly the list of mappings a component's own page tables
//! need. Components share nothing else the manifest does not name.

use serde::{Deserialize, Serialize};

/// First bytes of every manifest.
pub const MAGIC: [u8; 8] = *b"moat-sys";
/// Format version this runtime reads.
pub const VERSION: u32 = 2;
/// First bytes of every configuration blob.
pub const CONFIG_MAGIC: [u8; 4] = *b"mcfg";
/// Configuration envelope version this runtime reads.
pub const CONFIG_VERSION: u16 = 1;
/// The `component` of a port the runtime plays (a ring end with no
/// component: `runtime.LABEL`, or a planned component's end).
pub const RUNTIME: u16 = u16::MAX;
/// Regions are page-aligned so each can be mapped on its own.
pub const PAGE: u64 = 4096;
/// Most components in one system.
pub const MAX_COMPONENTS: usize = 32;
/// Most regions in one system.
pub const MAX_REGIONS: usize = 256;
/// Most ports in one system.
pub const MAX_PORTS: usize = 1024;
/// Region index of ports that have no arena region (devices).
pub const NO_REGION: u16 = u16::MAX;
/// Channel number of ports that have no channel (pools, state).
pub const NO_CHANNEL: u8 = u8::MAX;

/// Fixed-size start of a manifest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// The system's name (`[system] name`).
    pub system: &'a str,
    /// Bytes of shared memory the runtime must provide for the regions.
    pub arena_bytes: u64,
    /// SHA-256 of the policy files' contents, in `system.toml` order (all
    /// zero without policy files): what `moat inspect` reports.
    pub policy_hash: [u8; 32],
    /// Components `system.toml` names whose crates do not exist yet,
    /// separated by spaces (for reports; the runtime plays their ring ends).
    pub planned: &'a str,
    /// Number of [`ComponentSpec`]s that follow.
    pub components: u32,
    /// Number of [`RegionSpec`]s after those.
    pub regions: u32,
    /// Number of [`PortSpec`]s after those.
    pub ports: u32,
}

/// One component instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentSpec<'a> {
    /// Instance name, unique in the system (`[component.NAME]`).
    pub name: &'a str,
    /// Which code runs it: the `Component::NAME` of its crate.
    pub kind: &'a str,
    /// Higher runs first when several are ready.
    pub priority: u8,
    /// Most items per input per call ([`moat_component::Context::budget`]).
    pub budget: u32,
    /// Stack `system.toml` asks for, in bytes (the first image runs every
    /// component on the monitor's stack; recorded for per-component stacks).
    pub stack: u32,
    /// What it may do beyond its ports.
    pub caps: Caps<'a>,
    /// Its configuration blob: a [`ConfigEnvelope`] around the postcard of
    /// `Component::Config`.
    pub config: &'a [u8],
}

/// Capabilities of one component (`[component.NAME.caps]`). Recorded for
/// the platform to enforce; the XenStore prefixes are enforced by the
/// xenstore component they are handed to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps<'a> {
    /// May copy to and from other domains' grants.
    pub grant_copy: bool,
    /// May grant its own pages to another domain.
    pub grant_access: bool,
    /// Most Xen event channels it may bind.
    pub event_channels: u16,
    /// XenStore prefixes it may read, separated by spaces.
    pub xenstore_read: &'a str,
    /// XenStore prefixes it may write, separated by spaces.
    pub xenstore_write: &'a str,
}

impl Caps<'_> {
    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        *self == Caps::default()
    }
}

/// What a configuration blob is: the payload and what it was made for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigEnvelope<'a> {
    /// [`CONFIG_MAGIC`].
    pub magic: [u8; 4],
    /// [`CONFIG_VERSION`].
    pub version: u16,
    /// [`layout_hash`] of the component the payload was encoded for.
    pub layout: u64,
    /// Postcard of `Component::Config`.
    pub payload: &'a [u8],
}

/// Why a configuration blob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not an envelope, or a version this runtime cannot read.
    Envelope,
    /// Made for a component whose ports, messages or configuration type
    /// differ from the code in this image.
    Layout {
        /// The blob's hash.
        blob: u64,
        /// The linked code's hash.
        code: u64,
    },
}

impl<'a> ConfigEnvelope<'a> {
    /// Opens `blob`, checking it was made for code with hash `layout`.
    pub fn open(blob: &'a [u8], layout: u64) -> Result<&'a [u8], ConfigError> {
        let env: ConfigEnvelope<'a> = postcard::from_bytes(blob).map_err(|_| ConfigError::Envelope)?;
        if env.magic != CONFIG_MAGIC || env.version != CONFIG_VERSION {
            return Err(ConfigError::Envelope);
        }
        if env.layout != layout {
            return Err(ConfigError::Layout { blob: env.layout, code: layout });
        }
        Ok(env.payload)
    }

    /// Reads the envelope without checking the hash (for reports).
    pub fn peek(blob: &'a [u8]) -> Option<ConfigEnvelope<'a>> {
        postcard::from_bytes::<ConfigEnvelope<'a>>(blob).ok().filter(|e| e.magic == CONFIG_MAGIC)
    }
}

/// FNV-1a: small, deterministic and the same on every platform. It detects
/// mismatched builds; it is not a defence against forgery (the blob and the
/// code come from the same build).
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(&(s.len() as u64).to_le_bytes()).bytes(s.as_bytes())
    }
    fn num(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes())
    }
}

/// The layout hash of a component: its kind, every port it declares (name,
/// kind, message type, writability), the name and size of its `Config`
/// type, and the ABI every component shares (descriptor size, ring header,
/// manifest and envelope versions). The build tool computes it from the
/// registry, the runtime from the code it links; they must agree.
pub fn layout_hash(kind: &str, ports: &[moat_component::PortDecl], config_type: &str, config_size: usize) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.num(u64::from(VERSION)).num(u64::from(CONFIG_VERSION));
    h.num(core::mem::size_of::<moat_component::PacketDesc>() as u64).num(moat_ring::spsc::HEADER_SIZE as u64);
    h.str(kind).str(config_type).num(config_size as u64).num(ports.len() as u64);
    for p in ports {
        let k = match p.kind {
            moat_component::PortKind::Rx => 0,
            moat_component::PortKind::Tx => 1,
            moat_component::PortKind::Pool => 2,
            moat_component::PortKind::State => 3,
            moat_component::PortKind::Device => 4,
        };
        h.str(p.name).num(k).str(p.message).num(u64::from(p.writable));
    }
    h.0
}

/// [`layout_hash`] of component type `C`.
pub fn layout_hash_of<C: moat_component::Component>() -> u64 {
    layout_hash(
        C::NAME,
        <C::Ports as moat_component::Ports>::DECL,
        core::any::type_name::<C::Config>(),
        core::mem::size_of::<C::Config>(),
    )
}

/// What a region holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A ring of `capacity` slots of `slot_size` bytes (1 for byte rings).
    Ring {
        /// Slots (a power of two).
        capacity: u32,
        /// Bytes per slot: the message type's size.
        slot_size: u32,
    },
    /// A packet pool.
    Pool {
        /// The id descriptors carry.
        id: u16,
        /// Bytes per buffer.
        buf_size: u32,
        /// Number of buffers.
        count: u32,
    },
    /// One component's private state.
    State {
        /// Bytes the component asked for (`Component::state_bytes`); the
        /// region is this rounded up to whole pages.
        bytes: u64,
    },
}

/// A range of the arena.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionSpec<'a> {
    /// Name (for reports and `moat inspect`).
    pub name: &'a str,
    /// Offset in the arena (page-aligned).
    pub offset: u64,
    /// Bytes (page multiple).
    pub size: u64,
    /// Contents.
    pub kind: RegionKind,
}

/// What kind of port (mirrors `moat_component::PortKind`, serialisable).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// Consumer end of a ring.
    Rx,
    /// Producer end of a ring.
    Tx,
    /// A pool.
    Pool,
    /// Private state.
    State,
    /// Device memory outside the arena, supplied by the platform.
    Device,
}

impl From<PortKind> for moat_component::PortKind {
    fn from(k: PortKind) -> Self {
        match k {
            PortKind::Rx => moat_component::PortKind::Rx,
            PortKind::Tx => moat_component::PortKind::Tx,
            PortKind::Pool => moat_component::PortKind::Pool,
            PortKind::State => moat_component::PortKind::State,
            PortKind::Device => moat_component::PortKind::Device,
        }
    }
}

/// One port of one component.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSpec<'a> {
    /// Index of its component, or [`RUNTIME`] for a ring end the runtime
    /// plays.
    pub component: u16,
    /// Port name as the component's `Ports::DECL` has it.
    pub name: &'a str,
    /// Kind.
    pub kind: PortKind,
    /// Ring message type name, or device type for devices; empty otherwise.
    pub message: &'a str,
    /// Index of its region, or [`NO_REGION`] for devices.
    pub region: u16,
    /// Whether the component may write the region (pools; rings and state
    /// are always writable by their users).
    pub writable: bool,
    /// The component's local channel for this port, or [`NO_CHANNEL`].
    pub channel: u8,
}

/// Why a manifest was refused. Indices point at the offending item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Not a manifest, or one this runtime cannot read.
    BadHeader,
    /// Item does not decode (truncated or garbage).
    Decode,
    /// Bytes left over after the last item.
    Trailing,
    /// More items than the runtime supports.
    TooMany,
    /// Component `i`: empty or duplicate name, or zero budget.
    Component(usize),
    /// Region `i`: misaligned, empty, out of the arena, overlapping its
    /// predecessor, or too small for its ring or pool.
    Region(usize),
    /// Port `i`: unknown component or region, duplicate name or channel, or
    /// a kind that does not match its region.
    Port(usize),
    /// Ring region `i` lacks exactly one producer and one consumer of the same
    /// message type, or a state region is not used by exactly one port.
    Wiring(usize),
}

/// A checked manifest.
///
/// Invariants after [`parse`](Self::parse):
/// * every region lies inside `0..arena_bytes`, page-aligned, and regions do
///   not overlap;
/// * every port names an existing component or is a runtime ring end, and
///   (except devices) an existing region of the matching kind;
/// * every ring region has exactly one `Tx` and one `Rx` port, with equal
///   message names, at least one of them a component's; component ports of
///   rings have channels, runtime ends none; every state region has one
///   port, whose size covers its `bytes`;
/// * port names and channels are unique within a component.
pub struct Manifest<'a> {
    bytes: &'a [u8],
    header: Header<'a>,
    component_at: [u32; MAX_COMPONENTS],
    region_at: [u32; MAX_REGIONS],
    port_at: [u32; MAX_PORTS],
}

fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8], pos: &mut usize) -> Result<T, LayoutError> {
    let rest = bytes.get(*pos..).ok_or(LayoutError::Decode)?;
    let (item, left) = postcard::take_from_bytes::<T>(rest).map_err(|_| LayoutError::Decode)?;
    *pos = bytes.len() - left.len();
    Ok(item)
}

impl<'a> Manifest<'a> {
    /// Checks `bytes` and indexes its items.
    pub fn parse(bytes: &'a [u8]) -> Result<Manifest<'a>, LayoutError> {
        let mut pos = 0;
        let header: Header<'a> = take(bytes, &mut pos).map_err(|_| LayoutError::BadHeader)?;
        if header.magic != MAGIC || header.version != VERSION {
            return Err(LayoutError::BadHeader);
        }
        let (nc, nr, np) = (header.components as usize, header.regions as usize, header.ports as usize);
        if nc > MAX_COMPONENTS || nr > MAX_REGIONS || np > MAX_PORTS {
            return Err(LayoutError::TooMany);
        }
        let mut m = Manifest {
            bytes,
            header,
            component_at: [0; MAX_COMPONENTS],
            region_at: [0; MAX_REGIONS],
            port_at: [0; MAX_PORTS],
        };
        for i in 0..nc {
            m.component_at[i] = pos as u32;
            take::<ComponentSpec>(bytes, &mut pos)?;
        }
        for i in 0..nr {
            m.region_at[i] = pos as u32;
            take::<RegionSpec>(bytes, &mut pos)?;
        }
        for i in 0..np {
            m.port_at[i] = pos as u32;
            take::<PortSpec>(bytes, &mut pos)?;
        }
        if pos != bytes.len() {
            return Err(LayoutError::Trailing);
        }
        m.check_components()?;
        m.check_regions()?;
        m.check_ports()?;
        m.check_wiring()?;
        Ok(m)
    }

    /// The header.
    pub fn header(&self) -> &Header<'a> {
        &self.header
    }

    /// Bytes of arena the regions need.
    pub fn arena_bytes(&self) -> u64 {
        self.header.arena_bytes
    }

    /// Number of components.
    pub fn component_count(&self) -> usize {
        self.header.components as usize
    }

    /// Number of regions.
    pub fn region_count(&self) -> usize {
        self.header.regions as usize
    }

    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.header.ports as usize
    }

    fn item<T: Deserialize<'a>>(&self, at: u32) -> T {
        let mut pos = at as usize;
        // parse() decoded this very item from these very bytes.
        take(self.bytes, &mut pos).unwrap_or_else(|_| unreachable!("item decoded by parse"))
    }

    /// Component `i` (`i < component_count()`).
    pub fn component(&self, i: usize) -> ComponentSpec<'a> {
        self.item(self.component_at[..self.component_count()][i])
    }

    /// Region `i` (`i < region_count()`).
    pub fn region(&self, i: usize) -> RegionSpec<'a> {
        self.item(self.region_at[..self.region_count()][i])
    }

    /// Port `i` (`i < port_count()`).
    pub fn port(&self, i: usize) -> PortSpec<'a> {
        self.item(self.port_at[..self.port_count()][i])
    }

    /// All components.
    pub fn components(&self) -> impl Iterator<Item = ComponentSpec<'a>> + '_ {
        (0..self.component_count()).map(|i| self.component(i))
    }

    /// All regions.
    pub fn regions(&self) -> impl Iterator<Item = RegionSpec<'a>> + '_ {
        (0..self.region_count()).map(|i| self.region(i))
    }

    /// All ports with their indices.
    pub fn ports(&self) -> impl Iterator<Item = (usize, PortSpec<'a>)> + '_ {
        (0..self.port_count()).map(|i| (i, self.port(i)))
    }

    /// Index of the component called `name`.
    pub fn find_component(&self, name: &str) -> Option<usize> {
        self.components().position(|c| c.name == name)
    }

    /// Component `component`'s port called `name`, with its index.
    pub fn find_port(&self, component: usize, name: &str) -> Option<(usize, PortSpec<'a>)> {
        self.ports().find(|(_, p)| p.component as usize == component && p.name == name)
    }

    /// The state region of component `component`'s port `name`: its
    /// requested bytes.
    pub fn state_bytes(&self, component: usize, name: &str) -> Option<u64> {
        let (_, p) = self.find_port(component, name)?;
        match (p.kind, self.region(p.region as usize).kind) {
            (PortKind::State, RegionKind::State { bytes }) => Some(bytes),
            _ => None,
        }
    }

    /// The other end of the ring port `port` is on: its index and spec.
    pub fn peer(&self, port: usize) -> Option<(usize, PortSpec<'a>)> {
        let p = self.port(port);
        if !matches!(p.kind, PortKind::Rx | PortKind::Tx) {
            return None;
        }
        self.ports().find(|(i, q)| *i != port && q.region == p.region)
    }

    fn check_components(&self) -> Result<(), LayoutError> {
        for i in 0..self.component_count() {
            let c = self.component(i);
            let dup = (0..i).any(|j| self.component(j).name == c.name);
            if c.name.is_empty() || c.kind.is_empty() || c.budget == 0 || dup {
                return Err(LayoutError::Component(i));
            }
        }
        Ok(())
    }

    fn check_regions(&self) -> Result<(), LayoutError> {
        let mut end_prev = 0u64;
        for i in 0..self.region_count() {
            let r = self.region(i);
            let bad = LayoutError::Region(i);
            let end = r.offset.checked_add(r.size).ok_or(bad)?;
            if !r.offset.is_multiple_of(PAGE) || r.size == 0 || end > self.arena_bytes() || r.offset < end_prev {
                return Err(bad);
            }
            end_prev = end;
            match r.kind {
                RegionKind::Ring { capacity, slot_size } => {
                    let slots = u64::from(capacity).checked_mul(u64::from(slot_size)).ok_or(bad)?;
                    let need = slots.checked_add(moat_ring::spsc::HEADER_SIZE as u64).ok_or(bad)?;
                    if !capacity.is_power_of_two() || capacity > 1 << 30 || slot_size == 0 || need > r.size {
                        return Err(bad);
                    }
                }
                RegionKind::Pool { id, buf_size, count } => {
                    let geo = moat_ring::PoolGeometry::new(id, buf_size, count).map_err(|_| bad)?;
                    let dup = (0..i).any(|j| matches!(self.region(j).kind, RegionKind::Pool { id: o, .. } if o == id));
                    if geo.region_size() as u64 > r.size || dup {
                        return Err(bad);
                    }
                }
                RegionKind::State { bytes } => {
                    if bytes > r.size {
                        return Err(bad);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_ports(&self) -> Result<(), LayoutError> {
        for i in 0..self.port_count() {
            let p = self.port(i);
            let bad = LayoutError::Port(i);
            if p.name.is_empty() {
                return Err(bad);
            }
            if p.component == RUNTIME {
                let dup = (0..i).map(|j| self.port(j)).any(|q| q.component == RUNTIME && q.name == p.name);
                let ring = (p.region as usize) < self.region_count()
                    && matches!(self.region(p.region as usize).kind, RegionKind::Ring { .. });
                if dup || !ring || !matches!(p.kind, PortKind::Rx | PortKind::Tx) || p.channel != NO_CHANNEL {
                    return Err(bad);
                }
                continue;
            }
            if p.component as usize >= self.component_count() {
                return Err(bad);
            }
            let clash = (0..i).map(|j| self.port(j)).any(|q| {
                q.component == p.component && (q.name == p.name || (p.channel != NO_CHANNEL && q.channel == p.channel))
            });
            if clash {
                return Err(bad);
            }
            let channel_ok = p.channel < moat_component::Channel::MAX;
            let region = if p.region == NO_REGION {
                None
            } else {
                let r = p.region as usize;
                if r >= self.region_count() {
                    return Err(bad);
                }
                Some(self.region(r).kind)
            };
            let ok = match (p.kind, region) {
                (PortKind::Rx | PortKind::Tx, Some(RegionKind::Ring { .. })) => channel_ok && !p.message.is_empty(),
                (PortKind::Pool, Some(RegionKind::Pool { .. })) => p.channel == NO_CHANNEL,
                (PortKind::State, Some(RegionKind::State { .. })) => p.channel == NO_CHANNEL && p.writable,
                (PortKind::Device, None) => channel_ok && !p.message.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(bad);
            }
        }
        Ok(())
    }

    fn check_wiring(&self) -> Result<(), LayoutError> {
        for r in 0..self.region_count() {
            let (mut rx, mut tx, mut users, mut runtime) = (None, None, 0, 0);
            for (_, p) in self.ports().filter(|(_, p)| p.region as usize == r) {
                users += 1;
                runtime += usize::from(p.component == RUNTIME);
                match p.kind {
                    PortKind::Rx => {
                        rx = if rx.is_none() { Some(p.message) } else { return Err(LayoutError::Wiring(r)) }
                    }
                    PortKind::Tx => {
                        tx = if tx.is_none() { Some(p.message) } else { return Err(LayoutError::Wiring(r)) }
                    }
                    _ => {}
                }
            }
            let ok = match self.region(r).kind {
                RegionKind::Ring { .. } => users == 2 && rx.is_some() && rx == tx && runtime < 2,
                RegionKind::State { .. } => users == 1,
                RegionKind::Pool { .. } => true,
            };
            if !ok {
                return Err(LayoutError::Wiring(r));
            }
        }
        Ok(())
    }
}

/// Encodes a manifest from its parts (what a build tool writes). Fails with
/// [`LayoutError::TooMany`] if `out` is too small. Returns the bytes used.
pub fn encode(
    header: &Header<'_>,
    components: &[ComponentSpec<'_>],
    regions: &[RegionSpec<'_>],
    ports: &[PortSpec<'_>],
    out: &mut [u8],
) -> Result<usize, LayoutError> {
    fn put<T: Serialize>(item: &T, out: &mut [u8], pos: &mut usize) -> Result<(), LayoutError> {
        let rest = out.get_mut(*pos..).ok_or(LayoutError::TooMany)?;
        let used = postcard::to_slice(item, rest).map_err(|_| LayoutError::TooMany)?.len();
        *pos += used;
        Ok(())
    }
    let header = Header {
        components: components.len() as u32,
        regions: regions.len() as u32,
        ports: ports.len() as u32,
        ..*header
    };
    let mut pos = 0;
    put(&header, out, &mut pos)?;
    for c in components {
        put(c, out, &mut pos)?;
    }
    for r in regions {
        put(r, out, &mut pos)?;
    }
    for p in ports {
        put(p, out, &mut pos)?;
    }
    Ok(pos)
}
