//! netfront against a simulated Linux netback in sys-net, through the real
//! xenstore component: the handshake, traffic both ways, ARP for the
//! gateway, the backend going away and coming back, and a broken backend.

mod bed;

use bed::*;
use etherparse::{LinkSlice, NetSlice, SlicedPacket};
use moat_control::UplinkEvent;
use moat_net::ethernet::{self, arp_op, ethertype};
use moat_net::meta::{Iface, Meta, flags};
use moat_net::testing;
use moat_netfront::NetfrontConfig;
use moat_xen::netif::{NetifRxResponse, rxf};
use moat_xen::ops::{Frontend, Role};

const IP: [u8; 4] = [10, 138, 0, 5];
const GW: [u8; 4] = [10, 138, 0, 1];
const GW_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xfe];

fn connected(config: NetfrontConfig) -> Bed {
    let mut b = bed(config);
    b.add_uplink("10.138.0.5");
    b.settle();
    assert_eq!(b.status("uplink.connected"), 1);
    b
}

fn with_gateway() -> NetfrontConfig {
    NetfrontConfig { gateway_ip: Some(GW.into()) }
}

/// The gateway answers ARP.
fn gateway_reply() -> Vec<u8> {
    let mut f = vec![0u8; 42];
    ethernet::write_header(&mut f, MAC, GW_MAC, ethertype::ARP).unwrap();
    ethernet::write_arp(&mut f[14..], arp_op::REPLY, GW_MAC, GW.into(), MAC, IP.into()).unwrap();
    f
}

#[test]
fn the_handshake_publishes_rings_and_tells_the_nat() {
    let b = connected(NetfrontConfig::default());
    let d = "/local/domain/3/device/vif/0";
    for (k, v) in
        [("request-rx-copy", "1"), ("feature-rx-notify", "1"), ("feature-no-csum-offload", "1"), ("state", "4")]
    {
        assert_eq!(b.store.read(&format!("{d}/{k}")).unwrap(), v.as_bytes(), "{k}");
    }
    for k in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
        assert!(b.store.read(&format!("{d}/{k}")).is_some(), "{k}");
    }
    assert_eq!(b.store.read("/local/domain/1/backend/vif/3/0/state").unwrap(), b"4");
    assert_eq!(b.nat_events, [UplinkEvent::Up { ipv4: IP, mtu: 1500 }]);
    assert_eq!(b.status("held.grants"), u64::from(Frontend::GEOMETRY.local_pages));
    assert_eq!(b.svc.counts().grants, Frontend::GEOMETRY.local_pages);
    assert_eq!(b.status("held.channels"), 1);
    assert_eq!(b.status("error.ops_refused"), 0);
}

#[test]
fn packets_leave_for_the_gateways_mac_once_arp_learnt_it() {
    let mut b = connected(with_gateway());
    // The first thing out is the ARP request for the gateway.
    let q = b.back().sent.pop_front().expect("an ARP request");
    let p = SlicedPacket::from_ethernet(&q).unwrap();
    let Some(NetSlice::Arp(a)) = p.net else { panic!("ARP") };
    assert_eq!((a.sender_protocol_addr(), a.target_protocol_addr()), (&IP[..], &GW[..]));
    // Before it answers, packets are dropped and counted.
    let ip = testing::udp_v4(IP, [9, 9, 9, 9], 40000, 53, b"query");
    b.nat_sends(&ip);
    b.settle();
    assert_eq!(b.status("drop.no_gateway"), 1);
    assert_eq!(b.nat_returns().len(), 1);
    b.back().to_send.push_back((gateway_reply(), 0));
    b.settle();
    assert_eq!(b.status("uplink.gateway_known"), 1);
    let d = b.nat_sends(&ip);
    b.settle();
    let f = b.back().sent.pop_front().expect("the packet");
    let p = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(LinkSlice::Ethernet2(e)) = p.link else { panic!() };
    assert_eq!((e.destination(), e.source()), (GW_MAC, MAC));
    assert_eq!(&f[14..], &ip[..]);
    assert_eq!(b.nat_returns(), [d], "the buffer goes back at once: the frame was copied");
    assert_eq!(b.status("tx.packets"), 1);
}

