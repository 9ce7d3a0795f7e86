//! The real xenstore component, bound through the host harness, with its
//! ring page connected to a store: directly to the test store (as the
//! component's own tests do), or through [`Shim`] to a byte stream (a relay
//! domain's ring, so the component is that domain to the real daemon).
//!
//! The toolstack's part (vifs, the uplink, shutdown requests) is played by
//! a dom0 connection, the same requests on both sides, written in a
//! transaction as libxl writes a device. What is compared: every message
//! the component sends to the other components, its counters, and the keys
//! it writes, after each step.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant as Clock};

use moat_component::Instant;
use moat_control::{ClientEvent, NetbackCtl, NetfrontCtl, RuntimeEvent, XsOp, XsRequest};
use moat_ring::{ByteConsumer, ByteProducer, Region};
use moat_runtime::harness::{Harness, Running};
use moat_xen::xenstore::XsRing;
use moat_xenstore::{Xenstore, XenstoreConfig};
use serde::de::DeserializeOwned;

use crate::conn::{Conn, Log, Reply};
use crate::link::{Link, Shared};

/// Moves bytes between the component's ring page (playing the store's
/// side of it) and a stream to a real store.
pub struct Shim<L: Link> {
    link: L,
    ring: XsRing,
    to_ring: VecDeque<u8>,
}

impl<L: Link> Shim<L> {
    /// The store side of `page`, forwarded to `link`.
    pub fn new(link: L, page: Region) -> Self {
        Shim { link, ring: XsRing::store(page).expect("a ring page"), to_ring: VecDeque::new() }
    }

    /// Moves what can move; true if anything did.
    pub fn pump(&mut self) -> io::Result<bool> {
        let mut moved = false;
        let mut buf = [0u8; 4096];
        let n = self.ring.read(&mut buf).map_err(|e| io::Error::other(format!("component ring: {e:?}")))?;
        if n > 0 {
            self.link.send(&buf[..n])?;
            moved = true;
        }
        let n = self.link.recv(&mut buf, Duration::from_millis(1))?;
        self.to_ring.extend(&buf[..n]);
        if !self.to_ring.is_empty() {
            let w = self
                .ring
                .write(self.to_ring.make_contiguous())
                .map_err(|e| io::Error::other(format!("component ring: {e:?}")))?;
            self.to_ring.drain(..w);
            moved |= w > 0 || n > 0;
        }
        Ok(moved)
    }
}

/// Where the component's ring goes.
pub enum Store<L: Link> {
    /// Attached to the test store directly, as the component's tests do.
    Test(Shared),
    /// Through the shim to a real store.
    Real(Shim<L>),
}

/// The component and the ends of its ports.
pub struct Rig<L: Link> {
    store: Store<L>,
    xs: Running<Xenstore>,
    rules: ByteConsumer,
    nat: ByteConsumer,
    netback: ByteConsumer,
    netfront: ByteConsumer,
    runtime: ByteConsumer,
    from_netback: ByteProducer,
    start: Clock,
    log: Log,
    /// Nothing moving for this long counts as settled.
    pub quiet: Duration,
}

/// The component's configuration for the comparison: the defaults (a Qubes
/// sys-firewall), with a shorter reply timeout.
pub fn config() -> XenstoreConfig {
    XenstoreConfig { timeout_ms: 5000, ..XenstoreConfig::default() }
}

impl<L: Link> Rig<L> {
    /// Binds the component; `attach` connects its ring page to a store.
    pub fn new(log: &Log, attach: impl FnOnce(Region) -> Store<L>) -> Self {
        let mut h = Harness::new();
        let page = h.device("store", "XenStoreRing", 4096);
        let store = attach(page);
        let from_netback = h.msg_input("from_netback", XsRequest::NAME, 4096);
        let netback = h.msg_output("to_netback", NetbackCtl::NAME, 8192);
        let _from_netfront = h.msg_input("from_netfront", XsRequest::NAME, 4096);
        let netfront = h.msg_output("to_netfront", NetfrontCtl::NAME, 8192);
        let rules = h.msg_output("clients_to_rules", ClientEvent::NAME, 8192);
        let nat = h.msg_output("clients_to_nat", ClientEvent::NAME, 8192);
        let runtime = h.msg_output("to_runtime", RuntimeEvent::NAME, 1024);
        let xs = h.start::<Xenstore>(config()).expect("the component starts");
        Rig {
            store,
            xs,
            rules,
            nat,
            netback,
            netfront,
            runtime,
            from_netback,
            start: Clock::now(),
            log: log.clone(),
            quiet: Duration::ZERO,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64 + 1_000_000_000)
    }

