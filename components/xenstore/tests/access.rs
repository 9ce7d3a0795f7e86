//! XenStore access on behalf of netback and netfront: the path policy,
//! watches (with and without the initial event), and transactions that
//! retry on conflict — against the test XenStore.

mod rig;

use moat_control::xenstore::{XsOp, XsReply, XsRequest};
use moat_control::{NetbackCtl, NetfrontCtl, XsError};
use moat_xen::xenstore::{Access, Perm};
use rig::*;

fn replies(r: &mut Rig) -> Vec<XsReply> {
    drain::<NetbackCtl>(&mut r.netback)
        .into_iter()
        .filter_map(|m| if let NetbackCtl::Xs(x) = m { Some(x) } else { None })
        .collect()
}

fn ask(r: &mut Rig, req: XsRequest) -> Vec<XsReply> {
    r.netback_asks(&req);
    r.settle();
    replies(r)
}

#[test]
fn netback_may_write_only_under_backend_vif() {
    let mut r = rig();
    let before = r.store.log.len();
    let denied = ask(&mut r, XsRequest::Write { id: 1, path: s("control/shutdown"), value: val(b"poweroff") });
    assert_eq!(denied, [XsReply::Failed { id: 1, error: XsError::Forbidden }]);
    let denied = ask(&mut r, XsRequest::Write { id: 2, path: s("/local/domain/3/control/shutdown"), value: val(b"x") });
    assert_eq!(denied, [XsReply::Failed { id: 2, error: XsError::Forbidden }], "absolute spelling too");
    let denied = ask(&mut r, XsRequest::Rm { id: 3, path: s("backend") });
    assert_eq!(denied, [XsReply::Failed { id: 3, error: XsError::Forbidden }], "a parent of the grant");
    let denied = ask(&mut r, XsRequest::Read { id: 4, path: s("/local/domain/0/name") });
    assert_eq!(denied, [XsReply::Failed { id: 4, error: XsError::Forbidden }]);
    assert!(r.store.log[before..].is_empty(), "nothing reached the store: {:?}", &r.store.log[before..]);
    assert_eq!(r.status("client.netback.forbidden"), 4);

    // The toolstack made the device's backend directory ours, as libxl does.
    let be = "/local/domain/3/backend/vif/7/0";
    r.store.mkdir(be).unwrap();
    r.store
        .set_perms(be, &[Perm { access: Access::None, domid: DOMID }, Perm { access: Access::Read, domid: 7 }])
        .unwrap();
    let ok = ask(&mut r, XsRequest::Write { id: 5, path: s("backend/vif/7/0/state"), value: val(b"2") });
    assert_eq!(ok, [XsReply::Done { id: 5 }]);
    assert_eq!(r.store.read("/local/domain/3/backend/vif/7/0/state").unwrap(), b"2");
    let bad = ask(&mut r, XsRequest::Write { id: 6, path: s("backend/vif//0"), value: val(b"") });
    assert_eq!(bad, [XsReply::Failed { id: 6, error: XsError::Invalid }]);
}

#[test]
fn netback_reads_its_frontends_within_the_stores_own_permissions() {
    let mut r = rig();
    r.add_vif(7, 0, "00:16:3e:00:00:07", "10.137.0.7");
    r.store.write("/local/domain/7/device/vif/0/tx-ring-ref", b"8").unwrap();
    r.settle();
    drain::<NetbackCtl>(&mut r.netback);
    let got = ask(&mut r, XsRequest::Read { id: 1, path: s("/local/domain/7/device/vif/0/tx-ring-ref") });
    assert_eq!(got, [XsReply::Value { id: 1, value: val(b"8") }]);
    let got = ask(&mut r, XsRequest::Read { id: 2, path: s("/local/domain/7/device/vif/0/nothere") });
    assert_eq!(got, [XsReply::Failed { id: 2, error: XsError::NotFound }]);
    // Granted by moat, refused by XenStore's permissions: a frontend
    // directory that does not let us read.
    r.store.write("/local/domain/8/device/vif/0/state", b"1").unwrap();
    let got = ask(&mut r, XsRequest::Read { id: 3, path: s("/local/domain/8/device/vif/0/state") });
    assert_eq!(got, [XsReply::Failed { id: 3, error: XsError::AccessDenied }]);
    let got = ask(&mut r, XsRequest::Directory { id: 4, path: s("/local/domain/7/device/vif/0") });
    let XsReply::Directory { id: 4, names, truncated: false } = &got[0] else { panic!("{got:?}") };
    assert!(names.iter().any(|n| n == "tx-ring-ref") && names.iter().any(|n| n == "mac"));
}

