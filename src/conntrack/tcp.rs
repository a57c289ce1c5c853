//! TCP tracking with sequence windows, after pf's `pf_tcp_track_full`
//! (Guido van Rooij, "Real Stateful TCP Packet Filtering in IP Filter"):
//! a segment passes only if its sequence numbers lie within what the peer
//! could have been told it may send, and its ack within what was sent.

use crate::drop::DropReason;
use crate::pdesc::TcpInfo;
use crate::wire::tcp::{ACK_FLAG, FIN, PSH, RST, SYN, URG};

/// Per-peer state, in the order a connection moves through (never back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum PeerState {
    #[default]
    Closed = 0,
    SynSent = 1,
    Established = 2,
    /// Sent a FIN.
    Closing = 3,
    /// Its FIN was acknowledged.
    FinWait2 = 4,
    /// Reset: the connection is dead either way.
    Reset = 5,
}

impl PeerState {
    pub fn from_u8(v: u8) -> PeerState {
        match v {
            1 => PeerState::SynSent,
            2 => PeerState::Established,
            3 => PeerState::Closing,
            4 => PeerState::FinWait2,
            5 => PeerState::Reset,
            _ => PeerState::Closed,
        }
    }
}

/// The window scale option was seen (pf's PF_WSCALE_FLAG).
const WSCALE_SEEN: u8 = 0x80;
const WSCALE_MASK: u8 = 0x0f;
/// Largest ack skew accepted (pf's MAXACKWINDOW: a window plus a segment).
const MAX_ACK_WINDOW: i64 = 65535 + 1500;

/// One side of a TCP connection, 12 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpPeer {
    /// Highest sequence number this peer has sent (its next expected).
    pub seqlo: u32,
    /// Highest sequence number this peer may send (the other's ack + window).
    pub seqhi: u32,
    /// Largest unscaled window this peer has advertised.
    pub max_win: u16,
    pub wscale: u8,
    pub state: PeerState,
}

#[inline]
fn seq_geq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}
#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Segments whose flags no conforming stack sends.
pub fn flags_valid(flags: u8) -> bool {
    let f = flags & (SYN | FIN | RST | ACK_FLAG | PSH | URG);
    if f & SYN != 0 && f & (FIN | RST) != 0 {
        return false;
    }
    if f == 0 {
        return false; // null scan
    }
    // FIN, PSH or URG without ACK (Xmas and FIN scans); RST alone is fine.
    if f & ACK_FLAG == 0 && f & (FIN | PSH | URG) != 0 {
        return false;
    }
    true
}

/// A connection's first segment, a SYN: set up the initiator's side.
pub fn init_orig(seg: &TcpInfo) -> [TcpPeer; 2] {
    let src = TcpPeer {
        seqlo: seg.seq,
        seqhi: seg.seq.wrapping_add(seg.payload + 1),
        max_win: seg.win.max(1),
        wscale: seg.wscale.map(|w| w | WSCALE_SEEN).unwrap_or(0),
        state: PeerState::SynSent,
    };
    let dst = TcpPeer { seqlo: 0, seqhi: 1, max_win: 1, wscale: 0, state: PeerState::Closed };
    [src, dst]
}

