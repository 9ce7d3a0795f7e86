//! Conversations with the xenstore component, the only component that talks
//! to XenStore.
//!
//! * Any component that needs XenStore (netback, netfront) sends
//!   [`XsRequest`]s on its `to_xenstore` port and gets [`XsReply`]s back
//!   inside its own control message ([`NetbackCtl::Xs`], [`NetfrontCtl::Xs`]).
//!   The xenstore component checks every path against the prefixes
//!   `system.toml` grants that component, so netback can write under
//!   `backend/vif/` and nowhere else.
//! * The xenstore component announces client vifs to netback
//!   ([`NetbackCtl::VifUp`] / [`NetbackCtl::VifDown`]) and the uplink to
//!   netfront ([`NetfrontCtl::Uplink`]).
//!
//! Paths are XenStore paths: relative ones resolve under moat's own
//! `/local/domain/<domid>/`. Sizes are bounded so every message has a fixed
//! worst-case encoding.

// No heap to box the big variants into: every message is a bounded value
// decoded on the stack, and its size is known (tested below).
#![allow(clippy::large_enum_variant)]

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Longest path in a request (`/local/domain/65535/device/vif/4294967295/event-channel-tx` is 58).
pub const XS_PATH_MAX: usize = 96;
/// Longest value read or written.
pub const XS_VALUE_MAX: usize = 128;
/// Most operations in one transaction.
pub const XS_TX_OPS: usize = 8;
/// Most names in one directory reply (the rest are cut, `truncated` says so).
pub const XS_DIR_MAX: usize = 16;
/// Longest name in a directory reply (longer names are skipped, `truncated`).
pub const XS_NAME_MAX: usize = 32;

/// A XenStore path.
pub type XsPath = String<XS_PATH_MAX>;
/// A XenStore value (binary, usually ASCII).
pub type XsValue = Vec<u8, XS_VALUE_MAX>;

/// A component's XenStore request. `id` is the requester's own and comes
/// back in the reply; requests may complete out of order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XsRequest {
    /// Read a value.
    Read {
        /// Echoed in the reply.
        id: u32,
        /// What to read.
        path: XsPath,
    },
    /// Write a value (creating missing parents).
    Write {
        /// Echoed in the reply.
        id: u32,
        /// Where.
        path: XsPath,
        /// What.
        value: XsValue,
    },
    /// Create a node (and missing parents) with an empty value.
    Mkdir {
        /// Echoed in the reply.
        id: u32,
        /// The node.
        path: XsPath,
    },
    /// Remove a node and everything below it.
    Rm {
        /// Echoed in the reply.
        id: u32,
        /// The node.
        path: XsPath,
    },
    /// List a node's children.
    Directory {
        /// Echoed in the reply.
        id: u32,
        /// The node.
        path: XsPath,
    },
    /// Watch a subtree; events arrive as [`XsReply::Event`] with `token`.
    Watch {
        /// Echoed in the reply.
        id: u32,
        /// The subtree.
        path: XsPath,
        /// The requester's name for this watch (unique per requester).
        token: u32,
        /// Drop the event XenStore fires as soon as a watch is set up.
        skip_initial: bool,
    },
    /// Stop watching.
    Unwatch {
        /// Echoed in the reply.
        id: u32,
        /// As given to `Watch`.
        token: u32,
    },
    /// Run `ops` in one XenStore transaction: all writes happen or none, all
    /// reads see one consistent state. Retried (a bounded number of times)
    /// when XenStore reports a conflict.
    Transaction {
        /// Echoed in the reply.
        id: u32,
        /// In order.
        ops: Vec<XsOp, XS_TX_OPS>,
    },
}

/// One operation inside a [`XsRequest::Transaction`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XsOp {
    /// Read a value (a missing node reads as `None`, not as a failure).
    Read(XsPath),
    /// Write a value.
    Write(XsPath, XsValue),
    /// Create a node.
    Mkdir(XsPath),
    /// Remove a subtree.
    Rm(XsPath),
}

/// The xenstore component's answer to an [`XsRequest`], or a watch event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XsReply {
    /// A write, mkdir, rm, watch or unwatch succeeded.
    Done {
        /// The request's id.
        id: u32,
    },
    /// The value read.
    Value {
        /// The request's id.
        id: u32,
        /// The value.
        value: XsValue,
    },
    /// The children listed.
    Directory {
        /// The request's id.
        id: u32,
        /// Child names, in XenStore's order.
        names: Vec<String<XS_NAME_MAX>, XS_DIR_MAX>,
        /// Some names did not fit.
        truncated: bool,
    },
    /// The transaction committed; one entry per `Read` op, in order.
    Transaction {
        /// The request's id.
        id: u32,
        /// `None` where the node did not exist.
        reads: Vec<Option<XsValue>, XS_TX_OPS>,
    },
    /// The request failed.
    Failed {
        /// The request's id.
        id: u32,
        /// Why.
        error: XsError,
    },
    /// Something at or below a watched path changed (or may have: XenStore
    /// events can be spurious, and an event for the watched path itself may
    /// stand for changes the xenstore component could not pass on singly).
    Event {
        /// The watch's token.
        token: u32,
        /// The path that changed.
        path: XsPath,
    },
}

/// Why an [`XsRequest`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XsError {
    /// No such node (`ENOENT`).
    NotFound,
    /// XenStore's permissions refused it (`EACCES`/`EPERM`).
    AccessDenied,
    /// moat's policy refused it: the path is outside what `system.toml`
    /// grants this component.
    Forbidden,
    /// The path or value is malformed, or too big.
    Invalid,
    /// The transaction kept conflicting (`EAGAIN` after every retry).
    Conflict,
    /// Too many requests in flight; try again later.
    Busy,
    /// XenStore did not answer in time.
    Timeout,
    /// The connection to XenStore is down.
    Disconnected,
    /// The answer does not fit in a reply (value or directory too big).
    TooLarge,
    /// An unknown token, a duplicate token, or too many watches.
    BadWatch,
    /// Another XenStore error, by errno number.
    Store(u16),
}

