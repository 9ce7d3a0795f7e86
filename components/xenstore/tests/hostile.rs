//! A hostile or broken store: malformed replies, oversized lengths, replies
//! to requests never sent, garbage ring indices, silence. The component
//! must disconnect cleanly (every request then fails with `Disconnected`),
//! never panic, never fault, never spin.

mod rig;

use moat_control::xenstore::{XsReply, XsRequest};
use moat_control::{NetbackCtl, XsError};
use moat_xen::xenstore::{Path, Response, XsRing};
use moat_xen::xs_wire::{XenstoreDomainInterface, XsdSockmsgType};
use proptest::prelude::*;
use rig::*;

fn frame(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [ty, req_id, 0, payload.len() as u32] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn replies(r: &mut Rig) -> Vec<XsReply> {
    drain::<NetbackCtl>(&mut r.netback)
        .into_iter()
        .filter_map(|m| if let NetbackCtl::Xs(x) = m { Some(x) } else { None })
        .collect()
}

/// After a break: down, counted with `code`, and every request refused.
fn assert_disconnected(r: &mut Rig, code: u64) {
    assert_eq!(r.status("store.connected"), 0);
    assert_eq!(r.status("error.store_broken"), code);
    r.netback_asks(&XsRequest::Read { id: 77, path: s("backend/vif") });
    r.settle();
    assert_eq!(replies(r), [XsReply::Failed { id: 77, error: XsError::Disconnected }]);
    // Nothing more is read from or written to the page.
    let before = r.store.requests(r.conn);
    r.store.write("/local/domain/3/backend/vif/9/0/online", b"1").unwrap();
    r.advance(5000);
    assert_eq!(r.store.requests(r.conn), before);
}

#[test]
fn a_reply_to_a_request_never_sent() {
    let mut r = rig();
    r.store.inject(r.conn, &frame(2, 0xdead, b"value"));
    r.settle();
    assert_disconnected(&mut r, 4);
}

#[test]
fn an_oversized_length() {
    let mut r = rig();
    r.store.inject(r.conn, &frame(2, 1, b"")[..12]);
    r.store.inject(r.conn, &5000u32.to_le_bytes());
    r.settle();
    assert_disconnected(&mut r, 2);
}

#[test]
fn an_unknown_message_type() {
    let mut r = rig();
    r.store.inject(r.conn, &frame(20, 1, b""));
    r.settle();
    assert_disconnected(&mut r, 2);
}

#[test]
fn a_malformed_watch_event() {
    let mut r = rig();
    r.store.inject(r.conn, &frame(XsdSockmsgType::WatchEvent as u32, 0, b"no terminators"));
    r.settle();
    assert_disconnected(&mut r, 3);
}

#[test]
fn a_reply_of_the_wrong_type() {
    let mut r = rig();
    // The next request id is one past the requests sent so far.
    let next = r.status("store.requests") as u32 + 1;
    r.netback_asks(&XsRequest::Read { id: 1, path: s("backend/vif") });
    let _ = r.xs.call(r.now).unwrap(); // sends it; the store has not looked
    r.store.inject(r.conn, &frame(XsdSockmsgType::Write as u32, next, b"OK\0"));
    r.settle();
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 1, error: XsError::Disconnected }]);
    assert_disconnected(&mut r, 4);
}

#[test]
fn garbage_ring_indices() {
    let mut r = rig();
    XsRing::scribble(&r.page, None, None, None, Some(0x8000_0000));
    r.settle();
    assert_disconnected(&mut r, 1);

    let mut r = rig();
    XsRing::scribble(&r.page, Some(0x4000_0000), None, None, None);
    r.netback_asks(&XsRequest::Read { id: 1, path: s("backend/vif") });
    r.settle();
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 1, error: XsError::Disconnected }]);
    assert_disconnected(&mut r, 1);
}

#[test]
fn the_store_gives_up_on_us() {
    let mut r = rig();
    r.page
        .atomic_u32(core::mem::offset_of!(XenstoreDomainInterface, error))
        .unwrap()
        .store(2, core::sync::atomic::Ordering::Release);
    r.settle();
    assert_disconnected(&mut r, 5);
}

