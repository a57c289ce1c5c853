//! Transparent mode's layer 2: the MAC table and what a bridge group lets
//! through besides IPv4 and ARP. The input path that uses them is
//! `appliance_bridge.rs`.

pub mod mac_table;

pub use mac_table::{Learn, MacEntry, MacTable};

use crate::config::{BridgeGroup, Mac};

/// Spanning-tree BPDUs go to the IEEE bridge group address (802.1D) or to
/// Cisco's PVST+ address; both are LLC frames, not ethertypes.
const BPDU_DSTS: [Mac; 2] = [Mac([0x01, 0x80, 0xc2, 0, 0, 0]), Mac([0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcd])];

/// What a bridge group does with a frame that is neither IPv4 nor ARP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Verdict {
    /// Bridge it by MAC, uninspected.
    Pass,
    DropBpdu,
    DropEthertype,
}

/// The group's ethertype and BPDU policy for a frame to `dst` with type (or
/// 802.3 length) `ethertype`.
pub fn l2_policy(g: &BridgeGroup, dst: &Mac, ethertype: u16) -> L2Verdict {
    if BPDU_DSTS.contains(dst) {
        return if g.bpdu_forward { L2Verdict::Pass } else { L2Verdict::DropBpdu };
    }
    if g.ethertypes.contains(&ethertype) {
        L2Verdict::Pass
    } else {
        L2Verdict::DropEthertype
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpdus_and_ethertypes_follow_the_group() {
        let mut g = BridgeGroup {
            name: "g".into(),
            members: vec![],
            address: None,
            standby_address: None,
            static_macs: vec![],
            ethertypes: vec![0x88cc],
            bpdu_forward: true,
        };
        let stp = Mac([0x01, 0x80, 0xc2, 0, 0, 0]);
        let lldp = Mac([0x01, 0x80, 0xc2, 0, 0, 0x0e]);
        assert_eq!(l2_policy(&g, &stp, 0x0026), L2Verdict::Pass, "an 802.3 length, not an ethertype");
        assert_eq!(l2_policy(&g, &lldp, 0x88cc), L2Verdict::Pass);
        assert_eq!(l2_policy(&g, &Mac::BROADCAST, 0x86dd), L2Verdict::DropEthertype);
        g.bpdu_forward = false;
        assert_eq!(l2_policy(&g, &stp, 0x0026), L2Verdict::DropBpdu);
    }
}
