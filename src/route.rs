//! The IPv4 routing table: connected routes from the interfaces and static
//! routes from the config, longest prefix first.

use std::net::Ipv4Addr;

use crate::config::{Config, IfIndex, Ipv4Net};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dest: Ipv4Net,
    /// `None` for a connected route: the destination itself is the next hop.
    pub gateway: Option<Ipv4Addr>,
    pub iface: IfIndex,
}

#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Sorted by prefix length, longest first; ties keep config order with
    /// connected routes before static ones.
    routes: Vec<Route>,
}

/// Where a packet goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub iface: IfIndex,
    pub ip: u32,
}

impl RouteTable {
    pub fn from_config(cfg: &Config) -> Self {
        let mut routes: Vec<Route> = cfg
            .interfaces
            .iter()
            .enumerate()
            .filter_map(|(i, ifc)| {
                let a = ifc.address?; // transparent mode: nothing is connected
                Some(Route { dest: Ipv4Net::new(a.network(), a.len), gateway: None, iface: IfIndex(i as u8) })
            })
            .collect();
        routes.extend(cfg.routes.iter().map(|r| Route {
            dest: Ipv4Net::new(r.destination.network(), r.destination.len),
            gateway: Some(r.gateway),
            iface: r.interface,
        }));
        routes.sort_by_key(|r| std::cmp::Reverse(r.dest.len));
        RouteTable { routes }
    }

    pub fn lookup(&self, dst: u32) -> Option<NextHop> {
        let ip = Ipv4Addr::from(dst);
        self.routes
            .iter()
            .find(|r| r.dest.contains(ip))
            .map(|r| NextHop { iface: r.iface, ip: r.gateway.map(u32::from).unwrap_or(dst) })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let r = |d: &str, g: Option<&str>, i| Route {
            dest: d.parse().unwrap(),
            gateway: g.map(|g| g.parse().unwrap()),
            iface: IfIndex(i),
        };
        let mut routes = vec![
            r("0.0.0.0/0", Some("203.0.113.254"), 1),
            r("192.168.10.0/24", None, 0),
            r("203.0.113.0/24", None, 1),
            r("10.0.0.0/8", Some("192.168.10.254"), 0),
            r("10.1.0.0/16", Some("203.0.113.253"), 1),
        ];
        routes.sort_by_key(|r| std::cmp::Reverse(r.dest.len));
        RouteTable { routes }
    }

    fn ip(s: &str) -> u32 {
        s.parse::<Ipv4Addr>().unwrap().into()
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(NextHop { iface: IfIndex(1), ip: ip("203.0.113.253") }));
        assert_eq!(t.lookup(ip("10.2.2.3")), Some(NextHop { iface: IfIndex(0), ip: ip("192.168.10.254") }));
        assert_eq!(t.lookup(ip("192.168.10.7")), Some(NextHop { iface: IfIndex(0), ip: ip("192.168.10.7") }));
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(NextHop { iface: IfIndex(1), ip: ip("203.0.113.254") }));
        assert_eq!(RouteTable::default().lookup(ip("8.8.8.8")), None);
    }
}
