#!/bin/bash
# prometheus.rules: dashboards/tcpmsg-alerts.yml passes `promtool check
# rules`, dashboards/prometheus.yml passes `promtool check config` (which also
# checks the rule file it names, relative to the config's directory), and the
# alerts fire as tests/prometheus/alerts_test.yml says (`promtool test rules`).
# Usage: rules.sh DASHBOARD_DIR
. "$(dirname "$0")/lib.sh"
DASHBOARDS=$(cd "$1" && pwd) || fail "no directory $1"
PROMTOOL=$(need_program promtool) || exit $?
watchdog 100

"$PROMTOOL" check rules "$DASHBOARDS/tcpmsg-alerts.yml" >"$TMP_DIR/check-rules.log" 2>&1 \
    || fail "promtool check rules $DASHBOARDS/tcpmsg-alerts.yml"
# Run from elsewhere: the rule file must resolve from the config's directory.
(cd "$TMP_DIR" && "$PROMTOOL" check config "$DASHBOARDS/prometheus.yml") >"$TMP_DIR/check-config.log" 2>&1 \
    || fail "promtool check config $DASHBOARDS/prometheus.yml"
grep -q 'SUCCESS: 1 rule files found' "$TMP_DIR/check-config.log" \
    || fail "prometheus.yml does not load the rule file: $(cat "$TMP_DIR/check-config.log")"
grep -q "Checking $DASHBOARDS/tcpmsg-alerts.yml" "$TMP_DIR/check-config.log" \
    || fail "prometheus.yml does not reference tcpmsg-alerts.yml: $(cat "$TMP_DIR/check-config.log")"

# promtool test rules resolves rule_files from the test file's directory;
# a copy next to a copy of the alerts keeps the path independent of the tree.
cp "$DASHBOARDS/tcpmsg-alerts.yml" "$TMP_DIR/tcpmsg-alerts.yml"
cp "$(dirname "$0")/alerts_test.yml" "$TMP_DIR/alerts_test.yml"
(cd "$TMP_DIR" && "$PROMTOOL" test rules alerts_test.yml) >"$TMP_DIR/test-rules.log" 2>&1 \
    || fail "promtool test rules alerts_test.yml"
log "ok: rules, config and alert unit tests pass"
