//! TAP devices: Ethernet frames between the kernel and the adapters, each
//! preceded by a `virtio_net_hdr` (`IFF_VNET_HDR`) so checksum state crosses
//! the boundary instead of being recomputed.

use std::ffi::CString;
use std::io::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::adapter::link::Frames;

/// Bytes of `struct virtio_net_hdr` (no mergeable buffers).
pub const VNET_HDR_LEN: usize = 10;

/// `virtio_net_hdr.flags`: the L4 checksum is partial (starts at
/// `csum_start`, stored at `csum_offset`): Linux `CHECKSUM_PARTIAL`.
pub const VNET_NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.flags`: checksums were validated (`CHECKSUM_UNNECESSARY`).
pub const VNET_DATA_VALID: u8 = 2;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// What the kernel may hand over unfinished (`TUNSETOFFLOAD`). Frames
/// *to* the kernel may always carry a partial checksum or be super-packets;
/// this is about frames from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offload {
    /// Every checksum complete, every frame at most the MTU.
    None,
    /// TCP/UDP checksums may be partial ([`VNET_NEEDS_CSUM`]).
    Csum,
    /// Partial checksums, and TCP/IPv4 super-packets of up to 64 KiB
    /// (`GSO_TCPV4`, TSO).
    Segmentation,
}

/// An open TAP device.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

/// Runs `f` inside the network namespace `netns` (a name under
/// `/run/netns`, as `ip netns add` makes), then returns to the current one.
fn in_netns<T>(netns: Option<&str>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(ns) = netns else { return f() };
    let open = |p: &str| -> Result<OwnedFd> {
        let c = CString::new(p).map_err(|_| Error::other("NUL in netns path"))?;
        // SAFETY: c is a valid path string.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Error::new(Error::last_os_error().kind(), format!("{p}: {}", Error::last_os_error())));
        }
        // SAFETY: just opened, ours.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    if ns.contains('/') || ns.is_empty() {
        return Err(Error::other(format!("bad network namespace name `{ns}`")));
    }
    let here = open("/proc/thread-self/ns/net")?;
    let there = open(&format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a namespace descriptor; affects only this thread.
    if unsafe { libc::setns(there.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(Error::last_os_error());
    }
    let r = f();
    // SAFETY: as above, back to where we were.
    if unsafe { libc::setns(here.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(Error::last_os_error());
    }
    r
}

impl Tap {
    /// Opens (creating if absent) TAP `name`, in network namespace `netns`
    /// if given, with the kernel allowed to hand over what `offload` says.
    pub fn open(name: &str, netns: Option<&str>, offload: Offload) -> Result<Tap> {
        if name.is_empty() || name.len() > 15 {
            return Err(Error::other(format!("TAP name `{name}` must have 1 to 15 characters")));
        }
        let fd = in_netns(netns, || {
            // SAFETY: a constant path.
            let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) };
            if fd < 0 {
                return Err(Error::last_os_error());
            }
            // SAFETY: just opened, ours.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut req = IfReq { name: [0; 16], flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, _pad: [0; 22] };
            req.name[..name.len()].copy_from_slice(name.as_bytes());
            // SAFETY: TUNSETIFF reads and writes an ifreq, which IfReq lays out.
            if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
                let e = Error::last_os_error();
                return Err(Error::new(e.kind(), format!("TAP `{name}`: {e}")));
            }
            Ok(fd)
        })?;
        let offload = match offload {
            Offload::None => 0,
            Offload::Csum => TUN_F_CSUM,
            Offload::Segmentation => TUN_F_CSUM | TUN_F_TSO4,
        };
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, offload) } < 0 {
            return Err(Error::last_os_error());
        }
        Ok(Tap { fd, name: name.into() })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Frames for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        // A frame longer than `buf` would be cut to it silently; the spill
        // iovec makes the cut visible (a length past `buf`).
        let mut spill = [0u8; 64];
        let iov = [
            libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() },
            libc::iovec { iov_base: spill.as_mut_ptr().cast(), iov_len: spill.len() },
        ];
        // SAFETY: both iovecs point into live, writable buffers of their lengths.
        let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            let e = Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EAGAIN) { Ok(None) } else { Err(e) };
        }
        Ok(Some(n as usize))
    }

    fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        let iov: Vec<libc::iovec> =
            parts.iter().map(|p| libc::iovec { iov_base: p.as_ptr() as *mut _, iov_len: p.len() }).collect();
        // SAFETY: every iovec points into a live slice; writev only reads them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
        if n < 0 { Err(Error::last_os_error()) } else { Ok(()) }
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}
