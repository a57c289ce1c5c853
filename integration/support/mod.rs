//! Shared pieces of the replay tests: the lab configuration, the rendering of
//! a replay for `expected.txt`, a line diff, and where the public corpora are.

#![allow(dead_code)]

pub mod cases;
pub mod diff;
pub mod frames;

use std::path::{Path, PathBuf};

use twinwall::config::{self, Config};
use twinwall::replay::{summarize, ReplayReport};

/// The two-port routed lab every case uses (written as each case's
/// appliance.toml by `cases::write_all`).
pub const LAB_TOML: &str = r#"[appliance]
hostname = "fw"
mode = "routed"

[[interface]]
name = "inside"
tap = "tw-inside"
mac = "02:00:5e:10:00:01"
address = "192.168.10.1/24"
security_level = 100

[[interface]]
name = "outside"
tap = "tw-outside"
mac = "02:00:5e:10:00:02"
address = "203.0.113.1/24"
security_level = 0

[[route]]
destination = "0.0.0.0/0"
gateway = "203.0.113.254"
interface = "outside"

[[nat]]
type = "dynamic-pat"
inside = "inside"
outside = "outside"
"#;

/// The transparent cases' bridge: inside (100) and outside (0) bridged in
/// one group with management address 192.168.10.5, both sides on
/// 192.168.10.0/24 (the "router" 203.0.113.254 of the routed cases stands
/// for any station on the outside segment here); MAC aging 2 s so that a
/// case sees it; LLDP bridged, BPDUs dropped; the outside ACL permits ping
/// to the host only.
pub const BRIDGE_TOML: &str = r#"[appliance]
hostname = "fw-bridge"
mode = "transparent"

[[interface]]
name = "inside"
tap = "tw-inside"
mac = "02:00:5e:10:00:01"
security_level = 100

[[interface]]
name = "outside"
tap = "tw-outside"
mac = "02:00:5e:10:00:02"
security_level = 0

[[bridge_group]]
name = "bg1"
interfaces = ["inside", "outside"]
address = "192.168.10.5/24"
ethertypes = ["0x88cc"]
bpdu = "drop"

[[acl]]
interface = "outside"
rules = [ { action = "permit", proto = "icmp", dst = "192.168.10.10/32", icmp_type = 8 } ]

[timeouts]
mac = "2s"
"#;

/// [`LAB_TOML`], parsed.
pub fn lab_config() -> Config {
    config::parse(LAB_TOML, "LAB_TOML").unwrap_or_else(|e| panic!("LAB_TOML does not parse: {e:?}"))
}

/// The corpus tests' configuration: three interfaces whose ACLs permit
/// everything (so the security levels never decide), PAT from inside and dmz
/// to outside, a default route out of outside and 10/8 through the dmz. The
/// captures come from unrelated networks; fed on `inside` with
/// `--retarget-mac`, every flow a capture's clients open is routed,
/// translated and tracked, and what is left over is dropped for a named
/// reason.
pub const PERMISSIVE_TOML: &str = r#"[appliance]
hostname = "fw-corpus"
mode = "routed"

[[interface]]
name = "inside"
tap = "tw-inside"
mac = "02:00:5e:10:00:01"
address = "192.168.10.1/24"
security_level = 100

[[interface]]
name = "outside"
tap = "tw-outside"
mac = "02:00:5e:10:00:02"
address = "203.0.113.1/24"
security_level = 0

[[interface]]
name = "dmz"
tap = "tw-dmz"
mac = "02:00:5e:10:00:03"
address = "172.16.20.1/24"
security_level = 50

[[route]]
destination = "0.0.0.0/0"
gateway = "203.0.113.254"
interface = "outside"

[[route]]
destination = "10.0.0.0/8"
gateway = "172.16.20.254"
interface = "dmz"

[[acl]]
interface = "inside"
rules = [ { action = "permit", proto = "ip", src = "any", dst = "any" } ]

[[acl]]
interface = "outside"
rules = [ { action = "permit", proto = "ip", src = "any", dst = "any" } ]

[[acl]]
interface = "dmz"
rules = [ { action = "permit", proto = "ip", src = "any", dst = "any" } ]

[[nat]]
type = "dynamic-pat"
inside = "inside"
outside = "outside"

[[nat]]
type = "dynamic-pat"
inside = "dmz"
outside = "outside"
"#;

/// [`PERMISSIVE_TOML`], parsed and checked.
pub fn permissive_config() -> Config {
    config::parse(PERMISSIVE_TOML, "permissive.toml").unwrap_or_else(|errs| {
        let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        panic!("PERMISSIVE_TOML does not parse:\n{}", list.join("\n"))
    })
}

/// A case's configuration from its appliance.toml.
pub fn case_config(dir: &Path) -> Result<Config, String> {
    let path = dir.join("appliance.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("couldn't read {}: {e}", path.display()))?;
    config::parse(&text, &path.display().to_string()).map_err(|errs| {
        let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        format!("{} does not parse:\n{}", path.display(), list.join("\n"))
    })
}

/// Milliseconds since `start`, with microseconds only when there are any.
fn ms(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{}", us / 1000)
    } else {
        format!("{}.{:03}", us / 1000, us % 1000)
    }
}

/// The expected.txt rendering: one line per frame sent,
/// `<ms since first input> <iface> <summary>` in emission order; a blank
/// line; then `drop <name> <n>` and `event <name> <n>` for every non-zero
/// counter, sorted by name.
pub fn render(r: &ReplayReport) -> String {
    let mut out = String::new();
    for f in &r.frames {
        let t = f.time.as_micros().saturating_sub(r.start.as_micros());
        out.push_str(&format!("{} {} {}\n", ms(t), r.ifaces[f.port.idx()], summarize(&f.data)));
    }
    out.push('\n');
    for (name, n) in r.counters.drop_map() {
        out.push_str(&format!("drop {name} {n}\n"));
    }
    if let Ok(serde_json::Value::Object(events)) = serde_json::to_value(&r.counters.events) {
        let mut events: Vec<(String, u64)> =
            events.into_iter().filter_map(|(k, v)| v.as_u64().filter(|&n| n > 0).map(|n| (k, n))).collect();
        events.sort();
        for (name, n) in events {
            out.push_str(&format!("event {name} {n}\n"));
        }
    }
    out
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under cargo's per-target test tmpdir.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn env_is(var: &str, val: &str) -> bool {
    std::env::var(var).map(|v| v == val).unwrap_or(false)
}
