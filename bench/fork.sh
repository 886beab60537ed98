#!/usr/bin/env bash
# bench/fork.sh: tcpmsgd --mode epoll against --mode fork under the same
# `tcpmsg bench` load at 1, 10, 100 and 1,000 concurrent connections,
# interleaved (epoll, fork, epoll, fork, ...): median msgs/s, p50 and p99
# RTT, and the memory of the server with its children (RSS and PSS summed
# over the server and every child, sampled halfway through each run). Then
# the IPC transports (tcpmsg-transports). See bench/fork.md for a result and
# how to read it.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/fork.sh [options] [BUILD_DIR]
  BUILD_DIR              built tree (default: $BUILD_DIR or <repo>/build)
  --build                run `cmake --build BUILD_DIR` first
  -r, --rounds N         runs per mode and connection count, interleaved (default 3)
  -d, --duration SEC     length of each run (default 3)
  -c, --conns LIST       comma-separated connection counts (default 1,10,100,1000)
  -t, --threads N        epoll mode's worker threads (default: tcpmsgd's, one per CPU)
  --client-threads N     `tcpmsg bench --threads` (default 1)
  --size BYTES           message size (default 64)
  --no-transports        skip the tcpmsg-transports table
  --keep-logs            keep the server logs and raw JSON, print where
  --markdown             print Markdown tables (default: plain text)
  -h, --help
Exit: 0 when fork >= 0.8 x epoll msgs/s at 1 and 10 connections; 1 when
that target is missed or a run had errors; 2 usage or setup.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=fork.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"
BUILD_DIR=${BUILD_DIR:-$REPO/build}
ROUNDS=3 DURATION=3 CONNS=1,10,100,1000 THREADS="" CLIENT_THREADS=1 SIZE=64
TRANSPORTS=1 KEEP=0 FORMAT=text BUILD=0
TPUT_TARGET=0.8 # fork msgs/s >= 0.8 x epoll at 1-10 connections

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$SHIFT" -eq 0 ]; then
        SHIFT=1
        case $1 in
        -c | --conns) CONNS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        -t | --threads) THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --client-threads) CLIENT_THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --size) SIZE=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --no-transports) TRANSPORTS=0 ;;
        --markdown) FORMAT=markdown ;;
        *) usage >&2; exit 2 ;;
        esac
    fi
    shift "$SHIFT"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $CLIENT_THREADS =~ ^[1-9][0-9]*$ && $SIZE =~ ^[1-9][0-9]*$ ]] ||
    die "--rounds, --client-threads and --size take positive integers"
