#!/bin/bash
# browser.server_back: the offline banner goes away when the server comes
# back. The page refreshes twice from a live tcpmsgd, the server is killed,
# and 0.3 s later a new one starts on the same HTTP port. The page
# must have counted failed refreshes (so the outage was seen), then be live
# again with the banner hidden and its history restarted for the new server.
#
# usage: server_back.sh TCPMSGD TCPMSG WEB_ROOT ARTIFACT_DIR
set -u
. "$(dirname "$0")/lib.sh" || { echo "FAIL: cannot load lib.sh" >&2; exit 1; }
browser_setup "$@"

start_server
first_pid=$SERVER_PID

# In the background: kill the server after two refreshes, restart it on the
# same HTTP port (the page's URL) after 0.3 s of real time: some tens
# failed polls of the page, each a refused connection.
{
    wait_page_refreshes 2 || exit 1
    kill -KILL "$first_pid"
    : >"$TMP/killed"
    sleep 0.3
    start_server --http-port "$HTTP_PORT" 2>>"$TMP/restart.log"
    : >"$TMP/restarted"
} &
track $!

# 400 virtual seconds: enough polls for the real seconds the outage and the
# restart take, and for a few hundred more refreshes from the new server.
chromium_run 90 --virtual-time-budget=400000 --dump-dom "$(page_url)" >"$TMP/dom.html" ||
    { show_failure_context; fail "chromium --dump-dom failed"; }
save_dom server_back "$TMP/dom.html"
[ -e "$TMP/killed" ] || fail "the page used up its virtual time before the server was killed"
[ -e "$TMP/restarted" ] || { cat "$TMP/restart.log" >&2; show_failure_context; fail "the server did not restart (or not before the page's virtual time ran out)"; }
dom=$(dom_flatten "$TMP/dom.html")

state=$(body_attr "$dom" data-state)
updated=$(body_attr "$dom" data-updated)
failed=$(body_attr "$dom" data-failed)
banner=$(dom_tag "$dom" banner-offline)
uptime=$(dom_text "$dom" server-uptime)
note "state=$state refreshes=$updated failed=$failed uptime=$uptime banner: $banner"

check "the outage was seen (data-failed=$failed)" num_gt "$failed" 0
check "the page is live again (data-state=$state)" [ "$state" = live ]
check "the offline banner is hidden again" grep -q ' hidden' <<<"$banner"
check "refreshes went on after the restart (data-updated=$updated)" num_gt "$updated" 2

if [ "$errors" -ne 0 ]; then
    show_failure_context
    fail "$errors check(s) failed; the page as rendered: $ARTIFACTS/server_back.dom.html"
fi
echo "PASS: the banner went away when the server came back"
