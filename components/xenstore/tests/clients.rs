//! Client vif discovery against the test XenStore: vifs appear, are checked,
//! get slots and are announced to rules, NAT and netback; they go down when
//! offline or removed, and slots are reused only after everyone heard.

mod rig;

use moat_control::{ClientEvent, NetbackCtl, Vif};
use rig::*;

const MAC7: &str = "00:16:3e:5e:6c:07";

fn up(slot: u8, ip: [u8; 4], mac: [u8; 6]) -> ClientEvent {
    ClientEvent::Up { slot, ipv4: ip, ipv6: None, mac }
}

#[test]
fn startup_reads_identity_and_sets_up_watches() {
    let r = rig();
    assert_eq!(r.xs.component.domid(), Some(DOMID));
    assert_eq!(r.xs.component.name(), "sys-firewall");
    assert_eq!(r.store.read("/local/domain/3/data/moat-status").unwrap(), b"running");
    assert_eq!(r.store.read("/local/domain/3/control/feature-poweroff").unwrap(), b"1");
    assert_eq!(r.store.read("/local/domain/3/control/feature-reboot").unwrap(), b"1");
    let watched: Vec<String> = r.store.watches(r.conn).into_iter().map(|(p, _)| p).collect();
    assert_eq!(watched, ["backend/vif", "control/shutdown", "device/vif/0"]);
    assert_eq!(r.status("startup.pending"), 0);
    assert_eq!(r.status("store.connected"), 1);
    assert_eq!(r.status("jobs.active"), 0, "nothing left in flight");
}

#[test]
fn a_vif_is_announced_once_to_everyone() {
    let mut r = rig();
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    r.settle();
    let mac = [0, 0x16, 0x3e, 0x5e, 0x6c, 0x07];
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [up(0, [10, 137, 0, 7], mac)]);
    assert_eq!(drain::<ClientEvent>(&mut r.nat), [up(0, [10, 137, 0, 7], mac)]);
    assert_eq!(
        drain::<NetbackCtl>(&mut r.netback),
        [NetbackCtl::VifUp(Vif {
            slot: 0,
            frontend_id: 7,
            devid: 0,
            mac,
            ipv4: [10, 137, 0, 7],
            ipv6: None,
            mtu: 1500
        })]
    );
    // Netback-style writes under the device (features, state) change
    // nothing we announce.
    r.store.write(&format!("{}/feature-sg", Rig::backend_dir(7, 0)), b"1").unwrap();
    r.store.write(&format!("{}/state", Rig::backend_dir(7, 0)), b"2").unwrap();
    r.settle();
    assert!(drain::<ClientEvent>(&mut r.rules).is_empty());
    assert_eq!(r.status("vif.up"), 1);
}

#[test]
fn offline_removal_and_slot_reuse() {
    let mut r = rig();
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    r.add_vif(8, 0, "00:16:3e:00:00:08", "10.137.0.8 fd09:24ef:4179::a89:8");
    r.settle();
    let ups = drain::<ClientEvent>(&mut r.rules);
    assert_eq!(ups.len(), 2);
    let slot_of = |ev: &[ClientEvent], ip: u8| {
        ev.iter()
            .find_map(|e| match e {
                ClientEvent::Up { slot, ipv4, .. } if ipv4[3] == ip => Some(*slot),
                _ => None,
            })
            .unwrap()
    };
    let (s7, s8) = (slot_of(&ups, 7), slot_of(&ups, 8));
    assert_ne!(s7, s8);
    assert!(ups.iter().any(|e| matches!(e, ClientEvent::Up { ipv6: Some(v6), .. } if v6[15] == 8)), "IPv6 from ip");
    drain::<ClientEvent>(&mut r.nat);
    drain::<NetbackCtl>(&mut r.netback);

    // The toolstack takes vif 7 offline (the start of a disconnect).
    r.store.write(&format!("{}/online", Rig::backend_dir(7, 0)), b"0").unwrap();
    r.settle();
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: s7 }]);
    assert_eq!(drain::<ClientEvent>(&mut r.nat), [ClientEvent::Down { slot: s7 }]);
    assert_eq!(drain::<NetbackCtl>(&mut r.netback), [NetbackCtl::VifDown { slot: s7, frontend_id: 7, devid: 0 }]);
    // …and netback removes the backend directory: nothing more to say.
    r.store.rm(&Rig::backend_dir(7, 0)).unwrap();
    r.settle();
    assert!(drain::<ClientEvent>(&mut r.rules).is_empty());

    // Vif 8 vanishes while up (a dying domain): it goes down too.
    r.store.rm("/local/domain/3/backend/vif/8").unwrap();
    r.settle();
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: s8 }]);
    drain::<ClientEvent>(&mut r.nat);
    drain::<NetbackCtl>(&mut r.netback);
    assert_eq!(r.status("vif.known"), 0, "both slots free");

    // A new client gets a freed slot.
    r.add_vif(9, 0, "00:16:3e:00:00:09", "10.137.0.9");
    r.settle();
    let ups = drain::<ClientEvent>(&mut r.rules);
    assert!(matches!(ups[..], [ClientEvent::Up { slot, .. }] if slot == s7.min(s8)));
}