/// A client vif as netback needs it.
///
/// Its backend directory is `backend/vif/<frontend_id>/<devid>` (relative to
/// moat's domain); its frontend directory is
/// `/local/domain/<frontend_id>/device/vif/<devid>` (the xenstore component
/// checked the backend's `frontend` key says exactly that).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vif {
    /// Client slot, as in [`crate::ClientEvent`].
    pub slot: u8,
    /// The client domain.
    pub frontend_id: u16,
    /// The device number (`handle`).
    pub devid: u32,
    /// The client's MAC (`mac`).
    pub mac: [u8; 6],
    /// The client's IPv4 address (first token of `ip`).
    pub ipv4: [u8; 4],
    /// The client's IPv6 address, if `ip` has one.
    pub ipv6: Option<[u8; 16]>,
    /// `mtu`, or 1500 if absent.
    pub mtu: u16,
}

/// What the xenstore component tells netback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetbackCtl {
    /// A client vif is configured and online: connect to it.
    VifUp(Vif),
    /// The vif is going away (offline, or its directory vanished): close it
    /// and, for a disconnect the toolstack asked for, finish the handshake.
    VifDown {
        /// Client slot.
        slot: u8,
        /// The client domain.
        frontend_id: u16,
        /// The device number.
        devid: u32,
    },
    /// An answer to one of netback's own [`XsRequest`]s, or a watch event.
    Xs(XsReply),
}

impl NetbackCtl {
    /// Message name for port declarations.
    pub const NAME: &'static str = "NetbackCtl";
}

/// The uplink device as netfront needs it (from moat's own
/// `device/vif/<devid>` and the backend's `ip`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    /// Device number.
    pub devid: u32,
    /// The backend domain (sys-net).
    pub backend_id: u16,
    /// The backend directory (absolute).
    pub backend: XsPath,
    /// Our MAC on the uplink.
    pub mac: [u8; 6],
    /// `mtu`, or 1500 if absent.
    pub mtu: u16,
    /// Our IPv4 address, if the backend's `ip` names one.
    pub ipv4: Option<[u8; 4]>,
    /// Our IPv6 address, if the backend's `ip` names one.
    pub ipv6: Option<[u8; 16]>,
}

/// What the xenstore component tells netfront.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetfrontCtl {
    /// The uplink device exists with these settings (sent again when they
    /// change).
    Uplink(Uplink),
    /// The uplink device directory vanished.
    UplinkGone {
        /// Device number.
        devid: u32,
    },
    /// An answer to one of netfront's own [`XsRequest`]s, or a watch event.
    Xs(XsReply),
}

impl NetfrontCtl {
    /// Message name for port declarations.
    pub const NAME: &'static str = "NetfrontCtl";
}

impl XsRequest {
    /// Message name for port declarations.
    pub const NAME: &'static str = "XsRequest";

    /// The request's id.
    pub fn id(&self) -> u32 {
        match self {
            XsRequest::Read { id, .. }
            | XsRequest::Write { id, .. }
            | XsRequest::Mkdir { id, .. }
            | XsRequest::Rm { id, .. }
            | XsRequest::Directory { id, .. }
            | XsRequest::Watch { id, .. }
            | XsRequest::Unwatch { id, .. }
            | XsRequest::Transaction { id, .. } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s<const N: usize>(x: &str) -> String<N> {
        String::try_from(x).unwrap()
    }

    #[test]
    fn round_trip_and_fit_a_frame() {
        let big_ops: Vec<XsOp, XS_TX_OPS> = (0..XS_TX_OPS)
            .map(|_| XsOp::Write(s(&"p".repeat(XS_PATH_MAX)), Vec::from_slice(&[0xff; XS_VALUE_MAX]).unwrap()))
            .collect();
        let req = XsRequest::Transaction { id: u32::MAX, ops: big_ops };
        let bytes = postcard::to_allocvec(&req).unwrap();
        assert!(bytes.len() < 2048, "worst-case transaction is {} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<XsRequest>(&bytes).unwrap(), req);

        let names = (0..XS_DIR_MAX).map(|_| s(&"n".repeat(XS_NAME_MAX))).collect();
        let rsp = NetbackCtl::Xs(XsReply::Directory { id: 1, names, truncated: true });
        let bytes = postcard::to_allocvec(&rsp).unwrap();
        assert!(bytes.len() < 1024, "worst-case directory is {} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<NetbackCtl>(&bytes).unwrap(), rsp);

        let up = NetfrontCtl::Uplink(Uplink {
            devid: 0,
            backend_id: 1,
            backend: s("/local/domain/1/backend/vif/2/0"),
            mac: [0, 0x16, 0x3e, 0, 0, 1],
            mtu: 1500,
            ipv4: Some([10, 138, 0, 5]),
            ipv6: None,
        });
        let bytes = postcard::to_allocvec(&up).unwrap();
        assert_eq!(postcard::from_bytes::<NetfrontCtl>(&bytes).unwrap(), up);
        let long = [0u8; XS_PATH_MAX + 1];
        let over = postcard::to_allocvec(&core::str::from_utf8(&long).unwrap()).unwrap();
        assert!(postcard::from_bytes::<XsPath>(&over).is_err(), "a longer path does not decode");
    }
}
