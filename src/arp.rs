//! The ARP table (RFC 826) with aging, and the bounded queue of frames
//! waiting for a next hop to answer.

use std::collections::{HashMap, VecDeque};

use crate::config::{IfIndex, Mac};
use crate::frame::FrameBuf;
use crate::time::{Duration, Instant};

/// Requests sent for one address before its waiting frames are dropped.
pub const MAX_TRIES: u8 = 3;
/// Interval between requests for an unresolved address.
pub const RETRY: Duration = Duration::from_secs(1);
/// Before an entry ages out while in use, probe it this long ahead.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    Resolved,
    Incomplete { tries: u8, next: Instant },
}

#[derive(Clone, Copy, Debug)]
pub struct ArpEntry {
    pub mac: Mac,
    pub iface: IfIndex,
    pub updated: Instant,
    pub state: EntryState,
    /// Last refresh probe sent for a resolved entry.
    pub probed: Instant,
}

pub struct Pending {
    pub ip: u32,
    pub iface: IfIndex,
    pub buf: FrameBuf,
}

/// What the caller must do after a timer pass.
#[derive(Default)]
pub struct TimerWork {
    /// Send a request for these.
    pub requests: Vec<(u32, IfIndex)>,
    /// These did not answer; their frames are in `failed_frames`.
    pub failed: Vec<u32>,
    pub failed_frames: Vec<Pending>,
    /// Resolved entries that aged out.
    pub aged: Vec<u32>,
}

pub struct ArpCache {
    entries: HashMap<u32, ArpEntry, ahash::RandomState>,
    pending: VecDeque<Pending>,
    max_pending: usize,
    timeout: Duration,
}

pub enum Lookup {
    Hit(Mac),
    /// Resolved but close to ageing out: use it and send a probe.
    HitRefresh(Mac),
    Miss,
}

