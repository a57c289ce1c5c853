//! `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h), the 10 bytes a
//! TAP with `IFF_VNET_HDR` puts in front of every frame in both directions.
//! Legacy virtio fields are in the host's byte order (TUNSETVNETLE/BE only
//! matter for a guest of the other endianness, which we are not).

use twinwall::frame::Offload;

/// Bytes of the header; set on the TAP with TUNSETVNETHDRSZ. (12 would add
/// `num_buffers`, which only mergeable-buffer virtio guests use.)
pub const LEN: usize = 10;

mod field {
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: core::ops::Range<usize> = 2..4;
    pub const GSO_SIZE: core::ops::Range<usize> = 4..6;
    pub const CSUM_START: core::ops::Range<usize> = 6..8;
    pub const CSUM_OFFSET: core::ops::Range<usize> = 8..10;
}

fn ne16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_ne_bytes([b[r.start], b[r.start + 1]])
}

/// The offload of the frame behind header `h` (at least [`LEN`] bytes).
pub fn decode(h: &[u8]) -> Offload {
    Offload {
        flags: h[field::FLAGS],
        gso_type: h[field::GSO_TYPE],
        hdr_len: ne16(h, field::HDR_LEN),
        gso_size: ne16(h, field::GSO_SIZE),
        csum_start: ne16(h, field::CSUM_START),
        csum_offset: ne16(h, field::CSUM_OFFSET),
    }
}

/// The header to send in front of a frame with offload `o`.
pub fn encode(o: &Offload) -> [u8; LEN] {
    let mut h = [0u8; LEN];
    h[field::FLAGS] = o.flags;
    h[field::GSO_TYPE] = o.gso_type;
    h[field::HDR_LEN].copy_from_slice(&o.hdr_len.to_ne_bytes());
    h[field::GSO_SIZE].copy_from_slice(&o.gso_size.to_ne_bytes());
    h[field::CSUM_START].copy_from_slice(&o.csum_start.to_ne_bytes());
    h[field::CSUM_OFFSET].copy_from_slice(&o.csum_offset.to_ne_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let o = Offload {
            flags: Offload::NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4 | Offload::GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let h = encode(&o);
        assert_eq!(decode(&h), o);
        // Little-endian x86: what a tcpdump of the TAP's fd shows.
        #[cfg(target_endian = "little")]
        assert_eq!(h, [1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(decode(&[0; LEN]), Offload::default());
    }
}
