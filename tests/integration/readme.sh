#!/bin/bash
# Integration: the README's examples are real. Every "$ command" line in a
# fenced block of README.md is run against a live tcpmsgd (its ports put in
# place of 8080 and 8081), must exit 0, and must print what the README shows
# below it, line for line, with every number read as "a number" (times,
# counts and ports vary from run to run; words, fields and lines must not).
# A shown line ending in "..." is a prefix of the real one. A command shown
# without output is only run. The README must also not rely on a program a
# fresh Debian with .ci/setup lacks (nc, netcat, ncat, socat, telnet).
# usage: readme.sh TCPMSGD TCPMSG README.md
set -u
TCPMSGD=$1 TCPMSG=$2 README=$3
BIN=$(cd "$(dirname "$TCPMSG")" && pwd)
fail() { echo "readme.sh: $*" >&2; exit 1; }

if grep -nE '(^|[ `(|])(nc|netcat|ncat|socat|telnet) ' "$README"; then
    fail "the README uses a program that .ci/setup does not install (above)"
fi

TMP=$(mktemp -d /tmp/tcpmsg-readme.XXXXXX) || fail "mktemp"
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
# Loopback only: the README's 0.0.0.0 reads as 127.0.0.1 below.
"$TCPMSGD" --bind 127.0.0.1 --port 0 --http-port 0 --threads 2 2>"$TMP/server.log" &
SERVER=$!
for _ in $(seq 100); do
    grep -q "server is listening" "$TMP/server.log" && break
    kill -0 "$SERVER" 2>/dev/null || fail "tcpmsgd exited: $(cat "$TMP/server.log")"
    sleep 0.05
done
PORT=$(grep -o 'server is listening address=[^ ]*' "$TMP/server.log" | sed 's/.*://')
HTTP=$(grep -o 'http_port=[0-9]*' "$TMP/server.log" | cut -d= -f2)
IO=$(grep -o 'server is listening.* io=[a-z]*' "$TMP/server.log" | sed 's/.*io=//')
[ -n "$PORT" ] && [ -n "$HTTP" ] || fail "no ports in: $(cat "$TMP/server.log")"

# Numbers become 0; the README's 0.0.0.0 is this test's 127.0.0.1.
normalize() { sed -e 's/0\.0\.0\.0/127.0.0.1/g' -e 's/[0-9][0-9]*/0/g'; }

# Run one command and compare its output with the lines the README shows.
check() {
    local cmd=$1 want=$2 got
    local run=${cmd//127.0.0.1:8081/127.0.0.1:$HTTP}
    run=${run//\/127.0.0.1\/8080/\/127.0.0.1\/$PORT}
    run=${run// 127.0.0.1 / 127.0.0.1:$PORT }
    run=${run//build\/bin\//$BIN/}
    run=${run//--duration 5/--duration 0.5} # the same output, in a tenth of the time
    got=$(cd "$TMP" && timeout 30 bash -c "$run" 2>"$TMP/stderr") ||
        fail "exit $? from: $run ($(cat "$TMP/stderr"))"
    got=$(printf '%s\n' "$got" | sed -e "s/:$PORT\b/:8080/g" -e "s/:$HTTP\b/:8081/g")
    [ -z "$want" ] && return 0
    local -a w g
    mapfile -t w < <(printf '%s\n' "$want" | normalize)
    mapfile -t g < <(printf '%s\n' "$got" | normalize)
    [ "${#w[@]}" -eq "${#g[@]}" ] ||
        fail "$cmd: ${#g[@]} lines, the README shows ${#w[@]}:"$'\n'"$got"
    for i in "${!w[@]}"; do
        # What names the io backend shows this machine's (io_uring or epoll).
        if [ "$IO" != uring ] && [[ ${w[$i]} == *uring* ]]; then continue; fi
        if [[ ${w[$i]} == *... ]]; then
            [[ ${g[$i]} == "${w[$i]%...}"* ]] && continue
        elif [ "${w[$i]}" = "${g[$i]}" ]; then
            continue
        fi
        fail "$cmd: line $((i + 1)) reads"$'\n'"  ${g[$i]}"$'\n'"the README shows"$'\n'"  ${w[$i]}"
    done
}

in_block=0 cmd= want= ran=0
while IFS= read -r line; do
    if [[ $line == '```'* ]]; then
        [ -n "$cmd" ] && check "$cmd" "$want" && ran=$((ran + 1))
        in_block=$((1 - in_block)) cmd= want=
        continue
    fi
    [ "$in_block" = 1 ] || continue
    if [[ $line == '$ '* ]]; then
        [ -n "$cmd" ] && check "$cmd" "$want" && ran=$((ran + 1))
        cmd=${line#\$ } want=
        cmd=${cmd%%  #*} # an aligned comment is not part of the command
    elif [ -n "$cmd" ]; then
        want+=${want:+$'\n'}$line
    fi
done <"$README"
[ "$ran" -ge 8 ] || fail "only $ran commands found in $README"
echo "readme.sh: $ran README commands ran and printed what the README shows"
