//! `twinwall run --realtime`: real-time scheduling and locked memory, so
//! that a unit forwarding at full rate on a busy host still sends and reads
//! its hellos within a millisecond or two (issue 6: hold_ms down to 3).

/// SCHED_FIFO priority: above the usual real-time helpers (`chrt -f 10`),
/// below the kernel's own threads (50).
const PRIORITY: i32 = 20;

/// Switch this (single-threaded) process to SCHED_FIFO and lock its
/// memory. Failures are logged, not fatal: the unit still works, only with
/// ordinary scheduling.
pub fn enter() {
    let param = libc::sched_param { sched_priority: PRIORITY };
    // SAFETY: pid 0 is this process; `param` is a valid sched_param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        log::warn!(
            "--realtime: cannot switch to SCHED_FIFO: {}; running with ordinary scheduling (needs root or CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        );
    } else {
        log::info!("--realtime: SCHED_FIFO priority {PRIORITY}");
    }
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        log::warn!("--realtime: cannot lock memory: {}", std::io::Error::last_os_error());
    }
}
