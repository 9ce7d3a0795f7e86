//! The Linux calls the hosted image makes, each wrapped once so the rest of
//! the crate is safe code: memfd and mmap for regions, eventfd, epoll,
//! timerfd and signalfd for the event loops, socketpair for the control
//! channel to each process, fork, and entropy.

use std::ffi::CString;
use std::io::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turns a libc return value into a `Result`.
fn check(ret: libc::c_int) -> Result<libc::c_int> {
    if ret < 0 { Err(Error::last_os_error()) } else { Ok(ret) }
}

fn owned(fd: libc::c_int) -> Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A zero-filled anonymous shared-memory file of `size` bytes. The name
/// shows in `/proc/PID/maps` (`/memfd:moat:NAME`), which is how tests check
/// which regions a process maps.
pub fn memfd(name: &str, size: u64) -> Result<OwnedFd> {
    let cname = CString::new(format!("moat:{name}")).map_err(|_| Error::other("NUL in region name"))?;
    // SAFETY: cname is a valid C string for the duration of the call.
    let fd = owned(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
    let len = libc::off_t::try_from(size).map_err(|_| Error::other("region too large"))?;
    // SAFETY: fd is a valid memfd we own.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(fd)
}

/// A new, read-only open file description of the memfd `fd` (through
/// `/proc/self/fd`). A process given only this descriptor can map the
/// region `PROT_READ` and never upgrade the mapping to writable: `mprotect`
/// to `PROT_WRITE` on a shared mapping of a file opened read-only fails.
pub fn reopen_read_only(fd: &OwnedFd) -> Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| Error::other("path"))?;
    // SAFETY: path is a valid C string.
    owned(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
}

/// A shared mapping of a whole region file, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    base: *mut u8,
    len: usize,
    writable: bool,
}

// SAFETY: a Mapping is an address range; it grants no access by itself (all
// access goes through moat-ring's endpoints, which synchronise).
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, read-write or read-only.
    pub fn map(fd: &OwnedFd, len: usize, writable: bool) -> Result<Mapping> {
        Self::map_at(fd, 0, len, writable)
    }

    /// Maps `len` bytes of `fd` from `offset` (a device's cookie, as the
    /// grant device hands out), shared.
    pub fn map_at(fd: &OwnedFd, offset: u64, len: usize, writable: bool) -> Result<Mapping> {
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let offset = libc::off_t::try_from(offset).map_err(|_| Error::other("mapping offset too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot
        // alias anything of ours; fd is valid; failure is checked.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len.max(1), prot, libc::MAP_SHARED, fd.as_raw_fd(), offset) };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os_error());
        }
        Ok(Mapping { base: p.cast(), len, writable })
    }

    /// Private zeroed memory (a component's state ports).
    pub fn anonymous(len: usize) -> Result<Mapping> {
        // SAFETY: as for `map`, without a file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os_error());
        }
        Ok(Mapping { base: p.cast(), len, writable: true })
    }

    /// The mapping as a moat region. The mapping must outlive every endpoint
    /// made from the region: callers either keep it for the life of the
    /// process ([`Mapping::leak`]) or drop the region's users first.
    pub fn region(&self) -> moat_ring::Region {
        // SAFETY: base..base+len is mapped (page-aligned, so 64-byte aligned)
        // with the protection `writable` says, for as long as self lives.
        unsafe { moat_ring::Region::from_raw(self.base, self.len, self.writable) }.expect("mmap returns page-aligned")
    }

    /// Keeps the mapping for the rest of the process (what endpoints need).
    pub fn leak(self) -> moat_ring::Region {
        let r = self.region();
        std::mem::forget(self);
        r
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if zero-length.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len.max(1)) };
    }
}

