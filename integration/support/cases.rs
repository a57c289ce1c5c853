//! The inputs of the replay cases under `integration/cases/`, as code.
//!
//! The committed `in_<iface>.pcap` and `appliance.toml` files are generated
//! from this file. After editing it, regenerate them and re-bless:
//!
//! ```text
//! cargo test --test replay -- --ignored regenerate_case_inputs
//! TWINWALL_BLESS=1 cargo test --test replay cases
//! git diff integration/cases   # review every changed expected.txt
//! ```
//!
//! Addresses: inside 192.168.10.0/24 (firewall .1, 02:00:5e:10:00:01), outside
//! 203.0.113.0/24 (firewall .1, 02:00:5e:10:00:02; router and DNS server
//! .254), hosts 02:00:00:00:01:xx.
//!
//! Replies from outside go to [`PAT_PORT`], the port the PAT hands out to the
//! case's (only) connection. A pcap cannot react to the port the appliance
//! picks, so it is fixed here: if port allocation or the use of the seeded
//! RNG changes, update it, regenerate the inputs and re-bless.

use std::net::Ipv4Addr;
use std::path::Path;

use twinwall::replay::pcap_out;
use twinwall::time::Instant;

use super::frames::*;
use super::{BRIDGE_TOML, LAB_TOML};

/// One input frame: milliseconds after the case's start, receiving interface.
/// The first port the PAT allocates with the replay seed (1): RFC 6056
/// random start from `SeededRng::new(1)`, as of the first data-path commit.
pub const PAT_PORT: u16 = 54720;

#[derive(Clone)]
pub struct Step {
    pub ms: u64,
    pub iface: &'static str,
    pub frame: Vec<u8>,
}

pub struct Case {
    pub name: &'static str,
    /// The case's appliance.toml: [`LAB_TOML`] or [`BRIDGE_TOML`].
    pub config: &'static str,
    pub steps: Vec<Step>,
}

/// Case time zero: 2023-11-14T22:13:20Z, a plausible capture date.
pub const T0_US: u64 = 1_700_000_000_000_000;

fn at(ms: u64, iface: &'static str, frame: Vec<u8>) -> Step {
    Step { ms, iface, frame }
}

const IN: &str = "inside";
const OUT: &str = "outside";

fn host(port: u16) -> Ep {
    ep(HOST_MAC, HOST_IP, port)
}
fn fw_in() -> Ep {
    ep(FW_INSIDE_MAC, FW_INSIDE_IP, 0)
}
/// A packet from beyond the router, as it arrives on the outside port.
fn via_router(ip: std::net::Ipv4Addr, port: u16) -> Ep {
    ep(ROUTER_MAC, ip, port)
}
fn fw_out(port: u16) -> Ep {
    ep(FW_OUTSIDE_MAC, FW_OUTSIDE_IP, port)
}
/// The inside host asks for its gateway: the usual first frame.
fn host_arps_gateway(ms: u64) -> Step {
    at(ms, IN, arp_request(HOST_MAC, HOST_IP, FW_INSIDE_IP))
}
/// The router answers the firewall's ARP request for it.
fn router_arp_reply(ms: u64) -> Step {
    at(ms, OUT, arp_reply(ROUTER_MAC, ROUTER_IP, FW_OUTSIDE_MAC, FW_OUTSIDE_IP))
}

