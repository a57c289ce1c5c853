//! What `twinwall show ...` prints: typed reports, rendered as ASA-like text
//! for people and as JSON for scripts.

use std::fmt::Write;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowWhat {
    Conn,
    Xlate,
    Arp,
    Route,
    Interface,
    Counters,
    Failover,
    Mac,
}

impl ShowWhat {
    pub const NAMES: &'static [&'static str] =
        &["conn", "xlate", "arp", "route", "interface", "counters", "failover", "mac-address-table"];
    pub fn parse(s: &str) -> Option<ShowWhat> {
        Some(match s {
            "conn" => ShowWhat::Conn,
            "xlate" => ShowWhat::Xlate,
            "arp" => ShowWhat::Arp,
            "route" => ShowWhat::Route,
            "interface" => ShowWhat::Interface,
            "counters" => ShowWhat::Counters,
            "failover" => ShowWhat::Failover,
            "mac-address-table" => ShowWhat::Mac,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnLine {
    pub proto: String,
    /// Interface and real address of the side that opened the connection.
    pub from_if: String,
    pub from: String,
    /// Interface and real address of the side that answered.
    pub to_if: String,
    pub to: String,
    /// The initiator as the responder sees it (after source NAT).
    pub from_mapped: String,
    /// The responder as the initiator addressed it (before destination NAT).
    pub to_mapped: String,
    pub state: String,
    pub idle_ms: u64,
    pub expires_in_ms: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnReport {
    pub in_use: u64,
    pub max: u64,
    pub most_used: u64,
    /// Bytes held by the table, entries and indexes and NAT bindings.
    pub memory_bytes: u64,
    pub bytes_per_conn: u64,
    pub conns: Vec<ConnLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct XlateLine {
    pub kind: String,
    pub proto: String,
    pub real: String,
    pub mapped: String,
    pub in_if: String,
    pub out_if: String,
    pub conns: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct XlateReport {
    pub in_use: u64,
    pub xlates: Vec<XlateLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArpLine {
    pub interface: String,
    pub ip: String,
    pub mac: String,
    pub age_s: u64,
    pub state: String,
}

/// A MAC table entry (transparent mode).
#[derive(Clone, Debug, Serialize)]
pub struct MacLine {
    pub bridge_group: String,
    pub interface: String,
    pub mac: String,
    /// "dynamic" (learned) or "static" (configured).
    pub kind: String,
    /// Seconds since a frame from the station (or since the takeover that
    /// adopted the entry).
    pub age_s: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteLine {
    pub kind: String,
    pub destination: String,
    pub gateway: Option<String>,
    pub interface: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct InterfaceLine {
    pub name: String,
    pub tap: String,
    pub mac: String,
    pub address: String,
    pub security_level: u8,
    pub mtu: u16,
    pub counters: crate::stats::IfCounters,
}

#[derive(Clone, Debug, Serialize)]
pub struct CountersReport {
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    pub events: crate::stats::Events,
    pub interfaces: std::collections::BTreeMap<String, crate::stats::IfCounters>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct FailoverIface {
    pub name: String,
    pub monitored: bool,
    /// "up", "down" or "unknown", for this unit and as the peer reports.
    pub local: String,
    pub peer: String,
    pub last_peer_hello_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct FailoverTable {
    pub name: String,
    pub local: u64,
    pub peer: u64,
}

/// Microseconds from the last hello heard to each takeover step.
#[derive(Clone, Debug, Serialize, Default)]
pub struct TakeoverBreakdown {
    pub cause: String,
    /// From the last hello heard to the decision: the hold time plus how
    /// late the loop ran the timer.
    pub detect_us: u64,
    /// Commit: records still queued at the decision and applied before the
    /// claim (deltas are applied on arrival, so usually none).
    pub pending_records: u64,
    /// Connections and ARP entries inherited.
    pub conns: u64,
    pub arp_entries: u64,
    /// Claim: gratuitous ARPs and next-hop probes built.
    pub announce_frames: u64,
    /// The decision, commit, role flip and claim as one core step, timed by
    /// the shell (the core reads no clock); `None` where nobody timed it.
    pub step_us: Option<u64>,
    /// From the decision until the claim's frames were written to the
    /// TAPs, timed by the shell.
    pub on_wire_us: Option<u64>,
    /// From the last hello heard to the first frame forwarded.
    pub first_forward_us: Option<u64>,
    /// Transparent mode: switch-refresh frames of the takeover's first round.
    pub switch_refresh_frames: Option<u64>,
}

impl TakeoverBreakdown {
    /// One line, for `show failover` and the log.
    pub fn line(&self) -> String {
        let us = |v: Option<u64>| v.map_or("-".to_string(), |u| format!("{u} us"));
        format!(
            "detected {} us after the last hello; commit {} pending record(s), role flip, claim with {} frame(s) in a \
             {} step ({} connections, {} ARP entries inherited); claim on the wire {} after the decision; first \
             forward {} after the last hello",
            self.detect_us,
            self.pending_records,
            self.announce_frames,
            us(self.step_us),
            self.conns,
            self.arp_entries,
            us(self.on_wire_us),
            us(self.first_forward_us)
        )
    }
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct FailoverReport {
    pub configured: bool,
    pub unit: String,
    pub role: String,
    pub peer_role: String,
    pub last_peer_hello_ms: Option<u64>,
    pub failover_link: String,
    pub interfaces: Vec<FailoverIface>,
    pub seq_sent: u32,
    pub seq_acked: u32,
    pub lag_records: u64,
    pub lag_ms: u64,
    pub bulk: String,
    pub tables: Vec<FailoverTable>,
    /// Connections a failover right now would lose: changes not yet acknowledged.
    pub at_risk: u64,
    pub last_takeover: Option<TakeoverBreakdown>,
    pub counters: std::collections::BTreeMap<String, u64>,
    pub history: Vec<String>,
}

/// Reports are built on request, never per frame: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Report {
    Conn(ConnReport),
    Xlate(XlateReport),
    Arp(Vec<ArpLine>),
    Route(Vec<RouteLine>),
    Interface(Vec<InterfaceLine>),
    Counters(CountersReport),
    Failover(FailoverReport),
    Mac(Vec<MacLine>),
}

impl Report {
    pub fn json(&self) -> serde_json::Value {
        let v = match self {
            Report::Conn(r) => serde_json::to_value(r),
            Report::Xlate(r) => serde_json::to_value(r),
            Report::Arp(r) => serde_json::to_value(r),
            Report::Route(r) => serde_json::to_value(r),
            Report::Interface(r) => serde_json::to_value(r),
            Report::Counters(r) => serde_json::to_value(r),
            Report::Failover(r) => serde_json::to_value(r),
            Report::Mac(r) => serde_json::to_value(r),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        match self {
            Report::Conn(r) => {
                let _ = writeln!(s, "{} in use, {} most used, {} maximum", r.in_use, r.most_used, r.max);
                let _ = writeln!(s, "table memory {} bytes, {} bytes per connection", r.memory_bytes, r.bytes_per_conn);
                if (r.conns.len() as u64) < r.in_use {
                    let _ = writeln!(s, "(listing the first {} of {})", r.conns.len(), r.in_use);
                }
                for c in &r.conns {
                    let src_nat =
                        if c.from_mapped != c.from { format!(" as {}", c.from_mapped) } else { String::new() };
                    let dst_nat = if c.to_mapped != c.to { format!(" via {}", c.to_mapped) } else { String::new() };
                    let _ = writeln!(
                        s,
                        "{} {} {}{} -> {} {}{}, idle {}, expires in {}, bytes {}, state {}",
                        c.proto,
                        c.from_if,
                        c.from,
                        src_nat,
                        c.to_if,
                        c.to,
                        dst_nat,
                        crate::time::Duration::from_millis(c.idle_ms),
                        crate::time::Duration::from_millis(c.expires_in_ms),
                        c.bytes,
                        c.state
                    );
                }
            }
            Report::Xlate(r) => {
                let _ = writeln!(s, "{} in use", r.in_use);
                for x in &r.xlates {
                    let _ = writeln!(
                        s,
                        "{} {} from {}:{} to {}:{} conns {}",
                        x.kind, x.proto, x.in_if, x.real, x.out_if, x.mapped, x.conns
                    );
                }
            }
            Report::Arp(lines) => {
                for a in lines {
                    let _ = writeln!(s, "  {} {} {} {} {}", a.interface, a.ip, a.mac, a.age_s, a.state);
                }
            }
            Report::Mac(lines) => {
                let _ = writeln!(s, "  {:<12} {:<12} {:<17}  {:<8} age", "group", "interface", "mac address", "type");
                for m in lines {
                    let _ = writeln!(
                        s,
                        "  {:<12} {:<12} {:<17}  {:<8} {} s",
                        m.bridge_group, m.interface, m.mac, m.kind, m.age_s
                    );
                }
            }
            Report::Route(lines) => {
                let _ = writeln!(s, "Codes: C - connected, S - static\n");
                for r in lines {
                    match &r.gateway {
                        Some(g) => {
                            let _ = writeln!(s, "{}    {} via {}, {}", r.kind, r.destination, g, r.interface);
                        }
                        None => {
                            let _ =
                                writeln!(s, "{}    {} is directly connected, {}", r.kind, r.destination, r.interface);
                        }
                    }
                }
            }
            Report::Interface(lines) => {
                for i in lines {
                    let c = &i.counters;
                    let _ = writeln!(s, "Interface {} \"{}\", is up, line protocol is up", i.tap, i.name);
                    let _ = writeln!(s, "  MAC address {}, MTU {}", i.mac, i.mtu);
                    let _ = writeln!(s, "  IP address {}, security level {}", i.address, i.security_level);
                    let _ = writeln!(s, "  {} packets input, {} bytes", c.rx_frames, c.rx_bytes);
                    let _ = writeln!(s, "  {} packets output, {} bytes", c.tx_frames, c.tx_bytes);
                    let _ = writeln!(s, "  {} packets dropped", c.drops);
                }
            }
            Report::Failover(r) => failover_text(&mut s, r),
            Report::Counters(r) => {
                let _ = writeln!(s, "Drops:");
                for (k, v) in &r.drops {
                    let _ = writeln!(s, "  {k:<28} {v}");
                }
                let _ = writeln!(s, "Events:");
                if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&r.events) {
                    for (k, v) in m {
                        if v.as_u64() != Some(0) {
                            let _ = writeln!(s, "  {k:<28} {v}");
                        }
                    }
                }
                let _ = writeln!(s, "Interfaces:");
                for (name, c) in &r.interfaces {
                    let _ = writeln!(
                        s,
                        "  {name:<12} rx {} frames {} bytes, tx {} frames {} bytes, drops {}",
                        c.rx_frames, c.rx_bytes, c.tx_frames, c.tx_bytes, c.drops
                    );
                }
            }
        }
        s
    }
}

fn failover_text(s: &mut String, r: &FailoverReport) {
    if !r.configured {
        let _ = writeln!(s, "Failover Off (no [failover] section)");
        return;
    }
    let ago = |v: Option<u64>| v.map_or("never".to_string(), |ms| format!("{ms} ms ago"));
    let _ = writeln!(s, "Failover On");
    let _ = writeln!(s, "This host: {} - {}", r.unit, r.role);
    let _ = writeln!(s, "Other host: {} (last hello {})", r.peer_role, ago(r.last_peer_hello_ms));
    let _ = writeln!(s, "Failover link: {}", r.failover_link);
    for i in &r.interfaces {
        let _ = writeln!(
            s,
            "  Interface {} ({}): this host {}, other host {}, last hello {}",
            i.name,
            if i.monitored { "monitored" } else { "not monitored" },
            i.local,
            i.peer,
            ago(i.last_peer_hello_ms)
        );
    }
    let _ = writeln!(
        s,
        "Stateful replication: seq sent {}, acknowledged {}, lag {} records / {} ms, bulk sync {}",
        r.seq_sent, r.seq_acked, r.lag_records, r.lag_ms, r.bulk
    );
    let _ = writeln!(s, "  a failover now would lose {} connection changes", r.at_risk);
    for t in &r.tables {
        let _ = writeln!(s, "  {:<12} this host {:>8}   other host {:>8}", t.name, t.local, t.peer);
    }
    if let Some(t) = &r.last_takeover {
        let _ = writeln!(s, "Last takeover ({}): {}", t.cause, t.line());
        if let Some(n) = t.switch_refresh_frames {
            let _ = writeln!(s, "  switch refresh: {n} frames, for every MAC table station and connection endpoint");
        }
    }
    for (k, v) in &r.counters {
        if *v > 0 {
            let _ = writeln!(s, "  {k:<28} {v}");
        }
    }
    for h in &r.history {
        let _ = writeln!(s, "  {h}");
    }
}
