//! Traffic: planning each round's batch of ops (connects and teardowns,
//! notifications, copies out of and into clients' pages), and finishing the
//! work when the batch comes back.
//!
//! One batch is in flight at a time. Requests consumed from a ring in a
//! round are answered when the batch comes back, in ring order, so
//! responses always land in the slots of their requests.

use heapless::Vec;
use moat_component::{Fault, PacketDesc};
use moat_net::ethernet::ethertype;
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_xen::netif::{NetifRxRequest, NetifRxResponse, NetifTxResponse, rsp, rxf, txf};
use moat_xen::ops::{DEVICE_SPACE, Op, status};
use moat_xen::sring::{BackRing, Sring};
use zerocopy::FromBytes;

use crate::link::{self, Kind};
use crate::tx::{self, MAX_SLOTS, Parse};
use crate::vif::{ARP_SLOTS, CloseKind, Phase, need};
use crate::{MAX_VIFS, Netback, NetbackPorts, RX_INFLIGHT, TX_INFLIGHT};

/// Ethernet header length.
const ETH: u32 = moat_net::ethernet::HEADER_LEN as u32;
/// Where a client frame starts in a buffer: the IP packet then sits at
/// [`HEADROOM`].
const FRAME_AT: u32 = HEADROOM - ETH;
/// Offsets in a vif's local page.
const TEMPLATE_V4: u32 = 0;
const TEMPLATE_V6: u32 = 16;
const ARP_AT: u32 = 64;

/// What an op was for, in its tag: kind, vif slot, index.
mod tag {
    pub const TX: u32 = 1;
    pub const RX: u32 = 2;
    pub const BIND: u32 = 3;
    pub const MAP_TX: u32 = 4;
    pub const MAP_RX: u32 = 5;
    pub const UNMAP_TX: u32 = 6;
    pub const UNMAP_RX: u32 = 7;
    pub const CLOSE: u32 = 8;
    pub const SEND: u32 = 9;

    pub fn make(kind: u32, slot: usize, index: usize) -> u32 {
        kind << 28 | (slot as u32) << 20 | index as u32
    }

    pub fn split(t: u32) -> (u32, usize, usize) {
        (t >> 28, ((t >> 20) & 0xff) as usize, (t & 0xf_ffff) as usize)
    }
}

/// A client packet whose copies are in flight.
#[derive(Clone, Copy, Debug)]
pub struct TxPkt {
    slot: u8,
    slots: u8,
    ids: [u16; MAX_SLOTS],
    extras: u32,
    desc: Option<PacketDesc>,
    total: u16,
    flags: u16,
    error: Option<tx::Malformed>,
    ok: bool,
}

/// A frame for a client whose copies are in flight.
#[derive(Clone, Copy, Debug)]
pub struct RxPkt {
    slot: u8,
    id: u16,
    /// The packet (`None`: an ARP reply from the vif's local page).
    desc: Option<PacketDesc>,
    len: u16,
    csum_ok: bool,
    ok: bool,
}

fn window_ring(p: &NetbackPorts, page: u32, entry: usize) -> Option<BackRing> {
    let region = p.xen.window_page(page)?;
    Some(BackRing::new(Sring::new(region, entry).ok()?))
}

impl Netback {
    /// Stages ops for one round, vifs in turn.
    pub(crate) fn plan(&mut self, p: &mut NetbackPorts) -> Result<(), Fault> {
        let mut csum_room = p.to_csum.free()?;
        let n = usize::from(self.config.max_clients);
        let start = self.rr_data;
        self.rr_data = (self.rr_data + 1) % n;
        for k in 0..n {
            let slot = (start + k) % n;
            if p.xen.room() < 4 {
                break;
            }
            self.plan_control(p, slot);
            if !self.vifs[slot].connected() {
                continue;
            }
            if self.vifs[slot].notify {
                let h = self.vifs[slot].handle.expect("connected vifs hold a channel");
                self.push(p, Op::send(h), tag::SEND, slot, 0);
                self.vifs[slot].notify = false;
            }
            if self.vifs[slot].tx_kick {
                self.plan_tx(p, slot, &mut csum_room);
            }
            if self.vifs[slot].connected() && self.vifs[slot].rx_kick {
                self.plan_rx(p, slot)?;
            }
        }
        // Packets answered without a copy (malformed ones) still come back
        // with a batch, so they are answered in order with the rest.
        if p.xen.staged() == 0 && !(self.tx_inflight.is_empty() && self.rx_inflight.is_empty()) {
            let _ = p.xen.push(Op::ZERO.tagged(tag::make(0, MAX_VIFS, 0)));
        }
        Ok(())
    }

