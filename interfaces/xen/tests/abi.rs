//! Layout conformance: every size, alignment, offset and constant moat-xen
//! mirrors, compared with what gcc computes from Xen's own public headers
//! (`/usr/include/xen`, package `libxen-dev`; `tests/setup` installs it).
//!
//! `abi.c` prints one `kind name value` line per fact; this test builds the
//! same list from the Rust definitions and requires the two lists to match
//! exactly, so a fact checked on one side only is a failure too.
// Runs gcc: a subprocess, which Miri cannot run (the ABI has no unsafe to check).
#![cfg(not(miri))]

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use moat_xen::console::*;
use moat_xen::evtchn::*;
use moat_xen::grant::*;
use moat_xen::hypercall::*;
use moat_xen::netif::*;
use moat_xen::ring::*;
use moat_xen::shared_info::*;
use moat_xen::start_info::*;
use moat_xen::xenbus::XenbusState;
use moat_xen::xs_wire::*;

fn c_facts() -> BTreeMap<String, i128> {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let exe = format!("{dir}/moat-xen-abi");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/abi.c");
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-Wno-unused-function", "-o", &exe, src])
        .output()
        .expect("gcc must be installed (tests/setup installs it)");
    assert!(
        out.status.success(),
        "compiling abi.c against /usr/include/xen failed (is libxen-dev installed? tests/setup installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run the ABI probe");
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();
    let mut facts = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.rsplit_once(' ').expect("kind name value");
        let v: i128 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(facts.insert(key.to_string(), v).is_none(), "duplicate fact {key}");
    }
    facts
}

struct Facts(BTreeMap<String, i128>);

impl Facts {
    fn put(&mut self, key: String, v: i128) {
        assert!(self.0.insert(key.clone(), v).is_none(), "duplicate Rust fact {key}");
    }
}

macro_rules! size {
    ($f:ident, $c:literal, $t:ty) => {
        $f.put(format!("size {}", $c), size_of::<$t>() as i128);
        $f.put(format!("align {}", $c), align_of::<$t>() as i128);
    };
}
macro_rules! off {
    ($f:ident, $c:literal, $cf:literal, $t:ty, $($field:tt)+) => {
        $f.put(format!("offset {} {}", $c, $cf), offset_of!($t, $($field)+) as i128);
    };
}
macro_rules! konst {
    ($f:ident, $c:literal, $v:expr) => {
        $f.put(format!("const {}", $c), ($v) as i128);
    };
}

fn rust_facts() -> BTreeMap<String, i128> {
    let mut f = Facts(BTreeMap::new());
    hypercalls(&mut f);
    start_info(&mut f);
    shared_info(&mut f);
    grants(&mut f);
    evtchns(&mut f);
    netif(&mut f);
    console(&mut f);
    xenstore(&mut f);
    f.0
}

