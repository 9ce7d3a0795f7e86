//! The NAT and the real rules component, each bound through its own
//! harness, the test carrying descriptors and control frames between their
//! rings as the runtime would (packet bytes are copied: each harness has
//! its own pool). A policy swap in the rules removes exactly the
//! connections the new policy forbids.

mod common;

use common::{REAL_DNS, SERVER, UPLINK, client_ip, config, tcp, tcpf, tuple, udp};
use moat_component::{ByteConsumer, ByteProducer, Consumer, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_control::ClientEvent;
use moat_control::rules::{Action, NatToRules, RulesControl, RulesToNat};
use moat_nat::Nat;
use moat_net::icmpv4::Icmpv4;
use moat_net::ipv4::Ipv4;
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_rules::{Rules, RulesConfig};
use moat_runtime::harness::{Harness, Running};

const CLIENT_POOL: u16 = 1;
const UPLINK_POOL: u16 = 2;
const BUFS: u32 = 64;
const OTHER: [u8; 4] = [1, 1, 1, 1];
const DNS: [u8; 4] = [10, 139, 1, 1];

struct RulesSide {
    from_csum: Producer<PacketDesc>,
    from_csum_free: Consumer<PacketDesc>,
    to_nat: Consumer<PacketDesc>,
    to_nat_free: Producer<PacketDesc>,
    pool: Pool,
    clients: ByteProducer,
    policy: ByteProducer,
    to_nat_ctl: ByteConsumer,
    from_nat_ctl: ByteProducer,
    rules: Running<Rules>,
}

struct NatSide {
    from_rules: Producer<PacketDesc>,
    from_rules_free: Consumer<PacketDesc>,
    to_uplink: Consumer<PacketDesc>,
    to_uplink_free: Producer<PacketDesc>,
    from_csum: Producer<PacketDesc>,
    from_csum_free: Consumer<PacketDesc>,
    to_clients: Consumer<PacketDesc>,
    to_clients_free: Producer<PacketDesc>,
    clients: ByteProducer,
    from_rules_ctl: ByteProducer,
    to_rules_ctl: ByteConsumer,
    client_pool: Pool,
    uplink_pool: Pool,
    nat: Running<Nat>,
}

struct Pair {
    r: RulesSide,
    n: NatSide,
    next_buf: u32,
    now: Instant,
    /// Every control message carried, in order, for the assertions.
    to_nat: Vec<RulesToNat>,
    to_rules: Vec<NatToRules>,
}

/// Version 1: everything accepted; client 1 has an entry of its own that
/// no version changes.
fn policy(version: u32, forbid_other: bool) -> Vec<RulesControl<'static>> {
    let mut m = vec![RulesControl::Begin { version, keep: false }, RulesControl::Default { policy: Action::Accept }];
    if forbid_other {
        m.push(RulesControl::Rule { text: "action=drop dst4=1.1.1.1/32" });
    }
    m.push(RulesControl::Client { ipv4: Some(client_ip(1)), ipv6: None, name: None, policy: Action::Accept });
    m.push(RulesControl::Commit { version });
    m
}

fn send_frame<M: serde::Serialize>(p: &mut ByteProducer, m: &M) {
    p.send_msg(m, &mut [0u8; 1024]).unwrap();
    let _ = p.publish();
}

fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
    let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
    let _ = c.release();
    v
}

