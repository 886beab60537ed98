#!/usr/bin/env bash
# Integration: what TCP sees on a link that drops packets. Two network
# namespaces joined by a veth pair (server 192.0.2.1, client 192.0.2.2),
# with a token bucket (tc tbf) on the server's side whose queue is too small
# for a burst: packets are dropped and TCP retransmits.
#  1. tcpmsg bench through the link: tcpmsg_tcp_retransmits_total rises.
#  2. One connection held open after a 300 KB echo: the retransmissions and
#     congestion window /api/connections reports for it equal what ss -ti
#     prints for the same socket.
# Skips (exit 77) where this user may not create namespaces.
# usage: tcp_netns.sh TCPMSGD TCPMSG [IO]
set -euo pipefail
tcpmsgd=$1 tcpmsg=$2 io=${3:-epoll}

. "$(dirname "$0")/netns_lib.sh" || { echo "tcp_netns.sh: FAIL: cannot load netns_lib.sh" >&2; exit 1; }
netns_enter "$@"
netns_setup ip tc ss nsenter setpriv
# 4 Mbit/s with room for 20 KB: a 300 KB reply cannot fit, and is dropped in part.
tc qdisc add dev tm0 root tbf rate 4mbit burst 16kb limit 20kb

netns_start_server

# GET path from the HTTP endpoint (127.0.0.1 in the server's namespace).
get() {
    exec 5<>"/dev/tcp/127.0.0.1/$http"
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$1" >&5
    sed '1,/^\r$/d' <&5
    exec 5<&-
}
metric() { get /metrics?format=prometheus | awk -v m="$1" '$1 == m { print $2 }'; }

# 1. Load through the link.
retrans0=$(metric tcpmsg_tcp_retransmits_total)
in_peer "$tcpmsg" bench --connections 4 --depth 4 --size 16KiB --duration 2 --io "$io" \
    "192.0.2.1:$port" >"$work/bench.out" 2>&1 || { cat "$work/bench.out" >&2; fail "bench failed"; }
retrans=''
for _ in $(seq 50); do # the closes are counted once the server has seen them
    retrans=$(metric tcpmsg_tcp_retransmits_total)
    [ "$(metric 'tcpmsg_connections_closed_total{reason="peer_closed"}')" = 4 ] && break
    sleep 0.1
done
echo "tcpmsg_tcp_retransmits_total: $retrans0 before the load, $retrans after"
[ "$retrans" -gt "$retrans0" ] || fail "no retransmission counted through a link that drops"

# 2. One connection, one 300 KB text line echoed, then held open and quiet.
line_len=300000
# (nsenter and bash exec in turn, so that $holder is the process to kill.)
nsenter -t "$peer" -n bash -c '
    exec 3<>/dev/tcp/192.0.2.1/'"$port"'
    head -c '"$line_len"' /dev/zero | tr "\0" "a" >&3; echo >&3
    head -c '"$((line_len + 1))"' <&3 >/dev/null && echo done >'"$work"'/echoed
    exec sleep 60' </dev/null >/dev/null 2>&1 &
holder=$!
for _ in $(seq 300); do
    [ -f "$work/echoed" ] && break
    sleep 0.05
done
[ -f "$work/echoed" ] || fail "the 300 KB line did not come back"
# The API and ss read the socket a moment apart: read both again until they
# agree (a late ACK can move the window in between), 3 s at most.
agree=''
for _ in $(seq 30); do
    api=$(get /api/connections)
    ss_line=$(ss -tinH state established sport = ":$port" | grep -o 'rtt:.*' || true)
    api_retrans=$(echo "$api" | grep -o '"total_retrans": *[0-9]*' | head -1 | grep -o '[0-9]*$')
    api_cwnd=$(echo "$api" | grep -o '"snd_cwnd": *[0-9]*' | head -1 | grep -o '[0-9]*$')
    ss_retrans=$(echo "$ss_line" | grep -o 'retrans:[0-9]*/[0-9]*' | cut -d/ -f2)
    ss_cwnd=$(echo "$ss_line" | grep -o 'cwnd:[0-9]*' | cut -d: -f2)
    if [ -n "$api_retrans" ] && [ "$api_retrans" = "${ss_retrans:-0}" ] &&
        [ -n "$api_cwnd" ] && [ "$api_cwnd" = "$ss_cwnd" ]; then
        agree=1
        break
    fi
    sleep 0.1
done
echo "ss: $ss_line"
echo "retransmitted segments: /api/connections ${api_retrans:-?}, ss ${ss_retrans:-0}"
echo "congestion window: /api/connections ${api_cwnd:-?}, ss ${ss_cwnd:-?}"
[ -n "$api_retrans" ] && [ -n "$api_cwnd" ] || fail "no tcp object in /api/connections: $api"
[ -n "$agree" ] || fail "/api/connections and ss still differ after 3 s"
[ "$api_retrans" -gt 0 ] || fail "the 300 KB reply was not retransmitted in part: the test proves nothing"
echo "tcp_netns.sh: ok"
