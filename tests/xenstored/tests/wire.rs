//! The test store through its wire protocol, as a domain sees it: watch
//! firing rules, transactions, permissions, relative paths, and the
//! connection being dropped for protocol violations.

use moat_ring::Region;
use moat_test_xenstored::client::{Client, Owned};
use moat_test_xenstored::{ConnId, XenStored};
use moat_xen::xenstore::{Access, Path, Perm, Perms, Request, XsRing};
use moat_xen::xs_wire::XsdError;

fn p(s: &str) -> Path<'_> {
    Path::new(s.as_bytes()).unwrap()
}

fn setup() -> (XenStored, Client, Client) {
    let mut s = XenStored::new();
    let (a, b) = (Region::alloc_zeroed(4096), Region::alloc_zeroed(4096));
    s.connect(5, "fw", a);
    s.connect(6, "client", b);
    (s, Client::new(a), Client::new(b))
}

fn events(c: &mut Client) -> Vec<(String, String)> {
    c.events.drain(..).map(|(p, t)| (p, String::from_utf8(t).unwrap())).collect()
}

#[test]
fn own_events_come_before_the_reply_in_cxenstored_order() {
    let (mut s, mut a, _) = setup();
    s.own_events_first = true;
    assert_eq!(a.call(&mut s, Request::Watch { path: p("data/x"), token: b"w" }, 0), Owned::Ok);
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("data/x".into(), "w".into())], "the initial fire still follows the reply");
    assert_eq!(a.call(&mut s, Request::Write { path: p("data/x/y"), value: b"1" }, 0), Owned::Ok);
    assert_eq!(events(&mut a), [("data/x/y".into(), "w".into())], "already there when the reply came");
}

#[test]
fn watches_fire_once_at_once_then_on_changes_below() {
    let (mut s, mut a, _) = setup();
    assert_eq!(a.call(&mut s, Request::Watch { path: p("backend/vif"), token: b"t" }, 0), Owned::Ok);
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("backend/vif".into(), "t".into())], "initial fire, relative");
    s.write("/local/domain/5/backend/vif/7/0/mac", b"00:16:3e:00:00:01").unwrap();
    s.write("/local/domain/5/backend/vifx", b"").unwrap(); // not below
    s.write("/local/domain/5/backend", b"").unwrap(); // a parent: not below
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("backend/vif/7/0/mac".into(), "t".into())]);
    s.rm("/local/domain/5/backend").unwrap();
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("backend/vif".into(), "t".into())], "removal of a parent reports the watch path");
    a.call(&mut s, Request::Watch { path: p("nothere/x"), token: b"n" }, 0);
    a.pump(&mut s);
    a.events.clear();
    s.write("/local/domain/5/nothere/y", b"").unwrap();
    s.rm("/local/domain/5/nothere").unwrap();
    a.pump(&mut s);
    assert!(a.events.is_empty(), "a watched node that never existed is not reported removed");
    // Absolute watches get absolute paths; duplicates are refused.
    assert_eq!(a.call(&mut s, Request::Watch { path: p("/local/domain/5/data/x"), token: b"abs" }, 0), Owned::Ok);
    assert_eq!(
        a.call(&mut s, Request::Watch { path: p("/local/domain/5/data/x"), token: b"abs" }, 0),
        Owned::Err(XsdError::Eexist)
    );
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("/local/domain/5/data/x".into(), "abs".into())]);
    assert_eq!(a.call(&mut s, Request::Write { path: p("data/x/y"), value: b"1" }, 0), Owned::Ok);
    assert!(a.events.is_empty(), "a request's own events follow its reply (as oxenstored sends them)");
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("/local/domain/5/data/x/y".into(), "abs".into())], "own writes fire too");
    assert_eq!(a.call(&mut s, Request::Unwatch { path: p("/local/domain/5/data/x"), token: b"abs" }, 0), Owned::Ok);
    assert_eq!(
        a.call(&mut s, Request::Unwatch { path: p("/local/domain/5/data/x"), token: b"abs" }, 0),
        Owned::Err(XsdError::Enoent)
    );
    s.write("/local/domain/5/data/x/z", b"").unwrap();
    a.pump(&mut s);
    assert!(a.events.is_empty(), "unwatched");
}

