//! ARP on the uplink: asking for the gateway's MAC, learning it from what
//! the gateway says, and answering sys-net when it asks for moat's address
//! (it must, to send return traffic).

use core::net::Ipv4Addr;

use moat_net::ethernet::{self, Arp, Ethernet, Mac, arp_op, ethertype};

/// Ethernet frames are padded to this.
pub const FRAME: usize = 60;

/// The request "who has `gateway`", from `mac`/`ip`, broadcast.
pub fn request(mac: Mac, ip: [u8; 4], gateway: [u8; 4]) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    // Both writes fit: 14 + 28 bytes in 60.
    let _ = ethernet::write_header(&mut f, ethernet::BROADCAST, mac, ethertype::ARP);
    let _ = ethernet::write_arp(&mut f[14..], arp_op::REQUEST, mac, ip.into(), [0; 6], gateway.into());
    f
}

/// What an ARP frame from the uplink means to moat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// The gateway's MAC, if the frame came from the gateway.
    pub gateway: Option<Mac>,
    /// A reply to send (someone asked for moat's address).
    pub reply: Option<[u8; FRAME]>,
}

/// Looks at an ARP frame (`frame` starts with the Ethernet header).
pub fn heard(frame: &[u8], mac: Mac, ip: Option<[u8; 4]>, gateway: Option<[u8; 4]>) -> Heard {
    let mut out = Heard::default();
    let Ok(eth) = Ethernet::parse(frame) else { return out };
    if eth.ethertype() != ethertype::ARP {
        return out;
    }
    let Ok(a) = Arp::parse(eth.payload()) else { return out };
    let p = *a.packet();
    if gateway.is_some_and(|g| Ipv4Addr::from(g) == a.sender_ip()) && p.sha != ethernet::BROADCAST && p.sha[0] & 1 == 0
    {
        out.gateway = Some(p.sha);
    }
    if let Some(ip) = ip
        && a.oper() == arp_op::REQUEST
        && a.target_ip() == Ipv4Addr::from(ip)
    {
        let mut f = [0u8; FRAME];
        let _ = ethernet::write_header(&mut f, p.sha, mac, ethertype::ARP);
        let _ = ethernet::write_arp(&mut f[14..], arp_op::REPLY, mac, ip.into(), p.sha, a.sender_ip());
        out.reply = Some(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0, 0x16, 0x3e, 0, 0, 3];
    const GW_MAC: Mac = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
    const IP: [u8; 4] = [10, 138, 0, 5];
    const GW: [u8; 4] = [10, 138, 0, 1];

    #[test]
    fn asks_learns_and_answers() {
        let q = request(MAC, IP, GW);
        let p = etherparse::SlicedPacket::from_ethernet(&q).unwrap();
        let Some(etherparse::NetSlice::Arp(a)) = p.net else { panic!() };
        assert_eq!(a.operation(), etherparse::ArpOperation::REQUEST);
        assert_eq!((a.sender_protocol_addr(), a.target_protocol_addr()), (&IP[..], &GW[..]));
        // The gateway answers.
        let mut reply = [0u8; 42];
        ethernet::write_header(&mut reply, MAC, GW_MAC, ethertype::ARP).unwrap();
        ethernet::write_arp(&mut reply[14..], arp_op::REPLY, GW_MAC, GW.into(), MAC, IP.into()).unwrap();
        assert_eq!(heard(&reply, MAC, Some(IP), Some(GW)), Heard { gateway: Some(GW_MAC), reply: None });
        assert_eq!(heard(&reply, MAC, Some(IP), Some([10, 138, 0, 9])).gateway, None, "not the gateway");
        // sys-net asks for moat.
        let mut ask = [0u8; 42];
        ethernet::write_header(&mut ask, ethernet::BROADCAST, GW_MAC, ethertype::ARP).unwrap();
        ethernet::write_arp(&mut ask[14..], arp_op::REQUEST, GW_MAC, GW.into(), [0; 6], IP.into()).unwrap();
        let h = heard(&ask, MAC, Some(IP), Some(GW));
        assert_eq!(h.gateway, Some(GW_MAC), "a request teaches the sender's MAC too");
        let r = h.reply.expect("an answer");
        let p = etherparse::SlicedPacket::from_ethernet(&r).unwrap();
        let Some(etherparse::NetSlice::Arp(a)) = p.net else { panic!() };
        assert_eq!(a.operation(), etherparse::ArpOperation::REPLY);
        assert_eq!((a.sender_hw_addr(), a.sender_protocol_addr()), (&MAC[..], &IP[..]));
        assert_eq!(a.target_hw_addr(), &GW_MAC[..]);
        assert!(heard(&ask, MAC, None, Some(GW)).reply.is_none(), "no address yet: no answer");
        assert_eq!(heard(&ask[..20], MAC, Some(IP), Some(GW)), Heard::default());
    }
}
