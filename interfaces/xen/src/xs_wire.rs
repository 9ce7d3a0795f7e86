//! The XenStore wire format (`io/xs_wire.h`): message header, message types,
//! error names, and the domain ring page shared with xenstored.
//!
//! The protocol built on these lives in the `xenstore` modules of this crate.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout;

/// `struct xsd_sockmsg`: every message starts with this, little-endian on x86.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XsdSockmsg {
    /// An [`XsdSockmsgType`] value.
    pub r#type: u32,
    /// Chosen by the client, echoed in the reply (0 in watch events).
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload bytes after the header.
    pub len: u32,
}
layout!(XsdSockmsg, 16, r#type @ 0, req_id @ 4, tx_id @ 8, len @ 12);

/// Bytes in a message header.
pub const XSD_SOCKMSG_SIZE: usize = core::mem::size_of::<XsdSockmsg>();

/// `enum xsd_sockmsg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XsdSockmsgType {
    /// `XS_CONTROL` (was `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`.
    WatchEvent = 15,
    /// `XS_ERROR`.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (20, `XS_RESTRICT`, was removed).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
}

/// `XS_TYPE_COUNT`.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`.
pub const XS_INVALID: u32 = 0xffff;

impl XsdSockmsgType {
    /// Every defined type.
    pub const ALL: [XsdSockmsgType; 22] = {
        use XsdSockmsgType::*;
        [
            Control,
            Directory,
            Read,
            GetPerms,
            Watch,
            Unwatch,
            TransactionStart,
            TransactionEnd,
            Introduce,
            Release,
            GetDomainPath,
            Write,
            Mkdir,
            Rm,
            SetPerms,
            WatchEvent,
            Error,
            IsDomainIntroduced,
            Resume,
            SetTarget,
            ResetWatches,
            DirectoryPart,
        ]
    };

    /// The type with this number, if defined.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| *t as u32 == n)
    }
}

/// The errors xenstored reports, by the name it sends in an `XS_ERROR`
/// payload (`xsd_errors[]`, in that order), and `EQUOTA`, which is not in
/// that table but which oxenstored sends when a domain reaches one of its
/// quotas (watches, open transactions, nodes, queued requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsdError {
    /// `EINVAL`.
    Einval,
    /// `EACCES`.
    Eacces,
    /// `EEXIST`.
    Eexist,
    /// `EISDIR`.
    Eisdir,
    /// `ENOENT`.
    Enoent,
    /// `ENOMEM`.
    Enomem,
    /// `ENOSPC`.
    Enospc,
    /// `EIO`.
    Eio,
    /// `ENOTEMPTY`.
    Enotempty,
    /// `ENOSYS`.
    Enosys,
    /// `EROFS`.
    Erofs,
    /// `EBUSY`.
    Ebusy,
    /// `EAGAIN`: the transaction conflicted; redo it.
    Eagain,
    /// `EISCONN`.
    Eisconn,
    /// `E2BIG`.
    E2big,
    /// `EPERM`.
    Eperm,
    /// `EQUOTA`: oxenstored's own (not in `xsd_errors[]`): a per-domain
    /// quota is reached. Seen from the real daemon in the testbed
    /// (`tests/xs-compare`).
    Equota,
}

impl XsdError {
    /// Every error, in `xsd_errors[]` order.
    pub const ALL: [XsdError; 16] = {
        use XsdError::*;
        [
            Einval, Eacces, Eexist, Eisdir, Enoent, Enomem, Enospc, Eio, Enotempty, Enosys, Erofs, Ebusy, Eagain,
            Eisconn, E2big, Eperm,
        ]
    };

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        use XsdError::*;
        match self {
            Einval => "EINVAL",
            Eacces => "EACCES",
            Eexist => "EEXIST",
            Eisdir => "EISDIR",
            Enoent => "ENOENT",
            Enomem => "ENOMEM",
            Enospc => "ENOSPC",
            Eio => "EIO",
            Enotempty => "ENOTEMPTY",
            Enosys => "ENOSYS",
            Erofs => "EROFS",
            Ebusy => "EBUSY",
            Eagain => "EAGAIN",
            Eisconn => "EISCONN",
            E2big => "E2BIG",
            Eperm => "EPERM",
            Equota => "EQUOTA",
        }
    }

    /// The error with this name (exact match, no NUL): one of
    /// [`ALL`](Self::ALL), or `EQUOTA`.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.iter().copied().chain([XsdError::Equota]).find(|e| e.name().as_bytes() == name)
    }

    /// The Linux errno number (what `xsd_errors[].errnum` holds on x86 Linux).
    pub const fn errno(self) -> i32 {
        use XsdError::*;
        match self {
            Einval => 22,
            Eacces => 13,
            Eexist => 17,
            Eisdir => 21,
            Enoent => 2,
            Enomem => 12,
            Enospc => 28,
            Eio => 5,
            Enotempty => 39,
            Enosys => 38,
            Erofs => 30,
            Ebusy => 16,
            Eagain => 11,
            Eisconn => 106,
            E2big => 7,
            Eperm => 1,
            // EDQUOT, the nearest errno.
            Equota => 122,
        }
    }
}

/// `XS_WRITE_NONE` / `CREATE` / `CREATE|EXCL`: historic write flags.
pub const XS_WRITE_NONE: &str = "NONE";

/// `XENSTORE_RING_SIZE`: bytes in each direction of the domain ring.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// `XENSTORE_PAYLOAD_MAX`: payload bytes in one message; more kills the
/// connection.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;
/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `struct xenstore_domain_interface`: the page a domain shares with
/// xenstored. `req` carries requests to xenstored, `rsp` replies and watch
/// events back; both are byte streams with free-running indices.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Written by xenstored.
    pub req_cons: u32,
    /// Written by the guest.
    pub req_prod: u32,
    /// Written by the guest.
    pub rsp_cons: u32,
    /// Written by xenstored.
    pub rsp_prod: u32,
    /// Feature bits xenstored offers.
    pub server_features: u32,
    /// [`XENSTORE_CONNECTED`] or [`XENSTORE_RECONNECT`].
    pub connection: u32,
    /// An `XENSTORE_ERROR_*` value.
    pub error: u32,
}
layout!(XenstoreDomainInterface, 2076, req @ 0, rsp @ 1024, req_cons @ 2048, req_prod @ 2052, rsp_cons @ 2056,
    rsp_prod @ 2060, server_features @ 2064, connection @ 2068, error @ 2072);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_errors_round_trip() {
        for t in XsdSockmsgType::ALL {
            assert_eq!(XsdSockmsgType::from_u32(t as u32), Some(t));
        }
        assert_eq!(XsdSockmsgType::from_u32(20), None, "XS_RESTRICT was removed");
        assert_eq!(XsdSockmsgType::from_u32(XS_TYPE_COUNT), None);
        for e in XsdError::ALL {
            assert_eq!(XsdError::from_name(e.name().as_bytes()), Some(e));
        }
        assert_eq!(XsdError::from_name(b"EQUOTA"), Some(XsdError::Equota));
        assert!(!XsdError::ALL.contains(&XsdError::Equota), "not in xsd_errors[]");
        assert_eq!(XsdError::from_name(b"EAGAIN\0"), None);
        assert_eq!(XsdError::from_name(b"eagain"), None);
    }
}