fn pair() -> Pair {
    let mut h = Harness::new();
    let from_csum = h.input("from_csum", 64);
    let from_csum_free = h.output("from_csum_free", 64);
    let to_nat = h.output("to_nat", 64);
    let to_nat_free = h.input("to_nat_free", 64);
    let pool = h.pool("client_buffers", PoolGeometry::new(CLIENT_POOL, 2048, BUFS).unwrap(), false);
    let clients = h.msg_input("clients", "ClientEvent", 1024);
    let policy_ring = h.msg_input("policy", "RulesControl", 4096);
    let to_nat_ctl = h.msg_output("to_nat_ctl", "RulesToNat", 1024);
    let from_nat_ctl = h.msg_input("from_nat_ctl", "NatToRules", 1024);
    let mut cfg = RulesConfig::default();
    for m in policy(1, false) {
        cfg.push(&m).unwrap();
    }
    let rules = h.start::<Rules>(cfg).unwrap();
    let r = RulesSide {
        from_csum,
        from_csum_free,
        to_nat,
        to_nat_free,
        pool,
        clients,
        policy: policy_ring,
        to_nat_ctl,
        from_nat_ctl,
        rules,
    };

    let mut h = Harness::new();
    h.seed([5; 32]);
    let from_rules = h.input("from_rules", 64);
    let from_rules_free = h.output("from_rules_free", 64);
    let to_uplink = h.output("to_uplink", 64);
    let to_uplink_free = h.input("to_uplink_free", 64);
    let n_from_csum = h.input("from_csum", 64);
    let n_from_csum_free = h.output("from_csum_free", 64);
    let to_clients = h.output("to_clients", 128);
    let to_clients_free = h.input("to_clients_free", 128);
    let n_clients = h.msg_input("clients", "ClientEvent", 1024);
    h.msg_input("uplink", "UplinkEvent", 1024);
    let from_rules_ctl = h.msg_input("from_rules_ctl", "RulesToNat", 1024);
    let to_rules_ctl = h.msg_output("to_rules_ctl", "NatToRules", 1024);
    let client_pool = h.pool("client_buffers", PoolGeometry::new(CLIENT_POOL, 2048, BUFS).unwrap(), true);
    let uplink_pool = h.pool("uplink_buffers", PoolGeometry::new(UPLINK_POOL, 2048, BUFS).unwrap(), true);
    let mut ncfg = config();
    ncfg.max_connections = 1024;
    ncfg.max_per_client = 512;
    let nat = h.start::<Nat>(ncfg).unwrap();
    let n = NatSide {
        from_rules,
        from_rules_free,
        to_uplink,
        to_uplink_free,
        from_csum: n_from_csum,
        from_csum_free: n_from_csum_free,
        to_clients,
        to_clients_free,
        clients: n_clients,
        from_rules_ctl,
        to_rules_ctl,
        client_pool,
        uplink_pool,
        nat,
    };
    let mut p = Pair { r, n, next_buf: 0, now: Instant::from_secs(1), to_nat: vec![], to_rules: vec![] };
    for slot in 0..2 {
        let ev = ClientEvent::Up { slot, ipv4: client_ip(slot), ipv6: None, mac: [0; 6] };
        send_frame(&mut p.r.clients, &ev);
        send_frame(&mut p.n.clients, &ev);
    }
    p.settle();
    p
}

impl Pair {
    fn buf(&mut self) -> u32 {
        self.next_buf = (self.next_buf + 1) % BUFS;
        self.next_buf
    }

    /// A packet from client `slot`, as csum hands it to the rules.
    fn client_sends(&mut self, slot: u8, packet: &[u8]) {
        let i = self.buf();
        let mut d =
            PacketDesc { pool: CLIENT_POOL, flags: flags::CSUM_OK, offset: i * 2048 + HEADROOM, len: 0, meta: 0 };
        d.len = packet.len() as u32;
        Meta { iface: Iface::client(slot).unwrap(), verdict: Verdict::None }.store(&mut d);
        self.r.pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.r.from_csum.push(&d).unwrap();
        let _ = self.r.from_csum.publish();
    }

