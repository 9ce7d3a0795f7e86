//! SipHash-1-3 (Aumasson & Bernstein) over exactly two 64-bit words: the
//! keyed hash behind every table and the port allocator's randomness.
//!
//! Keyed with a per-boot secret, so a client cannot choose tuples that land
//! in one bucket (hash flooding) or predict the ports it will be given. The
//! same function (1 compression round, 3 finalisation rounds) keys Rust's
//! `std::collections::HashMap`, which keeps the benchmark comparison fair.

/// A 128-bit SipHash key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

impl SipKey {
    /// A key from 16 bytes of secret.
    pub fn new(bytes: [u8; 16]) -> Self {
        let (a, b) = bytes.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
        SipKey { k0: word(a), k1: word(b) }
    }

    /// SipHash-1-3 of the 16 bytes `a.to_le_bytes() ++ b.to_le_bytes()`.
    #[inline]
    pub fn hash(&self, a: u64, b: u64) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        // Two message words, then the final block (length 16, no tail bytes).
        for m in [a, b, 16 << 56] {
            v[3] ^= m;
            round(&mut v);
            v[0] ^= m;
        }
        v[2] ^= 0xff;
        round(&mut v);
        round(&mut v);
        round(&mut v);
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::Hasher;
    use siphasher::sip::SipHasher13;

    #[test]
    fn matches_the_reference_implementation() {
        let mut key = [0u8; 16];
        for trial in 0u64..200 {
            for (i, b) in key.iter_mut().enumerate() {
                *b = (trial as u8).wrapping_mul(31).wrapping_add(i as u8 * 7);
            }
            let (a, b) = (trial.wrapping_mul(0x9e37_79b9_7f4a_7c15), !trial << 3);
            let mut r = SipHasher13::new_with_key(&key);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&b.to_le_bytes());
            r.write(&bytes);
            assert_eq!(SipKey::new(key).hash(a, b), r.finish(), "trial {trial}");
        }
    }
}
