//! A test bed: the real xenstore component on the test XenStore, netfront,
//! the runtime's ops service on the simulated Xen, and a simulated Linux
//! netback in "sys-net"; the test plays the toolstack, csum and the NAT.
#![allow(dead_code)]

use moat_component::{Channel, Consumer, Instant, PacketDesc, PoolGeometry, Producer};
use moat_control::{ClientEvent, NetbackCtl, NetfrontCtl, RuntimeEvent, UplinkEvent, XsRequest};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict};
use moat_netfront::{Netfront, NetfrontConfig};
use moat_ring::{ByteConsumer, ByteProducer};
use moat_runtime::harness::{Harness, Running};
use moat_test_xensim::back::LinuxBack;
use moat_test_xensim::{Mem, MoatHv, Xen, relay};
use moat_test_xenstored::XenStored;
use moat_xen::ops::{Caps, Frontend, Role, Service, Space};
use moat_xen::xenstore::{Access, Perm};
use moat_xenstore::{Xenstore, XenstoreConfig};

pub const MOAT: u16 = 3;
pub const NET: u16 = 1;
pub const CLIENT_POOL: u16 = 1;
pub const UPLINK_POOL: u16 = 2;
pub const BUFS: u32 = 256;
pub const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x03];

pub struct Bed {
    pub now: Instant,
    pub store: XenStored,
    pub xen: Xen,
    pub xs: Running<Xenstore>,
    pub nf: Running<Netfront>,
    pub svc: Service,
    pub xen_ch: Channel,
    xs_to_netfront: ByteConsumer,
    xs_from_netfront: ByteProducer,
    xs_rest: Vec<ByteConsumer>,
    _xs_from_netback: ByteProducer,
    nf_from_xenstore: ByteProducer,
    nf_to_xenstore: ByteConsumer,
    pub to_nat_uplink: ByteConsumer,
    pub to_csum: Consumer<PacketDesc>,
    pub to_csum_free: Producer<PacketDesc>,
    pub from_nat: Producer<PacketDesc>,
    pub from_nat_free: Consumer<PacketDesc>,
    pub client_base: u64,
    pub uplink_base: u64,
    pub back: Option<LinuxBack>,
    pub nat_events: Vec<UplinkEvent>,
    next_client_buf: u32,
}

