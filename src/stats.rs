//! Named counters, per interface and per drop reason (firecracker's
//! `metrics.rs`, VPP's error counters). Plain integers: the appliance is
//! single-threaded.

use std::collections::BTreeMap;

use crate::drop::DropReason;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IfCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

/// Events worth counting that are not drops.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Events {
    pub conns_created: u64,
    pub conns_closed: u64,
    pub conns_expired: u64,
    pub conns_replaced: u64,
    pub xlates_created: u64,
    pub arp_requests_sent: u64,
    pub arp_replies_sent: u64,
    pub arp_learned: u64,
    pub garp_sent: u64,
    pub icmp_echo_replies: u64,
    pub icmp_errors_sent: u64,
    pub icmp_errors_rate_limited: u64,
    pub tcp_resets_sent: u64,
    pub fragments_forwarded: u64,
    pub frames_forwarded: u64,
    pub reloads: u64,
    /// Transparent mode: frames copied to every other port (broadcast or
    /// unknown destination), stations learned, moved between ports, not
    /// learned for a full table, aged out; switch-refresh frames sent.
    pub frames_flooded: u64,
    pub macs_learned: u64,
    pub mac_moves: u64,
    pub mac_table_full: u64,
    pub macs_aged: u64,
    pub mac_refresh_sent: u64,
}

#[derive(Clone, Debug)]
pub struct Counters {
    pub drops: [u64; DropReason::COUNT],
    pub ifaces: Vec<IfCounters>,
    pub events: Events,
}

impl Counters {
    pub fn new(n_ifaces: usize) -> Self {
        Counters {
            drops: [0; DropReason::COUNT],
            ifaces: vec![IfCounters::default(); n_ifaces],
            events: Events::default(),
        }
    }

    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Drops by name, zeros left out; sorted, so output is stable.
    pub fn drop_map(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .filter(|d| self.drops[**d as usize] > 0)
            .map(|d| (d.name(), self.drops[*d as usize]))
            .collect()
    }
}
