//! One client vif: its XenBus handshake, driven through the xenstore
//! component, and what it holds (an event channel, two mapped ring pages).
//!
//! ```text
//!  VifUp ─► Announcing ─► InitWait ─► ReadingKeys ─► Connecting ─► Publishing ─► Connected
//!   (features, state 2)   (watch)     (frontend 3/4)  (bind, map)   (state 4)
//!                                                                        │ frontend 5/6, broken ring,
//!                                                                        ▼ or VifDown
//!           Free ◄── Removing ◄── (offline) ── Closing: ops drained, unmap, close
//!                  (state 6, rm dir, unwatch)      │ (online)
//!                                                  ▼
//!                                                Closed (state 6, or 5 after an error)
//!                                                  │ frontend back to 1/2
//!                                                  └─► Announcing
//! ```
//!
//! XenStore requests go out one at a time for the whole component (the
//! xenstore component serves one request per client at a time); each vif
//! says which ones it needs in [`Vif::xs`], and the component picks them in
//! turn.

use core::fmt::Write;

use heapless::{String, Vec};
use moat_component::{Duration, Instant};
use moat_control::xenstore::{XS_TX_OPS, XsPath, XsValue};
use moat_control::{Vif as VifInfo, XsOp, XsReply, XsRequest};
use moat_xen::sring::BackRing;
use moat_xen::xenbus::XenbusState;

/// What a vif waits for from XenStore (bits of [`Vif::xs`]), in the order
/// they are sent.
pub mod need {
    /// Write the features and InitWait.
    pub const ANNOUNCE: u8 = 1;
    /// Watch the frontend's `state`.
    pub const WATCH: u8 = 2;
    /// Read the frontend's `state` (its watch fired).
    pub const READ_STATE: u8 = 4;
    /// Read the frontend's ring references and channel.
    pub const READ_KEYS: u8 = 8;
    /// Write our `state` ([`super::Vif::state_out`]).
    pub const WRITE_STATE: u8 = 16;
    /// See whether the backend directory still exists (before writing into
    /// it when going away).
    pub const CHECK_DIR: u8 = 32;
    /// Remove the backend directory.
    pub const REMOVE: u8 = 64;
    /// Stop watching the frontend.
    pub const UNWATCH: u8 = 128;
}

/// Where a vif is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nobody.
    Free,
    /// Features and InitWait being written.
    Announcing,
    /// Waiting for the frontend to publish its rings.
    InitWait,
    /// Reading them.
    ReadingKeys,
    /// Binding the channel and mapping the rings.
    Connecting,
    /// Writing Connected.
    Publishing,
    /// Traffic flows.
    Connected,
    /// Giving back what it holds.
    Closing,
    /// Closed; waits for the frontend to start over.
    Closed,
    /// Going away: last state, directory and watch.
    Removing,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The frontend closed.
    Normal,
    /// The frontend broke the protocol or published unusable keys.
    Error,
}

/// What the frontend published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// TX ring grant.
    pub tx_ref: u32,
    /// RX ring grant.
    pub rx_ref: u32,
    /// Its event channel.
    pub port: u32,
}

/// Why the frontend's keys were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKeys {
    /// A ring reference or channel missing or not a number.
    Missing,
    /// Split event channels (moat offers one).
    Split,
    /// Several queues (moat offers one).
    MultiQueue,
    /// No `request-rx-copy` (moat only copies).
    NoRxCopy,
    /// No `feature-rx-notify` (required).
    NoRxNotify,
}

