//! Super-packets (segmentation offload, `moat_net::meta::Gso`) through csum,
//! in 64 KiB buffers as the hosted image lays them out: the checksum is
//! completed or verified over the whole packet (checked against etherparse),
//! a corruption anywhere in it is caught, the segmentation metadata travels on untouched, and a
//! descriptor that claims a super-packet the packet cannot be is dropped.

use etherparse::{SlicedPacket, TransportSlice};
use moat_component::{Consumer, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_csum::check::{Pass, Reason, Side};
use moat_csum::{Csum, CsumConfig};
use moat_net::checksum::Checksum;
use moat_net::meta::{Gso, GsoKind, HEADROOM, Iface, Meta, Verdict, flags};
use moat_net::testing;
use moat_runtime::harness::{Harness, Running};

const BUF: u32 = 65536;
const A: [u8; 4] = [10, 137, 0, 5];
const B: [u8; 4] = [93, 184, 216, 34];

struct Path {
    input: Producer<PacketDesc>,
    input_free: Consumer<PacketDesc>,
    output: Consumer<PacketDesc>,
    pool: Pool,
    id: u16,
}

struct Rig {
    clients: Path,
    uplink: Path,
    csum: Running<Csum>,
    _h: Harness,
}

fn rig(config: CsumConfig) -> Rig {
    let mut h = Harness::new();
    let mut path = |names: [&'static str; 5], id: u16| {
        let p = Path {
            input: h.input(names[0], 16),
            input_free: h.output(names[1], 16),
            output: h.output(names[2], 16),
            pool: h.pool(names[4], PoolGeometry::new(id, BUF, 8).unwrap(), true),
            id,
        };
        let _ = h.input::<PacketDesc>(names[3], 16);
        p
    };
    let clients = path(["from_clients", "from_clients_free", "to_rules", "to_rules_free", "client_buffers"], 1);
    let uplink = path(["from_uplink", "from_uplink_free", "to_nat", "to_nat_free", "uplink_buffers"], 2);
    let csum = h.start::<Csum>(config).unwrap();
    Rig { clients, uplink, csum, _h: h }
}

impl Path {
    /// Hands `packet` to csum in buffer `i`, as a super-packet if `gso`.
    fn send(&mut self, i: u32, packet: &[u8], f: u16, gso: Option<Gso>) -> PacketDesc {
        let mut d =
            PacketDesc { pool: self.id, flags: f, offset: i * BUF + HEADROOM, len: packet.len() as u32, meta: 0 };
        Meta { iface: Iface::client(3).unwrap(), verdict: Verdict::None }.store(&mut d);
        Gso::store(gso, &mut d);
        self.pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.input.push(&d).unwrap();
        let _ = self.input.publish();
        d
    }

    fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
        let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        let _ = c.release();
        v
    }
}

/// A TCP super-packet from `src` to `dst` with `n` bytes of payload (a
/// pattern that is not all zeros) and a full, valid checksum.
fn super_packet(src: [u8; 4], dst: [u8; 4], n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    testing::tcp_v4(src, dst, 40000, 443, &payload)
}

/// What Linux leaves in a blank checksum: the folded pseudo-header sum over
/// the whole super-packet's length.
fn blank(mut p: Vec<u8>, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let c = Checksum::ipv4_pseudo(src, dst, 6, (p.len() - 20) as u16);
    p[36..38].copy_from_slice(&c.sum().to_be_bytes());
    p
}

fn etherparse_ok(p: &[u8]) -> bool {
    let s = SlicedPacket::from_ip(p).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else { panic!("v4") };
    let h = ip.header().to_header();
    let Some(TransportSlice::Tcp(t)) = s.transport else { panic!("tcp") };
    t.calc_checksum_ipv4(h.source, h.destination).unwrap() == t.checksum()
}

#[test]
fn a_blank_super_packet_from_a_client_is_completed_over_all_of_it() {
    let mut r = rig(CsumConfig::default());
    let gso = Gso::new(GsoKind::TcpV4, 1448);
    let good = super_packet(A, B, 62_000);
    let d = r.clients.send(0, &blank(good.clone(), A, B), flags::CSUM_BLANK, gso);
    r.csum.call(Instant::ZERO).unwrap();
    let out = Path::drain(&mut r.clients.output);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len, d.len);
    assert_eq!(out[0].flags, flags::CSUM_OK);
    assert_eq!(Gso::of(&out[0]), Ok(gso), "the segmentation travels on");
    assert_eq!(Meta::of(&out[0]).unwrap().iface, Iface::client(3).unwrap());
    let bytes = r.clients.pool.packet(&out[0]).unwrap().to_vec();
    assert_eq!(bytes, good, "exactly the checksum the sender would have computed");
    assert!(etherparse_ok(&bytes));
    assert_eq!(r.csum.component.counters(Side::Clients).passed(Pass::Completed), 1);
}

