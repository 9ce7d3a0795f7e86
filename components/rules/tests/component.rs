//! The rules component bound through the harness, the test playing csum
//! upstream, the NAT downstream and the policy source.

use moat_component::{ByteConsumer, ByteProducer, Consumer, Fault, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_control::ClientEvent;
use moat_control::rules::{Action, Addr, DropMode, FlowKey, InterVm, L4, NatToRules, RulesControl, RulesToNat, slots};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict};
use moat_net::testing;
use moat_rules::{Rules, RulesConfig};
use moat_runtime::harness::{Harness, Running};

const POOL: u16 = 1;
const BUFS: u32 = 64;
const WORK: [u8; 4] = [10, 137, 0, 5];
const MAIL: [u8; 4] = [10, 137, 0, 6];
const NET: [u8; 4] = [93, 184, 216, 34];
const DNS: [u8; 4] = [10, 139, 1, 1];
const SLOT: u8 = 3;

struct Rig {
    up: Producer<PacketDesc>,
    up_free: Consumer<PacketDesc>,
    down: Consumer<PacketDesc>,
    down_free: Producer<PacketDesc>,
    pool: Pool,
    clients: ByteProducer,
    policy: ByteProducer,
    nat_in: ByteConsumer,
    nat_out: ByteProducer,
    rules: Running<Rules>,
    h: Harness,
}

/// The policy of most tests: HTTPS and DNS accepted, NTP dropped, the rest
/// dropped by the default policy.
fn messages(version: u32, drop: DropMode) -> Vec<RulesControl<'static>> {
    vec![
        RulesControl::Begin { version, keep: false },
        RulesControl::Settings {
            drop,
            inter_vm: InterVm::Drop,
            dns: heapless::Vec::from_slice(&[Addr::V4(DNS), Addr::V4([10, 139, 1, 2])]).unwrap(),
        },
        RulesControl::Default { policy: Action::Drop },
        RulesControl::Rule { text: "action=accept proto=tcp dstports=443" },
        RulesControl::Rule { text: "action=accept specialtarget=dns" },
        RulesControl::Rule { text: "action=drop proto=udp dstports=123" },
        RulesControl::Commit { version },
    ]
}

