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
  measure.py wait-roles --sock NAME=SOCK ... --want NAME=ROLE[,ROLE] ... [--keep NAME=ROLE]
                        [--link NAME=STATE] [--stable S] [--timeout S] [--since T] [--out FILE]
      Polls `show failover --json` over the control sockets (every 20 ms)
      until every --want (and --link: the failover_link field) holds for
      --stable s; --keep must hold at every answer meanwhile (once it has not,
      the wait ends when the pair settles otherwise, or --settle s later).
      Exit 0 reached, 1 not reached, 3 reached but a --keep was violated.
  measure.py watch --sock NAME=SOCK ... --interval S --duration S --out FILE
      Samples every unit's role and failover_link every --interval s; writes
      the samples and a summary (samples with both units active, roles and
      link states seen per unit) to FILE.
  measure.py show --sock SOCK "show conn --json"     one control request, raw.
  measure.py jget FILE a.b.0.name=x.c                 one value from a JSON file.
  measure.py phases --facts FILE --client FILE --server-log FILE [--json FILE]
      The later phases' report: FILE holds "key=value" facts failover.sh
      recorded and "window NAME FROM TO T" lines; for each window the UDP gap
      (longest interval without an echo, window edges included), datagrams
      lost, TCP stall, whether TCP is alive at its end and the PAT source(s)
      the server saw. Prints FAIL lines and a final "RESULT2 ..." line; exit 1
      if a mandatory check failed.
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
        "tcp_error_at": None,
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
                rec["tcp_error_at"] = now()
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
                rec["tcp_error_at"] = now()
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
                    rec["tcp_error_at"] = now()
                    t.close()
                    t = None
                    break
                if not d:
                    rec["tcp_error"] = "connection closed by peer"
                    rec["tcp_error_at"] = now()
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


# ---------------------------------------------------------------- control socket


