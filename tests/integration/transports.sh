#!/bin/sh
# Integration: tcpmsg-transports runs the echo loop over all three transports
# briefly and reports a row each with a non-zero rate, in text and in JSON,
# and refuses a transport it does not know.
# usage: transports.sh PATH_TO_TCPMSG_TRANSPORTS
set -eu
bin=$1
fail() { echo "transports.sh: $*" >&2; exit 1; }

out=$("$bin" --count 2000 --size 256) || fail "exit $? (text)"
echo "$out"
for t in pipe unix tcp; do
    echo "$out" | awk -v t="$t" '$1 == t && $2 == 256 && $3 == 2000 && $4 > 0 && $5 > 0 { ok = 1 }
        END { exit !ok }' || fail "no $t row with 2000 messages and a non-zero rate"
done

json=$("$bin" --duration 0.2 --json) || fail "exit $? (json)"
echo "$json"
for t in pipe unix tcp; do
    echo "$json" | grep -q "\"transport\":\"$t\",\"messages\":[1-9][0-9]*,\"seconds\":[0-9.]*,\"msgs_per_s\":[1-9]" ||
        fail "no $t object with a non-zero rate in the JSON"
done

one=$("$bin" --transport unix --count 100 --json) || fail "exit $? (unix only)"
[ "$(echo "$one" | grep -o '"transport"' | wc -l)" -eq 1 ] || fail "--transport unix ran more than unix"

rc=0
"$bin" --transport carrier-pigeon >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "an unknown transport exits $rc, not 2"
echo "transports.sh: ok"
