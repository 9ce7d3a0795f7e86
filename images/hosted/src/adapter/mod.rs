//! The TAP adapters that take the place of the Xen drivers at the graph's
//! edges.
//!
//! Both have the shape of a moat driver (docs/graph.md): they own one pool
//! and fill its buffers with packets from the outside (`to_csum`, returned
//! on `to_csum_free`), and they send what the NAT hands them (`from_nat`,
//! any pool, returned at once on `from_nat_free`). Between the TAP and the
//! graph they do the driver's link-layer work:
//!
//! * [`clients`] (netback's role): one TAP per client; answers ARP for every
//!   address with one MAC (as Qubes does), drops frames whose source MAC or
//!   IPv4 source is not the client's (anti-spoofing), strips Ethernet, marks
//!   partial checksums `CSUM_BLANK`; sends each packet to the client its
//!   destination address names.
//! * [`uplink`] (netfront's role): one TAP towards sys-net; answers ARP for
//!   moat's uplink address, resolves the gateway's MAC, strips Ethernet on
//!   the way in and adds it on the way out.
//!
//! IPv6 is not carried yet (counted and dropped at both edges).

pub mod clients;
pub mod link;
pub mod uplink;

use std::collections::BTreeMap;

use moat_component::{BindError, Binder, BufferOwner, Context, Fault, PacketDesc, Pool, PortDecl, Rx, Status, Tx};

/// The port shape both adapters share, with the two pool names swapped.
/// A substituted driver may declare control ports besides (its XenStore
/// conversation); the adapter binds those and leaves them idle.
pub const fn decl(own: &'static str, other: &'static str) -> [PortDecl; 6] {
    [
        PortDecl::tx("to_csum", "PacketDesc"),
        PortDecl::rx("to_csum_free", "PacketDesc"),
        PortDecl::rx("from_nat", "PacketDesc"),
        PortDecl::tx("from_nat_free", "PacketDesc"),
        PortDecl::pool_rw(own),
        PortDecl::pool_ro(other),
    ]
}

/// An adapter's ports and the pool it owns.
pub struct Edge {
    to_csum: Tx<PacketDesc>,
    to_csum_free: Rx<PacketDesc>,
    from_nat: Rx<PacketDesc>,
    from_nat_free: Tx<PacketDesc>,
    own: Pool,
    other: Pool,
    owner: BufferOwner,
    room: u32,
    /// Out of buffers or ring space in the last call.
    pub blocked: bool,
    counters: BTreeMap<&'static str, u64>,
    /// Packets into the graph.
    pub packets_in: u64,
    /// Packets out of the graph.
    pub packets_out: u64,
    /// Of those in, super-packets (segmentation offload).
    pub gso_in: u64,
    /// Of those out, super-packets.
    pub gso_out: u64,
}

impl Edge {
    /// Binds the packet ports and pools.
    pub fn bind<B: Binder>(b: &mut B, own: &'static str, other: &'static str) -> Result<Edge, Fault> {
        let own_pool = b.pool(own)?;
        if !own_pool.writable() {
            return Err(Fault::Bind(BindError::Mismatch(own)));
        }
        let owner = BufferOwner::new(*own_pool.geometry());
        Ok(Edge {
            to_csum: b.tx("to_csum")?,
            to_csum_free: b.rx("to_csum_free")?,
            from_nat: b.rx("from_nat")?,
            from_nat_free: b.tx("from_nat_free")?,
            own: own_pool,
            other: b.pool(other)?,
            owner,
            room: 0,
            blocked: false,
            counters: BTreeMap::new(),
            packets_in: 0,
            packets_out: 0,
            gso_in: 0,
            gso_out: 0,
        })
    }