def ask(path, line, timeout=1.0):
    """One request over a twinwall control socket: (ok, body), or None if nobody answered."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((line + "\n").encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
    except OSError:
        return None
    head, _, body = data.decode(errors="replace").partition("\n")
    if head not in ("ok", "error"):
        return None
    return head == "ok", body


def failover_state(path):
    """`show failover --json` as a dict, or None."""
    r = ask(path, "show failover --json")
    if not r or not r[0]:
        return None
    try:
        return json.loads(r[1])
    except ValueError:
        return None


def named(pairs):
    out = {}
    for x in pairs:
        k, v = x.split("=", 1)
        out[k] = v
    return out


def brief(d):
    if d is None:
        return "no answer"
    return "%s (link %s, peer %s, bulk %s)" % (d.get("role"), d.get("failover_link"), d.get("peer_role"), d.get("bulk"))


# ---------------------------------------------------------------- wait-roles


def wait_roles(args):
    """Poll until every --want NAME=ROLE[,ROLE] holds; --keep NAME=ROLE must hold throughout."""
    socks = named(args.sock)
    want = {k: v.split(",") for k, v in named(args.want).items()}
    keep = {k: v.split(",") for k, v in named(args.keep).items()}
    links = named(args.link)
    t0 = now()
    deadline = t0 + args.timeout
    violations = []
    last = {}
    ok = False
    held_since = settled_since = None
    while True:
        t = now()
        last = {k: failover_state(p) for k, p in socks.items()}
        for k, roles in keep.items():
            d = last.get(k)
            if d is not None and d.get("role") not in roles and len(violations) < 20:
                violations.append([t, k, d.get("role")])
        good = all(last.get(k) is not None and last[k].get("role") in roles for k, roles in want.items())
        good = good and all(last.get(k) is not None and last[k].get("failover_link") == v for k, v in links.items())
        if violations and not good:
            # Already failed: stop once the pair has settled some other way
            # (one active, one hot standby, for --stable s), or --settle s on.
            roles = sorted(d.get("role") if d else "?" for d in last.values())
            if roles == ["active", "standby-hot"]:
                settled_since = settled_since if settled_since is not None else t
                if t - settled_since >= max(args.stable, 0.3):
                    break
            else:
                settled_since = None
            if t > violations[0][0] + args.settle:
                break
        if good:
            held_since = held_since if held_since is not None else t
            if t - held_since >= args.stable:
                ok = True
                break
        else:
            held_since = None
        if t > deadline:
            break
        time.sleep(args.interval)
    since = args.since if args.since is not None else t0
    out = {"ok": ok, "t_start": t0, "t_done": now(), "elapsed_ms": (now() - since) * 1000, "violations": violations,
           "last": {k: (None if d is None else {x: d.get(x) for x in ("role", "peer_role", "failover_link", "bulk")})
                    for k, d in last.items()}}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f)
    print("%s after %.0f ms: %s" % ("reached" if ok else "NOT reached" + (" (a --keep was violated)" if violations else ""), out["elapsed_ms"],
                                   "; ".join("%s %s" % (k, brief(d)) for k, d in sorted(last.items()))))
    for t, k, r in violations:
        print("  VIOLATION: %s was %s at start%+.0f ms (wanted %s throughout)" % (k, r, (t - t0) * 1000, "|".join(keep[k])))
    if not ok:
        return 1
    return 3 if violations else 0


# ---------------------------------------------------------------- watch


def watch(args):
    """Sample every unit's role and failover link every --interval s for --duration s (or until SIGUSR1/SIGTERM)."""
    socks = named(args.sock)
    stop = [False]
    signal.signal(signal.SIGUSR1, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    samples = []
    t0 = now()
    nxt = t0
    while not stop[0] and now() < t0 + args.duration:
        t = now()
        smp = {"t": t}
        for k, p in socks.items():
            d = failover_state(p)
            smp[k] = None if d is None else [d.get("role"), d.get("failover_link")]
        samples.append(smp)
        nxt += args.interval
        time.sleep(max(0.0, nxt - now()))
    names = sorted(socks)
    dual = [s["t"] for s in samples if all(s[k] is not None and s[k][0] == "active" for k in names)]
    summary = {"samples": len(samples), "t_start": t0, "t_end": now(), "dual_active": len(dual),
               "first_dual_at": dual[0] if dual else None, "units": {}}
    for k in names:
        roles, links, answered = {}, {}, 0
        active_at = None
        for s in samples:
            if s[k] is None:
                continue
            answered += 1
            roles[s[k][0]] = roles.get(s[k][0], 0) + 1
            links[s[k][1]] = links.get(s[k][1], 0) + 1
            if s[k][0] == "active" and active_at is None:
                active_at = s["t"]
        summary["units"][k] = {"answered": answered, "roles": roles, "links": links, "first_active_at": active_at}
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "samples": samples}, f)
    iv = [b["t"] - a["t"] for a, b in zip(samples, samples[1:])]
    print("watch: %d samples over %.2f s (interval max %.0f ms), both active in %d" % (
        len(samples), summary["t_end"] - t0, max(iv) * 1000 if iv else 0, len(dual)))
    for k in names:
        u = summary["units"][k]
        print("  %s: answered %d; roles %s; failover_link %s" % (
            k, u["answered"], ", ".join("%s x%d" % kv for kv in u["roles"].items()) or "-",
            ", ".join("%s x%d" % kv for kv in u["links"].items()) or "-"))


# ---------------------------------------------------------------- show / jget


def show(args):
    r = ask(args.sock, args.line, timeout=2.0)
    if r is None:
        print("no answer from %s" % args.sock, file=sys.stderr)
        return 1
    sys.stdout.write(r[1])
    return 0 if r[0] else 1


def jget(args):
    """Print FILE's value at a dotted path (list indices and name= selectors allowed); 'na' if absent."""
    try:
        with open(args.file) as f:
            v = json.load(f)
    except (OSError, ValueError):
        print("na")
        return 1
    for part in args.path.split("."):
        if isinstance(v, list) and "=" in part:
            k, want = part.split("=", 1)
            v = next((x for x in v if isinstance(x, dict) and str(x.get(k)) == want), None)
        elif isinstance(v, list) and part.lstrip("-").isdigit():
            i = int(part)
            v = v[i] if -len(v) <= i < len(v) else None
        elif isinstance(v, dict):
            v = v.get(part)
        else:
            v = None
        if v is None:
            print("na")
            return 1
    print(fmt(v) if not isinstance(v, (dict, list)) else json.dumps(v))
    return 0


