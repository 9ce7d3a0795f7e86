//! netfront's ops (grants, the channel, notifications) and its traffic.

use moat_component::{Context, Fault, PacketDesc};
use moat_net::ethernet::{self, ethertype};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_xen::PAGE_SIZE;
use moat_xen::netif::{
    NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, XEN_NETIF_EXTRA_FLAG_MORE, rsp, rxf,
};
use moat_xen::ops::{Frontend, Op, Role, XenOps, status};
use moat_xen::sring::{FrontRing, Sring};
use zerocopy::FromBytes;

use crate::xs::Phase;
use crate::{ARP_REFRESH, ARP_RETRY, GRANT_RETRY, Netfront, NetfrontPorts, RX_PAGES, TX_SLOTS, arp};

const ETH: usize = ethernet::HEADER_LEN;
/// Where a received frame goes in a buffer, so the IP packet sits at the
/// headroom.
const FRAME_AT: usize = HEADROOM as usize - ETH;
/// Bytes per TX slot (two per page).
const SLOT: usize = PAGE_SIZE / 2;
/// The Qubes backend vif MAC, where frames go when no gateway is configured.
const BACKEND_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

mod tag {
    pub const GRANT: u32 = 1;
    pub const ALLOC: u32 = 2;
    pub const END_GRANT: u32 = 3;
    pub const CLOSE: u32 = 4;
    pub const SEND: u32 = 5;
}

impl Netfront {
    pub(crate) fn wants_ops(&self) -> bool {
        (self.link.want_connect && self.link.phase == Phase::Granting)
            || (self.link.want_release && self.link.phase == Phase::Closing)
    }

    /// Stages this round's ops.
    pub(crate) fn plan(&mut self, p: &mut NetfrontPorts) {
        let backend = self.link.uplink.as_ref().map_or(0, |u| u.backend_id);
        if self.link.phase == Phase::Closing && self.grant_retry_at.is_some_and(|t| t <= self.now) {
            self.grant_retry_at = None;
            self.link.want_release = true;
        }
        if self.link.phase == Phase::Granting && self.link.want_connect {
            self.link.want_connect = false;
            for page in 0..Frontend::GEOMETRY.local_pages {
                let readonly = page >= Frontend::TX_FIRST;
                let _ = p.xen.push(Op::grant(backend, page, readonly).tagged(tag::GRANT << 16 | page));
            }
            let _ = p.xen.push(Op::alloc_unbound(backend).tagged(tag::ALLOC << 16));
        }
        if self.link.phase == Phase::Closing && self.link.want_release {
            self.link.want_release = false;
            if !self.holds() {
                self.closed();
                return;
            }
            for (page, g) in self.grants.iter().enumerate() {
                if let Some(g) = g {
                    let _ = p.xen.push(Op::end_grant(*g).tagged(tag::END_GRANT << 16 | page as u32));
                }
            }
            if let Some(h) = self.handle {
                let _ = p.xen.push(Op::close(h).tagged(tag::CLOSE << 16));
            }
        }
        if self.notify && self.link.phase == Phase::Connected {
            if let Some(h) = self.handle {
                let _ = p.xen.push(Op::send(h).tagged(tag::SEND << 16));
            }
            self.notify = false;
        }
    }

    /// Everything is given back.
    fn closed(&mut self) {
        self.tx = None;
        self.rx = None;
        self.tx_busy = [false; TX_SLOTS];
        self.rx_slot_page = [u8::MAX; 256];
        self.rx_skipping = false;
        self.gateway_mac = None;
        self.grant_retry_at = None;
        self.link.released();
    }

    pub(crate) fn completed(&mut self, p: &mut NetfrontPorts, n: usize) {
        let mut connect_failed = false;
        let mut connecting = false;
        let mut busy = false;
        for i in 0..n {
            let Some(op) = p.xen.result(i) else { continue };
            if matches!(op.status, status::DENIED | status::INVALID | status::NO_SPACE) {
                self.counts.ops_refused += 1;
            }
            let page = (op.tag & 0xffff) as usize;
            match op.tag >> 16 {
                tag::GRANT => {
                    connecting = true;
                    match (op.ok(), self.grants.get_mut(page)) {
                        (true, Some(g)) => *g = Some(op.gref),
                        _ => connect_failed = true,
                    }
                }
                tag::ALLOC => {
                    connecting = true;
                    if op.ok() {
                        self.handle = Some(op.handle);
                        self.port = op.port;
                    } else {
                        connect_failed = true;
                    }
                }
                tag::END_GRANT => {
                    if op.status == status::BUSY {
                        busy = true;
                    } else if let Some(g) = self.grants.get_mut(page) {
                        // Ended, or not ours to end any more: either way
                        // the page is not granted by us.
                        *g = None;
                    }
                }
                tag::CLOSE => self.handle = None,
                _ => {}
            }
        }
        if connecting && self.link.phase == Phase::Granting {
            let ok = !connect_failed && self.start_rings(p);
            if !ok {
                self.counts.connect_failed += 1;
            }
            self.link.granted(ok);
        }
        if self.link.phase == Phase::Closing && !busy && !self.holds() {
            self.closed();
        } else if busy {
            self.grant_retry_at = Some(self.now.saturating_add(GRANT_RETRY));
        } else if self.link.phase == Phase::Closing && self.holds() {
            self.link.want_release = true;
        }
    }

