#!/usr/bin/env python3
"""Seed corpora for the `frame` and `config` fuzz targets (not committed:
cargo-fuzz keeps corpora in fuzz/corpus/, which is git-ignored).

    cd fuzz && python3 seeds/make_seeds.py && cargo +nightly fuzz run frame -- -max_total_time=60

frame: every replay case in ../integration/cases (inputs merged by time,
port from the file name) and the first packets of each Ethernet capture in
../../shared/corpora (fed on the outside port, destination MAC retargeted),
in the record format documented in fuzz_targets/frame.rs.
config: the shipped and lab TOML files.
"""
import glob, os, struct, hashlib

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
ROOT = os.path.dirname(FUZZ)
PORTS = {"inside": 0, "outside": 1, "dmz": 2}
MAX_SEED = 8192


def read_pcap(path):
    """(time_us, frame) of a classic Ethernet pcap; [] for anything else."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return []
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    if struct.unpack(e + "I", data[20:24])[0] != 1:
        return []
    out, off = [], 24
    while off + 16 <= len(data):
        s, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        out.append((s * 1_000_000 + (frac // 1000 if nano else frac), data[off:off + incl]))
        off += incl
    return out


def records(frames):
    """frames: (time_us, port, ctrl_extra, bytes) in feeding order."""
    out, last = bytearray(), None
    for t, port, extra, f in frames:
        dt = 0 if last is None else max(0, t - last)
        last = t
        step = min(255, round(dt ** (1 / 3)))
        rec = bytes([port | extra, step]) + struct.pack(">H", len(f)) + f
        if len(out) + len(rec) > MAX_SEED:
            break
        out += rec
    return bytes(out)


def put(target, blob):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(blob).hexdigest()), "wb") as fh:
        fh.write(blob)


n = 0
for case in sorted(glob.glob(os.path.join(ROOT, "integration", "cases", "*"))):
    frames = []
    for p in sorted(glob.glob(os.path.join(case, "in_*.pcap"))):
        iface = os.path.basename(p)[3:-5]
        frames += [(t, PORTS[iface], 0, f) for t, f in read_pcap(p)]
    frames.sort(key=lambda x: x[0])
    if frames:
        put("frame", records(frames))
        n += 1
for p in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "corpora", "*.pcap"))):
    frames = [(t, 1, 4, f) for t, f in read_pcap(p)]
    if frames:
        put("frame", records(frames))
        n += 1
print(f"frame: {n} seeds")
m = 0
for p in [os.path.join(ROOT, "appliance.toml")] + sorted(
    glob.glob(os.path.join(ROOT, "integration", "**", "*.toml"), recursive=True)
):
    put("config", open(p, "rb").read())
    m += 1
print(f"config: {m} seeds")
