#!/bin/bash
# prometheus.probe_mesh: one file_sd JSON file read by both `tcpmsg probe
# --targets` and a real Prometheus running the tcpmsg-probes and
# tcpmsgd-mesh jobs of dashboards/prometheus.yml (their ports relabeled to
# this test's). The file lists a live tcpmsgd and a port nobody listens on:
# Prometheus sees the prober's series for both with the target label,
# TcpmsgProbeTargetDown of dashboards/tcpmsg-alerts.yml fires for the dead
# target alone (its "for" shortened to 3s), and every panel query of
# grafana-tcpmsg-fleet.json returns data.
# Usage: probe_mesh.sh TCPMSGD TCPMSG DASHBOARD_DIR
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 TCPMSG=$2
DASHBOARDS=$(cd "$3" && pwd) || fail "no directory $3"
PROMETHEUS=$(need_program prometheus) || exit $?
watchdog 110

start_tcpmsgd "$TCPMSGD"
# A port nobody listens on: bound, then closed.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo 1)
mkdir -p "$TMP_DIR/mesh"
cat >"$TMP_DIR/mesh/mesh.json" <<JSON
[{"targets": ["127.0.0.1:$PORT", "127.0.0.1:$DEAD"], "labels": {"zone": "test"}}]
JSON
"$TCPMSG" probe --targets "$TMP_DIR/mesh/mesh.json" --interval 0.2 --timeout 0.5 --http-port 0 \
    >"$TMP_DIR/probe.out" 2>"$TMP_DIR/probe.log" &
probe_pid=$!
CHILD_PIDS="$CHILD_PIDS $probe_pid"
PROBER=$(wait_log "$TMP_DIR/probe.log" 's/.*http_port=\([0-9][0-9]*\).*/\1/p' "$probe_pid" 30) || exit 1
log "tcpmsgd port=$PORT http_port=$HTTP_PORT prober port=$PROBER dead port=$DEAD"

# The two mesh jobs of dashboards/prometheus.yml, with this test's file and
# ports; the alert rules with the probe alert's "for" shortened.
jobs=$(sed -n '/- job_name: tcpmsg-probes/,$p' "$DASHBOARDS/prometheus.yml")
[ -n "$jobs" ] || fail "dashboards/prometheus.yml has no tcpmsg-probes job"
jobs=$(printf '%s\n' "$jobs" |
    sed -e "s#\"mesh/\*\.json\"#\"$TMP_DIR/mesh/*.json\"#" \
        -e "s/\"\${1}:9101\"/\"\${1}:$PROBER\"/" -e "s/\"\${1}:8081\"/\"\${1}:$HTTP_PORT\"/")
grep -q ":$PROBER\"" <<<"$jobs" && grep -q ":$HTTP_PORT\"" <<<"$jobs" ||
    fail "cannot set the ports in the mesh jobs: $jobs"
sed '/alert: TcpmsgProbeTargetDown/,/for:/ s/for: 1m/for: 3s/' "$DASHBOARDS/tcpmsg-alerts.yml" \
    >"$TMP_DIR/alerts.yml"
grep -A2 'alert: TcpmsgProbeTargetDown' "$TMP_DIR/alerts.yml" | grep -q 'for: 3s' ||
    fail "cannot shorten the TcpmsgProbeTargetDown rule"
prometheus_config "$TMP_DIR/prometheus.yml" "$TMP_DIR/alerts.yml" "$jobs"
start_prometheus "$TMP_DIR/prometheus.yml"
wait_prometheus_ready

live="127.0.0.1:$PORT" dead="127.0.0.1:$DEAD"
wait_value 'up{job="tcpmsg-probes"}' 1 30
wait_value 'up{job="tcpmsgd-mesh"}' 1 10
wait_value "tcpmsg_probe_up{job=\"tcpmsg-probes\",target=\"$live\"}" 1 30
wait_value "tcpmsg_probe_up{job=\"tcpmsg-probes\",target=\"$dead\"}" 0 30
# The group's label on the scrape, and the prober's own copy renamed.
wait_value "count(tcpmsg_probe_up{zone=\"test\",exported_zone=\"test\"})" 2 10
wait_value 'tcpmsg_probe_config_last_reload_successful{job="tcpmsg-probes"}' 1 10
log "prometheus sees both targets through the prober"

# The alert: firing for the dead target, none for the live one.
firing="ALERTS{alertname=\"TcpmsgProbeTargetDown\",alertstate=\"firing\"}"
wait_value "count($firing)" 1 30
wait_value "count(${firing%\}},target=\"$dead\"})" 1 5
log "TcpmsgProbeTargetDown fires for $dead alone"

# Every panel query of the fleet dashboard returns data, with the
# dashboard's variables as Grafana sets them for "All".
sleep 3 # samples for the rate windows
n=0
while IFS= read -r expr; do
    [ -n "$expr" ] || continue
    e=${expr//\$__rate_interval/10s}
    e=${e//\$__range/1m}
    e=${e//\$instance/.*}
    e=${e//\$target/.*}
    http_get 127.0.0.1 "$PROM_PORT" "/api/v1/query?query=$(urlencode "$e")" "$TMP_DIR/query.json" \
        || fail "dashboard query failed: $e: $(cat "$TMP_DIR/query.json")"
    grep -q '"status":"success"' "$TMP_DIR/query.json" || fail "dashboard query failed: $e: $(cat "$TMP_DIR/query.json")"
    grep -q '"result":\[\]' "$TMP_DIR/query.json" && fail "dashboard query returns no series: $e"
    n=$((n + 1))
done < <(sed -n 's/^ *"expr": "\(.*\)",\{0,1\}$/\1/p' "$DASHBOARDS"/grafana-tcpmsg-fleet.json | sed 's/\\"/"/g; s/\\\\/\\/g')
[ "$n" -gt 0 ] || fail "no \"expr\" found in $DASHBOARDS/grafana-tcpmsg-fleet.json"
# The per-pair quantile of the live pair is a number of seconds.
query "histogram_quantile(0.99, sum by (instance, target, le) (rate(tcpmsg_probe_rtt_seconds_bucket{target=\"$live\"}[10s])))" ||
    fail "no p99 for $live: $(cat "$TMP_DIR/query.json")"
awk -v v="$Q_VALUE" 'BEGIN { exit !(v + 0 > 0 && v + 0 < 1) }' || fail "p99 of $live is $Q_VALUE"
log "all $n fleet dashboard queries return data; p99 of $live ${Q_VALUE}s"
stop_tcpmsgd
log "ok"
