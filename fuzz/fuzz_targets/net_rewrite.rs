//! NAT's rewrites and the ICMP error builders on arbitrary packets: no
//! panic, a refused rewrite leaves the packet untouched, and a packet whose
//! checksums were all good before a rewrite still has all good checksums
//! after it (the RFC 1624 promise), as judged by csum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_csum::check::{check, Side};
use moat_net::icmp_error::{build_v4, build_v6, Kind};
use moat_net::rewrite::{self, End};

fn all_good(p: &[u8]) -> bool {
    let mut q = p.to_vec();
    check(&mut q, 0, Side::Uplink).is_ok_and(|p| p.how.csum_ok())
}

fuzz_target!(|input: (u8, [u8; 16], u16, &[u8])| {
    let (op, addr, port, packet) = input;
    let end = if op & 1 == 0 { End::Src } else { End::Dst };
    let port = (op & 2 != 0).then_some(port);
    let mut p = packet.to_vec();
    let before = all_good(&p);
    let result = match (op >> 2) % 5 {
        0 => rewrite::ipv4(&mut p, end, [addr[0], addr[1], addr[2], addr[3]].into(), port),
        1 => rewrite::ipv6(&mut p, end, addr.into(), port),
        2 => rewrite::ipv4_quoted(&mut p, end, [addr[0], addr[1], addr[2], addr[3]].into(), port),
        k => {
            let mut buf = vec![0u8; 64 + packet.len()];
            buf[64..].copy_from_slice(packet);
            let built = if k == 3 {
                build_v4(&mut buf, 64, packet.len(), [10, 137, 0, 1].into(), Kind::V4_ADMIN_PROHIBITED, 1)
            } else {
                build_v6(&mut buf, 64, packet.len(), addr.into(), Kind::V6_ADMIN_PROHIBITED)
            };
            if let Ok(b) = built {
                assert!(all_good(&buf[b.start..b.start + b.len]), "a built error is valid");
            }
            return;
        }
    };
    match result {
        Err(_) => assert_eq!(p, packet, "a refused rewrite changes nothing"),
        Ok(()) if before => assert!(all_good(&p), "checksums stay good through a rewrite"),
        Ok(()) => {}
    }
});