# ---------------------------------------------------------------- phases


def window(c, srv_events, w):
    """Figures for one phase window of the second stream: [from, to], event at t."""
    lo, hi, t_ev = w["from"], w["to"], w["t"]
    r = {"name": w["name"], "from": lo, "to": hi, "t": t_ev}
    sends, recvs = c["udp_send"], c["udp_recv"]
    idx = [i for i, s in enumerate(sends) if lo <= s < hi]
    r["udp_sent"] = len(idx)
    r["udp_lost"] = sum(1 for i in idx if recvs[i] is None)
    arr = sorted(x for x in recvs if x is not None and lo <= x <= hi)

    def gap(times):
        pts = [lo] + times + [hi]
        g, at = max_gap(pts)
        return g * 1000, pts[at], pts[at + 1]

    r["udp_gap_ms"], a, b = gap(arr)
    r["udp_gap_from_event_ms"] = [(a - t_ev) * 1000, (b - t_ev) * 1000]
    # The sender's own lateness around the gap (tool noise, not the firewall).
    r["sender_late_in_gap_ms"] = max([ms for t, ms in c.get("late", []) if a - 0.05 <= t <= b] or [0.0])
    r["udp_flowing_at_end"] = bool(arr) and arr[-1] >= hi - 0.3
    tarr = sorted(x for x in c["tcp_recv"] if lo <= x <= hi)
    r["tcp_stall_ms"], a, b = gap(tarr)
    r["tcp_stall_from_event_ms"] = [(a - t_ev) * 1000, (b - t_ev) * 1000]
    err_at = c.get("tcp_error_at")
    r["tcp_error"] = c["tcp_error"] if (c["tcp_error"] and (err_at is None or err_at <= hi)) else None
    r["tcp_alive"] = bool(c["tcp_local"]) and r["tcp_error"] is None and bool(tarr) and tarr[-1] >= hi - 0.3
    # PAT: the UDP source the server saw at the window's start and any new one within it.
    srcs = []
    cur = None
    for e in srv_events:
        if e.get("ev") != "udp-src":
            continue
        if e["t"] <= lo:
            cur = e["src"]
        elif e["t"] <= hi and e["src"] not in srcs:
            srcs.append(e["src"])
    if cur is not None:
        srcs = [cur] + [s for s in srcs if s != cur]
    r["udp_sources"] = srcs
    r["pat_port_kept"] = len(srcs) == 1 and r["udp_flowing_at_end"]
    r["tcp_accepts"] = sum(1 for e in srv_events if e.get("ev") == "tcp-accept" and lo <= e["t"] <= hi)
    return r


