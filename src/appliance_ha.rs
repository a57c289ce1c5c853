//! The appliance's failover wiring: hellos in and out, the delta stream,
//! replication of the connection and ARP tables, role changes and the
//! takeover itself. The parts that know no table are in `crate::ha`.
//!
//! Takeover order is commit, then claim: every delta received is applied
//! as it arrives, so when the role machine says "active" the tables are
//! already complete; only then does the unit switch to the virtual MACs and
//! active addresses and announce them with gratuitous ARP.

use super::*;
use crate::failover::arp_sync::ArpSync;
use crate::failover::conn_sync::{self, ConnSync};
use crate::failover::mac_sync::{self, MacSync};
use crate::failover::{Ha, Path, GARP_ROUNDS, GARP_SPACING, HELLO_ETHERTYPE, HELLO_MAC};
use crate::ha::datagram;
use crate::ha::hello::{hello_flags, BulkStatus, HelloRepr};
use crate::ha::role::{self, Outcome, State, Transition};
use crate::ha::stream::StreamEvent;
use crate::ha::table::{apply_body, ApplyReport, ReplicatedTable};
use crate::ha::wire::{self, BodyWriter, HeaderRepr, Kind, Op};

/// Connections whose expiry is refreshed per tick after a takeover.
const ADOPT_BUDGET: usize = 65_536;
/// ARP entries re-confirmed right after a takeover, at most.
const TAKEOVER_ARP_PROBES: usize = 1024;

impl Appliance {
    /// Whether this unit forwards: a single unit always, a pair member only
    /// while active.
    pub(super) fn forwarding(&self) -> bool {
        self.ha.as_ref().is_none_or(|h| h.active)
    }

    /// The failover role, for tests and the shell.
    /// Seal link hellos ahead with each hello ([`Output::HelloAhead`]), for
    /// a shell that sends them from a higher-priority thread while its loop
    /// runs late. Off by default.
    pub fn set_hellos_ahead(&mut self, on: bool) {
        if let Some(ha) = self.ha.as_mut() {
            ha.hellos_ahead = on;
        }
    }

    /// How many hellos are sealed ahead with each (0: off).
    pub fn hellos_ahead(&self) -> u8 {
        self.ha.as_ref().map_or(0, |ha| ha.ahead())
    }

    pub fn role(&self) -> Option<State> {
        self.ha.as_ref().map(|h| h.fsm.state())
    }

    /// A standby forwards nothing; it answers only for its own addresses.
    pub(super) fn standby_ip_input(&mut self, port: IfIndex, buf: FrameBuf) {
        match pdesc::parse(buf.as_ref(), ether::HEADER_LEN) {
            Ok(d) if d.key.dst == self.ports[port.idx()].addr && !d.is_fragment() => self.local_input(port, buf, d),
            Ok(_) => self.drop_frame(port, buf, DropReason::Standby),
            Err(r) => self.drop_frame(port, buf, r),
        }
    }

    /// Queue a local change for the peer (active unit only: a standby's
    /// tables change only by the peer's records, which must not echo back).
    pub(super) fn ha_mark(&mut self, kind: u16, id: u64, op: Op, now: Instant) {
        if let Some(ha) = self.ha.as_mut() {
            if ha.active {
                ha.outbox.mark(kind, id, op, now);
            }
        }
    }

    pub(super) fn ha_conn_gone(&mut self, id: u64, key: KeyV4, now: Instant) {
        if let Some(ha) = self.ha.as_mut() {
            if ha.active {
                ha.tombstones.insert(id, key);
                ha.outbox.mark(conn_sync::KIND, id, Op::Delete, now);
            }
        }
    }

    /// A datagram from the failover link, or a hello from a data port.
    pub(super) fn ha_receive(&mut self, bytes: &[u8], path: Path, now: Instant) {
        let Some(mut ha) = self.ha.take() else { return };
        self.ha_receive_with(&mut ha, bytes, path, now);
        self.ha = Some(ha);
    }