fn hypercalls(f: &mut Facts) {
    konst!(f, "__HYPERVISOR_memory_op", MEMORY_OP);
    konst!(f, "__HYPERVISOR_set_timer_op", SET_TIMER_OP);
    konst!(f, "__HYPERVISOR_xen_version", XEN_VERSION);
    konst!(f, "__HYPERVISOR_console_io", CONSOLE_IO);
    konst!(f, "__HYPERVISOR_grant_table_op", GRANT_TABLE_OP);
    konst!(f, "__HYPERVISOR_vcpu_op", VCPU_OP);
    konst!(f, "__HYPERVISOR_sched_op", SCHED_OP);
    konst!(f, "__HYPERVISOR_event_channel_op", EVENT_CHANNEL_OP);
    konst!(f, "__HYPERVISOR_hvm_op", HVM_OP);
    konst!(f, "DOMID_SELF", DOMID_SELF);
    konst!(f, "DOMID_INVALID", DOMID_INVALID);
    konst!(f, "DOMID_FIRST_RESERVED", DOMID_FIRST_RESERVED);
    konst!(f, "CONSOLEIO_write", console_io::WRITE);
    konst!(f, "CONSOLEIO_read", console_io::READ);
    konst!(f, "SCHEDOP_yield", sched_op::YIELD);
    konst!(f, "SCHEDOP_block", sched_op::BLOCK);
    konst!(f, "SCHEDOP_shutdown", sched_op::SHUTDOWN);
    konst!(f, "SCHEDOP_poll", sched_op::POLL);
    konst!(f, "SHUTDOWN_poweroff", shutdown::POWEROFF);
    konst!(f, "SHUTDOWN_reboot", shutdown::REBOOT);
    konst!(f, "SHUTDOWN_suspend", shutdown::SUSPEND);
    konst!(f, "SHUTDOWN_crash", shutdown::CRASH);
    konst!(f, "SHUTDOWN_watchdog", shutdown::WATCHDOG);
    size!(f, "struct sched_shutdown", SchedShutdown);
    off!(f, "struct sched_shutdown", "reason", SchedShutdown, reason);
    size!(f, "struct sched_poll", SchedPoll);
    off!(f, "struct sched_poll", "ports", SchedPoll, ports);
    off!(f, "struct sched_poll", "nr_ports", SchedPoll, nr_ports);
    off!(f, "struct sched_poll", "timeout", SchedPoll, timeout);
    konst!(f, "XENMEM_add_to_physmap", memory_op::ADD_TO_PHYSMAP);
    konst!(f, "XENMAPSPACE_shared_info", mapspace::SHARED_INFO);
    konst!(f, "XENMAPSPACE_grant_table", mapspace::GRANT_TABLE);
    size!(f, "struct xen_add_to_physmap", XenAddToPhysmap);
    off!(f, "struct xen_add_to_physmap", "domid", XenAddToPhysmap, domid);
    off!(f, "struct xen_add_to_physmap", "size", XenAddToPhysmap, size);
    off!(f, "struct xen_add_to_physmap", "space", XenAddToPhysmap, space);
    off!(f, "struct xen_add_to_physmap", "idx", XenAddToPhysmap, idx);
    off!(f, "struct xen_add_to_physmap", "gpfn", XenAddToPhysmap, gpfn);
    konst!(f, "XENMEM_decrease_reservation", memory_op::DECREASE_RESERVATION);
    size!(f, "struct xen_memory_reservation", XenMemoryReservation);
    off!(f, "struct xen_memory_reservation", "extent_start", XenMemoryReservation, extent_start);
    off!(f, "struct xen_memory_reservation", "nr_extents", XenMemoryReservation, nr_extents);
    off!(f, "struct xen_memory_reservation", "extent_order", XenMemoryReservation, extent_order);
    off!(f, "struct xen_memory_reservation", "mem_flags", XenMemoryReservation, mem_flags);
    off!(f, "struct xen_memory_reservation", "domid", XenMemoryReservation, domid);
    konst!(f, "HVMOP_set_param", hvm_op::SET_PARAM);
    konst!(f, "HVMOP_get_param", hvm_op::GET_PARAM);
    konst!(f, "HVMOP_set_evtchn_upcall_vector", hvm_op::SET_EVTCHN_UPCALL_VECTOR);
    konst!(f, "HVM_PARAM_CALLBACK_IRQ", hvm_param::CALLBACK_IRQ);
    konst!(f, "HVM_PARAM_STORE_PFN", hvm_param::STORE_PFN);
    konst!(f, "HVM_PARAM_STORE_EVTCHN", hvm_param::STORE_EVTCHN);
    konst!(f, "HVM_PARAM_CONSOLE_PFN", hvm_param::CONSOLE_PFN);
    konst!(f, "HVM_PARAM_CONSOLE_EVTCHN", hvm_param::CONSOLE_EVTCHN);
    konst!(f, "HVM_PARAM_CALLBACK_TYPE_VECTOR", hvm_param::CALLBACK_TYPE_VECTOR);
    konst!(f, "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK >> 56", 0xFFu64 << hvm_param::CALLBACK_TYPE_SHIFT >> 56);
    size!(f, "struct xen_hvm_param", XenHvmParam);
    off!(f, "struct xen_hvm_param", "domid", XenHvmParam, domid);
    off!(f, "struct xen_hvm_param", "pad", XenHvmParam, pad);
    off!(f, "struct xen_hvm_param", "index", XenHvmParam, index);
    off!(f, "struct xen_hvm_param", "value", XenHvmParam, value);
    size!(f, "struct xen_hvm_evtchn_upcall_vector", XenHvmEvtchnUpcallVector);
    off!(f, "struct xen_hvm_evtchn_upcall_vector", "vcpu", XenHvmEvtchnUpcallVector, vcpu);
    off!(f, "struct xen_hvm_evtchn_upcall_vector", "vector", XenHvmEvtchnUpcallVector, vector);
    konst!(f, "XEN_CPUID_FIRST_LEAF", cpuid::FIRST_LEAF);
    konst!(f, "XEN_CPUID_SIGNATURE_EBX", cpuid::SIGNATURE_EBX);
    konst!(f, "XEN_CPUID_SIGNATURE_ECX", cpuid::SIGNATURE_ECX);
    konst!(f, "XEN_CPUID_SIGNATURE_EDX", cpuid::SIGNATURE_EDX);
    konst!(f, "XEN_ELFNOTE_PHYS32_ENTRY", elfnote::PHYS32_ENTRY);
    konst!(f, "VIRQ_TIMER", virq::TIMER);
}

