//! `moat replay`: the hosted pipeline offline, on captures.
//!
//! Every component of the system runs in this one process, bound through
//! the same [`HostBinder`] over the same memfd layout as `moat run`, and the
//! TAP adapters read their frames from captures instead of devices. Frames
//! are fed one at a time in timestamp order (the capture's clock is the
//! components' clock); after each, every component is called until the
//! graph is quiet, and what came out, and which counters moved, is the
//! verdict for that frame.
//!
//! Frames are re-addressed at the link layer so a capture from anywhere
//! fits the hosted config: a client frame gets its client's MAC (found by
//! its IPv4 source; an unknown source goes to client 0, as a spoofing
//! client would) and moat's gateway MAC; an uplink frame is addressed to
//! moat's uplink MAC. The gateway's MAC is taken from the uplink capture, or
//! made up.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use moat_component::{Context, Instant, Signals, StatusFn};
use moat_net::ethernet::{self, Mac, arp_op, ethertype};
use moat_ring::{ByteProducer, Region};
use moat_system::System;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

use crate::adapter::clients::Clients;
use crate::adapter::link::{self, Frames, Queue, SharedQueue, Vnet};
use crate::adapter::uplink::Uplink;
use crate::binder::{HostBinder, map_ports};
use crate::config::{CLIENT_GATEWAY_MAC, HostedConfig};
use crate::kinds::Task;
use crate::plan::{self, Role, Runs};
use crate::sys::Mapping;
use crate::tap::VNET_HDR_LEN;

/// Where replay reads and writes.
#[derive(Clone, Debug, Default)]
pub struct ReplayFiles {
    /// Frames from the clients.
    pub clients_in: Option<PathBuf>,
    /// Frames from the uplink.
    pub uplink_in: Option<PathBuf>,
    /// Frames moat sent to the uplink (translated).
    pub uplink_out: Option<PathBuf>,
    /// Frames moat sent to clients.
    pub clients_out: Option<PathBuf>,
    /// One JSON object per input frame (JSON lines).
    pub json: Option<PathBuf>,
}

/// What happened to the frames, in total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Input frames.
    pub frames: u64,
    /// Outcome name → frames.
    pub outcomes: BTreeMap<String, u64>,
    /// Counter (`component.name`) → increase, over counters naming a drop.
    pub drops: BTreeMap<String, u64>,
}

/// One input frame's fate.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// 1-based index in the merged input.
    pub n: u64,
    /// Capture time (seconds since the first frame).
    pub t: f64,
    /// `client <ip>` or `uplink`.
    pub from: String,
    /// What the frame was.
    pub packet: String,
    /// `forwarded`, `answered`, `forwarded+answered`, `dropped` or `consumed`.
    pub outcome: &'static str,
    /// Frames it caused towards the uplink (summaries).
    pub to_uplink: Vec<String>,
    /// Frames it caused towards clients.
    pub to_clients: Vec<String>,
    /// Counters that moved (`component.name` → increase).
    pub counters: BTreeMap<String, u64>,
}

/// A one-line description of an Ethernet frame.
pub fn describe_frame(frame: &[u8]) -> String {
    let Ok(eth) = ethernet::Ethernet::parse(frame) else { return "runt frame".into() };
    match eth.ethertype() {
        ethertype::ARP => match ethernet::Arp::parse(eth.payload()) {
            Ok(a) if a.oper() == arp_op::REQUEST => format!("ARP who-has {} tell {}", a.target_ip(), a.sender_ip()),
            Ok(a) => format!("ARP {} is-at {}", a.sender_ip(), link::format_mac(&a.packet().sha)),
            Err(_) => "ARP (malformed)".into(),
        },
        ethertype::IPV4 | ethertype::IPV6 => describe_ip(eth.payload()),
        t => format!("ethertype {t:#06x}"),
    }
}

/// A one-line description of an IP packet.
pub fn describe_ip(packet: &[u8]) -> String {
    use moat_net::ip::Transport;
    match moat_net::ip::classify(packet) {
        Ok(s) => match s.transport {
            Transport::Tcp { src_port, dst_port, flags } => {
                format!("TCP {}:{src_port} > {}:{dst_port} flags {flags:#05x}", s.src, s.dst)
            }
            Transport::Udp { src_port, dst_port } => format!("UDP {}:{src_port} > {}:{dst_port}", s.src, s.dst),
            Transport::Icmp { ty, code, .. } => format!("ICMP {} > {} type {ty} code {code}", s.src, s.dst),
            _ => format!("IP proto {} {} > {}", s.protocol, s.src, s.dst),
        },
        Err(e) => format!("IP (unparsed: {e:?})"),
    }
}

