#!/usr/bin/env bash
# The run_* functions are called by name ("run_${a//-/_}"), which shellcheck
# cannot follow: it would call them and all they use unreachable.
# shellcheck disable=SC2317
# bench/attacks.sh: runs the attacks of issue 8 (bench/attack.c, one
# subcommand each) against a tcpmsgd binary, a fresh server per attack, all on
# 127.0.0.0/8, each attack bounded in time. Prints a markdown table, one row
# per attack, then one JSON line per attack. Measures; judges nothing: a
# server that refuses, closes or throttles the attackers shows in the counts.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/attacks.sh --server PATH [options] [BUILD_DIR]
  --server PATH            the tcpmsgd to attack (default: BUILD_DIR/bin/tcpmsgd)
  --attack PATH            the attacker (default: $ATTACK or BUILD_DIR/bin/attack)
  BUILD_DIR                built tree holding bin/attack (default: $BUILD_DIR or <repo>/build)
  --build                  run `cmake --build BUILD_DIR --target attack` first
  --only NAME,...          run these attacks only, in this order; names:
                           output-cap partial idle rtt slowloris emfile
                           fork-drain fork-rtt second-server second-server-fork
  --quick                  smaller and shorter attacks (about a minute in all)
  --max-buffer-memory B    passed to the server when its --help lists the option
  --memory-grace SEC       passed to the server when its --help lists the option
  --keep-logs              keep the server logs and raw results, print where
  -h, --help
Output: the table (markdown) and a JSON line per attack on stdout; progress on
stderr. Exit: 0 when every attack ran, 1 when one could not be measured, 2 usage.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=attacks.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"
BUILD_DIR=${BUILD_DIR:-$REPO/build}
SERVER="" ATTACK=${ATTACK:-} ONLY="" QUICK=0 KEEP=0 BUILD=0 MAX_BUF="" GRACE=""
ALL=output-cap,partial,idle,rtt,slowloris,emfile,fork-drain,fork-rtt,second-server,second-server-fork

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$SHIFT" -eq 0 ]; then
        SHIFT=1
        case $1 in
        --server) SERVER=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --attack) ATTACK=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --only) ONLY=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --quick) QUICK=1 ;;
        --max-buffer-memory) MAX_BUF=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --memory-grace) GRACE=${2:?"$1 needs a value"}; SHIFT=2 ;;
        *) usage >&2; exit 2 ;;
        esac
    fi
    shift "$SHIFT"
done
if [ "$BUILD" = 1 ]; then
    cmake --build "$BUILD_DIR" -j2 --target attack >&2 || die "build failed"
fi
SERVER=${SERVER:-$BUILD_DIR/bin/tcpmsgd}
ATTACK=${ATTACK:-$BUILD_DIR/bin/attack}
[ -x "$SERVER" ] || die "no server at $SERVER (--server PATH)"
[ -x "$ATTACK" ] || die "no attacker at $ATTACK: cmake --build build --target attack (or pass --build)"
ONLY=${ONLY:-$ALL}
IFS=, read -r -a RUN <<<"$ONLY"
for a in "${RUN[@]}"; do [[ ,$ALL, == *",$a,"* ]] || die "unknown attack '$a' (known: $ALL)"; done

# The fixed server's options, passed only when this binary's --help lists them.
HELP=$("$SERVER" --help 2>&1 || true)
has_opt() { grep -q -- "$1" <<<"$HELP"; }
EXTRA=()
if [ -n "$MAX_BUF" ]; then
    if has_opt --max-buffer-memory; then EXTRA+=(--max-buffer-memory "$MAX_BUF"); else
        echo "$BENCH_NAME: this server has no --max-buffer-memory: not passed" >&2; fi
fi
if [ -n "$GRACE" ]; then
    if has_opt --memory-grace; then EXTRA+=(--memory-grace "$GRACE"); else
        echo "$BENCH_NAME: this server has no --memory-grace: not passed" >&2; fi
