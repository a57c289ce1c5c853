# Shared helpers for twinwall's network-namespace labs. Source, don't run.
#
# Rules: every namespace is created here and deleted by lab_cleanup (run it
# from an EXIT trap); no namespace gets a route out of the machine; every
# wait is bounded; only processes started here are stopped, by PID.

LAB_PIDS=()
LAB_NETNS=()
LAB_FAILS=0

# lab_need_root WHAT: exit 2 unless root with /dev/net/tun (WHAT names the
# script in the message).
lab_need_root() {
    [ "$(id -u)" = 0 ] || { echo "$1 needs root (network namespaces, TAP devices)" >&2; exit 2; }
    [ -c /dev/net/tun ] || { echo "/dev/net/tun is missing" >&2; exit 2; }
}

lab_log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

lab_netns() {
    local n
    for n in "$@"; do
        ip netns del "$n" 2>/dev/null || true
        ip netns add "$n"
        ip -n "$n" link set lo up
        ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        LAB_NETNS+=("$n")
    done
}

# lab_failover_link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: the units' failover
# link, one veth (/24 addresses), multicast on, and the multicast route
# through it (the hellos leave by it).
lab_failover_link() {
    local ns_a=$1 if_a=$2 ns_b=$4 if_b=$5
    ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b"
    ip -n "$ns_a" addr add "$3/24" dev "$if_a"
    ip -n "$ns_b" addr add "$6/24" dev "$if_b"
    ip -n "$ns_a" link set "$if_a" multicast on up
    ip -n "$ns_b" link set "$if_b" multicast on up
    ip -n "$ns_a" route add 224.0.0.0/4 dev "$if_a"
    ip -n "$ns_b" route add 224.0.0.0/4 dev "$if_b"
}

# lab_spawn NS LOGFILE CMD...: run CMD in NS in the background, remember its
# PID, print it. Called as pid=$(lab_spawn ...), the array update is lost in
# the subshell, so the PID also goes to $LAB_DIR/lab.pids (when LAB_DIR is
# set), which lab_cleanup reads.
lab_spawn() {
    local ns=$1 log=$2
    shift 2
    ip netns exec "$ns" "$@" >"$log" 2>&1 &
    LAB_PIDS+=($!)
    [ -n "${LAB_DIR:-}" ] && [ -d "$LAB_DIR" ] && echo $! >>"$LAB_DIR/lab.pids"
    echo $!
}

# lab_spawn_as VAR NS LOGFILE CMD...: as lab_spawn, without a subshell: the
# PID goes into VAR and the process stays this shell's child (wait works).
lab_spawn_as() {
    local var=$1 ns=$2 log=$3
    shift 3
    ip netns exec "$ns" "$@" >"$log" 2>&1 &
    LAB_PIDS+=($!)
    printf -v "$var" %s $!
}

# lab_wait SECONDS CMD...: retry CMD every 0.1 s until it succeeds or time runs out.
lab_wait() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

lab_cleanup() {
    local p n
    if [ -n "${LAB_DIR:-}" ] && [ -f "$LAB_DIR/lab.pids" ]; then
        while read -r p; do
            case " ${LAB_PIDS[*]} " in *" $p "*) ;; *) LAB_PIDS+=("$p") ;; esac
        done <"$LAB_DIR/lab.pids"
    fi
    for p in "${LAB_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${LAB_PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    for n in "${LAB_NETNS[@]}"; do
        ip netns del "$n" 2>/dev/null || true
    done
}

# check NAME CMD...: run CMD, print PASS/FAIL, count failures.
check() {
    local name=$1
    shift
    if "$@"; then
        printf 'PASS  %s\n' "$name"
    else
        printf 'FAIL  %s\n' "$name"
        LAB_FAILS=$((LAB_FAILS + 1))
    fi
}

# lab_forget PID: a process started here has exited and been reaped; forget
# its PID so that lab_cleanup never signals a PID the system has reused.
lab_forget() {
    local p keep=()
    for p in "${LAB_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    LAB_PIDS=("${keep[@]}")
}
