/* server: tcpmsgd as a whole: binds the listening sockets, runs the worker
 * threads, handles SIGINT/SIGTERM with a bounded drain. The shared state
 * here (admission counts, the drain flag) is touched per connection, never
 * per message.
 */
#ifndef TCPMSG_SERVER_SERVER_H
#define TCPMSG_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "server/admission.h"
#include "server/config.h"
#include "server/connlist.h"
#include "server/worker.h"
#include "tcpmsg/http.h"
#include "tcpmsg/net.h"

struct server {
    const struct server_config *cfg;
    struct worker *workers;
    unsigned nworkers;
    struct worker_shared shared;   /* what the workers see of the server */
    struct admission admission;    /* --max-conns, --max-conns-per-ip, connection ids */
    _Atomic int draining;
    char bound[NET_ADDRSTRLEN];
    const char *io;              /* the workers' loop backend ("epoll", "uring"), once started */
    struct closed_ring closed;   /* recently closed connections */
    /* The metrics endpoint, or NULL. Atomic: its own thread may serve a
     * request (and read this) before http_start has returned. */
    _Atomic(struct http_server *) http;
    struct fork_state *fork;     /* fork mode's parent state, or NULL in epoll mode */
    struct membudget *budget;    /* --max-buffer-memory: one account per worker (or per
                                    fork-mode child slot), in shared memory */
    struct webconfig *web;       /* --web-config, or NULL */
    struct basicauth *auth;      /* its basic_auth_users, or NULL */
    double start_time_s;         /* Unix time */
    uint64_t start_ns;           /* monotonic */
    int stamp_primer;            /* --stage-sample: a socket asking for receive timestamps
                                    from the start (see server.c); -1: none */
};

/* Bind, log the bound address, start the workers, and the HTTP endpoint
 * serving route (its ctx is s). 0, or -errno after logging what failed. On
 * failure nothing is left running. */
int server_start(struct server *s, const struct server_config *cfg, http_route_fn route);

/* tcpmsgd's exit status when the drain ended with replies lost: some
 * connections still had replies unwritten or messages unanswered when
 * --drain-timeout (or a second signal) ended it. */
#define SERVER_EXIT_REPLIES_LOST 3

/* Block until SIGINT or SIGTERM, drain within --drain-timeout, stop the
 * workers. A second signal ends the drain at once. Returns 0 when every
 * message received was answered, or SERVER_EXIT_REPLIES_LOST (after a
 * warning with the count of connections cut). */
int server_wait(struct server *s);

void server_destroy(struct server *s);

/* Sum every worker's statistics into m->stats and fill the rest of m. */
struct metrics_snapshot;
void server_snapshot(struct server *s, struct metrics_snapshot *m);

/* The open connections (every worker's, or every fork-mode child's), in no
 * order: malloc'd, *n of them, or NULL when out of memory. */
struct conn_info *server_connections(struct server *s, size_t *n);

#endif
