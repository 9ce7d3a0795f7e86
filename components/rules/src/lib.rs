//! `rules`: the Qubes firewall policy, as a pure classifier.
//!
//! Every outbound packet from a client (IP layer, checksums verified by
//! `csum`) is judged by the rules of its client — first match wins, then the
//! client's `policy` — and leaves with a verdict in its descriptor's `meta`
//! ([`moat_net::meta::Verdict`]):
//!
//! * **Accept** and **Dns** go on to the NAT. Dns is an accepted TCP/UDP
//!   packet to port 53 of one of the DNS addresses `specialtarget=dns` means
//!   (whichever rule accepted it): the NAT redirects it to the uplink's DNS
//!   servers.
//! * **Reject** (a drop under the default [`DropMode::Reject`]) goes on to
//!   the NAT too, which owns writable client buffers and turns it into an
//!   ICMP administratively-prohibited answer to the client — what Linux
//!   sys-firewall's `reject with icmp type admin-prohibited` does.
//! * **Drop** (silent drops, spoofed sources, client-to-client traffic,
//!   malformed packets) goes straight back upstream on `from_csum_free` and
//!   is counted.
//!
//! Because every outbound packet is judged, a new policy applies at once to
//! open connections too; the NAT learns which of its connections the new
//! rules refuse through the exchange described in
//! [`moat_control::rules`] (ports `to_nat_ctl` / `from_nat_ctl`).
//!
//! Besides the rules: a packet whose source is not its client's address is
//! dropped (anti-spoofing is the netback's job; this is defence in depth),
//! and traffic to another client's address is dropped silently unless the
//! policy says [`InterVm::Rules`] (Linux sys-firewall drops it).
//!
//! Modules: [`lang`] (the rule language), [`policy`] (a policy in plain
//! bytes), [`compile`] (the classifier), [`reference`](mod@reference) (the interpreter the
//! classifier is tested against), [`hosts`] (`dsthost` addresses),
//! [`engine`] (decisions without rings), [`flow`] (what the rules look at in
//! a packet).
//!
//! # Memory
//!
//! No heap; everything large lives in state ports sized by constants:
//! `policies` (2 × [`PolicyStore`], about 78 KiB each), `tables`
//! (2 × [`Tables`], about 210 KiB each), `scratch` (one [`Scratch`]),
//! `hosts` ([`HostTable`], [`hosts::MAX_HOSTS`] names ×
//! [`hosts::MAX_HOST_ADDRS`] addresses), `client_table` (254 clients and
//! their VM names), `hits` (a counter per rule). Capacities per policy are in
//! [`policy`]: 64 client entries plus the default, 2048 rules, 64 `dsthost`
//! names. The configuration blob holds at most [`CONFIG_BYTES`] (8 KiB) of
//! encoded policy. Stack: `init` receives that blob by value and `notified`
//! keeps two 1 KiB frame buffers and a 4 KiB swap memo, so give the component
//! at least 32 KiB.
//!
//! # Status
//!
//! `packets`, `held`, `verdict.{accept,drop,reject,dns}`,
//! `drop.{spoofed,unknown_client,inter_vm,routed,bad_descriptor,bad_meta}`,
//! `drop.malformed.<reason>` (moat-net's `Error::name`),
//! `error.bad_return`, `policy.{version,epoch,swaps,rejected,last_reject,
//! rule_errors,staging,entries,rules,nodes,segments}` (`last_reject`: why the
//! last refused commit was refused, a [`policy::StageError`] as a number),
//! `error.{host_addrs,client_event}`, `dsthost.unresolved`
//! and `dsthost.<name>.addrs` (0: the name's rules match nothing),
//! `hits.<client>.<n>` (rule `n`, numbered from 0 as in QubesDB) and
//! `hits.<client>.policy`, `error.<client>.{rule,field,kind}` for a client
//! failed closed by a rule that did not parse (field: [`lang::Key::code`],
//! kind: [`lang::ErrorKind`] as a number), `ctl.{bad_frame,refused}`,
//! `nat.{checks,denied}`. `<client>` is the entry's VM name, else its
//! address, else `default`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compile;
pub mod engine;
pub mod flow;
pub mod hosts;
pub mod lang;
pub mod policy;
pub mod reference;

use moat_component::{
    BindError, Binder, Component, Context, Custody, Fault, MsgRx, MsgTx, PacketDesc, Pool, PortDecl, Ports, Rx, Status,
    Tx,
};
use moat_control::ClientEvent;
pub use moat_control::rules::{DropMode, InterVm};
use moat_control::rules::{NatToRules, RulesControl, RulesToNat};
use moat_net::meta::{Meta, Verdict};
use serde::{Deserialize, Serialize};

