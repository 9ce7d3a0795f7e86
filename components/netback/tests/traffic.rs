//! Frames both ways between simulated Linux frontends and the test playing
//! csum and the NAT, checked with an independent parser (etherparse).

mod bed;

use bed::*;
use etherparse::{LinkSlice, NetSlice, SlicedPacket};
use moat_net::meta::{Iface, Meta, flags};
use moat_net::testing;
use moat_netback::NetbackConfig;
use moat_xen::netif::{rsp, rxf};
use moat_xen::ops::Caps;

const C7: [u8; 4] = [10, 137, 0, 7];

fn connected() -> Bed {
    let mut b = bed();
    b.add_client(7, 0, C7);
    b.settle();
    assert_eq!(b.status("vif.connected"), 1);
    b
}

/// A TCP segment as Linux hands it to netfront with CHECKSUM_PARTIAL: the
/// checksum field holds only the pseudo-header sum.
fn partial_tcp(src: [u8; 4], len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut p = testing::tcp_v4(src, [1, 1, 1, 1], 40000, 443, &payload);
    let ip = moat_net::ipv4::Ipv4::parse(&p[..]).unwrap();
    let pseudo = ip.pseudo_header().sum();
    p[36..38].copy_from_slice(&pseudo.to_be_bytes());
    p
}

#[test]
fn a_checksum_blank_frame_split_at_a_page_boundary_is_copied_out_whole() {
    let mut b = connected();
    let ip = partial_tcp(C7, 1400);
    let ids = b.client_sends(7, &frame(7, 0x0800, &ip), true, 3000);
    assert_eq!(ids.len(), 2, "Linux splits it at the page boundary");
    let got = b.take_csum();
    assert_eq!(got.len(), 1);
    let (d, bytes) = &got[0];
    assert_eq!(bytes, &ip, "the IP packet, Ethernet stripped");
    assert_eq!(d.offset % 2048, moat_net::meta::HEADROOM, "at the headroom");
    assert_eq!(d.flags, flags::CSUM_BLANK | flags::PEER_VALIDATED);
    assert_eq!(Meta::of(d).unwrap().iface, Iface::client(0).unwrap());
    let rs = &b.front(7).tx_responses;
    assert_eq!(rs, &[(ids[0], rsp::OKAY), (ids[1], rsp::OKAY)], "one response per slot");
    assert_eq!(b.front(7).tx_outstanding(), 0);
    assert_eq!(b.status("tx.packets"), 1);
    assert_eq!(b.status("tx.bytes"), (ip.len() + 14) as u64);
    b.settle();
    assert_eq!(b.status("held.buffers"), 0, "csum handed it back");
}

#[test]
fn many_frames_of_every_size_and_offset() {
    let mut b = connected();
    let mut sent = Vec::new();
    for (i, len) in [0usize, 1, 7, 100, 1000, 1432, 1460].iter().enumerate() {
        for off in [0usize, 2, 1000, 4000, 4095] {
            let ip = testing::udp_v4(C7, [8, 8, 8, 8], 1000 + i as u16, 53, &vec![0xab; *len]);
            let i = b.fronts.iter().position(|f| f.dom == 7).unwrap();
            b.fronts[i].send(&mut b.xen, &frame(7, 0x0800, &ip), false, off);
            sent.push(ip);
        }
    }
    b.settle();
    let got: Vec<Vec<u8>> = b.take_csum().into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, sent, "every frame, in order");
    assert!(b.front(7).tx_responses.iter().all(|(_, s)| *s == rsp::OKAY));
}

#[test]
fn arp_requests_get_the_backend_mac() {
    let mut b = connected();
    let mut arp = vec![0u8; 28];
    moat_net::ethernet::write_arp(
        &mut arp,
        moat_net::ethernet::arp_op::REQUEST,
        client_mac(7),
        C7.into(),
        [0; 6],
        [10, 137, 0, 1].into(),
    )
    .unwrap();
    let mut f = frame(7, 0x0806, &arp);
    f[..6].copy_from_slice(&[0xff; 6]);
    b.client_sends(7, &f, false, 0);
    assert!(b.take_csum().is_empty(), "ARP stays in netback");
    let r = b.front(7).received.pop_front().expect("a reply");
    let p = SlicedPacket::from_ethernet(&r.frame).unwrap();
    let Some(LinkSlice::Ethernet2(e)) = p.link else { panic!() };
    assert_eq!((e.destination(), e.source()), (client_mac(7), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]));
    let Some(NetSlice::Arp(a)) = p.net else { panic!("ARP") };
    assert_eq!(a.operation(), etherparse::ArpOperation::REPLY);
    assert_eq!(a.sender_protocol_addr(), [10, 137, 0, 1]);
    assert_eq!(a.sender_hw_addr(), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(a.target_protocol_addr(), C7);
    assert_eq!(b.status("arp.replies"), 1);
}