    /// A packet from outside, as csum hands it to the NAT.
    fn remote_sends(&mut self, packet: &[u8]) {
        let i = self.buf();
        let mut d =
            PacketDesc { pool: UPLINK_POOL, flags: flags::CSUM_OK, offset: i * 2048 + HEADROOM, len: 0, meta: 0 };
        d.len = packet.len() as u32;
        Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut d);
        self.n.uplink_pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.n.from_csum.push(&d).unwrap();
        let _ = self.n.from_csum.publish();
    }

    /// Judged packets from the rules into the NAT's ring (bytes copied into
    /// the NAT's pool); the rules' buffers go back at once.
    fn carry_packets(&mut self) -> bool {
        let judged = drain(&mut self.r.to_nat);
        for d in &judged {
            let bytes = self.r.pool.packet(d).unwrap().to_vec();
            self.n.client_pool.packet_mut(d).unwrap().copy_from_slice(&bytes);
            self.n.from_rules.push(d).unwrap();
            self.r.to_nat_free.push(d).unwrap();
        }
        let _ = self.n.from_rules.publish();
        let _ = self.r.to_nat_free.publish();
        drain(&mut self.r.from_csum_free);
        !judged.is_empty()
    }

    /// Control frames both ways.
    fn carry_control(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        let mut moved = false;
        while let Some(m) = self.r.to_nat_ctl.recv_msg::<RulesToNat>(&mut buf).unwrap() {
            send_frame(&mut self.n.from_rules_ctl, &m);
            self.to_nat.push(m);
            moved = true;
        }
        let _ = self.r.to_nat_ctl.release();
        while let Some(m) = self.n.to_rules_ctl.recv_msg::<NatToRules>(&mut buf).unwrap() {
            send_frame(&mut self.r.from_nat_ctl, &m);
            self.to_rules.push(m);
            moved = true;
        }
        let _ = self.n.to_rules_ctl.release();
        moved
    }

    /// Runs both until neither has anything to do.
    fn settle(&mut self) {
        for _ in 0..100 {
            let a = self.r.rules.call(self.now).unwrap().again;
            let moved = self.carry_packets() | self.carry_control();
            let b = self.n.nat.call(self.now).unwrap().again;
            let moved = self.carry_control() | moved;
            if !(a || b || moved) {
                return;
            }
        }
        panic!("the pair does not settle");
    }

    /// Settles, then returns what the NAT sent each way (buffers handed back).
    fn outputs(&mut self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.settle();
        let up = drain(&mut self.n.to_uplink);
        let cl = drain(&mut self.n.to_clients);
        let up_bytes = up.iter().map(|d| self.n.client_pool.packet(d).unwrap().to_vec()).collect();
        let cl_bytes = cl
            .iter()
            .map(|d| {
                let pool = if d.pool == CLIENT_POOL { &self.n.client_pool } else { &self.n.uplink_pool };
                pool.packet(d).unwrap().to_vec()
            })
            .collect();
        for d in &up {
            self.n.to_uplink_free.push(d).unwrap();
        }
        for d in &cl {
            self.n.to_clients_free.push(d).unwrap();
        }
        let _ = self.n.to_uplink_free.publish();
        let _ = self.n.to_clients_free.publish();
        self.n.nat.call(self.now).unwrap();
        drain(&mut self.n.from_rules_free);
        drain(&mut self.n.from_csum_free);
        (up_bytes, cl_bytes)
    }

    /// Sends `packet` from a client and returns the NAT's outside port.
    fn open(&mut self, slot: u8, packet: &[u8]) -> u16 {
        self.client_sends(slot, packet);
        let (up, cl) = self.outputs();
        assert!(cl.is_empty());
        let [p] = up.as_slice() else { panic!("one packet out, got {}", up.len()) };
        assert_eq!(tuple(p).0, UPLINK);
        tuple(p).2
    }

    /// A packet from outside: what reaches the clients (nothing if dropped).
    fn reply(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.remote_sends(packet);
        let (up, mut cl) = self.outputs();
        assert!(up.is_empty() && cl.len() <= 1);
        cl.pop()
    }

    fn swap(&mut self, version: u32, forbid_other: bool) {
        for m in policy(version, forbid_other) {
            send_frame(&mut self.r.policy, &m);
        }
    }

    fn nat(&self, key: &str) -> u64 {
        self.n.nat.status()[key]
    }
}