#[test]
fn a_changed_address_goes_down_then_up() {
    let mut r = rig();
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    r.settle();
    drain::<ClientEvent>(&mut r.rules);
    r.store.write(&format!("{}/ip", Rig::backend_dir(7, 0)), b"10.137.0.77").unwrap();
    r.settle();
    let mac = [0, 0x16, 0x3e, 0x5e, 0x6c, 0x07];
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: 0 }, up(0, [10, 137, 0, 77], mac)]);
}

#[test]
fn malformed_vifs_are_never_announced() {
    let mut r = rig();
    let be = Rig::backend_dir(7, 0);
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    // Before the component looks: break one key at a time.
    let cases: [(&str, &[u8]); 6] = [
        ("frontend-id", b"8"),
        ("handle", b"1"),
        ("mac", b"00:16:3e:5e:6c"),
        ("ip", b"10.137.0"),
        ("frontend", b"/local/domain/9/device/vif/0"),
        ("mtu", b"12"),
    ];
    for (key, bad) in cases {
        let good = r.store.read(&format!("{be}/{key}")).unwrap_or_default();
        r.store.write(&format!("{be}/{key}"), bad).unwrap();
        r.settle();
        assert!(drain::<ClientEvent>(&mut r.rules).is_empty(), "announced with a bad {key}");
        assert!(drain::<NetbackCtl>(&mut r.netback).is_empty());
        if good.is_empty() {
            r.store.rm(&format!("{be}/{key}")).unwrap();
        } else {
            r.store.write(&format!("{be}/{key}"), &good).unwrap();
        }
        r.settle();
        assert_eq!(drain::<ClientEvent>(&mut r.rules).len(), 1, "up once {key} is fixed");
        // Take it down again for the next case.
        r.store.write(&format!("{be}/online"), b"0").unwrap();
        r.settle();
        assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: 0 }]);
        r.store.write(&format!("{be}/online"), b"1").unwrap();
        r.settle();
        drain::<ClientEvent>(&mut r.rules);
        r.store.write(&format!("{be}/online"), b"0").unwrap();
        r.settle();
        drain::<ClientEvent>(&mut r.rules);
        r.store.write(&format!("{be}/online"), b"1").unwrap();
        drain::<ClientEvent>(&mut r.nat);
        drain::<NetbackCtl>(&mut r.netback);
    }
    assert!(r.status("vif.invalid") >= 6);
    // Garbage directory names are skipped, not fatal.
    r.store.write("/local/domain/3/backend/vif/notanumber/0/online", b"1").unwrap();
    r.store.write("/local/domain/3/backend/vif/7/x/online", b"1").unwrap();
    r.settle();
    assert!(r.status("vif.bad_name") >= 2);
    assert_eq!(r.status("store.connected"), 1);
}

#[test]
fn many_vifs_at_once_within_bounded_calls() {
    let mut r = rig();
    r.xs.budget = 4;
    for fid in 10..50u16 {
        r.add_vif(fid, 0, &format!("00:16:3e:00:00:{:02x}", fid), &format!("10.137.0.{fid}"));
    }
    r.settle();
    let ups = drain::<ClientEvent>(&mut r.rules);
    assert_eq!(ups.len(), 40);
    let mut slots: Vec<u8> =
        ups.iter().map(|e| if let ClientEvent::Up { slot, .. } = e { *slot } else { 255 }).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), 40, "distinct slots");
    assert_eq!(drain::<NetbackCtl>(&mut r.netback).len(), 40);
}

#[test]
fn the_vif_table_limit_holds() {
    let mut cfg = config();
    cfg.max_clients = 2;
    let mut r = rig_with(cfg, |_| {});
    for fid in 10..14u16 {
        r.add_vif(fid, 0, "00:16:3e:00:00:01", &format!("10.137.0.{fid}"));
    }
    r.settle();
    assert_eq!(drain::<ClientEvent>(&mut r.rules).len(), 2);
    assert!(r.status("vif.table_full") >= 2);
}

#[test]
fn full_listener_rings_hold_announcements_back() {
    let mut r = rig_sized(config(), 256, |_| {});
    for fid in 10..60u16 {
        r.add_vif(fid, 0, "00:16:3e:00:00:01", &format!("10.137.0.{fid}"));
    }
    // Nobody reads the 256-byte rings for a while: they fill.
    r.settle();
    let first = drain::<ClientEvent>(&mut r.rules);
    assert!(first.len() < 50, "the ring filled up ({} fit)", first.len());
    let (mut rules, mut nat, mut netback) = (first, Vec::new(), Vec::new());
    for _ in 0..50 {
        nat.extend(drain::<ClientEvent>(&mut r.nat));
        netback.extend(drain::<NetbackCtl>(&mut r.netback));
        r.settle();
        rules.extend(drain::<ClientEvent>(&mut r.rules));
    }
    for got in [&rules, &nat] {
        let mut slots: Vec<u8> =
            got.iter().map(|e| if let ClientEvent::Up { slot, .. } = e { *slot } else { 255 }).collect();
        slots.sort();
        assert_eq!(slots, (0..50).collect::<Vec<u8>>(), "nothing lost, nothing repeated");
    }
    assert_eq!(netback.len(), 50);
}

