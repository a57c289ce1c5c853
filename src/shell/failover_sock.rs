//! The failover link's two UDP sockets. All their socket options and
//! `recvmsg` plumbing live here (as the TAP ioctls live in `tap.rs`).
//!
//! * **Delta** socket: bound to `local:port`, sends the core's
//!   [`SyncDst::Peer`] datagrams to `peer:port` with IP TTL 255.
//! * **Hello** socket: bound to `0.0.0.0:hello_port` (`SO_REUSEADDR`), joined
//!   to `hello_group` on the failover interface, sends [`SyncDst::HelloGroup`]
//!   datagrams there with multicast TTL 255 and no loopback.
//!
//! Both are tied to the failover interface (`SO_BINDTODEVICE`), ask for the
//! received TTL (`IP_RECVTTL`) so the core can apply RFC 5082 (GTSM: only a
//! directly connected sender can produce TTL 255), and are marked DSCP CS6
//! (network control) so a QoS-aware switch or qdisc keeps hellos ahead of
//! data. Datagrams whose source is our own `local` address are ignored.
//!
//! Sending never blocks and never queues: a hello is repeated every
//! `poll_ms` and the delta stream retransmits what is not acknowledged, so a
//! datagram the kernel cannot take right now is dropped, counted, and logged
//! at most every [`LOG_INTERVAL`].

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use twinwall::appliance::SyncDst;
use twinwall::config::FailoverCfg;
use twinwall::time::{Duration, Instant};

/// The TTL a directly connected sender's datagram carries (RFC 5082).
pub const GTSM_TTL: u8 = 255;
/// Datagrams read from one socket per drain before the loop turns to the
/// TAPs; the rest wait for the next drain (the loop does not sleep then).
const READS_PER_DRAIN: usize = 256;
/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// DSCP CS6 (network control), RFC 4594, in the TOS byte.
const TOS_CS6: libc::c_int = 0xc0;
/// `SO_PRIORITY` for the host's qdiscs: TC_PRIO_INTERACTIVE, the highest a
/// socket may pick without CAP_NET_ADMIN.
const SK_PRIORITY: libc::c_int = 6;
/// Receive buffer asked for, so a bulk sync burst is not lost while the loop
/// forwards a batch of frames.
const RCVBUF: libc::c_int = 4 << 20;
/// Minimum gap between two log lines about the same kind of trouble.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why the failover link could not be opened. Each message names the
/// `[failover]` key involved and says how to fix it.
#[derive(Debug)]
pub enum LinkError {
    /// [failover] interface `{0}` does not exist
    NoInterface(String),
    /// [failover] local {0} is not assigned to interface {1}
    LocalMissing { local: Ipv4Addr, interface: String },
    /// [failover] local {0} is on interface {2}, not {1}
    LocalElsewhere { local: Ipv4Addr, interface: String, on: String },
    /// [failover] {0}: {1}
    Socket(String, io::Error),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoInterface(name) => write!(
                f,
                "[failover] interface = \"{name}\": no such network interface in this namespace; create it \
                 (e.g. cable a dedicated NIC or veth and name it with `ip link set <dev> name {name}`) or set \
                 `interface` to the failover link's device"
            ),
            LinkError::LocalMissing { local, interface } => write!(
                f,
                "[failover] local = \"{local}\" is not assigned to interface {interface}; assign it first \
                 (`ip addr add {local}/24 dev {interface}`) or fix `local`"
            ),
            LinkError::LocalElsewhere { local, interface, on } => write!(
                f,
                "[failover] local = \"{local}\" is assigned to {on}, not to the failover interface {interface}; \
                 move it (`ip addr del {local}/.. dev {on}; ip addr add {local}/24 dev {interface}`) or fix \
                 `interface`"
            ),
            LinkError::Socket(what, e) => {
                write!(f, "[failover] {what}: {e}")?;
                if matches!(e.raw_os_error(), Some(libc::EADDRINUSE)) {
                    write!(f, "; another process (a second twinwall?) uses that port: stop it or change the port")?;
                }
                if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                    write!(f, "; twinwall needs root or CAP_NET_RAW/CAP_NET_ADMIN")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// Counters of the failover link, as the shell sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx: u64,
    /// Passed to the core with `ttl_ok = false`.
    pub rx_ttl_not_255: u64,
    /// Our own datagrams (source = `local`), not passed on.
    pub rx_own: u64,
    /// Longer than our buffer; not passed on.
    pub rx_truncated: u64,
    pub rx_errors: u64,
    pub tx: u64,
    /// The socket buffer was full; dropped.
    pub tx_would_block: u64,
    pub tx_errors: u64,
}

/// One kind of trouble, logged at most every [`LOG_INTERVAL`].
struct RateLog {
    unreported: u64,
    next: Instant,
}

impl RateLog {
    const fn new() -> RateLog {
        RateLog { unreported: 0, next: Instant::ZERO }
    }
    /// Count one; say whether to log now, and how many since the last line.
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        if now < self.next {
            return None;
        }
        self.next = now + LOG_INTERVAL;
        Some(mem::take(&mut self.unreported))
    }
}

