#!/bin/bash
# browser.probe_page: headless chromium loads the status page of
# `tcpmsg probe --targets FILE` probing a live tcpmsgd and a port nobody
# listens on (the port of a second tcpmsgd, killed), and the rendered page
# shows one tile and one row per target: the live one up with a round trip
# in a unit, the dead one down with reason "connect" and 100 % loss. Then
# the file loses the dead target and gains nothing: after the reload the
# page shows the live one alone. A file that does not parse raises the
# page's banner while the rows stay.
#
# usage: probe_page.sh TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR
set -u
. "$(dirname "$0")/lib.sh" || { echo "FAIL: cannot load lib.sh" >&2; exit 1; }
browser_setup "$@"
[ -f "$WEB_ROOT/probe.html" ] || fail "no probe.html in $WEB_ROOT"

# The dead port first: a tcpmsgd killed leaves its port closed.
start_server
DEAD=$PORT
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
start_server
LIVE=$PORT
note "live target 127.0.0.1:$LIVE, dead target 127.0.0.1:$DEAD"

FILE=$TMP/targets.txt
printf '# the browser test\n127.0.0.1:%s\n127.0.0.1:%s\n' "$LIVE" "$DEAD" >"$FILE"
"$TCPMSG" probe --targets "$FILE" --interval 0.1 --timeout 0.5 --duration 100 \
    --http-port 0 --web-root "$WEB_ROOT" >"$TMP/probe.out" 2>"$TMP/probe.err" &
PROBE_PID=$!
track "$PROBE_PID"
i=0
until grep -q 'http_port=' "$TMP/probe.err"; do
    kill -0 "$PROBE_PID" 2>/dev/null || { cat "$TMP/probe.err" >&2; fail "tcpmsg probe exited"; }
    i=$((i + 1))
    [ $i -le 100 ] || fail "tcpmsg probe did not say its port within 10 s"
    sleep 0.1
done
HTTP_PORT=$(sed -n 's/.*http_port=\([0-9][0-9]*\).*/\1/p' "$TMP/probe.err" | head -n 1)
note "tcpmsg probe pid $PROBE_PID: http port $HTTP_PORT"

# Wait (bounded) until both targets have a state: the live one answered, the
# dead one refused at least once.
i=0
until targets=$(http_get /api/targets) &&
    grep -q '"up":true' <<<"$targets" && grep -q '"up":false' <<<"$targets"; do
    i=$((i + 1))
    [ $i -le 100 ] || fail "the targets have no state within 10 s: $targets"
    sleep 0.1
done

# render NAME: the page after 4 polls, flattened into $dom.
render() {
    chromium_run 60 --virtual-time-budget=4000 --dump-dom "$(page_url)" >"$TMP/$1.html" ||
        { show_failure_context; fail "chromium --dump-dom failed"; }
    save_dom "$1" "$TMP/$1.html"
    dom=$(dom_flatten "$TMP/$1.html")
}

# row TARGET: the table row of that target, on one line.
row() {
    printf '%s' "$dom" | grep -o "<tr data-target=\"$1\"[^>]*>.*" | sed 's#</tr>.*##'
}

render probe_page
live_row=$(row "127.0.0.1:$LIVE")
dead_row=$(row "127.0.0.1:$DEAD")
rows=$(printf '%s' "$dom" | grep -o '<tr data-target=' | wc -l)
tiles=$(printf '%s' "$dom" | grep -o '<div class="tile tile-[a-z]*" data-target=' | wc -l)
check "the page refreshed at least twice" num_gt "$(body_attr "$dom" data-updated)" 1
check "the page is live" [ "$(body_attr "$dom" data-state)" = live ]
check "a row per target ($rows)" [ "$rows" -eq 2 ]
check "a tile per target ($tiles)" [ "$tiles" -eq 2 ]
check "the live target is up" grep -q 'data-up="up"' <<<"$live_row"
check "the live target's last round trip has a unit" \
    grep -Eq 'class="num last-rtt" data-value="[0-9.]+">[0-9.]+ (ns|µs|ms)<' <<<"$live_row"
check "the live target lost nothing" grep -q 'class="num lost" data-value="0"' <<<"$live_row"
check "the dead target is down" grep -q 'data-up="down"' <<<"$dead_row"
check "the dead target failed to connect" grep -q 'class="failure reason-connect">connect: ' <<<"$dead_row"
check "the dead target lost its whole window" grep -q 'class="num loss text-bad" data-value="100"' <<<"$dead_row"
check "the dead tile says connect" \
    grep -q "<div class=\"tile tile-down\" data-target=\"127.0.0.1:$DEAD\"[^>]*><span class=\"tile-name\">127.0.0.1:$DEAD</span><span class=\"tile-rtt\">connect</span>" <<<"$dom"
check "the header counts 1 up, 1 down" \
    [ "$(dom_text "$dom" n-up)/$(dom_text "$dom" n-down)" = 1/1 ]
check "the header counts one load of the file" [ "$(dom_attr "$dom" file-reloads data-success)" = 1 ]
check "no banner about the file" grep -q ' hidden' <<<"$(dom_tag "$dom" banner-file)"
png="$ARTIFACTS/probe_page.png"
rm -f "$png"
chromium_run 60 --virtual-time-budget=3000 --window-size=1280,800 --screenshot="$png" \
    "$(page_url)" >/dev/null || fail "chromium --screenshot failed"
check "screenshot $png written" [ -s "$png" ]

# The dead target removed from the file: after the reload, one row.
printf '127.0.0.1:%s\n' "$LIVE" >"$FILE.new" && mv "$FILE.new" "$FILE"
i=0
until grep -q 'targets 1, added 0, removed 1' "$TMP/probe.err"; do
    i=$((i + 1))
    [ $i -le 100 ] || { cat "$TMP/probe.err" >&2; fail "no reload within 10 s"; }
    sleep 0.1
done
render probe_page_reloaded
rows=$(printf '%s' "$dom" | grep -o '<tr data-target=' | wc -l)
check "after the reload, one row ($rows)" [ "$rows" -eq 1 ]
check "after the reload, the live target's row" [ -n "$(row "127.0.0.1:$LIVE")" ]
check "after the reload, two loads of the file" [ "$(dom_attr "$dom" file-reloads data-success)" = 2 ]

# A file that does not parse: the banner, and the row stays.
printf 'not a target\n' >"$FILE"
i=0
until grep -q 'line 1: one HOST\[:PORT\] a line' "$TMP/probe.err"; do
    i=$((i + 1))
    [ $i -le 100 ] || { cat "$TMP/probe.err" >&2; fail "no failed reload within 10 s"; }
    sleep 0.1
done
render probe_page_bad_file
check "a bad file raises the banner" [ -z "$(dom_tag "$dom" banner-file | grep ' hidden')" ]
check "the banner says the line" grep -q 'id="file-error">line 1: one HOST' <<<"$dom"
check "the row stays" [ -n "$(row "127.0.0.1:$LIVE")" ]
check "the header counts the failed load" [ "$(dom_attr "$dom" file-reloads data-failure)" = 1 ]

kill -0 "$PROBE_PID" 2>/dev/null || { cat "$TMP/probe.err" >&2; fail "tcpmsg probe died during the test"; }
if [ "$errors" -ne 0 ]; then
    show_failure_context
    tail -n 20 "$TMP/probe.err" >&2
    fail "$errors check(s) failed; the pages as rendered: $ARTIFACTS/probe_page*.dom.html"
fi
echo "PASS: the probe's status page shows its targets (screenshot in $ARTIFACTS)"
