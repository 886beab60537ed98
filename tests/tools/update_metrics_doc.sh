#!/bin/sh
# Replace the generated table of docs/METRICS.md (between the BEGIN and END
# markers) with the output of the metrics_doc program.
set -eu
gen=$1
doc=$2
tmp=$(mktemp)
awk -v gen="$gen" '
    /<!-- BEGIN GENERATED METRICS -->/ { print; while ((gen | getline line) > 0) print line; close(gen); skip = 1; next }
    /<!-- END GENERATED METRICS -->/ { skip = 0 }
    !skip { print }
' "$doc" > "$tmp"
mv "$tmp" "$doc"
