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
# Measured per path: single-stream TCP (iperf3, --tcp-s s, Gbit/s as the
# receiver counts it) and 64-byte-payload UDP from --udp-procs iperf3
# processes at -b 0 (packets/s delivered to UDP sockets in tb-srv: the
# Udp InDatagrams delta of that namespace over a steady window, never
# iperf3's loss %), plus twinwall's CPU time (utime+stime from
# /proc/PID/stat) per frame it read from its TAPs. Then, for (b), (c) and
# (d), new flows/s from hping3 --flood to random destinations, RSS growth
# per flow held, and (c)'s failover-link bytes per flow.
# Then the failover rows: integration/lab/failover.sh --quick at the default
# timers and at --poll-ms 2 --hold-ms 8 (its RESULT lines), and, unless
# --no-linux-ha, the Linux HA stack (integration/bench/linux_ha.sh).
#
# Usage: sudo integration/bench/run.sh [--bin PATH] [--out FILE] [--tcp-s S]
#        [--udp-s S] [--udp-procs N] [--reps N] [--flood-s S] [--no-failover] [--no-linux-ha]
#        [--keep-logs DIR]
# TWINWALL_TAP_OFFLOAD=0 in the environment runs twinwall without TAP offload.
# Run it under `flock /tmp/twinwall-lab.lock` on a shared machine.
# No namespace has a route out of the machine; every wait is bounded; the
# EXIT trap removes the namespaces and stops only the processes started here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/integration/lab/lib.sh"
PY=/usr/bin/python3

bin="" out="$repo/BENCHMARKS.md" tcp_s=6 udp_s=8 udp_procs=2 reps=3 flood_s=8 failover=1 linux_ha=1 keep_logs=""
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tcp-s) tcp_s=$2; shift 2 ;;
        --udp-s) udp_s=$2; shift 2 ;;
        --udp-procs) udp_procs=$2; shift 2 ;;
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
bash "$here/install.sh" >/dev/null || { echo "could not install the benchmark packages" >&2; exit 2; }

LAB_DIR=$(mktemp -d /tmp/twinwall-bench.XXXXXX)
t_start=$(date +%s)
# Other work on a shared host shows here (1-minute load average).
load_start=$(cut -d' ' -f1 /proc/loadavg)
finish() {
    lab_cleanup
    [ -n "$keep_logs" ] && { mkdir -p "$keep_logs"; cp -r "$LAB_DIR"/. "$keep_logs"/; }
    rm -rf "$LAB_DIR"
}
trap finish EXIT
trap 'exit 130' INT TERM
log() { lab_log "$@"; }
CLK_TCK=$(getconf CLK_TCK)

