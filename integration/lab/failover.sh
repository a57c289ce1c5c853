#!/usr/bin/env bash
# The twinwall failover lab: two units (primary and secondary) in their own
# network namespaces, joined by a failover link, both units' ports bridged
# into an inside and an outside peer; a 1 kHz UDP stream and a 1 kHz TCP
# message stream run through PAT while the active unit is killed (kill -9;
# its TAPs vanish with it). Prints the UDP gap, the TCP stall, what was lost
# and whether the PAT port was kept.
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
#   --keep              leave the lab up at the end until Ctrl-C
#   --save DIR          copy the records (client.json, server.log, kill.json, result.json,
#                       the units' logs and configs) to DIR at the end
#   --no-firewall       no units: tw-in and tw-out on one segment (tw-out also holds
#                       192.168.10.1), traffic for --duration S (default 10), nothing
#                       killed; measures the traffic tools' own noise floor
# Output ends with a line
#   RESULT poll_ms=.. hold_ms=.. udp_gap_ms=.. udp_lost=.. tcp_stall_ms=.. tcp_survived=.. pat_port_kept=..
# Exit status: 0 if the TCP connection survived, no datagram was lost outside
# the gap, the PAT port was kept and the gap is within the limit; 1 if not;
# 2 if the lab could not be set up (then RESULT has error=...).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3
M="$here/measure.py"

bin="" poll="" hold="" max_gap="" cfgdir="$here/failover" after_kill=4 wait_s=30 rate=1000
loglevel=info rt=10 assume="" keep=0 nofw=0 duration=10 save=""
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

[ "$(id -u)" = 0 ] || { echo "the failover lab needs root (network namespaces, TAP devices)" >&2; exit 2; }
[ -c /dev/net/tun ] || { echo "/dev/net/tun is missing" >&2; exit 2; }
command -v bridge >/dev/null || die no-bridge-cmd "iproute2's bridge command is missing"
[ -x $PY ] || die no-python "$PY is missing"

LAB_DIR=$(mktemp -d /tmp/twinwall-failover.XXXXXX)
killed_sock=""
cleanup() {
    lab_cleanup
    if [ -n "$save" ]; then
        mkdir -p "$save" && cp -p "$LAB_DIR"/*.json "$LAB_DIR"/*.log "$LAB_DIR"/*.out "$LAB_DIR"/*.toml "$save"/ 2>/dev/null
        echo "records saved in $save"
    fi
    # A unit killed with -9 leaves its control socket behind.
    [ -n "$killed_sock" ] && [ -S "$killed_sock" ] && rm -f "$killed_sock"
    rm -rf "$LAB_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
[ -n "$sock_a" ] && [ -n "$sock_b" ] && [ "$sock_a" != "$sock_b" ] || die config-sockets "the units need two different control sockets"
echo "== timers: poll_ms=$eff_poll hold_ms=$eff_hold; configs in $LAB_DIR"
for u in primary secondary; do
    "$bin" check -c "$LAB_DIR/$u.toml" || die config-check "twinwall check failed on $u.toml"
done

lab_netns_check tw-fa tw-fb tw-in tw-out
lab_netns tw-fa tw-fb tw-in tw-out
# The failover link: one veth, fo0 at both ends, multicast on.
ip link add "$fo_if_a" netns tw-fa type veth peer name "$fo_if_b" netns tw-fb
ip -n tw-fa addr add "${fo_a:-169.254.73.1}/24" dev "$fo_if_a"
ip -n tw-fb addr add "${fo_b:-169.254.73.2}/24" dev "$fo_if_b"
for x in "tw-fa $fo_if_a" "tw-fb $fo_if_b"; do
    set -- $x
    ip -n "$1" link set "$2" multicast on up
    ip -n "$1" route add 224.0.0.0/4 dev "$2"     # multicast hellos leave by the failover link
done
lab_bridge tw-in 02:00:00:00:01:fe; lab_bridge tw-out 02:00:00:00:02:fe

# Both units start together: the primary should become active.
lab_spawn_as pid_a tw-fa "$LAB_DIR/a.log" "$bin" run -c "$LAB_DIR/primary.toml" --log-level "$loglevel"
lab_spawn_as pid_b tw-fb "$LAB_DIR/b.log" "$bin" run -c "$LAB_DIR/secondary.toml" --log-level "$loglevel"
for x in "tw-fa $tap_in_a fa-in tw-in" "tw-fa $tap_out_a fa-out tw-out" \
         "tw-fb $tap_in_b fb-in tw-in" "tw-fb $tap_out_b fb-out tw-out"; do
    set -- $x
    if ! lab_wait 10 ip -n "$1" link show "$2"; then
        echo "== unit A log"; cat "$LAB_DIR/a.log"; echo "== unit B log"; cat "$LAB_DIR/b.log"
        die no-tap "$1 did not create $2"
    fi
    ip -n "$1" link set "$2" netns "$4" name "$3"
    ip -n "$4" link set "$3" master br0 up
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
start_traffic $((wait_s + after_kill + 30))
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
t_from=$($PY "$M" now)
sleep 2
kill -0 "$cli_pid" 2>/dev/null || { cat "$LAB_DIR/client.out"; die client-died "traffic client died before the kill"; }
echo "== kill -9 unit $active (pid $victim)"
$PY "$M" kill --pid "$victim" --out "$LAB_DIR/kill.json" --gone "tw-in/$vs-in" --gone "tw-out/$vs-out"
wait "$victim" 2>/dev/null
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
if [ $keep = 1 ]; then
    echo "lab is up (the survivor still runs); Ctrl-C to tear it down"
    while :; do sleep 1; done
fi
exit $rc
