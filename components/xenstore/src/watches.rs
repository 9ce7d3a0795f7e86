//! The watch table: moat's own watches and those set up on behalf of client
//! components, multiplexed over one XenStore connection.
//!
//! Each watch goes on the wire with the token `m<slot>.<generation>`, so an
//! event that arrives after its watch was removed (and the slot reused) is
//! recognised as stale rather than delivered to the wrong owner. An event
//! whose path is not at or below its watch's path is refused.

use moat_xen::xenstore::{Path, PathBuf};

use crate::clients::ClientId;
use crate::jobs::parse_token;
use crate::policy::CANON_CAP;

/// Most watches at once.
pub const MAX_WATCHES: usize = 16;

/// moat's own watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Internal {
    /// `backend/vif`: client vifs.
    Vifs,
    /// `control/shutdown`.
    Shutdown,
    /// `device/vif/<devid>`: the uplink.
    Uplink,
    /// The configured probe key.
    Probe,
}

/// Who a watch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This component.
    Internal(Internal),
    /// A client component, under its own token.
    Client(ClientId, u32),
}

/// One watch.
#[derive(Clone, Debug)]
pub struct Watch {
    /// For whom.
    pub owner: Owner,
    /// The watched path, as sent.
    pub path: PathBuf<CANON_CAP>,
    /// Part of the wire token.
    pub epoch: u16,
    /// XenStore acknowledged it.
    pub active: bool,
    /// Drop the event that fires at once on registration.
    pub skip_initial: bool,
    /// An event could not be delivered: deliver one for the watched path.
    pub overflow: bool,
    /// An unwatch is in flight.
    pub removing: bool,
}

/// Why an event was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stray {
    /// Not a token of ours, or of a watch that no longer exists.
    UnknownToken,
    /// The path is not at or below the watch's.
    OutsideWatch,
}

/// The table.
pub struct Watches {
    slots: [Option<Watch>; MAX_WATCHES],
    next_epoch: u16,
}

impl Default for Watches {
    fn default() -> Self {
        Watches { slots: core::array::from_fn(|_| None), next_epoch: 1 }
    }
}

impl Watches {
    /// Adds a watch; `None` if the table is full.
    pub fn add(&mut self, owner: Owner, path: Path<'_>, skip_initial: bool) -> Option<(u8, u16)> {
        let path = PathBuf::from_path(path).ok()?;
        let slot = self.slots.iter().position(Option::is_none)?;
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1).max(1);
        self.slots[slot] =
            Some(Watch { owner, path, epoch, active: false, skip_initial, overflow: false, removing: false });
        Some((slot as u8, epoch))
    }

    /// The watch in `slot` if it still has generation `epoch`.
    pub fn get(&mut self, slot: u8, epoch: u16) -> Option<&mut Watch> {
        self.slots.get_mut(usize::from(slot))?.as_mut().filter(|w| w.epoch == epoch)
    }

    /// Removes the watch in `slot` (generation `epoch`).
    pub fn remove(&mut self, slot: u8, epoch: u16) -> Option<Watch> {
        let s = self.slots.get_mut(usize::from(slot))?;
        if s.as_ref().is_some_and(|w| w.epoch == epoch) { s.take() } else { None }
    }

    /// The client watch with this token.
    pub fn find_client(&self, client: ClientId, token: u32) -> Option<(u8, u16)> {
        self.slots.iter().enumerate().find_map(|(i, w)| match w {
            Some(w) if w.owner == Owner::Client(client, token) => Some((i as u8, w.epoch)),
            _ => None,
        })
    }

    /// The internal watch of this kind.
    pub fn find_internal(&self, kind: Internal) -> Option<(u8, u16)> {
        self.slots.iter().enumerate().find_map(|(i, w)| match w {
            Some(w) if w.owner == Owner::Internal(kind) => Some((i as u8, w.epoch)),
            _ => None,
        })
    }

    /// Matches an event to its watch; consumes the initial event of a watch
    /// that asked to skip it (`Ok(None)`).
    pub fn event(&mut self, token: &[u8], path: &Path<'_>) -> Result<Option<(Owner, u8)>, Stray> {
        let (slot, epoch) = parse_token(token).ok_or(Stray::UnknownToken)?;
        let w = self.get(slot, epoch).ok_or(Stray::UnknownToken)?;
        let wpath = w.path.path().map_err(|_| Stray::UnknownToken)?;
        if !path.is_child_of(&wpath) {
            return Err(Stray::OutsideWatch);
        }
        if w.skip_initial && path.as_bytes() == wpath.as_bytes() {
            w.skip_initial = false;
            return Ok(None);
        }
        Ok(Some((w.owner, slot)))
    }

    /// Slots of a client's watches with an undelivered event.
    pub fn overflowed(&self, client: ClientId) -> Option<u8> {
        self.slots
            .iter()
            .position(|w| {
                w.as_ref().is_some_and(|w| w.overflow && matches!(w.owner, Owner::Client(c, _) if c == client))
            })
            .map(|i| i as u8)
    }

    /// The watch in `slot`, whatever its generation.
    pub fn at(&mut self, slot: u8) -> Option<&mut Watch> {
        self.slots.get_mut(usize::from(slot))?.as_mut()
    }

    /// Watches in use.
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|w| w.is_some()).count()
    }

    /// Forgets every watch (the connection is gone).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::watch_token;

    fn p(s: &str) -> Path<'_> {
        Path::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn events_find_their_watch_and_nothing_else() {
        let mut w = Watches::default();
        let (s, g) = w.add(Owner::Internal(Internal::Vifs), p("backend/vif"), true).unwrap();
        let mut t = [0u8; 16];
        let tok = watch_token(s, g, &mut t).to_vec();
        assert_eq!(w.event(&tok, &p("backend/vif")), Ok(None), "initial fire skipped");
        assert_eq!(w.event(&tok, &p("backend/vif")), Ok(Some((Owner::Internal(Internal::Vifs), s))), "only once");
        assert_eq!(w.event(&tok, &p("backend/vif/1/0")), Ok(Some((Owner::Internal(Internal::Vifs), s))));
        assert_eq!(w.event(&tok, &p("backend/vbd/1")), Err(Stray::OutsideWatch));
        assert_eq!(w.event(b"m9.9", &p("backend/vif")), Err(Stray::UnknownToken));
        assert_eq!(w.event(b"garbage", &p("backend/vif")), Err(Stray::UnknownToken));
        w.remove(s, g).unwrap();
        let (s2, g2) = w.add(Owner::Client(ClientId::Netback, 7), p("backend/vif"), false).unwrap();
        assert_eq!(s2, s, "slot reused");
        assert_eq!(w.event(&tok, &p("backend/vif")), Err(Stray::UnknownToken), "stale generation");
        assert_eq!(w.find_client(ClientId::Netback, 7), Some((s2, g2)));
    }

    #[test]
    fn table_is_bounded() {
        let mut w = Watches::default();
        for i in 0..MAX_WATCHES {
            assert!(w.add(Owner::Client(ClientId::Netfront, i as u32), p("a"), false).is_some());
        }
        assert!(w.add(Owner::Client(ClientId::Netfront, 99), p("a"), false).is_none());
        assert_eq!(w.count(), MAX_WATCHES);
    }
}