    fn pump(&mut self) -> io::Result<bool> {
        match &mut self.store {
            Store::Test(s) => Ok(s.borrow_mut().poll()),
            Store::Real(shim) => shim.pump(),
        }
    }

    /// Runs store and component until neither has anything to do (for a
    /// real store: nothing moved for a while), at most 30 s.
    pub fn settle(&mut self) {
        let began = Clock::now();
        self.settle_inner();
        let st = self.xs.status();
        let n = |k: &str| st.get(k).copied().unwrap_or(0);
        self.line(format!(
            "~ settled in {} ms; store requests {} replies {} events {}",
            began.elapsed().as_millis(),
            n("store.requests"),
            n("store.replies"),
            n("store.events")
        ));
    }

    fn settle_inner(&mut self) {
        let give_up = Clock::now() + Duration::from_secs(30);
        let mut quiet_since = Clock::now();
        loop {
            let a = match self.pump() {
                Ok(m) => m,
                Err(e) => {
                    self.line(format!("store link: {e}"));
                    return;
                }
            };
            let out = match self.xs.call(self.now()) {
                Ok(o) => o,
                Err(f) => {
                    self.line(format!("component fault: {f:?}"));
                    return;
                }
            };
            let b = self.pump().unwrap_or(false);
            let busy = a || b || out.again;
            // A timer due soon (the component's short rechecks) is work
            // still to come; its job deadlines (seconds away) are not.
            let now = self.now();
            let timer_soon = out.wake_at.is_some_and(|t| t.saturating_since(now) <= Duration::from_millis(100));
            if busy {
                quiet_since = Clock::now();
            } else if timer_soon {
                std::thread::sleep(Duration::from_millis(2));
            } else if quiet_since.elapsed() >= self.quiet {
                return;
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
            if Clock::now() > give_up {
                self.line("did not settle within 30 s".into());
                return;
            }
        }
    }

    fn line(&self, s: String) {
        self.log.borrow_mut().push(s);
    }

    /// Writes down every message the component sent since the last call.
    pub fn outputs(&mut self) {
        for m in drain::<ClientEvent>(&mut self.rules) {
            self.line(format!("rules: {m:?}"));
        }
        for m in drain::<ClientEvent>(&mut self.nat) {
            self.line(format!("nat: {m:?}"));
        }
        for m in drain::<NetbackCtl>(&mut self.netback) {
            self.line(format!("netback: {m:?}"));
        }
        for m in drain::<NetfrontCtl>(&mut self.netfront) {
            self.line(format!("netfront: {m:?}"));
        }
        for m in drain::<RuntimeEvent>(&mut self.runtime) {
            self.line(format!("runtime: {m:?}"));
        }
    }

    /// Writes down the component's counters (the request and event totals
    /// depend on what the store sent unasked, so they are left out; the
    /// `*.invalid` counters count reads of a bad device, which depend on
    /// how the store's events were spread in time, so only whether they
    /// are zero is written down).
    pub fn counters(&mut self) {
        let mut all: Vec<_> = self.xs.status().into_iter().collect();
        all.sort();
        let shown: Vec<String> = all
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "store.requests" | "store.replies" | "store.events"))
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| if k.ends_with(".invalid") { format!("{k}>0") } else { format!("{k}={v}") })
            .collect();
        self.line(format!("status: {}", shown.join(" ")));
    }

    /// Sends a request as netback.
    pub fn netback_asks(&mut self, req: &XsRequest) {
        let mut buf = [0u8; 4096];
        self.from_netback.send_msg(req, &mut buf).expect("room for a request");
        let _ = self.from_netback.publish();
    }
}

