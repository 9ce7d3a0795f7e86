//! A blocking XenStore client over a ring page, for tests of the store
//! itself (and of anything else that wants to poke at the store as a
//! domain would): it sends one request, then polls the store until the
//! reply comes, keeping watch events that arrive meanwhile.

use std::collections::VecDeque;

use moat_ring::Region;
use moat_xen::xenstore::msg::MAX_MESSAGE;
use moat_xen::xenstore::{Decoder, Request, Response, XsRing};
use moat_xen::xs_wire::{XsdError, XsdSockmsgType};

use crate::XenStored;

/// An owned reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    /// `OK`.
    Ok,
    /// An error.
    Err(XsdError),
    /// A value.
    Value(Vec<u8>),
    /// Child names.
    Names(Vec<String>),
    /// A transaction id.
    Tx(u32),
    /// Permissions as strings (`b0`, `r5`).
    Perms(Vec<String>),
    /// Anything else, as text.
    Other(String),
}

/// A watch event: `(path, token)`.
pub type Event = (String, Vec<u8>);

/// The client.
pub struct Client {
    ring: XsRing,
    decoder: Box<Decoder>,
    next_id: u32,
    /// Events received and not yet taken.
    pub events: VecDeque<Event>,
}

impl Client {
    /// A client on `page` (the guest side).
    pub fn new(page: Region) -> Self {
        Client {
            ring: XsRing::guest(page).unwrap(),
            decoder: Box::new(Decoder::new()),
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    /// Sends `req` in transaction `tx` and waits for its reply.
    pub fn call(&mut self, store: &mut XenStored, req: Request<'_>, tx: u32) -> Owned {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = req.encode(self.next_id, tx, &mut buf).expect("encodable");
        let id = self.next_id;
        self.next_id += 1;
        let mut sent = 0;
        for _ in 0..10_000 {
            sent += self.ring.write(&buf[sent..n]).unwrap();
            store.poll();
            if let Some(r) = self.receive(id) {
                assert_eq!(sent, n);
                return r;
            }
        }
        panic!("no reply to {req:?}");
    }

    /// Polls for waiting events without sending anything.
    pub fn pump(&mut self, store: &mut XenStored) {
        store.poll();
        let none = self.receive(0);
        assert!(none.is_none(), "unsolicited reply");
    }

    fn receive(&mut self, id: u32) -> Option<Owned> {
        loop {
            let n = self.ring.read(self.decoder.space()).unwrap();
            if n == 0 {
                return None;
            }
            if !self.decoder.filled(n).unwrap() {
                continue;
            }
            let f = self.decoder.message().unwrap();
            let rsp = Response::decode(f.ty, f.payload).expect("well-formed reply");
            let out = match rsp {
                Response::WatchEvent { path, token } => {
                    assert_eq!((f.header.req_id, f.header.tx_id), (0, 0));
                    self.events.push_back((String::from_utf8(path.as_bytes().to_vec()).unwrap(), token.to_vec()));
                    None
                }
                _ => {
                    assert_eq!(f.header.req_id, id, "reply to the request sent");
                    assert!(f.ty == XsdSockmsgType::Error || id != 0);
                    Some(owned(rsp))
                }
            };
            self.decoder.next();
            if out.is_some() {
                return out;
            }
        }
    }
}

fn owned(r: Response<'_>) -> Owned {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match r {
        Response::Ok => Owned::Ok,
        Response::Error(e) => Owned::Err(e),
        Response::Read(v) => Owned::Value(v.to_vec()),
        Response::Directory(n) => Owned::Names(n.iter().map(s).collect()),
        Response::TransactionStart(id) => Owned::Tx(id),
        Response::GetPerms(p) => {
            Owned::Perms(p.as_bytes().split(|b| *b == 0).filter(|e| !e.is_empty()).map(s).collect())
        }
        other => Owned::Other(format!("{other:?}")),
    }
}