/// A page domain `domid` granted this domain (dom0, the testbed's
/// XenStore comparison) under grant reference `gref`, mapped read-write
/// through Linux's grant device `dev` (`/dev/xen/gntdev`, module
/// `xen-gntdev`). The mapping stays while the returned `Mapping` lives
/// (and `dev` with it, which the caller keeps).
pub fn map_grant(dev: &OwnedFd, domid: u16, gref: u32) -> Result<Mapping> {
    use moat_xen::grant::gntdev::{IOCTL_GNTDEV_MAP_GRANT_REF, IoctlGntdevGrantRef, IoctlGntdevMapGrantRef};
    let mut op = IoctlGntdevMapGrantRef {
        count: 1,
        refs: [IoctlGntdevGrantRef { domid: domid.into(), r#ref: gref }],
        ..Default::default()
    };
    // SAFETY: `op` is the `struct ioctl_gntdev_map_grant_ref` (one grant)
    // whose size the request number encodes (layout checked against the C
    // header in moat-xen's tests/abi.rs); the kernel reads `count` grants
    // from it and writes `index`, within the struct, during the call only.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), IOCTL_GNTDEV_MAP_GRANT_REF as libc::c_ulong, &mut op) })?;
    Mapping::map_at(dev, op.index, 4096, true)
}

/// Unmaps every mapping whose path contains `marker` (a forked child drops
/// the regions its parent had mapped: a supervisor that plays ring ends,
/// or a test process running several graphs).
pub fn unmap_inherited(marker: &str) -> Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for line in maps.lines().filter(|l| l.contains(marker)) {
        let range = line.split_whitespace().next().unwrap_or("");
        let (lo, hi) = range.split_once('-').ok_or(Error::other("bad maps line"))?;
        let lo = usize::from_str_radix(lo, 16).map_err(Error::other)?;
        let hi = usize::from_str_radix(hi, 16).map_err(Error::other)?;
        // SAFETY: the range is a shared region mapping made by the parent
        // before fork; nothing in this child uses it (its endpoints belong
        // to the parent's code, which never runs here).
        check(unsafe { libc::munmap(lo as *mut libc::c_void, hi - lo) })?;
    }
    Ok(())
}

/// A non-blocking eventfd: how one process wakes another.
pub fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// Adds one to an eventfd (wakes whoever polls it).
pub fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64. A full counter (EAGAIN) still
    // leaves the fd readable, which is all a wake needs.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Reads and clears an eventfd; true if it had been signalled.
pub fn drain(fd: RawFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) == 8 }
}

/// An epoll instance.
pub struct Epoll(OwnedFd);

impl Epoll {
    /// A new epoll set.
    pub fn new() -> Result<Epoll> {
        // SAFETY: plain syscall.
        Ok(Epoll(owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a valid epoll_event for the call.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    /// Watches eventfd `fd` edge-triggered, reporting `token`: each write
    /// to it is one report, so it never needs reading (the count it keeps
    /// would take centuries of writes to fill).
    pub fn add_edge(&self, fd: RawFd, token: u64) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLIN | libc::EPOLLET) as u32, token)
    }

    /// Turns input watching of `fd` on or off.
    pub fn set_input(&self, fd: RawFd, token: u64, on: bool) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, if on { libc::EPOLLIN as u32 } else { 0 }, token)
    }

    /// Waits up to `timeout_ms` (-1: forever); the tokens that fired go
    /// into `out`.
    pub fn wait(&self, out: &mut Vec<u64>, timeout_ms: i32) -> Result<()> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: evs is a valid array of 64 events.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), 64, timeout_ms) };
        out.clear();
        if n < 0 {
            let e = Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) { Ok(()) } else { Err(e) };
        }
        out.extend(evs[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is valid; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// A non-blocking `CLOCK_MONOTONIC` timerfd.
pub fn timerfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })
}

/// Arms `fd` to fire once at absolute monotonic time `at_ns` (0: disarm),
/// or every `interval_ns` if non-zero.
pub fn timer_set(fd: RawFd, at_ns: u64, interval_ns: u64) -> Result<()> {
    let ts = |ns: u64| libc::timespec { tv_sec: (ns / 1_000_000_000) as _, tv_nsec: (ns % 1_000_000_000) as _ };
    let spec = libc::itimerspec { it_interval: ts(interval_ns), it_value: ts(at_ns) };
    // SAFETY: spec is valid; old value not requested.
    check(unsafe { libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) }).map(|_| ())
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (message boundaries
/// kept): the supervisor's control channel to one process.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both descriptors were just created for us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message (a whole datagram) on a seqpacket socket.
pub fn send_msg(fd: RawFd, data: &[u8]) -> Result<()> {
    // SAFETY: data is a valid slice; MSG_NOSIGNAL turns a closed peer into
    // EPIPE instead of SIGPIPE.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
    if n < 0 { Err(Error::last_os_error()) } else { Ok(()) }
}

/// Receives one message into `buf` (truncated if longer); `Ok(0)` when the
/// peer closed. `MSG_DONTWAIT` if `nonblock`.
pub fn recv_msg(fd: RawFd, buf: &mut [u8], nonblock: bool) -> Result<usize> {
    let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: buf is a valid writable slice.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 { Err(Error::last_os_error()) } else { Ok(n as usize) }
}

/// Waits up to `timeout_ms` for `fd` to become readable.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) > 0 }
}

