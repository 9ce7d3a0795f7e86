//! Loom model of the ring's signalling: every interleaving (within loom's
//! bounds) of a producer and a consumer that sleep when they cannot proceed.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p moat-ring --test loom --release`.
//! A lost wakeup shows up as a deadlock (loom reports both threads blocked);
//! a slot read before it was published shows up as a causality violation on
//! the slot cell.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use moat_ring::spsc::loom_pair;

/// A counting event: what a runtime's event channel or eventfd does.
#[derive(Default)]
struct Event {
    count: Mutex<u64>,
    cv: Condvar,
}

impl Event {
    fn signal(&self) {
        *self.count.lock().unwrap() += 1;
        self.cv.notify_one();
    }
    /// Waits until the count moves past `seen`; returns the new count.
    fn wait(&self, seen: u64) -> u64 {
        let mut n = self.count.lock().unwrap();
        while *n == seen {
            n = self.cv.wait(n).unwrap();
        }
        *n
    }
    fn count(&self) -> u64 {
        *self.count.lock().unwrap()
    }
}

/// Producer pushes `items` through a ring of `capacity`, sleeping when full;
/// consumer reads them in order, sleeping when empty.
fn model(capacity: u32, items: u64) {
    // Bounded preemptions keep the search tractable while still covering the
    // interleavings that matter here (loom's documented practice: 2–3).
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let (mut p, mut c) = loom_pair::<u64>(capacity);
        let data = Arc::new(Event::default()); // producer -> consumer
        let space = Arc::new(Event::default()); // consumer -> producer

        let (d, s) = (data.clone(), space.clone());
        let producer = thread::spawn(move || {
            let mut next = 0;
            while next < items {
                let seen = s.count();
                match p.push(&next) {
                    Ok(()) => {
                        next += 1;
                        if p.publish().needed() {
                            d.signal();
                        }
                    }
                    Err(_) => {
                        if !p.arm_space().unwrap() {
                            s.wait(seen);
                        }
                    }
                }
            }
        });

        let mut expect = 0;
        while expect < items {
            let seen = data.count();
            match c.pop().unwrap() {
                Some(v) => {
                    assert_eq!(v, expect, "in order, and written before published");
                    expect += 1;
                    if c.release().needed() {
                        space.signal();
                    }
                }
                None => {
                    if !c.arm().unwrap() {
                        data.wait(seen);
                    }
                }
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn no_lost_wakeup_with_room() {
    model(4, 2);
}

#[test]
fn no_lost_wakeup_when_the_producer_waits_for_space() {
    model(1, 3);
}

#[test]
fn no_lost_wakeup_two_slots() {
    model(2, 3);
}
