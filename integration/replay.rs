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
//! * `corpus::<file stem>`: one test per public capture in
//!   `../shared/corpora` (or `$TWINWALL_CORPORA`), replayed on `inside`
//!   through a permissive config (`support::PERMISSIVE_TOML`) with
//!   retargeted MACs: it feeds as many frames as SOURCES.md lists, replays
//!   identically twice, and every frame received is accounted for by the
//!   counters (`assert_accounted`). `corpus_list_matches_sources` keeps the
//!   list in step with SOURCES.md; `corpus_two_inputs` feeds two captures at
//!   once. Without the folder these fail and say why, unless
//!   `TWINWALL_SKIP_CORPORA=1` (then they pass, loudly).

mod support;

use std::path::{Path, PathBuf};

use support::{case_config, cases, diff::diff, env_is, lab_config, permissive_config, render, repo_root, scratch};
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
            Some(case.config),
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

/// `None` (after a loud warning) when the corpus tests are skipped on purpose.
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
         or set TWINWALL_SKIP_CORPORA=1 to skip these tests on purpose.",
        dir.display(),
        if std::env::var_os("TWINWALL_CORPORA").is_some() { "is set" } else { "is not set" },
    );
    if env_is("TWINWALL_SKIP_CORPORA", "1") {
        eprintln!("\n!!!!!!!! WARNING: CORPUS TEST SKIPPED (TWINWALL_SKIP_CORPORA=1) !!!!!!!!\n{how}\n");
        return None;
    }
    panic!("\n{how}\n");
}

