//! Batched TAP I/O through io_uring. A TAP has no recvmmsg/sendmmsg, so
//! with read(2)/write(2) every frame costs two system calls; the
//! benchmark's profile showed their entry, exit and file checks at about a
//! sixth of the loop's time under 64-byte load. Here a TAP that epoll says
//! is readable is read with up to [`MAX_READ_BATCH`] reads in one
//! `io_uring_enter`, and the writes a batch produces go to the kernel
//! together in another.
//!
//! Reads are not left posted: each carries `RWF_NOWAIT`, so one that finds
//! no frame completes with `EAGAIN` at once, which is what drains a TAP,
//! and nothing sleeps inside the ring. (A first version
//! kept 32 reads posted per TAP; each one found empty armed a poll, and at
//! moderate rates every arriving frame woke all of them: single-stream TCP
//! took 30 % more CPU per byte than read(2).) The batch adapts: twice what
//! the last one found, at least 1, so an idle TAP costs what read(2) does.
//!
//! Order: a batch's reads run one after the other at submission, so the
//! frames they find are in the TAP's order; they are handed on in the
//! order the reads were queued. TAP writes complete at submission too (a
//! TAP never waits for room; it drops when its queue is full), in order.
//!
//! Two rings, because their completions mean different things: read
//! completions are consumed right after their submission; write
//! completions only hand buffers back, so reaping them never re-enters the
//! core. Buffers stay in their slot, unmoved on the heap, until their
//! completion is reaped; if the process ends with a write in flight its
//! buffer is leaked rather than freed under the kernel's feet.
//!
//! `TWINWALL_IO_URING=0` in the environment, or a kernel (or a container's
//! seccomp profile) without io_uring, leaves the shell on plain
//! read(2)/write(2).

use std::io;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use twinwall::frame::FrameBuf;

use super::vnet;

/// Most reads in one submission; also the clock-check cadence of the loop.
pub const MAX_READ_BATCH: usize = 32;
/// Writes the kernel may hold at once; submission happens long before.
const WRITE_SLOTS: usize = 512;
/// Entries of each submission queue.
const RING_ENTRIES: u32 = 512;

/// Where a batch's buffers come from and go: the caller's pool and
/// consumer (the core in `run`, the other TAP in `wire`).
pub trait Frames {
    /// A buffer for one read.
    fn alloc(&mut self) -> FrameBuf;
    /// A frame read, in the TAP's order.
    fn frame(&mut self, buf: FrameBuf);
    /// The buffer of a read that brought no frame, back to the pool.
    fn spare(&mut self, buf: FrameBuf);
}

/// What a batch came to.
pub struct Batch {
    /// Reads submitted.
    pub reads: usize,
    /// One found no frame: the TAP is drained.
    pub empty: bool,
    /// The first read error other than EINTR (the device is gone, say).
    pub error: Option<io::Error>,
}

/// One read of a batch, in the order the reads were queued.
enum ReadDone {
    Frame(FrameBuf),
    /// No frame was waiting: the TAP is drained.
    Empty(FrameBuf),
    /// Shorter than a vnet header: nothing to hand on.
    Runt(FrameBuf),
    Error(FrameBuf, io::Error),
}

pub struct Uring {
    rx: IoUring<squeue::Entry, cqueue::Entry>,
    tx: IoUring<squeue::Entry, cqueue::Entry>,
    /// The current batch's buffers and results, by position in the batch.
    rx_bufs: Vec<Option<FrameBuf>>,
    rx_res: Vec<i32>,
    /// Write slot: the buffer and the TAP it goes to.
    tx_slots: Vec<Option<(FrameBuf, usize)>>,
    tx_free: Vec<u32>,
    tx_unsubmitted: usize,
    /// Largest frame each TAP's reads take (its `Tap::read_len`).
    read_len: Vec<usize>,
    /// Reads in each TAP's next batch (see [`next_batch`]).
    burst: Vec<usize>,
}

