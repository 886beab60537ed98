#!/bin/bash
# prometheus.promtool_check_metrics: the Prometheus text output of a server
# that has carried traffic passes `promtool check metrics` without a single
# warning, and the OpenMetrics output (chosen by the Accept header, as
# Prometheus sends it) is well formed up to its "# EOF".
# Usage: check_metrics.sh TCPMSGD TCPMSG
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 TCPMSG=$2
PROMTOOL=$(need_program promtool) || exit $?
watchdog 100

start_tcpmsgd "$TCPMSGD"
log "tcpmsgd port=$PORT http_port=$HTTP_PORT"

# Traffic in both modes, so every labelled series and histogram has counts.
timeout 30 "$TCPMSG" "127.0.0.1:$PORT" hello world >"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg (framed) failed"
timeout 30 "$TCPMSG" --text "127.0.0.1:$PORT" hello text >>"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg --text failed"
timeout 60 "$TCPMSG" bench --count 2000 --connections 2 --depth 4 --size 200 "127.0.0.1:$PORT" \
    >>"$TMP_DIR/client.log" 2>&1 || fail "tcpmsg bench failed"

# Prometheus text format 0.0.4.
http_get 127.0.0.1 "$HTTP_PORT" "/metrics?format=prometheus" "$TMP_DIR/metrics.txt" \
    || fail "GET /metrics?format=prometheus: $(head -n 1 "$TMP_DIR/metrics.txt.headers" 2>/dev/null)"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$TMP_DIR/metrics.txt.headers" \
    || fail "unexpected Content-Type: $(grep -i '^Content-Type' "$TMP_DIR/metrics.txt.headers")"
grep -q '^tcpmsg_messages_received_total{mode="framed"} 2002$' "$TMP_DIR/metrics.txt" \
    || fail "messages_received_total{mode=framed} is not 2002: $(grep '^tcpmsg_messages_received_total' "$TMP_DIR/metrics.txt")"
"$PROMTOOL" check metrics <"$TMP_DIR/metrics.txt" >"$TMP_DIR/promtool.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || fail "promtool check metrics exited $rc"
[ ! -s "$TMP_DIR/promtool.log" ] || fail "promtool check metrics printed warnings: $(cat "$TMP_DIR/promtool.log")"

# OpenMetrics, negotiated like Prometheus 2.x does.
accept='Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
http_get 127.0.0.1 "$HTTP_PORT" /metrics "$TMP_DIR/metrics.om" "$accept" \
    || fail "GET /metrics (OpenMetrics): $(head -n 1 "$TMP_DIR/metrics.om.headers" 2>/dev/null)"
grep -qi '^Content-Type: application/openmetrics-text' "$TMP_DIR/metrics.om.headers" \
    || fail "OpenMetrics not negotiated: $(grep -i '^Content-Type' "$TMP_DIR/metrics.om.headers")"
if [ "$(tail -c 6 "$TMP_DIR/metrics.om")" != "# EOF" ] \
    || [ "$(tail -c 1 "$TMP_DIR/metrics.om" | od -An -c | tr -d ' ')" != '\n' ]; then
    fail "OpenMetrics output does not end with '# EOF\\n': $(tail -n 2 "$TMP_DIR/metrics.om")"
fi
[ "$(grep -c '^# EOF$' "$TMP_DIR/metrics.om")" -eq 1 ] || fail "OpenMetrics output has more than one '# EOF'"
grep -q '^tcpmsg_messages_received_total{mode="framed"} 2002$' "$TMP_DIR/metrics.om" \
    || fail "OpenMetrics: messages_received_total{mode=framed} is not 2002"

stop_tcpmsgd
log "ok: promtool check metrics is silent, OpenMetrics ends with # EOF"