/// 32 bytes from the kernel's CSPRNG (`getrandom`): the per-boot seed each
/// component's `init` gets.
pub fn entropy() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    let mut got = 0;
    while got < seed.len() {
        // SAFETY: writes at most the remaining bytes of `seed`.
        let n = unsafe { libc::getrandom(seed[got..].as_mut_ptr().cast(), seed.len() - got, 0) };
        if n < 0 {
            let e = Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(seed)
}

/// What `fork` returned.
pub enum Forked {
    /// In the parent: the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks the process.
///
/// # Safety
///
/// In the child only the calling thread exists; the caller must not rely on
/// locks another thread may have held (glibc's `fork` resets malloc's), and
/// the child must end with [`exit_now`], never by returning into code that
/// expects to be the parent.
pub unsafe fn fork() -> Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// Ends the process at once with `code`, without running the parent's
/// destructors or atexit handlers (a forked child must not flush or delete
/// what the parent owns).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor from 3 up except those in `keep` (a forked
/// component keeps only its own).
pub fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&f| f > 2).collect();
    keep.sort_unstable();
    let mut lo: u32 = 3;
    for &k in &keep {
        let k = k as u32;
        if k > lo {
            // SAFETY: closes descriptors in lo..k-1, none of which the child
            // uses (it keeps only `keep`, whose owners are forgotten below).
            unsafe { libc::syscall(libc::SYS_close_range, lo, k - 1, 0) };
        }
        lo = k + 1;
    }
    // SAFETY: as above, for everything above the last kept descriptor.
    unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0) };
}

/// Sends `sig` to `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: plain syscall; a vanished pid is harmless (ESRCH).
    unsafe { libc::kill(pid, sig) };
}

/// How a child ended, or `None` if it is still running (`WNOHANG`).
pub fn try_wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    // SAFETY: status is a valid int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid { Some(status) } else { None }
}

/// Waits for the child to end.
pub fn wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Describes a wait status: `exited with 3`, `killed by SIGSEGV`.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static or thread-local string for any
        // signal number; we copy it at once.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }.to_string_lossy().into_owned();
        format!("killed by signal {sig} ({name})")
    } else {
        format!("ended with wait status {status:#x}")
    }
}

/// A signalfd for `signals`, which are blocked for normal delivery in this
/// thread (and in children forked from it, until they unblock).
pub fn signalfd(signals: &[libc::c_int]) -> Result<OwnedFd> {
    // SAFETY: set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        check(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()))?;
        owned(libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))
    }
}

/// Reads one signal number from a signalfd.
pub fn read_signal(fd: RawFd) -> Option<u32> {
    // SAFETY: signalfd_siginfo is plain data; we read at most its size.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let n = libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size_of::<libc::signalfd_siginfo>());
        if n == size_of::<libc::signalfd_siginfo>() as isize { Some(info.ssi_signo) } else { None }
    }
}