pub fn all() -> Vec<Case> {
    let web = |port| ep(FW_INSIDE_MAC, WEB_IP, port);
    let mut all = vec![
        // The firewall answers ARP for its own address, then echo requests to it.
        Case {
            config: LAB_TOML,
            name: "arp_reply_and_ping",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, echo(host(0), fw_in(), 64, false, 7, 1, b"ping-payload-01")),
                at(1010, IN, echo(host(0), fw_in(), 64, false, 7, 2, b"ping-payload-02")),
            ],
        },
        // A DNS query leaves through PAT; the firewall ARPs for the server (the
        // router itself), the answer comes back and is translated to the host.
        Case {
            config: LAB_TOML,
            name: "pat_udp_roundtrip",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, udp(host(40000), ep(FW_INSIDE_MAC, ROUTER_IP, 53), 64, b"dns-query-12")),
                router_arp_reply(11),
                at(30, OUT, udp(ep(ROUTER_MAC, ROUTER_IP, 53), fw_out(PAT_PORT), 64, b"dns-answer-carrying-28-bytes")),
            ],
        },
        // A whole TCP connection through PAT, closed by the client.
        Case {
            config: LAB_TOML,
            name: "pat_tcp_handshake_and_close",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, tcp(host(40001), web(80), 64, "S", 1000, 0, 64240, b"")),
                router_arp_reply(11),
                at(30, OUT, tcp(via_router(WEB_IP, 80), fw_out(PAT_PORT), 60, "S.", 5000, 1001, 65160, b"")),
                at(31, IN, tcp(host(40001), web(80), 64, ".", 1001, 5001, 502, b"")),
                at(32, IN, tcp(host(40001), web(80), 64, "P.", 1001, 5001, 502, b"GET / HTTP/1.0\r\n\r\n")),
                at(
                    50,
                    OUT,
                    tcp(
                        via_router(WEB_IP, 80),
                        fw_out(PAT_PORT),
                        60,
                        "P.",
                        5001,
                        1019,
                        509,
                        b"HTTP/1.0 200 OK\r\n\r\n",
                    ),
                ),
                at(51, IN, tcp(host(40001), web(80), 64, ".", 1019, 5020, 502, b"")),
                at(60, IN, tcp(host(40001), web(80), 64, "F.", 1019, 5020, 502, b"")),
                at(70, OUT, tcp(via_router(WEB_IP, 80), fw_out(PAT_PORT), 60, "F.", 5020, 1020, 509, b"")),
                at(71, IN, tcp(host(40001), web(80), 64, ".", 1020, 5021, 502, b"")),
            ],
        },
        // Unsolicited SYNs from outside: to an inside address, and to the PAT
        // address with no binding. Both dropped, nothing sent.
        Case {
            config: LAB_TOML,
            name: "acl_outside_denied",
            steps: vec![
                at(
                    0,
                    OUT,
                    tcp(via_router(ATTACKER_IP, 5555), ep(FW_OUTSIDE_MAC, HOST_IP, 22), 60, "S", 77, 0, 1024, b""),
                ),
                at(10, OUT, tcp(via_router(ATTACKER_IP, 5556), fw_out(2222), 60, "S", 78, 0, 1024, b"")),
            ],
        },
        // An established connection; the server side then sends a segment a
        // billion bytes ahead (dropped), then a good one (forwarded).
        Case {
            config: LAB_TOML,
            name: "tcp_out_of_window",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, tcp(host(40002), web(80), 64, "S", 2000, 0, 64240, b"")),
                router_arp_reply(11),
                at(30, OUT, tcp(via_router(WEB_IP, 80), fw_out(PAT_PORT), 60, "S.", 9000, 2001, 65160, b"")),
                at(31, IN, tcp(host(40002), web(80), 64, ".", 2001, 9001, 502, b"")),
                at(
                    50,
                    OUT,
                    tcp(
                        via_router(WEB_IP, 80),
                        fw_out(PAT_PORT),
                        60,
                        "P.",
                        9001 + 1_000_000_000,
                        2001,
                        509,
                        b"0123456789",
                    ),
                ),
                at(60, OUT, tcp(via_router(WEB_IP, 80), fw_out(PAT_PORT), 60, "P.", 9001, 2001, 509, b"0123456789")),
            ],
        },
        // TTL 1 towards a routed destination: ICMP time exceeded back to the
        // host, quoting the UDP datagram, then the ICMP echo.
        Case {
            config: LAB_TOML,
            name: "ttl_expired",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, udp(host(40003), ep(FW_INSIDE_MAC, REMOTE_IP, 33434), 1, b"traceroute-probe")),
                at(20, IN, echo(host(0), ep(FW_INSIDE_MAC, REMOTE_IP, 0), 1, false, 9, 1, b"probe")),
            ],
        },
        // TCP segments without a SYN and without state: an ACK from inside,
        // and an ACK from outside to the PAT address.
        Case {
            config: LAB_TOML,
            name: "no_syn_first",
            steps: vec![
                host_arps_gateway(0),
                at(10, IN, tcp(host(40004), web(80), 64, ".", 3000, 7000, 502, b"")),
                at(20, OUT, tcp(via_router(WEB_IP, 80), fw_out(40005), 60, ".", 7000, 3000, 509, b"")),
            ],
        },
    ];
    all.extend(bridge_cases());
    all
}