    fn push(&mut self, p: &mut NetbackPorts, op: Op, kind: u32, slot: usize, index: usize) -> bool {
        if p.xen.push(op.tagged(tag::make(kind, slot, index))).is_err() {
            return false;
        }
        self.vifs[slot].ops += 1;
        true
    }

    /// Connect and teardown ops.
    fn plan_control(&mut self, p: &mut NetbackPorts, slot: usize) {
        let v = &self.vifs[slot];
        let Some(fid) = v.info.as_ref().map(|i| i.frontend_id) else { return };
        let keys = v.keys;
        let (tx_page, rx_page) = (2 * slot as u32, 2 * slot as u32 + 1);
        if v.phase == Phase::Connecting {
            if v.want_bind && self.push(p, Op::bind(fid, keys.port), tag::BIND, slot, 0) {
                self.vifs[slot].want_bind = false;
            }
            if self.vifs[slot].want_map_tx && self.push(p, Op::map(fid, keys.tx_ref, tx_page), tag::MAP_TX, slot, 0) {
                self.vifs[slot].want_map_tx = false;
            }
            if self.vifs[slot].want_map_rx && self.push(p, Op::map(fid, keys.rx_ref, rx_page), tag::MAP_RX, slot, 0) {
                self.vifs[slot].want_map_rx = false;
            }
            return;
        }
        if v.phase != Phase::Closing || v.ops > 0 || v.releasing > 0 {
            return;
        }
        if !v.holds() {
            if self.vifs[slot].was_connected {
                self.vifs[slot].was_connected = false;
                self.counts.disconnects += 1;
            }
            self.vifs[slot].released();
            return;
        }
        let v = &self.vifs[slot];
        let (tx_mapped, rx_mapped, handle) = (v.tx_mapped, v.rx_mapped, v.handle);
        if tx_mapped && self.push(p, Op::unmap(tx_page), tag::UNMAP_TX, slot, 0) {
            self.vifs[slot].releasing += 1;
        }
        if rx_mapped && self.push(p, Op::unmap(rx_page), tag::UNMAP_RX, slot, 0) {
            self.vifs[slot].releasing += 1;
        }
        if let Some(h) = handle
            && self.push(p, Op::close(h), tag::CLOSE, slot, 0)
        {
            self.vifs[slot].releasing += 1;
        }
    }

    fn fatal(&mut self, slot: usize) {
        self.counts.fatal += 1;
        self.vifs[slot].teardown(CloseKind::Error);
    }

