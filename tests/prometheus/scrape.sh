#!/bin/bash
# prometheus.scrape: a real Prometheus scrapes a live tcpmsgd (OpenMetrics,
# negotiated) and its query API returns exactly the messages sent and a
# service-time quantile; the alert rules of dashboards/ load and evaluate
# without error, and every PromQL expression of the Grafana dashboard
# evaluates to at least one series against the live data.
# Usage: scrape.sh TCPMSGD TCPMSG DASHBOARD_DIR
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 TCPMSG=$2
DASHBOARDS=$(cd "$3" && pwd) || fail "no directory $3"
PROMETHEUS=$(need_program prometheus) || exit $?
watchdog 105

start_tcpmsgd "$TCPMSGD"
log "tcpmsgd port=$PORT http_port=$HTTP_PORT"

prometheus_config "$TMP_DIR/prometheus.yml" "$DASHBOARDS/tcpmsg-alerts.yml" "$(cat <<JOBS
  - job_name: tcpmsgd
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
JOBS
)"

start_prometheus "$TMP_DIR/prometheus.yml"

wait_prometheus_ready

# A scrape before the load, so rate() over the load has a sample at 0.
received='sum by (job) (tcpmsg_messages_received_total{job="tcpmsgd"})'
wait_value "$received" 0 30
wait_value 'up{job="tcpmsgd"}' 1 10

# The known load: 3 framed + 2 text messages, then a 1000-message bench.
timeout 30 "$TCPMSG" "127.0.0.1:$PORT" one two three >"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg failed"
timeout 30 "$TCPMSG" --text "127.0.0.1:$PORT" four five >>"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg --text failed"
timeout 60 "$TCPMSG" bench --count 1000 --connections 2 --depth 2 "127.0.0.1:$PORT" \
    >>"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg bench failed"

wait_value "$received" 1005 30
t=$Q_TIME
wait_value 'tcpmsg_messages_received_total{job="tcpmsgd",mode="framed"}' 1003 10
wait_value 'tcpmsg_messages_received_total{job="tcpmsgd",mode="text"}' 2 10
wait_value 'sum by (job) (tcpmsg_messages_sent_total{job="tcpmsgd"})' 1005 10
log "prometheus has all 1005 messages (at $t)"

# Evaluated at the time the full count was first seen, so the 30s window
# holds the samples from before and after the load.
p50='histogram_quantile(0.5, sum by (le) (rate(tcpmsg_service_time_seconds_bucket[30s])))'
query "$p50" "$t" || fail "query $p50 failed: $(cat "$TMP_DIR/query.json")"
case $Q_VALUE in
*[!0-9.e+-]* | "") fail "p50 service time is '$Q_VALUE', not a number" ;;
esac
awk -v v="$Q_VALUE" 'BEGIN { exit !(v + 0 > 0 && v + 0 < 10) }' || fail "p50 service time $Q_VALUE is not in (0, 10) s"
log "p50 service time ${Q_VALUE}s"

# The alert rules loaded and evaluated without error.
deadline=$((SECONDS + 30))
while :; do
    http_get 127.0.0.1 "$PROM_PORT" /api/v1/rules "$TMP_DIR/rules.json" || fail "GET /api/v1/rules failed"
    nrules=$(grep -o '"type":"alerting"' "$TMP_DIR/rules.json" | wc -l)
    nok=$(grep -o '"health":"ok"' "$TMP_DIR/rules.json" | wc -l)
    grep -q '"health":"err"' "$TMP_DIR/rules.json" && fail "an alert rule fails to evaluate: $(cat "$TMP_DIR/rules.json")"
    [ "$nrules" -gt 0 ] && [ "$nok" -eq "$nrules" ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "rules not all evaluated ok after 30s ($nok of $nrules)"
    sleep 0.5
done
log "$nrules alert rules evaluate without error"

# Every panel query of the server's dashboard returns data, with the
# dashboard's variables set as Grafana would set them for this instance. (The
# probe's dashboard needs a probe as target: dashboard_metrics.sh checks that
# its metrics exist and its queries parse.)
n=0
while IFS= read -r expr; do
    [ -n "$expr" ] || continue
    e=${expr//\$__rate_interval/30s}
    e=${e//\$__range/5m}
    e=${e//\$instance/127.0.0.1:$HTTP_PORT}
    http_get 127.0.0.1 "$PROM_PORT" "/api/v1/query?query=$(urlencode "$e")&time=$t" "$TMP_DIR/query.json" \
        || fail "dashboard query failed: $e: $(cat "$TMP_DIR/query.json")"
    grep -q '"result":\[\]' "$TMP_DIR/query.json" && fail "dashboard query returns no series: $e"
    n=$((n + 1))
done < <(sed -n 's/^ *"expr": "\(.*\)",\{0,1\}$/\1/p' "$DASHBOARDS"/grafana-tcpmsg.json | sed 's/\\"/"/g; s/\\\\/\\/g')
[ "$n" -gt 0 ] || fail "no \"expr\" found in $DASHBOARDS/grafana-tcpmsg.json"
log "all $n dashboard queries return data"
stop_tcpmsgd
log "ok"