fn start_info(f: &mut Facts) {
    konst!(f, "XEN_HVM_START_MAGIC_VALUE", XEN_HVM_START_MAGIC_VALUE);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_RAM", memmap_type::RAM);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_RESERVED", memmap_type::RESERVED);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_ACPI", memmap_type::ACPI);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_NVS", memmap_type::NVS);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_UNUSABLE", memmap_type::UNUSABLE);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_DISABLED", memmap_type::DISABLED);
    konst!(f, "XEN_HVM_MEMMAP_TYPE_PMEM", memmap_type::PMEM);
    size!(f, "struct hvm_start_info", HvmStartInfo);
    off!(f, "struct hvm_start_info", "magic", HvmStartInfo, magic);
    off!(f, "struct hvm_start_info", "version", HvmStartInfo, version);
    off!(f, "struct hvm_start_info", "flags", HvmStartInfo, flags);
    off!(f, "struct hvm_start_info", "nr_modules", HvmStartInfo, nr_modules);
    off!(f, "struct hvm_start_info", "modlist_paddr", HvmStartInfo, modlist_paddr);
    off!(f, "struct hvm_start_info", "cmdline_paddr", HvmStartInfo, cmdline_paddr);
    off!(f, "struct hvm_start_info", "rsdp_paddr", HvmStartInfo, rsdp_paddr);
    off!(f, "struct hvm_start_info", "memmap_paddr", HvmStartInfo, memmap_paddr);
    off!(f, "struct hvm_start_info", "memmap_entries", HvmStartInfo, memmap_entries);
    off!(f, "struct hvm_start_info", "reserved", HvmStartInfo, reserved);
    size!(f, "struct hvm_modlist_entry", HvmModlistEntry);
    off!(f, "struct hvm_modlist_entry", "paddr", HvmModlistEntry, paddr);
    off!(f, "struct hvm_modlist_entry", "size", HvmModlistEntry, size);
    off!(f, "struct hvm_modlist_entry", "cmdline_paddr", HvmModlistEntry, cmdline_paddr);
    off!(f, "struct hvm_modlist_entry", "reserved", HvmModlistEntry, reserved);
    size!(f, "struct hvm_memmap_table_entry", HvmMemmapTableEntry);
    off!(f, "struct hvm_memmap_table_entry", "addr", HvmMemmapTableEntry, addr);
    off!(f, "struct hvm_memmap_table_entry", "size", HvmMemmapTableEntry, size);
    off!(f, "struct hvm_memmap_table_entry", "type", HvmMemmapTableEntry, r#type);
    off!(f, "struct hvm_memmap_table_entry", "reserved", HvmMemmapTableEntry, reserved);
}

fn shared_info(f: &mut Facts) {
    konst!(f, "XEN_LEGACY_MAX_VCPUS", XEN_LEGACY_MAX_VCPUS);
    konst!(f, "EVTCHN_2L_NR_CHANNELS", EVTCHN_2L_NR_CHANNELS);
    konst!(f, "XEN_PVCLOCK_TSC_STABLE_BIT", XEN_PVCLOCK_TSC_STABLE_BIT);
    size!(f, "struct vcpu_time_info", VcpuTimeInfo);
    off!(f, "struct vcpu_time_info", "version", VcpuTimeInfo, version);
    off!(f, "struct vcpu_time_info", "pad0", VcpuTimeInfo, pad0);
    off!(f, "struct vcpu_time_info", "tsc_timestamp", VcpuTimeInfo, tsc_timestamp);
    off!(f, "struct vcpu_time_info", "system_time", VcpuTimeInfo, system_time);
    off!(f, "struct vcpu_time_info", "tsc_to_system_mul", VcpuTimeInfo, tsc_to_system_mul);
    off!(f, "struct vcpu_time_info", "tsc_shift", VcpuTimeInfo, tsc_shift);
    off!(f, "struct vcpu_time_info", "flags", VcpuTimeInfo, flags);
    off!(f, "struct vcpu_time_info", "pad1", VcpuTimeInfo, pad1);
    size!(f, "struct arch_vcpu_info", ArchVcpuInfo);
    off!(f, "struct arch_vcpu_info", "cr2", ArchVcpuInfo, cr2);
    off!(f, "struct arch_vcpu_info", "pad", ArchVcpuInfo, pad);
    size!(f, "struct vcpu_info", VcpuInfo);
    off!(f, "struct vcpu_info", "evtchn_upcall_pending", VcpuInfo, evtchn_upcall_pending);
    off!(f, "struct vcpu_info", "evtchn_upcall_mask", VcpuInfo, evtchn_upcall_mask);
    off!(f, "struct vcpu_info", "evtchn_pending_sel", VcpuInfo, evtchn_pending_sel);
    off!(f, "struct vcpu_info", "arch", VcpuInfo, arch);
    off!(f, "struct vcpu_info", "time", VcpuInfo, time);
    size!(f, "struct arch_shared_info", ArchSharedInfo);
    off!(f, "struct arch_shared_info", "max_pfn", ArchSharedInfo, max_pfn);
    off!(f, "struct arch_shared_info", "pfn_to_mfn_frame_list_list", ArchSharedInfo, pfn_to_mfn_frame_list_list);
    off!(f, "struct arch_shared_info", "nmi_reason", ArchSharedInfo, nmi_reason);
    off!(f, "struct arch_shared_info", "p2m_cr3", ArchSharedInfo, p2m_cr3);
    off!(f, "struct arch_shared_info", "p2m_vaddr", ArchSharedInfo, p2m_vaddr);
    off!(f, "struct arch_shared_info", "p2m_generation", ArchSharedInfo, p2m_generation);
    size!(f, "struct shared_info", SharedInfo);
    off!(f, "struct shared_info", "vcpu_info", SharedInfo, vcpu_info);
    off!(f, "struct shared_info", "evtchn_pending", SharedInfo, evtchn_pending);
    off!(f, "struct shared_info", "evtchn_mask", SharedInfo, evtchn_mask);
    off!(f, "struct shared_info", "wc_version", SharedInfo, wc_version);
    off!(f, "struct shared_info", "wc_sec", SharedInfo, wc_sec);
    off!(f, "struct shared_info", "wc_nsec", SharedInfo, wc_nsec);
    off!(f, "struct shared_info", "wc_sec_hi", SharedInfo, wc_sec_hi);
    off!(f, "struct shared_info", "arch", SharedInfo, arch);
}