def phases(args):
    """The later phases' report: per-window traffic figures plus the facts failover.sh recorded."""
    facts = {}
    wins = []
    with open(args.facts) as f:
        for line in f:
            line = line.strip()
            if line.startswith("window "):
                _, name, lo, hi, t = line.split()
                wins.append({"name": name, "from": float(lo), "to": float(hi), "t": float(t)})
            elif "=" in line:
                k, v = line.split("=", 1)
                facts[k] = v
    c = None
    if args.client and os.path.exists(args.client):
        with open(args.client) as f:
            c = json.load(f)
    ev = read_events(args.server_log)
    res = {w["name"]: window(c, ev, w) for w in wins} if c else {}
    print("== later phases: traffic (second stream, %s)" % ("client %s" % c["tcp_local"] if c else "no records"))
    for name, r in res.items():
        print("%-9s UDP %d sent %d lost, longest gap %.1f ms (event%+.0f..%+.0f ms%s); TCP longest stall %.1f ms%s, %s; "
              "PAT source %s" % (
                  name, r["udp_sent"], r["udp_lost"], r["udp_gap_ms"], r["udp_gap_from_event_ms"][0],
                  r["udp_gap_from_event_ms"][1],
                  "" if r["sender_late_in_gap_ms"] < 2 else ", sender itself %.0f ms late then" % r["sender_late_in_gap_ms"],
                  r["tcp_stall_ms"],
                  "" if r["tcp_stall_ms"] < 5 else " (event%+.0f..%+.0f ms)" % tuple(r["tcp_stall_from_event_ms"]),
                  "alive" if r["tcp_alive"] else "NOT alive (%s)" % (r["tcp_error"] or "no echoes at the end"),
                  " -> ".join(r["udp_sources"]) or "none"))

    def F(k, d="na"):
        return facts.get(k, d)

    def W(name, k, nd=1):
        r = res.get(name)
        return "na" if r is None else fmt(r.get(k), nd)

    out = {}
    fails = []
    notes = []
    K, S = F("killed", "a"), F("survivor", "b")

    def changes(phase, u):
        v = F("roles_%s_%s" % (phase, u), "")
        return [x for x in v.split(",") if x]

    for w in wins:
        line = "; ".join("%s: %s" % (u, " ".join(changes(w["name"], u)) or "-") for u in ("a", "b"))
        print("%-9s role changes (logs) %s" % (w["name"], line))

    def need(cond, what):
        if not cond:
            fails.append(what)
        return cond

    # Rejoin.
    if "rejoin" in F("phases_run", ""):
        rj = res.get("rejoin")
        ok = need(F("rejoin_roles") == "ok", "rejoin: roles not reached (%s)" % F("rejoin_roles"))
        ok &= need(rj is not None and rj["udp_flowing_at_end"] and rj["tcp_alive"], "rejoin: traffic not flowing afterwards")
        # The 20 ms polls can miss a flap of a few ms; the survivor's log cannot.
        ok &= need(not changes("rejoin", S), "rejoin: the survivor (%s) changed role: %s" % (S, " ".join(changes("rejoin", S))))
        out["rejoin"] = "ok" if ok else "fail"
        out["rejoin_ms"] = F("rejoin_ms")
        out["rejoin_gap_ms"] = W("rejoin", "udp_gap_ms")
        out["rejoin_lost"] = W("rejoin", "udp_lost")
    if "failback" in F("phases_run", ""):
        fb = res.get("failback")
        ok = need(F("failback_cmd") == "ok", "failback: `twinwall failover active` failed (%s)" % F("failback_cmd_msg", "?"))
        ok &= need(F("failback_roles") == "ok", "failback: roles not reached (%s)" % F("failback_roles"))
        ok &= need(fb is not None and fb["tcp_alive"], "failback: TCP connection did not survive")
        to_active = [(u, c) for u in ("a", "b") for c in changes("failback", u) if c.endswith(">active")]
        ok &= need(len(to_active) == 1 and to_active[0][0] == K,
                   "failback: expected one move to active (unit %s), the logs show %s" % (
                       K, ", ".join("%s %s" % x for x in to_active) or "none"))
        ok &= need(fb is not None and fb["pat_port_kept"], "failback: PAT source port not kept (%s)" % (
            " -> ".join(fb["udp_sources"]) if fb else "no records"))
        out["failback"] = "ok" if ok else "fail"
        out["failback_ms"] = F("failback_ms")
        out["failback_gap_ms"] = W("failback", "udp_gap_ms")
        out["failback_lost"] = W("failback", "udp_lost")
        out["failback_tcp_stall_ms"] = W("failback", "tcp_stall_ms")
        out["failback_tcp_survived"] = W("failback", "tcp_alive")
        out["failback_pat_port_kept"] = W("failback", "pat_port_kept")
        out["failback_peer"] = F("failback_peer_role")
    if "linkcut" in F("phases_run", ""):
        wf = F("linkcut_watch", "")
        if wf and not os.path.isabs(wf):
            wf = os.path.join(os.path.dirname(os.path.abspath(args.facts)), wf)  # beside the facts (--save keeps both)
        s = None
        if wf and os.path.exists(wf):
            with open(wf) as f:
                s = json.load(f)["summary"]
        answered = s is not None and all(u["answered"] >= s["samples"] * 0.8 for u in s["units"].values()) and s["samples"] >= 50
        need(answered, "linkcut: too few answers from the units to judge (%s)" % (
            "no watch records" if s is None else "%d samples, answered %s" % (
                s["samples"], {k: u["answered"] for k, u in s["units"].items()})))
        dual = None if s is None else s["dual_active"] > 0
        need(dual is False, "linkcut: BOTH UNITS ACTIVE in %s of the samples" % (s["dual_active"] if s else "?"))
        moved = ["%s %s" % (u, c) for u in ("a", "b") for c in changes("linkcut", u)]
        # A move to active while the other unit was active is a dual active the polls missed.
        to_active = [m for m in moved if m.endswith(">active")]
        need(not to_active, "linkcut: a unit moved to active during the cut (logs): %s" % ", ".join(to_active))
        if to_active:
            dual = True
        elif moved:
            notes.append("linkcut: role changes during the cut or its recovery (logs; not dual active): %s" % ", ".join(moved))
        failed_seen = s is not None and any(u["links"].get("FAILED", 0) > 0 for u in s["units"].values())
        need(failed_seen, "linkcut: no unit showed failover_link FAILED during the cut")
        need(F("linkcut_log") == "yes", "linkcut: no 'FAILOVER LINK DOWN' log line")
        need(F("linkcut_recovered") == "ok", "linkcut: did not recover after fo0 came back (%s)" % F("linkcut_recovered"))
        # Time from fo0 up to the first sample with the link up on both units (watch records).
        rec_ms = failed_after = "na"
        if wf and os.path.exists(wf) and F("linkcut_t_up", "") not in ("", "na"):
            with open(wf) as f:
                smp = json.load(f)["samples"]
            t_up = float(F("linkcut_t_up"))
            names = sorted(k for k in smp[0] if k != "t") if smp else []
            for x in smp:
                if x["t"] >= t_up and all(x[k] is not None and x[k][1] == "up" for k in names):
                    rec_ms = "%.0f" % ((x["t"] - t_up) * 1000)
                    break
            # Also: when the link first showed FAILED after the cut.
            t_cut = float(F("linkcut_t_down", "0"))
            for x in smp:
                if x["t"] >= t_cut and any(x[k] is not None and x[k][1] == "FAILED" for k in names):
                    failed_after = "%.0f" % ((x["t"] - t_cut) * 1000)
                    break
        out["linkcut_samples"] = s["samples"] if s else "na"
        out["linkcut_dual_active"] = "na" if dual is None else fmt(dual)
        out["linkcut_link_failed"] = ("+".join(k for k, u in sorted(s["units"].items()) if u["links"].get("FAILED")) or "none") if s else "na"
        out["linkcut_failed_after_ms"] = failed_after
        out["linkcut_log"] = F("linkcut_log")
        out["linkcut_gap_ms"] = W("linkcut", "udp_gap_ms")
        out["linkcut_recovered"] = "yes" if F("linkcut_recovered") == "ok" else "no"
        out["linkcut_link_up_after_ms"] = rec_ms
    if "wrongkey" in F("phases_run", ""):
        need(F("wrongkey_error_active") == "yes" and F("wrongkey_error_wrong") == "yes",
             "wrongkey: 'different key' error not in both logs (active unit: %s, wrong-key unit: %s)" % (
                 F("wrongkey_error_active"), F("wrongkey_error_wrong")))
        out["wrongkey_error_both"] = "yes" if F("wrongkey_error_active") == "yes" and F("wrongkey_error_wrong") == "yes" else "no"
        out["wrongkey_state"] = F("wrongkey_state")
        need(F("wrongkey_state") == "0", "wrongkey: the wrong-key unit accepted state (%s records applied)" % F("wrongkey_state"))
        out["wrongkey_conns"] = F("wrongkey_conns")
        out["wrongkey_drops"] = F("wrongkey_key_mismatch_drops")
        went = F("wrongkey_went_active")
        if went == "no":
            # Its own forwarding would explain connections only if it had gone active.
            need(F("wrongkey_conns") == "0", "wrongkey: the wrong-key unit holds %s connections" % F("wrongkey_conns"))
        out["wrongkey_went_active"] = went
        out["wrongkey_real_active_kept"] = F("wrongkey_real_active_kept")
        if went != "no":
            # Not yet a failure: the guard is being added to the core (see failover.sh).
            notes.append("CORE BUG (not yet failing the lab): the wrong-key unit became active while the real "
                         "active lived (%s)" % F("wrongkey_went_active_detail", went))
        out["wrongkey_gap_ms"] = W("wrongkey", "udp_gap_ms")
        # Informational until the core refuses to go active on a key mismatch.
        out["wrongkey_tcp_survived"] = W("restore", "tcp_alive")
        ok = need(F("wrongkey_restore") == "ok", "wrongkey: the unit did not rejoin with the right key (%s)" % F("wrongkey_restore"))
        ok &= need(not changes("restore", K), "wrongkey: the active (%s) changed role when the unit rejoined: %s" % (
            K, " ".join(changes("restore", K))))
        out["wrongkey_restore"] = "ok" if ok else "fail"
        out["restore_gap_ms"] = W("restore", "udp_gap_ms")
    if "stall" in F("phases_run", ""):
        ok = need(F("stall_roles") == "ok", "stall: after SIGCONT the unit that took over (%s) did not keep the role, "
                  "or the stalled unit (%s) did not yield (%s)" % (S, K, F("stall_roles")))
        ok &= need(not changes("stall", S) or changes("stall", S) == ["standby-hot>active"],
                   "stall: the unit that took over (%s) changed role again: %s" % (S, " ".join(changes("stall", S))))
        ok &= need(W("stall", "tcp_alive") == "yes", "stall: the TCP connection did not survive")
        out["stall"] = "ok" if ok else "fail"
        out["stall_takeover_ms"] = F("stall_takeover_ms")
        out["stall_gap_ms"] = W("stall", "udp_gap_ms")
        out["stall_tcp_survived"] = W("stall", "tcp_alive")
    for k in ("error",):
        if k in facts:
            out[k] = facts[k]
            fails.append("lab: %s" % facts[k])
    for n in notes:
        print("NOTE  " + n)
    for f_ in fails:
        print("FAIL  " + f_)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"result": out, "windows": res, "facts": facts, "fails": fails, "notes": notes}, f, indent=1)
    print("RESULT2 " + " ".join("%s=%s" % (k, v) for k, v in out.items()))
    return 1 if fails else 0


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