impl Uring {
    /// Two rings with the TAPs' descriptors registered (fixed files, no
    /// per-call descriptor lookup). The descriptors must be non-blocking.
    /// Fails where io_uring is unavailable.
    pub fn new(taps: &[RawFd], read_len: Vec<usize>) -> io::Result<Uring> {
        let build = || IoUring::builder().setup_single_issuer().setup_clamp().build(RING_ENTRIES);
        let rx = build()?;
        let tx = build()?;
        rx.submitter().register_files(taps)?;
        tx.submitter().register_files(taps)?;
        Ok(Uring {
            rx,
            tx,
            rx_bufs: (0..MAX_READ_BATCH).map(|_| None).collect(),
            rx_res: vec![0; MAX_READ_BATCH],
            tx_slots: (0..WRITE_SLOTS).map(|_| None).collect(),
            tx_free: (0..WRITE_SLOTS as u32).rev().collect(),
            tx_unsubmitted: 0,
            burst: vec![1; read_len.len()],
            read_len,
        })
    }

    /// Whether io_uring is wanted at all (`TWINWALL_IO_URING=0` says no).
    pub fn wanted() -> bool {
        std::env::var("TWINWALL_IO_URING").map_or(true, |v| v != "0")
    }

    /// Read up to `n` (at most [`MAX_READ_BATCH`]) frames from TAP `port`
    /// into buffers from `alloc`, in one submission; then take the results
    /// with [`take_read`](Self::take_read) for positions `0..n`. An error
    /// means the ring cannot be used any more: drop it and fall back.
    fn read_batch(&mut self, port: usize, n: usize, mut alloc: impl FnMut() -> FrameBuf) -> io::Result<usize> {
        let n = n.clamp(1, MAX_READ_BATCH);
        debug_assert!(self.rx_bufs.iter().all(Option::is_none), "the last batch was taken whole");
        for k in 0..n {
            let mut buf = alloc();
            let area = buf.spare_with_prefix_mut(vnet::LEN, self.read_len[port]);
            // RWF_NOWAIT: a read that finds no frame completes with EAGAIN
            // now; without it io_uring would wait for one (even on a
            // non-blocking file), keeping the submission from returning.
            let entry = opcode::Read::new(types::Fixed(port as u32), area.as_mut_ptr(), area.len() as u32)
                .rw_flags(libc::RWF_NOWAIT)
                .build()
                .user_data(k as u64);
            self.rx_bufs[k] = Some(buf);
            // SAFETY: the buffer the entry points at stays in `rx_bufs[k]`,
            // unmoved on the heap, until the batch's completions are reaped
            // below. The queue has room: it holds more than a batch and
            // every batch is submitted and reaped before the next.
            unsafe { self.rx.submission().push(&entry) }.expect("room for a read batch");
        }
        // Each read completes at submission (non-blocking file); waiting
        // for all n only matters were one ever to go asynchronous.
        loop {
            match self.rx.submit_and_wait(n) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The kernel took none of the batch (its entries stay in
                // the queue, pointing at this batch's buffers): the ring is
                // unusable, and dropping it leaks those buffers safely.
                Err(e) => return Err(e),
            }
        }
        let mut seen = 0;
        while seen < n {
            let Some(cqe) = self.rx.completion().next() else {
                // Only if the kernel posted fewer than asked; wait again.
                let _ = self.rx.submit_and_wait(n - seen);
                continue;
            };
            self.rx_res[cqe.user_data() as usize] = cqe.result();
            seen += 1;
        }
        Ok(n)
    }

