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

# The alert unit tests, with the command the docs give, from the top of the
# tree; then by absolute path from elsewhere (promtool resolves the test
# file's rule_files from its own directory, not the working directory).
TOP=$(cd "$DASHBOARDS/.." && pwd)
TEST_FILE=tests/prometheus/alerts_test.yml
(cd "$TOP" && "$PROMTOOL" test rules "$TEST_FILE") >"$TMP_DIR/test-rules.log" 2>&1 \
    || fail "in $TOP: promtool test rules $TEST_FILE: $(cat "$TMP_DIR/test-rules.log")"
grep -q "no file match" "$TMP_DIR/test-rules.log" \
    && fail "promtool test rules did not find the rule file: $(cat "$TMP_DIR/test-rules.log")"
(cd "$TMP_DIR" && "$PROMTOOL" test rules "$TOP/$TEST_FILE") >"$TMP_DIR/test-rules-abs.log" 2>&1 \
    || fail "in $TMP_DIR: promtool test rules $TOP/$TEST_FILE: $(cat "$TMP_DIR/test-rules-abs.log")"
log "ok: rules, config and alert unit tests pass"
