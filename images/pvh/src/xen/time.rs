//! Xen's per-vCPU time record turned into nanoseconds (pure arithmetic, so
//! the host tests in images/pvh-test include this file and check it).

/// `((delta << shift) * mul) >> 32`, the `vcpu_time_info` scaling, with a
/// negative `shift` meaning a right shift.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift < 0 { delta >> shift.unsigned_abs().min(63) } else { delta << (shift as u32).min(63) };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// System time (ns since Xen booted the domain's clock) at TSC `tsc`, from
/// one consistent snapshot of the record.
pub fn system_time(system_time: u64, tsc_timestamp: u64, mul: u32, shift: i8, tsc: u64) -> u64 {
    system_time.wrapping_add(scale_delta(tsc.wrapping_sub(tsc_timestamp), mul, shift))
}
