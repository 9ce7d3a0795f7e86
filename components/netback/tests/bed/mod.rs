//! A test bed: the real xenstore component on the test XenStore, netback,
//! the runtime's ops service on the simulated Xen, and simulated Linux
//! frontends; the test plays the toolstack, csum and the NAT.
#![allow(dead_code)]

use moat_component::{Channel, Consumer, Instant, PacketDesc, PoolGeometry, Producer};
use moat_control::{ClientEvent, NetbackCtl, NetfrontCtl, RuntimeEvent, XsRequest};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_netback::{Netback, NetbackConfig};
use moat_ring::{ByteConsumer, ByteProducer};
use moat_runtime::harness::{Harness, Running};
use moat_test_xensim::front::LinuxFront;
use moat_test_xensim::{Mem, MoatHv, Xen, relay};
use moat_test_xenstored::XenStored;
use moat_xen::ops::{Backend, Caps, Role, Service, Space};
use moat_xen::xenstore::{Access, Perm};
use moat_xenstore::{Xenstore, XenstoreConfig};

/// moat's domain id.
pub const MOAT: u16 = 3;
pub const CLIENT_POOL: u16 = 1;
pub const UPLINK_POOL: u16 = 2;
pub const BUFS: u32 = 256;

pub struct Bed {
    pub now: Instant,
    pub store: XenStored,
    pub xen: Xen,
    pub xs: Running<Xenstore>,
    pub nb: Running<Netback>,
    pub svc: Service,
    pub xen_ch: Channel,
    // xenstore component's other ends
    xs_to_netback: ByteConsumer,
    xs_from_netback: ByteProducer,
    xs_rest: Vec<ByteConsumer>,
    _xs_from_netfront: ByteProducer,
    // netback's ends
    nb_from_xenstore: ByteProducer,
    nb_to_xenstore: ByteConsumer,
    pub to_csum: Consumer<PacketDesc>,
    pub to_csum_free: Producer<PacketDesc>,
    pub from_nat: Producer<PacketDesc>,
    pub from_nat_free: Consumer<PacketDesc>,
    pub client_base: u64,
    pub uplink_base: u64,
    pub fronts: Vec<LinuxFront>,
    next_uplink_buf: u32,
    /// Calls of netback made.
    pub nb_calls: u64,
}

pub fn config() -> NetbackConfig {
    NetbackConfig::default()
}

pub fn bed() -> Bed {
    bed_with(config(), Caps { grant_copy: true, grant_access: false, event_channels: 64 })
}

pub fn bed_with(config: NetbackConfig, caps: Caps) -> Bed {
    // The xenstore component, as the rig in its own tests sets it up.
    let mut hx = Harness::new();
    let page = hx.device("store", "XenStoreRing", 4096);
    let mut store = XenStored::new();
    store.connect(MOAT, "sys-firewall", page);
    let xs_from_netback = hx.msg_input("from_netback", XsRequest::NAME, 4096);
    let xs_to_netback = hx.msg_output("to_netback", NetbackCtl::NAME, 4096);
    let xs_from_netfront = hx.msg_input("from_netfront", XsRequest::NAME, 4096);
    let to_netfront = hx.msg_output("to_netfront", NetfrontCtl::NAME, 4096);
    let rules = hx.msg_output("clients_to_rules", ClientEvent::NAME, 4096);
    let nat = hx.msg_output("clients_to_nat", ClientEvent::NAME, 4096);
    let runtime = hx.msg_output("to_runtime", RuntimeEvent::NAME, 1024);
    let xs_config = XenstoreConfig { timeout_ms: 1000, uplink_devid: None, ..XenstoreConfig::default() };
    let xs = hx.start::<Xenstore>(xs_config).expect("xenstore starts");

    // netback.
    let mut h = Harness::new();
    let to_csum = h.output::<PacketDesc>("to_csum", 1024);
    let to_csum_free = h.input::<PacketDesc>("to_csum_free", 1024);
    let from_nat = h.input::<PacketDesc>("from_nat", 1024);
    let from_nat_free = h.output::<PacketDesc>("from_nat_free", 1024);
    let nb_from_xenstore = h.msg_input("from_xenstore", NetbackCtl::NAME, 4096);
    let nb_to_xenstore = h.msg_output("to_xenstore", XsRequest::NAME, 4096);
    let cgeo = PoolGeometry::new(CLIENT_POOL, 2048, BUFS).unwrap();
    let ugeo = PoolGeometry::new(UPLINK_POOL, 2048, BUFS).unwrap();
    let client_pool = h.pool("client_buffers", cgeo, true);
    let uplink_pool = h.pool("uplink_buffers", ugeo, false);
    let device = h.device("xen", Backend::NAME, Backend::GEOMETRY.bytes());
    let xen_ch = h.channel("xen");
    let mut xen = Xen::new(MOAT);
    let device_base = xen.add_space(Mem::Region(device));
    let client_base = xen.add_space(Mem::Pool(client_pool));
    let uplink_base = xen.add_space(Mem::Pool(uplink_pool));
    let spaces = [
        Space { id: CLIENT_POOL, base: client_base, len: cgeo.region_size() as u64, writable: true },
        Space { id: UPLINK_POOL, base: uplink_base, len: ugeo.region_size() as u64, writable: false },
    ];
    let svc = Service::new(device, device_base, Backend::GEOMETRY, caps, &spaces).expect("service");
    let nb = h.start::<Netback>(config).expect("netback starts");
    let mut b = Bed {
        now: Instant::from_secs(1),
        store,
        xen,
        xs,
        nb,
        svc,
        xen_ch,
        xs_to_netback,
        xs_from_netback,
        xs_rest: vec![to_netfront, rules, nat, runtime],
        _xs_from_netfront: xs_from_netfront,
        nb_from_xenstore,
        nb_to_xenstore,
        to_csum,
        to_csum_free,
        from_nat,
        from_nat_free,
        client_base,
        uplink_base,
        fronts: Vec::new(),
        next_uplink_buf: 0,
        nb_calls: 0,
    };
    b.settle();
    b
}

