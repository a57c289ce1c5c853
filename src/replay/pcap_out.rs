//! Writing classic pcap: Ethernet link type, microsecond timestamps, little
//! endian whatever the host, so the same frames give the same bytes anywhere.

use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::ReplayError;
use crate::time::Instant;

/// Larger than any frame the appliance handles (`frame::MAX_FRAME`), as
/// tcpdump's default snap length.
const SNAPLEN: u32 = 262_144;

fn header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

/// The whole file as bytes: `frames` are `(time, Ethernet frame)` in order.
pub fn encode<'a, I>(frames: I) -> Vec<u8>
where
    I: IntoIterator<Item = (Instant, &'a [u8])>,
{
    // Writing to a Vec cannot fail, and every frame is under SNAPLEN.
    let mut w = PcapWriter::with_header(Vec::new(), header()).expect("writing to a Vec");
    for (t, data) in frames {
        let ts = std::time::Duration::from_micros(t.as_micros());
        let len = data.len().min(SNAPLEN as usize);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data[..len])).expect("writing to a Vec");
    }
    w.into_writer()
}

/// Write [`encode`]d frames to `path`.
pub fn write_file<'a, I>(path: &Path, frames: I) -> Result<(), ReplayError>
where
    I: IntoIterator<Item = (Instant, &'a [u8])>,
{
    std::fs::write(path, encode(frames)).map_err(|source| ReplayError::Io { path: path.to_owned(), source })
}