/// Which of the two sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Delta,
    Hello,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Delta => "delta socket",
            Which::Hello => "hello socket",
        }
    }
}

pub struct FailoverLink {
    interface: String,
    local: Ipv4Addr,
    peer: SocketAddr,
    group: SocketAddr,
    delta: UdpSocket,
    hello: UdpSocket,
    buf: Vec<u8>,
    /// A drain stopped at [`READS_PER_DRAIN`]: more may be waiting.
    pub rx_pending: bool,
    pub stats: LinkStats,
    log_tx_full: RateLog,
    log_tx_err: RateLog,
    log_rx: RateLog,
}

/// What the sockets are bound to; a reload that changes it needs a restart.
pub fn link_params(fo: &FailoverCfg) -> (String, Ipv4Addr, Ipv4Addr, u16, Ipv4Addr, u16) {
    (fo.interface.clone(), fo.local, fo.peer, fo.port, fo.hello_group, fo.hello_port)
}

impl FailoverLink {
    /// Check that the interface and `local` exist, then open both sockets.
    pub fn open(fo: &FailoverCfg) -> Result<FailoverLink, LinkError> {
        let ifindex = check_interface(&fo.interface, fo.local)?;
        let sock_err = |what: String| move |e: io::Error| LinkError::Socket(what, e);

        let delta = udp_socket().map_err(sock_err("cannot create the delta socket".into()))?;
        common_options(&delta, &fo.interface)
            .map_err(sock_err(format!("delta socket: cannot bind it to interface {}", fo.interface)))?;
        set_int(&delta, libc::IPPROTO_IP, libc::IP_TTL, GTSM_TTL.into())
            .map_err(sock_err("delta socket: cannot set IP_TTL 255".into()))?;
        bind(&delta, SocketAddrV4::new(fo.local, fo.port))
            .map_err(sock_err(format!("port = {}: cannot bind {}:{}", fo.port, fo.local, fo.port)))?;

        let hello = udp_socket().map_err(sock_err("cannot create the hello socket".into()))?;
        set_int(&hello, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
            .map_err(sock_err("hello socket: cannot set SO_REUSEADDR".into()))?;
        common_options(&hello, &fo.interface)
            .map_err(sock_err(format!("hello socket: cannot bind it to interface {}", fo.interface)))?;
        bind(&hello, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, fo.hello_port))
            .map_err(sock_err(format!("hello_port = {}: cannot bind 0.0.0.0:{}", fo.hello_port, fo.hello_port)))?;
        join_group(&hello, fo.hello_group, fo.local, ifindex).map_err(sock_err(format!(
            "hello_group = \"{}\": cannot join it on {} (is it a multicast address, and is the interface up?)",
            fo.hello_group, fo.interface
        )))?;
        // Only our group's datagrams, not every group some other socket joined.
        set_int(&hello, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, 0)
            .map_err(sock_err("hello socket: cannot clear IP_MULTICAST_ALL".into()))?;
        set_multicast_if(&hello, fo.local).map_err(sock_err("hello socket: cannot set IP_MULTICAST_IF".into()))?;
        set_int(&hello, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, GTSM_TTL.into())
            .map_err(sock_err("hello socket: cannot set IP_MULTICAST_TTL 255".into()))?;
        set_int(&hello, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)
            .map_err(sock_err("hello socket: cannot clear IP_MULTICAST_LOOP".into()))?;

        let peer = SocketAddr::V4(SocketAddrV4::new(fo.peer, fo.port));
        let group = SocketAddr::V4(SocketAddrV4::new(fo.hello_group, fo.hello_port));
        log::info!(
            "failover link on {} ({}): deltas {}:{} <-> {peer}, hellos {group}",
            fo.interface,
            fo.local,
            fo.local,
            fo.port
        );
        Ok(FailoverLink {
            interface: fo.interface.clone(),
            local: fo.local,
            peer,
            group,
            delta: into_mio(delta),
            hello: into_mio(hello),
            buf: vec![0; MAX_DATAGRAM + 1],
            rx_pending: true,
            stats: LinkStats::default(),
            log_tx_full: RateLog::new(),
            log_tx_err: RateLog::new(),
            log_rx: RateLog::new(),
        })
    }

