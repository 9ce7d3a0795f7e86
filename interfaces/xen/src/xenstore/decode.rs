//! A streaming decoder for the byte stream from (or to) the store.
//!
//! Messages arrive in pieces: the domain ring holds 1 KiB, a message may be
//! 4 KiB + 16, and the ring wraps anywhere. The decoder keeps one message's
//! worth of bytes ([`MAX_MESSAGE`]) and hands out exactly the space the
//! current message still needs ([`Decoder::space`]), so a reader copies from
//! the ring straight into it and never reads past a message boundary.
//!
//! The header is checked as soon as it is complete: an unknown type or a
//! length over [`XENSTORE_PAYLOAD_MAX`] is a [`StreamError`], after which the
//! stream is out of step for good and the decoder refuses all input (the
//! connection must be dropped).

use crate::xenstore::msg::{Frame, MAX_MESSAGE, header_of};
use crate::xs_wire::{XENSTORE_PAYLOAD_MAX, XSD_SOCKMSG_SIZE, XsdSockmsgType};

/// Why the stream cannot be decoded any further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// A header announced more than [`XENSTORE_PAYLOAD_MAX`] bytes.
    TooLong(u32),
    /// A header carried an undefined message type.
    BadType(u32),
    /// An earlier error; the stream is unusable.
    Poisoned,
}

/// Reassembles messages from a byte stream. About 4 KiB; no heap.
pub struct Decoder {
    buf: [u8; MAX_MESSAGE],
    have: usize,
    /// Total length of the current message once its header is in.
    want: Option<usize>,
    poisoned: bool,
}

impl core::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decoder")
            .field("have", &self.have)
            .field("want", &self.want)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// An empty decoder.
    pub const fn new() -> Self {
        Decoder { buf: [0; MAX_MESSAGE], have: 0, want: None, poisoned: false }
    }

    /// Where the next bytes of the stream go: never more than the current
    /// message still needs. Empty while a complete message waits (take it
    /// with [`message`](Self::message), then [`next`](Self::next)) or after
    /// an error.
    pub fn space(&mut self) -> &mut [u8] {
        if self.poisoned {
            return &mut [];
        }
        let end = self.want.unwrap_or(XSD_SOCKMSG_SIZE);
        &mut self.buf[self.have..end]
    }

    /// Records that `n` bytes were written into [`space`](Self::space).
    /// Returns `Ok(true)` once a whole message is in.
    pub fn filled(&mut self, n: usize) -> Result<bool, StreamError> {
        if self.poisoned {
            return Err(StreamError::Poisoned);
        }
        let end = self.want.unwrap_or(XSD_SOCKMSG_SIZE);
        // A caller can only have written what `space` offered.
        self.have = (self.have + n).min(end);
        if self.want.is_none() && self.have == XSD_SOCKMSG_SIZE {
            let mut h = [0u8; XSD_SOCKMSG_SIZE];
            h.copy_from_slice(&self.buf[..XSD_SOCKMSG_SIZE]);
            let header = header_of(&h);
            if XsdSockmsgType::from_u32(header.r#type).is_none() {
                self.poisoned = true;
                return Err(StreamError::BadType(header.r#type));
            }
            if header.len as usize > XENSTORE_PAYLOAD_MAX {
                self.poisoned = true;
                return Err(StreamError::TooLong(header.len));
            }
            self.want = Some(XSD_SOCKMSG_SIZE + header.len as usize);
        }
        Ok(self.is_complete())
    }

    /// Copies from `input` until a message is complete or `input` runs out;
    /// returns how many bytes were taken.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<usize, StreamError> {
        let mut taken = 0;
        loop {
            let space = self.space();
            if space.is_empty() {
                return if self.poisoned { Err(StreamError::Poisoned) } else { Ok(taken) };
            }
            let n = space.len().min(input.len());
            space[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            taken += n;
            if self.filled(n)? || input.is_empty() {
                return Ok(taken);
            }
        }
    }

    /// True when a whole message is waiting.
    pub fn is_complete(&self) -> bool {
        self.want == Some(self.have)
    }

    /// The complete message, if one is waiting.
    pub fn message(&self) -> Option<Frame<'_>> {
        if !self.is_complete() {
            return None;
        }
        Frame::parse(&self.buf[..self.have]).ok()
    }

    /// Drops the waiting message to make room for the next.
    pub fn next(&mut self) {
        if self.is_complete() {
            self.have = 0;
            self.want = None;
        }
    }

    /// True if no part of a message is buffered.
    pub fn is_idle(&self) -> bool {
        self.have == 0
    }

    /// True after a stream error.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Forgets everything, errors included (after a reconnect).
    pub fn reset(&mut self) {
        self.have = 0;
        self.want = None;
        self.poisoned = false;
    }
}
