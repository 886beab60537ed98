/* server: tcpmsgd as a whole: binds the listening sockets, runs the worker
 * threads, handles SIGINT/SIGTERM with a bounded drain. The shared state
 * here (admission counts, the drain flag) is touched per connection, never
 * per message.
 */
#ifndef TCPMSG_SERVER_SERVER_H
#define TCPMSG_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "server/config.h"
#include "server/connlist.h"
#include "server/worker.h"
#include "tcpmsg/iplimit.h"
#include "tcpmsg/net.h"

struct server {
    const struct server_config *cfg;
    struct worker *workers;
    unsigned nworkers;
    struct iplimit *iplimit;
    _Atomic unsigned open_conns;   /* for --max-conns */
    _Atomic uint64_t next_conn_id;
    _Atomic int draining;
    _Atomic unsigned workers_running; /* workers whose loop has not returned */
    _Atomic uint64_t drain_deadline_ns;
    char bound[NET_ADDRSTRLEN];
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
};

/* Bind, log the bound address, start the workers. 0, or -errno after logging
 * what failed. On failure nothing is left running. */
int server_start(struct server *s, const struct server_config *cfg);

/* Block until SIGINT or SIGTERM, drain within --drain-timeout, stop the
 * workers. A second signal ends the drain at once. Returns 0. */
int server_wait(struct server *s);

void server_destroy(struct server *s);

/* Admission control at accept: 0, or the reject reason + 1. */
/* Sum every worker's statistics into m->stats and fill the rest of m. */
struct metrics_snapshot;
void server_snapshot(struct server *s, struct metrics_snapshot *m);

int server_admit(struct server *s, const struct sockaddr *peer);
void server_release(struct server *s, const struct sockaddr *peer);

#endif
