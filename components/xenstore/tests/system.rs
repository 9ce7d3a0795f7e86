//! Shutdown requests and the uplink device, against the test XenStore.

mod rig;

use moat_control::{NetfrontCtl, RuntimeEvent, ShutdownReason, Uplink};
use moat_xen::xenstore::{Access, Perm};
use rig::*;

/// What the runtime heard, start-up's `Ready` left out.
fn shutdowns(rx: &mut moat_ring::ByteConsumer) -> Vec<RuntimeEvent> {
    drain::<RuntimeEvent>(rx).into_iter().filter(|e| !matches!(e, RuntimeEvent::Ready { .. })).collect()
}

fn text(s: &str) -> moat_control::RuntimeText {
    moat_control::runtime_text(s.as_bytes()).unwrap()
}

#[test]
fn start_up_ends_with_one_ready_naming_us() {
    let mut r = rig();
    assert_eq!(
        drain::<RuntimeEvent>(&mut r.runtime),
        [RuntimeEvent::Ready { domid: DOMID, name: text("sys-firewall") }]
    );
    // Everything Ready promises is in place by then.
    assert_eq!(r.status("startup.pending"), 0);
    assert_eq!(r.store.read("/local/domain/3/data/moat-status").unwrap(), b"running");
    let watched: Vec<String> = r.store.watches(r.conn).into_iter().map(|(p, _)| p).collect();
    assert!(watched.iter().any(|p| p == "control/shutdown"), "{watched:?}");
    r.advance(5000);
    r.store.write("/local/domain/3/control/shutdown", b"poweroff").unwrap();
    r.settle();
    assert_eq!(
        drain::<RuntimeEvent>(&mut r.runtime),
        [RuntimeEvent::Shutdown(ShutdownReason::Poweroff)],
        "Ready once only"
    );
}

#[test]
fn ready_waits_for_a_domid_the_store_withholds() {
    // No `domid` key readable yet: start-up cannot finish.
    let mut r = rig_with(config(), |s| s.rm("/local/domain/3/domid").unwrap());
    assert!(drain::<RuntimeEvent>(&mut r.runtime).is_empty());
    assert_eq!(r.status("startup.ready"), 0);
    r.store.write("/local/domain/3/domid", b"3").unwrap();
    r.advance(2000);
    assert_eq!(
        drain::<RuntimeEvent>(&mut r.runtime),
        [RuntimeEvent::Ready { domid: DOMID, name: text("sys-firewall") }]
    );
}

#[test]
fn probe_values_are_reported_and_absence_is_silent() {
    let mut cfg = config();
    cfg.probe_key = heapless::String::try_from("data/moat-ping").unwrap();
    let mut r = rig_with(cfg, |_| {});
    assert_eq!(shutdowns(&mut r.runtime), [], "nothing while the key is absent");
    r.store.write("/local/domain/3/data/moat-ping", b"ping-1").unwrap();
    r.settle();
    assert_eq!(drain::<RuntimeEvent>(&mut r.runtime), [RuntimeEvent::Probe(text("ping-1"))]);
    r.store.write("/local/domain/3/data/moat-ping", b"ping-2").unwrap();
    r.settle();
    assert_eq!(drain::<RuntimeEvent>(&mut r.runtime), [RuntimeEvent::Probe(text("ping-2"))]);
    r.store.write("/local/domain/3/data/moat-ping", b"").unwrap();
    r.settle();
    r.store.rm("/local/domain/3/data/moat-ping").unwrap();
    r.settle();
    assert!(drain::<RuntimeEvent>(&mut r.runtime).is_empty(), "empty or gone: nothing to say");
    let long = "x".repeat(100);
    r.store.write("/local/domain/3/data/moat-ping", long.as_bytes()).unwrap();
    r.settle();
    assert_eq!(drain::<RuntimeEvent>(&mut r.runtime), [RuntimeEvent::Probe(text(&long[..64]))], "cut to fit");
    // Longer than a read may hold: the read fails, nothing is said.
    r.store.write("/local/domain/3/data/moat-ping", "y".repeat(200).as_bytes()).unwrap();
    r.settle();
    assert!(drain::<RuntimeEvent>(&mut r.runtime).is_empty());
    assert_eq!(r.status("probe.values"), 3);
}

#[test]
fn a_shutdown_request_is_acknowledged_and_reported_once() {
    let mut r = rig();
    r.store.write("/local/domain/3/control/shutdown", b"poweroff").unwrap();
    r.settle();
    assert_eq!(shutdowns(&mut r.runtime), [RuntimeEvent::Shutdown(ShutdownReason::Poweroff)]);
    assert_eq!(r.store.read("/local/domain/3/control/shutdown").unwrap(), b"", "cleared: the toolstack's ack");
    r.advance(5000);
    assert!(shutdowns(&mut r.runtime).is_empty(), "our own clearing write is no request");
    r.store.write("/local/domain/3/control/shutdown", b"reboot").unwrap();
    r.settle();
    assert_eq!(shutdowns(&mut r.runtime), [RuntimeEvent::Shutdown(ShutdownReason::Reboot)]);
    assert_eq!(r.status("shutdown.requests"), 2);
}