#[test]
fn watch_events_respect_read_permission() {
    let (mut s, mut a, mut b) = setup();
    b.call(&mut s, Request::Watch { path: p("/local/domain/5"), token: b"spy" }, 0);
    b.pump(&mut s);
    b.events.clear();
    // dom5's home is private to dom5: dom6 learns nothing of changes there.
    a.call(&mut s, Request::Write { path: p("data/secret"), value: b"1" }, 0);
    b.pump(&mut s);
    assert!(b.events.is_empty());
    assert_eq!(b.call(&mut s, Request::Read(p("/local/domain/5/data/secret")), 0), Owned::Err(XsdError::Eacces));
    assert_eq!(
        b.call(&mut s, Request::Write { path: p("/local/domain/5/x"), value: b"" }, 0),
        Owned::Err(XsdError::Eacces)
    );
    // Granting read lets events through.
    let perms = Perms::new(b"n5\0r6\0").unwrap();
    assert_eq!(a.call(&mut s, Request::SetPerms { path: p("data/secret"), perms }, 0), Owned::Ok);
    assert_eq!(b.call(&mut s, Request::Read(p("/local/domain/5/data/secret")), 0), Owned::Value(b"1".to_vec()));
    a.call(&mut s, Request::Write { path: p("data/secret"), value: b"2" }, 0);
    b.pump(&mut s);
    assert_eq!(
        events(&mut b),
        [("/local/domain/5/data/secret".into(), "spy".into()), ("/local/domain/5/data/secret".into(), "spy".into())],
        "the permission change (readable under the new ones, as oxenstored decides) and the write"
    );
    assert_eq!(a.call(&mut s, Request::GetPerms(p("data/secret")), 0), Owned::Perms(vec!["n5".into(), "r6".into()]));
}

#[test]
fn transactions_isolate_commit_and_conflict() {
    let (mut s, mut a, mut b) = setup();
    s.write("/shared", b"0").unwrap();
    s.set_perms("/shared", &[Perm { access: Access::Both, domid: 0 }]).unwrap();
    a.call(&mut s, Request::Watch { path: p("/shared"), token: b"w" }, 0);
    a.pump(&mut s);
    a.events.clear();
    let Owned::Tx(t) = a.call(&mut s, Request::TransactionStart, 0) else { panic!() };
    assert_eq!(a.call(&mut s, Request::Write { path: p("/shared"), value: b"a" }, t), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::Read(p("/shared")), t), Owned::Value(b"a".to_vec()), "sees its own write");
    assert_eq!(b.call(&mut s, Request::Read(p("/shared")), 0), Owned::Value(b"0".to_vec()), "others do not");
    a.pump(&mut s);
    assert!(a.events.is_empty(), "no events before commit");
    assert_eq!(a.call(&mut s, Request::TransactionEnd { commit: true }, t), Owned::Ok);
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("/shared".into(), "w".into())]);
    assert_eq!(s.read("/shared").unwrap(), b"a");

    // A conflicting write in between: EAGAIN, nothing applied.
    let Owned::Tx(t) = a.call(&mut s, Request::TransactionStart, 0) else { panic!() };
    a.call(&mut s, Request::Read(p("/shared")), t);
    a.call(&mut s, Request::Write { path: p("/other"), value: b"x" }, t);
    assert_eq!(b.call(&mut s, Request::Write { path: p("/shared"), value: b"b" }, 0), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::TransactionEnd { commit: true }, t), Owned::Err(XsdError::Eagain));
    assert_eq!(s.read("/other"), None);
    assert_eq!(s.transactions(ConnId::from_index(0)), 0, "ended either way");
    // Unknown transaction ids, and a non-zero id on start.
    assert_eq!(a.call(&mut s, Request::Read(p("/shared")), 999), Owned::Err(XsdError::Enoent));
    assert_eq!(a.call(&mut s, Request::TransactionStart, 3), Owned::Err(XsdError::Einval));
    // Aborting discards.
    let Owned::Tx(t) = a.call(&mut s, Request::TransactionStart, 0) else { panic!() };
    a.call(&mut s, Request::Write { path: p("/shared"), value: b"z" }, t);
    assert_eq!(a.call(&mut s, Request::TransactionEnd { commit: false }, t), Owned::Ok);
    assert_eq!(s.read("/shared").unwrap(), b"b");
}

