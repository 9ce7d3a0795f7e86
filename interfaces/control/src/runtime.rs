//! What components tell the runtime itself (not another component).

use heapless::String;
use serde::{Deserialize, Serialize};

/// Longest domain name or probe value carried (XenStore allows more; a
/// longer one is cut, on a character boundary).
pub const RUNTIME_TEXT_MAX: usize = 64;

/// Text in a [`RuntimeEvent`].
pub type RuntimeText = String<RUNTIME_TEXT_MAX>;

/// News for the runtime, from the component that learned of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeEvent {
    /// The toolstack asked the VM to stop (XenStore `control/shutdown`,
    /// already acknowledged by the xenstore component). The runtime shuts
    /// down with this reason (`SCHEDOP_shutdown` in the PVH image).
    Shutdown(ShutdownReason),
    /// Start-up with XenStore is done: our identity is known, the status key
    /// is written and the watches are in place. Sent once; the runtime says
    /// so on its console (the real-Xen tests wait for that line).
    Ready {
        /// Our domain id.
        domid: u16,
        /// Our domain's name (empty if it could not be read).
        name: RuntimeText,
    },
    /// The probe key (`probe_key` in the xenstore configuration) changed and
    /// now holds this value: someone in dom0 asks whether moat is alive and
    /// sees its watches fire. The runtime logs the value.
    Probe(RuntimeText),
}

/// `bytes` as [`RuntimeText`], cut to what fits; `None` if not UTF-8.
pub fn runtime_text(bytes: &[u8]) -> Option<RuntimeText> {
    let text = core::str::from_utf8(bytes).ok()?;
    let mut out = RuntimeText::new();
    for ch in text.chars() {
        if out.push(ch).is_err() {
            break;
        }
    }
    Some(out)
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

    #[test]
    fn texts_are_cut_on_character_boundaries() {
        let long = "é".repeat(40); // 80 bytes
        let t = runtime_text(long.as_bytes()).unwrap();
        assert_eq!(t.as_str(), "é".repeat(32));
        assert_eq!(runtime_text(b"\xff"), None);
        let e = RuntimeEvent::Ready { domid: 7, name: runtime_text(b"moat").unwrap() };
        assert_eq!(postcard::from_bytes::<RuntimeEvent>(&postcard::to_allocvec(&e).unwrap()).unwrap(), e);
    }
}
