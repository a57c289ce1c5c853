#!/usr/bin/env bash
# twinwall benchmarks side by side (issue 5), in one run, on this machine;
# writes markdown tables to BENCHMARKS.md at the repo root.
#
#   tb-cli  192.168.10.10/24, default via 192.168.10.1: iperf3 clients
#   tb-srv  203.0.113.254/24: iperf3 servers (no route: replies go to the
#           PAT address 203.0.113.1, on its own subnet)
#   (a) tb-fw   `twinwall wire --tap tb-inside --tap tb-outside`: TAP to
#               TAP copy, the client on the server's subnet (203.0.113.10)
#   (b) tb-fw   twinwall (bench.toml.in: inside/outside, PAT), its TAPs
#               tb-inside / tb-outside moved into tb-cli / tb-srv
#   (c) tb-fa   as (b), with a standby in tb-fb (bench-ha.toml.in) joined
#               by the veth tbfo; the standby's TAPs stay in tb-fb
#   (d) tb-kr   Linux forwarding between veths with the same names and
#               addresses: nftables masquerade, a stateful forward chain
#               (ct state established,related accept; inside -> outside
#               accept; policy drop), conntrack
# CPUs: on a machine with 2 or more, the device under test gets CPU 1 and
# the traffic (generators, iperf3, the receiving sockets' readers) CPU 0,
# as a tester and a firewall are separate boxes: twinwall runs under
# `taskset -c 1`; the kernel router's ingress veths steer their receive
# processing to CPU 1 (RPS), and the kernel is also measured without that
# (forwarding in the sender's own softirq on CPU 0), its better figure
# being the one compared. --no-pin shares both CPUs among everything.
# Measured per path: single-stream TCP (iperf3, --tcp-s s, Gbit/s as the
# receiver counts it) and 64-byte-payload UDP from the project's generator
# (`blast`, AF_PACKET + sendmmsg, 2 flows, full rate, --udp-s s): frames
# per second that reached the server namespace's interface, counted by an
# nftables ingress rule there that drops them (the test's sink, as a
# tester's receive port), never iperf3's loss %; plus twinwall's CPU time
# (utime+stime from /proc/PID/stat) per frame it read from its TAPs. Then,
# for (b), (c) and (d), new flows/s from `blast --new-flows` (a new source
# port and destination per frame), RSS growth per flow held, and (c)'s
# failover-link bytes per flow.
# Then the failover rows: integration/lab/failover.sh --quick at each timer
# setting (its RESULT lines), and, unless --no-linux-ha, the Linux HA stack
# (integration/bench/linux_ha.sh).
#
# Usage: sudo integration/bench/run.sh [--bin PATH] [--out FILE] [--tcp-s S]
#        [--udp-s S] [--udp-flows N] [--reps N] [--flood-s S] [--no-pin] [--no-arrangement-b] [--no-failover]
#        [--no-linux-ha] [--keep-logs DIR]
# TWINWALL_TAP_OFFLOAD=0 in the environment runs twinwall without TAP offload,
# TWINWALL_IO_URING=0 with read(2)/write(2) per frame instead of io_uring.
# Run it under `flock /tmp/twinwall-lab.lock` on a shared machine.
# No namespace has a route out of the machine; every wait is bounded; the
# EXIT trap removes the namespaces and stops only the processes started here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/integration/lab/lib.sh"
PY=/usr/bin/python3

bin="" out="$repo/BENCHMARKS.md" tcp_s=6 udp_s=6 udp_flows=2 reps=3 flood_s=6 pin=1 steer_b=1 failover=1 linux_ha=1 keep_logs=""
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tcp-s) tcp_s=$2; shift 2 ;;
        --udp-s) udp_s=$2; shift 2 ;;
        --udp-flows) udp_flows=$2; shift 2 ;;
        --no-pin) pin=0; shift ;;
        --no-arrangement-b) steer_b=0; shift ;;
        --flood-s) flood_s=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --no-failover) failover=0; shift ;;
        --no-linux-ha) linux_ha=0; shift ;;
        --keep-logs) keep_logs=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
lab_need_root "the benchmark"
if [ -z "$bin" ]; then
    bin="$repo/target/x86_64-unknown-linux-gnu/release/twinwall"
    [ -x "$bin" ] || (cd "$repo" && cargo build --release --quiet) || exit 2
fi
blast="$repo/target/x86_64-unknown-linux-gnu/release/examples/blast"
[ -x "$blast" ] || (cd "$repo" && cargo build --release --quiet --example blast) || exit 2
bash "$here/install.sh" >/dev/null || { echo "could not install the benchmark packages" >&2; exit 2; }

LAB_DIR=$(mktemp -d /tmp/twinwall-bench.XXXXXX)
t_start=$(date +%s)
# Other work on a shared host shows here (1-minute load average).
load_start=$(cut -d' ' -f1 /proc/loadavg)
finish() {
    declare -F restore_ct >/dev/null && restore_ct
    lab_cleanup
    [ -n "$keep_logs" ] && { mkdir -p "$keep_logs"; cp -r "$LAB_DIR"/. "$keep_logs"/; }
    rm -rf "$LAB_DIR"
}
trap finish EXIT
trap 'exit 130' INT TERM
log() { lab_log "$@"; }
CLK_TCK=$(getconf CLK_TCK)
# DUT: prefix for the device under test; GEN: for traffic; RPS_MASK: the
# kernel router's receive steering (hex CPU mask), empty for none.
if [ $pin = 1 ] && [ "$(nproc)" -ge 2 ]; then
    DUT="taskset -c 1" GEN="taskset -c 0" RPS_MASK=2 PEER_RPS_MASK=1
    PIN_NOTE="twinwall on CPU 1 (\`taskset -c 1\`), the traffic on CPU 0"
else
    DUT="" GEN="" RPS_MASK="" PEER_RPS_MASK="" pin=0
    PIN_NOTE="not pinned (--no-pin or one CPU): everything shares the CPUs"
fi

