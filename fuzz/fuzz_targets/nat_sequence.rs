//! Arbitrary sequences of packets from both sides, time steps, clients
//! coming and going, and the re-check exchange with the rules (`Changed`,
//! `Check` batches sent or not, answers plausible, stale, bogus or raw
//! postcard frames) through a small NAT engine (64 connections, 128 ports,
//! so eviction and exhaustion are reached): no panic, and every invariant
//! (`Engine::check`, re-check marks included) holds after every step.
#![no_main]

use core::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use moat_control::ClientEvent;
use moat_control::rules::{NatToRules, RulesToNat};
use moat_nat::config::Sizes;
use moat_nat::conn::Conn;
use moat_nat::ports::Record;
use moat_nat::{Engine, NatConfig, Regions};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict, flags};
use moat_net::testing;

const UPLINK: [u8; 4] = [10, 138, 0, 2];
const REMOTES: [[u8; 4]; 4] = [[93, 184, 216, 34], [1, 1, 1, 1], [10, 139, 1, 1], [10, 138, 0, 1]];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn word(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn client_ip(slot: u8) -> [u8; 4] {
    [10, 137, 0, 5 + slot]
}

/// A packet from the input: structured (valid checksums, so it gets deep)
/// or raw bytes (to reach every parser refusal).
fn packet(inp: &mut Input, src: [u8; 4], dst: [u8; 4], ports: &[u16]) -> Vec<u8> {
    let kind = inp.byte().unwrap_or(0);
    let pick = |w: u16| if ports.is_empty() || w & 1 == 0 { w } else { ports[usize::from(w >> 1) % ports.len()] };
    let (sp, dp) = (inp.word().unwrap_or(0), inp.word().unwrap_or(0));
    let mut p = match kind % 6 {
        0 => {
            let mut p = testing::tcp_v4(src, dst, pick(sp), pick(dp), b"");
            p[33] = inp.byte().unwrap_or(2);
            let mut ip = moat_net::ipv4::Ipv4::parse(&mut p[..]).unwrap();
            let ph = ip.pseudo_header();
            moat_net::tcp::Tcp::parse(ip.payload_mut()).unwrap().fill_checksum(ph);
            p
        }
        1 => testing::udp_v4(src, dst, pick(sp), pick(dp), b"data"),
        2 => testing::ping_v4(src, dst, pick(sp), b"ping"),
        3 => {
            // An ICMP error quoting a packet between the same ends.
            let quoted = testing::udp_v4(dst, src, pick(dp), pick(sp), b"q");
            let mut p = vec![0u8; 28 + quoted.len()];
            moat_net::ipv4::write_header(&mut p, src.into(), dst.into(), 1, 8 + quoted.len() as u16, 1, 64, 0)
                .unwrap();
            p[20] = [3, 11, 12][usize::from(kind / 6) % 3];
            p[28..].copy_from_slice(&quoted);
            let mut ip = moat_net::ipv4::Ipv4::parse(&mut p[..]).unwrap();
            moat_net::icmpv4::Icmpv4::parse(ip.payload_mut()).unwrap().fill_checksum();
            p
        }
        4 => {
            // A fragment of a UDP datagram: offset and MF from the input.
            let mut p = testing::udp_v4(src, dst, pick(sp), pick(dp), &[7; 64]);
            let off = u16::from(inp.byte().unwrap_or(0)) & 0x1f;
            let mf = if inp.byte().unwrap_or(0) & 1 == 1 { 0x2000 } else { 0 };
            p[4..6].copy_from_slice(&sp.to_be_bytes());
            p[6..8].copy_from_slice(&(off | mf).to_be_bytes());
            moat_net::ipv4::Ipv4::parse(&mut p[..]).unwrap().fill_checksum();
            p
        }
        _ => inp.bytes(usize::from(inp.0.first().copied().unwrap_or(0))).to_vec(),
    };
    if kind & 0x80 != 0 {
        let ttl = inp.byte().unwrap_or(1) & 3;
        if p.len() >= 20 && p[0] >> 4 == 4 {
            if let Ok(mut ip) = moat_net::ipv4::Ipv4::parse(&mut p[..]) {
                ip.set_ttl(ttl);
            }
        }
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let mut cfg = NatConfig::new(Ipv4Addr::from(UPLINK));
    cfg.max_connections = 64;
    cfg.max_per_client = 40;
    cfg.port_min = 60000;
    cfg.port_max = 60127;
    cfg.established_min_idle_secs = 5;
    let s = Sizes::of(cfg.max_connections);
    let mut conns = vec![Conn::default(); s.conns];
    let mut heads = vec![0u32; s.conn_heads];
    let mut recs = vec![Record::default(); s.records];
    let mut rheads = vec![0u32; s.record_heads];
    let regions = Regions { conns: &mut conns, conn_heads: &mut heads, records: &mut recs, record_heads: &mut rheads };
    let mut e = Engine::new(&cfg, regions, [3; 32]).expect("valid config");
    let mut inp = Input(data);
    let mut now = 0u64;
    let mut ports: Vec<u16> = vec![53, 80, 443];
    let mut buf = vec![0u8; 2048];
    let mut epoch = 0u32;
    // Batches sent (slot, number, flows), newest last, for plausible answers.
    let mut sent: Vec<(u8, u32, usize)> = Vec::new();
    while let Some(op) = inp.byte() {
        match op % 7 {
            0 | 1 => {
                let slot = inp.byte().unwrap_or(0) % 4;
                let verdict = [Verdict::Accept, Verdict::Accept, Verdict::Dns, Verdict::Reject, Verdict::Drop]
                    [usize::from(inp.byte().unwrap_or(0)) % 5];
                let dst = REMOTES[usize::from(inp.byte().unwrap_or(0)) % 4];
                let dst = if op & 0x40 != 0 { client_ip(op >> 6 & 1) } else { dst };
                let p = packet(&mut inp, client_ip(slot), dst, &ports);
                let len = p.len().min(2048 - HEADROOM as usize);
                buf[HEADROOM as usize..HEADROOM as usize + len].copy_from_slice(&p[..len]);
                let mut d = moat_component::PacketDesc::default();
                Meta { iface: Iface::client(slot).expect("< 254"), verdict }.store(&mut d);
                let f = if op & 0x20 != 0 { 0 } else { flags::CSUM_OK };
                let dec = e.outbound(&mut buf, HEADROOM as usize, len, f, d.meta, now);
                if dec.fate == moat_nat::Fate::Uplink && len >= 24 {
                    let sp = u16::from_be_bytes([buf[dec.start + 20], buf[dec.start + 21]]);
                    ports.push(sp);
                    ports.push(u16::from_be_bytes([buf[dec.start + 24], buf[dec.start + 25]]));
                }
                assert!(dec.start + dec.len <= buf.len());
            }
            2 => {
                let src = REMOTES[usize::from(inp.byte().unwrap_or(0)) % 4];
                let p = packet(&mut inp, src, UPLINK, &ports);
                let len = p.len().min(2048 - HEADROOM as usize);
                buf[HEADROOM as usize..HEADROOM as usize + len].copy_from_slice(&p[..len]);
                let f = if op & 0x20 != 0 { 0 } else { flags::CSUM_OK };
                let dec = e.inbound(&mut buf, HEADROOM as usize, len, f, now);
                assert!(dec.start + dec.len <= buf.len());
            }
            3 => {
                now += u64::from(inp.byte().unwrap_or(0)) * 1_000_000_000 / 4;
                e.tick(now, u32::from(inp.byte().unwrap_or(1)));
            }
            5 => {
                // The rules speak.
                let how = inp.byte().unwrap_or(0);
                let msg = match how % 4 {
                    0 => {
                        epoch = epoch.wrapping_add(u32::from(how >> 6));
                        let mut slots = [0u8; 32];
                        slots[0] = inp.byte().unwrap_or(1);
                        slots[31] = if how & 0x20 != 0 { 0xc0 } else { 0 };
                        Some(RulesToNat::Changed { version: epoch, epoch, slots })
                    }
                    1 | 2 => {
                        let pick = usize::from(inp.byte().unwrap_or(0));
                        let (slot, batch, len) = match sent.len() {
                            0 => (0, u32::from(how), 16),
                            n => sent[n - 1 - pick % n],
                        };
                        let slot = if how & 0x80 != 0 { slot ^ 1 } else { slot };
                        let e = epoch.wrapping_sub(u32::from(how >> 5 & 3));
                        let mask = if len >= 16 { u16::MAX } else { (1u16 << len) - 1 };
                        let denied = inp.word().unwrap_or(0) & if how & 0x40 != 0 { u16::MAX } else { mask };
                        Some(RulesToNat::Denied { epoch: e, slot, batch, denied })
                    }
                    _ => {
                        let n = usize::from(inp.byte().unwrap_or(0) % 48);
                        postcard::from_bytes::<RulesToNat>(inp.bytes(n)).ok()
                    }
                };
                match msg {
                    Some(RulesToNat::Changed { version, epoch, slots }) => e.rules_changed(version, epoch, &slots),
                    Some(RulesToNat::Denied { epoch, slot, batch, denied }) => {
                        e.rules_denied(epoch, slot, batch, denied)
                    }
                    None => {}
                }
            }
            6 => {
                // The NAT's turn to ask; the ring has room or not.
                let mut scan = u32::from(inp.byte().unwrap_or(0)) * 4;
                if let Some(NatToRules::Check { slot, batch, flows }) = e.next_check(now, &mut scan)
                    && op & 0x10 == 0
                {
                    assert!(!flows.is_empty() && usize::from(slot) < 4);
                    e.check_sent(now);
                    sent.push((slot, batch, flows.len()));
                    if sent.len() > 8 {
                        sent.remove(0);
                    }
                }
            }
            _ => {
                let slot = inp.byte().unwrap_or(0) % 4;
                let ev = if op & 0x10 != 0 {
                    ClientEvent::Down { slot }
                } else {
                    ClientEvent::Up { slot, ipv4: client_ip(slot), ipv6: None, mac: [0; 6] }
                };
                if e.accepts_client_events() {
                    e.client_event(&ev);
                } else {
                    e.tick(now, 1);
                }
            }
        }
        if let Err(why) = e.check() {
            panic!("invariant broken: {why}");
        }
        ports.truncate(64);
    }
});