    /// Sets the rings up in our pages and posts every RX page.
    fn start_rings(&mut self, p: &mut NetfrontPorts) -> bool {
        let (Some(txp), Some(rxp)) = (p.xen.local_page(Frontend::TX_RING), p.xen.local_page(Frontend::RX_RING)) else {
            return false;
        };
        let (Ok(txs), Ok(rxs)) = (Sring::new(txp, 12), Sring::new(rxp, 8)) else { return false };
        let mut rx = FrontRing::init(rxs);
        self.rx_slot_page = [u8::MAX; 256];
        for k in 0..RX_PAGES {
            let page = Frontend::RX_FIRST as usize + k;
            let Some(gref) = self.grants[page] else { return false };
            let idx = rx.req_prod();
            self.rx_slot_page[(idx & 255) as usize] = k as u8;
            rx.push(&NetifRxRequest { id: (idx & 255) as u16, pad: 0, gref });
        }
        let _ = rx.publish();
        self.tx = Some(FrontRing::init(txs));
        self.rx = Some(rx);
        self.tx_busy = [false; TX_SLOTS];
        self.arp_at = self.now;
        true
    }

    fn tx_slot(&self) -> Option<usize> {
        self.tx_busy.iter().position(|b| !*b)
    }

    pub(crate) fn tx_free(&self) -> usize {
        let ring = self.tx.as_ref().map_or(0, |r| r.free() as usize);
        ring.min(self.tx_busy.iter().filter(|b| !**b).count())
    }

    fn broken(&mut self) {
        self.counts.ring_broken += 1;
        self.link.teardown();
    }

    /// Puts `frame` in TX slot `s` and on the ring.
    fn put_frame(&mut self, xen: &XenOps<Frontend>, s: usize, head: &[u8], body: &[u8]) -> bool {
        let page = Frontend::TX_FIRST + (s / 2) as u32;
        let (Some(region), Some(gref)) = (xen.local_page(page), self.grants[page as usize]) else { return false };
        let at = (s % 2) * SLOT;
        if region.write_volatile(at, head).is_err() || region.write_volatile(at + head.len(), body).is_err() {
            return false;
        }
        let len = (head.len() + body.len()) as u16;
        let req = NetifTxRequest { gref, offset: at as u16, flags: 0, id: s as u16, size: len };
        let Some(tx) = self.tx.as_mut() else { return false };
        if !tx.push(&req) {
            return false;
        }
        self.tx_busy[s] = true;
        self.counts.tx_bytes += u64::from(len);
        true
    }

    /// Sends a frame of netfront's own (ARP), if a slot is free.
    fn send_own(&mut self, p: &mut NetfrontPorts, frame: &[u8]) -> bool {
        match self.tx_slot().filter(|_| self.tx_free() > 0) {
            Some(s) => self.put_frame(&p.xen, s, frame, &[]),
            None => false,
        }
    }

    fn our_mac(&self) -> [u8; 6] {
        self.link.uplink.as_ref().map_or([0; 6], |u| u.mac)
    }

    fn our_ip(&self) -> Option<[u8; 4]> {
        self.link.uplink.as_ref().and_then(|u| u.ipv4)
    }

