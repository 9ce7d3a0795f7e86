//! Reading one packet's requests off a TX ring (`io/netif.h`).
//!
//! A packet is a first request (its `size` is the whole frame), then the
//! extra-info slots it flags, then a fragment request per further piece
//! while `more_data` is set. [`parse`] looks at copies of the slots (each
//! request was copied out of the shared page once, by whoever hands them
//! in) and says what to do:
//!
//! * [`Parse::Incomplete`]: the frontend has not published every slot yet;
//!   look again later.
//! * [`Parse::Packet`]: the slots make one packet. If it is
//!   [`malformed`](Packet::error), every slot is answered with an error and
//!   nothing is copied; otherwise its fragments are copied in order.
//! * [`Parse::Fatal`]: the frontend broke the protocol beyond what a
//!   backend can answer slot by slot (a chain longer than any packet may
//!   be, an extra-info type that does not exist): disconnect it.
//!
//! What moat takes and refuses: checksum flags are carried (`csum_blank` to
//! the csum component); GSO and multicast-control extras are refused (moat
//! advertises neither), the packet answered with an error; hash extras are
//! ignored.

use moat_xen::PAGE_SIZE;
use moat_xen::netif::{
    NetifExtraInfo, NetifTxRequest, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_NR_SLOTS_MIN, extra_type, txf,
};
use zerocopy::FromBytes;

/// Data slots a packet may span (`XEN_NETIF_NR_SLOTS_MIN`).
pub const MAX_DATA_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN as usize;
/// Extra-info slots a packet may carry (one of each type there is).
pub const MAX_EXTRAS: usize = (extra_type::MAX - 1) as usize;
/// Ring slots one packet may use.
pub const MAX_SLOTS: usize = MAX_DATA_SLOTS + MAX_EXTRAS;
/// Smallest frame: an Ethernet header.
pub const MIN_FRAME: u16 = 14;

/// One piece of a packet in a granted page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frag {
    /// The page's grant.
    pub gref: u32,
    /// Where the piece starts in it.
    pub offset: u16,
    /// Its length.
    pub size: u16,
}

/// Why a packet is answered with an error (counted; the frontend stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    TooShort,
    /// Longer than a buffer holds.
    TooLong,
    /// The fragments add up to more than the first slot says.
    SizeLies,
    /// A piece runs past the end of its page.
    CrossesPage,
    /// GSO metadata (moat does not advertise GSO).
    Gso,
    /// Multicast control (not advertised).
    Multicast,
}

impl Malformed {
    /// Every reason, for counters.
    pub const ALL: [Malformed; 6] = [
        Malformed::TooShort,
        Malformed::TooLong,
        Malformed::SizeLies,
        Malformed::CrossesPage,
        Malformed::Gso,
        Malformed::Multicast,
    ];

    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::TooShort => "tx.malformed.too_short",
            Malformed::TooLong => "tx.malformed.too_long",
            Malformed::SizeLies => "tx.malformed.size_lies",
            Malformed::CrossesPage => "tx.malformed.crosses_page",
            Malformed::Gso => "tx.malformed.gso",
            Malformed::Multicast => "tx.malformed.multicast",
        }
    }
}

/// Why the frontend is disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fatal {
    /// More data slots than any packet may have.
    TooManySlots,
    /// More extra-info slots than there are types.
    TooManyExtras,
    /// An extra-info type that does not exist.
    BadExtra,
}

/// A packet's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Ring slots it uses (each gets a response).
    pub slots: u8,
    /// The id of each slot (0 for extra-info slots).
    pub ids: [u16; MAX_SLOTS],
    /// Bit `i` set: slot `i` holds extra info (answered `NULL`).
    pub extras: u32,
    /// Its pieces, in order.
    pub frags: [Frag; MAX_DATA_SLOTS],
    /// How many.
    pub nfrags: u8,
    /// The frame's length.
    pub total: u16,
    /// The first request's `NETTXF_*` flags.
    pub flags: u16,
    /// Set if it is answered with an error instead.
    pub error: Option<Malformed>,
}

/// What the next slots hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// Not all of the packet is published.
    Incomplete,
    /// A packet.
    Packet(Packet),
    /// A protocol violation.
    Fatal(Fatal),
}

