#!/bin/sh
# Integration: a log written by tcpmsg bench --hdr-log, read by the reference
# JavaScript reader (hdr-histogram-js): the same number of intervals and
# messages, and each percentile in the same bucket as bench's (the reader
# reports a bucket's highest value, tcpmsg its middle: they differ by less
# than a bucket, 1/128 of the value). Skips (77) where node or the module
# is missing (.ci/setup installs it with npm).
# usage: hdrlog_js.sh TCPMSGD TCPMSG NODE_MODULES_DIR READER_JS
set -eu
tcpmsgd=$1 tcpmsg=$2 modules=$3 reader=$4
fail() { echo "hdrlog_js.sh: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || { echo "hdrlog_js.sh: SKIP: node is not installed" >&2; exit 77; }
[ -d "$modules/hdr-histogram-js" ] ||
    { echo "hdrlog_js.sh: SKIP: $modules/hdr-histogram-js is missing (.ci/setup installs it)" >&2; exit 77; }

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$tcpmsgd" --bind 127.0.0.1 --port 0 --http-port 0 >"$work/log" 2>&1 &
server=$!
port=''
for _ in $(seq 250); do
    port=$(sed -n 's/.*server socket bound .*port=\([0-9]*\).*/\1/p' "$work/log" | head -1)
    [ -n "$port" ] && grep -q "server is listening" "$work/log" && break
    sleep 0.02
done
[ -n "$port" ] || fail "tcpmsgd did not start"

"$tcpmsg" bench "127.0.0.1:$port" --connections 4 --depth 4 --count 20000 --interval 0.05 \
    --json --hdr-log "$work/run.hlog" >"$work/bench.json" || fail "bench failed"
ours=$(tail -1 "$work/bench.json")
theirs=$(node "$reader" "$modules" "$work/run.hlog") || fail "the reference reader failed"
echo "tcpmsg bench: $ours"
echo "hdr-histogram-js: $theirs"
intervals=$(grep -c '^[0-9]' "$work/run.hlog")
echo "$theirs" | grep -q "\"intervals\":$intervals," || fail "the reader found other than $intervals intervals"
echo "$theirs" | grep -q '"count":20000,' || fail "the reader counted other than 20000 messages"
for p in p50 p90 p99; do
    a=$(echo "$ours" | grep -o "\"rtt_us\":{[^}]*" | grep -o "\"$p\":[0-9.e+-]*" | cut -d: -f2)
    b=$(echo "$theirs" | grep -o "\"$p\":[0-9.e+-]*" | cut -d: -f2)
    awk -v a="$a" -v b="$b" -v p="$p" 'BEGIN {
        ns = a * 1000; d = b - ns; if (d < 0) d = -d
        printf "%s: tcpmsg %.0f ns, reference %.0f ns\n", p, ns, b
        exit !(d <= ns / 128 + 1) }' || fail "$p is not in the same bucket"
done
echo "hdrlog_js.sh: ok"
