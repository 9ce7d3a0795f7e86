/* Prints the sizes, offsets and constants of Xen's public headers that
 * moat-xen mirrors, one "kind name value" per line, for tests/abi.rs. */
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include <xen/xen.h>
#include <xen/elfnote.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/console.h>
#include <xen/io/netif.h>
#include <xen/io/ring.h>
#include <xen/io/xenbus.h>
#include <xen/io/xs_wire.h>
#include <xen/sys/gntdev.h>

#define SIZE(T) printf("size %s %zu\nalign %s %zu\n", #T, sizeof(T), #T, _Alignof(T))
#define OFF(T, f) printf("offset %s %s %zu\n", #T, #f, offsetof(T, f))
#define CONST(x) printf("const %s %lld\n", #x, (long long)(x))

int main(void)
{
    /* hypercalls and their sub-operations */
    CONST(__HYPERVISOR_memory_op);
    CONST(__HYPERVISOR_set_timer_op);
    CONST(__HYPERVISOR_xen_version);
    CONST(__HYPERVISOR_console_io);
    CONST(__HYPERVISOR_grant_table_op);
    CONST(__HYPERVISOR_vcpu_op);
    CONST(__HYPERVISOR_sched_op);
    CONST(__HYPERVISOR_event_channel_op);
    CONST(__HYPERVISOR_hvm_op);
    CONST(DOMID_SELF);
    CONST(DOMID_INVALID);
    CONST(DOMID_FIRST_RESERVED);
    CONST(CONSOLEIO_write);
    CONST(CONSOLEIO_read);
    CONST(SCHEDOP_yield);
    CONST(SCHEDOP_block);
    CONST(SCHEDOP_shutdown);
    CONST(SCHEDOP_poll);
    CONST(SHUTDOWN_poweroff);
    CONST(SHUTDOWN_reboot);
    CONST(SHUTDOWN_suspend);
    CONST(SHUTDOWN_crash);
    CONST(SHUTDOWN_watchdog);
    SIZE(struct sched_shutdown);
    OFF(struct sched_shutdown, reason);
    SIZE(struct sched_poll);
    OFF(struct sched_poll, ports);
    OFF(struct sched_poll, nr_ports);
    OFF(struct sched_poll, timeout);
    CONST(XENMEM_add_to_physmap);
    CONST(XENMAPSPACE_shared_info);
    CONST(XENMAPSPACE_grant_table);
    SIZE(struct xen_add_to_physmap);
    OFF(struct xen_add_to_physmap, domid);
    OFF(struct xen_add_to_physmap, size);
    OFF(struct xen_add_to_physmap, space);
    OFF(struct xen_add_to_physmap, idx);
    OFF(struct xen_add_to_physmap, gpfn);
    CONST(XENMEM_decrease_reservation);
    SIZE(struct xen_memory_reservation);
    OFF(struct xen_memory_reservation, extent_start);
    OFF(struct xen_memory_reservation, nr_extents);
    OFF(struct xen_memory_reservation, extent_order);
    OFF(struct xen_memory_reservation, mem_flags);
    OFF(struct xen_memory_reservation, domid);
    CONST(HVMOP_set_param);
    CONST(HVMOP_get_param);
    CONST(HVMOP_set_evtchn_upcall_vector);
    CONST(HVM_PARAM_CALLBACK_IRQ);
    CONST(HVM_PARAM_STORE_PFN);
    CONST(HVM_PARAM_STORE_EVTCHN);
    CONST(HVM_PARAM_CONSOLE_PFN);
    CONST(HVM_PARAM_CONSOLE_EVTCHN);
    CONST(HVM_PARAM_CALLBACK_TYPE_VECTOR);
    CONST(HVM_PARAM_CALLBACK_IRQ_TYPE_MASK >> 56);
    SIZE(struct xen_hvm_param);
    OFF(struct xen_hvm_param, domid);
    OFF(struct xen_hvm_param, pad);
    OFF(struct xen_hvm_param, index);
    OFF(struct xen_hvm_param, value);
    SIZE(struct xen_hvm_evtchn_upcall_vector);
    OFF(struct xen_hvm_evtchn_upcall_vector, vcpu);
    OFF(struct xen_hvm_evtchn_upcall_vector, vector);
    CONST(XEN_CPUID_FIRST_LEAF);
    CONST(XEN_CPUID_SIGNATURE_EBX);
    CONST(XEN_CPUID_SIGNATURE_ECX);
    CONST(XEN_CPUID_SIGNATURE_EDX);
    CONST(XEN_ELFNOTE_PHYS32_ENTRY);
    CONST(VIRQ_TIMER);

    /* PVH start info */
    CONST(XEN_HVM_START_MAGIC_VALUE);
    CONST(XEN_HVM_MEMMAP_TYPE_RAM);
    CONST(XEN_HVM_MEMMAP_TYPE_RESERVED);
    CONST(XEN_HVM_MEMMAP_TYPE_ACPI);
    CONST(XEN_HVM_MEMMAP_TYPE_NVS);
    CONST(XEN_HVM_MEMMAP_TYPE_UNUSABLE);
    CONST(XEN_HVM_MEMMAP_TYPE_DISABLED);
    CONST(XEN_HVM_MEMMAP_TYPE_PMEM);
    SIZE(struct hvm_start_info);
    OFF(struct hvm_start_info, magic);
    OFF(struct hvm_start_info, version);
    OFF(struct hvm_start_info, flags);
    OFF(struct hvm_start_info, nr_modules);
    OFF(struct hvm_start_info, modlist_paddr);
    OFF(struct hvm_start_info, cmdline_paddr);
    OFF(struct hvm_start_info, rsdp_paddr);
    OFF(struct hvm_start_info, memmap_paddr);
    OFF(struct hvm_start_info, memmap_entries);
    OFF(struct hvm_start_info, reserved);
    SIZE(struct hvm_modlist_entry);
    OFF(struct hvm_modlist_entry, paddr);
    OFF(struct hvm_modlist_entry, size);
    OFF(struct hvm_modlist_entry, cmdline_paddr);
    OFF(struct hvm_modlist_entry, reserved);
    SIZE(struct hvm_memmap_table_entry);
    OFF(struct hvm_memmap_table_entry, addr);
    OFF(struct hvm_memmap_table_entry, size);
    OFF(struct hvm_memmap_table_entry, type);
    OFF(struct hvm_memmap_table_entry, reserved);

    /* shared info */
    CONST(XEN_LEGACY_MAX_VCPUS);
    CONST(EVTCHN_2L_NR_CHANNELS);
    CONST(XEN_PVCLOCK_TSC_STABLE_BIT);
    SIZE(struct vcpu_time_info);
    OFF(struct vcpu_time_info, version);
    OFF(struct vcpu_time_info, pad0);
    OFF(struct vcpu_time_info, tsc_timestamp);
    OFF(struct vcpu_time_info, system_time);
    OFF(struct vcpu_time_info, tsc_to_system_mul);
    OFF(struct vcpu_time_info, tsc_shift);
    OFF(struct vcpu_time_info, flags);
    OFF(struct vcpu_time_info, pad1);
    SIZE(struct arch_vcpu_info);
    OFF(struct arch_vcpu_info, cr2);
    OFF(struct arch_vcpu_info, pad);
    SIZE(struct vcpu_info);
    OFF(struct vcpu_info, evtchn_upcall_pending);
    OFF(struct vcpu_info, evtchn_upcall_mask);
    OFF(struct vcpu_info, evtchn_pending_sel);
    OFF(struct vcpu_info, arch);
    OFF(struct vcpu_info, time);
    SIZE(struct arch_shared_info);
    OFF(struct arch_shared_info, max_pfn);
    OFF(struct arch_shared_info, pfn_to_mfn_frame_list_list);
    OFF(struct arch_shared_info, nmi_reason);
    OFF(struct arch_shared_info, p2m_cr3);
    OFF(struct arch_shared_info, p2m_vaddr);
    OFF(struct arch_shared_info, p2m_generation);
    SIZE(struct shared_info);
    OFF(struct shared_info, vcpu_info);
    OFF(struct shared_info, evtchn_pending);
    OFF(struct shared_info, evtchn_mask);
    OFF(struct shared_info, wc_version);
    OFF(struct shared_info, wc_sec);
    OFF(struct shared_info, wc_nsec);
    OFF(struct shared_info, wc_sec_hi);
    OFF(struct shared_info, arch);

    /* grant tables */
    CONST(GNTTABOP_map_grant_ref);
    CONST(GNTTABOP_unmap_grant_ref);
    CONST(GNTTABOP_setup_table);
    CONST(GNTTABOP_copy);
    CONST(GNTTABOP_query_size);
    CONST(GNTTABOP_set_version);
    CONST(GNTTAB_NR_RESERVED_ENTRIES);
    CONST(GNTTAB_RESERVED_CONSOLE);
    CONST(GNTTAB_RESERVED_XENSTORE);
    CONST(GTF_invalid);
    CONST(GTF_permit_access);
    CONST(GTF_type_mask);
    CONST(GTF_readonly);
    CONST(GTF_reading);
    CONST(GTF_writing);
    CONST(GNTST_okay);
    CONST(GNTST_general_error);
    CONST(GNTST_bad_domain);
    CONST(GNTST_bad_gntref);
    CONST(GNTST_bad_handle);
    CONST(GNTST_bad_virt_addr);
    CONST(GNTST_bad_dev_addr);
    CONST(GNTST_no_device_space);
    CONST(GNTST_permission_denied);
    CONST(GNTST_bad_page);
    CONST(GNTST_bad_copy_arg);
    CONST(GNTST_address_too_big);
    CONST(GNTST_eagain);
    CONST(GNTST_no_space);
    CONST(GNTMAP_device_map);
    CONST(GNTMAP_host_map);
    CONST(GNTMAP_readonly);
    CONST(GNTCOPY_source_gref);
    CONST(GNTCOPY_dest_gref);
    SIZE(struct grant_entry_v1);
    OFF(struct grant_entry_v1, flags);
    OFF(struct grant_entry_v1, domid);
    OFF(struct grant_entry_v1, frame);
    SIZE(struct ioctl_gntdev_grant_ref);
    OFF(struct ioctl_gntdev_grant_ref, domid);
    OFF(struct ioctl_gntdev_grant_ref, ref);
    SIZE(struct ioctl_gntdev_map_grant_ref);
    OFF(struct ioctl_gntdev_map_grant_ref, count);
    OFF(struct ioctl_gntdev_map_grant_ref, pad);
    OFF(struct ioctl_gntdev_map_grant_ref, index);
    OFF(struct ioctl_gntdev_map_grant_ref, refs);
    CONST(IOCTL_GNTDEV_MAP_GRANT_REF);
    SIZE(struct gnttab_map_grant_ref);
    OFF(struct gnttab_map_grant_ref, host_addr);
    OFF(struct gnttab_map_grant_ref, flags);
    OFF(struct gnttab_map_grant_ref, ref);
    OFF(struct gnttab_map_grant_ref, dom);
    OFF(struct gnttab_map_grant_ref, status);
    OFF(struct gnttab_map_grant_ref, handle);
    OFF(struct gnttab_map_grant_ref, dev_bus_addr);
    SIZE(struct gnttab_unmap_grant_ref);
    OFF(struct gnttab_unmap_grant_ref, host_addr);
    OFF(struct gnttab_unmap_grant_ref, dev_bus_addr);
    OFF(struct gnttab_unmap_grant_ref, handle);
    OFF(struct gnttab_unmap_grant_ref, status);
    SIZE(struct gnttab_setup_table);
    OFF(struct gnttab_setup_table, dom);
    OFF(struct gnttab_setup_table, nr_frames);
    OFF(struct gnttab_setup_table, status);
    OFF(struct gnttab_setup_table, frame_list);
    SIZE(struct gnttab_copy_ptr);
    OFF(struct gnttab_copy_ptr, u.ref);
    OFF(struct gnttab_copy_ptr, u.gmfn);
    OFF(struct gnttab_copy_ptr, domid);
    OFF(struct gnttab_copy_ptr, offset);
    SIZE(struct gnttab_copy);
    OFF(struct gnttab_copy, source);
    OFF(struct gnttab_copy, dest);
    OFF(struct gnttab_copy, len);
    OFF(struct gnttab_copy, flags);
    OFF(struct gnttab_copy, status);
    SIZE(struct gnttab_query_size);
    OFF(struct gnttab_query_size, dom);
    OFF(struct gnttab_query_size, nr_frames);
    OFF(struct gnttab_query_size, max_nr_frames);
    OFF(struct gnttab_query_size, status);

    /* event channels */
    CONST(EVTCHNOP_bind_interdomain);
    CONST(EVTCHNOP_bind_virq);
    CONST(EVTCHNOP_close);
    CONST(EVTCHNOP_send);
    CONST(EVTCHNOP_status);
    CONST(EVTCHNOP_alloc_unbound);
    CONST(EVTCHNOP_unmask);
    CONST(EVTCHNSTAT_closed);
    CONST(EVTCHNSTAT_unbound);
    CONST(EVTCHNSTAT_interdomain);
    CONST(EVTCHNSTAT_virq);
    SIZE(struct evtchn_alloc_unbound);
    OFF(struct evtchn_alloc_unbound, dom);
    OFF(struct evtchn_alloc_unbound, remote_dom);
    OFF(struct evtchn_alloc_unbound, port);
    SIZE(struct evtchn_bind_interdomain);
    OFF(struct evtchn_bind_interdomain, remote_dom);
    OFF(struct evtchn_bind_interdomain, remote_port);
    OFF(struct evtchn_bind_interdomain, local_port);
    SIZE(struct evtchn_bind_virq);
    OFF(struct evtchn_bind_virq, virq);
    OFF(struct evtchn_bind_virq, vcpu);
    OFF(struct evtchn_bind_virq, port);
    SIZE(struct evtchn_close);
    OFF(struct evtchn_close, port);
    SIZE(struct evtchn_send);
    OFF(struct evtchn_send, port);
    SIZE(struct evtchn_unmask);
    OFF(struct evtchn_unmask, port);
    SIZE(struct evtchn_status);
    OFF(struct evtchn_status, dom);
    OFF(struct evtchn_status, port);
    OFF(struct evtchn_status, status);
    OFF(struct evtchn_status, vcpu);
    OFF(struct evtchn_status, u);

    /* shared rings and netif */
    OFF(struct netif_tx_sring, req_prod);
    OFF(struct netif_tx_sring, req_event);
    OFF(struct netif_tx_sring, rsp_prod);
    OFF(struct netif_tx_sring, rsp_event);
    OFF(struct netif_tx_sring, pvt);
    OFF(struct netif_tx_sring, __pad);
    OFF(struct netif_tx_sring, ring);
    OFF(struct netif_rx_sring, ring);
    SIZE(union netif_tx_sring_entry);
    SIZE(union netif_rx_sring_entry);
    CONST(__CONST_RING_SIZE(netif_tx, 4096));
    CONST(__CONST_RING_SIZE(netif_rx, 4096));
    CONST(XEN_NETIF_NR_SLOTS_MIN);
    CONST(XEN_NETIF_MAX_TX_SIZE);
    CONST(NETTXF_csum_blank);
    CONST(NETTXF_data_validated);
    CONST(NETTXF_more_data);
    CONST(NETTXF_extra_info);
    CONST(NETRXF_data_validated);
    CONST(NETRXF_csum_blank);
    CONST(NETRXF_more_data);
    CONST(NETRXF_extra_info);
    CONST(NETRXF_gso_prefix);
    CONST(XEN_NETIF_EXTRA_TYPE_NONE);
    CONST(XEN_NETIF_EXTRA_TYPE_GSO);
    CONST(XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
    CONST(XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
    CONST(XEN_NETIF_EXTRA_TYPE_HASH);
    CONST(XEN_NETIF_EXTRA_TYPE_MAX);
    CONST(XEN_NETIF_EXTRA_FLAG_MORE);
    CONST(XEN_NETIF_GSO_TYPE_NONE);
    CONST(XEN_NETIF_GSO_TYPE_TCPV4);
    CONST(XEN_NETIF_GSO_TYPE_TCPV6);
    CONST(NETIF_RSP_DROPPED);
    CONST(NETIF_RSP_ERROR);
    CONST(NETIF_RSP_OKAY);
    CONST(NETIF_RSP_NULL);
    SIZE(struct netif_tx_request);
    OFF(struct netif_tx_request, gref);
    OFF(struct netif_tx_request, offset);
    OFF(struct netif_tx_request, flags);
    OFF(struct netif_tx_request, id);
    OFF(struct netif_tx_request, size);
    SIZE(struct netif_tx_response);
    OFF(struct netif_tx_response, id);
    OFF(struct netif_tx_response, status);
    SIZE(struct netif_rx_request);
    OFF(struct netif_rx_request, id);
    OFF(struct netif_rx_request, pad);
    OFF(struct netif_rx_request, gref);
    SIZE(struct netif_rx_response);
    OFF(struct netif_rx_response, id);
    OFF(struct netif_rx_response, offset);
    OFF(struct netif_rx_response, flags);
    OFF(struct netif_rx_response, status);
    SIZE(struct netif_extra_info);
    OFF(struct netif_extra_info, type);
    OFF(struct netif_extra_info, flags);
    OFF(struct netif_extra_info, u);
    OFF(struct netif_extra_info, u.gso.size);
    OFF(struct netif_extra_info, u.gso.type);
    OFF(struct netif_extra_info, u.gso.features);
    CONST(XenbusStateUnknown);
    CONST(XenbusStateInitialising);
    CONST(XenbusStateInitWait);
    CONST(XenbusStateInitialised);
    CONST(XenbusStateConnected);
    CONST(XenbusStateClosing);
    CONST(XenbusStateClosed);
    CONST(XenbusStateReconfiguring);
    CONST(XenbusStateReconfigured);

    /* console */
    SIZE(struct xencons_interface);
    OFF(struct xencons_interface, in);
    OFF(struct xencons_interface, out);
    OFF(struct xencons_interface, in_cons);
    OFF(struct xencons_interface, in_prod);
    OFF(struct xencons_interface, out_cons);
    OFF(struct xencons_interface, out_prod);

    /* XenStore */
    SIZE(struct xsd_sockmsg);
    OFF(struct xsd_sockmsg, type);
    OFF(struct xsd_sockmsg, req_id);
    OFF(struct xsd_sockmsg, tx_id);
    OFF(struct xsd_sockmsg, len);
    CONST(XS_CONTROL);
    CONST(XS_DIRECTORY);
    CONST(XS_READ);
    CONST(XS_GET_PERMS);
    CONST(XS_WATCH);
    CONST(XS_UNWATCH);
    CONST(XS_TRANSACTION_START);
    CONST(XS_TRANSACTION_END);
    CONST(XS_INTRODUCE);
    CONST(XS_RELEASE);
    CONST(XS_GET_DOMAIN_PATH);
    CONST(XS_WRITE);
    CONST(XS_MKDIR);
    CONST(XS_RM);
    CONST(XS_SET_PERMS);
    CONST(XS_WATCH_EVENT);
    CONST(XS_ERROR);
    CONST(XS_IS_DOMAIN_INTRODUCED);
    CONST(XS_RESUME);
    CONST(XS_SET_TARGET);
    CONST(XS_RESET_WATCHES);
    CONST(XS_DIRECTORY_PART);
    CONST(XS_TYPE_COUNT);
    CONST(XS_INVALID);
    CONST(sizeof(xsd_errors) / sizeof(xsd_errors[0]));
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        printf("error %zu %s %d\n", i, xsd_errors[i].errstring, xsd_errors[i].errnum);
    CONST(XENSTORE_RING_SIZE);
    CONST(XENSTORE_PAYLOAD_MAX);
    CONST(XENSTORE_ABS_PATH_MAX);
    CONST(XENSTORE_REL_PATH_MAX);
    CONST(XENSTORE_SERVER_FEATURE_RECONNECTION);
    CONST(XENSTORE_SERVER_FEATURE_ERROR);
    CONST(XENSTORE_CONNECTED);
    CONST(XENSTORE_RECONNECT);
    CONST(XENSTORE_ERROR_NONE);
    CONST(XENSTORE_ERROR_COMM);
    CONST(XENSTORE_ERROR_RINGIDX);
    CONST(XENSTORE_ERROR_PROTO);
    SIZE(struct xenstore_domain_interface);
    OFF(struct xenstore_domain_interface, req);
    OFF(struct xenstore_domain_interface, rsp);
    OFF(struct xenstore_domain_interface, req_cons);
    OFF(struct xenstore_domain_interface, req_prod);
    OFF(struct xenstore_domain_interface, rsp_cons);
    OFF(struct xenstore_domain_interface, rsp_prod);
    OFF(struct xenstore_domain_interface, server_features);
    OFF(struct xenstore_domain_interface, connection);
    OFF(struct xenstore_domain_interface, error);
    return 0;
}