impl Bed {
    /// One round: store, xenstore component, relays, events, netback (and
    /// its ops), frontends. True if anything moved.
    pub fn round(&mut self) -> bool {
        let mut moved = self.store.poll();
        let out = self.xs.call(self.now).expect("xenstore does not fault");
        moved |= out.again;
        moved |= relay(&mut self.xs_to_netback, &mut self.nb_from_xenstore);
        moved |= relay(&mut self.nb_to_xenstore, &mut self.xs_from_netback);
        moved |= self.store.poll();
        for c in &mut self.xs_rest {
            let mut buf = [0u8; 4096];
            while let Ok(Some(_)) = c.recv(&mut buf) {}
            let _ = c.release();
        }
        for port in self.xen.take_pending(MOAT) {
            moved |= self.svc.event(port);
        }
        let out = self.nb.call(self.now).expect("netback does not fault");
        self.nb_calls += 1;
        moved |= out.again;
        if out.notified.contains(self.xen_ch) {
            moved |= self.svc.run(&mut MoatHv(&mut self.xen));
        }
        moved |= relay(&mut self.nb_to_xenstore, &mut self.xs_from_netback);
        for f in &mut self.fronts {
            moved |= f.step(&mut self.xen, &mut self.store);
        }
        moved
    }

    /// Rounds until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..5000 {
            if !self.round() {
                return;
            }
        }
        let mut st: Vec<_> = self.nb.status().into_iter().collect();
        st.sort();
        panic!("never settled; netback status {st:?}");
    }

    /// Rounds until `done` or a bound.
    pub fn run_until(&mut self, mut done: impl FnMut(&mut Bed) -> bool) {
        for _ in 0..5000 {
            if done(self) {
                return;
            }
            if !self.round() && done(self) {
                return;
            }
        }
        panic!("condition never met");
    }

    pub fn status(&self, key: &str) -> u64 {
        *self.nb.status().get(key).unwrap_or_else(|| panic!("no counter {key}"))
    }

    pub fn xs_status(&self, key: &str) -> u64 {
        *self.xs.status().get(key).unwrap_or_else(|| panic!("no counter {key}"))
    }

    /// Toolstack: a client vif as libxl and Qubes write it, plus a Linux
    /// frontend for it. Returns the frontend's index.
    pub fn add_client(&mut self, fid: u16, devid: u32, ip: [u8; 4]) -> usize {
        let mac = format!("00:16:3e:5e:6c:{:02x}", fid);
        let ipstr = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
        add_vif(&mut self.store, fid, devid, &mac, &ipstr);
        self.fronts.push(LinuxFront::new(fid, devid, MOAT));
        self.fronts.len() - 1
    }

    pub fn backend_dir(fid: u16, devid: u32) -> String {
        format!("/local/domain/{MOAT}/backend/vif/{fid}/{devid}")
    }

    pub fn backend_state(&self, fid: u16, devid: u32) -> Option<String> {
        self.store.read(&format!("{}/state", Self::backend_dir(fid, devid))).map(|v| String::from_utf8(v).unwrap())
    }

    /// Toolstack: `xl network-detach`: offline, Closing, then (once the
    /// backend directory is gone) the frontend directory.
    pub fn detach(&mut self, fid: u16, devid: u32) {
        let be = Self::backend_dir(fid, devid);
        self.store.write_many(&[(&format!("{be}/online"), b"0"), (&format!("{be}/state"), b"5")]).unwrap();
        self.run_until(|b| b.backend_state(fid, devid).as_deref() == Some("6") || b.store.read(&be).is_none());
        assert_eq!(self.backend_state(fid, devid).as_deref(), Some("6"), "Closed before the directory goes");
        // libxl reads `state` when its watch fires: the directory must still
        // be there, for the grace period.
        self.settle();
        assert!(self.store.read(&be).is_some(), "the directory stays for libxl to read Closed");
        self.now = self.now.saturating_add(moat_netback::vif::REMOVE_GRACE);
        self.run_until(|b| b.store.read(&be).is_none());
        let _ = self.store.rm(&format!("/local/domain/{fid}/device/vif/{devid}"));
        self.fronts.retain(|f| !(f.dom == fid && f.devid == devid));
        self.settle();
    }

    /// csum's part: every descriptor netback passed, with its bytes; the
    /// buffers go straight back.
    pub fn take_csum(&mut self) -> Vec<(PacketDesc, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(d) = self.to_csum.pop().unwrap() {
            let mut bytes = vec![0u8; d.len as usize];
            self.xen.mem(self.client_base).read(d.offset as usize, &mut bytes);
            out.push((d, bytes));
            assert!(self.to_csum_free.push(&d).is_ok());
        }
        let _ = self.to_csum.release();
        let _ = self.to_csum_free.publish();
        out
    }

    /// The NAT's part: sends an IP packet to client `slot` in an uplink
    /// buffer.
    pub fn nat_sends(&mut self, slot: u8, packet: &[u8], csum_ok: bool) -> PacketDesc {
        let idx = self.next_uplink_buf % BUFS;
        self.next_uplink_buf += 1;
        let mut d = PacketDesc {
            pool: UPLINK_POOL,
            flags: if csum_ok { flags::CSUM_OK } else { 0 },
            offset: idx * 2048 + HEADROOM,
            len: packet.len() as u32,
            meta: 0,
        };
        Meta { iface: Iface::client(slot).unwrap(), verdict: Verdict::Accept }.store(&mut d);
        self.xen.mem(self.uplink_base).write(d.offset as usize, packet);
        self.from_nat.push(&d).expect("room in from_nat");
        let _ = self.from_nat.publish();
        d
    }

    /// Descriptors netback handed back to the NAT.
    pub fn nat_returns(&mut self) -> Vec<PacketDesc> {
        let mut out = Vec::new();
        while let Some(d) = self.from_nat_free.pop().unwrap() {
            out.push(d);
        }
        let _ = self.from_nat_free.release();
        out
    }

    /// The client slot the xenstore component gave frontend `fid`.
    pub fn slot_of(&self, fid: u16) -> u8 {
        (0..64u8)
            .find(|&s| self.nb.component.vif(s).and_then(|v| v.info.as_ref()).is_some_and(|i| i.frontend_id == fid))
            .expect("a vif for that frontend")
    }

    pub fn front(&mut self, fid: u16) -> &mut LinuxFront {
        self.fronts.iter_mut().find(|f| f.dom == fid).expect("a frontend")
    }

    /// Sends `frame` from client `fid` (Linux-like) and settles.
    pub fn client_sends(&mut self, fid: u16, frame: &[u8], csum_blank: bool, offset: usize) -> Vec<u16> {
        let i = self.fronts.iter().position(|f| f.dom == fid).expect("a frontend");
        let ids = self.fronts[i].send(&mut self.xen, frame, csum_blank, offset);
        self.settle();
        ids
    }
}

