//! A simulated sys-net backend, behaving like Linux `xen-netback` towards
//! moat's netfront — and, on request, like a broken one.
//!
//! Like Linux it: advertises `feature-rx-copy` and goes to InitWait; when
//! the frontend is Connected, reads `tx-ring-ref`, `rx-ring-ref` and
//! `event-channel`, maps both rings, binds the channel and goes Connected;
//! copies each TX frame out of the frontend's granted page (grant copy) and
//! answers it; copies frames for the frontend into the pages it posted,
//! at offset 0, one slot per frame; closes (unmapping, unbinding) when the
//! frontend closes or the toolstack says so.

use std::collections::VecDeque;

use moat_ring::Region;
use moat_test_xenstored::XenStored;
use moat_xen::netif::{NetifRxResponse, NetifTxRequest};
use moat_xen::{DomId, EvtchnPort, GrantRef, PAGE_SIZE};
use zerocopy::{FromBytes, IntoBytes};

use crate::ring::{self, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::{Frame, PageId, Xen};

/// The backend's XenBus state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created by the toolstack.
    Initialising,
    /// Features written.
    InitWait,
    /// Rings mapped.
    Connected,
    /// Closed.
    Closed,
}

/// One simulated backend.
pub struct LinuxBack {
    /// Its domain (sys-net).
    pub dom: DomId,
    /// The frontend domain (moat).
    pub frontend: DomId,
    /// Device number.
    pub devid: u32,
    /// State.
    pub state: State,
    rings: Option<(Region, Region, GrantRef, GrantRef)>,
    port: Option<EvtchnPort>,
    scratch: PageId,
    tx_cons: u32,
    tx_rsp: u32,
    rx_cons: u32,
    rx_rsp: u32,
    /// Frames the frontend sent.
    pub sent: VecDeque<Vec<u8>>,
    /// Frames to give the frontend (with their `NETRXF_*` flags).
    pub to_send: VecDeque<(Vec<u8>, u16)>,
    /// TX requests that named bytes outside a page, or grants it could not
    /// copy.
    pub bad_requests: u64,
    /// Notifications sent.
    pub notifies: u64,
}

impl LinuxBack {
    /// The backend of `frontend`'s device `devid`, in domain `dom`.
    pub fn new(xen: &mut Xen, dom: DomId, frontend: DomId, devid: u32) -> Self {
        LinuxBack {
            dom,
            frontend,
            devid,
            state: State::Initialising,
            rings: None,
            port: None,
            scratch: xen.alloc_page(dom),
            tx_cons: 0,
            tx_rsp: 0,
            rx_cons: 0,
            rx_rsp: 0,
            sent: VecDeque::new(),
            to_send: VecDeque::new(),
            bad_requests: 0,
            notifies: 0,
        }
    }

    /// Its directory.
    pub fn dir(&self) -> String {
        format!("/local/domain/{}/backend/vif/{}/{}", self.dom, self.frontend, self.devid)
    }

    /// The frontend's directory.
    pub fn frontend_dir(&self) -> String {
        format!("/local/domain/{}/device/vif/{}", self.frontend, self.devid)
    }

    fn frontend_key(&self, store: &XenStored, k: &str) -> Option<u32> {
        let v = store.read(&format!("{}/{k}", self.frontend_dir()))?;
        std::str::from_utf8(&v).ok()?.trim().parse().ok()
    }

    fn write_state(&self, store: &mut XenStored, s: &str) {
        let _ = store.write(&format!("{}/state", self.dir()), s.as_bytes());
    }

    /// Reacts to XenStore and the rings. Returns true if it did anything.
    pub fn step(&mut self, xen: &mut Xen, store: &mut XenStored) -> bool {
        if store.read(&self.dir()).is_none() {
            return false;
        }
        let ours = self.frontend_key(store, "state");
        let own = store.read(&format!("{}/state", self.dir()));
        let mut did = false;
        match (self.state, ours) {
            (State::Initialising, _) if own.as_deref() == Some(b"1") => {
                let d = self.dir();
                let _ = store.write(&format!("{d}/feature-rx-copy"), b"1");
                let _ = store.write(&format!("{d}/feature-sg"), b"1");
                self.write_state(store, "2");
                self.state = State::InitWait;
                did = true;
            }
            (State::InitWait, Some(4)) => {
                did = true;
                self.connect(xen, store);
            }
            (State::Connected, Some(5 | 6) | None) => {
                did = true;
                self.disconnect(xen, store);
            }
            (State::Closed, Some(1)) => {
                // The frontend starts over.
                self.state = State::Initialising;
                self.write_state(store, "1");
                did = true;
            }
            _ => {}
        }
        if self.state == State::Connected {
            let _ = xen.take_pending(self.dom);
            did |= self.poll(xen);
        }
        did
    }

    fn connect(&mut self, xen: &mut Xen, store: &mut XenStored) {
        let keys = (
            self.frontend_key(store, "tx-ring-ref"),
            self.frontend_key(store, "rx-ring-ref"),
            self.frontend_key(store, "event-channel"),
        );
        let (Some(tx), Some(rx), Some(port)) = keys else {
            self.write_state(store, "5");
            self.state = State::Closed;
            return;
        };
        let (Ok(txp), Ok(rxp)) =
            (xen.map_moat_frame(self.dom, self.frontend, tx), xen.map_moat_frame(self.dom, self.frontend, rx))
        else {
            self.write_state(store, "5");
            self.state = State::Closed;
            return;
        };
        self.rings = Some((txp, rxp, tx, rx));
        self.port = xen.bind(self.dom, self.frontend, port).ok();
        (self.tx_cons, self.tx_rsp, self.rx_cons, self.rx_rsp) = (0, 0, 0, 0);
        self.write_state(store, "4");
        self.state = State::Connected;
    }

