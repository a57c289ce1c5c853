//! TAP devices: open with vnet_hdr and offload, set non-blocking, bring the
//! link up, read and write frames. All ioctl plumbing of the shell lives here
//! (firecracker's `net/tap.rs`).
//!
//! Every TAP is opened with `IFF_VNET_HDR`, so each frame crosses the file
//! descriptor behind a 10-byte `virtio_net_hdr` ([`super::vnet`]), and then
//! asked for TUNSETOFFLOAD (checksum, TSO for IPv4 and IPv6, TSO with ECN):
//! the kernel may then hand us 64 KiB TCP super-frames with a partial
//! checksum instead of segmenting and checksumming each 1500-byte frame, and
//! takes them back the same way. That is the lever for throughput: a TAP has
//! no sendmmsg/recvmmsg, so the cost is per read(2)/write(2), and one call
//! per 64 KiB instead of per 1.5 KiB is what brings TCP near the kernel's own
//! forwarding. The core knows what to do with the header's fields (see
//! `twinwall::offload`).
//!
//! Only opening can fail. Setting the MTU and the UP flag are done by name in
//! the current network namespace and only warn on failure: a lab may move the
//! device into another namespace (and bring it up there), and the open file
//! descriptor keeps working wherever the device lives. TUNSETOFFLOAD failing
//! only warns too: the TAP then carries plain frames (still behind a header).
//! `TWINWALL_TAP_OFFLOAD=0` in the environment leaves offload off on purpose,
//! to measure what it brings.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use twinwall::frame::{FrameBuf, MAX_FRAME};

use super::vnet;

/// Bytes a frame may carry beyond the MTU: Ethernet header (14) and two
/// 802.1Q tags (8). A TAP hands us no FCS.
pub const L2_OVERHEAD: usize = 14 + 8;

/// What the kernel may leave to us (and we to it): checksums, TSO.
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// One TAP device, non-blocking, without packet info, with a vnet header.
pub struct Tap {
    fd: OwnedFd,
    name: String,
    /// Largest frame a read takes: MTU-sized without offload, a super-frame
    /// with it. A frame this long may have been truncated.
    pub read_len: usize,
    /// TUNSETOFFLOAD succeeded: the kernel may send super-frames and partial checksums.
    pub offload: bool,
}

/// Why a TAP could not be opened. Each variant's doc is its message.
#[derive(Debug)]
pub enum TapError {
    /// TAP name `{0}` is not usable: {1}
    BadName(String, &'static str),
    /// cannot open TAP device `{0}`: {1}
    Open(String, io::Error),
    /// cannot set the vnet header size of TAP device `{0}`: {1}
    VnetHdr(String, io::Error),
}

impl fmt::Display for TapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapError::BadName(name, why) => write!(f, "TAP name `{name}` is not usable: {why}"),
            TapError::Open(name, e) => {
                write!(f, "cannot open TAP device `{name}`: {e}")?;
                let hint = match e.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        "twinwall needs root or CAP_NET_ADMIN (and read/write access to /dev/net/tun)"
                    }
                    Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                        "/dev/net/tun is missing: run `modprobe tun`, or pass the device into the container \
                         (e.g. `--device /dev/net/tun`)"
                    }
                    Some(libc::EBUSY) => {
                        "a device of that name is already attached to another process; stop it, or delete the \
                         device with `ip link del`"
                    }
                    Some(libc::EINVAL) => {
                        "a device of that name exists but is not a TAP (e.g. a TUN or a veth); rename one of them"
                    }
                    _ => "twinwall needs root or CAP_NET_ADMIN and /dev/net/tun",
                };
                write!(f, "; {hint}")
            }
            TapError::VnetHdr(name, e) => write!(
                f,
                "cannot set the vnet header size of TAP device `{name}`: {e}; the kernel needs TUNSETVNETHDRSZ \
                 (Linux 2.6.32 or later)"
            ),
        }
    }
}

impl std::error::Error for TapError {}