    /// The result of read `k` of the last batch (each taken once, all of
    /// them before the next batch).
    fn take_read(&mut self, k: usize) -> ReadDone {
        let mut buf = self.rx_bufs[k].take().expect("a read of this batch, taken once");
        let res = self.rx_res[k];
        if res == -libc::EAGAIN {
            ReadDone::Empty(buf)
        } else if res < 0 {
            ReadDone::Error(buf, io::Error::from_raw_os_error(-res))
        } else if let Some(len) = (res as usize).checked_sub(vnet::LEN) {
            buf.truncate(len);
            buf.offload = vnet::decode(buf.prefix(vnet::LEN).expect("read into the headroom"));
            ReadDone::Frame(buf)
        } else {
            buf.truncate(0);
            ReadDone::Runt(buf)
        }
    }

    /// Read from TAP `port`: as many reads as its last batch calls for
    /// (at most `max`) in one submission, buffers from `io`, then every
    /// result to `io` in order. An error means the ring cannot be used any
    /// more: drop it and fall back to read(2)/write(2).
    pub fn read(&mut self, port: usize, max: usize, io: &mut impl Frames) -> io::Result<Batch> {
        let want = self.burst[port].min(max);
        let reads = self.read_batch(port, want, || io.alloc())?;
        let (mut found, mut empty, mut error) = (0, false, None);
        for k in 0..reads {
            match self.take_read(k) {
                ReadDone::Frame(buf) => {
                    found += 1;
                    io.frame(buf);
                }
                ReadDone::Empty(buf) => {
                    empty = true;
                    io.spare(buf);
                }
                ReadDone::Runt(buf) => io.spare(buf),
                ReadDone::Error(buf, e) => {
                    io.spare(buf);
                    if e.raw_os_error() != Some(libc::EINTR) {
                        error.get_or_insert(e);
                    }
                }
            }
        }
        self.burst[port] = next_batch(found);
        Ok(Batch { reads, empty, error })
    }

    /// Queue `buf` for TAP `port` behind its vnet header (written into the
    /// headroom). Submitted at the next [`flush_writes`](Self::flush_writes),
    /// or now if every slot is taken; `done` gets back the buffers of writes
    /// that completed meanwhile.
    pub fn queue_write(
        &mut self,
        port: usize,
        mut buf: FrameBuf,
        done: &mut impl FnMut(FrameBuf, usize, io::Result<()>),
    ) -> io::Result<()> {
        if self.tx_free.is_empty() {
            self.flush_writes(done)?;
        }
        let Some(slot) = self.tx_free.pop() else {
            // Every slot still held by the kernel: not with a TAP, whose
            // writes complete at submission. Lose the frame, as a full
            // transmit queue would.
            done(buf, port, Err(io::Error::from_raw_os_error(libc::ENOBUFS)));
            return Ok(());
        };
        let hdr = vnet::encode(&buf.offload);
        let Some(area) = buf.with_prefix_mut(vnet::LEN) else {
            self.tx_free.push(slot);
            done(buf, port, Err(io::Error::new(io::ErrorKind::InvalidInput, "no headroom for the vnet header")));
            return Ok(());
        };
        area[..vnet::LEN].copy_from_slice(&hdr);
        let entry = opcode::Write::new(types::Fixed(port as u32), area.as_ptr(), area.len() as u32)
            .build()
            .user_data(slot as u64);
        self.tx_slots[slot as usize] = Some((buf, port));
        // SAFETY: the buffer stays in `tx_slots[slot]`, unmoved on the
        // heap, until its completion is reaped.
        while unsafe { self.tx.submission().push(&entry) }.is_err() {
            self.tx.submit()?;
            self.tx_unsubmitted = 0;
        }
        self.tx_unsubmitted += 1;
        Ok(())
    }

    /// Submit the queued writes and hand back the buffers of every write
    /// that completed, with its outcome.
    pub fn flush_writes(&mut self, done: &mut impl FnMut(FrameBuf, usize, io::Result<()>)) -> io::Result<()> {
        if self.tx_unsubmitted > 0 {
            self.tx.submit()?;
            self.tx_unsubmitted = 0;
        }
        while let Some(cqe) = self.tx.completion().next() {
            let slot = cqe.user_data() as usize;
            let (buf, port) = self.tx_slots[slot].take().expect("a completion for a queued write");
            self.tx_free.push(slot as u32);
            let res = cqe.result();
            done(buf, port, if res < 0 { Err(io::Error::from_raw_os_error(-res)) } else { Ok(()) });
        }
        Ok(())
    }