/// One vif.
pub struct Vif {
    /// Which life of the slot this is (tags and request ids carry it).
    pub life: u16,
    /// Phase.
    pub phase: Phase,
    /// Who it is.
    pub info: Option<VifInfo>,
    /// The toolstack took it offline (or it vanished): go away after closing.
    pub offline: bool,
    /// A `VifUp` for this slot that came while the old one still closed.
    pub next_up: Option<VifInfo>,
    /// XenStore requests needed ([`need`]).
    pub xs: u8,
    /// The state to write with [`need::WRITE_STATE`].
    pub state_out: XenbusState,
    /// The last state written.
    pub state_written: Option<XenbusState>,
    /// The frontend-state watch is set up.
    pub watching: bool,
    /// How the current connection ends.
    pub close_kind: CloseKind,
    /// The frontend's keys.
    pub keys: Keys,
    /// Connect ops still to send: bind, map TX, map RX.
    pub want_bind: bool,
    /// See `want_bind`.
    pub want_map_tx: bool,
    /// See `want_bind`.
    pub want_map_rx: bool,
    /// A connect op failed.
    pub connect_failed: bool,
    /// The event channel handle, while bound.
    pub handle: Option<u16>,
    /// TX ring page mapped.
    pub tx_mapped: bool,
    /// RX ring page mapped.
    pub rx_mapped: bool,
    /// Teardown ops sent and not answered yet.
    pub releasing: u8,
    /// The rings, while connected.
    pub tx: Option<BackRing>,
    /// See `tx`.
    pub rx: Option<BackRing>,
    /// Ops of this vif in the batch in flight.
    pub ops: u16,
    /// Look at the TX ring.
    pub tx_kick: bool,
    /// Look at the RX ring.
    pub rx_kick: bool,
    /// Signal the frontend in the next batch.
    pub notify: bool,
    /// Queued packets for it: head index and length in its part of the queue.
    pub rxq_head: u16,
    /// See `rxq_head`.
    pub rxq_len: u16,
    /// It reached Connected in this connection (for the disconnect count).
    pub was_connected: bool,
    /// ARP replies waiting (lengths of slots in its local page; 0 = empty).
    pub arp_len: [u8; ARP_SLOTS],
    /// Next ARP slot to send.
    pub arp_head: u8,
    /// When `Closed` was written on the way out (see [`REMOVE_GRACE`]).
    pub closed_at: Option<Instant>,
}

/// How long the backend directory stays after `Closed` was written into
/// it. libxl, removing a vif, waits for the backend's `state` to read 6 and
/// then for the driver domain to remove the directory; when the directory
/// is gone before its watch reads `state`, it reports "unable to remove
/// device" and `xl network-detach` fails (seen on real Xen in about one
/// detach of three with no delay).
pub const REMOVE_GRACE: Duration = Duration::from_secs(1);

/// ARP replies one vif can have waiting.
pub const ARP_SLOTS: usize = 4;

impl Vif {
    /// A free slot.
    pub const fn free() -> Self {
        Vif {
            life: 0,
            phase: Phase::Free,
            info: None,
            offline: false,
            next_up: None,
            xs: 0,
            state_out: XenbusState::Unknown,
            state_written: None,
            watching: false,
            close_kind: CloseKind::Normal,
            keys: Keys { tx_ref: 0, rx_ref: 0, port: 0 },
            want_bind: false,
            want_map_tx: false,
            want_map_rx: false,
            connect_failed: false,
            handle: None,
            tx_mapped: false,
            rx_mapped: false,
            releasing: 0,
            tx: None,
            rx: None,
            ops: 0,
            tx_kick: false,
            rx_kick: false,
            notify: false,
            rxq_head: 0,
            rxq_len: 0,
            was_connected: false,
            arp_len: [0; ARP_SLOTS],
            arp_head: 0,
            closed_at: None,
        }
    }

    /// Starts a new life for `info`.
    pub fn start(&mut self, info: VifInfo) {
        let life = self.life.wrapping_add(1);
        *self = Vif::free();
        self.life = life;
        self.info = Some(info);
        self.phase = Phase::Announcing;
        self.xs = need::ANNOUNCE | need::WATCH;
    }

    /// True if traffic flows.
    pub fn connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// True if it holds anything the runtime gave it.
    pub fn holds(&self) -> bool {
        self.handle.is_some() || self.tx_mapped || self.rx_mapped
    }

    /// Ends the connection (or the attempt): the component gives back what
    /// it holds once no op of this vif is in flight.
    pub fn teardown(&mut self, kind: CloseKind) {
        if matches!(self.phase, Phase::Free | Phase::Closing | Phase::Closed | Phase::Removing) {
            if self.phase == Phase::Closed && self.offline {
                self.go_away();
            }
            return;
        }
        self.phase = Phase::Closing;
        self.close_kind = kind;
        self.want_bind = false;
        self.want_map_tx = false;
        self.want_map_rx = false;
        self.tx = None;
        self.rx = None;
        self.tx_kick = false;
        self.rx_kick = false;
        self.notify = false;
        self.xs &= !(need::READ_KEYS | need::WRITE_STATE | need::ANNOUNCE);
    }

    /// Everything is given back: say so in XenStore.
    pub fn released(&mut self) {
        if self.offline {
            self.go_away();
            return;
        }
        self.phase = Phase::Closed;
        self.state_out = match self.close_kind {
            CloseKind::Normal => XenbusState::Closed,
            CloseKind::Error => XenbusState::Closing,
        };
        self.xs |= need::WRITE_STATE;
    }

    fn go_away(&mut self) {
        self.phase = Phase::Removing;
        self.xs = need::CHECK_DIR;
    }

