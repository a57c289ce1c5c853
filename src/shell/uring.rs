//! Batched TAP I/O through io_uring. A TAP has no recvmmsg/sendmmsg, so
//! with read(2)/write(2) every frame costs two system calls; the
//! benchmark's profile showed their entry, exit and file checks at about a
//! sixth of the loop's time under 64-byte load. Here every TAP keeps
//! [`READS_IN_FLIGHT`] reads posted at all times, and the writes a batch
//! produces go to the kernel together: one `io_uring_enter` per batch
//! instead of two calls per frame.
//!
//! Two rings, because they are driven differently: the read ring's file
//! descriptor sits in the event loop (it becomes readable when completions
//! wait), and its completions are consumed in batches like TAP reads; the
//! write ring is submitted whenever the core's output has been drained and
//! its completions only hand buffers back, so reaping them can never
//! re-enter the core.
//!
//! Order: reads posted on one TAP complete in the order they take frames
//! from its queue, and their completions are posted in that order, so
//! consuming completions in order keeps each TAP's frames in order. TAP
//! writes complete inline at submission (a TAP never waits for room; it
//! drops when its queue is full), in submission order.
//!
//! Buffers belong to a slot while the kernel may write into or read from
//! them; their heap memory does not move while the `FrameBuf` sits in the
//! slot. If the process ends with reads still posted, the buffers are
//! leaked rather than freed under the kernel's feet.
//!
//! `TWINWALL_IO_URING=0` in the environment, or a kernel (or a container's
//! seccomp profile) without io_uring, leaves the shell on plain
//! read(2)/write(2).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use twinwall::frame::FrameBuf;

use super::vnet;

/// Reads kept posted on each TAP. Enough to cover a burst between two
/// turns of the loop; each holds a buffer sized for a super-frame.
pub const READS_IN_FLIGHT: usize = 32;
/// Writes the kernel may hold at once; submission happens long before.
const WRITE_SLOTS: usize = 512;
/// Entries of each submission queue.
const RING_ENTRIES: u32 = 512;

/// A read that completed: which TAP, and the frame (header decoded) or the
/// error. The slot is free again; post a fresh read into it.
pub enum ReadDone {
    Frame { port: usize, slot: usize, buf: FrameBuf },
    /// Shorter than a vnet header: nothing to hand on.
    Runt { slot: usize, buf: FrameBuf },
    Error { port: usize, slot: usize, buf: FrameBuf, err: io::Error },
}

pub struct Uring {
    rx: IoUring<squeue::Entry, cqueue::Entry>,
    tx: IoUring<squeue::Entry, cqueue::Entry>,
    /// Read slot `s` belongs to TAP `s / READS_IN_FLIGHT`.
    rx_slots: Vec<Option<FrameBuf>>,
    rx_unsubmitted: usize,
    /// Write slot: the buffer and the TAP it goes to.
    tx_slots: Vec<Option<(FrameBuf, usize)>>,
    tx_free: Vec<u32>,
    tx_unsubmitted: usize,
    /// Largest frame each TAP's reads take (its `Tap::read_len`).
    read_len: Vec<usize>,
}

