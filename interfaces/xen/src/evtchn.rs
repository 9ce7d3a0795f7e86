//! Event channels (`event_channel.h`): the `event_channel_op` hypercall's
//! commands and argument structs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{DomId, EvtchnPort, layout};

/// `EVTCHNOP_*` commands of [`crate::hypercall::EVENT_CHANNEL_OP`].
pub mod op {
    /// `EVTCHNOP_bind_interdomain`.
    pub const BIND_INTERDOMAIN: u32 = 0;
    /// `EVTCHNOP_bind_virq`.
    pub const BIND_VIRQ: u32 = 1;
    /// `EVTCHNOP_close`.
    pub const CLOSE: u32 = 3;
    /// `EVTCHNOP_send`.
    pub const SEND: u32 = 4;
    /// `EVTCHNOP_status`.
    pub const STATUS: u32 = 5;
    /// `EVTCHNOP_alloc_unbound`.
    pub const ALLOC_UNBOUND: u32 = 6;
    /// `EVTCHNOP_unmask`.
    pub const UNMASK: u32 = 9;
}

/// `struct evtchn_alloc_unbound`: a port `remote_dom` may bind to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnAllocUnbound {
    /// In: [`crate::hypercall::DOMID_SELF`].
    pub dom: DomId,
    /// In: the domain that will bind.
    pub remote_dom: DomId,
    /// Out: the new local port.
    pub port: EvtchnPort,
}
layout!(EvtchnAllocUnbound, 8, dom @ 0, remote_dom @ 2, port @ 4);

/// `struct evtchn_bind_interdomain`: connect to a port another domain
/// allocated for us.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnBindInterdomain {
    /// In: the other domain.
    pub remote_dom: DomId,
    /// Padding (the C compiler's).
    pub _pad: u16,
    /// In: its port.
    pub remote_port: EvtchnPort,
    /// Out: our port.
    pub local_port: EvtchnPort,
}
layout!(EvtchnBindInterdomain, 12, remote_dom @ 0, remote_port @ 4, local_port @ 8);

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnBindVirq {
    /// In: a `VIRQ_*` number.
    pub virq: u32,
    /// In: the vCPU.
    pub vcpu: u32,
    /// Out: the port.
    pub port: EvtchnPort,
}
layout!(EvtchnBindVirq, 12, virq @ 0, vcpu @ 4, port @ 8);

/// `struct evtchn_close`, `struct evtchn_send` and `struct evtchn_unmask`
/// are all just a port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnPortArg {
    /// The local port.
    pub port: EvtchnPort,
}
layout!(EvtchnPortArg, 4, port @ 0);

/// `struct evtchn_close`.
pub type EvtchnClose = EvtchnPortArg;
/// `struct evtchn_send`.
pub type EvtchnSend = EvtchnPortArg;
/// `struct evtchn_unmask`.
pub type EvtchnUnmask = EvtchnPortArg;

/// `EVTCHNSTAT_*` values of [`EvtchnStatus::status`].
pub mod stat {
    /// `EVTCHNSTAT_closed`.
    pub const CLOSED: u32 = 0;
    /// `EVTCHNSTAT_unbound`.
    pub const UNBOUND: u32 = 1;
    /// `EVTCHNSTAT_interdomain`.
    pub const INTERDOMAIN: u32 = 2;
    /// `EVTCHNSTAT_virq`.
    pub const VIRQ: u32 = 4;
}

/// `struct evtchn_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnStatus {
    /// In: the domain ([`crate::hypercall::DOMID_SELF`]).
    pub dom: DomId,
    /// Padding (the C compiler's).
    pub _pad0: u16,
    /// In: the port.
    pub port: EvtchnPort,
    /// Out: an [`stat`] value.
    pub status: u32,
    /// Out: the vCPU it is bound to.
    pub vcpu: u32,
    /// Out: the union (`unbound.dom`; `interdomain.dom` at 0 and `.port` at 4;
    /// `pirq`; `virq`), as raw bytes.
    pub u: [u8; 8],
}
layout!(EvtchnStatus, 24, dom @ 0, port @ 4, status @ 8, vcpu @ 12, u @ 16);
