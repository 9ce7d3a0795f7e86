//! Shared by the benchmark and the callgrind example: engines and baselines
//! filled with live connections, and the packets that drive them.
#![allow(dead_code)]

use core::net::Ipv4Addr;

use moat_nat::config::Sizes;
use moat_nat::conn::Conn;
use moat_nat::ports::Record;
use moat_nat::{Engine, Fate, NatConfig, Regions};
use moat_net::ipv4::Ipv4;
use moat_net::meta::{Iface, Meta, Verdict, flags};
use moat_net::tcp::Tcp;

#[path = "baseline.rs"]
pub mod baseline;

pub const UPLINK: [u8; 4] = [10, 138, 0, 2];
pub const SERVER: [u8; 4] = [93, 184, 216, 34];
pub const CLIENTS: u8 = 16;
pub const S: u64 = 1_000_000_000;

pub fn client_ip(slot: u8) -> [u8; 4] {
    [10, 137, 0, 10 + slot]
}

pub fn meta(slot: u8) -> u32 {
    let mut d = moat_component::PacketDesc::default();
    Meta { iface: Iface::client(slot).unwrap(), verdict: Verdict::Accept }.store(&mut d);
    d.meta
}

pub fn config(capacity: u32) -> NatConfig {
    let mut c = NatConfig::new(Ipv4Addr::from(UPLINK));
    c.max_connections = capacity;
    c.max_per_client = capacity;
    c
}

pub fn engine(capacity: u32) -> Engine<'static> {
    let cfg = config(capacity);
    let s = Sizes::of(capacity);
    fn leak<T: Clone + Default>(n: usize) -> &'static mut [T] {
        Box::leak(vec![T::default(); n].into_boxed_slice())
    }
    let r = Regions {
        conns: leak::<Conn>(s.conns),
        conn_heads: leak::<u32>(s.conn_heads),
        records: leak::<Record>(s.records),
        record_heads: leak::<u32>(s.record_heads),
    };
    let mut e = Engine::new(&cfg, r, [0x5a; 32]).unwrap();
    for slot in 0..CLIENTS {
        e.client_event(&moat_control::ClientEvent::Up { slot, ipv4: client_ip(slot), ipv6: None, mac: [0; 6] });
    }
    e
}

/// The i-th filler flow: a UDP query from one of the clients.
pub fn filler(i: u32) -> (u8, Vec<u8>) {
    let mut p = moat_net::testing::udp_v4(client_ip(0), SERVER, 1, 53, b"query");
    let slot = refill(&mut p, i);
    (slot, p)
}

/// Rewrites a UDP template in place into the i-th filler flow (no
/// allocation, checksums recomputed): the per-iteration input of the
/// new-connection benchmark, the same for moat and the baseline.
pub fn refill(p: &mut [u8], i: u32) -> u8 {
    let slot = (i % u32::from(CLIENTS)) as u8;
    p[12..16].copy_from_slice(&client_ip(slot));
    p[16..20].copy_from_slice(&[93, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    p[20..22].copy_from_slice(&(1024 + (i / 16 % 60000) as u16).to_be_bytes());
    let mut ip = Ipv4::parse(&mut p[..]).unwrap();
    ip.fill_checksum();
    let ph = ip.pseudo_header();
    moat_net::udp::Udp::parse(ip.payload_mut()).unwrap().fill_checksum(ph);
    slot
}

pub fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, fl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = moat_net::testing::tcp_v4(src, dst, sport, dport, payload);
    p[33] = fl;
    let mut ip = Ipv4::parse(&mut p[..]).unwrap();
    let ph = ip.pseudo_header();
    Tcp::parse(ip.payload_mut()).unwrap().fill_checksum(ph);
    p
}

/// A buffer with headroom holding `p`; returns (buffer, start).
pub fn buffer(p: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    b[64..64 + p.len()].copy_from_slice(p);
    b
}

/// An engine with `live` connections: `live - 1` UDP flows and one
/// established TCP connection, whose next data segment is returned.
pub fn established(capacity: u32, live: u32) -> (Engine<'static>, Vec<u8>) {
    let mut e = engine(capacity);
    let mut b = vec![0u8; 2048];
    for i in 0..live - 1 {
        let (slot, p) = filler(i);
        b[64..64 + p.len()].copy_from_slice(&p);
        assert_eq!(e.outbound(&mut b, 64, p.len(), flags::CSUM_OK, meta(slot), S).fate, Fate::Uplink);
    }
    let c = client_ip(0);
    let syn = tcp(c, SERVER, 55555, 443, 0x02, b"");
    b[64..64 + syn.len()].copy_from_slice(&syn);
    assert_eq!(e.outbound(&mut b, 64, syn.len(), flags::CSUM_OK, meta(0), S).fate, Fate::Uplink);
    let port = u16::from_be_bytes([b[84], b[85]]);
    let synack = tcp(SERVER, UPLINK, 443, port, 0x12, b"");
    b[64..64 + synack.len()].copy_from_slice(&synack);
    assert_eq!(e.inbound(&mut b, 64, synack.len(), flags::CSUM_OK, S).fate, Fate::Client(0));
    let data = tcp(c, SERVER, 55555, 443, 0x18, &[0x42; 100]);
    b[64..64 + data.len()].copy_from_slice(&data);
    assert_eq!(e.outbound(&mut b, 64, data.len(), flags::CSUM_OK, meta(0), S).fate, Fate::Uplink);
    assert_eq!(e.table().live(), live);
    (e, data)
}

/// The baseline with the same connections.
pub fn established_baseline(live: u32) -> (baseline::Baseline, Vec<u8>) {
    let mut t = baseline::Baseline::new(live as usize, UPLINK);
    for i in 0..live - 1 {
        let (_, mut p) = filler(i);
        assert!(t.outbound(&mut p, S));
    }
    let data = tcp(client_ip(0), SERVER, 55555, 443, 0x18, &[0x42; 100]);
    assert!(t.outbound(&mut data.clone(), S));
    (t, data)
}

/// Bytes per connection of the baseline's tables at capacity `cap`, from
/// hashbrown's layout (buckets = next power of two ≥ cap·8/7, each holding
/// the entry and one control byte) plus the FIFO's slots.
pub fn baseline_bytes_per_conn(cap: usize) -> usize {
    fn table<T>(cap: usize) -> usize {
        let buckets = (cap * 8 / 7).next_power_of_two();
        buckets * (core::mem::size_of::<T>() + 1)
    }
    type Out = (u8, [u8; 4], u16, [u8; 4], u16);
    let total = table::<(Out, (u16, u64, u8))>(cap)
        + table::<((u8, [u8; 4], u16, u16), Out)>(cap)
        + table::<(u8, [u8; 4], u16, u16)>(cap)
        + cap * core::mem::size_of::<Out>();
    total / cap
}

/// moat's state bytes per connection at capacity `cap`.
pub fn moat_bytes_per_conn(cap: u32) -> usize {
    let mut total = 0;
    Sizes::of(cap).bytes(&mut |_, b| total += b);
    total / cap as usize
}
