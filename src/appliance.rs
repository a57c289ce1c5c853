//! The sans-IO appliance core.
//!
//! # Contract (quinn-proto's `Connection`)
//! * Feed inputs with `handle_frame` (one Ethernet frame from a port),
//!   `handle_command` (reload, ...), and, once `now >= poll_timeout()`,
//!   `handle_timeout(now)`.
//! * Then drain `poll_output()` until it returns `None`: frames to send per
//!   port, and events for the operator.
//! * Nothing here reads a clock, a socket or a file; `now` is always an
//!   argument, so replay (pcap time) and simulation (virtual time) drive the
//!   same code as the shell (monotonic time).
//!
//! Buffers go round: `alloc_frame` hands out a pooled buffer for the shell to
//! read into, and every `Output::Frame` buffer should come back through
//! `recycle` once written, so the fast path allocates nothing.
//!
//! # Pipeline
//! (Transparent mode: see `appliance_bridge.rs`; it joins the routed
//! pipeline below at the IPv4 parse and leaves it at `forward`.)
//!
//! `handle_frame` → L2 (ours? ARP?) → parse once into a [`PacketDesc`] →
//! conntrack lookup. A hit is tracked (TCP windows) and rewritten from the
//! connection's two keys; a miss goes the slow way: local delivery,
//! destination NAT, route, TTL, ACL or security levels, source NAT, a new
//! connection. Then TTL, next-hop ARP and out. Every frame not forwarded is
//! dropped for a [`DropReason`] and counted.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use crate::acl::{self, Decision};
use crate::arp::{self, ArpCache, Lookup, Pending};
use crate::bridge::mac_table::Group;
use crate::bridge::MacTable;
use crate::config::types::proto;
use crate::config::{Config, IfIndex, Ipv4Net, Mac};
use crate::conntrack::{self, tcp, Conn, ConnState, Dir, FlowKey, InsertError, KeyV4, Table};
use crate::drop::DropReason;
use crate::emit;
use crate::entropy::Entropy;
use crate::frame::{FrameBuf, Offload, Pool};
use crate::nat::Nat;
use crate::offload;
use crate::pdesc::{self, IcmpKind, PacketDesc};
use crate::route::RouteTable;
use crate::show::{self, Report, ShowWhat};
use crate::stats::Counters;
use crate::time::{Duration, Instant};
use crate::wire::{arp as arpw, be16, be32, ether, icmp};

/// Something the appliance wants done.
#[derive(Debug)]
pub enum Output {
    /// Send this frame out of `port`.
    Frame { port: IfIndex, buf: FrameBuf },
    /// Send this datagram on the failover link.
    Sync { to: SyncDst, bytes: Vec<u8> },
    /// A hello for the hello group, sealed now, to be sent at `due` by a
    /// helper that runs at a higher priority than the loop (see
    /// [`Appliance::set_hellos_ahead`]). Each [`SyncDst::HelloGroup`]
    /// datagram supersedes the hellos-ahead queued before it: the helper
    /// sends these only while the loop is late.
    HelloAhead { due: Instant, bytes: Vec<u8> },
    /// Tell the operator (the shell logs it).
    Event(Event),
}

/// Where a failover datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncDst {
    /// The multicast hello group (`hello_group:hello_port`, TTL 255).
    HelloGroup,
    /// The peer's unicast delta port (`peer:port`).
    Peer,
}

/// A role the operator asks for with `twinwall failover active|standby`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceRole {
    Active,
    Standby,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A reload took effect.
    Reloaded,
    /// This unit's failover role changed (with its cause, and the takeover
    /// timing when it became active).
    RoleChanged { from: &'static str, to: &'static str, cause: &'static str, detail: String },
    /// Something about the failover pair the operator must fix or know:
    /// wrong key, configuration drift, failover link down.
    FailoverWarning(String),
    /// The first frame after a takeover went out: the takeover's timing,
    /// step by step.
    TakeoverDone(String),
    /// Another host answers ARP for one of our addresses.
    AddressConflict { iface: String, ip: std::net::Ipv4Addr, mac: Mac },
}

/// Operator commands.
#[derive(Debug)]
pub enum Command {
    /// Apply a new configuration; existing connections and NAT bindings stay.
    Reload(Box<Config>),
    /// `twinwall failover active|standby`.
    Failover(ForceRole),
}

/// A command that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The new configuration adds, removes, renames or re-homes interfaces; restart to apply it.
    InterfacesChanged,
    /// The new configuration changes this unit's failover `unit`, its key, or turns `preempt` on or off; restart to apply it.
    FailoverIdentityChanged,
    /// The new configuration changes the mode; restart to apply it.
    ModeChanged,
    /// This unit has no [failover] section.
    NoFailover,
    /// The role machine refused: {0}
    Refused(&'static str),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::InterfacesChanged => write!(
                f,
                "the new configuration adds, removes, renames or re-homes interfaces; restart twinwall to apply it"
            ),
            CommandError::ModeChanged => {
                write!(f, "the new configuration changes the mode (routed/transparent); restart twinwall to apply it")
            }
            CommandError::NoFailover => write!(f, "this unit has no [failover] section in its configuration"),
            CommandError::FailoverIdentityChanged => write!(
                f,
                "the new configuration changes [failover] unit, key or key_file contents, or turns preempt on or \
                 off; restart to apply it"
            ),
            CommandError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Housekeeping cadence: conntrack sweep slice, fragment expiry.
const TICK: Duration = Duration::from_millis(100);
/// Slots a sweep visits per tick at least; a full pass takes at most
/// `SWEEP_PASSES_TICKS` ticks on bigger tables.
const SWEEP_MIN: usize = 1024;
const SWEEP_PASS_TICKS: usize = 50;
/// Lines a `show conn`/`show xlate` lists at most: rendering runs in the
/// event loop, and a million lines would stall hellos (false failover).
const SHOW_MAX_LINES: usize = 10_000;
/// Gratuitous ARPs sent per address at start and reload.
const GARP_COUNT: u8 = 1;

/// Per-interface facts the fast path needs, derived from the config.
#[derive(Clone, Debug)]
struct Port {
    mac: Mac,
    addr: u32,
    net: Ipv4Net,
    mtu: u16,
    /// NAT addresses we answer ARP for on this port.
    proxy: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: u32,
    dst: u32,
    ident: u16,
    proto: u8,
}

/// What the first fragment's connection decided for the rest.
#[derive(Clone, Copy, Debug)]
struct FragEntry {
    src: u32,
    dst: u32,
    expires: Instant,
}

