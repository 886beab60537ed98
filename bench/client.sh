#!/usr/bin/env bash
# bench/client.sh: is tcpmsg bench ever the bottleneck it measures? Against
# refecho (the least an echo server can do), interleaved in one run:
#  1. closed loop: tcpmsg bench vs bench/minload.c (the least a load loop can
#     do) at the same shapes; target: tcpmsg msgs/s >= minload msgs/s;
#  2. open loop: tcpmsg bench --rate RATE (default 200000) keeps the rate,
#     with the corrected p99 within 2x of the closed-loop p99 at the same
#     shape. See bench/client.md.
set -euo pipefail

usage() {
    cat <<'EOF2'
usage: bench/client.sh [options] [BUILD_DIR]
  BUILD_DIR            built tree (default: $BUILD_DIR or <repo>/build)
  --build              build refecho, minload and tcpmsg first
  -r, --rounds N       interleaved runs of each (default 3)
  -d, --duration SEC   length of each run (default 3)
  --shapes LIST        closed-loop CONNSxDEPTHxSIZE list (default 1x1x64,50x16x64)
  --rate N             open-loop rate (default 200000)
  --rate-shape CxDxS   shape of the open-loop comparison (default 16x8x64)
  --keep-logs          keep the raw outputs
Exit: 0 every target met; 1 a target missed; 2 usage or setup.
EOF2
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build}
BENCH_NAME=client.sh ROUNDS=3 DURATION=3 BUILD=0 KEEP=0 CLIENT_THREADS=1
SHAPES=1x1x64,50x16x64 RATE=200000 RATE_SHAPE=16x8x64
SERVER_CMD=() CLIENT_CMD=()
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$SHIFT" -eq 0 ]; then
        SHIFT=1
        case $1 in
        --shapes) SHAPES=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --rate) RATE=${2:?"$1 needs a value"}; SHIFT=2 ;;
        --rate-shape) RATE_SHAPE=${2:?"$1 needs a value"}; SHIFT=2 ;;
        *) usage >&2; exit 2 ;;
        esac
    fi
    shift "$SHIFT"
done
[[ $SHAPES =~ ^[0-9]+x[0-9]+x[0-9]+(,[0-9]+x[0-9]+x[0-9]+)*$ ]] || die "bad --shapes"
[[ $RATE_SHAPE =~ ^[0-9]+x[0-9]+x[0-9]+$ ]] || die "bad --rate-shape"
if [ "$BUILD" = 1 ]; then
    cmake --build "$BUILD_DIR" -j2 --target refecho minload tcpmsg >&2 || die "build failed"
fi
REFECHO=$BUILD_DIR/bin/refecho MINLOAD=$BUILD_DIR/bin/minload TCPMSG=$BUILD_DIR/bin/tcpmsg
for b in "$REFECHO" "$MINLOAD" "$TCPMSG"; do [ -x "$b" ] || die "$b not found (try --build)"; done

# json FILE KEY.PATH: one number from a tcpmsg bench --json result.
json() { python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$1" "$2"; }

work_init tcpmsg-client-bench
start_server refecho 'port=' "$REFECHO" --bind 127.0.0.1 --port 0 --threads 1
echo "refecho on port $SERVER_PORT; $ROUNDS rounds of ${DURATION}s, interleaved; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
FAILED=0

echo
echo "1. closed loop: tcpmsg bench vs minload (msgs/s, median of $ROUNDS)"
printf '%-12s %14s %14s %8s  %s\n' shape minload tcpmsg ratio target
IFS=, read -ra shapes <<<"$SHAPES"
for shape in "${shapes[@]}"; do
    IFS=x read -r c d s <<<"$shape"
    mins=() tcps=()
    for ((r = 1; r <= ROUNDS; r++)); do
        mins+=("$("$MINLOAD" 127.0.0.1 "$SERVER_PORT" "$c" "$d" "$s" "$DURATION" | awk '{ print $2 }')")
        out="$WORK/closed.$shape.$r.json"
        "$TCPMSG" bench "127.0.0.1:$SERVER_PORT" --connections "$c" --depth "$d" --size "$s" \
            --duration "$DURATION" --json >"$out" || die "tcpmsg bench failed: $(cat "$out")"
        tcps+=("$(json "$out" msgs_per_s)")
    done
    m=$(median "${mins[@]}") t=$(median "${tcps[@]}") q=$(ratio "$t" "$m")
    ok=met; meets "$q" '>=' 1.0 || { ok=MISSED; FAILED=1; }
    printf '%-12s %14.0f %14.0f %8s  %s (runs: minload %s; tcpmsg %s)\n' "$shape" "$m" "$t" "$q" \
        "$ok" "$(join "${mins[@]}")" "$(join "${tcps[@]}")"
done

echo
IFS=x read -r c d s <<<"$RATE_SHAPE"
echo "2. open loop at $RATE msg/s vs closed loop, shape $RATE_SHAPE (median of $ROUNDS)"
cp99=() cmsgs=() op99=() oraw=() osent=() kept=()
for ((r = 1; r <= ROUNDS; r++)); do
    out="$WORK/closed.rate.$r.json"
    "$TCPMSG" bench "127.0.0.1:$SERVER_PORT" --connections "$c" --depth "$d" --size "$s" \
        --duration "$DURATION" --json >"$out" || die "closed run failed"
    cp99+=("$(json "$out" rtt_us.p99)") cmsgs+=("$(json "$out" msgs_per_s)")
    out="$WORK/open.$r.json"
    "$TCPMSG" bench "127.0.0.1:$SERVER_PORT" --connections "$c" --depth "$d" --size "$s" \
        --duration "$DURATION" --rate "$RATE" --json >"$out" && rc=0 || rc=$?
    # 7: the rate was not kept; rate.kept below says so and fails the check.
    [ "$rc" = 0 ] || [ "$rc" = 7 ] || die "open run failed (exit $rc)"
    op99+=("$(json "$out" rtt_us.p99)") oraw+=("$(json "$out" rtt_uncorrected_us.p99)")
    osent+=("$(json "$out" rate.sent_per_s)") kept+=("$(json "$out" rate.kept)")
done
CP=$(median "${cp99[@]}") OP=$(median "${op99[@]}") q=$(ratio "$OP" "$CP")
printf '  closed loop: %.0f msg/s, p99 %.1f us (runs: %s)\n' "$(median "${cmsgs[@]}")" "$CP" "$(join "${cp99[@]}")"
printf '  open loop:   sent %.0f msg/s of %s, kept: %s; p99 corrected %.1f us (runs: %s), uncorrected %.1f us\n' \
    "$(median "${osent[@]}")" "$RATE" "$(join "${kept[@]}")" "$OP" "$(join "${op99[@]}")" "$(median "${oraw[@]}")"
ok=met
[[ " ${kept[*]} " == *" False "* ]] && ok=MISSED
meets "$q" '<=' 2.0 || ok=MISSED
[ "$ok" = met ] || FAILED=1
echo "  corrected p99 / closed-loop p99 = $q (target <= 2, rate kept every run): $ok"
exit "$FAILED"
