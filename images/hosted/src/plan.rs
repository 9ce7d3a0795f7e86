//! From a checked `system.toml` to what the hosted image creates: one memfd
//! per ring and per pool, two eventfds per ring (one wakes the consumer,
//! one the producer), and for every process the list of its ports with the
//! files it needs — nothing more, so a process can map only its own
//! regions.
//!
//! Components whose crates are Xen drivers (netback, netfront, xenstore) are
//! *substituted*: their ports are played by a TAP adapter process or by the
//! supervisor itself ([`Role`]).

use std::os::fd::{AsRawFd, OwnedFd};

use moat_component::PortKind;
use moat_ring::{PoolGeometry, RingLayout};
use moat_system::System;
use moat_system::model::{End, Wire};

use crate::kinds::{self, Kind};
use crate::sys;

/// What plays a component that the hosted image does not run as itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client-side TAP adapter, in place of `netback`.
    Clients,
    /// The uplink TAP adapter, in place of `netfront`.
    Uplink,
    /// The supervisor plays every port (in place of `xenstore`: it sends the
    /// configured clients as `ClientEvent`s).
    Control,
}

impl Role {
    /// The role a crate path gets by default.
    pub fn default_for(crate_path: &str) -> Option<Role> {
        match crate_path.trim_start_matches("./").trim_end_matches('/') {
            "components/netback" => Some(Role::Clients),
            "components/netfront" => Some(Role::Uplink),
            "components/xenstore" => Some(Role::Control),
            _ => None,
        }
    }

    /// Parses `clients`, `uplink`, `control`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "clients" => Some(Role::Clients),
            "uplink" => Some(Role::Uplink),
            "control" => Some(Role::Control),
            _ => None,
        }
    }

    /// The adapter's port declarations (what the substituted component must
    /// declare for the adapter to take its place), or `None` for
    /// [`Role::Control`], which takes any ports.
    pub fn decl(self) -> Option<&'static [moat_component::PortDecl]> {
        match self {
            Role::Clients => Some(crate::adapter::clients::DECL),
            Role::Uplink => Some(crate::adapter::uplink::DECL),
            Role::Control => None,
        }
    }
}

/// What runs in one process.
#[derive(Clone, Copy, Debug)]
pub enum Runs {
    /// A registered component.
    Component(&'static Kind),
    /// A TAP adapter.
    Adapter(Role),
}

/// A shared region's file.
#[derive(Debug)]
pub struct RegionFile {
    /// `ring:FROM->TO` or `pool:NAME` (also the memfd's name).
    pub name: String,
    /// Read-write descriptor.
    pub fd: OwnedFd,
    /// Read-only descriptor of the same memory (pools only).
    pub ro: Option<OwnedFd>,
    /// Bytes.
    pub size: usize,
}

/// One port of a process, with where its memory and wakes come from.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// Port name.
    pub name: String,
    /// Kind.
    pub kind: PortKind,
    /// Message (rings) or device type.
    pub message: String,
    /// Notification channel (rings and devices).
    pub channel: Option<u8>,
    /// What it is wired to.
    pub wire: PortWire,
}

/// Where a port's memory comes from.
#[derive(Clone, Debug)]
pub enum PortWire {
    /// Ring `ring` (index into [`System::rings`] and [`Plan::regions`]).
    Ring {
        /// Ring index.
        ring: usize,
        /// Slots (or bytes).
        capacity: u32,
        /// Bytes per slot (1 for control rings).
        slot_size: u32,
        /// True at the consumer end.
        consumer: bool,
    },
    /// Pool `pool` (index into [`System::pools`]).
    Pool {
        /// Pool index.
        pool: usize,
        /// Its shape.
        geometry: PoolGeometry,
        /// Mapped writable.
        writable: bool,
    },
    /// Private state of this many bytes (0: unknown, any size).
    State(u64),
    /// A device (the hosted image has none to offer).
    Device,
}