# ---- helpers -------------------------------------------------------------
cpu_ticks() { [ -n "${1:-}" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# frames twinwall read from its TAPs = the TAPs' tx_packets in the peers' view
tap_tx() { echo $(( $(ip netns exec tb-cli cat /sys/class/net/tb-inside/statistics/tx_packets) + \
                    $(ip netns exec tb-srv cat /sys/class/net/tb-outside/statistics/tx_packets) )); }
# frames the device did not take at its input (TAP queue or veth full)
cli_tx_drop() { ip netns exec tb-cli cat /sys/class/net/tb-inside/statistics/tx_dropped; }
now() { $PY -c 'import time; print(time.monotonic())'; }
# The sink: an ingress rule on the server's interface that counts and drops
# the generator's frames (UDP port 9) before the server's stack sees them.
sink_add() {
    ip netns exec tb-srv nft -f - <<'NFT'
table netdev twsink {
  chain in {
    type filter hook ingress device tb-outside priority 0;
    udp dport 9 counter drop
  }
}
NFT
}
sink_count() { ip netns exec tb-srv nft list chain netdev twsink in 2>/dev/null | sed -n 's/.*packets \([0-9]*\) .*/\1/p'; }
sink_del() { ip netns exec tb-srv nft delete table netdev twsink 2>/dev/null || true; }

start_servers() {
    lab_spawn tb-srv "$LAB_DIR/iperf-tcp-srv.log" $GEN iperf3 -s -p 5201 >/dev/null
    lab_wait 10 ip netns exec tb-srv sh -c "ss -ltn | grep -q ':5201 '" || { log "iperf3 server did not start"; exit 2; }
}

# measure NAME PID: TCP then UDP through the path now in place (the client
# sends from $SRC via $GW); sets R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED
# R_UDP_REFUSED R_UDP_NS R_UDP_FRAMES (NS = twinwall CPU ns per frame, "" without PID)
measure() {
    local name=$1 pid=${2:-} c0 c1 f0 f1 o0 o1 r0 r1
    local ok=0
    for _ in 1 2 3 4 5 6 7 8 9 10; do ip netns exec tb-cli ping -c 1 -W 1 203.0.113.254 >/dev/null 2>&1 && { ok=1; break; }; done
    [ $ok = 1 ] || { log "$name: no path client -> server"; exit 2; }
    log "$name: TCP, single stream, ${tcp_s} s"
    c0=$(cpu_ticks "$pid"); [ -n "$pid" ] && f0=$(tap_tx)
    ip netns exec tb-cli timeout $((tcp_s + 20)) $GEN iperf3 -c 203.0.113.254 -p 5201 -t "$tcp_s" -J \
        >"$LAB_DIR/$name-tcp.json" 2>"$LAB_DIR/$name-tcp.err" || { log "$name: iperf3 TCP failed"; cat "$LAB_DIR/$name-tcp.err" >&2; }
    c1=$(cpu_ticks "$pid"); [ -n "$pid" ] && f1=$(tap_tx)
    R_TCP_GBPS=$($PY -c "import json; d=json.load(open('$LAB_DIR/$name-tcp.json')); print('%.2f' % (d['end']['sum_received']['bits_per_second']/1e9))" 2>/dev/null || echo error)
    R_TCP_NS=""; R_TCP_FRAMES=""
    if [ -n "$pid" ]; then
        R_TCP_FRAMES=$((f1 - f0))
        R_TCP_NS=$($PY -c "print('%.0f' % (($c1-$c0)/$CLK_TCK*1e9/max(1,$R_TCP_FRAMES)))")
    fi
    log "$name: TCP $R_TCP_GBPS Gbit/s${R_TCP_NS:+, twinwall $R_TCP_NS ns/frame}"

    log "$name: UDP 64-byte payload, blast --flows $udp_flows at full rate, ${udp_s} s"
    sink_add
    r0=$(sink_count); o0=$(cli_tx_drop); c0=$(cpu_ticks "$pid"); [ -n "$pid" ] && f0=$(tap_tx)
    ip netns exec tb-cli $GEN "$blast" --iface tb-inside --gateway "$GW" --src "$SRC" --dst 203.0.113.254 \
        --payload 64 --flows "$udp_flows" --seconds "$udp_s" >"$LAB_DIR/$name-blast.txt" 2>&1 \
        || { log "$name: blast failed"; cat "$LAB_DIR/$name-blast.txt" >&2; exit 2; }
    sleep 0.3    # what is still queued reaches the sink
    r1=$(sink_count); o1=$(cli_tx_drop); c1=$(cpu_ticks "$pid"); [ -n "$pid" ] && f1=$(tap_tx)
    sink_del
    local sent secs
    sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$LAB_DIR/$name-blast.txt"); secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$LAB_DIR/$name-blast.txt")
    R_UDP_PPS=$($PY -c "print('%.0f' % (($r1-$r0)/$secs))")
    R_UDP_OFFERED=$($PY -c "print('%.0f' % ($sent/$secs))")
    R_UDP_REFUSED=$($PY -c "print('%.0f' % (($o1-$o0)/$secs))")
    R_UDP_NS=""; R_UDP_FRAMES=""
    if [ -n "$pid" ]; then
        R_UDP_FRAMES=$($PY -c "print('%.0f' % (($f1-$f0)/$secs))")
        R_UDP_NS=$($PY -c "print('%.0f' % (($c1-$c0)/$CLK_TCK*1e9/max(1,$f1-$f0)))")
    fi
    log "$name: UDP $R_UDP_PPS pkt/s reached the server (the generator got $R_UDP_OFFERED pkt/s out, the device refused $R_UDP_REFUSED pkt/s at its input)${R_UDP_NS:+, twinwall read $R_UDP_FRAMES frames/s, $R_UDP_NS ns/frame}"
}

# measure_reps NAME PID: measure --reps times; each R_* becomes the median
# of its runs and R_*_ALL the runs' values (for the spread).
measure_reps() {
    local i v
    local -A all=()
    for ((i = 1; i <= reps; i++)); do
        log "$1: run $i of $reps"
        measure "$1" "${2:-}"
        for v in R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED R_UDP_REFUSED R_UDP_NS R_UDP_FRAMES; do
            all[$v]+="${!v} "
        done
    done
    for v in R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED R_UDP_REFUSED R_UDP_NS R_UDP_FRAMES; do
        printf -v "${v}_ALL" %s "${all[$v]% }"
        printf -v "$v" %s "$(median ${all[$v]})"
        # counts are whole numbers however small
        [ "$v" != R_TCP_GBPS ] && printf -v "$v" %s "${!v%.00}"
    done
    log "$1: medians of $reps: TCP $R_TCP_GBPS Gbit/s (runs: $R_TCP_GBPS_ALL), UDP delivered $R_UDP_PPS pkt/s (runs: $R_UDP_PPS_ALL)"
}
median() { $PY -c "import sys
v=[x for x in sys.argv[1:] if x not in ('', 'error')]
try: v=sorted(float(x) for x in v)
except ValueError: print('error'); sys.exit()
if not v: print(''); sys.exit()
m=v[len(v)//2] if len(v)%2 else (v[len(v)//2-1]+v[len(v)//2])/2
print(('%.2f' % m) if m < 100 else ('%.0f' % m))" "$@"; }
spread() { $PY -c "import sys
v=[x for x in sys.argv[1:] if x not in ('', 'error')]
try: v=sorted(float(x) for x in v)
except ValueError: print(''); sys.exit()
f=lambda x: ('%.2f' % x) if x < 100 else ('%.0f' % x)
print(' (%s-%s)' % (f(v[0]), f(v[-1])) if len(v) > 1 else '')" $1; }

# ---- new flows, memory, replication ---------------------------------------
twjson() { "$bin" show "$2" --json --socket "$1" 2>/dev/null; }
jget() { $PY -c "import json,sys
try:
    d=json.load(sys.stdin)
    for k in sys.argv[1].split('.'): d=d[int(k)] if k.isdigit() else d[k]
    print(d)
except Exception: print(0)" "$1"; }
created() { twjson "$1" counters | jget events.conns_created; }
in_use() { twjson "$1" conn | jget in_use; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# flood NAME SOCK PID [FO_NS FO_IF]: `blast --new-flows` (a new source port
# and a destination in 198.18.0.0/15 per frame: a new flow through PAT each)
# for --flood-s seconds at full rate; sets R_NEW (flows created/s over the
# middle of the run), R_NEW_OFF (frames/s the generator got out), R_MEM
# (bytes of RSS per flow held, from VmRSS and the connection count),
# R_FLOWS (connections held at the end), R_LINK (failover-link bytes per flow).
flood() {
    local name=$1 sock=$2 pid=$3 fo_ns=${4:-} fo_if=${5:-} c0 c1 t0 t1 m0 m1 n0 n1 l0=0 l1=0 d0 d1 hp
    n0=$(in_use "$sock"); m0=$(rss_kb "$pid")
    linkbytes() { [ -n "$fo_ns" ] && ip netns exec "$fo_ns" awk '{ s += $1 } END { print s }' \
        /sys/class/net/$fo_if/statistics/tx_bytes /sys/class/net/$fo_if/statistics/rx_bytes || echo 0; }
    log "$name: new flows, blast --new-flows to 198.18.0.0/15, ${flood_s} s"
    ip netns exec tb-cli $GEN "$blast" --iface tb-inside --gateway 192.168.10.1 --src 192.168.10.10 \
        --new-flows --payload 18 --seconds "$flood_s" >"$LAB_DIR/$name-flood.txt" 2>&1 &
    hp=$!; LAB_PIDS+=($hp)
    sleep 1
    t0=$(now); c0=$(created "$sock"); l0=$(linkbytes); d0=$(cli_tx_drop)
    sleep $((flood_s - 2))
    t1=$(now); c1=$(created "$sock"); l1=$(linkbytes); d1=$(cli_tx_drop)
    wait "$hp" || { log "$name: blast failed"; cat "$LAB_DIR/$name-flood.txt" >&2; }
    lab_forget "$hp"
    sleep 1
    n1=$(in_use "$sock"); m1=$(rss_kb "$pid")
    R_NEW=$($PY -c "print('%.0f' % (($c1-$c0)/($t1-$t0)))")
    R_NEW_OFF=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' "$LAB_DIR/$name-flood.txt")
    R_NEW_REF=$($PY -c "print('%.0f' % (($d1-$d0)/($t1-$t0)))")
    R_FLOWS=$((n1 - n0))
    R_MEM=$($PY -c "print('%.0f' % (($m1-$m0)*1024/max(1,$R_FLOWS)))")
    R_LINK=""
    [ -n "$fo_ns" ] && R_LINK=$($PY -c "print('%.1f' % (($l1-$l0)/max(1,$c1-$c0)))")
    log "$name: $R_NEW new flows/s (the generator got $R_NEW_OFF frames/s out, $R_NEW_REF/s refused); $R_FLOWS flows held, RSS +$((m1 - m0)) kB = $R_MEM bytes/flow${R_LINK:+; failover link $R_LINK bytes/flow}"
}
kill_fw() {   # kill_fw PID: SIGTERM, wait, and wait for its TAPs to go
    kill -TERM "$1"; wait "$1" 2>/dev/null; lab_forget "$1"
    lab_wait 5 bash -c "! ip -n tb-cli link show tb-inside" || true
}
# move_taps NS: the unit's TAPs from NS into the peers
move_taps() {
    local t
    for t in tb-inside tb-outside; do
        lab_wait 10 ip -n "$1" link show "$t" || { echo "twinwall did not create $t in $1"; exit 2; }
    done
    ip -n "$1" link set tb-inside netns tb-cli
    ip -n "$1" link set tb-outside netns tb-srv
}
setup_peers() {
    ip -n tb-cli addr add 192.168.10.10/24 dev tb-inside
    ip -n tb-cli link set tb-inside up
    ip -n tb-cli route add default via 192.168.10.1
    ip -n tb-srv addr add 203.0.113.254/24 dev tb-outside
    ip -n tb-srv link set tb-outside up
    steer_peers
}
# steer_peers: in arrangement B (STEER=1), what the client and server
# namespaces receive is processed on the traffic CPU (RPS), as a separate
# tester's stack would be: the device under test pays for handing a frame
# over (an inter-processor interrupt), not for the receiver's stack.
STEER=0
steer_peers() {
    [ "$STEER" = 1 ] && [ -n "$PEER_RPS_MASK" ] || return 0
    ip netns exec tb-cli sh -c "echo $PEER_RPS_MASK >/sys/class/net/tb-inside/queues/rx-0/rps_cpus" \
        && ip netns exec tb-srv sh -c "echo $PEER_RPS_MASK >/sys/class/net/tb-outside/queues/rx-0/rps_cpus" \
        || log "cannot set RPS on the client and server interfaces"
}

lab_netns tb-fw tb-cli tb-srv
start_servers

# ---- (a) twinwall wire: TAP to TAP, nothing else --------------------------
start_wire() {   # sets wire_pid, GW, SRC
    lab_spawn_as wire_pid tb-fw "$LAB_DIR/wire.log" $DUT "$bin" wire --tap tb-inside --tap tb-outside
    echo "$wire_pid" >>"$LAB_DIR/lab.pids"
    move_taps tb-fw
    # One L2 segment through the wire: the client on the server's subnet.
    ip -n tb-cli addr add 203.0.113.10/24 dev tb-inside
    ip -n tb-cli link set tb-inside up
    ip -n tb-srv addr add 203.0.113.254/24 dev tb-outside
    ip -n tb-srv link set tb-outside up
    steer_peers
    GW=203.0.113.254 SRC=203.0.113.10
}
start_wire
measure_reps wire "$wire_pid"
A_TCP_SP=$(spread "$R_TCP_GBPS_ALL") A_UDP_SP=$(spread "$R_UDP_PPS_ALL")
A_TCP=$R_TCP_GBPS A_TCP_NS=$R_TCP_NS A_UDP=$R_UDP_PPS A_UDP_OFF=$R_UDP_OFFERED A_UDP_REF=$R_UDP_REFUSED A_UDP_NS=$R_UDP_NS A_UDP_FR=$R_UDP_FRAMES
kill_fw "$wire_pid"

# ---- (b) twinwall routed, conntrack + PAT --------------------------------
GW=192.168.10.1 SRC=192.168.10.10
sock="$LAB_DIR/fw.sock"
sed "s#@SOCK@#$sock#" "$here/bench.toml.in" >"$LAB_DIR/bench.toml"
"$bin" check -c "$LAB_DIR/bench.toml" >/dev/null || exit 2
start_unit() {   # sets fw_pid
    lab_spawn_as fw_pid tb-fw "$LAB_DIR/fw.log" $DUT "$bin" run -c "$LAB_DIR/bench.toml"
    echo "$fw_pid" >>"$LAB_DIR/lab.pids"
    move_taps tb-fw
    setup_peers
}
start_unit
measure_reps twinwall "$fw_pid"
B_TCP_SP=$(spread "$R_TCP_GBPS_ALL") B_UDP_SP=$(spread "$R_UDP_PPS_ALL")
B_TCP=$R_TCP_GBPS B_TCP_NS=$R_TCP_NS B_UDP=$R_UDP_PPS B_UDP_OFF=$R_UDP_OFFERED B_UDP_REF=$R_UDP_REFUSED B_UDP_NS=$R_UDP_NS B_UDP_FR=$R_UDP_FRAMES
flood twinwall "$sock" "$fw_pid"
B_NEW=$R_NEW B_NEW_OFF=$R_NEW_OFF B_NEW_REF=$R_NEW_REF B_MEM=$R_MEM B_FLOWS=$R_FLOWS
"$bin" show counters --socket "$sock" >"$LAB_DIR/twinwall-counters.txt" 2>&1 || true
kill_fw "$fw_pid"

# ---- (c) (b) with a standby replicating -----------------------------------
lab_netns tb-fa tb-fb
lab_failover_link tb-fa tbfo 169.254.74.1 tb-fb tbfo 169.254.74.2
for u in primary:169.254.74.1:169.254.74.2 secondary:169.254.74.2:169.254.74.1; do
    IFS=: read -r un lo pe <<<"$u"
    sed "s#@HOST@#tb-$un#; s#@SOCK@#$LAB_DIR/$un.sock#; s#@UNIT@#$un#; s#@LOCAL@#$lo#; s#@PEER@#$pe#" \
        "$here/bench-ha.toml.in" >"$LAB_DIR/$un.toml"
    "$bin" check -c "$LAB_DIR/$un.toml" >/dev/null || exit 2
done
# The standby is another box: here it shares CPU 0 with the traffic.
lab_spawn_as fa_pid tb-fa "$LAB_DIR/fa.log" $DUT "$bin" run -c "$LAB_DIR/primary.toml"
echo "$fa_pid" >>"$LAB_DIR/lab.pids"
lab_spawn_as fb_pid tb-fb "$LAB_DIR/fb.log" $GEN "$bin" run -c "$LAB_DIR/secondary.toml"
echo "$fb_pid" >>"$LAB_DIR/lab.pids"
role() { twjson "$1" failover | jget role; }
lab_wait 15 bash -c "[ \"\$('$bin' show failover --json --socket '$LAB_DIR/primary.sock' 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"role\"])')\" = active ] && \
    '$bin' show failover --json --socket '$LAB_DIR/secondary.sock' 2>/dev/null | $PY -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)[\"role\"].startswith(\"standby-hot\") else 1)'" \
    || { log "pair did not reach active / standby-hot: $(role "$LAB_DIR/primary.sock") / $(role "$LAB_DIR/secondary.sock")"; cat "$LAB_DIR/fa.log" "$LAB_DIR/fb.log" >&2; exit 2; }
log "pair: primary $(role "$LAB_DIR/primary.sock"), secondary $(role "$LAB_DIR/secondary.sock")"
move_taps tb-fa
setup_peers
measure_reps ha "$fa_pid"
C_TCP_SP=$(spread "$R_TCP_GBPS_ALL") C_UDP_SP=$(spread "$R_UDP_PPS_ALL")
C_TCP=$R_TCP_GBPS C_TCP_NS=$R_TCP_NS C_UDP=$R_UDP_PPS C_UDP_OFF=$R_UDP_OFFERED C_UDP_REF=$R_UDP_REFUSED C_UDP_NS=$R_UDP_NS C_UDP_FR=$R_UDP_FRAMES
fb_c0=$(cpu_ticks "$fb_pid")
flood ha "$LAB_DIR/primary.sock" "$fa_pid" tb-fa tbfo
fb_c1=$(cpu_ticks "$fb_pid")
C_NEW=$R_NEW C_NEW_OFF=$R_NEW_OFF C_NEW_REF=$R_NEW_REF C_MEM=$R_MEM C_FLOWS=$R_FLOWS C_LINK=$R_LINK
# Nothing lost: once the stream is idle (lag 0), the standby holds what the active holds.
lab_wait 20 bash -c "[ \"\$('$bin' show failover --json --socket '$LAB_DIR/primary.sock' 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"lag_records\"])')\" = 0 ]" || true
C_ACT=$(in_use "$LAB_DIR/primary.sock"); C_SBY=$(in_use "$LAB_DIR/secondary.sock")
twjson "$LAB_DIR/primary.sock" failover >"$LAB_DIR/ha-primary-failover.json"
twjson "$LAB_DIR/secondary.sock" failover >"$LAB_DIR/ha-secondary-failover.json"
C_LAG=$(jget lag_records <"$LAB_DIR/ha-primary-failover.json")
C_SBY_CPU=$($PY -c "print('%.0f' % (($fb_c1-$fb_c0)/$CLK_TCK*100/$flood_s))")
log "ha: after the flood, active holds $C_ACT connections, standby $C_SBY (lag $C_LAG records); standby CPU ${C_SBY_CPU}% during it"
kill_fw "$fa_pid"
kill -TERM "$fb_pid"; wait "$fb_pid" 2>/dev/null; lab_forget "$fb_pid"

# ---- (d) Linux kernel forwarding, nftables masquerade + conntrack ---------
# kernel_router RPS: the router namespace tb-kr between veths with the same
# names and addresses as the TAPs; RPS=1 steers its receive processing to
# the device-under-test CPU (when pinned).
kernel_router() {
    lab_netns tb-kr
    ip link add kr-in netns tb-kr type veth peer name tb-inside netns tb-cli
    ip link add kr-out netns tb-kr type veth peer name tb-outside netns tb-srv
    ip -n tb-kr addr add 192.168.10.1/24 dev kr-in
    ip -n tb-kr addr add 203.0.113.1/24 dev kr-out
    ip -n tb-kr link set kr-in up
    ip -n tb-kr link set kr-out up
    ip -n tb-kr route add 198.18.0.0/15 via 203.0.113.254
    ip netns exec tb-kr sysctl -qw net.ipv4.ip_forward=1
    if [ "$1" = 1 ] && [ -n "$RPS_MASK" ]; then
        ip netns exec tb-kr sh -c "echo $RPS_MASK >/sys/class/net/kr-in/queues/rx-0/rps_cpus; \
            echo $RPS_MASK >/sys/class/net/kr-out/queues/rx-0/rps_cpus" || log "cannot set RPS on the kernel router"
    fi
    ip netns exec tb-kr nft -f - <<'NFT'
table ip twbench {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "kr-in" oifname "kr-out" accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "kr-out" masquerade
  }
}
NFT
    setup_peers
}
# The kernel's conntrack table is the host's (nf_conntrack_max, shared by
# every namespace): make room for the new-flows test, and put it back.
ct_max0=$(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null || echo "")
ct_buckets0=$(sysctl -n net.netfilter.nf_conntrack_buckets 2>/dev/null || echo "")
restore_ct() {
    [ -n "$ct_buckets0" ] && sysctl -qw net.netfilter.nf_conntrack_buckets="$ct_buckets0" 2>/dev/null
    [ -n "$ct_max0" ] && sysctl -qw net.netfilter.nf_conntrack_max="$ct_max0" 2>/dev/null
    true
}
ct_count() { ip netns exec tb-kr conntrack -C 2>/dev/null || echo 0; }
# kernel_flood NAME: new flows through the kernel router (as flood above).
kernel_flood() {
    local t0 t1 k0 k1 d0 d1 hp
    log "$1: new flows, blast --new-flows, 4 s"
    ip netns exec tb-cli $GEN "$blast" --iface tb-inside --gateway 192.168.10.1 --src 192.168.10.10 \
        --new-flows --payload 18 --seconds 4 >"$LAB_DIR/$1-flood.txt" 2>&1 &
    hp=$!; LAB_PIDS+=($hp)
    sleep 1; t0=$(now); k0=$(ct_count); d0=$(cli_tx_drop); sleep 2; t1=$(now); k1=$(ct_count); d1=$(cli_tx_drop)
    wait "$hp"; lab_forget "$hp"
    R_NEW=$($PY -c "print('%.0f' % (($k1-$k0)/($t1-$t0)))")
    R_NEW_OFF=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' "$LAB_DIR/$1-flood.txt")
    R_NEW_REF=$($PY -c "print('%.0f' % (($d1-$d0)/($t1-$t0)))")
    log "$1: $R_NEW new flows/s (the generator got $R_NEW_OFF frames/s out)"
    ip netns exec tb-kr conntrack -F >/dev/null 2>&1 || true
}
if [ -n "$ct_max0" ]; then
    sysctl -qw net.netfilter.nf_conntrack_max=4194304 net.netfilter.nf_conntrack_buckets=1048576 2>/dev/null \
        || log "cannot raise nf_conntrack_max; the kernel's new-flows figure is capped by $ct_max0 entries"
fi
drop_kernel_router() {
    ip netns del tb-kr 2>/dev/null || true
    # The veth ends in tb-cli and tb-srv go with it, not at once.
    lab_wait 10 bash -c "! ip -n tb-cli link show tb-inside 2>/dev/null && ! ip -n tb-srv link show tb-outside 2>/dev/null" || true
}
# measure_kernel PREFIX SUFFIX FLOOD: the kernel router with and without
# RPS; sets PREFIX_{rps,local}_* (and the new-flows figures if FLOOD=1).
measure_kernel() {
    local p=$1 sfx=$2 flood=$3 variant v
    for variant in rps local; do
        [ $variant = rps ] && [ -z "$RPS_MASK" ] && continue
        drop_kernel_router
        kernel_router "$([ $variant = rps ] && echo 1 || echo 0)"
        measure_reps "kernel-$variant$sfx" ""
        printf -v "${p}_${variant}_TCP_SP" %s "$(spread "$R_TCP_GBPS_ALL")"
        printf -v "${p}_${variant}_UDP_SP" %s "$(spread "$R_UDP_PPS_ALL")"
        for v in TCP_GBPS UDP_PPS UDP_OFFERED UDP_REFUSED; do eval "${p}_${variant}_$v=\$R_$v"; done
        if [ "$flood" = 1 ]; then
            kernel_flood "kernel-$variant"
            eval "${p}_${variant}_NEW=\$R_NEW ${p}_${variant}_NEW_OFF=\$R_NEW_OFF ${p}_${variant}_NEW_REF=\$R_NEW_REF"
        fi
    done
}
measure_kernel D "" 1
restore_ct
drop_kernel_router

# ---- arrangement B: the receivers' stacks on the traffic CPU --------------
# (a), (b) and (d) again with the client's and server's receive processing
# steered to CPU 0: the device under test no longer runs the receiver's
# stack inside its write(2) or transmit, but pays an inter-processor
# interrupt to hand each frame (or batch) over.
if [ -n "$PEER_RPS_MASK" ] && [ "$steer_b" = 1 ]; then
    STEER=1
    log "arrangement B: receivers steered to CPU 0"
    start_wire
    measure_reps wire-B "$wire_pid"
    AB_TCP=$R_TCP_GBPS AB_TCP_SP=$(spread "$R_TCP_GBPS_ALL") AB_UDP=$R_UDP_PPS AB_UDP_SP=$(spread "$R_UDP_PPS_ALL")
    AB_UDP_OFF=$R_UDP_OFFERED AB_UDP_REF=$R_UDP_REFUSED AB_TCP_NS=$R_TCP_NS AB_UDP_NS=$R_UDP_NS AB_UDP_FR=$R_UDP_FRAMES
    kill_fw "$wire_pid"
    GW=192.168.10.1 SRC=192.168.10.10
    start_unit
    measure_reps twinwall-B "$fw_pid"
    BB_TCP=$R_TCP_GBPS BB_TCP_SP=$(spread "$R_TCP_GBPS_ALL") BB_UDP=$R_UDP_PPS BB_UDP_SP=$(spread "$R_UDP_PPS_ALL")
    BB_UDP_OFF=$R_UDP_OFFERED BB_UDP_REF=$R_UDP_REFUSED BB_TCP_NS=$R_TCP_NS BB_UDP_NS=$R_UDP_NS BB_UDP_FR=$R_UDP_FRAMES
    kill_fw "$fw_pid"
    measure_kernel DB -B 0
    STEER=0
fi
lab_cleanup; LAB_PIDS=(); LAB_NETNS=(); : >"$LAB_DIR/lab.pids"

# ---- failover ------------------------------------------------------------
fo_row() {   # fo_row LABEL ARGS... -> a table row from failover.sh --quick's RESULT line
    local label=$1 res f; shift
    f="$LAB_DIR/failover-twinwall-$(tr -c 'a-z0-9\n' _ <<<"$label").log"
    log "failover: twinwall $label"
    bash "$repo/integration/lab/failover.sh" --quick --bin "$bin" "$@" >"$f" 2>&1
    res=$(grep '^RESULT ' "$f" | tail -1)
    if [ -z "$res" ]; then
        echo "| twinwall, $label | error (no RESULT line) | | | \`sudo integration/lab/failover.sh --quick $*\` |"
        log "  no RESULT line; the end of its output:"; tail -5 "$f" >&2
        return
    fi
    log "  $res"
    local g s t p
    g=$(sed -n 's/.*udp_gap_ms=\([^ ]*\).*/\1/p' <<<"$res"); s=$(sed -n 's/.*tcp_stall_ms=\([^ ]*\).*/\1/p' <<<"$res")
    t=$(sed -n 's/.*tcp_survived=\([^ ]*\).*/\1/p' <<<"$res"); p=$(sed -n 's/.*pat_port_kept=\([^ ]*\).*/\1/p' <<<"$res")
    echo "| twinwall, $label | $g ms | $s ms | $t | PAT port kept: $p; \`sudo integration/lab/failover.sh --quick $*\` |"
}
FO_ROWS=""
if [ $failover = 1 ]; then
    FO_ROWS+="$(fo_row "poll 50 / hold 250 ms (defaults)")"$'\n'
    FO_ROWS+="$(fo_row "poll 10 / hold 50 ms" --poll-ms 10 --hold-ms 50)"$'\n'
    FO_ROWS+="$(fo_row "poll 5 / hold 25 ms" --poll-ms 5 --hold-ms 25)"$'\n'
    FO_ROWS+="$(fo_row "poll 2 / hold 8 ms" --poll-ms 2 --hold-ms 8)"$'\n'
else
    FO_ROWS+="| twinwall | not measured in this run (--no-failover) | | | |"$'\n'
fi
HA_ROWS=""
if [ $failover = 1 ] && [ $linux_ha = 1 ] && [ -x "$here/linux_ha.sh" ]; then
    for adv in 1 0.1 0.01; do
        log "failover: Linux HA stack, advert_int $adv"
        HA_ROWS+="$(bash "$here/linux_ha.sh" --advert-int "$adv" --row 2>"$LAB_DIR/linux-ha-$adv.log" || echo "| Linux nftables + conntrackd + keepalived, advert_int $adv s | error, see linux_ha.sh output | | | |")"$'\n'
    done
else
    HA_ROWS+="| Linux nftables + conntrackd (FTFW) + keepalived (VRRP), defaults and fastest advert_int | not measured yet | | | |"$'\n'
fi

# ---- BENCHMARKS.md -------------------------------------------------------
elapsed=$(( $(date +%s) - t_start ))
load_end=$(cut -d' ' -f1 /proc/loadavg)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ratio() { $PY -c "import sys; a,b=sys.argv[1],sys.argv[2]
try: print('%.2fx' % (float(a)/float(b)))
except Exception: print('n/a')" "$1" "$2"; }
# issue 6's comparison: twinwall's UDP gap / the Linux stack's, defaults with defaults, fastest with fastest
fo_ratio() { $PY - "$1" "$2" <<'PYR'
import sys
def gap(row):
    try: return float(row.split("|")[2].split()[0])
    except Exception: return None
a, b = gap(sys.argv[1]), gap(sys.argv[2])
print("%.3fx" % (a / b) if a is not None and b else "n/a")
PYR
}
# Rows: twinwall 50/250, 10/50, 5/25, 2/8; Linux advert_int 1, 0.1, 0.01.
FO1=$(sed -n 1p <<<"$FO_ROWS"); FO2=$(sed -n 2p <<<"$FO_ROWS"); FO4=$(sed -n 4p <<<"$FO_ROWS")
HA1=$(sed -n 1p <<<"$HA_ROWS"); HA2=$(sed -n 2p <<<"$HA_ROWS"); HA3=$(sed -n 3p <<<"$HA_ROWS")
FO_RATIOS="UDP gap ratio, twinwall / Linux HA stack (issue 6 goal: at most 0.1x): defaults $(fo_ratio "$FO1" "$HA1"); twinwall 10 / 50 ms against keepalived 0.1 s $(fo_ratio "$FO2" "$HA2"); fastest timers (twinwall 2 / 8 ms, keepalived 0.01 s) $(fo_ratio "$FO4" "$HA3")."
# A path that carried (nearly) everything offered was not saturated: its pps is a lower bound.
# bound SENT THROUGH REFUSED
bound() { $PY -c "import sys
try:
    s, t, r = (float(x) for x in sys.argv[1:4])
    print(' (generator-bound: everything sent got through, a lower bound)' if t >= 0.97*s and r <= 0.01*t else '')
except Exception: print('')" "$1" "$2" "$3"; }
iperf_v=$(iperf3 --version 2>/dev/null | head -1 | awk '{print $2}')
A_BOUND=$(bound "$A_UDP_OFF" "$A_UDP" "$A_UDP_REF"); B_BOUND=$(bound "$B_UDP_OFF" "$B_UDP" "$B_UDP_REF"); C_BOUND=$(bound "$C_UDP_OFF" "$C_UDP" "$C_UDP_REF")
# The kernel: each figure the better of its two arrangements (with RPS to
# the device-under-test CPU, and forwarding in the sender's softirq).
best() { $PY -c "import sys
v=[]
for x in sys.argv[1:]:
    try: v.append(float(x))
    except ValueError: pass
print(('%.2f' % max(v) if max(v) < 100 else '%.0f' % max(v)) if v else 'error')" "$@"; }
D_TCP=$(best ${D_rps_TCP_GBPS:-} ${D_local_TCP_GBPS:-})
D_UDP=$(best ${D_rps_UDP_PPS:-} ${D_local_UDP_PPS:-})
D_NEW=$(best ${D_rps_NEW:-} ${D_local_NEW:-})
# kernel_row VARIANT LABEL [PREFIX]: a table row for the kernel router
kernel_row() {
    local v=$1 p=${3:-D} tcp udp off ref sp1 sp2 nb
    eval "tcp=\${${p}_${v}_TCP_GBPS:-} udp=\${${p}_${v}_UDP_PPS:-} off=\${${p}_${v}_UDP_OFFERED:-} ref=\${${p}_${v}_UDP_REFUSED:-} sp1=\${${p}_${v}_TCP_SP:-} sp2=\${${p}_${v}_UDP_SP:-}"
    [ -z "$tcp$udp" ] && return
    echo "| (d) Linux forwarding, nftables masquerade + stateful forward chain, conntrack; $2 | $tcp$sp1 | $udp$sp2$(bound "$off" "$udp" "$ref") | $off / $ref | (kernel softirq, not attributed) |"
}
# New flows: generator-bound when (nearly) every frame sent became a flow.
# nbound FLOWS SENT REFUSED
nbound() { $PY -c "import sys
try:
    n, s, r = (float(x) for x in sys.argv[1:4])
    print(' (generator-bound: every frame sent became a flow, a lower bound)' if n >= 0.95*s and r <= 0.01*n else '')
except Exception: print('')" "$1" "$2" "$3"; }
B_NBOUND=$(nbound "$B_NEW" "$B_NEW_OFF" "$B_NEW_REF"); C_NBOUND=$(nbound "$C_NEW" "$C_NEW_OFF" "$C_NEW_REF")
kernel_new_row() {
    local v=$1 n off ref
    eval "n=\${D_${v}_NEW:-} off=\${D_${v}_NEW_OFF:-} ref=\${D_${v}_NEW_REF:-}"
    [ -z "$n" ] && return
    echo "| (d) Linux, nftables masquerade; $2 | $n$(nbound "$n" "$off" "$ref") | $off / $ref | | | |"
}
offload=$([ "${TWINWALL_TAP_OFFLOAD:-1}" = 0 ] && echo "off (TWINWALL_TAP_OFFLOAD=0)" || echo "on (vnet_hdr, TUNSETOFFLOAD csum + TSO4/6)")
rps_label="receive steered to CPU 1 (RPS), as the device under test"
local_label="forwarding in the sender's softirq (CPU 0, beside the generator)"
[ $pin = 0 ] && local_label="not pinned"
KROWS="" KNROWS="" KBROWS=""
for v in rps local; do
    r=$(kernel_row $v "$(eval echo "\$${v}_label")"); [ -n "$r" ] && KROWS+="$r"$'\n'
    r=$(kernel_new_row $v "$(eval echo "\$${v}_label")"); [ -n "$r" ] && KNROWS+="$r"$'\n'
    r=$(kernel_row $v "$(eval echo "\$${v}_label")" DB); [ -n "$r" ] && KBROWS+="$r"$'\n'
done
DB_TCP=$(best ${DB_rps_TCP_GBPS:-} ${DB_local_TCP_GBPS:-})
DB_UDP=$(best ${DB_rps_UDP_PPS:-} ${DB_local_UDP_PPS:-})
BB_BOUND=$(bound "${BB_UDP_OFF:-}" "${BB_UDP:-}" "${BB_UDP_REF:-}")
AB_BOUND=$(bound "${AB_UDP_OFF:-}" "${AB_UDP:-}" "${AB_UDP_REF:-}")
if [ -n "${BB_UDP:-}" ]; then
    B_TABLE="## Arrangement B: the receivers' stacks on the traffic CPU

The same measurements for (a), (b) and (d) with the client's and server's
interfaces steering their receive processing to CPU 0 (RPS), as a separate
tester's stack would run on its own machine: the device under test no longer
runs the receiver's stack (the sink's rule, the server's TCP) inside its
write(2) or transmit, but pays an inter-processor interrupt to hand frames
over. The table above (arrangement A) leaves the receivers' stacks on the
CPU that hands them the frame, as one host does without steering.

| path | TCP, one stream (Gbit/s) | UDP 64-byte payload through (frames/s) | UDP sent / refused (frames/s) | twinwall CPU per frame read (TCP / UDP) |
|---|---|---|---|---|
| (a) \`twinwall wire\` (TAP to TAP copy only, the ceiling) | $AB_TCP$AB_TCP_SP | $AB_UDP$AB_UDP_SP$AB_BOUND | $AB_UDP_OFF / $AB_UDP_REF | $AB_TCP_NS ns / $AB_UDP_NS ns ($AB_UDP_FR frames/s read) |
| (b) twinwall routed, conntrack + PAT, one unit | $BB_TCP$BB_TCP_SP | $BB_UDP$BB_UDP_SP$BB_BOUND | $BB_UDP_OFF / $BB_UDP_REF | $BB_TCP_NS ns / $BB_UDP_NS ns ($BB_UDP_FR frames/s read) |
${KBROWS}| ratio (b) / (a) | $(ratio "$BB_TCP" "$AB_TCP") | $(ratio "$BB_UDP" "$AB_UDP") | | |
| ratio (b) / (d), the kernel's better arrangement | $(ratio "$BB_TCP" "$DB_TCP") | $(ratio "$BB_UDP" "$DB_UDP") | | |
| ratio (a) / (d): the TAP's ceiling against the kernel | $(ratio "$AB_TCP" "$DB_TCP") | $(ratio "$AB_UDP" "$DB_UDP") | | |
"
else
    B_TABLE="(Arrangement B, the receivers' stacks steered to the traffic CPU, was not measured in this run.)
"
fi
cat >"$out" <<MD
# Benchmarks

Written by \`sudo integration/bench/run.sh\` (issue 5); every figure below
comes from one run of it, on one machine. Ratios within the run are what to
compare; absolute figures depend on the host. **This host is a shared 2-core
VM**: other work may run beside the benchmark, and run-to-run spread is
large (tens of percent on the UDP rows).

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs ($cpu), kernel $(uname -r); 1-minute load average $load_start at the start, $load_end at the end (the benchmark itself keeps about 2 busy)
- twinwall: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown) (release build), TAP offload $offload, iperf3 $iperf_v, run took ${elapsed} s
- CPUs: $PIN_NOTE
- TAP I/O: $([ "${TWINWALL_IO_URING:-1}" = 0 ] && echo "read(2)/write(2) per frame (TWINWALL_IO_URING=0)" || echo "io_uring, batched reads and writes (unless the kernel refuses it: see the units' logs)")

## Throughput: client namespace -> device under test -> server namespace (arrangement A)

| path | TCP, one stream (Gbit/s) | UDP 64-byte payload through (frames/s) | UDP sent by the generator / refused at the device's input (frames/s) | twinwall CPU per frame read (TCP / UDP) |
|---|---|---|---|---|
| (a) \`twinwall wire\` (TAP to TAP copy only, the ceiling) | $A_TCP$A_TCP_SP | $A_UDP$A_UDP_SP$A_BOUND | $A_UDP_OFF / $A_UDP_REF | $A_TCP_NS ns / $A_UDP_NS ns ($A_UDP_FR frames/s read) |
| (b) twinwall routed, conntrack + PAT, one unit | $B_TCP$B_TCP_SP | $B_UDP$B_UDP_SP$B_BOUND | $B_UDP_OFF / $B_UDP_REF | $B_TCP_NS ns / $B_UDP_NS ns ($B_UDP_FR frames/s read) |
| (c) (b) with a standby replicating | $C_TCP$C_TCP_SP | $C_UDP$C_UDP_SP$C_BOUND | $C_UDP_OFF / $C_UDP_REF | $C_TCP_NS ns / $C_UDP_NS ns ($C_UDP_FR frames/s read; active unit) |
$KROWS| ratio (b) / (a) (goal: at least 0.9x) | $(ratio "$B_TCP" "$A_TCP") | $(ratio "$B_UDP" "$A_UDP") | | |
| ratio (b) / (d), the kernel's better arrangement (goals: TCP at least 0.8x, UDP at least 1x) | $(ratio "$B_TCP" "$D_TCP") | $(ratio "$B_UDP" "$D_UDP") | | |
| ratio (a) / (d): the TAP's ceiling against the kernel | $(ratio "$A_TCP" "$D_TCP") | $(ratio "$A_UDP" "$D_UDP") | | |
| ratio (c) / (b) | $(ratio "$C_TCP" "$B_TCP") | $(ratio "$C_UDP" "$B_UDP") | | |

Each figure is the median of $reps runs, with the lowest and highest in
brackets; the ratios are of medians. How: TCP is
\`iperf3 -c 203.0.113.254 -t $tcp_s\` (receiver's rate). UDP is the
project's generator, \`blast --flows $udp_flows --payload 64\` for $udp_s s at
full rate (\`integration/bench/blast.rs\`: Ethernet frames written by an
AF_PACKET socket with PACKET_QDISC_BYPASS, 64 per sendmmsg(2), one process);
"through" is the frames that reached the server namespace's interface,
counted there by an nftables ingress rule that drops them (the tester's
receive port), over the generator's run time. "Refused" is the client
interface's tx_dropped: frames the device under test had no room for (the
TAP's queue or the router's backlog was full). CPU per frame is
twinwall's utime+stime delta (\`/proc/PID/stat\`) over the frames it read
from its two TAPs (the TAPs' tx_packets, both directions, TCP ACKs
included; with offload one TCP "frame" is a super-frame of up to 64 KiB).
That CPU time includes the kernel's work inside twinwall's write(2) calls:
a TAP write runs the receiving namespace's stack (up to the sink, or the
socket for TCP) in the writer's context, as the kernel router's transmit
runs it in its softirq. A figure marked generator-bound did not saturate
its path, so it is a lower bound.

CPUs: $PIN_NOTE. A firewall and its tester are separate machines; on one
2-CPU host that is approximated by giving the device under test CPU 1 and
the generator, iperf3 and the sink's readers CPU 0. The kernel router has no
process to pin, so it is measured twice: with its ingress veths' receive
processing steered to CPU 1 (RPS, \`rps_cpus\`), the same split as
twinwall's; and without, where the generator's own sendmmsg(2) runs the
forwarding in softirq on CPU 0. The ratio uses the better of the two for
each column. In this arrangement (A) the receiving namespaces' stacks run
where the frame is handed to them, as on any one host: inside twinwall's
TAP write(2) on CPU 1, in the kernel router's transmit softirq on CPU 1 (or
CPU 0 without RPS); both devices pay for the receiver's stack alike.
Arrangement B below moves the receivers' stacks to CPU 0.

Path (a) has no router: the client sits on the server's subnet
(203.0.113.10/24) and its frames cross \`twinwall wire\` unchanged, vnet
header included. In (c) the standby runs on CPU 0 beside the traffic and
its own TAPs are not attached (its interfaces are not monitored), so the
data path is the active unit's, as in (b), and the difference is the
replication work. TCP super-frames: the TAPs of (a)-(c) carry TSO
super-frames with partial checksums both ways, as the veths of (d) carry
GSO/GRO ones.

$B_TABLE
## New flows through PAT, memory per flow, replication

| path | new flows/s | frames/s sent by the generator / refused at the device's input | flows held at the end | RSS growth per flow | failover-link bytes per flow |
|---|---|---|---|---|---|
| (b) twinwall, one unit | $B_NEW$B_NBOUND | $B_NEW_OFF / $B_NEW_REF | $B_FLOWS | $B_MEM bytes | |
| (c) twinwall, standby replicating | $C_NEW$C_NBOUND | $C_NEW_OFF / $C_NEW_REF | $C_FLOWS | $C_MEM bytes | $C_LINK bytes |
$KNROWS
How: \`blast --new-flows --payload 18\` in the client namespace for
$flood_s s (4 s for the kernel): frame i goes to 198.18.0.0 + (i mod 131072)
from source port 1024 + (i div 131072), so every frame is a new connection
and a new PAT binding. "new flows/s" is twinwall's \`conns_created\`
counter (the kernel's \`conntrack -C\`) over the middle of the flood. For
the kernel the run raises the host's nf_conntrack_max (to 4M, with 1M
buckets) and puts both back at the end. RSS growth is VmRSS of the
(active) unit before and after the flood over the connections it then held
(\`show conn\`'s in_use); it includes the connection slab, the index and the
PAT bindings, and steps as those tables double. Failover-link bytes are the
veth's rx+tx bytes (Ethernet, IP and UDP headers included, hellos and acks
too) over the flows created in the same window.

Replication, nothing lost: after the flood, once the active's replication lag
was $C_LAG records, the active held $C_ACT connections and the standby
$C_SBY. The standby used ${C_SBY_CPU}% of a CPU during the flood.

## Failover: kill -9 of the active unit, 1 kHz UDP + 1 kHz TCP message stream

| setup | UDP gap | TCP stall | TCP survived | notes / command |
|---|---|---|---|---|
${FO_ROWS}${HA_ROWS}
$FO_RATIOS

The Linux routers (\`integration/bench/linux_ha.sh\`) die as a twinwall unit
does: their data links go first (one \`ip -batch\`, so forwarding and VRRP
adverts stop together), then keepalived and conntrackd get kill -9; the
backup's notify_master commits conntrackd's external cache (-c -f -R -B).
Same traffic tool and report as twinwall's lab (\`integration/lab/measure.py\`):
the UDP gap is the longest interval without an echo, the TCP stall the
largest interval between consecutive echoed messages on the connection.

MD
log "wrote $out (${elapsed} s)"
cat "$out"
