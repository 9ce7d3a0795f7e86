//! csum bound through the harness, with the test playing all four
//! neighbours: netback and rules on the client side, netfront and NAT on the
//! uplink side.

use moat_component::{Consumer, Fault, Instant, PacketDesc, Pool, PoolGeometry, Producer};
use moat_csum::check::{Pass, Reason, Side};
use moat_csum::{Csum, CsumConfig};
use moat_net::Error;
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_net::testing;
use moat_runtime::harness::{Harness, Running};
use reference::l4_checksum_right;

/// Independent verification (etherparse), not moat-net's own checks.
mod reference {
    use etherparse::{SlicedPacket, TransportSlice};

    /// True if etherparse recomputes the same TCP/UDP checksum the packet carries.
    pub fn l4_checksum_right(p: &[u8]) -> bool {
        let s = SlicedPacket::from_ip(p).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else { panic!("v4 only here") };
        let h = ip.header().to_header();
        match s.transport.unwrap() {
            TransportSlice::Tcp(t) => t.calc_checksum_ipv4(h.source, h.destination).unwrap() == t.checksum(),
            TransportSlice::Udp(u) => u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap() == u.checksum(),
            _ => unreachable!(),
        }
    }
}

const CLIENT_POOL: u16 = 1;
const UPLINK_POOL: u16 = 2;
const BUFS: u32 = 64;

struct Side4 {
    up: Producer<PacketDesc>,
    up_free: Consumer<PacketDesc>,
    down: Consumer<PacketDesc>,
    down_free: Producer<PacketDesc>,
    pool: Pool,
    pool_id: u16,
}

struct Rig {
    clients: Side4,
    uplink: Side4,
    csum: Running<Csum>,
    h: Harness,
}

fn rig(capacity: u32) -> Rig {
    let mut h = Harness::new();
    let side = |h: &mut Harness, names: [&'static str; 5], id: u16| Side4 {
        up: h.input(names[0], capacity),
        up_free: h.output(names[1], capacity),
        down: h.output(names[2], capacity),
        down_free: h.input(names[3], capacity),
        pool: h.pool(names[4], PoolGeometry::new(id, 2048, BUFS).unwrap(), true),
        pool_id: id,
    };
    let clients =
        side(&mut h, ["from_clients", "from_clients_free", "to_rules", "to_rules_free", "client_buffers"], CLIENT_POOL);
    let uplink =
        side(&mut h, ["from_uplink", "from_uplink_free", "to_nat", "to_nat_free", "uplink_buffers"], UPLINK_POOL);
    let csum = h.start::<Csum>(CsumConfig::default()).unwrap();
    Rig { clients, uplink, csum, h }
}

impl Side4 {
    /// Puts `packet` in buffer `i` after the headroom and hands it to csum.
    fn send(&mut self, i: u32, packet: &[u8], f: u16) -> PacketDesc {
        let d =
            PacketDesc { pool: self.pool_id, flags: f, offset: i * 2048 + HEADROOM, len: packet.len() as u32, meta: 0 };
        let mut d = d;
        Meta { iface: Iface::client(3).unwrap(), verdict: Verdict::None }.store(&mut d);
        self.pool.packet_mut(&d).unwrap().copy_from_slice(packet);
        self.up.push(&d).unwrap();
        let _ = self.up.publish();
        d
    }

    fn bytes(&self, d: &PacketDesc) -> Vec<u8> {
        self.pool.packet(d).unwrap().to_vec()
    }

    fn drain(c: &mut Consumer<PacketDesc>) -> Vec<PacketDesc> {
        let v: Vec<_> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        let _ = c.release();
        v
    }
}

const A: [u8; 4] = [10, 137, 0, 5];
const B: [u8; 4] = [93, 184, 216, 34];

/// What Linux puts in a blank TCP/UDP checksum field: the folded
/// pseudo-header sum, not complemented.
fn blank(mut p: Vec<u8>) -> Vec<u8> {
    let len = (p.len() - 20) as u16;
    let at = if p[9] == 6 { 20 + 16 } else { 20 + 6 };
    let mut c = moat_net::checksum::Checksum::ipv4_pseudo(A, B, p[9], len);
    c.add_u16(0);
    p[at..at + 2].copy_from_slice(&c.sum().to_be_bytes());
    p
}