fn config(msgs: &[RulesControl<'_>]) -> RulesConfig {
    let mut c = RulesConfig::default();
    for m in msgs {
        c.push(m).unwrap();
    }
    c
}

fn rig_with(config: RulesConfig) -> Rig {
    rig_nat(config, 1024)
}

fn rig_nat(config: RulesConfig, nat_ring: u32) -> Rig {
    let mut h = Harness::new();
    let up = h.input("from_csum", 64);
    let up_free = h.output("from_csum_free", 64);
    let down = h.output("to_nat", 64);
    let down_free = h.input("to_nat_free", 64);
    let pool = h.pool("client_buffers", PoolGeometry::new(POOL, 2048, BUFS).unwrap(), false);
    let clients = h.msg_input("clients", "ClientEvent", 1024);
    let policy = h.msg_input("policy", "RulesControl", 4096);
    let nat_in = h.msg_output("to_nat_ctl", "RulesToNat", nat_ring);
    let nat_out = h.msg_input("from_nat_ctl", "NatToRules", 1024);
    let rules = h.start::<Rules>(config).unwrap();
    let mut r = Rig { up, up_free, down, down_free, pool, clients, policy, nat_in, nat_out, rules, h };
    r.client(ClientEvent::Up { slot: SLOT, ipv4: WORK, ipv6: Some([0xfd; 16]), mac: [0; 6] });
    r.client(ClientEvent::Up { slot: 4, ipv4: MAIL, ipv6: None, mac: [0; 6] });
    r.rules.call(Instant::ZERO).unwrap();
    r
}

fn rig() -> Rig {
    rig_with(config(&messages(1, DropMode::Reject)))
}

fn send_frame<M: serde::Serialize>(p: &mut ByteProducer, m: &M) {
    let mut scratch = [0u8; 1024];
    p.send_msg(m, &mut scratch).unwrap();
    let _ = p.publish();
}

impl Rig {
    fn client(&mut self, ev: ClientEvent) {
        send_frame(&mut self.clients, &ev);
    }

    fn control(&mut self, msgs: &[RulesControl<'_>]) {
        for m in msgs {
            send_frame(&mut self.policy, m);
        }
        self.rules.settle(Instant::ZERO, 16).unwrap();
    }

    /// Puts `packet` in buffer `i` and hands it to the component from `slot`.
    fn send(&mut self, i: u32, packet: &[u8], slot: u8) -> PacketDesc {
        let mut d = PacketDesc { pool: POOL, flags: 0, offset: i * 2048 + HEADROOM, len: packet.len() as u32, meta: 0 };
        Meta { iface: Iface::client(slot).unwrap(), verdict: Verdict::None }.store(&mut d);
        self.pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.up.push(&d).unwrap();
        let _ = self.up.publish();
        d
    }

    fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
        let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        let _ = c.release();
        v
    }

    fn nat_messages(&mut self) -> Vec<RulesToNat> {
        let mut buf = [0u8; 1024];
        let mut out = Vec::new();
        while let Some(m) = self.nat_in.recv_msg::<RulesToNat>(&mut buf).unwrap() {
            out.push(m);
        }
        let _ = self.nat_in.release();
        out
    }
}

fn verdict(d: &PacketDesc) -> Verdict {
    Meta::of(d).unwrap().verdict
}

#[test]
fn verdicts_travel_in_meta_and_drops_go_back_upstream() {
    let mut r = rig();
    let https = r.send(0, &testing::tcp_v4(WORK, NET, 40000, 443, b"hello"), SLOT);
    let dns = r.send(1, &testing::udp_v4(WORK, DNS, 5353, 53, b"q"), SLOT);
    let ntp = r.send(2, &testing::udp_v4(WORK, NET, 123, 123, b"t"), SLOT);
    let ping = r.send(3, &testing::ping_v4(WORK, NET, 1, b"p"), SLOT);
    let spoofed = r.send(4, &testing::tcp_v4(MAIL, NET, 40000, 443, b"x"), SLOT);
    let to_mail = r.send(5, &testing::tcp_v4(WORK, MAIL, 40000, 443, b"x"), SLOT);
    let garbage = r.send(6, &[0x45, 0, 0, 99, 1, 2, 3], SLOT);
    let stranger = r.send(7, &testing::tcp_v4([10, 137, 0, 9], NET, 1, 443, b"x"), 9);
    let v6 = r.send(8, &testing::tcp_v6([0xfd; 16], [0x20; 16], 1, 443, b"six"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();

    let out = Rig::drain(&mut r.down);
    let got: Vec<(u32, Verdict)> = out.iter().map(|d| (d.offset, verdict(d))).collect();
    assert_eq!(
        got,
        [
            (https.offset, Verdict::Accept),
            (dns.offset, Verdict::Dns),
            (ntp.offset, Verdict::Reject),
            (ping.offset, Verdict::Reject),
            (v6.offset, Verdict::Accept),
        ]
    );
    for (d, sent) in out.iter().zip([https, dns, ntp, ping, v6]) {
        assert_eq!(Meta::of(d).unwrap().iface, Iface::client(SLOT).unwrap(), "the interface stays");
        assert_eq!(*d, PacketDesc { meta: d.meta, ..sent }, "only the verdict changes");
    }
    let back = Rig::drain(&mut r.up_free);
    assert_eq!(back, [spoofed, to_mail, garbage, stranger], "silent drops return at once, untouched");

    let s = r.rules.status();
    assert_eq!(s["packets"], 9);
    assert_eq!(s["verdict.accept"], 2);
    assert_eq!(s["verdict.dns"], 1);
    assert_eq!(s["verdict.reject"], 2);
    assert_eq!(s["verdict.drop"], 3, "spoofed, inter-VM, unknown client");
    assert_eq!(s["drop.spoofed"], 1);
    assert_eq!(s["drop.inter_vm"], 1);
    assert_eq!(s["drop.unknown_client"], 1);
    assert_eq!(s["drop.malformed.truncated"], 1);
    assert_eq!(s["hits.default.0"], 2, "HTTPS over IPv4 and IPv6");
    assert_eq!(s["hits.default.1"], 1);
    assert_eq!(s["hits.default.2"], 1);
    assert_eq!(s["hits.default.policy"], 1);
    assert_eq!(s["held"], 5);
    assert_eq!(s["policy.version"], 1);
}

#[test]
fn silent_drop_mode_returns_refused_packets_upstream() {
    let mut r = rig_with(config(&messages(1, DropMode::Silent)));
    let ntp = r.send(0, &testing::udp_v4(WORK, NET, 123, 123, b"t"), SLOT);
    let ok = r.send(1, &testing::tcp_v4(WORK, NET, 1, 443, b"t"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.down).iter().map(|d| d.offset).collect::<Vec<_>>(), [ok.offset]);
    assert_eq!(Rig::drain(&mut r.up_free), [ntp]);
}

#[test]
fn buffers_come_back_the_way_they_came() {
    let mut r = rig();
    let d = r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    let out = Rig::drain(&mut r.down);
    r.down_free.push(&out[0]).unwrap();
    r.down_free.push(&out[0]).unwrap(); // twice
    r.down_free.push(&PacketDesc { offset: 5 * 2048 + HEADROOM, ..d }).unwrap(); // never lent
    let _ = r.down_free.publish();
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.up_free), [out[0]]);
    let s = r.rules.status();
    assert_eq!((s["error.bad_return"], s["held"]), (2, 0));
}

#[test]
fn bad_descriptors_and_meta_are_counted() {
    let mut r = rig();
    let d = r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.up.push(&d).unwrap(); // the same buffer again
    r.up.push(&PacketDesc { pool: 9, ..d }).unwrap();
    let mut judged = r.send(1, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    // Already judged upstream: someone is broken.
    Meta { iface: Iface::client(SLOT).unwrap(), verdict: Verdict::Accept }.store(&mut judged);
    let mut uplink = PacketDesc { offset: 2 * 2048 + HEADROOM, ..d };
    Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut uplink);
    r.up.push(&judged).unwrap();
    r.up.push(&uplink).unwrap();
    let _ = r.up.publish();
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.down).len(), 2, "the first copy of buffer 0 and buffer 1");
    assert_eq!(Rig::drain(&mut r.up_free), [uplink]);
    let s = r.rules.status();
    assert_eq!((s["drop.bad_descriptor"], s["drop.bad_meta"]), (3, 1), "duplicate, wrong pool, judged twice; uplink");
}

