//! A flooding client cannot starve another: each round takes at most a
//! budget from each vif, vifs in turn.

mod bed;

use bed::*;
use moat_net::meta::{Iface, Meta};
use moat_net::testing;

#[test]
fn a_quiet_client_gets_through_in_the_first_round_of_a_flood() {
    let mut b = bed();
    b.add_client(7, 0, [10, 137, 0, 7]);
    b.add_client(8, 0, [10, 137, 0, 8]);
    b.settle();
    let flood = testing::udp_v4([10, 137, 0, 7], [8, 8, 8, 8], 1, 9, &[0; 1000]);
    let quiet = testing::udp_v4([10, 137, 0, 8], [8, 8, 8, 8], 1, 80, b"GET /");
    let (i7, i8) = (0, 1);
    for _ in 0..200 {
        b.fronts[i7].send(&mut b.xen, &frame(7, 0x0800, &flood), false, 0);
    }
    b.fronts[i8].send(&mut b.xen, &frame(8, 0x0800, &quiet), false, 0);
    // Two rounds: the batch is planned and carried out, then finished.
    b.round();
    b.round();
    let out = b.take_csum();
    let s8 = Iface::client(b.slot_of(8)).unwrap();
    let from8 = out.iter().filter(|(d, _)| Meta::of(d).unwrap().iface == s8).count();
    let from7 = out.len() - from8;
    assert_eq!(from8, 1, "the quiet client's packet is in the first batch");
    assert!(from7 <= 16, "the flood got at most its budget: {from7}");
    assert!(b.fronts[i7].tx_outstanding() > 150);
    b.settle();
    assert_eq!(b.take_csum().len(), 200 - from7);
}

#[test]
fn a_flood_towards_one_client_does_not_delay_another() {
    let mut b = bed();
    b.add_client(7, 0, [10, 137, 0, 7]);
    b.add_client(8, 0, [10, 137, 0, 8]);
    b.settle();
    let to7 = testing::udp_v4([8, 8, 8, 8], [10, 137, 0, 7], 9, 1, &[0; 1000]);
    let to8 = testing::udp_v4([8, 8, 8, 8], [10, 137, 0, 8], 80, 1, b"200 OK");
    let (s7, s8) = (b.slot_of(7), b.slot_of(8));
    for _ in 0..60 {
        b.nat_sends(s7, &to7, true);
    }
    b.nat_sends(s8, &to8, true);
    b.round();
    b.round();
    assert_eq!(b.front(8).received.len(), 1, "delivered in the first batch");
    assert!(b.front(7).received.len() <= 16);
    b.settle();
    assert_eq!(b.front(7).received.len(), 60);
}
