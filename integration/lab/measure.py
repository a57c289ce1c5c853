"""Failover traffic measurement for the twinwall lab, standard library only.

Run with /usr/bin/python3. Every time is time.monotonic() (CLOCK_MONOTONIC,
one clock for all namespaces of the machine), in seconds, so figures from
the client, the kill and the script can be compared directly.

  measure.py server --addr A --udp-port P --tcp-port Q --log FILE
      UDP echo and TCP echo server in one loop. Appends one JSON line to FILE
      per event: a new UDP source address:port ("udp-src"), a TCP connection
      accepted or closed ("tcp-accept", "tcp-close"), with the time.
  measure.py client --udp HOST:PORT --tcp HOST:PORT [--rate 1000] [--duration S]
                    [--grace S] [--rt PRIO] [--spin-us N] --out FILE
      Sends a sequence-numbered UDP datagram and a 16-byte TCP message
      (TCP_NODELAY) every 1/rate s, paced on the monotonic clock, and records
      every send and every echo. Sends for --duration seconds (a bound) or
      until SIGUSR1, then waits up to --grace s for outstanding echoes and
      writes the records as JSON to FILE. Prints "client ready" on stdout once
      the TCP connection is up and the stream has started. --rt PRIO runs it
      (and the server) under SCHED_FIFO, which has no timer slack, so select()
      wakes on time without busy-waiting; without it the last --spin-us (200)
      before each send are spun. The tool's own noise floor: failover.sh
      --no-firewall.
  measure.py now
      Prints time.monotonic().
  measure.py kill --pid PID --out FILE [--gone NS/LINK ...]
      Records the time, sends SIGKILL to PID, then polls (bounded, 3 s) until
      each NS/LINK network interface has disappeared and records when.
  measure.py ready A.json B.json
      Reads two `twinwall show failover --json` outputs; exit 0 and prints
      "a" or "b" (the active unit) when one is active and the other a standby
      with its bulk sync done; else prints what it saw and exits 1.
  measure.py report --client FILE --server-log FILE [--kill FILE] [--from T]
                    --poll-ms N --hold-ms N [--max-gap-ms N]
      Computes the UDP gap (longest interval without an echoed datagram),
      datagrams lost (and how many of them outside that gap), the TCP stall
      (largest interval between consecutive echoed messages), whether the TCP
      connection survived, whether the server saw one UDP source port
      throughout (PAT port kept); only traffic sent at or after T counts.
      Prints the figures and a final "RESULT ..." line; exit 0 only if the
      TCP connection survived, no datagram was lost outside the gap, the PAT
      port was kept and the gap is within the limit (issue 3/6 limits for
      the timers, or --max-gap-ms).
"""

import argparse
import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

now = time.monotonic

MSG = struct.Struct("!QQ")  # seq, 0 (padding; 16 bytes per message)

# Gap limits from the issues: (poll_ms, hold_ms) -> (udp gap ms, tcp stall ms or None).
# Issue 3: defaults 300 ms, poll 10 / hold 50: 100 ms. Issue 6: poll 2 / hold 8:
# 15 ms UDP gap, 25 ms TCP stall.
LIMITS = {(50, 250): (300.0, None), (10, 50): (100.0, None), (2, 8): (15.0, 25.0)}
# Issue 6 goals that are not pass/fail here (printed for information).
ISSUE6_GOALS = {(50, 250): (340.0, 650.0), (2, 8): (15.0, 25.0)}


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


# ---------------------------------------------------------------- server