# ---- helpers -------------------------------------------------------------
udp_in() { ip netns exec "$1" awk '/^Udp:/ { if (h) { print $2; exit } h=1 }' /proc/net/snmp; }   # InDatagrams
udp_out() { ip netns exec "$1" awk '/^Udp:/ { if (h) { print $5; exit } h=1 }' /proc/net/snmp; }  # OutDatagrams
cpu_ticks() { [ -n "${1:-}" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# frames twinwall read from its TAPs = the TAPs' tx_packets in the peers' view;
# srv_rx: frames that reached the server namespace's interface
tap_tx() { echo $(( $(ip netns exec tb-cli cat /sys/class/net/tb-inside/statistics/tx_packets) + \
                    $(ip netns exec tb-srv cat /sys/class/net/tb-outside/statistics/tx_packets) )); }
srv_rx() { ip netns exec tb-srv cat /sys/class/net/tb-outside/statistics/rx_packets; }
now() { $PY -c 'import time; print(time.monotonic())'; }
fdiv() { $PY -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(a/b if b else 0)" "$1" "$2"; }

start_servers() {
    local p
    lab_spawn tb-srv "$LAB_DIR/iperf-tcp-srv.log" iperf3 -s -p 5201 >/dev/null
    for ((p = 0; p < udp_procs; p++)); do
        lab_spawn tb-srv "$LAB_DIR/iperf-udp-srv$p.log" iperf3 -s -p $((5210 + p)) >/dev/null
    done
    lab_wait 10 ip netns exec tb-srv sh -c "ss -ltn | grep -q ':5201 '" || { log "iperf3 server did not start"; exit 2; }
    lab_wait 10 ip netns exec tb-srv sh -c "ss -ltn | grep -q ':$((5210 + udp_procs - 1)) '" || { log "iperf3 udp servers did not start"; exit 2; }
}

# measure NAME PID: TCP then UDP through the path now in place; sets
# R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED R_UDP_NS (NS = twinwall CPU ns per frame, "" without PID)
measure() {
    local name=$1 pid=${2:-} c0 c1 f0 f1 t0 t1 i0 i1 o0 o1 r0 r1 p pids=()
    local ok=0
    for _ in 1 2 3 4 5 6 7 8 9 10; do ip netns exec tb-cli ping -c 1 -W 1 203.0.113.254 >/dev/null 2>&1 && { ok=1; break; }; done
    [ $ok = 1 ] || { log "$name: no path client -> server"; exit 2; }
    log "$name: TCP, single stream, ${tcp_s} s"
    c0=$(cpu_ticks "$pid"); [ -n "$pid" ] && f0=$(tap_tx)
    ip netns exec tb-cli timeout $((tcp_s + 20)) iperf3 -c 203.0.113.254 -p 5201 -t "$tcp_s" -J \
        >"$LAB_DIR/$name-tcp.json" 2>"$LAB_DIR/$name-tcp.err" || { log "$name: iperf3 TCP failed"; cat "$LAB_DIR/$name-tcp.err" >&2; }
    c1=$(cpu_ticks "$pid"); [ -n "$pid" ] && f1=$(tap_tx)
    R_TCP_GBPS=$($PY -c "import json; d=json.load(open('$LAB_DIR/$name-tcp.json')); print('%.2f' % (d['end']['sum_received']['bits_per_second']/1e9))" 2>/dev/null || echo error)
    R_TCP_NS=""; R_TCP_FRAMES=""
    if [ -n "$pid" ]; then
        R_TCP_FRAMES=$((f1 - f0))
        R_TCP_NS=$($PY -c "print('%.0f' % (($c1-$c0)/$CLK_TCK*1e9/max(1,$R_TCP_FRAMES)))")
    fi
    log "$name: TCP $R_TCP_GBPS Gbit/s${R_TCP_NS:+, twinwall $R_TCP_NS ns/frame}"

    log "$name: UDP 64-byte payload, $udp_procs iperf3 -b 0 senders, ${udp_s} s"
    for ((p = 0; p < udp_procs; p++)); do
        ip netns exec tb-cli timeout $((udp_s + 20)) iperf3 -c 203.0.113.254 -p $((5210 + p)) -u -l 64 -b 0 \
            -t "$udp_s" -J >"$LAB_DIR/$name-udp$p.json" 2>&1 &
        pids+=($!); LAB_PIDS+=($!)
    done
    sleep 2    # ramp-up; the window is the middle of the run
    t0=$(now); r0=$(srv_rx); i0=$(udp_in tb-srv); o0=$(udp_out tb-cli); c0=$(cpu_ticks "$pid"); [ -n "$pid" ] && f0=$(tap_tx)
    sleep $((udp_s - 4))
    t1=$(now); r1=$(srv_rx); i1=$(udp_in tb-srv); o1=$(udp_out tb-cli); c1=$(cpu_ticks "$pid"); [ -n "$pid" ] && f1=$(tap_tx)
    for p in "${pids[@]}"; do wait "$p"; lab_forget "$p"; done
    R_UDP_PPS=$($PY -c "print('%.0f' % (($i1-$i0)/($t1-$t0)))")
    R_UDP_WIRE=$($PY -c "print('%.0f' % (($r1-$r0)/($t1-$t0)))")
    R_UDP_OFFERED=$($PY -c "print('%.0f' % (($o1-$o0)/($t1-$t0)))")
    R_UDP_NS=""; R_UDP_FRAMES=""
    if [ -n "$pid" ]; then
        R_UDP_FRAMES=$($PY -c "print('%.0f' % (($f1-$f0)/($t1-$t0)))")
        R_UDP_NS=$($PY -c "print('%.0f' % (($c1-$c0)/$CLK_TCK*1e9/max(1,$f1-$f0)))")
    fi
    log "$name: UDP delivered $R_UDP_PPS pkt/s (sent $R_UDP_OFFERED pkt/s, $R_UDP_WIRE frames/s reached the server's interface)${R_UDP_NS:+, twinwall read $R_UDP_FRAMES frames/s, $R_UDP_NS ns/frame}"
}

# measure_reps NAME PID: measure --reps times; each R_* becomes the median
# of its runs and R_*_ALL the runs' values (for the spread).
measure_reps() {
    local i v
    local -A all=()
    for ((i = 1; i <= reps; i++)); do
        log "$1: run $i of $reps"
        measure "$1" "${2:-}"
        for v in R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED R_UDP_WIRE R_UDP_NS R_UDP_FRAMES; do
            all[$v]+="${!v} "
        done
    done
    for v in R_TCP_GBPS R_TCP_NS R_UDP_PPS R_UDP_OFFERED R_UDP_WIRE R_UDP_NS R_UDP_FRAMES; do
        printf -v "${v}_ALL" %s "${all[$v]% }"
        printf -v "$v" %s "$(median ${all[$v]})"
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
cli_tx() { ip netns exec tb-cli awk '{ s += $1 } END { print s }' /sys/class/net/tb-inside/statistics/tx_packets /sys/class/net/tb-inside/statistics/tx_dropped; }
# flood NAME SOCK PID [FO_NS FO_IF]: hping3 UDP with a new source port per
# packet to random addresses in 198.18.0.0/15 (a new flow through PAT per
# packet) for --flood-s seconds; sets R_NEW (flows created/s over the middle
# of the run), R_NEW_OFF (packets/s the client's interface took),
# R_MEM (bytes of RSS per flow held, from VmRSS and the connection count),
# R_FLOWS (connections held at the end), R_LINK (failover-link bytes per flow).
flood() {
    local name=$1 sock=$2 pid=$3 fo_ns=${4:-} fo_if=${5:-} c0 c1 t0 t1 x0 x1 m0 m1 n0 n1 l0=0 l1=0 hp
    n0=$(in_use "$sock"); m0=$(rss_kb "$pid")
    linkbytes() { [ -n "$fo_ns" ] && ip netns exec "$fo_ns" awk '{ s += $1 } END { print s }' \
        /sys/class/net/$fo_if/statistics/tx_bytes /sys/class/net/$fo_if/statistics/rx_bytes || echo 0; }
    log "$name: new flows, hping3 --udp --flood --rand-dest 198.18.x.x, ${flood_s} s"
    ip netns exec tb-cli timeout "$flood_s" hping3 --udp --flood --rand-dest -I tb-inside -p 9 -d 18 198.18.x.x \
        >"$LAB_DIR/$name-hping.log" 2>&1 &
    hp=$!; LAB_PIDS+=($hp)
    sleep 1
    t0=$(now); c0=$(created "$sock"); x0=$(cli_tx); l0=$(linkbytes)
    sleep $((flood_s - 2))
    t1=$(now); c1=$(created "$sock"); x1=$(cli_tx); l1=$(linkbytes)
    wait "$hp"; lab_forget "$hp"
    sleep 1
    n1=$(in_use "$sock"); m1=$(rss_kb "$pid")
    R_NEW=$($PY -c "print('%.0f' % (($c1-$c0)/($t1-$t0)))")
    R_NEW_OFF=$($PY -c "print('%.0f' % (($x1-$x0)/($t1-$t0)))")
    R_FLOWS=$((n1 - n0))
    R_MEM=$($PY -c "print('%.0f' % (($m1-$m0)*1024/max(1,$R_FLOWS)))")
    R_LINK=""
    [ -n "$fo_ns" ] && R_LINK=$($PY -c "print('%.1f' % (($l1-$l0)/max(1,$c1-$c0)))")
    log "$name: $R_NEW new flows/s (client interface took $R_NEW_OFF pkt/s); $R_FLOWS flows held, RSS +$((m1 - m0)) kB = $R_MEM bytes/flow${R_LINK:+; failover link $R_LINK bytes/flow}"
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
}

lab_netns tb-fw tb-cli tb-srv
start_servers

# ---- (a) twinwall wire: TAP to TAP, nothing else --------------------------
lab_spawn_as wire_pid tb-fw "$LAB_DIR/wire.log" "$bin" wire --tap tb-inside --tap tb-outside
echo "$wire_pid" >>"$LAB_DIR/lab.pids"
move_taps tb-fw
# One L2 segment through the wire: the client on the server's subnet.
ip -n tb-cli addr add 203.0.113.10/24 dev tb-inside
ip -n tb-cli link set tb-inside up
ip -n tb-srv addr add 203.0.113.254/24 dev tb-outside
ip -n tb-srv link set tb-outside up
measure_reps wire "$wire_pid"
A_TCP_SP=$(spread "$R_TCP_GBPS_ALL") A_UDP_SP=$(spread "$R_UDP_PPS_ALL") A_WIRE_SP=$(spread "$R_UDP_WIRE_ALL")
A_TCP=$R_TCP_GBPS A_TCP_NS=$R_TCP_NS A_UDP=$R_UDP_PPS A_UDP_OFF=$R_UDP_OFFERED A_UDP_NS=$R_UDP_NS A_UDP_FR=$R_UDP_FRAMES A_UDP_WIRE=$R_UDP_WIRE
kill_fw "$wire_pid"

# ---- (b) twinwall routed, conntrack + PAT --------------------------------
sock="$LAB_DIR/fw.sock"
sed "s#@SOCK@#$sock#" "$here/bench.toml.in" >"$LAB_DIR/bench.toml"
"$bin" check -c "$LAB_DIR/bench.toml" >/dev/null || exit 2
lab_spawn_as fw_pid tb-fw "$LAB_DIR/fw.log" "$bin" run -c "$LAB_DIR/bench.toml"
echo "$fw_pid" >>"$LAB_DIR/lab.pids"
move_taps tb-fw
setup_peers
measure_reps twinwall "$fw_pid"
B_TCP_SP=$(spread "$R_TCP_GBPS_ALL") B_UDP_SP=$(spread "$R_UDP_PPS_ALL") B_WIRE_SP=$(spread "$R_UDP_WIRE_ALL")
B_TCP=$R_TCP_GBPS B_TCP_NS=$R_TCP_NS B_UDP=$R_UDP_PPS B_UDP_OFF=$R_UDP_OFFERED B_UDP_NS=$R_UDP_NS B_UDP_FR=$R_UDP_FRAMES B_UDP_WIRE=$R_UDP_WIRE
flood twinwall "$sock" "$fw_pid"
B_NEW=$R_NEW B_NEW_OFF=$R_NEW_OFF B_MEM=$R_MEM B_FLOWS=$R_FLOWS
"$bin" show counters --socket "$sock" >"$LAB_DIR/twinwall-counters.txt" 2>&1 || true
kill_fw "$fw_pid"

# ---- (c) (b) with a standby replicating -----------------------------------
lab_netns tb-fa tb-fb
ip link add tbfo netns tb-fa type veth peer name tbfo netns tb-fb
ip -n tb-fa addr add 169.254.74.1/24 dev tbfo
ip -n tb-fb addr add 169.254.74.2/24 dev tbfo
for n in tb-fa tb-fb; do
    ip -n $n link set tbfo multicast on up
    ip -n $n route add 224.0.0.0/4 dev tbfo
done
for u in primary:169.254.74.1:169.254.74.2 secondary:169.254.74.2:169.254.74.1; do
    IFS=: read -r un lo pe <<<"$u"
    sed "s#@HOST@#tb-$un#; s#@SOCK@#$LAB_DIR/$un.sock#; s#@UNIT@#$un#; s#@LOCAL@#$lo#; s#@PEER@#$pe#" \
        "$here/bench-ha.toml.in" >"$LAB_DIR/$un.toml"
    "$bin" check -c "$LAB_DIR/$un.toml" >/dev/null || exit 2
done
lab_spawn_as fa_pid tb-fa "$LAB_DIR/fa.log" "$bin" run -c "$LAB_DIR/primary.toml"
echo "$fa_pid" >>"$LAB_DIR/lab.pids"
lab_spawn_as fb_pid tb-fb "$LAB_DIR/fb.log" "$bin" run -c "$LAB_DIR/secondary.toml"
echo "$fb_pid" >>"$LAB_DIR/lab.pids"
role() { twjson "$1" failover | jget role; }
lab_wait 15 bash -c "[ \"\$('$bin' show failover --json --socket '$LAB_DIR/primary.sock' 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"role\"])')\" = active ] && \
    '$bin' show failover --json --socket '$LAB_DIR/secondary.sock' 2>/dev/null | $PY -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)[\"role\"].startswith(\"standby-hot\") else 1)'" \
    || { log "pair did not reach active / standby-hot: $(role "$LAB_DIR/primary.sock") / $(role "$LAB_DIR/secondary.sock")"; cat "$LAB_DIR/fa.log" "$LAB_DIR/fb.log" >&2; exit 2; }
log "pair: primary $(role "$LAB_DIR/primary.sock"), secondary $(role "$LAB_DIR/secondary.sock")"
move_taps tb-fa
setup_peers
measure_reps ha "$fa_pid"
C_TCP_SP=$(spread "$R_TCP_GBPS_ALL") C_UDP_SP=$(spread "$R_UDP_PPS_ALL") C_WIRE_SP=$(spread "$R_UDP_WIRE_ALL")
C_TCP=$R_TCP_GBPS C_TCP_NS=$R_TCP_NS C_UDP=$R_UDP_PPS C_UDP_OFF=$R_UDP_OFFERED C_UDP_NS=$R_UDP_NS C_UDP_FR=$R_UDP_FRAMES C_UDP_WIRE=$R_UDP_WIRE
fb_c0=$(cpu_ticks "$fb_pid")
flood ha "$LAB_DIR/primary.sock" "$fa_pid" tb-fa tbfo
fb_c1=$(cpu_ticks "$fb_pid")
C_NEW=$R_NEW C_NEW_OFF=$R_NEW_OFF C_MEM=$R_MEM C_FLOWS=$R_FLOWS C_LINK=$R_LINK
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
lab_netns tb-kr
ip link add kr-in netns tb-kr type veth peer name tb-inside netns tb-cli
ip link add kr-out netns tb-kr type veth peer name tb-outside netns tb-srv
ip -n tb-kr addr add 192.168.10.1/24 dev kr-in
ip -n tb-kr addr add 203.0.113.1/24 dev kr-out
ip -n tb-kr link set kr-in up
ip -n tb-kr link set kr-out up
ip -n tb-kr route add 198.18.0.0/15 via 203.0.113.254
ip netns exec tb-kr sysctl -qw net.ipv4.ip_forward=1
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
measure_reps kernel ""
D_TCP_SP=$(spread "$R_TCP_GBPS_ALL") D_UDP_SP=$(spread "$R_UDP_PPS_ALL") D_WIRE_SP=$(spread "$R_UDP_WIRE_ALL")
D_TCP=$R_TCP_GBPS D_UDP=$R_UDP_PPS D_UDP_OFF=$R_UDP_OFFERED D_UDP_WIRE=$R_UDP_WIRE
# New flows through the kernel: conntrack's count over a short flood (its
# table holds nf_conntrack_max, shared with the host).
ct_count() { ip netns exec tb-kr conntrack -C 2>/dev/null || echo 0; }
log "kernel: new flows, hping3 as above, 4 s"
ip netns exec tb-cli timeout 4 hping3 --udp --flood --rand-dest -I tb-inside -p 9 -d 18 198.18.x.x >"$LAB_DIR/kernel-hping.log" 2>&1 &
hp=$!; LAB_PIDS+=($hp)
sleep 1; t0=$(now); k0=$(ct_count); x0=$(cli_tx); sleep 2; t1=$(now); k1=$(ct_count); x1=$(cli_tx)
wait "$hp"; lab_forget "$hp"
D_NEW=$($PY -c "print('%.0f' % (($k1-$k0)/($t1-$t0)))"); D_NEW_OFF=$($PY -c "print('%.0f' % (($x1-$x0)/($t1-$t0)))")
log "kernel: $D_NEW new flows/s (client interface took $D_NEW_OFF pkt/s)"
ip netns exec tb-kr conntrack -F >/dev/null 2>&1 || true
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
bound() { $PY -c "import sys
try: print(' (generator-bound: everything offered got through, a lower bound)' if float(sys.argv[2]) >= 0.97*float(sys.argv[1]) else '')
except Exception: print('')" "$1" "$2"; }
B_BOUND=$(bound "$B_UDP_OFF" "$B_UDP_WIRE"); D_BOUND=$(bound "$D_UDP_OFF" "$D_UDP_WIRE")
iperf_v=$(iperf3 --version 2>/dev/null | head -1 | awk '{print $2}')
A_BOUND=$(bound "$A_UDP_OFF" "$A_UDP_WIRE"); C_BOUND=$(bound "$C_UDP_OFF" "$C_UDP_WIRE")
# New flows: generator-bound when (nearly) every packet the client's interface took became a flow.
nbound() { $PY -c "import sys
try: print(' (generator-bound: every packet offered became a flow, a lower bound)' if float(sys.argv[1]) >= 0.95*float(sys.argv[2]) else '')
except Exception: print('')" "$1" "$2"; }
B_NBOUND=$(nbound "$B_NEW" "$B_NEW_OFF"); C_NBOUND=$(nbound "$C_NEW" "$C_NEW_OFF"); D_NBOUND=$(nbound "$D_NEW" "$D_NEW_OFF")
offload=$([ "${TWINWALL_TAP_OFFLOAD:-1}" = 0 ] && echo "off (TWINWALL_TAP_OFFLOAD=0)" || echo "on (vnet_hdr, TUNSETOFFLOAD csum + TSO4/6)")
cat >"$out" <<MD
# Benchmarks

Written by \`sudo integration/bench/run.sh\` (issue 5); every figure below
comes from one run of it, on one machine. Ratios within the run are what to
compare; absolute figures depend on the host. **This host is a shared 2-core
VM**: other work ran beside the benchmark, the generators, the kernel's
packet processing and twinwall all compete for the same 2 CPUs, and
run-to-run spread is large (tens of percent on the UDP rows).

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs ($cpu), kernel $(uname -r); 1-minute load average $load_start at the start, $load_end at the end (the benchmark itself keeps about 2 busy)
- twinwall: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown) (release build), TAP offload $offload, iperf3 $iperf_v, run took ${elapsed} s

## Throughput: client namespace -> device under test -> server namespace

| path | TCP, one stream (Gbit/s) | UDP 64-byte payload delivered (packets/s) | UDP offered by the senders / reaching the server's interface (packets/s) | twinwall CPU per frame read (TCP / UDP) |
|---|---|---|---|---|
| (a) \`twinwall wire\` (TAP to TAP copy only, the ceiling) | $A_TCP$A_TCP_SP | $A_UDP$A_UDP_SP$A_BOUND | $A_UDP_OFF / $A_UDP_WIRE$A_WIRE_SP | $A_TCP_NS ns / $A_UDP_NS ns ($A_UDP_FR frames/s read) |
| (b) twinwall routed, conntrack + PAT, one unit | $B_TCP$B_TCP_SP | $B_UDP$B_UDP_SP$B_BOUND | $B_UDP_OFF / $B_UDP_WIRE$B_WIRE_SP | $B_TCP_NS ns / $B_UDP_NS ns ($B_UDP_FR frames/s read) |
| (c) (b) with a standby replicating | $C_TCP$C_TCP_SP | $C_UDP$C_UDP_SP$C_BOUND | $C_UDP_OFF / $C_UDP_WIRE$C_WIRE_SP | $C_TCP_NS ns / $C_UDP_NS ns ($C_UDP_FR frames/s read; active unit) |
| (d) Linux forwarding, nftables masquerade + stateful forward chain, conntrack | $D_TCP$D_TCP_SP | $D_UDP$D_UDP_SP$D_BOUND | $D_UDP_OFF / $D_UDP_WIRE$D_WIRE_SP | (kernel softirq, not attributed) |
| ratio (b) / (a) (goal: at least 0.9x) | $(ratio "$B_TCP" "$A_TCP") | $(ratio "$B_UDP" "$A_UDP") | reaching the server: $(ratio "$B_UDP_WIRE" "$A_UDP_WIRE") | |
| ratio (b) / (d) (goals: TCP at least 0.8x, UDP at least 1x) | $(ratio "$B_TCP" "$D_TCP") | $(ratio "$B_UDP" "$D_UDP") | reaching the server: $(ratio "$B_UDP_WIRE" "$D_UDP_WIRE") | |
| ratio (c) / (b) | $(ratio "$C_TCP" "$B_TCP") | $(ratio "$C_UDP" "$B_UDP") | reaching the server: $(ratio "$C_UDP_WIRE" "$B_UDP_WIRE") | |

Each figure is the median of $reps runs, with the lowest and highest in
brackets; the ratios are of medians. How: TCP is
\`iperf3 -c 203.0.113.254 -t $tcp_s\` (receiver's rate). UDP is
$udp_procs parallel \`iperf3 -u -l 64 -b 0 -t $udp_s\` processes; "delivered" is
the server namespace's \`Udp InDatagrams\` delta (datagrams handed to sockets)
over the middle $((udp_s - 4)) s, "offered" the client namespace's
\`OutDatagrams\` over the same window, and "reaching the server's interface"
its interface's rx_packets (the difference to "delivered" is dropped in the
server's own stack, e.g. full socket buffers). CPU per frame is twinwall's
utime+stime delta (\`/proc/PID/stat\`) over the frames it read from its two
TAPs in that window (the TAPs' tx_packets, both directions, TCP ACKs
included; with offload one TCP "frame" is a super-frame of up to 64 KiB).
That CPU time includes the kernel's work inside twinwall's write(2) calls:
a TAP write runs the receiving namespace's stack (up to the socket) in the
writer's context. The senders, the kernel's softirq work and twinwall share
the machine's $(nproc) CPUs, so on a small machine the generator competes
with the device under test: compare offered with delivered. A figure marked
generator-bound did not saturate its path (the senders, whose sendto()
runs the kernel path's forwarding in softirq on their own CPU, were the
limit), so the ratio in that column is an upper bound for (b) / (d).

Path (a) has no router: the client sits on the server's subnet
(203.0.113.10/24) and its frames cross \`twinwall wire\` unchanged, vnet
header included. In (c) the standby's own TAPs are not attached (its
interfaces are not monitored), so the data path is the active unit's, as
in (b), and the difference is the replication work (and the standby's CPU
on the same 2 cores). TCP super-frames: the TAPs of (a)-(c) carry TSO
super-frames with partial checksums both ways, as the veths of (d) carry
GSO/GRO ones.

## New flows through PAT, memory per flow, replication

| path | new flows/s | packets/s the client's interface took | flows held at the end | RSS growth per flow | failover-link bytes per flow |
|---|---|---|---|---|---|
| (b) twinwall, one unit | $B_NEW$B_NBOUND | $B_NEW_OFF | $B_FLOWS | $B_MEM bytes | |
| (c) twinwall, standby replicating | $C_NEW$C_NBOUND | $C_NEW_OFF | $C_FLOWS | $C_MEM bytes | $C_LINK bytes |
| (d) Linux, nftables masquerade | $D_NEW$D_NBOUND | $D_NEW_OFF | | | |

How: \`hping3 --udp --flood --rand-dest -I tb-inside -p 9 -d 18 198.18.x.x\`
in the client namespace for $flood_s s (4 s for the kernel, whose table is
capped by the host's nf_conntrack_max): every packet has a new source port
and a random destination in 198.18.0.0/15, so each is a new connection and a
new PAT binding. "new flows/s" is twinwall's \`conns_created\` counter (the
kernel's \`conntrack -C\`) over the middle of the flood; the client's
interface count says what the generator got out. hping3 sends one packet per
system call from one process, on the same 2 CPUs, so a figure marked
generator-bound measures hping3, not the device. RSS growth is VmRSS of the
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
