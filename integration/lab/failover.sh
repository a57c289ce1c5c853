#!/usr/bin/env bash
# The twinwall failover lab: two units (primary and secondary) in their own
# network namespaces, joined by a failover link, both units' ports bridged
# into an inside and an outside peer; a 1 kHz UDP stream and a 1 kHz TCP
# message stream run through PAT while the active unit is killed (kill -9;
# its TAPs vanish with it). Prints the UDP gap, the TCP stall, what was lost
# and whether the PAT port was kept. Then, with a second traffic stream
# running throughout (unless --quick):
#   rejoin    the killed unit restarts with its config (its TAPs go back into
#             the bridges under the same names) and must become standby-hot
#             while the survivor stays active;
#   failback  `twinwall failover active` on the rejoined unit: it must become
#             active, the other standby; the TCP connection survives and the
#             outside host sees the same PAT source port;
#   linkcut   fo0 of the standby is set down for --cut-s (2) s; both units'
#             roles are sampled every 20 ms: never both active, the failover
#             link shows FAILED, "FAILOVER LINK DOWN" is logged; then it recovers;
#   wrongkey  the standby is stopped (SIGTERM) and restarted with a copy of its
#             config with another key: "different key" in both logs, no state
#             accepted, and it must not go active while the active lives (that
#             last check only prints "CORE BUG" for now: the core's guard is
#             being added); then it restarts with the right key and rejoins.
#
#   tw-fa   unit A (primary config):   fo0 169.254.73.1/24 + its two TAPs (moved out)
#   tw-fb   unit B (secondary config): fo0 169.254.73.2/24 + its two TAPs (moved out)
#   tw-in   br0 = fa-in + fb-in (both units' inside TAPs); 192.168.10.10/24,
#           default via 192.168.10.1; the traffic client
#   tw-out  br0 = fa-out + fb-out; 203.0.113.254/24, 198.51.100.80/32 on lo;
#           the echo server. No namespace has a route out of the machine.
#
# Usage: sudo integration/lab/failover.sh [options]
#   --bin PATH          twinwall binary (default: cargo build --release)
#   --poll-ms N         rewrite poll_ms in the [failover] sections of copies of the configs
#   --hold-ms N         likewise hold_ms
#   --max-gap-ms N      gap limit (default: the issue's for the timers: 50/250 300 ms,
#                       10/50 100 ms, 2/8 15 ms and TCP 25 ms; other timers: none)
#   --config-dir DIR    where primary.toml and secondary.toml are
#                       (default integration/lab/failover)
#   --after-kill S      traffic time after the kill (default 4)
#   --wait S            bound on waiting for roles and bulk sync (default 30)
#   --rate N            packets (and TCP messages) per second (default 1000)
#   --log-level L       twinwall's log level (default info)
#   --no-rt             run the traffic tools without SCHED_FIFO
#   --assume-active a|b development: don't wait for failover roles, take this unit
#                       as the active one (for configs without [failover])
#   --quick             only the kill-and-measure phase (RESULT2 says skipped=quick)
#   --soak IDLE:LOAD    instead of killing anything: IDLE seconds with only the 1 kHz
#                       probe streams, then LOAD seconds of bulk TCP downloads through
#                       the active as fast as they go; passes if no unit changed role
#                       (issue 6's false-failover check); prints RESULT_SOAK
#   --tune-host         for the run, give the kernel's softirq threads (ksoftirqd)
#                       SCHED_FIFO 5, restored at the end: the host tuning README
#                       recommends for 2/8 ms timers beside other work
#   --cut-s S           how long the failover link is cut (default 2)
#   --phase-wait S      bound on each wait for roles in the later phases (default 15)
#   --keep              leave the lab up at the end until Ctrl-C
#   --save DIR          copy the records (client.json, server.log, kill.json, result.json,
#                       the units' logs and configs) to DIR at the end
#   --no-firewall       no units: tw-in and tw-out on one segment (tw-out also holds
#                       192.168.10.1), traffic for --duration S (default 10), nothing
#                       killed; measures the traffic tools' own noise floor
# The kill phase ends with a line
#   RESULT poll_ms=.. hold_ms=.. udp_gap_ms=.. udp_lost=.. tcp_stall_ms=.. tcp_survived=.. pat_port_kept=..
# and the output with
#   RESULT2 rejoin=ok rejoin_gap_ms=.. failback=ok failback_gap_ms=.. failback_tcp_survived=yes
#           failback_pat_port_kept=yes linkcut_dual_active=no linkcut_link_failed=a+b ...
#           wrongkey_error_both=yes wrongkey_state=0 wrongkey_went_active=no wrongkey_restore=ok ...
#           stall=ok stall_takeover_ms=.. stall_gap_ms=.. stall_tcp_survived=yes
# (one gap figure per event: the longest interval without a UDP echo in its window).
# Exit status: 0 if the TCP connection survived, no datagram was lost outside
# the gap, the PAT port was kept and the gap is within the limit, and every
# mandatory later check passed (FAIL lines name those that did not); 1 if
# not; 2 if the lab could not be set up (then RESULT has error=...).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3
M="$here/measure.py"

