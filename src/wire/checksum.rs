//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Ones'-complement sum of `data` folded into 32 bits, not yet complemented.
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// Fold a 32-bit accumulator to 16 bits and complement it.
pub fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` (e.g. an IPv4 header with its checksum field zero).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// The IPv4 pseudo-header sum for TCP/UDP.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    sum(&src, 0) + sum(&dst, 0) + proto as u32 + len as u32
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for a 16-bit field changing from
/// `old` to `new`. Unlike eqn. 2 this never yields 0xFFFF from a non-0xFFFF
/// start, which matters for UDP where 0 means "no checksum".
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = (!hc as u32) + (!old as u32 & 0xffff) + new as u32;
    finish(acc)
}

/// [`update16`] for a 32-bit field such as an IPv4 address.
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    update16(hc, old as u16, new as u16)
}

/// [`update32`] for a *partial* checksum: with Linux's CHECKSUM_PARTIAL
/// (a vnet_hdr frame with NEEDS_CSUM) the field holds the pseudo-header sum,
/// folded and not complemented, and the sender adds the L4 bytes later. An
/// address is in the pseudo-header, so the sum moves by `new - old`:
/// `P' = P + ~old + new`, which is eqn. 3 on the complement. This is
/// `inet_proto_csum_replace4(.., pseudohdr = true)` on a CHECKSUM_PARTIAL
/// skb (net/core/utils.c). A port is not in the pseudo-header and must not
/// touch a partial sum: the sender sums the port bytes themselves.
pub fn update_partial32(p: u16, old: u32, new: u32) -> u16 {
    !update32(!p, old, new)
}

/// The checksum a sender stores for a partial sum: the complement of the
/// sum of `data` (from `csum_start` to the end, the field holding the
/// pseudo-header sum), zero sent as all ones as Linux's
/// `skb_checksum_help` does (RFC 768's "no checksum" for UDP; an equal
/// value for TCP).
pub fn complete(data: &[u8]) -> u16 {
    match finish(sum(data, 0)) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example bytes.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut hdr = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 192, 168, 10, 10, 8, 8, 8, 8];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
        let old = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new = u32::from_be_bytes([203, 0, 113, 1]);
        let inc = update32(c, old, new);
        hdr[12..16].copy_from_slice(&new.to_be_bytes());
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&hdr));
        // TTL decrement as a 16-bit word (TTL, proto).
        hdr[10..12].copy_from_slice(&inc.to_be_bytes());
        let inc2 = update16(inc, u16::from_be_bytes([64, 1]), u16::from_be_bytes([63, 1]));
        hdr[8] = 63;
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc2, checksum(&hdr));
    }

    #[test]
    fn odd_length() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
    }

    #[test]
    fn partial_update_moves_the_pseudo_header_sum() {
        let (src, dst) = ([192, 168, 10, 10], [8, 8, 8, 8]);
        let p = finish(pseudo_v4(src, dst, 6, 1000)) ^ 0xffff;
        let new = [203, 0, 113, 1];
        let p2 = update_partial32(p, u32::from_be_bytes(src), u32::from_be_bytes(new));
        assert_eq!(p2, !finish(pseudo_v4(new, dst, 6, 1000)));
    }
}
