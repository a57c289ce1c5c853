"""A TCP transfer with a pause in the middle, and bridge FDB polling, for
the transparent failover lab (integration/lab/transparent.sh). Standard
library only; every time is time.monotonic().

  paused_blob.py server ADDR PORT BYTES PAUSE_S MARKS
      Accept one connection, send the first half of blob(BYTES) (peers.py's
      pseudo-random blob), append "paused T" to MARKS, sleep PAUSE_S, append
      "resumed T", send the rest and close.
  paused_blob.py client HOST PORT BYTES OUT
      Connect, read to the end (30 s bound per read), write JSON to OUT:
      bytes, sha256 ok (against blob(BYTES)), the longest read stall in ms.
  paused_blob.py fdb-wait NS DEV MAC SINCE TIMEOUT_S
      Poll `bridge -n NS fdb show` every 5 ms until MAC is on DEV; print
      the ms since SINCE (a monotonic time) and exit 0, or print "never"
      and exit 1.
  paused_blob.py counters NS DEV...
      Print the sum of rx_packets and tx_packets of the DEVs in NS.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import blob  # noqa: E402


def mark(path, what):
    with open(path, "a") as f:
        f.write("%s %.6f\n" % (what, time.monotonic()))


def server(addr, port, n, pause, marks):
    data = blob(n)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    mark(marks, "listening")
    c, _ = s.accept()
    c.sendall(data[: n // 2])
    mark(marks, "paused")
    time.sleep(pause)
    mark(marks, "resumed")
    c.sendall(data[n // 2:])
    c.close()


def client(host, port, n, out):
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(30)
    h = hashlib.sha256()
    total, stall, last = 0, 0.0, time.monotonic()
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        now = time.monotonic()
        stall, last = max(stall, now - last), now
        if not b:
            break
        h.update(b)
        total += len(b)
    ok = total == n and h.hexdigest() == hashlib.sha256(blob(n)).hexdigest()
    with open(out, "w") as f:
        json.dump({"bytes": total, "sha_ok": ok, "max_stall_ms": round(stall * 1000, 1)}, f)


def fdb_on(ns, dev, mac):
    r = subprocess.run(["bridge", "-n", ns, "fdb", "show", "dev", dev], capture_output=True, text=True)
    return any(line.split()[0].lower() == mac.lower() for line in r.stdout.splitlines() if line.strip())


def fdb_wait(ns, dev, mac, since, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fdb_on(ns, dev, mac):
            print("%.1f" % ((time.monotonic() - since) * 1000))
            return 0
        time.sleep(0.005)
    print("never")
    return 1


def counters(ns, devs):
    total = 0
    for d in devs:
        for k in ("rx_packets", "tx_packets"):
            r = subprocess.run(
                ["ip", "netns", "exec", ns, "cat", "/sys/class/net/%s/statistics/%s" % (d, k)],
                capture_output=True,
                text=True,
            )
            total += int(r.stdout.strip() or 0)
    print(total)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "server":
        server(a[0], int(a[1]), int(a[2]), float(a[3]), a[4])
    elif cmd == "client":
        client(a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "fdb-wait":
        sys.exit(fdb_wait(a[0], a[1], a[2], float(a[3]), float(a[4])))
    elif cmd == "counters":
        counters(a[0], a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
