//! Golden bytes from `docs/misc/xenstore.txt`, and the decoders' strictness.

use super::*;
use crate::xs_wire::XsdSockmsgType as T;

fn p(s: &'static [u8]) -> Path<'static> {
    Path::new(s).unwrap()
}

fn encoded(r: &Request<'_>, req_id: u32, tx_id: u32) -> ([u32; 4], std::vec::Vec<u8>) {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = r.encode(req_id, tx_id, &mut buf).unwrap();
    let h = header_of(buf[..16].try_into().unwrap());
    ([h.r#type, h.req_id, h.tx_id, h.len], buf[16..n].to_vec())
}

#[test]
fn requests_have_the_documented_bytes() {
    let cases: &[(Request<'_>, u32, &[u8])] = &[
        (Request::Read(p(b"/local/domain/0/name")), 2, b"/local/domain/0/name\0"),
        (Request::Write { path: p(b"a/b"), value: b"v\0x" }, 11, b"a/b\0v\0x"),
        (Request::Directory(p(b"backend/vif")), 1, b"backend/vif\0"),
        (Request::DirectoryPart { path: p(b"/a"), offset: 4096 }, 22, b"/a\x004096\0"),
        (Request::Watch { path: p(b"backend/vif"), token: b"t1" }, 4, b"backend/vif\0t1\0"),
        (Request::Unwatch { path: p(b"@releaseDomain"), token: b"" }, 5, b"@releaseDomain\0\0"),
        (Request::TransactionStart, 6, b"\0"),
        (Request::TransactionEnd { commit: true }, 7, b"T\0"),
        (Request::TransactionEnd { commit: false }, 7, b"F\0"),
        (Request::Introduce { domid: 5, mfn: 1234, evtchn: 3 }, 8, b"5\x001234\x003\0"),
        (Request::Release(5), 9, b"5\0"),
        (Request::GetDomainPath(7), 10, b"7\0"),
        (Request::Mkdir(p(b"/x")), 12, b"/x\0"),
        (Request::Rm(p(b"/x")), 13, b"/x\0"),
        (Request::SetPerms { path: p(b"/x"), perms: Perms::new(b"b3\0r0\0").unwrap() }, 14, b"/x\0b3\0r0\0"),
        (Request::IsDomainIntroduced(1), 17, b"1\0"),
        (Request::Resume(1), 18, b"1\0"),
        (Request::SetTarget { domid: 2, target: 3 }, 19, b"2\x003\0"),
        (Request::ResetWatches, 21, b"\0"),
        (Request::GetPerms(p(b"/x")), 3, b"/x\0"),
        (Request::Control(b"print\0hello\0"), 0, b"print\0hello\0"),
    ];
    for (req, ty, payload) in cases {
        let (h, body) = encoded(req, 0x0102_0304, 9);
        assert_eq!(h, [*ty, 0x0102_0304, 9, payload.len() as u32], "{req:?}");
        assert_eq!(&body[..], *payload, "{req:?}");
        assert_eq!(req.ty() as u32, *ty);
        assert_eq!(Request::decode(req.ty(), payload).as_ref(), Ok(req), "decodes back");
    }
}

#[test]
fn replies_have_the_documented_bytes() {
    let mut buf = [0u8; MAX_MESSAGE];
    let cases: &[(Response<'_>, T, u32, &[u8])] = &[
        (Response::Ok, T::Write, 11, b"OK\0"),
        (Response::Error(XsdError::Enoent), T::Read, 16, b"ENOENT\0"),
        (Response::Read(b"00:16:3e:5e:6c:00"), T::Read, 2, b"00:16:3e:5e:6c:00"),
        (Response::Read(b""), T::Read, 2, b""),
        (Response::Directory(Names::new(b"0\x001\0").unwrap()), T::Directory, 1, b"0\x001\0"),
        (Response::Directory(Names::EMPTY), T::Directory, 1, b""),
        (Response::TransactionStart(42), T::TransactionStart, 6, b"42\0"),
        (Response::GetDomainPath(p(b"/local/domain/3")), T::GetDomainPath, 10, b"/local/domain/3\0"),
        (Response::IsDomainIntroduced(true), T::IsDomainIntroduced, 17, b"T\0"),
        (Response::GetPerms(Perms::new(b"n0\0r3\0").unwrap()), T::GetPerms, 3, b"n0\0r3\0"),
        (
            Response::DirectoryPart { generation: 7, names: Names::new(b"a\0b\0").unwrap(), complete: true },
            T::DirectoryPart,
            22,
            b"7\0a\0b\0\0",
        ),
        (
            Response::DirectoryPart { generation: 7, names: Names::new(b"a\0").unwrap(), complete: false },
            T::DirectoryPart,
            22,
            b"7\0a\0",
        ),
    ];
    for (rsp, req_ty, ty, payload) in cases {
        let n = rsp.encode(*req_ty, 5, 6, &mut buf).unwrap();
        let f = Frame::parse(&buf[..n]).unwrap();
        assert_eq!(f.header.r#type, *ty, "{rsp:?}");
        assert_eq!((f.header.req_id, f.header.tx_id), (5, 6));
        assert_eq!(f.payload, *payload, "{rsp:?}");
        assert_eq!(Response::decode(f.ty, f.payload).as_ref(), Ok(rsp));
    }
    let ev = Response::WatchEvent { path: p(b"backend/vif/3"), token: b"tok" };
    let n = ev.encode(T::Watch, 5, 6, &mut buf).unwrap();
    let f = Frame::parse(&buf[..n]).unwrap();
    assert_eq!((f.ty, f.header.req_id, f.header.tx_id), (T::WatchEvent, 0, 0), "events carry no ids");
    assert_eq!(f.payload, b"backend/vif/3\0tok\0");
}

#[test]
fn strict_decoding() {
    let bad_requests: &[(T, &[u8])] = &[
        (T::Read, b"/a"),                            // no NUL
        (T::Read, b"/a\0\0"),                        // trailing garbage
        (T::Read, b"/a//b\0"),                       // bad path
        (T::Read, b""),                              // nothing
        (T::Watch, b"/a\0"),                         // no token
        (T::Watch, b"/a\0t\0x\0"),                   // extra string
        (T::Write, b"/a"),                           // no separator
        (T::TransactionEnd, b"X\0"),                 // neither T nor F
        (T::TransactionStart, b"1\0"),               // non-empty
        (T::Release, b"65536\0"),                    // domid out of range
        (T::Release, b"-1\0"),                       // signed
        (T::Release, b" 1\0"),                       // space
        (T::DirectoryPart, b"/a\x00999999999999\0"), // offset over u32
        (T::SetPerms, b"/a\0z1\0"),                  // bad permission
        (T::SetPerms, b"/a\0"),                      // no permissions
        (T::WatchEvent, b"/a\0t\0"),                 // not a request
        (T::Error, b"EINVAL\0"),                     // not a request
    ];
    for (ty, payload) in bad_requests {
        assert!(Request::decode(*ty, payload).is_err(), "{ty:?} {payload:?}");
    }
    let bad_replies: &[(T, &[u8])] = &[
        (T::Write, b"OK"),
        (T::Write, b"ok\0"),
        (T::Error, b"ENOTANERROR\0"),
        (T::Error, b"ENOENT"),
        (T::TransactionStart, b"4294967296\0"),
        (T::TransactionStart, b"\0"),
        (T::Directory, b"a\0b"),
        (T::Directory, b"a/b\0"),
        (T::Directory, b"a\0\0b\0"),
        (T::WatchEvent, b"/a\0"),
        (T::WatchEvent, b"/a b\0t\0"),
        (T::GetDomainPath, b"\0"),
        (T::IsDomainIntroduced, b"Y\0"),
        (T::GetPerms, b""),
        (T::DirectoryPart, b"x\0a\0"),
    ];
    for (ty, payload) in bad_replies {
        assert!(Response::decode(*ty, payload).is_err(), "{ty:?} {payload:?}");
    }
    assert_eq!(Response::decode(T::Directory, b"\0"), Ok(Response::Directory(Names::EMPTY)));
    // oxenstored's quota error, seen from the real daemon (not in xs_wire.h).
    assert_eq!(Response::decode(T::Error, b"EQUOTA\0"), Ok(Response::Error(crate::xs_wire::XsdError::Equota)));
}

#[test]
fn payload_limit_both_ways() {
    let mut buf = [0u8; MAX_MESSAGE + 100];
    let big = [b'v'; XENSTORE_PAYLOAD_MAX];
    let path = p(b"/a");
    // 3 bytes of "/a\0" plus the value.
    let fits = Request::Write { path, value: &big[..XENSTORE_PAYLOAD_MAX - 3] };
    assert_eq!(fits.encode(1, 0, &mut buf), Ok(MAX_MESSAGE));
    let over = Request::Write { path, value: &big[..XENSTORE_PAYLOAD_MAX - 2] };
    assert_eq!(over.encode(1, 0, &mut buf), Err(MsgError::TooBig));
    assert_eq!(fits.encode(1, 0, &mut buf[..100]), Err(MsgError::TooBig), "small buffer");
    assert_eq!(Response::Read(&big).encode(T::Read, 1, 0, &mut buf), Ok(MAX_MESSAGE));
    let mut bigger = [0u8; XENSTORE_PAYLOAD_MAX + 1];
    bigger.fill(b'x');
    assert_eq!(Response::Read(&bigger).encode(T::Read, 1, 0, &mut buf), Err(MsgError::TooBig));
    // A frame whose header claims more than the limit never parses.
    let mut h = [0u8; 16];
    h[12..].copy_from_slice(&(XENSTORE_PAYLOAD_MAX as u32 + 1).to_le_bytes());
    assert_eq!(Frame::parse(&h), Err(MsgError::TooBig));
}

#[test]
fn tokens_and_names_without_nul() {
    let mut buf = [0u8; 64];
    let w = Request::Watch { path: p(b"/a"), token: b"a\0b" };
    assert_eq!(w.encode(1, 0, &mut buf), Err(MsgError::Malformed));
    assert!(Names::new(b"ok\0").is_ok());
    assert_eq!(Names::new(b"a\0b\0").unwrap().iter().collect::<std::vec::Vec<_>>(), [&b"a"[..], b"b"]);
}

#[test]
fn decimal_numbers() {
    assert_eq!(parse_u64(b"0"), Some(0));
    assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_u64(b"18446744073709551616"), None);
    assert_eq!(parse_u64(b""), None);
    assert_eq!(parse_u64(b"1a"), None);
    let mut b = [0u8; 20];
    assert_eq!(fmt_u64(0, &mut b), b"0");
    assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
}
