//! The TAP adapters on their own, bound through the host harness with frame
//! queues in place of TAP devices.

use moat_component::{Context, Instant, PacketDesc, Signals};
use moat_hosted::adapter::clients::Clients;
use moat_hosted::adapter::link::{Frames, GSO_TCPV4, SharedQueue, Vnet};
use moat_hosted::adapter::uplink::Uplink;
use moat_hosted::config::{CLIENT_GATEWAY_MAC, HostedConfig};
use moat_hosted::kinds::Task;
use moat_net::meta::{Gso, GsoKind, HEADROOM, Iface, Meta, flags};
use moat_ring::{Consumer, PoolGeometry, Producer};
use moat_runtime::harness::Harness;

const C0: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
const C1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];

fn config() -> HostedConfig {
    HostedConfig::parse(
        r#"
        [uplink]
        tap = "u"
        address = "10.138.0.2"
        gateway = "10.138.0.1"
        [[client]]
        tap = "a"
        ip = "10.137.0.10"
        mac = "00:16:3e:00:00:01"
        [[client]]
        tap = "b"
        ip = "10.137.0.11"
        mac = "00:16:3e:00:00:02"
        "#,
    )
    .unwrap()
}

fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = Vnet::bytes(0).to_vec();
    etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(1000, 2000)
        .write(&mut f, b"hi")
        .unwrap();
    f
}

struct Rig {
    h: Harness,
    to_csum: Consumer<PacketDesc>,
    to_csum_free: Producer<PacketDesc>,
    from_nat: Producer<PacketDesc>,
    from_nat_free: Consumer<PacketDesc>,
    other: moat_ring::Pool,
}

fn rig(own: &'static str, own_id: u16, other: &'static str, other_id: u16) -> Rig {
    rig_sized(own, own_id, other, other_id, 2048)
}

fn rig_sized(own: &'static str, own_id: u16, other: &'static str, other_id: u16, buf: u32) -> Rig {
    let mut h = Harness::new();
    let to_csum = h.output::<PacketDesc>("to_csum", 64);
    let to_csum_free = h.input::<PacketDesc>("to_csum_free", 64);
    let from_nat = h.input::<PacketDesc>("from_nat", 64);
    let from_nat_free = h.output::<PacketDesc>("from_nat_free", 64);
    h.pool(own, PoolGeometry::new(own_id, buf, 64).unwrap(), true);
    let other = h.pool(other, PoolGeometry::new(other_id, buf, 64).unwrap(), false);
    Rig { h, to_csum, to_csum_free, from_nat, from_nat_free, other }
}

fn call(t: &mut dyn Task, now: Instant) {
    let mut cx = Context::new(now, Signals::ALL, 64);
    t.notified(&mut cx).unwrap();
}

fn status(t: &dyn Task, key: &str) -> u64 {
    let mut v = 0;
    t.status(&mut moat_component::StatusFn(|k: &str, x| {
        if k == key {
            v = x
        }
    }));
    v
}

