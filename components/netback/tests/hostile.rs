//! Frontends that lie: garbage on the ring, sizes that lie, reused ids,
//! grants pulled back while netback copies, a flooded ring, endless chains,
//! unusable keys. netback answers what it can with errors, disconnects what
//! breaks the protocol, and never faults or leaks.

mod bed;

use bed::*;
use moat_net::testing;
use moat_test_xensim::MoatHv;
use moat_xen::netif::{NetifTxRequest, extra_type, rsp, txf};
use moat_xen::ops::{Caps, MAX_OPS};
use zerocopy::IntoBytes;

const C7: [u8; 4] = [10, 137, 0, 7];

fn connected() -> Bed {
    let mut b = bed();
    b.add_client(7, 0, C7);
    b.settle();
    assert_eq!(b.status("vif.connected"), 1);
    b
}

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> Vec<u8> {
    NetifTxRequest { gref, offset, flags, id, size }.as_bytes().to_vec()
}

/// Client 7 grants a page holding `data`.
fn grant(b: &mut Bed, data: &[u8], readonly: bool) -> u32 {
    let i = b.fronts.iter().position(|f| f.dom == 7).unwrap();
    b.fronts[i].grant_page(&mut b.xen, data, readonly).1
}

/// Pushes raw slots and publishes them.
fn push(b: &mut Bed, slots: &[Vec<u8>]) {
    let i = b.fronts.iter().position(|f| f.dom == 7).unwrap();
    for s in slots {
        b.fronts[i].push_raw(&mut b.xen, s);
    }
    b.fronts[i].publish_tx(&mut b.xen);
    b.settle();
}

fn no_leaks(b: &Bed) {
    assert_eq!(b.status("held.buffers"), 0, "every buffer is home");
    assert_eq!(b.status("error.ops_refused"), 0, "netback never asks for what is not its own");
}

#[test]
fn sizes_that_lie_and_reused_ids_are_answered_with_errors() {
    let mut b = connected();
    let ip = testing::udp_v4(C7, [8, 8, 8, 8], 1, 53, &[7; 100]);
    let f = frame(7, 0x0800, &ip);
    let g = grant(&mut b, &f, true);
    let g2 = grant(&mut b, &f, true);
    push(
        &mut b,
        &[
            // First says 100 bytes, the fragment alone brings 200.
            req(g, 0, txf::MORE_DATA, 40, 100),
            req(g2, 0, 0, 41, 200),
            // A fragment past its page.
            req(g, 4000, 0, 42, 200),
            // Too short for an Ethernet header.
            req(g, 0, 0, 43, 10),
            // Two good packets with one id.
            req(g, 0, 0, 44, f.len() as u16),
            req(g, 0, 0, 44, f.len() as u16),
        ],
    );
    let rs = b.front(7).tx_responses.clone();
    assert_eq!(
        rs,
        [(40, rsp::ERROR), (41, rsp::ERROR), (42, rsp::ERROR), (43, rsp::ERROR), (44, rsp::OKAY), (44, rsp::OKAY)]
    );
    assert_eq!(b.status("tx.malformed.size_lies"), 1);
    assert_eq!(b.status("tx.malformed.crosses_page"), 1);
    assert_eq!(b.status("tx.malformed.too_short"), 1);
    assert_eq!(b.take_csum().len(), 2);
    assert_eq!(b.status("vif.connected"), 1, "errors, not a disconnect");
    b.settle();
    no_leaks(&b);
}

#[test]
fn gso_is_refused_and_its_extra_slot_answered_null() {
    let mut b = connected();
    let ip = testing::tcp_v4(C7, [8, 8, 8, 8], 1, 80, &[1; 1400]);
    let f = frame(7, 0x0800, &ip);
    let g = grant(&mut b, &f, true);
    let mut gso = vec![0u8; 8];
    gso[0] = extra_type::GSO;
    push(&mut b, &[req(g, 0, txf::EXTRA_INFO, 9, f.len() as u16), gso]);
    assert_eq!(b.front(7).tx_responses, [(9, rsp::ERROR), (0, rsp::NULL)]);
    assert_eq!(b.status("tx.malformed.gso"), 1);
    assert!(b.take_csum().is_empty());
    no_leaks(&b);
}

#[test]
fn grants_pulled_back_during_the_copy_fail_that_packet_only() {
    let mut b = connected();
    let ip = testing::udp_v4(C7, [8, 8, 8, 8], 1, 53, &[3; 1000]);
    let i = b.fronts.iter().position(|f| f.dom == 7).unwrap();
    b.fronts[i].send(&mut b.xen, &frame(7, 0x0800, &ip), false, 3500);
    // Run netback by hand up to the point where its copies are submitted.
    for port in b.xen.take_pending(MOAT) {
        b.svc.event(port);
    }
    let out = b.nb.call(b.now).unwrap();
    assert!(out.notified.contains(b.xen_ch), "copies submitted");
    assert_eq!(b.fronts[i].revoke_all_tx(&mut b.xen), 2, "both pages pulled back");
    b.svc.run(&mut MoatHv(&mut b.xen));
    b.settle();
    assert!(b.take_csum().is_empty());
    assert_eq!(b.status("tx.copy_failed"), 1);
    assert!(b.front(7).tx_responses.iter().all(|(_, s)| *s == rsp::ERROR));
    // The next packet goes through.
    b.client_sends(7, &frame(7, 0x0800, &ip), false, 0);
    assert_eq!(b.take_csum().len(), 1);
    b.settle();
    no_leaks(&b);
}