#[test]
fn a_super_packet_with_a_full_checksum_is_verified_and_a_corrupt_one_dropped() {
    let mut r = rig(CsumConfig::default());
    let gso = Gso::new(GsoKind::TcpV4, 1448);
    let good = super_packet(A, B, 60_000);
    let mut corrupt = good.clone();
    corrupt[50_000] ^= 0x40; // deep in the 35th segment
    r.clients.send(0, &good, 0, gso);
    let bad = r.clients.send(1, &corrupt, 0, gso);
    r.csum.call(Instant::ZERO).unwrap();
    let out = Path::drain(&mut r.clients.output);
    assert_eq!(out.len(), 1);
    assert_eq!(r.clients.pool.packet(&out[0]).unwrap(), &good[..]);
    assert_eq!(Path::drain(&mut r.clients.input_free), [bad]);
    let k = r.csum.component.counters(Side::Clients);
    assert_eq!(k.passed(Pass::Verified), 1);
    assert_eq!(k.dropped(Reason::BadL4Checksum), 1);
}

#[test]
fn impossible_super_packets_are_dropped() {
    let mut r = rig(CsumConfig::default());
    let v4 = Gso::new(GsoKind::TcpV4, 1448);
    let udp = testing::udp_v4(A, B, 1, 2, &[7; 3000]);
    let mut frag = super_packet(A, B, 3000);
    frag[6] = 0x20; // MF: a first fragment
    moat_net::ipv4::Ipv4::parse(&mut frag[..]).unwrap().fill_checksum();
    let tcp = super_packet(A, B, 3000);
    let v6 = testing::tcp_v6([0xfd; 16], [0x20; 16], 1, 2, &[9; 3000]);
    let c = &mut r.clients;
    c.send(0, &udp, 0, v4);
    c.send(1, &frag, 0, v4);
    c.send(2, &tcp, 0, Gso::new(GsoKind::TcpV6, 1448));
    c.send(3, &v6, 0, v4);
    c.send(4, &v6, 0, Gso::new(GsoKind::TcpV6, 1428)); // the right kind passes
    let mut d = c.send(5, &tcp, 0, None); // an ordinary packet: passes
    d.offset += BUF;
    d.meta |= 5 << 12; // a kind no version defines
    c.pool.packet_mut(&d).unwrap().copy_from_slice(&tcp);
    c.input.push(&d).unwrap();
    let _ = c.input.publish();
    r.csum.call(Instant::ZERO).unwrap();
    let out = Path::drain(&mut r.clients.output);
    assert_eq!(out.iter().map(|d| d.offset / BUF).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(Path::drain(&mut r.clients.input_free).len(), 5);
    let s = r.csum.status();
    assert_eq!(s["clients.drop.bad_gso"], 4);
    assert_eq!(s["clients.drop.bad_meta"], 1);
}

#[test]
fn blank_super_packets_from_the_uplink_only_when_the_driver_negotiated_offload() {
    let gso = Gso::new(GsoKind::TcpV4, 1448);
    let packet = blank(super_packet(B, A, 64_000), B, A);
    // The default (the Xen netfront asks for full checksums): refused.
    let mut strict = rig(CsumConfig::default());
    let d = strict.uplink.send(0, &packet, flags::CSUM_BLANK, gso);
    strict.csum.call(Instant::ZERO).unwrap();
    assert_eq!(Path::drain(&mut strict.uplink.input_free), [d]);
    assert_eq!(strict.csum.status()["uplink.drop.blank_from_uplink"], 1);
    // Offload negotiated (the hosted uplink TAP): completed.
    let mut offload = rig(CsumConfig { uplink_offload: true });
    offload.uplink.send(0, &packet, flags::CSUM_BLANK, gso);
    offload.csum.call(Instant::ZERO).unwrap();
    let out = Path::drain(&mut offload.uplink.output);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, flags::CSUM_OK);
    assert_eq!(Gso::of(&out[0]), Ok(gso));
    assert!(etherparse_ok(offload.uplink.pool.packet(&out[0]).unwrap()));
    assert_eq!(offload.csum.status()["uplink.pass.completed"], 1);
    // Corrupt data with a full checksum is still dropped from the uplink.
    let mut corrupt = super_packet(B, A, 64_000);
    corrupt[40_000] ^= 1;
    let bad = offload.uplink.send(1, &corrupt, 0, gso);
    offload.csum.call(Instant::ZERO).unwrap();
    assert_eq!(Path::drain(&mut offload.uplink.input_free), [bad]);
}