struct Input {
    ts: std::time::Duration,
    from_uplink: bool,
    frame: Vec<u8>,
}

fn read_pcap(path: &Path, from_uplink: bool, out: &mut Vec<Input>) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = PcapReader::new(f).map_err(|e| format!("{}: {e}", path.display()))?;
    if r.header().datalink != pcap_file::DataLink::ETHERNET {
        return Err(format!("{}: not an Ethernet capture ({:?})", path.display(), r.header().datalink));
    }
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(Input { ts: p.timestamp, from_uplink, frame: p.data.into_owned() });
    }
    Ok(())
}

/// Everything in one process.
struct Pipeline {
    tasks: Vec<(String, Box<dyn Task>, u32)>,
    clients: Vec<SharedQueue>,
    uplink: Option<SharedQueue>,
    feeds: Vec<(ByteProducer, VecDeque<Vec<u8>>)>,
}

impl Pipeline {
    fn build(system: &System, hosted: &HostedConfig, seed: [u8; 32]) -> Result<Pipeline, String> {
        // The Xen image's layout: captures hold ordinary frames, and a
        // verdict should be what the deployed firewall would give.
        let plan = plan::plan(system, &hosted.substitute, false).map_err(|e| e.to_string())?;
        let plan: &'static plan::Plan = Box::leak(Box::new(plan));
        let mut tasks = Vec::new();
        let mut clients = Vec::new();
        let mut uplink = None;
        for (i, spec) in plan.procs.iter().enumerate() {
            let regions = map_ports(plan, i).map_err(|e| e.to_string())?;
            // SAFETY: each process spec is bound exactly once here, from its
            // own mappings of the plan's regions.
            let mut b = unsafe { HostBinder::new(spec, regions) };
            let mut cx = Context::new(Instant::ZERO, Signals::ALL, spec.budget).with_seed(seed);
            let task: Box<dyn Task> = match spec.runs {
                Runs::Component(k) => k.start(&mut b, &spec.config, &mut cx).map_err(|f| describe(&spec.name, f))?,
                Runs::Adapter(Role::Clients) => {
                    let qs: Vec<SharedQueue> = hosted.clients.iter().map(|_| SharedQueue::default()).collect();
                    let links = qs.iter().map(|q| Box::new(q.clone()) as Box<dyn Frames>).collect();
                    clients = qs;
                    Box::new(
                        Clients::start(&mut b, hosted.clients.clone(), links).map_err(|f| describe(&spec.name, f))?,
                    )
                }
                Runs::Adapter(Role::Uplink) => {
                    let up = hosted.uplink.clone().ok_or("the hosted config has no [uplink]")?;
                    let q = SharedQueue::default();
                    uplink = Some(q.clone());
                    Box::new(Uplink::start(&mut b, up, Box::new(q)).map_err(|f| describe(&spec.name, f))?)
                }
                Runs::Adapter(Role::Control) => unreachable!("the plan plays control ends itself"),
            };
            if matches!(spec.runs, Runs::Adapter(_)) {
                let idle = b.bind_idle_control().map_err(|e| format!("{}: {e:?}", spec.name))?;
                std::mem::forget(idle);
            }
            if let Some(p) = b.unbound() {
                return Err(format!("{}: port `{p}` was not bound", spec.name));
            }
            tasks.push((spec.name.clone(), task, spec.budget));
        }
        let mut feeds = Vec::new();
        for end in plan.played.iter().filter(|e| e.producer) {
            let frames = crate::run::frames_for(&end.message, hosted);
            if frames.is_empty() {
                continue;
            }
            let r = &plan.regions[end.ring];
            let region: Region = Mapping::map(&r.fd, r.size, true).map_err(|e| e.to_string())?.leak();
            // SAFETY: the plan gives this end to no process; it is attached
            // once, here.
            let p = unsafe { ByteProducer::attach(&region, end.capacity) }.map_err(|e| format!("{e:?}"))?;
            feeds.push((p, frames.into()));
        }
        Ok(Pipeline { tasks, clients, uplink, feeds })
    }