#[test]
fn policy_replacement_through_the_ring_tells_the_nat() {
    let mut r = rig();
    let old = r.nat_messages();
    assert!(old.is_empty(), "no change yet: {old:?}");
    r.control(&[
        RulesControl::Begin { version: 2, keep: true },
        RulesControl::Client { ipv4: Some(WORK), ipv6: None, name: None, policy: Action::Drop },
        RulesControl::Rule { text: "action=accept proto=tcp dstports=22" },
        RulesControl::Commit { version: 2 },
    ]);
    let s = r.rules.status();
    assert_eq!((s["policy.version"], s["policy.swaps"], s["policy.entries"]), (2, 2, 2));
    let msgs = r.nat_messages();
    let [RulesToNat::Changed { version: 2, epoch, slots: map }] = msgs.as_slice() else { panic!("{msgs:?}") };
    assert!(slots::contains(map, SLOT), "work's rules changed");
    assert!(!slots::contains(map, 4), "mail keeps the default entry, unchanged");

    // The NAT asks about work's connections; HTTPS is refused now, SSH not.
    let flows = heapless::Vec::from_slice(&[
        FlowKey { dst: Addr::V4(NET), proto: 6, l4: L4::Port(443) },
        FlowKey { dst: Addr::V4(NET), proto: 6, l4: L4::Port(22) },
        FlowKey { dst: Addr::V4(MAIL), proto: 6, l4: L4::Port(22) },
    ])
    .unwrap();
    send_frame(&mut r.nat_out, &NatToRules::Check { slot: SLOT, batch: 77, flows });
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(
        r.nat_messages(),
        [RulesToNat::Denied { epoch: *epoch, slot: SLOT, batch: 77, denied: 0b101 }],
        "443 refused by the new rules, mail refused as inter-VM"
    );

    // Packets follow the new version at once.
    r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.send(1, &testing::tcp_v4(WORK, NET, 1, 22, b"x"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    let v: Vec<Verdict> = Rig::drain(&mut r.down).iter().map(verdict).collect();
    assert_eq!(v, [Verdict::Reject, Verdict::Accept]);
    assert_eq!(r.rules.status()["hits.10.137.0.5.0"], 1);
}

#[test]
fn broken_staging_keeps_the_old_policy() {
    let mut r = rig();
    r.control(&[
        RulesControl::Begin { version: 5, keep: false },
        RulesControl::Rule { text: "action=accept" }, // before any entry
        RulesControl::Commit { version: 5 },
    ]);
    let s = r.rules.status();
    assert_eq!((s["policy.version"], s["policy.rejected"], s["ctl.refused"]), (1, 1, 2));
    assert_eq!(s["policy.last_reject"], moat_rules::policy::StageError::NoEntry as u64);
    r.control(&[RulesControl::Begin { version: 6, keep: false }, RulesControl::Commit { version: 7 }]);
    assert_eq!(r.rules.status()["policy.last_reject"], moat_rules::policy::StageError::Version as u64);
    assert_eq!(r.rules.status()["policy.version"], 1);
    // A garbage frame is counted, not fatal.
    r.policy.send(&[0xff, 0xff, 0xff]).unwrap();
    let _ = r.policy.publish();
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(r.rules.status()["ctl.bad_frame"], 1);
}

#[test]
fn a_rule_that_does_not_parse_fails_its_client_closed() {
    let mut r = rig();
    r.control(&[
        RulesControl::Begin { version: 2, keep: true },
        RulesControl::Client { ipv4: Some(WORK), ipv6: None, name: None, policy: Action::Accept },
        RulesControl::Rule { text: "action=accept proto=tcp dstports=443" },
        RulesControl::Rule { text: "action=accept proto=tcp dstports=99999" },
        RulesControl::Rule { text: "action=accept" },
        RulesControl::Commit { version: 2 },
    ]);
    let s = r.rules.status();
    assert_eq!(s["policy.version"], 2, "the policy as a whole is fine");
    assert_eq!(s["policy.rule_errors"], 1);
    assert_eq!(
        (s["error.10.137.0.5.rule"], s["error.10.137.0.5.field"], s["error.10.137.0.5.kind"]),
        (1, moat_rules::lang::Key::Dstports.code().into(), moat_rules::lang::ErrorKind::PortRange as u64)
    );
    r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.send(1, &testing::tcp_v4(MAIL, NET, 1, 443, b"x"), 4);
    r.rules.call(Instant::ZERO).unwrap();
    let v: Vec<Verdict> = Rig::drain(&mut r.down).iter().map(verdict).collect();
    assert_eq!(v, [Verdict::Reject, Verdict::Accept], "work drops everything; mail is unaffected");
}

#[test]
fn one_compile_per_call() {
    let mut r = rig();
    for v in [2, 3] {
        for m in messages(v, DropMode::Reject) {
            send_frame(&mut r.policy, &m);
        }
    }
    let out = r.rules.call(Instant::ZERO).unwrap();
    assert!(out.again, "a second commit waits for the next call");
    assert_eq!(r.rules.status()["policy.version"], 2);
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(r.rules.status()["policy.version"], 3);
}

#[test]
fn host_addresses_arrive_at_run_time() {
    let mut r = rig();
    r.control(&[
        RulesControl::Begin { version: 2, keep: false },
        RulesControl::Default { policy: Action::Drop },
        RulesControl::Rule { text: "action=accept dsthost=example.com proto=tcp dstports=443" },
        RulesControl::Commit { version: 2 },
    ]);
    assert_eq!(r.rules.status()["dsthost.unresolved"], 1);
    assert_eq!(r.rules.status()["dsthost.example.com.addrs"], 0);
    r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.down).iter().map(verdict).collect::<Vec<_>>(), [Verdict::Reject]);
    let _ = r.nat_messages();
    r.control(&[RulesControl::HostAddrs {
        name: "example.com",
        addrs: heapless::Vec::from_slice(&[Addr::V4(NET)]).unwrap(),
    }]);
    assert_eq!(r.rules.status()["dsthost.unresolved"], 0);
    let msgs = r.nat_messages();
    assert!(matches!(&msgs[..], [RulesToNat::Changed { slots, .. }] if slots::contains(slots, SLOT)), "{msgs:?}");
    r.send(1, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.down).iter().map(verdict).collect::<Vec<_>>(), [Verdict::Accept]);
}

