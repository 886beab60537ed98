#!/usr/bin/env bash
# bench/run.sh: measures tcpmsgd against refecho (bench/refecho.c, "the least
# an echo server can do") with the same `tcpmsg bench` load, interleaved
# (ref, tcpmsgd, ref, tcpmsgd, ...), and prints the median msgs/s and p50 of
# each plus their ratios, and tcpmsgd's system calls per message (from its
# /metrics; refecho's only with --strace-ref). See bench/README.md for how
# to read the result.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [options] [BUILD_DIR]
  BUILD_DIR              built tree (default: $BUILD_DIR or <repo>/build)
  --build                run `cmake --build BUILD_DIR` first
  -r, --rounds N         runs per server and shape, interleaved (default 3)
  -d, --duration SEC     length of each run (default 3)
  -t, --threads N        worker threads of both servers (default 1)
  --client-threads N     `tcpmsg bench --threads` (default: same as --threads)
  --shapes LIST          comma-separated CONNSxDEPTHxSIZE (default:
                         1x1x64,1x1x4096,50x1x64,50x1x4096,50x16x64,50x16x4096)
  --pin split|same       pin the servers to CPU 0 and the client to CPU 1
                         (split) or everything to CPU 0 (same); default: none
  --server-args ARGS     more tcpmsgd options, e.g. "--io uring" (word-split)
  --client-args ARGS     more `tcpmsg bench` options, for both servers' runs
  --strace-ref           count refecho's system calls with `strace -c -f` (slows
                         refecho: its msg/s, p50 and CPU are then not a yardstick)
  --keep-logs            keep the server logs and raw JSON, print where
  --markdown | --json    output format (default: a plain-text table)
  -h, --help
Binaries: $REFECHO, $TCPMSGD, $TCPMSG override BUILD_DIR/bin/{refecho,tcpmsgd,tcpmsg}.
Exit: 0 all targets met; 1 a target missed or a run had errors; 2 usage or setup.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=run.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"
BUILD_DIR=${BUILD_DIR:-$REPO/build}
ROUNDS=3 DURATION=3 THREADS=1 CLIENT_THREADS="" FORMAT=text BUILD=0 PIN=none KEEP=0 STRACE_REF=0
SHAPES=1x1x64,1x1x4096,50x1x64,50x1x4096,50x16x64,50x16x4096
TPUT_TARGET=0.95  # tcpmsgd msgs/s >= 0.95 x ref, every shape
P50_TARGET=1.05   # tcpmsgd p50 <= 1.05 x ref, 1-connection shapes
CPU_TARGET=1.05   # tcpmsgd CPU per message <= 1.05 x ref, every shape
SERVER_ARGS=() CLIENT_ARGS=()

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$SHIFT" -eq 0 ]; then
        SHIFT=1
        case $1 in
        -t | --threads) THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --client-threads) CLIENT_THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --shapes) SHAPES=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --pin) PIN=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --server-args) read -r -a SERVER_ARGS <<<"${2?"$1 needs a value"}"; SHIFT=2 ;;
        --client-args) read -r -a CLIENT_ARGS <<<"${2?"$1 needs a value"}"; SHIFT=2 ;;
        --strace-ref) STRACE_REF=1 ;;
        --markdown) FORMAT=markdown ;;
        --json) FORMAT=json ;;
        *) usage >&2; exit 2 ;;
        esac
    fi
    shift "$SHIFT"
done
CLIENT_THREADS=${CLIENT_THREADS:-$THREADS}
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ && $CLIENT_THREADS =~ ^[1-9][0-9]*$ ]] ||
    die "--rounds and --threads take positive integers"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration takes seconds"
[[ $SHAPES =~ ^[0-9]+x[0-9]+x[0-9]+(,[0-9]+x[0-9]+x[0-9]+)*$ ]] || die "bad --shapes '$SHAPES'"

if [ "$BUILD" = 1 ]; then
    cmake --build "$BUILD_DIR" -j2 --target refecho tcpmsgd tcpmsg >&2 || die "build failed"
fi
REFECHO=${REFECHO:-$BUILD_DIR/bin/refecho}
TCPMSGD=${TCPMSGD:-$BUILD_DIR/bin/tcpmsgd}
TCPMSG=${TCPMSG:-$BUILD_DIR/bin/tcpmsg}
for b in "$REFECHO" "$TCPMSGD" "$TCPMSG"; do
    [ -x "$b" ] || die "$b not found: cmake -S . -B build && cmake --build build (or pass --build)"
