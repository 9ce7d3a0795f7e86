//! The rules component's two conversations: policy replacement (`policy`
//! ring, [`RulesControl`]) and connection re-checks with the NAT
//! ([`RulesToNat`] / [`NatToRules`]).
//!
//! # Replacing the policy
//!
//! A policy is too big for one frame, so it travels as a *staged* sequence on
//! the `rules.policy` ring:
//!
//! ```text
//! Begin { version, keep }            start staging (empty, or a copy of the active policy)
//! Settings { drop, inter_vm, dns }   optional; defaults: reject, drop, 10.139.1.1/.2
//! Default { policy }                 the entry for clients no Client names…
//! Rule { text } *                    …and its rules, Qubes syntax, first match wins
//! Client { ipv4, ipv6, name, policy } one entry per client (replaces one with the
//! Rule { text } *                    same identity when staging started with keep)
//! Commit { version }                 validate, compile aside, swap in one step
//! ```
//!
//! Nothing reaches packets before `Commit`: the rules component compiles the
//! staged policy into its spare tables and then switches tables between two
//! packets, so every packet is judged by exactly one complete version. A rule
//! that does not parse makes its client's entry *drop everything* (fail
//! closed, as Linux sys-firewall does) and is reported in the status; a
//! sequence that is broken as a whole (a `Rule` before any entry, capacities
//! exceeded, `Commit` for another version) is refused at `Commit` and the
//! previous policy stays.
//!
//! [`RulesControl::HostAddrs`] and [`RulesControl::Name`] are not staged: they
//! take effect at once, between two packets. `HostAddrs` gives the addresses a
//! `dsthost` name resolves to (until a name has some, its rules match
//! nothing); `Name` says which client (by IPv4 address) carries a Qubes VM
//! name, for entries that identify clients by name.
//!
//! # Re-checking connections
//!
//! The rules see every outbound packet, so a policy change applies at once to
//! open connections in that direction. The NAT, though, would keep letting
//! return traffic in for connections the new policy forbids, so:
//!
//! 1. After a swap (or an address change of a `dsthost` name, or a client
//!    name binding) the rules send [`RulesToNat::Changed`] with a bitmap of
//!    the client slots whose effective rules changed, and a new `epoch`.
//! 2. The NAT answers, for each such slot, with one or more
//!    [`NatToRules::Check`] batches naming its connections of that slot by
//!    their original (client-side) destination, protocol and port/type.
//! 3. The rules answer each batch with [`RulesToNat::Denied`]: a bitmap of
//!    the flows of that batch the *current* rules refuse, and the epoch they
//!    were judged at. The NAT removes those connections.
//!
//! Exchanges overlap freely: a `Changed` that arrives while the NAT is still
//! checking just means "check again"; a `Denied` carries the epoch it was
//! judged at, so the NAT can tell that a later `Changed` supersedes it.
//! Every `Check` gets exactly one `Denied`, in order.

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Longest rule text a [`RulesControl::Rule`] may carry.
pub const MAX_RULE_TEXT: usize = 512;
/// Most DNS addresses `specialtarget=dns` can mean.
pub const MAX_DNS: usize = 4;
/// Most addresses one `dsthost` name can have.
pub const MAX_HOST_ADDRS: usize = 8;
/// Most flows in one [`NatToRules::Check`] batch.
pub const CHECK_BATCH: usize = 16;

/// An IPv4 or IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Addr {
    /// IPv4, network byte order.
    V4([u8; 4]),
    /// IPv6, network byte order.
    V6([u8; 16]),
}

/// What a Qubes rule (or a client's default `policy`) does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Let it through.
    Accept,
    /// Refuse it (as a reject or silently, see [`DropMode`]).
    Drop,
}

/// How a refused packet is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropMode {
    /// Answer the client with ICMP administratively prohibited, as Linux
    /// sys-firewall does (`reject with icmp type admin-prohibited`); the NAT
    /// writes the answer, since it owns writable client buffers.
    #[default]
    Reject,
    /// Drop without an answer.
    Silent,
}

/// What happens to traffic from one client to another client's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InterVm {
    /// Drop it silently whatever the rules say (Linux sys-firewall's
    /// `oifgroup 2 drop`).
    #[default]
    Drop,
    /// Judge it by the sender's rules like any other destination (what
    /// qubes-mirage-firewall does, and Linux with a `custom-forward` accept).
    Rules,
}

/// The transport detail a rule can look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum L4 {
    /// None known: another protocol, or a fragment that is not the first.
    None,
    /// TCP or UDP destination port.
    Port(u16),
    /// ICMP (or ICMPv6) type.
    Icmp(u8),
}

/// What the rules look at in an outbound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowKey {
    /// Destination address.
    pub dst: Addr,
    /// IP protocol number (IPv6: the upper-layer next header).
    pub proto: u8,
    /// Port or ICMP type.
    pub l4: L4,
}

