//! `csum`: checksum offload, between the drivers and the policy core, in
//! both directions.
//!
//! ```text
//!  netback.to_csum  -> from_clients  [csum] to_rules -> rules.from_csum
//!  netfront.to_csum -> from_uplink   [csum] to_nat   -> nat.from_csum
//! ```
//!
//! * From clients, a packet flagged `CSUM_BLANK` (Linux `CHECKSUM_PARTIAL`)
//!   has its TCP/UDP checksum completed; any other packet has its IPv4
//!   header and L4 checksums verified.
//! * From the uplink, everything is verified; corrupt packets are dropped,
//!   never given a fresh checksum. Blank checksums from the uplink are
//!   refused unless the configuration says the uplink driver negotiated
//!   checksum offload ([`CsumConfig::uplink_offload`]).
//! * A super-packet (segmentation offload, `moat_net::meta::Gso`) is checked
//!   as one packet, its checksum over all of it; it must be whole TCP.
//! * What passes leaves with `CSUM_OK` when every checksum in it is known
//!   good (so NAT may update checksums incrementally and netback may tell
//!   clients `data_validated`), its descriptor cut to the IP length, and
//!   `CSUM_BLANK` cleared. `PEER_VALIDATED` is never trusted; it is counted.
//! * What is dropped goes straight back upstream on the `_free` ring and is
//!   counted by side and reason ([`check::Reason`]); what downstream hands
//!   back goes upstream the same way. One [`Custody`] per pool catches
//!   buffers handed over twice or returned without having been lent.
//!
//! The per-packet decision lives in [`check`]; this file only moves
//! descriptors.
#![no_std]
#![forbid(unsafe_code)]

pub mod check;

use moat_component::{
    BindError, Binder, Component, Context, Custody, Fault, PacketDesc, PortDecl, Ports, Rx, Status, Tx,
};
use moat_net::meta::{Gso, Meta, flags};
use serde::{Deserialize, Serialize};

use check::{Pass, Passed, Reason, Side};

/// The checks are not optional; what the drivers negotiated is.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct CsumConfig {
    /// The uplink driver negotiated checksum offload with sys-net, so packets
    /// from the uplink may come with blank checksums (Linux
    /// `CHECKSUM_PARTIAL`: made in sys-net's memory, or coalesced by GRO
    /// after their checksums were validated), which are then completed.
    /// Off by default: the Xen netfront asks sys-net for full checksums and
    /// a blank one from it is refused. The hosted image turns it on when its
    /// uplink TAP offers segmentation offload (which needs checksum offload).
    #[serde(default)]
    pub uplink_offload: bool,
}

/// One direction's four rings.
pub struct Path {
    input: Rx<PacketDesc>,
    input_free: Tx<PacketDesc>,
    output: Tx<PacketDesc>,
    output_free: Rx<PacketDesc>,
}

/// csum's ports, as `docs/graph.md` names them.
pub struct CsumPorts {
    clients: Path,
    uplink: Path,
    client_buffers: moat_component::Pool,
    uplink_buffers: moat_component::Pool,
}

impl Ports for CsumPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("from_clients", "PacketDesc"),
        PortDecl::tx("from_clients_free", "PacketDesc"),
        PortDecl::tx("to_rules", "PacketDesc"),
        PortDecl::rx("to_rules_free", "PacketDesc"),
        PortDecl::rx("from_uplink", "PacketDesc"),
        PortDecl::tx("from_uplink_free", "PacketDesc"),
        PortDecl::tx("to_nat", "PacketDesc"),
        PortDecl::rx("to_nat_free", "PacketDesc"),
        PortDecl::pool_rw("client_buffers"),
        PortDecl::pool_rw("uplink_buffers"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(CsumPorts {
            clients: Path {
                input: b.rx("from_clients")?,
                input_free: b.tx("from_clients_free")?,
                output: b.tx("to_rules")?,
                output_free: b.rx("to_rules_free")?,
            },
            uplink: Path {
                input: b.rx("from_uplink")?,
                input_free: b.tx("from_uplink_free")?,
                output: b.tx("to_nat")?,
                output_free: b.rx("to_nat_free")?,
            },
            client_buffers: b.pool("client_buffers")?,
            uplink_buffers: b.pool("uplink_buffers")?,
        })
    }
}

/// Counters for one direction.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pass: [u64; Pass::ALL.len()],
    drop: [u64; Reason::COUNT],
    peer_validated: u64,
    bad_descriptors: u64,
    bad_returns: u64,
}

impl Counters {
    fn show(&self, side: &str, custody: &Custody, out: &mut dyn Status) {
        let mut name = Name::new();
        for (p, n) in Pass::ALL.iter().zip(self.pass) {
            out.put(name.of(&[side, ".pass.", p.name()]), n);
        }
        for (i, n) in self.drop.iter().enumerate() {
            out.put(name.of(&[side, ".drop.", Reason::name_of(i)]), *n);
        }
        out.put(name.of(&[side, ".peer_validated"]), self.peer_validated);
        out.put(name.of(&[side, ".error.bad_descriptor"]), self.bad_descriptors);
        out.put(name.of(&[side, ".error.bad_return"]), self.bad_returns);
        out.put(name.of(&[side, ".held"]), u64::from(custody.held()));
    }
}

/// A small buffer to join counter names in without a heap.
struct Name {
    buf: [u8; 64],
}

