//! netback driven by an arbitrary frontend: a client vif connects, then the
//! input decides what the frontend does — raw or plausible TX slots, lying
//! indices, grants pulled back (also while netback's copies are in flight),
//! RX buffers posted or garbage, packets from the NAT, closing — and the
//! toolstack finally takes the vif away.
//!
//! Checked after every step: netback never faults and never asks the
//! runtime for anything that is not its own (no op refused). Checked at the
//! end: every buffer is home, every channel, mapping and watch given back —
//! which is also what lets one rig (whose memory is never freed, by
//! design) serve every run.
//!
//! The xenstore component is played by a small responder over a map, so a
//! run costs microseconds; the real component is exercised by netback's
//! host tests.
#![no_main]

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use moat_component::{Channel, Consumer, Instant, PacketDesc, PoolGeometry, Producer};
use moat_control::xenstore::XsValue;
use moat_control::{NetbackCtl, Vif, XsError, XsOp, XsReply, XsRequest};
use moat_net::meta::{Iface, Meta, Verdict};
use moat_netback::{Netback, NetbackConfig};
use moat_ring::{ByteConsumer, ByteProducer};
use moat_runtime::harness::{Harness, Running};
use moat_test_xensim::{Mem, MoatHv, PageId, Xen, ring};
use moat_xen::ops::{Backend, Caps, Role, Service, Space};

const MOAT: u16 = 3;
const FE: u16 = 7;
const PAGES: usize = 16;

struct Rig {
    xen: Xen,
    nb: Running<Netback>,
    svc: Service,
    ch: Channel,
    from_xs: ByteProducer,
    to_xs: ByteConsumer,
    to_csum: Consumer<PacketDesc>,
    to_csum_free: Producer<PacketDesc>,
    from_nat: Producer<PacketDesc>,
    from_nat_free: Consumer<PacketDesc>,
    tx_ring: PageId,
    rx_ring: PageId,
    pages: [PageId; PAGES],
    devid: u32,
    _h: Harness,
}

fn rig() -> Rig {
    let mut h = Harness::new();
    let to_csum = h.output("to_csum", 256);
    let to_csum_free = h.input("to_csum_free", 256);
    let from_nat = h.input("from_nat", 256);
    let from_nat_free = h.output("from_nat_free", 256);
    let from_xs = h.msg_input("from_xenstore", NetbackCtl::NAME, 4096);
    let to_xs = h.msg_output("to_xenstore", XsRequest::NAME, 4096);
    let cgeo = PoolGeometry::new(1, 2048, 64).unwrap();
    let ugeo = PoolGeometry::new(2, 2048, 64).unwrap();
    let cp = h.pool("client_buffers", cgeo, true);
    let up = h.pool("uplink_buffers", ugeo, false);
    let dev = h.device("xen", Backend::NAME, Backend::GEOMETRY.bytes());
    let ch = h.channel("xen");
    let mut xen = Xen::new(MOAT);
    let db = xen.add_space(Mem::Region(dev));
    let cb = xen.add_space(Mem::Pool(cp));
    let ub = xen.add_space(Mem::Pool(up));
    let spaces = [
        Space { id: 1, base: cb, len: cgeo.region_size() as u64, writable: true },
        Space { id: 2, base: ub, len: ugeo.region_size() as u64, writable: false },
    ];
    let caps = Caps { grant_copy: true, grant_access: false, event_channels: 8 };
    let svc = Service::new(dev, db, Backend::GEOMETRY, caps, &spaces).unwrap();
    let config = NetbackConfig { max_clients: 2, rx_queue: 8, tx_per_round: 8, rx_per_round: 8 };
    let nb = h.start::<Netback>(config).unwrap();
    let tx_ring = xen.alloc_page(FE);
    let rx_ring = xen.alloc_page(FE);
    let pages = core::array::from_fn(|_| xen.alloc_page(FE));
    Rig {
        xen,
        nb,
        svc,
        ch,
        from_xs,
        to_xs,
        to_csum,
        to_csum_free,
        from_nat,
        from_nat_free,
        tx_ring,
        rx_ring,
        pages,
        devid: 0,
        _h: h,
    }
}

/// One rig for every run, in a static (never dropped, so the memory it
/// leaks by design stays reachable for the leak checker at exit).
static RIG: LazyLock<Mutex<Rig>> = LazyLock::new(|| Mutex::new(rig()));

