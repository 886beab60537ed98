# bench/lib.sh: shell functions shared by the bench/ scripts: the options
# they all take, the process bookkeeping (every process started is killed on exit), server
# start-up on port 0, one `tcpmsg bench` run, and the statistics. Sourced, not
# run. The caller sets BENCH_NAME (for messages), DURATION, CLIENT_THREADS,
# TCPMSG, KEEP and the SERVER_CMD and CLIENT_CMD prefix arrays.
# Globals go both ways (the caller sets SERVER_CMD, KEEP...; these functions
# set SERVER_PORT, MSGS...), which shellcheck cannot see from this file alone.
# shellcheck shell=bash disable=SC2034,SC2153

die() { echo "$BENCH_NAME: $*" >&2; exit 2; }

# common_option ARG...: the options every script takes (its own usage() for
# -h). Sets SHIFT to the words used, 0 when ARG is the script's own to parse.
common_option() {
    SHIFT=1
    case $1 in
    --build) BUILD=1 ;;
    -r | --rounds) ROUNDS=${2:?"$1 needs a value"}; SHIFT=2 ;;
    -d | --duration) DURATION=${2:?"$1 needs a value"}; SHIFT=2 ;;
    --keep-logs) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) SHIFT=0 ;;
    *) BUILD_DIR=$1 ;;
    esac
}

# --- processes: every one we start is killed on the way out ----------------
# work_init PREFIX: makes WORK, a scratch directory, and installs the traps
# that stop every PID in PIDS and remove WORK (kept with KEEP=1).
work_init() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    stop_all
    if [ "$KEEP" = 1 ]; then echo "$BENCH_NAME: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

# stop_all: SIGTERM to every PID we started, then reap them.
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# alive PID: true while PID runs. A child that exited but was not reaped yet
# is a zombie, which `kill -0` still finds, so look at its state too.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
    [ "$state" != Z ]
}

# forget_pid PID: drops a reaped PID from PIDS.
forget_pid() {
    local pid keep=()
    for pid in "${PIDS[@]}"; do
        if [ "$pid" != "$1" ]; then keep+=("$pid"); fi
    done
    PIDS=("${keep[@]}")
}

# await_log NAME PID PATTERN KEY: sets LOG_VALUE to N from " KEY=N" on the
# first line of WORK/NAME.log matching PATTERN. Waits up to 5 s; dies if PID
# exits first.
await_log() {
    local log="$WORK/$1.log" i
    for ((i = 0; i < 100; i++)); do
        LOG_VALUE=$(grep -m1 "$3" "$log" 2>/dev/null | grep -o " $4=[0-9]*" | head -n1 | cut -d= -f2 || true)
        [ -n "$LOG_VALUE" ] && return 0
        alive "$2" || { cat "$log" >&2; die "$1 exited at start-up"; }
        sleep 0.05
    done
    cat "$log" >&2
    die "$1 did not report its $4 within 5 s"
}

# start_server NAME READY_PATTERN CMD...: sets SERVER_PID and SERVER_PORT from
# the first "port=N" on the log line matching READY_PATTERN.
start_server() {
    local name=$1 ready=$2
    shift 2
    "${SERVER_CMD[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    await_log "$name" "$SERVER_PID" "$ready" port
    SERVER_PORT=$LOG_VALUE
}

# --- one client run ---------------------------------------------------------
# client_start OUT PORT CONNS DEPTH SIZE: starts `tcpmsg bench --json` against
# 127.0.0.1:PORT in the background, its JSON in OUT and stderr in OUT.err,
# under a watchdog of DURATION + 30 s. Sets CLIENT_PID.
client_start() {
    local out=$1 port=$2 c=$3 d=$4 s=$5 watchdog
    watchdog=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 30 }')
    timeout -k 5 "$watchdog" "${CLIENT_CMD[@]}" "$TCPMSG" bench --connections "$c" --depth "$d" \
        --size "$s" --duration "$DURATION" --threads "$CLIENT_THREADS" --json \
        ${CLIENT_ARGS[@]+"${CLIENT_ARGS[@]}"} "127.0.0.1:$port" >"$out" 2>"$out.err" &
    CLIENT_PID=$!
    PIDS+=("$CLIENT_PID")
}