def read_events(path):
    """The echo server's JSON-lines log (missing or partial lines skipped)."""
    ev = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    ev.append(json.loads(line))
                except ValueError:
                    pass
    return ev


def report(args):
    with open(args.client) as f:
        c = json.load(f)
    ev = read_events(args.server_log)
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
    s = sub.add_parser("wait-roles")
    s.add_argument("--sock", action="append", default=[], help="NAME=PATH")
    s.add_argument("--want", action="append", default=[], help="NAME=ROLE[,ROLE]")
    s.add_argument("--keep", action="append", default=[], help="NAME=ROLE[,ROLE], must hold throughout")
    s.add_argument("--timeout", type=float, default=30.0)
    s.add_argument("--link", action="append", default=[], help="NAME=STATE: failover_link must be STATE too")
    s.add_argument("--stable", type=float, default=0.0, help="the wanted roles must hold this long")
    s.add_argument("--since", type=float, help="report the time taken from this monotonic time (default: start)")
    s.add_argument("--settle", type=float, default=5.0,
                   help="after a --keep violation, wait at most this long for the pair to settle")
    s.add_argument("--interval", type=float, default=0.02)
    s.add_argument("--out")
    s = sub.add_parser("watch")
    s.add_argument("--sock", action="append", default=[], help="NAME=PATH")
    s.add_argument("--interval", type=float, default=0.02)
    s.add_argument("--duration", type=float, default=10.0)
    s.add_argument("--out", required=True)
    s = sub.add_parser("show")
    s.add_argument("--sock", required=True)
    s.add_argument("line")
    s = sub.add_parser("jget")
    s.add_argument("file")
    s.add_argument("path")
    s = sub.add_parser("phases")
    s.add_argument("--facts", required=True)
    s.add_argument("--client")
    s.add_argument("--server-log")
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
    elif a.cmd == "wait-roles":
        sys.exit(wait_roles(a))
    elif a.cmd == "watch":
        watch(a)
    elif a.cmd == "show":
        sys.exit(show(a))
    elif a.cmd == "jget":
        sys.exit(jget(a))
    elif a.cmd == "phases":
        sys.exit(phases(a))


if __name__ == "__main__":
    main()