#[test]
fn clients_adapter_checks_sources_and_routes_by_destination() {
    let mut r = rig("client_buffers", 1, "uplink_buffers", 2);
    let (qa, qb) = (SharedQueue::default(), SharedQueue::default());
    let links: Vec<Box<dyn Frames>> = vec![Box::new(qa.clone()), Box::new(qb.clone())];
    let mut a = Clients::start(&mut r.h, config().clients, links).unwrap();
    {
        let mut q = qa.0.borrow_mut();
        q.rx.push_back(udp(C0, CLIENT_GATEWAY_MAC, [10, 137, 0, 10], [1, 1, 1, 1])); // good
        q.rx.push_back(udp(C0, CLIENT_GATEWAY_MAC, [10, 137, 0, 99], [1, 1, 1, 1])); // spoofed address
        q.rx.push_back(udp(C1, CLIENT_GATEWAY_MAC, [10, 137, 0, 10], [1, 1, 1, 1])); // another's MAC
        q.rx.push_back(udp(C0, [2; 6], [10, 137, 0, 10], [1, 1, 1, 1])); // not to the gateway
    }
    qb.0.borrow_mut().rx.push_back(udp(C1, CLIENT_GATEWAY_MAC, [10, 137, 0, 11], [1, 1, 1, 1]));
    call(&mut a, Instant::ZERO);
    let mut got = Vec::new();
    while let Some(d) = r.to_csum.pop().unwrap() {
        got.push(d);
    }
    assert_eq!(got.len(), 2, "one good packet from each client");
    let slots: Vec<_> = got.iter().map(|d| Meta::of(d).unwrap().iface).collect();
    assert_eq!(slots, [Iface::client(0).unwrap(), Iface::client(1).unwrap()]);
    assert!(got.iter().all(|d| d.offset % 2048 == HEADROOM && d.len == 30));
    assert_eq!(status(&a, "drop.spoofed"), 1);
    assert_eq!(status(&a, "drop.wrong_mac"), 1);
    assert_eq!(status(&a, "drop.not_for_gateway"), 1);
    assert_eq!(status(&a, "buffers_out"), 2, "dropped frames' buffers went straight home");
    // Buffers come home through the free ring; one returned twice is counted.
    r.to_csum_free.push(&got[0]).unwrap();
    r.to_csum_free.push(&got[0]).unwrap();
    let _ = r.to_csum_free.publish();
    call(&mut a, Instant::ZERO);
    assert_eq!(status(&a, "buffers_out"), 1);
    assert_eq!(status(&a, "error.bad_return"), 1);
    // From the graph: an uplink buffer addressed to client 1 (tagged as
    // the uplink's, as without a NAT) reaches b only; one tagged for
    // client 0 but addressed to client 1 reaches nobody.
    let mut pkt = udp([9; 6], [9; 6], [1, 1, 1, 1], [10, 137, 0, 11]);
    let ip = pkt.split_off(24); // vnet header and Ethernet off
    let geo = *r.other.geometry();
    let mut d = geo.whole(3);
    d.offset += HEADROOM;
    d.len = ip.len() as u32;
    Meta { iface: Iface::UPLINK, verdict: moat_net::meta::Verdict::None }.store(&mut d);
    // The test owns the uplink pool (the harness gave the adapter a
    // read-only view of the same memory, and the test a writable one).
    r.other.packet_mut(&d).unwrap().copy_from_slice(&ip);
    let mut tagged = d;
    Meta { iface: Iface::client(0).unwrap(), verdict: moat_net::meta::Verdict::None }.store(&mut tagged);
    r.from_nat.push(&d).unwrap();
    r.from_nat.push(&tagged).unwrap();
    let _ = r.from_nat.publish();
    call(&mut a, Instant::ZERO);
    assert!(qa.0.borrow().tx.is_empty());
    let sent = std::mem::take(&mut qb.0.borrow_mut().tx);
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][10..16], &C1, "to the client's MAC");
    assert_eq!(&sent[0][16..22], &CLIENT_GATEWAY_MAC);
    assert_eq!(&sent[0][24..], &ip[..]);
    assert_eq!(status(&a, "drop.to_client_mismatch"), 1);
    let mut back = 0;
    while r.from_nat_free.pop().unwrap().is_some() {
        back += 1;
    }
    assert_eq!(back, 2, "both descriptors go back, sent or not");
}

#[test]
fn uplink_adapter_learns_the_gateway_before_it_sends() {
    let mut r = rig("uplink_buffers", 2, "client_buffers", 1);
    let q = SharedQueue::default();
    let cfg = config().uplink.unwrap();
    let mut u = Uplink::start(&mut r.h, cfg.clone(), Box::new(q.clone())).unwrap();
    call(&mut u, Instant::ZERO);
    let arp = q.0.borrow_mut().tx.remove(0);
    assert_eq!(&arp[10..16], &[0xff; 6], "an ARP request for the gateway, broadcast");
    assert_eq!(&arp[10 + 14 + 24..10 + 14 + 28], &[10, 138, 0, 1]);
    // A packet from the graph before the gateway answered is dropped.
    let mut ip = udp([9; 6], [9; 6], [10, 138, 0, 2], [1, 1, 1, 1]);
    let ip = ip.split_off(24);
    let geo = *r.other.geometry();
    let mut d = geo.whole(0);
    d.offset += HEADROOM;
    d.len = ip.len() as u32;
    r.other.packet_mut(&d).unwrap().copy_from_slice(&ip);
    r.from_nat.push(&d).unwrap();
    let _ = r.from_nat.publish();
    call(&mut u, Instant::ZERO);
    assert_eq!(status(&u, "drop.gateway_unknown"), 1);
    // The gateway answers; now packets leave to its MAC, and packets to
    // moat's MAC come in tagged as the uplink's.
    let gw = [0x0a, 0, 0, 0, 0, 1];
    let mut tmp = moat_hosted::adapter::link::Queue::default();
    moat_hosted::adapter::link::send_arp(&mut tmp, 2, cfg.mac, gw, cfg.gateway, cfg.mac, cfg.address).unwrap();
    q.0.borrow_mut().rx.push_back(tmp.tx.remove(0));
    q.0.borrow_mut().rx.push_back(udp(gw, cfg.mac, [1, 1, 1, 1], [10, 138, 0, 2]));
    q.0.borrow_mut().rx.push_back(udp(gw, [2; 6], [1, 1, 1, 1], [10, 138, 0, 2]));
    r.from_nat.push(&d).unwrap();
    let _ = r.from_nat.publish();
    call(&mut u, Instant::from_secs(1));
    assert_eq!(status(&u, "arp.gateway_known"), 1);
    let sent: Vec<_> = q.0.borrow_mut().tx.drain(..).filter(|f| f[22..24] == [8, 0]).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][10..16], &gw);
    assert_eq!(&sent[0][16..22], &cfg.mac);
    let inbound = r.to_csum.pop().unwrap().expect("the packet to moat's MAC");
    assert_eq!(Meta::of(&inbound).unwrap().iface, Iface::UPLINK);
    assert_eq!(r.to_csum.pop().unwrap(), None, "not the one to another MAC");
    assert_eq!(status(&u, "drop.not_for_us"), 1);
}

