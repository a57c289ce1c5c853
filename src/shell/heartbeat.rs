//! The heartbeat thread: sends the link hellos the core sealed ahead
//! ([`Output::HelloAhead`](twinwall::Output::HelloAhead)) when their time
//! comes and the loop has not sent a newer hello by then.
//!
//! Why a thread: at `poll_ms = 2, hold_ms = 8` the peer takes over after
//! 8 ms of silence, and a loop that forwards at full rate on a busy host can
//! be kept off the CPU that long by the traffic it forwards (softirq work,
//! the endpoints, other guests). The thread does almost nothing (one
//! `sendto` per interval, and only while the loop is late), so it can run
//! at a real-time priority without starving anyone, which the loop itself
//! cannot: a busy loop at SCHED_FIFO starves the kernel's packet work it
//! depends on (measured: issue 6's notes).
//!
//! What it cannot do is lie: it only sends hellos the core sealed, at most
//! `ahead` intervals into the future, so a loop that hangs for longer falls
//! silent and the peer takes over `ahead x poll` after the hold time would
//! otherwise have run out. A crash (kill -9) takes the thread with it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration as StdDuration;

/// SCHED_FIFO priority of the thread: above every normal task, below the
/// kernel's own real-time threads (which use 50 and up).
pub const RT_PRIORITY: libc::c_int = 10;
/// Without anything queued, the thread looks for a stop request this often.
const IDLE_WAIT: StdDuration = StdDuration::from_millis(500);
/// When the loop holds the queue, the thread looks again this soon.
const BUSY_RETRY: StdDuration = StdDuration::from_micros(200);

#[derive(Default)]
struct Queue {
    /// Bumped by each hello the loop sends: what came before is stale.
    generation: u64,
    /// (due, CLOCK_MONOTONIC ns; sealed hello), not yet taken by the thread.
    hellos: Vec<(u64, Vec<u8>)>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    stop: AtomicBool,
    /// Hellos the thread sent because the loop had not sent a newer one.
    sent: AtomicU64,
    /// Hellos the kernel refused (buffer full or an error).
    failed: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic in the other thread leaves a plain queue behind: usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The thread and its queue. The loop only ever takes the queue's lock
/// briefly; the thread never waits for it (`try_lock`, keeping its own copy
/// of what it took), because the loop may be preempted while holding it,
/// and a real-time thread blocked behind a normal one is exactly the
/// priority inversion this thread exists to avoid.
pub struct Heartbeat {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// How the thread's scheduling came out, for the log.
    pub priority: &'static str,
}

impl Heartbeat {
    /// Start the thread, sending on a duplicate of `hello_fd` to `group`.
    pub fn start(hello_fd: RawFd, group: SocketAddr) -> io::Result<Heartbeat> {
        // SAFETY: dup of a descriptor we hold open; the result is checked
        // and owned by the UdpSocket below.
        let fd = unsafe { libc::fcntl(hello_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let sock = unsafe { UdpSocket::from_raw_fd(fd) };
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
            let _ = tx.send(raise_priority());
            run(&s, &sock, group);
        })?;
        let priority = rx.recv().unwrap_or("unknown");
        Ok(Heartbeat { shared, thread: Some(thread), priority })
    }

    /// The loop sent a hello: the ones sealed before it are stale.
    pub fn supersede(&self) {
        let mut q = self.shared.lock();
        q.generation += 1;
        q.hellos.clear();
    }

    /// Queue a hello for `due_ns` (CLOCK_MONOTONIC).
    pub fn push(&self, due_ns: u64, bytes: Vec<u8>) {
        self.shared.lock().hellos.push((due_ns, bytes));
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// (hellos sent for a late loop, hellos the kernel refused).
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.sent.load(Ordering::Relaxed), self.shared.failed.load(Ordering::Relaxed))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn run(s: &Shared, sock: &UdpSocket, group: SocketAddr) {
    let mut mine: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut generation = 0;
    while !s.stop.load(Ordering::Relaxed) {
        let took = match s.queue.try_lock() {
            Ok(mut q) => {
                if q.generation != generation {
                    generation = q.generation;
                    mine.clear();
                }
                mine.append(&mut q.hellos);
                true
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                mine.append(&mut p.into_inner().hellos);
                true
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        let next = mine.iter().enumerate().min_by_key(|(_, (t, _))| *t).map(|(i, (t, _))| (i, *t));
        let now = super::monotonic_ns();
        match next {
            Some((i, due)) if due <= now => {
                // Possibly superseded meanwhile if we could not look: then
                // the peer gets one hello more, which costs nothing.
                let (_, bytes) = mine.swap_remove(i);
                let counter = match sock.send_to(&bytes, group) {
                    Ok(_) => &s.sent,
                    Err(_) => &s.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Some((_, due)) => {
                let wait = StdDuration::from_nanos(due - now);
                std::thread::park_timeout(if took { wait } else { wait.min(BUSY_RETRY) });
            }
            None => std::thread::park_timeout(if took { IDLE_WAIT } else { BUSY_RETRY }),
        }
    }
}

/// SCHED_FIFO for this thread; failing that (no CAP_SYS_NICE, or a
/// container that forbids it), the highest normal priority we may take.
fn raise_priority() -> &'static str {
    let param = libc::sched_param { sched_priority: RT_PRIORITY };
    // SAFETY: plain values; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return "SCHED_FIFO 10";
    }
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: plain values; on Linux PRIO_PROCESS with a thread id sets
    // that thread's nice value.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -20) } == 0 {
        return "nice -20 (SCHED_FIFO refused)";
    }
    "normal (SCHED_FIFO and nice refused)"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Instant as StdInstant;

    /// The thread sends queued hellos at their time, and not those a newer
    /// hello superseded.
    #[test]
    fn sends_due_hellos_and_forgets_superseded_ones() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(StdDuration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let hb = Heartbeat::start(tx.as_raw_fd(), rx.local_addr().unwrap()).unwrap();
        let t0 = StdInstant::now();
        let now = super::super::monotonic_ns();
        hb.push(now + 20_000_000, b"second".to_vec());
        hb.push(now + 5_000_000, b"first".to_vec());
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        assert!(t0.elapsed() >= StdDuration::from_millis(4), "sent before its time");
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"second");
        assert!(t0.elapsed() >= StdDuration::from_millis(19), "sent before its time");
        let now = super::super::monotonic_ns();
        hb.push(now + 30_000_000, b"stale".to_vec());
        hb.supersede();
        rx.set_read_timeout(Some(StdDuration::from_millis(100))).unwrap();
        assert!(rx.recv(&mut buf).is_err(), "a superseded hello was sent");
        assert_eq!(hb.counts(), (2, 0));
    }
}