#[test]
fn watches_with_and_without_the_initial_event() {
    let mut r = rig();
    r.add_vif(7, 0, "00:16:3e:00:00:07", "10.137.0.7");
    r.settle();
    drain::<NetbackCtl>(&mut r.netback);
    let state = "/local/domain/7/device/vif/0/state";
    let got = ask(&mut r, XsRequest::Watch { id: 1, path: s(state), token: 70, skip_initial: true });
    assert_eq!(got, [XsReply::Done { id: 1 }], "no initial event");
    let got = ask(
        &mut r,
        XsRequest::Watch { id: 2, path: s("/local/domain/7/device/vif/0"), token: 71, skip_initial: false },
    );
    assert_eq!(got, [XsReply::Done { id: 2 }, XsReply::Event { token: 71, path: s("/local/domain/7/device/vif/0") }]);
    r.store.write(state, b"4").unwrap();
    r.settle();
    let got = replies(&mut r);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&XsReply::Event { token: 70, path: s(state) }));
    assert!(got.contains(&XsReply::Event { token: 71, path: s(state) }));
    // The same token twice is refused; unknown tokens too.
    let got = ask(&mut r, XsRequest::Watch { id: 3, path: s(state), token: 70, skip_initial: true });
    assert_eq!(got, [XsReply::Failed { id: 3, error: XsError::BadWatch }]);
    let got = ask(&mut r, XsRequest::Unwatch { id: 4, token: 99 });
    assert_eq!(got, [XsReply::Failed { id: 4, error: XsError::BadWatch }]);
    let got = ask(&mut r, XsRequest::Unwatch { id: 5, token: 70 });
    assert_eq!(got, [XsReply::Done { id: 5 }]);
    r.store.write(state, b"5").unwrap();
    r.settle();
    assert_eq!(replies(&mut r), [XsReply::Event { token: 71, path: s(state) }], "only the remaining watch");
    // Watching outside the grant is refused like any other read.
    let got = ask(&mut r, XsRequest::Watch { id: 6, path: s("control"), token: 1, skip_initial: false });
    assert_eq!(got, [XsReply::Failed { id: 6, error: XsError::Forbidden }]);
}

#[test]
fn netfront_has_its_own_grant_and_channel() {
    let mut r = rig();
    // The uplink's frontend directory, ours as libxl makes it.
    let fe = "/local/domain/3/device/vif/0";
    r.store.mkdir(fe).unwrap();
    r.store
        .set_perms(fe, &[Perm { access: Access::None, domid: DOMID }, Perm { access: Access::Read, domid: 1 }])
        .unwrap();
    r.netfront_asks(&XsRequest::Write { id: 9, path: s("device/vif/0/state"), value: val(b"4") });
    r.netfront_asks(&XsRequest::Write { id: 10, path: s("backend/vif/1/0/state"), value: val(b"4") });
    r.settle();
    let got: Vec<_> = drain::<NetfrontCtl>(&mut r.netfront)
        .into_iter()
        .filter_map(|m| if let NetfrontCtl::Xs(x) = m { Some(x) } else { None })
        .collect();
    assert_eq!(got, [XsReply::Done { id: 9 }, XsReply::Failed { id: 10, error: XsError::Forbidden }]);
    assert!(drain::<NetbackCtl>(&mut r.netback).is_empty());
}

/// Runs until the store has handled a request matching `needle` (in
/// transaction `nth`), then lets `meddle` change the store.
fn run_meddling(r: &mut Rig, needle: &str, times: usize, mut meddle: impl FnMut(&mut Rig, usize)) {
    let mut seen = 0;
    let mut scanned = r.store.log.len();
    for _ in 0..2000 {
        let moved = r.store.poll();
        let hits = r.store.log[scanned..].iter().filter(|l| l.contains(needle)).count();
        scanned = r.store.log.len();
        for _ in 0..hits {
            if seen < times {
                meddle(r, seen);
            }
            seen += 1;
        }
        let out = r.xs.call(r.now).unwrap();
        if !moved && !out.again && !r.store.poll() {
            return;
        }
    }
    panic!("never settled");
}