done
SERVER_CMD=() CLIENT_CMD=()
case $PIN in
none) ;;
split | same)
    command -v taskset >/dev/null || die "--pin needs taskset"
    SERVER_CMD=(taskset -c 0) CLIENT_CMD=(taskset -c "$([ "$PIN" = same ] && echo 0 || echo 1)")
    ;;
*) die "--pin takes split or same" ;;
esac
if [ "$STRACE_REF" = 1 ]; then command -v strace >/dev/null || die "--strace-ref needs strace"; fi

work_init tcpmsg-bench

# The system calls tcpmsgd's loops count (tcpmsg_syscalls_total{op}), and
# refecho's calls of the same kinds for --strace-ref.
SYSCALLS=read,write,writev,accept4,epoll_wait,epoll_pwait,epoll_pwait2,epoll_ctl,io_uring_enter,timerfd_settime

# server_syscalls HTTP_PORT: the sum of tcpmsg_syscalls_total over every op
# from tcpmsgd's Prometheus /metrics; nothing when the server does not export
# it (an older tcpmsgd) or curl is missing.
server_syscalls() {
    command -v curl >/dev/null || return 0
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics?format=prometheus" 2>/dev/null |
        awk '/^tcpmsg_syscalls_total[{ ]/ { s += $NF; n++ } END { if (n) printf "%.0f", s }' || true
}

# per_msg CALLS MESSAGES: calls per message, "nan" when either is missing.
per_msg() {
    awk -v c="$1" -v n="$2" 'BEGIN { if (c != "" && n > 0) printf "%.4g", c / n; else print "nan" }'
}

# strace_calls FILE: the calls of the kinds in SYSCALLS in a `strace -c`
# summary (columns: % time, seconds, usecs/call, calls, [errors,] syscall).
strace_calls() {
    awk -v kinds=",$SYSCALLS," 'index(kinds, "," $NF ",") && $4 ~ /^[0-9]+$/ { s += $4 }
        END { printf "%.0f", s }' "$1" 2>/dev/null
}

# fmt_sys VALUE: a calls-per-message value for the tables, "n/a" when absent;
# two significant digits below 0.1 (io_uring under load is far below 1).
fmt_sys() {
    case $1 in
    nan | "") echo n/a ;;
    *) awk -v v="$1" 'BEGIN { printf (v >= 0.1 || v == 0 ? "%.2f" : "%.2g"), v }' ;;
    esac
}

# run_client SERVER PID PORT CONNS DEPTH SIZE ROUND [HTTP_PORT]: one `tcpmsg
# bench`; appends msgs/s, p50 and the server's CPU time per message (its user
# + system time over the run, all threads, divided by the messages answered)
# to the server's samples, and with HTTP_PORT (tcpmsgd) its system calls per
# message (the change of tcpmsg_syscalls_total over the run, "nan" when it is
# not exported); returns 1 on client errors.
run_client() {
    local server=$1 pid=$2 port=$3 c=$4 d=$5 s=$6 round=$7 http=${8:-} out t0 cpu sys sys0="" sys1="" calls=""
    out="$WORK/${c}x${d}x${s}.$server.$round.json"
    t0=$(cpu_ticks "$pid")
    if [ -n "$http" ]; then sys0=$(server_syscalls "$http"); fi
    client_start "$out" "$port" "$c" "$d" "$s"
    if ! client_wait "$server" "$pid" "$out" "${c}x${d}x${s}"; then
        # "nan" in every column keeps the rounds paired (paired_ratio).
        if [ "$server" = refecho ]; then REF_MSGS+=(nan) REF_P50+=(nan) REF_CPU+=(nan) REF_N+=(0); else
            D_MSGS+=(nan) D_P50+=(nan) D_CPU+=(nan) D_SYS+=(nan); fi
        return 1
    fi
    cpu=$(cpu_us_per_msg $(($(cpu_ticks "$pid") - t0)) "$NMSGS")
    if [ -n "$sys0" ]; then sys1=$(server_syscalls "$http"); fi
    if [ -n "$sys1" ]; then calls=$((sys1 - sys0)); fi
    sys=$(per_msg "$calls" "$NMSGS")
    printf '  %-8s round %d/%d: %12.1f msg/s  p50 %9.1f us  cpu %7.3f us/msg  sys %s/msg%s\n' \
        "$server" "$round" "$ROUNDS" "$MSGS" "$P50" "$cpu" "$(fmt_sys "$sys")" \
        "$([ "$ERRS" = 0 ] || echo "  errors=$ERRS")" >&2
    if [ "$server" = refecho ]; then REF_MSGS+=("$MSGS") REF_P50+=("$P50") REF_CPU+=("$cpu") REF_N+=("$NMSGS"); else
        D_MSGS+=("$MSGS") D_P50+=("$P50") D_CPU+=("$cpu") D_SYS+=("$sys"); fi
    [ "$CLIENT_RC" = 0 ] && [ "$ERRS" = 0 ]
}

