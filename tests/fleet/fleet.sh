#!/usr/bin/env bash
# fleet.four_hosts: a fleet of four hosts on one machine, watched by a real
# Prometheus. Each host is a network namespace on a bridge (192.0.2.1-4, a
# documentation range that exists only inside the namespaces) running tcpmsgd
# and a continuous `tcpmsg probe --targets FILE` of the four servers: one
# file for the fleet, read by every prober (a host probes itself too, over
# its loopback) and by Prometheus; host 4's link is a token bucket (tc tbf). Host 1 also runs Prometheus and a blackbox-style
# prober (`tcpmsg probe --serve`). Checked through Prometheus's HTTP API:
#  1. every target is up: the four servers, the four probers, and the three
#     servers the blackbox job probes through relabeling;
#  2. under load through host 4's link, each of the six probe paths that
#     cross it has a higher p99 than any of the ten that do not;
#  3. host 3's tcpmsgd stopped: exactly the four probes of 192.0.2.3 fail,
#     every other path still succeeds, and TcpmsgProbeTargetDown fires for
#     host 3 only; taken out of the fleet's file, host 3 is no longer
#     scraped nor probed, and the alerts resolve;
#  4. three `tcpmsg bench --hdr-log` runs from hosts 2, 3 and 4 against host
#     1, merged by `tcpmsg merge --json`: the message total equals host 1's
#     tcpmsg_messages_received_total{mode="framed"}. The probes speak the
#     text protocol (--text) and the blackbox job leaves host 1 out, so every
#     framed message host 1 counts is a bench message: the totals are equal
#     exactly, not nearly.
# Skips (exit 77), saying why, where the namespaces cannot be made or a
# program is missing. See tests/fleet/README.md.
# Usage: fleet.sh TCPMSGD TCPMSG DASHBOARD_DIR
set -uo pipefail

skip() { echo "fleet.sh: SKIP: $*" >&2; exit 77; }