    /// Writes queued or held by the kernel.
    pub fn writes_pending(&self) -> bool {
        self.tx_free.len() < WRITE_SLOTS
    }
}

/// The next batch for a TAP: twice what the last found, 1 to
/// [`MAX_READ_BATCH`], so a busy TAP is read 32 at a time and an idle one
/// costs about what read(2) does.
fn next_batch(found: usize) -> usize {
    (found * 2).clamp(1, MAX_READ_BATCH)
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Closing a ring cancels its requests asynchronously: a buffer freed
        // now could still be read from or written into. Leak what is still
        // in flight (or queued, after a failed submission).
        for b in self.tx_slots.drain(..).flatten() {
            std::mem::forget(b);
        }
        for b in self.rx_bufs.drain(..).flatten() {
            std::mem::forget(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinwall::frame::Offload;

    /// A non-blocking datagram socket pair stands in for a TAP (one frame
    /// per read or write, a vnet header in front): no root needed.
    fn pair() -> [RawFd; 2] {
        let mut fds = [0; 2];
        let ty = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: socketpair writes two descriptors into `fds`.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
        fds
    }

    fn ring_or_skip(fds: &[RawFd]) -> Option<Uring> {
        match Uring::new(fds, vec![2048; fds.len()]) {
            Ok(u) => Some(u),
            Err(e) => {
                eprintln!("SKIPPED: io_uring unavailable here ({e}); the shell falls back to read/write");
                None
            }
        }
    }

    fn send_frame(fd: RawFd, seq: u32, off: &Offload) {
        let mut dgram = vnet::encode(off).to_vec();
        dgram.extend_from_slice(&seq.to_be_bytes());
        dgram.extend_from_slice(&[0xab; 60]);
        // SAFETY: a live buffer of the stated length.
        let n = unsafe { libc::send(fd, dgram.as_ptr().cast(), dgram.len(), 0) };
        assert_eq!(n as usize, dgram.len(), "send: {}", io::Error::last_os_error());
    }

    #[test]
    fn a_batch_reads_in_order_and_stops_at_empty() {
        let [ours, theirs] = pair();
        let Some(mut u) = ring_or_skip(&[ours]) else { return };
        let off = Offload { flags: Offload::NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..Offload::default() };
        let mut next = 0u32;
        // Rounds of 1..=9 frames (an AF_UNIX datagram socket queues 10
        // unread), each read with a batch larger than what waits.
        for round in 0..40 {
            let waiting = 1 + round % 9;
            for _ in 0..waiting {
                send_frame(theirs, next, &off);
                next += 1;
            }
            let n = u.read_batch(0, waiting as usize + 3, FrameBuf::new).unwrap();
            assert_eq!(n, waiting as usize + 3);
            for k in 0..n {
                match u.take_read(k) {
                    ReadDone::Frame(buf) => {
                        assert!(k < waiting as usize, "a frame after the queue was empty");
                        assert_eq!(buf.offload, off);
                        assert_eq!(buf.len(), 64);
                        let seq = u32::from_be_bytes(buf.as_ref()[..4].try_into().unwrap());
                        assert_eq!(seq, next - waiting + k as u32, "frames out of order");
                    }
                    ReadDone::Empty(_) => assert!(k >= waiting as usize, "empty while frames waited"),
                    _ => panic!("unexpected read result"),
                }
            }
        }
        drop(u);
        // SAFETY: both descriptors are ours.
        unsafe {
            libc::close(ours);
            libc::close(theirs);
        }
    }

    /// Collects what `Uring::read` hands over.
    #[derive(Default)]
    struct Collect {
        frames: Vec<u32>,
        spares: usize,
    }

    impl Frames for Collect {
        fn alloc(&mut self) -> FrameBuf {
            FrameBuf::new()
        }
        fn frame(&mut self, buf: FrameBuf) {
            self.frames.push(u32::from_be_bytes(buf.as_ref()[..4].try_into().unwrap()));
        }
        fn spare(&mut self, _: FrameBuf) {
            self.spares += 1;
        }
    }

    #[test]
    fn read_grows_its_batches_and_says_when_the_tap_is_drained() {
        let [ours, theirs] = pair();
        let Some(mut u) = ring_or_skip(&[ours]) else { return };
        for seq in 0..5 {
            send_frame(theirs, seq, &Offload::default());
        }
        let mut c = Collect::default();
        // Batches of 1, 2 and 4 reads: 1 + 2 frames, then 2 frames and an
        // empty read that ends the drain.
        let sizes: Vec<(usize, bool)> = (0..3)
            .map(|_| {
                let b = u.read(0, MAX_READ_BATCH, &mut c).unwrap();
                assert!(b.error.is_none());
                (b.reads, b.empty)
            })
            .collect();
        assert_eq!(sizes, [(1, false), (2, false), (4, true)]);
        assert_eq!(c.frames, [0, 1, 2, 3, 4]);
        assert_eq!(c.spares, 2, "the buffers of the two empty reads come back");
        drop(u);
        // SAFETY: both descriptors are ours.
        unsafe {
            libc::close(ours);
            libc::close(theirs);
        }
    }

    #[test]
    fn batches_adapt_to_what_they_find() {
        assert_eq!(next_batch(0), 1);
        assert_eq!(next_batch(1), 2);
        assert_eq!(next_batch(12), 24);
        assert_eq!(next_batch(32), MAX_READ_BATCH);
    }

    #[test]
    fn writes_carry_the_header_keep_order_and_give_buffers_back() {
        let [ours, theirs] = pair();
        let Some(mut u) = ring_or_skip(&[ours]) else { return };
        let mut back = 0;
        let mut next = 0u32;
        // Rounds of 8: an AF_UNIX datagram socket queues at most 10 unread
        // (net.unix.max_dgram_qlen), a TAP never makes a writer wait.
        // 100 rounds cycle every write slot.
        for round in 0..100u32 {
            for k in 0..8 {
                let mut buf = FrameBuf::from_slice(&(round * 8 + k).to_be_bytes());
                buf.offload.gso_size = 1448;
                u.queue_write(0, buf, &mut |_, _, r| {
                    r.unwrap();
                    back += 1;
                })
                .unwrap();
            }
            u.flush_writes(&mut |_, port, r| {
                assert_eq!(port, 0);
                r.unwrap();
                back += 1;
            })
            .unwrap();
            assert!(!u.writes_pending(), "TAP-like writes complete at submission");
            drain(theirs, &mut next);
        }
        assert_eq!(back, 800, "every buffer comes back once");
        assert_eq!(next, 800, "every frame arrived, in order");
        drop(u);
        // SAFETY: both descriptors are ours.
        unsafe {
            libc::close(ours);
            libc::close(theirs);
        }
    }

    /// Read every datagram waiting on `fd`, checking each has a header
    /// with gso_size 1448 and the next 4-byte sequence number.
    fn drain(fd: RawFd, next: &mut u32) {
        let mut b = [0u8; 64];
        loop {
            // SAFETY: a live buffer of the stated length.
            let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                return;
            }
            assert_eq!(n as usize, vnet::LEN + 4);
            assert_eq!(vnet::decode(&b[..vnet::LEN]).gso_size, 1448);
            assert_eq!(u32::from_be_bytes(b[vnet::LEN..vnet::LEN + 4].try_into().unwrap()), *next);
            *next += 1;
        }
    }
}