    /// Takes up to `tx_per_round` packets off a vif's TX ring and stages
    /// their copies.
    fn plan_tx(&mut self, p: &mut NetbackPorts, slot: usize, csum_room: &mut u32) {
        let fid = self.vifs[slot].info.as_ref().map_or(0, |i| i.frontend_id);
        let pool = p.client_buffers.geometry().id();
        for _ in 0..self.config.tx_per_round {
            let Some(ring) = self.vifs[slot].tx.as_mut() else { return };
            let avail = match ring.pending() {
                Ok(a) => a,
                Err(_) => return self.fatal(slot),
            };
            if avail == 0 {
                match ring.final_check() {
                    Ok(true) => continue,
                    Ok(false) => self.vifs[slot].tx_kick = false,
                    Err(_) => self.fatal(slot),
                }
                return;
            }
            let ring = *ring;
            let pkt = match tx::parse(avail, |k| ring.peek_raw(k), self.max_frame) {
                Parse::Incomplete => {
                    let ring = self.vifs[slot].tx.as_mut().expect("checked");
                    match ring.wait_for_more() {
                        Ok(true) => {}
                        Ok(false) => self.vifs[slot].tx_kick = false,
                        Err(_) => self.fatal(slot),
                    }
                    return;
                }
                Parse::Fatal(_) => return self.fatal(slot),
                Parse::Packet(pkt) => pkt,
            };
            let frags = &pkt.frags[..usize::from(pkt.nfrags)];
            let copies = if pkt.error.is_none() { frags.iter().filter(|f| f.size > 0).count() } else { 0 };
            if p.xen.room() < copies + 2 || self.tx_inflight.is_full() {
                return;
            }
            let desc = if pkt.error.is_none() {
                if *csum_room == 0 {
                    return;
                }
                let Some(d) = self.owner.alloc() else {
                    self.starved = true;
                    self.counts.tx_no_buffer += 1;
                    return;
                };
                *csum_room -= 1;
                Some(d)
            } else {
                None
            };
            let index = self.tx_inflight.len();
            if let Some(d) = desc {
                let mut at = d.offset + FRAME_AT;
                for f in frags.iter().filter(|f| f.size > 0) {
                    let op = Op::copy_in(fid, f.gref, f.offset, pool, at, f.size);
                    let pushed = self.push(p, op, tag::TX, slot, index);
                    debug_assert!(pushed, "room was checked");
                    at += u32::from(f.size);
                }
            }
            let mut ring = ring;
            ring.consume(u32::from(pkt.slots));
            self.vifs[slot].tx = Some(ring);
            let rec = TxPkt {
                slot: slot as u8,
                slots: pkt.slots,
                ids: pkt.ids,
                extras: pkt.extras,
                desc,
                total: pkt.total,
                flags: pkt.flags,
                error: pkt.error,
                ok: true,
            };
            let _ = self.tx_inflight.push(rec);
        }
    }

    /// Gives a vif up to `rx_per_round` frames, ARP replies first.
    fn plan_rx(&mut self, p: &mut NetbackPorts, slot: usize) -> Result<(), Fault> {
        let fid = self.vifs[slot].info.as_ref().map_or(0, |i| i.frontend_id);
        let local = slot as u32 * moat_xen::PAGE_SIZE as u32;
        let q = usize::from(self.config.rx_queue);
        for _ in 0..self.config.rx_per_round {
            let v = &self.vifs[slot];
            let arp = usize::from(v.arp_head);
            if v.arp_len[arp] == 0 && v.rxq_len == 0 {
                return Ok(());
            }
            let Some(ring) = self.vifs[slot].rx.as_mut() else { return Ok(()) };
            let avail = match ring.pending() {
                Ok(a) => a,
                Err(_) => {
                    self.fatal(slot);
                    return Ok(());
                }
            };
            if avail == 0 {
                match ring.final_check() {
                    Ok(true) => continue,
                    Ok(false) => self.vifs[slot].rx_kick = false,
                    Err(_) => self.fatal(slot),
                }
                return Ok(());
            }
            if p.xen.room() < 4 || self.rx_inflight.is_full() {
                return Ok(());
            }
            let req = NetifRxRequest::read_from_prefix(&ring.peek_raw(0)).map(|(r, _)| r).expect("8 of 16 bytes");
            let index = self.rx_inflight.len();
            let v = &self.vifs[slot];
            let rec = if v.arp_len[arp] > 0 {
                let len = u16::from(v.arp_len[arp]);
                let op = Op::copy_out(fid, req.gref, 0, DEVICE_SPACE, local + ARP_AT + arp as u32 * 64, len);
                self.push(p, op, tag::RX, slot, index);
                let v = &mut self.vifs[slot];
                v.arp_len[arp] = 0;
                v.arp_head = ((arp + 1) % ARP_SLOTS) as u8;
                RxPkt { slot: slot as u8, id: req.id, desc: None, len, csum_ok: false, ok: true }
            } else {
                let rxq = p.rxq.as_deref_mut().expect("bound");
                let at = slot * q + usize::from(v.rxq_head);
                let d = rxq[at];
                let v = &mut self.vifs[slot];
                v.rxq_head = ((usize::from(v.rxq_head) + 1) % q) as u16;
                v.rxq_len -= 1;
                let pool =
                    if d.pool == p.client_buffers.geometry().id() { &p.client_buffers } else { &p.uplink_buffers };
                let template = match pool.packet(&d).ok().and_then(|b| b.first()).map(|b| b >> 4) {
                    Some(4) => TEMPLATE_V4,
                    Some(6) => TEMPLATE_V6,
                    _ => u32::MAX,
                };
                if template == u32::MAX || d.len + ETH > moat_xen::PAGE_SIZE as u32 {
                    self.counts.rx_bad_packet += 1;
                    self.give_nat(p, d)?;
                    continue;
                }
                let head = Op::copy_out(fid, req.gref, 0, DEVICE_SPACE, local + template, ETH as u16);
                let body = Op::copy_out(fid, req.gref, ETH as u16, d.pool, d.offset, d.len as u16);
                self.push(p, head, tag::RX, slot, index);
                self.push(p, body, tag::RX, slot, index);
                let csum_ok = d.flags & flags::CSUM_OK != 0;
                RxPkt { slot: slot as u8, id: req.id, desc: Some(d), len: (d.len + ETH) as u16, csum_ok, ok: true }
            };
            self.vifs[slot].rx.as_mut().expect("checked").consume(1);
            let _ = self.rx_inflight.push(rec);
        }
        Ok(())
    }

