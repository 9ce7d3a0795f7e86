//! The Xen ABI moat needs, written from Xen's public headers (Xen 4.17,
//! `/usr/include/xen` from `libxen-dev`), x86_64 only.
//!
//! Every structure here is `#[repr(C)]` plain data (`zerocopy`), with its
//! size and field offsets asserted at compile time, and checked again against
//! the C headers by `tests/abi.rs`, which compiles a small C program with gcc.
//! Names follow the C names (in Rust case) so a reviewer can hold the two side
//! by side.
//!
//! | module | header |
//! |---|---|
//! | [`hypercall`] | `xen.h`, `sched.h`, `memory.h`, `hvm/hvm_op.h`, `hvm/params.h`, `arch-x86/cpuid.h`, `elfnote.h` |
//! | [`start_info`] | `arch-x86/hvm/start_info.h` |
//! | [`shared_info`] | `xen.h`, `arch-x86/xen*.h` |
//! | [`grant`] | `grant_table.h` |
//! | [`evtchn`] | `event_channel.h` |
//! | [`ring`] | `io/ring.h` |
//! | [`netif`] | `io/netif.h` |
//! | [`xenbus`] | `io/xenbus.h` |
//! | [`console`] | `io/console.h` |
//! | [`xs_wire`] | `io/xs_wire.h` |
//!
//! [`sring`] is both ends of an `io/ring.h` ring over a shared page, and
//! [`ops`] is how components without hypercalls ask the runtime for grant
//! copies, grant mappings, grants and event channels.
//!
//! [`xenstore`] builds the XenStore protocol on `xs_wire`: paths,
//! permissions, every message, a streaming decoder, and the domain ring page
//! as a [`moat_ring::Device`].
//!
//! These types describe memory Xen or another domain may write at any time:
//! they give layouts and offsets, not permission to hold references into
//! shared pages. Code that touches a shared page copies in and out with
//! volatile or atomic accesses.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod console;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod netif;
pub mod ops;
pub mod ring;
pub mod shared_info;
pub mod sring;
pub mod start_info;
pub mod xenbus;
pub mod xenstore;
pub mod xs_wire;

/// A domain id (`domid_t`).
pub type DomId = u16;
/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// A grant mapping handle (`grant_handle_t`).
pub type GrantHandle = u32;
/// An event channel port (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// Bytes in a page on x86 (`XEN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;

/// Asserts a type's size and its fields' offsets at compile time.
macro_rules! layout {
    ($t:ty, $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$t>() == $size);
            $(assert!(core::mem::offset_of!($t, $field) == $off);)*
        };
    };
}
pub(crate) use layout;
