//! The MAC table of transparent mode (IEEE 802.1D's filtering database):
//! on which port each station was last heard, aged out after
//! `timeouts.mac` without a frame from it.
//!
//! # Contract
//! * [`MacTable::learn`] runs for the source of every frame an active (or
//!   single) unit receives; what it returns says whether the change must be
//!   replicated (a new station or a move, never a mere refresh).
//! * [`MacTable::age`] removes what was not heard for the aging time; the
//!   caller runs it only while forwarding, so a standby's copy lives until
//!   the active deletes it, and [`MacTable::adopt`] restarts every lifetime
//!   on takeover (the peer's last-heard times do not travel).
//! * The table never holds more than `max` stations: a flood of made-up
//!   source MACs is not learned (counted by the caller) instead of evicting
//!   the real ones.

use std::collections::HashMap;

use crate::config::{IfIndex, Mac};
use crate::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub port: IfIndex,
    /// Last frame from the station (or its arrival by replication, or the
    /// takeover that adopted it).
    pub seen: Instant,
}

/// What learning a source MAC did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learn {
    /// Known on this port: its lifetime restarts.
    Refreshed,
    /// A new station.
    New,
    /// The station was on another port (a host moved, or a loop).
    Moved { from: IfIndex },
    /// New, but the table is full: not learned.
    Full,
}

pub struct MacTable {
    map: HashMap<Mac, MacEntry, ahash::RandomState>,
    max: usize,
    aging: Duration,
}

impl MacTable {
    pub fn new(max: usize, aging: Duration, seed: [u64; 4]) -> Self {
        MacTable {
            map: HashMap::with_hasher(ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3])),
            max,
            aging,
        }
    }

    pub fn set_limits(&mut self, max: usize, aging: Duration) {
        self.max = max;
        self.aging = aging;
    }

    /// `mac` was heard on `port` at `now`.
    pub fn learn(&mut self, mac: Mac, port: IfIndex, now: Instant) -> Learn {
        if let Some(e) = self.map.get_mut(&mac) {
            e.seen = now;
            if e.port == port {
                return Learn::Refreshed;
            }
            let from = std::mem::replace(&mut e.port, port);
            return Learn::Moved { from };
        }
        if self.map.len() >= self.max {
            return Learn::Full;
        }
        self.map.insert(mac, MacEntry { port, seen: now });
        Learn::New
    }

    /// Where `mac` was last heard.
    pub fn lookup(&self, mac: &Mac) -> Option<IfIndex> {
        self.map.get(mac).map(|e| e.port)
    }

    pub fn get(&self, mac: &Mac) -> Option<MacEntry> {
        self.map.get(mac).copied()
    }

    /// Set `mac` on `port` as the peer says (replication); a full table
    /// makes room for nothing, as for local learning. Returns whether the
    /// table changed.
    pub fn set(&mut self, mac: Mac, port: IfIndex, now: Instant) -> bool {
        !matches!(self.learn(mac, port, now), Learn::Refreshed | Learn::Full)
    }

    /// Drop `mac`; true if it was there.
    pub fn forget(&mut self, mac: &Mac) -> bool {
        self.map.remove(mac).is_some()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Remove the stations not heard for the aging time, appending them to
    /// `aged` (sorted, so that replay output is stable).
    pub fn age(&mut self, now: Instant, aged: &mut Vec<Mac>) {
        let aging = self.aging;
        let start = aged.len();
        self.map.retain(|mac, e| {
            let keep = now < e.seen + aging;
            if !keep {
                aged.push(*mac);
            }
            keep
        });
        aged[start..].sort_unstable();
    }

    /// Takeover: every station was, as far as we know, just heard.
    pub fn adopt(&mut self, now: Instant) {
        for e in self.map.values_mut() {
            e.seen = now;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every station, sorted by MAC (for `show mac`, the switch refresh and
    /// bulk sync, which must not depend on hash order).
    pub fn entries(&self) -> Vec<(Mac, MacEntry)> {
        let mut v: Vec<_> = self.map.iter().map(|(m, e)| (*m, *e)).collect();
        v.sort_unstable_by_key(|(m, _)| *m);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learns_refreshes_and_moves() {
        let mut t = MacTable::new(8, Duration::from_secs(300), [0; 4]);
        let t0 = Instant::from_millis(0);
        assert_eq!(t.learn(mac(1), IfIndex(0), t0), Learn::New);
        assert_eq!(t.learn(mac(1), IfIndex(0), t0), Learn::Refreshed);
        assert_eq!(t.lookup(&mac(1)), Some(IfIndex(0)));
        assert_eq!(t.learn(mac(1), IfIndex(1), t0), Learn::Moved { from: IfIndex(0) });
        assert_eq!(t.lookup(&mac(1)), Some(IfIndex(1)));
        assert_eq!(t.lookup(&mac(2)), None);
    }

    #[test]
    fn full_table_learns_nothing_new_but_keeps_moving_known_stations() {
        let mut t = MacTable::new(2, Duration::from_secs(300), [0; 4]);
        let t0 = Instant::from_millis(0);
        t.learn(mac(1), IfIndex(0), t0);
        t.learn(mac(2), IfIndex(0), t0);
        assert_eq!(t.learn(mac(3), IfIndex(0), t0), Learn::Full);
        assert_eq!((t.len(), t.lookup(&mac(3))), (2, None));
        assert_eq!(t.learn(mac(2), IfIndex(1), t0), Learn::Moved { from: IfIndex(0) });
        assert!(!t.set(mac(4), IfIndex(1), t0), "replication cannot overfill it either");
    }

    #[test]
    fn ages_out_unless_heard_and_adopt_restarts_lifetimes() {
        let mut t = MacTable::new(8, Duration::from_secs(300), [0; 4]);
        t.learn(mac(1), IfIndex(0), Instant::from_millis(0));
        t.learn(mac(2), IfIndex(1), Instant::from_millis(0));
        t.learn(mac(1), IfIndex(0), Instant::from_millis(200_000));
        let mut aged = vec![];
        t.age(Instant::from_millis(299_999), &mut aged);
        assert!(aged.is_empty());
        t.age(Instant::from_millis(300_000), &mut aged);
        assert_eq!(aged, vec![mac(2)]);
        t.adopt(Instant::from_millis(450_000));
        aged.clear();
        t.age(Instant::from_millis(700_000), &mut aged);
        assert!(aged.is_empty(), "adopted at 450 s, lives to 750 s");
        t.age(Instant::from_millis(750_000), &mut aged);
        assert_eq!(aged, vec![mac(1)]);
        assert!(t.is_empty());
    }

    #[test]
    fn set_reports_changes_only() {
        let mut t = MacTable::new(8, Duration::from_secs(300), [0; 4]);
        let t0 = Instant::from_millis(0);
        assert!(t.set(mac(1), IfIndex(0), t0));
        assert!(!t.set(mac(1), IfIndex(0), t0));
        assert!(t.set(mac(1), IfIndex(1), t0));
        assert!(t.forget(&mac(1)) && !t.forget(&mac(1)));
    }
}
