//! twinwall: a userspace stateful firewall appliance.
//!
//! This library is the sans-IO core ([`appliance::Appliance`]) and the
//! offline drivers built on it (pcap replay). The `twinwall` binary adds the
//! only code that touches file descriptors, signals and the clock.

pub mod appliance;
pub mod config;
pub mod control;
pub mod drop;
pub mod entropy;
pub mod frame;
pub mod ha;
pub mod show;
pub mod stats;
pub mod time;

pub use appliance::{Appliance, Command, Event, Output};
pub use config::{Config, IfIndex};
pub use time::{Duration, Instant};
