//! A xenstore component bound through the harness, with the test XenStore
//! as its store and the test playing every other component and the
//! toolstack.
#![allow(dead_code)]

use moat_component::Instant;
use moat_control::{ClientEvent, NetbackCtl, NetfrontCtl, RuntimeEvent, XsRequest};
use moat_ring::{ByteConsumer, ByteProducer, Region};
use moat_runtime::harness::{Harness, Running};
use moat_test_xenstored::{ConnId, XenStored};
use moat_xen::xenstore::{Access, Perm};
use moat_xenstore::{Xenstore, XenstoreConfig};
use serde::de::DeserializeOwned;

/// Our domain id in every test.
pub const DOMID: u16 = 3;
/// The uplink backend domain.
pub const NET: u16 = 1;

pub struct Rig {
    pub h: Harness,
    pub store: XenStored,
    pub conn: ConnId,
    pub page: Region,
    pub xs: Running<Xenstore>,
    pub rules: ByteConsumer,
    pub nat: ByteConsumer,
    pub netback: ByteConsumer,
    pub netfront: ByteConsumer,
    pub runtime: ByteConsumer,
    pub from_netback: ByteProducer,
    pub from_netfront: ByteProducer,
    pub now: Instant,
}

pub fn config() -> XenstoreConfig {
    XenstoreConfig { timeout_ms: 1000, ..XenstoreConfig::default() }
}

pub fn rig() -> Rig {
    rig_with(config(), |_| {})
}

/// A rig whose store is prepared by `setup` before the component starts.
pub fn rig_with(config: XenstoreConfig, setup: impl FnOnce(&mut XenStored)) -> Rig {
    rig_sized(config, 4096, setup)
}

/// A rig whose control outputs hold `out` bytes each.
pub fn rig_sized(config: XenstoreConfig, out: u32, setup: impl FnOnce(&mut XenStored)) -> Rig {
    let mut h = Harness::new();
    let page = h.device("store", "XenStoreRing", 4096);
    let mut store = XenStored::new();
    let conn = store.connect(DOMID, "sys-firewall", page);
    setup(&mut store);
    let from_netback = h.msg_input("from_netback", XsRequest::NAME, 4096);
    let netback = h.msg_output("to_netback", NetbackCtl::NAME, out);
    let from_netfront = h.msg_input("from_netfront", XsRequest::NAME, 4096);
    let netfront = h.msg_output("to_netfront", NetfrontCtl::NAME, out);
    let rules = h.msg_output("clients_to_rules", ClientEvent::NAME, out);
    let nat = h.msg_output("clients_to_nat", ClientEvent::NAME, out);
    let runtime = h.msg_output("to_runtime", RuntimeEvent::NAME, 1024);
    let xs = h.start::<Xenstore>(config).expect("starts");
    let mut r = Rig {
        h,
        store,
        conn,
        page,
        xs,
        rules,
        nat,
        netback,
        netfront,
        runtime,
        from_netback,
        from_netfront,
        now: Instant::from_secs(1),
    };
    r.settle();
    r
}

impl Rig {
    /// Runs store and component until neither has anything left to do.
    pub fn settle(&mut self) {
        for _ in 0..2000 {
            let store_moved = self.store.poll();
            let out = self.xs.call(self.now).expect("no fault");
            if !store_moved && !out.again && !self.store.poll() {
                return;
            }
        }
        let mut status: Vec<_> = self.xs.status().into_iter().collect();
        status.sort();
        let tail = self.store.log.len().saturating_sub(40);
        panic!(
            "store and component never settled: last outcome {:?}\nstatus {status:?}\nstore log tail {:#?}",
            self.xs.last,
            &self.store.log[tail..]
        );
    }

    /// Moves the clock on and runs.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(core::time::Duration::from_millis(ms));
        self.settle();
    }

    pub fn status(&self, key: &str) -> u64 {
        *self.xs.status().get(key).unwrap_or_else(|| panic!("no counter {key}"))
    }

    /// Sends a request as netback.
    pub fn netback_asks(&mut self, req: &XsRequest) {
        let mut buf = [0u8; 4096];
        self.from_netback.send_msg(req, &mut buf).unwrap();
        let _ = self.from_netback.publish();
    }

    /// Sends a request as netfront.
    pub fn netfront_asks(&mut self, req: &XsRequest) {
        let mut buf = [0u8; 4096];
        self.from_netfront.send_msg(req, &mut buf).unwrap();
        let _ = self.from_netfront.publish();
    }

    /// Toolstack: a client vif as libxl and Qubes write it, all at once.
    pub fn add_vif(&mut self, fid: u16, devid: u32, mac: &str, ip: &str) {
        add_vif(&mut self.store, fid, devid, mac, ip);
    }

    pub fn backend_dir(fid: u16, devid: u32) -> String {
        format!("/local/domain/{DOMID}/backend/vif/{fid}/{devid}")
    }
}

pub fn add_vif(store: &mut XenStored, fid: u16, devid: u32, mac: &str, ip: &str) {
    let fe = format!("/local/domain/{fid}/device/vif/{devid}");
    let be = Rig::backend_dir(fid, devid);
    let (handle, fids) = (devid.to_string(), fid.to_string());
    // As libxl does: each directory with its permissions first, then the
    // keys, which inherit them.
    store.mkdir(&fe).unwrap();
    store
        .set_perms(&fe, &[Perm { access: Access::None, domid: fid }, Perm { access: Access::Read, domid: DOMID }])
        .unwrap();
    store.mkdir(&be).unwrap();
    store
        .set_perms(&be, &[Perm { access: Access::None, domid: DOMID }, Perm { access: Access::Read, domid: fid }])
        .unwrap();
    store
        .write_many(&[
            (&format!("{fe}/backend"), be.as_bytes()),
            (&format!("{fe}/backend-id"), DOMID.to_string().as_bytes()),
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

/// Every message waiting on a control output.
pub fn drain<M: DeserializeOwned>(c: &mut ByteConsumer) -> Vec<M> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(m) = c.recv_msg::<M>(&mut buf).expect("well-formed control message") {
        out.push(m);
    }
    let _ = c.release();
    out
}

pub fn s<const N: usize>(v: &str) -> heapless::String<N> {
    heapless::String::try_from(v).unwrap()
}

pub fn val(v: &[u8]) -> moat_control::xenstore::XsValue {
    heapless::Vec::from_slice(v).unwrap()
}
