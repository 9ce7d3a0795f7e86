//! A simulated client VM's network frontend, behaving like Linux
//! `xen-netfront` — and, on request, like a hostile one.
//!
//! Like Linux it: waits for the backend's InitWait, grants a TX and an RX
//! ring page and allocates an event channel, writes `tx-ring-ref`,
//! `rx-ring-ref`, `event-channel`, `request-rx-copy=1`,
//! `feature-rx-notify=1`, `feature-sg=1` and goes straight to Connected;
//! keeps RX buffers posted (a page each, granted writable); sends each frame
//! split at page boundaries (a slot per page piece, each page granted
//! read-only, the first slot's `size` the whole frame, `more_data` on all
//! but the last), IPv4 TCP/UDP with `csum_blank|data_validated` as
//! `CHECKSUM_PARTIAL` skbs go; ends the grants when their responses come
//! back; and closes (Closing, then Closed) when asked, or when the backend
//! closes.
//!
//! The hostile knobs ([`LinuxFront::push_raw`], [`LinuxFront::set_req_prod`],
//! [`LinuxFront::revoke_all_tx`]) put anything on the ring.

use std::collections::{HashMap, VecDeque};

use moat_test_xenstored::XenStored;
use moat_xen::netif::{NetifRxRequest, NetifTxRequest, rsp, rxf, txf};
use moat_xen::{DomId, EvtchnPort, GrantRef, PAGE_SIZE};
use zerocopy::{FromBytes, IntoBytes};

use crate::ring::{self, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::{PageId, Xen};

/// RX buffers kept posted.
pub const RX_POSTED: u32 = 64;

/// The frontend's XenBus state, as it writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the backend's InitWait.
    Initialising,
    /// Rings granted and keys written.
    Connected,
    /// Closed.
    Closed,
}

/// A frame the frontend received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The Ethernet frame.
    pub frame: Vec<u8>,
    /// `NETRXF_*` flags of its first slot.
    pub flags: u16,
}

struct Slot {
    page: PageId,
    gref: GrantRef,
}

/// One simulated frontend.
pub struct LinuxFront {
    /// Its domain.
    pub dom: DomId,
    /// Device number.
    pub devid: u32,
    /// The backend domain (moat).
    pub backend: DomId,
    /// Its XenBus state.
    pub state: State,
    tx_ring: PageId,
    rx_ring: PageId,
    tx_gref: GrantRef,
    rx_gref: GrantRef,
    /// Its event channel.
    pub port: Option<EvtchnPort>,
    tx_prod: u32,
    tx_cons: u32,
    rx_prod: u32,
    rx_cons: u32,
    next_id: u16,
    tx_slots: HashMap<u16, Vec<Slot>>,
    rx_slots: HashMap<u16, Slot>,
    partial: Option<Received>,
    /// Frames received, oldest first.
    pub received: VecDeque<Received>,
    /// TX responses seen: `(id, status)`, NULL ones included.
    pub tx_responses: Vec<(u16, i16)>,
    /// Notifications sent to the backend.
    pub notifies: u64,
    /// Notifications received.
    pub events: u64,
    /// Response indices that jumped (the backend broke the protocol).
    pub bad_responses: u64,
    /// Post RX buffers (turn off to starve the backend of them).
    pub post_rx: bool,
}

impl LinuxFront {
    /// A frontend for device `devid` of domain `dom`, backend `backend`.
    pub fn new(dom: DomId, devid: u32, backend: DomId) -> Self {
        LinuxFront {
            dom,
            devid,
            backend,
            state: State::Initialising,
            tx_ring: 0,
            rx_ring: 0,
            tx_gref: 0,
            rx_gref: 0,
            port: None,
            tx_prod: 0,
            tx_cons: 0,
            rx_prod: 0,
            rx_cons: 0,
            next_id: 0,
            tx_slots: HashMap::new(),
            rx_slots: HashMap::new(),
            partial: None,
            received: VecDeque::new(),
            tx_responses: Vec::new(),
            notifies: 0,
            events: 0,
            bad_responses: 0,
            post_rx: true,
        }
    }

