#!/bin/bash
# Where tcpmsgd finds its status page without --web-root, and what
# `cmake --install` puts where:
#   1. the build tree's tcpmsgd serves the source tree's web/;
#   2. installed into a prefix that is then moved elsewhere, tcpmsgd serves
#      the prefix's own share/tcpmsg/web (a marker added to the installed
#      copy shows it is that copy, not the source tree's), and the installed
#      tcpmsg talks to it; tcpmsg probe finds its page (probe.html) the same
#      way, in both cases;
#   3. a tcpmsgd copied where no web root is warns, and still serves /healthz;
#   4. --web-root wins over both.
# usage: install.sh TCPMSGD CMAKE BUILD_DIR SOURCE_DIR
# shellcheck source=tests/prometheus/lib.sh
. "$(dirname "$0")/../prometheus/lib.sh"
[ $# -eq 4 ] || { echo "usage: $0 TCPMSGD CMAKE BUILD_DIR SOURCE_DIR" >&2; exit 2; }
BUILD_TCPMSGD=$1 CMAKE=$2 BUILD_DIR=$3 SOURCE_DIR=$4
watchdog 100
TMP=$(realpath "$TMP_DIR")

# expect_log TEXT: the running tcpmsgd's log has a line containing TEXT.
expect_log() {
    grep -qF -- "$1" "$TMP_DIR/tcpmsgd.log" || fail "no log line with '$1'"
}

# probe_page_is TCPMSG FILE: `TCPMSG probe --http-port 0` of the running
# tcpmsgd serves FILE at /.
probe_page_is() {
    local pid port
    "$1" probe --http-port 0 --duration 30 "127.0.0.1:$PORT" >"$TMP_DIR/probe.out" \
        2>"$TMP_DIR/probe.log" &
    pid=$!
    CHILD_PIDS="$CHILD_PIDS $pid"
    port=$(wait_log "$TMP_DIR/probe.log" 's/.*http_port=\([0-9][0-9]*\).*/\1/p' "$pid" 30) || exit 1
    http_get 127.0.0.1 "$port" / "$TMP_DIR/probe.html" || fail "GET / from $1 probe"
    kill -TERM "$pid"
    cmp -s "$TMP_DIR/probe.html" "$2" || fail "GET / from $1 probe is not $2"
}

# 1. The build tree.
start_tcpmsgd "$BUILD_TCPMSGD"
expect_log "status page files web_root=$SOURCE_DIR/web from=build-tree"
http_get 127.0.0.1 "$HTTP_PORT" / "$TMP_DIR/index" || fail "GET / from the build tree's tcpmsgd"
cmp -s "$TMP_DIR/index" "$SOURCE_DIR/web/index.html" || fail "GET / is not the source tree's web/index.html"
probe_page_is "$(dirname "$BUILD_TCPMSGD")/tcpmsg" "$SOURCE_DIR/web/probe.html"
stop_tcpmsgd
log "build tree: serves $SOURCE_DIR/web"

# 2. An installed prefix, moved after installation.
# DESTDIR too: a file installed to an absolute path (/etc/...) lands in the
# scratch directory, never in the machine's own /etc.
DESTDIR=$TMP/destdir "$CMAKE" --install "$BUILD_DIR" --prefix /a >"$TMP_DIR/install.log" 2>&1 ||
    fail "cmake --install exits $?"
mv "$TMP/destdir/a" "$TMP/b" || fail "cannot move the prefix"
P=$TMP/b
for f in bin/tcpmsgd bin/tcpmsg bin/tcpmsg-transports; do
    [ -x "$P/$f" ] || fail "$f is not installed, or not executable"
done
for f in share/tcpmsg/web/index.html share/tcpmsg/web/app.js share/tcpmsg/web/style.css \
    share/tcpmsg/dashboards/grafana-tcpmsg.json share/tcpmsg/dashboards/grafana-tcpmsg-probe.json \
    share/tcpmsg/dashboards/tcpmsg-alerts.yml share/tcpmsg/dashboards/prometheus.yml \
    share/doc/tcpmsg/README.md share/doc/tcpmsg/docs/PROTOCOL.md share/doc/tcpmsg/copyright \
    share/doc/tcpmsg/changelog.gz share/man/man8/tcpmsgd.8.gz share/man/man1/tcpmsg.1.gz \
    share/man/man1/tcpmsg-transports.1.gz; do
    [ -f "$P/$f" ] || fail "$f is not installed"
done
# The install rules name their files one by one: none of web/, dashboards/
# and docs/ may be left out when a file is added there.
for pair in web:share/tcpmsg/web dashboards:share/tcpmsg/dashboards docs:share/doc/tcpmsg/docs; do
    for f in "$SOURCE_DIR/${pair%%:*}"/*; do
        [ -f "$P/${pair#*:}/${f##*/}" ] || fail "${pair%%:*}/${f##*/} is not installed in ${pair#*:}"
    done
done
cmp -s <(gzip -dc "$P/share/man/man8/tcpmsgd.8.gz") "$SOURCE_DIR/man/tcpmsgd.8" ||
    fail "the installed tcpmsgd.8.gz is not man/tcpmsgd.8"
echo '<!-- the installed copy -->' >>"$P/share/tcpmsg/web/index.html"
start_tcpmsgd "$P/bin/tcpmsgd"
expect_log "status page files web_root=$P/share/tcpmsg/web from=install-prefix"
http_get 127.0.0.1 "$HTTP_PORT" / "$TMP_DIR/index" || fail "GET / from the installed tcpmsgd"
cmp -s "$TMP_DIR/index" "$P/share/tcpmsg/web/index.html" ||
    fail "GET / is not the installed copy of index.html"
http_get 127.0.0.1 "$HTTP_PORT" /app.js "$TMP_DIR/app.js" || fail "GET /app.js from the installed tcpmsgd"
reply=$(timeout 20 "$P/bin/tcpmsg" "127.0.0.1:$PORT" "hello from the prefix") ||
    fail "the installed tcpmsg exits $?"
[[ $reply == *"in "*" us: hello from the prefix" ]] || fail "the installed tcpmsg printed '$reply'"
echo '<!-- the installed copy -->' >>"$P/share/tcpmsg/web/probe.html"
probe_page_is "$P/bin/tcpmsg" "$P/share/tcpmsg/web/probe.html"
stop_tcpmsgd
log "installed and moved: serves $P/share/tcpmsg/web"

# 3. No web root anywhere near the program.
mkdir "$TMP/alone" || fail "cannot make $TMP/alone"
cp "$P/bin/tcpmsgd" "$TMP/alone/" || fail "cannot copy tcpmsgd"
start_tcpmsgd "$TMP/alone/tcpmsgd"
expect_log "WARN  no status page: its files are neither in the source tree"
grep -q "status page files" "$TMP_DIR/tcpmsgd.log" && fail "a web root was reported where there is none"
http_get 127.0.0.1 "$HTTP_PORT" / "$TMP_DIR/index" && fail "GET / succeeded with no web root"
http_get 127.0.0.1 "$HTTP_PORT" /healthz "$TMP_DIR/health" || fail "GET /healthz with no web root"
stop_tcpmsgd
log "alone: warns, serves /healthz"

# 4. --web-root wins.
mkdir "$TMP/custom" && echo custom >"$TMP/custom/index.html"
start_tcpmsgd "$P/bin/tcpmsgd" --web-root "$TMP/custom"
expect_log "status page files web_root=$TMP/custom from=--web-root"
http_get 127.0.0.1 "$HTTP_PORT" / "$TMP_DIR/index" || fail "GET / with --web-root"
[ "$(cat "$TMP_DIR/index")" = custom ] || fail "GET / did not serve --web-root's index.html"
stop_tcpmsgd
log "ok"
