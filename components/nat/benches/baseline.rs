//! The comparison for the benchmarks: the same NAT done the obvious way with
//! `std::collections::HashMap` (SipHash-1-3, like moat's tables), a
//! `HashSet` of ports in use per destination probed at random, and a FIFO
//! for eviction. It parses and rewrites with the same moat-net calls, so
//! the difference is the tables.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};

use moat_net::ip::{Transport, classify};
use moat_net::ipv4::Ipv4;
use moat_net::rewrite::{self, End};

type Out = (u8, [u8; 4], u16, [u8; 4], u16);
type In = (u8, [u8; 4], u16, u16);

pub struct Baseline {
    pub out: HashMap<Out, (u16, u64, u8)>,
    pub inside: HashMap<In, Out>,
    pub used: HashSet<(u8, [u8; 4], u16, u16)>,
    pub fifo: VecDeque<Out>,
    pub cap: usize,
    pub uplink: [u8; 4],
    rng: u64,
}

impl Baseline {
    pub fn new(cap: usize, uplink: [u8; 4]) -> Self {
        Baseline {
            out: HashMap::with_capacity(cap),
            inside: HashMap::with_capacity(cap),
            used: HashSet::with_capacity(cap),
            fifo: VecDeque::with_capacity(cap),
            cap,
            uplink,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Translates an outbound packet in place; false if dropped.
    pub fn outbound(&mut self, pkt: &mut [u8], now: u64) -> bool {
        let Ok(s) = classify(pkt) else { return false };
        let (p, sp, dp) = match s.transport {
            Transport::Tcp { src_port, dst_port, .. } => (6, src_port, dst_port),
            Transport::Udp { src_port, dst_port } => (17, src_port, dst_port),
            _ => return false,
        };
        let (core::net::IpAddr::V4(src), core::net::IpAddr::V4(dst)) = (s.src, s.dst) else { return false };
        let key = (p, src.octets(), sp, dst.octets(), dp);
        let port = match self.out.get_mut(&key) {
            Some(e) => {
                e.1 = now;
                e.0
            }
            None => {
                if self.out.len() >= self.cap {
                    let old = self.fifo.pop_front().expect("full");
                    if let Some((port, _, _)) = self.out.remove(&old) {
                        self.inside.remove(&(old.0, old.3, old.4, port));
                        self.used.remove(&(old.0, old.3, old.4, port));
                    }
                }
                let mut port = None;
                for _ in 0..64 {
                    let cand = 1024 + (self.random() % 64512) as u16;
                    if self.used.insert((p, key.3, dp, cand)) {
                        port = Some(cand);
                        break;
                    }
                }
                let Some(port) = port else { return false };
                self.out.insert(key, (port, now, 1));
                self.inside.insert((p, key.3, dp, port), key);
                self.fifo.push_back(key);
                port
            }
        };
        if rewrite::ipv4(pkt, End::Src, self.uplink.into(), Some(port)).is_err() {
            return false;
        }
        Ipv4::parse(pkt).ok().and_then(|mut ip| ip.decrement_ttl()).is_some()
    }
}