fn echo_reply(from: [u8; 4], ident: u16) -> Vec<u8> {
    let mut p = moat_net::testing::ping_v4(from, UPLINK, ident, b"pong");
    p[20] = 0;
    let mut ip = Ipv4::parse(&mut p[..]).unwrap();
    Icmpv4::parse(ip.payload_mut()).unwrap().fill_checksum();
    p
}

const SYNACK: u8 = tcpf::SYN | tcpf::ACK;

#[test]
fn a_policy_swap_removes_the_connections_it_forbids() {
    let mut p = pair();
    let c = client_ip(0);
    let server = p.open(0, &tcp(c, SERVER, 40000, 443, tcpf::SYN, b""));
    let other = p.open(0, &tcp(c, OTHER, 40001, 443, tcpf::SYN, b""));
    let dns = p.open(0, &udp(c, DNS, 40002, 53, b"query"));
    let ping = p.open(0, &moat_net::testing::ping_v4(c, SERVER, 7, b"ping"));
    let other1 = p.open(1, &tcp(client_ip(1), OTHER, 40003, 443, tcpf::SYN, b""));
    assert_eq!(p.nat("conn.live"), 5);
    assert_eq!(p.nat("pass.dns"), 1, "the rules said Dns");

    p.swap(2, true);
    p.settle();
    let [RulesToNat::Changed { version: 2, epoch, slots }] = &p.to_nat[..1] else { panic!("{:?}", p.to_nat) };
    assert_eq!(slots[0], 0b01, "client 0's rules changed, client 1's did not");
    let [NatToRules::Check { slot: 0, flows, .. }] = &p.to_rules[..] else { panic!("{:?}", p.to_rules) };
    assert_eq!(flows.len(), 4);
    assert!(
        matches!(p.to_nat[1], RulesToNat::Denied { epoch: e, slot: 0, denied: 0b0010, .. } if e == *epoch),
        "{:?}",
        p.to_nat
    );
    assert_eq!(p.nat("conn.removed.rules"), 1);
    assert_eq!(p.nat("conn.live"), 4);
    assert_eq!((p.nat("recheck.batches"), p.nat("recheck.flows"), p.nat("recheck.in_flight")), (1, 4, 0));
    assert_eq!((p.nat("rules.version"), p.nat("rules.epoch")), (2, u64::from(*epoch)));
    let rs = p.r.rules.status();
    assert_eq!((rs["nat.checks"], rs["nat.denied"]), (4, 1));

    // Return traffic: the forbidden connection's is dropped and counted.
    assert_eq!(p.reply(&tcp(OTHER, UPLINK, 443, other, SYNACK, b"")), None);
    assert_eq!(p.nat("drop.no_conn"), 1);
    let back = p.reply(&tcp(SERVER, UPLINK, 443, server, SYNACK, b"")).expect("allowed");
    assert_eq!(tuple(&back), (SERVER, c, 443, 40000));
    let back = p.reply(&udp(REAL_DNS, UPLINK, 53, dns, b"answer")).expect("allowed");
    assert_eq!(tuple(&back), (DNS, c, 53, 40002));
    let back = p.reply(&echo_reply(SERVER, ping)).expect("allowed");
    assert_eq!(tuple(&back).1, c);
    let back = p.reply(&tcp(OTHER, UPLINK, 443, other1, SYNACK, b"")).expect("client 1 is unaffected");
    assert_eq!(tuple(&back), (OTHER, client_ip(1), 443, 40003));
    assert_eq!(p.nat("pass.inbound"), 4);

    // The client trying again is refused by the rules (a reject from the NAT).
    p.client_sends(0, &tcp(c, OTHER, 40001, 443, tcpf::SYN, b""));
    let (up, cl) = p.outputs();
    assert!(up.is_empty());
    assert_eq!(cl.len(), 1);
    assert_eq!(p.nat("icmp.sent.reject"), 1);

    // Swapping back and forth again checks again; nothing else is refused.
    p.swap(3, false);
    p.settle();
    p.swap(4, true);
    p.settle();
    assert_eq!(p.nat("conn.removed.rules"), 1);
    assert_eq!(p.nat("conn.live"), 4);
    assert_eq!(p.nat("recheck.bad"), 0);
    assert_eq!(p.nat("control.bad_frames"), 0);
    p.n.nat.component.engine().check().unwrap();
}

