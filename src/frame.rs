//! Frame buffers with headroom, recycled through a pool so that the fast path
//! allocates nothing once the pool is warm.

/// Bytes kept free in front of every frame so encapsulation (ESP, GTP-U,
/// VLAN) can prepend headers without a copy.
pub const HEADROOM: usize = 128;
/// Largest frame a buffer holds: 64 KiB super-frames once vnet_hdr offload is
/// on; plain 1514-byte frames today.
pub const MAX_FRAME: usize = 65_550;
const INITIAL_CAP: usize = HEADROOM + 2048;

/// An Ethernet frame: `data[start..end]`.
#[derive(Clone, Debug)]
pub struct FrameBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameBuf {
    pub fn new() -> Self {
        FrameBuf { data: vec![0; INITIAL_CAP], start: HEADROOM, end: HEADROOM }
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut b = FrameBuf::new();
        b.set(bytes);
        b
    }

    /// Replace the contents with `bytes`.
    pub fn set(&mut self, bytes: &[u8]) {
        self.reset_len(bytes.len());
        self.as_mut().copy_from_slice(bytes);
    }

    /// Make the frame `len` bytes long at the default headroom; contents are
    /// whatever the buffer held. Used to read straight from a TAP into it.
    pub fn reset_len(&mut self, len: usize) {
        let need = HEADROOM + len;
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        self.start = HEADROOM;
        self.end = need;
    }

    /// The whole writable area after the headroom, for a read(2) into it.
    pub fn spare_mut(&mut self, max: usize) -> &mut [u8] {
        self.reset_len(max);
        self.as_mut()
    }

    pub fn truncate(&mut self, len: usize) {
        self.end = self.start + len.min(self.len());
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Grow the frame at the front by `n` bytes (taken from the headroom).
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.data[self.start..self.start + n])
    }
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf::new()
    }
}

impl AsRef<[u8]> for FrameBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
}

impl AsMut<[u8]> for FrameBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }
}

/// A free list of buffers.
#[derive(Default)]
pub struct Pool {
    free: Vec<FrameBuf>,
}

impl Pool {
    const KEEP: usize = 4096;

    pub fn get(&mut self) -> FrameBuf {
        self.free.pop().unwrap_or_default()
    }

    pub fn put(&mut self, b: FrameBuf) {
        if self.free.len() < Self::KEEP {
            self.free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_and_reuse() {
        let mut b = FrameBuf::from_slice(&[1, 2, 3]);
        assert_eq!(b.as_ref(), &[1, 2, 3]);
        b.push_front(2).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(b.as_ref(), &[9, 9, 1, 2, 3]);
        assert!(b.push_front(HEADROOM).is_none());
        let mut pool = Pool::default();
        pool.put(b);
        let b2 = pool.get();
        assert!(b2.data.capacity() >= INITIAL_CAP);
    }

    #[test]
    fn grows_for_super_frames() {
        let mut b = FrameBuf::new();
        b.reset_len(MAX_FRAME);
        assert_eq!(b.len(), MAX_FRAME);
        b.truncate(60);
        assert_eq!(b.len(), 60);
    }
}
