#!/bin/bash
# browser.status_page: headless chromium loads the status page of a tcpmsgd
# under load (tcpmsg bench plus one text-mode connection) and the rendered
# page shows live values, not placeholders: a message rate above zero, open
# connections, table rows, percentiles with units, no offline banner, and
# the event loop's system calls per message and messages per wakeup (or
# "n/a" from a server that does not export them).
# Screenshots at laptop and phone size are kept in the artefact directory.
#
# usage: status_page.sh TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR
set -u
. "$(dirname "$0")/lib.sh" || { echo "FAIL: cannot load lib.sh" >&2; exit 1; }
browser_setup "$@"

start_server

"$TCPMSG" bench "127.0.0.1:$PORT" --connections 8 --depth 4 --duration 30 \
    >"$TMP/bench.log" 2>&1 &
track $!

# A text-mode client through a raw socket, kept open so the table has a
# "text" row: one line sent, its echo read back.
exec 5<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect a text client"
printf 'hello from the browser test\n' >&5
read -r -t 5 echo_line <&5 || fail "no echo for the text client"
[ "$echo_line" = "hello from the browser test" ] || fail "text echo was: $echo_line"

# Wait (bounded) until the server has counted traffic, so the page cannot
# win the race against the bench's first messages.
i=0
until num_gt "$(http_get /metrics | json_sum messages_received_total)" 1000; do
    i=$((i + 1))
    [ $i -le 100 ] || { show_failure_context; fail "no traffic counted within 10 s"; }
    sleep 0.1
done

# 8 virtual seconds: 8 polls, a few hundred milliseconds of real time.
chromium_run 60 --virtual-time-budget=8000 --dump-dom "$(page_url)" >"$TMP/dom.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom status_page "$TMP/dom.html"
dom=$(dom_flatten "$TMP/dom.html")

updated=$(body_attr "$dom" data-updated)
rate=$(dom_attr "$dom" msg-rate data-value)
byte_rate=$(dom_attr "$dom" byte-rate data-value)
open=$(dom_attr "$dom" conns-open data-value)
rows=$(printf '%s' "$dom" | grep -o '<tbody id="conn-rows">.*' | sed 's#</tbody>.*##' | grep -o '<tr data-id=' | wc -l)
p50=$(dom_text "$dom" service-p50)
note "refreshes=$updated msg-rate=$rate byte-rate=$byte_rate conns-open=$open rows=$rows service-p50=$p50"

check "the page refreshed at least twice (data-updated=$updated)" num_gt "$updated" 1
check "the page is live" [ "$(body_attr "$dom" data-state)" = live ]
check "messages/s in is above zero ($rate)" num_gt "$rate" 0
check "bytes/s in is above zero ($byte_rate)" num_gt "$byte_rate" 0
check "connections open is above zero ($open)" num_gt "$open" 0
check "the connection table has a row per connection ($rows rows, 9 expected)" [ "$rows" -ge 9 ]
check "the table shows the text-mode connection" grep -q '<td>text</td>' <<<"$dom"
# The TCP columns: a congestion window of at least one segment in every row
# (the worker model reads TCP_INFO for each listed connection).
cwnds=$(printf '%s' "$dom" | grep -o 'class="num tcp-cwnd" data-value="[1-9][0-9]*"' | wc -l)
check "every row shows the kernel's congestion window ($cwnds of $rows)" [ "$cwnds" -eq "$rows" ]
check "every row shows an srtt with a unit" \
    [ "$(printf '%s' "$dom" | grep -Eo 'class="num tcp-srtt" data-value="[0-9]+">[0-9.]+ (µs|ms|s)<' | wc -l)" -eq "$rows" ]
check "service p50 is a time with a unit ($p50)" grep -Eq '^[0-9.]+ (ns|µs|ms|s)$' <<<"$p50"
check "the server version is shown" [ -n "$(dom_text "$dom" server-version | tr -d '—')" ]
check "the offline banner is hidden" grep -q ' hidden' <<<"$(dom_tag "$dom" banner-offline)"

# The event loop tiles: numbers where the server exports its system calls and
# wakeups, "n/a" where it does not (an older tcpmsgd, or fork mode). Which
# one is decided by the server's own document, so either way the check is
# exact.
metrics=$(http_get /metrics)
sys_per_msg=$(dom_attr "$dom" sys-per-msg data-value)
per_wakeup=$(dom_attr "$dom" msgs-per-wakeup data-value)
kinds=$(printf '%s' "$dom" | grep -o '<tbody id="sys-rows">.*' | sed 's#</tbody>.*##' | grep -o '<tr data-kind=' | wc -l)
note "syscalls-per-message=$sys_per_msg messages-per-wakeup=$per_wakeup kinds=$kinds"
if grep -q '"syscalls": *{' <<<"$metrics"; then
    check "system calls per message is above zero ($sys_per_msg)" num_gt "$sys_per_msg" 0
    check "the table lists the system calls by kind ($kinds kinds)" [ "$kinds" -ge 1 ]
else
    check "system calls per message says n/a" [ "$(dom_text "$dom" sys-per-msg)" = n/a ]
    check "the table by kind says n/a" grep -q 'id="sys-empty">n/a' <<<"$dom"
fi
if grep -q '"wakeups": *[0-9]' <<<"$metrics"; then
    check "messages per wakeup is above zero ($per_wakeup)" num_gt "$per_wakeup" 0
    check "messages per wakeup p50 is a number" num_gt "$(dom_attr "$dom" mpw-p50 data-value)" 0
else
    check "messages per wakeup says n/a" [ "$(dom_text "$dom" msgs-per-wakeup)" = n/a ]
fi
io=$(grep -o '"io": *"[a-z_]*"' <<<"$metrics" | head -n 1 | sed 's/.*"\([a-z_]*\)"$/\1/')
check "the header shows the io backend (${io:-n/a})" [ "$(dom_text "$dom" server-io)" = "${io:-n/a}" ]

# Screenshots for people: laptop and phone size (the phone one exercises
# the single-column layout).
for shot in desktop:1280,1600 phone:390,844; do
    name=${shot%%:*} size=${shot#*:} png="$ARTIFACTS/status_page-${shot%%:*}.png"
    rm -f "$png"
    chromium_run 60 --virtual-time-budget=5000 --window-size="$size" --screenshot="$png" \
        "$(page_url)" >/dev/null || { show_failure_context; fail "chromium --screenshot ($name) failed"; }
    check "screenshot $png written" [ -s "$png" ]
done

kill -0 "$SERVER_PID" 2>/dev/null || { show_failure_context; fail "tcpmsgd died during the test"; }
if [ "$errors" -ne 0 ]; then
    show_failure_context
    fail "$errors check(s) failed; the page as rendered: $ARTIFACTS/status_page.dom.html"
fi
echo "PASS: status page live (screenshots in $ARTIFACTS)"
