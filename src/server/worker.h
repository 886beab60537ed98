/* worker: one thread with its own event loop (epoll or io_uring, see
 * tcpmsg/loop.h). It accepts from its own
 * SO_REUSEPORT listening socket (the kernel spreads new connections over the
 * workers; under socket activation, its own descriptor of the one socket
 * systemd passed), serves its connections to completion, runs their timers,
 * and on shutdown drains them. Workers share nothing on the message path.
 */
#ifndef TCPMSG_SERVER_WORKER_H
#define TCPMSG_SERVER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/connctx.h"
#include "server/outq.h"
#include "server/stats.h"
#include "tcpmsg/loop.h"

struct admission;
struct closed_ring;
struct conn;
struct membudget;
struct server_config;

/* What the workers of one server share. The server owns it; a fork-mode
 * child has one of its own, without admission or closed list (the parent
 * keeps those). */
struct worker_shared {
    const struct server_config *cfg;
    struct admission *admission; /* NULL: accepts nobody */
    struct closed_ring *closed;  /* recently closed connections; NULL: none kept */
    struct membudget *budget;    /* --max-buffer-memory, one account per worker */
    struct loop_options loop_opt; /* the backend each worker's loop is made with */
    _Atomic uint64_t drain_deadline_ns; /* past it, a draining worker closes what is left */
    _Atomic unsigned running;    /* workers whose loop has not returned */
};

struct worker;

/* Serve an admitted client (fd, peer, connection id). Returns false when it
 * could not be served: fd is closed and the failure counted by then. */
typedef bool (*worker_serve_fn)(struct worker *w, int fd, const struct sockaddr *peer,
                                socklen_t len, uint64_t id, uint64_t now);

struct worker {
    struct worker_shared *shared;
    unsigned index;
    pthread_t thread;
    struct loop *loop;
    const char *loop_why;      /* why LOOP_AUTO fell back to epoll; NULL: it did not */
    struct loop_acceptor acceptor; /* on listen_fd while listening */
    struct loop_watch wake;    /* on wake_fd */
    struct loop_timer tick;    /* every TICK: connection timers, evictions, on_tick */
    struct loop_timer backoff; /* accepting again after EMFILE */
    int wake_fd;               /* eventfd: the main thread asks for a drain */
    int listen_fd;             /* -1 once closed for the drain */
    bool listening;            /* the acceptor is started */
    bool draining;
    worker_serve_fn serve;     /* what an admitted client becomes (a connection here,
                                  or a child in fork mode) */
    pthread_mutex_t list_lock; /* guards conns' links: taken at open and close, and by
                                  the connection list of the HTTP endpoint */
    struct conn *conns;  /* open connections, for timers and the drain */
    unsigned nconns;
    unsigned nlive;      /* connections not yet freed (closed ones wait for the loop) */
    bool exit_when_empty; /* a fork-mode child: the loop ends with its connection */
    bool msgs_per_wakeup; /* record messages per wakeup (not a fork-mode parent, whose
                             counts come from its children) */
    uint64_t msgs_seen;   /* replies counted at the end of the last wakeup */
    struct conn_pass pass; /* this wakeup's replies, for their service time */
    uint64_t tcp_sample_ns; /* TCP_INFO is read from then on (worker.c) */
    uint64_t ticks;         /* timer ticks so far */
    uint64_t sys_seen[LOOP_SYS_COUNT]; /* the loop's counters already in stats */
    void *owner;          /* the code running this worker (fork mode), for its callbacks */
    void (*on_tick)(void *owner, struct worker *w, uint64_t now); /* optional, every tick */
    void (*on_drain)(void *owner, struct worker *w, uint64_t now); /* optional, at the drain */
    bool (*busy)(void *owner); /* optional: the owner still has work, the loop goes on */
    struct conn_ctx ctx;       /* what this worker's connections are given */
    struct chunk_pool pool;    /* free output chunks */
    struct server_stats stats; /* written by this thread only */
};

/* Set up w (its loop, eventfd, the context of its connections) around
 * listen_fd, which it owns from now on; sh must outlive w. listen_fd may be
 * -1: a fork-mode child accepts nothing. Returns 0 or -errno. */
int worker_init(struct worker *w, struct worker_shared *sh, unsigned index, int listen_fd);
/* The event loop, on the calling thread: accepts (the loop's acceptor,
 * admitted clients go to w->serve, accepting pauses on EMFILE), serves, and
 * returns once draining (or, with exit_when_empty, idle), without
 * connections and with the owner not busy. */
void worker_run(struct worker *w);
int worker_start(struct worker *w);
/* Ask the worker to drain (any thread, async-signal-safe). */
void worker_request_drain(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Refuse a client over a cap: an error frame, close, count, log. */
void worker_reject(struct worker *w, int fd, const char *peer, enum reject_reason r);
/* Close the listener (the drain, or a fork-mode child). */
void worker_stop_listening(struct worker *w);

/* The open connections as /api/connections lists them, appended to *v
 * (realloc'd; *n entries, *cap allocated). -ENOMEM leaves what was there. */
struct conn_info;
int worker_list_conns(struct worker *w, struct conn_info **v, size_t *n, size_t *cap);

#endif