    /// A gap between two calls means this unit was held up (the loop calls
    /// at least every hello interval). Its TAPs have not been read yet, so
    /// their silence says nothing about the links: they get an interface
    /// hold time from now, as at start-up, while the shell reads what queued
    /// up. Past the hold time, if it is active, the peer may have taken over
    /// meanwhile.
    fn ha_note_call(&mut self, ha: &mut Ha, now: Instant) {
        let gap = ha.last_call.map_or(Duration::ZERO, |t| now.saturating_since(t));
        ha.last_call = Some(now);
        // Only a stall that could matter: half the interface hold time.
        let long = (ha.cfg.poll + ha.cfg.poll).max(Duration::from_micros(ha.interface_hold().as_micros() / 2));
        if gap > long {
            ha.iface_check_from = Some(now + ha.interface_hold());
        }
        if gap > ha.cfg.hold && ha.fsm.state() == State::Active {
            // Long enough for every hello the peer sent meanwhile to be read
            // and for one sent after it took over to arrive: hellos queued
            // from before its takeover still say standby.
            ha.stalled_until = Some(now + ha.cfg.hold);
            ha.count("ha-stalled-past-hold");
            let msg = format!(
                "this unit was held up for {} ms, longer than the hold time: if the peer took over meanwhile, it keeps the active role",
                gap.as_millis()
            );
            self.out.push_back(Output::Event(Event::FailoverWarning(msg)));
        }
    }

    fn ha_receive_with(&mut self, ha: &mut Ha, bytes: &[u8], path: Path, now: Instant) {
        self.ha_note_call(ha, now);
        let mut buf = bytes.to_vec();
        let kind = match datagram::peek_kind(&buf) {
            Ok(k) => k,
            Err(e) => return ha.count(e.name()),
        };
        if kind != Kind::Hello && path != Path::Link {
            return ha.count("ha-delta-off-link");
        }
        let channel = datagram::channel_of(kind);
        let opener = if kind == Kind::Hello { &mut ha.hello_opener } else { &mut ha.delta_opener };
        let (h, body) = match datagram::open(opener, channel, ha.unit, ha.key_id, &mut buf) {
            Ok((h, opened)) => (h, opened.body.to_vec()),
            Err(e) => {
                ha.count(e.name());
                if let crate::ha::datagram::RxDrop::KeyMismatch { .. } = e {
                    ha.last_key_mismatch = Some(now);
                    if ha.may_warn(now) {
                        let msg = "failover datagram sealed with a different key: the two units' [failover] keys differ; set the same key on both".to_string();
                        self.out.push_back(Output::Event(Event::FailoverWarning(msg)));
                    }
                }
                return;
            }
        };
        if h.config_hash != ha.config_hash {
            ha.count("ha-config-mismatch");
            if ha.may_warn(now) {
                let msg = "the peer's configuration differs from ours (config hash): make both units' files agree"
                    .to_string();
                self.out.push_back(Output::Event(Event::FailoverWarning(msg)));
            }
        }
        if kind == Kind::Hello {
            // Table sizes, one u32 each, as many as the peer sends.
            let ext = body.get(crate::ha::hello::HELLO_LEN..).unwrap_or_default();
            for (n, b) in ha.peer_tables.iter_mut().zip(ext.chunks_exact(4)) {
                *n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
            }
            match HelloRepr::parse(&body) {
                Ok(hello) => self.ha_hello(ha, &h, hello, path, now),
                Err(_) => ha.count("ha-hello-malformed"),
            }
        } else {
            ha.stream.handle_datagram(h.kind, h.seq, h.ack, &body, now);
            self.ha_pump(ha, now);
        }
    }

