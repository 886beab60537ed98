#!/bin/sh
# Fails when the #include "..." lines under src/ and include/ form a cycle.
# The nodes are modules, not files: src/server/conn.c and src/server/conn.h
# are one module (server/conn), and so are src/frame.c and
# include/tcpmsg/frame.h (frame). A module that includes another depends on
# it; a cycle means neither can be understood, built or tested without the
# other. tsort finds it (and names its members) or orders the modules.
#
#   include_cycles.sh SOURCE_DIR [--edges]   (--edges: print the graph too)
set -eu
cd "$1"

# src/server/conn.c -> server/conn; include/tcpmsg/frame.h -> frame;
# the include string "tcpmsg/frame.h" -> frame; "server/conn.h" -> server/conn
module() {
    echo "$1" | sed -e 's#^src/##' -e 's#^include/##' -e 's#^tcpmsg/##' -e 's#\.[ch]$##'
}

# The include strings of file $1. A private header with no .c of its own
# (src/loop_backend.h, shared by loop.c and its backends) is part of each file
# that includes it, as the preprocessor sees it: its own includes are listed
# in its place.
includes() {
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1" |
        while read -r inc; do
            if [ -f "src/$inc" ] && [ ! -f "src/${inc%.h}.c" ]; then
                includes "src/$inc"
            else
                echo "$inc"
            fi
        done
}

edges=$(find src include -name '*.[ch]' | sort | while read -r f; do
    case $f in src/*.h) [ -f "${f%.h}.c" ] || continue ;; esac
    from=$(module "$f")
    includes "$f" | while read -r inc; do
        to=$(module "$inc")
        [ "$from" = "$to" ] || echo "$from $to"
    done
done | sort -u)

if [ "${2:-}" = "--edges" ]; then
    echo "$edges"
fi
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! echo "$edges" | tsort >/dev/null 2>"$err"; then
    echo "include cycles among modules; the members of each loop, as tsort found them:" >&2
    sed -n 's/^tsort: //p' "$err" >&2
    exit 1
fi
echo "no include cycle among $(echo "$edges" | tr ' ' '\n' | sort -u | wc -l) modules"
