//! A byte ring of length-framed control messages.
//!
//! Control traffic (client add/remove, policy updates, status) varies in size,
//! so it travels as frames in a ring of bytes: a little-endian `u32` length,
//! then the payload, usually `postcard`-encoded. A frame is written whole or
//! not at all; the reader takes it only once all of it has been published.
//!
//! The length is the one field a hostile writer controls that could make the
//! reader wait forever; a length that could never fit in the ring is a fault.

use crate::spsc::{Consumer, Producer, RingError};
use crate::{Notify, Region};

const LEN_BYTES: u32 = 4;

/// Why a frame did not go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The underlying ring refused (full, faulty peer, bad layout).
    Ring(RingError),
    /// Sending: the frame can never fit in this ring. Receiving: the frame is
    /// larger than the caller's buffer; it was skipped.
    TooBig,
    /// The message could not be encoded into the scratch buffer.
    Encode,
    /// The frame's payload did not decode as the expected message.
    Decode,
}

impl From<RingError> for FrameError {
    fn from(e: RingError) -> Self {
        FrameError::Ring(e)
    }
}

/// The writing end of a control byte ring.
pub struct ByteProducer {
    ring: Producer<u8>,
}

impl ByteProducer {
    /// Attaches the writing end.
    ///
    /// # Safety
    ///
    /// As [`Producer::attach`].
    pub unsafe fn attach(region: &Region, capacity: u32) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        Ok(ByteProducer { ring: unsafe { Producer::attach(region, capacity)? } })
    }

    /// Largest payload this ring can ever carry.
    pub fn max_frame(&self) -> usize {
        (self.ring.capacity() - LEN_BYTES) as usize
    }

    /// Writes one frame, whole or not at all ([`RingError::Full`] if it does
    /// not fit now).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max_frame() {
            return Err(FrameError::TooBig);
        }
        let need = LEN_BYTES + payload.len() as u32;
        if self.ring.free()? < need {
            return Err(FrameError::Ring(RingError::Full));
        }
        for b in (payload.len() as u32).to_le_bytes().iter().chain(payload) {
            self.ring.push(b)?;
        }
        Ok(())
    }

    /// Encodes `msg` with postcard into `scratch`, then sends it.
    #[cfg(feature = "postcard")]
    pub fn send_msg<M: serde::Serialize>(&mut self, msg: &M, scratch: &mut [u8]) -> Result<(), FrameError> {
        let bytes = postcard::to_slice(msg, scratch).map_err(|_| FrameError::Encode)?;
        self.send(bytes)
    }

    /// Makes sent frames visible; says whether the reader must be woken.
    pub fn publish(&mut self) -> Notify {
        self.ring.publish()
    }

    /// Asks to be woken when the reader frees space; true if some is free now.
    pub fn arm_space(&mut self) -> Result<bool, RingError> {
        self.ring.arm_space()
    }

    /// True once the reader broke the protocol.
    pub fn is_faulty(&self) -> bool {
        self.ring.is_faulty()
    }
}

/// The reading end of a control byte ring.
pub struct ByteConsumer {
    ring: Consumer<u8>,
}

impl ByteConsumer {
    /// Attaches the reading end.
    ///
    /// # Safety
    ///
    /// As [`Consumer::attach`].
    pub unsafe fn attach(region: &Region, capacity: u32) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        Ok(ByteConsumer { ring: unsafe { Consumer::attach(region, capacity)? } })
    }

    /// Copies the next complete frame into `buf` and returns its payload.
    ///
    /// `Ok(None)` if no complete frame is waiting. A frame longer than `buf`
    /// is consumed and reported as [`FrameError::TooBig`]; a length that could
    /// never fit in the ring marks the peer faulty.
    pub fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, FrameError> {
        let mut len_bytes = [0u8; 4];
        for (i, b) in len_bytes.iter_mut().enumerate() {
            match self.ring.peek(i as u32)? {
                Some(v) => *b = v,
                None => return Ok(None),
            }
        }
        let len = u32::from_le_bytes(len_bytes);
        if len > self.ring.capacity() - LEN_BYTES {
            // Never completable: the writer is broken. Poison the ring by
            // making further reads fail.
            return Err(FrameError::Ring(self.ring.poison()));
        }
        if self.ring.available()? < LEN_BYTES + len {
            return Ok(None);
        }
        self.ring.skip(LEN_BYTES)?;
        if len as usize > buf.len() {
            self.ring.skip(len)?;
            return Err(FrameError::TooBig);
        }
        for b in buf[..len as usize].iter_mut() {
            *b = self.ring.pop()?.ok_or(FrameError::Ring(RingError::Faulty))?;
        }
        Ok(Some(&buf[..len as usize]))
    }

    /// Receives the next frame and decodes it with postcard.
    #[cfg(feature = "postcard")]
    pub fn recv_msg<'b, M: serde::Deserialize<'b>>(&mut self, buf: &'b mut [u8]) -> Result<Option<M>, FrameError> {
        match self.recv(buf)? {
            Some(bytes) => postcard::from_bytes(bytes).map(Some).map_err(|_| FrameError::Decode),
            None => Ok(None),
        }
    }

    /// Hands consumed bytes back; says whether the writer must be woken.
    pub fn release(&mut self) -> Notify {
        self.ring.release()
    }

    /// Arms the wakeup before sleeping; true if bytes are waiting.
    pub fn arm(&mut self) -> Result<bool, RingError> {
        self.ring.arm()
    }

    /// True once the writer broke the protocol.
    pub fn is_faulty(&self) -> bool {
        self.ring.is_faulty()
    }
}