#[test]
fn faulty_peers_are_faults_naming_the_port() {
    let mut r = rig();
    r.h.scribble("from_csum", Some(1000), None);
    assert_eq!(r.rules.call(Instant::ZERO).unwrap_err(), Fault::Peer("from_csum"));
    let mut r = rig();
    r.h.scribble("policy", Some(1 << 20), None);
    assert_eq!(r.rules.call(Instant::ZERO).unwrap_err(), Fault::Peer("policy"));
}

#[test]
fn empty_config_drops_everything() {
    let mut r = rig_with(RulesConfig::default());
    r.send(0, &testing::tcp_v4(WORK, NET, 1, 443, b"x"), SLOT);
    r.rules.call(Instant::ZERO).unwrap();
    assert_eq!(Rig::drain(&mut r.down).iter().map(verdict).collect::<Vec<_>>(), [Verdict::Reject]);
    assert_eq!(r.rules.status()["policy.version"], 0);
}

#[test]
fn bad_config_is_a_config_fault() {
    let mut h = Harness::new();
    let _ = (h.input::<PacketDesc>("from_csum", 64), h.output::<PacketDesc>("from_csum_free", 64));
    let _ = (h.output::<PacketDesc>("to_nat", 64), h.input::<PacketDesc>("to_nat_free", 64));
    h.pool("client_buffers", PoolGeometry::new(POOL, 2048, BUFS).unwrap(), false);
    let _ = (h.msg_input("clients", "ClientEvent", 1024), h.msg_input("policy", "RulesControl", 1024));
    let _ = (h.msg_output("to_nat_ctl", "RulesToNat", 1024), h.msg_input("from_nat_ctl", "NatToRules", 1024));
    let mut c = RulesConfig::default();
    c.policy.extend_from_slice(&[0xff, 0xff]).unwrap();
    assert_eq!(h.start::<Rules>(c).err(), Some(Fault::Config("policy")));
}