    /// The batch came back: connects, teardowns, packets.
    pub(crate) fn completed(&mut self, p: &mut NetbackPorts, n: usize) -> Result<(), Fault> {
        for i in 0..n {
            let Some(op) = p.xen.result(i) else { continue };
            let (kind, slot, index) = tag::split(op.tag);
            if slot >= MAX_VIFS {
                continue; // the carrier of a batch with no other ops
            }
            if matches!(op.status, status::DENIED | status::INVALID | status::NO_SPACE) {
                self.counts.ops_refused += 1;
            }
            let v = &mut self.vifs[slot];
            v.ops = v.ops.saturating_sub(1);
            match kind {
                tag::TX => {
                    if let Some(t) = self.tx_inflight.get_mut(index) {
                        t.ok &= op.ok();
                    }
                }
                tag::RX => {
                    if let Some(r) = self.rx_inflight.get_mut(index) {
                        r.ok &= op.ok();
                    }
                }
                tag::BIND => match op.ok() {
                    true => v.handle = Some(op.handle),
                    false => v.connect_failed = true,
                },
                tag::MAP_TX => match op.ok() {
                    true => v.tx_mapped = true,
                    false => v.connect_failed = true,
                },
                tag::MAP_RX => match op.ok() {
                    true => v.rx_mapped = true,
                    false => v.connect_failed = true,
                },
                tag::UNMAP_TX | tag::UNMAP_RX | tag::CLOSE => {
                    // Whatever Xen said, the slot is not used again for it.
                    match kind {
                        tag::UNMAP_TX => v.tx_mapped = false,
                        tag::UNMAP_RX => v.rx_mapped = false,
                        _ => v.handle = None,
                    }
                    v.releasing = v.releasing.saturating_sub(1);
                }
                _ => {}
            }
        }
        let mut touched = 0u64;
        let txs: Vec<TxPkt, TX_INFLIGHT> = core::mem::take(&mut self.tx_inflight);
        for t in &txs {
            touched |= 1 << t.slot;
            self.finish_tx(p, t)?;
        }
        let rxs: Vec<RxPkt, RX_INFLIGHT> = core::mem::take(&mut self.rx_inflight);
        for r in &rxs {
            touched |= 1 << r.slot;
            self.finish_rx(p, r)?;
        }
        for slot in 0..MAX_VIFS {
            let v = &mut self.vifs[slot];
            if touched & (1 << slot) != 0 && v.connected() {
                let a = v.tx.as_mut().is_some_and(|r| r.publish());
                let b = v.rx.as_mut().is_some_and(|r| r.publish());
                v.notify |= a || b;
                // More may have come while the batch was out.
                v.tx_kick = true;
            }
            if v.phase == Phase::Connecting && !(v.want_bind || v.want_map_tx || v.want_map_rx) && v.ops == 0 {
                self.connected(p, slot);
            }
        }
        Ok(())
    }

