//! The failover lab (integration/lab/failover.sh) as a test: two real units
//! in network namespaces, a 1 kHz UDP stream and a 1 kHz TCP message stream
//! through PAT, `kill -9` of the active unit; passes when the TCP connection
//! survives, no datagram is lost outside the gap, the PAT port is kept and
//! the UDP gap is within issue 3's limit for the default timers (300 ms);
//! then the later phases: the killed unit rejoins as a hot standby, fails
//! back with `twinwall failover active` (TCP survives, same PAT port), the
//! failover link is cut for 2 s (never two actives, link shown failed) and a
//! unit restarts with a wrong key (an error on both sides, no state taken).
//! The figures are printed (the script's RESULT and RESULT2 lines), not
//! asserted beyond those checks. It needs root and /dev/net/tun; elsewhere it says so loudly
//! and passes only if TWINWALL_SKIP_LAB=1 is set, so that CI (root) can
//! never skip it by accident.

use std::process::Command;

#[test]
fn failover_lab() {
    let root = euid_is_root();
    if !root || !std::path::Path::new("/dev/net/tun").exists() {
        let msg = "the failover lab test needs root and /dev/net/tun (run `sudo -E cargo test --test lab_failover`)";
        if std::env::var("TWINWALL_SKIP_LAB").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED: {msg}; TWINWALL_SKIP_LAB=1 is set ***\n");
            return;
        }
        panic!("{msg}; set TWINWALL_SKIP_LAB=1 to skip it knowingly");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/lab/failover.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_twinwall"))
        .status()
        .expect("run integration/lab/failover.sh");
    assert!(status.success(), "failover lab failed: {status} (see its RESULT line and FAIL lines above)");
}

fn euid_is_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs"
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}
