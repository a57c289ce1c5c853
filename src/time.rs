//! Time as a value. The core never reads a clock: every entry point takes an
//! [`Instant`], which the shell reads from the monotonic clock and replay takes
//! from pcap timestamps.

use std::fmt;
use std::ops::{Add, Sub};

/// Microseconds since an arbitrary epoch chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Duration(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms * 1000)
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Time since `earlier`, zero if `earlier` is later (clocks handed to us by
    /// pcaps are not always monotonic).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const fn from_micros(us: u64) -> Self {
        Duration(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * 1000)
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000_000)
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, d: Duration) -> Duration {
        Duration(self.0.saturating_add(d.0))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Duration {
    /// ASA-style `h:mm:ss`, or milliseconds below one second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_secs();
        if s == 0 {
            return write!(f, "{}ms", self.as_millis());
        }
        write!(f, "{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

/// Earliest of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant(5) - Duration(10), Instant(0));
        assert_eq!(Instant(5).saturating_since(Instant(9)), Duration(0));
        assert_eq!(Instant(u64::MAX) + Duration(1), Instant(u64::MAX));
    }

    #[test]
    fn display_is_asa_like() {
        assert_eq!(Duration::from_secs(3725).to_string(), "1:02:05");
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
    }

    #[test]
    fn earliest_prefers_some() {
        assert_eq!(earliest(None, Some(Instant(3))), Some(Instant(3)));
        assert_eq!(earliest(Some(Instant(2)), Some(Instant(3))), Some(Instant(2)));
        assert_eq!(earliest(None, None), None);
    }
}