    /// The toolstack took the vif away.
    pub fn down(&mut self) {
        self.offline = true;
        match self.phase {
            Phase::Announcing | Phase::InitWait | Phase::ReadingKeys | Phase::Closed => {
                self.phase = Phase::Closing;
                self.close_kind = CloseKind::Normal;
                self.xs &= !(need::READ_KEYS | need::WRITE_STATE | need::ANNOUNCE);
            }
            Phase::Connecting | Phase::Publishing | Phase::Connected => self.teardown(CloseKind::Normal),
            Phase::Free | Phase::Closing | Phase::Removing => {}
        }
    }

    /// The frontend's state changed to `s` (`None`: its directory is gone).
    pub fn frontend_state(&mut self, s: Option<XenbusState>) {
        use XenbusState as S;
        match (self.phase, s) {
            (Phase::InitWait, Some(S::Initialised | S::Connected)) => {
                self.phase = Phase::ReadingKeys;
                self.xs |= need::READ_KEYS;
            }
            (Phase::InitWait | Phase::Announcing, Some(S::Closing | S::Closed)) => self.teardown(CloseKind::Normal),
            (
                Phase::ReadingKeys | Phase::Connecting | Phase::Publishing | Phase::Connected,
                Some(S::Closing | S::Closed),
            )
            | (Phase::ReadingKeys | Phase::Connecting | Phase::Publishing | Phase::Connected, None) => {
                self.teardown(CloseKind::Normal)
            }
            (Phase::Closed, Some(S::Initialising | S::InitWait)) if !self.offline => {
                self.phase = Phase::Announcing;
                self.xs |= need::ANNOUNCE;
            }
            (Phase::Closed, Some(S::Closing | S::Closed)) if self.state_written != Some(S::Closed) => {
                self.state_out = S::Closed;
                self.xs |= need::WRITE_STATE;
            }
            _ => {}
        }
    }
}

/// Kinds of request, carried in the request id.
pub mod req {
    /// Features and InitWait.
    pub const ANNOUNCE: u8 = 1;
    /// The frontend-state watch.
    pub const WATCH: u8 = 2;
    /// Frontend state.
    pub const READ_STATE: u8 = 3;
    /// Frontend keys.
    pub const READ_KEYS: u8 = 4;
    /// Our state.
    pub const WRITE_STATE: u8 = 5;
    /// Is our directory there.
    pub const CHECK_DIR: u8 = 6;
    /// Remove it.
    pub const REMOVE: u8 = 7;
    /// Unwatch.
    pub const UNWATCH: u8 = 8;
}

/// A request id: slot, generation, kind.
pub fn request_id(slot: u8, life: u16, kind: u8) -> u32 {
    u32::from(slot) << 24 | u32::from(life) << 8 | u32::from(kind)
}

/// The parts of a request id.
pub fn split_id(id: u32) -> (u8, u16, u8) {
    ((id >> 24) as u8, (id >> 8) as u16, id as u8)
}

/// The watch token of a vif's life.
pub fn token(slot: u8, life: u16) -> u32 {
    u32::from(slot) << 16 | u32::from(life)
}

/// Backend directory (relative to moat's home).
pub fn backend_dir(info: &VifInfo) -> XsPath {
    let mut p = String::new();
    let _ = write!(p, "backend/vif/{}/{}", info.frontend_id, info.devid);
    p
}

fn backend_key(info: &VifInfo, key: &str) -> XsPath {
    let mut p = backend_dir(info);
    let _ = write!(p, "/{key}");
    p
}

/// Frontend directory (absolute).
pub fn frontend_key(info: &VifInfo, key: &str) -> XsPath {
    let mut p = String::new();
    let _ = write!(p, "/local/domain/{}/device/vif/{}/{key}", info.frontend_id, info.devid);
    p
}

fn value(v: &[u8]) -> XsValue {
    Vec::from_slice(v).unwrap_or_default()
}

/// Keys read from the frontend, in order.
pub const FRONTEND_KEYS: [&str; 7] = [
    "tx-ring-ref",
    "rx-ring-ref",
    "event-channel",
    "event-channel-tx",
    "request-rx-copy",
    "feature-rx-notify",
    "multi-queue-num-queues",
];