/// `struct ifreq` with `name` in it; `check_name` guarantees it fits with
/// its NUL terminator.
fn ifreq_named(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data (a name array and a union of
    // integers, sockaddrs and a pointer); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req
}

impl Tap {
    /// Open (or create) TAP `name`, non-blocking, with a vnet header and,
    /// if the kernel agrees, offload; then try to set its MTU and bring it
    /// up, warning if that is not possible.
    pub fn open(name: &str, mtu: u16) -> Result<Tap, TapError> {
        check_name(name).map_err(|why| TapError::BadName(name.into(), why))?;
        // SAFETY: a NUL-terminated path literal; the result is checked.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(TapError::Open(name.into(), io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq_named(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the `struct ifreq` we own.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) } < 0 {
            return Err(TapError::Open(name.into(), io::Error::last_os_error()));
        }
        // SAFETY: the kernel NUL-terminates `ifr_name` within IFNAMSIZ.
        let got = unsafe { std::ffi::CStr::from_ptr(req.ifr_name.as_ptr()) };
        if got.to_bytes() != name.as_bytes() {
            // The kernel shortened or rewrote it; `check_name` should prevent this.
            return Err(TapError::BadName(name.into(), "the kernel changed the name; use at most 15 plain characters"));
        }
        let hdr_len = vnet::LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len as *const libc::c_int) } < 0 {
            return Err(TapError::VnetHdr(name.into(), io::Error::last_os_error()));
        }
        let wanted = std::env::var("TWINWALL_TAP_OFFLOAD").map_or(true, |v| v != "0");
        let flags = if wanted { OFFLOADS } else { 0 };
        // SAFETY: TUNSETOFFLOAD takes its flags by value, no pointer.
        let offload = if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) } < 0 {
            log::warn!(
                "TAP {name}: the kernel refused checksum/TSO offload ({}); forwarding 1500-byte frames only",
                io::Error::last_os_error()
            );
            false
        } else {
            wanted
        };
        if let Err(e) = set_mtu_and_up(name, mtu) {
            log::warn!("TAP {name}: cannot set MTU {mtu} and bring the link up: {e}; configure it by hand");
        }
        let read_len = if offload { MAX_FRAME } else { mtu as usize + L2_OVERHEAD };
        Ok(Tap { fd, name: name.into(), read_len, offload })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read one frame into `buf` (the vnet header lands in its headroom and
    /// becomes `buf.offload`): one read(2), no copy. `Ok(0)` for a read too
    /// short to hold a header.
    pub fn recv(&self, buf: &mut FrameBuf) -> io::Result<usize> {
        let area = buf.spare_with_prefix_mut(vnet::LEN, self.read_len);
        // SAFETY: `area` is a writable buffer of `area.len()` bytes that
        // outlives the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), area.as_mut_ptr().cast(), area.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let Some(len) = (n as usize).checked_sub(vnet::LEN) else {
            buf.truncate(0);
            return Ok(0);
        };
        buf.truncate(len);
        buf.offload = vnet::decode(buf.prefix(vnet::LEN).expect("read into the headroom"));
        Ok(len)
    }

    /// Write one frame behind its vnet header, no copy: the header goes
    /// into the buffer's headroom and the whole into one write(2) (a
    /// writev(2) of two pieces only when the headroom is too short, which
    /// the core's frames never are). The single buffer spares the kernel
    /// importing an iovec array per frame.
    pub fn send(&self, buf: &mut FrameBuf) -> io::Result<usize> {
        let hdr = vnet::encode(&buf.offload);
        let n = if let Some(area) = buf.with_prefix_mut(vnet::LEN) {
            area[..vnet::LEN].copy_from_slice(&hdr);
            // SAFETY: `area` is a live buffer of `area.len()` bytes; write only reads it.
            unsafe { libc::write(self.fd.as_raw_fd(), area.as_ptr().cast(), area.len()) }
        } else {
            let frame = buf.as_ref();
            let iov = [
                libc::iovec { iov_base: hdr.as_ptr() as *mut libc::c_void, iov_len: hdr.len() },
                libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() },
            ];
            // SAFETY: both iovecs point at live buffers of the stated
            // lengths; writev only reads them.
            unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize).saturating_sub(vnet::LEN))
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err("Linux interface names have at most 15 bytes");
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c == '%' || c == ':' || c.is_whitespace()) {
        return Err("it may not contain `/`, `%`, `:` or spaces, nor be `.` or `..`");
    }
    Ok(())
}

/// SIOCSIFMTU, then SIOCGIFFLAGS/SIOCSIFFLAGS with IFF_UP, on `name` in the
/// current network namespace.
fn set_mtu_and_up(name: &str, mtu: u16) -> io::Result<()> {
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut req = ifreq_named(name);
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    // SAFETY: SIOCSIFMTU reads a `struct ifreq` that we own and that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS writes `ifru_flags` into the `struct ifreq` we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just initialised the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the `struct ifreq` we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("tw-inside").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a-very-long-name0").is_err());
        assert!(check_name("tap%d").is_err());
        assert!(check_name("a b").is_err());
    }

    #[test]
    fn open_error_says_how_to_fix() {
        let e = TapError::Open("tw0".into(), io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = TapError::Open("tw0".into(), io::Error::from_raw_os_error(libc::ENOENT));
        assert!(e.to_string().contains("/dev/net/tun"), "{e}");
    }
}
