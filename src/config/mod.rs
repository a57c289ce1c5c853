//! The validated configuration. [`file`] turns TOML text into a [`Config`] or
//! a list of errors that name file, line and column; everything after that
//! works on these types and never sees an unchecked value.

mod file;
pub mod types;

use std::net::Ipv4Addr;

pub use file::{failover_config_hash, parse, ConfigError};
pub use types::{Ipv4Net, Mac, PortRange};

use crate::time::Duration;

/// Index of an interface in `Config::interfaces`, and of its port in the
/// appliance. Stable for the life of a process (reload may not reorder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IfIndex(pub u8);

impl IfIndex {
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A layer-3 hop: interfaces have addresses, frames are routed.
    Routed,
    /// A bump in the wire (ASA transparent mode): all interfaces form one
    /// bridge, frames keep their MACs, addresses and TTL; the same ACLs,
    /// security levels and connection tracking apply. No routes, no NAT.
    Transparent,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub hostname: String,
    pub mode: Mode,
    pub control_socket: String,
    pub interfaces: Vec<InterfaceCfg>,
    pub routes: Vec<RouteCfg>,
    /// Ordered rules per interface, for traffic entering it; `None` means the
    /// interface has no ACL and security levels decide.
    pub acls: Vec<Option<Vec<AclRule>>>,
    pub nat: Vec<NatRule>,
    /// Transparent mode's bridges (empty in routed mode); every interface is
    /// in exactly one.
    pub bridge_groups: Vec<BridgeGroup>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Active/standby pairing; `None` runs a single unit.
    pub failover: Option<FailoverCfg>,
}

pub use crate::ha::Unit;

/// Where the failover key comes from. The shell reads a `File` and hands
/// the core an `Inline` key: the core never opens files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A passphrase of 16+ characters, or 64 hex digits.
    Inline(String),
    /// Path of a file holding such a key (surrounding whitespace ignored).
    File(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FailoverCfg {
    pub unit: Unit,
    /// Host network interface of the failover link (e.g. "fo0").
    pub interface: String,
    pub local: Ipv4Addr,
    pub peer: Ipv4Addr,
    /// UDP port of the unicast delta stream.
    pub port: u16,
    pub hello_group: Ipv4Addr,
    pub hello_port: u16,
    pub key: KeySource,
    /// Hello interval on the failover link.
    pub poll: Duration,
    /// Peer declared dead after this long without a hello on any path.
    pub hold: Duration,
    /// Hello interval and hold time on monitored data interfaces.
    pub interface_poll: Duration,
    pub interface_hold: Duration,
    /// Take the active role back after this delay when this unit is the
    /// primary and healthy; `None` means never (the default).
    pub preempt: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceCfg {
    pub name: String,
    pub tap: String,
    pub mac: Mac,
    /// The appliance's address and connected subnet: always `Some` in routed
    /// mode, always `None` in transparent mode (the bridge has no address).
    pub address: Option<Ipv4Net>,
    pub security_level: u8,
    pub mtu: u16,
    /// The standby unit's address on this interface (failover only).
    pub standby_address: Option<Ipv4Addr>,
    /// Whether a failure of this interface triggers failover (default true).
    pub monitor: bool,
}

/// Interfaces bridged together (transparent mode, ASA's bridge group).
/// Frames never pass from one group to another.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeGroup {
    pub name: String,
    pub members: Vec<IfIndex>,
    /// The group's management address (ASA's BVI address): the appliance
    /// answers ARP and ping there and sends its ARP probes from it.
    pub address: Option<Ipv4Net>,
    /// The standby unit's management address (failover only).
    pub standby_address: Option<Ipv4Addr>,
    /// Stations pinned to a member interface: never aged or moved; the same
    /// source MAC on another interface is dropped.
    pub static_macs: Vec<(Mac, IfIndex)>,
    /// Other ethertypes bridged without inspection; every other non-IPv4,
    /// non-ARP frame is dropped and counted.
    pub ethertypes: Vec<u16>,
    /// Pass spanning-tree BPDUs (so that switches see a loop through the
    /// pair), or drop them.
    pub bpdu_forward: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteCfg {
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub interface: IfIndex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAction {
    Permit,
    /// Drop silently.
    Deny,
    /// Drop and tell the sender: TCP RST, or ICMP administratively prohibited.
    Reject,
}

/// `None` in a field means "any".
#[derive(Clone, Debug, PartialEq)]
pub struct AclRule {
    pub action: AclAction,
    pub proto: Option<u8>,
    pub src: Ipv4Net,
    pub dst: Ipv4Net,
    pub sport: Option<PortRange>,
    pub dport: Option<PortRange>,
    pub icmp_type: Option<u8>,
    /// 1-based line in the config file, shown by `show counters` hit lists.
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NatRule {
    /// Inside hosts share the outside interface address (or `address`).
    DynamicPat { inside: IfIndex, outside: IfIndex, address: Option<Ipv4Addr> },
    /// One inside host is one outside address, both ways.
    Static { inside: IfIndex, outside: IfIndex, real: Ipv4Addr, mapped: Ipv4Addr },
    /// `mapped:mapped_port` on the outside reaches `real:real_port` inside.
    PortForward {
        inside: IfIndex,
        outside: IfIndex,
        proto: u8,
        mapped: Option<Ipv4Addr>,
        mapped_port: u16,
        real: Ipv4Addr,
        real_port: u16,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Timeouts {
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    pub tcp_fin: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_closed: Duration,
    pub udp: Duration,
    pub udp_unreplied: Duration,
    pub icmp: Duration,
    pub arp: Duration,
    pub fragment: Duration,
    /// MAC table entry lifetime since the station was last heard
    /// (transparent mode).
    pub mac: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(3600),
            tcp_fin: Duration::from_secs(120),
            tcp_time_wait: Duration::from_secs(30),
            tcp_closed: Duration::from_secs(10),
            udp: Duration::from_secs(120),
            udp_unreplied: Duration::from_secs(30),
            icmp: Duration::from_secs(10),
            arp: Duration::from_secs(4 * 3600),
            fragment: Duration::from_secs(30),
            // ASA's `mac-address-table aging-time` default, and Linux's
            // bridge ageing_time.
            mac: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Connections beyond this are refused (counted); existing ones go on.
    pub max_conns: u32,
    /// Frames held while their next hop is being resolved, over all hops.
    pub arp_queue: u32,
    /// First-fragment decisions remembered for the fragments that follow.
    pub max_fragments: u32,
    /// ICMP errors the appliance sends per second, at most (transparent
    /// mode: ARP probes for unknown MACs, which have no ICMP to send).
    pub icmp_rate: u32,
    /// MAC table entries (transparent mode); stations beyond this are not
    /// learned (counted), so a flood of made-up source MACs cannot grow it.
    pub max_macs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_conns: 1_000_000, arp_queue: 256, max_fragments: 4096, icmp_rate: 100, max_macs: 16_384 }
    }
}

impl Config {
    pub fn interface_by_name(&self, name: &str) -> Option<IfIndex> {
        self.interfaces.iter().position(|i| i.name == name).map(|i| IfIndex(i as u8))
    }
    pub fn iface(&self, i: IfIndex) -> &InterfaceCfg {
        &self.interfaces[i.idx()]
    }
}
