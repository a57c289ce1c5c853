//! Frame buffers with headroom, recycled through a pool so that the fast path
//! allocates nothing once the pool is warm. A frame read from a TAP with
//! vnet_hdr carries the kernel's offload metadata ([`Offload`]) beside it.

/// Bytes kept free in front of every frame so encapsulation (ESP, GTP-U,
/// VLAN) can prepend headers without a copy.
pub const HEADROOM: usize = 128;
/// Largest frame a buffer holds: a 64 KiB TSO super-frame (IPv4 total length
/// at most 65535) behind its Ethernet header and a VLAN tag.
pub const MAX_FRAME: usize = 65_550;
const INITIAL_CAP: usize = HEADROOM + 2048;

/// What the kernel left undone on a frame, as `struct virtio_net_hdr` says
/// it (include/uapi/linux/virtio_net.h). The default is "nothing": a frame
/// complete on the wire. Frames the core makes itself carry the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// [`Offload::NEEDS_CSUM`], [`Offload::DATA_VALID`].
    pub flags: u8,
    /// [`Offload::GSO_NONE`], [`Offload::GSO_TCPV4`], ... possibly with
    /// [`Offload::GSO_ECN`].
    pub gso_type: u8,
    /// Bytes of headers (Ethernet to the end of L4) repeated in each segment.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Frame offset where the checksum summing starts (the L4 header).
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl Offload {
    /// The L4 checksum field holds only the pseudo-header sum (folded, not
    /// complemented); whoever sends the frame sums from `csum_start` to the
    /// end and stores the complement (Linux's CHECKSUM_PARTIAL).
    pub const NEEDS_CSUM: u8 = 1;
    /// The sender vouches for the checksum (CHECKSUM_UNNECESSARY).
    pub const DATA_VALID: u8 = 2;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_UDP: u8 = 3;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_UDP_L4: u8 = 5;
    /// TCP with CWR set on the first segment only.
    pub const GSO_ECN: u8 = 0x80;

    pub fn needs_csum(&self) -> bool {
        self.flags & Self::NEEDS_CSUM != 0
    }

    /// A super-frame the sender must cut into segments of `gso_size`.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }

    /// The GSO type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !Self::GSO_ECN
    }
}

/// An Ethernet frame: `data[start..end]`, and what is left to do on it.
#[derive(Clone, Debug)]
pub struct FrameBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    pub offload: Offload,
}

impl FrameBuf {
    pub fn new() -> Self {
        FrameBuf { data: vec![0; INITIAL_CAP], start: HEADROOM, end: HEADROOM, offload: Offload::default() }
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

    /// Make the frame `len` bytes long at the default headroom, with no
    /// offload; contents are whatever the buffer held. Every frame built
    /// into a buffer starts here, so a recycled buffer's offload never leaks
    /// into a frame the core makes itself.
    pub fn reset_len(&mut self, len: usize) {
        let need = HEADROOM + len;
        if self.data.len() < need {
            // The contents need not survive: a fresh zeroed allocation
            // (calloc, fresh pages for a super-frame's 64 KiB) is cheaper
            // than growing and filling the old one.
            self.data = vec![0; need];
        }
        self.start = HEADROOM;
        self.end = need;
        self.offload = Offload::default();
    }

    /// The whole writable area after the headroom, for a read(2) into it.
    pub fn spare_mut(&mut self, max: usize) -> &mut [u8] {
        self.reset_len(max);
        self.as_mut()
    }

    /// [`spare_mut`](Self::spare_mut) with the last `prefix` bytes of the
    /// headroom in front, so one read(2) puts a device header there and
    /// the frame where it belongs (no copy). `truncate(n - prefix)` after.
    pub fn spare_with_prefix_mut(&mut self, prefix: usize, max: usize) -> &mut [u8] {
        assert!(prefix <= HEADROOM, "a prefix lives in the headroom");
        self.reset_len(max);
        &mut self.data[HEADROOM - prefix..HEADROOM + max]
    }

    /// The `n` bytes just in front of the frame (headroom), for a device
    /// header read with [`spare_with_prefix_mut`](Self::spare_with_prefix_mut).
    pub fn prefix(&self, n: usize) -> Option<&[u8]> {
        self.data.get(self.start.checked_sub(n)?..self.start)
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

    /// The frame with the `n` bytes of headroom just in front of it, for
    /// writing a device header there and the whole in one write(2). `None`
    /// if the headroom is shorter than `n`. The frame itself is unchanged.
    pub fn with_prefix_mut(&mut self, n: usize) -> Option<&mut [u8]> {
        let from = self.start.checked_sub(n)?;
        Some(&mut self.data[from..self.end])
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
    /// Past this many free buffers, one grown for a super-frame (64 KiB
    /// with TAP offload) is freed rather than kept: a burst that had
    /// thousands in flight must not leave hundreds of MB resident. A warm
    /// pool in steady state holds far fewer, so this costs no allocation
    /// per frame.
    const KEEP_LARGE: usize = 512;

    pub fn get(&mut self) -> FrameBuf {
        self.free.pop().unwrap_or_default()
    }

    pub fn put(&mut self, b: FrameBuf) {
        let large = b.data.len() > INITIAL_CAP;
        if self.free.len() < Self::KEEP && !(large && self.free.len() >= Self::KEEP_LARGE) {
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

    /// After a burst the pool keeps at most `KEEP_LARGE` super-frame sized
    /// buffers (32 MiB), however many came back.
    #[test]
    fn a_burst_of_large_buffers_is_not_all_kept() {
        let mut pool = Pool::default();
        for _ in 0..Pool::KEEP_LARGE + 100 {
            let mut b = FrameBuf::new();
            b.reset_len(MAX_FRAME);
            pool.put(b);
        }
        assert_eq!(pool.free.len(), Pool::KEEP_LARGE);
        for _ in 0..100 {
            pool.put(FrameBuf::new());
        }
        assert_eq!(pool.free.len(), Pool::KEEP_LARGE + 100, "small buffers are still kept");
    }

    #[test]
    fn prefix_read_lands_before_the_frame_and_reset_clears_offload() {
        let mut b = FrameBuf::new();
        let area = b.spare_with_prefix_mut(10, 100);
        assert_eq!(area.len(), 110);
        area[..10].copy_from_slice(&[7; 10]);
        area[10..13].copy_from_slice(&[1, 2, 3]);
        b.truncate(3);
        assert_eq!(b.prefix(10).unwrap(), &[7; 10]);
        assert_eq!(b.as_ref(), &[1, 2, 3]);
        b.offload.gso_type = Offload::GSO_TCPV4 | Offload::GSO_ECN;
        assert!(b.offload.is_gso());
        assert_eq!(b.offload.gso_kind(), Offload::GSO_TCPV4);
        b.reset_len(60);
        assert_eq!(b.offload, Offload::default());
        b.offload.gso_type = Offload::GSO_ECN;
        assert!(!b.offload.is_gso());
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