fi
RTT_OPT=()
if has_opt --rtt-reports; then RTT_OPT=(--rtt-reports accept); fi
HARD_NOFILE=$(ulimit -Hn)
[ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=1048576

# Sizes: the issue's, or smaller with --quick.
if [ "$QUICK" = 1 ]; then
    OC_SECS=10 PARTIAL_N=1000 PARTIAL_SECS=15 IDLE_BIG_N=100 IDLE_SMALL_N=2000
    SLOW_N=500 SLOW_SECS=6 SLOW_GIVEUP=20 EMFILE_SECS=3
else
    OC_SECS=30 PARTIAL_N=5000 PARTIAL_SECS=30 IDLE_BIG_N=300 IDLE_SMALL_N=10000
    SLOW_N=2000 SLOW_SECS=15 SLOW_GIVEUP=60 EMFILE_SECS=5
fi

work_init tcpmsg-attacks
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# --- servers ------------------------------------------------------------------
# launch NAME NOFILE ARG...: a fresh tcpmsgd on 127.0.0.1, port 0 and HTTP
# port 0, under `ulimit -n NOFILE`; sets SPID SPORT SHTTP and SLOG.
launch() {
    local name=$1 nofile=$2
    shift 2
    # shellcheck disable=SC2016  # $0 and $@ belong to the inner shell
    SERVER_CMD=(bash -c 'ulimit -n "$0" && exec "$@"' "$nofile")
    start_server "$name" 'server socket bound' "$SERVER" --bind 127.0.0.1 --port 0 --http-port 0 \
        "${EXTRA[@]}" "$@"
    SPID=$SERVER_PID SPORT=$SERVER_PORT SLOG=$WORK/$name.log
    await_log "$name" "$SPID" 'http endpoint listening' http_port
    SHTTP=$LOG_VALUE
}

# halt PID: SIGTERM, at most 10 s to exit, then SIGKILL; sets HALT_RC.
halt() {
    local i
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$1" || break; sleep 0.1; done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    HALT_RC=0
    wait "$1" 2>/dev/null || HALT_RC=$?
    forget_pid "$1"
}

# attack NAME LIMIT SUBCOMMAND ARG...: runs the attacker under a watchdog of
# LIMIT seconds against the last launched server; sets RESULT to its JSON
# line, or to {"error":...} when it left none.
attack() {
    local name=$1 limit=$2 out
    shift 2
    out=$WORK/$name.json
    timeout -k 5 "$limit" "$ATTACK" "$@" --port "$SPORT" --http-port "$SHTTP" --pid "$SPID" \
        >"$out" || echo "$BENCH_NAME: $name: attacker exit $?" >&2
    RESULT=$(tail -n 1 "$out")
    if [[ $RESULT != \{* ]]; then
        RESULT='{"error":"the attacker left no result"}'
        FAILED=1
    fi
}

# --- reading results ------------------------------------------------------------
# jget JSON KEY: the value of KEY in a flat JSON line (strings unquoted).
jget() {
    local v
    v=$(grep -o "\"$2\":\(\"[^\"]*\"\|[^,}]*\)" <<<"$1" | head -n 1 || true)
    v=${v#*:}
    v=${v#\"}
    echo "${v%\"}"
}
# size BYTES: "512 MiB" / "3.02 GiB"; "-" when unknown.
size() {
    case $1 in '' | null) echo - ;; *) awk -v b="$1" 'BEGIN {
        if (b >= 1024 ^ 3) printf "%.2f GiB", b / 1024 ^ 3; else printf "%.1f MiB", b / 1024 ^ 2 }' ;;
    esac
}
num() { case $1 in '' | null) echo - ;; *) awk -v v="$1" -v f="${2:-%.3g}" 'BEGIN { printf f, v }' ;; esac; }
pct() { case $1 in '' | null) echo - ;; *) awk -v v="$1" 'BEGIN { printf "%.0f%%", 100 * v }' ;; esac; }

ROWS=() JSONS=() FAILED=0
# row NAME WHAT PEAK FINAL RESULT JSON
row() {
    ROWS+=("| $1 | $2 | $3 | $4 | $5 |")
    JSONS+=("{\"attack\":$(jstr "$1"),${6#\{}")
}

# --- the attacks ------------------------------------------------------------------
run_output_cap() {
    launch output-cap "$HARD_NOFILE"
    attack output-cap $((OC_SECS + 20)) output-cap --duration "$OC_SECS"
    halt "$SPID"
    local r=$RESULT
    row output-cap "8 clients with a 16 KiB SO_RCVBUF send 64 KiB frames, read every reply, keep 6 MiB outstanding, ${OC_SECS} s" \
        "$(size "$(jget "$r" rss_peak)")" "$(size "$(jget "$r" rss_final)")" \
        "RSS every 5 s (MiB): $(jget "$r" rss_timeline_mib | tr , ' '); /api/connections max pending $(size "$(jget "$r" pending_max)"); replies $(num "$(jget "$r" replies_mib)" %.0f) MiB; closed by server $(jget "$r" closed_by_server)+$(jget "$r" reset_by_server) reset" \
        "$r"
}

