//! The XenStore stream decoder and message codec on arbitrary bytes, fed in
//! arbitrary pieces: no panic, bounded work, and every message that decodes
//! re-encodes to something that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_xen::xenstore::msg::MAX_MESSAGE;
use moat_xen::xenstore::{Decoder, Frame, Request, Response};

fn check(f: Frame<'_>) {
    let mut buf = [0u8; MAX_MESSAGE];
    if let Ok(req) = Request::decode(f.ty, f.payload) {
        assert_eq!(req.ty(), f.ty);
        let n = req.encode(f.header.req_id, f.header.tx_id, &mut buf).expect("a decoded request re-encodes");
        let again = Frame::parse(&buf[..n]).expect("re-encoded frame parses");
        assert_eq!(Request::decode(again.ty, again.payload), Ok(req));
    }
    if let Ok(rsp) = Response::decode(f.ty, f.payload) {
        let n = rsp.encode(f.ty, f.header.req_id, f.header.tx_id, &mut buf).expect("a decoded reply re-encodes");
        let again = Frame::parse(&buf[..n]).expect("re-encoded frame parses");
        assert_eq!(again.ty, f.ty);
        assert_eq!(Response::decode(again.ty, again.payload), Ok(rsp));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, as ring wrap-around would.
    let Some((&cut, stream)) = data.split_first() else { return };
    let piece = usize::from(cut % 64) + 1;
    let mut d = Decoder::new();
    for mut chunk in stream.chunks(piece) {
        while !chunk.is_empty() {
            let Ok(n) = d.feed(chunk) else { return };
            chunk = &chunk[n..];
            if let Some(f) = d.message() {
                check(f);
                d.next();
            } else {
                assert!(chunk.is_empty(), "input left over without a complete message");
            }
        }
    }
});
