# Shared by the browser tests (sourced, not run): start tcpmsgd on port 0
# and read its ports back, run headless chromium, read the dumped DOM, and
# clean up everything that was started. bash, no python: a fresh CI machine
# has bash, coreutils, grep, sed and awk, nothing more is assumed.
#
# How the page is exercised: chromium --virtual-time-budget=MS runs the
# page's timers as fast as they can fire (a second of the page's time passes
# in the few milliseconds a poll takes) while its fetches go over the real
# network to the real server. The budget therefore counts the page's polls
# (one per virtual second), not wall-clock time. Virtual time stands still
# while a fetch is pending, so a server that accepts and never answers would
# freeze the page: tests stop servers with SIGKILL, never SIGSTOP.

SERVER_STARTS=0

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "# $*" >&2
}

# browser_setup TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR: check the arguments and
# chromium, make the temporary directory, install the cleanup trap.
browser_setup() {
    if [ $# -ne 4 ]; then
        echo "usage: $0 TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR" >&2
        exit 2
    fi
    TCPMSGD=$1 TCPMSG=$2 WEB_ROOT=$3 ARTIFACTS=$4
    [ -x "$TCPMSGD" ] || fail "not an executable: $TCPMSGD"
    [ -x "$TCPMSG" ] || fail "not an executable: $TCPMSG"
    [ -f "$WEB_ROOT/index.html" ] || fail "no index.html in $WEB_ROOT"

    # A browser test that skips when the browser is missing is a test that
    # silently never runs: fail, and say how to fix it.
    CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
    [ -n "$CHROMIUM" ] ||
        fail "chromium is not installed: the browser tests need it (apt-get install chromium, or set CHROMIUM=/path/to/chromium)"
    "$CHROMIUM" --version >/dev/null 2>&1 || fail "$CHROMIUM does not run ($CHROMIUM --version failed)"

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/tcpmsg-browser.XXXXXX") || fail "mktemp failed"
    mkdir -p "$ARTIFACTS" || fail "cannot create $ARTIFACTS"
    trap browser_cleanup EXIT
    trap 'exit 1' HUP INT TERM
}

# Stop whatever is still running (by process id: only what this test
# started), then remove the temporary directory.
browser_cleanup() {
    local pid pids
    pids=$(cat "$TMP/pids" 2>/dev/null)
    for pid in $pids; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in $pids; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}

# track PID: kill it on exit. A file, not a variable, so that processes
# started in a subshell (a background watcher) are cleaned up too.
track() {
    echo "$1" >>"$TMP/pids"
}

# start_server [OPTION]...: start tcpmsgd on 127.0.0.1, TCP and HTTP port 0
# unless the options say otherwise, wait (bounded) for its log to name both
# ports. Sets SERVER_PID, PORT, HTTP_PORT.
start_server() {
    local log i=0
    SERVER_STARTS=$((SERVER_STARTS + 1))
    log="$TMP/server.$SERVER_STARTS.log" # one per start: a restart must not find the old lines
    "$TCPMSGD" --bind 127.0.0.1 --port 0 --http-port 0 --web-root "$WEB_ROOT" \
        --threads 2 "$@" 2>>"$log" &
    SERVER_PID=$!
    track "$SERVER_PID"
    until grep -q 'http endpoint listening' "$log"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$log" >&2
            fail "tcpmsgd exited during startup"
        fi
        i=$((i + 1))
        [ $i -le 100 ] || fail "tcpmsgd did not log its ports within 10 s"
        sleep 0.1
    done
    # "server socket bound ip=127.0.0.1 port=N", "http endpoint listening ... http_port=H"
    PORT=$(sed -n 's/.*server socket bound.* port=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    HTTP_PORT=$(sed -n 's/.*http endpoint listening.* http_port=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$PORT" ] && [ -n "$HTTP_PORT" ] || { cat "$log" >&2; fail "cannot read the ports from the server log"; }
    note "tcpmsgd pid $SERVER_PID: port $PORT, http port $HTTP_PORT"
}

# http_get PATH: the body of GET http://127.0.0.1:$HTTP_PORT/PATH, through
# bash's /dev/tcp (no curl needed). The endpoint closes each connection.
http_get() {
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$1" >&3
        cat <&3' "$HTTP_PORT" "$1" 2>/dev/null | sed '1,/^\r*$/d'
}

# json_sum KEY < DOCUMENT: the value of "KEY": N, or the sum of the values
# of a labelled counter "KEY": {"a": N, "b": M}. Enough JSON for our flat
# counters; prints nothing when the key is absent.
json_sum() {
    grep -o "\"$1\":\({[^}]*}\|[0-9.eE+-]*\)" | head -n 1 |
        sed 's/^"[^"]*"//' | grep -o ':[0-9][0-9.eE+-]*' | tr -d : | awk '{ s += $1 } END { if (NR) print s }'
}

# chromium_run TIMEOUT_S [OPTION]... URL: headless chromium with a fresh
# profile, under a timeout (timeout(1) signals chromium's whole process
# group, so its helper processes go too). Its noise goes to chromium.log.
chromium_run() {
    local limit=$1
    shift
    timeout -k 5 "$limit" "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --disable-quic --disable-extensions --hide-scrollbars --mute-audio \
        --user-data-dir="$(mktemp -d "$TMP/profile.XXXXXX")" "$@" 2>>"$TMP/chromium.log"
}

# page_url: the status page of the running server.
page_url() {
    echo "http://127.0.0.1:$HTTP_PORT/"
}

# dom_flatten FILE: the dumped DOM on one line, so grep sees whole elements.
dom_flatten() {
    tr -d '\n' <"$1"
}

# dom_tag DOM ID: the start tag of the element with that id.
dom_tag() {
    printf '%s' "$1" | grep -o "<[a-z][a-z0-9]* [^>]*id=\"$2\"[^>]*>" | head -n 1
}

# dom_attr DOM ID ATTR: that attribute of the element with that id.
dom_attr() {
    dom_tag "$1" "$2" | grep -o " $3=\"[^\"]*\"" | head -n 1 | sed 's/^[^"]*"//; s/"$//'
}

# dom_text DOM ID: the text of the element with that id, up to its first child.
dom_text() {
    printf '%s' "$1" | grep -o "id=\"$2\"[^>]*>[^<]*" | head -n 1 | sed 's/^[^>]*>//'
}

# body_attr DOM ATTR: an attribute of <body>.
body_attr() {
    printf '%s' "$1" | grep -o '<body[^>]*>' | grep -o " $2=\"[^\"]*\"" | sed 's/^[^"]*"//; s/"$//'
}

# num_gt A B: true when the number A is greater than B (A may be a float).
num_gt() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 > b + 0) }'
}