    /// Unmaps, unbinds and says Closed.
    pub fn disconnect(&mut self, xen: &mut Xen, store: &mut XenStored) {
        self.release(xen);
        self.write_state(store, "6");
        self.state = State::Closed;
    }

    /// Unmaps and unbinds (as when the domain dies).
    pub fn release(&mut self, xen: &mut Xen) {
        if let Some((_, _, tx, rx)) = self.rings.take() {
            xen.unmap_moat_frame(self.frontend, tx);
            xen.unmap_moat_frame(self.frontend, rx);
        }
        if let Some(p) = self.port.take() {
            xen.close(self.dom, p);
        }
    }

    /// The toolstack restarts the backend: Initialising again.
    pub fn restart(&mut self, store: &mut XenStored) {
        self.state = State::Initialising;
        self.write_state(store, "1");
    }

    fn notify(&mut self, xen: &mut Xen) {
        if let Some(p) = self.port {
            xen.send(self.dom, p);
            self.notifies += 1;
        }
    }

    /// The mapped TX and RX ring pages (to misbehave with).
    pub fn ring_pages(&self) -> Option<(Region, Region)> {
        self.rings.map(|(t, r, _, _)| (t, r))
    }

    /// Serves both rings; true if anything moved.
    pub fn poll(&mut self, xen: &mut Xen) -> bool {
        let Some((txp, rxp, _, _)) = self.rings else { return false };
        let mut did = false;
        // TX: frames from the frontend.
        loop {
            let prod = ring::get(&txp, REQ_PROD);
            while self.tx_cons != prod {
                let raw = ring::read(&txp, self.tx_cons, 12, 12);
                let r = NetifTxRequest::read_from_bytes(&raw).expect("12 bytes");
                self.tx_cons = self.tx_cons.wrapping_add(1);
                let ok = usize::from(r.offset) + usize::from(r.size) <= PAGE_SIZE
                    && xen.copy(
                        self.dom,
                        false,
                        self.frontend,
                        r.gref,
                        r.offset,
                        Frame::Guest(self.scratch),
                        0,
                        r.size,
                    ) == 0;
                let status: i16 = if ok {
                    let mut f = vec![0u8; usize::from(r.size)];
                    xen.read_page(self.scratch, 0, &mut f);
                    self.sent.push_back(f);
                    0
                } else {
                    self.bad_requests += 1;
                    -1
                };
                let mut rsp = [0u8; 4];
                rsp[..2].copy_from_slice(&r.id.to_le_bytes());
                rsp[2..].copy_from_slice(&status.to_le_bytes());
                ring::write(&txp, self.tx_rsp, 12, &rsp);
                self.tx_rsp = self.tx_rsp.wrapping_add(1);
                did = true;
            }
            ring::set(&txp, REQ_EVENT, self.tx_cons.wrapping_add(1));
            if ring::get(&txp, REQ_PROD) == self.tx_cons {
                break;
            }
        }
        self.publish(xen, &txp, self.tx_rsp);
        // RX: frames for the frontend, into the pages it posted.
        while let Some((frame, flags)) = self.to_send.front().cloned() {
            let prod = ring::get(&rxp, REQ_PROD);
            if prod == self.rx_cons {
                ring::set(&rxp, REQ_EVENT, self.rx_cons.wrapping_add(1));
                if ring::get(&rxp, REQ_PROD) == self.rx_cons {
                    break;
                }
                continue;
            }
            let raw = ring::read(&rxp, self.rx_cons, 8, 8);
            let id = u16::from_le_bytes([raw[0], raw[1]]);
            let gref = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            self.rx_cons = self.rx_cons.wrapping_add(1);
            self.to_send.pop_front();
            xen.write_page(self.scratch, 0, &frame);
            let st =
                xen.copy(self.dom, true, self.frontend, gref, 0, Frame::Guest(self.scratch), 0, frame.len() as u16);
            let status = if st == 0 { frame.len() as i16 } else { -1 };
            let rsp = NetifRxResponse { id, offset: 0, flags, status };
            ring::write(&rxp, self.rx_rsp, 8, rsp.as_bytes());
            self.rx_rsp = self.rx_rsp.wrapping_add(1);
            did = true;
        }
        self.publish(xen, &rxp, self.rx_rsp);
        did
    }

    /// Puts a raw response on the RX ring (consuming a request) and
    /// publishes it.
    pub fn raw_rx(&mut self, xen: &mut Xen, rsp: NetifRxResponse) {
        let Some((_, rxp, _, _)) = self.rings else { return };
        self.rx_cons = self.rx_cons.wrapping_add(1);
        ring::write(&rxp, self.rx_rsp, 8, rsp.as_bytes());
        self.rx_rsp = self.rx_rsp.wrapping_add(1);
        self.publish(xen, &rxp, self.rx_rsp);
    }

    /// The next RX request's id and grant, if the frontend posted one.
    pub fn peek_rx(&self) -> Option<(u16, GrantRef)> {
        let (_, rxp, _, _) = self.rings?;
        if ring::get(&rxp, REQ_PROD) == self.rx_cons {
            return None;
        }
        let raw = ring::read(&rxp, self.rx_cons, 8, 8);
        Some((u16::from_le_bytes([raw[0], raw[1]]), u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]])))
    }

    fn publish(&mut self, xen: &mut Xen, page: &Region, prod: u32) {
        let old = ring::get(page, RSP_PROD);
        if prod == old {
            return;
        }
        ring::set(page, RSP_PROD, prod);
        if ring::notify(old, prod, ring::get(page, RSP_EVENT)) {
            self.notify(xen);
        }
    }
}
