#!/usr/bin/env bash
# Integration: the tx_ack stage grows with a backlog on the path of the
# ACKs. Two network namespaces joined by a veth pair (server 192.0.2.1,
# client 192.0.2.2); the client's side sends through a token bucket (tc tbf)
# with a queue long enough not to drop. The server's replies are acknowledged
# by the client's segments, which wait in that queue behind the client's
# messages: the more the client sends, the longer the wait from a reply
# leaving the server's device (SND) to its ACK. The median tx_ack of a load
# that fills the queue must be at least 10 times that of one message at a
# time. A ratio, not a time: the machine may be slow, the queue is not
# (measured: about 15 us against about 100 ms, a ratio near 7000).
# Every wait is bounded, the whole test by about 100 s (ctest's TIMEOUT is
# 120). Skips (exit 77) where this user may not create namespaces.
# usage: tcp_stages_netns.sh TCPMSGD TCPMSG [IO]
set -euo pipefail
tcpmsgd=$1 tcpmsg=$2 io=${3:-epoll}

. "$(dirname "$0")/netns_lib.sh" || { echo "tcp_stages_netns.sh: FAIL: cannot load netns_lib.sh" >&2; exit 1; }
netns_enter "$@"
netns_setup ip tc nsenter setpriv awk
# The client's way out: 8 Mbit/s, and a queue of 400 KB (0.4 s) that the
# load below fills without dropping.
in_peer tc qdisc add dev tm1 root tbf rate 8mbit burst 16kb limit 400kb

# Start a server sampling every message; sets server, port and http.
start_server() { netns_start_server --stage-sample 1; }

stop_server() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=''
}

# GET path from the HTTP endpoint (127.0.0.1 in the server's namespace),
# in at most 5 s: a stuck endpoint gives an empty answer, not a hung test.
get() {
    timeout 5 bash -c '
        exec 5<>"/dev/tcp/127.0.0.1/$1"
        printf "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" "$2" >&5
        sed "1,/^\r$/d" <&5' get "$http" "$1" || true
}
# A field of the JSON histogram of stage $1 (its fields come before its
# buckets, so the text up to the first "}" holds them).
stage_field() {
    get /metrics | grep -o "\"$1\":{\"unit\":[^}]*" | grep -o "\"$2\":[-0-9.e+]*" | head -1 | cut -d: -f2
}

# Run a load ($@: bench options) and print the median tx_ack in seconds.
tx_ack_p50() {
    start_server
    in_peer timeout 20 "$tcpmsg" bench --io "$io" "$@" "192.0.2.1:$port" >"$work/bench.out" 2>&1 ||
        { cat "$work/bench.out" >&2; fail "bench $* failed"; }
    local count='' prev=-1 until=$((SECONDS + 10))
    # The last ACKs come after the last replies: wait until the count holds
    # (10 s at most, whatever each request takes).
    while [ "$SECONDS" -lt "$until" ]; do
        count=$(stage_field tx_ack count)
        [ -n "$count" ] && [ "$count" = "$prev" ] && break
        prev=$count
        sleep 0.1
    done
    [ "${count:-0}" -ge 20 ] || fail "only ${count:-0} tx_ack samples for bench $*"
    echo "bench $*: $count tx_ack samples, p50 $(stage_field tx_ack p50) s," \
         "tx_send p50 $(stage_field tx_send p50) s" >&2
    stage_field tx_ack p50
    stop_server
}

low=$(tx_ack_p50 --connections 1 --depth 1 --size 64 --count 200)
high=$(tx_ack_p50 --connections 4 --depth 4 --size 8KiB --duration 2)
echo "tx_ack p50: $low s one message at a time, $high s with the client's queue full"
awk -v lo="$low" -v hi="$high" 'BEGIN { exit !(lo > 0 && hi >= 10 * lo) }' ||
    fail "tx_ack did not grow with the backlog: p50 $low s, then $high s"
echo "tcp_stages_netns.sh: ok"