/// The xenstore component's part, over a map.
#[derive(Default)]
struct Store {
    keys: HashMap<String, Vec<u8>>,
    watch: Option<(String, u32)>,
    replies: VecDeque<NetbackCtl>,
    removed: bool,
}

fn abs(p: &str) -> String {
    if p.starts_with('/') { p.to_string() } else { format!("/local/domain/{MOAT}/{p}") }
}

impl Store {
    fn value(v: &[u8]) -> XsValue {
        XsValue::from_slice(&v[..v.len().min(128)]).unwrap()
    }

    fn set(&mut self, path: &str, v: &[u8]) {
        self.keys.insert(abs(path), v.to_vec());
        if let Some((w, token)) = &self.watch
            && abs(path).starts_with(w.as_str())
        {
            let ev = XsReply::Event { token: *token, path: w.as_str().try_into().unwrap() };
            self.replies.push_back(NetbackCtl::Xs(ev));
        }
    }

    fn handle(&mut self, r: XsRequest) {
        let id = r.id();
        let reply = match r {
            XsRequest::Read { path, .. } => match self.keys.get(&abs(&path)) {
                Some(v) => XsReply::Value { id, value: Self::value(v) },
                None => XsReply::Failed { id, error: XsError::NotFound },
            },
            XsRequest::Write { path, value, .. } => {
                self.set(&path, &value);
                XsReply::Done { id }
            }
            XsRequest::Rm { path, .. } => {
                let p = abs(&path);
                self.keys.retain(|k, _| !k.starts_with(&p));
                self.removed = true;
                XsReply::Done { id }
            }
            XsRequest::Watch { path, token, .. } => {
                self.watch = Some((abs(&path), token));
                self.replies.push_back(NetbackCtl::Xs(XsReply::Done { id }));
                let ev = XsReply::Event { token, path };
                self.replies.push_back(NetbackCtl::Xs(ev));
                return;
            }
            XsRequest::Unwatch { .. } => {
                self.watch = None;
                XsReply::Done { id }
            }
            XsRequest::Mkdir { .. } => XsReply::Done { id },
            XsRequest::Directory { .. } => XsReply::Directory { id, names: Default::default(), truncated: false },
            XsRequest::Transaction { ops, .. } => {
                let mut reads = heapless::Vec::new();
                for op in ops {
                    match op {
                        XsOp::Read(p) => {
                            let _ = reads.push(self.keys.get(&abs(&p)).map(|v| Self::value(v)));
                        }
                        XsOp::Write(p, v) => self.set(&p, &v),
                        XsOp::Rm(p) => {
                            let p = abs(&p);
                            self.keys.retain(|k, _| !k.starts_with(&p));
                        }
                        XsOp::Mkdir(_) => {}
                    }
                }
                XsReply::Transaction { id, reads }
            }
        };
        self.replies.push_back(NetbackCtl::Xs(reply));
    }
}

/// Bytes of the input, taken in turn (zeros when it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

struct Run<'r> {
    r: &'r mut Rig,
    s: Store,
    now: Instant,
    port: u32,
    grants: Vec<u32>,
    tx_prod: u32,
    rx_prod: u32,
    taken: Vec<PacketDesc>,
}

