//! TOML text to a validated [`Config`](super::Config).
//!
//! Two steps. serde reads the text into a DTO that mirrors the file, with every
//! value wrapped in [`Spanned`] so it keeps its byte range. A syntax error, an
//! unknown key or a wrong type stops serde, so only that first error can be
//! reported. Then [`Checker`] turns the DTO into a `Config` and collects every
//! semantic error instead of stopping, so one edit fixes them all.
//!
//! The DTO makes every key optional and the checker reports missing ones: that
//! way a missing key is one error among many rather than a serde stop.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Deserialize;
use toml::Spanned;

use super::types::{proto, Ipv4Net, Mac, PortRange};
use super::{
    AclAction, AclRule, BridgeGroup, Config, FailoverCfg, IfIndex, InterfaceCfg, KeySource, Limits, Mode, NatRule,
    RouteCfg, Timeouts, Unit,
};
use crate::ha::crypto::KeyMaterial;
use crate::time::Duration;

/// `[failover]` defaults (issue 3).
const DEFAULT_FAILOVER_PORT: u16 = 7340;
const DEFAULT_HELLO_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 73, 40);
const DEFAULT_HELLO_PORT: u16 = 7341;
const DEFAULT_POLL_MS: i64 = 50;
const DEFAULT_HOLD_MS: i64 = 250;
/// A peer is declared dead after this many missed hellos at the least: one
/// late or lost hello must not cause a failover.
const MIN_HOLD_POLLS: i64 = 3;

/// One problem in a config file, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.msg)
    }
}

/// Parse and validate `text`, read from `file` (used only in messages).
///
/// On failure the errors come sorted by position. A structural error (TOML
/// syntax, unknown key, wrong type) comes alone; semantic errors come all at
/// once.
pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    let mut ck = Checker { file, text, errors: Vec::new() };
    let dto: FileDto = match toml::from_str(text) {
        Ok(dto) => dto,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            ck.error(at, structural_message(e.message(), key_before(text, at)));
            return Err(ck.errors);
        }
    };
    let cfg = ck.check(&dto);
    if ck.errors.is_empty() {
        Ok(cfg)
    } else {
        ck.errors.sort_by_key(|e| (e.line, e.col));
        ck.errors.dedup();
        Err(ck.errors)
    }
}

/// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1h30m"`. Zero is a valid
/// duration here; callers that need more say so in their own message.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a duration; write e.g. \"500ms\", \"30s\", \"2m\", \"1h30m\" or an integer number of seconds"
        )
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_us: u64 = match &rest[..unit_len] {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            // A bare number inside a string is more likely a typo than a
            // choice of seconds, and the integer form already means seconds.
            "" => return Err(format!("`{s}` has no unit; write \"{s}s\" or the integer {s}")),
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit_us)
            .and_then(|us| total.checked_add(us))
            .ok_or_else(|| format!("`{s}` is too long a duration"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_micros(total))
}

