//! Replay tests.
//!
//! * `cases`: every `integration/cases/<case>/` holds `appliance.toml`, one
//!   or more inputs `in_<iface>.pcap` and `expected.txt`. The inputs are
//!   replayed (merged by time; equal times go to the input whose file name
//!   sorts first) and the rendering (`support::render`) is compared with
//!   `expected.txt`. `TWINWALL_BLESS=1 cargo test --test replay cases`
//!   rewrites the expected files instead; review the diff before committing.
//! * `case_inputs_match_generator`: the committed inputs are what
//!   `support/cases.rs` generates. Regenerate with
//!   `cargo test --test replay -- --ignored regenerate_case_inputs`.
//! * `corpus`: every public capture in `../shared/corpora` (or
//!   `$TWINWALL_CORPORA`) reads, feeds as many frames as SOURCES.md lists,
//!   and replays identically twice. `TWINWALL_SKIP_CORPORA=1` skips it, loudly.

mod support;

use std::path::{Path, PathBuf};

use support::{case_config, cases, diff::diff, env_is, lab_config, render, repo_root, scratch};
use twinwall::replay::{self, pcap_in, pcap_out, ReplayInput, ReplayOptions, ReplayReport};
use twinwall::time::{Duration, Instant};

/// Timers keep running this long after a case's last input (ARP retries
/// show; the 10 s+ connection timeouts do not).
const CASE_LINGER: Duration = Duration::from_secs(3);
const SEED: u64 = 1;

fn cases_dir() -> PathBuf {
    repo_root().join("integration").join("cases")
}

/// `in_<iface>.pcap` files of a case, sorted by file name.
fn case_inputs(dir: &Path) -> Vec<ReplayInput> {
    let mut inputs: Vec<ReplayInput> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            let iface = name.strip_prefix("in_")?.strip_suffix(".pcap")?.to_owned();
            Some(ReplayInput { iface, path })
        })
        .collect();
    inputs.sort_by(|a, b| a.path.cmp(&b.path));
    inputs
}

/// Replay one case and compare (or bless). `Err` carries the message.
fn check_case(dir: &Path) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let cfg = case_config(dir)?;
    let inputs = case_inputs(dir);
    if inputs.is_empty() {
        return Err(format!("{}: no in_<iface>.pcap inputs", dir.display()));
    }
    let out = scratch(&format!("cases/{name}"));
    let opts = ReplayOptions { seed: SEED, retarget_mac: false, linger: CASE_LINGER };
    let report = replay::run(cfg, &inputs, &out, &opts).map_err(|e| format!("replay failed: {e}"))?;
    let actual = render(&report);
    let expected_path = dir.join("expected.txt");
    if env_is("TWINWALL_BLESS", "1") {
        std::fs::write(&expected_path, &actual).unwrap();
        eprintln!("blessed {}", expected_path.display());
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).map_err(|e| {
        format!(
            "couldn't read {}: {e}\n(create it with TWINWALL_BLESS=1 cargo test --test replay cases)",
            expected_path.display()
        )
    })?;
    if expected != actual {
        return Err(format!(
            "output differs from {} (- expected, + actual; outputs in {}):\n{}\
             If the new output is right: TWINWALL_BLESS=1 cargo test --test replay cases",
            expected_path.display(),
            out.display(),
            diff(&expected, &actual)
        ));
    }
    Ok(())
}

#[test]
fn cases() {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(cases_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under {}", cases_dir().display());
    let mut failed = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match check_case(dir) {
            Ok(()) => eprintln!("case {name}: ok"),
            Err(msg) => {
                eprintln!("case {name}: FAILED\n{msg}\n");
                failed.push(name);
            }
        }
    }
    assert!(failed.is_empty(), "{} of {} replay cases failed: {}", failed.len(), dirs.len(), failed.join(", "));
}

