//! Message types rings carry.
//!
//! A *packet* (plain) message has a fixed size and crosses a typed ring slot
//! by slot; everything else is a *control* message, postcard-encoded into a
//! byte ring whose capacity counts bytes. Only plain types need to be known
//! here (for their size); control message names are checked only for
//! agreement between the two ends, since planned components name messages
//! whose types do not exist yet.

use moat_component::{Message, PacketDesc};

/// Size of a plain message type, or `None` for a control message.
pub fn plain_size(name: &str) -> Option<u32> {
    fn of<T: Message>(name: &str) -> Option<u32> {
        (name == T::NAME).then_some(size_of::<T>() as u32)
    }
    of::<PacketDesc>(name).or_else(|| of::<u64>(name))
}

/// Smallest control ring, in bytes: room for a length word and a typical
/// control message with margin.
pub const MIN_CONTROL_RING: u32 = 64;

/// Largest capacity of any ring (slots or bytes).
pub const MAX_RING: u32 = 65536;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_descriptors_are_plain_and_control_messages_are_not() {
        assert_eq!(plain_size("PacketDesc"), Some(16));
        assert_eq!(plain_size("u64"), Some(8));
        assert_eq!(plain_size("ClientEvent"), None);
    }
}
