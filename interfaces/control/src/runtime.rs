//! What components tell the runtime itself (not another component).

use serde::{Deserialize, Serialize};

/// A request for the runtime, from the component that learned of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeEvent {
    /// The toolstack asked the VM to stop (XenStore `control/shutdown`,
    /// already acknowledged by the xenstore component). The runtime shuts
    /// down with this reason (`SCHEDOP_shutdown` in the PVH image).
    Shutdown(ShutdownReason),
}

/// Why the toolstack wants the VM down (the `control/shutdown` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShutdownReason {
    /// `poweroff` (and `halt`).
    Poweroff,
    /// `reboot`.
    Reboot,
    /// `suspend` (moat cannot suspend; the runtime decides what to do).
    Suspend,
    /// `crash`: stop as if crashed.
    Crash,
}

impl RuntimeEvent {
    /// Message name for port declarations.
    pub const NAME: &'static str = "RuntimeEvent";
}

impl ShutdownReason {
    /// The reason a `control/shutdown` value names, if any.
    pub fn parse(value: &[u8]) -> Option<ShutdownReason> {
        Some(match value {
            b"poweroff" | b"halt" => ShutdownReason::Poweroff,
            b"reboot" => ShutdownReason::Reboot,
            b"suspend" => ShutdownReason::Suspend,
            b"crash" => ShutdownReason::Crash,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toolstack_values() {
        assert_eq!(ShutdownReason::parse(b"poweroff"), Some(ShutdownReason::Poweroff));
        assert_eq!(ShutdownReason::parse(b"halt"), Some(ShutdownReason::Poweroff));
        assert_eq!(ShutdownReason::parse(b"reboot"), Some(ShutdownReason::Reboot));
        assert_eq!(ShutdownReason::parse(b""), None);
        assert_eq!(ShutdownReason::parse(b"poweroff\0"), None);
        let e = RuntimeEvent::Shutdown(ShutdownReason::Crash);
        assert_eq!(postcard::from_bytes::<RuntimeEvent>(&postcard::to_allocvec(&e).unwrap()).unwrap(), e);
    }
}
