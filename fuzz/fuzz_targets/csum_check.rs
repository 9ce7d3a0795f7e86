//! csum's per-packet decision on arbitrary packets and flags: no panic, a
//! dropped packet is untouched, a completed packet then verifies, and a
//! passed packet's length is within the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_csum::check::{check, Pass, Side};

fuzz_target!(|input: (u16, bool, &[u8])| {
    let (flags, uplink, packet) = input;
    let side = if uplink { Side::Uplink } else { Side::Clients };
    let mut p = packet.to_vec();
    match check(&mut p, flags, side) {
        Err(_) => assert_eq!(p, packet),
        Ok(passed) => {
            assert!(passed.len <= p.len());
            if passed.how == Pass::Completed {
                let mut again = p.clone();
                assert_eq!(check(&mut again, 0, side).map(|q| q.how), Ok(Pass::Verified));
            } else {
                assert_eq!(p, packet, "only completion writes");
            }
        }
    }
});
