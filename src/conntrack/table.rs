//! The connection table: entries in a slab, found by either of their two
//! keys through one open-addressed index of slot numbers. The index holds
//! 4-byte slot references, not keys, which is what keeps an IPv4 entry, its
//! two index slots and its share of the table near 100 bytes.

use hashbrown::HashTable;

use super::key::{Dir, FlowKey};
use super::tcp::TcpPeer;
use crate::config::IfIndex;
use crate::time::Instant;

/// What an entry tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ConnState {
    #[default]
    Free = 0,
    /// UDP/ICMP with traffic one way only.
    Unreplied,
    /// UDP/ICMP that has seen a reply.
    Assured,
    /// TCP: see `tcp` for the peers.
    Tcp,
}

pub mod flags {
    /// The source was translated by dynamic PAT (holds a port binding).
    pub const PAT: u8 = 0x01;
    /// The source was translated by static NAT.
    pub const SNAT: u8 = 0x02;
    /// The destination was translated (static NAT or port forward).
    pub const DNAT: u8 = 0x04;
    /// Copied from the peer unit: its expiry is the peer's, refreshed
    /// when this unit becomes active.
    pub const SYNCED: u8 = 0x08;
    /// TCP windows copied from the peer may lag: the next segment of the
    /// orig (reply) direction re-anchors them instead of being checked.
    pub const LOOSE_ORIG: u8 = 0x10;
    pub const LOOSE_REPLY: u8 = 0x20;
    /// The peer unit has (or has been sent) this connection, so its
    /// changes and its end must be replicated too.
    pub const REPLICATED: u8 = 0x40;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Conn<K> {
    /// `key[Dir::Orig]`: the first packet's tuple at its ingress;
    /// `key[Dir::Reply]`: a reply's tuple at its ingress (after NAT).
    pub key: [K; 2],
    pub tcp: [TcpPeer; 2],
    pub expires: Instant,
    pub bytes: u64,
    /// Ingress interface per direction (so egress of the other).
    pub iface: [IfIndex; 2],
    pub state: ConnState,
    pub flags: u8,
    /// Bumped each time the slot is reused, so that a replication id
    /// (slot and generation) never names two connections.
    pub gen: u32,
}

/// Result of an insert that could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// `limits.max_conns` reached.
    Full,
    /// One of the keys is already in use by another entry.
    KeyInUse,
}

pub struct Table<K> {
    slots: Vec<Conn<K>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    live: u32,
    max: u32,
    most_used: u32,
    cursor: usize,
}

fn pack(slot: u32, dir: Dir) -> u32 {
    slot << 1 | dir as u32
}
fn unpack(v: u32) -> (u32, Dir) {
    (v >> 1, if v & 1 == 0 { Dir::Orig } else { Dir::Reply })
}

