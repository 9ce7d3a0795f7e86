//! The NAT bound through the harness, with the test playing rules, csum,
//! netfront, netback and xenstore: descriptors, both pools, buffers coming
//! back the way they went, timers.

mod common;

use common::*;
use moat_component::{ByteConsumer, ByteProducer, Consumer, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_nat::Nat;
use moat_nat::counters::C;
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_runtime::harness::{Harness, Running};

const CLIENT_POOL: u16 = 1;
const UPLINK_POOL: u16 = 2;

struct Rig {
    from_rules: Producer<PacketDesc>,
    from_rules_free: Consumer<PacketDesc>,
    to_uplink: Consumer<PacketDesc>,
    to_uplink_free: Producer<PacketDesc>,
    from_csum: Producer<PacketDesc>,
    from_csum_free: Consumer<PacketDesc>,
    to_clients: Consumer<PacketDesc>,
    to_clients_free: Producer<PacketDesc>,
    clients: ByteProducer,
    uplink: ByteProducer,
    rules_ctl: ByteProducer,
    to_rules_ctl: ByteConsumer,
    client_pool: Pool,
    uplink_pool: Pool,
    nat: Running<Nat>,
}

fn config_small() -> moat_nat::NatConfig {
    let mut cfg = config();
    cfg.max_connections = 1024;
    cfg.max_per_client = 512;
    cfg
}

fn rig() -> Rig {
    rig_with(1024)
}

fn rig_with(ctl_ring: u32) -> Rig {
    rig_config(config_small(), ctl_ring)
}

/// `ctl_ring`: bytes of the `to_rules_ctl` ring.
fn rig_config(cfg: moat_nat::NatConfig, ctl_ring: u32) -> Rig {
    let mut h = Harness::new();
    h.seed([9; 32]);
    let from_rules = h.input("from_rules", 64);
    let from_rules_free = h.output("from_rules_free", 128);
    let to_uplink = h.output("to_uplink", 64);
    let to_uplink_free = h.input("to_uplink_free", 64);
    let from_csum = h.input("from_csum", 64);
    let from_csum_free = h.output("from_csum_free", 64);
    let to_clients = h.output("to_clients", 128);
    let to_clients_free = h.input("to_clients_free", 128);
    let clients = h.msg_input("clients", "ClientEvent", 1024);
    let uplink = h.msg_input("uplink", "UplinkEvent", 1024);
    let rules_ctl = h.msg_input("from_rules_ctl", "RulesToNat", 1024);
    let to_rules_ctl = h.msg_output("to_rules_ctl", "NatToRules", ctl_ring);
    let client_pool = h.pool("client_buffers", PoolGeometry::new(CLIENT_POOL, 2048, 64).unwrap(), true);
    let uplink_pool = h.pool("uplink_buffers", PoolGeometry::new(UPLINK_POOL, 2048, 64).unwrap(), true);
    let nat = h.start::<Nat>(cfg).unwrap();
    Rig {
        from_rules,
        from_rules_free,
        to_uplink,
        to_uplink_free,
        from_csum,
        from_csum_free,
        to_clients,
        to_clients_free,
        clients,
        uplink,
        rules_ctl,
        to_rules_ctl,
        client_pool,
        uplink_pool,
        nat,
    }
}

fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
    let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
    let _ = c.release();
    v
}

