//! The self-test's packets are what they claim: IPv4/UDP with valid
//! checksums, checked by etherparse (a reference implementation).

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use moat_runtime::selftest::packet;

#[test]
fn selftest_packets_parse_with_valid_checksums() {
    for (seq, payload) in [(0u32, 4u16), (1, 64), (77, 333), (65_537, 1400), (u32::MAX, 9)] {
        let mut buf = [0u8; 2048];
        let n = packet(seq, payload, &mut buf);
        let p = SlicedPacket::from_ip(&buf[..n]).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
        let hdr = ip.header().to_header();
        assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
        assert_eq!(hdr.source, [10, 137, 0, 5]);
        assert_eq!(hdr.destination, [10, 138, 0, 1]);
        assert_eq!(usize::from(hdr.total_len), n);
        let Some(TransportSlice::Udp(udp)) = p.transport else { panic!("not UDP") };
        let uh = udp.to_header();
        assert_eq!(uh.checksum, uh.calc_checksum_ipv4(&hdr, udp.payload()).unwrap(), "seq {seq}");
        assert_eq!(udp.payload().len(), usize::from(payload));
        assert_eq!(udp.payload()[..4], seq.to_le_bytes());
    }
}
