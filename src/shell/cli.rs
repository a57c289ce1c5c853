//! Command-line interface: argument parsing (clap derive) and the commands
//! that are not the event loop: `check`, the control-socket client (`show`,
//! `reload`, `failover`) and `replay`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use twinwall::appliance::ForceRole;
use twinwall::control::Request;
use twinwall::show::ShowWhat;
use twinwall::time::Duration;
use twinwall::Config;

/// Where `show`, `reload` and `failover` look when neither `--socket` nor `-c` is given.
pub const DEFAULT_SOCKET: &str = "/run/twinwall/twinwall.sock";
/// How long a client waits for the appliance's reply.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// twinwall: a userspace stateful firewall appliance.
#[derive(Debug, Parser)]
#[command(name = "twinwall", version)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the appliance: one TAP device per configured interface.
    Run {
        /// Configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Log level (default: RUST_LOG, else info).
        #[arg(long, value_name = "LEVEL", value_parser = PossibleValuesParser::new(LOG_LEVELS))]
        log_level: Option<String>,
    },
    /// Check a configuration file (and its failover key file) and summarise it.
    Check {
        /// Configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running appliance for a table or counters (`show failover` for the pair's state).
    Show {
        /// What to show.
        #[arg(value_parser = PossibleValuesParser::new(ShowWhat::NAMES))]
        what: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Make the running appliance re-read its configuration file.
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Make the running unit take the active role, or hand it to its peer.
    Failover {
        /// The role this unit should take.
        #[arg(value_enum)]
        role: RoleArg,
        #[command(flatten)]
        target: Target,
    },
    /// Run the appliance offline over pcap files and write what it sends.
    Replay(ReplayArgs),
    /// Only copy frames between two TAPs (no appliance): the benchmark ceiling.
    Wire {
        /// TAP device to open (or create); give exactly two.
        #[arg(long = "tap", value_name = "NAME", required = true)]
        taps: Vec<String>,
        /// MTU to set on both TAPs.
        #[arg(long, value_name = "BYTES", default_value_t = 1500)]
        mtu: u16,
        /// Log level (default: RUST_LOG, else info).
        #[arg(long, value_name = "LEVEL", value_parser = PossibleValuesParser::new(LOG_LEVELS))]
        log_level: Option<String>,
    },
}

/// `twinwall failover active|standby`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Take over now: this unit becomes active, its peer standby.
    Active,
    /// Step down now: this unit becomes standby, its peer active.
    Standby,
}

impl From<RoleArg> for ForceRole {
    fn from(r: RoleArg) -> ForceRole {
        match r {
            RoleArg::Active => ForceRole::Active,
            RoleArg::Standby => ForceRole::Standby,
        }
    }
}

/// Which running appliance to talk to.
#[derive(Debug, Args)]
pub struct Target {
    /// Control socket path (default: the config's control_socket with -c, else /run/twinwall/twinwall.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Take the control socket path from this configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Frames entering interface IFACE, read from a pcap or pcapng file; repeat per interface.
    #[arg(long = "in", value_name = "IFACE=PCAP", required = true, value_parser = parse_input)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Directory for the output captures and report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed for the appliance's randomness (NAT ports, IKE SPIs, ...).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Rewrite the input frames' destination MACs to the appliance's interface MACs.
    #[arg(long)]
    pub retarget_mac: bool,
    /// Keep running timers this long after the last input frame (e.g. 500ms, 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Log level (default: RUST_LOG, else info).
    #[arg(long, value_name = "LEVEL", value_parser = PossibleValuesParser::new(LOG_LEVELS))]
    pub log_level: Option<String>,
}

/// `IFACE=PCAP`.
fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((iface, path)) if !iface.is_empty() && !path.is_empty() => Ok((iface.into(), PathBuf::from(path))),
        _ => Err(format!("`{s}` is not IFACE=PCAP, e.g. inside=captures/in.pcap")),
    }
}

/// `250ms`, `30s`, `2m`, `1h`, `1500us`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("`{s}` is not a duration; write e.g. 500ms, 30s, 2m or 1h");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let us_per = match unit {
        "us" => 1,
        "ms" => 1_000,
        "" | "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(us_per).map(Duration::from_micros).ok_or_else(bad)
}

