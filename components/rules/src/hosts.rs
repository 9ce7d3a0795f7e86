//! Addresses of `dsthost` names, as the resolver (or a test) delivers them.
//!
//! Kept apart from the policy: names resolve on their own schedule, and a new
//! policy version must not forget what the old one already knew. An entry
//! exists only while its name has at least one address; a name without an
//! entry is *unresolved* and its rules match nothing (fail closed).

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::lang::{Addr, MAX_HOST_LEN};
pub use moat_control::rules::MAX_HOST_ADDRS;

/// Most names with addresses at once: room for every name of the active
/// policy and of one being staged.
pub const MAX_HOSTS: usize = 2 * crate::policy::MAX_NAMES;

#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
/// One name and its addresses (storage; opaque).
pub struct HostRec {
    len: u8,
    name: [u8; MAX_HOST_LEN],
    naddrs: u8,
    family: [u8; MAX_HOST_ADDRS],
    addrs: [[u8; 16]; MAX_HOST_ADDRS],
}

impl HostRec {
    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.len).min(MAX_HOST_LEN)]
    }

    fn addrs(&self) -> heapless::Vec<Addr, MAX_HOST_ADDRS> {
        let mut out = heapless::Vec::new();
        for i in 0..usize::from(self.naddrs).min(MAX_HOST_ADDRS) {
            let b = self.addrs[i];
            let a = match self.family[i] {
                4 => Addr::V4([b[0], b[1], b[2], b[3]]),
                6 => Addr::V6(b),
                _ => continue,
            };
            let _ = out.push(a);
        }
        out
    }
}

/// Why addresses were not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Not a name the rule language accepts.
    BadName,
    /// Every slot holds a name still in use.
    Full,
}

/// Names and their addresses, for a state port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HostTable {
    recs: [HostRec; MAX_HOSTS],
}

impl HostTable {
    /// The addresses of `name` (empty if unresolved).
    pub fn get(&self, name: &str) -> heapless::Vec<Addr, MAX_HOST_ADDRS> {
        self.find(name).map(|i| self.recs[i].addrs()).unwrap_or_default()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.recs.iter().position(|r| r.len != 0 && r.name() == name.as_bytes())
    }

    /// Replaces the addresses of `name` (empty: forget them). When the table
    /// is full, a name for which `in_use` says false makes room.
    pub fn set(&mut self, name: &str, addrs: &[Addr], in_use: impl Fn(&str) -> bool) -> Result<(), HostError> {
        if !crate::lang::valid_host(name) {
            return Err(HostError::BadName);
        }
        let slot = match self.find(name) {
            Some(i) => i,
            None if addrs.is_empty() => return Ok(()),
            None => self
                .recs
                .iter()
                .position(|r| r.len == 0)
                .or_else(|| self.recs.iter().position(|r| !core::str::from_utf8(r.name()).is_ok_and(&in_use)))
                .ok_or(HostError::Full)?,
        };
        let r = &mut self.recs[slot];
        *r = HostRec::new_zeroed();
        if addrs.is_empty() {
            return Ok(());
        }
        r.len = name.len() as u8;
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        for (i, a) in addrs.iter().take(MAX_HOST_ADDRS).enumerate() {
            match *a {
                Addr::V4(b) => {
                    r.family[i] = 4;
                    r.addrs[i][..4].copy_from_slice(&b);
                }
                Addr::V6(b) => {
                    r.family[i] = 6;
                    r.addrs[i] = b;
                }
            }
        }
        r.naddrs = addrs.len().min(MAX_HOST_ADDRS) as u8;
        Ok(())
    }
}
