//! Property tests of the XenStore codec and the streaming decoder: any
//! sequence of messages, encoded back to back, cut at arbitrary points and
//! fed in pieces, decodes to the same messages; arbitrary bytes never panic.

use moat_xen::xenstore::msg::MAX_MESSAGE;
use moat_xen::xenstore::{Decoder, Names, Path, Perms, Request, Response, StreamError};
use moat_xen::xs_wire::{XENSTORE_PAYLOAD_MAX, XsdError, XsdSockmsgType};
use proptest::prelude::*;

/// A request with owned data, from which a borrowed [`Request`] is made.
#[derive(Clone, Debug)]
enum Req {
    Read(String),
    Write(String, Vec<u8>),
    Dir(String),
    DirPart(String, u32),
    Watch(String, Vec<u8>),
    Unwatch(String, Vec<u8>),
    TxStart,
    TxEnd(bool),
    Mkdir(String),
    Rm(String),
    SetPerms(String, Vec<u8>),
    GetPerms(String),
    Domid(u8, u16),
    Introduce(u16, u64, u32),
    SetTarget(u16, u16),
    Reset,
    Control(Vec<u8>),
}

impl Req {
    fn request(&self) -> Request<'_> {
        fn p(s: &str) -> Path<'_> {
            Path::new(s.as_bytes()).unwrap()
        }
        match self {
            Req::Read(s) => Request::Read(p(s)),
            Req::Write(s, v) => Request::Write { path: p(s), value: v },
            Req::Dir(s) => Request::Directory(p(s)),
            Req::DirPart(s, o) => Request::DirectoryPart { path: p(s), offset: *o },
            Req::Watch(s, t) => Request::Watch { path: p(s), token: t },
            Req::Unwatch(s, t) => Request::Unwatch { path: p(s), token: t },
            Req::TxStart => Request::TransactionStart,
            Req::TxEnd(c) => Request::TransactionEnd { commit: *c },
            Req::Mkdir(s) => Request::Mkdir(p(s)),
            Req::Rm(s) => Request::Rm(p(s)),
            Req::SetPerms(s, perms) => Request::SetPerms { path: p(s), perms: Perms::new(perms).unwrap() },
            Req::GetPerms(s) => Request::GetPerms(p(s)),
            Req::Domid(k, d) => match k % 4 {
                0 => Request::Release(*d),
                1 => Request::GetDomainPath(*d),
                2 => Request::IsDomainIntroduced(*d),
                _ => Request::Resume(*d),
            },
            Req::Introduce(d, m, e) => Request::Introduce { domid: *d, mfn: *m, evtchn: *e },
            Req::SetTarget(d, t) => Request::SetTarget { domid: *d, target: *t },
            Req::Reset => Request::ResetWatches,
            Req::Control(c) => Request::Control(c),
        }
    }
}

/// A reply with owned data.
#[derive(Clone, Debug)]
enum Rsp {
    Ok(XsdSockmsgType),
    Error(usize),
    Read(Vec<u8>),
    Dir(Vec<u8>),
    DirPart(u64, Vec<u8>, bool),
    Perms(Vec<u8>),
    TxStart(u32),
    DomainPath(String),
    Introduced(bool),
    Event(String, Vec<u8>),
}

impl Rsp {
    fn response(&self) -> (XsdSockmsgType, Response<'_>) {
        use XsdSockmsgType as T;
        match self {
            Rsp::Ok(t) => (*t, Response::Ok),
            Rsp::Error(i) => (T::Read, Response::Error(XsdError::ALL[i % XsdError::ALL.len()])),
            Rsp::Read(v) => (T::Read, Response::Read(v)),
            Rsp::Dir(n) => (T::Directory, Response::Directory(Names::new(n).unwrap())),
            Rsp::DirPart(g, n, c) => (
                T::DirectoryPart,
                Response::DirectoryPart { generation: *g, names: Names::new(n).unwrap(), complete: *c },
            ),
            Rsp::Perms(p) => (T::GetPerms, Response::GetPerms(Perms::new(p).unwrap())),
            Rsp::TxStart(id) => (T::TransactionStart, Response::TransactionStart(*id)),
            Rsp::DomainPath(s) => (T::GetDomainPath, Response::GetDomainPath(Path::new(s.as_bytes()).unwrap())),
            Rsp::Introduced(b) => (T::IsDomainIntroduced, Response::IsDomainIntroduced(*b)),
            Rsp::Event(s, t) => {
                (T::WatchEvent, Response::WatchEvent { path: Path::new(s.as_bytes()).unwrap(), token: t })
            }
        }
    }
}

fn path() -> impl Strategy<Value = String> {
    "/?[a-zA-Z0-9_@-]{1,8}(/[a-zA-Z0-9_@-]{1,8}){0,5}"
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..24)
}

fn perms() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(("[nrwb]", 0u16..=65535), 1..5)
        .prop_map(|v| v.iter().flat_map(|(l, d)| format!("{l}{d}\0").into_bytes()).collect())
}

fn names() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec("[a-zA-Z0-9_-]{1,10}", 0..8)
        .prop_map(|v| v.iter().flat_map(|n| format!("{n}\0").into_bytes()).collect())
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        path().prop_map(Req::Read),
        (path(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(p, v)| Req::Write(p, v)),
        path().prop_map(Req::Dir),
        (path(), any::<u32>()).prop_map(|(p, o)| Req::DirPart(p, o)),
        (path(), token()).prop_map(|(p, t)| Req::Watch(p, t)),
        (path(), token()).prop_map(|(p, t)| Req::Unwatch(p, t)),
        Just(Req::TxStart),
        any::<bool>().prop_map(Req::TxEnd),
        path().prop_map(Req::Mkdir),
        path().prop_map(Req::Rm),
        (path(), perms()).prop_map(|(p, q)| Req::SetPerms(p, q)),
        path().prop_map(Req::GetPerms),
        (any::<u8>(), any::<u16>()).prop_map(|(k, d)| Req::Domid(k, d)),
        (any::<u16>(), any::<u64>(), any::<u32>()).prop_map(|(d, m, e)| Req::Introduce(d, m, e)),
        (any::<u16>(), any::<u16>()).prop_map(|(d, t)| Req::SetTarget(d, t)),
        Just(Req::Reset),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Req::Control),
    ]
}

