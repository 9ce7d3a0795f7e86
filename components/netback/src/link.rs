//! The link layer towards clients: what a client's frame is, the ARP
//! answers moat gives, and the source check.
//!
//! Qubes gives every client the same picture: its gateway and every other
//! address sit behind one MAC, the backend vif's `fe:ff:ff:ff:ff:ff`. So
//! moat answers every ARP request with that MAC — except one asking for the
//! client's own address (duplicate address detection must not see a
//! conflict) — and sends every frame to a client from it.

use core::net::Ipv4Addr;

use moat_net::ethernet::{self, Arp, Ethernet, Mac, arp_op, ethertype};

/// The MAC of every Qubes backend vif, and so of everything behind it.
pub const BACKEND_MAC: Mac = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// Ethernet frames are padded to this (without the FCS).
pub const MIN_FRAME: usize = 60;

/// What a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IPv4 from the client's own address.
    Ipv4,
    /// IPv4 from another address (spoofed).
    Spoofed,
    /// IPv6 (not passed: moat does not translate it).
    Ipv6,
    /// ARP.
    Arp,
    /// Anything else.
    Other,
}

/// Classifies a client's frame.
pub fn classify(frame: &[u8], client: [u8; 4]) -> Kind {
    let Ok(eth) = Ethernet::parse(frame) else { return Kind::Other };
    match eth.ethertype() {
        ethertype::IPV4 => {
            let ip = eth.payload();
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                Kind::Other
            } else if ip[12..16] == client {
                Kind::Ipv4
            } else {
                Kind::Spoofed
            }
        }
        ethertype::IPV6 => Kind::Ipv6,
        ethertype::ARP => Kind::Arp,
        _ => Kind::Other,
    }
}

/// The reply to a client's ARP request, written into `out` (padded to
/// [`MIN_FRAME`]); `None` if moat does not answer: not a request, not from
/// the client's own address, or asking for it.
pub fn arp_reply(frame: &[u8], client: [u8; 4], out: &mut [u8; MIN_FRAME]) -> Option<()> {
    let eth = Ethernet::parse(frame).ok()?;
    if eth.ethertype() != ethertype::ARP {
        return None;
    }
    let arp = Arp::parse(eth.payload()).ok()?;
    let target = arp.target_ip();
    if arp.oper() != arp_op::REQUEST || arp.sender_ip() != Ipv4Addr::from(client) || target == Ipv4Addr::from(client) {
        return None;
    }
    let asker = arp.packet().sha;
    *out = [0; MIN_FRAME];
    ethernet::write_header(out, asker, BACKEND_MAC, ethertype::ARP).ok()?;
    let body = &mut out[ethernet::HEADER_LEN..];
    ethernet::write_arp(body, arp_op::REPLY, BACKEND_MAC, target, asker, Ipv4Addr::from(client)).ok()?;
    Some(())
}

/// The link header moat puts in front of packets to a client.
pub fn header(client_mac: Mac, ethertype: u16) -> [u8; ethernet::HEADER_LEN] {
    let mut h = [0u8; ethernet::HEADER_LEN];
    h[..6].copy_from_slice(&client_mac);
    h[6..12].copy_from_slice(&BACKEND_MAC);
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: [u8; 4] = [10, 137, 0, 5];
    const CMAC: Mac = [0, 0x16, 0x3e, 0x5e, 0x6c, 5];

    fn request(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        ethernet::write_header(&mut f, ethernet::BROADCAST, CMAC, ethertype::ARP).unwrap();
        ethernet::write_arp(&mut f[14..], arp_op::REQUEST, CMAC, spa.into(), [0; 6], tpa.into()).unwrap();
        f
    }

    #[test]
    fn every_address_but_the_clients_own_is_at_the_backend_mac() {
        let mut out = [0u8; MIN_FRAME];
        assert!(arp_reply(&request(CLIENT, [10, 137, 0, 1]), CLIENT, &mut out).is_some());
        // Check with an independent parser.
        let first = out;
        let p = etherparse::SlicedPacket::from_ethernet(&first).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(e)) = p.link else { panic!() };
        assert_eq!((e.destination(), e.source()), (CMAC, BACKEND_MAC));
        let Some(etherparse::NetSlice::Arp(a)) = p.net else { panic!("an ARP packet") };
        assert_eq!(a.operation(), etherparse::ArpOperation::REPLY);
        assert_eq!(a.sender_hw_addr(), BACKEND_MAC);
        assert_eq!(a.sender_protocol_addr(), [10, 137, 0, 1]);
        assert_eq!(a.target_hw_addr(), CMAC);
        assert_eq!(a.target_protocol_addr(), CLIENT);
        assert!(arp_reply(&request(CLIENT, [8, 8, 8, 8]), CLIENT, &mut out).is_some(), "any address");
        assert!(arp_reply(&request(CLIENT, CLIENT), CLIENT, &mut out).is_none(), "its own: no conflict");
        assert!(arp_reply(&request([0; 4], CLIENT), CLIENT, &mut out).is_none(), "a DAD probe");
        assert!(arp_reply(&request([10, 137, 0, 9], [10, 137, 0, 1]), CLIENT, &mut out).is_none(), "spoofed sender");
        let mut reply = request(CLIENT, [10, 137, 0, 1]);
        reply[21] = 2;
        assert!(arp_reply(&reply, CLIENT, &mut out).is_none(), "not a request");
        assert!(arp_reply(&reply[..30], CLIENT, &mut out).is_none(), "truncated");
    }

    #[test]
    fn frames_are_told_apart() {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let mut ip = moat_net::testing::udp_v4(CLIENT, [1, 1, 1, 1], 1, 2, b"x");
        f.append(&mut ip);
        assert_eq!(classify(&f, CLIENT), Kind::Ipv4);
        assert_eq!(classify(&f, [10, 137, 0, 6]), Kind::Spoofed);
        assert_eq!(classify(&f[..30], CLIENT), Kind::Other, "no whole header");
        assert_eq!(classify(&request(CLIENT, CLIENT), CLIENT), Kind::Arp);
        f[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        assert_eq!(classify(&f, CLIENT), Kind::Ipv6);
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
        assert_eq!(classify(&f, CLIENT), Kind::Other);
        assert_eq!(classify(&[0u8; 5], CLIENT), Kind::Other);
        assert_eq!(header(CMAC, ethertype::IPV4)[6..12], BACKEND_MAC);
    }
}
