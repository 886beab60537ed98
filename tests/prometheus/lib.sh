# Shared helpers of the tests in tests/prometheus, sourced by each script.
# Plain bash and coreutils only: HTTP goes through bash's /dev/tcp (no curl,
# no python), every wait is bounded, and every process a test starts is
# stopped by the EXIT trap. Not a general HTTP client: GET over HTTP/1.0,
# where the server closes the connection after the body.

set -u

TEST_NAME=${0##*/}
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tcpmsg-prom.XXXXXX") || exit 1
CHILD_PIDS=""
WATCHDOG_PID=""
MISSING=1 # a program the test needs is not installed: a failure (.ci/setup installs it)

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# Prints the tail of every log the test wrote, then exits 1.
fail() {
    log "FAIL: $*"
    for f in "$TMP_DIR"/*.log; do
        [ -s "$f" ] || continue
        printf -- '--- last lines of %s\n' "${f##*/}" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

cleanup() {
    local pid i
    for pid in $CHILD_PIDS; do kill -TERM "$pid" 2>/dev/null; done
    # A clean shutdown first (tcpmsgd drains, sanitizers report), then KILL.
    for pid in $CHILD_PIDS; do
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$WATCHDOG_PID" ]; then
        kill -TERM "$WATCHDOG_PID" 2>/dev/null
        wait "$WATCHDOG_PID" 2>/dev/null
    fi
    rm -rf "$TMP_DIR"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 1' INT TERM HUP

# watchdog SECONDS: the whole test fails after SECONDS (below ctest's
# TIMEOUT, so the EXIT trap still stops the children).
watchdog() {
    local secs=$1 main=$$
    (
        sleep "$secs" & s=$!
        trap 'kill "$s" 2>/dev/null; exit 0' TERM
        wait "$s"
        echo "$TEST_NAME: watchdog: still running after ${secs}s" >&2
        kill -TERM "$main"
    ) &
    WATCHDOG_PID=$!
}

# need_program NAME: its path on stdout, or skip the test when missing.
need_program() {
    local p
    p=$(command -v "$1") || { log "FAIL: $1 not found in PATH (run .ci/setup, or apt-get install prometheus)"; exit "$MISSING"; }
    printf '%s\n' "$p"
}

# wait_log FILE SED_EXPR PID SECONDS: polls FILE until the sed -n expression
# prints something (e.g. a port) and prints it; fails if PID dies first.
wait_log() {
    local file=$1 expr=$2 pid=$3 secs=$4 out deadline
    deadline=$((SECONDS + secs))
    while :; do
        out=$(sed -n "$expr" "$file" 2>/dev/null | head -n 1)
        [ -n "$out" ] && { printf '%s\n' "$out"; return 0; }
        kill -0 "$pid" 2>/dev/null || fail "process $pid exited while waiting for '$expr' in ${file##*/}"
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for '$expr' in ${file##*/}"
        sleep 0.1
    done
}

# start_tcpmsgd TCPMSGD [OPTION]...: starts it on 127.0.0.1 with free ports
# and the options, and sets TCPMSGD_PID, PORT and HTTP_PORT once it says
# "server is listening".
# shellcheck disable=SC2034 # PORT and HTTP_PORT are for the test scripts
start_tcpmsgd() {
    "$1" --bind 127.0.0.1 --port 0 --http-port 0 --threads 2 "${@:2}" >"$TMP_DIR/tcpmsgd.log" 2>&1 &
    TCPMSGD_PID=$!
    CHILD_PIDS="$CHILD_PIDS $TCPMSGD_PID"
    PORT=$(wait_log "$TMP_DIR/tcpmsgd.log" 's/.*server socket bound.* port=\([0-9][0-9]*\).*/\1/p' "$TCPMSGD_PID" 30) || exit 1
    HTTP_PORT=$(wait_log "$TMP_DIR/tcpmsgd.log" 's/.*http endpoint listening.* http_port=\([0-9][0-9]*\).*/\1/p' "$TCPMSGD_PID" 30) || exit 1
    wait_log "$TMP_DIR/tcpmsgd.log" 's/.*\(server is listening\).*/\1/p' "$TCPMSGD_PID" 30 >/dev/null || exit 1
}

# stop_tcpmsgd: SIGTERM, then fails unless tcpmsgd exits 0 within 30 s (a
# clean drain; in a sanitizer build, no leak or error report either).
stop_tcpmsgd() {
    local i rc
    kill -TERM "$TCPMSGD_PID" 2>/dev/null || fail "tcpmsgd exited before the end of the test"
    for i in $(seq 300); do kill -0 "$TCPMSGD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$TCPMSGD_PID" 2>/dev/null && fail "tcpmsgd still running 30s after SIGTERM"
    wait "$TCPMSGD_PID"
    rc=$?
    CHILD_PIDS=$(for i in $CHILD_PIDS; do [ "$i" = "$TCPMSGD_PID" ] || printf ' %s' "$i"; done)
    [ "$rc" -eq 0 ] || fail "tcpmsgd exited with status $rc after SIGTERM"
}

# http_get HOST PORT PATH OUT [HEADER]...: GET PATH, body to OUT, the
# response headers to OUT.headers. Returns 1 unless the status is 200.
http_get() {
    local host=$1 port=$2 path=$3 out=$4 status
    shift 4
    # The subshell owns the socket; timeout bounds a server that never closes.
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 15 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\n" "$3" "$1" "$2" >&3
        shift 3
        for h in "$@"; do printf "%s\r\n" "$h" >&3; done
        printf "\r\n" >&3
        cat <&3' http_get "$host" "$port" "$path" "$@" >"$out.raw" 2>/dev/null || return 1
    sed -n '1,/^\r*$/p' "$out.raw" | tr -d '\r' >"$out.headers"
    sed '1,/^\r*$/d' "$out.raw" >"$out"
    rm -f "$out.raw"
    status=$(sed -n '1s/^HTTP\/1\.[01] \([0-9][0-9]*\).*/\1/p' "$out.headers")
    [ "$status" = 200 ]
}

# urlencode STRING: percent-encodes everything but unreserved characters.
urlencode() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [a-zA-Z0-9.~_-]) out+=$c ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s\n' "$out"
}

# prometheus_config FILE RULES SCRAPE_CONFIGS: write a Prometheus
# configuration to FILE that scrapes (and evaluates the rule file RULES, if
# not empty) every second, so a test sees fresh samples within seconds.
# SCRAPE_CONFIGS is the YAML list of jobs, indented as under scrape_configs.
prometheus_config() {
    {
        printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n'
        [ -z "$2" ] || printf '  evaluation_interval: 1s\nrule_files:\n  - %s\n' "$2"
        printf 'scrape_configs:\n%s\n' "$3"
    } >"$1"
}

# start_prometheus CONFIG: a Prometheus on 127.0.0.1 port 0 (the kernel
# picks a free port and Prometheus logs it, "Listening on", so two tests never
# race for one), data and log in $TMP_DIR. Sets PROM_PID and PROM_PORT.
start_prometheus() {
    "$PROMETHEUS" --config.file="$1" \
        --storage.tsdb.path="$TMP_DIR/data" \
        --web.listen-address=127.0.0.1:0 \
        >"$TMP_DIR/prometheus.log" 2>&1 &
    PROM_PID=$!
    CHILD_PIDS="$CHILD_PIDS $PROM_PID"
    PROM_PORT=$(wait_log "$TMP_DIR/prometheus.log" \
        's/.*msg="Listening on" address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$PROM_PID" 60) || exit 1
    log "prometheus port=$PROM_PORT"
}

# wait_prometheus_ready: until Prometheus answers /-/ready (60 s at most).
wait_prometheus_ready() {
    local deadline=$((SECONDS + 60))
    until http_get 127.0.0.1 "$PROM_PORT" /-/ready "$TMP_DIR/ready"; do
        kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited"
        [ "$SECONDS" -lt "$deadline" ] || fail "prometheus not ready after 60s"
        sleep 0.2
    done
}

# query EXPR [TIME]: an instant query; sets Q_TIME and Q_VALUE from its one
# result, returns 1 if the query failed or its result is not one sample.
query() {
    local args
    args="query=$(urlencode "$1")"
    [ -n "${2:-}" ] && args="$args&time=$2"
    http_get 127.0.0.1 "$PROM_PORT" "/api/v1/query?$args" "$TMP_DIR/query.json" || return 1
    grep -q '"status":"success"' "$TMP_DIR/query.json" || return 1
    # Exactly one sample: "value":[<time>,"<value>"] occurs once.
    [ "$(grep -o '"value":\[' "$TMP_DIR/query.json" | wc -l)" -eq 1 ] || return 1
    Q_TIME=$(sed -n 's/.*"value":\[\([0-9.e+-]*\),"[^"]*"\].*/\1/p' "$TMP_DIR/query.json")
    Q_VALUE=$(sed -n 's/.*"value":\[[0-9.e+-]*,"\([^"]*\)"\].*/\1/p' "$TMP_DIR/query.json")
    [ -n "$Q_TIME" ] && [ -n "$Q_VALUE" ]
}

# wait_value EXPR WANT SECONDS: polls until EXPR is exactly WANT; fails if
# Prometheus or tcpmsgd exits meanwhile, or at the deadline.
wait_value() {
    local deadline=$((SECONDS + $3))
    Q_VALUE=""
    until query "$1" && [ "$Q_VALUE" = "$2" ]; do
        kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited"
        kill -0 "$TCPMSGD_PID" 2>/dev/null || fail "tcpmsgd exited"
        [ "$SECONDS" -lt "$deadline" ] \
            || fail "$1 is '${Q_VALUE:-no result}' after $3s, want $2 ($(cat "$TMP_DIR/query.json" 2>/dev/null))"
        sleep 0.2
    done
}