#[test]
fn tree_operations() {
    let (mut s, mut a, _) = setup();
    assert_eq!(a.call(&mut s, Request::Write { path: p("data/a/b/c"), value: b"v" }, 0), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::Directory(p("data/a")), 0), Owned::Names(vec!["b".into()]));
    assert_eq!(a.call(&mut s, Request::Read(p("data/a/b")), 0), Owned::Value(vec![]), "parents are created empty");
    assert_eq!(a.call(&mut s, Request::Mkdir(p("data/a/d")), 0), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::Directory(p("data/a")), 0), Owned::Names(vec!["b".into(), "d".into()]));
    assert_eq!(a.call(&mut s, Request::Rm(p("data/a/zz")), 0), Owned::Ok, "missing leaf");
    assert_eq!(a.call(&mut s, Request::Rm(p("data/q/zz")), 0), Owned::Err(XsdError::Enoent), "missing parent");
    assert_eq!(a.call(&mut s, Request::Rm(p("data/a")), 0), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::Read(p("data/a/b/c")), 0), Owned::Err(XsdError::Enoent));
    assert_eq!(a.call(&mut s, Request::Read(p("@releaseDomain")), 0), Owned::Err(XsdError::Einval));
    assert_eq!(a.call(&mut s, Request::Read(p("domid")), 0), Owned::Value(b"5".to_vec()));
    // The home is laid out as libxl does: dom0's, with places for the guest.
    assert_eq!(a.call(&mut s, Request::Write { path: p("mine"), value: b"" }, 0), Owned::Err(XsdError::Eacces));
    assert_eq!(a.call(&mut s, Request::Write { path: p("domid"), value: b"1" }, 0), Owned::Err(XsdError::Eacces));
    assert_eq!(a.call(&mut s, Request::Write { path: p("control/shutdown"), value: b"" }, 0), Owned::Ok);
    assert_eq!(
        a.call(&mut s, Request::GetPerms(p("/local/domain/5")), 0),
        Owned::Perms(vec!["n0".into(), "r5".into()])
    );
    assert_eq!(a.call(&mut s, Request::IsDomainIntroduced(5), 0), Owned::Err(XsdError::Eacces), "dom0's question");
    assert_eq!(a.call(&mut s, Request::Release(3), 0), Owned::Err(XsdError::Eacces), "not for domUs");
    let big = vec![b'x'; 4000];
    assert_eq!(a.call(&mut s, Request::Write { path: p("data/big"), value: &big }, 0), Owned::Ok);
    assert_eq!(a.call(&mut s, Request::Read(p("data/big")), 0), Owned::Value(big), "larger than the ring, in pieces");
}

#[test]
fn special_watches() {
    let (mut s, mut a, _) = setup();
    a.call(&mut s, Request::Watch { path: p("@releaseDomain"), token: b"r" }, 0);
    a.pump(&mut s);
    a.events.clear();
    s.release_domain(6);
    a.pump(&mut s);
    assert_eq!(events(&mut a), [("@releaseDomain".into(), "r".into())]);
}

#[test]
fn oversized_payload_kills_the_connection() {
    let (mut s, mut a, _) = setup();
    assert_eq!(a.call(&mut s, Request::Read(p("domid")), 0), Owned::Value(b"5".to_vec()));
    let mut h = [0u8; 16];
    h[0] = 2;
    h[12..].copy_from_slice(&5000u32.to_le_bytes());
    let mut raw = XsRing::guest(s.page(ConnId::from_index(0))).unwrap();
    raw.write(&h).unwrap();
    s.poll();
    assert!(s.dead(ConnId::from_index(0)).unwrap().contains("TooLong"));
    assert_eq!(raw.server_error(), moat_xen::xs_wire::XENSTORE_ERROR_PROTO);
}