impl Rig {
    fn client_up(&mut self, slot: u8) {
        self.clients.send_msg(&up(slot), &mut [0u8; 64]).unwrap();
        let _ = self.clients.publish();
    }
    fn send_out(&mut self, i: u32, packet: &[u8], slot: u8, verdict: Verdict) -> PacketDesc {
        let mut d = PacketDesc {
            pool: CLIENT_POOL,
            flags: flags::CSUM_OK,
            offset: i * 2048 + HEADROOM,
            len: packet.len() as u32,
            meta: 0,
        };
        Meta { iface: Iface::client(slot).unwrap(), verdict }.store(&mut d);
        self.client_pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.from_rules.push(&d).unwrap();
        let _ = self.from_rules.publish();
        d
    }
    fn send_in(&mut self, i: u32, packet: &[u8]) -> PacketDesc {
        let mut d = PacketDesc {
            pool: UPLINK_POOL,
            flags: flags::CSUM_OK,
            offset: i * 2048 + HEADROOM,
            len: packet.len() as u32,
            meta: 0,
        };
        Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut d);
        self.uplink_pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.from_csum.push(&d).unwrap();
        let _ = self.from_csum.publish();
        d
    }
}

#[test]
fn packets_flow_both_ways_and_buffers_come_back_the_way_they_went() {
    let mut r = rig();
    r.client_up(0);
    r.nat.call(Instant::ZERO).unwrap();
    let q = udp(client_ip(0), SERVER, 40000, 53, b"query");
    let sent = r.send_out(0, &q, 0, Verdict::Accept);
    let rejected = r.send_out(1, &udp(client_ip(0), SERVER, 40001, 25, b"mail"), 0, Verdict::Reject);
    let dropped = r.send_out(2, &q, 0, Verdict::Drop);
    let out = r.nat.call(Instant::from_secs(1)).unwrap();
    assert!(out.wake_at.is_some(), "a timer for the new connection's expiry");

    let up = drain(&mut r.to_uplink);
    assert_eq!(up.len(), 1);
    assert_eq!(Meta::of(&up[0]).unwrap().iface, Iface::UPLINK);
    let translated = r.client_pool.packet(&up[0]).unwrap().to_vec();
    let (src, _, nat_port, _) = tuple(&translated);
    assert_eq!(src, UPLINK);
    assert!(checksums_right(&translated));
    assert_eq!(up[0].flags, flags::CSUM_OK);

    let to_clients = drain(&mut r.to_clients);
    assert_eq!(to_clients.len(), 1, "the reject");
    assert_eq!(to_clients[0].pool, CLIENT_POOL);
    assert_eq!(to_clients[0].offset, rejected.offset - 28, "built in the headroom");
    assert_eq!(Meta::of(&to_clients[0]).unwrap().iface, Iface::client(0).unwrap());
    assert_eq!(drain(&mut r.from_rules_free), [dropped], "a drop goes straight back");

    // The reply comes in an uplink buffer.
    let reply = udp(SERVER, UPLINK, 53, nat_port, b"answer");
    let got = r.send_in(0, &reply);
    r.nat.call(Instant::from_secs(2)).unwrap();
    let to_clients = drain(&mut r.to_clients);
    assert_eq!(to_clients.len(), 1);
    assert_eq!(to_clients[0].pool, UPLINK_POOL);
    assert_eq!(tuple(r.uplink_pool.packet(&to_clients[0]).unwrap()), (SERVER, client_ip(0), 53, 40000));
    // A reply with no connection is dropped and its buffer goes back.
    let stray = r.send_in(1, &udp(SERVER, UPLINK, 53, nat_port ^ 1, b"?"));
    r.nat.call(Instant::from_secs(2)).unwrap();
    assert_eq!(drain(&mut r.from_csum_free), [stray]);

    // Downstream hands everything back: each buffer returns upstream by pool.
    r.to_uplink_free.push(&up[0]).unwrap();
    let _ = r.to_uplink_free.publish();
    r.to_clients_free.push(&to_clients[0]).unwrap();
    // The reject as it went out: its offset moved back over the ICMP headers.
    let reject_back = PacketDesc { offset: rejected.offset - 28, ..rejected };
    r.to_clients_free.push(&reject_back).unwrap();
    let _ = r.to_clients_free.publish();
    r.nat.call(Instant::from_secs(3)).unwrap();
    let back: Vec<u32> = drain(&mut r.from_rules_free).iter().map(|d| d.offset / 2048).collect();
    assert_eq!(back, [sent.offset / 2048, rejected.offset / 2048]);
    let back = drain(&mut r.from_csum_free);
    assert_eq!(back.iter().map(|d| d.offset / 2048).collect::<Vec<_>>(), [got.offset / 2048]);
    let st = r.nat.status();
    assert_eq!(st["held.client_buffers"], 0);
    assert_eq!(st["held.uplink_buffers"], 0);
    assert_eq!(st["conn.live"], 1);
    assert_eq!(st["icmp.sent.reject"], 1);
    assert_eq!(st["drop.no_conn"], 1);

    // Handing back a buffer twice, or a stranger, is counted, not forwarded.
    r.to_uplink_free.push(&up[0]).unwrap();
    let _ = r.to_uplink_free.publish();
    r.nat.call(Instant::from_secs(4)).unwrap();
    assert!(drain(&mut r.from_rules_free).is_empty());
    assert_eq!(r.nat.status()[C::BadReturns.name()], 1);
}