pub use compile::{Scratch, Tables};
pub use engine::{ClientTable, Engine, Hits, State};
pub use hosts::HostTable;
pub use policy::PolicyStore;

/// Most bytes of encoded policy the configuration blob carries. The
/// contract hands `init` its configuration by value, so it stays small
/// enough for a modest stack; typical policies take a few hundred bytes, and
/// a larger one is delivered at run time on the `policy` ring instead (the
/// same messages).
pub const CONFIG_BYTES: usize = 8192;
/// Largest control frame the component reads.
const FRAME: usize = 1024;

/// The configuration blob: the initial policy, as the control messages
/// (`Begin` … `Commit`, postcard, back to back) that would deliver it on the
/// `policy` ring. `moat-policy` builds it from policy files; an empty blob
/// starts with a policy that drops everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesConfig {
    /// Encoded [`RulesControl`] messages. `system.toml` leaves it out
    /// (`config = {}`): `moat check` fills it from the system's policy files
    /// with `moat_policy::compile_files`.
    #[serde(default)]
    pub policy: heapless::Vec<u8, CONFIG_BYTES>,
}

/// The encoded policy does not fit [`CONFIG_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigFull;

impl RulesConfig {
    /// Appends one message.
    pub fn push(&mut self, msg: &RulesControl<'_>) -> Result<(), ConfigFull> {
        let mut buf = [0u8; FRAME];
        let bytes = postcard::to_slice(msg, &mut buf).map_err(|_| ConfigFull)?;
        self.policy.extend_from_slice(bytes).map_err(|_| ConfigFull)
    }

    /// Feeds every message to `f`, stopping at the first error.
    pub fn replay<E>(&self, mut f: impl FnMut(&RulesControl<'_>) -> Result<(), E>, decode_error: E) -> Result<(), E> {
        let mut rest = &self.policy[..];
        while !rest.is_empty() {
            let Ok((msg, tail)) = postcard::take_from_bytes::<RulesControl<'_>>(rest) else {
                return Err(decode_error);
            };
            f(&msg)?;
            rest = tail;
        }
        Ok(())
    }
}

/// The rules component's ports (names as in `docs/graph.md`).
pub struct RulesPorts {
    from_csum: Rx<PacketDesc>,
    from_csum_free: Tx<PacketDesc>,
    to_nat: Tx<PacketDesc>,
    to_nat_free: Rx<PacketDesc>,
    client_buffers: Pool,
    clients: MsgRx,
    policy: MsgRx,
    to_nat_ctl: MsgTx,
    from_nat_ctl: MsgRx,
    state: Option<State<'static>>,
}

fn one<T>(s: &'static mut [T], name: &'static str) -> Result<&'static mut T, BindError> {
    s.first_mut().ok_or(BindError::Layout(name))
}

impl Ports for RulesPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("from_csum", "PacketDesc"),
        PortDecl::tx("from_csum_free", "PacketDesc"),
        PortDecl::tx("to_nat", "PacketDesc"),
        PortDecl::rx("to_nat_free", "PacketDesc"),
        PortDecl::pool_ro("client_buffers"),
        PortDecl::rx("clients", ClientEvent::NAME),
        PortDecl::rx("policy", RulesControl::NAME),
        PortDecl::tx("to_nat_ctl", RulesToNat::NAME),
        PortDecl::rx("from_nat_ctl", NatToRules::NAME),
        PortDecl::state("policies"),
        PortDecl::state("tables"),
        PortDecl::state("scratch"),
        PortDecl::state("hosts"),
        PortDecl::state("client_table"),
        PortDecl::state("hits"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        let state = State {
            policies: b.state("policies", 2)?,
            tables: b.state("tables", 2)?,
            scratch: one(b.state("scratch", 1)?, "scratch")?,
            hosts: one(b.state("hosts", 1)?, "hosts")?,
            clients: one(b.state("client_table", 1)?, "client_table")?,
            hits: one(b.state("hits", 1)?, "hits")?,
        };
        Ok(RulesPorts {
            from_csum: b.rx("from_csum")?,
            from_csum_free: b.tx("from_csum_free")?,
            to_nat: b.tx("to_nat")?,
            to_nat_free: b.rx("to_nat_free")?,
            client_buffers: b.pool("client_buffers")?,
            clients: b.msg_rx("clients", ClientEvent::NAME)?,
            policy: b.msg_rx("policy", RulesControl::NAME)?,
            to_nat_ctl: b.msg_tx("to_nat_ctl", RulesToNat::NAME)?,
            from_nat_ctl: b.msg_rx("from_nat_ctl", NatToRules::NAME)?,
            state: Some(state),
        })
    }
}

