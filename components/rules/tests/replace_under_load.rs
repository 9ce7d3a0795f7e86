//! Policy replacement under load: a producer thread streams packets, a NAT
//! thread records verdicts and hands buffers back, and the test swaps
//! between two policies while the component runs. Each verdict must come
//! from exactly one complete version.
//!
//! The two versions disagree on every packet (A accepts even ports and
//! refuses odd ones, B the reverse, each with 512 port rules), so a verdict
//! names the version that gave it; a half-installed policy would show up as
//! packets judged by neither, or as versions interleaving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use moat_component::{Instant, PacketDesc, PoolGeometry};
use moat_control::ClientEvent;
use moat_control::rules::{Action, RulesControl};
use moat_net::meta::{HEADROOM, Iface, Meta, Verdict};
use moat_net::testing;
use moat_rules::{Rules, RulesConfig};
use moat_runtime::harness::Harness;

const BUFS: u32 = 64;
const PORTS: u16 = 1024;
const PACKETS: usize = 40_000;
const SWAPS: u32 = 40;

const WORK: [u8; 4] = [10, 137, 0, 5];

/// Version `v`: odd versions accept even ports, even versions odd ports;
/// everything else is refused (and, in reject mode, still reaches the NAT).
fn policy(v: u32) -> (Vec<String>, u32) {
    let parity = (v % 2 == 1) as u16 ^ 1;
    let rules = (0..PORTS / 2).map(|k| format!("action=accept proto=tcp dstports={}", 2 * k + parity)).collect();
    (rules, v)
}

fn messages(rules: &[String], v: u32) -> Vec<RulesControl<'_>> {
    let mut m = vec![RulesControl::Begin { version: v, keep: false }, RulesControl::Default { policy: Action::Drop }];
    m.extend(rules.iter().map(|r| RulesControl::Rule { text: r }));
    m.push(RulesControl::Commit { version: v });
    m
}

/// The version a verdict on `port` came from (1 or 2 — parity of versions).
fn version_of(port: u16, v: Verdict) -> u32 {
    let even = port.is_multiple_of(2);
    match (v, even) {
        (Verdict::Accept, true) | (Verdict::Reject, false) => 1,
        (Verdict::Accept, false) | (Verdict::Reject, true) => 2,
        other => panic!("unexpected verdict {other:?}"),
    }
}