def server(args):
    gc.disable()
    realtime(args.rt)
    log = open(args.log, "a", buffering=1)

    def ev(**kw):
        kw["t"] = now()
        log.write(json.dumps(kw) + "\n")

    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind((args.addr, args.udp_port))
    u.setblocking(False)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.addr, args.tcp_port))
    ls.listen(16)
    ls.setblocking(False)
    conns = {}  # socket -> [peer, pending bytes]
    last_src = None
    counts = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ev(ev="listening", udp=args.udp_port, tcp=args.tcp_port)
    try:
        while True:
            wr = [c for c, st in conns.items() if st[1]]
            r, w, _ = select.select([u, ls] + list(conns), wr, [], 1.0)
            for s in r:
                if s is u:
                    for _ in range(64):
                        try:
                            d, a = u.recvfrom(2048)
                        except BlockingIOError:
                            break
                        try:
                            u.sendto(d, a)
                        except OSError:
                            pass
                        counts[a] = counts.get(a, 0) + 1
                        if a != last_src:
                            seq = struct.unpack("!Q", d[:8])[0] if len(d) >= 8 else -1
                            ev(ev="udp-src", src="%s:%d" % a, seq=seq)
                            last_src = a
                elif s is ls:
                    try:
                        c, a = ls.accept()
                    except BlockingIOError:
                        continue
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c.setblocking(False)
                    conns[c] = ["%s:%d" % a, b""]
                    ev(ev="tcp-accept", peer=conns[c][0])
                else:
                    st = conns[s]
                    try:
                        d = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        d = b""
                        st.append(str(e))
                    if not d:
                        ev(ev="tcp-close", peer=st[0], error=st[2] if len(st) > 2 else None)
                        del conns[s]
                        s.close()
                        continue
                    st[1] += d
            for s in set(w) | {c for c, st in conns.items() if st[1]}:
                if s not in conns:
                    continue
                st = conns[s]
                try:
                    n = s.send(st[1])
                    st[1] = st[1][n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass
    finally:
        ev(ev="udp-counts", counts={"%s:%d" % a: n for a, n in counts.items()})


# ---------------------------------------------------------------- client


def realtime(prio):
    """SCHED_FIFO for the measuring processes, so a loaded host adds less noise."""
    if prio:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
        except OSError as e:
            print("measure.py: SCHED_FIFO %d refused (%s); running unprioritised" % (prio, e), file=sys.stderr)


def client(args):
    gc.disable()  # no reference cycles are made; a collection pass is a pause
    realtime(args.rt)
    stop = [False]
    signal.signal(signal.SIGUSR1, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    period = 1.0 / args.rate
    spin = (args.spin_us if args.spin_us is not None else (0 if args.rt else 200)) / 1e6
    uaddr = hostport(args.udp)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 0))
    u.setblocking(False)

    rec = {
        "rate": args.rate,
        "udp_local": "%s:%d" % u.getsockname(),
        "udp_send": [],
        "udp_recv": [],
        "udp_dup": 0,
        "udp_bad": 0,
        "tcp_error": None,
        "tcp_local": None,
        "tcp_send": [],
        "tcp_recv": [],
        "tcp_bad": 0,
        "late_max_ms": 0.0,
        "late": [],  # [scheduled time, ms late] of sends more than 2 ms late
        "loop_max_ms": 0.0,
    }
    # TCP connect: retry (bounded) while the path comes up.
    t = None
    deadline = now() + args.connect_timeout
    while True:
        try:
            t = socket.create_connection(hostport(args.tcp), timeout=1.0)
            break
        except OSError as e:
            if now() > deadline:
                rec["tcp_error"] = "connect: %s" % e
                t = None
                break
            time.sleep(0.1)
    if t is not None:
        t.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t.setblocking(False)
        rec["tcp_local"] = "%s:%d" % t.getsockname()
    udp_send, udp_recv = rec["udp_send"], rec["udp_recv"]
    tcp_send, tcp_recv = rec["tcp_send"], rec["tcp_recv"]
    outbuf = bytearray()
    inbuf = bytearray()
    start = now() + 0.01
    rec["start"] = start
    end = start + args.duration
    # UDP and TCP interleaved: TCP half a period after UDP.
    next_u = start
    next_t = start + period / 2
    print("client ready", flush=True)
    sending = True
    stopped_at = None
    last_loop = now()
    while True:
        tnow = now()
        gap = tnow - last_loop
        if sending and tnow > start + period and gap * 1000 > rec["loop_max_ms"]:
            rec["loop_max_ms"] = gap * 1000
        last_loop = tnow
        if sending and (stop[0] or tnow >= end):
            sending = False
            stopped_at = tnow
        if sending:
            while next_u <= tnow:
                late = (tnow - next_u) * 1000
                if late > rec["late_max_ms"]:
                    rec["late_max_ms"] = late
                if late > 2.0 and len(rec["late"]) < 200:
                    rec["late"].append([next_u, late])
                seq = len(udp_send)
                try:
                    u.sendto(MSG.pack(seq, 0) + b"twinwall-udp", uaddr)
                except OSError:
                    pass  # e.g. ENETUNREACH/EAGAIN: the datagram counts as sent and lost
                udp_send.append(now())
                udp_recv.append(None)
                next_u += period
            while t is not None and next_t <= tnow:
                seq = len(tcp_send)
                outbuf += MSG.pack(seq, 0)
                tcp_send.append(now())
                next_t += period
        if t is not None and outbuf:
            try:
                n = t.send(outbuf)
                del outbuf[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                rec["tcp_error"] = "send: %s" % e
                t.close()
                t = None
        # Receive everything pending.
        for _ in range(256):
            try:
                d = u.recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            tr = now()
            if len(d) < MSG.size:
                rec["udp_bad"] += 1
                continue
            seq = MSG.unpack_from(d)[0]
            if seq >= len(udp_recv):
                rec["udp_bad"] += 1
            elif udp_recv[seq] is None:
                udp_recv[seq] = tr
            else:
                rec["udp_dup"] += 1
        if t is not None:
            while True:
                try:
                    d = t.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    rec["tcp_error"] = "recv: %s" % e
                    t.close()
                    t = None
                    break
                if not d:
                    rec["tcp_error"] = "connection closed by peer"
                    t.close()
                    t = None
                    break
                tr = now()
                inbuf += d
                while len(inbuf) >= MSG.size:
                    seq = MSG.unpack_from(inbuf)[0]
                    del inbuf[: MSG.size]
                    if seq != len(tcp_recv):
                        rec["tcp_bad"] += 1
                    tcp_recv.append(tr)
        if not sending:
            waited = now() - stopped_at
            udp_done = waited > 0.5 or None not in udp_recv
            tcp_done = t is None or len(tcp_recv) >= len(tcp_send)
            if (udp_done and tcp_done) or waited > args.grace:
                break
            # Receive only: plain wait.
            rl = [u] + ([t] if t is not None else [])
            select.select(rl, [], [], 0.005)
            continue
        # Sleep until the next send is due, waking early by --spin-us and
        # spinning the rest (a SCHED_FIFO task has no timer slack: 0 will do).
        due = min(next_u, next_t if t is not None else next_u)
        wait = due - now() - spin
        if wait > 0:
            rl = [u] + ([t] if t is not None else [])
            wl = [t] if (t is not None and outbuf) else []
            try:
                select.select(rl, wl, [], wait)
            except InterruptedError:
                pass
    rec["stop"] = stopped_at
    rec["end"] = now()
    rec["tcp_open_at_end"] = t is not None
    if t is not None:
        t.close()
    with open(args.out, "w") as f:
        json.dump(rec, f)
    print(
        "client done: udp %d sent %d echoed, tcp %d sent %d echoed%s, sender late max %.2f ms, loop max %.2f ms"
        % (
            len(udp_send),
            sum(x is not None for x in udp_recv),
            len(tcp_send),
            len(tcp_recv),
            ", tcp error: %s" % rec["tcp_error"] if rec["tcp_error"] else "",
            rec["late_max_ms"],
            rec["loop_max_ms"],
        ),
        flush=True,
    )


# ---------------------------------------------------------------- kill


def link_present(ns, link):
    r = subprocess.run(["ip", "-n", ns, "link", "show", "dev", link], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def kill(args):
    gone = [g.split("/", 1) for g in args.gone]
    for ns, link in gone:
        if not link_present(ns, link):
            print("kill: %s/%s is not there before the kill" % (ns, link), file=sys.stderr)
    out = {"pid": args.pid}
    out["t_kill"] = now()
    os.kill(args.pid, signal.SIGKILL)
    out["t_kill_done"] = now()
    out["gone"] = {}
    pending = list(gone)
    deadline = now() + 3.0
    while pending and now() < deadline:
        for ns, link in list(pending):
            if not link_present(ns, link):
                out["gone"]["%s/%s" % (ns, link)] = now()
                pending.remove([ns, link])
        time.sleep(0.002)
    for ns, link in pending:
        out["gone"]["%s/%s" % (ns, link)] = None
    with open(args.out, "w") as f:
        json.dump(out, f)
    for k, v in out["gone"].items():
        if v is None:
            print("kill: %s still there 3 s after the kill" % k)
        else:
            print("kill: %s gone %.1f ms after the kill" % (k, (v - out["t_kill"]) * 1000))


# ---------------------------------------------------------------- ready


def ready(args):
    st = []
    for p in (args.a, args.b):
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError):
            d = {}
        st.append(d)
    roles = [d.get("role", "?") for d in st]
    bulks = [str(d.get("bulk", "?")) for d in st]

    def hot(d):
        r = d.get("role", "")
        return r == "standby-hot" or (r.startswith("standby") and str(d.get("bulk", "")).lower() in ("done", "complete", "completed"))

    for i, other in ((0, 1), (1, 0)):
        if roles[i] == "active" and hot(st[other]):
            print("ab"[i])
            return 0
    print("a: role %s bulk %s; b: role %s bulk %s" % (roles[0], bulks[0], roles[1], bulks[1]))
    return 1


# ---------------------------------------------------------------- report


def max_gap(times):
    """(gap seconds, index before the gap) over sorted times."""
    best, at = 0.0, None
    for i in range(1, len(times)):
        g = times[i] - times[i - 1]
        if g > best:
            best, at = g, i - 1
    return best, at


def analyse(c, srv_events, t_from, t_kill):
    r = {}
    # UDP: datagrams sent from t_from on.
    sends = c["udp_send"]
    recvs = c["udp_recv"]
    idx = [i for i, s in enumerate(sends) if s >= t_from]
    echoed = sorted((recvs[i], i) for i in idx if recvs[i] is not None)
    lost = [i for i in idx if recvs[i] is None]
    r["udp_sent"] = len(idx)
    r["udp_lost"] = len(lost)
    r["udp_dup"] = c["udp_dup"]
    if len(echoed) >= 2:
        g, at = max_gap([e[0] for e in echoed])
        before, after = echoed[at], echoed[at + 1]
        # The stream did not come back: the gap runs to the end of sending.
        last_recv, last_seq = echoed[-1]
        if c["stop"] - last_recv > g and lost and lost[-1] > last_seq:
            g = c["stop"] - last_recv
            before, after = echoed[-1], (c["stop"], None)
        r["udp_gap_ms"] = g * 1000
        r["udp_gap_start"] = before[0]
        r["udp_gap_end"] = after[0]
        # Lost "in the gap": sent after the last datagram echoed before it and
        # before the first echo after it arrived (the path was down meanwhile).
        lo = sends[before[1]]
        hi = after[0] if after[1] is not None else float("inf")
        r["udp_lost_outside_gap"] = sum(1 for i in lost if not (lo < sends[i] < hi))
        r["udp_recovered"] = after[1] is not None
    else:
        r["udp_gap_ms"] = None
        r["udp_lost_outside_gap"] = len(lost)
        r["udp_recovered"] = False
    # TCP.
    tsend = c["tcp_send"]
    trecv = c["tcp_recv"]
    tr = [x for i, x in enumerate(trecv) if i < len(tsend) and tsend[i] >= t_from]
    r["tcp_sent"] = sum(1 for s in tsend if s >= t_from)
    r["tcp_echoed"] = len(tr)
    r["tcp_error"] = c["tcp_error"]
    r["tcp_survived"] = bool(
        c["tcp_local"] and c["tcp_error"] is None and c["tcp_open_at_end"] and len(trecv) == len(tsend) and c["tcp_bad"] == 0
    )
    if len(tr) >= 2:
        g, at = max_gap(tr)
        if not r["tcp_survived"] and c["stop"] - tr[-1] > g:
            g, at = c["stop"] - tr[-1], len(tr) - 1
            r["tcp_stall_end"] = None
        else:
            r["tcp_stall_end"] = tr[at + 1]
        r["tcp_stall_ms"] = g * 1000
        r["tcp_stall_start"] = tr[at]
    else:
        r["tcp_stall_ms"] = None
    # PAT: the UDP source (address:port) the server saw.
    srcs = []
    for e in srv_events:
        if e.get("ev") == "udp-src" and e["src"] not in srcs:
            srcs.append(e["src"])
    r["udp_sources"] = srcs
    # Kept: the server saw one source throughout, and echoes came back after
    # the gap (so that source was still in use after it). Unknown otherwise.
    if len(srcs) > 1:
        r["pat_port_kept"] = False
    elif len(srcs) == 1 and r["udp_recovered"]:
        r["pat_port_kept"] = True
    else:
        r["pat_port_kept"] = None
    accepts = [e["peer"] for e in srv_events if e.get("ev") == "tcp-accept"]
    r["tcp_sources"] = accepts
    r["tcp_connections"] = len(accepts)
    # Tool noise: the sender's own lateness.
    r["sender_late_max_ms"] = c["late_max_ms"]
    r["loop_max_ms"] = c["loop_max_ms"]
    if t_kill is not None:
        for k in ("udp_gap_start", "udp_gap_end", "tcp_stall_start", "tcp_stall_end"):
            if r.get(k) is not None:
                r[k + "_after_kill_ms"] = (r[k] - t_kill) * 1000
    return r


def fmt(v, nd=1):
    if v is None:
        return "na"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "%.*f" % (nd, v)
    return str(v)


def report(args):
    with open(args.client) as f:
        c = json.load(f)
    ev = []
    if args.server_log and os.path.exists(args.server_log):
        with open(args.server_log) as f:
            for line in f:
                try:
                    ev.append(json.loads(line))
                except ValueError:
                    pass
    t_kill = None
    if args.kill:
        with open(args.kill) as f:
            k = json.load(f)
        t_kill = k["t_kill"]
    t_from = args.from_t if args.from_t is not None else c["start"]
    r = analyse(c, ev, t_from, t_kill)
    timers = (args.poll_ms, args.hold_ms)
    limit = args.max_gap_ms
    tcp_limit = None
    if limit is None and timers in LIMITS:
        limit, tcp_limit = LIMITS[timers]
    r["limit_udp_gap_ms"] = limit
    r["limit_tcp_stall_ms"] = tcp_limit

    if t_kill is not None:
        print("== measurement (traffic sent from %.3f s before the kill on)" % (t_kill - t_from))
    else:
        print("== measurement (nothing killed)")
    print("UDP  %d datagrams at %d/s: %d lost (%d outside the gap), %d duplicated" % (
        r["udp_sent"], c["rate"], r["udp_lost"], r["udp_lost_outside_gap"], r["udp_dup"]))
    print("UDP  gap (longest interval without an echo): %s ms%s%s" % (
        fmt(r["udp_gap_ms"]),
        "" if r.get("udp_gap_start_after_kill_ms") is None else
        ", from kill%+.1f ms to kill%s ms" % (r["udp_gap_start_after_kill_ms"],
                                               fmt(r.get("udp_gap_end_after_kill_ms")) if r.get("udp_gap_end_after_kill_ms") is None
                                               else "%+.1f" % r["udp_gap_end_after_kill_ms"]),
        "" if r["udp_recovered"] else " (the stream did not come back)"))
    print("TCP  %d messages at %d/s, %d echoed; largest gap between echoed messages: %s ms%s" % (
        r["tcp_sent"], c["rate"], r["tcp_echoed"], fmt(r["tcp_stall_ms"]),
        "" if r.get("tcp_stall_start_after_kill_ms") is None else ", starting kill%+.1f ms" % r["tcp_stall_start_after_kill_ms"]))
    print("TCP  connection survived: %s%s (client %s, server saw %s)" % (
        fmt(r["tcp_survived"]), "" if not r["tcp_error"] else " (%s)" % r["tcp_error"], c["tcp_local"], r["tcp_sources"]))
    print("PAT  UDP source seen by the server: %s (client socket %s): %s" % (
        ", ".join(r["udp_sources"]) or "none", c["udp_local"],
        {True: "kept", False: "NOT kept", None: "unknown (no traffic after the gap)"}[r["pat_port_kept"]]))
    print("tool sender lateness max %.2f ms, loop interval max %.2f ms" % (r["sender_late_max_ms"], r["loop_max_ms"]))
    late = [x for x in c.get("late", []) if x[0] >= t_from]
    if late:
        at = (lambda t: "kill%+.1f ms" % ((t - t_kill) * 1000)) if t_kill is not None else (lambda t: "%.3f s" % (t - t_from))
        worst = sorted(late, key=lambda x: -x[1])[:5]
        print("tool sends more than 2 ms late: %d; worst: %s" % (
            len(late), ", ".join("%.1f ms at %s" % (ms, at(t)) for t, ms in worst)))
    if timers in ISSUE6_GOALS:
        gu, gt = ISSUE6_GOALS[timers]
        ok = r["udp_gap_ms"] is not None and r["udp_gap_ms"] <= gu and r["tcp_stall_ms"] is not None and r["tcp_stall_ms"] <= gt
        print("issue 6 goal for poll %d / hold %d: UDP gap <= %.0f ms, TCP stall <= %.0f ms: %s" % (
            timers[0], timers[1], gu, gt, "met" if ok else "not met"))

    fails = []
    if not r["tcp_survived"]:
        fails.append("TCP connection did not survive")
    if r["udp_lost_outside_gap"]:
        fails.append("%d UDP datagrams lost outside the gap" % r["udp_lost_outside_gap"])
    if not r["udp_recovered"]:
        fails.append("UDP stream did not recover")
    if r["pat_port_kept"] is False:
        fails.append("PAT port not kept: the server saw %s" % ", ".join(r["udp_sources"]))
    if limit is None:
        print("no gap limit for poll %d / hold %d (issue limits: 50/250 -> 300 ms, 10/50 -> 100 ms, 2/8 -> 15 ms; "
              "or --max-gap-ms)" % timers)
    elif r["udp_gap_ms"] is None or r["udp_gap_ms"] > limit:
        fails.append("UDP gap %s ms above the limit %.0f ms" % (fmt(r["udp_gap_ms"]), limit))
    else:
        print("UDP gap within the limit of %.0f ms" % limit)
    if tcp_limit is not None and (r["tcp_stall_ms"] is None or r["tcp_stall_ms"] > tcp_limit):
        fails.append("TCP stall %s ms above the limit %.0f ms" % (fmt(r["tcp_stall_ms"]), tcp_limit))
    for f_ in fails:
        print("FAIL  " + f_)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    print("RESULT poll_ms=%d hold_ms=%d udp_gap_ms=%s udp_lost=%d tcp_stall_ms=%s tcp_survived=%s pat_port_kept=%s" % (
        args.poll_ms, args.hold_ms, fmt(r["udp_gap_ms"]), r["udp_lost"], fmt(r["tcp_stall_ms"]),
        fmt(r["tcp_survived"]), fmt(r["pat_port_kept"])))
    return 1 if fails else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--addr", default="0.0.0.0")
    s.add_argument("--udp-port", type=int, default=5002)
    s.add_argument("--tcp-port", type=int, default=5003)
    s.add_argument("--log", required=True)
    s.add_argument("--rt", type=int, default=0, help="SCHED_FIFO priority (0: normal scheduling)")
    s = sub.add_parser("client")
    s.add_argument("--udp", required=True)
    s.add_argument("--tcp", required=True)
    s.add_argument("--rate", type=float, default=1000.0)
    s.add_argument("--duration", type=float, default=60.0)
    s.add_argument("--grace", type=float, default=5.0)
    s.add_argument("--connect-timeout", type=float, default=10.0)
    s.add_argument("--out", required=True)
    s.add_argument("--rt", type=int, default=0, help="SCHED_FIFO priority (0: normal scheduling)")
    s.add_argument("--spin-us", type=int, help="busy-wait this long before each send (default 0 with --rt, else 200)")
    sub.add_parser("now")
    s = sub.add_parser("kill")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--gone", action="append", default=[])
    s = sub.add_parser("ready")
    s.add_argument("a")
    s.add_argument("b")
    s = sub.add_parser("report")
    s.add_argument("--client", required=True)
    s.add_argument("--server-log")
    s.add_argument("--kill")
    s.add_argument("--from", dest="from_t", type=float)
    s.add_argument("--poll-ms", type=int, required=True)
    s.add_argument("--hold-ms", type=int, required=True)
    s.add_argument("--max-gap-ms", type=float)
    s.add_argument("--json")
    a = p.parse_args()
    if a.cmd == "server":
        server(a)
    elif a.cmd == "client":
        client(a)
    elif a.cmd == "now":
        print("%.6f" % now())
    elif a.cmd == "kill":
        kill(a)
    elif a.cmd == "ready":
        sys.exit(ready(a))
    elif a.cmd == "report":
        sys.exit(report(a))


if __name__ == "__main__":
    main()
