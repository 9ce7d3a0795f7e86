//! The frontend's XenBus handshake, driven through the xenstore component.
//!
//! ```text
//!  Uplink ─► Initialising ─(backend InitWait)─► Granting ─► Publishing ─► Published ─(backend Connected)─► Connected
//!  (watch the backend's state)   (grants, channel)  (keys, state 4)                            │
//!                                                              backend Closing/Closed/gone, or a broken ring
//!                                                                                              ▼
//!  Initialising ◄─(write 1)─ Closed ◄─(state 6)─ Closing: grants ended (retried while in use), channel closed
//!      ▲ backend back at 1 or 2
//! ```
//!
//! When the uplink device itself goes away (or another replaces it),
//! netfront closes the same way, stops watching and, for a replacement,
//! starts over with it.

use core::fmt::Write;

use heapless::{String, Vec};
use moat_control::xenstore::{XS_TX_OPS, XsPath, XsValue};
use moat_control::{Uplink, UplinkEvent, XsOp, XsReply, XsRequest};
use moat_xen::ops::Frontend;
use moat_xen::xenbus::XenbusState;

/// Where the uplink is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No uplink device.
    #[default]
    Idle,
    /// Waiting for the backend's InitWait.
    Initialising,
    /// Granting pages and allocating the channel.
    Granting,
    /// Writing the keys and Connected.
    Publishing,
    /// Waiting for the backend's Connected.
    Published,
    /// Traffic flows.
    Connected,
    /// Ending grants, closing the channel.
    Closing,
    /// Closed; waiting for the backend to start over.
    Closed,
    /// Going away: unwatching.
    Leaving,
}

/// XenStore requests wanted (bits of [`Link::xs`]).
pub mod need {
    /// Watch the backend's state.
    pub const WATCH: u8 = 1;
    /// Read it.
    pub const READ_BACKEND: u8 = 2;
    /// Write the keys and Connected.
    pub const PUBLISH: u8 = 4;
    /// Write our state.
    pub const WRITE_STATE: u8 = 8;
    /// Stop watching.
    pub const UNWATCH: u8 = 16;
}

mod req {
    pub const WATCH: u8 = 1;
    pub const READ_BACKEND: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const WRITE_STATE: u8 = 4;
    pub const UNWATCH: u8 = 5;
}

/// The handshake's state.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Phase.
    pub phase: Phase,
    /// The device.
    pub uplink: Option<Uplink>,
    /// A device to start with once this one is gone.
    pub pending: Option<Uplink>,
    /// Which life this is (in request ids and the watch token).
    pub life: u16,
    /// Requests wanted ([`need`]).
    pub xs: u8,
    /// State to write.
    pub state_out: Option<XenbusState>,
    /// The watch is set up.
    pub watching: bool,
    /// The request in flight.
    pub in_flight: Option<u32>,
    /// Something happened on the rings.
    pub kick: bool,
    /// Grant ops to send.
    pub want_connect: bool,
    /// Release ops to send.
    pub want_release: bool,
    /// Leaving (the device went away or is replaced).
    pub leaving: bool,
    /// The device directory is gone: write nothing into it.
    pub gone: bool,
    /// What to tell the NAT.
    pub nat: Option<UplinkEvent>,
    /// Connections made.
    pub connects: u64,
    /// Connections ended.
    pub disconnects: u64,
}

fn key(u: &Uplink, k: &str) -> XsPath {
    let mut p = String::new();
    let _ = write!(p, "device/vif/{}/{k}", u.devid);
    p
}

fn backend_state(u: &Uplink) -> XsPath {
    let mut p = u.backend.clone();
    let _ = p.push_str("/state");
    p
}

fn num(n: u32) -> XsValue {
    let mut s = String::<12>::new();
    let _ = write!(s, "{n}");
    Vec::from_slice(s.as_bytes()).unwrap_or_default()
}

fn same_device(a: &Uplink, b: &Uplink) -> bool {
    a.devid == b.devid && a.backend_id == b.backend_id && a.backend == b.backend && a.mac == b.mac
}

impl Link {
    fn start(&mut self, u: Uplink) {
        let life = self.life.wrapping_add(1);
        let (connects, disconnects) = (self.connects, self.disconnects);
        *self = Link { life, connects, disconnects, ..Link::default() };
        self.uplink = Some(u);
        self.phase = Phase::Initialising;
        self.xs = need::WATCH;
    }

    fn id(&self, kind: u8) -> u32 {
        u32::from(self.life) << 8 | u32::from(kind)
    }