#[test]
fn stray_events_are_counted_not_fatal() {
    let mut r = rig();
    let ev = |path: &str, token: &[u8]| {
        let mut b = vec![0u8; 256];
        let p = Path::new(path.as_bytes()).unwrap();
        let n = Response::WatchEvent { path: p, token }.encode(XsdSockmsgType::WatchEvent, 0, 0, &mut b).unwrap();
        b.truncate(n);
        b
    };
    r.store.inject(r.conn, &ev("/x", b"m9.9"));
    r.store.inject(r.conn, &ev("/x", b"not-ours"));
    // A real watch's token, but a path outside it.
    let (wpath, token) = r.store.watches(r.conn).into_iter().find(|(p, _)| p == "control/shutdown").unwrap();
    assert_eq!(wpath, "control/shutdown");
    r.store.inject(r.conn, &ev("control/elsewhere", &token));
    r.settle();
    assert_eq!(r.status("error.stray_event"), 3);
    assert_eq!(r.status("store.connected"), 1);
    r.netback_asks(&XsRequest::Read { id: 1, path: s("backend/vif") });
    r.settle();
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 1, error: XsError::NotFound }]);
}

#[test]
fn silence_times_out_and_late_replies_are_dropped() {
    let mut r = rig();
    r.netback_asks(&XsRequest::Read { id: 1, path: s("backend/vif") });
    // The store is stuck: only the component runs.
    let out = r.xs.call(r.now).unwrap();
    assert!(out.wake_at.is_some(), "asks to be woken for the deadline");
    r.now = r.now.saturating_add(core::time::Duration::from_millis(1001));
    r.xs.call(r.now).unwrap();
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 1, error: XsError::Timeout }]);
    // The store wakes up and answers: the late reply is dropped quietly.
    r.settle();
    assert_eq!(r.status("error.late_reply"), 1);
    assert_eq!(r.status("store.connected"), 1);
    r.netback_asks(&XsRequest::Read { id: 2, path: s("backend/vif") });
    r.settle();
    assert_eq!(replies(&mut r), [XsReply::Failed { id: 2, error: XsError::NotFound }]);
}

#[test]
fn a_store_that_never_answers_is_given_up_on() {
    let mut r = rig();
    // More unanswered requests than the component will wait for.
    for i in 0..40u32 {
        r.netback_asks(&XsRequest::Read { id: i, path: s("backend/vif") });
        r.xs.call(r.now).unwrap();
        r.now = r.now.saturating_add(core::time::Duration::from_millis(1001));
        r.xs.call(r.now).unwrap();
        // Drain the component's requests without answering (the store
        // side reads them and throws them away).
        let mut s = XsRing::store(r.page).unwrap();
        let mut sink = [0u8; 1024];
        while s.read(&mut sink).unwrap() > 0 {}
    }
    assert_eq!(r.status("store.connected"), 0);
    assert_eq!(r.status("error.store_broken"), 6);
    let got = replies(&mut r);
    assert!(got.iter().all(|x| matches!(x, XsReply::Failed { error: XsError::Timeout | XsError::Disconnected, .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Garbage at random moments, between ordinary work: never a panic, a
    /// fault or a hang; connected or cleanly down.
    #[test]
    fn garbage_between_real_traffic(
        chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..64), 0u8..4), 1..6),
    ) {
        let mut r = rig();
        for (i, (bytes, what)) in chunks.iter().enumerate() {
            match what {
                0 => r.add_vif(10 + i as u16, 0, "00:16:3e:00:00:01", "10.137.0.10"),
                1 => r.netback_asks(&XsRequest::Read { id: i as u32, path: s("backend/vif") }),
                _ => {}
            }
            r.store.inject(r.conn, bytes);
            r.settle();
        }
        let connected = r.status("store.connected");
        prop_assert!(connected == 1 || r.status("error.store_broken") != 0);
        r.netback_asks(&XsRequest::Read { id: 999, path: s("backend/vif") });
        r.settle();
        let last = replies(&mut r).into_iter().rev().find(|x| matches!(x, XsReply::Failed { id: 999, .. } | XsReply::Directory { id: 999, .. } | XsReply::Value { id: 999, .. }));
        prop_assert!(last.is_some(), "the last request was answered");
    }
}