    /// The connect ops of a vif came back.
    fn connected(&mut self, p: &mut NetbackPorts, slot: usize) {
        let v = &self.vifs[slot];
        let all = v.handle.is_some() && v.tx_mapped && v.rx_mapped;
        let rings = (window_ring(p, 2 * slot as u32, 12), window_ring(p, 2 * slot as u32 + 1, 8));
        let mac = v.info.as_ref().map_or([0; 6], |i| i.mac);
        let v = &mut self.vifs[slot];
        match (all && !v.connect_failed, rings) {
            (true, (Some(tx), Some(rx))) => {
                if let Some(page) = p.xen.local_page(slot as u32) {
                    let _ = page.write_volatile(TEMPLATE_V4 as usize, &link::header(mac, ethertype::IPV4));
                    let _ = page.write_volatile(TEMPLATE_V6 as usize, &link::header(mac, ethertype::IPV6));
                }
                v.tx = Some(tx);
                v.rx = Some(rx);
                v.phase = Phase::Publishing;
                v.state_out = moat_xen::xenbus::XenbusState::Connected;
                v.xs |= need::WRITE_STATE;
                v.was_connected = true;
                self.counts.connects += 1;
            }
            _ => {
                self.counts.connect_failed += 1;
                v.teardown(CloseKind::Error);
            }
        }
    }

    fn finish_tx(&mut self, p: &mut NetbackPorts, t: &TxPkt) -> Result<(), Fault> {
        let slot = usize::from(t.slot);
        let live = self.vifs[slot].connected();
        let st = match (t.error, t.ok) {
            (Some(m), _) => {
                self.counts.tx_malformed[m as usize] += 1;
                rsp::ERROR
            }
            (None, false) => {
                self.counts.tx_copy_failed += 1;
                rsp::ERROR
            }
            (None, true) => rsp::OKAY,
        };
        if let Some(d) = t.desc {
            if st == rsp::OKAY && live {
                self.deliver(p, slot, d, t.total, t.flags)?;
            } else if self.owner.reclaim(&d).is_err() {
                return Err(Fault::Internal("a TX buffer was not out"));
            }
        }
        if live {
            let ring = self.vifs[slot].tx.as_mut().expect("live");
            for i in 0..usize::from(t.slots) {
                let r = if t.extras & (1 << i) != 0 {
                    NetifTxResponse { id: 0, status: rsp::NULL }
                } else {
                    NetifTxResponse { id: t.ids[i], status: st }
                };
                ring.respond(&r);
            }
        }
        Ok(())
    }

    /// A frame copied out of a client: pass it on, answer it, or drop it.
    fn deliver(
        &mut self,
        p: &mut NetbackPorts,
        slot: usize,
        d: PacketDesc,
        total: u16,
        txflags: u16,
    ) -> Result<(), Fault> {
        let client = self.vifs[slot].info.as_ref().map_or([0; 4], |i| i.ipv4);
        let frame_desc = PacketDesc { offset: d.offset + FRAME_AT, len: u32::from(total), ..d };
        let frame = p.client_buffers.packet(&frame_desc).map_err(|_| Fault::Internal("frame outside its buffer"))?;
        match link::classify(frame, client) {
            Kind::Ipv4 => {
                let mut out = PacketDesc { offset: d.offset + HEADROOM, len: u32::from(total) - ETH, ..d };
                out.flags = if txflags & txf::CSUM_BLANK != 0 { flags::CSUM_BLANK } else { 0 }
                    | if txflags & txf::DATA_VALIDATED != 0 { flags::PEER_VALIDATED } else { 0 };
                let iface = Iface::client(slot as u8).ok_or(Fault::Internal("slot out of range"))?;
                Meta { iface, verdict: Verdict::None }.store(&mut out);
                if !p.to_csum.push(&out)? {
                    return Err(Fault::Internal("to_csum room was reserved"));
                }
                self.counts.tx_packets += 1;
                self.counts.tx_bytes += u64::from(total);
                return Ok(());
            }
            Kind::Arp => {
                let mut reply = [0u8; link::MIN_FRAME];
                let v = &self.vifs[slot];
                // Replies waiting sit from the head on; the first empty slot
                // after them is the tail.
                let tail =
                    (0..ARP_SLOTS).map(|j| (usize::from(v.arp_head) + j) % ARP_SLOTS).find(|&j| v.arp_len[j] == 0);
                match (link::arp_reply(frame, client, &mut reply), tail) {
                    (Some(()), Some(k)) => {
                        if let Some(page) = p.xen.local_page(slot as u32) {
                            let _ = page.write_volatile((ARP_AT as usize) + k * 64, &reply);
                        }
                        let v = &mut self.vifs[slot];
                        v.arp_len[k] = link::MIN_FRAME as u8;
                        v.rx_kick = true;
                        self.counts.arp_replies += 1;
                    }
                    _ => self.counts.arp_ignored += 1,
                }
            }
            Kind::Spoofed => self.counts.spoofed += 1,
            Kind::Ipv6 => self.counts.ipv6 += 1,
            Kind::Other => self.counts.ethertype += 1,
        }
        self.owner.reclaim(&d).map_err(|_| Fault::Internal("a TX buffer was not out"))
    }

