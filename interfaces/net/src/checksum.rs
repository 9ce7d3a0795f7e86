//! The Internet checksum (RFC 1071), pseudo-header sums, and incremental
//! updates (RFC 1624).
//!
//! Three ways to use it:
//!
//! * [`Checksum`] accumulates a one's-complement sum over any sequence of byte
//!   slices and words (odd-length pieces are handled), then
//!   [`finish`](Checksum::finish)es it into the value a checksum field holds.
//!   [`Checksum::ipv4_pseudo`] / [`Checksum::ipv6_pseudo`] start from the
//!   pseudo-header of a TCP, UDP or ICMPv6 checksum.
//! * [`verify`]: a region whose checksum field is filled in sums to `0xFFFF`.
//! * [`Delta`]: a record of 16-bit words that changed, applied to a checksum
//!   field without touching the rest of the packet (what NAT does on every
//!   packet: RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`).
//!
//! Byte order: the sum is computed on native-endian words and byte-swapped
//! once at the end (RFC 1071 §2(B)); every `u16` this module takes or returns
//! is the big-endian *value* of a header word (what `u16::from_be_bytes` of
//! the two bytes gives).
//!
//! On `0x0000` versus `0xFFFF`: both are zero in one's complement. A sum over
//! data that is not all zeros folds to `1..=0xFFFF`, so [`Checksum::finish`]
//! yields `0..=0xFFFE`; [`Delta::apply`] of a field that came from `finish`
//! yields exactly what a full recomputation would (see the tests). UDP's "0
//! means no checksum" is the caller's rule, helped by [`Delta::apply_udp`] and
//! [`udp_field`].

/// Folds a 64-bit accumulator of 16-bit words into 16 bits with end-around
/// carry. A non-zero input gives a non-zero result.
#[inline]
pub const fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Bytes summed before the wide accumulators are folded: each 32-byte step
/// adds less than 2^33 to an accumulator, so 2^20 bytes (2^15 steps) keep
/// the four of them, and their sum, far below 2^64.
const BLOCK: usize = 1 << 20;

/// One's-complement sum of `bytes` as native-endian 16-bit words, unfolded.
#[inline]
fn sum_ne(bytes: &[u8]) -> u64 {
    if bytes.len() <= BLOCK {
        return sum_block(bytes);
    }
    bytes.chunks(BLOCK).map(|b| u64::from(fold(sum_block(b)))).sum()
}

/// Wide accumulation over at most [`BLOCK`] bytes: four 64-bit accumulators
/// each take two 32-bit words per 32-byte step (no carries to propagate,
/// independent dependency chains, and a loop shape the compiler
/// vectorises).
#[inline]
fn sum_block(bytes: &[u8]) -> u64 {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    let mut steps = bytes.chunks_exact(32);
    for s in &mut steps {
        let w = |i: usize| u64::from(u32::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]));
        a += w(0) + w(16);
        b += w(4) + w(20);
        c += w(8) + w(24);
        d += w(12) + w(28);
    }
    let mut rest = steps.remainder();
    while rest.len() >= 4 {
        a += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        b += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        // The odd byte is the high-order byte of a word padded with zero.
        c += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    a + b + c + d
}

/// The folded one's-complement sum of `bytes` as big-endian 16-bit words
/// (an odd trailing byte is padded with zero). Not complemented.
#[inline]
pub fn sum(bytes: &[u8]) -> u16 {
    // The folded native-endian sum, stored natively, has the bytes of the
    // big-endian sum (RFC 1071 byte-order independence).
    u16::from_be_bytes(fold(sum_ne(bytes)).to_ne_bytes())
}

/// The checksum field value for `bytes` alone (with their own checksum field
/// zeroed): `!sum(bytes)`.
#[inline]
pub fn checksum(bytes: &[u8]) -> u16 {
    !sum(bytes)
}

/// True if `bytes`, checksum field included, sum to `0xFFFF` (one's-complement
/// zero): the IPv4 header and ICMPv4 test.
#[inline]
pub fn verify(bytes: &[u8]) -> bool {
    sum(bytes) == 0xffff
}