    /// TX responses, ARP, and packets from the NAT.
    pub(crate) fn send(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        // Responses free slots.
        let Some(tx) = self.tx.as_mut() else { return Ok(()) };
        let n = match tx.pending() {
            Ok(n) => n,
            Err(_) => {
                self.broken();
                return Ok(());
            }
        };
        for _ in 0..n {
            let r = NetifTxResponse::read_from_prefix(&tx.take_raw()).map(|(r, _)| r).expect("4 of 16 bytes");
            let id = usize::from(r.id);
            if id < TX_SLOTS && self.tx_busy[id] {
                self.tx_busy[id] = false;
                if r.status != rsp::OKAY {
                    self.counts.tx_errors += 1;
                }
            } else {
                self.counts.bad_responses += 1;
            }
        }
        if let Some(tx) = self.tx.as_mut()
            && tx.final_check().is_err()
        {
            self.broken();
            return Ok(());
        }
        // ARP for the gateway.
        if let (Some(gw), Some(ip)) = (self.config.gateway_ip, self.our_ip())
            && self.now >= self.arp_at
        {
            let q = arp::request(self.our_mac(), ip, gw.octets());
            if self.send_own(p, &q) {
                self.counts.arp_requests += 1;
                let wait = if self.gateway_mac.is_some() { ARP_REFRESH } else { ARP_RETRY };
                self.arp_at = self.now.saturating_add(wait);
            }
        }
        let dst = match (self.config.gateway_ip, self.gateway_mac) {
            (None, _) => Some(BACKEND_MAC),
            (Some(_), m) => m,
        };
        let mtu = self.link.uplink.as_ref().map_or(1500, |u| usize::from(u.mtu));
        for _ in 0..cx.budget() {
            let Some(s) = self.tx_slot().filter(|_| self.tx_free() > 0) else { break };
            let Some(d) = p.from_nat.pop()? else { break };
            if self.from_nat.receive(&d).is_err() {
                self.counts.bad_descriptors += 1;
                continue;
            }
            let packet = p.client_buffers.packet(&d).map_err(|_| Fault::Internal("a held buffer is not readable"))?;
            let et = match packet.first().map(|b| b >> 4) {
                Some(4) => Some(ethertype::IPV4),
                Some(6) => {
                    self.counts.ipv6 += 1;
                    None
                }
                _ => {
                    self.counts.bad_descriptors += 1;
                    None
                }
            };
            match (et, dst) {
                (Some(et), Some(dst)) if packet.len() <= mtu && packet.len() + ETH <= SLOT => {
                    let mut head = [0u8; ETH];
                    let _ = ethernet::write_header(&mut head, dst, self.our_mac(), et);
                    if self.put_frame(&p.xen, s, &head, packet) {
                        self.counts.tx_packets += 1;
                    }
                }
                (Some(_), None) => self.counts.no_gateway += 1,
                (Some(_), Some(_)) => self.counts.too_big += 1,
                (None, _) => {}
            }
            // The frame was copied (or dropped): the buffer goes back now.
            self.give_nat(p, &d)?;
        }
        if self.tx.as_mut().is_some_and(|t| t.publish()) {
            self.notify = true;
        }
        Ok(())
    }

    fn give_nat(&mut self, p: &mut NetfrontPorts, d: &PacketDesc) -> Result<(), Fault> {
        if self.from_nat.give_back(d).is_err() {
            return Err(Fault::Internal("returning a buffer NAT did not lend"));
        }
        if p.from_nat_free.push(d)? { Ok(()) } else { Err(p.from_nat_free.fault()) }
    }

    /// While not connected, packets from the NAT go straight back.
    pub(crate) fn drop_from_nat(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        for _ in 0..cx.budget() {
            let Some(d) = p.from_nat.pop()? else { break };
            if self.from_nat.receive(&d).is_err() {
                self.counts.bad_descriptors += 1;
                continue;
            }
            self.counts.not_connected += 1;
            self.give_nat(p, &d)?;
        }
        Ok(())
    }

