#!/bin/bash
# browser.stages_view: the status page's "where the time goes" view against
# a real tcpmsgd. With --stage-sample 1 and real traffic (tcpmsg bench,
# finished before the page loads, so the histograms hold still), the two
# stacked bars have a segment per stage of the server's JSON, each carrying
# the JSON's p50 or p99 and drawn with a width proportional to it on the
# bars' common scale; the table lists the same stages; the kernel's srtt and
# the clients' RTT are shown. With --stage-sample 0 the view says sampling
# is off and draws no bar; with sampling on and no traffic, it waits for a
# sample. Screenshots of both states are kept, and checked:
# PNG images of the window's size, of some weight, and different.
#
# usage: stages_view.sh TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR
set -u
. "$(dirname "$0")/lib.sh" || { echo "FAIL: cannot load lib.sh" >&2; exit 1; }
browser_setup "$@"

not() { ! "$@"; }

# num_close A B: the numbers A and B agree to a relative 1e-6 (the page
# writes back the double it parsed, in JavaScript's own digits).
num_close() {
    awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = (b < 0 ? -b : b);
                                     exit !(a != "" && b != "" && d <= 1e-6 * m + 1e-15) }'
}

# stage_value DOC STAGE KEY: KEY (p50, p99, count) of histograms.stage_seconds.STAGE
# in the compact metrics document DOC. The percentiles come before the
# buckets in each histogram object, so the text up to its first '}' holds
# them.
stage_value() {
    printf '%s' "$1" | grep -o '"stage_seconds":.*' | grep -o "\"$2\":{[^}]*" | head -n 1 |
        grep -o "\"$3\":[0-9.eE+-]*" | head -n 1 | sed 's/^[^:]*://'
}

