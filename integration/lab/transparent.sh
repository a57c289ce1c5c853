#!/usr/bin/env bash
# The twinwall transparent failover lab: two units in transparent mode
# (integration/lab/transparent/*.toml, MAC aging cut to 2 s) between two
# Linux bridges standing in for switches, both units attached to both.
#
#   tw-ta    unit A (primary):   fo0 169.254.74.1/24 + its two TAPs (moved out)
#   tw-tb    unit B (secondary): fo0 169.254.74.2/24 + its two TAPs (moved out)
#   tw-tin   br0 = ta-in + tb-in; the host 192.168.10.10/24 (br0's MAC 02:00:00:00:01:fe)
#   tw-tout  br0 = ta-out + tb-out; the server 192.168.10.80/24 (02:00:00:00:02:fe)
#   One subnet: the pair is a bump in the wire. No namespace has a route
#   out of the machine.
#
# Checks: ping through the bridge keeps its TTL; the management address
# answers ping; the outside may ping the host (its ACL) but not open TCP
# to it. Then a TCP transfer with a pause in the middle: while it is paused
# the stations age out of the MAC tables (2 s), the active unit is killed
# with -9, and the bridges must reach the host and the server through the
# new active's ports before the transfer resumes (the switch refresh from
# the connection's endpoints: nothing else speaks during the pause); the
# transfer must finish with the right sha256; the frames on each segment
# around the takeover are counted (a storm would be thousands per second).
#
# Usage: sudo integration/lab/transparent.sh [--bin PATH] [--keep]
# Ends with a line
#   RESULT_T takeover_ms=.. fdb_in_ms=.. fdb_out_ms=.. refresh_frames=.. sha_ok=.. stall_ms=..
#            frames_in_2s=.. frames_out_2s=..
# Exit status: the number of failed checks (0 = all passed; 2 = no lab).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3
PB="$here/paused_blob.py"
M="$here/measure.py"

bin="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
lab_need_root "the transparent lab"
command -v bridge >/dev/null || { echo "iproute2's bridge command is missing" >&2; exit 2; }
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --quiet) || exit 2
    bin="$repo/target/x86_64-unknown-linux-gnu/release/twinwall"
fi
LAB_DIR=$(mktemp -d /tmp/twinwall-transparent.XXXXXX)
trap 'lab_cleanup; rm -rf "$LAB_DIR"' EXIT
trap 'exit 130' INT TERM

HOST_MAC=02:00:00:00:01:fe SERVER_MAC=02:00:00:00:02:fe
BYTES=20000000 PAUSE=12
declare -A NS=([a]=tw-ta [b]=tw-tb) PFX=([a]=ta [b]=tb) CFG=([a]=primary [b]=secondary) PID=() SOCK=()
for u in a b; do
    c="$LAB_DIR/${CFG[$u]}.toml"
    sed 's|^\[failover\]|[timeouts]\nmac = "2s"\n\n[failover]|' "$here/transparent/${CFG[$u]}.toml" >"$c"
    "$bin" check -c "$c" >/dev/null || { echo "twinwall check failed on $c"; exit 2; }
    SOCK[$u]=$(sed -n 's/^control_socket *= *"\(.*\)".*/\1/p' "$c")
done

lab_netns tw-ta tw-tb tw-tin tw-tout
lab_failover_link tw-ta fo0 169.254.74.1 tw-tb fo0 169.254.74.2
# Switches: no STP, no forwarding delay, multicast flooded (the units'
# hellos on the data interfaces), the default 300 s ageing.
for x in "tw-tin $HOST_MAC" "tw-tout $SERVER_MAC"; do
    set -- $x
    ip -n "$1" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$1" link set br0 address "$2"
    ip -n "$1" link set br0 up
done
for u in a b; do
    PID[$u]=$(lab_spawn "${NS[$u]}" "$LAB_DIR/$u.log" "$bin" run -c "$LAB_DIR/${CFG[$u]}.toml")