impl Uring {
    /// Two rings with the TAPs' descriptors registered (fixed files, no
    /// per-call descriptor lookup). Fails where io_uring is unavailable.
    ///
    /// The descriptors are switched to blocking mode: on an `O_NONBLOCK`
    /// file io_uring completes a read that finds no frame with `EAGAIN`
    /// instead of waiting for one (the loop would spin reposting it). It
    /// still never blocks the loop: io_uring tries without waiting and,
    /// finding nothing, waits on the device's readiness itself.
    pub fn new(taps: &[RawFd], read_len: Vec<usize>) -> io::Result<Uring> {
        let build = || IoUring::builder().setup_single_issuer().setup_clamp().build(RING_ENTRIES);
        let rx = build()?;
        let tx = build()?;
        for &fd in taps {
            // SAFETY: fcntl on a descriptor the caller owns; no pointers.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            // SAFETY: as above.
            if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        rx.submitter().register_files(taps)?;
        tx.submitter().register_files(taps)?;
        Ok(Uring {
            rx,
            tx,
            rx_slots: (0..taps.len() * READS_IN_FLIGHT).map(|_| None).collect(),
            rx_unsubmitted: 0,
            tx_slots: (0..WRITE_SLOTS).map(|_| None).collect(),
            tx_free: (0..WRITE_SLOTS as u32).rev().collect(),
            tx_unsubmitted: 0,
            read_len,
        })
    }

    /// Whether io_uring is wanted at all (`TWINWALL_IO_URING=0` says no).
    pub fn wanted() -> bool {
        std::env::var("TWINWALL_IO_URING").map_or(true, |v| v != "0")
    }

    /// The read ring's descriptor, for the event loop: readable while
    /// read completions wait.
    pub fn rx_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Post a read into slot `slot` (of TAP `slot / READS_IN_FLIGHT`) with
    /// `buf`; it reaches the kernel at the next [`submit_reads`](Self::submit_reads).
    pub fn post_read(&mut self, slot: usize, mut buf: FrameBuf) -> io::Result<()> {
        let port = slot / READS_IN_FLIGHT;
        let area = buf.spare_with_prefix_mut(vnet::LEN, self.read_len[port]);
        let entry = opcode::Read::new(types::Fixed(port as u32), area.as_mut_ptr(), area.len() as u32)
            .build()
            .user_data(slot as u64);
        self.rx_slots[slot] = Some(buf);
        // SAFETY: the buffer the entry points at stays in `rx_slots[slot]`,
        // unmoved on the heap, until its completion is consumed.
        while unsafe { self.rx.submission().push(&entry) }.is_err() {
            self.rx.submit()?;
            self.rx_unsubmitted = 0;
        }
        self.rx_unsubmitted += 1;
        Ok(())
    }

    pub fn submit_reads(&mut self) -> io::Result<()> {
        if self.rx_unsubmitted > 0 {
            self.rx.submit()?;
            self.rx_unsubmitted = 0;
        }
        Ok(())
    }

    /// The next completed read, in order; `None` when none waits.
    pub fn next_read(&mut self) -> Option<ReadDone> {
        let cqe = self.rx.completion().next()?;
        let slot = cqe.user_data() as usize;
        let port = slot / READS_IN_FLIGHT;
        let mut buf = self.rx_slots[slot].take().expect("a completion for a posted read");
        let res = cqe.result();
        Some(if res < 0 {
            ReadDone::Error { port, slot, buf, err: io::Error::from_raw_os_error(-res) }
        } else if let Some(len) = (res as usize).checked_sub(vnet::LEN) {
            buf.truncate(len);
            buf.offload = vnet::decode(buf.prefix(vnet::LEN).expect("read into the headroom"));
            ReadDone::Frame { port, slot, buf }
        } else {
            buf.truncate(0);
            ReadDone::Runt { slot, buf }
        })
    }

    /// Queue `buf` for TAP `port` behind its vnet header (written into the
    /// headroom). Submitted at the next [`flush_writes`](Self::flush_writes),
    /// or now if the queue is full; `done` gets back the buffers of writes
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

impl Drop for Uring {
    fn drop(&mut self) {
        // Closing a ring cancels its requests asynchronously: a buffer freed
        // now could still be written into. Leak what is still posted.
        for b in self.rx_slots.drain(..).flatten() {
            std::mem::forget(b);
        }
        for b in self.tx_slots.drain(..).flatten() {
            std::mem::forget(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinwall::frame::Offload;

    /// A datagram socket pair stands in for a TAP (one frame per read or
    /// write, a vnet header in front): no root needed.
    fn pair() -> [RawFd; 2] {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two descriptors into `fds`.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
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

    #[test]
    fn reads_complete_in_order_with_headers_decoded() {
        let [ours, theirs] = pair();
        let Some(mut u) = ring_or_skip(&[ours]) else { return };
        for slot in 0..READS_IN_FLIGHT {
            u.post_read(slot, FrameBuf::new()).unwrap();
        }
        u.submit_reads().unwrap();
        // Three times as many frames as reads posted: slots are reposted as
        // they complete, and the order must hold across the reposts.
        let total = 3 * READS_IN_FLIGHT;
        let off = Offload { flags: Offload::NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..Offload::default() };
        let mut got = Vec::new();
        for i in 0..total {
            let mut dgram = vnet::encode(&off).to_vec();
            dgram.extend_from_slice(&(i as u32).to_be_bytes());
            dgram.extend_from_slice(&[0xab; 60]);
            // SAFETY: a live buffer of the stated length.
            let n = unsafe { libc::send(theirs, dgram.as_ptr().cast(), dgram.len(), 0) };
            assert_eq!(n as usize, dgram.len());
            // Consume what has completed so far, reposting each slot.
            u.submit_reads().unwrap();
            while let Some(done) = u.next_read() {
                let ReadDone::Frame { port, slot, buf } = done else { panic!("not a frame") };
                assert_eq!(port, 0);
                assert_eq!(buf.offload, off);
                assert_eq!(buf.len(), 64);
                got.push(u32::from_be_bytes(buf.as_ref()[..4].try_into().unwrap()));
                u.post_read(slot, buf).unwrap();
            }
        }
        for _ in 0..1000 {
            if got.len() == total {
                break;
            }
            u.submit_reads().unwrap();
            while let Some(ReadDone::Frame { slot, buf, .. }) = u.next_read() {
                got.push(u32::from_be_bytes(buf.as_ref()[..4].try_into().unwrap()));
                u.post_read(slot, buf).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, (0..total as u32).collect::<Vec<_>>(), "frames out of order or missing");
        // SAFETY: both descriptors are ours; the ring is dropped first.
        drop(u);
        unsafe {
            libc::close(ours);
            libc::close(theirs);
        }
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