/// Track one segment from `peers[s]` to `peers[1 - s]`.
pub fn track(peers: &mut [TcpPeer; 2], s: usize, seg: &TcpInfo) -> Result<(), DropReason> {
    let d = 1 - s;
    let flags = seg.flags;
    let (mut src, mut dst) = (peers[s], peers[d]);
    if src.state == PeerState::Reset || dst.state == PeerState::Reset {
        return Err(DropReason::TcpClosed);
    }
    let (sws, dws) = if src.wscale & WSCALE_SEEN != 0 && dst.wscale & WSCALE_SEEN != 0 && flags & SYN == 0 {
        ((src.wscale & WSCALE_MASK) as u32, (dst.wscale & WSCALE_MASK) as u32)
    } else {
        (0, 0)
    };
    let seq = seg.seq;
    let mut end = seq.wrapping_add(seg.payload);
    if flags & SYN != 0 {
        end = end.wrapping_add(1);
    }
    if flags & FIN != 0 {
        end = end.wrapping_add(1);
    }
    if src.state == PeerState::Closed {
        // First segment from this side: the responder's SYN/ACK.
        if flags & SYN == 0 {
            return Err(DropReason::TcpNoSyn);
        }
        match seg.wscale {
            Some(w) if dst.wscale & WSCALE_SEEN != 0 => src.wscale = w | WSCALE_SEEN,
            // RFC 7323: scaling holds only if both sides offered it.
            _ => {
                src.wscale = 0;
                dst.wscale = 0;
            }
        }
        src.seqlo = seq;
        src.state = PeerState::SynSent;
        src.seqhi = end.wrapping_add((dst.max_win as u32).max(1));
        src.max_win = seg.win.max(1);
    }
    let ack = if flags & ACK_FLAG == 0 { dst.seqlo } else { seg.ack };
    let win = (seg.win as u32) << sws;
    let ackskew = dst.seqlo.wrapping_sub(ack) as i32 as i64;
    let max_back = ((dst.max_win as u32) << dws).max(1);
    let in_window = seq_geq(src.seqhi, end)
        && seq_geq(seq, src.seqlo.wrapping_sub(max_back))
        && ackskew >= -MAX_ACK_WINDOW
        && ackskew <= MAX_ACK_WINDOW << sws;
    if !in_window {
        return Err(DropReason::TcpOutOfWindow);
    }
    if seg.win > src.max_win {
        src.max_win = seg.win;
    }
    if seq_gt(end, src.seqlo) {
        src.seqlo = end;
    }
    if flags & ACK_FLAG != 0 && seq_geq(ack.wrapping_add(win), dst.seqhi) {
        dst.seqhi = ack.wrapping_add(win.max(1));
    }
    if flags & SYN != 0 && src.state < PeerState::SynSent {
        src.state = PeerState::SynSent;
    }
    if flags & FIN != 0 && src.state < PeerState::Closing {
        src.state = PeerState::Closing;
    }
    if flags & ACK_FLAG != 0 {
        if dst.state == PeerState::SynSent {
            dst.state = PeerState::Established;
        } else if dst.state == PeerState::Closing && seq_geq(ack, dst.seqlo) {
            dst.state = PeerState::FinWait2;
        }
    }
    if flags & RST != 0 {
        src.state = PeerState::Reset;
        dst.state = PeerState::Reset;
    }
    peers[s] = src;
    peers[d] = dst;
    Ok(())
}

/// The first segment of a direction after this unit took over a
/// connection from its peer: the windows it has may lag behind by whatever
/// flowed since the last sync, so they are re-anchored on this segment
/// instead of checked (pf's "sloppy" idea, for one segment only). State
/// still only moves forward, and a dead connection stays dead.
pub fn track_loose(peers: &mut [TcpPeer; 2], s: usize, seg: &TcpInfo) -> Result<(), DropReason> {
    let d = 1 - s;
    let (mut src, mut dst) = (peers[s], peers[d]);
    if src.state == PeerState::Reset || dst.state == PeerState::Reset {
        return Err(DropReason::TcpClosed);
    }
    let flags = seg.flags;
    let scaled = src.wscale & WSCALE_SEEN != 0 && dst.wscale & WSCALE_SEEN != 0 && flags & SYN == 0;
    let (sws, dws) =
        if scaled { ((src.wscale & WSCALE_MASK) as u32, (dst.wscale & WSCALE_MASK) as u32) } else { (0, 0) };
    let mut end = seg.seq.wrapping_add(seg.payload);
    if flags & (SYN | FIN) != 0 {
        end = end.wrapping_add(1);
    }
    let max = |a: u32, b: u32| if seq_gt(a, b) { a } else { b };
    src.seqlo = max(src.seqlo, end);
    src.seqhi = max(src.seqhi, end.wrapping_add(((dst.max_win as u32) << dws).max(1)));
    src.max_win = src.max_win.max(seg.win);
    if flags & ACK_FLAG != 0 {
        let win = (seg.win as u32) << sws;
        dst.seqlo = max(dst.seqlo, seg.ack);
        dst.seqhi = max(dst.seqhi, seg.ack.wrapping_add(win.max(1)));
        if dst.state == PeerState::SynSent {
            dst.state = PeerState::Established;
        }
    }
    if flags & FIN != 0 && src.state < PeerState::Closing {
        src.state = PeerState::Closing;
    }
    if flags & RST != 0 {
        src.state = PeerState::Reset;
        dst.state = PeerState::Reset;
    }
    peers[s] = src;
    peers[d] = dst;
    Ok(())
}