#[test]
fn spoofed_sources_go_nowhere() {
    let mut b = connected();
    let ip = testing::udp_v4([10, 137, 0, 8], [8, 8, 8, 8], 1, 53, b"who am i");
    b.client_sends(7, &frame(7, 0x0800, &ip), false, 0);
    let ip6 = testing::udp_v6([0xfe; 16], [0x20; 16], 1, 53, b"v6");
    b.client_sends(7, &frame(7, 0x86dd, &ip6), false, 0);
    assert!(b.take_csum().is_empty());
    assert_eq!(b.status("drop.spoofed"), 1);
    assert_eq!(b.status("drop.ipv6"), 1);
    assert!(b.front(7).tx_responses.iter().all(|(_, s)| *s == rsp::OKAY), "taken, then dropped");
    assert_eq!(b.status("held.buffers"), 0);
}

#[test]
fn packets_reach_the_client_with_a_link_header() {
    let mut b = connected();
    let ip = testing::udp_v4([8, 8, 8, 8], C7, 53, 40000, b"answer");
    let d = b.nat_sends(0, &ip, true);
    b.settle();
    let r = b.front(7).received.pop_front().expect("delivered");
    assert_eq!(&r.frame[..6], &client_mac(7));
    assert_eq!(&r.frame[6..12], &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(&r.frame[12..14], &[0x08, 0x00]);
    assert_eq!(&r.frame[14..], &ip[..]);
    assert_eq!(r.flags & rxf::DATA_VALIDATED, rxf::DATA_VALIDATED, "csum verified it");
    assert_eq!(b.nat_returns(), [d], "the buffer goes back to the NAT");
    assert_eq!(b.status("rx.packets"), 1);
    // Not verified: no data_validated.
    b.nat_sends(0, &ip, false);
    b.settle();
    assert_eq!(b.front(7).received.pop_front().unwrap().flags & rxf::DATA_VALIDATED, 0);
}

#[test]
fn packets_wait_for_rx_buffers_and_overflow_is_dropped() {
    // A queue of 64, so that it overflows before the bed's 256 buffers run out.
    let caps = Caps { grant_copy: true, grant_access: false, event_channels: 64 };
    let mut b = bed_with(NetbackConfig { rx_queue: 64, ..config() }, caps);
    b.add_client(7, 0, C7);
    b.fronts[0].post_rx = false;
    b.settle();
    let ip = testing::udp_v4([8, 8, 8, 8], C7, 53, 40000, b"queued");
    for _ in 0..70 {
        b.nat_sends(0, &ip, true);
        b.settle();
    }
    assert_eq!(b.status("rx.queued"), 64);
    assert_eq!(b.status("rx.queue_full"), 6);
    assert_eq!(b.nat_returns().len(), 6);
    assert!(b.front(7).received.is_empty());
    // The client posts buffers (and notifies): the queue drains.
    b.fronts[0].post_rx = true;
    b.fronts[0].poll(&mut b.xen);
    b.settle();
    assert_eq!(b.front(7).received.len(), 64);
    assert_eq!(b.status("rx.queued"), 0);
    assert_eq!(b.nat_returns().len(), 64);
}

#[test]
fn packets_for_nobody_go_back() {
    let mut b = connected();
    let ip = testing::udp_v4([8, 8, 8, 8], C7, 53, 40000, b"x");
    b.nat_sends(5, &ip, true);
    b.settle();
    assert_eq!(b.status("rx.no_client"), 1);
    assert_eq!(b.nat_returns().len(), 1);
}

#[test]
fn a_disconnect_gives_queued_packets_back() {
    let mut b = bed();
    b.add_client(7, 0, C7);
    b.fronts[0].post_rx = false;
    b.settle();
    let ip = testing::udp_v4([8, 8, 8, 8], C7, 53, 40000, b"x");
    for _ in 0..10 {
        b.nat_sends(0, &ip, true);
    }
    b.settle();
    assert_eq!(b.status("rx.queued"), 10);
    b.detach(7, 0);
    assert_eq!(b.status("rx.queued"), 0);
    assert_eq!(b.nat_returns().len(), 10);
    assert_eq!(b.status("held.nat_buffers"), 0);
}

#[test]
fn two_clients_each_get_their_own() {
    let mut b = connected();
    b.add_client(8, 0, [10, 137, 0, 8]);
    b.settle();
    let to7 = testing::udp_v4([8, 8, 8, 8], C7, 53, 1, b"seven");
    let to8 = testing::udp_v4([8, 8, 8, 8], [10, 137, 0, 8], 53, 1, b"eight");
    let (s7, s8) = (b.slot_of(7), b.slot_of(8));
    b.nat_sends(s7, &to7, true);
    b.nat_sends(s8, &to8, true);
    b.settle();
    assert_eq!(&b.front(7).received.pop_front().unwrap().frame[14..], &to7[..]);
    assert_eq!(&b.front(8).received.pop_front().unwrap().frame[14..], &to8[..]);
    let from8 = testing::udp_v4([10, 137, 0, 8], [8, 8, 8, 8], 1, 53, b"up");
    b.client_sends(8, &frame(8, 0x0800, &from8), false, 0);
    let got = b.take_csum();
    assert_eq!(got.len(), 1);
    assert_eq!(Meta::of(&got[0].0).unwrap().iface, Iface::client(s8).unwrap());
}