# client_wait SERVER SERVER_PID OUT SHAPE: waits for the client started by
# client_start; sets CLIENT_RC and MSGS P50 ERRS from its result. Dies if the
# server is gone; returns 1 (with a message) if the client left no result.
client_wait() {
    local server=$1 pid=$2 out=$3 shape=$4 vals
    CLIENT_RC=0
    wait "$CLIENT_PID" || CLIENT_RC=$?
    forget_pid "$CLIENT_PID"
    vals=$(parse_result "$out")
    if ! alive "$pid"; then
        tail -n 20 "$WORK/$server.log" >&2
        die "$server exited during the $shape run (its log above)"
    fi
    if [ -z "$vals" ]; then
        echo "$BENCH_NAME: $server $shape: tcpmsg bench exit $CLIENT_RC, no result:" >&2
        cat "$out.err" >&2
        return 1
    fi
    read -r MSGS P50 ERRS NMSGS <<<"$vals"
}

# cpu_ticks PID: the process's user + system CPU time so far, all its threads,
# in clock ticks (/proc/PID/stat fields 14 and 15; the command name in field
# 2 may hold spaces, so count from its closing parenthesis).
cpu_ticks() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}

# cpu_us_per_msg TICKS MESSAGES: CPU microseconds per message.
cpu_us_per_msg() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print "nan" }'
}

# parse_result FILE: prints "MSGS_PER_S P50_US ERRORS_TOTAL MESSAGES" from tcpmsg
# bench --json, or nothing when the file does not hold those fields.
parse_result() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["msgs_per_s"], d["rtt_us"]["p50"], d["errors"]["total"], d["messages"])' "$1" 2>/dev/null || true
    elif command -v jq >/dev/null; then
        jq -r '"\(.msgs_per_s) \(.rtt_us.p50) \(.errors.total) \(.messages)"' "$1" 2>/dev/null || true
    else
        # The four keys are unique in the document, so a flat match is enough.
        local k v out=""
        for k in msgs_per_s p50 total messages; do
            v=$(grep -o "\"$k\" *: *[-0-9.eE+]*" "$1" | head -n1 | sed 's/.*: *//' || true)
            [ -n "$v" ] || return 0
            out+="$v "
        done
        echo "${out% }"
    fi
}

# --- statistics and formatting ----------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# median_or_nan V...: the median of the values that are numbers, "nan" when
# none is (a measurement that was not available).
median_or_nan() {
    local v nums=()
    for v in "$@"; do if [ "$v" != nan ]; then nums+=("$v"); fi; done
    if [ ${#nums[@]} -eq 0 ]; then echo nan; else median "${nums[@]}"; fi
}
# spread V...: (max - min) / median in percent, how far the runs disagree.
spread() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.0f", (m > 0 ? 100 * (v[NR] - v[1]) / m : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a != "nan" && b != "nan" && b + 0 > 0) printf "%.3f", a / b; else print "nan" }'; }
meets() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
    exit !(r != "nan" && (op == ">=" ? r + 0 >= t : r + 0 <= t)) }'; }

join() { local IFS=,; echo "$*"; }

mark() { # mark VALUE OK: flags a missed target
    case $2 in no) echo "$1 !" ;; *) echo "$1" ;; esac
}

jstr() { local v=${1//\\/\\\\}; printf '"%s"' "${v//\"/\\\"}"; }
jbool() { case $1 in yes) echo true ;; no) echo false ;; *) echo null ;; esac; }

# setup_line: the machine and build a result was measured on.
setup_line() {
    local rev cpu
    rev=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
    cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
    echo "$(nproc) cores${cpu:+ ($cpu)}, Linux $(uname -r), tcpmsgd $rev"
}