impl ArpCache {
    pub fn new(max_pending: usize, timeout: Duration, seed: [u64; 4]) -> Self {
        ArpCache {
            entries: HashMap::with_hasher(ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3])),
            pending: VecDeque::new(),
            max_pending,
            timeout,
        }
    }

    pub fn set_limits(&mut self, max_pending: usize, timeout: Duration) {
        self.max_pending = max_pending;
        self.timeout = timeout;
    }

    pub fn lookup(&mut self, ip: u32, now: Instant) -> Lookup {
        match self.entries.get_mut(&ip) {
            Some(e) if e.state == EntryState::Resolved => {
                let refresh_at = e.updated + self.timeout - REFRESH_AHEAD.min(Duration(self.timeout.0 / 4));
                if now >= refresh_at && now.saturating_since(e.probed) >= RETRY {
                    e.probed = now;
                    Lookup::HitRefresh(e.mac)
                } else {
                    Lookup::Hit(e.mac)
                }
            }
            _ => Lookup::Miss,
        }
    }

    /// Record `ip` at `mac`. `create` is false when the ARP packet was
    /// not aimed at us: RFC 826 then only updates an entry we already have.
    /// Returns whether an entry was created or changed.
    pub fn learn(&mut self, ip: u32, mac: Mac, iface: IfIndex, now: Instant, create: bool) -> bool {
        match self.entries.get_mut(&ip) {
            Some(e) => {
                let changed = e.mac != mac || e.state != EntryState::Resolved || e.iface != iface;
                *e = ArpEntry { mac, iface, updated: now, state: EntryState::Resolved, probed: e.probed };
                changed
            }
            None if create => {
                self.entries
                    .insert(ip, ArpEntry { mac, iface, updated: now, state: EntryState::Resolved, probed: now });
                true
            }
            None => false,
        }
    }

    /// The resolved entry for `ip`, if any.
    pub fn resolved(&self, ip: u32) -> Option<ArpEntry> {
        self.entries.get(&ip).filter(|e| e.state == EntryState::Resolved).copied()
    }

    /// Drop the entry for `ip`; true if there was one.
    pub fn forget(&mut self, ip: u32) -> bool {
        self.entries.remove(&ip).is_some()
    }

    /// Drop every entry and parked frame's entry (a standby before a bulk
    /// sync); parked frames stay until they fail.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Hold `buf` until `ip` resolves. Returns `Ok(true)` if a request must
    /// go out now (first frame for that address), `Err(buf)` if the queue
    /// is full.
    pub fn queue(&mut self, ip: u32, iface: IfIndex, buf: FrameBuf, now: Instant) -> Result<bool, FrameBuf> {
        if self.pending.len() >= self.max_pending {
            return Err(buf);
        }
        self.pending.push_back(Pending { ip, iface, buf });
        match self.entries.get(&ip) {
            Some(e) if matches!(e.state, EntryState::Incomplete { .. }) => Ok(false),
            _ => {
                self.entries.insert(
                    ip,
                    ArpEntry {
                        mac: Mac::ZERO,
                        iface,
                        updated: now,
                        state: EntryState::Incomplete { tries: 1, next: now + RETRY },
                        probed: now,
                    },
                );
                Ok(true)
            }
        }
    }

    /// Frames waiting for `ip`, in arrival order.
    pub fn take_pending(&mut self, ip: u32, out: &mut Vec<Pending>) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].ip == ip {
                if let Some(p) = self.pending.remove(i) {
                    out.push(p);
                }
            } else {
                i += 1;
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, work: &mut TimerWork) {
        let timeout = self.timeout;
        let aged = &mut work.aged;
        self.entries.retain(|&ip, e| match e.state {
            EntryState::Resolved => {
                let keep = now < e.updated + timeout;
                if !keep {
                    aged.push(ip);
                }
                keep
            }
            EntryState::Incomplete { tries, next } if now >= next => {
                if tries >= MAX_TRIES {
                    work.failed.push(ip);
                    false
                } else {
                    e.state = EntryState::Incomplete { tries: tries + 1, next: now + RETRY };
                    work.requests.push((ip, e.iface));
                    true
                }
            }
            EntryState::Incomplete { .. } => true,
        });
        // HashMap order is random: sort so that replay output is stable.
        work.requests.sort_unstable();
        work.failed.sort_unstable();
        work.aged.sort_unstable();
        for ip in work.failed.clone() {
            self.take_pending(ip, &mut work.failed_frames);
        }
    }

    /// The next retry deadline, if any address is being resolved.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                EntryState::Incomplete { next, .. } => Some(next),
                _ => None,
            })
            .min()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries held (resolved or pending), without building the sorted list.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries sorted by address, for `show arp`.
    pub fn entries(&self) -> Vec<(u32, ArpEntry)> {
        let mut v: Vec<_> = self.entries.iter().map(|(k, e)| (*k, *e)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn queue_resolve_release() {
        let mut a = ArpCache::new(4, Duration::from_secs(60), [0; 4]);
        let t = Instant::from_millis(0);
        assert!(matches!(a.lookup(7, t), Lookup::Miss));
        assert_eq!(a.queue(7, IfIndex(1), FrameBuf::from_slice(&[1]), t).ok(), Some(true));
        assert_eq!(a.queue(7, IfIndex(1), FrameBuf::from_slice(&[2]), t).ok(), Some(false));
        assert!(a.learn(7, mac(7), IfIndex(1), t, false), "an incomplete entry is ours to update");
        let mut out = vec![];
        a.take_pending(7, &mut out);
        assert_eq!(out.iter().map(|p| p.buf.as_ref()[0]).collect::<Vec<_>>(), vec![1, 2]);
        assert!(matches!(a.lookup(7, t), Lookup::Hit(m) if m == mac(7)));
    }

    #[test]
    fn bounded_queue() {
        let mut a = ArpCache::new(1, Duration::from_secs(60), [0; 4]);
        a.queue(7, IfIndex(1), FrameBuf::from_slice(&[1]), Instant(0)).ok();
        assert!(a.queue(8, IfIndex(1), FrameBuf::from_slice(&[1]), Instant(0)).is_err());
    }

    #[test]
    fn retries_then_fails() {
        let mut a = ArpCache::new(4, Duration::from_secs(60), [0; 4]);
        a.queue(7, IfIndex(1), FrameBuf::from_slice(&[1]), Instant(0)).ok();
        let mut w = TimerWork::default();
        a.handle_timeout(Instant::from_millis(1000), &mut w);
        assert_eq!(w.requests, vec![(7, IfIndex(1))]);
        let mut w = TimerWork::default();
        a.handle_timeout(Instant::from_millis(2000), &mut w);
        assert_eq!(w.requests.len(), 1);
        let mut w = TimerWork::default();
        a.handle_timeout(Instant::from_millis(3000), &mut w);
        assert_eq!(w.failed, vec![7]);
        assert_eq!(w.failed_frames.len(), 1);
        assert_eq!(a.pending_len(), 0);
        assert!(a.poll_timeout().is_none());
    }

    #[test]
    fn ages_out_and_refreshes() {
        let mut a = ArpCache::new(4, Duration::from_secs(120), [0; 4]);
        assert!(!a.learn(9, mac(9), IfIndex(0), Instant(0), false), "unsolicited: no entry");
        assert!(a.learn(9, mac(9), IfIndex(0), Instant(0), true));
        assert!(matches!(a.lookup(9, Instant::from_millis(1000)), Lookup::Hit(_)));
        assert!(matches!(a.lookup(9, Instant::from_millis(95_000)), Lookup::HitRefresh(_)));
        assert!(matches!(a.lookup(9, Instant::from_millis(95_500)), Lookup::Hit(_)), "one probe per second");
        let mut w = TimerWork::default();
        a.handle_timeout(Instant::from_millis(121_000), &mut w);
        assert!(a.is_empty());
    }
}