#[test]
fn duplicate_descriptors_and_unknown_clients_are_refused() {
    let mut r = rig();
    r.client_up(0);
    let q = udp(client_ip(0), SERVER, 40000, 53, b"query");
    let d = r.send_out(3, &q, 0, Verdict::Accept);
    r.from_rules.push(&d).unwrap();
    let _ = r.from_rules.publish();
    r.send_out(4, &udp(client_ip(5), SERVER, 1, 2, b""), 5, Verdict::Accept);
    r.nat.call(Instant::ZERO).unwrap();
    assert_eq!(drain(&mut r.to_uplink).len(), 1);
    let st = r.nat.status();
    assert_eq!(st["error.bad_descriptor"], 1);
    assert_eq!(st["drop.unknown_client"], 1);
    assert_eq!(st["control.client_events"], 1);
}

#[test]
fn connections_expire_on_the_timer_it_asked_for() {
    let mut r = rig();
    r.client_up(0);
    r.send_out(0, &udp(client_ip(0), SERVER, 40000, 53, b"query"), 0, Verdict::Accept);
    let out = r.nat.call(Instant::from_secs(5)).unwrap();
    assert_eq!(out.wake_at, Some(Instant::from_secs(35)), "UDP unreplied: 30 s");
    r.nat.call(Instant::from_secs(35)).unwrap();
    let st = r.nat.status();
    assert_eq!((st["conn.live"], st["conn.expired"], st["ports.in_use"]), (0, 1, 0));
}

#[test]
fn checks_wait_for_room_on_the_control_ring() {
    // Room for one full batch (4 length bytes + 136) at a time.
    let mut r = rig_with(256);
    r.client_up(0);
    for i in 0..48u32 {
        r.send_out(i, &udp(client_ip(0), SERVER, 1000 + i as u16, 53, b"q"), 0, Verdict::Accept);
    }
    r.nat.call(Instant::ZERO).unwrap();
    r.to_uplink_free.push_batch(&drain(&mut r.to_uplink)).unwrap();
    let _ = r.to_uplink_free.publish();
    let mut map = [0u8; 32];
    moat_control::rules::slots::set(&mut map, 0);
    let changed = moat_control::rules::RulesToNat::Changed { version: 1, epoch: 1, slots: map };
    r.rules_ctl.send_msg(&changed, &mut [0u8; 64]).unwrap();
    let _ = r.rules_ctl.publish();
    let mut flows = 0;
    let mut buf = [0u8; 512];
    for round in 0.. {
        r.nat.call(Instant::ZERO).unwrap();
        let mut got = 0;
        while let Some(moat_control::NatToRules::Check { slot: 0, flows: f, .. }) =
            r.to_rules_ctl.recv_msg(&mut buf).unwrap()
        {
            flows += f.len();
            got += 1;
        }
        let _ = r.to_rules_ctl.release();
        if got == 0 {
            break;
        }
        assert_eq!(got, 1, "one batch fits the ring at a time");
        assert!(round < 3);
    }
    assert_eq!(flows, 48, "every connection named once the ring had room");
    assert_eq!(r.nat.status()["recheck.in_flight"], 3, "all sent, none answered");
}

