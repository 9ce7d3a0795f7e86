//! The XenBus handshake against the real xenstore component and test
//! XenStore, with a simulated Linux frontend: connect, disconnect as the
//! toolstack does it, the frontend closing and coming back, and a vif that
//! comes and goes many times without leaking anything.

mod bed;

use bed::*;

#[test]
fn a_client_connects() {
    let mut b = bed();
    b.add_client(7, 0, [10, 137, 0, 7]);
    b.settle();
    let be = Bed::backend_dir(7, 0);
    assert_eq!(b.store.read(&format!("{be}/feature-rx-copy")).unwrap(), b"1");
    assert_eq!(b.store.read(&format!("{be}/feature-rx-flip")).unwrap(), b"0");
    assert_eq!(b.store.read(&format!("{be}/feature-sg")).unwrap(), b"1");
    for absent in ["feature-gso-tcpv4", "feature-gso-tcpv6", "multi-queue-max-queues", "feature-split-event-channels"] {
        assert!(b.store.read(&format!("{be}/{absent}")).is_none(), "{absent} is not advertised");
    }
    assert_eq!(b.backend_state(7, 0).as_deref(), Some("4"));
    assert_eq!(b.status("vif.connected"), 1);
    assert_eq!(b.status("held.channels"), 1);
    assert_eq!(b.status("held.maps"), 2);
    assert_eq!(b.status("held.watches"), 1);
    assert_eq!(b.svc.counts().maps, 2, "the runtime mapped both rings");
    assert_eq!(b.svc.counts().channels, 1);
    let port = b.front(7).port.unwrap();
    assert!(b.xen.is_bound(7, port), "the frontend's channel is bound");
    assert_eq!(b.status("error.ops_refused"), 0);
}

#[test]
fn the_toolstack_takes_a_vif_away() {
    let mut b = bed();
    b.add_client(7, 0, [10, 137, 0, 7]);
    b.settle();
    b.detach(7, 0);
    assert_eq!(b.status("vif.known"), 0);
    assert_eq!(b.status("held.channels"), 0);
    assert_eq!(b.status("held.maps"), 0);
    assert_eq!(b.status("held.watches"), 0);
    assert_eq!(b.svc.counts().maps, 0);
    assert_eq!(b.svc.counts().channels, 0);
    assert_eq!(b.xen.moat_maps(), 0);
    assert_eq!(b.xen.ports_of(MOAT), 0);
    assert_eq!(b.xs_status("vif.known"), 0, "the xenstore component freed the slot");
    assert_eq!(b.xs_status("watches"), 2, "only the component's own watches are left");
    assert_eq!(b.status("vif.disconnects"), 1);
}

#[test]
fn a_frontend_closes_and_comes_back() {
    let mut b = bed();
    b.add_client(7, 0, [10, 137, 0, 7]);
    b.settle();
    let mut st = b.fronts.remove(0);
    st.close(&mut b.xen, &mut b.store);
    b.settle();
    assert_eq!(b.backend_state(7, 0).as_deref(), Some("6"));
    assert_eq!(b.status("vif.connected"), 0);
    assert_eq!(b.status("held.maps"), 0);
    assert_eq!(b.status("held.channels"), 0);
    assert_eq!(b.status("held.watches"), 1, "still watching: the vif is online");
    // The driver is loaded again: Initialising, then a fresh connection.
    st.reinitialise(&mut b.store);
    b.fronts.push(st);
    b.settle();
    assert_eq!(b.backend_state(7, 0).as_deref(), Some("4"));
    assert_eq!(b.status("vif.connected"), 1);
    assert_eq!(b.status("vif.connects"), 2);
}

#[test]
fn vifs_come_and_go_without_leaking() {
    let mut b = bed();
    let keep = b.add_client(9, 0, [10, 137, 0, 9]);
    b.settle();
    let _ = keep;
    for i in 0..300u32 {
        b.add_client(7, i, [10, 137, 0, 7]);
        b.settle();
        assert_eq!(b.backend_state(7, i).as_deref(), Some("4"), "cycle {i} connects");
        b.detach(7, i);
        assert_eq!(b.status("vif.connected"), 1, "cycle {i}: the other client stays");
    }
    assert_eq!(b.status("held.channels"), 1);
    assert_eq!(b.status("held.maps"), 2);
    assert_eq!(b.status("held.watches"), 1);
    assert_eq!(b.svc.counts().maps, 2);
    assert_eq!(b.svc.counts().channels, 1);
    assert_eq!(b.xen.ports_of(MOAT), 1);
    assert_eq!(b.status("vif.connects"), 301);
    assert_eq!(b.status("vif.disconnects"), 300);
    assert_eq!(b.status("held.buffers"), 0);
    assert_eq!(b.xs_status("watches"), 3);
}