#[test]
fn every_verdict_comes_from_one_complete_version() {
    let mut h = Harness::new();
    let mut up = h.input::<PacketDesc>("from_csum", 64);
    let mut up_free = h.output::<PacketDesc>("from_csum_free", 64);
    let mut down = h.output::<PacketDesc>("to_nat", 64);
    let mut down_free = h.input::<PacketDesc>("to_nat_free", 64);
    let mut pool = h.pool("client_buffers", PoolGeometry::new(1, 2048, BUFS).unwrap(), false);
    let mut clients = h.msg_input("clients", "ClientEvent", 1024);
    let mut ctl = h.msg_input("policy", "RulesControl", 1 << 16);
    let _nat_in = h.msg_output("to_nat_ctl", "RulesToNat", 1 << 12);
    let _nat_out = h.msg_input("from_nat_ctl", "NatToRules", 1024);

    // Version 1 is too big for the configuration blob: it comes on the ring.
    let mut rules = h.start::<Rules>(RulesConfig::default()).unwrap();
    let mut scratch = [0u8; 1024];
    for m in messages(&policy(1).0, 1) {
        ctl.send_msg(&m, &mut scratch).unwrap();
    }
    let _ = ctl.publish();
    rules.settle(Instant::ZERO, 100).unwrap();
    assert_eq!(rules.component.engine().version(), 1);
    clients.send_msg(&ClientEvent::Up { slot: 0, ipv4: WORK, ipv6: None, mac: [0; 6] }, &mut scratch).unwrap();
    let _ = clients.publish();

    let done = Arc::new(AtomicBool::new(false));
    // csum's part: fill free buffers with TCP packets to port (seq % PORTS);
    // the length is 40 + port so the NAT side can tell the port.
    let producer = thread::spawn(move || {
        let mut free: Vec<u32> = (0..BUFS).collect();
        let mut seq = 0usize;
        while seq < PACKETS {
            while let Some(d) = up_free.pop().unwrap() {
                free.push(d.offset / 2048);
            }
            let _ = up_free.release();
            let mut pushed = false;
            while let Some(i) = free.pop() {
                if seq == PACKETS {
                    free.push(i);
                    break;
                }
                let port = (seq % PORTS as usize) as u16;
                let pkt = testing::tcp_v4(WORK, [93, 184, 216, 34], 40000, port, &vec![0u8; usize::from(port % 64)]);
                let mut d =
                    PacketDesc { pool: 1, flags: 0, offset: i * 2048 + HEADROOM, len: pkt.len() as u32, meta: 0 };
                Meta { iface: Iface::client(0).unwrap(), verdict: Verdict::None }.store(&mut d);
                pool.packet_mut(&d).unwrap().copy_from_slice(&pkt);
                if up.push(&d).is_err() {
                    free.push(i);
                    break;
                }
                pushed = true;
                seq += 1;
            }
            if pushed {
                let _ = up.publish();
            } else {
                thread::yield_now();
            }
        }
    });
    // The NAT's part: record (port % 64, verdict) in arrival order, hand
    // buffers back. Every packet comes here (reject mode).
    let nat_stop = done.clone();
    let nat = thread::spawn(move || {
        let mut seen = Vec::with_capacity(PACKETS);
        while seen.len() < PACKETS && !nat_stop.load(Ordering::Acquire) {
            let mut any = false;
            while let Some(d) = down.pop().unwrap() {
                let low = (d.len - 40) as u16; // payload length = port % 64
                seen.push((low, Meta::of(&d).unwrap().verdict));
                down_free.push(&d).unwrap();
                any = true;
            }
            let _ = down.release();
            let _ = down_free.publish();
            if !any {
                thread::yield_now();
            }
        }
        seen
    });

    // The component, with swaps between versions 1 and 2 injected as it runs.
    let policies = [policy(1).0, policy(2).0];
    let mut next_version = 2u32;
    let mut calls = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !producer.is_finished() {
        rules.call(Instant::ZERO).unwrap();
        calls += 1;
        let idle = rules.component.engine().version() == next_version - 1;
        // The first swap waits for the first verdict, so version 1 is seen
        // judging packets however the threads are scheduled.
        let judged = || {
            let s = rules.status();
            s["verdict.accept"] + s["verdict.reject"] > 0
        };
        if calls.is_multiple_of(50) && next_version <= SWAPS + 1 && idle && (next_version > 2 || judged()) {
            let mut scratch = [0u8; 1024];
            for m in messages(&policies[next_version.is_multiple_of(2) as usize], next_version) {
                ctl.send_msg(&m, &mut scratch).unwrap();
            }
            let _ = ctl.publish();
            next_version += 1;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
    }
    producer.join().unwrap();
    while std::time::Instant::now() < deadline && !nat.is_finished() {
        rules.call(Instant::ZERO).unwrap();
    }
    done.store(true, Ordering::Release);
    let seen = nat.join().unwrap();

    assert_eq!(seen.len(), PACKETS, "every packet reached the NAT (reject mode)");
    // Which version judged each packet, in order. The producer sends ports in
    // sequence; the length encodes port % 64, whose parity is the port's.
    let versions: Vec<u32> = seen
        .iter()
        .enumerate()
        .map(|(seq, &(low, v))| {
            let port = (seq % PORTS as usize) as u16;
            assert_eq!(port % 64, low, "packets arrive in order");
            version_of(port, v)
        })
        .collect();
    let switches = versions.windows(2).filter(|w| w[0] != w[1]).count();
    let s = rules.status();
    let swaps = s["policy.swaps"] - 1; // version 1's own install counts too
    assert!(swaps >= 10, "swaps happened while packets flowed: {swaps}");
    assert!(
        switches as u64 <= swaps,
        "verdicts switched version {switches} times over {swaps} swaps: some packet saw a mix"
    );
    assert_eq!(versions[0], 1);
    assert_eq!(s["verdict.accept"] + s["verdict.reject"], PACKETS as u64);
    assert_eq!(s["policy.rejected"], 0);
}