run_partial() {
    launch partial "$HARD_NOFILE" --max-conns 20000 --max-conns-per-ip 20000
    attack partial $((PARTIAL_SECS + 20)) partial --conns "$PARTIAL_N" --duration "$PARTIAL_SECS"
    halt "$SPID"
    local r=$RESULT
    row partial "$PARTIAL_N conns each send a 1 MiB DATA header and all but the last byte" \
        "$(size "$(jget "$r" rss_peak)")" "$(size "$(jget "$r" rss_final)")" \
        "in: $(jget "$r" conns_in) of $PARTIAL_N after $(num "$(jget "$r" send_seconds)" %.1f) s, then RSS $(size "$(jget "$r" rss_in)") ($(num "$(jget "$r" rss_per_conn_kib)" %.0f) KiB/conn) for $(size "$(jget "$r" server_bytes_read)") the server read (x$(num "$(jget "$r" rss_per_byte_read)" %.2f)); unfinished $(jget "$r" conns_unfinished); closed by server $(jget "$r" closed_by_server)+$(jget "$r" reset_by_server) reset; connect failed $(jget "$r" connect_failed)" \
        "$r"
}

run_idle() {
    local big small
    launch idle-big "$HARD_NOFILE"
    attack idle-big 45 idle --conns "$IDLE_BIG_N" --size 1048576
    big=$RESULT
    halt "$SPID"
    launch idle-small "$HARD_NOFILE" --max-conns 20000 --max-conns-per-ip 20000
    attack idle-small 45 idle --conns "$IDLE_SMALL_N" --size 64
    small=$RESULT
    halt "$SPID"
    row idle "$IDLE_BIG_N conns echo 1 MiB then idle 2 s; $IDLE_SMALL_N conns echo 64 B then idle" \
        "$(size "$(jget "$big" rss_peak)")" "$(size "$(jget "$big" rss_idle)")" \
        "1 MiB: $(jget "$big" conns_echoed) echoed, idle RSS +$(num "$(jget "$big" rss_delta_mib)" %.1f) MiB over the fresh server; 64 B: $(jget "$small" conns_echoed) echoed, $(num "$(jget "$small" rss_per_conn_bytes)" %.0f) B of RSS per idle conn (+$(num "$(jget "$small" rss_delta_mib)" %.1f) MiB)" \
        "{\"big\":$big,\"small\":$small}"
}

run_rtt() {
    launch rtt "$HARD_NOFILE" "${RTT_OPT[@]}"
    attack rtt 30 rtt --frames 20000
    halt "$SPID"
    local r=$RESULT
    row rtt "one 12-byte report 02 000008 01 08 12ff ffffffff, then 19,999 more" - - \
        "after 1: _count $(jget "$r" count_1), _sum $(num "$(jget "$r" sum_seconds_1)" %.3g) s, p50 $(num "$(jget "$r" json_p50_seconds_1)" %.0f) s, JSON count $(jget "$r" json_count_1); after 20000: JSON count $(jget "$r" json_count_20000), smallest bucket $(jget "$r" json_bucket_count_min_20000); rejected $(jget "$r" rejected_20000); conn open $(jget "$r" conn_open_20000)" \
        "$r"
}

run_slowloris() {
    launch slowloris "$HARD_NOFILE"
    attack slowloris $((SLOW_SECS + SLOW_GIVEUP + 20)) slowloris --conns "$SLOW_N" \
        --duration "$SLOW_SECS" --giveup "$SLOW_GIVEUP"
    halt "$SPID"
    local r=$RESULT rec
    rec=$(jget "$r" recovery_seconds)
    case $rec in -1 | '' | null) rec=">$SLOW_GIVEUP s" ;; *) rec="$(num "$rec" %.1f) s" ;; esac
    row slowloris "$SLOW_N HTTP conns from 127.0.0.2-6, a byte every 3 s for $SLOW_SECS s; scraper from 127.0.0.9" - - \
        "/metrics ok during: $(jget "$r" scrapes_ok_during)/$(jget "$r" scrapes_during) ($(pct "$(jget "$r" success_ratio_during)")); first success after the attack: $rec; attacker: $(jget "$r" conns_sent_a_byte) sent a byte, $(jget "$r" closed_by_server) closed by server, $(jget "$r" open_at_leave) open at the end" \
        "$r"
}

run_emfile() {
    launch emfile 64
    attack emfile $((EMFILE_SECS + 20)) emfile --conns 200 --duration "$EMFILE_SECS" --log "$SLOG"
    halt "$SPID"
    local r=$RESULT st
    st=$(jget "$r" http_status)
    [[ $st == -* ]] && st="none"
    [ "$KEEP" = 1 ] || : >"$SLOG" # it may hold hundreds of MB of warnings
    row emfile "ulimit -n 64, 200 message conns, then one HTTP request" - - \
        "server CPU $(num "$(jget "$r" cpu_pct)" %.0f)% over $(num "$(jget "$r" seconds)" %.1f) s; log +$(num "$(jget "$r" log_bytes)" %.0f) bytes; HTTP answer: $st; server alive: $(jget "$r" server_alive)" \
        "$r"
}

