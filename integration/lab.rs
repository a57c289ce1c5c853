//! The network-namespace lab (integration/lab/run.sh) as a test: the real
//! binary on TAP devices between real Linux peers. It needs root and
//! /dev/net/tun; elsewhere it says so loudly and passes only if
//! TWINWALL_SKIP_LAB=1 is set, so that CI (root) can never skip it by accident.
//! It runs the lab twice: TAP I/O through io_uring (the default), then
//! through read(2)/write(2) (`TWINWALL_IO_URING=0`), so both paths of the
//! shell carry the lab's traffic.

use std::process::Command;

#[test]
fn lab() {
    let root = unsafe_free_euid_is_root();
    if !root || !std::path::Path::new("/dev/net/tun").exists() {
        let msg = "the lab test needs root and /dev/net/tun (run `sudo -E cargo test --test lab`)";
        if std::env::var("TWINWALL_SKIP_LAB").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED: {msg}; TWINWALL_SKIP_LAB=1 is set ***\n");
            return;
        }
        panic!("{msg}; set TWINWALL_SKIP_LAB=1 to skip it knowingly");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/lab/run.sh");
    for uring in ["1", "0"] {
        eprintln!("\n--- lab with TWINWALL_IO_URING={uring} ---");
        let status = Command::new("bash")
            .arg(script)
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_twinwall"))
            .env("TWINWALL_IO_URING", uring)
            .status()
            .expect("run integration/lab/run.sh");
        assert!(status.success(), "lab checks failed with TWINWALL_IO_URING={uring}: {status}");
    }
}

fn unsafe_free_euid_is_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs"
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}
