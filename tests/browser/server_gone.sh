#!/bin/bash
# browser.server_gone: the status page has loaded and refreshed from a live
# tcpmsgd, then the server dies (SIGKILL): the page must raise its offline
# banner, keep the last values, and say it is not live.
#
# The kill is driven by what the server has served, not by a sleep: a
# watcher counts its HTTP responses (wait_page_refreshes in lib.sh) and
# kills the server once the page has refreshed twice.
# Chromium's virtual time budget (one poll per virtual second, each taking
# real milliseconds) leaves the watcher seconds of real time for that.
#
# usage: server_gone.sh TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR
set -u
. "$(dirname "$0")/lib.sh" || { echo "FAIL: cannot load lib.sh" >&2; exit 1; }
browser_setup "$@"

start_server

# In the background: once the page has refreshed twice, kill the server.
{ wait_page_refreshes 2 && kill -KILL "$SERVER_PID" && : >"$TMP/killed"; } &
track $!

# 600 virtual seconds: 600 polls, several seconds of real time while the
# server answers, much less once it is gone (refused connections are fast).
chromium_run 90 --virtual-time-budget=600000 --window-size=1280,900 \
    --screenshot="$ARTIFACTS/server_gone.png" --dump-dom "$(page_url)" >"$TMP/dom.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom server_gone "$TMP/dom.html"
[ -e "$TMP/killed" ] ||
    fail "the page used up its virtual time before the server was killed (a very slow machine?)"
dom=$(dom_flatten "$TMP/dom.html")

state=$(body_attr "$dom" data-state)
updated=$(body_attr "$dom" data-updated)
failed=$(body_attr "$dom" data-failed)
banner=$(dom_tag "$dom" banner-offline)
note "state=$state refreshes=$updated failed=$failed banner: $banner"

errors=0
[ "$state" = offline ] || { echo "not ok - page state is '$state', not offline" >&2; errors=$((errors + 1)); }
# The banner shows: its "hidden" attribute is gone.
if [ -n "$banner" ] && ! grep -q ' hidden' <<<"$banner"; then
    echo "ok - the offline banner is visible"
else
    echo "not ok - the offline banner is not visible: $banner" >&2
    errors=$((errors + 1))
fi
num_gt "$updated" 0 || { echo "not ok - the page never refreshed before the kill" >&2; errors=$((errors + 1)); }
num_gt "$failed" 0 || { echo "not ok - no failed refresh counted (data-failed=$failed)" >&2; errors=$((errors + 1)); }
# The last values stay on the page (stale but useful), not placeholders.
[ "$(dom_text "$dom" server-version)" != "—" ] ||
    { echo "not ok - the last values were cleared" >&2; errors=$((errors + 1)); }

if [ "$errors" -ne 0 ]; then
    show_failure_context
    fail "$errors check(s) failed; the page as rendered: $ARTIFACTS/server_gone.dom.html"
fi
echo "PASS: offline banner shown after the server died"
