//! Rings over real shared memory: a memfd mapped twice (two virtual addresses
//! for the same pages, as two processes see it), and a forked child process.
//! Millions of descriptors must arrive in order and intact, with the
//! producer and consumer sleeping on eventfds through the event-index
//! protocol.
#![cfg(not(miri))]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use moat_ring::{Consumer, PacketDesc, Producer, Region, RingLayout};

const CAPACITY: u32 = 512;

fn memfd(len: usize) -> OwnedFd {
    // SAFETY: plain syscalls with valid arguments; the fd is owned below.
    unsafe {
        let fd = libc::memfd_create(c"moat-ring-test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create");
        assert_eq!(libc::ftruncate(fd, len as libc::off_t), 0);
        OwnedFd::from_raw_fd(fd)
    }
}

fn map(fd: &OwnedFd, len: usize) -> Region {
    // SAFETY: maps a fresh shared mapping of the memfd; never unmapped, so
    // the Region stays valid for the process's life.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        Region::from_raw(p.cast(), len, true).unwrap()
    }
}

struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> Self {
        // SAFETY: eventfd returns a new fd we own.
        EventFd(unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) })
    }
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        let n = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
        assert_eq!(n, 8);
    }
    fn wait(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; blocks until signalled.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        assert_eq!(n, 8);
    }
}

/// The descriptor for sequence number `i`, with a check word.
fn desc(i: u64) -> PacketDesc {
    let offset = (i as u32).wrapping_mul(2654435761);
    let len = (i >> 32) as u32 ^ 0x5a5a;
    PacketDesc { pool: (i % 7) as u16, flags: (i % 65521) as u16, offset, len, meta: offset ^ len ^ 0xdead_beef }
}

fn produce(mut p: Producer<PacketDesc>, n: u64, data: &EventFd, space: &EventFd) {
    let mut i = 0;
    let mut batch = Vec::with_capacity(64);
    while i < n {
        batch.clear();
        batch.extend((i..n.min(i + 64)).map(desc));
        let pushed = p.push_batch(&batch).unwrap() as u64;
        i += pushed;
        if p.publish().needed() {
            data.signal();
        }
        if pushed == 0 && !p.arm_space().unwrap() {
            space.wait();
        }
    }
}

fn consume(mut c: Consumer<PacketDesc>, n: u64, data: &EventFd, space: &EventFd) {
    let mut expect = 0;
    let mut out = [PacketDesc::default(); 64];
    while expect < n {
        let got = c.pop_batch(&mut out).unwrap();
        for d in &out[..got] {
            assert_eq!(*d, desc(expect), "descriptor {expect} arrived intact and in order");
            expect += 1;
        }
        if c.release().needed() {
            space.signal();
        }
        if got == 0 && !c.arm().unwrap() {
            data.wait();
        }
    }
}

#[test]
fn millions_of_descriptors_across_two_mappings() {
    const N: u64 = 4_000_000;
    let layout = RingLayout::of::<PacketDesc>(CAPACITY).unwrap();
    let fd = memfd(layout.size());
    let a = map(&fd, layout.size());
    let b = map(&fd, layout.size());
    assert_ne!(format!("{a:?}"), format!("{b:?}"), "two distinct mappings");
    layout.init(&a).unwrap();
    // SAFETY: initialised ring; this is the only producer.
    let p = unsafe { Producer::attach(&a, CAPACITY) }.unwrap();
    // SAFETY: the only consumer, through the other mapping.
    let c = unsafe { Consumer::attach(&b, CAPACITY) }.unwrap();
    let data = std::sync::Arc::new(EventFd::new());
    let space = std::sync::Arc::new(EventFd::new());
    let (d, s) = (data.clone(), space.clone());
    let t = std::thread::spawn(move || produce(p, N, &d, &s));
    consume(c, N, &data, &space);
    t.join().unwrap();
}

#[test]
fn descriptors_between_two_processes() {
    const N: u64 = 1_000_000;
    let layout = RingLayout::of::<PacketDesc>(CAPACITY).unwrap();
    let fd = memfd(layout.size());
    let region = map(&fd, layout.size());
    layout.init(&region).unwrap();
    let data = EventFd::new();
    let space = EventFd::new();
    // SAFETY: the child only runs the producer loop and then _exits; it
    // touches no locks another thread could hold (the test thread is the only
    // one that matters for its memory image).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let status = std::panic::catch_unwind(|| {
            // SAFETY: the child is the ring's only producer.
            let p = unsafe { Producer::attach(&region, CAPACITY) }.unwrap();
            produce(p, N, &data, &space);
        });
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(if status.is_ok() { 0 } else { 1 }) };
    }
    // SAFETY: the parent is the ring's only consumer.
    let c = unsafe { Consumer::attach(&region, CAPACITY) }.unwrap();
    consume(c, N, &data, &space);
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "producer process failed");
}
