//! Errors of the replay driver (firecracker style: the doc comment is the
//! message, `Display` is written by hand). Each one names the file and, where
//! there is one, the 1-based packet number, as Wireshark counts them.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::time::Instant;

#[derive(Debug)]
pub enum ReplayError {
    /// Couldn't read or write {path}: {source}
    Io { path: PathBuf, source: io::Error },
    /// {path} is neither pcap nor pcapng (its magic number is {magic:#010x})
    NotACapture { path: PathBuf, magic: u32 },
    /// {path}: the file header is bad: {why}
    BadHeader { path: PathBuf, why: String },
    /// {path}: packet {packet}: {why}
    BadPacket { path: PathBuf, packet: usize, why: String },
    /// {path}: packet {packet}: link type {linktype} is not supported (only Ethernet, Linux SLL/SLL2, NULL/LOOP and RAW)
    UnsupportedLinkType { path: PathBuf, packet: usize, linktype: u32 },
    /// Input {path} is for interface `{iface}`, which the configuration does not have
    NoSuchInterface { path: PathBuf, iface: String },
    /// The appliance keeps asking for a timer at {at:?} after handling it: its poll_timeout() does not advance
    TimerStuck { at: Instant },
    /// Couldn't render {path} as JSON: {source}
    Json { path: PathBuf, source: serde_json::Error },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReplayError::*;
        match self {
            Io { path, source } => write!(f, "couldn't read or write {}: {source}", path.display()),
            NotACapture { path, magic } => {
                write!(f, "{} is neither pcap nor pcapng (its magic number is {magic:#010x})", path.display())
            }
            BadHeader { path, why } => write!(f, "{}: the file header is bad: {why}", path.display()),
            BadPacket { path, packet, why } => write!(f, "{}: packet {packet}: {why}", path.display()),
            UnsupportedLinkType { path, packet, linktype } => write!(
                f,
                "{}: packet {packet}: link type {linktype} is not supported \
                 (only Ethernet, Linux SLL/SLL2, NULL/LOOP and RAW)",
                path.display()
            ),
            NoSuchInterface { path, iface } => {
                write!(f, "input {} is for interface `{iface}`, which the configuration does not have", path.display())
            }
            TimerStuck { at } => write!(
                f,
                "the appliance keeps asking for a timer at {}us after handling it: its poll_timeout() does not advance",
                at.as_micros()
            ),
            Json { path, source } => write!(f, "couldn't render {} as JSON: {source}", path.display()),
        }
    }
}

impl std::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplayError::Io { source, .. } => Some(source),
            ReplayError::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}
