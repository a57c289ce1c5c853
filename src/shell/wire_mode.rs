//! `twinwall wire --tap A --tap B`: copy every frame from each TAP to the
//! other and do nothing else. No appliance, no parsing, no policy: the same
//! TAP code (vnet header and offload included) and the same batching as
//! `run`, so its throughput is the ceiling of the architecture, the (a) row
//! of BENCHMARKS.md. Frames keep their vnet header fields, so a TSO
//! super-frame read from one TAP is written to the other as it came.

use std::io;
use std::os::fd::AsRawFd;

use twinwall::frame::FrameBuf;

use super::signals::{Signal, Signals};
use super::tap::{Tap, TapError};
use super::uring::{Frames, Uring, MAX_READ_BATCH};
use super::READS_PER_WAKEUP;

/// Why `twinwall wire` could not start or had to stop.
#[derive(Debug)]
pub enum WireError {
    /// `twinwall wire` takes exactly two `--tap NAME`, got {0}
    TapCount(usize),
    Tap(TapError),
    /// {0}: {1}
    Io(&'static str, io::Error),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TapCount(n) => {
                write!(f, "`twinwall wire` takes exactly two `--tap NAME`, got {n}; e.g. `--tap tw-a --tap tw-b`")
            }
            WireError::Tap(e) => write!(f, "{e}"),
            WireError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

/// Frames moved and lost in one direction.
#[derive(Default)]
struct Dir {
    frames: u64,
    bytes: u64,
    /// Writes refused (e.g. the device is down); the frame is lost.
    write_errors: u64,
}

/// Open both TAPs and copy frames between them until SIGTERM or SIGINT.
pub fn run(names: &[String], mtu: u16) -> Result<(), WireError> {
    let [a, b] = names else { return Err(WireError::TapCount(names.len())) };
    let signals = Signals::new().map_err(|e| WireError::Io("cannot set up signal handling", e))?;
    let taps = [Tap::open(a, mtu).map_err(WireError::Tap)?, Tap::open(b, mtu).map_err(WireError::Tap)?];
    for t in &taps {
        let offload = if t.offload { "checksum/TSO offload" } else { "no offload" };
        log::info!("wire: TAP {} (MTU {mtu}, {offload})", t.name());
    }
    let mut dirs = [Dir::default(), Dir::default()];
    let uring = if Uring::wanted() {
        let fds = [taps[0].as_raw_fd(), taps[1].as_raw_fd()];
        match Uring::new(&fds, vec![taps[0].read_len, taps[1].read_len]) {
            Ok(u) => Some(u),
            Err(e) => {
                log::warn!("wire: io_uring unavailable ({e}); read(2)/write(2) per frame");
                None
            }
        }
    } else {
        None
    };
    let exit = match uring {
        Some(mut u) => {
            log::info!("wire: TAP I/O through io_uring, up to {MAX_READ_BATCH} reads per submission");
            let mut bufs = WireFrames::default();
            copy_loop(&taps, &signals, |i| copy_uring(i, &mut u, &mut bufs, &mut dirs))?
        }
        None => {
            let mut buf = FrameBuf::new();
            copy_loop(&taps, &signals, |i| {
                copy_batch(&taps[i], &taps[1 - i], &mut buf, &mut dirs[i])
                    .map_err(|e| WireError::Io("reading a TAP failed", e))
            })?
        }
    };
    for (i, d) in dirs.iter().enumerate() {
        log::info!(
            "wire: {} -> {}: {} frames, {} bytes, {} not written",
            taps[i].name(),
            taps[1 - i].name(),
            d.frames,
            d.bytes,
            d.write_errors
        );
    }
    log::info!("{exit}: exiting");
    Ok(())
}

/// SIGTERM/SIGINT: the signal's name to exit with.
fn check_signals(signals: &Signals) -> Result<Option<&'static str>, WireError> {
    loop {
        match signals.next() {
            Ok(Some(Signal::Terminate(name))) => return Ok(Some(name)),
            Ok(Some(Signal::Reload)) => log::info!("wire: SIGHUP ignored (nothing to reload)"),
            Ok(None) => return Ok(None),
            Err(e) => return Err(WireError::Io("reading signals", e)),
        }
    }
}