    /// The hello socket and where hellos go, for the heartbeat thread.
    pub fn hello_target(&self) -> (RawFd, SocketAddr) {
        (self.hello.as_raw_fd(), self.group)
    }

    pub fn register(&mut self, reg: &Registry, delta: Token, hello: Token) -> io::Result<()> {
        reg.register(&mut self.delta, delta, Interest::READABLE)?;
        reg.register(&mut self.hello, hello, Interest::READABLE)
    }

    /// Read both sockets until `WouldBlock` or [`READS_PER_DRAIN`] each, and
    /// hand every datagram from someone else to `deliver(bytes, ttl_ok)`.
    /// Called whether or not mio reported readiness: between TAP batches
    /// there was no `poll`, and an empty read costs one syscall.
    pub fn drain(&mut self, now: Instant, mut deliver: impl FnMut(&[u8], bool)) {
        self.rx_pending = false;
        for which in [Which::Hello, Which::Delta] {
            for i in 0..=READS_PER_DRAIN {
                if i == READS_PER_DRAIN {
                    self.rx_pending = true;
                    break;
                }
                let fd = match which {
                    Which::Delta => self.delta.as_raw_fd(),
                    Which::Hello => self.hello.as_raw_fd(),
                };
                match recv_with_ttl(fd, &mut self.buf) {
                    Ok(d) => {
                        if d.src.ip() == &self.local {
                            self.stats.rx_own += 1;
                            continue;
                        }
                        if d.truncated {
                            self.stats.rx_truncated += 1;
                            if let Some(n) = self.log_rx.note(now) {
                                log::warn!(
                                    "failover {}: {n} datagram(s) from {} longer than {MAX_DATAGRAM} bytes dropped",
                                    which.name(),
                                    d.src
                                );
                            }
                            continue;
                        }
                        self.stats.rx += 1;
                        let ttl_ok = d.ttl == Some(GTSM_TTL);
                        if !ttl_ok {
                            self.stats.rx_ttl_not_255 += 1;
                        }
                        log::trace!("failover {}: {} bytes from {} ttl {:?}", which.name(), d.len, d.src, d.ttl);
                        deliver(&self.buf[..d.len], ttl_ok);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. ENOMEM: try again at the next drain.
                        self.stats.rx_errors += 1;
                        if let Some(n) = self.log_rx.note(now) {
                            log::warn!("failover {}: {n} receive error(s), last: {e}", which.name());
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Send one datagram now, or drop and count it.
    pub fn send(&mut self, to: SyncDst, bytes: &[u8], now: Instant) {
        let (sock, dst, which) = match to {
            SyncDst::Peer => (&self.delta, self.peer, Which::Delta),
            SyncDst::HelloGroup => (&self.hello, self.group, Which::Hello),
        };
        let r = loop {
            match sock.send_to(bytes, dst) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        match r {
            Ok(_) => self.stats.tx += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stats.tx_would_block += 1;
                if let Some(n) = self.log_tx_full.note(now) {
                    log::warn!(
                        "failover {}: {n} datagram(s) to {dst} dropped, socket buffer full ({} in all)",
                        which.name(),
                        self.stats.tx_would_block
                    );
                }
            }
            Err(e) => {
                self.stats.tx_errors += 1;
                if let Some(n) = self.log_tx_err.note(now) {
                    log::warn!(
                        "failover {}: {n} datagram(s) to {dst} not sent, last: {e} (is {} up?)",
                        which.name(),
                        self.interface
                    );
                }
            }
        }
    }
}

/// One datagram as `recvmsg` returned it.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    len: usize,
    src: SocketAddrV4,
    /// From the `IP_TTL` control message; `None` if there was none.
    ttl: Option<u8>,
    truncated: bool,
}

/// Control buffer for one `IP_TTL` message (an `int`), with room to spare;
/// `u64`s so it is aligned for `cmsghdr`.
type CmsgBuf = [u64; 8];

/// `recvmsg` one datagram into `buf`, with its source and received TTL.
fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: sockaddr_in, iovec and msghdr are plain C structs for which all
    // zero bytes is a valid value.
    let mut src: libc::sockaddr_in = unsafe { mem::zeroed() };
    let mut cmsg: CmsgBuf = [0; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut src as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of::<CmsgBuf>() as _;
    // SAFETY: every pointer in `msg` points at a live local or at `buf`, with
    // the lengths given; the kernel writes no more than those lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let src = SocketAddrV4::new(Ipv4Addr::from(u32::from_be(src.sin_addr.s_addr)), u16::from_be(src.sin_port));
    Ok(Received {
        len: (n as usize).min(buf.len()),
        src,
        ttl: ttl_from_cmsgs(&msg),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// The TTL in an `IPPROTO_IP`/`IP_TTL` control message of `msg`, if any.
/// The kernel sends it as an `int` when `IP_RECVTTL` is on.
fn ttl_from_cmsgs(msg: &libc::msghdr) -> Option<u8> {
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        log::debug!("failover: control data truncated");
    }
    // SAFETY: CMSG_LEN only computes a size.
    let want = unsafe { libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: `msg.msg_control`/`msg_controllen` describe a buffer that
    // recvmsg filled (or that a test built with the CMSG_* macros); the
    // macros never step outside it and return null at its end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and inside the control buffer, which is
        // aligned for cmsghdr.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL && h.cmsg_len as usize >= want {
            // SAFETY: the header says its data holds at least an int;
            // read_unaligned makes no alignment assumption.
            let ttl: libc::c_int = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            return u8::try_from(ttl).ok();
        }
        // SAFETY: `c` is a header inside `msg`'s control buffer.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    None
}

/// A non-blocking, close-on-exec UDP socket.
fn udp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain constants; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn into_mio(fd: OwnedFd) -> UdpSocket {
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// `setsockopt` with any plain-data value.
fn set_raw<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points at a live `T` of the size given; `T` is one of
    // the plain C types the option expects (checked by each caller).
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (val as *const T).cast(), mem::size_of::<T>() as libc::socklen_t)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    set_raw(fd, level, name, &val)
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr { s_addr: u32::from(a).to_be() }
}

fn bind(fd: &OwnedFd, addr: SocketAddrV4) -> io::Result<()> {
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: in_addr(*addr.ip()),
        sin_zero: [0; 8],
    };
    // SAFETY: `sa` is a complete sockaddr_in and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Options both sockets share: tied to the failover interface, TTL reported
/// on receipt, DSCP CS6, a large receive buffer. Only the first two can fail.
fn common_options(fd: &OwnedFd, interface: &str) -> io::Result<()> {
    let name = CString::new(interface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let bytes = name.as_bytes_with_nul();
    // SAFETY: `bytes` is a live NUL-terminated name of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    // Best effort: these only help under load.
    if let Err(e) = set_int(fd, libc::IPPROTO_IP, libc::IP_TOS, TOS_CS6) {
        log::debug!("failover: cannot set DSCP CS6: {e}");
    }
    if let Err(e) = set_int(fd, libc::SOL_SOCKET, libc::SO_PRIORITY, SK_PRIORITY) {
        log::debug!("failover: cannot set SO_PRIORITY: {e}");
    }
    // SO_RCVBUFFORCE passes net.core.rmem_max (root only); else take what
    // SO_RCVBUF gives.
    if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
    }
    Ok(())
}

fn join_group(fd: &OwnedFd, group: Ipv4Addr, local: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    let mreq = libc::ip_mreqn { imr_multiaddr: in_addr(group), imr_address: in_addr(local), imr_ifindex: ifindex as _ };
    set_raw(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)
}

fn set_multicast_if(fd: &OwnedFd, local: Ipv4Addr) -> io::Result<()> {
    set_raw(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &in_addr(local))
}

/// The interface's index, once we know it exists and holds `local`. Warns
/// (does not fail) if it is down: a cut failover link is a state the core
/// handles, not a configuration error.
fn check_interface(interface: &str, local: Ipv4Addr) -> Result<u32, LinkError> {
    let no_iface = || LinkError::NoInterface(interface.to_owned());
    let name = CString::new(interface).map_err(|_| no_iface())?;
    // SAFETY: `name` is a live NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(no_iface());
    }
    let addrs = ipv4_addrs().map_err(|e| LinkError::Socket("cannot list interface addresses".into(), e))?;
    if let Some(a) = addrs.iter().find(|a| a.name == interface && a.addr == local) {
        if a.flags & libc::IFF_UP as u32 == 0 {
            log::warn!(
                "[failover] interface {interface} is down; hellos cannot pass until `ip link set {interface} up`"
            );
        }
        return Ok(ifindex);
    }
    match addrs.iter().find(|a| a.addr == local) {
        Some(a) => Err(LinkError::LocalElsewhere { local, interface: interface.into(), on: a.name.clone() }),
        None => Err(LinkError::LocalMissing { local, interface: interface.into() }),
    }
}

struct IfAddr {
    name: String,
    addr: Ipv4Addr,
    flags: u32,
}

/// Every IPv4 address of every interface in this namespace.
fn ipv4_addrs() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success we free the list below.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        // SAFETY: a non-null ifa_addr with family AF_INET is a sockaddr_in;
        // ifa_name is a NUL-terminated string owned by the list.
        unsafe {
            if !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as libc::c_int == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                out.push(IfAddr {
                    name: std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned(),
                    addr: Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    flags: ifa.ifa_flags,
                });
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; no reference
    // into it outlives this call (names were copied).
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control buffer holding one cmsg of (level, type, int value).
    fn one_cmsg(level: libc::c_int, ty: libc::c_int, val: libc::c_int, cbuf: &mut CmsgBuf) -> libc::msghdr {
        // SAFETY: msghdr is plain data; all zeros is valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) } as _;
        // SAFETY: the control buffer is large and aligned enough for one int cmsg.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = level;
            (*c).cmsg_type = ty;
            (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), val);
        }
        msg
    }

    #[test]
    fn parses_ttl_cmsg() {
        let mut cbuf: CmsgBuf = [0; 8];
        let msg = one_cmsg(libc::IPPROTO_IP, libc::IP_TTL, 255, &mut cbuf);
        assert_eq!(ttl_from_cmsgs(&msg), Some(255));
        let mut cbuf: CmsgBuf = [0; 8];
        let msg = one_cmsg(libc::IPPROTO_IP, libc::IP_TTL, 64, &mut cbuf);
        assert_eq!(ttl_from_cmsgs(&msg), Some(64));
        // Another option's message is not a TTL.
        let mut cbuf: CmsgBuf = [0; 8];
        let msg = one_cmsg(libc::IPPROTO_IP, libc::IP_TOS, 255, &mut cbuf);
        assert_eq!(ttl_from_cmsgs(&msg), None);
        let mut cbuf: CmsgBuf = [0; 8];
        let msg = one_cmsg(libc::SOL_SOCKET, libc::IP_TTL, 255, &mut cbuf);
        assert_eq!(ttl_from_cmsgs(&msg), None);
        // No control data at all.
        // SAFETY: msghdr is plain data; all zeros is valid.
        let msg: libc::msghdr = unsafe { mem::zeroed() };
        assert_eq!(ttl_from_cmsgs(&msg), None);
    }

    /// A loopback receiver with IP_RECVTTL, and a sender with a given TTL.
    #[test]
    fn receives_ttl_over_loopback() {
        let rx = udp_socket().unwrap();
        set_int(&rx, libc::IPPROTO_IP, libc::IP_RECVTTL, 1).unwrap();
        bind(&rx, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let rx = std::net::UdpSocket::from(rx);
        let to = rx.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = match tx.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let mut buf = [0u8; 16];
        for (ttl, payload) in [(255u32, &b"hello"[..]), (64, &b"0123456789abcdefXYZ"[..])] {
            tx.set_ttl(ttl).unwrap();
            tx.send_to(payload, to).unwrap();
            let t0 = std::time::Instant::now();
            let d = loop {
                match recv_with_ttl(rx.as_raw_fd(), &mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && t0.elapsed().as_secs() < 2 => {}
                    r => break r.unwrap(),
                }
            };
            assert_eq!(d.src, from);
            assert_eq!(d.ttl, Some(ttl as u8));
            assert_eq!(d.truncated, payload.len() > buf.len());
            assert_eq!(&buf[..d.len], &payload[..d.len]);
        }
    }

    #[test]
    fn missing_interface_says_how_to_fix() {
        let e = check_interface("nosuchfo9", Ipv4Addr::new(169, 254, 73, 1)).unwrap_err().to_string();
        assert!(e.contains("[failover] interface = \"nosuchfo9\"") && e.contains("no such network interface"), "{e}");
    }

    #[test]
    fn missing_local_says_how_to_fix() {
        // `lo` exists everywhere; 192.0.2.77 (TEST-NET-1) is on no interface.
        let e = check_interface("lo", Ipv4Addr::new(192, 0, 2, 77)).unwrap_err().to_string();
        assert!(e.contains("ip addr add 192.0.2.77/24 dev lo"), "{e}");
        assert!(check_interface("lo", Ipv4Addr::LOCALHOST).unwrap() > 0);
    }

    #[test]
    fn rate_log() {
        let mut l = RateLog::new();
        let t = Instant::from_millis(1);
        assert_eq!(l.note(t), Some(1));
        assert_eq!(l.note(t), None);
        assert_eq!(l.note(t + Duration::from_secs(1)), None);
        assert_eq!(l.note(t + LOG_INTERVAL), Some(3));
    }
}