bin="" poll="" hold="" max_gap="" cfgdir="$here/failover" after_kill=4 wait_s=30 rate=1000
loglevel=info rt=10 assume="" keep=0 nofw=0 duration=10 save="" quick=0 cut_s=2 phase_wait=15 soak="" tune_host=0
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --poll-ms) poll=$2; shift 2 ;;
        --hold-ms) hold=$2; shift 2 ;;
        --max-gap-ms) max_gap=$2; shift 2 ;;
        --config-dir) cfgdir=$(cd "$2" && pwd) || exit 2; shift 2 ;;
        --after-kill) after_kill=$2; shift 2 ;;
        --wait) wait_s=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --log-level) loglevel=$2; shift 2 ;;
        --no-rt) rt=0; shift ;;
        --assume-active) assume=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --quick) quick=1; shift ;;
        --soak) soak=$2; shift 2 ;;
        --tune-host) tune_host=1; shift ;;
        --cut-s) cut_s=$2; shift 2 ;;
        --phase-wait) phase_wait=$2; shift 2 ;;
        --save) save=$2; shift 2 ;;
        --no-firewall) nofw=1; shift ;;
        --duration) duration=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

# Figures for the RESULT line when the lab cannot get as far as a measurement.
eff_poll=${poll:-50} eff_hold=${hold:-250}
# die CODE MESSAGE: the lab could not measure; CODE goes into the RESULT line.
die() {
    local code=$1
    shift
    echo "failover lab: $*" >&2
    echo "RESULT poll_ms=$eff_poll hold_ms=$eff_hold udp_gap_ms=na udp_lost=na tcp_stall_ms=na tcp_survived=na pat_port_kept=na error=$code"
    exit 2
}

lab_need_root "the failover lab"
command -v bridge >/dev/null || die no-bridge-cmd "iproute2's bridge command is missing"
[ -x $PY ] || die no-python "$PY is missing"

