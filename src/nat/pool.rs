//! Free outside ports of one PAT address and protocol: a 64 Ki-bit map.

/// Ports below this are never handed out by PAT (RFC 6056 ephemeral range
/// starts at 1024).
pub const FIRST_PORT: u16 = 1024;

pub struct PortPool {
    used: Box<[u64; 1024]>,
    in_use: u32,
}

impl Default for PortPool {
    fn default() -> Self {
        PortPool { used: Box::new([0; 1024]), in_use: 0 }
    }
}

impl PortPool {
    pub fn is_used(&self, p: u16) -> bool {
        self.used[p as usize / 64] & (1 << (p % 64)) != 0
    }

    /// Take `p` (e.g. a port forward's mapped port). False if taken.
    pub fn take(&mut self, p: u16) -> bool {
        if self.is_used(p) {
            return false;
        }
        self.used[p as usize / 64] |= 1 << (p % 64);
        self.in_use += 1;
        true
    }

    pub fn release(&mut self, p: u16) {
        if self.is_used(p) {
            self.used[p as usize / 64] &= !(1 << (p % 64));
            self.in_use -= 1;
        }
    }

    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// A free port at or after `start` (wrapping within the ephemeral
    /// range), taken. A random `start` makes ports unpredictable (RFC 6056).
    pub fn allocate(&mut self, start: u16) -> Option<u16> {
        let span = 65536 - FIRST_PORT as u32;
        if self.in_use >= span {
            return None;
        }
        let start = FIRST_PORT as u32 + (start as u32 % span);
        let mut p = start;
        let mut scanned = 0u32;
        while scanned < span {
            let word = self.used[p as usize / 64];
            if word == u64::MAX && p % 64 == 0 {
                p += 64;
                scanned += 64;
            } else {
                if word & (1 << (p % 64)) == 0 {
                    let port = p as u16;
                    self.take(port);
                    return Some(port);
                }
                p += 1;
                scanned += 1;
            }
            if p >= 65536 {
                p = FIRST_PORT as u32;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_collides_and_reuses_after_release() {
        let mut pool = PortPool::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..(65536 - FIRST_PORT as u32) {
            let p = pool.allocate((i * 7919) as u16).expect("a port");
            assert!(p >= FIRST_PORT);
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        assert_eq!(pool.allocate(5), None);
        pool.release(40000);
        assert_eq!(pool.allocate(123), Some(40000));
    }

    #[test]
    fn reserved_ports_are_skipped() {
        let mut pool = PortPool::default();
        assert!(pool.take(8080));
        assert!(!pool.take(8080));
        assert_ne!(pool.allocate(8080 - FIRST_PORT), Some(8080));
    }
}