fn init_logging(level: Option<&str>) {
    let mut builder = match level {
        Some(l) => {
            let mut b = env_logger::Builder::new();
            b.parse_filters(l);
            b
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")),
    };
    builder.init();
}

/// Run one parsed command line.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Run { config, log_level } => {
            init_logging(log_level.as_deref());
            match super::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Check { config } => check(&config),
        Cmd::Show { what, json, target } => {
            let what = ShowWhat::parse(&what).expect("clap checked the name");
            client(&target, &Request::Show { what, json })
        }
        Cmd::Reload { target } => client(&target, &Request::Reload),
        Cmd::Failover { role, target } => client(&target, &Request::Failover(role.into())),
        Cmd::Replay(args) => {
            init_logging(args.log_level.as_deref());
            replay(&args)
        }
        Cmd::Wire { taps, mtu, log_level } => {
            init_logging(log_level.as_deref());
            match super::wire_mode::run(&taps, mtu) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line summing up a valid configuration.
fn summary(file: &Path, cfg: &Config) -> String {
    let mut s = if cfg.mode == twinwall::config::Mode::Transparent {
        format!(
            "{}: ok, transparent, {}, {}, {}",
            file.display(),
            plural(cfg.interfaces.len(), "interface", "interfaces"),
            plural(cfg.bridge_groups.len(), "bridge group", "bridge groups"),
            plural(cfg.acls.iter().flatten().count(), "ACL", "ACLs"),
        )
    } else {
        format!(
            "{}: ok, {}, {}, {}, {}",
            file.display(),
            plural(cfg.interfaces.len(), "interface", "interfaces"),
            plural(cfg.routes.len(), "route", "routes"),
            plural(cfg.acls.iter().flatten().count(), "ACL", "ACLs"),
            plural(cfg.nat.len(), "NAT rule", "NAT rules"),
        )
    };
    if let Some(fo) = &cfg.failover {
        let unit = match fo.unit {
            twinwall::config::Unit::Primary => "primary",
            twinwall::config::Unit::Secondary => "secondary",
        };
        s += &format!(", failover {unit} on {} ({} <-> {})", fo.interface, fo.local, fo.peer);
    }
    s
}

/// Load a config for a subcommand, printing its errors to stderr.
fn load_or_report(path: &Path) -> Option<Config> {
    match super::load_config(path) {
        Ok(cfg) => Some(cfg),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// `twinwall check`: the config as `run` would load it, key file included.
fn check(path: &Path) -> ExitCode {
    match super::load_config_and_key(path) {
        Ok((cfg, warning)) => {
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            println!("{}", summary(path, &cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn socket_path(target: &Target) -> Option<PathBuf> {
    if let Some(s) = &target.socket {
        return Some(s.clone());
    }
    match &target.config {
        Some(c) => load_or_report(c).map(|cfg| PathBuf::from(cfg.control_socket)),
        None => Some(PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// Send one request and print the reply: body to stdout on `ok`, to stderr
/// (and exit 1) on `error`.
fn client(target: &Target, req: &Request) -> ExitCode {
    let Some(path) = socket_path(target) else { return ExitCode::FAILURE };
    match ask(&path, req) {
        Ok(Ok(body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok(Err(body)) => {
            eprint!("{body}");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// The exchange itself: `Ok(Ok(body))` for `ok`, `Ok(Err(body))` for `error`,
/// `Err(message)` when there was no proper answer.
fn ask(path: &Path, req: &Request) -> Result<Result<String, String>, String> {
    let unreachable =
        |e: std::io::Error| format!("cannot reach twinwall at {}: {e}; is `twinwall run` running?", path.display());
    let mut s = UnixStream::connect(path).map_err(unreachable)?;
    let lost = |e: std::io::Error| format!("twinwall at {}: {e}", path.display());
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(lost)?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(lost)?;
    s.write_all(format!("{}\n", req.to_line()).as_bytes()).map_err(lost)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(lost)?;
    let reply = String::from_utf8_lossy(&reply);
    match reply.split_once('\n') {
        Some(("ok", body)) => Ok(Ok(body.to_owned())),
        Some(("error", body)) => Ok(Err(body.to_owned())),
        _ => Err(format!("twinwall at {}: malformed reply {:?}", path.display(), reply)),
    }
}

fn replay(args: &ReplayArgs) -> ExitCode {
    let Some(cfg) = load_or_report(&args.config) else { return ExitCode::FAILURE };
    match run_replay(cfg, args) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// The one call into the core's replay driver; returns the report to print.
fn run_replay(cfg: Config, args: &ReplayArgs) -> Result<String, String> {
    use twinwall::replay::{ReplayInput, ReplayOptions};
    let inputs: Vec<ReplayInput> =
        args.inputs.iter().map(|(iface, path)| ReplayInput { iface: iface.clone(), path: path.clone() }).collect();
    let opts = ReplayOptions { seed: args.seed, retarget_mac: args.retarget_mac, linger: args.linger };
    twinwall::replay::run(cfg, &inputs, &args.out, &opts).map(|report| format!("{report}\n")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7us").unwrap(), Duration::from_micros(7));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn replay_args() {
        let cli = Cli::try_parse_from([
            "twinwall",
            "replay",
            "-c",
            "a.toml",
            "--in",
            "inside=in.pcap",
            "--in",
            "outside=o=x.pcap",
            "--out",
            "out",
            "--seed",
            "7",
            "--retarget-mac",
            "--linger",
            "2m",
        ])
        .unwrap();
        let Cmd::Replay(a) = cli.cmd else { panic!("not replay") };
        assert_eq!(a.inputs[0], ("inside".into(), PathBuf::from("in.pcap")));
        assert_eq!(a.inputs[1], ("outside".into(), PathBuf::from("o=x.pcap")));
        assert_eq!((a.seed, a.retarget_mac, a.linger), (7, true, Duration::from_secs(120)));
        assert!(Cli::try_parse_from(["twinwall", "replay", "-c", "a", "--out", "o"]).is_err());
        assert!(Cli::try_parse_from(["twinwall", "replay", "-c", "a", "--in", "=x", "--out", "o"]).is_err());
    }

    #[test]
    fn show_args() {
        let cli = Cli::try_parse_from(["twinwall", "show", "conn", "--json", "--socket", "/tmp/s"]).unwrap();
        let Cmd::Show { what, json, target } = cli.cmd else { panic!("not show") };
        assert_eq!((what.as_str(), json), ("conn", true));
        assert_eq!(socket_path(&target), Some(PathBuf::from("/tmp/s")));
        assert!(Cli::try_parse_from(["twinwall", "show", "nothing"]).is_err());
        let cli = Cli::try_parse_from(["twinwall", "failover", "active", "--socket", "/tmp/s"]).unwrap();
        let Cmd::Failover { role, target } = cli.cmd else { panic!("not failover") };
        assert_eq!(ForceRole::from(role), ForceRole::Active);
        assert_eq!(socket_path(&target), Some(PathBuf::from("/tmp/s")));
        let cli = Cli::try_parse_from(["twinwall", "failover", "standby"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Failover { role: RoleArg::Standby, .. }));
        assert!(Cli::try_parse_from(["twinwall", "failover", "primary"]).is_err());
        assert!(Cli::try_parse_from(["twinwall", "failover"]).is_err());
        let cli = Cli::try_parse_from(["twinwall", "reload"]).unwrap();
        let Cmd::Reload { target } = cli.cmd else { panic!("not reload") };
        assert_eq!(socket_path(&target), Some(PathBuf::from(DEFAULT_SOCKET)));
    }

    #[test]
    fn client_reports_nobody_listening() {
        let path = std::env::temp_dir().join(format!("twinwall-test-{}.sock", std::process::id()));
        let msg = ask(&path, &Request::Reload).unwrap_err();
        assert!(msg.contains("cannot reach twinwall at") && msg.contains("twinwall run"), "{msg}");
    }

    #[test]
    fn summary_pluralises() {
        let cfg = Config {
            hostname: "fw".into(),
            mode: twinwall::config::Mode::Routed,
            control_socket: "/tmp/x".into(),
            interfaces: vec![],
            routes: vec![],
            acls: vec![None],
            nat: vec![],
            bridge_groups: vec![],
            timeouts: Default::default(),
            limits: Default::default(),
            failover: None,
        };
        assert_eq!(summary(Path::new("a.toml"), &cfg), "a.toml: ok, 0 interfaces, 0 routes, 0 ACLs, 0 NAT rules");
    }
}