LAB_DIR=$(mktemp -d /tmp/twinwall-failover.XXXXXX)
killed_sock=""
tuned_pids=()
cleanup() {
    lab_cleanup
    local p
    for p in "${tuned_pids[@]}"; do chrt -o -p 0 "$p" 2>/dev/null; done
    if [ -n "$save" ]; then
        mkdir -p "$save" && cp -p "$LAB_DIR"/*.json "$LAB_DIR"/*.log "$LAB_DIR"/*.out "$LAB_DIR"/*.toml "$LAB_DIR"/*.txt "$save"/ 2>/dev/null
        echo "records saved in $save"
    fi
    # A unit killed with -9 leaves its control socket behind.
    [ -n "$killed_sock" ] && [ -S "$killed_sock" ] && rm -f "$killed_sock"
    rm -rf "$LAB_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ $tune_host = 1 ]; then
    for p in $(pgrep -x 'ksoftirqd/[0-9]+'); do
        # Only threads still at the default policy, so the restore is exact.
        chrt -p "$p" | grep -q SCHED_OTHER && chrt -f -p 5 "$p" && tuned_pids+=("$p")
    done
    echo "== host tuning: ksoftirqd ${tuned_pids[*]:-(none changed)} at SCHED_FIFO 5 until the end of the run"
fi

# lab_bridge NS: br0 without STP or forwarding delay, flooding all multicast
# (the units' hellos on the data interfaces are multicast).
lab_bridge() {
    ip -n "$1" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    # A bridge takes the lowest MAC of its ports unless given one: when the
    # dead unit's TAP leaves, the "router" would change MAC under the
    # survivor's replicated ARP entry. Real routers keep theirs.
    ip -n "$1" link set br0 address "$2"
    ip -n "$1" link set br0 up
}

# Start the traffic: echo server in tw-out, client in tw-in. Sets srv_pid, cli_pid.
start_traffic() {
    local bound=$1
    lab_spawn_as srv_pid tw-out "$LAB_DIR/server.out" $PY "$M" server --addr 198.51.100.80 \
        --udp-port 5002 --tcp-port 5003 --log "$LAB_DIR/server.log" --rt "$rt"
    lab_wait 5 grep -q listening "$LAB_DIR/server.log" || { cat "$LAB_DIR/server.out"; die server-start "echo server did not start"; }
    lab_spawn_as cli_pid tw-in "$LAB_DIR/client.out" $PY "$M" client --udp 198.51.100.80:5002 \
        --tcp 198.51.100.80:5003 --rate "$rate" --duration "$bound" --out "$LAB_DIR/client.json" --rt "$rt"
    lab_wait 15 grep -q "client ready" "$LAB_DIR/client.out" || { cat "$LAB_DIR/client.out"; die client-start "traffic client did not start"; }
}

# Stop the client (SIGUSR1: stop sending, collect late echoes, write JSON); bounded.
stop_traffic() {
    kill -USR1 "$cli_pid" 2>/dev/null
    local i
    for ((i = 0; i < 150; i++)); do kill -0 "$cli_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$cli_pid" 2>/dev/null
    cat "$LAB_DIR/client.out"
    [ -s "$LAB_DIR/client.json" ] || die client-results "traffic client wrote no results"
}

lab_netns_check() {
    local n
    for n in "$@"; do
        if ip netns list | grep -qw "$n"; then
            echo "namespace $n exists already (another lab running?); it will be replaced" >&2
        fi
    done
}

if [ $nofw = 1 ]; then
    # The traffic tools alone: tw-in and tw-out on one L2 segment via a veth.
    lab_netns_check tw-in tw-out
    lab_netns tw-in tw-out
    lab_bridge tw-in 02:00:00:00:01:fe; lab_bridge tw-out 02:00:00:00:02:fe
    ip link add nf-in netns tw-in type veth peer name nf-out netns tw-out
    ip -n tw-in link set nf-in master br0 up
    ip -n tw-out link set nf-out master br0 up
    ip -n tw-in addr add 192.168.10.10/24 dev br0
    ip -n tw-in route add default via 192.168.10.1
    ip -n tw-out addr add 192.168.10.1/24 dev br0
    ip -n tw-out addr add 203.0.113.254/24 dev br0
    ip -n tw-out addr add 198.51.100.80/32 dev lo
    echo "== no firewall: traffic tools only, $duration s at $rate/s"
    start_traffic "$duration"
    t_from=$($PY "$M" now)
    for ((i = 0; i < ${duration%.*} * 10 + 100; i++)); do kill -0 "$cli_pid" 2>/dev/null || break; sleep 0.1; done
    stop_traffic
    $PY "$M" report --client "$LAB_DIR/client.json" --server-log "$LAB_DIR/server.log" --from "$t_from" \
        --poll-ms "$eff_poll" --hold-ms "$eff_hold" --max-gap-ms "${max_gap:-50}"
    exit $?
fi

if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --quiet) || exit 2
    bin="$repo/target/x86_64-unknown-linux-gnu/release/twinwall"
fi
[ -x "$bin" ] || die no-binary "no twinwall binary at $bin"

# Copies of the two configs, timers applied, relative key_file made absolute.
for u in primary secondary; do
    [ -f "$cfgdir/$u.toml" ] || die missing-config "missing config $cfgdir/$u.toml"
    c="$LAB_DIR/$u.toml"
    cp "$cfgdir/$u.toml" "$c"
    sed -i -E "s|^([[:space:]]*key_file[[:space:]]*=[[:space:]]*\")([^/\"][^\"]*)\"|\1$cfgdir/\2\"|" "$c"
    for kv in "poll_ms=$poll" "hold_ms=$hold"; do
        k=${kv%%=*} v=${kv#*=}
        [ -n "$v" ] || continue
        if sed -n '/^\[failover\]/,/^\[/p' "$c" | grep -qE "^[[:space:]]*$k[[:space:]]*="; then
            sed -i -E "/^\[failover\]/,/^\[/ s/^([[:space:]]*$k[[:space:]]*=[[:space:]]*)[0-9_]+/\1$v/" "$c"
        else
            sed -i -E "/^\[failover\]/a $k = $v" "$c"
        fi
    done
done
# What the lab needs to know from the configs, as shell assignments.
cfgvars() {
    $PY - "$1" <<'EOF'
import shlex, sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
fo = c.get("failover", {})
ifs = {i.get("name"): i for i in c.get("interface", [])}
v = {
    "sock": c.get("appliance", {}).get("control_socket", ""),
    "poll": fo.get("poll_ms", 50),
    "hold": fo.get("hold_ms", 250),
    "fo_if": fo.get("interface", "fo0"),
    "fo_local": fo.get("local", ""),
    "tap_in": ifs.get("inside", {}).get("tap", "tw-inside"),
    "tap_out": ifs.get("outside", {}).get("tap", "tw-outside"),
}
for k, x in v.items():
    print("%s=%s" % (k, shlex.quote(str(x))))
EOF
}
eval "$(cfgvars "$LAB_DIR/primary.toml")" || die config-unreadable "cannot read $LAB_DIR/primary.toml"
sock_a=$sock fo_a=$fo_local tap_in_a=$tap_in tap_out_a=$tap_out fo_if_a=$fo_if eff_poll=$poll eff_hold=$hold
eval "$(cfgvars "$LAB_DIR/secondary.toml")" || die config-unreadable "cannot read $LAB_DIR/secondary.toml"
sock_b=$sock fo_b=$fo_local tap_in_b=$tap_in tap_out_b=$tap_out fo_if_b=$fo_if
[ "$poll" = "$eff_poll" ] && [ "$hold" = "$eff_hold" ] || die config-timers-differ "the two configs' timers differ"
# Per unit (a = primary config in tw-fa, b = secondary config in tw-fb).
declare -A NS=([a]=tw-fa [b]=tw-fb) PFX=([a]=fa [b]=fb) CFG=([a]="$LAB_DIR/primary.toml" [b]="$LAB_DIR/secondary.toml")
declare -A SOCK=([a]=$sock_a [b]=$sock_b) TIN=([a]=$tap_in_a [b]=$tap_in_b) TOUT=([a]=$tap_out_a [b]=$tap_out_b)
declare -A FOIF=([a]=$fo_if_a [b]=$fo_if_b) LOG=([a]="$LAB_DIR/a.log" [b]="$LAB_DIR/b.log") PID=()
# attach_taps U: wait (bounded) for unit U's two TAPs in its namespace, move
# them into the bridges as PFX-in and PFX-out. Used at start and on every restart.
attach_taps() {
    local u=$1 x
    for x in "${TIN[$u]} ${PFX[$u]}-in tw-in" "${TOUT[$u]} ${PFX[$u]}-out tw-out"; do
        set -- $x
        lab_wait 10 ip -n "${NS[$u]}" link show "$1" || return 1
        ip -n "${NS[$u]}" link set "$1" netns "$3" name "$2" || return 1
        ip -n "$3" link set "$2" master br0 up || return 1
    done
}
[ -n "$sock_a" ] && [ -n "$sock_b" ] && [ "$sock_a" != "$sock_b" ] || die config-sockets "the units need two different control sockets"
echo "== timers: poll_ms=$eff_poll hold_ms=$eff_hold; configs in $LAB_DIR"
for u in primary secondary; do
    "$bin" check -c "$LAB_DIR/$u.toml" || die config-check "twinwall check failed on $u.toml"
done

lab_netns_check tw-fa tw-fb tw-in tw-out
lab_netns tw-fa tw-fb tw-in tw-out
lab_failover_link tw-fa "$fo_if_a" "${fo_a:-169.254.73.1}" tw-fb "$fo_if_b" "${fo_b:-169.254.73.2}"
lab_bridge tw-in 02:00:00:00:01:fe; lab_bridge tw-out 02:00:00:00:02:fe

# Both units start together: the primary should become active.
lab_spawn_as pid_a tw-fa "$LAB_DIR/a.log" "$bin" run -c "$LAB_DIR/primary.toml" --log-level "$loglevel"
lab_spawn_as pid_b tw-fb "$LAB_DIR/b.log" "$bin" run -c "$LAB_DIR/secondary.toml" --log-level "$loglevel"
PID[a]=$pid_a PID[b]=$pid_b
for u in a b; do
    if ! attach_taps $u; then
        echo "== unit A log"; cat "$LAB_DIR/a.log"; echo "== unit B log"; cat "$LAB_DIR/b.log"
        die no-tap "${NS[$u]} did not create ${TIN[$u]} and ${TOUT[$u]}"
    fi
done
ip -n tw-in addr add 192.168.10.10/24 dev br0
ip -n tw-in route add default via 192.168.10.1
ip -n tw-out addr add 203.0.113.254/24 dev br0
ip -n tw-out addr add 198.51.100.80/32 dev lo
echo "== bridges"; bridge -n tw-in link; bridge -n tw-out link

show_json() { "$bin" show failover --json --socket "$1" >"$2" 2>"$2.err" || : >"$2"; }
# Roles: wait (bounded) until some unit is active, so the TCP connection can open.
state() {
    show_json "$sock_a" "$LAB_DIR/fa.json"; show_json "$sock_b" "$LAB_DIR/fb.json"
    $PY "$M" ready "$LAB_DIR/fa.json" "$LAB_DIR/fb.json"
}
some_active() {
    show_json "$sock_a" "$LAB_DIR/fa.json"; show_json "$sock_b" "$LAB_DIR/fb.json"
    grep -q '"role": *"active"' "$LAB_DIR/fa.json" "$LAB_DIR/fb.json"
}
if [ -z "$assume" ]; then
    lab_wait "$wait_s" some_active || { state; tail -20 "$LAB_DIR/a.log" "$LAB_DIR/b.log"; die no-active "no unit became active within $wait_s s"; }
fi
# A soak keeps the probes running for all of it.
soak_s=0
[ -n "$soak" ] && soak_s=$(( ${soak%%:*} + ${soak##*:} ))
start_traffic $((wait_s + after_kill + 30 + soak_s))
if [ -n "$assume" ]; then
    active=$assume
    echo "== --assume-active $assume: not waiting for failover roles"
else
    t0=$EPOCHREALTIME
    if ! lab_wait "$wait_s" state; then
        state
        echo "== unit A log (tail)"; tail -30 "$LAB_DIR/a.log"; echo "== unit B log (tail)"; tail -30 "$LAB_DIR/b.log"
        die not-ready "roles and bulk sync not ready within $wait_s s"
    fi
    active=$(state)
    echo "== ready after $($PY -c "print('%.1f' % ($EPOCHREALTIME - $t0))") s: unit $active active, the other standby with bulk sync done"
fi
if [ "$active" = a ]; then
    victim=$pid_a survivor_sock=$sock_b survivor_log="$LAB_DIR/b.log" vs=fa killed_sock=$sock_a
else
    victim=$pid_b survivor_sock=$sock_a survivor_log="$LAB_DIR/a.log" vs=fb killed_sock=$sock_b
fi
echo "== show failover on the active (before the kill)"; "$bin" show failover --socket "$([ $active = a ] && echo "$sock_a" || echo "$sock_b")"
if [ -n "$soak" ]; then
    soak_idle=${soak%%:*} soak_load=${soak##*:}
    roles_before=$(cat "$LAB_DIR/a.log" "$LAB_DIR/b.log" | grep -c "role " || true)
    echo "== soak: ${soak_idle} s idle (1 kHz probes only)"
    sleep "$soak_idle"
    echo "== soak: ${soak_load} s of bulk TCP downloads through the active"
    lab_spawn_as bulk_pid tw-out "$LAB_DIR/bulk-server.out" $PY "$here/peers.py" blob-server 5010 200000000
    lab_wait 5 ip netns exec tw-out $PY -c 'import socket; socket.create_connection(("198.51.100.80", 5010), 1)'
    soak_end=$((SECONDS + soak_load)) downloads=0
    while [ $SECONDS -lt $soak_end ]; do
        ip netns exec tw-in timeout 60 $PY "$here/peers.py" blob-client 198.51.100.80 5010 >/dev/null 2>&1 &
        c1=$!
        ip netns exec tw-in timeout 60 $PY "$here/peers.py" blob-client 198.51.100.80 5010 >/dev/null 2>&1
        wait $c1
        downloads=$((downloads + 2))
    done
    roles_after=$(cat "$LAB_DIR/a.log" "$LAB_DIR/b.log" | grep -c "role " || true)
    changes=$((roles_after - roles_before))
    grep -h "role " "$LAB_DIR/a.log" "$LAB_DIR/b.log" | tail -n "$changes" | sed 's/^/   /' || true
    alive=$(kill -0 "$cli_pid" 2>/dev/null && echo yes || echo no)
    stop_traffic
    # "client done: udp S sent E echoed, tcp S sent E echoed, ...": probes
    # lost over the whole soak.
    done_line=$(grep "client done" "$LAB_DIR/client.out" | tail -n 1)
    echo "   probes: ${done_line:-no summary from the client}"
    lost=$(sed -n 's/.*udp \([0-9]*\) sent \([0-9]*\) echoed, tcp \([0-9]*\) sent \([0-9]*\) echoed.*/\1 \2 \3 \4/p' <<<"$done_line" |
        awk '{print ($1-$2) + ($3-$4)}')
    echo "RESULT_SOAK poll_ms=$eff_poll hold_ms=$eff_hold idle_s=$soak_idle load_s=$soak_load downloads_200MB=$downloads role_changes=$changes probes_alive=$alive probes_lost=${lost:-na}"
    [ "$changes" = 0 ] && [ "$alive" = yes ] && exit 0 || exit 1