#[test]
fn transactions_retry_on_conflict_and_report_what_committed() {
    let mut r = rig();
    let a = "/local/domain/3/backend/vif/7/0/a";
    r.store.write(a, b"0").unwrap();
    for p in [a, "/local/domain/3/backend/vif/7/0"] {
        r.store.set_perms(p, &[Perm { access: Access::None, domid: DOMID }]).unwrap();
    }
    let mut ops = heapless::Vec::new();
    ops.push(XsOp::Read(s("backend/vif/7/0/a"))).unwrap();
    ops.push(XsOp::Write(s("backend/vif/7/0/b"), val(b"done"))).unwrap();
    r.netback_asks(&XsRequest::Transaction { id: 1, ops: ops.clone() });
    // Someone writes `a` right after our transaction read it, twice.
    run_meddling(&mut r, "Read backend/vif/7/0/a", 2, |r, n| {
        r.store.write(a, format!("{}", n + 1).as_bytes()).unwrap();
    });
    let got = replies(&mut r);
    let mut reads = heapless::Vec::new();
    reads.push(Some(val(b"2"))).unwrap();
    assert_eq!(got, [XsReply::Transaction { id: 1, reads }], "the committed run's read");
    assert_eq!(r.store.read("/local/domain/3/backend/vif/7/0/b").unwrap(), b"done");
    let tries = |r: &Rig| r.store.log.iter().filter(|l| l.ends_with("Read backend/vif/7/0/a")).count();
    assert_eq!(tries(&r), 3, "two conflicts, then a commit");
    assert_eq!(r.store.transactions(r.conn), 0);

    // Conflicts on every try: bounded retries, then Conflict, nothing written.
    r.store.rm("/local/domain/3/backend/vif/7/0/b").unwrap();
    r.netback_asks(&XsRequest::Transaction { id: 2, ops });
    run_meddling(&mut r, "Read backend/vif/7/0/a", usize::MAX, |r, n| {
        r.store.write(a, format!("x{n}").as_bytes()).unwrap();
    });
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 2, error: XsError::Conflict }]);
    assert_eq!(r.store.read("/local/domain/3/backend/vif/7/0/b"), None);
    let retries = usize::from(config().tx_retries);
    assert_eq!(tries(&r) - 3, retries + 1, "one try plus the configured retries");
}

#[test]
fn a_forbidden_op_fails_the_whole_transaction_up_front() {
    let mut r = rig();
    let mut ops = heapless::Vec::new();
    ops.push(XsOp::Write(s("backend/vif/7/0/x"), val(b"1"))).unwrap();
    ops.push(XsOp::Write(s("control/shutdown"), val(b"poweroff"))).unwrap();
    let before = r.store.log.len();
    let got = ask(&mut r, XsRequest::Transaction { id: 1, ops });
    assert_eq!(got, [XsReply::Failed { id: 1, error: XsError::Forbidden }]);
    assert_eq!(r.store.log.len(), before);
}

#[test]
fn garbage_from_a_client_is_counted_not_fatal() {
    let mut r = rig();
    let _ = r.from_netback.send(&[0xff, 0xff, 0xff]);
    let _ = r.from_netback.publish();
    r.settle();
    assert_eq!(r.status("client.netback.bad_message"), 1);
    let got = ask(&mut r, XsRequest::Read { id: 1, path: s("backend/vif") });
    assert_eq!(got, [XsReply::Failed { id: 1, error: XsError::NotFound }], "still serving");
}

#[test]
fn a_client_waiting_for_a_reply_does_not_make_us_spin() {
    let mut r = rig();
    r.netback_asks(&XsRequest::Read { id: 1, path: s("backend/vif") });
    r.netback_asks(&XsRequest::Read { id: 2, path: s("backend/vif") });
    // The store is slow: only the component runs.
    let first = r.xs.call(r.now).unwrap();
    let second = r.xs.call(r.now).unwrap();
    assert!(!second.again, "nothing to do until the store answers ({first:?}, {second:?})");
    r.settle();
    let got = replies(&mut r);
    assert_eq!(
        got,
        [XsReply::Failed { id: 1, error: XsError::NotFound }, XsReply::Failed { id: 2, error: XsError::NotFound }]
    );
}