#[test]
fn refusals_and_oversized_values_do_not_cause_request_storms() {
    // backend/vif exists but we may not list it (a confused toolstack).
    let mut r = rig_with(config(), |s| {
        s.mkdir("/local/domain/3/backend/vif").unwrap();
        s.set_perms(
            "/local/domain/3/backend/vif",
            &[moat_xen::xenstore::Perm { access: moat_xen::xenstore::Access::None, domid: 0 }],
        )
        .unwrap();
    });
    r.advance(3000);
    let listings = r.store.log.iter().filter(|l| l.ends_with("Directory backend/vif")).count();
    assert_eq!(listings, 1, "one refused listing, no retry loop");

    // A value too big to hold: the device is not announced and not re-read
    // over and over.
    let mut r = rig();
    r.add_vif(7, 0, MAC7, &format!("10.137.0.7 {}", "x".repeat(300)));
    r.advance(3000);
    assert!(drain::<ClientEvent>(&mut r.rules).is_empty());
    let reads = r.store.log.iter().filter(|l| l.ends_with("Read backend/vif/7/0/ip")).count();
    assert_eq!(reads, 1);
    assert!(r.status("vif.read_failed") >= 1);

    // An announced vif whose keys become unreadable goes down.
    let mut r = rig();
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    r.settle();
    assert_eq!(drain::<ClientEvent>(&mut r.rules).len(), 1);
    r.store.write(&format!("{}/ip", Rig::backend_dir(7, 0)), "1".repeat(200).as_bytes()).unwrap();
    r.settle();
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: 0 }]);
}

#[test]
fn a_changed_vif_is_reread_without_another_wakeup() {
    // As a runtime calls it: once per signal, and again only when it asks.
    // The withdrawal goes out in the call that reads the change; the re-read
    // that announces the new address must not wait for an unrelated event.
    let mut r = rig();
    r.add_vif(7, 0, MAC7, "10.137.0.7");
    r.settle();
    drain::<ClientEvent>(&mut r.rules);
    r.store.write(&format!("{}/ip", Rig::backend_dir(7, 0)), b"10.137.0.77").unwrap();
    for _ in 0..100 {
        let before = r.store.poll();
        let out = r.xs.call(r.now).expect("no fault");
        let after = r.store.poll();
        if !before && !after && !out.again {
            break;
        }
    }
    let mac = [0, 0x16, 0x3e, 0x5e, 0x6c, 0x07];
    assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: 0 }, up(0, [10, 137, 0, 77], mac)]);
}

/// cxenstored (what Qubes runs) sends the event a write causes to the
/// writer *before* the reply to that write; oxenstored sends it after
/// (both seen on real Xen, `tests/xs-compare/recorded`). netback's writes
/// under the backend directory this component watches are such writes: in
/// either order they are answered, announce nothing, and the vif's life
/// goes on.
#[test]
fn netbacks_writes_work_with_own_events_before_or_after_their_replies() {
    use moat_control::xenstore::{XsReply, XsRequest};
    for first in [false, true] {
        let mut r = rig_with(config(), |s| s.own_events_first = first);
        r.add_vif(7, 0, MAC7, "10.137.0.7");
        r.settle();
        assert_eq!(drain::<ClientEvent>(&mut r.rules).len(), 1);
        drain::<ClientEvent>(&mut r.nat);
        drain::<NetbackCtl>(&mut r.netback);
        for (id, state) in [(1, b"2"), (2, b"4")] {
            r.netback_asks(&XsRequest::Write { id, path: s("backend/vif/7/0/state"), value: val(state) });
        }
        r.settle();
        let replies: Vec<XsReply> = drain::<NetbackCtl>(&mut r.netback)
            .into_iter()
            .filter_map(|m| if let NetbackCtl::Xs(x) = m { Some(x) } else { None })
            .collect();
        assert_eq!(replies, [XsReply::Done { id: 1 }, XsReply::Done { id: 2 }], "events first: {first}");
        assert_eq!(r.store.read(&format!("{}/state", Rig::backend_dir(7, 0))).unwrap(), b"4");
        assert!(drain::<ClientEvent>(&mut r.rules).is_empty());
        assert_eq!(r.status("error.stray_event"), 0);
        assert_eq!(r.status("error.late_reply"), 0);
        assert_eq!(r.status("store.connected"), 1);
        r.store.write(&format!("{}/online", Rig::backend_dir(7, 0)), b"0").unwrap();
        r.settle();
        assert_eq!(drain::<ClientEvent>(&mut r.rules), [ClientEvent::Down { slot: 0 }], "events first: {first}");
    }
}