fn drain<M: DeserializeOwned>(c: &mut ByteConsumer) -> Vec<M> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Some(m)) = c.recv_msg::<M>(&mut buf) {
        out.push(m);
    }
    let _ = c.release();
    out
}

/// Where things are, for the toolstack's writes.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    /// The component's domain.
    pub domid: u16,
    /// The uplink's backend domain (need not exist).
    pub net: u16,
}

/// The toolstack adds a client vif as libxl does: in one transaction, the
/// frontend and backend directories with their permissions, then their keys.
pub fn add_vif<B: Link>(t: &mut Conn<B>, ids: Ids, fid: u16, devid: u32, mac: &str, ip: &str) {
    let d = ids.domid;
    let fe = format!("/local/domain/{fid}/device/vif/{devid}");
    let be = format!("/local/domain/{d}/backend/vif/{fid}/{devid}");
    let (handle, fids, ds) = (devid.to_string(), fid.to_string(), d.to_string());
    in_tx(t, |t, tx| {
        t.mkdir(tx, &fe);
        t.set_perms(tx, &fe, &format!("n{fid} r{d}"));
        for (k, v) in [("backend", be.as_str()), ("backend-id", &ds), ("handle", &handle), ("mac", mac), ("state", "1")]
        {
            t.write(tx, &format!("{fe}/{k}"), v.as_bytes());
        }
        t.mkdir(tx, &be);
        t.set_perms(tx, &be, &format!("n{d} r{fid}"));
        for (k, v) in [
            ("frontend", fe.as_str()),
            ("frontend-id", &fids),
            ("online", "1"),
            ("state", "1"),
            ("mac", mac),
            ("ip", ip),
            ("handle", &handle),
            ("script", "/etc/xen/scripts/vif-route-qubes"),
            ("type", "vif"),
        ] {
            t.write(tx, &format!("{be}/{k}"), v.as_bytes());
        }
    });
}

/// Runs `f` in a toolstack transaction, redone on `EAGAIN` (a few times).
pub fn in_tx<B: Link>(t: &mut Conn<B>, f: impl Fn(&mut Conn<B>, u32)) {
    for _ in 0..5 {
        let tx = t.start();
        f(t, tx);
        if t.end(tx, true) != Reply::Err("EAGAIN".into()) {
            return;
        }
    }
}