/// Replays `inputs` through the permissive config twice, in two output
/// folders, and asserts the runs are identical: frames sent (time, port,
/// bytes), counters, and every file written.
fn replay_twice(name: &str, inputs: &[ReplayInput]) -> ReplayReport {
    let opts = ReplayOptions { seed: 7, retarget_mac: true, linger: CORPUS_LINGER };
    let (da, db) = (scratch(&format!("corpus/{name}/a")), scratch(&format!("corpus/{name}/b")));
    let a = replay::run(permissive_config(), inputs, &da, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let b = replay::run(permissive_config(), inputs, &db, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(a.fed, b.fed, "{name}: two runs fed different frame counts");
    assert!(a.frames == b.frames, "{name}: two runs sent different frames");
    assert_eq!(a.events, b.events, "{name}: two runs raised different events");
    assert_eq!(a.counters_json().unwrap(), b.counters_json().unwrap(), "{name}: two runs counted differently");
    let mut files: Vec<String> =
        std::fs::read_dir(&da).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert!(files.contains(&"counters.json".to_string()), "{name}: no counters.json in {}", da.display());
    for f in &files {
        assert_eq!(std::fs::read(da.join(f)).ok(), std::fs::read(db.join(f)).ok(), "{name}: {f} differs between runs");
    }
    a
}

/// Long enough for every frame parked on ARP to be sent or dropped
/// (`arp::MAX_TRIES` x `arp::RETRY` = 3 s), so none is left uncounted.
const CORPUS_LINGER: Duration = Duration::from_secs(5);

/// ARP replies among `frames`: the one kind of received frame the core
/// consumes without a counter (a reply addressed to us teaches the cache,
/// then its buffer goes back to the pool).
fn arp_replies(frames: &[Vec<u8>]) -> u64 {
    frames.iter().filter(|f| f.len() >= 22 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]).count() as u64
}

/// Every received frame is accounted for. Per frame handed to
/// `handle_frame`, the core does exactly one of:
/// * drop it for a named reason: `counters.drops[reason]` and the receiving
///   (or, for `arp-queue-full`/`arp-unresolved`, the egress) interface's
///   `drops` go up by one;
/// * forward it, now or once ARP resolves its next hop: `frames_forwarded`;
/// * answer it in its own buffer: `arp_replies_sent` (an ARP request for one
///   of our addresses) or `icmp_echo_replies` (a ping to us);
/// * consume an ARP reply addressed to us, with no counter of its own.
///
/// ICMP errors and TCP resets we originate are counted apart
/// (`icmp_errors_sent`, `tcp_resets_sent`) and always come with a drop of
/// the frame that caused them, so they are not in the sum. After the linger
/// no frame is still parked on ARP. So:
///
/// `rx_frames = drops + frames_forwarded + arp_replies_sent + icmp_echo_replies + k`,
/// `0 <= k <= ARP replies fed`.
///
/// Also: the per-interface `drops` add up to the per-reason drops, `rx_frames`
/// to the frames fed, and `tx_frames` to the frames the report holds.
fn assert_accounted(name: &str, r: &ReplayReport, fed_frames: &[Vec<u8>]) {
    let c = &r.counters;
    let rx: u64 = c.ifaces.iter().map(|i| i.rx_frames).sum();
    let tx: u64 = c.ifaces.iter().map(|i| i.tx_frames).sum();
    let if_drops: u64 = c.ifaces.iter().map(|i| i.drops).sum();
    let drops: u64 = c.drops.iter().sum();
    let e = &c.events;
    assert_eq!(rx, r.fed_total() as u64, "{name}: rx_frames vs frames fed");
    assert_eq!(tx, r.frames.len() as u64, "{name}: tx_frames vs frames sent");
    assert_eq!(if_drops, drops, "{name}: per-interface drops vs per-reason drops {:?}", c.drop_map());
    let accounted = drops + e.frames_forwarded + e.arp_replies_sent + e.icmp_echo_replies;
    let consumed = rx.checked_sub(accounted).unwrap_or_else(|| {
        panic!(
            "{name}: {accounted} outcomes counted for {rx} frames received \
             (drops {drops} {:?}, forwarded {}, arp replies {}, echo replies {})",
            c.drop_map(),
            e.frames_forwarded,
            e.arp_replies_sent,
            e.icmp_echo_replies
        )
    });
    let arp_in = arp_replies(fed_frames);
    assert!(
        consumed <= arp_in,
        "{name}: {consumed} of {rx} frames received have no outcome counted (drops {drops} {:?}, \
         forwarded {}, arp replies {}, echo replies {}); only the {arp_in} ARP replies fed may be consumed silently",
        c.drop_map(),
        e.frames_forwarded,
        e.arp_replies_sent,
        e.icmp_echo_replies
    );
}

/// The permissive config's next hops, and the MACs they answer ARP from.
const GATEWAYS: &[(&str, [u8; 6], &str, &str)] = &[
    ("outside", [2, 0, 0, 0, 2, 0xfe], "203.0.113.254", "203.0.113.1"),
    ("dmz", [2, 0, 0, 0, 3, 0xfe], "172.16.20.254", "172.16.20.1"),
];

/// One input per next hop holding its ARP reply to us at `t0`, written under
/// `corpus/<name>/gw`. Listed before the capture, they are fed first (ties go
/// to the earlier input), so the capture's flows are forwarded instead of
/// all waiting on ARP and dropping as `arp-unresolved`.
fn gateway_inputs(name: &str, t0: Instant) -> (Vec<ReplayInput>, Vec<Vec<u8>>) {
    let cfg = permissive_config();
    let dir = scratch(&format!("corpus/{name}/gw"));
    let mut inputs = Vec::new();
    let mut frames = Vec::new();
    for (iface, mac, ip, ours) in GATEWAYS {
        let our_mac = cfg.iface(cfg.interface_by_name(iface).unwrap()).mac.0;
        let f = support::frames::arp_reply(*mac, ip.parse().unwrap(), our_mac, ours.parse().unwrap());
        let path = dir.join(format!("{iface}.pcap"));
        std::fs::write(&path, pcap_out::encode([(t0, &f[..])])).unwrap();
        inputs.push(ReplayInput { iface: (*iface).into(), path });
        frames.push(f);
    }
    (inputs, frames)
}

/// Replays one capture of the corpus (see [`corpus_tests`]), after the
/// gateways' ARP replies.
fn corpus_file(file: &str) {
    let Some(dir) = corpora_or_fail() else { return };
    let table = sources_table(&std::fs::read_to_string(dir.join("SOURCES.md")).unwrap());
    let Some((_, link, pkts)) = table.iter().find(|(f, _, _)| f == file) else {
        panic!("{file} is not listed in {}/SOURCES.md", dir.display());
    };
    assert!(SUPPORTED_LINKS.contains(&link.as_str()), "{file}: link type {link} is not one the reader handles");
    let path = dir.join(file);
    assert!(path.is_file(), "{} is listed in SOURCES.md but missing", path.display());
    let cfg = permissive_config();
    let port = cfg.interface_by_name(CORPUS_PORT).unwrap();
    let mac = cfg.iface(port).mac;
    let cap = pcap_in::read_file(&path, mac).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(cap.packets.len(), *pkts, "{file}: packets read vs SOURCES.md");
    let t0 = cap.packets.first().map_or(Instant::ZERO, |p| p.time);
    let (mut inputs, mut frames) = gateway_inputs(file, t0);
    frames.extend(cap.packets.into_iter().map(|p| p.frame));
    inputs.push(ReplayInput { iface: CORPUS_PORT.into(), path });

    let report = replay_twice(file, &inputs);
    assert_eq!(report.fed[GATEWAYS.len()], *pkts, "{file}: frames fed vs SOURCES.md");
    assert_eq!(report.fed_total(), *pkts + GATEWAYS.len(), "{file}: frames fed in all");
    assert_accounted(file, &report, &frames);
    let e = &report.counters.events;
    eprintln!(
        "corpus {file} ({link}, {pkts} packets): {} frames out, {} forwarded, {} conns, drops {:?}",
        report.frames.len(),
        e.frames_forwarded,
        e.conns_created,
        report.counters.drop_map()
    );
}

/// The interface every capture is fed on (the captures hold both directions
/// of their conversations; the clients' side opens flows through PAT).
const CORPUS_PORT: &str = "inside";

/// One `#[test]` per capture, named after its file stem, in `mod corpus`
/// (`cargo test --test replay corpus::` runs them all).
macro_rules! corpus_tests {
    ($($stem:ident => $file:literal,)*) => {
        mod corpus {
            /// Every file of the list, for the completeness check.
            pub const FILES: &[&str] = &[$($file),*];
            $(
                #[test]
                fn $stem() {
                    super::corpus_file($file);
                }
            )*
        }
    };
}

corpus_tests! {
    arp_request_reply_ping => "arp_request_reply_ping.pcap",
    arp_who_has => "arp_who_has.pcap",
    dhcp_discover_offer_request_nak_ack => "dhcp_discover_offer_request_nak_ack.pcap",
    esp_in_udp_4500 => "esp_in_udp_4500.pcap",
    esp_over_ipv6 => "esp_over_ipv6.pcap",
    esp_tunnel_3des_known_keys => "esp_tunnel_3des_known_keys.pcap",
    ftp_active_mode_port => "ftp_active_mode_port.pcap",
    gtp_volte_sip_rtp_over_gtpu => "gtp_volte_sip_rtp_over_gtpu.pcapng",
    gtpv1_gn_control_and_user_fragmented => "gtpv1_gn_control_and_user_fragmented.pcap",
    gtpv1_misc_ctx_resp_gtpu_v4_v6 => "gtpv1_misc_ctx_resp_gtpu_v4_v6.pcapng",
    gtpv1c_create_pdp_ctx_and_echo => "gtpv1c_create_pdp_ctx_and_echo.pcapng",
    gtpv1u_extension_header => "gtpv1u_extension_header.pcap",
    gtpv1u_user_plane => "gtpv1u_user_plane.pcap",
    gtpv2c_mixed_msgs => "gtpv2c_mixed_msgs.pcapng",
    gtpv2c_s11_s5_attach_detach => "gtpv2c_s11_s5_attach_detach.pcapng",
    http_get_full_tcp_session => "http_get_full_tcp_session.pcap",
    ikev1_main_mode => "ikev1_main_mode.pcap",
    ikev1_main_mode_natt_4500 => "ikev1_main_mode_natt_4500.pcap",
    ikev2_four_exchanges_dltnull => "ikev2_four_exchanges_dltnull.pcap",
    ikev2_natt_with_esp => "ikev2_natt_with_esp.pcapng",
    ipv4_fragments => "ipv4_fragments.pcap",
    sip_invite_calls_cloudshark => "sip_invite_calls_cloudshark.pcap",
    sip_over_tcp => "sip_over_tcp.pcap",
    sip_register_invite_cancel_rtp => "sip_register_invite_cancel_rtp.pcap",
    tcp_handshake_nanosec_sll => "tcp_handshake_nanosec_sll.pcap",
    tcp_handshake_reordered => "tcp_handshake_reordered.pcap",
    tcp_syn_synack => "tcp_syn_synack.pcap",
    tcp_syn_then_rst => "tcp_syn_then_rst.pcap",
    vrrp_v2_v3_adverts => "vrrp_v2_v3_adverts.pcap",
}

/// The list above and SOURCES.md name the same captures, so a capture added
/// to the corpus cannot go untested.
#[test]
fn corpus_list_matches_sources() {
    let Some(dir) = corpora_or_fail() else { return };
    let table = sources_table(&std::fs::read_to_string(dir.join("SOURCES.md")).unwrap());
    let mut listed: Vec<&str> = table.iter().map(|(f, _, _)| f.as_str()).collect();
    let mut ours: Vec<&str> = corpus::FILES.to_vec();
    listed.sort();
    ours.sort();
    assert_eq!(ours, listed, "corpus_tests! in integration/replay.rs vs {}/SOURCES.md", dir.display());
    for f in corpus::FILES {
        let stem = f.rsplit_once('.').map_or(*f, |(s, _)| s);
        assert!(stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{f}");
    }
}

/// Two inputs at once, from two unrelated captures (one per interface):
/// merge order and all.
#[test]
fn corpus_two_inputs() {
    let Some(dir) = corpora_or_fail() else { return };
    let inputs = [
        ReplayInput { iface: "inside".into(), path: dir.join("http_get_full_tcp_session.pcap") },
        ReplayInput { iface: "outside".into(), path: dir.join("arp_request_reply_ping.pcap") },
    ];
    for i in &inputs {
        assert!(i.path.is_file(), "{} missing", i.path.display());
    }
    let cfg = permissive_config();
    let mut frames = Vec::new();
    for i in &inputs {
        let mac = cfg.iface(cfg.interface_by_name(&i.iface).unwrap()).mac;
        frames.extend(pcap_in::read_file(&i.path, mac).unwrap().packets.into_iter().map(|p| p.frame));
    }
    let r = replay_twice("two_inputs", &inputs);
    assert_eq!(r.fed, vec![14, 6]);
    assert_accounted("two_inputs", &r, &frames);
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