impl Name {
    fn new() -> Self {
        Name { buf: [0; 64] }
    }
    fn of(&mut self, parts: &[&str]) -> &str {
        let mut n = 0;
        for p in parts {
            let take = p.len().min(self.buf.len() - n);
            self.buf[n..n + take].copy_from_slice(&p.as_bytes()[..take]);
            n += take;
        }
        // Parts are whole ASCII names and fit; a cut would still be ASCII.
        core::str::from_utf8(&self.buf[..n]).unwrap_or("?")
    }
}

/// The component.
pub struct Csum {
    uplink_offload: bool,
    clients: Counters,
    uplink: Counters,
    client_custody: Custody,
    uplink_custody: Custody,
}

impl Csum {
    /// The counters of one side (for tests).
    pub fn counters(&self, side: Side) -> &Counters {
        match side {
            Side::Clients => &self.clients,
            Side::Uplink => &self.uplink,
        }
    }
}

impl Counters {
    /// Packets passed as `how`.
    pub fn passed(&self, how: Pass) -> u64 {
        self.pass[how as usize]
    }
    /// Packets dropped for `why`.
    pub fn dropped(&self, why: Reason) -> u64 {
        self.drop[why.index()]
    }
}

impl Component for Csum {
    const NAME: &'static str = "csum";
    type Config = CsumConfig;
    type Ports = CsumPorts;

    fn init(config: CsumConfig, p: &mut CsumPorts, _cx: &mut Context) -> Result<Self, Fault> {
        if !p.client_buffers.writable() || !p.uplink_buffers.writable() {
            return Err(Fault::Config("csum needs client_buffers and uplink_buffers mapped rw"));
        }
        Ok(Csum {
            uplink_offload: config.uplink_offload,
            clients: Counters::default(),
            uplink: Counters::default(),
            client_custody: Custody::new(*p.client_buffers.geometry()),
            uplink_custody: Custody::new(*p.uplink_buffers.geometry()),
        })
    }

    fn notified(&mut self, p: &mut CsumPorts, cx: &mut Context) -> Result<(), Fault> {
        let offload = self.uplink_offload;
        relay(
            Side::Clients,
            &mut p.clients,
            &mut p.client_buffers,
            &mut self.client_custody,
            &mut self.clients,
            cx,
            offload,
        )?;
        relay(
            Side::Uplink,
            &mut p.uplink,
            &mut p.uplink_buffers,
            &mut self.uplink_custody,
            &mut self.uplink,
            cx,
            offload,
        )
    }

    fn status(&self, out: &mut dyn Status) {
        self.clients.show("clients", &self.client_custody, out);
        self.uplink.show("uplink", &self.uplink_custody, out);
    }
}

/// One direction's work for one call: returns first, then at most a budget
/// of new packets, never more than downstream has room for.
fn relay(
    side: Side,
    path: &mut Path,
    pool: &mut moat_component::Pool,
    custody: &mut Custody,
    counters: &mut Counters,
    cx: &mut Context,
    uplink_blank: bool,
) -> Result<(), Fault> {
    // Returns first: they free space upstream and cost nothing.
    for _ in 0..cx.budget() {
        let Some(d) = path.output_free.pop()? else { break };
        match custody.give_back(&d) {
            Ok(_) => give_back(path, &d)?,
            Err(_) => counters.bad_returns += 1,
        }
    }
    let mut room = path.output.free()?;
    for _ in 0..cx.budget() {
        if room == 0 {
            // Wake me when downstream frees space; the input stays armed.
            let _ = path.output.wait_space()?;
            break;
        }
        let Some(mut d) = path.input.pop()? else { break };
        if custody.receive(&d).is_err() {
            // Not a buffer we may touch or hand back: count and forget.
            counters.bad_descriptors += 1;
            continue;
        }
        if d.flags & flags::PEER_VALIDATED != 0 {
            counters.peer_validated += 1;
        }
        match decide(side, pool, &d, uplink_blank)? {
            Ok(Passed { len, how }) => {
                counters.pass[how as usize] += 1;
                // len <= d.len: the IP parsers never accept a total length
                // past the bytes they were given.
                d.len = len as u32;
                d.flags = (d.flags & flags::PEER_VALIDATED) | if how.csum_ok() { flags::CSUM_OK } else { 0 };
                let pushed = path.output.push(&d)?;
                debug_assert!(pushed, "room was checked");
                room -= 1;
            }
            Err(why) => {
                counters.drop[why.index()] += 1;
                let _ = custody.give_back(&d);
                give_back(path, &d)?;
            }
        }
    }
    path.output.flush(cx);
    path.input_free.flush(cx);
    path.input.finish(cx)?;
    // Returns wait for a batch: they need not wake csum one at a time.
    path.output_free.finish_returns(cx)
}

fn decide(
    side: Side,
    pool: &mut moat_component::Pool,
    d: &PacketDesc,
    uplink_blank: bool,
) -> Result<Result<Passed, Reason>, Fault> {
    let (Ok(_), Ok(gso)) = (Meta::of(d), Gso::of(d)) else {
        return Ok(Err(Reason::BadMeta));
    };
    // custody.receive checked the descriptor against this pool's geometry
    // and init refused a read-only pool, so this cannot fail.
    let packet = pool.packet_mut(d).map_err(|_| Fault::Internal("a held buffer is not writable"))?;
    Ok(check::check_with(packet, d.flags, gso, side, uplink_blank))
}

/// Hands a buffer back upstream. Upstream's free ring holds every buffer it
/// lent us, so it cannot be full: if it is, the peer lied about its size.
fn give_back(path: &mut Path, d: &PacketDesc) -> Result<(), Fault> {
    if path.input_free.push(d)? { Ok(()) } else { Err(path.input_free.fault()) }
}
