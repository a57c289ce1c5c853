//! The ARP table as a replicated table (kind 2), so a new active knows
//! every next hop's MAC and forwards its first frame without asking.
//!
//! Record: address (4), MAC (6), interface (1). The id is the address.

use crate::arp::ArpCache;
use crate::config::{IfIndex, Mac};
use crate::ha::table::{Merge, ReplicatedTable};
use crate::ha::wire::Op;
use crate::time::Instant;

pub const KIND: u16 = 2;
pub const RECORD_LEN: usize = 11;

pub struct ArpSync<'a> {
    pub arp: &'a mut ArpCache,
}

impl ReplicatedTable for ArpSync<'_> {
    fn kind(&self) -> u16 {
        KIND
    }

    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
        let e = self.arp.resolved(id as u32)?;
        out.extend_from_slice(&(id as u32).to_be_bytes());
        out.extend_from_slice(&e.mac.0);
        out.push(e.iface.0);
        Some(0)
    }

    fn merge(&mut self, op: Op, id: u64, _version: u32, bytes: &[u8], now: Instant) -> Merge {
        match op {
            Op::Delete => {
                if self.arp.forget(id as u32) {
                    Merge::Applied
                } else {
                    Merge::StaleIgnored
                }
            }
            Op::Insert | Op::Update => {
                if bytes.len() < RECORD_LEN {
                    return Merge::Malformed;
                }
                let ip = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let mut mac = Mac::ZERO;
                mac.0.copy_from_slice(&bytes[4..10]);
                self.arp.learn(ip, mac, IfIndex(bytes[10]), now, true);
                Merge::Applied
            }
            Op::Request => Merge::StaleIgnored,
        }
    }

    fn ids(&self, out: &mut Vec<u64>) {
        out.extend(
            self.arp
                .entries()
                .into_iter()
                .filter(|(_, e)| e.state == crate::arp::EntryState::Resolved)
                .map(|(ip, _)| ip as u64),
        );
    }
}