fn rsp() -> impl Strategy<Value = Rsp> {
    use XsdSockmsgType as T;
    prop_oneof![
        prop::sample::select(vec![T::Write, T::Mkdir, T::Rm, T::Watch, T::Unwatch, T::TransactionEnd, T::SetPerms])
            .prop_map(Rsp::Ok),
        any::<usize>().prop_map(Rsp::Error),
        prop::collection::vec(any::<u8>(), 0..XENSTORE_PAYLOAD_MAX).prop_map(Rsp::Read),
        names().prop_map(Rsp::Dir),
        (any::<u64>(), names(), any::<bool>()).prop_map(|(g, n, c)| Rsp::DirPart(g, n, c)),
        perms().prop_map(Rsp::Perms),
        any::<u32>().prop_map(Rsp::TxStart),
        path().prop_map(Rsp::DomainPath),
        any::<bool>().prop_map(Rsp::Introduced),
        (path(), token()).prop_map(|(p, t)| Rsp::Event(p, t)),
    ]
}

/// Feeds `stream` to a decoder in pieces whose sizes cycle through `cuts`,
/// calling `each` for every complete message.
fn feed_in_pieces(stream: &[u8], cuts: &[usize], mut each: impl FnMut(moat_xen::xenstore::Frame<'_>)) {
    let mut d = Decoder::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let piece = cuts[i % cuts.len()].max(1);
        i += 1;
        let end = (at + piece).min(stream.len());
        let mut chunk = &stream[at..end];
        while !chunk.is_empty() {
            let n = d.feed(chunk).unwrap();
            chunk = &chunk[n..];
            if let Some(f) = d.message() {
                each(f);
                d.next();
            } else {
                assert!(chunk.is_empty(), "input left over without a complete message");
            }
        }
        at = end;
    }
    assert!(d.is_idle(), "stream ended mid-message");
}

proptest! {
    #[test]
    fn request_streams_decode_in_any_pieces(
        reqs in prop::collection::vec(req(), 1..12),
        cuts in prop::collection::vec(1usize..2000, 1..8),
    ) {
        let mut stream = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for (i, r) in reqs.iter().enumerate() {
            let n = r.request().encode(i as u32, 100 + i as u32, &mut buf).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
        let mut k = 0;
        feed_in_pieces(&stream, &cuts, |f| {
            assert_eq!((f.header.req_id, f.header.tx_id), (k as u32, 100 + k as u32));
            assert_eq!(Request::decode(f.ty, f.payload).unwrap(), reqs[k].request());
            k += 1;
        });
        prop_assert_eq!(k, reqs.len());
    }

    #[test]
    fn reply_streams_decode_in_any_pieces(
        rsps in prop::collection::vec(rsp(), 1..8),
        cuts in prop::collection::vec(1usize..1500, 1..8),
    ) {
        let mut stream = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for (i, r) in rsps.iter().enumerate() {
            let (ty, rsp) = r.response();
            let n = rsp.encode(ty, i as u32 + 1, 0, &mut buf).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
        let mut k = 0;
        feed_in_pieces(&stream, &cuts, |f| {
            let (_, want) = rsps[k].response();
            let expect_id = if matches!(want, Response::WatchEvent { .. }) { 0 } else { k as u32 + 1 };
            assert_eq!(f.header.req_id, expect_id);
            assert_eq!(Response::decode(f.ty, f.payload).unwrap(), want);
            k += 1;
        });
        prop_assert_eq!(k, rsps.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..9000), cut in 1usize..700) {
        let mut d = Decoder::new();
        for chunk in bytes.chunks(cut) {
            let mut chunk = chunk;
            // Each feed either consumes input, completes a message, or
            // fails: the loop is bounded by the input length.
            while !chunk.is_empty() {
                match d.feed(chunk) {
                    Ok(n) => {
                        chunk = &chunk[n..];
                        if let Some(f) = d.message() {
                            let _ = Response::decode(f.ty, f.payload);
                            let _ = Request::decode(f.ty, f.payload);
                            d.next();
                        } else {
                            prop_assert!(chunk.is_empty());
                        }
                    }
                    Err(e) => {
                        prop_assert!(d.is_poisoned());
                        prop_assert!(matches!(e, StreamError::TooLong(_) | StreamError::BadType(_) | StreamError::Poisoned));
                        prop_assert_eq!(d.feed(b"more"), Err(StreamError::Poisoned));
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[test]
fn oversized_and_unknown_headers_poison_the_stream() {
    let mut d = Decoder::new();
    let mut h = [0u8; 16];
    h[0] = 2;
    h[12..].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(d.feed(&h), Err(StreamError::TooLong(4097)));
    assert_eq!(d.feed(&[0]), Err(StreamError::Poisoned));
    assert!(d.space().is_empty());
    d.reset();
    h[0] = 20; // XS_RESTRICT, removed
    h[12..].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(d.feed(&h), Err(StreamError::BadType(20)));
    d.reset();
    h[0] = 2;
    h[12..].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(d.feed(&h), Ok(16), "exactly the limit is fine");
    assert_eq!(d.space().len(), 4096, "asks for exactly the payload");
}