done
for u in a b; do
    for x in "tw-inside ${PFX[$u]}-in tw-tin" "tw-outside ${PFX[$u]}-out tw-tout"; do
        set -- $x
        lab_wait 10 ip -n "${NS[$u]}" link show "$1" || { cat "$LAB_DIR/$u.log"; echo "no TAP $1"; exit 2; }
        ip -n "${NS[$u]}" link set "$1" netns "$3" name "$2"
        ip -n "$3" link set "$2" master br0 up
    done
done
ip -n tw-tin addr add 192.168.10.10/24 dev br0
ip -n tw-tout addr add 192.168.10.80/24 dev br0

show_json() { "$bin" show failover --json --socket "${SOCK[$1]}" >"$LAB_DIR/f$1.json" 2>/dev/null || : >"$LAB_DIR/f$1.json"; }
ready() { show_json a; show_json b; $PY "$M" ready "$LAB_DIR/fa.json" "$LAB_DIR/fb.json"; }
lab_wait 30 ready || { ready; tail -20 "$LAB_DIR/a.log" "$LAB_DIR/b.log"; echo "the pair did not settle"; exit 2; }
active=$(ready)
standby=$([ "$active" = a ] && echo b || echo a)
echo "== unit $active active, unit $standby standby with its bulk sync done"

in_tin() { ip netns exec tw-tin "$@"; }
in_tout() { ip netns exec tw-tout "$@"; }
check "ping through the bridge, TTL kept (64)" bash -c "ip netns exec tw-tin ping -c 2 -W 1 192.168.10.80 | grep -q 'ttl=64'"
check "the management address answers ping" in_tin ping -c 1 -W 1 192.168.10.5
check "the outside may ping the host (outside ACL)" in_tout ping -c 1 -W 1 192.168.10.10
lab_spawn tw-tin "$LAB_DIR/echo.log" $PY "$here/peers.py" line-echo 2222 >/dev/null
sleep 0.3
check "the outside may not open TCP to the host (security levels)" \
    bash -c "! ip netns exec tw-tout timeout 3 $PY -c 'import socket; socket.create_connection((\"192.168.10.10\", 2222), timeout=2)' 2>/dev/null"
"$bin" show mac-address-table --socket "${SOCK[$active]}"

# The transfer: half, a pause (the MAC tables age out), the kill, the rest.
marks="$LAB_DIR/marks"
lab_spawn tw-tout "$LAB_DIR/server.log" $PY "$PB" server 192.168.10.80 5010 $BYTES $PAUSE "$marks" >/dev/null
lab_wait 5 grep -q listening "$marks" || { echo "server did not start"; exit 2; }
lab_spawn tw-tin "$LAB_DIR/client.log" $PY "$PB" client 192.168.10.80 5010 $BYTES "$LAB_DIR/client.json" >/dev/null
lab_wait 15 grep -q paused "$marks" || { cat "$LAB_DIR/client.log"; echo "the transfer did not start"; exit 2; }
sleep 3 # > 2 s MAC aging and the 1 s aging pass
"$bin" show mac-address-table --json --socket "${SOCK[$active]}" >"$LAB_DIR/mac.json"
check "the stations aged out of the active's MAC table during the pause" \
    bash -c "! grep -qi -e $HOST_MAC -e $SERVER_MAC '$LAB_DIR/mac.json'"
