#!/bin/bash
# prometheus.probe_relabel: blackbox_exporter's multi-target pattern with a
# real Prometheus. Prometheus holds the targets (a live tcpmsgd and a port
# nobody listens on) and, through the relabeling of dashboards/prometheus.yml's
# tcpmsg-probe job, asks one `tcpmsg probe --serve` to probe each: the live
# one is up with RTTs, the dead one fails with reason connect, each series
# labelled with its own target as instance.
# Usage: probe_relabel.sh TCPMSGD TCPMSG DASHBOARD_DIR
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 TCPMSG=$2
DASHBOARDS=$(cd "$3" && pwd) || fail "no directory $3"
PROMETHEUS=$(need_program prometheus) || exit $?
watchdog 105

start_tcpmsgd "$TCPMSGD"
"$TCPMSG" probe --serve 127.0.0.1:0 2>"$TMP_DIR/prober.log" &
prober_pid=$!
CHILD_PIDS="$CHILD_PIDS $prober_pid"
PROBER=$(wait_log "$TMP_DIR/prober.log" 's/.*http_port=\([0-9][0-9]*\).*/\1/p' "$prober_pid" 30) || exit 1
# A port nobody listens on: bound, then closed.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo 1)
log "tcpmsgd port=$PORT prober port=$PROBER dead port=$DEAD"

# The job of dashboards/prometheus.yml, with this test's addresses.
job=$(sed -n '/- job_name: tcpmsg-probe/,/^$/p' "$DASHBOARDS/prometheus.yml")
[ -n "$job" ] || fail "dashboards/prometheus.yml has no tcpmsg-probe job"
job=$(printf '%s\n' "$job" |
    sed -e "s/\"localhost:8080\"/\"127.0.0.1:$PORT\", \"127.0.0.1:$DEAD\"/" \
        -e "s/localhost:9116/127.0.0.1:$PROBER/")
prometheus_config "$TMP_DIR/prometheus.yml" "" "$job"
start_prometheus "$TMP_DIR/prometheus.yml"
wait_prometheus_ready

wait_value "probe_success{job=\"tcpmsg-probe\",instance=\"127.0.0.1:$PORT\"}" 1 30
wait_value "probe_success{job=\"tcpmsg-probe\",instance=\"127.0.0.1:$DEAD\"}" 0 30
wait_value "probe_failed_reason{instance=\"127.0.0.1:$DEAD\",reason=\"connect\"}" 1 10
wait_value "probe_rtt_seconds_count{instance=\"127.0.0.1:$PORT\"}" 3 10
wait_value "up{job=\"tcpmsg-probe\",instance=\"127.0.0.1:$DEAD\"}" 1 10 # the prober answered
log "the live target is up, the dead one fails with reason connect"
echo "probe_relabel.sh: ok"
