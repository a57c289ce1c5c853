//! Every frame the appliance does not forward is dropped for a named reason
//! and counted. One list gives the enum, its names and its descriptions
//! (VPP's `foreach_*_error`).

macro_rules! drop_reasons {
    ($( $variant:ident = $name:literal : $stage:literal, $desc:literal; )*) => {
        /// Why a frame was not forwarded.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $( $variant, )* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];
            pub const COUNT: usize = Self::ALL.len();
            /// Counter name, stable for scripts.
            pub fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )* }
            }
            /// Pipeline stage that drops for this reason.
            pub fn stage(self) -> &'static str {
                match self { $( DropReason::$variant => $stage, )* }
            }
            pub fn description(self) -> &'static str {
                match self { $( DropReason::$variant => $desc, )* }
            }
        }
    };
}

drop_reasons! {
    EthTooShort = "eth-too-short" : "l2", "frame shorter than an Ethernet header";
    NotForUs = "l2-not-for-us" : "l2", "destination MAC is neither ours nor broadcast/multicast";
    Vlan = "l2-vlan-unsupported" : "l2", "802.1Q tagged frame on an untagged port";
    UnknownEthertype = "l2-unknown-ethertype" : "l2", "ethertype the appliance does not handle (transparent mode: not in the group's ethertypes)";
    Ipv6 = "ipv6-unsupported" : "l3", "IPv6 is not routed yet";
    ArpMalformed = "arp-malformed" : "arp", "ARP packet that is not Ethernet/IPv4 or is truncated";
    ArpNotForUs = "arp-not-for-us" : "arp", "ARP for an address the appliance does not own";
    ArpQueueFull = "arp-queue-full" : "arp", "next hop unresolved and the pending queue is full";
    ArpUnresolved = "arp-unresolved" : "arp", "next hop did not answer ARP";
    RxTooLong = "rx-too-long" : "l3", "longer than the ingress MTU and not a GSO super-frame";
    GsoUnsupported = "gso-unsupported" : "l3", "GSO super-frame of a kind the appliance cannot forward (only TCP over IPv4)";
    OffloadMalformed = "offload-malformed" : "l3", "vnet_hdr offload fields that do not fit the packet";
    Ipv4Malformed = "ipv4-malformed" : "l3", "IPv4 header bad: version, length or options";
    Ipv4BadChecksum = "ipv4-bad-checksum" : "l3", "IPv4 header checksum wrong";
    Ipv4Martian = "ipv4-martian" : "l3", "source address that cannot appear on a wire (loopback, multicast, ours)";
    L4Malformed = "l4-malformed" : "l4", "TCP/UDP/ICMP header truncated or inconsistent";
    TtlExpired = "ttl-expired" : "route", "TTL reached zero; ICMP time exceeded sent";
    NoRoute = "no-route" : "route", "no route to the destination";
    SameInterface = "same-interface" : "route", "would leave by the interface it came in on";
    MacUnknown = "mac-unknown" : "bridge", "new flow to a MAC the bridge has not learned; an ARP probe was sent";
    MacTableFull = "mac-table-full" : "bridge", "new source MAC while the MAC table is full (limits.max_macs)";
    MacStaticConflict = "mac-static-conflict" : "bridge", "source MAC pinned by a static entry to another interface";
    Bpdu = "bpdu" : "bridge", "spanning-tree BPDU on a bridge group with bpdu = \"drop\"";
    MtuExceeded = "mtu-exceeded" : "route", "larger than the egress MTU";
    L3Broadcast = "ipv4-broadcast" : "l3", "IPv4 broadcast or multicast, which the appliance does not route";
    ToSelf = "to-self" : "local", "addressed to the appliance, no service there";
    AclDeny = "acl-deny" : "acl", "denied by an ACL rule or the implicit deny";
    SecurityLevel = "security-level" : "acl", "lower to higher security level with no ACL permitting it";
    TcpNoSyn = "tcp-no-syn" : "conntrack", "TCP segment with no connection and no SYN";
    TcpBadFlags = "tcp-bad-flags" : "conntrack", "TCP flag combination that no stack sends";
    TcpOutOfWindow = "tcp-out-of-window" : "conntrack", "TCP segment outside the tracked sequence window";
    TcpClosed = "tcp-closed" : "conntrack", "TCP segment on a connection already reset or closed";
    IcmpErrorNoConn = "icmp-error-no-conn" : "conntrack", "ICMP error quoting a flow the appliance does not track";
    IcmpNoConn = "icmp-no-conn" : "conntrack", "ICMP echo reply with no matching request";
    IcmpUnsupported = "icmp-unsupported" : "conntrack", "ICMP type that is not tracked";
    ConnKeyInUse = "conn-key-in-use" : "conntrack", "translated tuple collides with a live connection";
    ConnLimit = "conn-limit" : "conntrack", "connection table full (limits.max_conns)";
    FragmentNoState = "fragment-no-state" : "conntrack", "non-first fragment whose first fragment was not seen";
    FragmentLimit = "fragment-limit" : "conntrack", "fragment table full (limits.max_fragments)";
    Standby = "standby" : "failover", "standby unit: forwards nothing";
    NatNoPorts = "nat-no-ports" : "nat", "PAT address has no free port";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_kebab() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|d| d.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for n in names {
            assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{n}");
        }
        assert_eq!(DropReason::AclDeny.stage(), "acl");
    }
}
