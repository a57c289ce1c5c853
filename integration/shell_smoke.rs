//! Root-only smoke test of the real binary: start `twinwall run` in its own
//! network namespace (so its TAP names clash with nothing), ask `show
//! interface` over the control socket, send SIGTERM, and check that it exits
//! 0 and removes the socket file.
//!
//! Config: `$TWINWALL_SMOKE_CONFIG`, else `appliance.toml` at the repository
//! root, with `control_socket` rewritten to a temporary path. The test skips
//! (and says why) when not root, when `ip` is missing, or when there is no
//! config; it fails if the config does not pass `twinwall check`.
//!
//! It ends only the process it started, by PID, and deletes its namespace and
//! temporary files even when an assertion fails.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "support/teardown.rs"]
mod teardown;
use std::time::{Duration, Instant};
use teardown::Teardown;

const BIN: &str = env!("CARGO_BIN_EXE_twinwall");

fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn skip(why: &str) {
    eprintln!("shell_smoke: SKIPPED: {why}");
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn ask(sock: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(sock).expect("connect to the control socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn run_show_sigterm() {
    if !is_root() {
        return skip("needs root (TAP devices and a network namespace)");
    }
    if Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_err() {
        return skip("the `ip` command (iproute2) is missing");
    }
    let src = std::env::var_os("TWINWALL_SMOKE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("appliance.toml"));
    let Ok(text) = std::fs::read_to_string(&src) else {
        return skip(&format!("no config at {} (set TWINWALL_SMOKE_CONFIG)", src.display()));
    };

    let id = std::process::id();
    let netns = format!("twsmoke-{id}");
    let dir = std::env::temp_dir().join(format!("twinwall-smoke-{id}"));
    // Everything the test creates; dropped last, even on panic.
    let mut lab = Teardown { netns: vec![netns.clone()], dirs: vec![dir.clone()], child: None };
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("run").join("twinwall.sock");
    let mut table: toml::Table = text.parse().expect("the smoke config is TOML");
    let appliance = table
        .entry("appliance")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[appliance] is a table");
    appliance.insert("control_socket".into(), toml::Value::String(sock.display().to_string()));
    let cfg = dir.join("appliance.toml");
    std::fs::write(&cfg, toml::to_string(&table).unwrap()).unwrap();

    let check = Command::new(BIN).arg("check").arg("-c").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "twinwall check failed:\n{}", String::from_utf8_lossy(&check.stderr));

    let st = Command::new("ip").args(["netns", "add", &netns]).status().unwrap();
    assert!(st.success(), "ip netns add {} failed", netns);
    // `ip netns exec` execs the binary, so the child's PID is twinwall's.
    let child = Command::new("ip")
        .args(["netns", "exec", &netns, BIN, "run", "-c"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let child = lab.child.insert(child);

    let t0 = Instant::now();
    while !sock.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("twinwall exited early: {st}");
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no control socket after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }

    let reply = ask(&sock, "show interface");
    assert!(reply.starts_with("ok\n"), "show interface: {reply:?}");
    let reply = ask(&sock, "no such request");
    assert!(reply.starts_with("error\n"), "bad request: {reply:?}");
    let links = Command::new("ip").args(["-n", &netns, "-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.lines().count() > 1, "no TAP in the namespace:\n{links}");

    // SAFETY: kill(2) on the PID of our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let st = wait_exit(child, Duration::from_secs(10)).expect("twinwall still running 10 s after SIGTERM");
    assert!(st.success(), "twinwall exited with {st}");
    assert!(!sock.exists(), "control socket left behind");
}