#[test]
fn a_full_nat_ring_holds_the_news_until_there_is_room() {
    // 64 bytes: room for one `Changed` (4 + 42 bytes), not two.
    let mut r = rig_nat(config(&messages(1, DropMode::Reject)), 64);
    let change = |v: u32, port: &'static str| {
        vec![
            RulesControl::Begin { version: v, keep: true },
            RulesControl::Client { ipv4: Some(WORK), ipv6: None, name: None, policy: Action::Drop },
            RulesControl::Rule { text: port },
            RulesControl::Commit { version: v },
        ]
    };
    // `control` settles: the component must not ask to run again while the
    // news does not fit.
    r.control(&change(2, "action=accept proto=tcp dstports=22"));
    r.control(&change(3, "action=accept proto=tcp dstports=23"));
    let mut buf = [0u8; 1024];
    let first = r.nat_in.recv_msg::<RulesToNat>(&mut buf).unwrap();
    assert!(matches!(first, Some(RulesToNat::Changed { version: 2, .. })), "{first:?}");
    assert_eq!(r.nat_in.recv_msg::<RulesToNat>(&mut buf).unwrap(), None);
    assert!(r.nat_in.release().needed(), "the component asked to be woken when the NAT makes room");
    r.rules.call(Instant::ZERO).unwrap();
    let second = r.nat_messages();
    assert!(
        matches!(second.as_slice(), [RulesToNat::Changed { version: 3, slots, .. }] if slots::contains(slots, SLOT)),
        "{second:?}"
    );
}

#[test]
fn a_super_packet_is_judged_by_its_headers_and_keeps_its_segmentation() {
    use moat_net::meta::{Gso, GsoKind};
    let mut r = rig();
    // What rules reads is the headers, so a small packet stands in for a
    // super-packet here: the verdict is the same, and the segmentation bits
    // of `meta` (moat_net::meta) travel on to the NAT untouched.
    let gso = Gso::new(GsoKind::TcpV4, 1448);
    let packets = [testing::tcp_v4(WORK, NET, 40000, 443, b"x"), testing::udp_v4(WORK, NET, 1, 123, b"t")];
    for (i, p) in packets.iter().enumerate() {
        let mut d =
            PacketDesc { pool: POOL, flags: 0, offset: i as u32 * 2048 + HEADROOM, len: p.len() as u32, meta: 0 };
        Meta { iface: Iface::client(SLOT).unwrap(), verdict: Verdict::None }.store(&mut d);
        Gso::store(gso, &mut d);
        r.pool.packet_mut(&d).unwrap().copy_from_slice(p);
        r.up.push(&d).unwrap();
    }
    let _ = r.up.publish();
    r.rules.call(Instant::ZERO).unwrap();
    let out = Rig::drain(&mut r.down);
    assert_eq!(out.iter().map(verdict).collect::<Vec<_>>(), [Verdict::Accept, Verdict::Reject]);
    for d in &out {
        assert_eq!(Gso::of(d), Ok(gso), "segmentation kept");
        assert_eq!(Meta::of(d).unwrap().iface, Iface::client(SLOT).unwrap());
    }
}
