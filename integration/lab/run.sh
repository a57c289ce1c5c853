#!/usr/bin/env bash
# The twinwall lab: the shipped appliance.toml between three peer networks,
# each in its own network namespace, with real traffic through it.
#
#   tw-in   192.168.10.10 (+ .20, the static-NAT host), gateway 192.168.10.1
#   tw-dmz  172.16.20.10 web server, gateway 172.16.20.1
#   tw-out  203.0.113.254 (the upstream router) and 198.51.100.80 (a server
#           "on the internet", on its loopback); no default route anywhere
#   tw-fw   the appliance; its TAP ports are moved into the three peers
#
# Usage: sudo integration/lab/run.sh [--bin PATH] [--keep]
#   --bin   twinwall binary (default: build it with cargo, release)
#   --keep  leave the lab up after the checks until Ctrl-C, to explore:
#           sudo ip netns exec tw-in ping 198.51.100.80
#           sudo target/x86_64-unknown-linux-gnu/release/twinwall show conn -c appliance.toml
# Exit status: the number of failed checks (0 = all passed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"

bin="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
lab_need_root "the lab"
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --quiet) || exit 2
    bin="$repo/target/x86_64-unknown-linux-gnu/release/twinwall"
fi
cfg="$repo/appliance.toml"
sock=$(sed -n 's/^control_socket *= *"\(.*\)".*/\1/p' "$cfg")
LAB_DIR=$(mktemp -d /tmp/twinwall-lab.XXXXXX)
PY=/usr/bin/python3
trap 'lab_cleanup; rm -rf "$LAB_DIR"' EXIT
trap 'exit 130' INT TERM

bash "$here/install-peers.sh" >/dev/null || { echo "could not install the lab packages" >&2; exit 2; }
"$bin" check -c "$cfg" || exit 2
lab_netns tw-fw tw-in tw-dmz tw-out
fw_pid=$(lab_spawn tw-fw "$LAB_DIR/fw.log" "$bin" run -c "$cfg" --log-level debug)
for t in tw-inside tw-outside tw-dmz; do
    lab_wait 10 ip -n tw-fw link show "$t" || { echo "twinwall did not create $t:"; cat "$LAB_DIR/fw.log"; exit 2; }
done
ip -n tw-fw link set tw-inside netns tw-in
ip -n tw-fw link set tw-dmz netns tw-dmz
ip -n tw-fw link set tw-outside netns tw-out
ip -n tw-in addr add 192.168.10.10/24 dev tw-inside
ip -n tw-in addr add 192.168.10.20/24 dev tw-inside
ip -n tw-in link set tw-inside up
ip -n tw-in route add default via 192.168.10.1
ip -n tw-dmz addr add 172.16.20.10/24 dev tw-dmz
ip -n tw-dmz link set tw-dmz up
ip -n tw-dmz route add default via 172.16.20.1
ip -n tw-out addr add 203.0.113.254/24 dev tw-outside
ip -n tw-out addr add 198.51.100.80/32 dev lo
ip -n tw-out link set tw-outside up

blob=4000000
lab_spawn tw-out "$LAB_DIR/blob.log" $PY "$here/peers.py" blob-server 5001 $blob >/dev/null
lab_spawn tw-out "$LAB_DIR/udp.log" $PY "$here/peers.py" udp-echo 198.51.100.80 5002 >/dev/null
lab_spawn tw-out "$LAB_DIR/echo.log" $PY "$here/peers.py" line-echo 5003 >/dev/null
lab_spawn tw-dmz "$LAB_DIR/web.log" $PY "$here/peers.py" blob-server 80 100000 >/dev/null
# An HTTP server "on the internet", serving one file of random bytes.
mkdir -p "$LAB_DIR/www"
head -c 1000000 /dev/urandom >"$LAB_DIR/www/file.bin"
lab_spawn tw-out "$LAB_DIR/http.log" $PY -m http.server 8000 --bind 198.51.100.80 --directory "$LAB_DIR/www" >/dev/null
lab_wait 10 ip netns exec tw-out $PY -c 'import socket; socket.create_connection(("198.51.100.80", 5001), 1)'
lab_wait 10 ip netns exec tw-dmz $PY -c 'import socket; socket.create_connection(("172.16.20.10", 80), 1)'
lab_wait 10 ip netns exec tw-out $PY -c 'import socket; socket.create_connection(("198.51.100.80", 8000), 1)'

want_sha=$($PY "$here/peers.py" blob-sha $blob)
web_sha=$($PY "$here/peers.py" blob-sha 100000)
show() { "$bin" show "$@" --socket "$sock"; }

