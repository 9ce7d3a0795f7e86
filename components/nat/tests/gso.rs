//! Super-packets (segmentation offload, `moat_net::meta::Gso`) through the
//! NAT: translated once with checksums right over the whole packet, TTL
//! decremented once, the uplink MTU and DF applied to each *segment*, and
//! the segmentation kept on what is forwarded but never on an ICMP error
//! built from one.

mod common;

use common::*;
use moat_component::{ByteProducer, Consumer, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_nat::counters::C;
use moat_nat::{Engine, Fate, Nat};
use moat_net::icmpv4::Icmpv4;
use moat_net::ipv4::Ipv4;
use moat_net::meta::{Gso, GsoKind, HEADROOM, Iface, Meta, Verdict, flags};
use moat_runtime::harness::{Harness, Running};

const BUF: usize = 65536;
const MSS: u16 = 1448;

/// A TCP super-packet of `n` payload bytes, DF set (as Linux sends TCP),
/// with valid checksums over all of it.
fn super_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
    let mut p = tcp(src, dst, sport, dport, tcpf::ACK, &payload);
    p[6] |= 0x40;
    Ipv4::parse(&mut p[..]).unwrap().fill_checksum();
    p
}

fn gso_meta(slot: u8, verdict: Verdict, gso: Option<Gso>) -> u32 {
    let mut d = PacketDesc { meta: meta(slot, verdict), ..PacketDesc::default() };
    Gso::store(gso, &mut d);
    d.meta
}

/// Sends `packet` out through the engine from client 0 as a super-packet;
/// the decision and the bytes where it now lies.
fn out(e: &mut Engine, packet: &[u8], gso: Option<Gso>) -> (Fate, Vec<u8>) {
    let mut buf = vec![0u8; BUF];
    let start = HEADROOM as usize;
    buf[start..start + packet.len()].copy_from_slice(packet);
    let d = e.outbound(&mut buf, start, packet.len(), flags::CSUM_OK, gso_meta(0, Verdict::Accept, gso), 0);
    (d.fate, buf[d.start..d.start + d.len].to_vec())
}

/// A connection from client 0 to the server: SYN out, SYN-ACK back.
fn open(e: &mut Engine, sport: u16) {
    let syn = tcp(client_ip(0), SERVER, sport, 443, tcpf::SYN, b"");
    let (fate, sent) = out(e, &syn, None);
    assert_eq!(fate, Fate::Uplink);
    let (_, _, nat_port, _) = tuple(&sent);
    let mut b = Buf::new(&tcp(SERVER, UPLINK, 443, nat_port, tcpf::SYN | tcpf::ACK, b""));
    assert_eq!(b.inb(e, 0).fate, Fate::Client(0));
}

#[test]
fn a_super_packet_is_translated_once_and_its_checksum_stays_right() {
    let mut e = engine(&config(), 1);
    open(&mut e, 40000);
    let p = super_packet(client_ip(0), SERVER, 40000, 443, 60_000);
    let (fate, got) = out(&mut e, &p, Gso::new(GsoKind::TcpV4, MSS));
    assert_eq!(fate, Fate::Uplink);
    assert_eq!(got.len(), p.len(), "still one super-packet");
    let (src, dst, _, dport) = tuple(&got);
    assert_eq!((src, dst, dport), (UPLINK, SERVER, 443));
    assert_eq!(got[8], p[8] - 1, "TTL once");
    assert!(checksums_right(&got), "IPv4 and TCP checksums over all 60 kB (etherparse)");
    assert_eq!(&got[40..], &p[40..], "the payload is not touched");
    assert_eq!(e.counters().get(C::Outbound), 2);
    assert_eq!(e.counters().get(C::Inbound), 1);
}

