//! Policy for a flow's first packet, as ASA users know it: an interface
//! with an ACL is governed by its rules and an implicit deny; one without
//! lets traffic go from a higher security level to a lower one only.

use crate::config::types::proto;
use crate::config::{AclAction, AclRule, Config, IfIndex};
use crate::conntrack::KeyV4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Permit,
    /// Denied by rule `usize` (index in the interface's list), or by the
    /// implicit deny when `None`.
    Deny(Option<usize>),
    Reject(usize),
    /// No ACL; security levels forbid it.
    SecurityLevel,
}

fn rule_matches(r: &AclRule, k: &KeyV4, icmp_type: u8) -> bool {
    if let Some(p) = r.proto {
        if p != k.proto {
            return false;
        }
    }
    if !r.src.contains(k.src_ip()) || !r.dst.contains(k.dst_ip()) {
        return false;
    }
    if (k.proto == proto::TCP || k.proto == proto::UDP)
        && (r.sport.is_some_and(|pr| !pr.contains(k.sport)) || r.dport.is_some_and(|pr| !pr.contains(k.dport)))
    {
        return false;
    }
    if k.proto == proto::ICMP && r.icmp_type.is_some_and(|t| t != icmp_type) {
        return false;
    }
    true
}

/// Decide a new flow entering `ingress` bound for `egress`. `k` carries the
/// real (untranslated) destination, as ASA 8.3+ ACLs do.
pub fn decide(
    cfg: &Config,
    hits: &mut [Vec<u64>],
    ingress: IfIndex,
    egress: IfIndex,
    k: &KeyV4,
    icmp_type: u8,
) -> Decision {
    match &cfg.acls[ingress.idx()] {
        Some(rules) => {
            for (i, r) in rules.iter().enumerate() {
                if rule_matches(r, k, icmp_type) {
                    if let Some(h) = hits.get_mut(ingress.idx()).and_then(|v| v.get_mut(i)) {
                        *h += 1;
                    }
                    return match r.action {
                        AclAction::Permit => Decision::Permit,
                        AclAction::Deny => Decision::Deny(Some(i)),
                        AclAction::Reject => Decision::Reject(i),
                    };
                }
            }
            Decision::Deny(None)
        }
        None => {
            if cfg.iface(ingress).security_level > cfg.iface(egress).security_level {
                Decision::Permit
            } else {
                Decision::SecurityLevel
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InterfaceCfg, Ipv4Net, Limits, Mode, Timeouts};

    fn cfg(acl: Option<Vec<AclRule>>) -> Config {
        let ifc = |name: &str, lvl, addr: &str| InterfaceCfg {
            name: name.into(),
            tap: name.into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            address: Some(addr.parse().unwrap()),
            security_level: lvl,
            mtu: 1500,
            standby_address: None,
            monitor: true,
        };
        Config {
            hostname: "t".into(),
            mode: Mode::Routed,
            control_socket: String::new(),
            interfaces: vec![ifc("inside", 100, "192.168.10.1/24"), ifc("outside", 0, "203.0.113.1/24")],
            routes: vec![],
            acls: vec![None, acl],
            nat: vec![],
            bridge_groups: vec![],
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            failover: None,
        }
    }

    fn rule(action: AclAction, p: Option<u8>, dst: &str, dport: Option<&str>) -> AclRule {
        AclRule {
            action,
            proto: p,
            src: Ipv4Net::ANY,
            dst: dst.parse().unwrap(),
            sport: None,
            dport: dport.map(|d| d.parse().unwrap()),
            icmp_type: None,
            line: 1,
        }
    }

    fn k(dst: &str, dport: u16, p: u8) -> KeyV4 {
        KeyV4 { src: 0x01020304, dst: dst.parse::<std::net::Ipv4Addr>().unwrap().into(), sport: 999, dport, proto: p }
    }

    #[test]
    fn security_levels_without_acl() {
        let c = cfg(None);
        let mut hits = vec![];
        assert_eq!(decide(&c, &mut hits, IfIndex(0), IfIndex(1), &k("8.8.8.8", 53, 17), 0), Decision::Permit);
        assert_eq!(
            decide(&c, &mut hits, IfIndex(1), IfIndex(0), &k("192.168.10.5", 22, 6), 0),
            Decision::SecurityLevel
        );
    }

    #[test]
    fn first_match_then_implicit_deny() {
        let c = cfg(Some(vec![
            rule(AclAction::Deny, Some(6), "192.168.10.10", Some("23")),
            rule(AclAction::Permit, Some(6), "192.168.10.0/24", Some("1-1024")),
            rule(AclAction::Reject, Some(17), "any", None),
        ]));
        let mut hits = vec![vec![], vec![0; 3]];
        assert_eq!(
            decide(&c, &mut hits, IfIndex(1), IfIndex(0), &k("192.168.10.10", 23, 6), 0),
            Decision::Deny(Some(0))
        );
        assert_eq!(decide(&c, &mut hits, IfIndex(1), IfIndex(0), &k("192.168.10.10", 22, 6), 0), Decision::Permit);
        assert_eq!(
            decide(&c, &mut hits, IfIndex(1), IfIndex(0), &k("192.168.10.10", 2000, 6), 0),
            Decision::Deny(None)
        );
        assert_eq!(decide(&c, &mut hits, IfIndex(1), IfIndex(0), &k("192.168.10.10", 53, 17), 0), Decision::Reject(2));
        assert_eq!(hits[1], vec![1, 1, 1]);
    }
}