/// What a UDP checksum field holds for a computed checksum `c`: `0` means "no
/// checksum" on the wire, so a computed `0` is sent as `0xFFFF` (RFC 768).
#[inline]
pub const fn udp_field(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

/// A running one's-complement sum over pieces of a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Sum of big-endian word values (each piece folded before adding, so
    /// this cannot overflow in any realistic use).
    acc: u64,
    /// The bytes added so far had odd length: the next piece starts in the
    /// low-order half of a word.
    odd: bool,
}

impl Checksum {
    /// Nothing summed yet.
    pub const fn new() -> Self {
        Checksum { acc: 0, odd: false }
    }

    /// The pseudo-header of a TCP/UDP checksum over IPv4 (RFC 793/768):
    /// source, destination, zero, protocol, L4 length.
    pub fn ipv4_pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> Self {
        let mut c = Checksum::new();
        c.add_bytes(&src);
        c.add_bytes(&dst);
        c.add_u16(u16::from(proto));
        c.add_u16(l4_len);
        c
    }

    /// The pseudo-header of an upper-layer checksum over IPv6 (RFC 8200
    /// §8.1): source, destination, 32-bit upper-layer length, next header.
    pub fn ipv6_pseudo(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> Self {
        let mut c = Checksum::new();
        c.add_bytes(&src);
        c.add_bytes(&dst);
        c.add_u32(l4_len);
        c.add_u16(u16::from(next_header));
        c
    }

    /// Adds a piece of the packet. Pieces may have any length; a piece after
    /// an odd-length one is summed as if the bytes were contiguous.
    #[inline]
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        let s = sum(bytes);
        // A piece shifted by one byte within the words sums to its own sum
        // byte-swapped (multiplication by 256 modulo 0xFFFF).
        self.acc += u64::from(if self.odd { s.swap_bytes() } else { s });
        self.odd ^= bytes.len() % 2 == 1;
    }

    /// Adds a 16-bit value (a pseudo-header field, or the complement of a
    /// field to take back out). Values are position-free: this adds to the
    /// sum whatever the parity of the bytes added so far.
    #[inline]
    pub fn add_u16(&mut self, word: u16) {
        self.acc += u64::from(word);
    }

    /// Adds a 32-bit value as two 16-bit values.
    #[inline]
    pub fn add_u32(&mut self, value: u32) {
        self.add_u16((value >> 16) as u16);
        self.add_u16(value as u16);
    }

    /// The folded sum, not complemented (what a `csum_blank` field holds for
    /// a pseudo-header).
    #[inline]
    pub fn sum(&self) -> u16 {
        fold(self.acc)
    }

    /// The checksum field value: the complement of the folded sum.
    #[inline]
    pub fn finish(&self) -> u16 {
        !self.sum()
    }

    /// True if the pieces, checksum field included, sum to one's-complement
    /// zero.
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.sum() == 0xffff
    }
}