/// Unblocks every signal (a forked child starts with its parent's mask).
pub fn unblock_all_signals() {
    // SAFETY: set is initialised before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Asks the kernel to kill this process when its parent dies, so a
/// supervisor that is killed takes its graph with it (fail closed).
pub fn die_with_parent() {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// The CPUs this process may run on (`sched_getaffinity`), lowest first.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size given.
    check(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    // SAFETY: CPU_ISSET reads the set for indices below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Restricts this process to `cpus` (`sched_setaffinity`).
pub fn set_cpus(cpus: &[usize]) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(Error::other(format!("CPU {c} is past the most the kernel's set holds")));
        }
        // SAFETY: c is below CPU_SETSIZE (checked).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size given.
    check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_round_trips() {
        let all = allowed_cpus().unwrap();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        // In a thread of its own, so the test process keeps its CPUs.
        std::thread::spawn(move || {
            set_cpus(&[last]).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [last]);
            assert!(set_cpus(&[libc::CPU_SETSIZE as usize]).is_err());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn memfd_mappings_share_memory_and_read_only_stays_read_only() {
        let fd = memfd("test", 4096).unwrap();
        let rw = Mapping::map(&fd, 4096, true).unwrap();
        let ro_fd = reopen_read_only(&fd).unwrap();
        let ro = Mapping::map(&ro_fd, 4096, false).unwrap();
        rw.region().write_volatile(100, &[7, 8, 9]).unwrap();
        let mut out = [0u8; 3];
        ro.region().read_volatile(100, &mut out).unwrap();
        assert_eq!(out, [7, 8, 9], "both mappings see the same memory");
        assert!(!ro.region().writable());
        // The read-only descriptor cannot be mapped writable, nor the
        // mapping upgraded.
        assert!(Mapping::map(&ro_fd, 4096, true).is_err());
        // SAFETY: mprotect on our own mapping; it must fail and change nothing.
        let r = unsafe { libc::mprotect(ro.base.cast(), 4096, libc::PROT_READ | libc::PROT_WRITE) };
        assert_eq!(r, -1);
        assert_eq!(Error::last_os_error().raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn a_mapping_at_an_offset_sees_that_page() {
        let fd = memfd("offset", 8192).unwrap();
        let whole = Mapping::map(&fd, 8192, true).unwrap();
        whole.region().write_volatile(4096 + 5, &[42]).unwrap();
        let second = Mapping::map_at(&fd, 4096, 4096, true).unwrap();
        let mut out = [0u8; 1];
        second.region().read_volatile(5, &mut out).unwrap();
        assert_eq!(out, [42]);
        assert!(Mapping::map_at(&fd, 100, 4096, true).is_err(), "offsets are page-aligned");
    }

    #[test]
    fn a_grant_map_on_something_not_the_grant_device_fails_cleanly() {
        // The real device only exists in a Xen dom0 (the testbed's XenStore
        // comparison uses it there); elsewhere the request must be refused
        // by the kernel, not turn into a mapping of whatever the fd is.
        let fd = memfd("not-gntdev", 4096).unwrap();
        let err = map_grant(&fd, 1, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn eventfds_wake_epoll_and_drain() {
        let ep = Epoll::new().unwrap();
        let a = eventfd().unwrap();
        let b = eventfd().unwrap();
        ep.add(a.as_raw_fd(), 1).unwrap();
        ep.add(b.as_raw_fd(), 2).unwrap();
        let mut out = Vec::new();
        ep.wait(&mut out, 0).unwrap();
        assert!(out.is_empty());
        signal(b.as_raw_fd());
        signal(b.as_raw_fd());
        ep.wait(&mut out, 1000).unwrap();
        assert_eq!(out, [2]);
        assert!(drain(b.as_raw_fd()));
        assert!(!drain(b.as_raw_fd()), "one read clears the counter");
        ep.set_input(a.as_raw_fd(), 1, false).unwrap();
        signal(a.as_raw_fd());
        ep.wait(&mut out, 0).unwrap();
        assert!(out.is_empty(), "input watching turned off");
    }

    #[test]
    fn timerfd_fires_at_its_time() {
        let ep = Epoll::new().unwrap();
        let t = timerfd().unwrap();
        ep.add(t.as_raw_fd(), 9).unwrap();
        timer_set(t.as_raw_fd(), monotonic_ns() + 5_000_000, 0).unwrap();
        let mut out = Vec::new();
        ep.wait(&mut out, 2000).unwrap();
        assert_eq!(out, [9]);
    }

    #[test]
    fn seqpackets_keep_boundaries() {
        let (a, b) = seqpacket_pair().unwrap();
        send_msg(a.as_raw_fd(), b"one").unwrap();
        send_msg(a.as_raw_fd(), b"three").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(recv_msg(b.as_raw_fd(), &mut buf, true).unwrap(), 3);
        assert_eq!(recv_msg(b.as_raw_fd(), &mut buf, true).unwrap(), 5);
        assert!(recv_msg(b.as_raw_fd(), &mut buf, true).is_err(), "nothing left: EAGAIN");
        drop(a);
        assert_eq!(recv_msg(b.as_raw_fd(), &mut buf, true).unwrap(), 0, "closed peer");
    }

    #[test]
    fn entropy_differs() {
        assert_ne!(entropy().unwrap(), entropy().unwrap());
    }
}