#[test]
fn verifies_completes_and_drops_from_clients() {
    let mut r = rig(64);
    let good_tcp = testing::tcp_v4(A, B, 40000, 443, b"GET / HTTP/1.1\r\n\r\n");
    let good_udp = testing::udp_v4(A, B, 5353, 53, b"\x12\x34query");
    let ping = testing::ping_v4(A, B, 7, b"abcdefgh");
    let mut bad = good_tcp.clone();
    *bad.last_mut().unwrap() ^= 1;
    let blank_tcp = blank(testing::tcp_v4(A, B, 40001, 80, b"hello"));
    let blank_udp = blank(testing::udp_v4(A, B, 40002, 53, b"odd-length"));
    let mut padded = testing::ping_v4(A, B, 8, b"");
    padded.resize(46, 0); // Ethernet minimum payload
    let mut bad_ip = good_udp.clone();
    bad_ip[8] ^= 0x10; // TTL changed, header checksum stale

    let c = &mut r.clients;
    let sent = [
        c.send(0, &good_tcp, 0),
        c.send(1, &good_udp, 0),
        c.send(2, &ping, 0),
        c.send(3, &bad, flags::PEER_VALIDATED), // validated by the peer: still checked
        c.send(4, &blank_tcp, flags::CSUM_BLANK),
        c.send(5, &blank_udp, flags::CSUM_BLANK | flags::CSUM_OK), // CSUM_OK from upstream is ignored
        c.send(6, &padded, 0),
        c.send(7, &bad_ip, 0),
    ];
    r.csum.call(Instant::ZERO).unwrap();

    let out = Side4::drain(&mut r.clients.down);
    let ids: Vec<u32> = out.iter().map(|d| d.offset / 2048).collect();
    assert_eq!(ids, [0, 1, 2, 4, 5, 6]);
    for d in &out {
        assert_eq!(d.flags & flags::CSUM_OK, flags::CSUM_OK, "{d:?}");
        assert_eq!(d.flags & flags::CSUM_BLANK, 0);
        assert_eq!(Meta::of(d).unwrap().iface, Iface::client(3).unwrap(), "meta passes through");
    }
    assert_eq!(out[5].len, 28, "padding cut off");
    assert_eq!(r.clients.bytes(&out[0]), good_tcp, "verified packets are not changed");
    // Completed checksums are what an independent implementation computes.
    for d in &out[3..5] {
        assert!(l4_checksum_right(&r.clients.bytes(d)));
    }
    let returned = Side4::drain(&mut r.clients.up_free);
    assert_eq!(returned, [sent[3], sent[7]], "drops go straight back upstream");

    let k = r.csum.component.counters(Side::Clients);
    assert_eq!(k.passed(Pass::Verified), 4);
    assert_eq!(k.passed(Pass::Completed), 2);
    assert_eq!(k.dropped(Reason::BadL4Checksum), 1);
    assert_eq!(k.dropped(Reason::BadIpChecksum), 1);
    let s = r.csum.status();
    assert_eq!(s["clients.peer_validated"], 1);
    assert_eq!(s["clients.drop.bad_l4_checksum"], 1);
    assert_eq!(s["clients.held"], 6);
    assert_eq!(s["uplink.pass.verified"], 0);
}

#[test]
fn uplink_never_fixes_or_completes() {
    let mut r = rig(64);
    let good = testing::udp_v4(B, A, 53, 5353, b"answer");
    let mut corrupt = good.clone();
    corrupt[30] ^= 0xff;
    let blanked = blank(testing::tcp_v4(B, A, 80, 40000, b"x"));
    let u = &mut r.uplink;
    let d_good = u.send(0, &good, 0);
    let d_corrupt = u.send(1, &corrupt, flags::PEER_VALIDATED);
    let d_blank = u.send(2, &blanked, flags::CSUM_BLANK);
    r.csum.call(Instant::ZERO).unwrap();
    let out = Side4::drain(&mut r.uplink.down);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0], PacketDesc { flags: flags::CSUM_OK, ..d_good });
    assert_eq!(Side4::drain(&mut r.uplink.up_free), [d_corrupt, d_blank]);
    assert_eq!(r.uplink.bytes(&d_corrupt), corrupt, "a corrupt packet is not rewritten");
    assert_eq!(r.uplink.bytes(&d_blank), blanked);
    let s = r.csum.status();
    assert_eq!(s["uplink.drop.bad_l4_checksum"], 1);
    assert_eq!(s["uplink.drop.blank_from_uplink"], 1);
    assert_eq!(s["clients.pass.verified"], 0);
}