/// Coarse connection state from both peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnPhase {
    Opening,
    Established,
    Closing,
    TimeWait,
    Reset,
}

pub fn phase(p: &[TcpPeer; 2]) -> ConnPhase {
    let (a, b) = (p[0].state, p[1].state);
    if a == PeerState::Reset || b == PeerState::Reset {
        ConnPhase::Reset
    } else if a >= PeerState::FinWait2 && b >= PeerState::FinWait2 {
        ConnPhase::TimeWait
    } else if a >= PeerState::Closing || b >= PeerState::Closing {
        ConnPhase::Closing
    } else if a < PeerState::Established || b < PeerState::Established {
        ConnPhase::Opening
    } else {
        ConnPhase::Established
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, ack: u32, flags: u8, payload: u32, win: u16) -> TcpInfo {
        TcpInfo { seq, ack, win, flags, payload, wscale: None }
    }

    /// A full handshake, data both ways, FIN/FIN/ACK.
    #[test]
    fn handshake_data_close() {
        let syn = seg(1000, 0, SYN, 0, 64240);
        let mut p = init_orig(&syn);
        assert_eq!(phase(&p), ConnPhase::Opening);
        track(&mut p, 1, &seg(5000, 1001, SYN | ACK_FLAG, 0, 65160)).unwrap();
        track(&mut p, 0, &seg(1001, 5001, ACK_FLAG, 0, 502)).unwrap();
        assert_eq!(phase(&p), ConnPhase::Established);
        track(&mut p, 0, &seg(1001, 5001, ACK_FLAG | PSH, 100, 502)).unwrap();
        track(&mut p, 1, &seg(5001, 1101, ACK_FLAG | PSH, 1000, 509)).unwrap();
        track(&mut p, 0, &seg(1101, 6001, ACK_FLAG | FIN, 0, 502)).unwrap();
        assert_eq!(phase(&p), ConnPhase::Closing);
        track(&mut p, 1, &seg(6001, 1102, ACK_FLAG | FIN, 0, 509)).unwrap();
        track(&mut p, 0, &seg(1102, 6002, ACK_FLAG, 0, 502)).unwrap();
        assert_eq!(phase(&p), ConnPhase::TimeWait);
    }

    #[test]
    fn out_of_window_dropped_and_state_unchanged() {
        let mut p = init_orig(&seg(1000, 0, SYN, 0, 64240));
        track(&mut p, 1, &seg(5000, 1001, SYN | ACK_FLAG, 0, 65160)).unwrap();
        track(&mut p, 0, &seg(1001, 5001, ACK_FLAG, 0, 502)).unwrap();
        let before = p;
        assert_eq!(track(&mut p, 0, &seg(1001 + 10_000_000, 5001, ACK_FLAG, 10, 502)), Err(DropReason::TcpOutOfWindow));
        // Ack of data never sent.
        assert_eq!(track(&mut p, 0, &seg(1001, 5001 + 1_000_000, ACK_FLAG, 0, 502)), Err(DropReason::TcpOutOfWindow));
        assert_eq!(p, before);
    }

    #[test]
    fn window_scaling_widens_window() {
        let mut syn = seg(1000, 0, SYN, 0, 64240);
        syn.wscale = Some(7);
        let mut p = init_orig(&syn);
        let mut sa = seg(5000, 1001, SYN | ACK_FLAG, 0, 65160);
        sa.wscale = Some(7);
        track(&mut p, 1, &sa).unwrap();
        track(&mut p, 0, &seg(1001, 5001, ACK_FLAG, 0, 502)).unwrap();
        // Server advertises 509 << 7 = 65152 bytes... then the client may send
        // far beyond 64 KiB once the server's scaled window allows it.
        track(&mut p, 1, &seg(5001, 1001, ACK_FLAG, 0, 2000)).unwrap();
        track(&mut p, 0, &seg(1001 + 200_000, 5001, ACK_FLAG, 1000, 502)).unwrap();
    }

    #[test]
    fn no_scaling_unless_both_offer() {
        let mut syn = seg(1000, 0, SYN, 0, 64240);
        syn.wscale = Some(7);
        let mut p = init_orig(&syn);
        track(&mut p, 1, &seg(5000, 1001, SYN | ACK_FLAG, 0, 65160)).unwrap();
        assert_eq!(p[0].wscale, 0);
        assert_eq!(p[1].wscale, 0);
    }

    #[test]
    fn reset_closes_and_later_segments_drop() {
        let mut p = init_orig(&seg(1000, 0, SYN, 0, 64240));
        track(&mut p, 1, &seg(5000, 1001, SYN | ACK_FLAG, 0, 65160)).unwrap();
        track(&mut p, 1, &seg(5001, 1001, RST | ACK_FLAG, 0, 0)).unwrap();
        assert_eq!(phase(&p), ConnPhase::Reset);
        assert_eq!(track(&mut p, 0, &seg(1001, 5001, ACK_FLAG, 0, 502)), Err(DropReason::TcpClosed));
    }

    #[test]
    fn reply_without_syn_is_refused() {
        let mut p = init_orig(&seg(1000, 0, SYN, 0, 64240));
        assert_eq!(track(&mut p, 1, &seg(5000, 1001, ACK_FLAG, 0, 100)), Err(DropReason::TcpNoSyn));
    }

    #[test]
    fn loose_reanchors_lagging_windows_once() {
        let mut p = init_orig(&seg(1000, 0, SYN, 0, 64240));
        track(&mut p, 1, &seg(5000, 1001, SYN | ACK_FLAG, 0, 65160)).unwrap();
        track(&mut p, 0, &seg(1001, 5001, ACK_FLAG, 0, 502)).unwrap();
        // 50 MB flowed while the copy was not updated: strict tracking refuses.
        let far = seg(1001 + 50_000_000, 5001 + 3_000_000, ACK_FLAG, 1000, 502);
        let mut strict = p;
        assert_eq!(track(&mut strict, 0, &far), Err(DropReason::TcpOutOfWindow));
        track_loose(&mut p, 0, &far).unwrap();
        track_loose(&mut p, 1, &seg(5001 + 3_000_000, 1001 + 50_001_000, ACK_FLAG, 0, 509)).unwrap();
        // From here strict tracking works again.
        track(&mut p, 0, &seg(1001 + 50_001_000, 5001 + 3_000_000, ACK_FLAG, 100, 502)).unwrap();
        track(&mut p, 1, &seg(5001 + 3_000_000, 1001 + 50_001_100, ACK_FLAG, 10, 509)).unwrap();
    }

    #[test]
    fn bad_flags() {
        assert!(!flags_valid(SYN | FIN));
        assert!(!flags_valid(0));
        assert!(!flags_valid(FIN | PSH | URG));
        assert!(flags_valid(SYN));
        assert!(flags_valid(RST));
        assert!(flags_valid(ACK_FLAG | FIN));
    }

    #[test]
    fn sequence_wraparound() {
        let mut p = init_orig(&seg(u32::MAX - 10, 0, SYN, 0, 64240));
        track(&mut p, 1, &seg(5000, u32::MAX - 9, SYN | ACK_FLAG, 0, 65160)).unwrap();
        track(&mut p, 0, &seg(u32::MAX - 9, 5001, ACK_FLAG, 100, 502)).unwrap();
        assert_eq!(p[0].seqlo, 90);
    }
}
