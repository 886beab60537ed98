#!/bin/bash
# prometheus.dashboard_metrics: every metric name (tcpmsg_*, process_*) and
# every reason/kind/mode/class label value that dashboards/*.json and
# dashboards/*.yml mention exists in the live /metrics?format=prometheus
# output of tcpmsgd, or of a `tcpmsg probe` (the probe dashboard), and every
# panel query of the Grafana dashboards is valid PromQL
# (checked by promtool as a recording rule).
# Usage: dashboard_metrics.sh TCPMSGD TCPMSG DASHBOARD_DIR
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 TCPMSG=$2
DASHBOARDS=$(cd "$3" && pwd) || fail "no directory $3"
PROMTOOL=$(need_program promtool) || exit $?
watchdog 100

files=$(ls "$DASHBOARDS"/*.json "$DASHBOARDS"/*.yml 2>/dev/null)
[ -n "$files" ] || fail "no dashboards/*.json or *.yml in $DASHBOARDS"

start_tcpmsgd "$TCPMSGD"
timeout 30 "$TCPMSG" bench --count 100 "127.0.0.1:$PORT" >"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg bench failed"
http_get 127.0.0.1 "$HTTP_PORT" "/metrics?format=prometheus" "$TMP_DIR/metrics.txt" \
    || fail "GET /metrics?format=prometheus failed"

# The probe serves its own metrics: probe the server a few times, add them.
# Its target from a file, so that the reload metrics are there too.
printf '127.0.0.1:%s\n' "$PORT" >"$TMP_DIR/targets"
"$TCPMSG" probe --interval 0.1 --http-port 0 --targets "$TMP_DIR/targets" \
    >"$TMP_DIR/probe.out" 2>"$TMP_DIR/probe.log" &
PROBE_PID=$!
CHILD_PIDS="$CHILD_PIDS $PROBE_PID"
PROBE_HTTP=$(wait_log "$TMP_DIR/probe.log" 's/.*http_port=\([0-9][0-9]*\).*/\1/p' "$PROBE_PID" 30) || exit 1
wait_log "$TMP_DIR/probe.out" 's/.*\(rtt\).*/\1/p' "$PROBE_PID" 30 >/dev/null || exit 1
http_get 127.0.0.1 "$PROBE_HTTP" "/metrics" "$TMP_DIR/probe_metrics.txt" \
    || fail "GET the probe's /metrics failed"
cat "$TMP_DIR/probe_metrics.txt" >>"$TMP_DIR/metrics.txt"
kill -TERM "$PROBE_PID"

# Known names: every sample name (histograms give _bucket, _sum, _count) and
# every family name of a "# TYPE" line (the histogram itself).
{
    sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' "$TMP_DIR/metrics.txt"
    sed -n 's/^# TYPE \([a-zA-Z_:][a-zA-Z0-9_:]*\) .*/\1/p' "$TMP_DIR/metrics.txt"
} | sort -u >"$TMP_DIR/known"
[ "$(wc -l <"$TMP_DIR/known")" -gt 10 ] || fail "too few metrics in the output"

# Names used by the dashboards; a histogram may be named by its family.
# shellcheck disable=SC2086
grep -oh 'tcpmsg_[a-z_]*[a-z]\|process_[a-z_]*[a-z]' $files | sort -u >"$TMP_DIR/used"
[ -s "$TMP_DIR/used" ] || fail "no metric names found in the dashboards"
missing=""
while read -r name; do
    grep -qx "$name" "$TMP_DIR/known" && continue
    base=$(printf '%s\n' "$name" | sed 's/_\(bucket\|sum\|count\)$//')
    grep -qx "# TYPE $base histogram" <(sed -n 's/^\(# TYPE [^ ]* histogram\)$/\1/p' "$TMP_DIR/metrics.txt") && continue
    missing="$missing $name"
done <"$TMP_DIR/used"
[ -z "$missing" ] || fail "metrics used by the dashboards but not served by tcpmsgd or the probe:$missing"
log "$(wc -l <"$TMP_DIR/used") metric names used, all served"

# Label values matched exactly (reason="slow_reader"); JSON escapes quotes.
# shellcheck disable=SC2086
sed 's/\\"/"/g' $files | grep -o '\(reason\|kind\|mode\|class\) *!\{0,1\}= *"[^"]*"' \
    | sed 's/ *!\{0,1\}= */=/' | sort -u >"$TMP_DIR/labels"
missing=""
while read -r pair; do
    grep -qF "$pair" "$TMP_DIR/metrics.txt" || missing="$missing $pair"
done <"$TMP_DIR/labels"
[ -z "$missing" ] || fail "label values used by the dashboards but not served by tcpmsgd:$missing"
log "$(wc -l <"$TMP_DIR/labels") label values used, all served"

# Panel queries as recording rules, Grafana's variables replaced by values,
# so `promtool check rules` parses each one.
{
    echo "groups:"
    echo "  - name: dashboard_queries"
    echo "    rules:"
    i=0
    for f in "$DASHBOARDS"/*.json; do
        while IFS= read -r expr; do
            i=$((i + 1))
            e=${expr//\$__rate_interval/1m}
            e=${e//\$__interval/15s}
            e=${e//\$__range/1h}
            e=${e//\$\{instance\}/localhost:8081}
            e=${e//\$instance/localhost:8081}
            e=${e//\$\{target\}/127.0.0.1:8080}
            e=${e//\$target/127.0.0.1:8080}
            printf '      - record: dashboard:query_%d\n        expr: |\n          %s\n' "$i" "$e"
        done < <(sed -n 's/^ *"expr": "\(.*\)",\{0,1\}$/\1/p' "$f" | sed 's/\\"/"/g; s/\\\\/\\/g')
    done
} >"$TMP_DIR/queries.yml"
grep -q 'record:' "$TMP_DIR/queries.yml" || fail "no \"expr\" found in $DASHBOARDS/*.json"
"$PROMTOOL" check rules "$TMP_DIR/queries.yml" >"$TMP_DIR/promtool.log" 2>&1 \
    || fail "a dashboard query is not valid PromQL: $(cat "$TMP_DIR/promtool.log")"
grep -q '\$' "$TMP_DIR/queries.yml" && fail "a dashboard query uses an unknown variable: $(grep '\$' "$TMP_DIR/queries.yml")"
stop_tcpmsgd
log "ok: $(grep -c 'record:' "$TMP_DIR/queries.yml") dashboard queries are valid PromQL"