/// An Ethernet frame around `ip` from client `fid`'s MAC to the backend.
pub fn frame(fid: u16, ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0x5e, 0x6c, fid as u8];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

pub fn client_mac(fid: u16) -> [u8; 6] {
    [0x00, 0x16, 0x3e, 0x5e, 0x6c, fid as u8]
}

/// Toolstack: both directories of a vif as libxl and Qubes write them.
pub fn add_vif(store: &mut XenStored, fid: u16, devid: u32, mac: &str, ip: &str) {
    let fe = format!("/local/domain/{fid}/device/vif/{devid}");
    let be = Bed::backend_dir(fid, devid);
    let (handle, fids) = (devid.to_string(), fid.to_string());
    // As libxl: each directory made with its permissions first, so the keys
    // written into it inherit them.
    store.mkdir(&fe).unwrap();
    store
        .set_perms(&fe, &[Perm { access: Access::None, domid: fid }, Perm { access: Access::Read, domid: MOAT }])
        .unwrap();
    store.mkdir(&be).unwrap();
    store
        .set_perms(&be, &[Perm { access: Access::None, domid: MOAT }, Perm { access: Access::Read, domid: fid }])
        .unwrap();
    store
        .write_many(&[
            (&format!("{fe}/backend"), be.as_bytes()),
            (&format!("{fe}/backend-id"), MOAT.to_string().as_bytes()),
            (&format!("{fe}/handle"), handle.as_bytes()),
            (&format!("{fe}/mac"), mac.as_bytes()),
            (&format!("{fe}/state"), b"1"),
        ])
        .unwrap();
    store
        .write_many(&[
            (&format!("{be}/frontend"), fe.as_bytes()),
            (&format!("{be}/frontend-id"), fids.as_bytes()),
            (&format!("{be}/online"), b"1"),
            (&format!("{be}/state"), b"1"),
            (&format!("{be}/mac"), mac.as_bytes()),
            (&format!("{be}/ip"), ip.as_bytes()),
            (&format!("{be}/handle"), handle.as_bytes()),
            (&format!("{be}/script"), b"/etc/xen/scripts/vif-route-qubes"),
            (&format!("{be}/type"), b"vif"),
        ])
        .unwrap();
}
