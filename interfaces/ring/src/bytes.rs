//! A byte ring of length-framed control messages.
//!
//! Control traffic (client add/remove, policy updates, status) varies in size,
//! so it travels as frames in a ring of bytes: a little-endian `u32` length,
//! then the payload, usually `postcard`-encoded. A frame is written whole or
//! not at all; the reader takes it only once all of it has been published.
//!
//! The length is the one field a hostile writer controls that could make the
//! reader wait forever; a length that could never fit in the ring is a fault.

use crate::Notify;
#[cfg(not(loom))]
use crate::Region;
use crate::spsc::{Consumer, Producer, RingError};

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
    #[cfg(not(loom))]
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
    #[cfg(not(loom))]
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::RingLayout;
    use crate::spsc::scribble_indices;

    fn pair(capacity: u32) -> (ByteProducer, ByteConsumer, Region) {
        let layout = RingLayout::of::<u8>(capacity).unwrap();
        let region = Region::alloc_zeroed(layout.size());
        layout.init(&region).unwrap();
        // SAFETY: one writer, one reader.
        let tx = unsafe { ByteProducer::attach(&region, capacity) }.unwrap();
        // SAFETY: as above.
        let rx = unsafe { ByteConsumer::attach(&region, capacity) }.unwrap();
        (tx, rx, region)
    }

    #[test]
    fn frames_round_trip_across_the_wrap() {
        let (mut tx, mut rx, _r) = pair(32);
        let mut buf = [0u8; 32];
        for i in 0..100u8 {
            let payload = [i; 11];
            tx.send(&payload).unwrap();
            assert!(rx.recv(&mut buf).unwrap().is_none(), "unpublished frame is invisible");
            let _ = tx.publish();
            assert_eq!(rx.recv(&mut buf).unwrap(), Some(&payload[..]));
            let _ = rx.release();
        }
    }

    #[test]
    fn whole_frames_or_nothing() {
        let (mut tx, mut rx, _r) = pair(16);
        tx.send(&[1; 8]).unwrap();
        assert_eq!(tx.send(&[2; 8]), Err(FrameError::Ring(RingError::Full)), "needs 12 bytes, 4 free");
        assert_eq!(tx.send(&[0; 13]), Err(FrameError::TooBig), "can never fit");
        tx.send(&[]).unwrap();
        let _ = tx.publish();
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), Some(&[1u8; 8][..]));
        assert_eq!(rx.recv(&mut buf).unwrap(), Some(&[][..]));
        assert_eq!(rx.recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn frame_larger_than_the_readers_buffer_is_skipped() {
        let (mut tx, mut rx, _r) = pair(64);
        tx.send(&[7; 20]).unwrap();
        tx.send(&[8; 3]).unwrap();
        let _ = tx.publish();
        let mut small = [0u8; 10];
        assert_eq!(rx.recv(&mut small), Err(FrameError::TooBig));
        assert_eq!(rx.recv(&mut small).unwrap(), Some(&[8u8; 3][..]));
    }

    #[test]
    fn impossible_length_poisons_the_ring() {
        let (_tx, mut rx, region) = pair(16);
        region.write_volatile(128, &1000u32.to_le_bytes()).unwrap();
        scribble_indices(&region, Some(4), None).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf), Err(FrameError::Ring(RingError::Faulty)));
        assert!(rx.is_faulty());
        assert_eq!(rx.recv(&mut buf), Err(FrameError::Ring(RingError::Faulty)), "sticky");
    }

    #[test]
    fn postcard_messages() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum Msg {
            Hello { slot: u8, name: [u8; 4] },
            Bye(u32),
        }
        let (mut tx, mut rx, _r) = pair(64);
        let mut scratch = [0u8; 32];
        tx.send_msg(&Msg::Hello { slot: 3, name: *b"work" }, &mut scratch).unwrap();
        tx.send_msg(&Msg::Bye(77), &mut scratch).unwrap();
        tx.send(&[9, 9]).unwrap();
        let _ = tx.publish();
        let mut buf = [0u8; 32];
        assert_eq!(rx.recv_msg::<Msg>(&mut buf), Ok(Some(Msg::Hello { slot: 3, name: *b"work" })));
        assert_eq!(rx.recv_msg::<Msg>(&mut buf), Ok(Some(Msg::Bye(77))));
        assert_eq!(rx.recv_msg::<Msg>(&mut buf), Err(FrameError::Decode));
        assert_eq!(rx.recv_msg::<Msg>(&mut buf), Ok(None));
        assert_eq!(tx.send_msg(&Msg::Bye(1), &mut [0u8; 1]), Err(FrameError::Encode));
    }
}