/// A TCP/IPv4 super-packet of `n` payload bytes with a full checksum.
fn tcp_super(src: [u8; 4], dst: [u8; 4], n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut ip = Vec::new();
    etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(443, 40000, 7, 64240).write(&mut ip, &payload).unwrap();
    ip
}

/// Completes a partial checksum as the kernel does for each segment: the
/// sum over `csum_start..` (field included) stored complemented.
fn complete(frame: &mut [u8], v: &Vnet) {
    let start = usize::from(v.csum_start);
    let at = start + usize::from(v.csum_offset);
    let c = !moat_net::checksum::sum(&frame[start..]);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn super_packets_come_in_with_their_segmentation_and_leave_as_tso() {
    let mut r = rig_sized("client_buffers", 1, "uplink_buffers", 2, 65536);
    let (qa, qb) = (SharedQueue::default(), SharedQueue::default());
    let links: Vec<Box<dyn Frames>> = vec![Box::new(qa.clone()), Box::new(qb.clone())];
    let mut a = Clients::start(&mut r.h, config().clients, links).unwrap();
    // From the client: the kernel hands over a 40 kB super-packet with a
    // partial checksum.
    let ip = tcp_super([10, 137, 0, 10], [1, 1, 1, 1], 40_000);
    let vnet = Vnet { flags: 1, gso_type: GSO_TCPV4, hdr_len: 54, gso_size: 1448, csum_start: 34, csum_offset: 16 };
    let mut frame = vnet.encode().to_vec();
    etherparse::Ethernet2Header {
        source: C0,
        destination: CLIENT_GATEWAY_MAC,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut frame)
    .unwrap();
    frame.extend_from_slice(&ip);
    qa.0.borrow_mut().rx.push_back(frame.clone());
    // One longer than a buffer holds (the queue cuts it, as the TAP does).
    let mut long = frame.clone();
    long.resize(70_000, 0);
    qa.0.borrow_mut().rx.push_back(long);
    call(&mut a, Instant::ZERO);
    let d = r.to_csum.pop().unwrap().expect("the super-packet");
    assert_eq!(d.len as usize, ip.len());
    assert_eq!(d.flags, flags::CSUM_BLANK);
    assert_eq!(Gso::of(&d), Ok(Gso::new(GsoKind::TcpV4, 1448)));
    assert_eq!(Meta::of(&d).unwrap().iface, Iface::client(0).unwrap());
    assert_eq!(r.to_csum.pop().unwrap(), None);
    assert_eq!(status(&a, "drop.too_big"), 1);

    // To a client: a super-packet from the uplink pool, checksum verified
    // (CSUM_OK), goes out as one TSO frame.
    let down = tcp_super([1, 1, 1, 1], [10, 137, 0, 11], 50_000);
    let geo = *r.other.geometry();
    let mut send = |i: u32, bytes: &[u8], f: u16, gso: Option<Gso>| {
        let mut d = geo.whole(i);
        d.offset += HEADROOM;
        d.len = bytes.len() as u32;
        d.flags = f;
        Meta { iface: Iface::client(1).unwrap(), verdict: moat_net::meta::Verdict::Accept }.store(&mut d);
        Gso::store(gso, &mut d);
        r.other.packet_mut(&d).unwrap().copy_from_slice(bytes);
        r.from_nat.push(&d).unwrap();
    };
    let gso = Gso::new(GsoKind::TcpV4, 1448);
    send(0, &down, flags::CSUM_OK, gso);
    send(1, &down, 0, gso); // not verified: never vouched for by TSO
    let udp = {
        let mut u = Vec::new();
        etherparse::PacketBuilder::ipv4([1, 1, 1, 1], [10, 137, 0, 11], 64)
            .udp(1, 2)
            .write(&mut u, &[0; 3000])
            .unwrap();
        u
    };
    send(2, &udp, flags::CSUM_OK, gso); // not TCP
    let _ = r.from_nat.publish();
    call(&mut a, Instant::ZERO);
    let sent = std::mem::take(&mut qb.0.borrow_mut().tx);
    assert_eq!(sent.len(), 1);
    let out = &sent[0];
    let v = Vnet::parse(out).unwrap();
    assert_eq!(
        v,
        Vnet { flags: 1, gso_type: GSO_TCPV4, hdr_len: 14 + 40, gso_size: 1448, csum_start: 14 + 20, csum_offset: 16 }
    );
    let mut eth = out[10..].to_vec();
    assert_eq!(&eth[14..14 + 36], &down[..36], "headers as they were");
    assert_eq!(&eth[14 + 38..], &down[38..], "payload as it was");
    // The field holds the partial sum; completing it as the kernel does
    // gives the checksum the packet had.
    complete(&mut eth, &Vnet { csum_start: v.csum_start, ..v });
    assert_eq!(&eth[14..], &down[..]);
    assert_eq!(status(&a, "drop.gso_unverified"), 1);
    assert_eq!((status(&a, "gso.in"), status(&a, "gso.out")), (1, 1));
    assert_eq!(status(&a, "drop.bad_gso"), 1);
}
