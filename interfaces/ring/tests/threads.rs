//! A producer thread and a consumer thread over one ring, small enough to
//! run under Miri, whose data-race detector checks that no slot is read
//! before the release store that published it.

use moat_ring::{ByteConsumer, ByteProducer, Consumer, PacketDesc, Producer, Region, RingLayout};

const N: u32 = if cfg!(miri) { 300 } else { 200_000 };

#[test]
fn producer_and_consumer_threads() {
    let layout = RingLayout::of::<PacketDesc>(8).unwrap();
    let region = Region::alloc_zeroed(layout.size());
    layout.init(&region).unwrap();
    // SAFETY: one producer (moved to the thread) and one consumer.
    let mut p = unsafe { Producer::<PacketDesc>::attach(&region, 8) }.unwrap();
    // SAFETY: as above.
    let mut c = unsafe { Consumer::<PacketDesc>::attach(&region, 8) }.unwrap();
    let t = std::thread::spawn(move || {
        let mut i = 0;
        while i < N {
            let d = PacketDesc { offset: i, len: !i, meta: i.rotate_left(7), ..Default::default() };
            if p.push(&d).is_ok() {
                i += 1;
            } else {
                std::thread::yield_now();
            }
            let _ = p.publish();
        }
    });
    let mut expect = 0;
    while expect < N {
        match c.pop().unwrap() {
            Some(d) => {
                assert_eq!((d.offset, d.len, d.meta), (expect, !expect, expect.rotate_left(7)));
                expect += 1;
                let _ = c.release();
            }
            None => std::thread::yield_now(),
        }
    }
    t.join().unwrap();
}

#[test]
fn control_frames_across_threads() {
    let layout = RingLayout::of::<u8>(64).unwrap();
    let region = Region::alloc_zeroed(layout.size());
    layout.init(&region).unwrap();
    // SAFETY: one writer (moved to the thread) and one reader.
    let mut tx = unsafe { ByteProducer::attach(&region, 64) }.unwrap();
    // SAFETY: as above.
    let mut rx = unsafe { ByteConsumer::attach(&region, 64) }.unwrap();
    let frames: u32 = if cfg!(miri) { 40 } else { 20_000 };
    let t = std::thread::spawn(move || {
        let mut i = 0;
        while i < frames {
            let payload: Vec<u8> = (0..(i % 50) as u8).map(|b| b ^ i as u8).collect();
            match tx.send(&payload) {
                Ok(()) => i += 1,
                Err(_) => std::thread::yield_now(),
            }
            let _ = tx.publish();
        }
    });
    let mut buf = [0u8; 64];
    let mut i = 0;
    while i < frames {
        match rx.recv(&mut buf).unwrap() {
            Some(frame) => {
                let want: Vec<u8> = (0..(i % 50) as u8).map(|b| b ^ i as u8).collect();
                assert_eq!(frame, &want[..], "frame {i}");
                i += 1;
                let _ = rx.release();
            }
            None => std::thread::yield_now(),
        }
    }
    t.join().unwrap();
}