    /// `/local/domain/<dom>/device/vif/<devid>`.
    pub fn dir(&self) -> String {
        format!("/local/domain/{}/device/vif/{}", self.dom, self.devid)
    }

    /// The backend's directory.
    pub fn backend_dir(&self) -> String {
        format!("/local/domain/{}/backend/vif/{}/{}", self.backend, self.dom, self.devid)
    }

    /// The backend's `state`, if it has one.
    pub fn backend_state(&self, store: &XenStored) -> Option<u32> {
        let v = store.read(&format!("{}/state", self.backend_dir()))?;
        std::str::from_utf8(&v).ok()?.trim().parse().ok()
    }

    /// Reacts to XenStore and the rings, as the frontend driver would after
    /// a watch event or an interrupt. Returns true if it did anything.
    pub fn step(&mut self, xen: &mut Xen, store: &mut XenStored) -> bool {
        let backend = self.backend_state(store);
        let mut did = false;
        match (self.state, backend) {
            (State::Initialising, Some(2)) => {
                self.connect(xen, store);
                did = true;
            }
            (State::Connected, Some(5 | 6) | None) => {
                self.close(xen, store);
                did = true;
            }
            _ => {}
        }
        if self.state == State::Connected {
            let port = self.port.expect("connected");
            if xen.take_pending(self.dom).contains(&port) {
                self.events += 1;
            }
            did |= self.poll(xen);
        }
        did
    }

    /// Grants rings, allocates the channel, posts RX buffers, writes keys
    /// and goes Connected.
    pub fn connect(&mut self, xen: &mut Xen, store: &mut XenStored) {
        self.tx_ring = xen.alloc_page(self.dom);
        self.rx_ring = xen.alloc_page(self.dom);
        for p in [self.tx_ring, self.rx_ring] {
            let page = xen.page(p);
            ring::set(&page, REQ_EVENT, 1);
            ring::set(&page, RSP_EVENT, 1);
        }
        self.tx_gref = xen.grant(self.dom, self.tx_ring, self.backend, false);
        self.rx_gref = xen.grant(self.dom, self.rx_ring, self.backend, false);
        self.port = Some(xen.alloc_unbound(self.dom, self.backend));
        (self.tx_prod, self.tx_cons, self.rx_prod, self.rx_cons) = (0, 0, 0, 0);
        if self.post_rx {
            self.refill(xen);
        }
        let d = self.dir();
        let keys: Vec<(String, Vec<u8>)> = vec![
            (format!("{d}/tx-ring-ref"), self.tx_gref.to_string().into_bytes()),
            (format!("{d}/rx-ring-ref"), self.rx_gref.to_string().into_bytes()),
            (format!("{d}/event-channel"), self.port.unwrap().to_string().into_bytes()),
            (format!("{d}/request-rx-copy"), b"1".to_vec()),
            (format!("{d}/feature-rx-notify"), b"1".to_vec()),
            (format!("{d}/feature-sg"), b"1".to_vec()),
            (format!("{d}/state"), b"4".to_vec()),
        ];
        let kv: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        store.write_many(&kv).expect("frontend keys");
        self.state = State::Connected;
    }

    /// Closes as Linux does on unplug or when the backend closes: Closing,
    /// then Closed; frees what it granted.
    pub fn close(&mut self, xen: &mut Xen, store: &mut XenStored) {
        let d = self.dir();
        let _ = store.write(&format!("{d}/state"), b"5");
        let _ = store.write(&format!("{d}/state"), b"6");
        if let Some(p) = self.port.take() {
            xen.close(self.dom, p);
        }
        self.state = State::Closed;
        self.release(xen);
    }

    /// Ends every grant it can (those the backend still maps stay).
    pub fn release(&mut self, xen: &mut Xen) {
        for g in [self.tx_gref, self.rx_gref] {
            let _ = xen.end_grant(self.dom, g);
        }
        for (_, slots) in self.tx_slots.drain() {
            for s in slots {
                let _ = xen.end_grant(self.dom, s.gref);
            }
        }
        for (_, s) in self.rx_slots.drain() {
            let _ = xen.end_grant(self.dom, s.gref);
        }
    }