fn grants(f: &mut Facts) {
    use moat_xen::grant::op;
    konst!(f, "GNTTABOP_map_grant_ref", op::MAP_GRANT_REF);
    konst!(f, "GNTTABOP_unmap_grant_ref", op::UNMAP_GRANT_REF);
    konst!(f, "GNTTABOP_setup_table", op::SETUP_TABLE);
    konst!(f, "GNTTABOP_copy", op::COPY);
    konst!(f, "GNTTABOP_query_size", op::QUERY_SIZE);
    konst!(f, "GNTTABOP_set_version", op::SET_VERSION);
    konst!(f, "GNTTAB_NR_RESERVED_ENTRIES", GNTTAB_NR_RESERVED_ENTRIES);
    konst!(f, "GNTTAB_RESERVED_CONSOLE", GNTTAB_RESERVED_CONSOLE);
    konst!(f, "GNTTAB_RESERVED_XENSTORE", GNTTAB_RESERVED_XENSTORE);
    konst!(f, "GTF_invalid", gtf::INVALID);
    konst!(f, "GTF_permit_access", gtf::PERMIT_ACCESS);
    konst!(f, "GTF_type_mask", gtf::TYPE_MASK);
    konst!(f, "GTF_readonly", gtf::READONLY);
    konst!(f, "GTF_reading", gtf::READING);
    konst!(f, "GTF_writing", gtf::WRITING);
    konst!(f, "GNTST_okay", status::OKAY);
    konst!(f, "GNTST_general_error", status::GENERAL_ERROR);
    konst!(f, "GNTST_bad_domain", status::BAD_DOMAIN);
    konst!(f, "GNTST_bad_gntref", status::BAD_GNTREF);
    konst!(f, "GNTST_bad_handle", status::BAD_HANDLE);
    konst!(f, "GNTST_bad_virt_addr", status::BAD_VIRT_ADDR);
    konst!(f, "GNTST_bad_dev_addr", status::BAD_DEV_ADDR);
    konst!(f, "GNTST_no_device_space", status::NO_DEVICE_SPACE);
    konst!(f, "GNTST_permission_denied", status::PERMISSION_DENIED);
    konst!(f, "GNTST_bad_page", status::BAD_PAGE);
    konst!(f, "GNTST_bad_copy_arg", status::BAD_COPY_ARG);
    konst!(f, "GNTST_address_too_big", status::ADDRESS_TOO_BIG);
    konst!(f, "GNTST_eagain", status::EAGAIN);
    konst!(f, "GNTST_no_space", status::NO_SPACE);
    konst!(f, "GNTMAP_device_map", gntmap::DEVICE_MAP);
    konst!(f, "GNTMAP_host_map", gntmap::HOST_MAP);
    konst!(f, "GNTMAP_readonly", gntmap::READONLY);
    konst!(f, "GNTCOPY_source_gref", gntcopy::SOURCE_GREF);
    konst!(f, "GNTCOPY_dest_gref", gntcopy::DEST_GREF);
    size!(f, "struct grant_entry_v1", GrantEntryV1);
    off!(f, "struct grant_entry_v1", "flags", GrantEntryV1, flags);
    off!(f, "struct grant_entry_v1", "domid", GrantEntryV1, domid);
    off!(f, "struct grant_entry_v1", "frame", GrantEntryV1, frame);
    {
        use moat_xen::grant::gntdev::*;
        size!(f, "struct ioctl_gntdev_grant_ref", IoctlGntdevGrantRef);
        off!(f, "struct ioctl_gntdev_grant_ref", "domid", IoctlGntdevGrantRef, domid);
        off!(f, "struct ioctl_gntdev_grant_ref", "ref", IoctlGntdevGrantRef, r#ref);
        size!(f, "struct ioctl_gntdev_map_grant_ref", IoctlGntdevMapGrantRef);
        off!(f, "struct ioctl_gntdev_map_grant_ref", "count", IoctlGntdevMapGrantRef, count);
        off!(f, "struct ioctl_gntdev_map_grant_ref", "pad", IoctlGntdevMapGrantRef, pad);
        off!(f, "struct ioctl_gntdev_map_grant_ref", "index", IoctlGntdevMapGrantRef, index);
        off!(f, "struct ioctl_gntdev_map_grant_ref", "refs", IoctlGntdevMapGrantRef, refs);
        konst!(f, "IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF);
    }
    size!(f, "struct gnttab_map_grant_ref", GnttabMapGrantRef);
    off!(f, "struct gnttab_map_grant_ref", "host_addr", GnttabMapGrantRef, host_addr);
    off!(f, "struct gnttab_map_grant_ref", "flags", GnttabMapGrantRef, flags);
    off!(f, "struct gnttab_map_grant_ref", "ref", GnttabMapGrantRef, r#ref);
    off!(f, "struct gnttab_map_grant_ref", "dom", GnttabMapGrantRef, dom);
    off!(f, "struct gnttab_map_grant_ref", "status", GnttabMapGrantRef, status);
    off!(f, "struct gnttab_map_grant_ref", "handle", GnttabMapGrantRef, handle);
    off!(f, "struct gnttab_map_grant_ref", "dev_bus_addr", GnttabMapGrantRef, dev_bus_addr);
    size!(f, "struct gnttab_unmap_grant_ref", GnttabUnmapGrantRef);
    off!(f, "struct gnttab_unmap_grant_ref", "host_addr", GnttabUnmapGrantRef, host_addr);
    off!(f, "struct gnttab_unmap_grant_ref", "dev_bus_addr", GnttabUnmapGrantRef, dev_bus_addr);
    off!(f, "struct gnttab_unmap_grant_ref", "handle", GnttabUnmapGrantRef, handle);
    off!(f, "struct gnttab_unmap_grant_ref", "status", GnttabUnmapGrantRef, status);
    size!(f, "struct gnttab_setup_table", GnttabSetupTable);
    off!(f, "struct gnttab_setup_table", "dom", GnttabSetupTable, dom);
    off!(f, "struct gnttab_setup_table", "nr_frames", GnttabSetupTable, nr_frames);
    off!(f, "struct gnttab_setup_table", "status", GnttabSetupTable, status);
    off!(f, "struct gnttab_setup_table", "frame_list", GnttabSetupTable, frame_list);
    size!(f, "struct gnttab_copy_ptr", GnttabCopyPtr);
    off!(f, "struct gnttab_copy_ptr", "u.ref", GnttabCopyPtr, u);
    off!(f, "struct gnttab_copy_ptr", "u.gmfn", GnttabCopyPtr, u);
    off!(f, "struct gnttab_copy_ptr", "domid", GnttabCopyPtr, domid);
    off!(f, "struct gnttab_copy_ptr", "offset", GnttabCopyPtr, offset);
    size!(f, "struct gnttab_copy", GnttabCopy);
    off!(f, "struct gnttab_copy", "source", GnttabCopy, source);
    off!(f, "struct gnttab_copy", "dest", GnttabCopy, dest);
    off!(f, "struct gnttab_copy", "len", GnttabCopy, len);
    off!(f, "struct gnttab_copy", "flags", GnttabCopy, flags);
    off!(f, "struct gnttab_copy", "status", GnttabCopy, status);
    size!(f, "struct gnttab_query_size", GnttabQuerySize);
    off!(f, "struct gnttab_query_size", "dom", GnttabQuerySize, dom);
    off!(f, "struct gnttab_query_size", "nr_frames", GnttabQuerySize, nr_frames);
    off!(f, "struct gnttab_query_size", "max_nr_frames", GnttabQuerySize, max_nr_frames);
    off!(f, "struct gnttab_query_size", "status", GnttabQuerySize, status);
}

fn evtchns(f: &mut Facts) {
    use moat_xen::evtchn::op;
    konst!(f, "EVTCHNOP_bind_interdomain", op::BIND_INTERDOMAIN);
    konst!(f, "EVTCHNOP_bind_virq", op::BIND_VIRQ);
    konst!(f, "EVTCHNOP_close", op::CLOSE);
    konst!(f, "EVTCHNOP_send", op::SEND);
    konst!(f, "EVTCHNOP_status", op::STATUS);
    konst!(f, "EVTCHNOP_alloc_unbound", op::ALLOC_UNBOUND);
    konst!(f, "EVTCHNOP_unmask", op::UNMASK);
    konst!(f, "EVTCHNSTAT_closed", stat::CLOSED);
    konst!(f, "EVTCHNSTAT_unbound", stat::UNBOUND);
    konst!(f, "EVTCHNSTAT_interdomain", stat::INTERDOMAIN);
    konst!(f, "EVTCHNSTAT_virq", stat::VIRQ);
    size!(f, "struct evtchn_alloc_unbound", EvtchnAllocUnbound);
    off!(f, "struct evtchn_alloc_unbound", "dom", EvtchnAllocUnbound, dom);
    off!(f, "struct evtchn_alloc_unbound", "remote_dom", EvtchnAllocUnbound, remote_dom);
    off!(f, "struct evtchn_alloc_unbound", "port", EvtchnAllocUnbound, port);
    size!(f, "struct evtchn_bind_interdomain", EvtchnBindInterdomain);
    off!(f, "struct evtchn_bind_interdomain", "remote_dom", EvtchnBindInterdomain, remote_dom);
    off!(f, "struct evtchn_bind_interdomain", "remote_port", EvtchnBindInterdomain, remote_port);
    off!(f, "struct evtchn_bind_interdomain", "local_port", EvtchnBindInterdomain, local_port);
    size!(f, "struct evtchn_bind_virq", EvtchnBindVirq);
    off!(f, "struct evtchn_bind_virq", "virq", EvtchnBindVirq, virq);
    off!(f, "struct evtchn_bind_virq", "vcpu", EvtchnBindVirq, vcpu);
    off!(f, "struct evtchn_bind_virq", "port", EvtchnBindVirq, port);
    size!(f, "struct evtchn_close", EvtchnClose);
    off!(f, "struct evtchn_close", "port", EvtchnClose, port);
    size!(f, "struct evtchn_send", EvtchnSend);
    off!(f, "struct evtchn_send", "port", EvtchnSend, port);
    size!(f, "struct evtchn_unmask", EvtchnUnmask);
    off!(f, "struct evtchn_unmask", "port", EvtchnUnmask, port);
    size!(f, "struct evtchn_status", EvtchnStatus);
    off!(f, "struct evtchn_status", "dom", EvtchnStatus, dom);
    off!(f, "struct evtchn_status", "port", EvtchnStatus, port);
    off!(f, "struct evtchn_status", "status", EvtchnStatus, status);
    off!(f, "struct evtchn_status", "vcpu", EvtchnStatus, vcpu);
    off!(f, "struct evtchn_status", "u", EvtchnStatus, u);
}

fn netif(f: &mut Facts) {
    off!(f, "struct netif_tx_sring", "req_prod", SringHeader, req_prod);
    off!(f, "struct netif_tx_sring", "req_event", SringHeader, req_event);
    off!(f, "struct netif_tx_sring", "rsp_prod", SringHeader, rsp_prod);
    off!(f, "struct netif_tx_sring", "rsp_event", SringHeader, rsp_event);
    off!(f, "struct netif_tx_sring", "pvt", SringHeader, pvt);
    off!(f, "struct netif_tx_sring", "__pad", SringHeader, pad);
    f.put("offset struct netif_tx_sring ring".into(), SRING_ENTRIES_OFFSET as i128);
    f.put("offset struct netif_rx_sring ring".into(), SRING_ENTRIES_OFFSET as i128);
    f.put("size union netif_tx_sring_entry".into(), NETIF_TX_ENTRY_SIZE as i128);
    f.put("align union netif_tx_sring_entry".into(), align_of::<NetifTxRequest>() as i128);
    f.put("size union netif_rx_sring_entry".into(), NETIF_RX_ENTRY_SIZE as i128);
    f.put("align union netif_rx_sring_entry".into(), align_of::<NetifRxRequest>() as i128);
    konst!(f, "__CONST_RING_SIZE(netif_tx, 4096)", NETIF_TX_RING_SIZE);
    konst!(f, "__CONST_RING_SIZE(netif_rx, 4096)", NETIF_RX_RING_SIZE);
    konst!(f, "XEN_NETIF_NR_SLOTS_MIN", XEN_NETIF_NR_SLOTS_MIN);
    konst!(f, "XEN_NETIF_MAX_TX_SIZE", XEN_NETIF_MAX_TX_SIZE);
    konst!(f, "NETTXF_csum_blank", txf::CSUM_BLANK);
    konst!(f, "NETTXF_data_validated", txf::DATA_VALIDATED);
    konst!(f, "NETTXF_more_data", txf::MORE_DATA);
    konst!(f, "NETTXF_extra_info", txf::EXTRA_INFO);
    konst!(f, "NETRXF_data_validated", rxf::DATA_VALIDATED);
    konst!(f, "NETRXF_csum_blank", rxf::CSUM_BLANK);
    konst!(f, "NETRXF_more_data", rxf::MORE_DATA);
    konst!(f, "NETRXF_extra_info", rxf::EXTRA_INFO);
    konst!(f, "NETRXF_gso_prefix", rxf::GSO_PREFIX);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_NONE", extra_type::NONE);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_GSO", extra_type::GSO);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_MCAST_ADD", extra_type::MCAST_ADD);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_MCAST_DEL", extra_type::MCAST_DEL);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_HASH", extra_type::HASH);
    konst!(f, "XEN_NETIF_EXTRA_TYPE_MAX", extra_type::MAX);
    konst!(f, "XEN_NETIF_EXTRA_FLAG_MORE", XEN_NETIF_EXTRA_FLAG_MORE);
    konst!(f, "XEN_NETIF_GSO_TYPE_NONE", gso_type::NONE);
    konst!(f, "XEN_NETIF_GSO_TYPE_TCPV4", gso_type::TCPV4);
    konst!(f, "XEN_NETIF_GSO_TYPE_TCPV6", gso_type::TCPV6);
    konst!(f, "NETIF_RSP_DROPPED", rsp::DROPPED);
    konst!(f, "NETIF_RSP_ERROR", rsp::ERROR);
    konst!(f, "NETIF_RSP_OKAY", rsp::OKAY);
    konst!(f, "NETIF_RSP_NULL", rsp::NULL);
    size!(f, "struct netif_tx_request", NetifTxRequest);
    off!(f, "struct netif_tx_request", "gref", NetifTxRequest, gref);
    off!(f, "struct netif_tx_request", "offset", NetifTxRequest, offset);
    off!(f, "struct netif_tx_request", "flags", NetifTxRequest, flags);
    off!(f, "struct netif_tx_request", "id", NetifTxRequest, id);
    off!(f, "struct netif_tx_request", "size", NetifTxRequest, size);
    size!(f, "struct netif_tx_response", NetifTxResponse);
    off!(f, "struct netif_tx_response", "id", NetifTxResponse, id);
    off!(f, "struct netif_tx_response", "status", NetifTxResponse, status);
    size!(f, "struct netif_rx_request", NetifRxRequest);
    off!(f, "struct netif_rx_request", "id", NetifRxRequest, id);
    off!(f, "struct netif_rx_request", "pad", NetifRxRequest, pad);
    off!(f, "struct netif_rx_request", "gref", NetifRxRequest, gref);
    size!(f, "struct netif_rx_response", NetifRxResponse);
    off!(f, "struct netif_rx_response", "id", NetifRxResponse, id);
    off!(f, "struct netif_rx_response", "offset", NetifRxResponse, offset);
    off!(f, "struct netif_rx_response", "flags", NetifRxResponse, flags);
    off!(f, "struct netif_rx_response", "status", NetifRxResponse, status);
    size!(f, "struct netif_extra_info", NetifExtraInfo);
    off!(f, "struct netif_extra_info", "type", NetifExtraInfo, r#type);
    off!(f, "struct netif_extra_info", "flags", NetifExtraInfo, flags);
    off!(f, "struct netif_extra_info", "u", NetifExtraInfo, u);
    let u = offset_of!(NetifExtraInfo, u);
    f.put("offset struct netif_extra_info u.gso.size".into(), (u + gso_offset::SIZE) as i128);
    f.put("offset struct netif_extra_info u.gso.type".into(), (u + gso_offset::TYPE) as i128);
    f.put("offset struct netif_extra_info u.gso.features".into(), (u + gso_offset::FEATURES) as i128);
    konst!(f, "XenbusStateUnknown", XenbusState::Unknown);
    konst!(f, "XenbusStateInitialising", XenbusState::Initialising);
    konst!(f, "XenbusStateInitWait", XenbusState::InitWait);
    konst!(f, "XenbusStateInitialised", XenbusState::Initialised);
    konst!(f, "XenbusStateConnected", XenbusState::Connected);
    konst!(f, "XenbusStateClosing", XenbusState::Closing);
    konst!(f, "XenbusStateClosed", XenbusState::Closed);
    konst!(f, "XenbusStateReconfiguring", XenbusState::Reconfiguring);
    konst!(f, "XenbusStateReconfigured", XenbusState::Reconfigured);
}

fn console(f: &mut Facts) {
    size!(f, "struct xencons_interface", XenconsInterface);
    off!(f, "struct xencons_interface", "in", XenconsInterface, r#in);
    off!(f, "struct xencons_interface", "out", XenconsInterface, out);
    off!(f, "struct xencons_interface", "in_cons", XenconsInterface, in_cons);
    off!(f, "struct xencons_interface", "in_prod", XenconsInterface, in_prod);
    off!(f, "struct xencons_interface", "out_cons", XenconsInterface, out_cons);
    off!(f, "struct xencons_interface", "out_prod", XenconsInterface, out_prod);
}

fn xenstore(f: &mut Facts) {
    size!(f, "struct xsd_sockmsg", XsdSockmsg);
    off!(f, "struct xsd_sockmsg", "type", XsdSockmsg, r#type);
    off!(f, "struct xsd_sockmsg", "req_id", XsdSockmsg, req_id);
    off!(f, "struct xsd_sockmsg", "tx_id", XsdSockmsg, tx_id);
    off!(f, "struct xsd_sockmsg", "len", XsdSockmsg, len);
    const NAMES: [&str; 22] = [
        "XS_CONTROL",
        "XS_DIRECTORY",
        "XS_READ",
        "XS_GET_PERMS",
        "XS_WATCH",
        "XS_UNWATCH",
        "XS_TRANSACTION_START",
        "XS_TRANSACTION_END",
        "XS_INTRODUCE",
        "XS_RELEASE",
        "XS_GET_DOMAIN_PATH",
        "XS_WRITE",
        "XS_MKDIR",
        "XS_RM",
        "XS_SET_PERMS",
        "XS_WATCH_EVENT",
        "XS_ERROR",
        "XS_IS_DOMAIN_INTRODUCED",
        "XS_RESUME",
        "XS_SET_TARGET",
        "XS_RESET_WATCHES",
        "XS_DIRECTORY_PART",
    ];
    for (name, t) in NAMES.iter().zip(XsdSockmsgType::ALL) {
        f.put(format!("const {name}"), t as i128);
    }
    konst!(f, "XS_TYPE_COUNT", XS_TYPE_COUNT);
    konst!(f, "XS_INVALID", XS_INVALID);
    konst!(f, "sizeof(xsd_errors) / sizeof(xsd_errors[0])", XsdError::ALL.len());
    for (i, e) in XsdError::ALL.iter().enumerate() {
        f.put(format!("error {i} {}", e.name()), e.errno() as i128);
    }
    konst!(f, "XENSTORE_RING_SIZE", XENSTORE_RING_SIZE);
    konst!(f, "XENSTORE_PAYLOAD_MAX", XENSTORE_PAYLOAD_MAX);
    konst!(f, "XENSTORE_ABS_PATH_MAX", XENSTORE_ABS_PATH_MAX);
    konst!(f, "XENSTORE_REL_PATH_MAX", XENSTORE_REL_PATH_MAX);
    konst!(f, "XENSTORE_SERVER_FEATURE_RECONNECTION", XENSTORE_SERVER_FEATURE_RECONNECTION);
    konst!(f, "XENSTORE_SERVER_FEATURE_ERROR", XENSTORE_SERVER_FEATURE_ERROR);
    konst!(f, "XENSTORE_CONNECTED", XENSTORE_CONNECTED);
    konst!(f, "XENSTORE_RECONNECT", XENSTORE_RECONNECT);
    konst!(f, "XENSTORE_ERROR_NONE", XENSTORE_ERROR_NONE);
    konst!(f, "XENSTORE_ERROR_COMM", XENSTORE_ERROR_COMM);
    konst!(f, "XENSTORE_ERROR_RINGIDX", XENSTORE_ERROR_RINGIDX);
    konst!(f, "XENSTORE_ERROR_PROTO", XENSTORE_ERROR_PROTO);
    size!(f, "struct xenstore_domain_interface", XenstoreDomainInterface);
    off!(f, "struct xenstore_domain_interface", "req", XenstoreDomainInterface, req);
    off!(f, "struct xenstore_domain_interface", "rsp", XenstoreDomainInterface, rsp);
    off!(f, "struct xenstore_domain_interface", "req_cons", XenstoreDomainInterface, req_cons);
    off!(f, "struct xenstore_domain_interface", "req_prod", XenstoreDomainInterface, req_prod);
    off!(f, "struct xenstore_domain_interface", "rsp_cons", XenstoreDomainInterface, rsp_cons);
    off!(f, "struct xenstore_domain_interface", "rsp_prod", XenstoreDomainInterface, rsp_prod);
    off!(f, "struct xenstore_domain_interface", "server_features", XenstoreDomainInterface, server_features);
    off!(f, "struct xenstore_domain_interface", "connection", XenstoreDomainInterface, connection);
    off!(f, "struct xenstore_domain_interface", "error", XenstoreDomainInterface, error);
}

#[test]
fn layouts_and_constants_match_xens_public_headers() {
    let c = c_facts();
    let rust = rust_facts();
    let mut problems = Vec::new();
    for (k, v) in &rust {
        match c.get(k) {
            Some(cv) if cv == v => {}
            Some(cv) => problems.push(format!("{k}: C says {cv}, Rust says {v}")),
            None => problems.push(format!("{k}: checked in Rust but abi.c does not print it")),
        }
    }
    for k in c.keys().filter(|k| !rust.contains_key(*k)) {
        problems.push(format!("{k}: printed by abi.c but not checked in Rust"));
    }
    assert!(problems.is_empty(), "{} mismatches:\n{}", problems.len(), problems.join("\n"));
    assert!(rust.len() > 300, "the comparison covers {} facts", rust.len());
}
