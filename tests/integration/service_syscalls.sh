#!/bin/sh
# Does tcpmsgd stay within the system calls tcpmsgd.service allows
# (SystemCallFilter=@system-service, then ~@privileged @resources)? Runs it
# under strace -f in each mode (epoll, io_uring, fork), with clients, the
# HTTP endpoint and the drain, and checks every call it made against the
# filter as systemd-analyze expands it.
#   service_syscalls.sh TCPMSGD TCPMSG [SANITIZERS]
# Exits 77 (skipped) without strace or systemd-analyze, where strace may not
# trace, or in a sanitizer build (the sanitizers' runtime makes calls of its
# own).
set -eu
tcpmsgd=$1
tcpmsg=$2
if [ -n "${3:-}" ]; then
    echo "SKIP: a sanitizer build ($3): its runtime's system calls are not tcpmsgd's"
    exit 77
fi
for tool in strace systemd-analyze curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed"
        exit 77
    fi
done
if ! strace -f -o /dev/null true 2>/dev/null; then
    echo "SKIP: strace may not trace here (ptrace refused)"
    exit 77
fi
tmp=$(mktemp -d)
spid=""
cleanup() {
    [ -z "$spid" ] || kill -KILL "$spid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}

# A filter group, its nested groups expanded: one system call a line.
expand() {
    systemd-analyze syscall-filter "$1" | tail -n +2 | sed 's/^ *//; /^#/d; /^$/d' |
        while read -r word; do
            case $word in
            @*) expand "$word" ;;
            *) echo "$word" ;;
            esac
        done
}
expand @system-service | sort -u >"$tmp/service"
{ expand @privileged; expand @resources; } | sort -u >"$tmp/denied"
# systemd always permits these (systemd.exec(5), SystemCallFilter=).
printf '%s\n' execve exit exit_group getrlimit rt_sigreturn sigreturn >"$tmp/always"
{ comm -23 "$tmp/service" "$tmp/denied"; cat "$tmp/always"; } | sort -u >"$tmp/allowed"

# One run: start tcpmsgd under strace with the given options, serve a client
# (three messages) and the HTTP endpoint (metrics, connections, the status
# page), stop it with SIGTERM; its system calls go to $tmp/NAME.calls.
run() {
    name=$1
    shift
    log="$tmp/$name.log"
    strace -f -c -o "$tmp/$name.strace" "$tcpmsgd" --bind 127.0.0.1 --port 0 --http-port 0 \
        "$@" 2>"$log" &
    spid=$!
    i=0
    until grep -q "server is listening" "$log"; do
        kill -0 "$spid" 2>/dev/null || fail "$name: tcpmsgd did not start"
        i=$((i + 1))
        [ "$i" -lt 400 ] || fail "$name: tcpmsgd did not start within 20 s"
        sleep 0.05
    done
    port=$(sed -n 's/.*server socket bound.* port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
    http=$(sed -n 's/.*http endpoint listening.* http_port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
    "$tcpmsg" "127.0.0.1:$port" one two three >/dev/null || fail "$name: the client got no replies"
    for path in /metrics '/metrics?format=prometheus' /api/connections /; do
        curl -fsS -o /dev/null "http://127.0.0.1:$http$path" || fail "$name: GET $path failed"
    done
    pid=$(ps -o pid= --ppid "$spid" | head -n 1)
    kill -TERM $pid
    wait "$spid" || fail "$name: tcpmsgd did not exit 0 after SIGTERM"
    spid=""
    grep -q "server stopped" "$log" || fail "$name: no 'server stopped' line"
    awk '$NF ~ /^[a-z0-9_]+$/ && $NF != "total" && $NF != "syscall" { print $NF }' \
        "$tmp/$name.strace" | sort -u >"$tmp/$name.calls"
    [ -s "$tmp/$name.calls" ] || fail "$name: strace counted no system call"
    outside=$(comm -23 "$tmp/$name.calls" "$tmp/allowed" | tr '\n' ' ')
    echo "$name ($(sed -n 's/.*server is listening.* io=\([a-z]*\).*/io=\1/p' "$log")):" \
        "$(wc -l <"$tmp/$name.calls") system calls:" $(cat "$tmp/$name.calls")
    [ -z "$outside" ] || fail "$name: outside the unit's SystemCallFilter: $outside"
}

run epoll --io epoll --threads 2
run uring --io auto --threads 2
run fork --mode fork
echo "OK: every system call of tcpmsgd is allowed by tcpmsgd.service's filter"