    fn ha_hello(&mut self, ha: &mut Ha, h: &HeaderRepr, hello: HelloRepr, path: Path, now: Instant) {
        // Hellos travel several paths (the failover link, each data port)
        // under one counter, and a loop that was held up reads the link's
        // queue before its TAPs': an older hello than one already read says
        // nothing new about the peer's role, only that it lived.
        let newest = ha.peer_hello_epoch != Some(h.epoch) || ha.peer_hello_counter.is_none_or(|c| h.counter > c);
        if newest {
            ha.peer_hello_counter = Some(h.counter);
            ha.peer = Some(hello);
        }
        ha.peer_hello_epoch = Some(h.epoch);
        // Only a hello that echoes our current epoch proves the peer is
        // alive now; a recording of an old one cannot.
        if !hello.echoes(ha.hello_epoch) {
            return ha.count("ha-hello-unechoed");
        }
        ha.count("ha-hellos-in");
        ha.last_any = Some(now);
        if hello.has(hello_flags::AHEAD) {
            ha.count("ha-hellos-ahead-in");
        } else {
            ha.last_fresh = Some(now);
        }
        ha.peer_dead = false;
        match path {
            Path::Link => {
                ha.last_link = Some(now);
                if ha.fsm.failover_link_failed() {
                    ha.fsm.handle(role::Event::FailoverLinkUp, now);
                    self.out.push_back(Output::Event(Event::FailoverWarning("failover link restored".into())));
                }
            }
            Path::Data(p) => {
                if let Some(t) = ha.last_data.get_mut(p as usize) {
                    *t = Some(now);
                }
            }
        }
        let yielding = hello.has(hello_flags::YIELD);
        if ha.peer_active_epoch.is_some_and(|e| e != h.epoch) {
            ha.peer_active_epoch = None;
            ha.count("ha-peer-restarted");
            self.ha_role_event(ha, role::Event::PeerRestarted, now);
        }
        if hello.role == State::Active {
            ha.peer_active_epoch = Some(h.epoch);
        }
        if !newest {
            return ha.count("ha-hello-older");
        }
        if hello.role == State::Active && ha.fsm.state() == State::Active {
            let peer_stalled = hello.has(hello_flags::STALLED);
            if ha.stalled(now) && !peer_stalled {
                return self.ha_role_event(ha, role::Event::YieldAfterStall, now);
            }
            if peer_stalled && !ha.stalled(now) {
                // The peer stalled and will yield to us: we keep the role.
                return ha.count("ha-peer-stalled-we-keep");
            }
        }
        let ev = match hello.role {
            State::Init | State::Negotiating => role::Event::PeerHelloNegotiating,
            State::Active => role::Event::PeerHelloActive { claim: hello.has(hello_flags::CLAIM) },
            State::StandbyCold => role::Event::PeerHelloStandby { hot: false, yielding },
            State::StandbyHot => role::Event::PeerHelloStandby { hot: true, yielding },
            State::Failed => role::Event::PeerHelloFailed,
        };
        self.ha_role_event(ha, ev, now);
    }

    fn ha_role_event(&mut self, ha: &mut Ha, ev: role::Event, now: Instant) {
        match ha.fsm.handle(ev, now) {
            Outcome::Moved(t) => self.ha_transition(ha, t, now),
            Outcome::Rejected(_) => ha.count("ha-role-refused"),
            Outcome::Stayed => {}
        }
    }

    fn ha_transition(&mut self, ha: &mut Ha, t: Transition, now: Instant) {
        let mut detail = String::new();
        if t.to == State::Active && !ha.active {
            // Commit: everything received is applied; drain what is queued.
            let applied_before = ha.counters.get("ha-records-applied").copied().unwrap_or(0);
            self.ha_deliver(ha, now);
            let pending = ha.counters.get("ha-records-applied").copied().unwrap_or(0) - applied_before;
            let heard = ha.last_any.unwrap_or(ha.started);
            let detect = now.saturating_since(heard).as_micros();
            // Claim: virtual MACs and active addresses, announced.
            ha.active = true;
            ha.outbox = crate::ha::outbox::Outbox::new(16, Duration::from_millis(1));
            ha.tombstones.clear();
            self.ports = ports_of(&self.cfg, &self.nat, false);
            // Every station the peer knew was just heard, as far as we know.
            self.macs.adopt(now);
            let refresh_before = self.counters.events.mac_refresh_sent;
            let queued = self.out.len();
            self.announce();
            let refreshed = self.counters.events.mac_refresh_sent - refresh_before;
            // Re-confirm every next hop we inherited: a neighbour that
            // changed its MAC since the peer learned it answers, and
            // switches see us on the way.
            for (ip, e) in self.arp.entries().into_iter().take(TAKEOVER_ARP_PROBES) {
                if e.state == crate::arp::EntryState::Resolved {
                    self.arp_request(e.iface, ip);
                }
            }
            let announce_frames = (self.out.len() - queued) as u64;
            ha.garp_left = GARP_ROUNDS - 1;
            ha.garp_next = Some(now + GARP_SPACING);
            ha.adopt_cursor = Some(0);
            ha.stream.start_resync(crate::ha::stream::ResyncCause::Local, now);
            ha.bulk_rx = BulkStatus::Idle;
            ha.takeover_started = Some(heard);
            self.first_forward_pending = true;
            let b = show::TakeoverBreakdown {
                cause: t.cause.to_string(),
                detect_us: detect,
                pending_records: pending,
                conns: self.ct.len() as u64,
                arp_entries: self.arp.len() as u64,
                announce_frames,
                step_us: None,
                on_wire_us: None,
                first_forward_us: None,
                switch_refresh_frames: self.bridged().then_some(refreshed),
            };
            detail = format!(
                "takeover {:?}: {} connections, {} ARP entries; {} us since the last hello",
                t.takeover,
                self.ct.len(),
                self.arp.len(),
                detect
            );
            if self.bridged() {
                detail += &format!(
                    "; {} MAC entries; switch refresh: {refreshed} frames (repeated {} times, {} ms apart)",
                    self.macs.len(),
                    GARP_ROUNDS - 1,
                    GARP_SPACING.as_millis()
                );
            }
            ha.last_takeover = Some(b);
        } else if t.leaves_active() || (t.to != State::Active && ha.active) {
            ha.active = false;
            ha.stalled_until = None;
            ha.outbox = crate::ha::outbox::Outbox::new(16, Duration::from_millis(1));
            ha.tombstones.clear();
            ha.bulk_end_pending = false;
            self.ports = ports_of(&self.cfg, &self.nat, true);
            self.first_forward_pending = false;
        }
        if t.needs_bulk() {
            ha.bulk_rx = BulkStatus::Requested;
            ha.stream.request_bulk(now);
        }
        if t.to == State::StandbyHot {
            ha.bulk_rx = BulkStatus::Done;
        }
        if t.start_preempt_timer {
            ha.preempt_at = ha.cfg.preempt.map(|d| now + d);
        }
        let line = format!("{} -> {}: {}", t.from.name(), t.to.name(), t.cause);
        ha.note(format!("t={}ms {line}", now.as_micros() / 1000));
        self.out.push_back(Output::Event(Event::RoleChanged {
            from: t.from.name(),
            to: t.to.name(),
            cause: t.cause,
            detail,
        }));
    }

