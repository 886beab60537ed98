# Shared by the integration tests that need a real link between two network
# namespaces (tcp_netns.sh, tcp_stages_netns.sh): entering a user and network
# namespace of our own, the client's namespace joined to ours by a veth pair
# (server 192.0.2.1 on tm0, client 192.0.2.2 on tm1), and a tcpmsgd started
# on that link. Each test adds its own traffic shaping (tc) and checks.
# Sourced, after the test has set tcpmsgd and io; uses bash.

NETNS_TEST=${0##*/}

# netns_enter ARGS...: re-execute the test as root of a new user and network
# namespace, with no route to anything but what the test creates. Exits 77
# (skip) where this user may not create namespaces; returns inside it.
netns_enter() {
    [ "${TCPMSG_NETNS_INSIDE:-}" = 1 ] && return 0
    if ! unshare -rn true 2>/dev/null; then
        echo "$NETNS_TEST: SKIP: cannot create a network namespace (unshare -rn)" >&2
        exit 77
    fi
    export TCPMSG_NETNS_INSIDE=1
    exec unshare -rn --fork --kill-child "$0" "$@"
}

fail() { echo "$NETNS_TEST: FAIL: $*" >&2; [ -f "${log:-}" ] && cat "$log" >&2; exit 1; }

# netns_setup TOOL...: skip (exit 77) unless every TOOL is installed; make
# the scratch directory $work (removed at exit, with the processes in
# $server, $holder and $peer killed) and the server's log $log; create the
# client's namespace (held by $peer, entered with in_peer) and the veth pair.
netns_setup() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$NETNS_TEST: SKIP: $tool is missing" >&2; exit 77; }
    done
    work=$(mktemp -d)
    log=$work/tcpmsgd.log
    trap netns_cleanup EXIT

    # The client's namespace: a process that only holds it, for longer than
    # a test may last, killed by netns_cleanup, or by the kernel if the test
    # dies first (killed at ctest's timeout: no trap runs then).
    ip link set lo up
    setpriv --pdeathsig KILL unshare -n sleep 600 </dev/null >/dev/null 2>&1 &
    peer=$!
    local own
    own=$(readlink /proc/self/ns/net)
    for _ in $(seq 250); do
        [ "$(readlink /proc/$peer/ns/net 2>/dev/null)" != "$own" ] && break
        sleep 0.02
    done
    [ "$(readlink /proc/$peer/ns/net 2>/dev/null)" != "$own" ] ||
        fail "the client's namespace did not appear within 5 s"
    ip link add tm0 type veth peer name tm1 netns "$peer"
    ip addr add 192.0.2.1/24 dev tm0
    ip link set tm0 up
    in_peer ip link set lo up
    in_peer ip addr add 192.0.2.2/24 dev tm1
    in_peer ip link set tm1 up
}

netns_cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null
    [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
    [ -n "${peer:-}" ] && kill "$peer" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}

# in_peer COMMAND...: run COMMAND in the client's namespace.
in_peer() { nsenter -t "$peer" -n "$@"; }

# netns_start_server [OPTION...]: start tcpmsgd on the server's side of the
# link with the extra OPTIONs, logging to $log; sets server, port and http
# (the HTTP endpoint, on 127.0.0.1 of the server's namespace) once it listens.
netns_start_server() {
    : >"$log"
    "$tcpmsgd" --bind 192.0.2.1 --port 0 --http-port 0 --io "$io" "$@" >"$log" 2>&1 &
    server=$!
    port='' http=''
    for _ in $(seq 250); do
        port=$(sed -n 's/.*server socket bound .*port=\([0-9]*\).*/\1/p' "$log" | head -1)
        http=$(sed -n 's/.*http endpoint listening .*http_port=\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && [ -n "$http" ] && grep -q "server is listening" "$log" && break
        kill -0 "$server" 2>/dev/null || fail "tcpmsgd exited"
        sleep 0.02
    done
    [ -n "$port" ] && [ -n "$http" ] || fail "tcpmsgd did not start"
}