/// Every generated case has its directory and inputs, byte for byte.
#[test]
fn case_inputs_match_generator() {
    for case in cases::all() {
        let dir = cases_dir().join(case.name);
        assert_eq!(
            std::fs::read_to_string(dir.join("appliance.toml")).ok().as_deref(),
            Some(support::LAB_TOML),
            "{}",
            dir.display()
        );
        let mut ifaces: Vec<&str> = case.steps.iter().map(|s| s.iface).collect();
        ifaces.sort();
        ifaces.dedup();
        let on_disk: Vec<String> = case_inputs(&dir).into_iter().map(|i| i.iface).collect();
        assert_eq!(on_disk, ifaces, "{}: inputs on disk", dir.display());
        for iface in ifaces {
            let want = pcap_out::encode(
                case.steps
                    .iter()
                    .filter(|s| s.iface == iface)
                    .map(|s| (Instant(cases::T0_US + s.ms * 1000), &s.frame[..])),
            );
            let path = dir.join(format!("in_{iface}.pcap"));
            assert!(
                std::fs::read(&path).ok() == Some(want),
                "{} is not what support/cases.rs generates; run \
                 cargo test --test replay -- --ignored regenerate_case_inputs",
                path.display()
            );
        }
    }
}

/// Rewrites the committed case inputs from `support/cases.rs`.
#[test]
#[ignore = "writes into integration/cases; run on purpose"]
fn regenerate_case_inputs() {
    cases::write_all(&cases_dir());
}

// ---- the public corpora ------------------------------------------------------

/// Where the corpora are: `$TWINWALL_CORPORA`, else `../shared/corpora`
/// beside the checkout.
fn corpora_dir() -> PathBuf {
    match std::env::var_os("TWINWALL_CORPORA") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("..").join("shared").join("corpora"),
    }
}

/// `(file, link, pkts)` rows of SOURCES.md's table.
fn sources_table(text: &str) -> Vec<(String, String, usize)> {
    let mut rows = text.lines().filter(|l| l.trim_start().starts_with('|')).map(|l| {
        l.trim().trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_string()).collect::<Vec<_>>()
    });
    let header = rows.next().expect("SOURCES.md has no table");
    let col =
        |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("SOURCES.md: no `{name}` column"));
    let (file, link, pkts) = (col("file"), col("link"), col("pkts"));
    rows.filter(|r| r.len() == header.len() && !r[0].starts_with("---"))
        .map(|r| {
            let n = r[pkts].parse().unwrap_or_else(|_| panic!("SOURCES.md: bad pkts `{}` for {}", r[pkts], r[file]));
            (r[file].clone(), r[link].clone(), n)
        })
        .collect()
}

/// capinfos link-type names the reader handles.
const SUPPORTED_LINKS: &[&str] = &["ether", "linux-sll", "linux-sll2", "null", "loop", "raw", "ipv4", "ipv6"];

/// `None` (after a loud warning) when the corpus test is skipped on purpose.
fn corpora_or_fail() -> Option<PathBuf> {
    let dir = corpora_dir();
    if dir.join("SOURCES.md").is_file() {
        return Some(dir);
    }
    let how = format!(
        "The public pcap corpus was not found: looked for {}/SOURCES.md \
         ($TWINWALL_CORPORA {}, default ../shared/corpora beside the checkout).\n\
         Point TWINWALL_CORPORA at the folder holding SOURCES.md and the captures, e.g.\n    \
         TWINWALL_CORPORA=/work/shared/corpora cargo test --test replay corpus\n\
         or set TWINWALL_SKIP_CORPORA=1 to skip this test on purpose.",
        dir.display(),
        if std::env::var_os("TWINWALL_CORPORA").is_some() { "is set" } else { "is not set" },
    );
    if env_is("TWINWALL_SKIP_CORPORA", "1") {
        eprintln!("\n!!!!!!!! WARNING: CORPUS TEST SKIPPED (TWINWALL_SKIP_CORPORA=1) !!!!!!!!\n{how}\n");
        return None;
    }
    panic!("\n{how}\n");
}

