//! TAP devices: open, set non-blocking, bring the link up. All ioctl plumbing
//! of the shell lives here (firecracker's `net/tap.rs`).
//!
//! Only opening can fail. Setting the MTU and the UP flag are done by name in
//! the current network namespace and only warn on failure: a lab may move the
//! device into another namespace (and bring it up there), and the open file
//! descriptor keeps working wherever the device lives.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tun_tap::{Iface, Mode};

/// Bytes a frame may carry beyond the MTU: Ethernet header (14) and two
/// 802.1Q tags (8). A TAP hands us no FCS.
pub const L2_OVERHEAD: usize = 14 + 8;

/// One TAP device, non-blocking, without packet info.
pub struct Tap {
    iface: Iface,
    /// Read buffer size: a frame this long may have been truncated.
    pub read_len: usize,
}

/// Why a TAP could not be opened. Each variant's doc is its message.
#[derive(Debug)]
pub enum TapError {
    /// TAP name `{0}` is not usable: {1}
    BadName(String, &'static str),
    /// cannot open TAP device `{0}`: {1}
    Open(String, io::Error),
    /// cannot make TAP device `{0}` non-blocking: {1}
    NonBlocking(String, io::Error),
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
            TapError::NonBlocking(name, e) => write!(f, "cannot make TAP device `{name}` non-blocking: {e}"),
        }
    }
}

impl std::error::Error for TapError {}

impl Tap {
    /// Open (or create) TAP `name`, non-blocking; then try to set its MTU and
    /// bring it up, warning if that is not possible.
    pub fn open(name: &str, mtu: u16) -> Result<Tap, TapError> {
        check_name(name).map_err(|why| TapError::BadName(name.into(), why))?;
        let iface = Iface::without_packet_info(name, Mode::Tap).map_err(|e| TapError::Open(name.into(), e))?;
        if iface.name() != name {
            // The kernel shortened or rewrote it; `check_name` should prevent this.
            return Err(TapError::BadName(name.into(), "the kernel changed the name; use at most 15 plain characters"));
        }
        iface.set_non_blocking().map_err(|e| TapError::NonBlocking(name.into(), e))?;
        if let Err(e) = set_mtu_and_up(name, mtu) {
            log::warn!("TAP {name}: cannot set MTU {mtu} and bring the link up: {e}; configure it by hand");
        }
        Ok(Tap { iface, read_len: mtu as usize + L2_OVERHEAD })
    }

    pub fn name(&self) -> &str {
        self.iface.name()
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.iface.send(buf)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
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

    // SAFETY: `ifreq` is plain old data (a name array and a union of
    // integers, sockaddrs and a pointer); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // `check_name` guarantees the name fits with its NUL terminator.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }

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