pub struct Appliance {
    cfg: Config,
    ha: Option<Box<crate::failover::Ha>>,
    ports: Vec<Port>,
    routes: RouteTable,
    acl_hits: Vec<Vec<u64>>,
    ct: Table<KeyV4>,
    nat: Nat,
    arp: ArpCache,
    /// Transparent mode's MAC table (empty in routed mode).
    macs: MacTable,
    /// Each port's bridge group (transparent mode; all 0 in routed mode).
    port_group: Vec<Group>,
    /// Each connection's endpoint MACs by slot (transparent mode).
    endpoints: crate::failover::conn_sync::Endpoints,
    next_mac_age: Instant,
    /// Stations the last aging removed, for replication (reused buffer).
    aged_macs: Vec<(Group, Mac)>,
    frags: HashMap<FragKey, FragEntry, ahash::RandomState>,
    pool: Pool,
    out: VecDeque<Output>,
    counters: Counters,
    rng: Box<dyn Entropy>,
    icmp_tokens: u32,
    icmp_refilled: Instant,
    next_tick: Instant,
    scratch: Vec<Pending>,
    /// Connections the sweep removed, for replication (reused buffer).
    gone: Vec<(u64, KeyV4)>,
    /// A takeover happened and no frame has been forwarded since.
    first_forward_pending: bool,
    /// Ports whose device finishes offloaded frames itself (TAPs with
    /// vnet_hdr); others get complete frames. Set by the shell.
    tx_offload: Vec<bool>,
    /// Segments of a super-frame cut in software (reused buffer).
    seg_scratch: Vec<FrameBuf>,
}

fn seed(rng: &mut dyn Entropy) -> [u64; 4] {
    [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()]
}

/// The addresses and MACs a unit uses: the configured (virtual) ones when
/// it is active or alone, the standby ones otherwise. In transparent mode a
/// port's address is its bridge group's management address, if it has one;
/// else 0.0.0.0/32, which matches nothing we receive.
fn ports_of(cfg: &Config, nat: &Nat, standby: bool) -> Vec<Port> {
    cfg.interfaces
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let group = cfg.bridge_groups.iter().find(|g| g.members.contains(&IfIndex(i as u8)));
            let net = c.address.or(group.and_then(|g| g.address)).unwrap_or(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 32));
            let (mac, addr, proxy) = if standby {
                let sa = c.standby_address.or(group.and_then(|g| g.standby_address));
                let addr = sa.unwrap_or(Ipv4Addr::UNSPECIFIED);
                (crate::failover::standby_mac(c.mac), addr, Vec::new())
            } else {
                (c.mac, net.addr, nat.proxy_arp_addrs(IfIndex(i as u8)))
            };
            Port { mac, addr: addr.into(), net, mtu: c.mtu, proxy }
        })
        .collect()
}

/// Each interface's bridge group index (0 outside transparent mode).
fn port_groups(cfg: &Config) -> Vec<Group> {
    (0..cfg.interfaces.len())
        .map(|i| {
            let g = cfg.bridge_groups.iter().position(|g| g.members.contains(&IfIndex(i as u8)));
            g.unwrap_or(0) as Group
        })
        .collect()
}

/// The configured static stations, keyed for the MAC table.
fn static_macs(cfg: &Config) -> impl Iterator<Item = (Group, Mac, IfIndex)> + '_ {
    cfg.bridge_groups
        .iter()
        .enumerate()
        .flat_map(|(g, bg)| bg.static_macs.iter().map(move |&(mac, port)| (g as Group, mac, port)))
}

fn if_addrs(cfg: &Config) -> Vec<u32> {
    cfg.interfaces.iter().map(|i| i.address.map_or(0, |a| u32::from(a.addr))).collect()
}

fn acl_hits_for(cfg: &Config) -> Vec<Vec<u64>> {
    cfg.acls.iter().map(|a| vec![0; a.as_ref().map_or(0, |r| r.len())]).collect()
}