[[ -z $THREADS || $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads takes a positive integer"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration takes seconds"
[[ $CONNS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "bad --conns '$CONNS'"

if [ "$BUILD" = 1 ]; then
    cmake --build "$BUILD_DIR" -j2 --target tcpmsgd tcpmsg tcpmsg-transports >&2 || die "build failed"
fi
TCPMSGD=${TCPMSGD:-$BUILD_DIR/bin/tcpmsgd}
TCPMSG=${TCPMSG:-$BUILD_DIR/bin/tcpmsg}
TRANSPORTS_BIN=${TRANSPORTS_BIN:-$BUILD_DIR/bin/tcpmsg-transports}
for b in "$TCPMSGD" "$TCPMSG"; do
    [ -x "$b" ] || die "$b not found: cmake -S . -B build && cmake --build build (or pass --build)"
done
SERVER_CMD=() CLIENT_CMD=()

# 1,000 connections: the client holds 1,000 sockets, the server (epoll mode)
# as many, so both need more than the usual 1,024 descriptors.
MAX_CONNS=0
IFS=, read -r -a conn_list <<<"$CONNS"
for c in "${conn_list[@]}"; do [ "$c" -gt "$MAX_CONNS" ] && MAX_CONNS=$c; done
want=$((MAX_CONNS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || die "need ulimit -n $want for $MAX_CONNS connections (hard limit $(ulimit -Hn))"
fi

work_init tcpmsg-fork-bench

# mem_kib PID: "RSS PSS" in KiB summed over PID and its children. RSS counts
# a page shared by several processes (the children's copy-on-write pages)
# once per process; PSS divides it among them, so it is the fairer total.
mem_kib() {
    local pids
    pids=$(awk -v pp="$1" '$4 == pp { printf " /proc/%s", $1 }' /proc/[0-9]*/stat 2>/dev/null || true)
    # One awk over every file: a process per child would cost more than the
    # server we are measuring. The paths hold no blanks: split them.
    # shellcheck disable=SC2046
    awk 'FNR == 1 && /^Name:/ { n++ } /^VmRSS:/ { rss += $2 } /^Pss:/ { pss += $2 }
        END { printf "%d %d %d\n", rss, pss, n - 1 }' \
        "/proc/$1/status" "/proc/$1/smaps_rollup" \
        $(for p in $pids; do printf '%s/status %s/smaps_rollup ' "$p" "$p"; done) 2>/dev/null || true
}

# fields FILE: "MSGS_PER_S P50_US P99_US ERRORS" from tcpmsg bench --json.
fields() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["msgs_per_s"], d["rtt_us"]["p50"], d["rtt_us"]["p99"], d["errors"]["total"])' "$1" 2>/dev/null || true
    else
        jq -r '"\(.msgs_per_s) \(.rtt_us.p50) \(.rtt_us.p99) \(.errors.total)"' "$1" 2>/dev/null || true
    fi
}

# run_one MODE PID PORT CONNS ROUND: one client run; appends to the mode's
# samples. Returns 1 when the run failed or had errors.
run_one() {
    local mode=$1 pid=$2 port=$3 c=$4 round=$5 out vals msgs p50 p99 errs mem rss pss kids
    out="$WORK/${c}.$mode.$round.json"
    client_start "$out" "$port" "$c" 1 "$SIZE"
    # Halfway through, the connections are all open and busy.
    sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
    mem=$(mem_kib "$pid")
    client_wait "$mode" "$pid" "$out" "${c} connections" || return 1
    vals=$(fields "$out")
    [ -n "$vals" ] || return 1
    read -r msgs p50 p99 errs <<<"$vals"
    read -r rss pss kids <<<"$mem"
    printf '  %-5s %4d conns round %d/%d: %10.0f msg/s  p50 %8.1f us  p99 %8.1f us  rss %7d KiB  pss %7d KiB  children %d%s\n' \
        "$mode" "$c" "$round" "$ROUNDS" "$msgs" "$p50" "$p99" "$rss" "$pss" "$kids" \
        "$([ "$errs" = 0 ] || echo "  errors=$errs")" >&2
    eval "${mode}_MSGS+=($msgs) ${mode}_P50+=($p50) ${mode}_P99+=($p99)"
    eval "${mode}_RSS+=($rss) ${mode}_PSS+=($pss)"
    [ "$CLIENT_RC" = 0 ] && [ "$errs" = 0 ]
}

ROWS=()
FAILED=0
epoll_args=(--bind 127.0.0.1 --port 0 --no-http)
if [ -n "$THREADS" ]; then epoll_args+=(--threads "$THREADS"); fi
for c in "${conn_list[@]}"; do
    echo "$c connections: $ROUNDS rounds of ${DURATION}s, interleaved" >&2
    start_server epoll 'server socket bound' "$TCPMSGD" "${epoll_args[@]}" --max-conns $((c + 100))
    e_pid=$SERVER_PID e_port=$SERVER_PORT
    start_server fork 'server socket bound' "$TCPMSGD" --mode fork --bind 127.0.0.1 --port 0 --no-http \
        --max-conns $((c + 100)) --max-children $((c + 100))
    f_pid=$SERVER_PID f_port=$SERVER_PORT
    epoll_MSGS=() epoll_P50=() epoll_P99=() epoll_RSS=() epoll_PSS=()
    fork_MSGS=() fork_P50=() fork_P99=() fork_RSS=() fork_PSS=()
    for ((r = 1; r <= ROUNDS; r++)); do
        run_one epoll "$e_pid" "$e_port" "$c" "$r" || FAILED=1
        run_one fork "$f_pid" "$f_port" "$c" "$r" || FAILED=1
    done
    stop_all
    if [ ${#epoll_MSGS[@]} -eq 0 ] || [ ${#fork_MSGS[@]} -eq 0 ]; then die "$c connections: no successful run"; fi
    em=$(median "${epoll_MSGS[@]}") fm=$(median "${fork_MSGS[@]}")
    tr=$(ratio "$fm" "$em") ok=none
    if [ "$c" -le 10 ]; then
        ok=yes
        meets "$tr" '>=' "$TPUT_TARGET" || { ok=no; FAILED=1; }
    fi
    ROWS+=("$c|$em|$fm|$tr|$ok|$(median "${epoll_P50[@]}")|$(median "${fork_P50[@]}")|$(median "${epoll_P99[@]}")|$(median "${fork_P99[@]}")|$(median "${epoll_RSS[@]}")|$(median "${fork_RSS[@]}")|$(median "${epoll_PSS[@]}")|$(median "${fork_PSS[@]}")|$(spread "${epoll_MSGS[@]}")%/$(spread "${fork_MSGS[@]}")%")
done

SETUP="$(setup_line), epoll threads ${THREADS:-$(nproc) (default)}, client threads $CLIENT_THREADS"
SETUP+=", ${SIZE} B messages, depth 1, medians of $ROUNDS interleaved ${DURATION}s runs"
if [ "$FORMAT" = markdown ]; then
    echo "| conns | epoll msg/s | fork msg/s | fork/epoll | p50 us epoll / fork | p99 us epoll / fork | RSS MiB epoll / fork | PSS MiB epoll / fork | spread |"
    echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
else
    printf '%6s %12s %12s %10s %21s %21s %19s %19s  %s\n' conns "epoll msg/s" "fork msg/s" fork/epoll \
        "p50 us epoll/fork" "p99 us epoll/fork" "RSS MiB epoll/fork" "PSS MiB epoll/fork" spread
fi
for row in "${ROWS[@]}"; do
    IFS='|' read -r c em fm tr ok ep fp e99 f99 er fr eps fps sp <<<"$row"
    if [ "$FORMAT" = markdown ]; then
        [ "$ok" = no ] && tr="**$tr** (miss)"
        printf '| %s | %.0f | %.0f | %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %s |\n' \
            "$c" "$em" "$fm" "$tr" "$ep" "$fp" "$e99" "$f99" "$(awk -v k="$er" 'BEGIN{print k/1024}')" \
            "$(awk -v k="$fr" 'BEGIN{print k/1024}')" "$(awk -v k="$eps" 'BEGIN{print k/1024}')" \
            "$(awk -v k="$fps" 'BEGIN{print k/1024}')" "$sp"
    else
        printf '%6s %12.0f %12.0f %10s %10.1f/%-10.1f %10.1f/%-10.1f %9.1f/%-9.1f %9.1f/%-9.1f  %s\n' \
            "$c" "$em" "$fm" "$(mark "$tr" "$ok")" "$ep" "$fp" "$e99" "$f99" \
            "$(awk -v k="$er" 'BEGIN{print k/1024}')" "$(awk -v k="$fr" 'BEGIN{print k/1024}')" \
            "$(awk -v k="$eps" 'BEGIN{print k/1024}')" "$(awk -v k="$fps" 'BEGIN{print k/1024}')" "$sp"
    fi
done
echo "target: fork msg/s >= $TPUT_TARGET x epoll at 1-10 connections$([ "$FORMAT" = markdown ] || echo '; ! = missed')"
echo "memory: summed over the server and its children halfway through each run; spread: (max - min) / median msg/s, epoll/fork"
echo "$SETUP"

if [ "$TRANSPORTS" = 1 ]; then
    if [ -x "$TRANSPORTS_BIN" ]; then
        echo
        "$TRANSPORTS_BIN" --size "$SIZE" --duration "$DURATION" || FAILED=1
    else
        echo "$BENCH_NAME: $TRANSPORTS_BIN not built: no transports table" >&2
    fi
fi
exit "$FAILED"