pub fn bed(config: NetfrontConfig) -> Bed {
    let mut hx = Harness::new();
    let page = hx.device("store", "XenStoreRing", 4096);
    let mut store = XenStored::new();
    store.connect(MOAT, "sys-firewall", page);
    let xs_from_netback = hx.msg_input("from_netback", XsRequest::NAME, 4096);
    let to_netback = hx.msg_output("to_netback", NetbackCtl::NAME, 4096);
    let xs_from_netfront = hx.msg_input("from_netfront", XsRequest::NAME, 4096);
    let xs_to_netfront = hx.msg_output("to_netfront", NetfrontCtl::NAME, 4096);
    let rules = hx.msg_output("clients_to_rules", ClientEvent::NAME, 4096);
    let nat = hx.msg_output("clients_to_nat", ClientEvent::NAME, 4096);
    let runtime = hx.msg_output("to_runtime", RuntimeEvent::NAME, 1024);
    let xs_config =
        XenstoreConfig { timeout_ms: 1000, max_clients: 0, uplink_devid: Some(0), ..XenstoreConfig::default() };
    let xs = hx.start::<Xenstore>(xs_config).expect("xenstore starts");

    let mut h = Harness::new();
    let from_nat = h.input::<PacketDesc>("from_nat", 1024);
    let from_nat_free = h.output::<PacketDesc>("from_nat_free", 1024);
    let to_csum = h.output::<PacketDesc>("to_csum", 1024);
    let to_csum_free = h.input::<PacketDesc>("to_csum_free", 1024);
    let nf_from_xenstore = h.msg_input("from_xenstore", NetfrontCtl::NAME, 4096);
    let nf_to_xenstore = h.msg_output("to_xenstore", XsRequest::NAME, 4096);
    let to_nat_uplink = h.msg_output("to_nat_uplink", UplinkEvent::NAME, 1024);
    let ugeo = PoolGeometry::new(UPLINK_POOL, 2048, BUFS).unwrap();
    let cgeo = PoolGeometry::new(CLIENT_POOL, 2048, BUFS).unwrap();
    let uplink_pool = h.pool("uplink_buffers", ugeo, true);
    let client_pool = h.pool("client_buffers", cgeo, false);
    let device = h.device("xen", Frontend::NAME, Frontend::GEOMETRY.bytes());
    let xen_ch = h.channel("xen");
    let mut xen = Xen::new(MOAT);
    let device_base = xen.add_space(Mem::Region(device));
    let client_base = xen.add_space(Mem::Pool(client_pool));
    let uplink_base = xen.add_space(Mem::Pool(uplink_pool));
    let spaces = [
        Space { id: UPLINK_POOL, base: uplink_base, len: ugeo.region_size() as u64, writable: true },
        Space { id: CLIENT_POOL, base: client_base, len: cgeo.region_size() as u64, writable: false },
    ];
    let caps = Caps { grant_copy: false, grant_access: true, event_channels: 2 };
    let svc = Service::new(device, device_base, Frontend::GEOMETRY, caps, &spaces).expect("service");
    let nf = h.start::<Netfront>(config).expect("netfront starts");
    let mut b = Bed {
        now: Instant::from_secs(1),
        store,
        xen,
        xs,
        nf,
        svc,
        xen_ch,
        xs_to_netfront,
        xs_from_netfront,
        xs_rest: vec![to_netback, rules, nat, runtime],
        _xs_from_netback: xs_from_netback,
        nf_from_xenstore,
        nf_to_xenstore,
        to_nat_uplink,
        to_csum,
        to_csum_free,
        from_nat,
        from_nat_free,
        client_base,
        uplink_base,
        back: None,
        nat_events: Vec::new(),
        next_client_buf: 0,
    };
    b.settle();
    b
}

impl Bed {
    pub fn round(&mut self) -> bool {
        let mut moved = self.store.poll();
        let out = self.xs.call(self.now).expect("xenstore does not fault");
        moved |= out.again;
        moved |= relay(&mut self.xs_to_netfront, &mut self.nf_from_xenstore);
        moved |= relay(&mut self.nf_to_xenstore, &mut self.xs_from_netfront);
        moved |= self.store.poll();
        for c in &mut self.xs_rest {
            let mut buf = [0u8; 4096];
            while let Ok(Some(_)) = c.recv(&mut buf) {}
            let _ = c.release();
        }
        for port in self.xen.take_pending(MOAT) {
            moved |= self.svc.event(port);
        }
        let out = self.nf.call(self.now).expect("netfront does not fault");
        moved |= out.again;
        if out.notified.contains(self.xen_ch) {
            moved |= self.svc.run(&mut MoatHv(&mut self.xen));
        }
        moved |= relay(&mut self.nf_to_xenstore, &mut self.xs_from_netfront);
        let mut buf = [0u8; 256];
        while let Ok(Some(e)) = self.to_nat_uplink.recv_msg::<UplinkEvent>(&mut buf) {
            self.nat_events.push(e);
            moved = true;
        }
        let _ = self.to_nat_uplink.release();
        if let Some(back) = self.back.as_mut() {
            moved |= back.step(&mut self.xen, &mut self.store);
        }
        moved
    }

    pub fn settle(&mut self) {
        for _ in 0..5000 {
            if !self.round() {
                return;
            }
        }
        let mut st: Vec<_> = self.nf.status().into_iter().collect();
        st.sort();
        panic!("never settled; netfront status {st:?}");
    }