    fn finish_rx(&mut self, p: &mut NetbackPorts, r: &RxPkt) -> Result<(), Fault> {
        let slot = usize::from(r.slot);
        if self.vifs[slot].connected() {
            let status = if r.ok {
                self.counts.rx_packets += 1;
                self.counts.rx_bytes += u64::from(r.len);
                r.len as i16
            } else {
                self.counts.rx_copy_failed += 1;
                rsp::ERROR
            };
            let flags = if r.csum_ok { rxf::DATA_VALIDATED } else { 0 };
            let rsp = NetifRxResponse { id: r.id, offset: 0, flags, status };
            self.vifs[slot].rx.as_mut().expect("connected").respond(&rsp);
        }
        if let Some(d) = r.desc {
            self.give_nat(p, d)?;
        }
        Ok(())
    }

    /// Hands a buffer back to the NAT.
    fn give_nat(&mut self, p: &mut NetbackPorts, d: PacketDesc) -> Result<(), Fault> {
        let which = usize::from(d.pool != p.client_buffers.geometry().id());
        if self.from_nat[which].give_back(&d).is_err() {
            return Err(Fault::Internal("returning a buffer NAT did not lend"));
        }
        if p.from_nat_free.push(&d)? { Ok(()) } else { Err(p.from_nat_free.fault()) }
    }

    /// Packets from the NAT into their clients' queues.
    pub(crate) fn intake(&mut self, p: &mut NetbackPorts, cx: &mut moat_component::Context) -> Result<(), Fault> {
        let q = usize::from(self.config.rx_queue);
        let (client, uplink) = (p.client_buffers.geometry().id(), p.uplink_buffers.geometry().id());
        for _ in 0..cx.budget() {
            let Some(d) = p.from_nat.pop()? else { break };
            let which = match d.pool {
                x if x == client => 0,
                x if x == uplink => 1,
                _ => {
                    self.counts.bad_descriptors += 1;
                    continue;
                }
            };
            if self.from_nat[which].receive(&d).is_err() {
                self.counts.bad_descriptors += 1;
                continue;
            }
            let slot = Meta::of(&d).ok().and_then(|m| m.iface.client_index()).map(usize::from);
            let target = slot.filter(|&s| s < usize::from(self.config.max_clients) && self.vifs[s].connected());
            let Some(s) = target else {
                self.counts.rx_no_client += 1;
                self.give_nat(p, d)?;
                continue;
            };
            let v = &mut self.vifs[s];
            if usize::from(v.rxq_len) >= q {
                self.counts.rx_queue_full += 1;
                self.give_nat(p, d)?;
                continue;
            }
            let at = s * q + (usize::from(v.rxq_head) + usize::from(v.rxq_len)) % q;
            v.rxq_len += 1;
            v.rx_kick = true;
            p.rxq.as_deref_mut().expect("bound")[at] = d;
        }
        Ok(())
    }

    /// Gives back the queues of vifs no longer connected.
    pub(crate) fn release_queues(&mut self, p: &mut NetbackPorts) -> Result<(), Fault> {
        let q = usize::from(self.config.rx_queue);
        for s in 0..usize::from(self.config.max_clients) {
            let v = &mut self.vifs[s];
            if v.connected() {
                continue;
            }
            v.arp_len = [0; ARP_SLOTS];
            while self.vifs[s].rxq_len > 0 {
                let v = &mut self.vifs[s];
                let at = s * q + usize::from(v.rxq_head);
                v.rxq_head = ((usize::from(v.rxq_head) + 1) % q) as u16;
                v.rxq_len -= 1;
                let d = p.rxq.as_deref().expect("bound")[at];
                self.give_nat(p, d)?;
            }
        }
        Ok(())
    }
}