/// Everything one process is given.
#[derive(Clone, Debug)]
pub struct ProcSpec {
    /// Instance name (`[component.NAME]`).
    pub name: String,
    /// What it runs.
    pub runs: Runs,
    /// `Context::budget`.
    pub budget: u32,
    /// The postcard config blob (empty for adapters).
    pub config: Vec<u8>,
    /// Ports, in the system's order.
    pub ports: Vec<PortSpec>,
}

/// A ring end the supervisor plays (`runtime.LABEL`, or a port of a
/// component substituted by [`Role::Control`]).
#[derive(Clone, Debug)]
pub struct PlayedEnd {
    /// `LABEL` for runtime ends, `component.port` otherwise.
    pub label: String,
    /// Ring index.
    pub ring: usize,
    /// True if the supervisor is the producer.
    pub producer: bool,
    /// Message type.
    pub message: String,
    /// Capacity.
    pub capacity: u32,
}

/// The hosted layout of a system.
#[derive(Debug)]
pub struct Plan {
    /// Ring regions (`regions[i]` is ring `i`), then pools
    /// (`regions[rings + j]` is pool `j`).
    pub regions: Vec<RegionFile>,
    /// Per ring: `[wakes the consumer, wakes the producer]`.
    pub wakes: Vec<[OwnedFd; 2]>,
    /// Processes to start.
    pub procs: Vec<ProcSpec>,
    /// Ends the supervisor plays.
    pub played: Vec<PlayedEnd>,
    /// Number of rings (where pool regions start).
    pub rings: usize,
}

/// Why a system cannot run hosted.
#[derive(Debug)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(msg.into()))
}

/// The role of each component: `substitute` (instance name → role) wins,
/// then the default for its crate; `None` runs the component itself.
pub fn roles(system: &System, substitute: &[(String, Role)]) -> Result<Vec<Option<Role>>, PlanError> {
    for (name, _) in substitute {
        if system.component(name).is_none() {
            return err(format!("the hosted config substitutes `{name}`, which the system does not have"));
        }
    }
    Ok(system
        .components
        .iter()
        .map(|c| {
            substitute.iter().find(|(n, _)| *n == c.name).map(|(_, r)| *r).or_else(|| Role::default_for(&c.crate_path))
        })
        .collect())
}

/// Bytes per pool buffer when segmentation offload is on: a TCP/IPv4
/// super-packet of up to 64 KiB (the most a TAP hands over) fits one.
pub const SEGMENTATION_BUFFER: u32 = 65536;

/// A pool's buffer size in the hosted layout: raised to
/// [`SEGMENTATION_BUFFER`] with segmentation offload (the Xen image keeps
/// `system.toml`'s, small for its memory budget; here the memfd pages a
/// buffer does not touch cost nothing).
fn buffer_size(pool: &moat_system::model::Pool, segmentation: bool) -> u32 {
    if segmentation { pool.buffer_size.max(SEGMENTATION_BUFFER) } else { pool.buffer_size }
}

/// The configuration blob a component gets: the system's, except that with
/// segmentation offload csum is told the uplink negotiated checksum offload
/// (TSO from the uplink TAP comes with partial checksums).
fn config_blob(kind: &Kind, blob: &[u8], segmentation: bool) -> Result<Vec<u8>, PlanError> {
    if !segmentation || kind.name != <moat_csum::Csum as moat_component::Component>::NAME {
        return Ok(blob.to_vec());
    }
    let mut c: moat_csum::CsumConfig =
        postcard::from_bytes(blob).map_err(|_| PlanError("csum's configuration does not decode".into()))?;
    c.uplink_offload = true;
    postcard::to_stdvec(&c).map_err(|_| PlanError("csum's configuration does not encode".into()))
}