fi
t_from=$($PY "$M" now)
sleep 2
kill -0 "$cli_pid" 2>/dev/null || { cat "$LAB_DIR/client.out"; die client-died "traffic client died before the kill"; }
echo "== kill -9 unit $active (pid $victim)"
$PY "$M" kill --pid "$victim" --out "$LAB_DIR/kill.json" --gone "tw-in/$vs-in" --gone "tw-out/$vs-out"
wait "$victim" 2>/dev/null
lab_forget "$victim"
echo "== bridges after the kill (the dead unit's ports should be gone)"
bridge -n tw-in link; bridge -n tw-out link
sleep "$after_kill"
stop_traffic

echo "== show failover on the survivor"
"$bin" show failover --socket "$survivor_sock" || echo "(no answer from the survivor)"
show_json "$survivor_sock" "$LAB_DIR/survivor.json"
"$bin" show counters --json --socket "$survivor_sock" >"$LAB_DIR/survivor-counters.json" 2>&1 || true
"$bin" show conn --socket "$survivor_sock" >"$LAB_DIR/survivor-conn.txt" 2>&1 || true
echo "survivor's role: $($PY -c 'import json,sys; print(json.load(open(sys.argv[1])).get("role","?"))' "$LAB_DIR/survivor.json" 2>/dev/null || echo unknown)"
echo "== survivor's log about the takeover"
grep -iE 'takeover|take over|role|active|standby|failover|peer|garp|gratuitous' "$survivor_log" | tail -30
$PY "$M" report --client "$LAB_DIR/client.json" --server-log "$LAB_DIR/server.log" --kill "$LAB_DIR/kill.json" \
    --from "$t_from" --poll-ms "$eff_poll" --hold-ms "$eff_hold" ${max_gap:+--max-gap-ms "$max_gap"} \
    --json "$LAB_DIR/result.json"