impl Run<'_> {
    fn fe(&self) -> String {
        format!("/local/domain/{FE}/device/vif/{}", self.r.devid)
    }

    /// Relays control, runs netback and its ops, answers XenStore.
    fn round(&mut self) {
        let mut buf = [0u8; 4096];
        while let Some(req) = self.r.to_xs.recv_msg::<XsRequest>(&mut buf).expect("well-formed requests") {
            self.s.handle(req);
        }
        let _ = self.r.to_xs.release();
        while let Some(m) = self.s.replies.pop_front() {
            if self.r.from_xs.send_msg(&m, &mut buf).is_err() {
                self.s.replies.push_front(m);
                break;
            }
        }
        let _ = self.r.from_xs.publish();
        for port in self.r.xen.take_pending(MOAT) {
            self.r.svc.event(port);
        }
        let _ = self.r.xen.take_pending(FE);
        let out = self.r.nb.call(self.now).expect("netback never faults");
        if out.notified.contains(self.r.ch) {
            self.r.svc.run(&mut MoatHv(&mut self.r.xen));
        }
        while let Some(d) = self.r.to_csum.pop().unwrap() {
            self.taken.push(d);
        }
        let _ = self.r.to_csum.release();
        while self.r.from_nat_free.pop().unwrap().is_some() {}
        let _ = self.r.from_nat_free.release();
        assert_eq!(self.r.nb.status()["error.ops_refused"], 0, "netback asked for something not its own");
    }

    fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            self.round();
        }
    }

    fn return_csum(&mut self) {
        for d in self.taken.drain(..) {
            self.r.to_csum_free.push(&d).unwrap();
        }
        let _ = self.r.to_csum_free.publish();
    }

    fn connect(&mut self, keys_ok: bool) {
        let x = &mut self.r.xen;
        for p in [self.r.tx_ring, self.r.rx_ring] {
            x.write_page(p, 0, &[0u8; 4096]);
            let page = x.page(p);
            ring::set(&page, ring::REQ_EVENT, 1);
            ring::set(&page, ring::RSP_EVENT, 1);
        }
        let tx = x.grant(FE, self.r.tx_ring, MOAT, false);
        let rx = x.grant(FE, self.r.rx_ring, MOAT, false);
        self.grants.extend([tx, rx]);
        self.port = x.alloc_unbound(FE, MOAT);
        let fe = self.fe();
        self.s.set(&format!("{fe}/tx-ring-ref"), tx.to_string().as_bytes());
        self.s.set(&format!("{fe}/rx-ring-ref"), if keys_ok { rx.to_string() } else { "x".into() }.as_bytes());
        self.s.set(&format!("{fe}/event-channel"), self.port.to_string().as_bytes());
        self.s.set(&format!("{fe}/request-rx-copy"), b"1");
        self.s.set(&format!("{fe}/feature-rx-notify"), b"1");
        self.s.set(&format!("{fe}/state"), b"4");
    }

    fn notify(&mut self) {
        self.r.xen.send(FE, self.port);
    }

    fn step(&mut self, inp: &mut Input) {
        let tx = self.r.xen.page(self.r.tx_ring);
        let rx = self.r.xen.page(self.r.rx_ring);
        match inp.u8() % 14 {
            0 => {
                let raw: Vec<u8> = (0..12).map(|_| inp.u8()).collect();
                ring::write(&tx, self.tx_prod, 12, &raw);
                self.tx_prod = self.tx_prod.wrapping_add(1);
            }
            1 => {
                // A plausible request naming one of our pages.
                let k = usize::from(inp.u8()) % PAGES;
                let data: Vec<u8> = (0..64).map(|_| inp.u8()).collect();
                self.r.xen.write_page(self.r.pages[k], 0, &data);
                let gref = self.r.xen.grant(FE, self.r.pages[k], MOAT, inp.u8() & 1 == 0);
                self.grants.push(gref);
                let mut req = gref.to_le_bytes().to_vec();
                req.extend_from_slice(&(inp.u16() % 4096).to_le_bytes());
                req.extend_from_slice(&u16::from(inp.u8() & 0xf).to_le_bytes());
                req.extend_from_slice(&inp.u16().to_le_bytes());
                req.extend_from_slice(&(inp.u16() % 2048).to_le_bytes());
                ring::write(&tx, self.tx_prod, 12, &req);
                self.tx_prod = self.tx_prod.wrapping_add(1);
            }
            2 => {
                ring::set(&tx, ring::REQ_PROD, self.tx_prod);
                self.notify();
            }
            3 => {
                ring::set(&tx, ring::REQ_PROD, inp.u32());
                self.notify();
            }
            4 => {
                if !self.grants.is_empty() {
                    let g = self.grants.swap_remove(usize::from(inp.u8()) % self.grants.len());
                    if !self.r.xen.end_grant(FE, g) {
                        self.grants.push(g);
                    }
                }
            }
            5 => self.rounds(usize::from(inp.u8() % 4) + 1),
            6 => {
                // The NAT sends something for client slot 0 (or another).
                let idx = u32::from(inp.u8() % 64);
                let mut d = PacketDesc {
                    pool: 1 + u16::from(inp.u8() & 1),
                    flags: u16::from(inp.u8() & 7),
                    offset: idx * 2048 + 64,
                    len: u32::from(inp.u16() % 2048),
                    meta: 0,
                };
                let slot = inp.u8() % 3;
                Meta { iface: Iface::client(slot).unwrap(), verdict: Verdict::Accept }.store(&mut d);
                // Descriptors may be wrong or repeated: netback counts them.
                if self.r.from_nat.push(&d).is_ok() {
                    let _ = self.r.from_nat.publish();
                }
            }
            7 => {
                for _ in 0..(inp.u8() % 8) {
                    let k = usize::from(inp.u8()) % PAGES;
                    let gref = self.r.xen.grant(FE, self.r.pages[k], MOAT, inp.u8() & 3 == 0);
                    self.grants.push(gref);
                    let mut req = u16::from(inp.u8()).to_le_bytes().to_vec();
                    req.extend_from_slice(&[0, 0]);
                    req.extend_from_slice(&gref.to_le_bytes());
                    ring::write(&rx, self.rx_prod, 8, &req);
                    self.rx_prod = self.rx_prod.wrapping_add(1);
                }
                ring::set(&rx, ring::REQ_PROD, self.rx_prod);
                self.notify();
            }
            8 => {
                let raw: Vec<u8> = (0..8).map(|_| inp.u8()).collect();
                ring::write(&rx, self.rx_prod, 8, &raw);
                self.rx_prod = self.rx_prod.wrapping_add(1);
            }
            9 => {
                ring::set(&rx, ring::REQ_PROD, inp.u32());
                self.notify();
            }
            10 => {
                let fe = self.fe();
                self.s.set(&format!("{fe}/state"), if inp.u8() & 1 == 0 { b"5" } else { b"6" });
            }
            11 => self.return_csum(),
            12 => {
                // Pull grants back while netback's copies are in flight.
                for port in self.r.xen.take_pending(MOAT) {
                    self.r.svc.event(port);
                }
                let out = self.r.nb.call(self.now).expect("netback never faults");
                for g in self.grants.drain(..) {
                    let _ = self.r.xen.end_grant(FE, g);
                }
                if out.notified.contains(self.r.ch) {
                    self.r.svc.run(&mut MoatHv(&mut self.r.xen));
                }
            }
            _ => {
                // A front page's bytes change under netback (a TOCTOU try).
                let k = usize::from(inp.u8()) % PAGES;
                let data: Vec<u8> = (0..16).map(|_| inp.u8()).collect();
                self.r.xen.write_page(self.r.pages[k], usize::from(inp.u16() % 4080), &data);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    {
        let r = &mut *guard;
        r.devid += 1;
        let mut inp = Input(data);
        let mut run = Run {
            r,
            s: Store::default(),
            now: Instant::from_secs(1),
            port: 0,
            grants: Vec::new(),
            tx_prod: 0,
            rx_prod: 0,
            taken: Vec::new(),
        };
        let be = format!("backend/vif/{FE}/{}", run.r.devid);
        run.s.set(&format!("{be}/frontend-id"), FE.to_string().as_bytes());
        run.s.set(&format!("{}/state", run.fe()), b"1");
        let vif = Vif {
            slot: 0,
            frontend_id: FE,
            devid: run.r.devid,
            mac: [0, 0x16, 0x3e, 0, 0, 7],
            ipv4: [10, 137, 0, 7],
            ipv6: None,
            mtu: 1500,
        };
        run.s.replies.push_back(NetbackCtl::VifUp(vif));
        run.rounds(8);
        let keys_ok = inp.u8() != 0xff;
        run.connect(keys_ok);
        run.rounds(8);
        let mut steps = 0;
        while !inp.done() && steps < 256 {
            run.step(&mut inp);
            steps += 1;
        }
        // The toolstack takes the vif away; everything must come back.
        run.rounds(4);
        run.return_csum();
        run.s.replies.push_back(NetbackCtl::VifDown { slot: 0, frontend_id: FE, devid: run.r.devid });
        for _ in 0..64 {
            run.round();
            run.return_csum();
        }
        // netback keeps the directory a moment after Closed (libxl reads
        // the state when its watch fires), then removes it.
        run.now = run.now.saturating_add(moat_netback::vif::REMOVE_GRACE).saturating_add(core::time::Duration::from_millis(1));
        for _ in 0..8 {
            run.round();
            run.return_csum();
        }
        for g in run.grants.drain(..) {
            let _ = run.r.xen.end_grant(FE, g);
        }
        run.r.xen.close(FE, run.port);
        let st = run.r.nb.status();
        assert!(run.s.removed, "the backend directory was removed");
        assert!(run.s.watch.is_none(), "the watch was taken down");
        for k in ["vif.known", "held.channels", "held.maps", "held.watches", "held.buffers", "held.nat_buffers", "rx.queued"] {
            assert_eq!(st[k], 0, "{k} after the vif went away");
        }
        assert_eq!(run.r.svc.counts().maps, 0);
        assert_eq!(run.r.svc.counts().channels, 0);
        assert_eq!(run.r.xen.moat_maps(), 0);
    }
});