    /// The xenstore component says the uplink is `u`.
    pub fn uplink(&mut self, u: Uplink) -> Option<UplinkEvent> {
        match &mut self.uplink {
            None if self.phase == Phase::Idle => {
                self.start(u);
                None
            }
            Some(cur) if same_device(cur, &u) && !self.leaving => {
                let changed = cur.ipv4 != u.ipv4 || cur.mtu != u.mtu;
                *cur = u;
                match (self.phase, changed, cur.ipv4) {
                    (Phase::Connected, true, Some(ip)) => Some(UplinkEvent::Up { ipv4: ip, mtu: cur.mtu }),
                    (Phase::Connected, true, None) => Some(UplinkEvent::Down),
                    _ => None,
                }
            }
            _ => {
                self.pending = Some(u);
                self.leave();
                None
            }
        }
    }

    /// The uplink device is gone.
    pub fn gone(&mut self) {
        self.pending = None;
        self.gone = true;
        self.leave();
    }

    fn leave(&mut self) {
        if self.phase == Phase::Idle {
            if let Some(u) = self.pending.take() {
                self.start(u);
            }
            return;
        }
        self.leaving = true;
        self.teardown();
    }

    /// Ends the connection (or the attempt).
    pub fn teardown(&mut self) {
        match self.phase {
            Phase::Granting | Phase::Publishing | Phase::Published | Phase::Connected => {
                if self.phase == Phase::Connected {
                    self.nat = Some(UplinkEvent::Down);
                    self.disconnects += 1;
                }
                self.phase = Phase::Closing;
                self.want_connect = false;
                self.want_release = true;
                self.xs &= !need::PUBLISH;
                // Closed at once, as Linux says it: the backend unmaps our
                // rings only after that, and only then can our grants end.
                if !self.gone {
                    self.state_out = Some(XenbusState::Closed);
                    self.xs |= need::WRITE_STATE;
                }
            }
            Phase::Initialising | Phase::Closed => self.released(),
            Phase::Idle | Phase::Closing | Phase::Leaving => {}
        }
    }

    /// Everything granted is back.
    pub fn released(&mut self) {
        if self.leaving {
            self.phase = Phase::Leaving;
            self.xs = if self.watching { need::UNWATCH } else { 0 };
            self.finish_leaving();
            return;
        }
        let was = self.phase;
        self.phase = Phase::Closed;
        if was != Phase::Closing && !self.gone {
            self.state_out = Some(XenbusState::Closed);
            self.xs |= need::WRITE_STATE;
        }
        // The backend may have started over while we closed.
        self.xs |= need::READ_BACKEND;
    }

    fn finish_leaving(&mut self) {
        if self.phase == Phase::Leaving && !self.watching && self.xs == 0 && self.in_flight.is_none() {
            let pending = self.pending.take();
            let life = self.life;
            let (connects, disconnects) = (self.connects, self.disconnects);
            *self = Link { life, connects, disconnects, ..Link::default() };
            if let Some(u) = pending {
                self.start(u);
            }
        }
    }

    /// The connect ops came back; `ok` if all succeeded.
    pub fn granted(&mut self, ok: bool) {
        if self.phase != Phase::Granting {
            return;
        }
        if ok {
            self.phase = Phase::Publishing;
            self.xs |= need::PUBLISH;
        } else {
            self.teardown();
        }
    }

    /// The backend is in state `s` (`None`: its directory is gone).
    fn backend(&mut self, s: Option<XenbusState>) {
        use XenbusState as S;
        match (self.phase, s) {
            (Phase::Initialising, Some(S::InitWait)) => {
                self.phase = Phase::Granting;
                self.want_connect = true;
            }
            (Phase::Published, Some(S::Connected)) => {
                self.phase = Phase::Connected;
                self.kick = true;
                self.connects += 1;
                if let Some(ip) = self.uplink.as_ref().and_then(|u| u.ipv4) {
                    let mtu = self.uplink.as_ref().map_or(1500, |u| u.mtu);
                    self.nat = Some(UplinkEvent::Up { ipv4: ip, mtu });
                }
            }
            (
                Phase::Granting | Phase::Publishing | Phase::Published | Phase::Connected,
                Some(S::Closing | S::Closed),
            )
            | (Phase::Granting | Phase::Publishing | Phase::Published | Phase::Connected, None) => self.teardown(),
            (Phase::Closed, Some(S::Initialising | S::InitWait)) if !self.gone => {
                self.phase = Phase::Initialising;
                self.state_out = Some(S::Initialising);
                self.xs |= need::WRITE_STATE;
            }
            _ => {}
        }
    }

