//! twinwall: a userspace stateful firewall appliance.
//!
//! This library is the sans-IO core ([`appliance::Appliance`]) and the
//! offline drivers built on it (pcap replay). The `twinwall` binary adds the
//! only code that touches file descriptors, signals and the clock.

pub mod acl;
pub mod appliance;
pub mod arp;
pub mod bridge;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod drop;
pub mod emit;
pub mod entropy;
pub mod failover;
pub mod frame;
pub mod ha;
pub mod nat;
pub mod offload;
pub mod pdesc;
pub mod replay;
pub mod route;
pub mod show;
pub mod stats;
#[doc(hidden)]
pub mod testkit;
pub mod time;
pub mod wire;

pub use appliance::{Appliance, Command, Event, Output};
pub use config::{Config, IfIndex};
pub use time::{Duration, Instant};
