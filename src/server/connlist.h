/* connlist: the open connections and the most recently closed ones, as the
 * HTTP endpoint shows them (/api/connections). Reads what each connection
 * publishes under its worker's list lock, which the worker takes only when
 * a connection opens or closes, never per message.
 */
#ifndef TCPMSG_SERVER_CONNLIST_H
#define TCPMSG_SERVER_CONNLIST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/adminquery.h"
#include "server/stats.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tcpinfo.h"

struct conn;

/* One connection as listed. */
struct conn_info {
    uint64_t id;
    char peer[NET_ADDRSTRLEN];
    const char *mode;
    const char *state;
    unsigned worker;
    int pid;            /* fork mode: the child serving it; else 0 */
    uint64_t opened_ns, active_ns, closed_ns;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, pending;
    uint64_t mem;       /* buffer bytes held (charged to --max-buffer-memory) */
    const char *reason; /* closed connections only */
    bool has_tcp;       /* tcp was read: open connections of the worker model */
    struct tcpinfo tcp; /* what the kernel's TCP knows of it, read when listed */
};

#define CLOSED_RING_SIZE 64

/* The last CLOSED_RING_SIZE closed connections, newest last. */
struct closed_ring {
    pthread_mutex_t lock;
    struct conn_info items[CLOSED_RING_SIZE];
    uint64_t pushed; /* total ever pushed; items[pushed % size] is next */
};

void closed_ring_init(struct closed_ring *r);
void closed_ring_destroy(struct closed_ring *r);
/* i describes c, served by worker (or a fork-mode child's slot). */
void conn_info_fill(struct conn_info *i, const struct conn *c, unsigned worker);

/* Record c, closed now for reason (a worker does, when its connection
 * reports the close through conn_ctx.closed). */
void closed_ring_push(struct closed_ring *r, const struct conn *c, unsigned worker,
                      enum close_reason reason, uint64_t now);

/* Record an already-filled conn_info (fork mode: the parent's view of a
 * child's connection), closed now. */
void closed_ring_push_info(struct closed_ring *r, const struct conn_info *info, uint64_t now);

/* The /api/connections document: the n open connections v (sorted here, in
 * place; v stays the caller's) in sort order, then offset and limit
 * applied, plus the closed ring. malloc'd JSON, or NULL when out of memory. */
char *connlist_json(struct conn_info *v, size_t n, struct closed_ring *closed,
                    struct conn_sort sort, size_t limit, size_t offset);

#endif