rc=$?
# The survivor's own account of the takeover, step by step (issue 6).
echo "TAKEOVER $(grep -h 'takeover done:' "$survivor_log" | tail -n 1 | sed 's/.*takeover done: //')"

keep_up() {
    if [ $keep = 1 ]; then
        echo "lab is up; Ctrl-C to tear it down"
        while :; do sleep 1; done
    fi
}
if [ $quick = 1 ] || [ -n "$assume" ]; then
    [ -n "$assume" ] && echo "== --assume-active: no later phases (they need failover roles)"
    echo "RESULT2 skipped=$([ $quick = 1 ] && echo quick || echo assume-active)"
    keep_up
    exit $rc
fi

# ---------------------------------------------------------------- later phases
# A second traffic stream (new UDP socket, new TCP connection) runs through
# all of them; measure.py phases cuts it into one window per event.
K=$active                       # the killed unit: rejoins, then takes the role back
S=$([ "$K" = a ] && echo b || echo a)   # the survivor: active, then standby
FACTS="$LAB_DIR/facts.txt"
: >"$FACTS"
fact() { echo "$1=$2" >>"$FACTS"; }
fact killed "$K"
fact survivor "$S"
mono() { $PY "$M" now; }
# window NAME FROM TO T: a traffic window for the report (FROM, TO, T monotonic s).
# Also records each unit's role changes (from its log) since the last window
# as roles_NAME_U=from>to,... and starts counting afresh.
declare -A OFF=([a]=0 [b]=0)
mark() { OFF[a]=$(log_lines a) OFF[b]=$(log_lines b); }
window() {
    local u
    echo "window $1 $2 $3 $4" >>"$FACTS"
    for u in a b; do
        fact "roles_$1_$u" "$(log_since $u "${OFF[$u]}" | sed -nE 's/.*failover: role ([a-z-]+) -> ([a-z-]+):.*/\1>\2/p' | paste -sd, -)"
    done
    mark
}
minus() { $PY -c "import sys; print('%.6f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$1" "$2"; }
socks=(--sock "a=${SOCK[a]}" --sock "b=${SOCK[b]}")
# start_unit U CONFIG LOG: (re)start unit U in its namespace; its TAPs go back into the bridges.
start_unit() {
    lab_spawn_as "PID[$1]" "${NS[$1]}" "$3" "$bin" run -c "$2" --log-level "$loglevel"
    LOG[$1]=$3
    OFF[$1]=0
    attach_taps "$1"
}
# stop_unit U: SIGTERM by PID, bounded wait (3 s), then SIGKILL; reaped and forgotten.
stop_unit() {
    local p=${PID[$1]} i
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 30; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
        echo "unit $1 (pid $p) still running 3 s after SIGTERM; SIGKILL" >&2
        kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    lab_forget "$p"
    PID[$1]=""
}
# log_lines U: lines in unit U's current log; log_since U N: what follows line N.
log_lines() { wc -l <"${LOG[$1]}" 2>/dev/null || echo 0; }
log_since() { tail -n +"$(($2 + 1))" "${LOG[$1]}" 2>/dev/null; }
show_both() {
    local u
    for u in a b; do
        echo "-- unit $u: $($PY "$M" show --sock "${SOCK[$u]}" "show failover" 2>&1 | sed -n '2,3p' | tr '\n' ';')"
    done
}
# end_phases [ERROR]: stop the second stream, print the report, exit with the combined status.
end_phases() {
    [ -n "${1:-}" ] && fact error "$1"
    if [ -n "${cli2_pid:-}" ]; then
        kill -USR1 "$cli2_pid" 2>/dev/null
        local i
        for ((i = 0; i < 150; i++)); do kill -0 "$cli2_pid" 2>/dev/null || break; sleep 0.1; done
        wait "$cli2_pid" 2>/dev/null
        lab_forget "$cli2_pid"
        cat "$LAB_DIR/client2.out"
    fi
    $PY "$M" phases --facts "$FACTS" --client "$LAB_DIR/client2.json" --server-log "$LAB_DIR/server.log" \
        --json "$LAB_DIR/result2.json"
    local rc2=$?
    keep_up
    [ $rc != 0 ] && exit $rc
    exit $rc2
}