/// Lays `system` out for the hosted image; with `segmentation`, for
/// segmentation offload ([`crate::config::Offload`]).
pub fn plan(system: &System, substitute: &[(String, Role)], segmentation: bool) -> Result<Plan, PlanError> {
    let roles = roles(system, substitute)?;
    let io = |e: std::io::Error| PlanError(format!("cannot create shared memory: {e}"));
    let mut regions = Vec::new();
    let mut wakes = Vec::new();
    for r in &system.rings {
        let name = format!("ring:{}->{}", system.end_name(&r.from), system.end_name(&r.to));
        let size = r.bytes() as usize;
        let fd = sys::memfd(&name, size as u64).map_err(io)?;
        let layout = RingLayout { capacity: r.capacity, slot_size: r.slot_size as usize };
        {
            // Initialise the header through a temporary mapping; no endpoint
            // exists yet, and the region value dies with this block.
            let m = sys::Mapping::map(&fd, size, true).map_err(io)?;
            layout.init(&m.region()).map_err(|_| PlanError(format!("ring {name} does not fit its region")))?;
        }
        regions.push(RegionFile { name, fd, ro: None, size });
        wakes.push([sys::eventfd().map_err(io)?, sys::eventfd().map_err(io)?]);
    }
    for p in &system.pools {
        let name = format!("pool:{}", p.name);
        let size = buffer_size(p, segmentation) as usize * p.count as usize;
        let fd = sys::memfd(&name, size as u64).map_err(io)?;
        let ro = Some(sys::reopen_read_only(&fd).map_err(io)?);
        regions.push(RegionFile { name, fd, ro, size });
    }
    let mut procs = Vec::new();
    let mut played = Vec::new();
    for (ci, c) in system.components.iter().enumerate() {
        let runs = match roles[ci] {
            Some(Role::Control) => {
                for p in &c.ports {
                    if let Wire::Ring(ring) = p.wire {
                        let r = &system.rings[ring];
                        let producer = matches!(r.from, End::Port { component, .. } if component == ci);
                        played.push(PlayedEnd {
                            label: format!("{}.{}", c.name, p.name),
                            ring,
                            producer,
                            message: r.message.clone(),
                            capacity: r.capacity,
                        });
                    }
                }
                continue;
            }
            Some(role) => {
                check_adapter_ports(c, role)?;
                Runs::Adapter(role)
            }
            None => {
                let Some(entry) = c.entry else {
                    return err(format!(
                        "component `{}` is planned (crate `{}` does not exist yet) and the hosted image has no \
                         adapter for it; substitute it in the hosted config or remove it",
                        c.name, c.crate_path
                    ));
                };
                let Some(kind) = kinds::find(entry.name) else {
                    return err(format!(
                        "component `{}` (`{}`) is registered but the hosted image was built without it; add it \
                         to images/hosted/src/kinds.rs",
                        c.name, entry.name
                    ));
                };
                Runs::Component(kind)
            }
        };
        let mut ports = Vec::new();
        for p in &c.ports {
            let wire = match p.wire {
                Wire::Ring(ring) => {
                    let r = &system.rings[ring];
                    let consumer = matches!(r.to, End::Port { component, .. } if component == ci);
                    PortWire::Ring { ring, capacity: r.capacity, slot_size: r.slot_size, consumer }
                }
                Wire::Pool(pool) => {
                    let pl = &system.pools[pool];
                    let geometry = PoolGeometry::new(pl.id, buffer_size(pl, segmentation), pl.count)
                        .map_err(|_| PlanError(format!("pool `{}` has an impossible geometry", pl.name)))?;
                    PortWire::Pool { pool, geometry, writable: p.writable }
                }
                Wire::State(n) => PortWire::State(n),
                Wire::Device => PortWire::Device,
            };
            ports.push(PortSpec {
                name: p.name.clone(),
                kind: p.kind,
                message: p.message.clone(),
                channel: p.channel,
                wire,
            });
        }
        let blob = c.config_blob.as_deref().unwrap_or_default();
        let config = match runs {
            Runs::Component(kind) => config_blob(kind, blob, segmentation)?,
            Runs::Adapter(_) => blob.to_vec(),
        };
        procs.push(ProcSpec { name: c.name.clone(), runs, budget: c.budget, config, ports });
    }
    for (ring, r) in system.rings.iter().enumerate() {
        for (end, producer) in [(&r.from, true), (&r.to, false)] {
            if let End::Runtime(label) = end {
                played.push(PlayedEnd {
                    label: label.clone(),
                    ring,
                    producer,
                    message: r.message.clone(),
                    capacity: r.capacity,
                });
            }
        }
    }
    Ok(Plan { rings: system.rings.len(), regions, wakes, procs, played })
}