#[test]
fn broken_control_frames_are_counted_not_fatal() {
    let mut r = rig();
    r.rules_ctl.send(&[0xff, 0x01]).unwrap(); // no such message
    r.rules_ctl.send(&[7u8; 300]).unwrap(); // larger than any message
    let denied = moat_control::rules::RulesToNat::Denied { epoch: 1, slot: 0, batch: 12, denied: 1 };
    r.rules_ctl.send_msg(&denied, &mut [0u8; 64]).unwrap(); // a batch never sent
    let _ = r.rules_ctl.publish();
    r.nat.call(Instant::ZERO).unwrap();
    let st = r.nat.status();
    assert_eq!((st["control.bad_frames"], st["recheck.bad"]), (2, 1));
    r.nat.component.engine().check().unwrap();
}

#[test]
fn the_uplink_address_is_learnt_at_run_time() {
    let mut cfg = config();
    cfg.uplink_ip = None;
    cfg.gateway_ip = None;
    cfg.max_connections = 1024;
    cfg.max_per_client = 512;
    let mut r = rig_config(cfg, 1024);
    r.client_up(0);
    // Not known yet: nothing leaves, no reject can be sent.
    let q = udp(client_ip(0), SERVER, 40000, 53, b"query");
    let early = r.send_out(0, &q, 0, Verdict::Accept);
    let rejected = r.send_out(1, &q, 0, Verdict::Reject);
    r.nat.call(Instant::from_secs(1)).unwrap();
    assert!(drain(&mut r.to_uplink).is_empty());
    assert!(drain(&mut r.to_clients).is_empty());
    assert_eq!(drain(&mut r.from_rules_free), [early, rejected]);
    assert_eq!(r.nat.status()["drop.no_uplink"], 2);
    assert_eq!(r.nat.status()["uplink.known"], 0);
    // netfront says the uplink is up.
    let learnt = [10, 138, 0, 77];
    r.uplink.send_msg(&moat_control::UplinkEvent::Up { ipv4: learnt, mtu: 1500 }, &mut [0u8; 32]).unwrap();
    let _ = r.uplink.publish();
    r.send_out(2, &q, 0, Verdict::Accept);
    r.nat.call(Instant::from_secs(2)).unwrap();
    let up = drain(&mut r.to_uplink);
    assert_eq!(up.len(), 1);
    let translated = r.client_pool.packet(&up[0]).unwrap().to_vec();
    assert_eq!(tuple(&translated).0, learnt);
    assert!(checksums_right(&translated));
    // Rejects now come from the learnt address (the clients' gateway).
    r.send_out(3, &udp(client_ip(0), SERVER, 40001, 25, b"x"), 0, Verdict::Reject);
    r.nat.call(Instant::from_secs(3)).unwrap();
    let rej = drain(&mut r.to_clients);
    assert_eq!(rej.len(), 1);
    assert_eq!(tuple(r.client_pool.packet(&rej[0]).unwrap()).0, learnt);
    // A bad address is refused; Down keeps the address.
    r.uplink
        .send_msg(&moat_control::UplinkEvent::Up { ipv4: [255, 255, 255, 255], mtu: 1500 }, &mut [0u8; 32])
        .unwrap();
    r.uplink.send_msg(&moat_control::UplinkEvent::Down, &mut [0u8; 32]).unwrap();
    let _ = r.uplink.publish();
    r.nat.call(Instant::from_secs(4)).unwrap();
    let st = r.nat.status();
    assert_eq!((st["uplink.events"], st["uplink.events_bad"], st["uplink.known"]), (2, 1, 1));
}