echo
echo "== second traffic stream for the later phases"
lab_spawn_as cli2_pid tw-in "$LAB_DIR/client2.out" $PY "$M" client --udp 198.51.100.80:5002 \
    --tcp 198.51.100.80:5003 --rate "$rate" --duration 300 --out "$LAB_DIR/client2.json" --rt "$rt"
lab_wait 15 grep -q "client ready" "$LAB_DIR/client2.out" || { cat "$LAB_DIR/client2.out"; end_phases client2-start; }
sleep 0.5

# 1. Rejoin: the killed unit restarts with its config and must settle as a
# hot standby while the survivor stays active.
mark
phases_run=rejoin
fact phases_run "$phases_run"
echo "== rejoin: restart unit $K (${CFG[$K]##*/}) in ${NS[$K]}"
t_ev=$(mono)
start_unit "$K" "${CFG[$K]}" "$LAB_DIR/$K-rejoin.log" || end_phases "no-tap-on-restart-$K"
$PY "$M" wait-roles "${socks[@]}" --want "$K=standby-hot" --want "$S=active" --keep "$S=active" \
    --stable 0.2 --timeout "$phase_wait" --since "$t_ev" --out "$LAB_DIR/rejoin-roles.json"
case $? in 0) fact rejoin_roles ok ;; 3) fact rejoin_roles survivor-not-kept-active ;; *)
    fact rejoin_roles "$(grep -q '"violations": \[\]' "$LAB_DIR/rejoin-roles.json" && echo timeout || echo survivor-not-kept-active)" ;; esac
fact rejoin_ms "$($PY "$M" jget "$LAB_DIR/rejoin-roles.json" elapsed_ms)"
sleep 1
window rejoin "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both

# 2. Failback: `twinwall failover active` on the rejoined unit; the survivor
# hears its claim, yields (standby-cold), takes a bulk sync and gets hot.
phases_run+=,failback
fact phases_run "$phases_run"
echo "== failback: twinwall failover active --socket ${SOCK[$K]}"
t_ev=$(mono)
if "$bin" failover active --socket "${SOCK[$K]}" >"$LAB_DIR/failback-cmd.out" 2>&1; then
    fact failback_cmd ok
else
    fact failback_cmd fail
    fact failback_cmd_msg "$(tr '\n ' '; ' <"$LAB_DIR/failback-cmd.out" | cut -c1-200)"
    cat "$LAB_DIR/failback-cmd.out"