# check DESCRIPTION COMMAND...: run one check of the page, print "ok" or
# "not ok" with its description, and count failures in $errors, so a test
# reports every failed check before it fails, not only the first.
errors=0
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok - $what"
    else
        echo "not ok - $what" >&2
        errors=$((errors + 1))
    fi
}

# save_dom NAME FILE: keep the dumped DOM as an artefact, for post-mortems.
save_dom() {
    cp "$2" "$ARTIFACTS/$1.dom.html" 2>/dev/null || true
}

# show_failure_context: the logs a reader needs when a check failed.
show_failure_context() {
    echo "--- server log" >&2
    tail -n 20 "$TMP"/server.*.log >&2 2>/dev/null || true
    echo "--- chromium log (without D-Bus noise)" >&2
    grep -v -i 'dbus' "$TMP/chromium.log" 2>/dev/null | tail -n 20 >&2 || true
}

# wait_page_refreshes N: wait (bounded, 30 s) until the server has answered
# the page's first 4 requests (page, style, two scripts) and N refreshes of 2
# requests each. Counted from the server's http_responses_total, minus the
# responses to these polls themselves (one each, counted after it is read).
# Meant for a background watcher while chromium runs; false on timeout.
wait_page_refreshes() {
    local want=$((4 + 2 * $1)) mine=0 served
    while [ $mine -lt 600 ]; do
        served=$(http_get /metrics | json_sum http_responses_total)
        if [ -n "$served" ] && [ $((${served%.*} - mine)) -ge $want ]; then
            return 0
        fi
        mine=$((mine + 1))
        sleep 0.05
    done
    return 1
}
