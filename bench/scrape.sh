#!/usr/bin/env bash
# bench/scrape.sh: the cost of being observed. Runs the same `tcpmsg bench`
# load against one tcpmsgd with and without a scraper fetching /metrics 10
# times a second, interleaved (none, json, prometheus, none, ...), and prints
# the median msgs/s of each, their ratio, and the latency of every scrape made
# under load. See bench/README.md for how to read the result.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/scrape.sh [options] [BUILD_DIR]
  BUILD_DIR              built tree (default: $BUILD_DIR or <repo>/build)
  --build                run `cmake --build BUILD_DIR` first
  -r, --rounds N         runs per shape and scrape format, interleaved (default 5)
  -d, --duration SEC     length of each run (default 3)
  -t, --threads N        worker threads of tcpmsgd (default 1)
  --client-threads N     `tcpmsg bench --threads` (default: same as --threads)
  --shapes LIST          comma-separated CONNSxDEPTHxSIZE (default: 50x16x64,50x1x64)
  --formats LIST         scrape formats, comma-separated: json, prometheus
                         (default: json,prometheus)
  --rate N               scrapes per second during a scraped run (default 10)
  --pin split|same       pin tcpmsgd and the scraper to CPU 0 and the client to
                         CPU 1 (split) or everything to CPU 0 (same); default: none
  --keep-logs            keep the server log, raw JSON and scrape timings, print where
  --markdown | --json    output format (default: a plain-text table)
  -h, --help
Binaries: $TCPMSGD, $TCPMSG override BUILD_DIR/bin/{tcpmsgd,tcpmsg}.
Exit: 0 all targets met; 1 a target missed, a scrape failed or a run had errors;
2 usage or setup.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=scrape.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"

BUILD_DIR=${BUILD_DIR:-$REPO/build}
ROUNDS=5 DURATION=3 THREADS=1 CLIENT_THREADS="" FORMAT=text BUILD=0 PIN=none KEEP=0
SHAPES=50x16x64,50x1x64 FORMATS=json,prometheus RATE=10
TPUT_TARGET=0.98   # scraped msgs/s >= 0.98 x unscraped, every shape and format
P99_TARGET_MS=5    # p99 of the scrapes made under load < 5 ms
SCRAPE_TIMEOUT=2   # curl --max-time per scrape; a timeout counts as a failure

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$SHIFT" -eq 0 ]; then
        SHIFT=1
        case $1 in
        -t | --threads) THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --client-threads) CLIENT_THREADS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --shapes) SHAPES=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --formats) FORMATS=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --rate) RATE=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --pin) PIN=${2:?"$1 needs a value"}; SHIFT=2 ;;
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
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "--rate takes a positive integer"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration takes seconds"
[[ $SHAPES =~ ^[0-9]+x[0-9]+x[0-9]+(,[0-9]+x[0-9]+x[0-9]+)*$ ]] || die "bad --shapes '$SHAPES'"
[[ $FORMATS =~ ^(json|prometheus)(,(json|prometheus))*$ ]] || die "bad --formats '$FORMATS'"
command -v curl >/dev/null || die "the scraper needs curl"

if [ "$BUILD" = 1 ]; then
    cmake --build "$BUILD_DIR" -j2 --target tcpmsgd tcpmsg >&2 || die "build failed"
fi
TCPMSGD=${TCPMSGD:-$BUILD_DIR/bin/tcpmsgd}
TCPMSG=${TCPMSG:-$BUILD_DIR/bin/tcpmsg}
for b in "$TCPMSGD" "$TCPMSG"; do
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

work_init tcpmsg-scrape
# Other work on the machine moves both numbers; the report shows how busy it was.
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)

# --- the scraper ------------------------------------------------------------
# One curl process fetches the URL RATE times a second (--rate) and writes
# "HTTP_CODE TIME_TOTAL_S" per scrape. It makes DURATION x RATE scrapes, so it
# ends with the load and is waited for, not killed: curl buffers its -w output
# and would lose it to a signal. One long-lived process instead of a
# shell loop forking curl 10 times a second: the fork and exec of a new curl
# would cost the shared cores more than the scrape itself, and be counted
# against tcpmsgd. Each scrape still opens a new connection (tcpmsgd's endpoint
# does not keep them alive), so time_total includes the TCP handshake.