    /// A reply or watch event; false if it answers nothing of ours.
    pub fn reply(&mut self, r: &XsReply) -> bool {
        if let XsReply::Event { token, .. } = r {
            if *token == u32::from(self.life) && self.phase != Phase::Idle {
                self.xs |= need::READ_BACKEND;
            }
            return true;
        }
        let id = match r {
            XsReply::Done { id }
            | XsReply::Value { id, .. }
            | XsReply::Directory { id, .. }
            | XsReply::Transaction { id, .. }
            | XsReply::Failed { id, .. } => *id,
            XsReply::Event { .. } => return true,
        };
        if self.in_flight != Some(id) {
            return false;
        }
        self.in_flight = None;
        let failed = matches!(r, XsReply::Failed { .. });
        match id as u8 {
            req::WATCH => self.watching = !failed,
            req::READ_BACKEND => {
                let gone = matches!(r, XsReply::Failed { error: moat_control::XsError::NotFound, .. });
                match r {
                    XsReply::Value { value, .. } => self.backend(XenbusState::parse(value)),
                    _ if gone => self.backend(None),
                    _ => {}
                }
            }
            req::PUBLISH => match (failed, self.phase) {
                (false, Phase::Publishing) => {
                    self.phase = Phase::Published;
                    // The backend may be Connected already.
                    self.xs |= need::READ_BACKEND;
                }
                (true, Phase::Publishing) => self.teardown(),
                _ => {}
            },
            req::WRITE_STATE if self.phase == Phase::Initialising => self.xs |= need::READ_BACKEND,
            req::UNWATCH => self.watching = false,
            _ => {}
        }
        self.finish_leaving();
        true
    }

    /// The next request, if any (`grants` by local page, `port` the
    /// channel's Xen number, for the keys).
    pub fn next_request(&mut self, grants: &[Option<u32>], port: u32) -> Option<XsRequest> {
        let u = self.uplink.as_ref()?;
        let bit = (0..5).map(|b| 1u8 << b).find(|b| self.xs & b != 0)?;
        self.xs &= !bit;
        Some(match bit {
            need::WATCH => XsRequest::Watch {
                id: self.id(req::WATCH),
                path: backend_state(u),
                token: u32::from(self.life),
                skip_initial: false,
            },
            need::READ_BACKEND => XsRequest::Read { id: self.id(req::READ_BACKEND), path: backend_state(u) },
            need::PUBLISH => {
                let tx = grants.get(Frontend::TX_RING as usize).copied().flatten()?;
                let rx = grants.get(Frontend::RX_RING as usize).copied().flatten()?;
                let mut ops: Vec<XsOp, XS_TX_OPS> = Vec::new();
                let one = || Vec::from_slice(b"1").unwrap_or_default();
                let _ = ops.push(XsOp::Write(key(u, "tx-ring-ref"), num(tx)));
                let _ = ops.push(XsOp::Write(key(u, "rx-ring-ref"), num(rx)));
                let _ = ops.push(XsOp::Write(key(u, "event-channel"), num(port)));
                let _ = ops.push(XsOp::Write(key(u, "request-rx-copy"), one()));
                let _ = ops.push(XsOp::Write(key(u, "feature-rx-notify"), one()));
                let _ = ops.push(XsOp::Write(key(u, "feature-no-csum-offload"), one()));
                let _ = ops.push(XsOp::Write(key(u, "state"), Vec::from_slice(b"4").unwrap_or_default()));
                XsRequest::Transaction { id: self.id(req::PUBLISH), ops }
            }
            need::WRITE_STATE => {
                let s = self.state_out.unwrap_or(XenbusState::Closed);
                XsRequest::Write {
                    id: self.id(req::WRITE_STATE),
                    path: key(u, "state"),
                    value: Vec::from_slice(s.as_ascii()).unwrap_or_default(),
                }
            }
            _ => XsRequest::Unwatch { id: self.id(req::UNWATCH), token: u32::from(self.life) },
        })
    }