if [ "${TCPMSG_FLEET_INSIDE:-}" != 1 ]; then
    [ $# -eq 3 ] || { echo "usage: fleet.sh TCPMSGD TCPMSG DASHBOARD_DIR" >&2; exit 2; }
    for tool in unshare nsenter ip tc prometheus; do
        command -v "$tool" >/dev/null || skip "$tool is missing (.ci/setup installs iproute2 and prometheus)"
    done
    # Namespaces of our own: a user namespace (root inside it, as root or
    # where unprivileged user namespaces are allowed), a network namespace
    # with no route to anything but what this script makes, and a PID
    # namespace whose end ends every process started in it, even when this
    # script is killed before its trap can run. --kill-child: when ctest
    # kills the outer process, the inner one dies with it.
    if ! unshare -rnpm --fork --mount-proc true 2>/dev/null; then
        skip "cannot create user, network and PID namespaces (unshare -rnpm): not root, and unprivileged user namespaces are not allowed"
    fi
    export TCPMSG_FLEET_INSIDE=1
    dashboards=$(cd "$3" && pwd) || exit 2
    exec unshare -rnpm --fork --kill-child --mount-proc bash "$0" "$1" "$2" "$dashboards"
fi

# From here on this script is PID 1 of its namespace, and its network
# namespace is host 1's.
# shellcheck source=../prometheus/lib.sh
. "$(dirname "$0")/../prometheus/lib.sh"
TCPMSGD=$1 TCPMSG=$2 DASHBOARDS=$3
PROMETHEUS=$(command -v prometheus) # for lib.sh's start_prometheus
watchdog 110
started=$SECONDS
# step MESSAGE: a line of the log, with the seconds since the start.
step() { log "$(printf '%3d s: ' $((SECONDS - started)))$*"; }

NET=192.0.2
SERVER_PORT=8080 HTTP_PORT=8081 PROBER_PORT=9101 BLACKBOX_PORT=9116
SLOW=4   # the host whose link is rate-limited
DOWN=3   # the host whose tcpmsgd is stopped
SINK=1   # the host the three benches load
declare -a NS_PID   # per host: a process in its network namespace
declare -a SERVER   # per host: the tcpmsgd's PID
declare -a PROBER   # per host: the probe's PID
host_list() { # host_list PORT HOST...: "a:PORT", "b:PORT", ...
    local port=$1 out="" h
    for h in "${@:2}"; do out="$out${out:+, }\"$NET.$h:$port\""; done
    printf '%s\n' "$out"
}

# --- 1. The hosts, the bridge and the slow link ----------------------------

# new_namespace: starts a process that only holds a new network namespace
# (it ends at the latest with this script's PID namespace) and prints its
# PID once the namespace exists.
new_namespace() {
    local pid own i
    unshare -n sleep 600 </dev/null >/dev/null 2>&1 &
    pid=$!
    own=$(readlink /proc/self/ns/net)
    for i in $(seq 250); do
        [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" != "$own" ] && { echo "$pid"; return 0; }
        sleep 0.02
    done
    return 1
}

BRIDGE_NS=$(new_namespace) || fail "the bridge's namespace did not appear within 5 s"
CHILD_PIDS="$CHILD_PIDS $BRIDGE_NS"
NS_PID[1]=$$
for h in 2 3 4; do
    NS_PID[h]=$(new_namespace) || fail "host $h's namespace did not appear within 5 s"
    CHILD_PIDS="$CHILD_PIDS ${NS_PID[h]}"
done

# on_host H COMMAND...: runs COMMAND in host H's network namespace. A
# background job calls nsenter itself, not this function: nsenter execs the
# command, so $! is the command's own PID (a function would run in a subshell
# of its own, and $! would be the subshell's).
on_host() { nsenter -t "${NS_PID[$1]}" -n "${@:2}"; }
in_bridge() { nsenter -t "$BRIDGE_NS" -n "$@"; }

# One switch: a bridge without spanning tree forwards as soon as a port is up.
in_bridge ip link set lo up || fail "loopback in the bridge's namespace"
in_bridge ip link add name br0 type bridge forward_delay 0 ||
    skip "cannot create a bridge (ip link add type bridge)"
in_bridge ip link set br0 up
for h in 1 2 3 4; do
    in_bridge ip link add name "port$h" type veth peer name eth0 netns "${NS_PID[h]}" ||
        skip "cannot create a veth pair into a namespace"
    in_bridge ip link set "port$h" master br0 up || fail "port$h on the bridge"
    on_host "$h" ip link set lo up || fail "loopback of host $h"
    on_host "$h" ip addr add "$NET.$h/24" dev eth0 || fail "address of host $h"
    on_host "$h" ip link set eth0 up || fail "eth0 of host $h"
done
# Host 4's link: 4 Mbit/s both ways, with a queue of up to 200 KB (about
# 400 ms). A bulk transfer through it keeps the queue full, and every packet
# of a probe across it waits behind the transfer's.
tbf="root tbf rate 4mbit burst 32kb limit 200kb"
# shellcheck disable=SC2086 # $tbf is the qdisc's words
{ in_bridge tc qdisc add dev "port$SLOW" $tbf && on_host "$SLOW" tc qdisc add dev eth0 $tbf; } ||
    skip "cannot add a tbf qdisc (tc qdisc add ... tbf)"
step "4 hosts on a bridge, host $SLOW's link limited to 4 Mbit/s"

# --- 2. On every host: tcpmsgd and a probe of every server ------------------

for h in 1 2 3 4; do
    nsenter -t "${NS_PID[h]}" -n "$TCPMSGD" --bind "$NET.$h" --port "$SERVER_PORT" \
        --http-bind "$NET.$h" --http-port "$HTTP_PORT" --threads 1 \
        >"$TMP_DIR/tcpmsgd-$h.log" 2>&1 &
    SERVER[h]=$!
    CHILD_PIDS="$CHILD_PIDS ${SERVER[h]}"
done
for h in 1 2 3 4; do
    wait_log "$TMP_DIR/tcpmsgd-$h.log" 's/.*\(server is listening\).*/\1/p' "${SERVER[h]}" 30 >/dev/null ||
        exit 1
done

# One target file for the whole fleet, in Prometheus file_sd JSON, as it
# would be copied to every host: every prober reads it, and so does
# Prometheus (the mesh jobs below). Each host probes all four servers, its
# own over its loopback (a path that crosses no link). The probes send text
# lines (--text): the servers count them under mode="text", apart from the
# benches' framed messages (check 4). A timeout of 2 s: a probe held up to
# 400 ms in each of the slow link's queues is a slow probe, not a lost one.
MESH=$TMP_DIR/mesh/fleet.json
# mesh_file HOST...: the file_sd JSON of these hosts' message ports.
mesh_file() { printf '[{"targets": [%s]}]\n' "$(host_list "$SERVER_PORT" "$@")"; }
{ mkdir "$TMP_DIR/mesh" && mesh_file 1 2 3 4 >"$MESH"; } || fail "cannot write $MESH"
for h in 1 2 3 4; do
    nsenter -t "${NS_PID[h]}" -n "$TCPMSG" probe --text --interval 0.05 --timeout 2 \
        --http-bind "$NET.$h" --http-port "$PROBER_PORT" --targets "$MESH" \
        >/dev/null 2>"$TMP_DIR/prober-$h.log" &
    PROBER[h]=$!
    CHILD_PIDS="$CHILD_PIDS ${PROBER[h]}"
    wait_log "$TMP_DIR/prober-$h.log" 's/.*\(http_port=\).*/\1/p' "${PROBER[h]}" 30 >/dev/null || exit 1
done

# The blackbox-style prober, on host 1 next to Prometheus.
"$TCPMSG" probe --serve "$NET.1:$BLACKBOX_PORT" >/dev/null 2>"$TMP_DIR/blackbox.log" &
pid=$!
CHILD_PIDS="$CHILD_PIDS $pid"
wait_log "$TMP_DIR/blackbox.log" 's/.*\(http_port=\).*/\1/p' "$pid" 30 >/dev/null || exit 1

# --- 3. Prometheus on host 1 -------------------------------------------------

# The jobs of dashboards/prometheus.yml, given the fleet's file and
# addresses: tcpmsg-probes and tcpmsgd-mesh scrape every prober (port 9101)
# and every server (port 8081) of the hosts the file lists, and the
# blackbox job tcpmsg-probe probes every server but host 1's (whose framed
# messages are the benches' alone).
job() { sed -n "/- job_name: $1\$/,/^\$/p" "$DASHBOARDS/prometheus.yml"; }
mesh_jobs=$(job tcpmsg-probes; echo; job tcpmsgd-mesh)
mesh_jobs=$(printf '%s\n' "$mesh_jobs" | sed "s#\"mesh/\*\.json\"#\"$TMP_DIR/mesh/*.json\"#")
blackbox_job=$(job tcpmsg-probe | sed -e "s/\"localhost:8080\"/$(host_list "$SERVER_PORT" 2 3 4)/" \
    -e "s/localhost:9116/$NET.1:$BLACKBOX_PORT/")
{ grep -q "$TMP_DIR/mesh/\*.json" <<<"$mesh_jobs" && grep -q ":$PROBER_PORT\"" <<<"$mesh_jobs" &&
    grep -q ":$HTTP_PORT\"" <<<"$mesh_jobs"; } ||
    fail "dashboards/prometheus.yml: no tcpmsg-probes and tcpmsgd-mesh jobs reading mesh/*.json for ports $PROBER_PORT and $HTTP_PORT"
grep -q "$NET.1:$BLACKBOX_PORT" <<<"$blackbox_job" ||
    fail "dashboards/prometheus.yml: no tcpmsg-probe job"

# The alert rules as shipped, with every `for:` cut to 2 s so that a rule
# meant to wait a minute fires within the test.
sed -E 's/^( *for: ).*/\12s/' "$DASHBOARDS/tcpmsg-alerts.yml" >"$TMP_DIR/alerts.yml"
grep -q 'alert: TcpmsgProbeTargetDown$' "$TMP_DIR/alerts.yml" ||
    fail "dashboards/tcpmsg-alerts.yml has no TcpmsgProbeTargetDown rule"
prometheus_config "$TMP_DIR/prometheus.yml" "$TMP_DIR/alerts.yml" "$(printf '%s\n\n%s' "$mesh_jobs" "$blackbox_job")"
start_prometheus "$TMP_DIR/prometheus.yml"
wait_prometheus_ready

# expect EXPR WANT SECONDS: polls Prometheus until the instant query EXPR
# has one sample, equal to WANT; fails at the deadline.
expect() {
    local deadline=$((SECONDS + $3))
    Q_VALUE=""
    until query "$1" && [ "$Q_VALUE" = "$2" ]; do
        kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited"
        [ "$SECONDS" -lt "$deadline" ] ||
            fail "$1 is '${Q_VALUE:-no result}' after $3 s, want $2 ($(cat "$TMP_DIR/query.json" 2>/dev/null))"
        sleep 0.25
    done
}
# value EXPR: prints the one sample of EXPR now, or fails.
value() {
    query "$1" || fail "$1: no single result ($(cat "$TMP_DIR/query.json" 2>/dev/null))"
    printf '%s\n' "$Q_VALUE"
}

# --- Check 1: every target up -----------------------------------------------

expect 'count(up{job="tcpmsgd-mesh"} == 1)' 4 30
expect 'count(up{job="tcpmsg-probes"} == 1)' 4 30
expect 'count(up{job="tcpmsg-probe"} == 1)' 3 30
expect 'count(up)' 11 5
expect 'count(probe_success == 1)' 3 30
expect 'count(tcpmsg_probe_up{job="tcpmsg-probes"} == 1)' 16 30
step "check 1: 11 targets up; 16 probe paths and 3 blackbox probes succeed"

# --- Check 2: the slow link has the highest p99 -------------------------------

# A bulk load from host 2 through host 4's link while every path is probed.
# Its 512 KiB in flight each way overflow the link's queues: TCP loses
# segments and backs off, and a reply can take seconds (--timeout 20, not
# bench's 5 s: a slow reply is the point here, not an error).
load_start=$SECONDS
on_host 2 timeout 60 "$TCPMSG" bench "$NET.$SLOW:$SERVER_PORT" --connections 8 --depth 4 --size 16KiB \
    --duration 10 --timeout 20 >"$TMP_DIR/load.log" 2>&1 || fail "the load through host $SLOW's link failed"
sleep 2 # a scrape of every prober after the end of the load
window=$((SECONDS - load_start))
# p99 of each path (prober instance, target) over the load. The paths across
# host 4's link: its probes of the others, and the others' probes of it; not
# its probe of itself, which stays on its loopback.
p99() {
    printf 'histogram_quantile(0.99, sum by (instance, target, le) (increase(tcpmsg_probe_rtt_seconds_bucket{%s}[%ss])))' \
        "$1" "$window"
}
SLOW_T="target=\"$NET.$SLOW:$SERVER_PORT\"" SLOW_I="instance=\"$NET.$SLOW:$PROBER_PORT\""
OTHER_T="target!=\"$NET.$SLOW:$SERVER_PORT\"" OTHER_I="instance!=\"$NET.$SLOW:$PROBER_PORT\""
across="$(p99 "$SLOW_T,$OTHER_I") or $(p99 "$SLOW_I,$OTHER_T")"
apart="$(p99 "$OTHER_T,$OTHER_I") or $(p99 "$SLOW_T,$SLOW_I")"
expect "count($across)" 6 5
expect "count($apart)" 10 5
# Every path's p99, for the log: "prober -> target seconds".
http_get 127.0.0.1 "$PROM_PORT" "/api/v1/query?query=$(urlencode "$(p99 "")")" "$TMP_DIR/paths.json" ||
    fail "the p99 of every path: $(cat "$TMP_DIR/paths.json")"
sed 's/},{/}\n{/g' "$TMP_DIR/paths.json" |
    sed -n 's/.*"instance":"\([^":]*\)[^"]*".*"target":"\([^"]*\)".*"value":\[[^,]*,"\([^"]*\)"\].*/  \1 -> \2 \3 s/p' |
    sort >&2
slow_min=$(value "min($across)") || exit 1
fast_max=$(value "max($apart)") || exit 1
step "check 2: p99 over ${window} s: the 6 paths across host $SLOW's link ${slow_min} s at least, the 10 others ${fast_max} s at most"
awk -v s="$slow_min" -v f="$fast_max" 'BEGIN { exit !(s > f) }' ||
    fail "a path that does not cross host $SLOW's link has a p99 ($fast_max s) as high as one that does ($slow_min s)"

# --- Check 3: one server stopped ----------------------------------------------

# stop_server H: SIGTERM to host H's tcpmsgd, which must exit 0 within 10 s
# (a clean drain; in a sanitizer build, no leak or error report either).
stop_server() {
    local pid=${SERVER[$1]} i rc
    kill -TERM "$pid" || fail "host $1's tcpmsgd exited before the end of the test"
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && fail "host $1's tcpmsgd still running 10 s after SIGTERM"
    wait "$pid"
    rc=$?
    [ "$rc" -eq 0 ] || fail "host $1's tcpmsgd exited with status $rc after SIGTERM"
    CHILD_PIDS=$(for i in $CHILD_PIDS; do [ "$i" = "$pid" ] || printf ' %s' "$i"; done)
}

DOWN_T="target=\"$NET.$DOWN:$SERVER_PORT\"" LIVE_T="target!=\"$NET.$DOWN:$SERVER_PORT\""
term_at=$SECONDS
stop_server "$DOWN"
exited_at=$SECONDS
expect "count(tcpmsg_probe_up{$DOWN_T} == 0)" 4 15
expect "count(tcpmsg_probe_up{$LIVE_T} == 1)" 12 5
expect "probe_success{instance=\"$NET.$DOWN:$SERVER_PORT\"}" 0 10
expect 'count(probe_success == 1)' 2 5
expect "up{job=\"tcpmsgd-mesh\",instance=\"$NET.$DOWN:$HTTP_PORT\"}" 0 10
expect 'count(up == 1)' 10 5
# The alert: its target down, from each of its probers (down from every
# prober: the server is down; from some, the network).
expect 'count(ALERTS{alertname="TcpmsgProbeTargetDown",alertstate="firing"})' 4 20
expect "count(ALERTS{alertname=\"TcpmsgProbeTargetDown\",alertstate=\"firing\",$DOWN_T})" 4 5
# The counters, over two windows. From a scrape before the SIGTERM: every
# prober counted failures of host 3 (the first comes as its listener
# closes; then a failed connect backs off, up to 10 s between attempts, so a
# later window may hold none), and none of any other path. From a second
# after tcpmsgd exited: no probe of host 3 succeeded, and every other path
# had successes.
while [ $((SECONDS - exited_at - 1)) -lt 3 ]; do sleep 0.5; done
whole=$((SECONDS - term_at + 2)) after=$((SECONDS - exited_at - 1))
expect "count(sum by (instance) (increase(tcpmsg_probe_failures_total{$DOWN_T}[${whole}s])) > 0)" 4 5
expect "sum(increase(tcpmsg_probe_failures_total{$LIVE_T}[${whole}s]))" 0 5
expect "sum(increase(tcpmsg_probe_rtt_seconds_count{$DOWN_T}[${after}s]))" 0 5
expect "count(increase(tcpmsg_probe_rtt_seconds_count{$LIVE_T}[${after}s]) > 0)" 12 5
step "check 3: host $DOWN's server stopped: its 4 probe paths and its blackbox probe fail, the 12 others succeed, TcpmsgProbeTargetDown fires for it alone, from all 4 probers"

# Host 3 leaves the fleet: the file, rewritten without it and renamed into
# place as a configuration tool would, is read again by every prober and by
# Prometheus. Host 3's server and prober are no longer scraped, no prober
# probes it, and its alerts resolve: 3 probers of 3 targets remain.
{ mesh_file 1 2 4 >"$TMP_DIR/fleet.json.new" && mv "$TMP_DIR/fleet.json.new" "$MESH"; } ||
    fail "cannot rewrite $MESH"
expect "count(tcpmsg_probe_up{$DOWN_T}) or vector(0)" 0 15
expect 'count(up{job="tcpmsgd-mesh"})' 3 10
expect 'count(up{job="tcpmsg-probes"})' 3 10
expect 'count(tcpmsg_probe_up == 1)' 9 10
expect 'count(ALERTS{alertname="TcpmsgProbeTargetDown"}) or vector(0)' 0 15
step "check 3: host $DOWN taken out of the fleet's file: no longer scraped nor probed, its alerts resolved, 9 paths left"

# --- Check 4: three benches merged, against the server's counter -------------

SINK_COUNTER="tcpmsg_messages_received_total{job=\"tcpmsgd-mesh\",instance=\"$NET.$SINK:$HTTP_PORT\",mode=\"framed\"}"
before=$(value "$SINK_COUNTER") || exit 1
start_at=$(($(date +%s) + 2))
bench_pids=()
for h in 2 3 4; do
    nsenter -t "${NS_PID[h]}" -n timeout 60 "$TCPMSG" bench "$NET.$SINK:$SERVER_PORT" --connections 2 --depth 4 \
        --count 20000 --interval 0.5 --start-at "$start_at" --hdr-log "$TMP_DIR/gen-$h.hlog" \
        >"$TMP_DIR/bench-$h.log" 2>&1 &
    bench_pids+=($!)
done
for i in 0 1 2; do
    wait "${bench_pids[i]}" || fail "the bench from host $((i + 2)) failed ($(cat "$TMP_DIR/bench-$((i + 2)).log"))"
done
"$TCPMSG" merge --json "$TMP_DIR"/gen-{2,3,4}.hlog >"$TMP_DIR/merged.json" 2>"$TMP_DIR/merge.log" ||
    fail "tcpmsg merge failed"
merged=$(sed -n 's/.*"messages": *\([0-9][0-9]*\).*/\1/p' "$TMP_DIR/merged.json")
[ "$merged" = 60000 ] || fail "the merged logs hold '${merged:-nothing}' messages, the benches sent 3 x 20000"
expect "$SINK_COUNTER" $((before + merged)) 10
step "check 4: 3 logs merged into $merged messages; host $SINK's framed messages went from $before to $Q_VALUE"

# The probes first (they lost probes: they exit 1), so that no client keeps
# the servers' drains waiting; then each server must stop cleanly.
kill -TERM "${PROBER[@]}"
wait "${PROBER[@]}"
CHILD_PIDS=$(for i in $CHILD_PIDS; do [[ " ${PROBER[*]} " == *" $i "* ]] || printf ' %s' "$i"; done)
for h in 1 2 4; do stop_server "$h"; done
step "ok"