#[test]
fn packets_judged_before_the_swap_are_walked_too() {
    let mut p = pair();
    let c = client_ip(0);
    p.open(0, &tcp(c, SERVER, 40000, 443, tcpf::SYN, b""));
    // Two SYNs judged under version 1 are still on their way to the NAT
    // when version 2 is swapped in; the NAT takes one packet per call, so
    // the walk must wait for both.
    p.client_sends(0, &tcp(c, SERVER, 40001, 443, tcpf::SYN, b""));
    p.client_sends(0, &tcp(c, OTHER, 40002, 443, tcpf::SYN, b""));
    p.r.rules.call(p.now).unwrap();
    p.carry_packets();
    p.swap(2, true);
    p.r.rules.call(p.now).unwrap();
    p.carry_control();
    assert!(matches!(p.to_nat[..], [RulesToNat::Changed { .. }]));
    p.n.nat.budget = 1;
    let (up, _) = p.outputs();
    assert_eq!(up.len(), 2, "both went out");
    assert_eq!(p.nat("conn.removed.rules"), 1, "the late one to OTHER is gone");
    assert_eq!(p.nat("conn.live"), 2);
    assert_eq!(p.nat("recheck.hold"), 0);
    p.n.nat.component.engine().check().unwrap();
}

/// The e2e policy-swap test in miniature: an established download the new
/// policy forbids stays cut. The server's segments find no connection, the
/// client's are refused by the rules (an ICMP reject from the NAT, nothing
/// sent out), and none of them, not being a SYN, brings the connection back.
#[test]
fn an_established_download_cut_by_a_swap_stays_cut() {
    let mut p = pair();
    let c = client_ip(0);
    let port = p.open(0, &tcp(c, OTHER, 40000, 443, tcpf::SYN, b""));
    assert!(p.reply(&tcp(OTHER, UPLINK, 443, port, SYNACK, b"")).is_some());
    p.client_sends(0, &tcp(c, OTHER, 40000, 443, tcpf::ACK, b"GET /big.bin"));
    assert_eq!(p.outputs().0.len(), 1);
    let data = tcp(OTHER, UPLINK, 443, port, tcpf::ACK, &[7; 1000]);
    assert!(p.reply(&data).is_some(), "the download flows under version 1");

    p.swap(2, true);
    p.settle();
    assert_eq!(p.nat("conn.removed.rules"), 1);
    let created = p.nat("conn.created");
    for round in 0..3 {
        assert_eq!(p.reply(&data), None, "round {round}: the server's segment is dropped");
        p.client_sends(0, &tcp(c, OTHER, 40000, 443, tcpf::ACK, b""));
        let (up, cl) = p.outputs();
        assert!(up.is_empty(), "round {round}: the client's ACK does not leave");
        let [reject] = cl.as_slice() else { panic!("round {round}: one reject, got {}", cl.len()) };
        let ip = Ipv4::parse(&reject[..]).unwrap();
        assert_eq!((ip.protocol(), &ip.payload()[..2]), (1, &[3, 13][..]), "admin-prohibited");
    }
    assert_eq!(p.nat("drop.no_conn"), 3);
    assert_eq!(p.nat("icmp.sent.reject"), 3);
    assert_eq!((p.nat("conn.created"), p.nat("conn.live")), (created, 0), "nothing re-created it");
    p.n.nat.component.engine().check().unwrap();
}