impl Appliance {
    /// A unit with `cfg`. Panics on an unusable failover key: use
    /// [`Appliance::try_new`] where the key comes from outside.
    pub fn new(cfg: Config, now: Instant, rng: Box<dyn Entropy>) -> Self {
        match Self::try_new(cfg, now, rng) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn try_new(cfg: Config, now: Instant, mut rng: Box<dyn Entropy>) -> Result<Self, crate::failover::HaError> {
        let ha = match &cfg.failover {
            Some(fo) => Some(Box::new(crate::failover::Ha::new(&cfg, fo, rng.as_mut(), now)?)),
            None => None,
        };
        let nat = Nat::new(&cfg.nat, if_addrs(&cfg));
        let ct = Table::new(cfg.limits.max_conns, seed(rng.as_mut()));
        let arp = ArpCache::new(cfg.limits.arp_queue as usize, cfg.timeouts.arp, seed(rng.as_mut()));
        // Drawn in transparent mode only: an extra draw would move every
        // later random choice (PAT ports) of a routed unit with a given seed.
        let mac_seed = if cfg.mode == crate::config::Mode::Transparent { seed(rng.as_mut()) } else { [0; 4] };
        let mut macs = MacTable::new(cfg.limits.max_macs as usize, cfg.timeouts.mac, mac_seed);
        macs.set_static(static_macs(&cfg), now);
        let frags = HashMap::with_hasher({
            let s = seed(rng.as_mut());
            ahash::RandomState::with_seeds(s[0], s[1], s[2], s[3])
        });
        let mut app = Appliance {
            ports: ports_of(&cfg, &nat, ha.is_some()),
            port_group: port_groups(&cfg),
            ha,
            routes: RouteTable::from_config(&cfg),
            acl_hits: acl_hits_for(&cfg),
            counters: Counters::new(cfg.interfaces.len()),
            icmp_tokens: cfg.limits.icmp_rate,
            cfg,
            ct,
            nat,
            arp,
            macs,
            endpoints: Vec::new(),
            next_mac_age: now,
            aged_macs: Vec::new(),
            frags,
            pool: Pool::default(),
            out: VecDeque::new(),
            rng,
            icmp_refilled: now,
            next_tick: now + TICK,
            scratch: Vec::new(),
            gone: Vec::new(),
            first_forward_pending: false,
            tx_offload: Vec::new(),
            seg_scratch: Vec::new(),
        };
        app.announce();
        Ok(app)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Live connections.
    pub fn conn_count(&self) -> u32 {
        self.ct.len()
    }

    /// Every connection's two keys, sorted: for tests that compare units.
    pub fn conn_keys(&self) -> Vec<[KeyV4; 2]> {
        let mut v: Vec<[KeyV4; 2]> = self.ct.iter().map(|(_, c)| c.key).collect();
        v.sort();
        v
    }

    /// Say whether `port`'s device completes partial checksums and segments
    /// super-frames itself (a TAP with vnet_hdr). Without this, every frame
    /// the core sends is complete, as a pcap or a plain device needs.
    pub fn set_tx_offload(&mut self, port: IfIndex, on: bool) {
        if self.tx_offload.len() <= port.idx() {
            self.tx_offload.resize(port.idx() + 1, false);
        }
        self.tx_offload[port.idx()] = on;
    }

    pub fn alloc_frame(&mut self) -> FrameBuf {
        self.pool.get()
    }

    pub fn recycle(&mut self, buf: FrameBuf) {
        self.pool.put(buf);
    }

    /// Gratuitous ARP for every address we own, so neighbours (and switches)
    /// learn where we are; in transparent mode, the switch refresh.
    fn announce(&mut self) {
        if self.bridged() {
            self.mac_refresh();
            return;
        }
        for i in 0..self.ports.len() {
            let p = self.ports[i].clone();
            for addr in std::iter::once(p.addr).chain(p.proxy.iter().copied()) {
                for _ in 0..GARP_COUNT {
                    let mut b = self.pool.get();
                    emit::arp_packet(&mut b, arpw::REQUEST, Mac::BROADCAST, p.mac, addr, Mac::ZERO, addr);
                    self.counters.events.garp_sent += 1;
                    self.emit(IfIndex(i as u8), b);
                }
            }
        }
    }

    fn emit(&mut self, port: IfIndex, buf: FrameBuf) {
        let c = &mut self.counters.ifaces[port.idx()];
        c.tx_frames += 1;
        c.tx_bytes += buf.len() as u64;
        self.out.push_back(Output::Frame { port, buf });
    }

    fn drop_frame(&mut self, port: IfIndex, buf: FrameBuf, reason: DropReason) {
        self.counters.drop(reason);
        self.counters.ifaces[port.idx()].drops += 1;
        self.pool.put(buf);
    }

    pub fn handle_frame(&mut self, port: IfIndex, buf: FrameBuf, now: Instant) {
        let c = &mut self.counters.ifaces[port.idx()];
        c.rx_frames += 1;
        c.rx_bytes += buf.len() as u64;
        let f = buf.as_ref();
        if f.len() < ether::HEADER_LEN {
            return self.drop_frame(port, buf, DropReason::EthTooShort);
        }
        let dst = &f[ether::DST];
        let bridged = self.bridged();
        if !bridged && dst != self.ports[port.idx()].mac.0 && dst[0] & 1 == 0 {
            return self.drop_frame(port, buf, DropReason::NotForUs);
        }
        if let Some(ha) = self.ha.as_mut() {
            ha.last_rx[port.idx()] = Some(now);
        }
        match be16(f, ether::TYPE) {
            crate::failover::HELLO_ETHERTYPE if self.ha.is_some() => {
                self.ha_receive(&buf.as_ref()[ether::HEADER_LEN..], crate::failover::Path::Data(port.0), now);
                self.pool.put(buf);
            }
            _ if bridged => self.bridge_input(port, buf, now),
            ether::TYPE_IPV4 if !self.forwarding() => self.standby_ip_input(port, buf),
            ether::TYPE_IPV4 => self.ip_input(port, buf, now),
            ether::TYPE_ARP => self.arp_input(port, buf, now),
            ether::TYPE_VLAN | ether::TYPE_QINQ => self.drop_frame(port, buf, DropReason::Vlan),
            ether::TYPE_IPV6 => self.drop_frame(port, buf, DropReason::Ipv6),
            _ => self.drop_frame(port, buf, DropReason::UnknownEthertype),
        }
    }

    fn arp_input(&mut self, port: IfIndex, buf: FrameBuf, now: Instant) {
        let f = buf.as_ref();
        let Some(a) = f.get(ether::HEADER_LEN..ether::HEADER_LEN + arpw::LEN) else {
            return self.drop_frame(port, buf, DropReason::ArpMalformed);
        };
        if be16(a, arpw::HTYPE) != 1
            || be16(a, arpw::PTYPE) != ether::TYPE_IPV4
            || a[arpw::HLEN] != 6
            || a[arpw::PLEN] != 4
        {
            return self.drop_frame(port, buf, DropReason::ArpMalformed);
        }
        let op = be16(a, arpw::OPER);
        let mut sha = Mac::ZERO;
        sha.0.copy_from_slice(&a[arpw::SHA]);
        let spa = be32(a, arpw::SPA);
        let tpa = be32(a, arpw::TPA);
        let p = &self.ports[port.idx()];
        let (our_mac, our_addr) = (p.mac, p.addr);
        if spa == our_addr && sha != our_mac {
            let ev = Event::AddressConflict { iface: self.cfg.iface(port).name.clone(), ip: spa.into(), mac: sha };
            self.out.push_back(Output::Event(ev));
            return self.drop_frame(port, buf, DropReason::ArpNotForUs);
        }
        let for_us = tpa == our_addr || p.proxy.contains(&tpa);
        if spa != 0 && !sha.is_multicast() && p.net.contains(spa.into()) {
            let created = self.arp.learn(spa, sha, port, now, for_us);
            if created {
                self.counters.events.arp_learned += 1;
                self.ha_mark(crate::failover::arp_sync::KIND, spa as u64, crate::ha::wire::Op::Update, now);
            }
            self.release_pending(spa, sha);
        }
        if op == arpw::REQUEST && for_us {
            let mut b = buf;
            emit::arp_packet(&mut b, arpw::REPLY, sha, our_mac, tpa, sha, spa);
            self.counters.events.arp_replies_sent += 1;
            self.emit(port, b);
        } else if for_us && op == arpw::REPLY {
            self.pool.put(buf);
        } else {
            self.drop_frame(port, buf, DropReason::ArpNotForUs);
        }
    }

    /// Send the frames that waited for `ip`.
    fn release_pending(&mut self, ip: u32, mac: Mac) {
        let mut waiting = std::mem::take(&mut self.scratch);
        self.arp.take_pending(ip, &mut waiting);
        for mut p in waiting.drain(..) {
            p.buf.as_mut()[ether::DST].copy_from_slice(&mac.0);
            self.counters.events.frames_forwarded += 1;
            self.emit(p.iface, p.buf);
        }
        self.scratch = waiting;
    }

    /// One of our own addresses (0.0.0.0, what a port without an address
    /// has in transparent mode, is nobody's).
    fn is_ours(&self, ip: u32) -> bool {
        ip != 0 && self.ports.iter().any(|p| p.addr == ip)
    }

    /// TTL ends here: a router's rule. A bridge leaves TTL alone.
    fn ttl_exhausted(&self, d: &PacketDesc) -> bool {
        d.ttl <= 1 && !self.bridged()
    }

    fn is_martian_src(&self, src: u32) -> bool {
        let first = (src >> 24) as u8;
        first == 0 || first == 127 || first >= 224 || self.ports.iter().any(|p| p.addr == src)
    }

    fn is_broadcast_dst(&self, dst: u32) -> bool {
        dst == u32::MAX
            || (dst >> 28) == 0xe
            || self.ports.iter().any(|p| p.net.len < 31 && u32::from(p.net.broadcast()) == dst)
    }

    fn ip_input(&mut self, port: IfIndex, mut buf: FrameBuf, now: Instant) {
        let mut d = match pdesc::parse(buf.as_ref(), ether::HEADER_LEN) {
            Ok(d) => d,
            Err(r) => return self.drop_frame(port, buf, r),
        };
        if buf.offload != Offload::default() {
            if let Err(r) = offload::check_ingress(&mut buf, &mut d) {
                return self.drop_frame(port, buf, r);
            }
        }
        if d.ip_len > self.ports[port.idx()].mtu as usize && !buf.offload.is_gso() {
            return self.drop_frame(port, buf, DropReason::RxTooLong);
        }
        if self.is_martian_src(d.key.src) {
            return self.drop_frame(port, buf, DropReason::Ipv4Martian);
        }
        if self.is_broadcast_dst(d.key.dst) {
            return self.drop_frame(port, buf, DropReason::L3Broadcast);
        }
        if d.is_later_fragment() {
            return self.fragment_input(port, buf, d, now);
        }
        if d.icmp == Some(IcmpKind::Error) {
            return self.icmp_error_input(port, buf, d, now);
        }
        if let Some((slot, dir)) = self.ct.lookup(&d.key) {
            let c = self.ct.get(slot);
            let stale = c.expires <= now
                || (c.state == ConnState::Tcp
                    && dir == Dir::Orig
                    && d.tcp.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
                    && matches!(tcp::phase(&c.tcp), tcp::ConnPhase::TimeWait | tcp::ConnPhase::Reset));
            if !stale {
                return self.established(port, buf, &mut d, slot, dir, now);
            }
            let expired = c.expires <= now;
            self.remove_conn(slot, now);
            if expired {
                self.counters.events.conns_expired += 1;
            } else {
                self.counters.events.conns_replaced += 1;
            }
        }
        self.new_flow(port, buf, d, now)
    }

    fn established(&mut self, port: IfIndex, buf: FrameBuf, d: &mut PacketDesc, slot: u32, dir: Dir, now: Instant) {
        if self.ttl_exhausted(d) {
            return self.ttl_expired(port, buf, d);
        }
        let timeouts = &self.cfg.timeouts;
        let c = self.ct.get_mut(slot);
        let mut changed = false;
        match c.state {
            ConnState::Tcp => {
                if !tcp::flags_valid(d.tcp.flags) {
                    return self.drop_frame(port, buf, DropReason::TcpBadFlags);
                }
                let loose = if dir == Dir::Orig { ct_flags::LOOSE_ORIG } else { ct_flags::LOOSE_REPLY };
                let before = tcp::phase(&c.tcp);
                let r = if c.flags & loose != 0 {
                    tcp::track_loose(&mut c.tcp, dir.idx(), &d.tcp)
                } else {
                    tcp::track(&mut c.tcp, dir.idx(), &d.tcp)
                };
                if let Err(r) = r {
                    return self.drop_frame(port, buf, r);
                }
                c.flags &= !loose;
                changed = tcp::phase(&c.tcp) != before;
            }
            ConnState::Unreplied if dir == Dir::Reply => {
                c.state = ConnState::Assured;
                changed = true;
            }
            _ => {}
        }
        c.flags &= !ct_flags::SYNCED;
        c.expires = now + conntrack::timeout_for(c, timeouts);
        c.bytes += d.ip_len as u64;
        let target = c.key[dir.other().idx()].reversed();
        if changed {
            // TCP is replicated from its first change past the handshake
            // (see `new_flow`); from then on every change is an update.
            let op = if c.flags & ct_flags::REPLICATED != 0 {
                Some(crate::ha::wire::Op::Update)
            } else if tcp::phase(&c.tcp) != tcp::ConnPhase::Opening {
                Some(crate::ha::wire::Op::Insert)
            } else {
                None
            };
            if let Some(op) = op {
                if self.ha.is_some() {
                    c.flags |= ct_flags::REPLICATED;
                }
                let id = self.ct.id_of(slot);
                self.ha_mark(crate::failover::conn_sync::KIND, id, op, now);
            }
        }
        self.forward(port, buf, d, target, now);
    }

    /// An ICMP error travels like a reply to the packet it quotes: find
    /// that packet's connection, then translate the outer destination and
    /// the quote back to what the receiving endpoint sent.
    fn icmp_error_input(&mut self, port: IfIndex, buf: FrameBuf, mut d: PacketDesc, now: Instant) {
        let Some(inner) = d.inner else { return self.drop_frame(port, buf, DropReason::L4Malformed) };
        let Some((slot, dir)) = self.ct.lookup(&inner.key.reversed()) else {
            if d.key.dst == self.ports[port.idx()].addr {
                // An error about something we sent ourselves: nothing to do.
                return self.drop_frame(port, buf, DropReason::ToSelf);
            }
            return self.drop_frame(port, buf, DropReason::IcmpErrorNoConn);
        };
        if self.ttl_exhausted(&d) {
            return self.drop_frame(port, buf, DropReason::TtlExpired);
        }
        let c = self.ct.get(slot);
        let orig_of_other = c.key[dir.other().idx()];
        let mut buf = buf;
        pdesc::rewrite_inner(buf.as_mut(), &mut d, &orig_of_other);
        let target = KeyV4 { dst: orig_of_other.src, ..d.key };
        self.forward(port, buf, &mut d, target, now);
    }

    fn fragment_input(&mut self, port: IfIndex, buf: FrameBuf, mut d: PacketDesc, now: Instant) {
        let fk = FragKey { src: d.key.src, dst: d.key.dst, ident: d.ident, proto: d.key.proto };
        let Some(e) = self.frags.get(&fk).copied().filter(|e| e.expires > now) else {
            return self.drop_frame(port, buf, DropReason::FragmentNoState);
        };
        if self.ttl_exhausted(&d) {
            return self.ttl_expired(port, buf, &d);
        }
        if !d.more_frags {
            self.frags.remove(&fk);
        }
        self.counters.events.fragments_forwarded += 1;
        let target = KeyV4 { src: e.src, dst: e.dst, ..d.key };
        self.forward(port, buf, &mut d, target, now);
    }

    fn new_flow(&mut self, port: IfIndex, buf: FrameBuf, d: PacketDesc, now: Instant) {
        let k = d.key;
        match k.proto {
            proto::TCP if !tcp::flags_valid(d.tcp.flags) => {
                return self.drop_frame(port, buf, DropReason::TcpBadFlags);
            }
            proto::ICMP => match (d.icmp, d.icmp_type) {
                (Some(IcmpKind::Echo), icmp::ECHO_REQUEST) => {}
                (Some(IcmpKind::Echo), _) => return self.drop_frame(port, buf, DropReason::IcmpNoConn),
                _ => {
                    if self.is_ours(k.dst) {
                        return self.drop_frame(port, buf, DropReason::ToSelf);
                    }
                    return self.drop_frame(port, buf, DropReason::IcmpUnsupported);
                }
            },
            _ => {}
        }
        let dnat = self.nat.dnat(port, &k);
        if dnat.is_none() && self.is_ours(k.dst) {
            return self.local_input(port, buf, d);
        }
        if k.proto == proto::TCP && d.tcp.flags & (tcp_flags::SYN | tcp_flags::ACK) != tcp_flags::SYN {
            return self.drop_frame(port, buf, DropReason::TcpNoSyn);
        }
        let mut real = k;
        if let Some((a, p)) = dnat {
            real.dst = a;
            real.dport = p;
        }
        let egress = if self.bridged() {
            match self.bridge_egress(port, &buf, &d) {
                Some(p) => p,
                None => {
                    self.mac_probe(port, real.dst);
                    return self.drop_frame(port, buf, DropReason::MacUnknown);
                }
            }
        } else {
            let Some(hop) = self.routes.lookup(real.dst) else {
                self.icmp_error(port, &buf, &d, icmp::DEST_UNREACH, icmp::UNREACH_NET, 0);
                return self.drop_frame(port, buf, DropReason::NoRoute);
            };
            hop.iface
        };
        if egress == port {
            return self.drop_frame(port, buf, DropReason::SameInterface);
        }
        if self.ttl_exhausted(&d) {
            return self.ttl_expired(port, buf, &d);
        }
        match acl::decide(&self.cfg, &mut self.acl_hits, port, egress, &real, d.icmp_type) {
            Decision::Permit => {}
            Decision::Deny(_) => return self.drop_frame(port, buf, DropReason::AclDeny),
            Decision::SecurityLevel => return self.drop_frame(port, buf, DropReason::SecurityLevel),
            Decision::Reject(_) => {
                if k.proto == proto::TCP {
                    self.tcp_reset(port, &buf, &d);
                } else {
                    self.icmp_error(port, &buf, &d, icmp::DEST_UNREACH, icmp::UNREACH_ADMIN, 0);
                }
                return self.drop_frame(port, buf, DropReason::AclDeny);
            }
        }
        let m = self.nat.snat(port, egress, &real);
        let mut post = real;
        let mut flags = if dnat.is_some() { conntrack::table::flags::DNAT } else { 0 };
        if let Some((a, p)) = m.src_static {
            post.src = a;
            post.sport = p;
            flags |= conntrack::table::flags::SNAT;
        } else if let Some(mapped) = m.pat {
            let start = self.rng.next_u64() as u32;
            let ct = &self.ct;
            let Some(p) = self.nat.pat_port(&post, mapped, start, |r| ct.lookup(r).is_some()) else {
                return self.drop_frame(port, buf, DropReason::NatNoPorts);
            };
            post.src = mapped;
            post.sport = p;
            flags |= conntrack::table::flags::PAT;
        }
        let mut conn = Conn {
            key: [k, post.reversed()],
            iface: [port, egress],
            flags,
            state: if k.proto == proto::TCP { ConnState::Tcp } else { ConnState::Unreplied },
            bytes: d.ip_len as u64,
            ..Default::default()
        };
        if k.proto == proto::TCP {
            conn.tcp = tcp::init_orig(&d.tcp);
        }
        conn.expires = now + conntrack::timeout_for(&conn, &self.cfg.timeouts);
        let slot = match self.ct.insert(conn) {
            Ok(slot) => slot,
            Err(e) => {
                let r = match e {
                    InsertError::Full => DropReason::ConnLimit,
                    InsertError::KeyInUse => DropReason::ConnKeyInUse,
                };
                return self.drop_frame(port, buf, r);
            }
        };
        if self.bridged() {
            self.note_endpoints(slot, &buf);
        }
        // Embryonic TCP is not replicated: a half-open connection lost in a
        // failover costs a SYN retransmission, while replicating every SYN
        // would let a SYN flood fill the failover link. UDP and ICMP go now.
        if k.proto != proto::TCP && self.ha.is_some() {
            self.ct.get_mut(slot).flags |= ct_flags::REPLICATED;
            let id = self.ct.id_of(slot);
            self.ha_mark(crate::failover::conn_sync::KIND, id, crate::ha::wire::Op::Insert, now);
        }
        self.counters.events.conns_created += 1;
        if flags & conntrack::table::flags::PAT != 0 {
            self.counters.events.xlates_created += 1;
        }
        let mut d = d;
        self.forward(port, buf, &mut d, post, now);
    }

    /// Traffic for the appliance itself. Only the ingress interface's own
    /// address answers, as on ASA.
    fn local_input(&mut self, port: IfIndex, buf: FrameBuf, d: PacketDesc) {
        if d.key.dst != self.ports[port.idx()].addr {
            return self.drop_frame(port, buf, DropReason::ToSelf);
        }
        match (d.key.proto, d.icmp_type) {
            (proto::ICMP, icmp::ECHO_REQUEST) => {
                let mut b = buf;
                emit::echo_reply_in_place(&mut b, &d, self.ports[port.idx()].mac);
                self.counters.events.icmp_echo_replies += 1;
                self.emit(port, b);
            }
            (proto::UDP, _) => {
                // So that a traceroute ends here.
                self.icmp_error(port, &buf, &d, icmp::DEST_UNREACH, icmp::UNREACH_PORT, 0);
                self.drop_frame(port, buf, DropReason::ToSelf)
            }
            _ => self.drop_frame(port, buf, DropReason::ToSelf),
        }
    }

    fn ttl_expired(&mut self, port: IfIndex, buf: FrameBuf, d: &PacketDesc) {
        self.icmp_error(port, &buf, d, icmp::TIME_EXCEEDED, 0, 0);
        self.drop_frame(port, buf, DropReason::TtlExpired)
    }

    /// Rewrite `d` to `target`, decrement TTL, find the next hop and send
    /// (or park the frame until ARP answers). In transparent mode the frame
    /// leaves unchanged by the port its destination MAC is behind.
    fn forward(&mut self, port: IfIndex, mut buf: FrameBuf, d: &mut PacketDesc, target: KeyV4, now: Instant) {
        let (out, next_hop) = if self.bridged() {
            let Some(out) = self.bridge_egress(port, &buf, d) else {
                return self.drop_frame(port, buf, DropReason::MacUnknown);
            };
            if out == port {
                return self.drop_frame(port, buf, DropReason::SameInterface);
            }
            (out, None)
        } else {
            let Some(hop) = self.routes.lookup(target.dst) else {
                return self.drop_frame(port, buf, DropReason::NoRoute);
            };
            (hop.iface, Some(hop.ip))
        };
        let egress = &self.ports[out.idx()];
        if offload::segment_ip_len(d, &buf.offload) > egress.mtu as usize {
            if d.df {
                let mtu = egress.mtu as u32;
                self.icmp_error(port, &buf, d, icmp::DEST_UNREACH, icmp::UNREACH_NEEDFRAG, mtu);
            }
            return self.drop_frame(port, buf, DropReason::MtuExceeded);
        }
        let src_mac = egress.mac;
        if d.more_frags && d.frag_off == 0 {
            if self.frags.len() >= self.cfg.limits.max_fragments as usize {
                return self.drop_frame(port, buf, DropReason::FragmentLimit);
            }
            let fk = FragKey { src: d.key.src, dst: d.key.dst, ident: d.ident, proto: d.key.proto };
            let e = FragEntry { src: target.src, dst: target.dst, expires: now + self.cfg.timeouts.fragment };
            self.frags.insert(fk, e);
        }
        let Some(ip) = next_hop else {
            return self.send_offloaded(out, None, buf, d, now);
        };
        pdesc::rewrite(buf.as_mut(), d, &target);
        pdesc::decrement_ttl(buf.as_mut(), d);
        buf.truncate(d.l3 + d.ip_len);
        buf.as_mut()[ether::SRC].copy_from_slice(&src_mac.0);
        self.send_offloaded(out, Some(ip), buf, d, now);
    }

    /// Finish what the egress device cannot do itself: complete a partial
    /// checksum, or cut a super-frame into segments; then send. `ip` is the
    /// next hop (routed) or `None` (bridged: the frame goes as it is).
    fn send_offloaded(&mut self, out: IfIndex, ip: Option<u32>, mut buf: FrameBuf, d: &PacketDesc, now: Instant) {
        if buf.offload.needs_csum() && !self.tx_offload.get(out.idx()).copied().unwrap_or(false) {
            if buf.offload.is_gso() {
                return self.send_segments(out, ip, buf, d, now);
            }
            let mut off = buf.offload;
            offload::complete_checksum(buf.as_mut(), &mut off);
            buf.offload = off;
        }
        self.send_out(out, ip, buf, now);
    }

    fn send_out(&mut self, out: IfIndex, ip: Option<u32>, buf: FrameBuf, now: Instant) {
        match ip {
            Some(ip) => self.send_to_next_hop(out, ip, buf, now),
            None => self.forwarded(out, buf, now),
        }
    }

    /// Send a forwarded frame, counted (and timed after a takeover).
    fn forwarded(&mut self, out: IfIndex, buf: FrameBuf, now: Instant) {
        self.counters.events.frames_forwarded += 1;
        if self.first_forward_pending {
            self.ha_note_first_forward(now);
        }
        self.emit(out, buf);
    }

    /// A super-frame for a device that cannot segment it: cut it here.
    fn send_segments(&mut self, out: IfIndex, ip: Option<u32>, buf: FrameBuf, d: &PacketDesc, now: Instant) {
        let mut segs = std::mem::take(&mut self.seg_scratch);
        let pool = &mut self.pool;
        offload::segment(&buf, d, || pool.get(), |b| segs.push(b));
        self.pool.put(buf);
        for b in segs.drain(..) {
            self.send_out(out, ip, b, now);
        }
        self.seg_scratch = segs;
    }

    fn send_to_next_hop(&mut self, out: IfIndex, ip: u32, mut buf: FrameBuf, now: Instant) {
        match self.arp.lookup(ip, now) {
            Lookup::Hit(mac) => {
                buf.as_mut()[ether::DST].copy_from_slice(&mac.0);
                self.forwarded(out, buf, now);
            }
            Lookup::HitRefresh(mac) => {
                buf.as_mut()[ether::DST].copy_from_slice(&mac.0);
                self.counters.events.frames_forwarded += 1;
                self.emit(out, buf);
                self.arp_request(out, ip);
            }
            Lookup::Miss => match self.arp.queue(ip, out, buf, now) {
                Ok(true) => self.arp_request(out, ip),
                Ok(false) => {}
                Err(buf) => self.drop_frame(out, buf, DropReason::ArpQueueFull),
            },
        }
    }

    fn arp_request(&mut self, out: IfIndex, ip: u32) {
        let p = &self.ports[out.idx()];
        let (mac, addr) = (p.mac, p.addr);
        let mut b = self.pool.get();
        emit::arp_packet(&mut b, arpw::REQUEST, Mac::BROADCAST, mac, addr, Mac::ZERO, ip);
        self.counters.events.arp_requests_sent += 1;
        self.emit(out, b);
    }

    /// Whether an ICMP error may be sent now (token bucket, `limits.icmp_rate`).
    fn icmp_allowed(&mut self, now_hint: Option<Instant>) -> bool {
        if let Some(now) = now_hint {
            let elapsed = now.saturating_since(self.icmp_refilled);
            if elapsed >= Duration::from_secs(1) {
                self.icmp_tokens = self.cfg.limits.icmp_rate;
                self.icmp_refilled = now;
            }
        }
        if self.icmp_tokens == 0 {
            self.counters.events.icmp_errors_rate_limited += 1;
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }

    /// Send an ICMP error about `orig` back out of `port`, unless RFC 1122
    /// 3.2.2 forbids it (errors about errors, later fragments, broadcasts).
    fn icmp_error(&mut self, port: IfIndex, orig: &FrameBuf, d: &PacketDesc, ty: u8, code: u8, extra: u32) {
        let f = orig.as_ref();
        if d.icmp == Some(IcmpKind::Error) || d.is_later_fragment() || f[0] & 1 == 1 || self.is_martian_src(d.key.src) {
            return;
        }
        if self.ports[port.idx()].addr == 0 {
            return; // transparent mode: no address to send it from
        }
        if !self.icmp_allowed(None) {
            return;
        }
        let p = &self.ports[port.idx()];
        let (mac, addr) = (p.mac, p.addr);
        let mut b = self.pool.get();
        emit::icmp_error(&mut b, f, d, mac, addr, ty, code, extra);
        self.counters.events.icmp_errors_sent += 1;
        self.emit(port, b);
    }

    fn tcp_reset(&mut self, port: IfIndex, orig: &FrameBuf, d: &PacketDesc) {
        if d.tcp.flags & tcp_flags::RST != 0 || !self.icmp_allowed(None) {
            return;
        }
        let mac = self.ports[port.idx()].mac;
        let mut b = self.pool.get();
        emit::tcp_reset(&mut b, orig.as_ref(), d, mac);
        self.counters.events.tcp_resets_sent += 1;
        self.emit(port, b);
    }

    fn remove_conn(&mut self, slot: u32, now: Instant) {
        let id = self.ct.id_of(slot);
        let c = self.ct.remove(slot);
        if c.flags & ct_flags::REPLICATED != 0 {
            self.ha_conn_gone(id, c.key[0], now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Refill the ICMP budget on the timer path so the fast path need not.
        self.icmp_allowed(Some(now));
        self.icmp_tokens += 1;
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            let budget = SWEEP_MIN.max(self.ct.slot_count() / SWEEP_PASS_TICKS);
            let mut gone = std::mem::take(&mut self.gone);
            let expired = if self.forwarding() {
                self.ct.sweep(now, budget, |slot, c| {
                    if c.flags & ct_flags::REPLICATED != 0 {
                        gone.push(((c.gen as u64) << 32 | slot as u64, c.key[0]))
                    }
                })
            } else {
                0 // a standby's copies live until the active deletes them
            };
            for (id, key) in gone.drain(..) {
                self.ha_conn_gone(id, key, now);
            }
            self.gone = gone;
            self.counters.events.conns_expired += expired as u64;
            self.ha_adopt_pass(now);
            self.frags.retain(|_, e| e.expires > now);
            if now >= self.next_mac_age && self.forwarding() {
                self.mac_age(now);
            }
        }
        let mut work = arp::TimerWork::default();
        self.arp.handle_timeout(now, &mut work);
        for ip in &work.aged {
            self.ha_mark(crate::failover::arp_sync::KIND, *ip as u64, crate::ha::wire::Op::Delete, now);
        }
        for (ip, iface) in work.requests {
            self.arp_request(iface, ip);
        }
        // The parked frames were already translated for their next hop;
        // no host-unreachable goes back to their senders yet (see README).
        for p in work.failed_frames {
            self.drop_frame(p.iface, p.buf, DropReason::ArpUnresolved);
        }
        self.ha_timeout(now);
    }

    pub fn handle_command(&mut self, cmd: Command, _now: Instant) -> Result<(), CommandError> {
        match cmd {
            Command::Failover(role) => self.ha_command(role, _now),
            Command::Reload(cfg) => {
                let same = cfg.interfaces.len() == self.cfg.interfaces.len()
                    && cfg.interfaces.iter().zip(&self.cfg.interfaces).all(|(a, b)| a.name == b.name && a.tap == b.tap);
                if !same {
                    return Err(CommandError::InterfacesChanged);
                }
                if cfg.mode != self.cfg.mode {
                    return Err(CommandError::ModeChanged);
                }
                if let (Some(a), Some(b)) = (&cfg.failover, &self.cfg.failover) {
                    if a.unit != b.unit || a.key != b.key || a.preempt.is_some() != b.preempt.is_some() {
                        return Err(CommandError::FailoverIdentityChanged);
                    }
                }
                self.nat.set_rules(&cfg.nat, if_addrs(&cfg));
                self.ports = ports_of(&cfg, &self.nat, !self.forwarding());
                self.routes = RouteTable::from_config(&cfg);
                self.acl_hits = acl_hits_for(&cfg);
                self.ct.set_max(cfg.limits.max_conns);
                self.arp.set_limits(cfg.limits.arp_queue as usize, cfg.timeouts.arp);
                if let (Some(ha), Some(fo)) = (self.ha.as_mut(), cfg.failover.as_ref()) {
                    ha.reconfigure(&cfg, fo);
                }
                self.macs.set_limits(cfg.limits.max_macs as usize, cfg.timeouts.mac);
                let groups = port_groups(&cfg);
                if groups != self.port_group {
                    // Stations were learned per group: regrouped ports start afresh.
                    self.macs.clear();
                    self.port_group = groups;
                }
                self.macs.set_static(static_macs(&cfg), _now);
                self.cfg = *cfg;
                self.counters.events.reloads += 1;
                self.announce();
                self.out.push_back(Output::Event(Event::Reloaded));
                Ok(())
            }
        }
    }

    /// A datagram from the failover link (hello or delta). `ttl_ok` is
    /// whether it arrived with IP TTL 255, i.e. from a directly connected
    /// sender (RFC 5082); the shell checks it.
    pub fn handle_sync(&mut self, bytes: &[u8], ttl_ok: bool, now: Instant) {
        let Some(ha) = self.ha.as_mut() else { return };
        if !ttl_ok {
            // Not from a directly connected sender (RFC 5082).
            ha.count("ha-ttl-not-255");
            return;
        }
        self.ha_receive(bytes, crate::failover::Path::Link, now);
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let busy = !self.ct.is_empty() || !self.frags.is_empty() || !self.arp.is_empty() || !self.macs.is_empty();
        let tick = busy.then_some(self.next_tick);
        let t = crate::time::earliest(tick, self.arp.poll_timeout());
        crate::time::earliest(t, self.ha_poll_timeout())
    }

    pub fn show(&self, what: ShowWhat, now: Instant) -> Report {
        show_report(self, what, now)
    }
}

use crate::conntrack::table::flags as ct_flags;

mod tcp_flags {
    pub use crate::wire::tcp::{ACK_FLAG as ACK, RST, SYN};
}

fn proto_name(p: u8) -> String {
    match p {
        proto::TCP => "TCP".into(),
        proto::UDP => "UDP".into(),
        proto::ICMP => "ICMP".into(),
        n => format!("PROTO{n}"),
    }
}

fn show_report(app: &Appliance, what: ShowWhat, now: Instant) -> Report {
    let name = |i: IfIndex| app.cfg.iface(i).name.clone();
    let ep = |a: u32, p: u16, proto: u8| {
        if proto == proto::TCP || proto == proto::UDP {
            format!("{}:{}", std::net::Ipv4Addr::from(a), p)
        } else {
            std::net::Ipv4Addr::from(a).to_string()
        }
    };
    match what {
        ShowWhat::Failover => Report::Failover(app.ha_report(now)),
        ShowWhat::Conn => {
            let mut conns = Vec::new();
            for (_, c) in app.ct.iter().take(SHOW_MAX_LINES) {
                let o = c.key[0];
                let r = c.key[1];
                let timeout = conntrack::timeout_for(c, &app.cfg.timeouts);
                let left = c.expires.saturating_since(now);
                conns.push(show::ConnLine {
                    proto: proto_name(o.proto),
                    from_if: name(c.iface[0]),
                    from: ep(o.src, o.sport, o.proto),
                    to_if: name(c.iface[1]),
                    to: ep(r.src, r.sport, o.proto),
                    from_mapped: ep(r.dst, r.dport, o.proto),
                    to_mapped: ep(o.dst, o.dport, o.proto),
                    state: conntrack::state_label(c).into(),
                    idle_ms: timeout.as_millis().saturating_sub(left.as_millis()),
                    expires_in_ms: left.as_millis(),
                    bytes: c.bytes,
                });
            }
            let mem = app.ct.memory_bytes();
            let n = app.ct.len() as u64;
            Report::Conn(show::ConnReport {
                in_use: n,
                max: app.ct.max() as u64,
                most_used: app.ct.most_used() as u64,
                memory_bytes: mem as u64,
                bytes_per_conn: (mem as u64).checked_div(n).unwrap_or(0),
                conns,
            })
        }
        ShowWhat::Xlate => {
            let mut xlates = Vec::new();
            for r in app.nat.rules() {
                match *r {
                    crate::config::NatRule::Static { inside, outside, real, mapped } => xlates.push(show::XlateLine {
                        kind: "static".into(),
                        proto: "ip".into(),
                        real: real.to_string(),
                        mapped: mapped.to_string(),
                        in_if: name(inside),
                        out_if: name(outside),
                        conns: 0,
                    }),
                    crate::config::NatRule::PortForward {
                        inside,
                        outside,
                        proto: p,
                        mapped,
                        mapped_port,
                        real,
                        real_port,
                    } => {
                        let m =
                            mapped.or(app.cfg.iface(outside).address.map(|a| a.addr)).unwrap_or(Ipv4Addr::UNSPECIFIED);
                        xlates.push(show::XlateLine {
                            kind: "static-pat".into(),
                            proto: proto_name(p),
                            real: format!("{real}:{real_port}"),
                            mapped: format!("{m}:{mapped_port}"),
                            in_if: name(inside),
                            out_if: name(outside),
                            conns: 0,
                        })
                    }
                    _ => {}
                }
            }
            let pat = conntrack::table::flags::PAT;
            for (_, c) in app.ct.iter().filter(|(_, c)| c.flags & pat != 0).take(SHOW_MAX_LINES) {
                let (o, r) = (c.key[0], c.key[1]);
                xlates.push(show::XlateLine {
                    kind: "dynamic-pat".into(),
                    proto: proto_name(o.proto),
                    real: ep(o.src, o.sport, o.proto),
                    mapped: ep(r.dst, r.dport, o.proto),
                    in_if: name(c.iface[0]),
                    out_if: name(c.iface[1]),
                    conns: 1,
                });
            }
            Report::Xlate(show::XlateReport { in_use: xlates.len() as u64, xlates })
        }
        ShowWhat::Arp => Report::Arp(
            app.arp
                .entries()
                .into_iter()
                .map(|(ip, e)| show::ArpLine {
                    interface: name(e.iface),
                    ip: std::net::Ipv4Addr::from(ip).to_string(),
                    mac: e.mac.to_string(),
                    age_s: now.saturating_since(e.updated).as_secs(),
                    state: match e.state {
                        arp::EntryState::Resolved => "resolved".into(),
                        arp::EntryState::Incomplete { .. } => "incomplete".into(),
                    },
                })
                .collect(),
        ),
        ShowWhat::Mac => Report::Mac(
            app.macs
                .entries()
                .into_iter()
                .take(SHOW_MAX_LINES)
                .map(|((g, mac), e)| show::MacLine {
                    bridge_group: app.cfg.bridge_groups.get(g as usize).map_or_else(String::new, |b| b.name.clone()),
                    interface: name(e.port),
                    mac: mac.to_string(),
                    kind: if e.fixed { "static" } else { "dynamic" }.into(),
                    age_s: if e.fixed { 0 } else { now.saturating_since(e.seen).as_secs() },
                })
                .collect(),
        ),
        ShowWhat::Route => Report::Route(
            app.routes
                .routes()
                .iter()
                .map(|r| show::RouteLine {
                    kind: if r.gateway.is_some() { "S".into() } else { "C".into() },
                    destination: r.dest.to_string(),
                    gateway: r.gateway.map(|g| g.to_string()),
                    interface: name(r.iface),
                })
                .collect(),
        ),
        ShowWhat::Interface => Report::Interface(
            app.cfg
                .interfaces
                .iter()
                .enumerate()
                .map(|(i, c)| show::InterfaceLine {
                    name: c.name.clone(),
                    tap: c.tap.clone(),
                    mac: c.mac.to_string(),
                    address: c.address.map_or_else(|| "unassigned".into(), |a| a.to_string()),
                    security_level: c.security_level,
                    mtu: c.mtu,
                    counters: app.counters.ifaces[i].clone(),
                })
                .collect(),
        ),
        ShowWhat::Counters => Report::Counters(show::CountersReport {
            drops: app.counters.drop_map(),
            events: app.counters.events.clone(),
            interfaces: app
                .cfg
                .interfaces
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), app.counters.ifaces[i].clone()))
                .collect(),
        }),
    }
}

#[path = "appliance_ha.rs"]
mod ha_glue;

#[path = "appliance_bridge.rs"]
mod bridge_glue;

#[cfg(test)]
#[path = "appliance_tests.rs"]
mod tests;