    /// Moves the clock on and settles (timers: ARP, grant retries).
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(core::time::Duration::from_millis(ms));
        self.settle();
    }

    pub fn status(&self, key: &str) -> u64 {
        *self.nf.status().get(key).unwrap_or_else(|| panic!("no counter {key}"))
    }

    /// Toolstack: sys-net's backend for moat's uplink vif, as libxl writes
    /// both directories; and the simulated netback that serves it.
    pub fn add_uplink(&mut self, ip: &str) {
        let fe = format!("/local/domain/{MOAT}/device/vif/0");
        let be = format!("/local/domain/{NET}/backend/vif/{MOAT}/0");
        let mac = "00:16:3e:00:00:03";
        self.store.mkdir(&fe).unwrap();
        self.store
            .set_perms(&fe, &[Perm { access: Access::None, domid: MOAT }, Perm { access: Access::Read, domid: NET }])
            .unwrap();
        self.store.mkdir(&be).unwrap();
        self.store
            .set_perms(&be, &[Perm { access: Access::None, domid: NET }, Perm { access: Access::Read, domid: MOAT }])
            .unwrap();
        self.store
            .write_many(&[
                (&format!("{be}/frontend"), fe.as_bytes()),
                (&format!("{be}/frontend-id"), MOAT.to_string().as_bytes()),
                (&format!("{be}/online"), b"1"),
                (&format!("{be}/state"), b"1"),
                (&format!("{be}/mac"), mac.as_bytes()),
                (&format!("{be}/ip"), ip.as_bytes()),
                (&format!("{be}/handle"), b"0"),
            ])
            .unwrap();
        self.store
            .write_many(&[
                (&format!("{fe}/backend"), be.as_bytes()),
                (&format!("{fe}/backend-id"), NET.to_string().as_bytes()),
                (&format!("{fe}/handle"), b"0"),
                (&format!("{fe}/mac"), mac.as_bytes()),
                (&format!("{fe}/state"), b"1"),
            ])
            .unwrap();
        self.back = Some(LinuxBack::new(&mut self.xen, NET, MOAT, 0));
    }

    pub fn back(&mut self) -> &mut LinuxBack {
        self.back.as_mut().expect("a backend")
    }

    pub fn frontend_state(&self) -> Option<String> {
        self.store.read(&format!("/local/domain/{MOAT}/device/vif/0/state")).map(|v| String::from_utf8(v).unwrap())
    }

    /// The NAT's part: sends an IP packet to the uplink in a client buffer.
    pub fn nat_sends(&mut self, packet: &[u8]) -> PacketDesc {
        let idx = self.next_client_buf % BUFS;
        self.next_client_buf += 1;
        let mut d = PacketDesc {
            pool: CLIENT_POOL,
            flags: 0,
            offset: idx * 2048 + HEADROOM,
            len: packet.len() as u32,
            meta: 0,
        };
        Meta { iface: Iface::UPLINK, verdict: Verdict::Accept }.store(&mut d);
        self.xen.mem(self.client_base).write(d.offset as usize, packet);
        self.from_nat.push(&d).expect("room in from_nat");
        let _ = self.from_nat.publish();
        d
    }

    pub fn nat_returns(&mut self) -> Vec<PacketDesc> {
        let mut out = Vec::new();
        while let Some(d) = self.from_nat_free.pop().unwrap() {
            out.push(d);
        }
        let _ = self.from_nat_free.release();
        out
    }

    /// csum's part: what netfront passed, with its bytes; buffers go back.
    pub fn take_csum(&mut self) -> Vec<(PacketDesc, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(d) = self.to_csum.pop().unwrap() {
            let mut bytes = vec![0u8; d.len as usize];
            self.xen.mem(self.uplink_base).read(d.offset as usize, &mut bytes);
            out.push((d, bytes));
            self.to_csum_free.push(&d).unwrap();
        }
        let _ = self.to_csum.release();
        let _ = self.to_csum_free.publish();
        out
    }
}