/// Policy replacement, name addresses and client names (`rules.policy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RulesControl<'a> {
    /// Start staging policy `version`, discarding any unfinished staging.
    /// With `keep`, staging starts from a copy of the active policy.
    Begin {
        /// Version the policy will have once committed.
        version: u32,
        /// Start from the active policy instead of an empty one.
        keep: bool,
    },
    /// Settings of the staged policy.
    Settings {
        /// How refused packets are refused.
        drop: DropMode,
        /// Client-to-client traffic.
        inter_vm: InterVm,
        /// Addresses `specialtarget=dns` means (Qubes: 10.139.1.1, 10.139.1.2).
        dns: Vec<Addr, MAX_DNS>,
    },
    /// Start the entry for clients that no `Client` entry names.
    Default {
        /// Action when no rule matches.
        policy: Action,
    },
    /// Start (or, when staging kept the active policy, replace) the entry of
    /// one client. At least one of the identities must be given; a client
    /// matches the entry if any given identity is its own.
    Client {
        /// The client's IPv4 address.
        ipv4: Option<[u8; 4]>,
        /// The client's IPv6 address.
        ipv6: Option<[u8; 16]>,
        /// The client's Qubes VM name (bound to an address by `Name`).
        name: Option<&'a str>,
        /// Action when no rule matches.
        policy: Action,
    },
    /// Append one rule, in Qubes syntax, to the entry last started.
    Rule {
        /// For example `action=accept proto=tcp dst4=192.0.2.0/24 dstports=443-443`.
        text: &'a str,
    },
    /// Validate, compile and swap in the staged policy.
    Commit {
        /// Must equal the staged version.
        version: u32,
    },
    /// Discard the staged policy.
    Abort,
    /// The addresses `dsthost=name` means from now on (replacing earlier
    /// ones; empty: unknown again, so its rules match nothing).
    HostAddrs {
        /// The name as written in rules.
        name: &'a str,
        /// Its addresses.
        addrs: Vec<Addr, MAX_HOST_ADDRS>,
    },
    /// The client with this IPv4 address is the Qubes VM `name` (empty name:
    /// forget the binding).
    Name {
        /// The client's IPv4 address.
        ipv4: [u8; 4],
        /// Its VM name.
        name: &'a str,
    },
}

impl RulesControl<'_> {
    /// Message name for port declarations.
    pub const NAME: &'static str = "RulesControl";
}

/// From the rules to the NAT (`rules.to_nat_ctl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RulesToNat {
    /// The rules of these client slots changed: check their connections.
    Changed {
        /// Policy version now active.
        version: u32,
        /// Counts every change of the rules' judgement (swaps, name
        /// addresses, client names).
        epoch: u32,
        /// Bit `n % 8` of byte `n / 8` set: slot `n` changed.
        slots: [u8; 32],
    },
    /// The answer to one [`NatToRules::Check`].
    Denied {
        /// Epoch the flows were judged at.
        epoch: u32,
        /// The slot the batch was about.
        slot: u8,
        /// The batch's number, as the NAT gave it.
        batch: u32,
        /// Bit `i` set: flow `i` of the batch is refused now.
        denied: u16,
    },
}

impl RulesToNat {
    /// Message name for port declarations.
    pub const NAME: &'static str = "RulesToNat";
}

/// From the NAT to the rules (`nat.to_rules_ctl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NatToRules {
    /// Judge these connections of client `slot` by the current rules.
    Check {
        /// Client slot.
        slot: u8,
        /// The NAT's number for this batch, echoed in the answer.
        batch: u32,
        /// Each connection's original destination, protocol and port/type.
        flows: Vec<FlowKey, CHECK_BATCH>,
    },
}

impl NatToRules {
    /// Message name for port declarations.
    pub const NAME: &'static str = "NatToRules";
}

/// Bitmap helpers for [`RulesToNat::Changed`].
pub mod slots {
    /// Sets slot `n`.
    pub fn set(map: &mut [u8; 32], n: u8) {
        map[usize::from(n / 8)] |= 1 << (n % 8);
    }

    /// True if slot `n` is set.
    pub fn contains(map: &[u8; 32], n: u8) -> bool {
        map[usize::from(n / 8)] & (1 << (n % 8)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_postcard() {
        let msgs = [
            RulesControl::Begin { version: 7, keep: false },
            RulesControl::Settings {
                drop: DropMode::Silent,
                inter_vm: InterVm::Rules,
                dns: Vec::from_slice(&[Addr::V4([10, 139, 1, 1]), Addr::V6([0xfd; 16])]).unwrap(),
            },
            RulesControl::Client { ipv4: Some([10, 137, 0, 5]), ipv6: None, name: Some("work"), policy: Action::Drop },
            RulesControl::Rule { text: "action=accept proto=tcp dstports=443-443" },
            RulesControl::Commit { version: 7 },
            RulesControl::HostAddrs {
                name: "example.com",
                addrs: Vec::from_slice(&[Addr::V4([192, 0, 2, 1])]).unwrap(),
            },
        ];
        for m in msgs {
            let bytes = postcard::to_allocvec(&m).unwrap();
            assert_eq!(postcard::from_bytes::<RulesControl>(&bytes).unwrap(), m);
        }
        let mut map = [0u8; 32];
        slots::set(&mut map, 253);
        slots::set(&mut map, 3);
        assert!(slots::contains(&map, 253) && slots::contains(&map, 3) && !slots::contains(&map, 4));
        let changed = RulesToNat::Changed { version: 1, epoch: 2, slots: map };
        let bytes = postcard::to_allocvec(&changed).unwrap();
        assert_eq!(postcard::from_bytes::<RulesToNat>(&bytes).unwrap(), changed);
        let check = NatToRules::Check {
            slot: 1,
            batch: 9,
            flows: Vec::from_slice(&[FlowKey { dst: Addr::V4([1, 1, 1, 1]), proto: 6, l4: L4::Port(443) }]).unwrap(),
        };
        let bytes = postcard::to_allocvec(&check).unwrap();
        assert_eq!(postcard::from_bytes::<NatToRules>(&bytes).unwrap(), check);
        assert!(postcard::from_bytes::<RulesControl>(&[42]).is_err(), "unknown variant is an error");
    }
}