metrics_url() { # metrics_url FORMAT HTTP_PORT
    case $1 in
    json) echo "http://127.0.0.1:$2/metrics" ;;
    prometheus) echo "http://127.0.0.1:$2/metrics?format=prometheus" ;;
    esac
}

# scraper_start FORMAT HTTP_PORT OUT COUNT: starts the scraper in the
# background for COUNT scrapes. Sets SCRAPER_PID.
scraper_start() {
    local url args=() i
    url=$(metrics_url "$1" "$2")
    for ((i = 0; i < $4; i++)); do args+=(-o /dev/null "$url"); done
    "${SERVER_CMD[@]}" curl -sS --noproxy '*' --rate "$RATE/s" --max-time "$SCRAPE_TIMEOUT" \
        -w '%{http_code} %{time_total}\n' "${args[@]}" >"$3" 2>"$3.err" &
    SCRAPER_PID=$!
    PIDS+=("$SCRAPER_PID")
}

# scraper_wait: waits for the scraper to make its last scrape. Each one is
# bounded by SCRAPE_TIMEOUT, so this is too. curl's exit status is not used:
# failed scrapes show in their HTTP code (000 when there was no response).
scraper_wait() {
    wait "$SCRAPER_PID" 2>/dev/null || true
    forget_pid "$SCRAPER_PID"
}

# scrape_stats FILE: prints "COUNT FAILED P50_MS P99_MS MAX_MS" over the scrapes
# in FILE (nearest-rank percentiles; failed scrapes count with the time they
# took). "0 0 nan nan nan" when FILE is empty.
scrape_stats() {
    awk '{ print $2 * 1000, ($1 == 200 ? 0 : 1) }' "$1" | sort -g | awk '
        function rank(p) { i = int(p * NR); if (i < p * NR) i++; return v[i < 1 ? 1 : i] }
        { v[NR] = $1; failed += $2 }
        END {
            if (NR == 0) { print "0 0 nan nan nan"; exit }
            printf "%d %d %.2f %.2f %.2f\n", NR, failed, rank(0.50), rank(0.99), v[NR]
        }'
}

# idle_latency FORMAT HTTP_PORT: "P50_MS" of 10 scrapes with no load, the
# floor the loaded numbers are compared with.
idle_latency() {
    local out="$WORK/idle.$1.scrapes"
    scraper_start "$1" "$2" "$out" 10
    scraper_wait
    scrape_stats "$out" | awk '{ print $3 }'
}

# --- one run ----------------------------------------------------------------
# run_once MODE SHAPE ROUND: one `tcpmsg bench` against tcpmsgd, scraped in
# MODE (none, json or prometheus). Appends msgs/s and p50 to RUNS_MSGS[MODE]
# and RUNS_P50[MODE], the scrape timings to WORK/SHAPE.MODE.scrapes. Returns 1
# on client errors.
run_once() {
    local mode=$1 shape=$2 round=$3 out count stats
    out="$WORK/$shape.$mode.$round.json"
    client_start "$out" "$D_PORT" "$C" "$D" "$S"
    if [ "$mode" != none ]; then
        # The first scrape is at once and the last one 1/RATE s before the end.
        count=$(awk -v d="$DURATION" -v r="$RATE" 'BEGIN { c = int(d * r); print (c > 0 ? c : 1) }')
        scraper_start "$mode" "$D_HTTP_PORT" "$out.scrapes" "$count"
    fi
    client_wait tcpmsgd "$D_PID" "$out" "$shape" || { [ "$mode" = none ] || scraper_wait; return 1; }
    if [ "$mode" != none ]; then
        scraper_wait
        cat "$out.scrapes" >>"$WORK/$shape.$mode.scrapes"
        stats=$(scrape_stats "$out.scrapes")
        stats=$(awk '{ printf "  %d scrapes, p99 %s ms%s", $1, $4, ($2 ? "  failed=" $2 : "") }' <<<"$stats")
    fi
    printf '  %-10s round %d/%d: %12.1f msg/s  p50 %9.1f us%s%s\n' "$mode" "$round" "$ROUNDS" \
        "$MSGS" "$P50" "${stats:-}" "$([ "$ERRS" = 0 ] || echo "  errors=$ERRS")" >&2
    RUNS_MSGS[$mode]+=" $MSGS" RUNS_P50[$mode]+=" $P50"
    [ "$CLIENT_RC" = 0 ] && [ "$ERRS" = 0 ]
}