    /// Puts back a request that did not fit its ring.
    pub fn unsend(&mut self, r: &XsRequest) {
        self.xs |= match r.id() as u8 {
            req::WATCH => need::WATCH,
            req::READ_BACKEND => need::READ_BACKEND,
            req::PUBLISH => need::PUBLISH,
            req::WRITE_STATE => need::WRITE_STATE,
            _ => need::UNWATCH,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink(ip: [u8; 4]) -> Uplink {
        Uplink {
            devid: 0,
            backend_id: 1,
            backend: String::try_from("/local/domain/1/backend/vif/3/0").unwrap(),
            mac: [0, 0x16, 0x3e, 0, 0, 3],
            mtu: 1500,
            ipv4: Some(ip),
            ipv6: None,
        }
    }

    fn answer(l: &mut Link, grants: &[Option<u32>], r: impl Fn(u32) -> XsReply) -> XsRequest {
        let q = l.next_request(grants, 9).expect("a request");
        l.in_flight = Some(q.id());
        assert!(l.reply(&r(q.id())));
        q
    }

    #[test]
    fn the_handshake_in_order() {
        let mut l = Link::default();
        assert_eq!(l.uplink(uplink([10, 138, 0, 5])), None);
        let grants = [Some(8), Some(9)];
        let w = answer(&mut l, &grants, |id| XsReply::Done { id });
        assert!(matches!(w, XsRequest::Watch { ref path, .. } if path == "/local/domain/1/backend/vif/3/0/state"));
        assert!(l.reply(&XsReply::Event { token: u32::from(l.life), path: String::new() }));
        let v = |s: &'static [u8]| move |id| XsReply::Value { id, value: Vec::from_slice(s).unwrap() };
        answer(&mut l, &grants, v(b"2"));
        assert_eq!(l.phase, Phase::Granting);
        l.granted(true);
        let p = answer(&mut l, &grants, |id| XsReply::Transaction { id, reads: Vec::new() });
        let XsRequest::Transaction { ops, .. } = p else { panic!() };
        assert!(
            ops.iter().any(
                |o| matches!(o, XsOp::Write(p, v) if p == "device/vif/0/feature-no-csum-offload" && &v[..] == b"1")
            )
        );
        assert!(
            ops.iter().any(|o| matches!(o, XsOp::Write(p, v) if p == "device/vif/0/event-channel" && &v[..] == b"9"))
        );
        assert_eq!(l.phase, Phase::Published);
        answer(&mut l, &grants, v(b"4"));
        assert_eq!(l.phase, Phase::Connected);
        assert_eq!(l.nat.take(), Some(UplinkEvent::Up { ipv4: [10, 138, 0, 5], mtu: 1500 }));
        // A new address on the same device.
        assert_eq!(l.uplink(uplink([10, 138, 0, 6])), Some(UplinkEvent::Up { ipv4: [10, 138, 0, 6], mtu: 1500 }));
        // The backend closes.
        l.xs |= need::READ_BACKEND;
        answer(&mut l, &grants, v(b"5"));
        assert_eq!(l.phase, Phase::Closing);
        assert_eq!(l.nat.take(), Some(UplinkEvent::Down));
        let s = answer(&mut l, &grants, |id| XsReply::Done { id });
        assert!(matches!(s, XsRequest::Write { ref value, .. } if &value[..] == b"6"), "Closed before the grants end");
        l.released();
        assert_eq!(l.phase, Phase::Closed);
        let r = answer(&mut l, &grants, |id| XsReply::Value { id, value: Vec::from_slice(b"6").unwrap() });
        assert!(matches!(r, XsRequest::Read { .. }), "looks at the backend again");
        // It comes back.
        l.xs |= need::READ_BACKEND;
        answer(&mut l, &grants, v(b"1"));
        assert_eq!(l.phase, Phase::Initialising);
        let s = answer(&mut l, &grants, |id| XsReply::Done { id });
        assert!(matches!(s, XsRequest::Write { ref value, .. } if &value[..] == b"1"));
        answer(&mut l, &grants, v(b"2"));
        assert_eq!(l.phase, Phase::Granting);
    }

    #[test]
    fn a_device_that_goes_away_is_unwatched() {
        let mut l = Link::default();
        l.uplink(uplink([10, 138, 0, 5]));
        let grants = [None, None];
        answer(&mut l, &grants, |id| XsReply::Done { id });
        assert!(l.watching);
        l.gone();
        assert_eq!(l.phase, Phase::Leaving);
        let u = answer(&mut l, &grants, |id| XsReply::Done { id });
        assert!(matches!(u, XsRequest::Unwatch { .. }));
        assert_eq!(l.phase, Phase::Idle);
        assert!(l.uplink.is_none());
        // A replacement while one is up: the old goes first.
        l.uplink(uplink([10, 138, 0, 5]));
        answer(&mut l, &grants, |id| XsReply::Done { id });
        let mut other = uplink([10, 138, 0, 7]);
        other.devid = 1;
        l.uplink(other.clone());
        answer(&mut l, &grants, |id| XsReply::Done { id });
        assert_eq!(l.uplink.as_ref().map(|u| u.devid), Some(1), "started with the new device");
        assert_eq!(l.phase, Phase::Initialising);
    }
}