/// Transparent mode ([`BRIDGE_TOML`]): the host 192.168.10.10 inside, the
/// server 192.168.10.80 (SERVER_MAC) outside, on one subnet.
fn bridge_cases() -> Vec<Case> {
    const SERVER_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x02, 0x50];
    const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 80);
    const MGMT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 5);
    let host = |port| ep(HOST_MAC, HOST_IP, port);
    let server = |port| ep(SERVER_MAC, SERVER_IP, port);
    let learn = |ms| {
        vec![
            at(ms, IN, arp_request(HOST_MAC, HOST_IP, SERVER_IP)),
            at(ms + 1, OUT, arp_reply(SERVER_MAC, SERVER_IP, HOST_MAC, HOST_IP)),
        ]
    };
    let ethertype = |dst: MacAddr, et: [u8; 2]| {
        let mut f = arp_request(HOST_MAC, HOST_IP, SERVER_IP);
        f[..6].copy_from_slice(&dst);
        f[12..14].copy_from_slice(&et);
        f
    };
    vec![
        // Learning and flooding: the host's broadcast ARP is flooded, the
        // server's unicast reply goes to the learned port; the management
        // address answers ARP and ping itself.
        Case {
            name: "bridge_learn_and_flood",
            config: BRIDGE_TOML,
            steps: [
                learn(0),
                vec![
                    at(10, IN, arp_request(HOST_MAC, HOST_IP, MGMT_IP)),
                    at(20, IN, echo(host(0), ep(FW_INSIDE_MAC, MGMT_IP, 0), 64, false, 5, 1, b"mgmt")),
                ],
            ]
            .concat(),
        },
        // Aging: 2 s after it was last heard, the server is forgotten, so a
        // later unicast ARP to it is flooded again (see the counters).
        Case {
            name: "bridge_aging",
            config: BRIDGE_TOML,
            steps: [learn(0), vec![at(3500, IN, arp_reply(HOST_MAC, HOST_IP, SERVER_MAC, SERVER_IP))]].concat(),
        },
        // The group's ethertype policy: LLDP is listed and bridged; IPv6 and
        // an unknown ethertype are dropped, and so are STP BPDUs (bpdu = "drop").
        Case {
            name: "bridge_ethertype_policy",
            config: BRIDGE_TOML,
            steps: vec![
                at(0, IN, ethertype([0x01, 0x80, 0xc2, 0, 0, 0x0e], [0x88, 0xcc])),
                at(10, IN, ethertype(BROADCAST, [0x86, 0xdd])),
                at(20, IN, ethertype(BROADCAST, [0x12, 0x34])),
                at(30, IN, ethertype([0x01, 0x80, 0xc2, 0, 0, 0], [0x00, 0x26])),
            ],
        },
        // Policy through the bridge: inside to outside TCP passes unchanged
        // (TTL too) and its replies follow the connection; the outside may
        // ping the host (its ACL) but not open TCP to it; a new flow to an
        // unknown MAC is dropped and probed from the management address.
        Case {
            name: "bridge_acl",
            config: BRIDGE_TOML,
            steps: [
                learn(0),
                vec![
                    at(10, IN, tcp(host(40001), server(80), 64, "S", 1000, 0, 64240, b"")),
                    at(11, OUT, tcp(server(80), host(40001), 64, "S.", 5000, 1001, 65160, b"")),
                    at(12, IN, tcp(host(40001), server(80), 64, ".", 1001, 5001, 502, b"")),
                    at(20, OUT, echo(server(0), host(0), 64, false, 9, 1, b"allowed")),
                    at(30, OUT, tcp(server(5555), host(22), 64, "S", 77, 0, 1024, b"")),
                    at(
                        40,
                        IN,
                        udp(
                            host(40002),
                            ep([0x02, 0, 0, 0, 0x02, 0x99], Ipv4Addr::new(192, 168, 10, 99), 53),
                            64,
                            b"q",
                        ),
                    ),
                ],
            ]
            .concat(),
        },
    ]
}

/// Write `dir/<case>/{appliance.toml,in_<iface>.pcap}` for every case.
/// Existing `in_*.pcap` files of a case are removed first.
pub fn write_all(dir: &Path) {
    for case in all() {
        let cdir = dir.join(case.name);
        std::fs::create_dir_all(&cdir).unwrap();
        for e in std::fs::read_dir(&cdir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("in_") && name.ends_with(".pcap") {
                std::fs::remove_file(&p).unwrap();
            }
        }
        std::fs::write(cdir.join("appliance.toml"), case.config).unwrap();
        let mut ifaces: Vec<&str> = case.steps.iter().map(|s| s.iface).collect();
        ifaces.sort();
        ifaces.dedup();
        for iface in ifaces {
            let frames =
                case.steps.iter().filter(|s| s.iface == iface).map(|s| (Instant(T0_US + s.ms * 1000), &s.frame[..]));
            pcap_out::write_file(&cdir.join(format!("in_{iface}.pcap")), frames).unwrap();
        }
        eprintln!("wrote {}", cdir.display());
    }
}
