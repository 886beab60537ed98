#!/bin/sh
# Fails when a file under src/ or include/ other than the event loop's two
# backends (src/loop_epoll.c, src/loop_uring.c) includes <sys/epoll.h> or
# <liburing.h>. Everything else reaches the kernel's event interfaces through
# the loop (include/tcpmsg/loop.h), so that a backend is chosen in one place
# and every program runs on either.
#
#   backend_includes.sh SOURCE_DIR
set -eu
cd "$1"

found=$(grep -rlE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(sys/epoll\.h|liburing\.h)>' \
            src include | grep -vxE 'src/loop_epoll\.c|src/loop_uring\.c' || true)
if [ -n "$found" ]; then
    echo "these files include <sys/epoll.h> or <liburing.h>; only the loop's backends may:" >&2
    echo "$found" >&2
    exit 1
fi
echo "only src/loop_epoll.c and src/loop_uring.c include <sys/epoll.h> or <liburing.h>"
