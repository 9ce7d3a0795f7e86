//! Property test: any sequence of ring operations behaves like a queue model,
//! including across the u32 wrap of the free-running indices.

use std::collections::VecDeque;

use moat_ring::spsc::scribble_indices;
use moat_ring::{Consumer, Producer, Region, RingError, RingLayout};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push(u64),
    PushBatch(u8),
    Publish,
    Pop,
    PopBatch(u8),
    Peek(u8),
    Release,
    Arm,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u64>().prop_map(Op::Push),
        any::<u8>().prop_map(Op::PushBatch),
        Just(Op::Publish),
        Just(Op::Pop),
        any::<u8>().prop_map(Op::PopBatch),
        any::<u8>().prop_map(Op::Peek),
        Just(Op::Release),
        Just(Op::Arm),
    ]
}

/// The model: what has been pushed but not published, published but not
/// read, and read but not released.
#[derive(Default)]
struct Model {
    unpublished: VecDeque<u64>,
    visible: VecDeque<u64>,
    unreleased: usize,
    next: u64,
}

impl Model {
    fn used(&self) -> usize {
        self.unpublished.len() + self.visible.len() + self.unreleased
    }
}

fn ring_at(capacity: u32, start: u32) -> (Producer<u64>, Consumer<u64>) {
    let layout = RingLayout::of::<u64>(capacity).unwrap();
    let region = Region::alloc_zeroed(layout.size());
    layout.init(&region).unwrap();
    scribble_indices(&region, Some(start), Some(start)).unwrap();
    // SAFETY: fresh region, initialised; one producer and one consumer.
    let p = unsafe { Producer::attach(&region, capacity) }.unwrap();
    // SAFETY: as above.
    let c = unsafe { Consumer::attach(&region, capacity) }.unwrap();
    (p, c)
}

fn run(capacity: u32, start: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let cap = capacity as usize;
    let (mut p, mut c) = ring_at(capacity, start);
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Push(v) => {
                let r = p.push(&v);
                if m.used() < cap {
                    prop_assert_eq!(r, Ok(()));
                    m.unpublished.push_back(v);
                } else {
                    prop_assert_eq!(r, Err(RingError::Full));
                }
            }
            Op::PushBatch(n) => {
                let values: Vec<u64> = (0..n as u64).map(|i| m.next + i).collect();
                m.next += n as u64;
                let pushed = p.push_batch(&values).unwrap();
                prop_assert_eq!(pushed, (n as usize).min(cap - m.used()));
                m.unpublished.extend(&values[..pushed]);
            }
            Op::Publish => {
                let _ = p.publish();
                m.visible.extend(m.unpublished.drain(..));
            }
            Op::Pop => {
                let got = c.pop().unwrap();
                prop_assert_eq!(got, m.visible.pop_front());
                m.unreleased += got.is_some() as usize;
            }
            Op::PopBatch(n) => {
                let mut out = vec![0u64; n as usize];
                let got = c.pop_batch(&mut out).unwrap();
                let want: Vec<u64> = m.visible.drain(..got.min(m.visible.len())).collect();
                prop_assert_eq!(&out[..got], &want[..]);
                prop_assert_eq!(got, want.len());
                prop_assert!(got == n as usize || m.visible.is_empty());
                m.unreleased += got;
            }
            Op::Peek(n) => {
                let ahead = n as u32 % (capacity + 1);
                prop_assert_eq!(c.peek(ahead).unwrap(), m.visible.get(ahead as usize).copied());
            }
            Op::Release => {
                let _ = c.release();
                m.unreleased = 0;
            }
            Op::Arm => {
                prop_assert_eq!(c.arm().unwrap(), !m.visible.is_empty());
            }
        }
        prop_assert_eq!(c.available().unwrap() as usize, m.visible.len());
        prop_assert_eq!(p.free().unwrap() as usize, cap - m.used());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_a_queue(cap_log in 0u32..6, ops in proptest::collection::vec(op(), 0..200)) {
        run(1 << cap_log, 0, ops)?;
    }

    #[test]
    fn behaves_like_a_queue_across_the_u32_wrap(
        cap_log in 0u32..6,
        before in 0u32..70,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        run(1 << cap_log, u32::MAX - before, ops)?;
    }
}