#[test]
fn malformed_and_unverifiable_packets() {
    let mut r = rig(64);
    let good = testing::udp_v4(A, B, 1, 2, b"data");
    let mut long = good.clone();
    long[2..4].copy_from_slice(&100u16.to_be_bytes()); // total length past the bytes
    let mut frag = good.clone();
    frag[6] = 0x20; // MF: a first fragment
    let mut ip = moat_net::ipv4::Ipv4::parse(&mut frag[..]).unwrap();
    ip.fill_checksum();
    let mut v6_zero = testing::udp_v6([0xfd; 16], [0x20; 16], 1, 2, b"x");
    v6_zero[46..48].copy_from_slice(&[0, 0]);
    let mut v4_zero = good.clone();
    v4_zero[26..28].copy_from_slice(&[0, 0]);
    let c = &mut r.clients;
    c.send(0, &long, 0);
    c.send(1, &frag, 0);
    c.send(2, &frag, flags::CSUM_BLANK);
    c.send(3, &v6_zero, 0);
    c.send(4, &v4_zero, 0);
    c.send(5, &testing::ping_v4(A, B, 1, b""), flags::CSUM_BLANK);
    c.send(6, &good, 0x80); // undefined flag bit
    let d = c.send(7, &good, 0);
    let d = PacketDesc { offset: 8 * 2048 + HEADROOM, meta: 7 << 8, ..d };
    c.pool.packet_mut(&d).unwrap().copy_from_slice(&good);
    c.up.push(&d).unwrap();
    c.up.push(&PacketDesc { pool: UPLINK_POOL, ..d }).unwrap(); // wrong pool: not ours to return
    let _ = c.up.publish();
    r.csum.call(Instant::ZERO).unwrap();
    let out = Side4::drain(&mut r.clients.down);
    let ids: Vec<(u32, u16)> = out.iter().map(|d| (d.offset / 2048, d.flags)).collect();
    assert_eq!(ids, [(1, 0), (4, flags::CSUM_OK), (7, flags::CSUM_OK)], "fragment without CSUM_OK");
    assert_eq!(Side4::drain(&mut r.clients.up_free).len(), 6);
    let s = r.csum.status();
    for (k, v) in [
        ("clients.drop.bad_total_len", 1),
        ("clients.drop.blank_unsupported", 2),
        ("clients.drop.udp6_no_checksum", 1),
        ("clients.drop.bad_flags", 1),
        ("clients.drop.bad_meta", 1),
        ("clients.pass.unverified_fragment", 1),
        ("clients.pass.udp_no_checksum", 1),
        ("clients.error.bad_descriptor", 1),
    ] {
        assert_eq!(s[k], v, "{k}");
    }
    assert_eq!(r.csum.component.counters(Side::Clients).dropped(Reason::Malformed(Error::BadTotalLen)), 1);
}

#[test]
fn returns_travel_back_the_way_they_came() {
    let mut r = rig(64);
    let p = testing::udp_v4(A, B, 1, 2, b"x");
    let d = r.clients.send(9, &p, 0);
    r.csum.call(Instant::ZERO).unwrap();
    let out = Side4::drain(&mut r.clients.down);
    r.clients.down_free.push(&out[0]).unwrap();
    r.clients.down_free.push(&out[0]).unwrap(); // twice
    r.clients.down_free.push(&PacketDesc { offset: 3 * 2048, ..out[0] }).unwrap(); // never lent
    let _ = r.clients.down_free.publish();
    r.csum.call(Instant::ZERO).unwrap();
    let back = Side4::drain(&mut r.clients.up_free);
    assert_eq!(back, [PacketDesc { flags: flags::CSUM_OK, ..d }]);
    let s = r.csum.status();
    assert_eq!(s["clients.error.bad_return"], 2);
    assert_eq!(s["clients.held"], 0);
}

#[test]
fn bounded_work_and_backpressure() {
    let mut r = rig(16);
    r.csum.budget = 4;
    let p = testing::udp_v4(A, B, 1, 2, b"x");
    for i in 0..10 {
        r.clients.send(i, &p, 0);
    }
    let first = r.csum.call(Instant::ZERO).unwrap();
    assert!(first.again, "work left after the budget");
    assert_eq!(r.clients.down.available().unwrap(), 4);
    // Downstream never reads: csum stops at the ring's capacity, drops nothing.
    for i in 10..20 {
        r.clients.send(i, &p, 0);
    }
    for _ in 0..10 {
        r.csum.call(Instant::ZERO).unwrap();
    }
    assert_eq!(r.clients.down.available().unwrap(), 16);
    assert_eq!(Side4::drain(&mut r.clients.up_free).len(), 0, "nothing dropped for lack of room");
    assert_eq!(r.csum.status()["clients.held"], 16, "the other 4 wait in the input ring");
}

#[test]
fn faulty_peer_is_a_fault_naming_the_port() {
    let mut r = rig(64);
    r.h.scribble("to_nat_free", Some(1000), None);
    assert_eq!(r.csum.call(Instant::ZERO).unwrap_err(), Fault::Peer("to_nat_free"));
}