/// The next request `v` needs (clearing its bit), if any.
pub fn next_request(v: &mut Vif, slot: u8) -> Option<XsRequest> {
    let info = v.info.as_ref()?;
    let bit = (0..8).map(|b| 1u8 << b).find(|b| v.xs & b != 0)?;
    v.xs &= !bit;
    let id = |kind| request_id(slot, v.life, kind);
    Some(match bit {
        need::ANNOUNCE => {
            // Only what moat implements: copying receive, scatter-gather on
            // transmit (chains of up to 18 slots), one queue, one channel.
            let mut ops: Vec<XsOp, XS_TX_OPS> = Vec::new();
            for (k, val) in [("feature-rx-copy", "1"), ("feature-rx-flip", "0"), ("feature-sg", "1"), ("state", "2")] {
                let _ = ops.push(XsOp::Write(backend_key(info, k), value(val.as_bytes())));
            }
            v.state_written = Some(XenbusState::InitWait);
            XsRequest::Transaction { id: id(req::ANNOUNCE), ops }
        }
        need::WATCH => XsRequest::Watch {
            id: id(req::WATCH),
            path: frontend_key(info, "state"),
            token: token(slot, v.life),
            skip_initial: false,
        },
        need::READ_STATE => XsRequest::Read { id: id(req::READ_STATE), path: frontend_key(info, "state") },
        need::READ_KEYS => {
            let ops = FRONTEND_KEYS.iter().map(|k| XsOp::Read(frontend_key(info, k))).collect();
            XsRequest::Transaction { id: id(req::READ_KEYS), ops }
        }
        need::WRITE_STATE => {
            v.state_written = Some(v.state_out);
            XsRequest::Write {
                id: id(req::WRITE_STATE),
                path: backend_key(info, "state"),
                value: value(v.state_out.as_ascii()),
            }
        }
        need::CHECK_DIR => XsRequest::Read { id: id(req::CHECK_DIR), path: backend_key(info, "frontend-id") },
        need::REMOVE => XsRequest::Rm { id: id(req::REMOVE), path: backend_dir(info) },
        _ => XsRequest::Unwatch { id: id(req::UNWATCH), token: token(slot, v.life) },
    })
}

