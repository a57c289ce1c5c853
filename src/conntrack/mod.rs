//! Connection tracking: the table, TCP windows, and the timeouts that
//! follow from a connection's state.

pub mod key;
pub mod table;
pub mod tcp;

use crate::config::types::proto;
use crate::config::Timeouts;
use crate::time::Duration;
pub use key::{Dir, FlowKey, KeyV4};
pub use table::{Conn, ConnState, InsertError, Table};

/// How long an entry lives after its last packet, by state.
pub fn timeout_for<K: FlowKey>(c: &Conn<K>, t: &Timeouts) -> Duration {
    match c.state {
        ConnState::Tcp => match tcp::phase(&c.tcp) {
            tcp::ConnPhase::Opening => t.tcp_syn,
            tcp::ConnPhase::Established => t.tcp_established,
            tcp::ConnPhase::Closing => t.tcp_fin,
            tcp::ConnPhase::TimeWait => t.tcp_time_wait,
            tcp::ConnPhase::Reset => t.tcp_closed,
        },
        ConnState::Unreplied | ConnState::Assured if c.key[0].proto() == proto::ICMP => t.icmp,
        ConnState::Unreplied => t.udp_unreplied,
        ConnState::Assured => t.udp,
        ConnState::Free => Duration::ZERO,
    }
}

/// A short human label for `show conn`.
pub fn state_label<K>(c: &Conn<K>) -> &'static str {
    match c.state {
        ConnState::Tcp => match tcp::phase(&c.tcp) {
            tcp::ConnPhase::Opening => "SYN",
            tcp::ConnPhase::Established => "UIO",
            tcp::ConnPhase::Closing => "FIN",
            tcp::ConnPhase::TimeWait => "TIME_WAIT",
            tcp::ConnPhase::Reset => "RST",
        },
        ConnState::Unreplied => "U",
        ConnState::Assured => "UIO",
        ConnState::Free => "-",
    }
}
