//! The MAC table of transparent mode (IEEE 802.1D's filtering database):
//! per bridge group, on which port each station was last heard, aged out
//! after `timeouts.mac` without a frame from it.
//!
//! # Contract
//! * [`MacTable::learn`] runs for the source of every frame an active (or
//!   single) unit receives; what it returns says whether the change must be
//!   replicated (a new station or a move, never a mere refresh) and whether
//!   the frame may pass (not when the table is full, nor when a static
//!   station shows up on the wrong port).
//! * [`MacTable::age`] removes what was not heard for the aging time; the
//!   caller runs it only while forwarding, so a standby's copy lives until
//!   the active deletes it, and [`MacTable::adopt`] restarts every lifetime
//!   on takeover (the peer's last-heard times do not travel).
//! * Static entries come from the configuration on both units: they never
//!   age, move, replicate or count against the limit.
//! * The table never holds more than `max` learned stations: a flood of
//!   made-up source MACs is dropped (counted by the caller) instead of
//!   evicting the real ones.

use std::collections::HashMap;

use crate::config::{IfIndex, Mac};
use crate::time::{Duration, Instant};

/// A bridge group's index in `Config::bridge_groups`.
pub type Group = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub port: IfIndex,
    /// Last frame from the station (or its arrival by replication, or the
    /// takeover that adopted it).
    pub seen: Instant,
    /// Configured, not learned.
    pub fixed: bool,
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
    /// A static station heard on a port other than its own.
    StaticElsewhere,
}

pub struct MacTable {
    map: HashMap<(Group, Mac), MacEntry, ahash::RandomState>,
    learned: usize,
    max: usize,
    aging: Duration,
}