#[test]
fn without_a_gateway_frames_go_to_the_backend_vif_mac() {
    let mut b = connected(NetfrontConfig::default());
    let ip = testing::tcp_v4(IP, [9, 9, 9, 9], 40000, 443, &[1; 1400]);
    b.nat_sends(&ip);
    b.settle();
    let f = b.back().sent.pop_front().expect("sent");
    assert_eq!(&f[..6], &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(&f[6..12], &MAC);
    assert_eq!(&f[14..], &ip[..]);
}

#[test]
fn frames_from_sys_net_reach_csum_and_arp_is_answered() {
    let mut b = connected(NetfrontConfig::default());
    let ip = testing::udp_v4([9, 9, 9, 9], IP, 53, 40000, b"answer");
    let mut f = vec![0u8; 14];
    ethernet::write_header(&mut f, MAC, GW_MAC, ethertype::IPV4).unwrap();
    f.extend_from_slice(&ip);
    b.back().to_send.push_back((f, rxf::DATA_VALIDATED));
    b.settle();
    let got = b.take_csum();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, ip);
    assert_eq!(Meta::of(&got[0].0).unwrap().iface, Iface::UPLINK);
    assert_eq!(got[0].0.flags, flags::PEER_VALIDATED, "never trusted, but kept");
    // sys-net asks for moat's address.
    let mut ask = vec![0u8; 42];
    ethernet::write_header(&mut ask, ethernet::BROADCAST, GW_MAC, ethertype::ARP).unwrap();
    ethernet::write_arp(&mut ask[14..], arp_op::REQUEST, GW_MAC, GW.into(), [0; 6], IP.into()).unwrap();
    b.back().to_send.push_back((ask, 0));
    b.settle();
    let r = b.back().sent.pop_front().expect("an ARP reply");
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Arp(a)) = p.net else { panic!("ARP") };
    assert_eq!(a.operation(), etherparse::ArpOperation::REPLY);
    assert_eq!((a.sender_hw_addr(), a.sender_protocol_addr()), (&MAC[..], &IP[..]));
    // Every RX page is posted again.
    b.settle();
    assert_eq!(b.status("held.buffers"), 0);
}

#[test]
fn the_backend_goes_away_and_comes_back() {
    let mut b = connected(NetfrontConfig::default());
    b.nat_events.clear();
    // sys-net's toolstack closes the backend.
    let be = "/local/domain/1/backend/vif/3/0";
    b.store.write(&format!("{be}/state"), b"5").unwrap();
    b.settle();
    assert_eq!(b.frontend_state().as_deref(), Some("6"));
    // The backend saw Closed and unmapped; the grants end on the next try.
    b.advance(100);
    assert_eq!(b.nat_events, [UplinkEvent::Down]);
    assert_eq!(b.status("held.grants"), 0);
    assert_eq!(b.status("held.channels"), 0);
    assert_eq!(b.svc.counts().grants, 0);
    assert_eq!(b.xen.grants_of(MOAT), 0);
    // Packets meanwhile go back to the NAT, counted.
    b.nat_sends(&testing::udp_v4(IP, [9, 9, 9, 9], 1, 53, b"x"));
    b.settle();
    assert_eq!(b.status("drop.not_connected"), 1);
    assert_eq!(b.nat_returns().len(), 1);
    // The backend starts over.
    b.back.as_mut().unwrap().restart(&mut b.store);
    b.settle();
    assert_eq!(b.status("uplink.connected"), 1);
    assert_eq!(b.status("uplink.connects"), 2);
    assert_eq!(b.nat_events, [UplinkEvent::Down, UplinkEvent::Up { ipv4: IP, mtu: 1500 }]);
    let ip = testing::udp_v4(IP, [9, 9, 9, 9], 1, 53, b"again");
    b.nat_sends(&ip);
    b.settle();
    assert_eq!(&b.back().sent.pop_front().unwrap()[14..], &ip[..]);
}

#[test]
fn grants_a_dead_backend_still_maps_are_ended_once_it_is_gone() {
    let mut b = connected(NetfrontConfig::default());
    // sys-net dies: its directory vanishes, its mappings stay until Xen
    // tears the domain down.
    b.store.rm("/local/domain/1/backend/vif/3/0").unwrap();
    b.settle();
    assert_eq!(b.status("uplink.connected"), 0);
    assert_eq!(b.status("held.grants"), 2, "the two mapped ring pages are still in use");
    b.advance(100);
    assert_eq!(b.status("held.grants"), 2, "still in use: retried, not forced");
    b.back.as_mut().unwrap().release(&mut b.xen);
    b.advance(100);
    assert_eq!(b.status("held.grants"), 0);
    assert_eq!(b.xen.grants_of(MOAT), 0);
}

