#!/usr/bin/env bash
# The Linux HA stack killed the way integration/lab/failover.sh kills a
# twinwall unit: two routers in namespaces with nftables SNAT, a stateful
# forward chain and conntrack, conntrackd (FTFW) syncing over a dedicated
# link, keepalived (VRRPv3) holding the inside and outside addresses; a 1 kHz
# UDP stream and a 1 kHz TCP message stream (integration/lab/measure.py) run
# through; router A (master) dies: its data links are deleted (forwarding and
# VRRP adverts stop at once), then keepalived and conntrackd get kill -9; measure.py reports the UDP gap and TCP
# stall. On becoming master, B commits conntrackd's external cache to the
# kernel (the primary-backup.sh recipe: -c, -f, -R, -B).
#
#   hc-in   br0 = a-in + b-in; 192.168.10.10/24 via 192.168.10.1 (VIP)
#   hc-out  br0 = a-out + b-out; 203.0.113.254/24, 198.51.100.80/32 on lo
#   hr-a    in0 192.168.10.2, out0 203.0.113.2, ha0 10.98.0.1 (priority 150)
#   hr-b    in0 192.168.10.3, out0 203.0.113.3, ha0 10.98.0.2 (priority 100)
#   VIPs 192.168.10.1/24 on in0, 203.0.113.1/24 on out0; SNAT to 203.0.113.1.
# No namespace has a route out of the machine.
#
# Usage: sudo integration/bench/linux_ha.sh [--advert-int S] [--after-kill S] [--row]
#   --row  print only one markdown table row on stdout (run.sh uses it)
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/integration/lab/lib.sh"
PY=/usr/bin/python3
M="$repo/integration/lab/measure.py"
adv=1 after_kill=6 row=0
while [ $# -gt 0 ]; do
    case $1 in
        --advert-int) adv=$2; shift 2 ;;
        --after-kill) after_kill=$2; shift 2 ;;
        --row) row=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
LAB_DIR=$(mktemp -d /tmp/twinwall-linuxha.XXXXXX)
label="Linux nftables + conntrackd (FTFW) + keepalived (VRRPv3), advert_int $adv s"
fail_row() { [ $row = 1 ] && echo "| $label | error: $1 | | | \`sudo integration/bench/linux_ha.sh --advert-int $adv\` |"; exit 2; }
trap 'lab_cleanup; sleep 0.5; [ -n "${LINUX_HA_SAVE:-}" ] && cp -r "$LAB_DIR" "$LINUX_HA_SAVE"; rm -rf "$LAB_DIR"' EXIT
trap 'exit 130' INT TERM
exec 3>&1
[ $row = 1 ] && exec 1>&2

lab_netns hc-in hc-out hr-a hr-b
for n in hc-in hc-out; do
    ip -n $n link add br0 type bridge
    ip -n $n link set br0 address "02:00:00:00:0$([ $n = hc-in ] && echo 1 || echo 2):fe"
    ip -n $n link set br0 up
done
ip link add ha0 netns hr-a type veth peer name ha0 netns hr-b
for s in a b; do
    ip link add in0 netns hr-$s type veth peer name $s-in netns hc-in
    ip link add out0 netns hr-$s type veth peer name $s-out netns hc-out
    ip -n hc-in link set $s-in master br0 up
    ip -n hc-out link set $s-out master br0 up
done
oct() { [ "$1" = a ] && echo 2 || echo 3; }
for s in a b; do
    ip -n hr-$s addr add 192.168.10.$(oct $s)/24 dev in0
    ip -n hr-$s addr add 203.0.113.$(oct $s)/24 dev out0
    ip -n hr-$s addr add 10.98.0.$([ $s = a ] && echo 1 || echo 2)/24 dev ha0
    for l in in0 out0 ha0; do ip -n hr-$s link set $l up; done
    ip -n hr-$s route add 198.51.100.0/24 via 203.0.113.254
    ip netns exec hr-$s sysctl -qw net.ipv4.ip_forward=1
    ip netns exec hr-$s nft -f - <<'NFT'
table ip twbench {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "in0" oifname "out0" accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "out0" snat to 203.0.113.1
  }
}
NFT
done
ip -n hc-in addr add 192.168.10.10/24 dev br0
ip -n hc-in route add default via 192.168.10.1
ip -n hc-out addr add 203.0.113.254/24 dev br0
ip -n hc-out addr add 198.51.100.80/32 dev lo

haconf() {   # haconf SIDE LOCAL PEER STATE PRIORITY (PEERS.md recipe, VRRPv3, two VIPs, notify_master)
    local D=$LAB_DIR/$1; mkdir -p "$D"
    cat >"$D/conntrackd.conf" <<CT
Sync {
  Mode FTFW { DisableExternalCache Off }
  UDP { IPv4_address $2  IPv4_Destination_Address $3  Port 3780  Interface ha0
        SndSocketBuffer 1249280  RcvSocketBuffer 1249280  Checksum on }
}
General {
  Systemd off  HashSize 8192  HashLimit 65535  Syslog off  LogFile $D/conntrackd.log  LockFile $D/conntrackd.lock
  UNIX { Path $D/conntrackd.ctl }
  NetlinkBufferSize 2097152  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace { Address Ignore { IPv4_address 127.0.0.1  IPv4_address $2  IPv4_address $3 } }
}
CT
    cat >"$D/master.sh" <<SH
#!/bin/sh
# primary-backup.sh's "primary" branch: commit the external cache, flush the internal one, resync, bulk send
C="conntrackd -C $D/conntrackd.conf"
date +%s.%N >>$D/master.log
\$C -c >>$D/master.log 2>&1; \$C -f >>$D/master.log 2>&1; \$C -R >>$D/master.log 2>&1; \$C -B >>$D/master.log 2>&1
date +%s.%N >>$D/master.log
SH
    chmod 755 "$D/master.sh"
    cat >"$D/keepalived.conf" <<KA
global_defs {
  vrrp_version 3
  script_user root
}
vrrp_instance VI_1 {
  state $4
  interface in0
  virtual_router_id 51
  priority $5
  advert_int $adv
  virtual_ipaddress {
    192.168.10.1/24 dev in0
    203.0.113.1/24 dev out0
  }
  notify_master "$D/master.sh"
}
KA
}
haconf a 10.98.0.1 10.98.0.2 MASTER 150
haconf b 10.98.0.2 10.98.0.1 BACKUP 100
: >"$LAB_DIR/lab.pids"
for s in a b; do
    lab_spawn_as ct_$s hr-$s "$LAB_DIR/$s/conntrackd.out" conntrackd -C "$LAB_DIR/$s/conntrackd.conf"