    /// Apply what the stream delivered, in order.
    fn ha_deliver(&mut self, ha: &mut Ha, now: Instant) {
        while let Some(d) = ha.stream.poll_delivery() {
            if ha.active {
                ha.count("ha-delta-while-active");
                continue;
            }
            match d.kind {
                Kind::BulkStart => {
                    // The bulk is the whole truth: forget the old copy.
                    self.ct.clear();
                    self.arp.clear();
                    self.macs.clear();
                    ha.bulk_rx = BulkStatus::InProgress;
                }
                Kind::BulkEnd => {
                    ha.bulk_rx = BulkStatus::Done;
                    self.ha_role_event(ha, role::Event::BulkDone, now);
                }
                Kind::Resync => self.ha_role_event(ha, role::Event::ResyncStarted, now),
                _ => {}
            }
            if d.body.is_empty() {
                continue;
            }
            let mut report = ApplyReport::default();
            {
                let (mut cs, mut asy, mut ms) = self.sync_tables(&ha.tombstones, now);
                let tables: &mut [&mut dyn ReplicatedTable] = &mut [&mut cs, &mut asy, &mut ms];
                if apply_body(&d.body, tables, now, &mut report).is_err() {
                    ha.count("ha-body-malformed");
                }
            }
            *ha.counters.entry("ha-records-applied").or_insert(0) += report.applied;
            *ha.counters.entry("ha-records-stale").or_insert(0) += report.stale;
            for (kind, id) in report.missing {
                ha.outbox.mark(kind, id, Op::Request, now);
            }
            for (kind, id) in report.requested {
                if kind == 0 && id == 0 {
                    self.ha_start_bulk(ha, now);
                } else {
                    ha.outbox.mark(kind, id, Op::Insert, now);
                }
            }
        }
    }