impl<K: FlowKey + Default> Table<K> {
    /// `seed` keys the hash, so a peer cannot aim packets at one bucket.
    pub fn new(max: u32, seed: [u64; 4]) -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3]),
            live: 0,
            max,
            most_used: 0,
            cursor: 0,
        }
    }

    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn most_used(&self) -> u32 {
        self.most_used
    }

    fn hash(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }

    /// The entry whose orig or reply key is `k`, and which one matched.
    pub fn lookup(&self, k: &K) -> Option<(u32, Dir)> {
        let h = self.hash(k);
        let slots = &self.slots;
        self.index
            .find(h, |&v| {
                let (s, d) = unpack(v);
                slots[s as usize].key[d.idx()] == *k
            })
            .map(|&v| unpack(v))
    }

    pub fn get(&self, slot: u32) -> &Conn<K> {
        &self.slots[slot as usize]
    }

    pub fn get_mut(&mut self, slot: u32) -> &mut Conn<K> {
        &mut self.slots[slot as usize]
    }

    pub fn insert(&mut self, conn: Conn<K>) -> Result<u32, InsertError> {
        if self.live >= self.max {
            return Err(InsertError::Full);
        }
        if self.lookup(&conn.key[0]).is_some() || self.lookup(&conn.key[1]).is_some() || conn.key[0] == conn.key[1] {
            return Err(InsertError::KeyInUse);
        }
        let slot = match self.free.pop() {
            Some(s) => {
                let gen = self.slots[s as usize].gen.wrapping_add(1);
                self.slots[s as usize] = Conn { gen, ..conn };
                s
            }
            None => {
                self.slots.push(Conn { gen: 0, ..conn });
                (self.slots.len() - 1) as u32
            }
        };
        for d in [Dir::Orig, Dir::Reply] {
            let h = self.hash(&conn.key[d.idx()]);
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.index.insert_unique(h, pack(slot, d), |&v| {
                let (s, d) = unpack(v);
                hasher.hash_one(slots[s as usize].key[d.idx()])
            });
        }
        self.live += 1;
        self.most_used = self.most_used.max(self.live);
        Ok(slot)
    }

    pub fn remove(&mut self, slot: u32) -> Conn<K> {
        let conn = self.slots[slot as usize];
        debug_assert!(conn.state != ConnState::Free);
        for d in [Dir::Orig, Dir::Reply] {
            let h = self.hash(&conn.key[d.idx()]);
            if let Ok(e) = self.index.find_entry(h, |&v| v == pack(slot, d)) {
                e.remove();
            }
        }
        self.slots[slot as usize] = Conn { gen: conn.gen, ..Conn::default() };
        self.free.push(slot);
        self.live -= 1;
        conn
    }

    /// Visit up to `budget` slots from where the last sweep stopped and
    /// remove those expired at `now`, handing each to `on_expire`.
    pub fn sweep(&mut self, now: Instant, budget: usize, mut on_expire: impl FnMut(u32, &Conn<K>)) -> usize {
        let n = self.slots.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let s = self.cursor as u32;
            self.cursor += 1;
            let c = &self.slots[s as usize];
            if c.state != ConnState::Free && c.expires <= now && c.flags & flags::SYNCED == 0 {
                let c = self.remove(s);
                on_expire(s, &c);
                removed += 1;
            }
        }
        removed
    }

    /// The replication id of the entry in `slot`: slot and generation.
    pub fn id_of(&self, slot: u32) -> u64 {
        (self.slots[slot as usize].gen as u64) << 32 | slot as u64
    }

    /// The live entry named by a replication id of this unit.
    pub fn slot_of_id(&self, id: u64) -> Option<u32> {
        let slot = id as u32;
        let c = self.slots.get(slot as usize)?;
        (c.state != ConnState::Free && c.gen == (id >> 32) as u32).then_some(slot)
    }

    /// Visit up to `budget` slots from `*cursor` with `f`; returns true when
    /// the pass has reached the end of the slab.
    pub fn visit_mut(&mut self, cursor: &mut usize, budget: usize, mut f: impl FnMut(&mut Conn<K>)) -> bool {
        let end = (*cursor + budget).min(self.slots.len());
        for c in &mut self.slots[*cursor..end] {
            if c.state != ConnState::Free {
                f(c);
            }
        }
        *cursor = end;
        end == self.slots.len()
    }

    /// Remove every entry (a standby about to receive a bulk sync).
    pub fn clear(&mut self) {
        let slots: Vec<u32> = self.iter().map(|(s, _)| s).collect();
        for s in slots {
            self.remove(s);
        }
    }

    /// Live entries in slot order, which is stable for a given history.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn<K>)> {
        self.slots.iter().enumerate().filter(|(_, c)| c.state != ConnState::Free).map(|(i, c)| (i as u32, c))
    }

    /// Bytes held: slab capacity, free list, and index buckets (4-byte
    /// value plus hashbrown's 1 control byte each).
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Conn<K>>()
            + self.free.capacity() * 4
            + self.index.capacity() * 5 * 8 / 7
    }

    /// Slab slots in use or free; a sweep pass visits this many.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::key::KeyV4;

    fn conn(i: u32) -> Conn<KeyV4> {
        let k = KeyV4 { src: i, dst: 0x08080808, sport: 1000, dport: 53, proto: 17 };
        let r = KeyV4 { src: 0x08080808, dst: 0xcb000000 + (i >> 16), sport: 53, dport: i as u16, proto: 17 };
        Conn { key: [k, r], state: ConnState::Unreplied, expires: Instant(100), ..Default::default() }
    }

    #[test]
    fn insert_lookup_remove_both_keys() {
        let mut t = Table::new(10, [1, 2, 3, 4]);
        let c = conn(1);
        let s = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.key[0]), Some((s, Dir::Orig)));
        assert_eq!(t.lookup(&c.key[1]), Some((s, Dir::Reply)));
        assert_eq!(t.insert(c), Err(InsertError::KeyInUse));
        t.remove(s);
        assert_eq!(t.lookup(&c.key[0]), None);
        assert_eq!(t.lookup(&c.key[1]), None);
        assert!(t.is_empty());
        // The freed slot is reused.
        assert_eq!(t.insert(conn(2)).unwrap(), s);
    }

    #[test]
    fn full_table_refuses_new_keeps_old() {
        let mut t = Table::new(2, [0; 4]);
        t.insert(conn(1)).unwrap();
        t.insert(conn(2)).unwrap();
        assert_eq!(t.insert(conn(3)), Err(InsertError::Full));
        assert!(t.lookup(&conn(1).key[0]).is_some());
        assert_eq!(t.most_used(), 2);
    }

    #[test]
    fn sweep_removes_only_expired() {
        let mut t = Table::new(100, [0; 4]);
        for i in 0..10 {
            let mut c = conn(i);
            c.expires = Instant(if i % 2 == 0 { 50 } else { 500 });
            t.insert(c).unwrap();
        }
        let mut seen = 0;
        t.sweep(Instant(100), 1000, |_, _| seen += 1);
        assert_eq!(seen, 5);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|(_, c)| c.expires == Instant(500)));
    }

    #[test]
    fn entry_and_memory_budget() {
        // The goal is at most 128 bytes per IPv4 connection with its
        // index and NAT binding share; the entry itself must stay small.
        assert!(std::mem::size_of::<Conn<KeyV4>>() <= 88, "{}", std::mem::size_of::<Conn<KeyV4>>());
        let mut t = Table::new(200_000, [9; 4]);
        for i in 0..100_000 {
            t.insert(conn(i)).unwrap();
        }
        let per = t.memory_bytes() / 100_000;
        assert!(per < 200, "{per}");
    }
}