done
sleep 0.5
for s in a b; do
    lab_spawn_as ka_$s hr-$s "$LAB_DIR/$s/keepalived.out" keepalived -n -l -D -f "$LAB_DIR/$s/keepalived.conf" \
        -p "$LAB_DIR/$s/ka.pid" -r "$LAB_DIR/$s/vrrp.pid" -c "$LAB_DIR/$s/chk.pid"
done
lab_wait 15 sh -c "ip -n hr-a addr show in0 | grep -q 192.168.10.1/" || { cat "$LAB_DIR/a/keepalived.out" >&2; fail_row "A never became master"; }
lab_wait 5 test -s "$LAB_DIR/a/vrrp.pid" || fail_row "no VRRP child pid"
vrrp_a=$(cat "$LAB_DIR/a/vrrp.pid")
LAB_PIDS+=("$vrrp_a")
sleep 1
ip -n hr-b addr show in0 | grep -q 192.168.10.1/ && fail_row "both routers hold the VIP"

lab_spawn_as srv_pid hc-out "$LAB_DIR/server.out" $PY "$M" server --addr 198.51.100.80 \
    --udp-port 5002 --tcp-port 5003 --log "$LAB_DIR/server.log" --rt 10
lab_wait 5 grep -q listening "$LAB_DIR/server.log" || fail_row "echo server did not start"
lab_spawn_as cli_pid hc-in "$LAB_DIR/client.out" $PY "$M" client --udp 198.51.100.80:5002 \
    --tcp 198.51.100.80:5003 --rate 1000 --duration 60 --out "$LAB_DIR/client.json" --rt 10
lab_wait 15 grep -q "client ready" "$LAB_DIR/client.out" || { cat "$LAB_DIR/client.out" >&2; fail_row "traffic client did not start"; }
t_from=$($PY "$M" now)
sleep 3
ip netns exec hr-b conntrackd -C "$LAB_DIR/b/conntrackd.conf" -e >"$LAB_DIR/b-external-before.txt" 2>&1
echo "B's external cache before the kill: $(grep -c . "$LAB_DIR/b-external-before.txt") entries"
echo "== router A dies: its links are deleted (one ip -batch: forwarding and VRRP adverts stop together), then kill -9 of keepalived (VRRP child $vrrp_a, parent $ka_a) and conntrackd $ct_a"
# Links first: A's kernel would keep forwarding after its daemons die, which
# would hide part of B's detection time from the measured gap.
printf 'link del in0\nlink del out0\n' | ip -n hr-a -batch -
$PY "$M" kill --pid "$vrrp_a" --out "$LAB_DIR/kill.json" --gone hc-in/a-in --gone hc-out/a-out
kill -9 "$ka_a" "$ct_a" 2>/dev/null
wait "$ka_a" "$ct_a" 2>/dev/null; lab_forget "$ka_a"; lab_forget "$ct_a"; lab_forget "$vrrp_a"
sleep "$after_kill"
kill -USR1 "$cli_pid" 2>/dev/null
for ((i = 0; i < 150; i++)); do kill -0 "$cli_pid" 2>/dev/null || break; sleep 0.1; done
wait "$cli_pid" 2>/dev/null
[ -s "$LAB_DIR/client.json" ] || fail_row "traffic client wrote no results"
echo "B holds the VIP: $(ip -n hr-b addr show in0 | grep -q 192.168.10.1/ && echo yes || echo no)"
echo "B's notify_master log:"; cat "$LAB_DIR/b/master.log" 2>/dev/null
$PY "$M" report --client "$LAB_DIR/client.json" --server-log "$LAB_DIR/server.log" --kill "$LAB_DIR/kill.json" \
    --from "$t_from" --poll-ms 0 --hold-ms 0 --max-gap-ms 100000 | tee "$LAB_DIR/report.txt"
res=$(grep '^RESULT ' "$LAB_DIR/report.txt" | tail -1)
[ -n "$res" ] || fail_row "no RESULT from measure.py"
g=$(sed -n 's/.*udp_gap_ms=\([^ ]*\).*/\1/p' <<<"$res"); st=$(sed -n 's/.*tcp_stall_ms=\([^ ]*\).*/\1/p' <<<"$res")
t=$(sed -n 's/.*tcp_survived=\([^ ]*\).*/\1/p' <<<"$res"); p=$(sed -n 's/.*pat_port_kept=\([^ ]*\).*/\1/p' <<<"$res")
echo "RESULT_LINUX_HA advert_int=$adv udp_gap_ms=$g tcp_stall_ms=$st tcp_survived=$t pat_port_kept=$p"
[ $row = 1 ] && echo "| $label | $g ms | $st ms | $t | SNAT port kept: $p; \`sudo integration/bench/linux_ha.sh --advert-int $adv\` |" >&3
exit 0