echo "== checks"
check "inside host pings the appliance" ip netns exec tw-in ping -c 2 -W 1 -i 0.2 192.168.10.1
check "inside host pings a server outside through PAT" ip netns exec tw-in ping -c 2 -W 1 -i 0.2 198.51.100.80
got=$(ip netns exec tw-in $PY "$here/peers.py" blob-client 198.51.100.80 5001 2>&1)
check "4 MB TCP download through PAT arrives intact ($got)" test "$got" = "$want_sha"
http_sha=$(ip netns exec tw-in curl -sf --max-time 10 http://198.51.100.80:8000/file.bin | sha256sum | cut -d' ' -f1)
check "HTTP fetch of 1 MB from an outside server through PAT arrives intact" test "$http_sha" = "$(sha256sum <"$LAB_DIR/www/file.bin" | cut -d' ' -f1)"
# An ICMP error through NAT: the outside server answers a closed UDP port
# with port unreachable; it must reach the inside host translated back, so
# its connected socket reports "connection refused".
got=$(ip netns exec tw-in $PY -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("198.51.100.80", 5999)); s.send(b"x")
try:
    s.recv(100); print("answered")
except ConnectionRefusedError: print("refused")
except socket.timeout: print("timeout")' 2>&1)
check "ICMP port unreachable from outside reaches the inside host through PAT ($got)" test "$got" = refused
got=$(ip netns exec tw-in $PY "$here/peers.py" udp-ping 198.51.100.80 5002 20 2>&1)
check "20 UDP round trips through PAT ($got/20)" test "$got" = 20
got=$(ip netns exec tw-out $PY "$here/peers.py" blob-client 203.0.113.1 8080 2>&1)
check "port forward 203.0.113.1:8080 reaches the DMZ web server" test "$got" = "$web_sha"
check "static NAT: outside pings 203.0.113.20 (inside 192.168.10.20)" ip netns exec tw-out ping -c 2 -W 1 -i 0.2 203.0.113.20
check "ACL: outside cannot open TCP to the static host" \
    bash -c "! ip netns exec tw-out timeout 3 $PY -c 'import socket; socket.create_connection((\"203.0.113.20\", 22), 2)'"
check "security levels: DMZ cannot reach inside" \
    bash -c "! ip netns exec tw-dmz ping -c 1 -W 1 192.168.10.10 >/dev/null"
check "DMZ host reaches outside through PAT" ip netns exec tw-dmz ping -c 1 -W 1 198.51.100.80
check "show conn lists the PAT'd connections" bash -c "'$bin' show conn --socket '$sock' | grep -q '198.51.100.80'"
counters=$(show counters --json)
echo "$counters" > "$LAB_DIR/counters.json"
check "counters: acl-deny counted" $PY -c "import json,sys; d=json.load(open('$LAB_DIR/counters.json')); sys.exit(0 if d['drops'].get('acl-deny',0) >= 1 else 1)"
check "counters: security-level drop counted" $PY -c "import json,sys; d=json.load(open('$LAB_DIR/counters.json')); sys.exit(0 if d['drops'].get('security-level',0) >= 1 else 1)"

# A reload (SIGHUP) keeps established connections: a TCP conversation runs
# across it and every line must come back.
ip netns exec tw-in $PY "$here/peers.py" ticker 198.51.100.80 5003 3 >"$LAB_DIR/ticker.log" 2>&1 &
ticker=$!
LAB_PIDS+=($ticker)
sleep 1
kill -HUP "$fw_pid"
wait "$ticker"
rc=$?
check "SIGHUP reload keeps a live TCP connection ($(cat "$LAB_DIR/ticker.log"))" test $rc = 0
check "reload logged" grep -qi "reload" "$LAB_DIR/fw.log"

echo "== show interface"; show interface
echo "== show route"; show route
echo "== show arp"; show arp
echo "== show xlate"; show xlate | head -20
echo "== show conn"; show conn | head -20
echo "== show counters"; show counters

if [ $keep = 1 ]; then
    echo "lab is up; Ctrl-C to tear it down"
    while kill -0 "$fw_pid" 2>/dev/null; do sleep 1; done
fi
kill -TERM "$fw_pid"
for _ in $(seq 50); do kill -0 "$fw_pid" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM: twinwall exits" bash -c "! kill -0 $fw_pid 2>/dev/null"
check "SIGTERM: control socket removed" test ! -e "$sock"
if [ $LAB_FAILS -gt 0 ]; then
    echo "== twinwall log (last 60 lines)"; tail -60 "$LAB_DIR/fw.log"
fi
echo "lab: $LAB_FAILS failed"
exit $LAB_FAILS
