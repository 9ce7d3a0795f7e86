//! Control messages: the typed, variable-size traffic between components
//! that is not packets (clients coming and going, policy updates, connection
//! kills). Each travels postcard-encoded in a byte ring; the message type's
//! name is what `system.toml` declares for the ring.
//!
//! One module per conversation; every message type has a `NAME` constant
//! used for port declarations.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clients;
pub mod rules;
pub mod runtime;
pub mod uplink;
pub mod xenstore;

pub use clients::ClientEvent;
pub use rules::{NatToRules, RulesControl, RulesToNat};
pub use runtime::{RUNTIME_TEXT_MAX, RuntimeEvent, RuntimeText, ShutdownReason, runtime_text};
pub use uplink::UplinkEvent;
pub use xenstore::{NetbackCtl, NetfrontCtl, Uplink, Vif, XsError, XsOp, XsReply, XsRequest};
