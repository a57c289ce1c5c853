//! A timerfd for the event loop's deadlines, and a record of how late they
//! are served.
//!
//! mio's `poll` takes its timeout in whole milliseconds, so a deadline 300 us
//! away costs a full millisecond of sleep: with hellos every 1-2 ms
//! (issue 6) that is a third to all of the interval. A `CLOCK_MONOTONIC`
//! timerfd armed with the absolute deadline (`TFD_TIMER_ABSTIME`) wakes the
//! loop to the microsecond (plus the kernel's timer slack, which `run` sets
//! to 1 ns). It is re-armed only when the deadline changes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One-shot absolute timer on `CLOCK_MONOTONIC`.
pub struct Timer {
    fd: OwnedFd,
    /// The deadline now armed, in `CLOCK_MONOTONIC` nanoseconds.
    armed_ns: Option<u64>,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain constants; the result is checked.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Timer { fd: unsafe { OwnedFd::from_raw_fd(fd) }, armed_ns: None })
    }

    /// Fire at `deadline_ns` (absolute `CLOCK_MONOTONIC`), or never on `None`.
    pub fn set(&mut self, deadline_ns: Option<u64>) -> io::Result<()> {
        if deadline_ns == self.armed_ns {
            return Ok(());
        }
        // An all-zero it_value disarms; a deadline of exactly 0 ns (never, in
        // practice) becomes 1 ns.
        let ns = deadline_ns.map_or(0, |d| d.max(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            self.armed_ns = None;
            return Err(io::Error::last_os_error());
        }
        self.armed_ns = deadline_ns;
        Ok(())
    }

    /// The timer fired: consume the expiry so the fd is quiet again, and
    /// forget the deadline (a one-shot timer does not fire twice).
    pub fn fired(&mut self) {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        self.armed_ns = None;
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Ask the kernel to wake us with 1 ns of slack instead of the default
/// 50 us: timerfd and epoll timeouts both honour the slack.
pub fn reduce_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and touches only this thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        log::debug!("cannot reduce the timer slack: {}", io::Error::last_os_error());
    }
}

/// How late `handle_timeout` runs behind the core's deadline, in
/// microseconds; summed up at debug level every [`Lateness::WINDOW`] calls.
pub struct Lateness {
    samples: Vec<u32>,
}

/// A summary of one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatenessSummary {
    pub n: usize,
    pub p50: u32,
    pub p99: u32,
    pub max: u32,
}

impl Lateness {
    pub const WINDOW: usize = 4096;

    pub fn new() -> Lateness {
        Lateness { samples: Vec::with_capacity(Self::WINDOW) }
    }

    /// Record one; returns the window's summary when it fills.
    pub fn record(&mut self, late_us: u64) -> Option<LatenessSummary> {
        self.samples.push(late_us.min(u32::MAX as u64) as u32);
        if self.samples.len() < Self::WINDOW {
            return None;
        }
        let s = summarise(&mut self.samples);
        self.samples.clear();
        s
    }
}

fn summarise(samples: &mut [u32]) -> Option<LatenessSummary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: usize| samples[((n * q).div_ceil(100)).saturating_sub(1).min(n - 1)];
    Some(LatenessSummary { n, p50: at(50), p99: at(99), max: samples[n - 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = Lateness::new();
        for i in 1..Lateness::WINDOW as u64 {
            assert_eq!(l.record(i), None);
        }
        let s = l.record(10_000).unwrap();
        assert_eq!((s.n, s.p50, s.p99, s.max), (Lateness::WINDOW, 2048, 4056, 10_000));
        assert!(l.samples.is_empty());
        assert_eq!(summarise(&mut [7]), Some(LatenessSummary { n: 1, p50: 7, p99: 7, max: 7 }));
    }

    #[test]
    fn timer_fires_at_an_absolute_deadline() {
        let mut t = Timer::new().unwrap();
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        t.set(Some(now + 2_000_000)).unwrap();
        let mut pfd = libc::pollfd { fd: t.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        assert_eq!(n, 1);
        t.fired();
        // Disarmed: nothing more within 20 ms.
        t.set(None).unwrap();
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 20) }, 0);
    }
}
