"""Small traffic peers for the lab, standard library only.

  peers.py blob-server PORT BYTES          serve BYTES pseudo-random bytes per TCP connection, print nothing
  peers.py blob-client HOST PORT           read everything, print its sha256 and length
  peers.py udp-echo ADDR PORT              echo UDP datagrams back (bound to ADDR, so replies come from it)
  peers.py udp-ping HOST PORT N            send N datagrams, print how many came back
  peers.py ticker HOST PORT SECONDS        TCP client: a line every 50 ms, each echoed; exit 0 if all came back
  peers.py line-echo PORT                  TCP server echoing lines
  peers.py blob-sha BYTES                  print the sha256 blob-server sends for BYTES
"""
import hashlib
import socket
import sys
import threading
import time


def blob(n):
    out = bytearray()
    h = hashlib.sha256(b"twinwall")
    while len(out) < n:
        h = hashlib.sha256(h.digest())
        out += h.digest() * 64
    return bytes(out[:n])


def blob_server(port, n):
    data = blob(n)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=lambda c=c: (c.sendall(data), c.close()), daemon=True).start()


def blob_client(host, port):
    s = socket.create_connection((host, port), timeout=10)
    h = hashlib.sha256()
    total = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
        total += len(b)
    print(h.hexdigest(), total)


def udp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        d, a = s.recvfrom(65536)
        s.sendto(d, a)


def udp_ping(host, port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    ok = 0
    for i in range(n):
        msg = b"ping %d" % i
        s.sendto(msg, (host, port))
        try:
            d, _ = s.recvfrom(65536)
            ok += d == msg
        except socket.timeout:
            pass
    print(ok)


def line_echo(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)

    def serve(c):
        f = c.makefile("rwb")
        for line in f:
            f.write(line)
            f.flush()
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def ticker(host, port, seconds):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rwb")
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        f.write(b"tick %d\n" % i)
        f.flush()
        if f.readline() != b"tick %d\n" % i:
            print("lost", i)
            sys.exit(1)
        i += 1
        time.sleep(0.05)
    print("ticks", i)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "blob-server":
        blob_server(int(args[0]), int(args[1]))
    elif cmd == "blob-client":
        blob_client(args[0], int(args[1]))
    elif cmd == "blob-sha":
        print(hashlib.sha256(blob(int(args[0]))).hexdigest(), int(args[0]))
    elif cmd == "udp-echo":
        udp_echo(args[0], int(args[1]))
    elif cmd == "udp-ping":
        udp_ping(args[0], int(args[1]), int(args[2]))
    elif cmd == "line-echo":
        line_echo(int(args[0]))
    elif cmd == "ticker":
        ticker(args[0], int(args[1]), float(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