# png_size FILE: "WIDTH HEIGHT" from the PNG header (IHDR), or nothing.
png_size() {
    [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || return 0
    od -An -tu1 -j16 -N8 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4,
                                             $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'
}

# screenshot NAME: the page at 1280x2400 (every panel in view), checked.
screenshot() {
    local png="$ARTIFACTS/stages_view-$1.png" size bytes
    rm -f "$png"
    chromium_run 60 --virtual-time-budget=5000 --window-size=1280,2400 --screenshot="$png" \
        "$(page_url)" >/dev/null || { show_failure_context; fail "chromium --screenshot ($1) failed"; }
    size=$(png_size "$png")
    bytes=$(wc -c <"$png" 2>/dev/null || echo 0)
    note "screenshot $1: ${size:-not a PNG}, $bytes bytes"
    check "screenshot $1 is a 1280x2400 PNG" [ "$size" = "1280 2400" ]
    # A blank window compresses to a few kilobytes; a rendered page with
    # text, tables and bars does not.
    check "screenshot $1 is not blank ($bytes bytes)" [ "$bytes" -gt 40000 ]
}

# --- on: every message sampled, real traffic -----------------------------------------

start_server --stage-sample 1
"$TCPMSG" bench "127.0.0.1:$PORT" --connections 4 --depth 2 --count 4000 \
    >"$TMP/bench.log" 2>&1 || { cat "$TMP/bench.log" >&2; fail "tcpmsg bench failed"; }
metrics=$(http_get /metrics)
names=$(printf '%s' "$metrics" | grep -o '"stage_seconds":{.*' |
        grep -o '"[a-z_]*":{"unit"' | sed 's/^"//; s/".*//' | tr '\n' ' ')
note "stages in the JSON: $names"
check "the server exports stages (${names:-none})" [ -n "$names" ]
check "the server samples one message in 1" \
    grep -q '"stage_sample":1[,}]' <<<"$metrics"

chromium_run 60 --virtual-time-budget=4000 --dump-dom "$(page_url)" >"$TMP/on.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom stages_view-on "$TMP/on.html"
dom=$(dom_flatten "$TMP/on.html")
check "the view is on" [ "$(dom_attr "$dom" stages data-stages)" = on ]
check "the off note is hidden" grep -q ' hidden' <<<"$(dom_tag "$dom" stages-off)"

# Each bar: one segment per stage, in the JSON's order, carrying its value;
# widths proportional to the values on the common scale (the longer bar's
# sum is 100%).
sum_p50=0 sum_p99=0
for s in $names; do
    sum_p50=$(awk -v a="$sum_p50" -v b="$(stage_value "$metrics" "$s" p50)" 'BEGIN { print a + b }')
    sum_p99=$(awk -v a="$sum_p99" -v b="$(stage_value "$metrics" "$s" p99)" 'BEGIN { print a + b }')
done
scale=$(awk -v a="$sum_p50" -v b="$sum_p99" 'BEGIN { print (a > b ? a : b) }')
note "sum of p50s $sum_p50 s, of p99s $sum_p99 s"
for p in p50 p99; do
    bar=$(printf '%s' "$dom" | grep -o "id=\"stages-$p\"[^>]*>.*" | sed 's#</div>.*##')
    segs=$(printf '%s' "$bar" | grep -o '<span class="seg[^>]*>' )
    order=$(printf '%s\n' "$segs" | grep -o 'data-stage="[a-z_]*"' | sed 's/.*="//; s/"$//' | tr '\n' ' ')
    check "the $p bar has a segment per stage, in order ($order)" [ "$order" = "$names" ]
    for s in $names; do
        seg=$(printf '%s\n' "$segs" | grep "data-stage=\"$s\"")
        shown=$(printf '%s' "$seg" | grep -o 'data-seconds="[^"]*"' | sed 's/.*="//; s/"$//')
        width=$(printf '%s' "$seg" | grep -o 'width: [0-9.]*%' | grep -o '[0-9.]*')
        want=$(stage_value "$metrics" "$s" "$p")
        check "$p $s carries the JSON's value ($shown, JSON $want)" num_close "$shown" "$want"
        check "$p $s is ${width}% wide, $want / $scale of the scale" \
            awk -v w="$width" -v v="$want" -v s="$scale" \
                'BEGIN { d = w - 100 * v / s; exit !(w != "" && s > 0 && d < 0.002 && d > -0.002) }'
    done
done
rows=$(printf '%s' "$dom" | grep -o '<tbody id="stages-rows">.*' | sed 's#</tbody>.*##' |
       grep -o 'data-stage="[a-z_]*"' | sed 's/.*="//; s/"$//' | tr '\n' ' ')
check "the table lists every stage by name ($rows)" [ "$rows" = "$names" ]
check "the kernel's srtt is a time ($(dom_text "$dom" stages-srtt))" \
    grep -Eq '^[0-9.]+ (ns|µs|ms|s)$' <<<"$(dom_text "$dom" stages-srtt)"
check "the clients' RTT is a time ($(dom_text "$dom" stages-rtt))" \
    grep -Eq '^[0-9.]+ (ns|µs|ms|s)$' <<<"$(dom_text "$dom" stages-rtt)"
screenshot on
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null

# --- off: no sampling --------------------------------------------------------------------

start_server --stage-sample 0
"$TCPMSG" bench "127.0.0.1:$PORT" --count 200 >"$TMP/bench-off.log" 2>&1 ||
    { cat "$TMP/bench-off.log" >&2; fail "tcpmsg bench failed"; }
chromium_run 60 --virtual-time-budget=3000 --dump-dom "$(page_url)" >"$TMP/off.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom stages_view-off "$TMP/off.html"
dom=$(dom_flatten "$TMP/off.html")
check "the view is off" [ "$(dom_attr "$dom" stages data-stages)" = off ]
check "the view says stage sampling is off" grep -q 'Stage sampling off' <<<"$dom"
check "the off note is shown" not grep -q ' hidden' <<<"$(dom_tag "$dom" stages-off)"
check "no bar is drawn" not grep -q '<span class="seg' <<<"$dom"
check "the bars are hidden" grep -q ' hidden' <<<"$(dom_tag "$dom" stages-view)"
screenshot off
check "the two screenshots differ" not cmp -s "$ARTIFACTS/stages_view-on.png" "$ARTIFACTS/stages_view-off.png"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null

# --- on, but nothing sampled yet: no traffic -------------------------------------------

start_server --stage-sample 5
chromium_run 60 --virtual-time-budget=3000 --dump-dom "$(page_url)" >"$TMP/empty.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom stages_view-empty "$TMP/empty.html"
dom=$(dom_flatten "$TMP/empty.html")
check "the view waits for a sample" [ "$(dom_attr "$dom" stages data-stages)" = empty ]
check "it says no message was sampled yet" grep -q 'id="stages-empty">no sampled message yet' <<<"$dom"
check "it names the sampling rate ($(dom_text "$dom" stages-sample))" \
    [ "$(dom_text "$dom" stages-sample)" = "one in 5" ]
check "no bar is drawn while waiting" not grep -q '<span class="seg' <<<"$dom"

kill -0 "$SERVER_PID" 2>/dev/null || { show_failure_context; fail "tcpmsgd died during the test"; }
if [ "$errors" -ne 0 ]; then
    show_failure_context
    fail "$errors check(s) failed; the pages as rendered: $ARTIFACTS/stages_view-*.dom.html"
fi
echo "PASS: where the time goes, on and off (screenshots in $ARTIFACTS)"
