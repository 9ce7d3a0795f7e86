//! What every moat image shares.
//!
//! * [`layout`]: the system manifest a build lays out and an image obeys;
//!   [`plan`] (feature `std`) lays a system out and encodes it.
//! * [`log`]: the ring component log frames (defmt) wait in.
//! * [`paging`]: x86-64 page tables with per-range permissions.
//! * [`binder`]: binds a component's ports from the manifest over the arena.
//! * [`instance`]: components of any type behind one [`instance::Task`]
//!   object, each in pages of its own.
//! * [`sched`]: the scheduling loop that calls components and routes their
//!   notifications.
//! * [`selftest`]: a traffic component for in-image self-tests.
//! * [`harness`] (feature `std`): binds one component's ports to rings, pools
//!   and state that a host test creates, and drives the component through the
//!   real contract — the way every component is tested on the host.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]

pub mod binder;
pub mod instance;
pub mod layout;
pub mod log;
pub mod paging;
pub mod sched;
pub mod selftest;
pub mod system;

#[cfg(feature = "std")]
pub mod harness;
#[cfg(feature = "std")]
pub mod plan;