#[derive(Default)]
struct Counters {
    packets: u64,
    malformed: [u64; moat_net::Error::ALL.len()],
    routed: u64,
    bad_descriptor: u64,
    bad_meta: u64,
    bad_return: u64,
    bad_frame: u64,
    refused: u64,
    checks: u64,
    denied: u64,
}

/// Sends `msg`, or, if it does not fit, asks to be woken by the reader's
/// next release (trying once more if it released meanwhile).
fn send_or_arm<M: Serialize>(tx: &mut MsgTx, msg: &M, scratch: &mut [u8]) -> Result<bool, Fault> {
    if tx.send(msg, scratch)? {
        return Ok(true);
    }
    if tx.wait_space()? {
        return tx.send(msg, scratch);
    }
    Ok(false)
}

/// The component.
pub struct Rules {
    engine: Engine<'static>,
    custody: Custody,
    reply: Option<RulesToNat>,
    n: Counters,
}

impl Rules {
    /// The decisions (tests inspect them).
    pub fn engine(&self) -> &Engine<'static> {
        &self.engine
    }

    fn control(&mut self, p: &mut RulesPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut buf = [0u8; FRAME];
        for _ in 0..cx.budget() {
            match p.clients.recv::<ClientEvent>(&mut buf)? {
                None => break,
                Some(Ok(ev)) => self.engine.client_event(&ev),
                Some(Err(_)) => self.n.bad_frame += 1,
            }
        }
        for _ in 0..cx.budget() {
            match p.policy.recv::<RulesControl<'_>>(&mut buf)? {
                None => break,
                Some(Err(_)) => self.n.bad_frame += 1,
                Some(Ok(msg)) => {
                    let commit = matches!(msg, RulesControl::Commit { .. });
                    if self.engine.control(&msg).is_err() {
                        self.n.refused += 1;
                    }
                    if commit {
                        // A compile is the most expensive thing this component
                        // does: at most one per call.
                        cx.again();
                        break;
                    }
                }
            }
        }
        self.answer_nat(p, cx)
    }

    /// Sends what the NAT must hear: a pending answer first, then answers to
    /// new checks, then the slots whose rules changed.
    fn answer_nat(&mut self, p: &mut RulesPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut scratch = [0u8; 128];
        let mut buf = [0u8; FRAME];
        for _ in 0..cx.budget() {
            if let Some(reply) = self.reply.take()
                && !p.to_nat_ctl.send(&reply, &mut scratch)?
            {
                self.reply = Some(reply);
                break;
            }
            let Some(msg) = p.from_nat_ctl.recv::<NatToRules>(&mut buf)? else { break };
            let Ok(NatToRules::Check { slot, batch, flows }) = msg else {
                self.n.bad_frame += 1;
                continue;
            };
            let mut denied = 0u16;
            for (i, f) in flows.iter().enumerate() {
                if self.engine.denies(slot, f) {
                    denied |= 1 << i;
                    self.n.denied += 1;
                }
            }
            self.n.checks += flows.len() as u64;
            self.reply = Some(RulesToNat::Denied { epoch: self.engine.epoch(), slot, batch, denied });
        }
        if let Some(reply) = self.reply.take()
            && !send_or_arm(&mut p.to_nat_ctl, &reply, &mut scratch)?
        {
            self.reply = Some(reply);
        }
        if let Some(map) = self.engine.take_changed() {
            let msg = RulesToNat::Changed { version: self.engine.version(), epoch: self.engine.epoch(), slots: map };
            if !send_or_arm(&mut p.to_nat_ctl, &msg, &mut scratch)? {
                self.engine.untake_changed(map);
            }
        }
        p.to_nat_ctl.flush(cx);
        Ok(())
    }

    /// Sends a buffer back upstream (it was received, so it is held).
    fn give_back(&mut self, p: &mut RulesPorts, d: &PacketDesc) -> Result<(), Fault> {
        if self.custody.give_back(d).is_ok() && !p.from_csum_free.push(d)? {
            // Upstream's free ring holds every buffer it lent us.
            return Err(p.from_csum_free.fault());
        }
        Ok(())
    }

    fn packets(&mut self, p: &mut RulesPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.to_nat_free.pop()? else { break };
            if self.custody.give_back(&d).is_err() {
                self.n.bad_return += 1;
                continue;
            }
            if !p.from_csum_free.push(&d)? {
                return Err(p.from_csum_free.fault());
            }
        }
        let mut room = p.to_nat.free()?;
        for _ in 0..cx.budget() {
            if room == 0 {
                // Wake me when the NAT frees space; the input stays armed.
                let _ = p.to_nat.wait_space()?;
                break;
            }
            let Some(mut d) = p.from_csum.pop()? else { break };
            if self.custody.receive(&d).is_err() {
                self.n.bad_descriptor += 1;
                continue;
            }
            self.n.packets += 1;
            let meta = Meta::of(&d).ok().filter(|m| m.verdict == Verdict::None);
            let Some((mut meta, slot)) = meta.and_then(|m| Some((m, m.iface.client_index()?))) else {
                self.n.bad_meta += 1;
                self.give_back(p, &d)?;
                continue;
            };
            // The pool is read-only here and the buffer ours until we pass
            // the descriptor on (the ownership rule), so the view reads
            // bytes nobody else writes meanwhile.
            let flow = match p.client_buffers.packet(&d) {
                Ok(pkt) => flow::extract(pkt),
                Err(_) => Err(flow::FlowError::Malformed(moat_net::Error::Truncated)),
            };
            let (src, key) = match flow {
                Ok(f) => f,
                Err(e) => {
                    match e {
                        flow::FlowError::Malformed(e) => self.n.malformed[e.index()] += 1,
                        flow::FlowError::Routed => self.n.routed += 1,
                    }
                    self.give_back(p, &d)?;
                    continue;
                }
            };
            let (verdict, _) = self.engine.judge(slot, src, &key);
            if verdict == Verdict::Drop {
                self.give_back(p, &d)?;
                continue;
            }
            meta.verdict = verdict;
            meta.store(&mut d);
            let pushed = p.to_nat.push(&d)?;
            debug_assert!(pushed, "room was checked");
            room -= 1;
        }
        p.to_nat.flush(cx);
        p.from_csum_free.flush(cx);
        p.from_csum.finish(cx)?;
        // Returns wait for a batch: they need not wake rules one at a time.
        p.to_nat_free.finish_returns(cx)
    }
}