fi
$PY "$M" wait-roles "${socks[@]}" --want "$K=active" --want "$S=standby-cold,standby-hot" \
    --timeout "$phase_wait" --since "$t_ev" --out "$LAB_DIR/failback-roles.json"
case $? in 0) fact failback_roles ok ;; *) fact failback_roles timeout ;; esac
fact failback_ms "$($PY "$M" jget "$LAB_DIR/failback-roles.json" elapsed_ms)"
# The next phases want a hot standby: wait for the old active's bulk sync.
$PY "$M" wait-roles "${socks[@]}" --want "$K=active" --want "$S=standby-hot" --keep "$K=active" \
    --stable 0.2 --timeout "$phase_wait" --since "$t_ev" --out "$LAB_DIR/failback-hot.json"
fact failback_peer_role "$($PY "$M" jget "$LAB_DIR/failback-hot.json" "last.$S.role")"
fact failback_hot_ms "$($PY "$M" jget "$LAB_DIR/failback-hot.json" elapsed_ms)"
sleep 1
window failback "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both

# 3. Failover link cut on the standby's side for --cut-s: the data-interface
# hellos still pass through the bridges, so neither unit may take over; both
# roles are sampled every 20 ms throughout.
phases_run+=,linkcut
fact phases_run "$phases_run"
echo "== failover link cut: ip -n ${NS[$S]} link set ${FOIF[$S]} down for $cut_s s"
off_a=$(log_lines a) off_b=$(log_lines b)
$PY "$M" watch "${socks[@]}" --interval 0.02 --duration "$($PY -c "print(0.3 + $cut_s + 1.0)")" \
    --out "$LAB_DIR/linkcut-watch.json" >"$LAB_DIR/linkcut-watch.out" 2>&1 &
watch_pid=$!
LAB_PIDS+=("$watch_pid")
sleep 0.3
t_ev=$(mono)
ip -n "${NS[$S]}" link set "${FOIF[$S]}" down
sleep "$cut_s"
ip -n "${NS[$S]}" link set "${FOIF[$S]}" up
# Taking fo0 down flushed its routes; put the multicast route back on both ends.
for u in a b; do ip -n "${NS[$u]}" route replace 224.0.0.0/4 dev "${FOIF[$u]}"; done
t_up=$(mono)
fact linkcut_t_down "$t_ev"
fact linkcut_t_up "$t_up"
for ((i = 0; i < 100; i++)); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null; lab_forget "$watch_pid"
cat "$LAB_DIR/linkcut-watch.out"
fact linkcut_watch linkcut-watch.json
$PY "$M" wait-roles "${socks[@]}" --want "$K=active" --want "$S=standby-hot" --keep "$K=active" \
    --link "a=up" --link "b=up" --stable 0.2 --timeout "$phase_wait" --since "$t_up" --out "$LAB_DIR/linkcut-recover.json"
case $? in 0) fact linkcut_recovered ok ;; 3) fact linkcut_recovered active-changed ;; *) fact linkcut_recovered timeout ;; esac
fact linkcut_recover_ms "$($PY "$M" jget "$LAB_DIR/linkcut-recover.json" elapsed_ms)"
loud=""
for u in a b; do
    off=$([ $u = a ] && echo "$off_a" || echo "$off_b")
    if log_since $u "$off" | grep -q "FAILOVER LINK DOWN"; then loud+=$u; fi
    log_since $u "$off" | grep -iE "failover link|role" | sed "s/^/   $u: /" | head -8
done
fact linkcut_log "$([ -n "$loud" ] && echo yes || echo no)"
fact linkcut_log_units "${loud:-none}"
window linkcut "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both

# 4. Wrong key: the standby restarts with a different failover key. Both
# sides must say so; it must accept no state and not take the role.
phases_run+=,wrongkey
fact phases_run "$phases_run"
wk_cfg="$LAB_DIR/$(basename "${CFG[$S]}" .toml)-wrong-key.toml"
cp "${CFG[$S]}" "$wk_cfg"
if grep -qE '^[[:space:]]*key[[:space:]]*=' "$wk_cfg"; then
    sed -i -E 's/^([[:space:]]*key[[:space:]]*=[[:space:]]*).*/\1"twinwall-lab-WRONG-key-9999"/' "$wk_cfg"
else
    echo "twinwall-lab-WRONG-key-9999" >"$LAB_DIR/wrong.key"; chmod 600 "$LAB_DIR/wrong.key"
    sed -i -E "s|^([[:space:]]*key_file[[:space:]]*=[[:space:]]*).*|\1\"$LAB_DIR/wrong.key\"|" "$wk_cfg"
fi
"$bin" check -c "$wk_cfg" >/dev/null || end_phases wrong-key-config-check
echo "== wrong key: stop unit $S (standby, pid ${PID[$S]}), restart it with ${wk_cfg##*/}"
off_k=$(log_lines "$K")
t_ev=$(mono)
stop_unit "$S"
obs=$($PY -c "print(max(2.0, 8 * $eff_hold / 1000))")
$PY "$M" watch "${socks[@]}" --interval 0.02 --duration "$($PY -c "print($obs + 1.5)")" \
    --out "$LAB_DIR/wrongkey-watch.json" >"$LAB_DIR/wrongkey-watch.out" 2>&1 &
