//! SIGTERM, SIGINT and SIGHUP as readable events, through signalfd(2).
//!
//! The signals are blocked and the kernel queues them on a descriptor that the
//! event loop polls like any other, so there is no handler at all (a stricter
//! form of the self-pipe trick) and no extra crate. Blocking is per thread and
//! inherited: `Signals::new` must run before any thread is spawned, and the
//! process is single-threaded anyway.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: exit cleanly.
    Terminate(&'static str),
    /// SIGHUP: reload the configuration file.
    Reload,
}

pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Block SIGTERM, SIGINT and SIGHUP and open a non-blocking signalfd for them.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: `sigset_t` is plain data; sigemptyset initialises it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t for each call;
        // these calls cannot fail for valid signal numbers.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        Ok(Signals { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// The next pending signal, or `None` once the queue is empty.
    pub fn next(&self) -> io::Result<Option<Signal>> {
        loop {
            // SAFETY: `signalfd_siginfo` is plain data; all-zero is valid.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: we read at most `size` bytes into `info`, which we own.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), &mut info as *mut _ as *mut libc::c_void, size) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != size {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short read from signalfd"));
            }
            return Ok(Some(match info.ssi_signo as libc::c_int {
                libc::SIGHUP => Signal::Reload,
                libc::SIGINT => Signal::Terminate("SIGINT"),
                _ => Signal::Terminate("SIGTERM"),
            }));
        }
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
