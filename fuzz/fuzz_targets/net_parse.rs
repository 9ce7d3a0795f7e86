//! Every parser in moat-net on arbitrary bytes: no panic, and what a view
//! hands out lies within the bytes it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_net::ethernet::{Arp, Ethernet};
use moat_net::icmpv4::Icmpv4;
use moat_net::icmpv6::Icmpv6;
use moat_net::ip::{classify, Ip};
use moat_net::ipv4::Ipv4;
use moat_net::ipv6::Ipv6;
use moat_net::tcp::Tcp;
use moat_net::udp::Udp;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = classify(data) {
        assert!(s.l4_offset + s.l4_len <= data.len());
        assert!(s.total_len <= data.len());
    }
    match Ip::parse(data) {
        Ok(Ip::V4(ip)) => {
            assert!(ip.header_len() + ip.payload().len() <= data.len());
            let _ = ip.checksum_ok();
            for o in ip.option_iter() {
                let _ = o;
            }
        }
        Ok(Ip::V6(ip)) => {
            if let Ok(w) = ip.walk() {
                assert!(w.offset <= ip.payload().len());
            }
        }
        Err(_) => {}
    }
    if let Ok(ip) = Ipv4::parse_quoted(data) {
        assert!(ip.payload().len() <= ip.total_len());
    }
    if let Ok(ip) = Ipv6::parse_quoted(data) {
        let _ = ip.walk();
    }
    if let Ok(t) = Tcp::parse(data) {
        assert_eq!(t.len(), data.len());
    }
    if let Ok(u) = Udp::parse_partial(data) {
        assert!(u.payload().len() + 8 <= data.len());
    }
    if let Ok(m) = Icmpv4::parse(data) {
        if let Ok(q) = m.quoted() {
            let _ = q.src();
        }
    }
    if let Ok(m) = Icmpv6::parse(data) {
        let _ = m.quoted().map(|q| q.walk());
    }
    if let Ok(e) = Ethernet::parse(data) {
        let _ = Arp::parse(e.payload());
    }
});