/// A hash of everything the two units of a failover pair must agree on. It
/// goes into every hello, so a pair whose files have drifted apart says so
/// at once instead of failing over into a different policy.
///
/// Left out, because they differ between the units or are checked elsewhere:
/// `hostname`, `control_socket`, and in `[failover]` the `unit`, `local`,
/// `peer` and `key` (a wrong key already fails authentication).
///
/// The hash is SHA-256 over [`canonical_text`], a text written field by field
/// in a fixed order, so it depends neither on `Debug` output nor on how the
/// TOML was laid out (comments, order of keys, defaults written or not);
/// its first 8 bytes are read big-endian. ACL rule line numbers are left out
/// too: they only label hit counters.
pub fn failover_config_hash(cfg: &Config) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical_text(cfg).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// One `key=value` line per field. Every struct is destructured without
/// `..`, so a field added to the config does not compile until someone
/// decides here whether both units must agree on it. Bump the version line
/// whenever the format changes: a mixed pair then sees a hash mismatch
/// rather than a false match.
fn canonical_text(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::from("twinwall-config-hash/1\n");
    // Writing to a String cannot fail.
    let mut kv = |key: &str, value: &dyn fmt::Display| {
        let _ = writeln!(out, "{key}={value}");
    };
    // Free-form text is length-prefixed so no value can fake a line.
    let text = |s: &str| format!("{}:{s}", s.len());
    let opt = |v: Option<&dyn fmt::Display>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let us = |d: Duration| d.as_micros();
    let range = |r: Option<PortRange>| r.map_or_else(|| "-".to_owned(), |r| format!("{}-{}", r.lo, r.hi));

    let Config {
        hostname: _,
        mode,
        control_socket: _,
        interfaces,
        routes,
        acls,
        nat,
        bridge_groups,
        timeouts,
        limits,
        failover,
    } = cfg;
    kv(
        "mode",
        &match mode {
            Mode::Routed => "routed",
            Mode::Transparent => "transparent",
        },
    );
    // Settings that only act in transparent mode are hashed only there, so a
    // routed pair's hash stays what it was before transparent mode existed.
    let transparent = *mode == Mode::Transparent;

    kv("interfaces", &interfaces.len());
    for (i, itf) in interfaces.iter().enumerate() {
        let InterfaceCfg { name, tap, mac, address, security_level, mtu, standby_address, monitor } = itf;
        kv("interface", &i);
        kv(" name", &text(name));
        kv(" tap", &text(tap));
        kv(" mac", mac);
        kv(" address", &opt(address.as_ref().map(|a| a as &dyn fmt::Display)));
        kv(" security_level", security_level);
        kv(" mtu", mtu);
        kv(" standby_address", &opt(standby_address.as_ref().map(|a| a as &dyn fmt::Display)));
        kv(" monitor", monitor);
    }

    kv("routes", &routes.len());
    for RouteCfg { destination, gateway, interface } in routes {
        kv("route", &format!("{destination} via {gateway} on {}", interface.0));
    }

    kv("acls", &acls.len());
    for (i, acl) in acls.iter().enumerate() {
        let Some(rules) = acl else {
            kv("acl", &format!("{i} none"));
            continue;
        };
        kv("acl", &format!("{i} rules {}", rules.len()));
        for AclRule { action, proto, src, dst, sport, dport, icmp_type, line: _ } in rules {
            let action = match action {
                AclAction::Permit => "permit",
                AclAction::Deny => "deny",
                AclAction::Reject => "reject",
            };
            let proto = opt(proto.as_ref().map(|p| p as &dyn fmt::Display));
            let icmp_type = opt(icmp_type.as_ref().map(|t| t as &dyn fmt::Display));
            kv(
                " rule",
                &format!(
                    "{action} proto {proto} src {src} dst {dst} sport {} dport {} icmp_type {icmp_type}",
                    range(*sport),
                    range(*dport)
                ),
            );
        }
    }

    kv("nat", &nat.len());
    for rule in nat {
        let line = match rule {
            NatRule::DynamicPat { inside, outside, address } => format!(
                "dynamic-pat {} {} address {}",
                inside.0,
                outside.0,
                opt(address.as_ref().map(|a| a as &dyn fmt::Display))
            ),
            NatRule::Static { inside, outside, real, mapped } => {
                format!("static {} {} real {real} mapped {mapped}", inside.0, outside.0)
            }
            NatRule::PortForward { inside, outside, proto, mapped, mapped_port, real, real_port } => format!(
                "port-forward {} {} proto {proto} mapped {}:{mapped_port} real {real}:{real_port}",
                inside.0,
                outside.0,
                opt(mapped.as_ref().map(|a| a as &dyn fmt::Display))
            ),
        };
        kv("rule", &line);
    }

    // Written only when there are any, so a routed config's text is unchanged.
    for g in bridge_groups {
        let BridgeGroup { name, members, address, standby_address, static_macs, ethertypes, bpdu_forward } = g;
        kv("bridge_group", &text(name));
        kv(" members", &members.iter().map(|m| m.0.to_string()).collect::<Vec<_>>().join(","));
        kv(" address", &opt(address.as_ref().map(|a| a as &dyn fmt::Display)));
        kv(" standby_address", &opt(standby_address.as_ref().map(|a| a as &dyn fmt::Display)));
        for (mac, i) in static_macs {
            kv(" static", &format!("{mac} on {}", i.0));
        }
        kv(" ethertypes", &ethertypes.iter().map(|e| format!("{e:#06x}")).collect::<Vec<_>>().join(","));
        kv(" bpdu_forward", bpdu_forward);
    }

    let Timeouts {
        tcp_syn,
        tcp_established,
        tcp_fin,
        tcp_time_wait,
        tcp_closed,
        udp,
        udp_unreplied,
        icmp,
        arp,
        fragment,
        mac,
    } = timeouts;
    kv("timeout tcp_syn", &us(*tcp_syn));
    kv("timeout tcp_established", &us(*tcp_established));
    kv("timeout tcp_fin", &us(*tcp_fin));
    kv("timeout tcp_time_wait", &us(*tcp_time_wait));
    kv("timeout tcp_closed", &us(*tcp_closed));
    kv("timeout udp", &us(*udp));
    kv("timeout udp_unreplied", &us(*udp_unreplied));
    kv("timeout icmp", &us(*icmp));
    kv("timeout arp", &us(*arp));
    kv("timeout fragment", &us(*fragment));
    if transparent {
        kv("timeout mac", &us(*mac));
    }

    let Limits { max_conns, arp_queue, max_fragments, icmp_rate, max_macs } = limits;
    kv("limit max_conns", max_conns);
    kv("limit arp_queue", arp_queue);
    kv("limit max_fragments", max_fragments);
    kv("limit icmp_rate", icmp_rate);
    if transparent {
        kv("limit max_macs", max_macs);
    }

    match failover {
        None => kv("failover", &"none"),
        Some(FailoverCfg {
            unit: _,
            interface,
            local: _,
            peer: _,
            port,
            hello_group,
            hello_port,
            key: _,
            poll,
            hold,
            interface_poll,
            interface_hold,
            preempt,
        }) => {
            kv("failover", &"on");
            kv(" interface", &text(interface));
            kv(" port", port);
            kv(" hello_group", hello_group);
            kv(" hello_port", hello_port);
            kv(" poll", &us(*poll));
            kv(" hold", &us(*hold));
            kv(" interface_poll", &us(*interface_poll));
            kv(" interface_hold", &us(*interface_hold));
            kv(" preempt", &preempt.map_or_else(|| "-".to_owned(), |d| us(d).to_string()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The DTO: the file's shape, nothing checked but TOML types.

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDto {
    appliance: Option<S<ApplianceDto>>,
    #[serde(default)]
    interface: Vec<S<InterfaceDto>>,
    #[serde(default)]
    route: Vec<S<RouteDto>>,
    #[serde(default)]
    acl: Vec<S<AclDto>>,
    #[serde(default)]
    nat: Vec<S<NatDto>>,
    #[serde(default)]
    bridge_group: Vec<S<BridgeGroupDto>>,
    timeouts: Option<TimeoutsDto>,
    limits: Option<LimitsDto>,
    failover: Option<S<FailoverDto>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplianceDto {
    hostname: Option<S<String>>,
    mode: Option<S<String>>,
    control_socket: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceDto {
    name: Option<S<String>>,
    tap: Option<S<String>>,
    mac: Option<S<String>>,
    address: Option<S<String>>,
    security_level: Option<S<i64>>,
    mtu: Option<S<i64>>,
    standby_address: Option<S<String>>,
    monitor: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDto {
    destination: Option<S<String>>,
    gateway: Option<S<String>>,
    interface: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AclDto {
    interface: Option<S<String>>,
    rules: Option<Vec<S<RuleDto>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDto {
    action: Option<S<String>>,
    proto: Option<S<IntOrStr>>,
    src: Option<S<String>>,
    dst: Option<S<String>>,
    sport: Option<S<IntOrStr>>,
    dport: Option<S<IntOrStr>>,
    icmp_type: Option<S<i64>>,
}

/// One flat struct for all NAT types rather than a serde tagged enum: serde
/// buffers tagged enums, which loses the spans, and a flat struct lets the
/// checker say which key does not belong to which type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatDto {
    #[serde(rename = "type")]
    kind: Option<S<String>>,
    inside: Option<S<String>>,
    outside: Option<S<String>>,
    address: Option<S<String>>,
    real: Option<S<String>>,
    mapped: Option<S<String>>,
    proto: Option<S<String>>,
    mapped_port: Option<S<i64>>,
    real_port: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeGroupDto {
    name: Option<S<String>>,
    interfaces: Option<Vec<S<String>>>,
    address: Option<S<String>>,
    standby_address: Option<S<String>>,
    #[serde(rename = "static")]
    static_macs: Option<Vec<S<StaticMacDto>>>,
    ethertypes: Option<Vec<S<IntOrStr>>>,
    bpdu: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticMacDto {
    mac: Option<S<String>>,
    interface: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsDto {
    tcp_syn: Option<S<IntOrStr>>,
    tcp_established: Option<S<IntOrStr>>,
    tcp_fin: Option<S<IntOrStr>>,
    tcp_time_wait: Option<S<IntOrStr>>,
    tcp_closed: Option<S<IntOrStr>>,
    udp: Option<S<IntOrStr>>,
    udp_unreplied: Option<S<IntOrStr>>,
    icmp: Option<S<IntOrStr>>,
    arp: Option<S<IntOrStr>>,
    fragment: Option<S<IntOrStr>>,
    mac: Option<S<IntOrStr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsDto {
    max_conns: Option<S<i64>>,
    arp_queue: Option<S<i64>>,
    max_fragments: Option<S<i64>>,
    icmp_rate: Option<S<i64>>,
    max_macs: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverDto {
    unit: Option<S<String>>,
    interface: Option<S<String>>,
    local: Option<S<String>>,
    peer: Option<S<String>>,
    port: Option<S<i64>>,
    hello_group: Option<S<String>>,
    hello_port: Option<S<i64>>,
    key: Option<S<String>>,
    key_file: Option<S<String>>,
    poll_ms: Option<S<i64>>,
    hold_ms: Option<S<i64>>,
    interface_poll_ms: Option<S<i64>>,
    interface_hold_ms: Option<S<i64>>,
    preempt: Option<S<bool>>,
    preempt_delay_ms: Option<S<i64>>,
}

/// Ports, protocols and durations take either form. Hand-written rather than
/// `#[serde(untagged)]` so a wrong type says "expected an integer or a string"
/// instead of "did not match any variant".
enum IntOrStr {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrStr, E> {
                i64::try_from(v).map(IntOrStr::Int).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E>(self, v: &str) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Structural errors: serde's words, retold in the file's terms.

/// Rewrites serde's `unknown field` into the section's name and a suggestion,
/// and names Rust types as TOML ones.
fn structural_message(msg: &str, key: Option<&str>) -> String {
    let msg = msg.trim().replace('\n', "; ");
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        // serde lists the expected fields between backticks after the name.
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let section = SECTIONS
            .iter()
            .find(|(_, fields)| {
                let fields = fields();
                fields.len() == expected.len() && fields.iter().all(|f| expected.contains(f))
            })
            .map_or("in this table", |(label, _)| label);
        let mut out = format!("unknown key \"{name}\" {section}");
        match suggest(name, &expected) {
            Some(s) => out += &format!("; did you mean \"{s}\"?"),
            None => out += &format!("; the keys here are {}", quoted_list(&expected)),
        }
        return out;
    }
    let mut out = msg.replace("expected i64", "expected an integer");
    if let (Some(rest), Some(key)) = (out.strip_prefix("invalid type: "), key) {
        out = match (key, rest.rsplit_once(", expected ")) {
            // The failover key is a secret: say what was wanted, not what was found.
            ("key", Some((_, wanted))) => format!("wrong type for \"key\": expected {wanted}"),
            _ => format!("wrong type for \"{key}\": found {rest}"),
        };
    }
    if out.contains("expected a sequence") {
        out += " (write [[name]] with double brackets for each entry of a list of tables)";
    }
    out
}

/// The key whose value starts at byte `at`, read back from the text: serde's
/// type errors point at the value but do not name its key.
fn key_before(text: &str, at: usize) -> Option<&str> {
    let line = &text[..at.min(text.len())];
    let line = &line[line.rfind('\n').map_or(0, |i| i + 1)..];
    let lhs = line.trim_end().strip_suffix('=')?.trim_end();
    let key = lhs.rsplit([' ', '\t', '{', ',']).next()?;
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    bare.then_some(key)
}

type FieldsFn = fn() -> &'static [&'static str];

/// Labels for each DTO, found by their field lists (which is all serde's
/// `unknown field` message tells us about where it was).
const SECTIONS: &[(&str, FieldsFn)] = &[
    ("at the top level", fields_of::<FileDto>),
    ("in [appliance]", fields_of::<ApplianceDto>),
    ("in [[interface]]", fields_of::<InterfaceDto>),
    ("in [[route]]", fields_of::<RouteDto>),
    ("in [[acl]]", fields_of::<AclDto>),
    ("in an [[acl]] rule", fields_of::<RuleDto>),
    ("in [[nat]]", fields_of::<NatDto>),
    ("in [[bridge_group]]", fields_of::<BridgeGroupDto>),
    ("in a [[bridge_group]] static entry", fields_of::<StaticMacDto>),
    ("in [timeouts]", fields_of::<TimeoutsDto>),
    ("in [limits]", fields_of::<LimitsDto>),
    ("in [failover]", fields_of::<FailoverDto>),
];

/// The field names serde derived for `T`, read by handing it a deserializer
/// that records what `deserialize_struct` is asked for; this keeps the lists
/// from drifting from the structs.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

// ---------------------------------------------------------------------------
// The checker: DTO to Config, collecting every error.

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

/// What later sections need to know about the interfaces, including those
/// that had errors, so a route naming a broken interface is not also told the
/// interface does not exist.
struct Ifaces {
    names: Vec<Option<String>>,
    nets: Vec<Option<Ipv4Net>>,
    taps: Vec<Option<String>>,
    cfgs: Vec<Option<InterfaceCfg>>,
    /// Each parsed standby_address, its byte offset and its interface, for
    /// the checks that need the routes and NAT rules too.
    standby: Vec<(Ipv4Addr, usize, IfIndex)>,
}

impl Ifaces {
    fn name(&self, i: IfIndex) -> &str {
        self.names[i.idx()].as_deref().unwrap_or("?")
    }
}

impl Checker<'_> {
    fn error(&mut self, at: usize, msg: impl Into<String>) {
        let (line, col) = line_col(self.text, at);
        self.errors.push(ConfigError { file: self.file.to_owned(), line, col, msg: msg.into() });
    }

    fn error_at<T>(&mut self, v: &S<T>, msg: impl Into<String>) {
        self.error(v.span().start, msg)
    }

    fn line_of(&self, at: usize) -> usize {
        line_col(self.text, at).0
    }

    /// Whether `key` is new: if so records it as first seen at `first_at`,
    /// else reports `dup(line of its first use)` at `at`.
    fn first_use<K: std::hash::Hash + Eq>(
        &mut self,
        seen: &mut HashMap<K, usize>,
        key: K,
        at: usize,
        first_at: usize,
        dup: impl FnOnce(usize) -> String,
    ) -> bool {
        if let Some(&first) = seen.get(&key) {
            let msg = dup(self.line_of(first));
            self.error(at, msg);
            return false;
        }
        seen.insert(key, first_at);
        true
    }

    /// Reports a missing key at the start of its table.
    fn need<'v, T>(&mut self, v: &'v Option<S<T>>, key: &str, section: &str, at: usize) -> Option<&'v S<T>> {
        if v.is_none() {
            self.error(at, format!("missing key \"{key}\" in {section}"));
        }
        v.as_ref()
    }

    fn parse_str<T>(&mut self, v: &S<String>) -> Option<T>
    where
        T: std::str::FromStr<Err = String>,
    {
        v.get_ref().parse().map_err(|m| self.error_at(v, m)).ok()
    }

    fn ipv4(&mut self, v: &S<String>) -> Option<Ipv4Addr> {
        let s = v.get_ref();
        let ip = s.parse::<Ipv4Addr>();
        if ip.is_err() {
            self.error_at(v, format!("`{s}` is not an IPv4 address; write e.g. 203.0.113.254"));
        }
        ip.ok()
    }

    /// A prefix used for matching (route destination, ACL src/dst): host bits
    /// set are almost always a typo, so say which network was meant.
    fn prefix(&mut self, v: &S<String>) -> Option<Ipv4Net> {
        let n: Ipv4Net = self.parse_str(v)?;
        if n.addr != n.network() {
            let msg = format!("`{}` has host bits set; write {}/{} for the network", v.get_ref(), n.network(), n.len);
            self.error_at(v, msg);
            return None;
        }
        Some(n)
    }

    fn int_in(&mut self, v: &S<i64>, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.error_at(v, format!("{what} {n} is out of range; use {lo} to {hi}"));
            return None;
        }
        Some(n)
    }

    fn resolve(&mut self, ifs: &Ifaces, v: &S<String>) -> Option<IfIndex> {
        let name = v.get_ref();
        if let Some(i) = ifs.names.iter().position(|n| n.as_deref() == Some(name.as_str())) {
            return u8::try_from(i).ok().map(IfIndex);
        }
        let known: Vec<&str> = ifs.names.iter().flatten().map(String::as_str).collect();
        let mut msg = format!("unknown interface \"{name}\"");
        if let Some(s) = suggest(name, &known) {
            msg += &format!("; did you mean \"{s}\"?");
        }
        if known.is_empty() {
            msg += " (no [[interface]] is defined)";
        } else {
            msg += &format!(" (interfaces: {})", quoted_list(&known));
        }
        self.error_at(v, msg);
        None
    }

    fn check(&mut self, dto: &FileDto) -> Config {
        let (hostname, mode, control_socket) = self.appliance(dto.appliance.as_ref());
        let ifs = self.interfaces(&dto.interface, dto.failover.is_some(), mode);
        let routes = self.routes(&ifs, &dto.route, mode);
        let acls = self.acls(&ifs, &dto.acl);
        let nat = self.nat(&ifs, &dto.nat, mode);
        let bridge_groups = self.bridge_groups(&ifs, &dto.bridge_group, mode, dto.failover.is_some());
        let timeouts = self.timeouts(dto.timeouts.as_ref());
        let limits = self.limits(dto.limits.as_ref());
        self.standby_conflicts(&ifs, dto);
        let failover = dto.failover.as_ref().and_then(|f| self.failover(f, &ifs));
        Config {
            hostname,
            mode,
            control_socket,
            interfaces: ifs.cfgs.into_iter().flatten().collect(),
            routes,
            acls,
            nat,
            bridge_groups,
            timeouts,
            limits,
            failover,
        }
    }

    /// Transparent mode's bridge groups; without any, every interface is in
    /// one group with no management address.
    fn bridge_groups(
        &mut self,
        ifs: &Ifaces,
        dtos: &[S<BridgeGroupDto>],
        mode: Mode,
        failover: bool,
    ) -> Vec<BridgeGroup> {
        if mode != Mode::Transparent {
            for sd in dtos {
                self.error(
                    sd.span().start,
                    "[[bridge_group]] needs mode = \"transparent\" in [appliance]; remove it or change the mode",
                );
            }
            return Vec::new();
        }
        if dtos.is_empty() {
            let members = (0..ifs.names.len().min(255)).map(|i| IfIndex(i as u8)).collect();
            return vec![BridgeGroup {
                name: "bridge".into(),
                members,
                address: None,
                standby_address: None,
                static_macs: Vec::new(),
                ethertypes: Vec::new(),
                bpdu_forward: true,
            }];
        }
        let mut out = Vec::new();
        let mut group_of: HashMap<IfIndex, (String, usize)> = HashMap::new();
        let mut seen_name: HashMap<String, usize> = HashMap::new();
        let mut nets: Vec<(Ipv4Net, String)> = Vec::new();
        let mut seen_static: HashMap<Mac, usize> = HashMap::new();
        for sd in dtos {
            let at = sd.span().start;
            let d = sd.get_ref();
            let mut ok = true;
            let name = self.need(&d.name, "name", "[[bridge_group]]", at).and_then(|n| {
                let s = n.get_ref();
                let at = n.span().start;
                self.first_use(&mut seen_name, s.clone(), at, at, |first| {
                    format!("bridge group \"{s}\" is already defined at line {first}; names must be unique")
                })
                .then(|| s.clone())
            });
            let label = name.clone().unwrap_or_else(|| "?".into());
            let mut members = Vec::new();
            match &d.interfaces {
                None => {
                    self.error(
                        at,
                        "missing key \"interfaces\" in [[bridge_group]]; write interfaces = [\"inside\", \"outside\"]",
                    );
                    ok = false;
                }
                Some(list) => {
                    for v in list {
                        let Some(i) = self.resolve(ifs, v) else {
                            ok = false;
                            continue;
                        };
                        if let Some((other, _)) = group_of.get(&i) {
                            let msg = format!("interface \"{}\" is already in bridge group \"{other}\"; an interface belongs to one group", v.get_ref());
                            self.error_at(v, msg);
                            ok = false;
                            continue;
                        }
                        group_of.insert(i, (label.clone(), v.span().start));
                        members.push(i);
                    }
                    if list.len() < 2 {
                        self.error(at, format!("bridge group \"{label}\" needs at least two interfaces to bridge"));
                        ok = false;
                    }
                }
            }
            let address = d.address.as_ref().and_then(|a| {
                let net = self.mgmt_address(a)?;
                if let Some((other, g)) = nets.iter().find(|(o, _)| o.overlaps(&net)) {
                    let msg = format!(
                        "subnet {}/{} overlaps {}/{} of bridge group \"{g}\"; each group needs its own subnet",
                        net.network(),
                        net.len,
                        other.network(),
                        other.len
                    );
                    self.error_at(a, msg);
                    return None;
                }
                nets.push((net, label.clone()));
                Some(net)
            });
            if d.address.is_some() && address.is_none() {
                ok = false;
            }
            let standby_address = match (&d.standby_address, failover, address) {
                (None, true, Some(_)) => {
                    let msg = format!("bridge group \"{label}\" needs a standby_address: with [failover], the standby unit needs its own management address on the group's subnet");
                    self.error(at, msg);
                    ok = false;
                    None
                }
                (None, _, _) => None,
                (Some(v), false, _) => {
                    self.error_at(v, "standby_address needs a [failover] section; remove it or add [failover]");
                    ok = false;
                    None
                }
                (Some(v), true, None) if d.address.is_none() => {
                    self.error_at(
                        v,
                        "standby_address needs an address for the group; add address or remove standby_address",
                    );
                    ok = false;
                    None
                }
                (Some(_), true, None) => None,
                (Some(v), true, Some(net)) => {
                    let ip = self.ipv4(v);
                    match ip {
                        Some(ip) if ip == net.addr => {
                            self.error_at(v, format!("standby_address {ip} is the group's own address; the standby unit needs an address of its own"));
                            ok = false;
                            None
                        }
                        Some(ip) if !is_host_on(net, ip) => {
                            let msg = format!(
                                "standby_address {ip} is not a host on {}/{}, the subnet of bridge group \"{label}\"",
                                net.network(),
                                net.len
                            );
                            self.error_at(v, msg);
                            ok = false;
                            None
                        }
                        Some(ip) => Some(ip),
                        None => {
                            ok = false;
                            None
                        }
                    }
                }
            };
            let mut static_macs = Vec::new();
            for st in d.static_macs.iter().flatten() {
                let e = st.get_ref();
                let mac = self.need(&e.mac, "mac", "a static entry", st.span().start).and_then(|m| {
                    let mac: Mac = self.parse_str(m)?;
                    let at = m.span().start;
                    self.first_use(&mut seen_static, mac, at, at, |first| {
                        format!("MAC {mac} already has a static entry at line {first}")
                    })
                    .then_some(mac)
                });
                let iface = self.need(&e.interface, "interface", "a static entry", st.span().start).and_then(|v| {
                    let i = self.resolve(ifs, v)?;
                    if !members.contains(&i) {
                        let msg = format!("interface \"{}\" is not in bridge group \"{label}\"; a static entry names one of its interfaces", v.get_ref());
                        self.error_at(v, msg);
                        return None;
                    }
                    Some(i)
                });
                match (mac, iface) {
                    (Some(m), Some(i)) => static_macs.push((m, i)),
                    _ => ok = false,
                }
            }
            let mut ethertypes = Vec::new();
            for v in d.ethertypes.iter().flatten() {
                let n = match v.get_ref() {
                    IntOrStr::Int(n) => Some(*n),
                    IntOrStr::Str(t) => t.strip_prefix("0x").and_then(|h| i64::from_str_radix(h, 16).ok()),
                };
                match n {
                    Some(n @ 0x0600..=0xffff) if n != 0x0800 && n != 0x0806 => ethertypes.push(n as u16),
                    Some(0x0800) | Some(0x0806) => {
                        self.error_at(v, "IPv4 (0x0800) and ARP (0x0806) are always handled (IPv4 through the firewall policy); remove it");
                        ok = false;
                    }
                    _ => {
                        self.error_at(
                            v,
                            "an ethertype is written \"0x88cc\" or as an integer from 0x0600 (1536) to 0xffff",
                        );
                        ok = false;
                    }
                }
            }
            let bpdu_forward = match &d.bpdu {
                None => true,
                Some(v) => match v.get_ref().as_str() {
                    "forward" => true,
                    "drop" => false,
                    other => {
                        self.error_at(v, format!("unknown bpdu policy \"{other}\"; use \"forward\" or \"drop\""));
                        ok = false;
                        true
                    }
                },
            };
            if let (Some(name), true) = (name, ok) {
                out.push(BridgeGroup {
                    name,
                    members,
                    address,
                    standby_address,
                    static_macs,
                    ethertypes,
                    bpdu_forward,
                });
            }
        }
        for (i, n) in ifs.names.iter().enumerate() {
            let idx = IfIndex(i as u8);
            if let (Some(n), None) = (n, group_of.get(&idx)) {
                self.error(dtos[0].span().start, format!("interface \"{n}\" is in no [[bridge_group]]; in transparent mode every interface bridges in one"));
            }
        }
        out
    }

    /// A bridge group's management address: a host address with its prefix.
    fn mgmt_address(&mut self, a: &S<String>) -> Option<Ipv4Net> {
        let s = a.get_ref();
        let net: Ipv4Net = self.parse_str(a)?;
        let ip = net.addr;
        if !s.contains('/')
            || net.len == 0
            || !is_host_on(net, ip)
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.is_unspecified()
        {
            self.error_at(
                a,
                format!("address \"{s}\" must be a unicast host address with its prefix length, e.g. 192.168.10.5/24"),
            );
            return None;
        }
        Some(net)
    }

    fn appliance(&mut self, dto: Option<&S<ApplianceDto>>) -> (String, Mode, String) {
        let mut hostname = "twinwall".to_owned();
        let mut mode = Mode::Routed;
        let mut socket = None;
        let Some(dto) = dto.map(S::get_ref) else {
            return (hostname.clone(), mode, format!("/run/twinwall/{hostname}.sock"));
        };
        if let Some(h) = &dto.hostname {
            let ok = (1..=63).contains(&h.get_ref().len())
                && h.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !ok {
                let msg = format!(
                    "hostname \"{}\" is not valid; use 1 to 63 letters, digits, '-', '_' or '.' (it names the control socket)",
                    h.get_ref()
                );
                self.error_at(h, msg);
            }
            hostname = h.get_ref().clone();
        }
        if let Some(m) = &dto.mode {
            match m.get_ref().as_str() {
                "routed" => mode = Mode::Routed,
                "transparent" => mode = Mode::Transparent,
                other => {
                    let msg = format!("unknown mode \"{other}\"; use mode = \"routed\" or mode = \"transparent\"");
                    self.error_at(m, msg);
                }
            }
        }
        if let Some(s) = &dto.control_socket {
            // sun_path is 108 bytes including the terminating NUL.
            let p = s.get_ref();
            if !p.starts_with('/') || p.len() > 107 {
                let msg = format!("control_socket \"{p}\" must be an absolute path of at most 107 bytes");
                self.error_at(s, msg);
            }
            socket = Some(p.clone());
        }
        let socket = socket.unwrap_or_else(|| format!("/run/twinwall/{hostname}.sock"));
        (hostname, mode, socket)
    }

    /// `failover`: whether the file has a [failover] section, which makes
    /// standby_address required rather than refused (routed mode; in
    /// transparent mode interfaces have neither address).
    fn interfaces(&mut self, dtos: &[S<InterfaceDto>], failover: bool, mode: Mode) -> Ifaces {
        let transparent = mode == Mode::Transparent;
        let mut ifs =
            Ifaces { names: Vec::new(), nets: Vec::new(), taps: Vec::new(), cfgs: Vec::new(), standby: Vec::new() };
        if dtos.is_empty() {
            self.error(0, "no [[interface]] is defined; the appliance needs at least one");
        } else if transparent && dtos.len() < 2 {
            self.error(dtos[0].span().start, "transparent mode bridges interfaces: define at least two [[interface]]");
        }
        if dtos.len() > 255 {
            let msg = format!("{} interfaces are defined; at most 255 are supported", dtos.len());
            self.error(dtos[255].span().start, msg);
        }
        // First use of each unique value: its byte offset, for "already used at line N".
        let mut seen_name: HashMap<String, usize> = HashMap::new();
        let mut seen_tap: HashMap<String, usize> = HashMap::new();
        let mut seen_mac: HashMap<Mac, usize> = HashMap::new();
        let mut seen_standby: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (idx, sd) in dtos.iter().enumerate() {
            let at = sd.span().start;
            let d = sd.get_ref();
            let name = d.name.as_ref().map(|n| n.get_ref().clone());
            let section = match &name {
                Some(n) => format!("[[interface]] \"{n}\""),
                None => "[[interface]]".to_owned(),
            };
            let mut ok = true;

            if let Some(n) = self.need(&d.name, "name", &section, at) {
                let s = n.get_ref();
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    let msg = format!("interface name \"{s}\" is not valid; use letters, digits, '-' or '_'");
                    self.error_at(n, msg);
                    ok = false;
                } else {
                    let at = n.span().start;
                    ok &= self.first_use(&mut seen_name, s.clone(), at, at, |first| {
                        format!("interface name \"{s}\" is already used at line {first}; names must be unique")
                    });
                }
            }

            let tap = self.need(&d.tap, "tap", &section, at).and_then(|t| {
                let s = t.get_ref();
                // Linux IFNAMSIZ is 16 including the NUL.
                if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\t', ':']) || s == "." || s == ".." {
                    let msg =
                        format!("tap \"{s}\" is not a valid device name; use 1 to 15 bytes without '/', ':' or spaces");
                    self.error_at(t, msg);
                    return None;
                }
                let at = t.span().start;
                self.first_use(&mut seen_tap, s.clone(), at, at, |first| {
                    format!("tap \"{s}\" is already used at line {first}; each interface needs its own TAP device")
                })
                .then(|| s.clone())
            });

            let mac = self.need(&d.mac, "mac", &section, at).and_then(|m| {
                let mac: Mac = self.parse_str(m)?;
                let at = m.span().start;
                self.first_use(&mut seen_mac, mac, at, at, |first| {
                    format!("MAC {mac} is already used at line {first}; each interface needs its own")
                })
                .then_some(mac)
            });

            // Outer None: an error. Inner None: no address (transparent mode).
            let address: Option<Option<Ipv4Net>> = match (&d.address, transparent) {
                (Some(a), true) => {
                    let msg = "transparent mode: interfaces have no address (the bridge forwards by MAC and keeps every address); remove it";
                    self.error_at(a, msg);
                    None
                }
                (None, true) => Some(None),
                (_, false) => {
                    self.need(&d.address, "address", &section, at).and_then(|a| self.if_address(a, &ifs)).map(Some)
                }
            };

            let level = self
                .need(&d.security_level, "security_level", &section, at)
                .and_then(|v| self.int_in(v, "security_level", 0, 100));

            let mtu = match &d.mtu {
                None => Some(1500),
                Some(v) => self.int_in(v, "mtu", 576, 9000),
            };

            // Outer None: an error. Inner None: no standby address (no failover).
            let standby: Option<Option<Ipv4Addr>> = match (&d.standby_address, failover) {
                (Some(v), _) if transparent => {
                    self.error_at(v, "transparent mode: interfaces have no address, so no standby_address either; remove it");
                    None
                }
                (None, _) if transparent => Some(None),
                (None, false) => Some(None),
                (Some(v), false) => {
                    self.error_at(v, "standby_address needs a [failover] section; remove it or add [failover]");
                    None
                }
                (None, true) => {
                    let msg = format!(
                        "{section} needs a standby_address: with [failover], every interface needs the standby unit's address on its subnet"
                    );
                    self.error(d.name.as_ref().map_or(at, |n| n.span().start), msg);
                    None
                }
                (Some(v), true) => self.ipv4(v).and_then(|ip| {
                    if address.flatten().is_some_and(|a| a.addr == ip) {
                        let msg = format!(
                            "standby_address {ip} is this interface's own address; the standby unit needs an address of its own"
                        );
                        self.error_at(v, msg);
                        return None;
                    }
                    let at = v.span().start;
                    if !self.first_use(&mut seen_standby, ip, at, at, |first| {
                        format!("standby_address {ip} is already used at line {first}; each interface needs its own")
                    }) {
                        return None;
                    }
                    // Checked against the whole config in `standby_conflicts`.
                    ifs.standby.push((ip, v.span().start, IfIndex(idx.min(255) as u8)));
                    Some(Some(ip))
                }),
            };
            let monitor = d.monitor.as_ref().is_none_or(|v| *v.get_ref());

            ifs.names.push(name.clone().filter(|_| ok));
            ifs.nets.push(address.flatten());
            ifs.taps.push(tap.clone());
            ifs.cfgs.push(match (name, tap, mac, address, level, mtu, standby) {
                (Some(name), Some(tap), Some(mac), Some(address), Some(level), Some(mtu), Some(standby_address))
                    if ok =>
                {
                    Some(InterfaceCfg {
                        name,
                        tap,
                        mac,
                        address,
                        security_level: level as u8,
                        mtu: mtu as u16,
                        standby_address,
                        monitor,
                    })
                }
                _ => None,
            });
        }
        ifs
    }

    /// An interface address: a host address with its prefix, on a subnet no
    /// earlier interface has.
    fn if_address(&mut self, a: &S<String>, ifs: &Ifaces) -> Option<Ipv4Net> {
        let s = a.get_ref();
        let net: Ipv4Net = self.parse_str(a)?;
        if s == "any" || !s.contains('/') {
            self.error_at(a, format!("address \"{s}\" needs a prefix length; write e.g. 192.168.10.1/24"));
            return None;
        }
        let ip = net.addr;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() || net.len == 0 {
            self.error_at(a, format!("address \"{s}\" cannot be an interface address; use a unicast host address"));
            return None;
        }
        // /31 and /32 have no network or broadcast address (RFC 3021).
        if net.len <= 30 && (ip == net.network() || ip == net.broadcast()) {
            let which = if ip == net.network() { "network" } else { "broadcast" };
            let msg = format!(
                "address \"{s}\" is the {which} address of {}/{}; an interface needs a host address such as {}/{}",
                net.network(),
                net.len,
                Ipv4Addr::from(u32::from(net.network()) + 1),
                net.len
            );
            self.error_at(a, msg);
            return None;
        }
        for (i, other) in ifs.nets.iter().enumerate() {
            let Some(other) = other else { continue };
            let other_name = ifs.names[i].as_deref().unwrap_or("?");
            let msg = if other.addr == ip {
                format!("address {ip} is already the address of interface \"{other_name}\"")
            } else if other.overlaps(&net) {
                format!(
                    "subnet {}/{} overlaps {}/{} of interface \"{other_name}\"; connected subnets must not overlap",
                    net.network(),
                    net.len,
                    other.network(),
                    other.len
                )
            } else {
                continue;
            };
            self.error_at(a, msg);
            return None;
        }
        Some(net)
    }

    fn routes(&mut self, ifs: &Ifaces, dtos: &[S<RouteDto>], mode: Mode) -> Vec<RouteCfg> {
        let mut out = Vec::new();
        for sd in dtos {
            let at = sd.span().start;
            if mode == Mode::Transparent {
                self.error(at, "transparent mode has no routes (frames are bridged by MAC); remove this [[route]]");
                continue;
            }
            let d = sd.get_ref();
            let dest = self.need(&d.destination, "destination", "[[route]]", at).and_then(|v| self.prefix(v));
            let iface = self.need(&d.interface, "interface", "[[route]]", at).and_then(|v| self.resolve(ifs, v));
            let gw = self.need(&d.gateway, "gateway", "[[route]]", at).and_then(|v| {
                let ip = self.ipv4(v)?;
                if let Some(i) = ifs.nets.iter().position(|n| n.is_some_and(|n| n.addr == ip)) {
                    let msg = format!(
                        "gateway {ip} is the appliance's own address on interface \"{}\"; use the next router's address",
                        ifs.names[i].as_deref().unwrap_or("?")
                    );
                    self.error_at(v, msg);
                    return None;
                }
                let iface = iface?;
                let net = ifs.nets[iface.idx()]?;
                if !is_host_on(net, ip) {
                    let msg = format!(
                        "gateway {ip} is not a host on interface \"{}\" ({}/{}); a next hop must be on the interface's connected subnet",
                        ifs.name(iface),
                        net.network(),
                        net.len
                    );
                    self.error_at(v, msg);
                    return None;
                }
                Some(ip)
            });
            if let (Some(destination), Some(gateway), Some(interface)) = (dest, gw, iface) {
                out.push(RouteCfg { destination, gateway, interface });
            }
        }
        out
    }

    fn acls(&mut self, ifs: &Ifaces, dtos: &[S<AclDto>]) -> Vec<Option<Vec<AclRule>>> {
        let mut out: Vec<Option<Vec<AclRule>>> = vec![None; ifs.names.len()];
        let mut seen: HashMap<IfIndex, usize> = HashMap::new();
        for sd in dtos {
            let at = sd.span().start;
            let d = sd.get_ref();
            let iface = self.need(&d.interface, "interface", "[[acl]]", at).and_then(|v| {
                let i = self.resolve(ifs, v)?;
                self.first_use(&mut seen, i, v.span().start, at, |first| {
                    format!(
                        "interface \"{}\" already has an [[acl]] at line {first}; put all its rules in that one block",
                        ifs.name(i)
                    )
                })
                .then_some(i)
            });
            if d.rules.is_none() {
                self.error(at, "missing key \"rules\" in [[acl]]; write rules = [ { action = \"permit\", ... } ]");
            }
            let rules: Vec<AclRule> = d.rules.iter().flatten().filter_map(|r| self.rule(r)).collect();
            if let Some(i) = iface {
                out[i.idx()] = Some(rules);
            }
        }
        out
    }

    fn rule(&mut self, sr: &S<RuleDto>) -> Option<AclRule> {
        let at = sr.span().start;
        let r = sr.get_ref();
        let mut ok = true;
        let action = self.need(&r.action, "action", "this rule", at).and_then(|v| match v.get_ref().as_str() {
            "permit" => Some(AclAction::Permit),
            "deny" => Some(AclAction::Deny),
            "reject" => Some(AclAction::Reject),
            other => {
                let hint = suggest(other, &["permit", "deny", "reject"])
                    .map_or(String::new(), |s| format!("did you mean \"{s}\"? "));
                let msg = format!("unknown action \"{other}\"; {hint}use \"permit\", \"deny\" or \"reject\"");
                self.error_at(v, msg);
                None
            }
        });
        // Outer None: the proto was wrong. Inner None: any protocol.
        let proto: Option<Option<u8>> = match &r.proto {
            None => Some(None),
            Some(v) => match v.get_ref() {
                IntOrStr::Str(s) => match s.as_str() {
                    "ip" | "any" => Some(None),
                    "tcp" => Some(Some(proto::TCP)),
                    "udp" => Some(Some(proto::UDP)),
                    "icmp" => Some(Some(proto::ICMP)),
                    other => {
                        let msg = format!(
                            "unknown proto \"{other}\"; use \"ip\", \"tcp\", \"udp\", \"icmp\" or a protocol number 0 to 255"
                        );
                        self.error_at(v, msg);
                        None
                    }
                },
                IntOrStr::Int(n) => match u8::try_from(*n) {
                    Ok(n) => Some(Some(n)),
                    Err(_) => {
                        self.error_at(v, format!("proto {n} is out of range; use 0 to 255"));
                        None
                    }
                },
            },
        };
        let src = r.src.as_ref().map_or(Some(Ipv4Net::ANY), |v| self.prefix(v));
        let dst = r.dst.as_ref().map_or(Some(Ipv4Net::ANY), |v| self.prefix(v));

        let proto_text = |p: Option<u8>| match p {
            None => "ip".to_owned(),
            Some(proto::TCP) => "tcp".to_owned(),
            Some(proto::UDP) => "udp".to_owned(),
            Some(proto::ICMP) => "icmp".to_owned(),
            Some(n) => n.to_string(),
        };
        let mut port = |ck: &mut Self, v: &Option<S<IntOrStr>>, key: &str| -> Option<PortRange> {
            let v = v.as_ref()?;
            let range = match v.get_ref() {
                IntOrStr::Int(n) => match u16::try_from(*n) {
                    Ok(p) => PortRange { lo: p, hi: p },
                    Err(_) => {
                        ck.error_at(v, format!("{key} {n} is out of range; use 0 to 65535"));
                        ok = false;
                        return None;
                    }
                },
                IntOrStr::Str(s) => match s.parse::<PortRange>() {
                    Ok(r) => r,
                    Err(m) => {
                        ck.error_at(v, m);
                        ok = false;
                        return None;
                    }
                },
            };
            if let Some(p) = proto {
                if !matches!(p, Some(proto::TCP) | Some(proto::UDP)) {
                    let msg = format!(
                        "{key} needs proto = \"tcp\" or \"udp\", but this rule has proto = \"{}\"; remove {key} or change proto",
                        proto_text(p)
                    );
                    ck.error_at(v, msg);
                    ok = false;
                    return None;
                }
            }
            Some(range)
        };
        let sport = port(self, &r.sport, "sport");
        let dport = port(self, &r.dport, "dport");
        let icmp_type = r.icmp_type.as_ref().and_then(|v| {
            let Some(t) = self.int_in(v, "icmp_type", 0, 255) else {
                ok = false;
                return None;
            };
            if let Some(p) = proto {
                if p != Some(proto::ICMP) {
                    let msg = format!(
                        "icmp_type needs proto = \"icmp\", but this rule has proto = \"{}\"; remove icmp_type or change proto",
                        proto_text(p)
                    );
                    self.error_at(v, msg);
                    ok = false;
                    return None;
                }
            }
            Some(t as u8)
        });
        let line = self.line_of(at) as u32;
        match (action, proto, src, dst) {
            (Some(action), Some(proto), Some(src), Some(dst)) if ok => {
                Some(AclRule { action, proto, src, dst, sport, dport, icmp_type, line })
            }
            _ => None,
        }
    }

    fn nat(&mut self, ifs: &Ifaces, dtos: &[S<NatDto>], mode: Mode) -> Vec<NatRule> {
        if mode == Mode::Transparent {
            for sd in dtos {
                self.error(sd.span().start, "NAT is not available in transparent mode; remove this [[nat]]");
            }
            return Vec::new();
        }
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            DynamicPat,
            Static,
            PortForward,
        }
        let mut out = Vec::new();
        let mut seen_pat: HashMap<(IfIndex, IfIndex), usize> = HashMap::new();
        let mut seen_static: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut seen_fwd: HashMap<(u8, Ipv4Addr, u16), usize> = HashMap::new();
        // Addresses (and their offsets) that port-forwards and PAT claim, to
        // check against static NATs once all of them are known.
        let mut shared: Vec<(Ipv4Addr, usize, &'static str)> = Vec::new();

        for sd in dtos {
            let at = sd.span().start;
            let d = sd.get_ref();
            let Some(kind_v) = self.need(&d.kind, "type", "[[nat]]", at) else { continue };
            let kind = match kind_v.get_ref().as_str() {
                "dynamic-pat" => Kind::DynamicPat,
                "static" => Kind::Static,
                "port-forward" => Kind::PortForward,
                other => {
                    let kinds = ["dynamic-pat", "static", "port-forward"];
                    let hint = suggest(other, &kinds).map_or(String::new(), |s| format!("did you mean \"{s}\"? "));
                    let msg = format!("unknown NAT type \"{other}\"; {hint}use {}", quoted_list(&kinds));
                    self.error_at(kind_v, msg);
                    continue;
                }
            };
            let tname = kind_v.get_ref().as_str();
            let section = format!("[[nat]] type = \"{tname}\"");
            let allowed: &[&str] = match kind {
                Kind::DynamicPat => &["address"],
                Kind::Static => &["real", "mapped"],
                Kind::PortForward => &["proto", "mapped", "mapped_port", "real", "real_port"],
            };
            let present = [
                ("address", d.address.as_ref().map(|v| v.span().start)),
                ("real", d.real.as_ref().map(|v| v.span().start)),
                ("mapped", d.mapped.as_ref().map(|v| v.span().start)),
                ("proto", d.proto.as_ref().map(|v| v.span().start)),
                ("mapped_port", d.mapped_port.as_ref().map(|v| v.span().start)),
                ("real_port", d.real_port.as_ref().map(|v| v.span().start)),
            ];
            let mut ok = true;
            for (key, key_at) in present {
                if let Some(key_at) = key_at {
                    if !allowed.contains(&key) {
                        let msg = format!(
                            "key \"{key}\" does not apply to {section}; remove it (this type takes inside, outside, {})",
                            allowed.join(", ")
                        );
                        self.error(key_at, msg);
                        ok = false;
                    }
                }
            }

            let inside = self.need(&d.inside, "inside", &section, at).and_then(|v| self.resolve(ifs, v));
            let outside = self.need(&d.outside, "outside", &section, at).and_then(|v| {
                let o = self.resolve(ifs, v)?;
                if inside == Some(o) {
                    let msg = format!(
                        "NAT inside and outside are both \"{}\"; they must be different interfaces",
                        ifs.name(o)
                    );
                    self.error_at(v, msg);
                    return None;
                }
                Some(o)
            });
            let outside_net = outside.and_then(|o| ifs.nets[o.idx()]);
            // An address the appliance must answer ARP for on the outside.
            let on_outside = |ck: &mut Self, v: &S<String>, key: &str| -> Option<Ipv4Addr> {
                let ip = ck.ipv4(v)?;
                if let (Some(o), Some(net)) = (outside, outside_net) {
                    if !is_host_on(net, ip) {
                        let msg = format!(
                            "{key} {ip} is not a host on the outside interface \"{}\" ({}/{}); the appliance answers ARP for translated addresses only on the outside subnet",
                            ifs.name(o),
                            net.network(),
                            net.len
                        );
                        ck.error_at(v, msg);
                        return None;
                    }
                }
                Some(ip)
            };

            match kind {
                Kind::DynamicPat => {
                    let address = match &d.address {
                        None => Some(None),
                        Some(v) => on_outside(self, v, "address").map(Some),
                    };
                    if let (Some(Some(ip)), Some(v)) = (address, &d.address) {
                        shared.push((ip, v.span().start, "dynamic-pat address"));
                    }
                    if let (Some(i), Some(o), Some(address)) = (inside, outside, address) {
                        let new = self.first_use(&mut seen_pat, (i, o), at, at, |first| {
                            format!(
                                "a dynamic-pat from \"{}\" to \"{}\" is already defined at line {first}; keep one",
                                ifs.name(i),
                                ifs.name(o)
                            )
                        });
                        if new && ok {
                            out.push(NatRule::DynamicPat { inside: i, outside: o, address });
                        }
                    }
                }
                Kind::Static => {
                    let real = self.need(&d.real, "real", &section, at).and_then(|v| self.ipv4(v));
                    let mapped = self.need(&d.mapped, "mapped", &section, at).and_then(|v| {
                        let ip = self.ipv4(v)?;
                        if let Some(i) = ifs.nets.iter().position(|n| n.is_some_and(|n| n.addr == ip)) {
                            let msg = format!(
                                "mapped {ip} is the address of interface \"{}\"; a static NAT needs an address of its own (a port-forward can share the interface address)",
                                ifs.names[i].as_deref().unwrap_or("?")
                            );
                            self.error_at(v, msg);
                            return None;
                        }
                        if let Some(&first) = seen_static.get(&ip) {
                            let msg = format!(
                                "mapped {ip} is already used by the static NAT at line {}; each static NAT needs its own address",
                                self.line_of(first)
                            );
                            self.error_at(v, msg);
                            return None;
                        }
                        let ip = on_outside(self, v, "mapped")?;
                        seen_static.insert(ip, v.span().start);
                        Some(ip)
                    });
                    if let (Some(i), Some(o), Some(real), Some(mapped), true) = (inside, outside, real, mapped, ok) {
                        out.push(NatRule::Static { inside: i, outside: o, real, mapped });
                    }
                }
                Kind::PortForward => {
                    let proto = self.need(&d.proto, "proto", &section, at).and_then(|v| match v.get_ref().as_str() {
                        "tcp" => Some(proto::TCP),
                        "udp" => Some(proto::UDP),
                        other => {
                            let msg =
                                format!("port-forward proto \"{other}\" is not supported; use \"tcp\" or \"udp\"");
                            self.error_at(v, msg);
                            None
                        }
                    });
                    let mapped = match &d.mapped {
                        None => Some(None),
                        Some(v) => on_outside(self, v, "mapped").map(Some),
                    };
                    let mapped_port = self
                        .need(&d.mapped_port, "mapped_port", &section, at)
                        .and_then(|v| self.int_in(v, "mapped_port", 1, 65535));
                    let real = self.need(&d.real, "real", &section, at).and_then(|v| self.ipv4(v));
                    let real_port = self
                        .need(&d.real_port, "real_port", &section, at)
                        .and_then(|v| self.int_in(v, "real_port", 1, 65535));
                    // Omitting `mapped` and naming the outside address are the
                    // same listener, so compare what each one resolves to.
                    let effective = mapped.and_then(|m| m.or(outside_net.map(|n| n.addr)));
                    if let (Some(p), Some(m), Some(mp)) = (proto, effective, mapped_port) {
                        let key = (p, m, mp as u16);
                        let key_at = d.mapped_port.as_ref().map_or(at, |v| v.span().start);
                        let new = self.first_use(&mut seen_fwd, key, key_at, at, |first| {
                            format!(
                                "{} {m}:{mp} is already forwarded at line {first}; each (proto, mapped, mapped_port) can be forwarded once",
                                if p == proto::TCP { "tcp" } else { "udp" }
                            )
                        });
                        ok &= new;
                        if new {
                            if let Some(ip) = mapped.flatten() {
                                shared.push((
                                    ip,
                                    d.mapped.as_ref().map_or(at, |v| v.span().start),
                                    "port-forward mapped",
                                ));
                            }
                        }
                    }
                    if let (Some(i), Some(o), Some(p), Some(m), Some(mp), Some(r), Some(rp), true) =
                        (inside, outside, proto, mapped, mapped_port, real, real_port, ok)
                    {
                        out.push(NatRule::PortForward {
                            inside: i,
                            outside: o,
                            proto: p,
                            mapped: m,
                            mapped_port: mp as u16,
                            real: r,
                            real_port: rp as u16,
                        });
                    }
                }
            }
        }
        // A static NAT owns every port of its mapped address, so sharing that
        // address would make replies ambiguous.
        for (ip, at, what) in shared {
            if let Some(&first) = seen_static.get(&ip) {
                let msg = format!(
                    "{what} {ip} is taken whole by the static NAT at line {}; use a different address",
                    self.line_of(first)
                );
                self.error(at, msg);
            }
        }
        out
    }

    fn timeouts(&mut self, dto: Option<&TimeoutsDto>) -> Timeouts {
        let mut t = Timeouts::default();
        let Some(d) = dto else { return t };
        let fields: [(&str, &Option<S<IntOrStr>>, &mut Duration); 11] = [
            ("tcp_syn", &d.tcp_syn, &mut t.tcp_syn),
            ("tcp_established", &d.tcp_established, &mut t.tcp_established),
            ("tcp_fin", &d.tcp_fin, &mut t.tcp_fin),
            ("tcp_time_wait", &d.tcp_time_wait, &mut t.tcp_time_wait),
            ("tcp_closed", &d.tcp_closed, &mut t.tcp_closed),
            ("udp", &d.udp, &mut t.udp),
            ("udp_unreplied", &d.udp_unreplied, &mut t.udp_unreplied),
            ("icmp", &d.icmp, &mut t.icmp),
            ("arp", &d.arp, &mut t.arp),
            ("fragment", &d.fragment, &mut t.fragment),
            ("mac", &d.mac, &mut t.mac),
        ];
        for (key, v, slot) in fields {
            let Some(v) = v else { continue };
            let parsed = match v.get_ref() {
                IntOrStr::Int(n) if *n <= 0 => Ok(Duration::ZERO),
                IntOrStr::Int(n) => (*n as u64)
                    .checked_mul(1_000_000)
                    .map(Duration::from_micros)
                    .ok_or_else(|| format!("{n} seconds is too long a duration")),
                IntOrStr::Str(s) => parse_duration(s),
            };
            match parsed {
                Ok(Duration::ZERO) => {
                    self.error_at(v, format!("timeout {key} must be more than 0; write e.g. \"30s\""))
                }
                Ok(dur) => *slot = dur,
                Err(m) => self.error_at(v, format!("timeout {key}: {m}")),
            }
        }
        t
    }

    /// Checks each standby_address against what only the whole file knows:
    /// the other interfaces, the NAT rules and the route gateways. The
    /// standby unit answers ARP for its address, so it must be a host of
    /// its own on the interface's subnet.
    fn standby_conflicts(&mut self, ifs: &Ifaces, dto: &FileDto) {
        // Addresses of other things, each with a description and its line.
        let mut taken: Vec<(Ipv4Addr, String)> = Vec::new();
        for n in &dto.nat {
            let line = self.line_of(n.span().start);
            let n = n.get_ref();
            for (what, v) in [("address", &n.address), ("mapped address", &n.mapped), ("real address", &n.real)] {
                if let Some(ip) = v.as_ref().and_then(|v| v.get_ref().parse::<Ipv4Addr>().ok()) {
                    taken.push((ip, format!("the {what} of the [[nat]] at line {line}")));
                }
            }
        }
        for r in &dto.route {
            let line = self.line_of(r.span().start);
            if let Some(ip) = r.get_ref().gateway.as_ref().and_then(|v| v.get_ref().parse::<Ipv4Addr>().ok()) {
                taken.push((ip, format!("the gateway of the [[route]] at line {line}")));
            }
        }
        for &(ip, at, i) in &ifs.standby {
            if let Some(j) = ifs.nets.iter().position(|n| n.is_some_and(|n| n.addr == ip)) {
                let msg =
                    format!("standby_address {ip} is the address of interface \"{}\"", ifs.name(IfIndex(j as u8)));
                self.error(at, msg);
            } else if let Some((_, what)) = taken.iter().find(|(t, _)| *t == ip) {
                let msg = format!("standby_address {ip} is also {what}; the standby unit needs an address of its own");
                self.error(at, msg);
            } else if let Some(net) = ifs.nets.get(i.idx()).copied().flatten() {
                if !is_host_on(net, ip) {
                    let msg = format!(
                        "standby_address {ip} is not a host on interface \"{}\" ({}/{}); the standby unit's address must be on the interface's subnet",
                        ifs.name(i),
                        net.network(),
                        net.len
                    );
                    self.error(at, msg);
                }
            }
        }
    }

    fn failover(&mut self, sd: &S<FailoverDto>, ifs: &Ifaces) -> Option<FailoverCfg> {
        const SECTION: &str = "[failover]";
        let at = sd.span().start;
        let d = sd.get_ref();

        let unit = self.need(&d.unit, "unit", SECTION, at).and_then(|v| match v.get_ref().as_str() {
            "primary" => Some(Unit::Primary),
            "secondary" => Some(Unit::Secondary),
            other => {
                let hint = suggest(other, &["primary", "secondary"])
                    .map_or(String::new(), |s| format!("did you mean \"{s}\"? "));
                let msg = format!("unknown unit \"{other}\"; {hint}use \"primary\" or \"secondary\"");
                self.error_at(v, msg);
                None
            }
        });

        let interface = self.need(&d.interface, "interface", SECTION, at).and_then(|v| {
            let s = v.get_ref();
            // Linux IFNAMSIZ is 16 including the NUL.
            if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\t', ':']) || s == "." || s == ".." {
                let msg = format!(
                    "failover interface \"{s}\" is not a valid device name; use 1 to 15 bytes without '/', ':' or spaces"
                );
                self.error_at(v, msg);
                return None;
            }
            if let Some(i) = ifs.taps.iter().position(|t| t.as_deref() == Some(s.as_str())) {
                let msg = format!(
                    "failover interface \"{s}\" is the TAP device of interface \"{}\"; the failover link needs a host interface of its own",
                    ifs.name(IfIndex(i as u8))
                );
                self.error_at(v, msg);
                return None;
            }
            Some(s.clone())
        });

        let local = self.need(&d.local, "local", SECTION, at).and_then(|v| self.link_address(v, "local"));
        let peer = self.need(&d.peer, "peer", SECTION, at).and_then(|v| {
            let ip = self.link_address(v, "peer")?;
            if local == Some(ip) {
                let msg = format!("peer {ip} is the same as local; peer is the other unit's failover link address");
                self.error_at(v, msg);
                return None;
            }
            Some(ip)
        });

        let port = d.port.as_ref().map_or(Some(i64::from(DEFAULT_FAILOVER_PORT)), |v| self.int_in(v, "port", 1, 65535));
        let hello_port = d
            .hello_port
            .as_ref()
            .map_or(Some(i64::from(DEFAULT_HELLO_PORT)), |v| self.int_in(v, "hello_port", 1, 65535))
            .and_then(|hp| {
                if port != Some(hp) {
                    return Some(hp);
                }
                // Point at whichever of the two was written.
                let where_ = d.hello_port.as_ref().or(d.port.as_ref()).map_or(at, |v| v.span().start);
                let msg = format!(
                    "hello_port {hp} is the same as port; hellos and the delta stream need different UDP ports"
                );
                self.error(where_, msg);
                None
            });
        let hello_group = match &d.hello_group {
            None => Some(DEFAULT_HELLO_GROUP),
            Some(v) => self.ipv4(v).and_then(|ip| {
                if ip.is_multicast() {
                    return Some(ip);
                }
                let msg = format!(
                    "hello_group {ip} is not an IPv4 multicast address; use one in 224.0.0.0/4 such as {DEFAULT_HELLO_GROUP}"
                );
                self.error_at(v, msg);
                None
            }),
        };

        let key = match (&d.key, &d.key_file) {
            (None, None) => {
                self.error(
                    at,
                    "exactly one of key or key_file is required: there is no unauthenticated failover; add key_file = \"/etc/twinwall/failover.key\"",
                );
                None
            }
            (Some(k), Some(f)) => {
                let later = k.span().start.max(f.span().start);
                self.error(
                    later,
                    "exactly one of key or key_file is required: there is no unauthenticated failover; remove key or key_file",
                );
                None
            }
            // Never put the key itself into a message: KeyError's Display
            // describes it without quoting it.
            (Some(k), None) => match KeyMaterial::from_key_text(k.get_ref()) {
                Ok(_) => Some(KeySource::Inline(k.get_ref().clone())),
                Err(e) => {
                    self.error_at(k, e.to_string());
                    None
                }
            },
            (None, Some(f)) => {
                let p = f.get_ref();
                if p.starts_with('/') && !p.contains(['\n', '\0']) {
                    Some(KeySource::File(p.clone()))
                } else {
                    let msg = format!(
                        "key_file \"{p}\" must be an absolute path; the unit reads it at start, whatever its working directory"
                    );
                    self.error_at(f, msg);
                    None
                }
            }
        };

        let poll = d.poll_ms.as_ref().map_or(Some(DEFAULT_POLL_MS), |v| self.int_in(v, "poll_ms", 1, 15_000));
        let hold = d.hold_ms.as_ref().map_or(Some(DEFAULT_HOLD_MS), |v| self.int_in(v, "hold_ms", 1, 60_000));
        let hold = self.hold_at_least_3_polls(
            (poll, &d.poll_ms, "poll_ms"),
            (hold, &d.hold_ms, "hold_ms"),
            format!("hold_ms defaults to {DEFAULT_HOLD_MS}"),
        );
        let if_poll = match &d.interface_poll_ms {
            None => poll,
            Some(v) => self.int_in(v, "interface_poll_ms", 1, 15_000),
        };
        let if_hold = match &d.interface_hold_ms {
            None => hold,
            Some(v) => self.int_in(v, "interface_hold_ms", 1, 60_000),
        };
        // With neither written the pair is (poll_ms, hold_ms), checked above.
        let if_hold = if d.interface_poll_ms.is_some() || d.interface_hold_ms.is_some() {
            self.hold_at_least_3_polls(
                (if_poll, &d.interface_poll_ms, "interface_poll_ms"),
                (if_hold, &d.interface_hold_ms, "interface_hold_ms"),
                format!("interface_hold_ms defaults to hold_ms ({})", hold.map_or("?".to_owned(), |h| h.to_string())),
            )
        } else {
            if_hold
        };

        let preempt_on = d.preempt.as_ref().is_some_and(|v| *v.get_ref());
        let delay = match &d.preempt_delay_ms {
            None => Some(0),
            Some(v) if !preempt_on => {
                self.error_at(v, "preempt_delay_ms applies only with preempt = true; remove it or set preempt = true");
                None
            }
            Some(v) => self.int_in(v, "preempt_delay_ms", 0, 3_600_000),
        };
        let ms = |n: i64| Duration::from_millis(n as u64);
        Some(FailoverCfg {
            unit: unit?,
            interface: interface?,
            local: local?,
            peer: peer?,
            port: port? as u16,
            hello_group: hello_group?,
            hello_port: hello_port? as u16,
            key: key?,
            poll: ms(poll?),
            hold: ms(hold?),
            interface_poll: ms(if_poll?),
            interface_hold: ms(if_hold?),
            preempt: if preempt_on { Some(ms(delay?)) } else { None },
        })
    }

    /// `local` or `peer` of the failover link: a unicast host address.
    fn link_address(&mut self, v: &S<String>, key: &str) -> Option<Ipv4Addr> {
        let ip = self.ipv4(v)?;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
            let msg = format!(
                "{key} {ip} cannot be a failover link address; use a unicast host address such as 169.254.73.1"
            );
            self.error_at(v, msg);
            return None;
        }
        Some(ip)
    }

    /// Returns the hold time if it is at least [`MIN_HOLD_POLLS`] polls,
    /// reporting at the hold key if written, else at the poll key (the hold
    /// is then a default, described by `default_hold`).
    fn hold_at_least_3_polls(
        &mut self,
        (poll, poll_v, poll_key): (Option<i64>, &Option<S<i64>>, &str),
        (hold, hold_v, hold_key): (Option<i64>, &Option<S<i64>>, &str),
        default_hold: String,
    ) -> Option<i64> {
        let (Some(p), Some(h)) = (poll, hold) else { return hold };
        let min = p * MIN_HOLD_POLLS;
        if h >= min {
            return Some(h);
        }
        match (hold_v, poll_v) {
            (Some(v), _) => {
                let msg =
                    format!("{hold_key} {h} is less than {MIN_HOLD_POLLS} x {poll_key} ({p}); the minimum is {min}");
                self.error_at(v, msg);
            }
            (None, Some(v)) => {
                let msg = format!(
                    "{poll_key} {p} needs {hold_key} of at least {min} ({MIN_HOLD_POLLS} x {poll_key}), but {default_hold}; set {hold_key}"
                );
                self.error_at(v, msg);
            }
            // Both defaults: they satisfy the rule, or a default changed.
            (None, None) => {}
        }
        None
    }

    fn limits(&mut self, dto: Option<&LimitsDto>) -> Limits {
        let mut l = Limits::default();
        let Some(d) = dto else { return l };
        let max = i64::from(u32::MAX);
        let fields: [(&str, &Option<S<i64>>, &mut u32, i64); 5] = [
            ("max_conns", &d.max_conns, &mut l.max_conns, 1),
            ("arp_queue", &d.arp_queue, &mut l.arp_queue, 0),
            ("max_fragments", &d.max_fragments, &mut l.max_fragments, 0),
            ("icmp_rate", &d.icmp_rate, &mut l.icmp_rate, 0),
            ("max_macs", &d.max_macs, &mut l.max_macs, 1),
        ];
        for (key, v, slot, lo) in fields {
            if let Some(n) = v.as_ref().and_then(|v| self.int_in(v, key, lo, max)) {
                *slot = n as u32;
            }
        }
        l
    }
}

/// True if `ip` is a usable host on `net`'s subnet: inside it, and neither
/// its network nor broadcast address where those exist.
fn is_host_on(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(ip) && (net.len > 30 || (ip != net.network() && ip != net.broadcast()))
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

/// The candidate closest to `word` if it is close enough to be a typo.
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../appliance.toml");

    /// Two interfaces in 13 lines, so text appended to it starts on line 14.
    const IFS: &str = r#"[[interface]]
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
"#;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ok(text: &str) -> Config {
        parse(text, "t.toml").unwrap_or_else(|errs| {
            panic!("unexpected errors:\n{}", errs.iter().map(|e| e.to_string() + "\n").collect::<String>())
        })
    }

    /// Asserts that `text` yields exactly `want`, each an error's "LINE:COL"
    /// and a fragment of its message, in order.
    fn expect(text: &str, want: &[(&str, &str)]) {
        let errs = parse(text, "t.toml").expect_err("config should not parse");
        let shown: String = errs.iter().map(|e| format!("  {e}\n")).collect();
        assert_eq!(errs.len(), want.len(), "wrong number of errors:\n{shown}");
        for (e, (pos, frag)) in errs.iter().zip(want) {
            assert_eq!(e.file, "t.toml");
            assert_eq!(format!("{}:{}", e.line, e.col), *pos, "wrong position:\n{shown}");
            assert!(e.msg.contains(frag), "message lacks {frag:?}:\n{shown}");
        }
    }

    fn line_containing(text: &str, needle: &str) -> u32 {
        text.lines().position(|l| l.contains(needle)).expect("needle in text") as u32 + 1
    }

    #[test]
    fn shipped_config_parses() {
        let c = ok(SHIPPED);
        assert_eq!(c.hostname, "fw");
        assert_eq!(c.mode, Mode::Routed);
        assert_eq!(c.control_socket, "/run/twinwall/fw.sock");

        let names: Vec<&str> = c.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["inside", "outside", "dmz"]);
        assert_eq!(
            c.interfaces[0],
            InterfaceCfg {
                name: "inside".into(),
                tap: "tw-inside".into(),
                mac: Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]),
                address: Some(net("192.168.10.1/24")),
                security_level: 100,
                mtu: 1500,
                standby_address: None,
                monitor: true,
            }
        );
        assert_eq!(c.interfaces[1].tap, "tw-outside");
        assert_eq!(c.interfaces[1].address, Some(net("203.0.113.1/24")));
        assert_eq!(c.interfaces[1].security_level, 0);
        assert_eq!(c.interfaces[2].mac, Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x03]));
        assert_eq!(c.interfaces[2].address, Some(net("172.16.20.1/24")));
        assert_eq!(c.interfaces[2].security_level, 50);

        let (inside, outside, dmz) = (IfIndex(0), IfIndex(1), IfIndex(2));
        assert_eq!(
            c.routes,
            [RouteCfg { destination: Ipv4Net::ANY, gateway: ip("203.0.113.254"), interface: outside }]
        );

        assert_eq!(c.acls.len(), 3);
        assert_eq!(c.acls[0], None);
        assert_eq!(c.acls[2], None);
        let rules = c.acls[1].as_ref().expect("outside has an ACL");
        assert_eq!(
            rules[..],
            [
                AclRule {
                    action: AclAction::Permit,
                    proto: Some(proto::TCP),
                    src: Ipv4Net::ANY,
                    dst: net("172.16.20.10/32"),
                    sport: None,
                    dport: Some(PortRange { lo: 80, hi: 80 }),
                    icmp_type: None,
                    line: line_containing(SHIPPED, "dport = 80 }"),
                },
                AclRule {
                    action: AclAction::Permit,
                    proto: Some(proto::ICMP),
                    src: Ipv4Net::ANY,
                    dst: net("192.168.10.20/32"),
                    sport: None,
                    dport: None,
                    icmp_type: Some(8),
                    line: line_containing(SHIPPED, "icmp_type = 8 }"),
                },
            ]
        );

        assert_eq!(
            c.nat,
            [
                NatRule::DynamicPat { inside, outside, address: None },
                NatRule::DynamicPat { inside: dmz, outside, address: None },
                NatRule::PortForward {
                    inside: dmz,
                    outside,
                    proto: proto::TCP,
                    mapped: Some(ip("203.0.113.1")),
                    mapped_port: 8080,
                    real: ip("172.16.20.10"),
                    real_port: 80,
                },
                NatRule::Static { inside, outside, real: ip("192.168.10.20"), mapped: ip("203.0.113.20") },
            ]
        );
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn defaults_fill_in_optional_sections() {
        let c = ok(IFS);
        assert_eq!(c.hostname, "twinwall");
        assert_eq!(c.control_socket, "/run/twinwall/twinwall.sock");
        assert_eq!(c.interfaces[0].mtu, 1500);
        assert_eq!(c.acls, [None, None]);
        assert!(c.routes.is_empty() && c.nat.is_empty());
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.limits, Limits::default());

        let c = ok(&format!("[appliance]\nhostname = \"edge\"\n{IFS}"));
        assert_eq!(c.control_socket, "/run/twinwall/edge.sock");
    }

    #[test]
    fn toml_syntax_error_is_located() {
        expect(&format!("{IFS}[[route]\n"), &[("14:8", "")]);
        expect(&format!("{IFS}mtu = = 1500\n"), &[("14:7", "")]);
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let text = IFS.replace("address =", "adress =");
        expect(&text, &[("5:1", "unknown key \"adress\" in [[interface]]; did you mean \"address\"?")]);
        expect(
            &format!("{IFS}[timeout]\nudp = 5\n"),
            &[("14:2", "unknown key \"timeout\" at the top level; did you mean \"timeouts\"?")],
        );
        expect(
            &format!("{IFS}[[acl]]\ninterface = \"outside\"\nrules = [ {{ action = \"permit\", port = 22 }} ]\n"),
            &[("16:32", "unknown key \"port\" in an [[acl]] rule; did you mean \"sport\"?")],
        );
        expect(
            &format!("{IFS}[limits]\nbananas = 3\n"),
            &[("15:1", "in [limits]; the keys here are \"max_conns\", \"arp_queue\"")],
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let text = IFS.replace("security_level = 100", "security_level = \"100\"");
        expect(&text, &[("6:18", "wrong type for \"security_level\": found string \"100\", expected an integer")]);
        expect(
            &format!("{IFS}[[acl]]\ninterface = \"outside\"\nrules = [ {{ action = \"permit\", dport = true }} ]\n"),
            &[("16:40", "wrong type for \"dport\": found boolean `true`, expected an integer or a string")],
        );
        expect("[interface]\nname = \"x\"\n", &[("1:1", "expected a sequence (write [[name]] with double brackets")]);
    }

    #[test]
    fn no_interfaces() {
        expect("[appliance]\nhostname = \"fw\"\n", &[("1:1", "no [[interface]] is defined")]);
    }

    #[test]
    fn too_many_interfaces() {
        let mut text = String::new();
        for n in 0..256u32 {
            let (hi, lo) = (n / 256, n % 256);
            text += &format!(
                "[[interface]]\nname = \"i{n}\"\ntap = \"t{n}\"\nmac = \"02:00:00:00:{hi:02x}:{lo:02x}\"\naddress = \"10.{hi}.{lo}.1/24\"\nsecurity_level = 0\n"
            );
        }
        expect(&text, &[(&format!("{}:1", 255 * 6 + 1), "256 interfaces are defined; at most 255")]);
    }

    #[test]
    fn duplicate_interface_values() {
        let text = format!(
            "{IFS}[[interface]]\nname = \"inside\"\ntap = \"tw-outside\"\nmac = \"02:00:5e:10:00:01\"\naddress = \"203.0.113.1/24\"\nsecurity_level = 50\n"
        );
        expect(
            &text,
            &[
                ("15:8", "interface name \"inside\" is already used at line 2"),
                ("16:7", "tap \"tw-outside\" is already used at line 10"),
                ("17:7", "MAC 02:00:5e:10:00:01 is already used at line 4"),
                ("18:11", "address 203.0.113.1 is already the address of interface \"outside\""),
            ],
        );
    }

    #[test]
    fn overlapping_subnets() {
        let text = format!(
            "{IFS}[[interface]]\nname = \"dmz\"\ntap = \"tw-dmz\"\nmac = \"02:00:5e:10:00:03\"\naddress = \"192.168.0.1/16\"\nsecurity_level = 50\n"
        );
        expect(
            &text,
            &[("18:11", "subnet 192.168.0.0/16 overlaps 192.168.10.0/24 of interface \"inside\"; connected subnets")],
        );
    }

    #[test]
    fn bad_interface_values() {
        let text = IFS
            .replace("02:00:5e:10:00:01", "01:00:5e:10:00:01")
            .replace("192.168.10.1/24", "192.168.10.0/24")
            .replace("tw-outside", "tw-outside-much-too-long")
            .replace("203.0.113.1/24", "203.0.113.1/40")
            .replace("security_level = 0", "security_level = 101\nmtu = 100");
        expect(
            &text,
            &[
                ("4:7", "is a multicast MAC"),
                ("5:11", "is the network address of 192.168.10.0/24; an interface needs a host address such as 192.168.10.1/24"),
                ("10:7", "use 1 to 15 bytes"),
                ("12:11", "bad prefix length"),
                ("13:18", "security_level 101 is out of range; use 0 to 100"),
                ("14:7", "mtu 100 is out of range; use 576 to 9000"),
            ],
        );
        let text = IFS.replace("192.168.10.1/24", "192.168.10.255/24").replace("203.0.113.1/24", "203.0.113.1");
        expect(
            &text,
            &[("5:11", "is the broadcast address"), ("12:11", "needs a prefix length; write e.g. 192.168.10.1/24")],
        );
    }

    #[test]
    fn missing_keys_are_each_reported() {
        let text = format!("{IFS}[[interface]]\nname = \"dmz\"\nsecurity_level = 50\n");
        expect(
            &text,
            &[
                ("14:1", "missing key \"tap\" in [[interface]] \"dmz\""),
                ("14:1", "missing key \"mac\""),
                ("14:1", "missing key \"address\""),
            ],
        );
    }

    #[test]
    fn route_errors() {
        let text = format!(
            "{IFS}[[route]]\ndestination = \"10.0.0.0/8\"\ngateway = \"192.168.10.254\"\ninterface = \"outsid\"\n\
             [[route]]\ndestination = \"10.1.2.3/8\"\ngateway = \"198.51.100.1\"\ninterface = \"outside\"\n\
             [[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"203.0.113.1\"\ninterface = \"outside\"\n\
             [[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"203.0.113.255\"\ninterface = \"outside\"\n"
        );
        expect(
            &text,
            &[
                (
                    "17:13",
                    "unknown interface \"outsid\"; did you mean \"outside\"? (interfaces: \"inside\", \"outside\")",
                ),
                ("19:15", "`10.1.2.3/8` has host bits set; write 10.0.0.0/8"),
                ("20:11", "gateway 198.51.100.1 is not a host on interface \"outside\" (203.0.113.0/24)"),
                ("24:11", "gateway 203.0.113.1 is the appliance's own address on interface \"outside\""),
                ("28:11", "gateway 203.0.113.255 is not a host"),
            ],
        );
    }

    #[test]
    fn acl_errors() {
        let text = format!(
            r#"{IFS}[[acl]]
interface = "outside"
rules = [
  {{ action = "permit", proto = "icmp", dport = 22 }},
  {{ action = "permit", proto = "tcp", icmp_type = 8 }},
  {{ action = "permit", sport = "1024-65535" }},
  {{ action = "allow", proto = "gre" }},
  {{ action = "deny", dport = 70000, dst = "10.0.0.1/8" }},
]
[[acl]]
interface = "outside"
rules = []
[[acl]]
interface = "dmz"
"#
        );
        expect(
            &text,
            &[
                ("17:48", "dport needs proto = \"tcp\" or \"udp\", but this rule has proto = \"icmp\""),
                ("18:51", "icmp_type needs proto = \"icmp\", but this rule has proto = \"tcp\""),
                ("19:32", "sport needs proto = \"tcp\" or \"udp\", but this rule has proto = \"ip\""),
                ("20:14", "unknown action \"allow\"; use \"permit\", \"deny\" or \"reject\""),
                ("20:31", "unknown proto \"gre\""),
                ("21:30", "dport 70000 is out of range"),
                ("21:43", "has host bits set"),
                ("24:13", "interface \"outside\" already has an [[acl]] at line 14"),
                ("26:1", "missing key \"rules\""),
                ("27:13", "unknown interface \"dmz\""),
            ],
        );
    }

    #[test]
    fn acl_rule_values() {
        let text = format!(
            "{IFS}[[acl]]\ninterface = \"inside\"\nrules = [\n  {{ action = \"reject\", proto = 17, src = \"192.168.10.0/24\", dst = \"8.8.8.8\", sport = \"1024-65535\", dport = 53 }},\n  {{ action = \"deny\", proto = \"any\" }},\n]\n"
        );
        let c = ok(&text);
        assert_eq!(c.acls[1], None);
        let rules = c.acls[0].as_ref().unwrap();
        assert_eq!(
            rules[0],
            AclRule {
                action: AclAction::Reject,
                proto: Some(proto::UDP),
                src: net("192.168.10.0/24"),
                dst: net("8.8.8.8/32"),
                sport: Some(PortRange { lo: 1024, hi: 65535 }),
                dport: Some(PortRange { lo: 53, hi: 53 }),
                icmp_type: None,
                line: 17,
            }
        );
        assert_eq!(
            (rules[1].action, rules[1].proto, rules[1].src, rules[1].line),
            (AclAction::Deny, None, Ipv4Net::ANY, 18)
        );
    }

    #[test]
    fn nat_errors() {
        let text = format!(
            r#"{IFS}[[nat]]
type = "static"
inside = "inside"
outside = "inside"
real = "192.168.10.5"
mapped = "203.0.113.1"
[[nat]]
type = "static"
inside = "inside"
outside = "outside"
real = "192.168.10.6"
mapped = "203.0.113.20"
[[nat]]
type = "static"
inside = "inside"
outside = "outside"
real = "192.168.10.7"
mapped = "203.0.113.20"
[[nat]]
type = "static"
inside = "inside"
outside = "outside"
real = "192.168.10.8"
mapped = "198.51.100.8"
"#
        );
        expect(
            &text,
            &[
                ("17:11", "NAT inside and outside are both \"inside\""),
                ("19:10", "mapped 203.0.113.1 is the address of interface \"outside\""),
                ("31:10", "mapped 203.0.113.20 is already used by the static NAT at line 25"),
                ("37:10", "mapped 198.51.100.8 is not a host on the outside interface \"outside\" (203.0.113.0/24)"),
            ],
        );
    }

    #[test]
    fn nat_duplicates_and_misplaced_keys() {
        let text = format!(
            r#"{IFS}[[nat]]
type = "dynamic-pat"
inside = "inside"
outside = "outside"
[[nat]]
type = "dynamic-pat"
inside = "inside"
outside = "outside"
address = "203.0.113.9"
real = "192.168.10.1"
[[nat]]
type = "port-forward"
inside = "inside"
outside = "outside"
proto = "tcp"
mapped_port = 2222
real = "192.168.10.10"
real_port = 22
[[nat]]
type = "port-forward"
inside = "inside"
outside = "outside"
proto = "tcp"
mapped = "203.0.113.1"
mapped_port = 2222
real = "192.168.10.11"
real_port = 22
[[nat]]
type = "port-forwad"
"#
        );
        expect(
            &text,
            &[
                ("18:1", "a dynamic-pat from \"inside\" to \"outside\" is already defined at line 14"),
                ("23:8", "key \"real\" does not apply to [[nat]] type = \"dynamic-pat\"; remove it"),
                ("38:15", "tcp 203.0.113.1:2222 is already forwarded at line 24"),
                ("42:8", "unknown NAT type \"port-forwad\"; did you mean \"port-forward\"?"),
            ],
        );
    }

    #[test]
    fn nat_values() {
        let text = format!(
            "{IFS}[[nat]]\ntype = \"dynamic-pat\"\ninside = \"inside\"\noutside = \"outside\"\naddress = \"203.0.113.9\"\n\
             [[nat]]\ntype = \"port-forward\"\ninside = \"inside\"\noutside = \"outside\"\nproto = \"udp\"\nmapped_port = 53\nreal = \"192.168.10.53\"\nreal_port = 5353\n"
        );
        let c = ok(&text);
        assert_eq!(
            c.nat,
            [
                NatRule::DynamicPat { inside: IfIndex(0), outside: IfIndex(1), address: Some(ip("203.0.113.9")) },
                NatRule::PortForward {
                    inside: IfIndex(0),
                    outside: IfIndex(1),
                    proto: proto::UDP,
                    mapped: None,
                    mapped_port: 53,
                    real: ip("192.168.10.53"),
                    real_port: 5353,
                },
            ]
        );
    }

    #[test]
    fn appliance_errors() {
        let text = format!("[appliance]\nhostname = \"a/b\"\nmode = \"bridge\"\ncontrol_socket = \"fw.sock\"\n{IFS}");
        expect(
            &text,
            &[
                ("2:12", "hostname \"a/b\" is not valid"),
                ("3:8", "unknown mode \"bridge\"; use mode = \"routed\" or mode = \"transparent\""),
                ("4:18", "must be an absolute path"),
            ],
        );
    }

    /// IFS without addresses, in transparent mode: 13 lines, so text
    /// appended to it starts on line 14.
    fn transparent_ifs() -> String {
        format!(
            "[appliance]\nmode = \"transparent\"\n{}",
            IFS.replace("address = \"192.168.10.1/24\"\n", "").replace("address = \"203.0.113.1/24\"\n", "")
        )
    }

    #[test]
    fn transparent_mode_parses() {
        let text = format!(
            "{}[[acl]]\ninterface = \"outside\"\nrules = [ {{ action = \"permit\", proto = \"icmp\" }} ]\n[timeouts]\nmac = \"10m\"\n[limits]\nmax_macs = 100\n",
            transparent_ifs()
        );
        let c = ok(&text);
        assert_eq!(c.mode, Mode::Transparent);
        assert!(c.interfaces.iter().all(|i| i.address.is_none() && i.standby_address.is_none()));
        assert!(c.routes.is_empty() && c.nat.is_empty());
        assert_eq!(c.acls[1].as_ref().map(Vec::len), Some(1));
        assert_eq!((c.timeouts.mac, c.limits.max_macs), (Duration::from_secs(600), 100));
        // With [failover], no standby_address is needed (or allowed).
        let fo = format!("{}{FO}", transparent_ifs());
        assert!(ok(&fo).failover.is_some());
        assert_eq!(Timeouts::default().mac, Duration::from_secs(300));
    }

    #[test]
    fn bridge_groups_parse() {
        let text = format!(
            "{}[[bridge_group]]\nname = \"bg1\"\ninterfaces = [\"inside\", \"outside\"]\naddress = \"192.168.10.5/24\"\nstatic = [ {{ mac = \"02:00:00:00:02:fe\", interface = \"outside\" }} ]\nethertypes = [\"0x88cc\", 35020]\nbpdu = \"drop\"\n",
            transparent_ifs()
        );
        let c = ok(&text);
        let g = &c.bridge_groups[0];
        assert_eq!((g.name.as_str(), g.members.clone()), ("bg1", vec![IfIndex(0), IfIndex(1)]));
        assert_eq!(g.address, Some(net("192.168.10.5/24")));
        assert_eq!(g.static_macs, vec![(Mac([2, 0, 0, 0, 2, 0xfe]), IfIndex(1))]);
        assert_eq!((g.ethertypes.clone(), g.bpdu_forward), (vec![0x88cc, 0x88cc], false));
        // Without [[bridge_group]], every interface is in one.
        let c = ok(&transparent_ifs());
        assert_eq!(c.bridge_groups.len(), 1);
        assert_eq!((c.bridge_groups[0].members.len(), c.bridge_groups[0].bpdu_forward), (2, true));
    }

    #[test]
    fn bridge_group_errors() {
        let text = format!(
            "{}[[bridge_group]]\nname = \"bg1\"\ninterfaces = [\"inside\"]\naddress = \"192.168.10.0/24\"\nstandby_address = \"192.168.10.6\"\nstatic = [ {{ mac = \"02:00:00:00:02:fe\", interface = \"outside\" }} ]\nethertypes = [\"0x0800\", 5]\nbpdu = \"block\"\n",
            transparent_ifs()
        );
        expect(
            &text,
            &[
                ("14:1", "bridge group \"bg1\" needs at least two interfaces"),
                ("14:1", "interface \"outside\" is in no [[bridge_group]]"),
                ("17:11", "must be a unicast host address"),
                ("18:19", "standby_address needs a [failover] section"),
                ("19:53", "interface \"outside\" is not in bridge group \"bg1\""),
                ("20:15", "IPv4 (0x0800) and ARP (0x0806) are always handled"),
                ("20:25", "an ethertype is written"),
                ("21:8", "unknown bpdu policy \"block\""),
            ],
        );
        let routed = format!("{IFS}[[bridge_group]]\nname = \"bg1\"\ninterfaces = [\"inside\", \"outside\"]\n");
        expect(&routed, &[("14:1", "[[bridge_group]] needs mode = \"transparent\"")]);
    }

    #[test]
    fn transparent_mode_errors() {
        // Addresses, a standby address, a route and NAT have no place in a bridge.
        let text = format!(
            "[appliance]\nmode = \"transparent\"\n{}[[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"203.0.113.254\"\ninterface = \"outside\"\n[[nat]]\ntype = \"dynamic-pat\"\ninside = \"inside\"\noutside = \"outside\"\n[limits]\nmax_macs = 0\n",
            fo_ifs()
        );
        expect(
            &text,
            &[
                ("7:11", "transparent mode: interfaces have no address"),
                ("9:19", "transparent mode: interfaces have no address, so no standby_address either"),
                ("15:11", "transparent mode: interfaces have no address"),
                ("17:19", "no standby_address either"),
                ("18:1", "transparent mode has no routes"),
                ("22:1", "NAT is not available in transparent mode"),
                ("27:12", "max_macs 0 is out of range; use 1 to"),
            ],
        );
        // One interface is no bridge.
        let one: String = transparent_ifs().lines().take(8).map(|l| format!("{l}\n")).collect();
        expect(&one, &[("3:1", "transparent mode bridges interfaces: define at least two [[interface]]")]);
    }

    #[test]
    fn timeout_and_limit_errors() {
        let text = format!(
            "{IFS}[timeouts]\ntcp_syn = 0\nudp = \"0s\"\nicmp = \"5 min\"\narp = -3\nfragment = \"90\"\n[limits]\nmax_conns = 0\nicmp_rate = -1\n"
        );
        expect(
            &text,
            &[
                ("15:11", "timeout tcp_syn must be more than 0"),
                ("16:7", "timeout udp must be more than 0"),
                ("17:8", "`5 min` is not a duration"),
                ("18:7", "timeout arp must be more than 0"),
                ("19:12", "`90` has no unit; write \"90s\" or the integer 90"),
                ("21:13", "max_conns 0 is out of range; use 1 to 4294967295"),
                ("22:13", "icmp_rate -1 is out of range"),
            ],
        );
        let c = ok(&format!(
            "{IFS}[timeouts]\ntcp_syn = 45\nudp = \"1h30m\"\nicmp = \"500ms\"\n[limits]\nmax_conns = 10\n"
        ));
        assert_eq!(c.timeouts.tcp_syn, Duration::from_secs(45));
        assert_eq!(c.timeouts.udp, Duration::from_secs(5400));
        assert_eq!(c.timeouts.icmp, Duration::from_millis(500));
        assert_eq!(c.timeouts.arp, Timeouts::default().arp);
        assert_eq!(c.limits, Limits { max_conns: 10, ..Limits::default() });
    }

    #[test]
    fn all_semantic_errors_come_together_in_order() {
        let text = format!(
            "[appliance]\nmode = \"bridged\"\n{IFS}[[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"10.9.9.9\"\ninterface = \"outside\"\n[timeouts]\nudp = \"soon\"\n"
        );
        let errs = parse(&text, "lab/appliance.toml").unwrap_err();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(shown[0].starts_with("lab/appliance.toml:2:8: unknown mode \"bridged\""), "{shown:#?}");
        assert!(shown[1].starts_with("lab/appliance.toml:18:11: gateway 10.9.9.9"), "{shown:#?}");
        assert!(shown[2].starts_with("lab/appliance.toml:21:7: timeout udp: `soon`"), "{shown:#?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m30s250ms"), Ok(Duration::from_millis(90_250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "s", "30", "30x", "1.5h", "-5s", "h1", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é = 1\nx", 3), (1, 3));
        assert_eq!(line_col("é = 1\nx", 1), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("adress", &["name", "address"]), Some("address"));
        assert_eq!(suggest("zzz", &["name", "address"]), None);
        assert_eq!(suggest("Inside", &["inside"]), Some("inside"));
    }

    // -----------------------------------------------------------------------
    // [failover]

    const LAB_PRIMARY: &str = include_str!("../../integration/lab/failover/primary.toml");
    const LAB_SECONDARY: &str = include_str!("../../integration/lab/failover/secondary.toml");

    /// IFS with a standby address on each interface: 15 lines, so text
    /// appended to it starts on line 16.
    fn fo_ifs() -> String {
        IFS.replace("security_level = 100\n", "security_level = 100\nstandby_address = \"192.168.10.2\"\n")
            .replace("security_level = 0\n", "security_level = 0\nstandby_address = \"203.0.113.2\"\n")
    }

    /// A minimal valid [failover] section, lines 16 to 21 after `fo_ifs()`.
    const FO: &str = r#"[failover]
unit = "primary"
interface = "fo0"
local = "169.254.73.1"
peer = "169.254.73.2"
key = "twinwall-test-failover-key"
"#;

    #[test]
    fn failover_full_section() {
        let text = format!(
            r#"{}[failover]
unit = "secondary"
interface = "fo1"
local = "169.254.73.2"
peer = "169.254.73.1"
port = 7000
hello_group = "239.1.2.3"
hello_port = 7001
key_file = "/etc/twinwall/failover.key"
poll_ms = 10
hold_ms = 30
interface_poll_ms = 20
interface_hold_ms = 100
preempt = true
preempt_delay_ms = 5000
"#,
            fo_ifs().replace("security_level = 0\n", "security_level = 0\nmonitor = false\n")
        );
        let c = ok(&text);
        assert_eq!(
            c.failover,
            Some(FailoverCfg {
                unit: Unit::Secondary,
                interface: "fo1".into(),
                local: ip("169.254.73.2"),
                peer: ip("169.254.73.1"),
                port: 7000,
                hello_group: ip("239.1.2.3"),
                hello_port: 7001,
                key: KeySource::File("/etc/twinwall/failover.key".into()),
                poll: Duration::from_millis(10),
                hold: Duration::from_millis(30),
                interface_poll: Duration::from_millis(20),
                interface_hold: Duration::from_millis(100),
                preempt: Some(Duration::from_millis(5000)),
            })
        );
        let standby: Vec<_> = c.interfaces.iter().map(|i| (i.standby_address, i.monitor)).collect();
        assert_eq!(standby, [(Some(ip("192.168.10.2")), true), (Some(ip("203.0.113.2")), false)]);
    }

    #[test]
    fn failover_defaults() {
        let c = ok(&format!("{}{FO}", fo_ifs()));
        let f = c.failover.expect("failover configured");
        assert_eq!((f.unit, f.interface.as_str()), (Unit::Primary, "fo0"));
        assert_eq!((f.port, f.hello_group, f.hello_port), (7340, ip("239.255.73.40"), 7341));
        assert_eq!(f.key, KeySource::Inline("twinwall-test-failover-key".into()));
        assert_eq!((f.poll, f.hold), (Duration::from_millis(50), Duration::from_millis(250)));
        assert_eq!((f.interface_poll, f.interface_hold), (f.poll, f.hold));
        assert_eq!(f.preempt, None);
        // The interface timers default to the link's, whatever those are.
        let f = ok(&format!("{}{FO}poll_ms = 2\nhold_ms = 8\npreempt = true\n", fo_ifs())).failover.unwrap();
        assert_eq!((f.interface_poll, f.interface_hold), (Duration::from_millis(2), Duration::from_millis(8)));
        assert_eq!(f.preempt, Some(Duration::ZERO));
        // 64 hex digits are a key too.
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let f = ok(&format!("{}{}", fo_ifs(), FO.replace("twinwall-test-failover-key", hex))).failover.unwrap();
        assert_eq!(f.key, KeySource::Inline(hex.into()));
        // No [failover]: a single unit, every interface monitored (for later).
        let c = ok(IFS);
        assert_eq!(c.failover, None);
        assert!(c.interfaces.iter().all(|i| i.standby_address.is_none() && i.monitor));
    }

    #[test]
    fn failover_value_errors() {
        let text = format!(
            r#"{}[failover]
unit = "primry"
interface = "tw-inside"
local = "224.0.0.5"
peer = "0.0.0.0"
port = 0
hello_group = "10.0.0.1"
key_file = "etc/twinwall/failover.key"
preempt_delay_ms = 100
"#,
            fo_ifs()
        );
        expect(
            &text,
            &[
                ("17:8", "unknown unit \"primry\"; did you mean \"primary\"? use \"primary\" or \"secondary\""),
                ("18:13", "failover interface \"tw-inside\" is the TAP device of interface \"inside\""),
                ("19:9", "local 224.0.0.5 cannot be a failover link address"),
                ("20:8", "peer 0.0.0.0 cannot be a failover link address"),
                ("21:8", "port 0 is out of range; use 1 to 65535"),
                ("22:15", "hello_group 10.0.0.1 is not an IPv4 multicast address"),
                ("23:12", "key_file \"etc/twinwall/failover.key\" must be an absolute path"),
                ("24:20", "preempt_delay_ms applies only with preempt = true"),
            ],
        );
        let text = format!("{}{FO}", fo_ifs()) + "interface_poll_ms = 0\nhello_port = 7340\n";
        expect(
            &text,
            &[
                ("22:21", "interface_poll_ms 0 is out of range; use 1 to 15000"),
                ("23:14", "hello_port 7340 is the same as port"),
            ],
        );
        expect(
            &format!("{}{}", fo_ifs(), FO.replace("peer = \"169.254.73.2\"", "peer = \"169.254.73.1\"")),
            &[("20:8", "peer 169.254.73.1 is the same as local")],
        );
        expect(
            &format!("{}{}", fo_ifs(), FO.replace("fo0", "a-failover-link-name")),
            &[("18:13", "failover interface \"a-failover-link-name\" is not a valid device name")],
        );
        expect(
            &format!("{}{}", fo_ifs(), FO.replace("unit = \"primary\"\n", "")),
            &[("16:1", "missing key \"unit\" in [failover]")],
        );
    }

    #[test]
    fn failover_timer_errors() {
        let base = format!("{}{FO}", fo_ifs());
        expect(&format!("{base}poll_ms = 0\n"), &[("22:11", "poll_ms 0 is out of range; use 1 to 15000")]);
        expect(
            &format!("{base}poll_ms = 50\nhold_ms = 149\n"),
            &[("23:11", "hold_ms 149 is less than 3 x poll_ms (50); the minimum is 150")],
        );
        expect(
            &format!("{base}poll_ms = 100\n"),
            &[(
                "22:11",
                "poll_ms 100 needs hold_ms of at least 300 (3 x poll_ms), but hold_ms defaults to 250; set hold_ms",
            )],
        );
        expect(
            &format!("{base}interface_poll_ms = 10\ninterface_hold_ms = 20\n"),
            &[("23:21", "interface_hold_ms 20 is less than 3 x interface_poll_ms (10); the minimum is 30")],
        );
        expect(
            &format!("{base}hold_ms = 600\ninterface_poll_ms = 250\n"),
            &[(
                "23:21",
                "interface_poll_ms 250 needs interface_hold_ms of at least 750 (3 x interface_poll_ms), but interface_hold_ms defaults to hold_ms (600)",
            )],
        );
        // Exactly 3 x poll is enough.
        let f = ok(&format!("{base}poll_ms = 1\nhold_ms = 3\n")).failover.unwrap();
        assert_eq!((f.poll, f.hold), (Duration::from_millis(1), Duration::from_millis(3)));
    }

    #[test]
    fn failover_key_errors() {
        let ifs = fo_ifs();
        let neither = FO.replace("key = \"twinwall-test-failover-key\"\n", "");
        expect(
            &format!("{ifs}{neither}"),
            &[("16:1", "exactly one of key or key_file is required: there is no unauthenticated failover")],
        );
        expect(
            &format!("{ifs}{FO}key_file = \"/etc/twinwall/failover.key\"\n"),
            &[("22:12", "exactly one of key or key_file is required: there is no unauthenticated failover")],
        );
        // The crypto's own message, at the key, without the key in it.
        let short = format!("{ifs}{}", FO.replace("twinwall-test-failover-key", "short-secret"));
        expect(&short, &[("21:7", "failover key is a 12-character passphrase; use at least 16")]);
        let hex = format!("{ifs}{}", FO.replace("twinwall-test-failover-key", &"ab".repeat(20)));
        expect(&hex, &[("21:7", "looks like a hex key but has 40 digits")]);
        for text in [short, hex] {
            let errs = parse(&text, "t.toml").unwrap_err();
            assert!(errs.iter().all(|e| !e.msg.contains("short-secret") && !e.msg.contains("abab")), "{errs:?}");
        }
        // A key of the wrong type is not echoed either.
        let text = format!("{ifs}{}", FO.replace("\"twinwall-test-failover-key\"", "1234567890123456789"));
        expect(&text, &[("21:7", "wrong type for \"key\": expected a string")]);
        let errs = parse(&text, "t.toml").unwrap_err();
        assert!(!errs[0].msg.contains("1234567890"), "{errs:?}");
    }

    #[test]
    fn failover_unknown_key_suggests() {
        expect(
            &format!("{}{FO}hello_grup = \"239.255.73.40\"\n", fo_ifs()),
            &[("22:1", "unknown key \"hello_grup\" in [failover]; did you mean \"hello_group\"?")],
        );
        expect(
            &format!("{}{FO}bananas = 3\n", fo_ifs()),
            &[("22:1", "unknown key \"bananas\" in [failover]; the keys here are \"unit\", \"interface\"")],
        );
        expect(
            &format!("{}{FO}", fo_ifs().replace("standby_address", "standby_adress")),
            &[("7:1", "unknown key \"standby_adress\" in [[interface]]; did you mean \"standby_address\"?")],
        );
    }

    #[test]
    fn standby_address_errors() {
        // Without [failover].
        expect(
            &fo_ifs(),
            &[
                ("7:19", "standby_address needs a [failover] section"),
                ("15:19", "standby_address needs a [failover] section"),
            ],
        );
        // Missing with [failover]: reported at the interface's name.
        let text = format!("{}{FO}", fo_ifs().replace("standby_address = \"203.0.113.2\"\n", ""));
        expect(&text, &[("10:8", "[[interface]] \"outside\" needs a standby_address")]);
        // Own address, and not on the interface's subnet.
        let text = format!(
            "{}{FO}",
            fo_ifs().replace("\"192.168.10.2\"", "\"192.168.10.1\"").replace("\"203.0.113.2\"", "\"198.51.100.2\"")
        );
        expect(
            &text,
            &[
                ("7:19", "standby_address 192.168.10.1 is this interface's own address"),
                ("15:19", "standby_address 198.51.100.2 is not a host on interface \"outside\" (203.0.113.0/24)"),
            ],
        );
        // The same standby address twice; another interface's address; the
        // subnet's broadcast address.
        let text = format!("{}{FO}", fo_ifs().replace("\"203.0.113.2\"", "\"192.168.10.2\""));
        expect(&text, &[("15:19", "standby_address 192.168.10.2 is already used at line 7")]);
        let text = format!("{}{FO}", fo_ifs().replace("\"203.0.113.2\"", "\"192.168.10.1\""));
        expect(&text, &[("15:19", "standby_address 192.168.10.1 is the address of interface \"inside\"")]);
        let text = format!("{}{FO}", fo_ifs().replace("\"203.0.113.2\"", "\"203.0.113.255\""));
        expect(&text, &[("15:19", "standby_address 203.0.113.255 is not a host on interface \"outside\"")]);
    }

    #[test]
    fn standby_address_clashes_with_nat_and_routes() {
        let text = format!(
            r#"{}{FO}[[route]]
destination = "0.0.0.0/0"
gateway = "192.168.10.2"
interface = "inside"
[[nat]]
type = "static"
inside = "inside"
outside = "outside"
real = "192.168.10.20"
mapped = "203.0.113.2"
"#,
            fo_ifs()
        );
        expect(
            &text,
            &[
                ("7:19", "standby_address 192.168.10.2 is also the gateway of the [[route]] at line 22"),
                ("15:19", "standby_address 203.0.113.2 is also the mapped address of the [[nat]] at line 26"),
            ],
        );
        let text = format!(
            "{}{FO}[[nat]]\ntype = \"dynamic-pat\"\ninside = \"inside\"\noutside = \"outside\"\naddress = \"203.0.113.2\"\n",
            fo_ifs()
        );
        expect(&text, &[("15:19", "standby_address 203.0.113.2 is also the address of the [[nat]] at line 22")]);
    }

    // -----------------------------------------------------------------------
    // The failover config hash and the lab pair

    #[test]
    fn lab_failover_pair_parses_and_agrees() {
        let a = ok(LAB_PRIMARY);
        let b = ok(LAB_SECONDARY);
        let (fa, fb) = (a.failover.as_ref().unwrap(), b.failover.as_ref().unwrap());
        assert_eq!((fa.unit, fb.unit), (Unit::Primary, Unit::Secondary));
        assert_eq!((fa.local, fa.peer), (fb.peer, fb.local));
        assert_eq!((a.hostname.as_str(), b.hostname.as_str()), ("fw-a", "fw-b"));
        assert_eq!(a.control_socket, "/run/twinwall/fw-primary.sock");
        assert_eq!(b.control_socket, "/run/twinwall/fw-secondary.sock");
        assert_eq!(fa.key, KeySource::Inline("twinwall-lab-failover-key-0001".into()));
        assert_eq!((fa.poll, fa.hold), (Duration::from_millis(50), Duration::from_millis(250)));
        let standby: Vec<_> = a.interfaces.iter().map(|i| (i.name.as_str(), i.standby_address)).collect();
        assert_eq!(standby, [("inside", Some(ip("192.168.10.2"))), ("outside", Some(ip("203.0.113.2")))]);
        assert_eq!(a.nat, [NatRule::DynamicPat { inside: IfIndex(0), outside: IfIndex(1), address: None }]);
        assert_eq!(failover_config_hash(&a), failover_config_hash(&b));
    }

    #[test]
    fn config_hash_ignores_per_unit_fields_only() {
        let base = ok(LAB_PRIMARY);
        let h = failover_config_hash(&base);
        // Layout, comments and defaults written out do not matter.
        let relaid = LAB_PRIMARY
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("hello_port") && !l.starts_with("port"))
            .map(|l| l.split('#').next().unwrap().trim_end().to_owned() + "\n")
            .collect::<String>();
        assert_eq!(failover_config_hash(&ok(&relaid)), h);
        // The key is checked by the crypto, not the hash.
        let other_key = LAB_PRIMARY.replace("twinwall-lab-failover-key-0001", "another-passphrase-for-the-lab");
        assert_eq!(failover_config_hash(&ok(&other_key)), h);

        let changes = [
            ("an ACL", format!("{LAB_PRIMARY}[[acl]]\ninterface = \"outside\"\nrules = [ {{ action = \"deny\" }} ]\n")),
            ("a timeout", LAB_PRIMARY.replace("[failover]", "[timeouts]\nudp = \"3m\"\n[failover]")),
            ("a limit", LAB_PRIMARY.replace("[failover]", "[limits]\nmax_conns = 5\n[failover]")),
            ("a standby_address", LAB_PRIMARY.replace("203.0.113.2\"", "203.0.113.3\"")),
            ("monitor", LAB_PRIMARY.replacen("monitor = true", "monitor = false", 1)),
            ("a route", LAB_PRIMARY.replace("203.0.113.254", "203.0.113.253")),
            ("NAT", LAB_PRIMARY.replace("type = \"dynamic-pat\"", "type = \"dynamic-pat\"\naddress = \"203.0.113.9\"")),
            ("hold_ms", LAB_PRIMARY.replace("hold_ms = 250", "hold_ms = 300")),
            ("preempt", LAB_PRIMARY.replace("preempt = false", "preempt = true")),
            ("hello_group", LAB_PRIMARY.replace("239.255.73.40", "239.255.73.41")),
        ];
        for (what, text) in changes {
            assert_ne!(failover_config_hash(&ok(&text)), h, "changing {what} must change the hash");
        }
    }

    #[test]
    fn config_hash_is_stable() {
        // Pinned: a change here means a pair running old and new code sees a
        // config mismatch. Bump the version line in canonical_text when it
        // changes on purpose.
        let text = canonical_text(&ok(LAB_PRIMARY));
        assert!(
            text.starts_with("twinwall-config-hash/1\nmode=routed\ninterfaces=2\ninterface=0\n name=6:inside\n"),
            "{text}"
        );
        assert!(text.contains("\nroute=0.0.0.0/0 via 203.0.113.254 on 1\n"), "{text}");
        assert!(text.contains("\nfailover=on\n interface=3:fo0\n port=7340\n"), "{text}");
        assert!(!text.contains("fw-a") && !text.contains("169.254") && !text.contains("lab-failover-key"), "{text}");
        assert_eq!(failover_config_hash(&ok(LAB_PRIMARY)), 0x00ab_c1c1_77a9_7eaf);
    }

    #[test]
    fn transparent_settings_hash_in_transparent_mode_only() {
        let mac_timeout = |text: &str| format!("{text}[timeouts]\nmac = \"10m\"\n[limits]\nmax_macs = 7\n");
        let routed = ok(&format!("{}{FO}", fo_ifs()));
        let routed_mac = ok(&mac_timeout(&format!("{}{FO}", fo_ifs())));
        assert_eq!(failover_config_hash(&routed), failover_config_hash(&routed_mac), "no effect, not hashed");
        let bridged = ok(&format!("{}{FO}", transparent_ifs()));
        let bridged_mac = ok(&mac_timeout(&format!("{}{FO}", transparent_ifs())));
        assert_ne!(failover_config_hash(&bridged), failover_config_hash(&bridged_mac));
        assert_ne!(failover_config_hash(&bridged), failover_config_hash(&routed));
        let text = canonical_text(&bridged_mac);
        assert!(text.starts_with("twinwall-config-hash/1\nmode=transparent\n"), "{text}");
        assert!(text.contains("\n address=-\n") && text.contains("\nlimit max_macs=7\n"), "{text}");
    }
}
