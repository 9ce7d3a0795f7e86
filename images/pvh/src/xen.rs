//! Xen detection. The rest of the platform layer (hypercall page,
//! shared_info, event channels, grant table, console and XenStore rings, the
//! Xen clock) builds on `moat-xen`'s ABI types.

use crate::cpu::cpuid;

/// What CPUID says about the hypervisor.
#[derive(Clone, Copy, Debug)]
pub struct XenInfo {
    /// The CPUID leaf where Xen's leaves start (0x40000000 + k * 0x100).
    pub base: u32,
    /// Xen major version.
    pub major: u32,
    /// Xen minor version.
    pub minor: u32,
    /// Number of hypercall pages (leaf base + 2, eax).
    pub pages: u32,
    /// The MSR that takes the hypercall page's address (leaf base + 2, ebx).
    pub msr: u32,
}

/// Finds Xen's CPUID leaves: a hypervisor may put them at any multiple of
/// 0x100 above 0x40000000 (after, say, Viridian's), signature
/// "XenVMMXenVMM".
pub fn detect() -> Option<XenInfo> {
    // CPUID.1:ECX bit 31: running under a hypervisor.
    if cpuid(1).2 & (1 << 31) == 0 {
        return None;
    }
    (0x4000_0000u32..0x4001_0000).step_by(0x100).find_map(|base| {
        let (max, b, c, d) = cpuid(base);
        let sig = [b.to_le_bytes(), c.to_le_bytes(), d.to_le_bytes()];
        if sig != [*b"XenV", *b"MMXe", *b"nVMM"] || max < base + 2 {
            return None;
        }
        let (version, ..) = cpuid(base + 1);
        let (pages, msr, ..) = cpuid(base + 2);
        Some(XenInfo { base, major: version >> 16, minor: version & 0xffff, pages, msr })
    })
}
