//! Per-boot entropy for the components' `init` (`Context::seed`): RDSEED or
//! RDRAND when the CPU has them, otherwise TSC jitter (weak; said at boot).

use core::arch::asm;

use crate::cpu::{cpuid, rdtsc};

/// Where seeds come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The RDSEED instruction.
    Rdseed,
    /// The RDRAND instruction.
    Rdrand,
    /// Timing jitter of the TSC only: not a secret worth the name.
    TscOnly,
}

/// The best source this CPU offers.
pub fn source() -> Source {
    if cpuid(0).0 >= 7 && crate::cpu::cpuid_sub(7, 0).1 & (1 << 18) != 0 {
        Source::Rdseed
    } else if cpuid(1).2 & (1 << 30) != 0 {
        Source::Rdrand
    } else {
        Source::TscOnly
    }
}

fn hw(source: Source) -> Option<u64> {
    for _ in 0..32 {
        let (v, ok): (u64, u8);
        // SAFETY: the instruction exists (source() checked CPUID); it only
        // writes the named registers and the carry flag.
        unsafe {
            match source {
                Source::Rdseed => {
                    asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
                }
                _ => asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack)),
            }
        }
        if ok == 1 {
            return Some(v);
        }
    }
    None
}

/// splitmix64's finaliser, to spread TSC jitter over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 32 bytes from `source`.
pub fn seed(source: Source) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut state = rdtsc();
    for chunk in out.chunks_exact_mut(8) {
        let word = match source {
            Source::TscOnly => None,
            s => hw(s),
        }
        .unwrap_or_else(|| {
            for _ in 0..64 {
                state = mix(state ^ rdtsc());
            }
            state
        });
        chunk.copy_from_slice(&(word ^ mix(rdtsc())).to_le_bytes());
    }
    out
}