# --- the measurement --------------------------------------------------------
# One row per shape and format, '|'-separated: label conns depth size format;
# unscraped and scraped median msgs/s, ratio, ok; scrape count, failed, p50,
# p99, max (ms), latency ok; msgs/s spread; the raw runs.
ROWS=()
FAILED=0
IDLE=()
declare -A RUNS_MSGS RUNS_P50
IFS=, read -r -a shape_list <<<"$SHAPES"
IFS=, read -r -a format_list <<<"$FORMATS"
n=0
for shape in "${shape_list[@]}"; do
    IFS=x read -r C D S <<<"$shape"
    n=$((n + 1))
    label="${C}c d${D} ${S}B"
    echo "[$n/${#shape_list[@]}] $label: $ROUNDS rounds of ${DURATION}s, interleaved none,$FORMATS" >&2
    # A fresh server per shape, at its default log level, like bench/run.sh.
    start_server tcpmsgd 'server socket bound' "$TCPMSGD" --bind 127.0.0.1 --port 0 \
        --http-port 0 --threads "$THREADS"
    D_PID=$SERVER_PID D_PORT=$SERVER_PORT
    await_log tcpmsgd "$D_PID" 'http endpoint listening' http_port
    D_HTTP_PORT=$LOG_VALUE
    if [ "$n" = 1 ]; then
        for f in "${format_list[@]}"; do IDLE+=("$f" "$(idle_latency "$f" "$D_HTTP_PORT")"); done
    fi
    RUNS_MSGS=() RUNS_P50=()
    for f in none "${format_list[@]}"; do
        RUNS_MSGS[$f]="" RUNS_P50[$f]=""
        : >"$WORK/$shape.$f.scrapes"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for mode in none "${format_list[@]}"; do
            run_once "$mode" "$shape" "$r" || FAILED=1
        done
    done
    stop_all
    read -r -a base_runs <<<"${RUNS_MSGS[none]}"
    read -r -a base_p50s <<<"${RUNS_P50[none]}"
    [ ${#base_runs[@]} -gt 0 ] || die "$label: no successful unscraped run"
    base=$(median "${base_runs[@]}")
    for f in "${format_list[@]}"; do
        read -r -a runs <<<"${RUNS_MSGS[$f]}"
        read -r -a p50s <<<"${RUNS_P50[$f]}"
        [ ${#runs[@]} -gt 0 ] || die "$label: no successful $f-scraped run"
        scraped=$(median "${runs[@]}")
        tr=$(ratio "$scraped" "$base")
        tok=yes lok=yes
        meets "$tr" '>=' "$TPUT_TARGET" || { tok=no; FAILED=1; }
        read -r cnt fails p50 p99 max < <(scrape_stats "$WORK/$shape.$f.scrapes")
        # A miss: p99 at or over the target, no scrape at all, or any failed scrape.
        if [ "$cnt" = 0 ] || [ "$fails" != 0 ] ||
            ! awk -v v="$p99" -v t="$P99_TARGET_MS" 'BEGIN { exit !(v != "nan" && v + 0 < t) }'; then
            lok=no FAILED=1
        fi
        sp="$(spread "${base_runs[@]}")%/$(spread "${runs[@]}")%"
        ROWS+=("$label|$C|$D|$S|$f|$base|$scraped|$tr|$tok|$cnt|$fails|$p50|$p99|$max|$lok|$sp|$(join "${base_runs[@]}")|$(join "${runs[@]}")|$(join "${base_p50s[@]}")|$(join "${p50s[@]}")")
    done
done

# --- the report -------------------------------------------------------------
SETUP="$(setup_line), tcpmsgd threads $THREADS, client threads $CLIENT_THREADS"
SETUP+=", medians of $ROUNDS interleaved ${DURATION}s runs, $RATE scrapes/s"
SETUP+=", load average $LOAD_AT_START at start"
if [ "$PIN" != none ]; then SETUP+=", pinned $PIN"; fi
IDLE_NOTE="scrape p50 with no load:" IDLE_JSON="" # IDLE holds FORMAT P50_MS pairs
for ((i = 0; i < ${#IDLE[@]}; i += 2)); do
    IDLE_NOTE+="$([ "$i" = 0 ] || echo ,) ${IDLE[i]} ${IDLE[i + 1]} ms"
    IDLE_JSON+="$([ "$i" = 0 ] || echo ,)\"${IDLE[i]}\":${IDLE[i + 1]/nan/null}"
done

case $FORMAT in
text)
    printf '%-13s %-10s %11s %13s %8s %7s %6s %7s %8s %7s  %s\n' shape scrape "none msg/s" \
        "scraped msg/s" ratio scrapes failed "p50 ms" "p99 ms" "max ms" "spread none/scraped"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ _ _ f base scraped tr tok cnt fails p50 p99 max lok sp _ <<<"$row"
        printf '%-13s %-10s %11.0f %13.0f %8s %7s %6s %7s %8s %7s  %s\n' "$label" "$f" "$base" \
            "$scraped" "$(mark "$tr" "$tok")" "$cnt" "$(mark "$fails" "$([ "$fails" = 0 ] || echo no)")" \
            "$p50" "$(mark "$p99" "$lok")" "$max" "$sp"
    done
    echo "targets: scraped/none msg/s ratio >= $TPUT_TARGET; scrape p99 under load < $P99_TARGET_MS ms, no failed scrape; ! = missed"
    echo "spread: (max - min) / median of the msg/s runs; a ratio closer to 1 than that is noise"
    echo "$IDLE_NOTE"
    echo "$SETUP"
    ;;
markdown)
    echo "| shape | scrape | none msg/s | scraped msg/s | ratio | scrapes | failed | p50 ms | p99 ms | max ms | spread |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ _ _ f base scraped tr tok cnt fails p50 p99 max lok sp _ <<<"$row"
        if [ "$tok" = no ]; then tr="**$tr** (miss)"; fi
        if [ "$lok" = no ]; then p99="**$p99** (miss)"; fi
        if [ "$fails" != 0 ]; then fails="**$fails** (miss)"; fi
        printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$f" "$base" \
            "$scraped" "$tr" "$cnt" "$fails" "$p50" "$p99" "$max" "$sp"
    done
    echo
    echo "Ratio: median msg/s scraped / not scraped. Targets: ratio >= $TPUT_TARGET;" \
        "p99 of the scrapes made under load < $P99_TARGET_MS ms, and none failed." \
        "Spread: (max - min) / median of the msg/s runs, none/scraped. $IDLE_NOTE. $SETUP."
    ;;
json)
    printf '{"setup":%s,"rounds":%s,"duration_s":%s,"scrapes_per_s":%s,"server_threads":%s,"client_threads":%s,' \
        "$(jstr "$SETUP")" "$ROUNDS" "$DURATION" "$RATE" "$THREADS" "$CLIENT_THREADS"
    printf '"idle_scrape_p50_ms":{%s},' "$IDLE_JSON"
    printf '"targets":{"msgs_ratio_min":%s,"scrape_p99_ms_max":%s},"rows":[' "$TPUT_TARGET" "$P99_TARGET_MS"
    sep=""
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label c d s f base scraped tr tok cnt fails p50 p99 max lok sp bms sms bps sps <<<"$row"
        printf '%s{"shape":%s,"connections":%s,"depth":%s,"size":%s,"format":"%s",' "$sep" \
            "$(jstr "$label")" "$c" "$d" "$s" "$f"
        printf '"none":{"msgs_per_s":%s,"runs_msgs_per_s":[%s],"runs_p50_us":[%s]},' "$base" "$bms" "$bps"
        printf '"scraped":{"msgs_per_s":%s,"runs_msgs_per_s":[%s],"runs_p50_us":[%s]},' "$scraped" "$sms" "$sps"
        printf '"msgs_spread_pct":{"none":%s,"scraped":%s},' "${sp%%\%/*}" "$(echo "${sp#*/}" | tr -d %)"
        printf '"msgs_ratio":%s,"msgs_ok":%s,' "${tr/nan/null}" "$(jbool "$tok")"
        printf '"scrapes":{"count":%s,"failed":%s,"p50_ms":%s,"p99_ms":%s,"max_ms":%s},"latency_ok":%s}' \
            "$cnt" "$fails" "${p50/nan/null}" "${p99/nan/null}" "${max/nan/null}" "$(jbool "$lok")"
        sep=","
    done
    printf '],"all_targets_met":%s}\n' "$([ "$FAILED" = 0 ] && echo true || echo false)"
    ;;
esac
exit "$FAILED"
