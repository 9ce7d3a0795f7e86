//! The connection to XenStore: the domain ring, the decoder for what comes
//! back, one outgoing message at a time, and the reasons to give up on the
//! store.
//!
//! Requests we send are small (our paths and values are bounded), so one
//! [`OUT_CAP`]-byte buffer holds the message being written; it drains into
//! the 1 KiB ring as space frees up. Replies and events can be up to 4 KiB,
//! so the decoder keeps a whole one.

use moat_component::Channel;
use moat_xen::xenstore::{Decoder, Frame, Request, StreamError, XsRing};
use moat_xen::xs_wire::XsdSockmsgType;

use crate::jobs::VALUE_CAP;
use crate::policy::CANON_CAP;

/// Room for the largest request this component sends.
pub const OUT_CAP: usize = 16 + CANON_CAP + 1 + VALUE_CAP + 32;

/// Why the store was given up on (the connection stays down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// The store's ring indices broke the protocol.
    RingIndices,
    /// A message over the payload limit or of an unknown type.
    Stream(StreamError),
    /// A reply whose payload does not match its type.
    MalformedReply,
    /// A reply to a request that was never sent (or has its type or
    /// transaction id wrong).
    UnexpectedReply,
    /// The store set the page's `error` field.
    StoreError(u32),
    /// Too many requests went unanswered.
    Unresponsive,
}

/// The XenStore connection.
pub struct Conn {
    ring: XsRing,
    /// The event channel to xenstored.
    pub channel: Channel,
    decoder: Decoder,
    out: [u8; OUT_CAP],
    out_len: usize,
    out_sent: usize,
    next_req: u32,
    /// Set once the store broke the protocol.
    pub broken: Option<Broken>,
    /// Bytes moved either way since the last [`Conn::take_moved`].
    moved: bool,
}

impl Conn {
    /// A connection over `ring`, signalling on `channel`.
    pub fn new(ring: XsRing, channel: Channel) -> Self {
        let broken = ring.is_faulty().then_some(Broken::RingIndices);
        Conn {
            ring,
            channel,
            decoder: Decoder::new(),
            out: [0; OUT_CAP],
            out_len: 0,
            out_sent: 0,
            next_req: 1,
            broken,
            moved: false,
        }
    }

    /// True if the connection is up and no message is half-written.
    pub fn can_send(&self) -> bool {
        self.broken.is_none() && self.out_sent == self.out_len
    }

    /// Encodes `req` and starts writing it; returns its request id.
    pub fn send(&mut self, req: &Request<'_>, tx_id: u32) -> Option<u32> {
        if !self.can_send() {
            return None;
        }
        let id = self.next_req;
        // Never 0: watch events carry request id 0.
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let n = req.encode(id, tx_id, &mut self.out).ok()?;
        self.out_len = n;
        self.out_sent = 0;
        self.flush();
        Some(id)
    }

    /// Writes what fits of the message being sent.
    pub fn flush(&mut self) {
        if self.broken.is_some() || self.out_sent == self.out_len {
            return;
        }
        match self.ring.write(&self.out[self.out_sent..self.out_len]) {
            Ok(n) => {
                self.out_sent += n;
                self.moved |= n > 0;
            }
            Err(_) => self.broken = Some(Broken::RingIndices),
        }
    }

    /// Reads from the ring until a whole message is in; `None` if the ring
    /// ran dry first (or the connection is broken).
    pub fn receive(&mut self) -> Option<Frame<'_>> {
        if self.broken.is_some() {
            return None;
        }
        let error = self.ring.server_error();
        if error != 0 {
            self.broken = Some(Broken::StoreError(error));
            return None;
        }
        if !self.decoder.is_complete() {
            // Each read is bounded by what the current message still needs,
            // so this loop ends within two reads (header, payload) per
            // message plus one per ring wrap.
            loop {
                let n = match self.ring.read(self.decoder.space()) {
                    Ok(n) => n,
                    Err(_) => {
                        self.broken = Some(Broken::RingIndices);
                        return None;
                    }
                };
                if n == 0 {
                    return None;
                }
                self.moved = true;
                match self.decoder.filled(n) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        self.broken = Some(Broken::Stream(e));
                        return None;
                    }
                }
            }
        }
        self.decoder.message()
    }

    /// Done with the message [`receive`](Self::receive) returned.
    pub fn next(&mut self) {
        self.decoder.next();
    }

    /// True if bytes are waiting in the ring (or a message in the decoder).
    pub fn pending(&mut self) -> bool {
        self.broken.is_none() && (self.decoder.is_complete() || self.ring.readable().is_ok_and(|n| n > 0))
    }

    /// True if a message is still being written.
    pub fn writing(&self) -> bool {
        self.broken.is_none() && self.out_sent < self.out_len
    }

    /// Whether bytes moved since the last call (xenstored must then be
    /// signalled: it keeps no event indices).
    pub fn take_moved(&mut self) -> bool {
        core::mem::take(&mut self.moved)
    }

    /// Marks the connection broken.
    pub fn break_off(&mut self, why: Broken) {
        self.broken.get_or_insert(why);
    }
}

/// The reply type that answers a request of type `sent`: the same type, or
/// an error.
pub fn answers(sent: XsdSockmsgType, got: XsdSockmsgType) -> bool {
    got == sent || got == XsdSockmsgType::Error
}