    /// The replicated tables, borrowed together.
    fn sync_tables<'a>(
        &'a mut self,
        tombstones: &'a HashMap<u64, KeyV4>,
        now: Instant,
    ) -> (ConnSync<'a>, ArpSync<'a>, MacSync<'a>) {
        let cs = ConnSync {
            ct: &mut self.ct,
            tombstones,
            routes: &self.routes,
            ports: self.ports.len(),
            endpoints: &mut self.endpoints,
            now,
        };
        (cs, ArpSync { arp: &mut self.arp }, MacSync { macs: &mut self.macs, groups: &self.port_group })
    }

    fn ha_start_bulk(&mut self, ha: &mut Ha, now: Instant) {
        if !ha.active {
            return;
        }
        ha.count("ha-bulk-sent");
        ha.stream.send(Kind::BulkStart, Vec::new(), now);
        let (cs, asy, ms) = self.sync_tables(&ha.tombstones, now);
        for t in [&cs as &dyn ReplicatedTable, &asy, &ms] {
            ha.outbox.mark_all(t, now);
        }
        ha.bulk_end_pending = true;
    }

    /// Move data between the tables, the outbox and the stream, then turn
    /// the stream's output into sealed datagrams.
    fn ha_pump(&mut self, ha: &mut Ha, now: Instant) {
        self.ha_deliver(ha, now);
        while let Some(ev) = ha.stream.poll_event() {
            match ev {
                StreamEvent::BulkNeeded(_) => self.ha_start_bulk(ha, now),
                StreamEvent::FellBehind => {
                    ha.count("ha-fell-behind");
                    self.ha_role_event(ha, role::Event::ResyncStarted, now);
                }
            }
        }
        let bulk = ha.bulk_end_pending;
        while !ha.outbox.is_empty() && (bulk || ha.outbox.flush_due(now)) && ha.stream.queue_space() > 0 {
            let mut body = Vec::with_capacity(wire::max_body(wire::DEFAULT_MAX_DATAGRAM));
            let written = {
                let mut w = BodyWriter::new(&mut body, wire::max_body(wire::DEFAULT_MAX_DATAGRAM));
                let (cs, asy, ms) = self.sync_tables(&ha.tombstones, now);
                ha.outbox.fill(&mut w, |k| match k {
                    conn_sync::KIND => Some(&cs as &dyn ReplicatedTable),
                    crate::failover::arp_sync::KIND => Some(&asy as &dyn ReplicatedTable),
                    mac_sync::KIND => Some(&ms as &dyn ReplicatedTable),
                    _ => None,
                })
            };
            if written > 0 {
                ha.stream.send(Kind::Delta, body, now);
            }
        }
        if ha.outbox.is_empty() {
            ha.tombstones.clear();
            if ha.bulk_end_pending && ha.stream.queue_space() > 0 {
                ha.stream.send(Kind::BulkEnd, Vec::new(), now);
                ha.bulk_end_pending = false;
            }
        }
        let mut out = Vec::new();
        while let Some(t) = ha.stream.poll_transmit() {
            let h = HeaderRepr {
                kind: t.kind,
                flags: t.flags,
                unit: ha.unit,
                key_id: ha.key_id,
                config_hash: ha.config_hash,
                epoch: ha.delta_epoch,
                counter: 0,
                seq: t.seq,
                ack: t.ack,
            };
            let mut buf = Vec::with_capacity(wire::HEADER_LEN + t.body.len() + 16);
            datagram::start(&mut buf, &h);
            buf.extend_from_slice(t.body);
            out.push(buf);
        }
        for mut buf in out {
            if datagram::seal(&mut ha.delta_sealer, &mut buf).is_ok() {
                self.out.push_back(Output::Sync { to: SyncDst::Peer, bytes: buf });
            } else {
                ha.count("ha-seal-failed");
            }
        }
    }

    /// A hello as of `now`, not yet sealed.
    fn ha_hello_plain(&self, ha: &Ha, now: Instant, extra_flags: u8) -> Vec<u8> {
        let hold = ha.interface_hold();
        let mut monitored = 0u32;
        let mut up = 0u32;
        for (i, c) in self.cfg.interfaces.iter().enumerate().take(32) {
            if c.monitor {
                monitored |= 1 << i;
            }
            let fresh = now.saturating_since(ha.started) < hold
                || ha.last_rx[i].is_some_and(|t| now.saturating_since(t) < hold);
            if fresh {
                up |= 1 << i;
            }
        }
        let mut flags = ha.fsm.hello_flags() | extra_flags;
        if ha.stalled(now) {
            flags |= hello_flags::STALLED;
        }
        if ha.peer_hello_epoch.is_some() {
            flags |= hello_flags::ECHO_VALID;
        }
        let hello = HelloRepr {
            unit: ha.unit,
            role: ha.fsm.state(),
            flags,
            bulk: if ha.active { BulkStatus::Idle } else { ha.bulk_rx },
            monitored,
            up,
            config_hash: ha.config_hash,
            state_epoch: ha.delta_epoch,
            seq_sent: ha.stream.seq_sent(),
            seq_acked: ha.stream.seq_acked(),
            peer_epoch_seen: ha.peer_hello_epoch.unwrap_or(0),
        };
        let h = HeaderRepr {
            kind: Kind::Hello,
            flags: 0,
            unit: ha.unit,
            key_id: ha.key_id,
            config_hash: ha.config_hash,
            epoch: ha.hello_epoch,
            counter: 0,
            seq: 0,
            ack: 0,
        };
        let mut buf = Vec::with_capacity(128);
        datagram::start(&mut buf, &h);
        hello.emit(&mut buf);
        // Extension (older units ignore trailing bytes): our table sizes,
        // for the peer's `show failover`.
        buf.extend_from_slice(&self.ct.len().to_be_bytes());
        buf.extend_from_slice(&(self.arp.len() as u32).to_be_bytes());
        buf.extend_from_slice(&(self.macs.len() as u32).to_be_bytes());
        buf
    }

    /// `plain` (from [`Self::ha_hello_plain`]) sealed under the next
    /// counter; `None` (counted) if sealing failed.
    fn ha_seal_hello(ha: &mut Ha, plain: &[u8]) -> Option<Vec<u8>> {
        let mut buf = plain.to_vec();
        match datagram::seal(&mut ha.hello_sealer, &mut buf) {
            Ok(_) => Some(buf),
            Err(_) => {
                ha.count("ha-seal-failed");
                None
            }
        }
    }

    /// Hellos on the failover link and on every monitored data interface;
    /// each copy sealed on its own (one counter each, or the replay window
    /// would refuse all but the first).
    fn ha_send_hellos(&mut self, ha: &mut Ha, now: Instant) {
        let plain = self.ha_hello_plain(ha, now, 0);
        if let Some(b) = Self::ha_seal_hello(ha, &plain) {
            self.out.push_back(Output::Sync { to: SyncDst::HelloGroup, bytes: b });
            // The same state, sealed for the next intervals: if the loop is
            // held up (the host is short of CPU), the shell's heartbeat
            // thread keeps the cadence from these and the peer sees no
            // silence. They say only what was true now, so a loop stuck for
            // longer than `ahead` intervals still falls silent.
            // Due half an interval after the loop's own next hello, so that
            // a loop on time always sends first and supersedes them.
            let ahead = self.ha_hello_plain(ha, now, hello_flags::AHEAD);
            let poll = ha.cfg.poll.as_micros();
            for k in 1..=ha.ahead() as u64 {
                let Some(b) = Self::ha_seal_hello(ha, &ahead) else { break };
                let due = now + Duration::from_micros(poll * k + poll / 2);
                self.out.push_back(Output::HelloAhead { due, bytes: b });
            }
        }
        for i in 0..self.cfg.interfaces.len() {
            if !self.cfg.interfaces[i].monitor {
                continue;
            }
            let Some(b) = Self::ha_seal_hello(ha, &plain) else { continue };
            let mut f = self.pool.get();
            f.reset_len(ether::HEADER_LEN + b.len());
            let m = f.as_mut();
            m[ether::DST].copy_from_slice(&HELLO_MAC.0);
            m[ether::SRC].copy_from_slice(&self.ports[i].mac.0);
            m[ether::TYPE].copy_from_slice(&HELLO_ETHERTYPE.to_be_bytes());
            m[ether::HEADER_LEN..].copy_from_slice(&b);
            self.emit(IfIndex(i as u8), f);
        }
        ha.count("ha-hellos-out");
    }

    pub(super) fn ha_timeout(&mut self, now: Instant) {
        let Some(mut ha) = self.ha.take() else { return };
        self.ha_note_call(&mut ha, now);
        if !ha.hellos_started {
            // Negotiation starts with our first hello, not when the core
            // was built: the shell may take a while to open its ports.
            ha.hellos_started = true;
            ha.started = now;
        }
        if now >= ha.next_hello {
            self.ha_send_hellos(&mut ha, now);
            // Keep the cadence; after a stall, do not send a burst.
            ha.next_hello = (ha.next_hello + ha.cfg.poll).max(now);
        }
        let wrong_key_peer = ha.last_key_mismatch.is_some_and(|t| now.saturating_since(t) < ha.cfg.hold);
        if !ha.peer_dead && now >= ha.hold_deadline() && ha.fsm.state() == State::Negotiating && wrong_key_peer {
            // Someone is there but speaks with another key: going active
            // on our own could make two actives. Wait for the operator.
            ha.last_any = Some(now);
            ha.count("ha-active-refused-wrong-key");
            if ha.may_warn(now) {
                let msg = "not becoming active: the peer is present but uses a different failover key; fix the key on one unit".to_string();
                self.out.push_back(Output::Event(Event::FailoverWarning(msg)));
            }
        } else if !ha.peer_dead && now >= ha.hold_deadline() {
            // No hello on any path for the hold time.
            ha.peer_dead = true;
            ha.last_link = None;
            ha.count("ha-peer-dead");
            self.ha_role_event(&mut ha, role::Event::PeerDead, now);
        } else if let Some(l) = ha.last_link {
            // Link silent for the hold time while the peer was heard on a
            // data interface within the last two hello intervals.
            let peer_fresh = ha.last_any.is_some_and(|t| now.saturating_since(t) <= ha.cfg.poll + ha.cfg.poll);
            let link_silent = now >= l + ha.cfg.hold;
            if link_silent {
                // Either way this deadline is spent; a later link hello re-arms it.
                ha.last_link = None;
            }
            if link_silent && peer_fresh && !ha.fsm.failover_link_failed() {
                ha.fsm.handle(role::Event::FailoverLinkDown, now);
                ha.count("ha-failover-link-down");
                let msg = "FAILOVER LINK DOWN: no hellos on the failover link, but the peer answers on a data interface; not taking over. Check the failover link.".to_string();
                ha.note(format!("t={}ms failover link down", now.as_micros() / 1000));
                self.out.push_back(Output::Event(Event::FailoverWarning(msg)));
            }
        }
        if ha.iface_check_from.is_some_and(|t| now < t) {
            ha.count("ha-interface-check-deferred");
        } else {
            self.ha_check_interfaces(&mut ha, now);
        }
        if ha.preempt_at.is_some_and(|t| now >= t) {
            ha.preempt_at = None;
            self.ha_role_event(&mut ha, role::Event::PreemptTimer, now);
        }
        if ha.garp_next.is_some_and(|t| now >= t) {
            self.announce();
            ha.garp_left = ha.garp_left.saturating_sub(1);
            ha.garp_next = (ha.garp_left > 0).then_some(now + GARP_SPACING);
        }
        if ha.stream.poll_timeout().is_some_and(|t| now >= t) {
            ha.stream.handle_timeout(now);
        }
        self.ha_pump(&mut ha, now);
        self.ha = Some(ha);
    }

    /// Interface monitoring: an interface that hears nothing (not even the
    /// peer's hellos) for the hold time is down here; if the peer reports
    /// more interfaces up than we have, we are the broken one.
    fn ha_check_interfaces(&mut self, ha: &mut Ha, now: Instant) {
        let hold = ha.interface_hold();
        if now.saturating_since(ha.started) < hold + hold {
            return;
        }
        let mut down = 0u32;
        let mut up = 0u32;
        for (i, c) in self.cfg.interfaces.iter().enumerate().take(32) {
            let alive = ha.last_rx[i].is_some_and(|t| now.saturating_since(t) < hold);
            if c.monitor && !alive {
                down += 1;
            } else if c.monitor {
                up += 1;
            }
        }
        // Only a fresh hello (within two intervals) is evidence that the
        // peer sees more interfaces up: when the peer dies our interfaces
        // go quiet too, and its last word must not fail us.
        // Hellos sealed ahead do not count: a peer whose loop is held up
        // cannot vouch for its interfaces now.
        let peer_alive =
            !ha.peer_dead && ha.last_fresh.is_some_and(|t| now.saturating_since(t) <= ha.cfg.poll + ha.cfg.poll);
        let peer_up = ha.peer.map_or(0, |p| (p.up & p.monitored).count_ones());
        if down > 0 && !ha.local_failed && peer_alive && peer_up > up {
            ha.local_failed = true;
            ha.count("ha-interface-failed");
            self.ha_role_event(ha, role::Event::LocalInterfaceFailed, now);
        } else if down == 0 && ha.local_failed {
            ha.local_failed = false;
            self.ha_role_event(ha, role::Event::LocalInterfaceRecovered, now);
        }
    }

    /// After a takeover, give every adopted connection a fresh lifetime,
    /// a slice per tick; until then the sweep leaves them alone.
    pub(super) fn ha_adopt_pass(&mut self, now: Instant) {
        let Some(ha) = self.ha.as_mut() else { return };
        let Some(mut cursor) = ha.adopt_cursor else { return };
        let timeouts = &self.cfg.timeouts;
        let done = self.ct.visit_mut(&mut cursor, ADOPT_BUDGET, |c| {
            if c.flags & ct_flags::SYNCED != 0 {
                c.flags &= !ct_flags::SYNCED;
                c.expires = conn_sync::adopted_expiry(c, timeouts, now);
            }
        });
        ha.adopt_cursor = (!done).then_some(cursor);
    }

    pub(super) fn ha_note_first_forward(&mut self, now: Instant) {
        self.first_forward_pending = false;
        let Some(ha) = self.ha.as_mut() else { return };
        if let (Some(t), Some(start)) = (ha.last_takeover.as_mut(), ha.takeover_started) {
            t.first_forward_us = Some(now.saturating_since(start).as_micros());
            self.out.push_back(Output::Event(Event::TakeoverDone(t.line())));
        }
    }

    /// The shell's timing of the last takeover, which the core cannot take
    /// itself: `step_us`, the core call that decided, committed, flipped and
    /// claimed; `on_wire_us`, from that decision until the claim's frames
    /// were written out. Shown by `show failover`.
    pub fn note_takeover_timing(&mut self, step_us: u64, on_wire_us: u64) {
        if let Some(t) = self.ha.as_mut().and_then(|ha| ha.last_takeover.as_mut()) {
            t.step_us = Some(step_us);
            t.on_wire_us = Some(on_wire_us);
        }
    }

    pub(super) fn ha_poll_timeout(&self) -> Option<Instant> {
        let ha = self.ha.as_ref()?;
        let mut t = Some(ha.next_hello);
        if !ha.peer_dead {
            t = crate::time::earliest(t, Some(ha.hold_deadline()));
        }
        if let Some(l) = ha.last_link {
            if !ha.fsm.failover_link_failed() {
                t = crate::time::earliest(t, Some(l + ha.cfg.hold));
            }
        }
        for x in [ha.stream.poll_timeout(), ha.outbox.poll_timeout(), ha.preempt_at, ha.garp_next] {
            t = crate::time::earliest(t, x);
        }
        t
    }

    pub(super) fn ha_command(&mut self, want: ForceRole, now: Instant) -> Result<(), CommandError> {
        let Some(mut ha) = self.ha.take() else { return Err(CommandError::NoFailover) };
        let ev = match want {
            ForceRole::Active => role::Event::ManualActive,
            ForceRole::Standby => {
                let peer_hot = ha.peer.is_some_and(|p| p.role == State::StandbyHot);
                role::Event::ManualStandby { peer_hot }
            }
        };
        let r = match ha.fsm.handle(ev, now) {
            Outcome::Moved(t) => {
                self.ha_transition(&mut ha, t, now);
                Ok(())
            }
            Outcome::Stayed => Ok(()),
            Outcome::Rejected(why) => Err(CommandError::Refused(why)),
        };
        // Tell the peer at once rather than at the next hello.
        self.ha_send_hellos(&mut ha, now);
        self.ha = Some(ha);
        r
    }

    pub(super) fn ha_report(&self, now: Instant) -> show::FailoverReport {
        let Some(ha) = self.ha.as_ref() else { return show::FailoverReport::default() };
        let ago = |t: Option<Instant>| t.map(|t| now.saturating_since(t).as_millis());
        let peer_role = match ha.peer {
            _ if ha.peer_dead => "dead (no hello within the hold time)".to_string(),
            Some(p) => p.role.name().to_string(),
            None => "unknown".to_string(),
        };
        let hold = ha.interface_hold();
        let interfaces = self
            .cfg
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, c)| show::FailoverIface {
                name: c.name.clone(),
                monitored: c.monitor,
                local: if ha.last_rx[i].is_some_and(|t| now.saturating_since(t) < hold) { "up" } else { "down" }.into(),
                peer: match ha.peer {
                    Some(p) if p.up & (1 << i) != 0 => "up".into(),
                    Some(_) => "down".into(),
                    None => "unknown".into(),
                },
                last_peer_hello_ms: ago(ha.last_data[i]),
            })
            .collect();
        let lag_records = ha.outbox.len() as u64 + ha.stream.unacked() as u64;
        show::FailoverReport {
            configured: true,
            unit: ha.unit.name().to_string(),
            role: ha.fsm.state().name().to_string(),
            peer_role,
            last_peer_hello_ms: ago(ha.last_any),
            failover_link: if ha.fsm.failover_link_failed() {
                "FAILED".into()
            } else if ha.peer_dead {
                "peer dead".into()
            } else if ha.last_link.is_some() {
                "up".into()
            } else {
                "no hellos yet".into()
            },
            interfaces,
            seq_sent: ha.stream.seq_sent(),
            seq_acked: ha.stream.seq_acked(),
            lag_records,
            lag_ms: ha.outbox.oldest().map_or(0, |t| now.saturating_since(t).as_millis()),
            bulk: format!("{:?}", if ha.active { BulkStatus::Idle } else { ha.bulk_rx }).to_lowercase(),
            tables: [("conn", self.ct.len() as u64), ("arp", self.arp.len() as u64), ("mac", self.macs.len() as u64)]
                .into_iter()
                .zip(ha.peer_tables)
                // The MAC table is transparent mode's alone.
                .filter(|((name, _), _)| *name != "mac" || self.bridged())
                .map(|((name, local), peer)| show::FailoverTable { name: name.into(), local, peer })
                .collect(),
            at_risk: if ha.active { lag_records } else { 0 },
            last_takeover: ha.last_takeover.clone(),
            counters: ha.counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            history: ha.history.iter().cloned().collect(),
        }
    }
}