/// Parses the packet starting at slot 0 of the `avail` published slots;
/// `slot(i)` is a copy of slot `i`. Frames longer than `max_frame` are
/// malformed.
pub fn parse(avail: u32, slot: impl Fn(u32) -> [u8; 16], max_frame: u16) -> Parse {
    if avail == 0 {
        return Parse::Incomplete;
    }
    let req = |i: u32| NetifTxRequest::read_from_prefix(&slot(i)).map(|(r, _)| r).expect("12 of 16 bytes");
    let first = req(0);
    let mut p = Packet {
        slots: 1,
        ids: [0; MAX_SLOTS],
        extras: 0,
        frags: [Frag::default(); MAX_DATA_SLOTS],
        nfrags: 1,
        total: first.size,
        flags: first.flags,
        error: None,
    };
    p.ids[0] = first.id;
    p.frags[0] = Frag { gref: first.gref, offset: first.offset, size: 0 };
    let mut i = 1u32;
    let mut error = None;
    if first.flags & txf::EXTRA_INFO != 0 {
        let mut n = 0;
        loop {
            if i >= avail {
                return Parse::Incomplete;
            }
            n += 1;
            if n > MAX_EXTRAS {
                return Parse::Fatal(Fatal::TooManyExtras);
            }
            let e = NetifExtraInfo::read_from_prefix(&slot(i)).map(|(e, _)| e).expect("8 of 16 bytes");
            p.extras |= 1 << i;
            i += 1;
            match e.r#type {
                extra_type::GSO => error = error.or(Some(Malformed::Gso)),
                extra_type::MCAST_ADD | extra_type::MCAST_DEL => error = error.or(Some(Malformed::Multicast)),
                extra_type::HASH => {}
                _ => return Parse::Fatal(Fatal::BadExtra),
            }
            if e.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                break;
            }
        }
    }
    let mut more = first.flags & txf::MORE_DATA != 0;
    let mut rest: u32 = 0;
    while more {
        if usize::from(p.nfrags) == MAX_DATA_SLOTS {
            return Parse::Fatal(Fatal::TooManySlots);
        }
        if i >= avail {
            return Parse::Incomplete;
        }
        let r = req(i);
        p.ids[i as usize] = r.id;
        p.frags[usize::from(p.nfrags)] = Frag { gref: r.gref, offset: r.offset, size: r.size };
        p.nfrags += 1;
        rest += u32::from(r.size);
        more = r.flags & txf::MORE_DATA != 0;
        i += 1;
    }
    p.slots = i as u8;
    if u32::from(first.size) < rest {
        error = error.or(Some(Malformed::SizeLies));
    } else {
        p.frags[0].size = first.size - rest as u16;
    }
    if first.size < MIN_FRAME {
        error = error.or(Some(Malformed::TooShort));
    }
    if first.size > max_frame {
        error = error.or(Some(Malformed::TooLong));
    }
    if p.frags[..usize::from(p.nfrags)].iter().any(|f| usize::from(f.offset) + usize::from(f.size) > PAGE_SIZE) {
        error = error.or(Some(Malformed::CrossesPage));
    }
    p.error = error;
    Parse::Packet(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn slots(reqs: &[[u8; 16]]) -> impl Fn(u32) -> [u8; 16] + '_ {
        move |i| reqs[i as usize]
    }

    fn tx(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[..12].copy_from_slice(NetifTxRequest { gref, offset, flags, id, size }.as_bytes());
        s
    }

    fn extra(ty: u8, more: bool) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[0] = ty;
        s[1] = u8::from(more);
        s
    }

    #[test]
    fn a_frame_split_at_a_page_boundary() {
        let r = [tx(8, 3000, txf::MORE_DATA | txf::CSUM_BLANK, 1, 1514), tx(9, 0, 0, 2, 418)];
        let Parse::Packet(p) = parse(2, slots(&r), 1998) else { panic!() };
        assert_eq!((p.slots, p.nfrags, p.total, p.error), (2, 2, 1514, None));
        assert_eq!(p.frags[0], Frag { gref: 8, offset: 3000, size: 1096 });
        assert_eq!(p.frags[1], Frag { gref: 9, offset: 0, size: 418 });
        assert_eq!(&p.ids[..2], &[1, 2]);
        assert_eq!(p.flags & txf::CSUM_BLANK, txf::CSUM_BLANK);
        assert_eq!(parse(1, slots(&r), 1998), Parse::Incomplete, "second slot not published");
    }

    #[test]
    fn extras_are_skipped_and_gso_refused() {
        let r = [tx(8, 0, txf::EXTRA_INFO, 1, 100), extra(extra_type::HASH, true), extra(extra_type::GSO, false)];
        let Parse::Packet(p) = parse(3, slots(&r), 1998) else { panic!() };
        assert_eq!((p.slots, p.extras, p.error), (3, 0b110, Some(Malformed::Gso)));
        let r = [tx(8, 0, txf::EXTRA_INFO, 1, 100), extra(0, false)];
        assert_eq!(parse(2, slots(&r), 1998), Parse::Fatal(Fatal::BadExtra));
        let r = [tx(8, 0, txf::EXTRA_INFO, 1, 100), extra(extra_type::HASH, true)];
        assert_eq!(parse(2, slots(&r), 1998), Parse::Incomplete, "more extras promised");
        let mut r = vec![tx(8, 0, txf::EXTRA_INFO, 1, 100)];
        r.extend((0..5).map(|_| extra(extra_type::HASH, true)));
        assert_eq!(parse(6, slots(&r), 1998), Parse::Fatal(Fatal::TooManyExtras));
    }

    #[test]
    fn lies_are_malformed_and_endless_chains_fatal() {
        let r = [tx(8, 0, txf::MORE_DATA, 1, 100), tx(9, 0, 0, 2, 200)];
        let Parse::Packet(p) = parse(2, slots(&r), 1998) else { panic!() };
        assert_eq!(p.error, Some(Malformed::SizeLies));
        let r = [tx(8, 4000, 0, 1, 200)];
        let Parse::Packet(p) = parse(1, slots(&r), 1998) else { panic!() };
        assert_eq!(p.error, Some(Malformed::CrossesPage));
        let Parse::Packet(p) = parse(1, slots(&[tx(8, 0, 0, 1, 10)]), 1998) else { panic!() };
        assert_eq!(p.error, Some(Malformed::TooShort));
        let Parse::Packet(p) = parse(1, slots(&[tx(8, 0, 0, 1, 2000)]), 1998) else { panic!() };
        assert_eq!(p.error, Some(Malformed::TooLong));
        let chain: Vec<_> = (0..19).map(|i| tx(8, 0, txf::MORE_DATA, i, 10)).collect();
        assert_eq!(parse(19, slots(&chain), 1998), Parse::Fatal(Fatal::TooManySlots));
        let mut ok: Vec<_> = (0..17).map(|i| tx(8, 0, txf::MORE_DATA, i, 10)).collect();
        ok.push(tx(8, 0, 0, 17, 10));
        ok[0] = tx(8, 0, txf::MORE_DATA, 0, 180);
        let Parse::Packet(p) = parse(18, slots(&ok), 1998) else { panic!() };
        assert_eq!((p.slots, p.nfrags, p.error), (18, 18, None), "18 slots are allowed");
    }

    proptest::proptest! {
        #[test]
        fn any_slots_parse_without_panic(raw in proptest::collection::vec(proptest::array::uniform16(0u8..), 0..40), avail in 0u32..40) {
            let avail = avail.min(raw.len() as u32);
            match parse(avail, |i| raw[i as usize], 1998) {
                Parse::Packet(p) => {
                    proptest::prop_assert!(u32::from(p.slots) <= avail);
                    proptest::prop_assert!(usize::from(p.slots) <= MAX_SLOTS);
                    if p.error.is_none() {
                        let sum: u32 = p.frags[..usize::from(p.nfrags)].iter().map(|f| u32::from(f.size)).sum();
                        proptest::prop_assert_eq!(sum, u32::from(p.total));
                        proptest::prop_assert!(p.total >= MIN_FRAME && p.total <= 1998);
                    }
                }
                Parse::Incomplete | Parse::Fatal(_) => {}
            }
        }
    }
}
