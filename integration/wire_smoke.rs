//! Root-only test of `twinwall wire` and the vnet_hdr TAP path: the binary
//! copies frames between two TAPs, each moved into a peer namespace on one
//! subnet; ping must pass, and a TCP transfer of 32 MB must arrive whole.
//! With offload the peers' TCP hands over TSO super-frames, so the average
//! frame wire copied from the sender's side must be longer than an Ethernet
//! frame of MTU 1500 can be (it says so on SIGTERM). It runs twice: with
//! TAP I/O through io_uring (the default) and with read(2)/write(2)
//! (`TWINWALL_IO_URING=0`), and checks the log says which was used.
//!
//! Namespaces `twwire-*-PID`; the test ends only the process it started, by
//! PID, and deletes its namespaces even when an assertion fails. It skips
//! (and says why) when not root or when `ip` or python3 is missing.

use std::process::{Command, Output, Stdio};

#[path = "support/teardown.rs"]
mod teardown;
use std::time::{Duration, Instant};
use teardown::Teardown;

const BIN: &str = env!("CARGO_BIN_EXE_twinwall");
const BYTES: usize = 32 << 20;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {} failed", args.join(" "));
}

fn in_ns(ns: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(cmd);
    c
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn wire_copies_frames_and_tso_super_frames_io_uring() {
    wire_copies(true);
}

#[test]
fn wire_copies_frames_and_tso_super_frames_read_write() {
    wire_copies(false);
}

fn wire_copies(io_uring: bool) {
    if !is_root() {
        return eprintln!("wire_smoke: SKIPPED: needs root (TAP devices and network namespaces)");
    }
    if Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_err()
        || Command::new("python3").arg("-V").stdout(Stdio::null()).status().is_err()
    {
        return eprintln!("wire_smoke: SKIPPED: `ip` (iproute2) or python3 is missing");
    }
    let id = std::process::id();
    let tag = if io_uring { "u" } else { "p" };
    let [fw, a, b] = ["fw", "a", "b"].map(|n| format!("twwire-{n}{tag}-{id}"));
    let mut lab = Teardown::default();
    for n in [&fw, &a, &b] {
        ip(&["netns", "add", n]);
        lab.netns.push(n.clone());
        ip(&["-n", n, "link", "set", "lo", "up"]);
        // No IPv6 chatter: a frame sent before the other TAP is up is lost.
        for k in ["all", "default"] {
            let st = in_ns(n, &["sysctl", "-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=1")]).status().unwrap();
            assert!(st.success(), "sysctl in {n}");
        }
    }
    let child = in_ns(&fw, &[BIN, "wire", "--tap", "tww-a", "--tap", "tww-b"])
        .env("TWINWALL_IO_URING", if io_uring { "1" } else { "0" })
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let child = lab.child.insert(child);
    let t0 = Instant::now();
    while !Command::new("ip").args(["-n", &fw, "link", "show", "tww-b"]).output().unwrap().status.success() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("twinwall wire exited early: {st}");
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no TAPs after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The receiving side first, so nothing from a meets a TAP that is down.
    for (tap, ns, addr) in [("tww-b", &b, "10.77.0.2/24"), ("tww-a", &a, "10.77.0.1/24")] {
        ip(&["-n", &fw, "link", "set", tap, "netns", ns]);
        ip(&["-n", ns, "addr", "add", addr, "dev", tap]);
        ip(&["-n", ns, "link", "set", tap, "up"]);
    }
    let ping = in_ns(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"]).output().unwrap();
    assert!(ping.status.success(), "ping through wire failed:\n{}", String::from_utf8_lossy(&ping.stdout));

    // 32 MB of TCP from a to b; the receiver prints how much arrived.
    let server = "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
         s.bind(('10.77.0.2', 5999)); s.listen(1); s.settimeout(15); c,_=s.accept(); c.settimeout(15); n=0\n\
         while True:\n d=c.recv(1<<20)\n if not d: break\n n+=len(d)\nprint(n)";
    let recv = in_ns(&b, &["timeout", "20", "python3", "-c", server]).stdout(Stdio::piped()).spawn().unwrap();
    let client = format!(
        "import socket, time\nfor i in range(50):\n try:\n  s=socket.create_connection(('10.77.0.2', 5999), 2); break\n \
         except OSError: time.sleep(0.1)\ns.sendall(bytes({BYTES})); s.close()"
    );
    let sent = in_ns(&a, &["timeout", "20", "python3", "-c", &client]).status().unwrap();
    let got: Output = recv.wait_with_output().unwrap();
    assert!(sent.success(), "the sender failed");
    let n: usize = String::from_utf8_lossy(&got.stdout).trim().parse().unwrap_or(0);
    assert_eq!(n, BYTES, "bytes received through wire");

    // SAFETY: kill(2) on the PID of our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let out = lab.child.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "twinwall wire exited with {}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    // "wire: tww-a -> tww-b: N frames, M bytes, 0 not written"
    let line =
        log.lines().find(|l| l.contains("wire: tww-a -> tww-b:")).unwrap_or_else(|| panic!("no summary:\n{log}"));
    let nums: Vec<u64> = line
        .split("tww-b:")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (frames, bytes, lost) = (nums[0], nums[1], nums[2]);
    let uring_used = log.contains("TAP I/O through io_uring");
    if io_uring && !uring_used {
        eprintln!("wire_smoke: io_uring was asked for but not used (unavailable here?):\n{log}");
    }
    assert!(io_uring || !uring_used, "TWINWALL_IO_URING=0 must leave io_uring off:\n{log}");
    assert!(bytes >= BYTES as u64, "{line}");
    assert_eq!(lost, 0, "{line}");
    assert!(
        bytes / frames > 1514,
        "average frame {} bytes: no TSO super-frames crossed (is offload off?): {line}",
        bytes / frames
    );
}
