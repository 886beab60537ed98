#!/bin/sh
# The systemd units of tcpmsgd, checked offline by systemd-analyze.
#   service_units.sh verify DIR    tcpmsgd.service and tcpmsgd.socket in DIR
#                                  load with no error and no warning
#   service_units.sh security DIR  the service's exposure is at most 2.0
# Exits 77 (skipped) where systemd-analyze is missing.
set -eu
check=$1
dir=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
case $check in
verify)
    # --man=no: the man page the units name may not be installed yet.
    status=0
    systemd-analyze verify --man=no "$dir/tcpmsgd.service" "$dir/tcpmsgd.socket" >"$out" 2>&1 ||
        status=$?
    cat "$out"
    if [ "$status" -ne 0 ] || [ -s "$out" ]; then
        echo "FAIL: systemd-analyze verify (exit $status) complained about the units"
        exit 1
    fi
    echo "OK: systemd-analyze verify accepts tcpmsgd.service and tcpmsgd.socket" ;;
security)
    # The threshold is in tenths: 20 is an exposure of 2.0.
    status=0
    systemd-analyze security --offline=yes --threshold=20 "$dir/tcpmsgd.service" >"$out" 2>&1 ||
        status=$?
    grep -F "Overall exposure level" "$out" || cat "$out"
    if [ "$status" -ne 0 ]; then
        grep -F "✗" "$out" || true
        echo "FAIL: the exposure of tcpmsgd.service is above 2.0 (exit $status)"
        exit 1
    fi ;;
*)
    echo "usage: $0 verify|security DIR" >&2
    exit 2 ;;
esac
