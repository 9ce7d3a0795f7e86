//! The hosted image: a `system.toml`'s component graph on Linux, each
//! component in its own process, TAP devices in place of the Xen drivers.
//!
//! * [`plan`]: one memfd per ring and pool, two eventfds per ring, and for
//!   each process exactly the ports `system.toml` gives it; the Xen drivers
//!   (`netback`, `netfront`, `xenstore`) are *substituted* ([`plan::Role`]).
//! * [`supervisor`]: forks the processes, plays the ring ends no process
//!   owns, gathers status, fails closed when one stops.
//! * [`process`], [`worker`], [`binder`]: inside one process — map its
//!   regions, bind its ports, run its event loop.
//! * [`adapter`]: the TAP adapters that do the drivers' link-layer work.
//! * [`config`]: the hosted config (TAPs, addresses, substitutions).
//! * [`run`]: `moat run --hosted`; [`replay`]: `moat replay`.
//!
//! The design and its known gaps are in `docs/hosted.md`.

pub mod adapter;
pub mod binder;
pub mod config;
pub mod kinds;
pub mod plan;
pub mod process;
pub mod replay;
pub mod run;
pub mod supervisor;
pub mod sys;
pub mod tap;
pub mod worker;