    /// Back to Initialising (as after a driver reload): writes state 1.
    pub fn reinitialise(&mut self, store: &mut XenStored) {
        let _ = store.write(&format!("{}/state", self.dir()), b"1");
        self.state = State::Initialising;
    }

    fn id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) % 256;
        id
    }

    fn notify(&mut self, xen: &mut Xen) {
        if let Some(p) = self.port {
            xen.send(self.dom, p);
            self.notifies += 1;
        }
    }

    fn refill(&mut self, xen: &mut Xen) {
        let page = xen.page(self.rx_ring);
        let old = self.rx_prod;
        while self.rx_prod.wrapping_sub(self.rx_cons) < RX_POSTED {
            let id = (self.rx_prod % 256) as u16;
            let p = xen.alloc_page(self.dom);
            let gref = xen.grant(self.dom, p, self.backend, false);
            let req = NetifRxRequest { id, pad: 0, gref };
            ring::write(&page, self.rx_prod, 8, req.as_bytes());
            self.rx_slots.insert(id, Slot { page: p, gref });
            self.rx_prod = self.rx_prod.wrapping_add(1);
        }
        self.publish_rx(xen, old);
    }

    fn publish_rx(&mut self, xen: &mut Xen, old: u32) {
        if old == self.rx_prod {
            return;
        }
        let page = xen.page(self.rx_ring);
        ring::set(&page, REQ_PROD, self.rx_prod);
        if ring::notify(old, self.rx_prod, ring::get(&page, REQ_EVENT)) {
            self.notify(xen);
        }
    }

    /// Sends an Ethernet frame whose data starts at `offset` in its first
    /// page, split at page boundaries. Returns the ids used.
    pub fn send(&mut self, xen: &mut Xen, frame: &[u8], csum_blank: bool, offset: usize) -> Vec<u16> {
        assert!(offset < PAGE_SIZE);
        let mut pieces = Vec::new();
        let mut at = 0;
        let mut off = offset;
        while at < frame.len() {
            let n = (PAGE_SIZE - off).min(frame.len() - at);
            pieces.push((off, &frame[at..at + n]));
            at += n;
            off = 0;
        }
        let mut reqs = Vec::new();
        let mut slots = Vec::new();
        for (i, (off, data)) in pieces.iter().enumerate() {
            let p = xen.alloc_page(self.dom);
            xen.write_page(p, *off, data);
            let gref = xen.grant(self.dom, p, self.backend, true);
            let mut flags = 0;
            if i == 0 && csum_blank {
                flags |= txf::CSUM_BLANK | txf::DATA_VALIDATED;
            }
            if i + 1 < pieces.len() {
                flags |= txf::MORE_DATA;
            }
            let size = if i == 0 { frame.len() as u16 } else { data.len() as u16 };
            reqs.push(NetifTxRequest { gref, offset: *off as u16, flags, id: 0, size });
            slots.push(Slot { page: p, gref });
        }
        let mut ids = Vec::new();
        for (r, s) in reqs.iter_mut().zip(slots) {
            r.id = self.id();
            ids.push(r.id);
            self.tx_slots.insert(r.id, vec![s]);
        }
        for r in &reqs {
            self.push_raw(xen, r.as_bytes());
        }
        self.publish_tx(xen);
        ids
    }

    /// Puts 12 arbitrary bytes on the TX ring (not yet published).
    pub fn push_raw(&mut self, xen: &mut Xen, entry: &[u8]) {
        let page = xen.page(self.tx_ring);
        ring::write(&page, self.tx_prod, 12, entry);
        self.tx_prod = self.tx_prod.wrapping_add(1);
    }

    /// Publishes what was pushed, notifying if the backend asked.
    pub fn publish_tx(&mut self, xen: &mut Xen) {
        let page = xen.page(self.tx_ring);
        let old = ring::get(&page, REQ_PROD);
        ring::set(&page, REQ_PROD, self.tx_prod);
        if ring::notify(old, self.tx_prod, ring::get(&page, REQ_EVENT)) {
            self.notify(xen);
        }
    }

    /// Writes any `req_prod` on the TX ring and notifies (a flood, or a lie).
    pub fn set_req_prod(&mut self, xen: &mut Xen, prod: u32) {
        let page = xen.page(self.tx_ring);
        ring::set(&page, REQ_PROD, prod);
        self.notify(xen);
    }

    /// Grants its own page (for hostile requests naming it).
    pub fn grant_page(&mut self, xen: &mut Xen, data: &[u8], readonly: bool) -> (PageId, GrantRef) {
        let p = xen.alloc_page(self.dom);
        xen.write_page(p, 0, data);
        (p, xen.grant(self.dom, p, self.backend, readonly))
    }

    /// Ends every outstanding TX grant (a frontend pulling pages back while
    /// the backend may be copying).
    pub fn revoke_all_tx(&mut self, xen: &mut Xen) -> usize {
        let mut n = 0;
        for slots in self.tx_slots.values() {
            for s in slots {
                n += usize::from(xen.end_grant(self.dom, s.gref));
            }
        }
        n
    }

    /// TX requests not answered yet.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx_prod.wrapping_sub(self.tx_cons)
    }

    /// Handles responses on both rings; true if there were any.
    pub fn poll(&mut self, xen: &mut Xen) -> bool {
        let mut did = false;
        // TX responses.
        let page = xen.page(self.tx_ring);
        loop {
            let prod = ring::get(&page, RSP_PROD);
            if prod.wrapping_sub(self.tx_cons) > self.tx_prod.wrapping_sub(self.tx_cons) {
                self.bad_responses += 1;
                break;
            }
            while self.tx_cons != prod {
                let raw = ring::read(&page, self.tx_cons, 12, 4);
                let id = u16::from_le_bytes([raw[0], raw[1]]);
                let st = i16::from_le_bytes([raw[2], raw[3]]);
                self.tx_responses.push((id, st));
                if st != rsp::NULL
                    && let Some(slots) = self.tx_slots.remove(&id)
                {
                    for s in slots {
                        assert!(xen.end_grant(self.dom, s.gref), "backend still maps a TX page");
                    }
                }
                self.tx_cons = self.tx_cons.wrapping_add(1);
                did = true;
            }
            ring::set(&page, RSP_EVENT, self.tx_cons.wrapping_add(1));
            if ring::get(&page, RSP_PROD) == self.tx_cons {
                break;
            }
        }
        // RX responses.
        let page = xen.page(self.rx_ring);
        loop {
            let prod = ring::get(&page, RSP_PROD);
            if prod.wrapping_sub(self.rx_cons) > self.rx_prod.wrapping_sub(self.rx_cons) {
                self.bad_responses += 1;
                break;
            }
            while self.rx_cons != prod {
                let raw = ring::read(&page, self.rx_cons, 8, 8);
                let r = moat_xen::netif::NetifRxResponse::read_from_bytes(&raw).expect("8 bytes");
                self.rx_cons = self.rx_cons.wrapping_add(1);
                did = true;
                let Some(slot) = self.rx_slots.remove(&r.id) else {
                    self.bad_responses += 1;
                    continue;
                };
                if r.status > 0 && usize::from(r.offset) + r.status as usize <= PAGE_SIZE {
                    let mut data = vec![0u8; r.status as usize];
                    xen.read_page(slot.page, usize::from(r.offset), &mut data);
                    let part = self.partial.get_or_insert(Received { frame: Vec::new(), flags: r.flags });
                    part.frame.extend_from_slice(&data);
                    if r.flags & rxf::MORE_DATA == 0 {
                        self.received.push_back(self.partial.take().expect("just set"));
                    }
                } else {
                    self.partial = None;
                }
                assert!(xen.end_grant(self.dom, slot.gref), "backend still maps an RX page");
            }
            ring::set(&page, RSP_EVENT, self.rx_cons.wrapping_add(1));
            if ring::get(&page, RSP_PROD) == self.rx_cons {
                break;
            }
        }
        if self.post_rx && self.state == State::Connected {
            self.refill(xen);
        }
        did
    }
}