fn replay_twice(name: &str, inputs: &[ReplayInput]) -> ReplayReport {
    let opts = ReplayOptions { seed: 7, retarget_mac: true, linger: Duration::from_secs(5) };
    let (da, db) = (scratch(&format!("corpus/{name}/a")), scratch(&format!("corpus/{name}/b")));
    let a = replay::run(lab_config(), inputs, &da, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let b = replay::run(lab_config(), inputs, &db, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(a.frames, b.frames, "{name}: two runs sent different frames");
    assert_eq!(a.counters_json().unwrap(), b.counters_json().unwrap(), "{name}: two runs counted differently");
    for f in ["inside.pcap", "outside.pcap", "counters.json"] {
        assert_eq!(std::fs::read(da.join(f)).ok(), std::fs::read(db.join(f)).ok(), "{name}: {f} differs between runs");
    }
    a
}

#[test]
fn corpus() {
    let Some(dir) = corpora_or_fail() else { return };
    let table = sources_table(&std::fs::read_to_string(dir.join("SOURCES.md")).unwrap());
    assert!(!table.is_empty(), "{}/SOURCES.md lists no captures", dir.display());
    let mac = lab_config().interfaces[1].mac;
    let mut checked = 0;
    for (file, link, pkts) in &table {
        if !SUPPORTED_LINKS.contains(&link.as_str()) {
            eprintln!("corpus: {file}: link type {link} not supported by the reader, skipped");
            continue;
        }
        let path = dir.join(file);
        let cap = pcap_in::read_file(&path, mac).unwrap_or_else(|e| panic!("corpus: {e}"));
        assert_eq!(cap.packets.len(), *pkts, "{file}: packets read vs SOURCES.md");
        let inputs = [ReplayInput { iface: "outside".into(), path }];
        let report = replay_twice(file, &inputs);
        assert_eq!(report.fed_total(), *pkts, "{file}: frames fed vs SOURCES.md");
        eprintln!("corpus: {file} ({link}, {pkts} packets): ok, {} frames out", report.frames.len());
        checked += 1;
    }
    assert!(checked > 0, "no corpus file had a supported link type");

    // Two inputs at once, from two unrelated captures: merge order and all.
    let inputs = [
        ReplayInput { iface: "inside".into(), path: dir.join("http_get_full_tcp_session.pcap") },
        ReplayInput { iface: "outside".into(), path: dir.join("arp_request_reply_ping.pcap") },
    ];
    if inputs.iter().all(|i| i.path.is_file()) {
        let r = replay_twice("mixed", &inputs);
        assert_eq!(r.fed, vec![14, 6]);
    }
}

#[test]
fn sources_table_parses() {
    let t = "x\n| file | link | pkts |\n|---|---|---|\n| `a.pcap` | ether | 6 |\n| `b.pcapng` | null | 21 |\n";
    assert_eq!(sources_table(t), vec![("a.pcap".into(), "ether".into(), 6), ("b.pcapng".into(), "null".into(), 21)]);
}

#[test]
fn diff_is_readable() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
}

/// Prints every case's inputs as summaries, for reviewing a case:
/// `cargo test --test replay -- --ignored --nocapture dump_case_inputs`.
/// With `TWINWALL_DUMP=<capture>` it prints that capture instead.
#[test]
#[ignore = "prints, checks nothing"]
fn dump_case_inputs() {
    let mac = lab_config().interfaces[1].mac;
    if let Some(path) = std::env::var_os("TWINWALL_DUMP") {
        let cap = pcap_in::read_file(Path::new(&path), mac).unwrap_or_else(|e| panic!("{e}"));
        let t0 = cap.packets.first().map(|p| p.time.as_micros()).unwrap_or(0);
        for p in &cap.packets {
            println!(
                "{} {:.3} {}",
                p.number,
                (p.time.as_micros() as f64 - t0 as f64) / 1000.0,
                replay::summarize(&p.frame)
            );
        }
        return;
    }
    for case in cases::all() {
        println!("== {}", case.name);
        for s in &case.steps {
            println!("{} {} {}", s.ms, s.iface, replay::summarize(&s.frame));
        }
    }
}