    /// Calls every component until a round passes with no notification and
    /// no request to run again (bounded).
    fn settle(&mut self, now: Instant) -> Result<(), String> {
        for (ring, pending) in &mut self.feeds {
            while let Some(f) = pending.front() {
                if ring.send(f).is_err() {
                    break;
                }
                pending.pop_front();
            }
            let _ = ring.publish();
        }
        for _ in 0..10_000 {
            let mut busy = false;
            for (name, task, budget) in &mut self.tasks {
                let mut cx = Context::new(now, Signals::ALL, *budget);
                task.notified(&mut cx).map_err(|f| describe(name, f))?;
                busy |= cx.wants_again() || !cx.take_notify().is_empty();
            }
            if !busy {
                return Ok(());
            }
        }
        Err("the graph never settled".into())
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (name, task, _) in &self.tasks {
            task.status(&mut StatusFn(|k: &str, v| {
                out.insert(format!("{name}.{k}"), v);
            }));
        }
        out
    }

    fn take_out(q: &SharedQueue) -> Vec<Vec<u8>> {
        std::mem::take(&mut q.0.borrow_mut().tx).into_iter().map(|f| f[VNET_HDR_LEN..].to_vec()).collect()
    }
}

fn describe(name: &str, f: moat_component::Fault) -> String {
    format!("component `{name}` stopped: {}", crate::worker::describe(&f))
}

fn with_vnet(frame: &[u8], flags: u8) -> Vec<u8> {
    let mut v = Vnet::bytes(flags).to_vec();
    v.extend_from_slice(frame);
    v
}

/// True if the frame is IPv4 TCP/UDP whose checksum field holds just the
/// folded pseudo-header sum: Linux's `CHECKSUM_PARTIAL`, what a capture on
/// the sending host shows and what a Linux frontend would flag
/// `csum_blank`. Replay flags such frames the same way.
pub fn partial_checksum(frame: &[u8]) -> bool {
    let Some(ip) = frame.get(ethernet::HEADER_LEN..) else { return false };
    if frame.get(12..14) != Some(&[0x08, 0x00]) || ip.len() < 20 || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let proto = ip[9];
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    if total > ip.len() || ihl < 20 || total < ihl + field + 2 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return false;
    }
    let l4_len = total - ihl;
    let mut sum: u32 = u32::from(proto) + l4_len as u32;
    for w in ip[12..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let have = u16::from_be_bytes([ip[ihl + field], ip[ihl + field + 1]]);
    have == sum as u16 && have != 0
}

/// Writes frames to a pcap as they come.
struct Out(Option<PcapWriter<File>>);