"$bin" show conn --socket "${SOCK[$standby]}" | grep -q "192.168.10.80:5010" && conn=yes || conn=no
check "the standby holds the connection" test $conn = yes
echo "== bridges before the kill"; bridge -n tw-tin fdb show br br0 | grep -i $SERVER_MAC; bridge -n tw-tout fdb show br br0 | grep -i $HOST_MAC
f_in0=$($PY "$PB" counters tw-tin br0 tb-in) f_out0=$($PY "$PB" counters tw-tout br0 tb-out)
t_kill=$($PY "$M" now)
kill -9 "${PID[$active]}"
wait "${PID[$active]}" 2>/dev/null
lab_forget "${PID[$active]}"
sb=${PFX[$standby]}
$PY "$PB" fdb-wait tw-tin "$sb-in" $SERVER_MAC "$t_kill" 5 >"$LAB_DIR/fdb_in" &
p_in=$!
$PY "$PB" fdb-wait tw-tout "$sb-out" $HOST_MAC "$t_kill" 5 >"$LAB_DIR/fdb_out"
wait $p_in
t_fdb=$($PY "$M" now)
fdb_in=$(cat "$LAB_DIR/fdb_in") fdb_out=$(cat "$LAB_DIR/fdb_out")
# Frames on each segment (rx + tx of the bridge ports still there), every
# 250 ms up to 2 s after the kill.
series=""
for _ in 1 2 3 4 5 6 7 8; do
    sleep 0.25
    series+=" $(( $($PY "$PB" counters tw-tin br0 tb-in) - f_in0 ))/$(( $($PY "$PB" counters tw-tout br0 tb-out) - f_out0 ))"
done
echo "== frames on the inside/outside segment since the kill, every 250 ms:$series"
f_in=$(( $($PY "$PB" counters tw-tin br0 tb-in) - f_in0 )) f_out=$(( $($PY "$PB" counters tw-tout br0 tb-out) - f_out0 ))
t_counted=$($PY "$M" now)
echo "== bridges after the takeover"; bridge -n tw-tin fdb show br br0 | grep -i $SERVER_MAC; bridge -n tw-tout fdb show br br0 | grep -i $HOST_MAC
resumed=$(lab_wait 10 grep -q resumed "$marks"; sed -n 's/^resumed //p' "$marks")
check "the bridges reach both stations through the new active before the transfer resumed" \
    $PY -c "import sys; sys.exit(not (float('$t_fdb') < float('${resumed:-0}')))"
check "the outside bridge reaches the host through the new active" test "$fdb_out" != never
check "the inside bridge reaches the server through the new active" test "$fdb_in" != never
for _ in $(seq 300); do [ -s "$LAB_DIR/client.json" ] && break; sleep 0.1; done
sha_ok=$($PY -c "import json; print('yes' if json.load(open('$LAB_DIR/client.json'))['sha_ok'] else 'no')" 2>/dev/null || echo no)
stall=$($PY -c "import json; print(json.load(open('$LAB_DIR/client.json'))['max_stall_ms'])" 2>/dev/null || echo na)
check "the transfer finished with the right sha256" test "$sha_ok" = yes
# The transfer is still paused while the frames are counted: they are the
# takeover's own (hellos, the refresh, ARP), which a storm would swamp.
check "the frames were counted while the transfer was still paused" \
    $PY -c "import sys; sys.exit(not (float('$t_counted') < float('${resumed:-0}')))"
check "at most 200 frames on each segment in the 2 s after the kill (no storm)" test "$f_in" -le 200 -a "$f_out" -le 200
show_json $standby
takeover=$($PY "$M" jget "$LAB_DIR/f$standby.json" last_takeover.detect_us 2>/dev/null || echo na)
refresh=$(grep -o "switch refresh: [0-9]* frames" "$LAB_DIR/$standby.log" | head -1 | grep -o "[0-9]*" || echo na)
check "the takeover logged its switch refresh" test "$refresh" != na
echo "== the survivor"; "$bin" show failover --socket "${SOCK[$standby]}" | head -20
"$bin" show counters --socket "${SOCK[$standby]}"
grep -h "takeover" "$LAB_DIR/$standby.log" | tail -2
echo "RESULT_T takeover_detect_us=$takeover fdb_in_ms=$fdb_in fdb_out_ms=$fdb_out refresh_frames=$refresh sha_ok=$sha_ok stall_ms=$stall frames_in_2s=$f_in frames_out_2s=$f_out failed=$LAB_FAILS"
if [ $keep = 1 ]; then
    echo "lab up; Ctrl-C to end"
    while sleep 3600; do :; done
fi
exit $LAB_FAILS