    /// RX responses: frames copied out of our pages into uplink buffers.
    pub(crate) fn receive(&mut self, p: &mut NetfrontPorts, cx: &mut Context) -> Result<(), Fault> {
        let mut room = p.to_csum.free()?;
        let buf_room = p.uplink_buffers.geometry().buf_size() as usize - FRAME_AT;
        for _ in 0..cx.budget() {
            let Some(rx) = self.rx.as_mut() else { return Ok(()) };
            match rx.pending() {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    self.broken();
                    return Ok(());
                }
            }
            if room == 0 || self.owner.available() == 0 {
                // Leave the response for later: the backend waits for us.
                let _ = p.to_csum.wait_space()?;
                break;
            }
            let slot = (rx.rsp_cons() & 255) as usize;
            let raw = rx.take_raw();
            let r = NetifRxResponse::read_from_prefix(&raw).map(|(r, _)| r).expect("8 of 16 bytes");
            let page = self.rx_slot_page[slot];
            self.rx_slot_page[slot] = u8::MAX;
            if usize::from(page) >= RX_PAGES {
                self.counts.bad_responses += 1;
                continue;
            }
            self.take_rx(p, usize::from(page), &r, &raw, buf_room, &mut room)?;
            self.repost(usize::from(page));
        }
        if let Some(rx) = self.rx.as_mut() {
            if rx.publish() {
                self.notify = true;
            }
            if rx.final_check().is_err() {
                self.broken();
            }
        }
        Ok(())
    }

    fn repost(&mut self, page: usize) {
        let Some(gref) = self.grants[Frontend::RX_FIRST as usize + page] else { return };
        let Some(rx) = self.rx.as_mut() else { return };
        let idx = rx.req_prod();
        if rx.push(&NetifRxRequest { id: (idx & 255) as u16, pad: 0, gref }) {
            self.rx_slot_page[(idx & 255) as usize] = page as u8;
        }
    }

    /// One response: a frame to pass on, or one to drop.
    fn take_rx(
        &mut self,
        p: &mut NetfrontPorts,
        page: usize,
        r: &NetifRxResponse,
        raw: &[u8; 16],
        buf_room: usize,
        room: &mut u32,
    ) -> Result<(), Fault> {
        // Slots of a frame moat did not ask for (an extra-info slot, or a
        // multi-slot frame: neither GSO nor scatter-gather is negotiated).
        if self.rx_skipping {
            // An extra slot carries `flags` in its second byte; a data slot
            // of a chain carries `more_data` in its flags.
            let extra_more = raw[1] & XEN_NETIF_EXTRA_FLAG_MORE != 0;
            self.rx_skipping = r.flags & rxf::MORE_DATA != 0 || extra_more;
            return Ok(());
        }
        if r.flags & (rxf::MORE_DATA | rxf::EXTRA_INFO) != 0 {
            self.counts.rx_unasked += 1;
            self.rx_skipping = true;
            return Ok(());
        }
        let (off, len) = (usize::from(r.offset), r.status as usize);
        if r.status <= 0 || off + len > PAGE_SIZE {
            self.counts.rx_errors += 1;
            return Ok(());
        }
        if len > buf_room || len < ETH {
            self.counts.too_big += 1;
            return Ok(());
        }
        let region = p.xen.local_page(Frontend::RX_FIRST + page as u32).ok_or(Fault::Internal("RX page"))?;
        let d = self.owner.alloc().ok_or(Fault::Internal("a buffer was checked free"))?;
        let (buf, _) = p.uplink_buffers.buffer_mut(&d).map_err(|_| Fault::Internal("own pool not writable"))?;
        // Copied once, out of the page the backend can still write.
        region.read_volatile(off, &mut buf[FRAME_AT..FRAME_AT + len]).map_err(|_| Fault::Internal("RX page"))?;
        let frame = &buf[FRAME_AT..FRAME_AT + len];
        match u16::from_be_bytes([frame[12], frame[13]]) {
            ethertype::IPV4 => {
                let mut out = PacketDesc { offset: d.offset + HEADROOM, len: (len - ETH) as u32, ..d };
                out.flags = if r.flags & rxf::DATA_VALIDATED != 0 { flags::PEER_VALIDATED } else { 0 }
                    | if r.flags & rxf::CSUM_BLANK != 0 { flags::CSUM_BLANK } else { 0 };
                Meta { iface: Iface::UPLINK, verdict: Verdict::None }.store(&mut out);
                if !p.to_csum.push(&out)? {
                    return Err(Fault::Internal("to_csum room was checked"));
                }
                *room -= 1;
                self.counts.rx_packets += 1;
                self.counts.rx_bytes += len as u64;
                return Ok(());
            }
            ethertype::ARP => {
                let h = arp::heard(frame, self.our_mac(), self.our_ip(), self.config.gateway_ip.map(|g| g.octets()));
                if let Some(m) = h.gateway {
                    self.gateway_mac = Some(m);
                }
                if let Some(reply) = h.reply
                    && self.send_own(p, &reply)
                {
                    self.counts.arp_replies += 1;
                    if self.tx.as_mut().is_some_and(|t| t.publish()) {
                        self.notify = true;
                    }
                }
            }
            ethertype::IPV6 => self.counts.ipv6 += 1,
            _ => self.counts.ethertype += 1,
        }
        self.owner.reclaim(&d).map_err(|_| Fault::Internal("a buffer just taken"))
    }
}