#[test]
fn the_uplink_mtu_applies_to_each_segment() {
    let mut cfg = config();
    cfg.uplink_mtu = 1500;
    let mut e = engine(&cfg, 1);
    open(&mut e, 40000);
    let p = super_packet(client_ip(0), SERVER, 40000, 443, 30_000);
    // 20 + 20 + 1460 = 1500: every segment fits, whatever the total.
    assert_eq!(out(&mut e, &p, Gso::new(GsoKind::TcpV4, 1460)).0, Fate::Uplink);
    // 1461: every segment but the last is one byte too big; DF is set.
    let (fate, err) = out(&mut e, &p, Gso::new(GsoKind::TcpV4, 1461));
    assert_eq!(fate, Fate::Client(0));
    let ip = Ipv4::parse(&err[..]).unwrap();
    let m = Icmpv4::parse(ip.payload()).unwrap();
    assert_eq!((m.ty(), m.code(), m.header().rest), (3, 4, [0, 0, 0x05, 0xdc]), "fragmentation needed, MTU 1500");
    assert!(err.len() <= 576, "an ordinary packet, quoting only the start");
    assert!(checksums_right(&err));
    assert_eq!(e.counters().get(C::SentFragNeeded), 1);
    // Without DF the segments would need fragmenting: dropped.
    let mut no_df = p.clone();
    no_df[6] &= !0x40;
    Ipv4::parse(&mut no_df[..]).unwrap().fill_checksum();
    assert_eq!(out(&mut e, &no_df, Gso::new(GsoKind::TcpV4, 1461)).0, Fate::Drop(C::DropTooBig));
    // A "super-packet" no longer than one segment is judged by its length.
    let small = super_packet(client_ip(0), SERVER, 40000, 443, 1400);
    assert_eq!(out(&mut e, &small, Gso::new(GsoKind::TcpV4, 9000)).0, Fate::Uplink);
}

#[test]
fn a_super_packet_that_is_not_whole_tcp_over_ipv4_is_dropped() {
    let mut e = engine(&config(), 1);
    let v4 = Gso::new(GsoKind::TcpV4, MSS);
    let q = udp(client_ip(0), SERVER, 40000, 53, &[1; 3000]);
    assert_eq!(out(&mut e, &q, v4).0, Fate::Drop(C::DropBadGso));
    open(&mut e, 40001);
    let p = super_packet(client_ip(0), SERVER, 40001, 443, 3000);
    assert_eq!(out(&mut e, &p, Gso::new(GsoKind::TcpV6, MSS)).0, Fate::Drop(C::DropBadGso));
    assert_eq!(e.counters().get(C::DropBadGso), 2);
}

struct Rig {
    from_rules: Producer<PacketDesc>,
    to_uplink: Consumer<PacketDesc>,
    from_csum: Producer<PacketDesc>,
    from_csum_free: Consumer<PacketDesc>,
    to_clients: Consumer<PacketDesc>,
    clients: ByteProducer,
    client_pool: Pool,
    uplink_pool: Pool,
    nat: Running<Nat>,
    _h: Harness,
}

/// The NAT bound through the harness with 64 KiB buffers, client 0 up.
fn rig() -> Rig {
    let mut h = Harness::new();
    let from_rules = h.input("from_rules", 16);
    let _ = h.output::<PacketDesc>("from_rules_free", 32);
    let to_uplink = h.output("to_uplink", 16);
    let _ = h.input::<PacketDesc>("to_uplink_free", 16);
    let from_csum = h.input("from_csum", 16);
    let from_csum_free = h.output("from_csum_free", 16);
    let to_clients = h.output("to_clients", 32);
    let _ = h.input::<PacketDesc>("to_clients_free", 32);
    let clients = h.msg_input("clients", "ClientEvent", 1024);
    let _ = h.msg_input("uplink", "UplinkEvent", 1024);
    let _ = h.msg_input("from_rules_ctl", "RulesToNat", 1024);
    let _ = h.msg_output("to_rules_ctl", "NatToRules", 1024);
    let client_pool = h.pool("client_buffers", PoolGeometry::new(1, BUF as u32, 8).unwrap(), true);
    let uplink_pool = h.pool("uplink_buffers", PoolGeometry::new(2, BUF as u32, 8).unwrap(), true);
    let mut cfg = config();
    cfg.max_connections = 1024;
    cfg.max_per_client = 512;
    let nat = h.start::<Nat>(cfg).unwrap();
    let mut r = Rig {
        from_rules,
        to_uplink,
        from_csum,
        from_csum_free,
        to_clients,
        clients,
        client_pool,
        uplink_pool,
        nat,
        _h: h,
    };
    r.clients.send_msg(&up(0), &mut [0u8; 64]).unwrap();
    let _ = r.clients.publish();
    r.nat.call(Instant::ZERO).unwrap();
    r
}

fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
    let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
    let _ = c.release();
    v
}

impl Rig {
    fn send_out(&mut self, i: u32, packet: &[u8], gso: Option<Gso>) -> PacketDesc {
        let offset = i * BUF as u32 + HEADROOM;
        let d = PacketDesc {
            pool: 1,
            flags: flags::CSUM_OK,
            offset,
            len: packet.len() as u32,
            meta: gso_meta(0, Verdict::Accept, gso),
        };
        self.client_pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.from_rules.push(&d).unwrap();
        let _ = self.from_rules.publish();
        d
    }

    fn send_in(&mut self, i: u32, packet: &[u8], meta: u32) -> PacketDesc {
        let offset = i * BUF as u32 + HEADROOM;
        let d = PacketDesc { pool: 2, flags: flags::CSUM_OK, offset, len: packet.len() as u32, meta };
        self.uplink_pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.from_csum.push(&d).unwrap();
        let _ = self.from_csum.publish();
        d
    }
}

#[test]
fn descriptors_keep_the_segmentation_except_on_errors_built_here() {
    let mut r = rig();
    let gso = Gso::new(GsoKind::TcpV4, MSS);
    r.send_out(0, &tcp(client_ip(0), SERVER, 40000, 443, tcpf::SYN, b""), None);
    r.nat.call(Instant::from_secs(1)).unwrap();
    let syn = drain(&mut r.to_uplink);
    let (_, _, nat_port, _) = tuple(r.client_pool.packet(&syn[0]).unwrap());
    r.send_in(0, &tcp(SERVER, UPLINK, 443, nat_port, tcpf::SYN | tcpf::ACK, b""), 0);
    r.nat.call(Instant::from_secs(1)).unwrap();
    assert_eq!(drain(&mut r.to_clients).len(), 1, "the SYN-ACK");

    r.send_out(1, &super_packet(client_ip(0), SERVER, 40000, 443, 60_000), gso);
    r.send_out(2, &super_packet(client_ip(0), SERVER, 40000, 443, 20_000), Gso::new(GsoKind::TcpV4, 1600));
    r.nat.call(Instant::from_secs(1)).unwrap();
    let up = drain(&mut r.to_uplink);
    assert_eq!(up.len(), 1);
    assert_eq!(Gso::of(&up[0]), Ok(gso), "forwarded as a super-packet");
    assert_eq!(Meta::of(&up[0]).unwrap().iface, Iface::UPLINK);
    assert!(checksums_right(r.client_pool.packet(&up[0]).unwrap()));
    let err = drain(&mut r.to_clients);
    assert_eq!(err.len(), 1, "frag needed for 1640-byte segments");
    assert_eq!(Gso::of(&err[0]), Ok(None), "an ICMP error is an ordinary packet");
    assert_eq!(err[0].flags, flags::CSUM_OK);

    // The reply direction: a super-packet from the uplink keeps its
    // segmentation to the client; one whose meta no version defines is
    // dropped rather than passed on.
    let reply = super_packet(SERVER, UPLINK, 443, nat_port, 50_000);
    let mut m = PacketDesc::default();
    Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut m);
    Gso::store(gso, &mut m);
    r.send_in(1, &reply, m.meta);
    let bad = r.send_in(2, &reply, m.meta | 7 << 12);
    r.nat.call(Instant::from_secs(2)).unwrap();
    let down = drain(&mut r.to_clients);
    assert_eq!(down.len(), 1);
    assert_eq!(Gso::of(&down[0]), Ok(gso));
    assert_eq!(Meta::of(&down[0]).unwrap().iface, Iface::client(0).unwrap());
    let got = r.uplink_pool.packet(&down[0]).unwrap();
    assert_eq!(tuple(got), (SERVER, client_ip(0), 443, 40000));
    assert!(checksums_right(got));
    assert_eq!(drain(&mut r.from_csum_free), [bad]);
    assert_eq!(r.nat.status()["drop.bad_meta"], 1);
}