watch_pid=$!
LAB_PIDS+=("$watch_pid")
start_unit "$S" "$wk_cfg" "$LAB_DIR/$S-wrong-key.log" || { kill "$watch_pid"; end_phases "no-tap-on-wrong-key-restart-$S"; }
for ((i = 0; i < 100; i++)); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null; lab_forget "$watch_pid"
cat "$LAB_DIR/wrongkey-watch.out"
lab_wait 2 grep -qi "different key" "${LOG[$S]}"
fact wrongkey_error_wrong "$(grep -qi "different key" "${LOG[$S]}" && echo yes || echo no)"
fact wrongkey_error_active "$(log_since "$K" "$off_k" | grep -qi "different key" && echo yes || echo no)"
echo "   $K (active):    $(log_since "$K" "$off_k" | grep -i "different key" | head -1)"
echo "   $S (wrong key): $(grep -i "different key" "${LOG[$S]}" | head -1)"
$PY "$M" show --sock "${SOCK[$S]}" "show failover --json" >"$LAB_DIR/wrongkey-failover.json" 2>/dev/null
$PY "$M" show --sock "${SOCK[$S]}" "show conn --json" >"$LAB_DIR/wrongkey-conn.json" 2>/dev/null
fact wrongkey_state "$($PY -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("na"); sys.exit()
c = d.get("counters", {})
print(c.get("ha-records-applied", 0))
' "$LAB_DIR/wrongkey-failover.json")"
fact wrongkey_key_mismatch_drops "$($PY "$M" jget "$LAB_DIR/wrongkey-failover.json" counters.ha-key-mismatch)"
fact wrongkey_conns "$($PY "$M" jget "$LAB_DIR/wrongkey-conn.json" in_use)"
wk=$($PY - "$LAB_DIR/wrongkey-watch.json" "$S" "$K" "$t_ev" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
w, k, t = s["units"][sys.argv[2]], s["units"][sys.argv[3]], float(sys.argv[4])
went = "no" if w["first_active_at"] is None else "yes"
detail = "" if went == "no" else "at stop%+.0fms, both active in %d of %d samples" % ((w["first_active_at"] - t) * 1000, s["dual_active"], s["samples"])
kept = "yes" if set(k["roles"]) == {"active"} else "no(" + ",".join(k["roles"]) + ")"
print(went, kept, detail.replace(" ", "_"))
PYEOF
)
read -r wk_went wk_kept wk_detail <<<"$wk"
fact wrongkey_went_active "${wk_went:-na}"
fact wrongkey_real_active_kept "${wk_kept:-na}"
[ -n "${wk_detail:-}" ] && fact wrongkey_went_active_detail "${wk_detail//_/ }"
if [ "${wk_went:-}" = yes ]; then
    echo "!! CORE BUG (reported, not yet failing the lab): the wrong-key unit $S became active while $K was active: ${wk_detail//_/ }"
fi
window wrongkey "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both
echo "== wrong key: restart unit $S with its own config"
t_ev=$(mono)
stop_unit "$S"
start_unit "$S" "${CFG[$S]}" "$LAB_DIR/$S-restore.log" || end_phases "no-tap-on-restore-$S"
$PY "$M" wait-roles "${socks[@]}" --want "$S=standby-hot" --want "$K=active" --keep "$K=active" \
    --stable 0.2 --timeout "$phase_wait" --since "$t_ev" --out "$LAB_DIR/restore-roles.json"
case $? in 0) fact wrongkey_restore ok ;; 3) fact wrongkey_restore active-not-kept ;; *) fact wrongkey_restore timeout ;; esac
sleep 0.5
window restore "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both

# 5. Stall: the active (K) is stopped (SIGSTOP, as a paused VM) for four
# hold times, then continued. The standby takes over meanwhile; when the
# stalled unit comes back it must yield to it (the newer state), not claim
# the role back as the primary, and the connection must go on.
phases_run+=,stall
fact phases_run "$phases_run"
stall_s=$($PY -c "print('%.3f' % (4 * $eff_hold / 1000.0))")
echo "== stall: SIGSTOP unit $K (pid ${PID[$K]}) for $stall_s s, then SIGCONT"
t_ev=$(mono)
kill -STOP "${PID[$K]}"
# Only the running unit's socket: the stopped one cannot answer.
$PY "$M" wait-roles --sock "$S=${SOCK[$S]}" --want "$S=active" --timeout "$phase_wait" --since "$t_ev" \
    --out "$LAB_DIR/stall-takeover.json" >/dev/null 2>&1
fact stall_takeover_ms "$($PY "$M" jget "$LAB_DIR/stall-takeover.json" elapsed_ms)"
sleep "$stall_s"
kill -CONT "${PID[$K]}"
t_cont=$(mono)
$PY "$M" wait-roles "${socks[@]}" --want "$S=active" --want "$K=standby-cold,standby-hot" --keep "$S=active" \
    --stable 0.3 --timeout "$phase_wait" --since "$t_cont" --out "$LAB_DIR/stall-roles.json"
case $? in 0) fact stall_roles ok ;; 3) fact stall_roles takeover-lost ;; *) fact stall_roles timeout ;; esac
sleep 0.5
window stall "$(minus "$t_ev" 0.2)" "$(mono)" "$t_ev"
show_both
end_phases