impl MacTable {
    pub fn new(max: usize, aging: Duration, seed: [u64; 4]) -> Self {
        MacTable {
            map: HashMap::with_hasher(ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3])),
            learned: 0,
            max,
            aging,
        }
    }

    pub fn set_limits(&mut self, max: usize, aging: Duration) {
        self.max = max;
        self.aging = aging;
    }

    /// Replace the static entries (start and reload) with `statics`.
    pub fn set_static(&mut self, statics: impl IntoIterator<Item = (Group, Mac, IfIndex)>, now: Instant) {
        self.map.retain(|_, e| !e.fixed);
        for (g, mac, port) in statics {
            if self.map.insert((g, mac), MacEntry { port, seen: now, fixed: true }).is_some() {
                self.learned -= 1;
            }
        }
    }

    /// `mac` was heard on `port` of group `g` at `now`.
    pub fn learn(&mut self, g: Group, mac: Mac, port: IfIndex, now: Instant) -> Learn {
        if let Some(e) = self.map.get_mut(&(g, mac)) {
            if e.fixed {
                return if e.port == port { Learn::Refreshed } else { Learn::StaticElsewhere };
            }
            e.seen = now;
            if e.port == port {
                return Learn::Refreshed;
            }
            let from = std::mem::replace(&mut e.port, port);
            return Learn::Moved { from };
        }
        if self.learned >= self.max {
            return Learn::Full;
        }
        self.map.insert((g, mac), MacEntry { port, seen: now, fixed: false });
        self.learned += 1;
        Learn::New
    }

    /// Where `mac` was last heard in group `g`.
    pub fn lookup(&self, g: Group, mac: &Mac) -> Option<IfIndex> {
        self.map.get(&(g, *mac)).map(|e| e.port)
    }

    pub fn get(&self, g: Group, mac: &Mac) -> Option<MacEntry> {
        self.map.get(&(g, *mac)).copied()
    }

    /// Set `mac` on `port` as the peer says (replication); as for local
    /// learning, a full table makes no room and a static entry stays.
    /// Returns whether the table changed.
    pub fn set(&mut self, g: Group, mac: Mac, port: IfIndex, now: Instant) -> bool {
        matches!(self.learn(g, mac, port, now), Learn::New | Learn::Moved { .. })
    }

    /// Drop a learned `mac`; true if it was there.
    pub fn forget(&mut self, g: Group, mac: &Mac) -> bool {
        match self.map.get(&(g, *mac)) {
            Some(e) if !e.fixed => {
                self.map.remove(&(g, *mac));
                self.learned -= 1;
                true
            }
            _ => false,
        }
    }

    /// Forget every learned station (a standby before a bulk sync).
    pub fn clear(&mut self) {
        self.map.retain(|_, e| e.fixed);
        self.learned = 0;
    }

    /// Remove the learned stations not heard for the aging time, appending
    /// them to `aged` (sorted, so that replay output is stable).
    pub fn age(&mut self, now: Instant, aged: &mut Vec<(Group, Mac)>) {
        let aging = self.aging;
        let start = aged.len();
        self.map.retain(|k, e| {
            let keep = e.fixed || now < e.seen + aging;
            if !keep {
                aged.push(*k);
            }
            keep
        });
        self.learned -= aged.len() - start;
        aged[start..].sort_unstable();
    }

    /// Takeover: every station was, as far as we know, just heard.
    pub fn adopt(&mut self, now: Instant) {
        for e in self.map.values_mut() {
            e.seen = now;
        }
    }

    /// Learned stations (what the limit counts and replication carries).
    pub fn len(&self) -> usize {
        self.learned
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every station, static ones too, sorted (for `show`, the switch
    /// refresh and bulk sync, which must not depend on hash order).
    pub fn entries(&self) -> Vec<((Group, Mac), MacEntry)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, e)| (*k, *e)).collect();
        v.sort_unstable_by_key(|(k, _)| *k);
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
    fn learns_refreshes_and_moves_per_group() {
        let mut t = MacTable::new(8, Duration::from_secs(300), [0; 4]);
        let t0 = Instant::from_millis(0);
        assert_eq!(t.learn(0, mac(1), IfIndex(0), t0), Learn::New);
        assert_eq!(t.learn(0, mac(1), IfIndex(0), t0), Learn::Refreshed);
        assert_eq!(t.lookup(0, &mac(1)), Some(IfIndex(0)));
        assert_eq!(t.learn(0, mac(1), IfIndex(1), t0), Learn::Moved { from: IfIndex(0) });
        assert_eq!(t.lookup(0, &mac(1)), Some(IfIndex(1)));
        assert_eq!(t.lookup(1, &mac(1)), None, "groups do not share stations");
        assert_eq!(t.learn(1, mac(1), IfIndex(2), t0), Learn::New);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn full_table_learns_nothing_new_but_keeps_moving_known_stations() {
        let mut t = MacTable::new(2, Duration::from_secs(300), [0; 4]);
        let t0 = Instant::from_millis(0);
        t.learn(0, mac(1), IfIndex(0), t0);
        t.learn(0, mac(2), IfIndex(0), t0);
        assert_eq!(t.learn(0, mac(3), IfIndex(0), t0), Learn::Full);
        assert_eq!((t.len(), t.lookup(0, &mac(3))), (2, None));
        assert_eq!(t.learn(0, mac(2), IfIndex(1), t0), Learn::Moved { from: IfIndex(0) });
        assert!(!t.set(0, mac(4), IfIndex(1), t0), "replication cannot overfill it either");
        assert!(t.forget(0, &mac(1)));
        assert_eq!(t.learn(0, mac(3), IfIndex(0), t0), Learn::New, "room again");
    }

    #[test]
    fn static_entries_stay_put() {
        let mut t = MacTable::new(1, Duration::from_secs(1), [0; 4]);
        let t0 = Instant::from_millis(0);
        t.learn(0, mac(9), IfIndex(1), t0);
        t.set_static([(0, mac(9), IfIndex(0)), (0, mac(8), IfIndex(1))], t0);
        assert_eq!(t.len(), 0, "statics do not count against the limit");
        assert_eq!(t.learn(0, mac(9), IfIndex(1), t0), Learn::StaticElsewhere);
        assert_eq!(t.learn(0, mac(9), IfIndex(0), t0), Learn::Refreshed);
        assert!(!t.set(0, mac(8), IfIndex(0), t0) && !t.forget(0, &mac(8)));
        let mut aged = vec![];
        t.age(Instant::from_millis(3_600_000), &mut aged);
        t.clear();
        assert!(aged.is_empty());
        assert_eq!((t.lookup(0, &mac(9)), t.lookup(0, &mac(8))), (Some(IfIndex(0)), Some(IfIndex(1))));
        t.set_static([], t0);
        assert!(t.is_empty());
    }

    #[test]
    fn ages_out_unless_heard_and_adopt_restarts_lifetimes() {
        let mut t = MacTable::new(8, Duration::from_secs(300), [0; 4]);
        t.learn(0, mac(1), IfIndex(0), Instant::from_millis(0));
        t.learn(0, mac(2), IfIndex(1), Instant::from_millis(0));
        t.learn(0, mac(1), IfIndex(0), Instant::from_millis(200_000));
        let mut aged = vec![];
        t.age(Instant::from_millis(299_999), &mut aged);
        assert!(aged.is_empty());
        t.age(Instant::from_millis(300_000), &mut aged);
        assert_eq!(aged, vec![(0, mac(2))]);
        t.adopt(Instant::from_millis(450_000));
        aged.clear();
        t.age(Instant::from_millis(700_000), &mut aged);
        assert!(aged.is_empty(), "adopted at 450 s, lives to 750 s");
        t.age(Instant::from_millis(750_000), &mut aged);
        assert_eq!(aged, vec![(0, mac(1))]);
        assert!(t.is_empty() && t.entries().is_empty());
    }
}