/// Wait for a TAP or a signal, then copy from each TAP with input
/// (`copy(i)` moves what it can from TAP `i` to the other and says whether
/// frames may remain, e.g. at the batch limit), until SIGTERM or SIGINT.
fn copy_loop(
    taps: &[Tap; 2],
    signals: &Signals,
    mut copy: impl FnMut(usize) -> Result<bool, WireError>,
) -> Result<&'static str, WireError> {
    let mut fds = [taps[0].as_raw_fd(), taps[1].as_raw_fd(), signals.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // A TAP whose last drain stopped at the batch limit: poll without waiting.
    let mut pending = [true, true];
    loop {
        let timeout = if pending.iter().any(|p| *p) { 0 } else { -1 };
        // SAFETY: `fds` is an array of initialised pollfd that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(WireError::Io("poll failed", e));
        }
        if fds[2].revents != 0 {
            if let Some(name) = check_signals(signals)? {
                return Ok(name);
            }
        }
        for i in 0..2 {
            if fds[i].revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                pending[i] = true;
            }
            if pending[i] {
                pending[i] = copy(i)?;
            }
        }
    }
}

/// Buffers for `wire`'s io_uring reads: a free list, and the frames a
/// batch found, to be written to the other TAP once it is taken.
#[derive(Default)]
struct WireFrames {
    free: Vec<FrameBuf>,
    got: Vec<FrameBuf>,
}

impl Frames for WireFrames {
    fn alloc(&mut self) -> FrameBuf {
        self.free.pop().unwrap_or_default()
    }
    fn frame(&mut self, buf: FrameBuf) {
        self.got.push(buf);
    }
    fn spare(&mut self, buf: FrameBuf) {
        self.free.push(buf);
    }
}

/// The io_uring copy from TAP `i`: batches of reads in one submission
/// each, every frame queued as a write of the same buffer to the other TAP,
/// the writes submitted together after each batch; buffers come back from
/// completed writes. At most [`READS_PER_WAKEUP`] reads; returns whether
/// frames may remain.
fn copy_uring(i: usize, u: &mut Uring, bufs: &mut WireFrames, dirs: &mut [Dir; 2]) -> Result<bool, WireError> {
    let io = |e| WireError::Io("io_uring", e);
    let mut read = 0;
    while read < READS_PER_WAKEUP {
        let batch = u.read(i, MAX_READ_BATCH, bufs).map_err(io)?;
        read += batch.reads;
        if let Some(e) = batch.error {
            return Err(WireError::Io("reading a TAP failed", e));
        }
        let WireFrames { free, got } = bufs;
        dirs[i].frames += got.len() as u64;
        dirs[i].bytes += got.iter().map(|b| b.len() as u64).sum::<u64>();
        let mut back = |b, to: usize, r: io::Result<()>| {
            if r.is_err() {
                dirs[1 - to].write_errors += 1;
            }
            free.push(b);
        };
        for buf in got.drain(..) {
            u.queue_write(1 - i, buf, &mut back).map_err(io)?;
        }
        u.flush_writes(&mut back).map_err(io)?;
        if batch.empty {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Read up to [`READS_PER_WAKEUP`] frames from `from` and write each to
/// `to`. Returns whether frames may remain (the batch limit was reached).
fn copy_batch(from: &Tap, to: &Tap, buf: &mut FrameBuf, d: &mut Dir) -> io::Result<bool> {
    for _ in 0..READS_PER_WAKEUP {
        match from.recv(buf) {
            Ok(0) => {}
            Ok(_) => {
                d.frames += 1;
                d.bytes += buf.len() as u64;
                loop {
                    match to.send(buf) {
                        Ok(_) => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            // A full or downed device: the frame is lost, as
                            // on a wire; the count says how many.
                            d.write_errors += 1;
                            break;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