impl Component for Rules {
    const NAME: &'static str = "rules";
    type Config = RulesConfig;
    type Ports = RulesPorts;

    fn init(config: RulesConfig, ports: &mut RulesPorts, _cx: &mut Context) -> Result<Self, Fault> {
        let state = ports.state.take().ok_or(Fault::Internal("rules started twice"))?;
        let mut engine = Engine::new(state).map_err(Fault::Config)?;
        config
            .replay(|m| engine.control(m).map(|_| ()).map_err(|_| Fault::Config("policy")), Fault::Config("policy"))?;
        Ok(Rules {
            engine,
            custody: Custody::new(*ports.client_buffers.geometry()),
            reply: None,
            n: Counters::default(),
        })
    }

    fn notified(&mut self, p: &mut RulesPorts, cx: &mut Context) -> Result<(), Fault> {
        self.control(p, cx)?;
        self.packets(p, cx)?;
        p.clients.finish(cx)?;
        p.policy.finish(cx)?;
        p.from_nat_ctl.finish(cx)
    }

    fn status(&self, out: &mut dyn Status) {
        let n = &self.n;
        out.put("packets", n.packets);
        out.put("held", u64::from(self.custody.held()));
        for e in moat_net::Error::ALL {
            let mut key = heapless::String::<40>::new();
            let _ = core::fmt::Write::write_fmt(&mut key, format_args!("drop.malformed.{}", e.name()));
            out.put(&key, n.malformed[e.index()]);
        }
        out.put("drop.routed", n.routed);
        out.put("drop.bad_descriptor", n.bad_descriptor);
        out.put("drop.bad_meta", n.bad_meta);
        out.put("error.bad_return", n.bad_return);
        out.put("ctl.bad_frame", n.bad_frame);
        out.put("ctl.refused", n.refused);
        out.put("nat.checks", n.checks);
        out.put("nat.denied", n.denied);
        self.engine.status(out);
    }

    fn state_bytes(_config: &RulesConfig, out: &mut dyn FnMut(&'static str, usize)) {
        use core::mem::size_of;
        out("policies", 2 * size_of::<PolicyStore>());
        out("tables", 2 * size_of::<Tables>());
        out("scratch", size_of::<Scratch>());
        out("hosts", size_of::<HostTable>());
        out("client_table", size_of::<ClientTable>());
        out("hits", size_of::<Hits>());
    }
}
