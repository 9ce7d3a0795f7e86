//! The reference interpreter: the rules read top to bottom, the first that
//! matches decides. Slow and obviously right; the compiled classifier
//! ([`crate::compile`]) must give the same answer for every packet, which the
//! property tests check.

use moat_control::rules::{FlowKey, L4};

use crate::hosts::HostTable;
use crate::lang::{Addr, Dst, Proto, Rule};
use crate::policy::{NameId, PolicyStore};

/// True if `rule` matches `key`. `dns` is what `specialtarget=dns` means;
/// `host` gives a name's addresses.
pub fn matches<H>(rule: &Rule<NameId>, key: &FlowKey, dns: &[Addr], host: H) -> bool
where
    H: Fn(NameId) -> bool,
{
    let v6 = matches!(key.dst, Addr::V6(_));
    let dst_ok = match rule.dst {
        Dst::Any => true,
        Dst::Net(p) => p.contains(key.dst),
        Dst::Host(n) => host(n),
    };
    let proto_ok = match rule.proto {
        None => true,
        Some(Proto::Tcp) => key.proto == 6,
        Some(Proto::Udp) => key.proto == 17,
        Some(Proto::Icmp) => key.proto == if v6 { 58 } else { 1 },
    };
    let ports_ok = match rule.ports {
        None => true,
        Some(p) => matches!(key.l4, L4::Port(n) if p.contains(n)),
    };
    let icmp_ok = match rule.icmp_type {
        None => true,
        Some(t) => key.l4 == L4::Icmp(t),
    };
    // Linux sys-firewall: a DNS server, TCP or UDP, port 53; a rule whose own
    // dstports say otherwise is skipped altogether.
    let dns_ok = !rule.dns
        || (dns.contains(&key.dst)
            && (key.proto == 6 || key.proto == 17)
            && key.l4 == L4::Port(53)
            && rule.ports.is_none_or(|p| (p.lo, p.hi) == (53, 53)));
    dst_ok && proto_ok && ports_ok && icmp_ok && dns_ok
}

/// The number (in the policy's rule list) of the first rule of entry `entry`
/// that matches `key`.
pub fn first_match(p: &PolicyStore, entry: usize, key: &FlowKey, hosts: &HostTable) -> Option<usize> {
    let e = p.entry(entry)?;
    let dns = p.settings().dns;
    e.rules.into_iter().find(|&g| {
        p.rule(g).is_some_and(|r| {
            matches(&r, key, &dns, |n| p.name(n).is_some_and(|name| hosts.get(name).contains(&key.dst)))
        })
    })
}