#[test]
fn a_flooded_ring_index_disconnects_the_frontend() {
    let mut b = connected();
    let i = b.fronts.iter().position(|f| f.dom == 7).unwrap();
    b.fronts[i].set_req_prod(&mut b.xen, 100_000);
    b.settle();
    assert_eq!(b.status("error.fatal"), 1);
    assert_eq!(b.status("vif.connected"), 0);
    assert_eq!(b.status("held.maps"), 0);
    assert_eq!(b.status("held.channels"), 0);
    // The frontend saw Closing and closed; netback ends at Closed.
    assert_eq!(b.backend_state(7, 0).as_deref(), Some("6"));
    no_leaks(&b);
}

#[test]
fn an_endless_chain_disconnects_the_frontend() {
    let mut b = connected();
    let g = grant(&mut b, &[0; 64], true);
    let chain: Vec<_> = (0..19).map(|k| req(g, 0, txf::MORE_DATA, k, 10)).collect();
    push(&mut b, &chain);
    assert_eq!(b.status("error.fatal"), 1);
    assert_eq!(b.status("vif.connected"), 0);
    no_leaks(&b);
}

#[test]
fn a_full_ring_of_packets_is_taken_a_budget_at_a_time() {
    let mut b = connected();
    let ip = testing::udp_v4(C7, [8, 8, 8, 8], 1, 53, &[5; 200]);
    let f = frame(7, 0x0800, &ip);
    let g = grant(&mut b, &f, true);
    let slots: Vec<_> = (0..256).map(|k| req(g, 0, 0, k, f.len() as u16)).collect();
    push(&mut b, &slots);
    assert_eq!(b.status("tx.packets"), 256);
    assert_eq!(b.front(7).tx_responses.len(), 256);
    assert_eq!(b.take_csum().len(), 256);
    assert!(b.status("ops.batches") >= 256 / 16, "no round took more than its budget");
    b.settle();
    no_leaks(&b);
}

#[test]
fn garbage_on_the_ring_never_faults_or_leaks() {
    // A fixed seed keeps it reproducible; the fuzz target covers the rest.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20 {
        let mut b = connected();
        let g = grant(&mut b, &[0x45; 4096], round % 2 == 0);
        for _ in 0..10 {
            let slots: Vec<Vec<u8>> = (0..(rnd() % 40))
                .map(|_| {
                    let mut s = rnd().to_le_bytes().to_vec();
                    s.extend_from_slice(&(rnd() as u32).to_le_bytes());
                    if rnd() % 2 == 0 {
                        s[..4].copy_from_slice(&g.to_le_bytes());
                    }
                    s
                })
                .collect();
            if b.status("vif.connected") == 1 {
                push(&mut b, &slots);
            }
        }
        b.settle();
        let _ = b.take_csum();
        b.settle();
        no_leaks(&b);
        if b.status("vif.connected") == 0 {
            assert_eq!(b.status("held.maps"), 0);
            assert_eq!(b.status("held.channels"), 0);
        }
    }
    let _ = MAX_OPS;
}

#[test]
fn unusable_keys_are_refused() {
    let mut b = bed();
    b.add_client(7, 0, C7);
    // The frontend asks for split channels (not offered).
    b.store.write("/local/domain/7/device/vif/0/event-channel-tx", b"5").unwrap();
    b.settle();
    assert_eq!(b.status("error.bad_keys"), 1);
    assert_eq!(b.status("vif.connected"), 0);
    assert_eq!(b.status("held.maps"), 0);
    no_leaks(&b);
}

#[test]
fn a_ring_grant_that_is_not_ours_fails_the_connect_cleanly() {
    let mut b = bed();
    b.add_client(7, 0, C7);
    // Publish the keys by hand with a ring reference nobody granted.
    let mut f = b.fronts.remove(0);
    b.settle();
    f.connect(&mut b.xen, &mut b.store);
    b.store.write("/local/domain/7/device/vif/0/rx-ring-ref", b"4000").unwrap();
    b.fronts.push(f);
    b.settle();
    assert_eq!(b.status("error.connect"), 1);
    assert_eq!(b.status("vif.connected"), 0);
    assert_eq!(b.status("held.maps"), 0, "the ring that did map was unmapped");
    assert_eq!(b.status("held.channels"), 0);
    assert_eq!(b.xen.moat_maps(), 0);
    no_leaks(&b);
}

#[test]
fn without_the_capability_nothing_connects() {
    let mut b = bed_with(config(), Caps { grant_copy: false, grant_access: false, event_channels: 64 });
    b.add_client(7, 0, C7);
    b.settle();
    assert_eq!(b.status("vif.connected"), 0);
    assert!(b.status("error.ops_refused") >= 2, "the maps were refused");
    assert_eq!(b.xen.moat_maps(), 0);
}