/// The steps, run the same way against either store.
pub fn run<L: Link, B: Link>(rig: &mut Rig<L>, t: &mut Conn<B>, ids: Ids) {
    let d = ids.domid;
    let home = format!("/local/domain/{d}");
    let step = |rig: &mut Rig<L>, name: &str| {
        rig.line(format!("# {name}"));
    };
    let after = |rig: &mut Rig<L>| {
        rig.settle();
        rig.outputs();
        rig.counters();
    };
    let keys = |t: &mut Conn<B>| {
        for k in ["data/moat-status", "control/feature-poweroff", "control/feature-reboot", "control/shutdown"] {
            t.read(0, &format!("{home}/{k}"));
        }
    };
    step(rig, "start");
    after(rig);
    keys(t);

    step(rig, "a client vif appears");
    add_vif(t, ids, 7, 0, "00:16:3e:5e:6c:07", "10.137.0.7");
    after(rig);

    step(rig, "netback's own writes under the device change nothing");
    t.write(0, &format!("{home}/backend/vif/7/0/feature-sg"), b"1");
    t.write(0, &format!("{home}/backend/vif/7/0/state"), b"2");
    after(rig);

    step(rig, "netback's requests through the component");
    let s = |v: &str| heapless::String::try_from(v).expect("short");
    let val = |v: &[u8]| heapless::Vec::from_slice(v).expect("short");
    rig.netback_asks(&XsRequest::Write { id: 1, path: s("backend/vif/7/0/feature-rx-copy"), value: val(b"1") });
    rig.netback_asks(&XsRequest::Read { id: 2, path: s("/local/domain/7/device/vif/0/state") });
    rig.netback_asks(&XsRequest::Watch {
        id: 3,
        path: s("/local/domain/7/device/vif/0/state"),
        token: 77,
        skip_initial: true,
    });
    rig.netback_asks(&XsRequest::Write { id: 4, path: s("data/not-granted"), value: val(b"1") });
    rig.netback_asks(&XsRequest::Read { id: 5, path: s("/local/domain/7/device/vif/0/nothere") });
    after(rig);
    t.write(0, "/local/domain/7/device/vif/0/state", b"4");
    after(rig);
    let mut ops = heapless::Vec::new();
    let _ = ops.push(XsOp::Read(s("/local/domain/7/device/vif/0/state")));
    let _ = ops.push(XsOp::Write(s("backend/vif/7/0/state"), val(b"4")));
    let _ = ops.push(XsOp::Read(s("backend/vif/7/0/nothere")));
    rig.netback_asks(&XsRequest::Transaction { id: 6, ops });
    rig.netback_asks(&XsRequest::Unwatch { id: 7, token: 77 });
    after(rig);
    t.read(0, &format!("{home}/backend/vif/7/0/feature-rx-copy"));
    t.read(0, &format!("{home}/backend/vif/7/0/state"));

    step(rig, "a changed address goes down and up");
    t.write(0, &format!("{home}/backend/vif/7/0/ip"), b"10.137.0.77");
    after(rig);

    step(rig, "offline, then removed by netback");
    t.write(0, &format!("{home}/backend/vif/7/0/online"), b"0");
    after(rig);
    t.rm(0, &format!("{home}/backend/vif/7/0"));
    after(rig);

    step(rig, "a second client with IPv6 vanishes while up");
    add_vif(t, ids, 8, 0, "00:16:3e:00:00:08", "10.137.0.8 fd09:24ef:4179::a89:8");
    after(rig);
    t.rm(0, &format!("{home}/backend/vif/8"));
    after(rig);

    step(rig, "a malformed vif, then fixed");
    add_vif(t, ids, 9, 0, "00:16:3e:00:00", "10.137.0.9");
    after(rig);
    t.write(0, &format!("{home}/backend/vif/9/0/mac"), b"00:16:3e:00:00:09");
    after(rig);

    step(rig, "the uplink");
    let net = ids.net;
    let be = format!("/local/domain/{net}/backend/vif/{d}/0");
    let fe = format!("{home}/device/vif/0");
    in_tx(t, |t, tx| {
        t.mkdir(tx, &be);
        t.set_perms(tx, &be, &format!("n{net} r{d}"));
        t.write(tx, &format!("{be}/ip"), b"10.138.0.5");
        t.mkdir(tx, &fe);
        t.set_perms(tx, &fe, &format!("n{d} r{net}"));
        for (k, v) in [
            ("backend", be.as_str()),
            ("backend-id", &net.to_string()),
            ("mac", "00:16:3e:5e:6c:99"),
            ("handle", "0"),
            ("state", "1"),
        ] {
            t.write(tx, &format!("{fe}/{k}"), v.as_bytes());
        }
    });
    after(rig);
    t.write(0, &format!("{fe}/mtu"), b"9000");
    after(rig);
    t.rm(0, &fe);
    after(rig);

    step(rig, "a shutdown request");
    t.write(0, &format!("{home}/control/shutdown"), b"poweroff");
    after(rig);
    keys(t);
    step(rig, "an unknown shutdown request");
    t.write(0, &format!("{home}/control/shutdown"), b"selfdestruct");
    after(rig);
    keys(t);

    // Leave nothing behind in the real store.
    t.recording = false;
    for p in [format!("{home}/backend"), be.clone(), "/local/domain/7".into(), "/local/domain/8".into()] {
        t.rm(0, &p);
    }
    t.rm(0, "/local/domain/9");
    t.recording = true;
}