fn number(v: &[u8]) -> Option<u32> {
    let v = v.strip_suffix(b"\0").unwrap_or(v);
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u32, |n, d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// Checks the frontend's keys (values in [`FRONTEND_KEYS`] order).
pub fn parse_keys(reads: &[Option<XsValue>]) -> Result<Keys, BadKeys> {
    let get = |i: usize| reads.get(i).and_then(|v| v.as_deref());
    let num = |i: usize| get(i).and_then(number);
    if get(3).is_some() {
        return Err(BadKeys::Split);
    }
    if num(6).is_some_and(|n| n != 1) || (get(6).is_some() && num(6).is_none()) {
        return Err(BadKeys::MultiQueue);
    }
    let (Some(tx_ref), Some(rx_ref), Some(port)) = (num(0), num(1), num(2)) else { return Err(BadKeys::Missing) };
    if num(4) != Some(1) {
        return Err(BadKeys::NoRxCopy);
    }
    if num(5) != Some(1) {
        return Err(BadKeys::NoRxNotify);
    }
    Ok(Keys { tx_ref, rx_ref, port })
}

/// What a reply to one of a vif's requests means for it.
pub fn on_reply(v: &mut Vif, kind: u8, reply: &XsReply) -> Result<(), BadKeys> {
    let failed = matches!(reply, XsReply::Failed { .. });
    match kind {
        req::ANNOUNCE if !failed && v.phase == Phase::Announcing => {
            v.phase = Phase::InitWait;
            // The frontend may have been waiting already.
            v.xs |= need::READ_STATE;
        }
        req::WATCH => v.watching = !failed,
        req::READ_STATE => {
            let s = match reply {
                XsReply::Value { value, .. } => XenbusState::parse(value),
                _ => None,
            };
            let gone = matches!(reply, XsReply::Failed { error: moat_control::XsError::NotFound, .. });
            if s.is_some() || gone {
                v.frontend_state(s);
            }
        }
        req::READ_KEYS => {
            if v.phase != Phase::ReadingKeys {
                return Ok(());
            }
            let XsReply::Transaction { reads, .. } = reply else {
                // Could not read them now: try again when the state moves.
                v.phase = Phase::InitWait;
                return Ok(());
            };
            match parse_keys(reads) {
                Ok(k) => {
                    v.keys = k;
                    v.phase = Phase::Connecting;
                    v.want_bind = true;
                    v.want_map_tx = true;
                    v.want_map_rx = true;
                }
                Err(e) => {
                    v.teardown(CloseKind::Error);
                    return Err(e);
                }
            }
        }
        req::WRITE_STATE if v.phase == Phase::Publishing && !failed => {
            v.phase = Phase::Connected;
            v.tx_kick = true;
            v.rx_kick = true;
        }
        req::CHECK_DIR if v.phase == Phase::Removing => {
            if matches!(reply, XsReply::Value { .. }) {
                v.state_out = XenbusState::Closed;
                v.xs |= need::WRITE_STATE;
            }
            v.xs |= need::REMOVE | if v.watching { need::UNWATCH } else { 0 };
        }
        req::REMOVE => {}
        req::UNWATCH => v.watching = false,
        _ => {}
    }
    Ok(())
}

/// True once a removed vif said and undid everything.
pub fn finished(v: &Vif) -> bool {
    v.phase == Phase::Removing && v.xs == 0 && !v.watching
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> VifInfo {
        VifInfo { slot: 2, frontend_id: 7, devid: 0, mac: [0; 6], ipv4: [10, 137, 0, 7], ipv6: None, mtu: 1500 }
    }

    fn val(s: &str) -> Option<XsValue> {
        Some(Vec::from_slice(s.as_bytes()).unwrap())
    }

    #[test]
    fn keys_are_checked() {
        let good = [val("8"), val("9"), val("12"), None, val("1"), val("1"), None];
        assert_eq!(parse_keys(&good), Ok(Keys { tx_ref: 8, rx_ref: 9, port: 12 }));
        let mut k = good.clone();
        k[3] = val("13");
        assert_eq!(parse_keys(&k), Err(BadKeys::Split));
        let mut k = good.clone();
        k[6] = val("2");
        assert_eq!(parse_keys(&k), Err(BadKeys::MultiQueue));
        let mut k = good.clone();
        k[6] = val("1");
        assert!(parse_keys(&k).is_ok(), "one queue, said explicitly");
        let mut k = good.clone();
        k[0] = val("x");
        assert_eq!(parse_keys(&k), Err(BadKeys::Missing));
        let mut k = good.clone();
        k[1] = val("99999999999");
        assert_eq!(parse_keys(&k), Err(BadKeys::Missing), "overflow");
        let mut k = good.clone();
        k[4] = None;
        assert_eq!(parse_keys(&k), Err(BadKeys::NoRxCopy));
        let mut k = good.clone();
        k[5] = val("0");
        assert_eq!(parse_keys(&k), Err(BadKeys::NoRxNotify));
    }

    #[test]
    fn handshake_requests_in_order() {
        let mut v = Vif::free();
        v.start(info());
        let r = next_request(&mut v, 2).unwrap();
        let XsRequest::Transaction { id, ops } = &r else { panic!("{r:?}") };
        assert_eq!(split_id(*id), (2, 1, req::ANNOUNCE));
        assert_eq!(ops.len(), 4);
        assert!(matches!(&ops[3], XsOp::Write(p, v) if p == "backend/vif/7/0/state" && &v[..] == b"2"));
        let w = next_request(&mut v, 2).unwrap();
        assert!(matches!(&w, XsRequest::Watch { path, token, .. }
            if path == "/local/domain/7/device/vif/0/state" && *token == super::token(2, 1)));
        assert!(next_request(&mut v, 2).is_none());
        on_reply(&mut v, req::ANNOUNCE, &XsReply::Done { id: 0 }).unwrap();
        assert_eq!(v.phase, Phase::InitWait);
        on_reply(&mut v, req::READ_STATE, &XsReply::Value { id: 0, value: value(b"4") }).unwrap();
        assert_eq!(v.phase, Phase::ReadingKeys);
        assert_eq!(v.xs & need::READ_KEYS, need::READ_KEYS);
    }

    #[test]
    fn going_away_checks_the_directory_first() {
        let mut v = Vif::free();
        v.start(info());
        v.xs = 0;
        v.watching = true;
        v.down();
        assert_eq!(v.phase, Phase::Closing);
        v.released();
        assert_eq!((v.phase, v.xs), (Phase::Removing, need::CHECK_DIR));
        assert!(matches!(next_request(&mut v, 0), Some(XsRequest::Read { .. })));
        let gone = XsReply::Failed { id: 0, error: moat_control::XsError::NotFound };
        on_reply(&mut v, req::CHECK_DIR, &gone).unwrap();
        assert_eq!(v.xs, need::REMOVE | need::UNWATCH, "no state written into a vanished directory");
        let _ = next_request(&mut v, 0);
        let u = next_request(&mut v, 0).unwrap();
        assert!(matches!(u, XsRequest::Unwatch { .. }));
        on_reply(&mut v, req::UNWATCH, &XsReply::Done { id: 0 }).unwrap();
        assert!(finished(&v));
    }
}