/// A substituted component must declare exactly the adapter's ports.
fn check_adapter_ports(c: &moat_system::model::Component, role: Role) -> Result<(), PlanError> {
    let decl = role.decl().unwrap_or(&[]);
    for d in decl {
        let ok = c.port(d.name).is_some_and(|p| {
            p.kind == d.kind && p.message == d.message && (p.kind != PortKind::Pool || p.writable == d.writable)
        });
        if !ok {
            return err(format!(
                "component `{}` is played by the {role:?} adapter, which needs port `{}` ({:?} {}{}) as \
                 docs/graph.md names it",
                c.name,
                d.name,
                d.kind,
                d.message,
                if d.kind == PortKind::Pool { if d.writable { "rw" } else { "r" } } else { "" }
            ));
        }
    }
    // Control ports are bound and left idle; a driver's Xen device and
    // private state have nothing to stand for on a TAP.
    let idle_control = |p: &moat_system::model::Port| {
        (matches!(p.kind, PortKind::Rx | PortKind::Tx) && moat_system::plain_size(&p.message).is_none())
            || matches!(p.kind, PortKind::Device | PortKind::State)
    };
    let extra = c.ports.iter().find(|p| !decl.iter().any(|d| d.name == p.name) && !idle_control(p));
    if let Some(extra) = extra {
        return err(format!(
            "component `{}` has port `{}`, which the {role:?} adapter that plays it does not know (only control \
             ports may be left idle)",
            c.name, extra.name
        ));
    }
    Ok(())
}

impl Plan {
    /// The descriptors process `i` needs before it has mapped its regions:
    /// its region files, read-only where its ports only read.
    pub fn files_of(&self, i: usize) -> Vec<(&str, &OwnedFd, usize, bool)> {
        let mut out = Vec::new();
        for p in &self.procs[i].ports {
            match &p.wire {
                PortWire::Ring { ring, .. } => {
                    let r = &self.regions[*ring];
                    out.push((r.name.as_str(), &r.fd, r.size, true));
                }
                PortWire::Pool { pool, writable, .. } => {
                    let r = &self.regions[self.rings + pool];
                    let fd = if *writable { &r.fd } else { r.ro.as_ref().unwrap_or(&r.fd) };
                    out.push((r.name.as_str(), fd, r.size, *writable));
                }
                _ => {}
            }
        }
        out
    }

    /// For each ring port of process `i`: (channel, fd that wakes it, fd
    /// that wakes its peer).
    pub fn wakes_of(&self, i: usize) -> Vec<(u8, &OwnedFd, &OwnedFd)> {
        let mut out = Vec::new();
        for p in &self.procs[i].ports {
            if let (PortWire::Ring { ring, consumer, .. }, Some(ch)) = (&p.wire, p.channel) {
                let [to_cons, to_prod] = &self.wakes[*ring];
                if *consumer { out.push((ch, to_cons, to_prod)) } else { out.push((ch, to_prod, to_cons)) }
            }
        }
        out
    }

    /// Raw descriptors process `i` keeps after it has mapped its regions.
    pub fn keep_of(&self, i: usize) -> Vec<i32> {
        self.wakes_of(i).iter().flat_map(|(_, a, b)| [a.as_raw_fd(), b.as_raw_fd()]).collect()
    }

    /// The played end labelled `label`.
    pub fn played(&self, label: &str) -> Option<&PlayedEnd> {
        self.played.iter().find(|p| p.label == label)
    }
}