#[test]
fn a_new_address_reaches_the_nat() {
    let mut b = connected(NetfrontConfig::default());
    b.store.write("/local/domain/1/backend/vif/3/0/ip", b"10.138.0.9").unwrap();
    // The xenstore component re-reads the uplink when its device fires.
    b.store.write("/local/domain/3/device/vif/0/mtu", b"1500").unwrap();
    b.settle();
    assert_eq!(b.nat_events.last(), Some(&UplinkEvent::Up { ipv4: [10, 138, 0, 9], mtu: 1500 }));
}

#[test]
fn a_broken_backend_is_dropped() {
    let mut b = connected(NetfrontConfig::default());
    // Responses to requests never made.
    let (_, rx) = b.back().ring_pages().unwrap();
    rx.atomic_u32(8).unwrap().store(100_000, std::sync::atomic::Ordering::SeqCst);
    b.back().to_send.push_back((vec![0; 60], 0));
    let port = b.back().dom;
    let _ = port;
    b.settle();
    b.round();
    assert!(b.status("error.ring") >= 1);
    assert_eq!(b.status("uplink.connected"), 0);
}

#[test]
fn frames_moat_did_not_ask_for_are_dropped() {
    let mut b = connected(NetfrontConfig::default());
    let mut f = vec![0u8; 14];
    ethernet::write_header(&mut f, MAC, GW_MAC, ethertype::IPV4).unwrap();
    f.extend_from_slice(&testing::udp_v4([9, 9, 9, 9], IP, 53, 1, b"x"));
    // A two-slot frame (no scatter-gather was negotiated), then a good one.
    b.back().to_send.push_back((f.clone(), rxf::MORE_DATA));
    b.back().to_send.push_back((f.clone(), 0));
    b.back().to_send.push_back((f.clone(), 0));
    b.settle();
    assert_eq!(b.status("rx.unasked"), 1);
    assert_eq!(b.take_csum().len(), 1, "only the last frame is whole");
    // An error status and an offset past the page.
    let (id, _) = b.back().peek_rx().unwrap();
    b.back.as_mut().unwrap().raw_rx(&mut b.xen, NetifRxResponse { id, offset: 0, flags: 0, status: -1 });
    let (id, _) = b.back().peek_rx().unwrap();
    b.back.as_mut().unwrap().raw_rx(&mut b.xen, NetifRxResponse { id, offset: 4000, flags: 0, status: 200 });
    b.settle();
    b.round();
    assert_eq!(b.status("rx.errors"), 2);
    assert_eq!(b.status("uplink.connected"), 1, "errors, not a disconnect");
}

#[test]
fn the_uplink_comes_and_goes_without_leaking() {
    let mut b = connected(NetfrontConfig::default());
    for i in 0..50 {
        b.store.write("/local/domain/1/backend/vif/3/0/state", b"5").unwrap();
        b.settle();
        b.advance(100);
        assert_eq!(b.status("held.grants"), 0, "cycle {i}");
        b.back.as_mut().unwrap().restart(&mut b.store);
        b.settle();
        assert_eq!(b.status("uplink.connected"), 1, "cycle {i}");
    }
    assert_eq!(b.xen.ports_of(MOAT), 1);
    assert_eq!(b.svc.counts().channels, 1);
    assert_eq!(b.status("uplink.connects"), 51);
}

#[test]
fn an_idle_uplink_asks_for_no_timer() {
    let mut b = connected(NetfrontConfig::default());
    b.settle();
    let out = b.nf.call(b.now).unwrap();
    assert_eq!(out.wake_at, None, "no gateway to ask for: nothing to wake for");
    assert!(!out.again);
    let mut b = connected(with_gateway());
    b.back().to_send.push_back((gateway_reply(), 0));
    b.settle();
    let out = b.nf.call(b.now).unwrap();
    assert!(out.wake_at.is_some_and(|t| t > b.now), "the next ARP refresh, in the future: {:?}", out.wake_at);
}