#[test]
fn unknown_shutdown_values_are_cleared_not_obeyed() {
    let mut r = rig();
    r.store.write("/local/domain/3/control/shutdown", b"selfdestruct").unwrap();
    r.settle();
    assert!(shutdowns(&mut r.runtime).is_empty());
    assert_eq!(r.store.read("/local/domain/3/control/shutdown").unwrap(), b"");
    assert_eq!(r.status("shutdown.unknown"), 1);
}

#[test]
fn a_request_waiting_at_start_is_seen() {
    let mut r = rig_with(config(), |s| s.write("/local/domain/3/control/shutdown", b"halt").unwrap());
    r.settle();
    assert_eq!(shutdowns(&mut r.runtime), [RuntimeEvent::Shutdown(ShutdownReason::Poweroff)]);
}

fn add_uplink(s: &mut moat_test_xenstored::XenStored, ip: Option<&str>) {
    let be = format!("/local/domain/{NET}/backend/vif/{DOMID}/0");
    let fe = format!("/local/domain/{DOMID}/device/vif/0");
    if let Some(ip) = ip {
        s.write(&format!("{be}/ip"), ip.as_bytes()).unwrap();
        s.set_perms(&be, &[Perm { access: Access::None, domid: NET }, Perm { access: Access::Read, domid: DOMID }])
            .unwrap();
        s.set_perms(
            &format!("{be}/ip"),
            &[Perm { access: Access::None, domid: NET }, Perm { access: Access::Read, domid: DOMID }],
        )
        .unwrap();
    }
    s.write_many(&[
        (&format!("{fe}/backend"), be.as_bytes()),
        (&format!("{fe}/backend-id"), NET.to_string().as_bytes()),
        (&format!("{fe}/mac"), b"00:16:3e:5e:6c:99"),
        (&format!("{fe}/handle"), b"0"),
        (&format!("{fe}/state"), b"1"),
    ])
    .unwrap();
}

#[test]
fn the_uplink_is_announced_with_its_address() {
    let mut r = rig();
    add_uplink(&mut r.store, Some("10.138.0.5"));
    r.settle();
    let want = Uplink {
        devid: 0,
        backend_id: NET,
        backend: s("/local/domain/1/backend/vif/3/0"),
        mac: [0, 0x16, 0x3e, 0x5e, 0x6c, 0x99],
        mtu: 1500,
        ipv4: Some([10, 138, 0, 5]),
        ipv6: None,
    };
    assert_eq!(drain::<NetfrontCtl>(&mut r.netfront), [NetfrontCtl::Uplink(want.clone())]);
    // Netfront's own handshake writes change nothing we announce.
    r.store.write("/local/domain/3/device/vif/0/state", b"4").unwrap();
    r.settle();
    assert!(drain::<NetfrontCtl>(&mut r.netfront).is_empty());
    // A new MTU is announced again.
    r.store.write("/local/domain/3/device/vif/0/mtu", b"9000").unwrap();
    r.settle();
    assert_eq!(drain::<NetfrontCtl>(&mut r.netfront), [NetfrontCtl::Uplink(Uplink { mtu: 9000, ..want })]);
    r.store.rm("/local/domain/3/device/vif/0").unwrap();
    r.settle();
    assert_eq!(drain::<NetfrontCtl>(&mut r.netfront), [NetfrontCtl::UplinkGone { devid: 0 }]);
}

#[test]
fn an_uplink_without_a_readable_address_is_still_announced() {
    let mut r = rig_with(config(), |s| add_uplink(s, None));
    r.settle();
    let got = drain::<NetfrontCtl>(&mut r.netfront);
    assert!(matches!(&got[..], [NetfrontCtl::Uplink(Uplink { ipv4: None, .. })]), "{got:?}");
}

#[test]
fn a_malformed_uplink_is_not_announced() {
    let mut r = rig();
    r.store.write("/local/domain/3/device/vif/0/backend", b"relative/path").unwrap();
    r.store.write("/local/domain/3/device/vif/0/backend-id", b"1").unwrap();
    r.store.write("/local/domain/3/device/vif/0/mac", b"00:16:3e:5e:6c:99").unwrap();
    r.settle();
    assert!(drain::<NetfrontCtl>(&mut r.netfront).is_empty());
    assert!(r.status("uplink.invalid") >= 1);
}

#[test]
fn configured_domid_and_disabled_features() {
    let mut cfg = config();
    cfg.domid = Some(DOMID);
    cfg.shutdown = false;
    cfg.status_key = heapless::String::new();
    cfg.uplink_devid = None;
    let r = rig_with(cfg, |_| {});
    assert_eq!(r.xs.component.domid(), Some(DOMID));
    assert!(!r.store.log.iter().any(|l| l.ends_with("Read domid")), "domid not read when configured");
    let watched: Vec<String> = r.store.watches(r.conn).into_iter().map(|(p, _)| p).collect();
    assert_eq!(watched, ["backend/vif"]);
    assert_eq!(r.store.read("/local/domain/3/control/feature-poweroff"), Some(Vec::new()), "left as libxl made it");
}
