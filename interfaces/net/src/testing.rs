//! Packet builders for tests (feature `testing`): well-formed packets with
//! correct checksums, made with this crate's own writers, for components'
//! tests to start from. (Differential tests build theirs with an independent
//! implementation instead.)

extern crate alloc;

use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::icmpv4::Icmpv4;
use crate::icmpv6::Icmpv6;
use crate::ipv4::{self, Ipv4};
use crate::ipv6::{self, Ipv6};
use crate::proto;
use crate::tcp::Tcp;
use crate::udp::Udp;

fn v4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = alloc::vec![0u8; 20 + l4.len()];
    ipv4::write_header(&mut p, Ipv4Addr::from(src), Ipv4Addr::from(dst), protocol, l4.len() as u16, 0x1234, 64, 0)
        .expect("fits");
    p[20..].copy_from_slice(l4);
    p
}

fn v6(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = alloc::vec![0u8; 40 + l4.len()];
    ipv6::write_header(&mut p, Ipv6Addr::from(src), Ipv6Addr::from(dst), next, l4.len() as u16, 64).expect("fits");
    p[40..].copy_from_slice(l4);
    p
}

fn tcp_segment(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = alloc::vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[8..12].copy_from_slice(&2000u32.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x18; // PSH|ACK
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(payload);
    t
}

fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = alloc::vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

fn echo(ty: u8, ident: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = alloc::vec![ty, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// An IPv4 TCP segment (PSH|ACK) with valid checksums.
pub fn tcp_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v4(src, dst, proto::TCP, &tcp_segment(sport, dport, payload));
    let mut ip = Ipv4::parse(&mut p[..]).expect("built");
    let pseudo = ip.pseudo_header();
    Tcp::parse(ip.payload_mut()).expect("built").fill_checksum(pseudo);
    p
}

/// An IPv4 UDP datagram with valid checksums.
pub fn udp_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v4(src, dst, proto::UDP, &udp_datagram(sport, dport, payload));
    let mut ip = Ipv4::parse(&mut p[..]).expect("built");
    let pseudo = ip.pseudo_header();
    Udp::parse(ip.payload_mut()).expect("built").fill_checksum(pseudo);
    p
}

/// An ICMPv4 echo request with valid checksums.
pub fn ping_v4(src: [u8; 4], dst: [u8; 4], ident: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v4(src, dst, proto::ICMP, &echo(8, ident, payload));
    let mut ip = Ipv4::parse(&mut p[..]).expect("built");
    Icmpv4::parse(ip.payload_mut()).expect("built").fill_checksum();
    p
}

/// An IPv6 TCP segment with a valid checksum.
pub fn tcp_v6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v6(src, dst, proto::TCP, &tcp_segment(sport, dport, payload));
    let mut ip = Ipv6::parse(&mut p[..]).expect("built");
    let pseudo = ip.pseudo_header(proto::TCP, (20 + payload.len()) as u32);
    Tcp::parse(ip.payload_mut()).expect("built").fill_checksum(pseudo);
    p
}

/// An IPv6 UDP datagram with a valid checksum.
pub fn udp_v6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v6(src, dst, proto::UDP, &udp_datagram(sport, dport, payload));
    let mut ip = Ipv6::parse(&mut p[..]).expect("built");
    let pseudo = ip.pseudo_header(proto::UDP, (8 + payload.len()) as u32);
    Udp::parse(ip.payload_mut()).expect("built").fill_checksum(pseudo);
    p
}

/// An ICMPv6 echo request with a valid checksum.
pub fn ping_v6(src: [u8; 16], dst: [u8; 16], ident: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = v6(src, dst, proto::ICMPV6, &echo(128, ident, payload));
    let mut ip = Ipv6::parse(&mut p[..]).expect("built");
    let pseudo = ip.pseudo_header(proto::ICMPV6, (8 + payload.len()) as u32);
    Icmpv6::parse(ip.payload_mut()).expect("built").fill_checksum(pseudo);
    p
}