/// Words that changed in a packet, to fix a checksum without re-reading the
/// packet (RFC 1624 equation 3).
///
/// Record every change that falls inside the region a checksum covers
/// (including pseudo-header fields like IP addresses), then [`apply`] it to
/// that checksum field. A `Delta` is plain data: the same one can be applied
/// to several fields (an address change affects both the IPv4 header checksum
/// and the TCP checksum).
///
/// [`apply`]: Delta::apply
#[must_use = "a recorded change must be applied to the checksum it affects"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const fn new() -> Self {
        Delta(0)
    }

    /// True if nothing was recorded.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// A 16-bit word (at an even offset) changed from `old` to `new`.
    #[inline]
    pub fn word(mut self, old: u16, new: u16) -> Self {
        self.0 += u64::from(!old) + u64::from(new);
        self
    }

    /// A 32-bit field (at an even offset) changed.
    #[inline]
    pub fn dword(self, old: u32, new: u32) -> Self {
        self.word((old >> 16) as u16, (new >> 16) as u16).word(old as u16, new as u16)
    }

    /// A run of bytes at an even offset changed (`old` and `new` of equal,
    /// even length: an address, a port pair).
    #[inline]
    pub fn bytes(self, old: &[u8], new: &[u8]) -> Self {
        debug_assert!(old.len() == new.len() && old.len().is_multiple_of(2));
        let mut d = self;
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            d = d.word(u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([n[0], n[1]]));
        }
        d
    }

    /// Combines two deltas (changes in different places of the same region).
    #[inline]
    pub fn and(self, other: Delta) -> Self {
        Delta(u64::from(fold(self.0)) + u64::from(fold(other.0)))
    }

    /// The value a checksum field must take after the changes: RFC 1624
    /// equation 3, `~(~HC + Σ(~m + m'))`.
    #[inline]
    pub fn apply(self, field: u16) -> u16 {
        !fold(u64::from(!field) + self.0)
    }

    /// As [`apply`](Self::apply) for a UDP-over-IPv4 checksum field: `0`
    /// ("no checksum") stays `0`, and a result of `0` is sent as `0xFFFF`.
    #[inline]
    pub fn apply_udp(self, field: u16) -> u16 {
        if field == 0 { 0 } else { udp_field(self.apply(field)) }
    }

    /// The change a checksum field itself went through, as a delta for an
    /// enclosing checksum (an embedded header's checksum lies inside an
    /// ICMP message's checksummed region).
    #[inline]
    pub fn of_field(old: u16, new: u16) -> Self {
        Delta::new().word(old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 sum, one big-endian word at a time.
    fn reference(bytes: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in bytes.chunks(2) {
            let w = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
            acc += w;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    #[test]
    fn ipv4_header_from_the_wild() {
        // A header captured from Linux (ping), checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(verify(&h));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn all_lengths_and_alignments_match_the_reference() {
        let data: [u8; 300] = core::array::from_fn(|i| (i as u8).wrapping_mul(151).wrapping_add(7));
        for start in 0..8 {
            for end in start..data.len() {
                assert_eq!(sum(&data[start..end]), reference(&data[start..end]), "{start}..{end}");
            }
        }
        assert_eq!(sum(&[0xff; 4096]), 0xffff);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn values_are_added_whatever_the_parity() {
        let mut odd = Checksum::new();
        odd.add_bytes(&[0x12, 0x34, 0x56]);
        odd.add_u16(0xabcd);
        let mut even = Checksum::new();
        even.add_u16(0xabcd);
        even.add_bytes(&[0x12, 0x34, 0x56]);
        assert_eq!(odd.sum(), even.sum());
        assert_eq!(odd.sum(), reference(&[0x12, 0x34, 0x56, 0x00, 0xab, 0xcd]));
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(udp_field(0), 0xffff);
        assert_eq!(udp_field(0x1234), 0x1234);
        assert_eq!(Delta::new().word(1, 2).apply_udp(0), 0, "no checksum stays none");
    }

    #[test]
    fn exhaustive_single_word_update_matches_recompute() {
        // One word m of a two-word region [m, k] changes to m'; for a spread
        // of k and every m, m' pair in a sample, incremental == recompute.
        for k in [0x0000u16, 0x0001, 0x7fff, 0xfffe, 0xffff] {
            for m in (0..=0xffffu32).step_by(257).map(|x| x as u16).chain([0, 0xffff]) {
                let full = |m: u16| checksum(&[(m >> 8) as u8, m as u8, (k >> 8) as u8, k as u8]);
                if m == 0 && k == 0 {
                    continue; // all-zero data: sum 0, outside the rule
                }
                let hc = full(m);
                for m2 in (0..=0xffffu32).step_by(4099).map(|x| x as u16).chain([0, 0xffff, !m]) {
                    if m2 == 0 && k == 0 {
                        continue;
                    }
                    assert_eq!(Delta::new().word(m, m2).apply(hc), full(m2), "k={k:#x} m={m:#x} m'={m2:#x}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn pieces_sum_like_the_whole(data in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..5)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut c = Checksum::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                c.add_bytes(&data[at..cut]);
                at = cut;
            }
            prop_assert_eq!(c.sum(), reference(&data));
            prop_assert_eq!(sum(&data), reference(&data));
        }

        #[test]
        fn incremental_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u16>()), 1..6),
        ) {
            if data.len() % 2 == 1 { data.push(0); }
            prop_assume!(data.iter().any(|&b| b != 0));
            let before = checksum(&data);
            let mut delta = Delta::new();
            for (at, new) in edits {
                let i = at.index(data.len() / 2) * 2;
                let old = u16::from_be_bytes([data[i], data[i + 1]]);
                delta = delta.word(old, new);
                data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            }
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(delta.apply(before), checksum(&data));
            prop_assert_eq!(delta.apply_udp(udp_field(before)), udp_field(checksum(&data)));
        }
    }
}