# start_refecho SHAPE_NUMBER: refecho, under `strace -c -f` with --strace-ref
# (only the calls of SYSCALLS stop it, through seccomp). Sets ref_pid (refecho
# itself, not strace), ref_port and ref_trace (the summary strace writes when
# refecho exits; empty without --strace-ref).
start_refecho() {
    local saved=("${SERVER_CMD[@]}")
    ref_trace=""
    if [ "$STRACE_REF" = 1 ]; then
        ref_trace="$WORK/refecho.$1.strace"
        SERVER_CMD+=(strace -f -c -q --seccomp-bpf -e "trace=$SYSCALLS" -o "$ref_trace")
    fi
    start_server refecho 'port=' "$REFECHO" --bind 127.0.0.1 --port 0 --threads "$THREADS"
    SERVER_CMD=("${saved[@]}")
    ref_pid=$SERVER_PID ref_port=$SERVER_PORT
    if [ "$STRACE_REF" = 1 ]; then
        # strace holds off SIGTERM while it runs a program: stop refecho itself.
        ref_pid=$(pgrep -P "$SERVER_PID" | head -n 1)
        [ -n "$ref_pid" ] || die "refecho under strace: no traced process"
        PIDS+=("$ref_pid")
    fi
}

# paired_ratio "A..." "B...": the median of B[i] / A[i], each tcpmsgd run
# against the refecho run just before it; "nan" when no pair has both. The
# machine's speed drifts within a minute, and on 2 cores the scheduler puts
# the server and the client on one vCPU or on two, which changes a server's
# CPU per message by half (7 against 11 us at 8 x 1 x 4 KiB): the ratio of the
# two servers' medians can compare runs of different placements, a neighbour
# pair shares its conditions.
paired_ratio() {
    local -a a b rs=()
    local i
    read -r -a a <<<"$1"
    read -r -a b <<<"$2"
    for ((i = 0; i < ${#a[@]} && i < ${#b[@]}; i++)); do
        rs+=("$(ratio "${b[$i]}" "${a[$i]}")")
    done
    awk -v m="$(median_or_nan ${rs[@]+"${rs[@]}"})" 'BEGIN { if (m == "nan") print m; else printf "%.3f", m }'
}

# --- the measurement --------------------------------------------------------
# One row per shape, '|'-separated: label conns depth size, ref and tcpmsgd
# median msgs/s, ratio, ok; the same for p50; msgs/s spread; the raw runs.
ROWS=()
FAILED=0
IFS=, read -r -a shape_list <<<"$SHAPES"
n=0
for shape in "${shape_list[@]}"; do
    IFS=x read -r c d s <<<"$shape"
    n=$((n + 1))
    label="${c}c d${d} ${s}B"
    echo "[$n/${#shape_list[@]}] $label: $ROUNDS rounds of ${DURATION}s, interleaved" >&2
    # Fresh servers per shape: no state carried over from the previous load.
    start_refecho "$n"
    # The HTTP endpoint on port 0 too: its port comes from the start-up log.
    start_server tcpmsgd 'server socket bound' "$TCPMSGD" --bind 127.0.0.1 --port 0 --http-port 0 \
        --threads "$THREADS" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"}
    d_pid=$SERVER_PID d_port=$SERVER_PORT
    await_log tcpmsgd "$d_pid" 'http endpoint listening' http_port
    d_http=$LOG_VALUE
    REF_MSGS=() REF_P50=() REF_CPU=() REF_N=() D_MSGS=() D_P50=() D_CPU=() D_SYS=()
    for ((r = 1; r <= ROUNDS; r++)); do
        run_client refecho "$ref_pid" "$ref_port" "$c" "$d" "$s" "$r" || FAILED=1
        run_client tcpmsgd "$d_pid" "$d_port" "$c" "$d" "$s" "$r" "$d_http" || FAILED=1
    done
    stop_all
    # refecho's calls over all its rounds (and its start-up, a few dozen) per
    # message: strace -c sums a process's whole life.
    rsys=nan
    if [ -n "$ref_trace" ]; then
        rsys=$(per_msg "$(strace_calls "$ref_trace")" "$(printf '%s\n' "${REF_N[@]}" | awk '{ s += $1 } END { print s + 0 }')")
    fi
    dsys=$(median_or_nan "${D_SYS[@]}")
    if [ ${#REF_MSGS[@]} -eq 0 ] || [ ${#D_MSGS[@]} -eq 0 ]; then die "$label: no successful run"; fi
    rm=$(median_or_nan "${REF_MSGS[@]}") dm=$(median_or_nan "${D_MSGS[@]}")
    rp=$(median_or_nan "${REF_P50[@]}") dp=$(median_or_nan "${D_P50[@]}")
    rc=$(median_or_nan "${REF_CPU[@]}") dc=$(median_or_nan "${D_CPU[@]}")
    tr=$(paired_ratio "${REF_MSGS[*]}" "${D_MSGS[*]}")
    pr=$(paired_ratio "${REF_P50[*]}" "${D_P50[*]}")
    cr=$(paired_ratio "${REF_CPU[*]}" "${D_CPU[*]}")
    tok=yes pok=none cok=yes
    meets "$tr" '>=' "$TPUT_TARGET" || { tok=no; FAILED=1; }
    meets "$cr" '<=' "$CPU_TARGET" || { cok=no; FAILED=1; }
    if [ "$c" = 1 ]; then
        pok=yes
        meets "$pr" '<=' "$P50_TARGET" || { pok=no; FAILED=1; }
    fi
    sp="$(spread "${REF_MSGS[@]}")%/$(spread "${D_MSGS[@]}")%"
    ROWS+=("$label|$c|$d|$s|$rm|$dm|$tr|$tok|$rp|$dp|$pr|$pok|$sp|$(join "${REF_MSGS[@]}")|$(join "${D_MSGS[@]}")|$(join "${REF_P50[@]}")|$(join "${D_P50[@]}")|$rc|$dc|$cr|$cok|$(join "${REF_CPU[@]}")|$(join "${D_CPU[@]}")|$rsys|$dsys|$(join "${D_SYS[@]}")")
done

# --- the report -------------------------------------------------------------
SETUP=$(setup_line)
SETUP+=", server threads $THREADS, client threads $CLIENT_THREADS"
SETUP+=", medians of $ROUNDS interleaved ${DURATION}s runs (ratios: median of the run pairs)"
if [ "$PIN" != none ]; then SETUP+=", pinned $PIN"; fi
if [ ${#SERVER_ARGS[@]} -gt 0 ]; then SETUP+=", tcpmsgd ${SERVER_ARGS[*]}"; fi
if [ ${#CLIENT_ARGS[@]} -gt 0 ]; then SETUP+=", bench ${CLIENT_ARGS[*]}"; fi
if [ "$STRACE_REF" = 1 ]; then SETUP+=", refecho under strace -c (its msg/s, p50 and CPU are slowed by it)"; fi

case $FORMAT in
text)
    printf '%-15s %12s %14s %8s %11s %15s %8s %11s %11s %8s %8s %8s  %s\n' shape "ref msg/s" \
        "tcpmsgd msg/s" ratio "ref p50 us" "tcpmsgd p50 us" ratio "ref cpu us" "tcpmsgd cpu" \
        ratio "ref sys" "tcpmsgd sys" "spread ref/tcpmsgd"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ _ _ rm dm tr tok rp dp pr pok sp _ _ _ _ rc dc cr cok _ _ rsys dsys _ <<<"$row"
        printf '%-15s %12.0f %14.0f %8s %11.1f %15.1f %8s %11.3f %11.3f %8s %8s %8s  %s\n' "$label" "$rm" \
            "$dm" "$(mark "$tr" "$tok")" "$rp" "$dp" "$(mark "$pr" "$pok")" "$rc" "$dc" \
            "$(mark "$cr" "$cok")" "$(fmt_sys "$rsys")" "$(fmt_sys "$dsys")" "$sp"
    done
    echo "targets: msg/s ratio >= $TPUT_TARGET every shape; p50 ratio <= $P50_TARGET with 1 connection;" \
        "CPU per message ratio <= $CPU_TARGET every shape; ! = missed"
    echo "cpu: the server process's user + system time over the run (all threads) per message, in us"
    echo "sys: system calls per message (tcpmsgd: its tcpmsg_syscalls_total over the run; refecho:" \
        "the same kinds under strace -c, with --strace-ref); n/a: not measured"
    echo "spread: (max - min) / median of each server's msg/s runs; a ratio closer to 1 than that is noise"
    echo "$SETUP"
    ;;
markdown)
    echo "| shape | ref msg/s | tcpmsgd msg/s | ratio | ref p50 us | tcpmsgd p50 us | ratio |" \
        "ref CPU us/msg | tcpmsgd CPU us/msg | ratio | ref syscalls/msg | tcpmsgd syscalls/msg | spread |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ _ _ rm dm tr tok rp dp pr pok sp _ _ _ _ rc dc cr cok _ _ rsys dsys _ <<<"$row"
        if [ "$tok" = no ]; then tr="**$tr** (miss)"; fi
        if [ "$pok" = no ]; then pr="**$pr** (miss)"; fi
        if [ "$cok" = no ]; then cr="**$cr** (miss)"; fi
        printf '| %s | %.0f | %.0f | %s | %.1f | %.1f | %s | %.3f | %.3f | %s | %s | %s | %s |\n' "$label" \
            "$rm" "$dm" "$tr" "$rp" "$dp" "$pr" "$rc" "$dc" "$cr" "$(fmt_sys "$rsys")" "$(fmt_sys "$dsys")" "$sp"
    done
    echo
    echo "Ratios are tcpmsgd / ref. Targets: msg/s ratio >= $TPUT_TARGET at every shape;" \
        "p50 ratio <= $P50_TARGET with 1 connection; CPU per message (the server process's" \
        "user + system time over the run, all threads, per message) ratio <= $CPU_TARGET. System calls per message:" \
        "tcpmsgd's tcpmsg_syscalls_total over the run, refecho's calls of the same kinds under strace -c" \
        "(--strace-ref); n/a: not measured. Spread: (max - min) / median of the" \
        "msg/s runs, ref/tcpmsgd. $SETUP."
    ;;
json)
    printf '{"setup":%s,"rounds":%s,"duration_s":%s,"server_threads":%s,"client_threads":%s,' \
        "$(jstr "$SETUP")" "$ROUNDS" "$DURATION" "$THREADS" "$CLIENT_THREADS"
    printf '"targets":{"msgs_ratio_min":%s,"p50_ratio_max_1conn":%s,"cpu_ratio_max":%s},"shapes":[' \
        "$TPUT_TARGET" "$P50_TARGET" "$CPU_TARGET"
    sep=""
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label c d s rm dm tr tok rp dp pr pok sp rms dms rps dps rc dc cr cok rcs dcs \
            rsys dsys dsyss <<<"$row"
        printf '%s{"shape":%s,"connections":%s,"depth":%s,"size":%s,' "$sep" "$(jstr "$label")" "$c" "$d" "$s"
        printf '"ref":{"msgs_per_s":%s,"p50_us":%s,"cpu_us_per_msg":%s,"runs_msgs_per_s":[%s],' \
            "$rm" "$rp" "${rc/nan/null}" "$rms"
        printf '"runs_p50_us":[%s],"runs_cpu_us_per_msg":[%s],"syscalls_per_msg":%s},' "$rps" \
            "${rcs//nan/null}" "${rsys/nan/null}"
        printf '"tcpmsgd":{"msgs_per_s":%s,"p50_us":%s,"cpu_us_per_msg":%s,"runs_msgs_per_s":[%s],' \
            "$dm" "$dp" "${dc/nan/null}" "$dms"
        printf '"runs_p50_us":[%s],"runs_cpu_us_per_msg":[%s],"syscalls_per_msg":%s,' "$dps" \
            "${dcs//nan/null}" "${dsys/nan/null}"
        printf '"runs_syscalls_per_msg":[%s]},' "${dsyss//nan/null}"
        printf '"msgs_spread_pct":{"ref":%s,"tcpmsgd":%s},' "${sp%%\%/*}" "$(echo "${sp#*/}" | tr -d %)"
        printf '"msgs_ratio":%s,"msgs_ok":%s,"p50_ratio":%s,"p50_ok":%s,"cpu_ratio":%s,"cpu_ok":%s}' \
            "${tr/nan/null}" "$(jbool "$tok")" "${pr/nan/null}" "$(jbool "$pok")" "${cr/nan/null}" \
            "$(jbool "$cok")"
        sep=","
    done
    printf '],"all_targets_met":%s}\n' "$([ "$FAILED" = 0 ] && echo true || echo false)"
    ;;
esac
exit "$FAILED"