impl Out {
    fn open(path: &Option<PathBuf>) -> Result<Out, String> {
        match path {
            Some(p) => {
                let f = File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Ok(Out(Some(PcapWriter::new(f).map_err(|e| e.to_string())?)))
            }
            None => Ok(Out(None)),
        }
    }
    fn write(&mut self, ts: std::time::Duration, frame: &[u8]) -> Result<(), String> {
        if let Some(w) = &mut self.0 {
            w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Replays the captures through the system; returns the verdicts (also
/// written as JSON lines if asked) and their summary.
pub fn replay(system: &System, hosted: &HostedConfig, files: &ReplayFiles) -> Result<(Vec<Verdict>, Summary), String> {
    let mut inputs = Vec::new();
    if let Some(p) = &files.clients_in {
        read_pcap(p, false, &mut inputs)?;
    }
    if let Some(p) = &files.uplink_in {
        read_pcap(p, true, &mut inputs)?;
    }
    inputs.sort_by_key(|i| (i.ts, i.from_uplink));
    let t0 = inputs.first().map(|i| i.ts).unwrap_or_default();
    // A fixed seed: the same captures give the same output.
    let mut p = Pipeline::build(system, hosted, [7; 32])?;
    let gateway_mac: Mac = inputs
        .iter()
        .find(|i| i.from_uplink)
        .and_then(|i| ethernet::Ethernet::parse(&i.frame[..]).ok().map(|e| e.header().src))
        .unwrap_or([0x02, 0, 0, 0, 0, 0x01]);
    if let (Some(q), Some(up)) = (&p.uplink, &hosted.uplink) {
        // Answer the uplink's ARP for the gateway before anything else.
        let mut arp = Queue::default();
        link::send_arp(&mut arp, arp_op::REPLY, up.mac, gateway_mac, up.gateway, up.mac, up.address)
            .map_err(|e| e.to_string())?;
        q.0.borrow_mut().rx.extend(arp.tx);
    }
    p.settle(Instant::ZERO)?;
    if let Some(q) = &p.uplink {
        Pipeline::take_out(q);
    }
    for q in &p.clients {
        Pipeline::take_out(q);
    }
    let mut up_out = Out::open(&files.uplink_out)?;
    let mut cl_out = Out::open(&files.clients_out)?;
    let mut json = match &files.json {
        Some(path) => Some(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let mut verdicts = Vec::new();
    let mut summary = Summary::default();
    let mut before = p.counters();
    for (n, input) in inputs.into_iter().enumerate() {
        let mut frame = input.frame;
        let mut slot = 0;
        let from = if input.from_uplink {
            if let (Some(up), true) = (&hosted.uplink, frame.len() >= ethernet::HEADER_LEN) {
                frame[..6].copy_from_slice(&up.mac);
            }
            "uplink".to_string()
        } else {
            let src = ethernet::Ethernet::parse(&frame[..])
                .ok()
                .filter(|e| e.ethertype() == ethertype::IPV4)
                .and_then(|e| link::ipv4_src(e.payload()));
            let dst = ethernet::Ethernet::parse(&frame[..])
                .ok()
                .filter(|e| e.ethertype() == ethertype::IPV4)
                .and_then(|e| link::ipv4_dst(e.payload()));
            let known = |a: Option<std::net::Ipv4Addr>| a.and_then(|a| hosted.clients.iter().position(|c| c.ip == a));
            if known(src).is_none() && known(dst).is_some() {
                // Captured on the client's side in both directions: this
                // one was going to the client, not from it.
                *summary.outcomes.entry("skipped (towards a client)".into()).or_default() += 1;
                continue;
            }
            slot = known(src).unwrap_or(0);
            if let (Some(c), true) = (hosted.clients.get(slot), frame.len() >= ethernet::HEADER_LEN) {
                frame[..6].copy_from_slice(&CLIENT_GATEWAY_MAC);
                frame[6..12].copy_from_slice(&c.mac);
            }
            match hosted.clients.get(slot) {
                Some(c) => format!("client {}", c.ip),
                None => "client (none configured)".into(),
            }
        };
        let packet = describe_frame(&frame);
        let queue = if input.from_uplink { p.uplink.as_ref() } else { p.clients.get(slot) };
        let flags = if !input.from_uplink && partial_checksum(&frame) { crate::tap::VNET_NEEDS_CSUM } else { 0 };
        if let Some(q) = queue {
            q.0.borrow_mut().rx.push_back(with_vnet(&frame, flags));
        }
        let now = Instant::from_nanos(input.ts.saturating_sub(t0).as_nanos() as u64);
        p.settle(now)?;
        let to_uplink = p.uplink.as_ref().map(Pipeline::take_out).unwrap_or_default();
        let mut to_clients = Vec::new();
        for q in &p.clients {
            to_clients.extend(Pipeline::take_out(q));
        }
        for f in &to_uplink {
            up_out.write(input.ts, f)?;
        }
        for f in &to_clients {
            cl_out.write(input.ts, f)?;
        }
        let after = p.counters();
        let moved: BTreeMap<String, u64> = after
            .iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(*before.get(k).unwrap_or(&0));
                (d > 0 && !k.ends_with("runtime.calls")).then(|| (k.clone(), d))
            })
            .collect();
        before = after;
        let dropped = moved.keys().any(|k| k.contains(".drop."));
        let outcome = match (!to_uplink.is_empty(), !to_clients.is_empty()) {
            (true, true) => "forwarded+answered",
            (true, false) if input.from_uplink => "answered",
            (true, false) => "forwarded",
            (false, true) if input.from_uplink => "forwarded",
            (false, true) => "answered",
            (false, false) if dropped => "dropped",
            (false, false) => "consumed",
        };
        *summary.outcomes.entry(outcome.into()).or_default() += 1;
        for (k, d) in moved.iter().filter(|(k, _)| k.contains(".drop.")) {
            *summary.drops.entry(k.clone()).or_default() += d;
        }
        summary.frames += 1;
        let v = Verdict {
            n: n as u64 + 1,
            t: input.ts.saturating_sub(t0).as_secs_f64(),
            from,
            packet,
            outcome,
            to_uplink: to_uplink.iter().map(|f| describe_frame(f)).collect(),
            to_clients: to_clients.iter().map(|f| describe_frame(f)).collect(),
            counters: moved,
        };
        if let Some(j) = &mut json {
            let line = serde_json::json!({
                "n": v.n, "t": v.t, "from": v.from, "packet": v.packet, "outcome": v.outcome,
                "to_uplink": v.to_uplink, "to_clients": v.to_clients, "counters": v.counters,
            });
            writeln!(j, "{line}").map_err(|e| e.to_string())?;
        }
        verdicts.push(v);
    }
    Ok((verdicts, summary))
}