    /// Counts one event.
    pub fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_default() += 1;
    }

    /// Takes buffers back from the graph; returns first, they cost nothing.
    pub fn reclaim_returns(&mut self, cx: &Context) -> Result<(), Fault> {
        self.blocked = false;
        for _ in 0..cx.budget().saturating_mul(4) {
            let Some(d) = self.to_csum_free.pop()? else { break };
            if self.owner.reclaim(&d).is_err() {
                self.count("error.bad_return");
            }
        }
        self.room = self.to_csum.free()?;
        Ok(())
    }

    /// A free buffer to receive into, if the graph has room for one more
    /// packet: the whole buffer and its descriptor.
    pub fn buffer(&mut self) -> Result<Option<(PacketDesc, &mut [u8])>, Fault> {
        if self.room == 0 {
            self.blocked = true;
            // Wake me when csum takes some.
            let _ = self.to_csum.wait_space()?;
            return Ok(None);
        }
        let Some(d) = self.owner.alloc() else {
            self.blocked = true;
            self.count("blocked.no_buffer");
            return Ok(None);
        };
        let (buf, _) = self.own.buffer_mut(&d).map_err(|_| Fault::Internal("own pool not writable"))?;
        Ok(Some((d, buf)))
    }

    /// Gives back a buffer from [`buffer`](Self::buffer) that was not sent.
    pub fn unused(&mut self, d: &PacketDesc) {
        let _ = self.owner.reclaim(d);
    }

    /// Sends `d` (a buffer from [`buffer`](Self::buffer), cut to the packet)
    /// into the graph.
    pub fn send(&mut self, d: &PacketDesc) -> Result<(), Fault> {
        if !self.to_csum.push(d)? {
            return Err(Fault::Internal("room was checked"));
        }
        self.room -= 1;
        self.packets_in += 1;
        if matches!(moat_net::meta::Gso::of(d), Ok(Some(_))) {
            self.gso_in += 1;
        }
        Ok(())
    }

    /// Takes up to a budget of packets from the graph and hands each to
    /// `out` with its bytes, then returns the buffer at once.
    pub fn drain(
        &mut self,
        cx: &Context,
        mut out: impl FnMut(&PacketDesc, &[u8]) -> Result<(), &'static str>,
    ) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = self.from_nat.pop()? else { break };
            let bytes = if d.pool == self.own.geometry().id() {
                self.own.packet(&d)
            } else if d.pool == self.other.geometry().id() {
                self.other.packet(&d)
            } else {
                Err(moat_component::DescError::WrongPool)
            };
            match bytes {
                Ok(p) => match out(&d, p) {
                    Ok(()) => {
                        self.packets_out += 1;
                        if matches!(moat_net::meta::Gso::of(&d), Ok(Some(_))) {
                            self.gso_out += 1;
                        }
                    }
                    Err(why) => self.count(why),
                },
                Err(_) => {
                    // Not a buffer we may read: count and forget (handing
                    // it back would pass the lie upstream).
                    self.count("error.bad_descriptor");
                    continue;
                }
            }
            if !self.from_nat_free.push(&d)? {
                // The free ring holds every buffer that can come this way.
                return Err(self.from_nat_free.fault());
            }
        }
        Ok(())
    }

    /// Ends a call: publishes, re-arms, asks to run again if input waits.
    pub fn finish(&mut self, cx: &mut Context) -> Result<(), Fault> {
        self.to_csum.flush(cx);
        self.from_nat_free.flush(cx);
        // Returns are wanted one by one only when out of buffers.
        if self.blocked {
            self.to_csum_free.finish(cx)?;
        } else {
            self.to_csum_free.finish_returns(cx)?;
        }
        self.from_nat.finish(cx)
    }

    /// The counters every adapter shows.
    pub fn status(&self, out: &mut dyn Status) {
        out.put("packets_in", self.packets_in);
        out.put("packets_out", self.packets_out);
        out.put("gso.in", self.gso_in);
        out.put("gso.out", self.gso_out);
        out.put("buffers_out", u64::from(self.owner.outstanding()));
        for (k, v) in &self.counters {
            out.put(k, *v);
        }
    }
}