run_fork_drain() {
    launch fork-drain "$HARD_NOFILE" --mode fork --drain-timeout 5
    attack fork-drain 60 drain --frames 4000 --size 1024
    halt "$SPID"
    local r=$RESULT
    row fork-drain "--mode fork --drain-timeout 5: SIGTERM with 4,000 1 KiB replies in flight to a slow reader" - - \
        "replies lost: $(jget "$r" replies_lost) of $(jget "$r" messages_sent); server exited $(num "$(jget "$r" server_exit_after_seconds)" %.2f) s after SIGTERM (exit $HALT_RC); the reader saw $(jget "$r" end) at $(num "$(jget "$r" end_after_seconds)" %.2f) s" \
        "${r%\}},\"server_exit\":$HALT_RC}"
}

run_fork_rtt() {
    local fk ep
    launch fork-rtt "$HARD_NOFILE" --mode fork "${RTT_OPT[@]}"
    attack fork-rtt 30 rtt --entries 2
    fk=$RESULT
    halt "$SPID"
    launch epoll-rtt "$HARD_NOFILE" "${RTT_OPT[@]}"
    attack epoll-rtt 30 rtt --entries 2
    ep=$RESULT
    halt "$SPID"
    row fork-rtt "--mode fork: one report with two entries of count 0xFFFFFFFF" - - \
        "fork parent counts $(jget "$fk" count_1), epoll mode $(jget "$ep" count_1) (claimed $(jget "$fk" claimed_per_frame)); rejected fork $(jget "$fk" rejected_1), epoll $(jget "$ep" rejected_1)" \
        "{\"fork\":$fk,\"epoll\":$ep}"
}

# second_server MODE: a second tcpmsgd on the port of a running one, then 20
# clients; which server got them, by each one's accepted counter.
second_server() {
    local mode=$1 name=second-server first_pid first_http pid log rc=running msg="" i http="" a b e
    [ "$mode" = fork ] && name=second-server-fork
    launch "$name-1" "$HARD_NOFILE" --mode "$mode"
    first_pid=$SPID first_http=$SHTTP
    log=$WORK/$name-2.log
    "$SERVER" --bind 127.0.0.1 --port "$SPORT" --http-port 0 --mode "$mode" "${EXTRA[@]}" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 30; i++)); do
        alive "$pid" || break
        http=$(grep -m1 'http endpoint listening' "$log" | grep -o ' http_port=[0-9]*' | cut -d= -f2 || true)
        [ -n "$http" ] && [ "$i" -ge 10 ] && break
        sleep 0.1
    done
    if ! alive "$pid"; then
        rc=0
        wait "$pid" || rc=$?
        forget_pid "$pid"
        msg=$(grep -v ' INFO ' "$log" | tail -n 1 | cut -c1-160)
    fi
    attack "$name" 30 echo --conns 20
    e=$RESULT
    a=$(jget "$("$ATTACK" prom --http-port "$first_http" tcpmsg_connections_accepted_total)" tcpmsg_connections_accepted_total)
    b=-
    if [ "$rc" = running ]; then
        [ -n "$http" ] && b=$(jget "$("$ATTACK" prom --http-port "$http" tcpmsg_connections_accepted_total)" tcpmsg_connections_accepted_total)
        halt "$pid"
        rc="running; exit $HALT_RC at SIGTERM"
    else
        rc="exit $rc"
    fi
    halt "$first_pid"
    row "$name" "--mode $mode: a second tcpmsgd on the port of a running one, then 20 new clients" - - \
        "second server: $rc${msg:+ ($msg)}; clients to the first: $a, to the second: $b; echoed $(jget "$e" echoed), failed $(jget "$e" failed)+$(jget "$e" connect_failed) refused" \
        "{\"second_exit\":$(jstr "$rc"),\"second_message\":$(jstr "$msg"),\"accepted_first\":${a:-null},\"accepted_second\":$([ "$b" = - ] && echo null || echo "${b:-null}"),\"clients\":$e}"
}
run_second_server() { second_server epoll; }
run_second_server_fork() { second_server fork; }

# --- the run ----------------------------------------------------------------------
n=0
for a in "${RUN[@]}"; do
    n=$((n + 1))
    echo "[$n/${#RUN[@]}] $a" >&2
    "run_${a//-/_}"
    stop_all
done

SETUP="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' || true)), Linux $(uname -r)"
SETUP+=", load average $LOAD_BEFORE at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"
SETUP+=", server $SERVER ($("$SERVER" --version 2>&1 | head -n 1 || true))"
[ ${#EXTRA[@]} -eq 0 ] || SETUP+=" ${EXTRA[*]}"
[ "$QUICK" = 1 ] && SETUP+="; --quick"
echo "| attack | what | peak RSS | final RSS | result |"
echo "|---|---|--:|--:|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "$SETUP."
echo
printf '%s\n' "${JSONS[@]}"
exit "$FAILED"
