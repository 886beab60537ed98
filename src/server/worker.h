/* worker: one thread with its own epoll loop. It accepts from its own
 * SO_REUSEPORT listening socket (the kernel spreads new connections over the
 * workers), serves its connections to completion, runs their timers, and on
 * shutdown drains them. Workers share nothing on the message path.
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
    _Atomic uint64_t drain_deadline_ns; /* past it, a draining worker closes what is left */
    _Atomic unsigned running;    /* workers whose loop has not returned */
};

struct worker {
    struct worker_shared *shared;
    unsigned index;
    pthread_t thread;
    int epfd;
    int wake_fd;               /* eventfd: the main thread asks for a drain */
    int listen_fd;             /* -1 once closed for the drain */
    bool listening;            /* listen_fd is in the epoll set */
    uint64_t listen_resume_ns; /* accept backoff after EMFILE: re-arm at this time */
    bool draining;
    pthread_mutex_t list_lock; /* guards conns' links: taken at open and close, and by
                                  the connection list of the HTTP endpoint */
    struct conn *conns;  /* open connections, for timers and the drain */
    unsigned nconns;
    struct conn *closed; /* closed during this wakeup; freed after dispatch */
    uint64_t next_tick_ns;
    bool exit_when_empty; /* a fork-mode child: the loop ends with its connection */
    void *owner;          /* the code running this worker (fork mode), for its callbacks */
    void (*on_tick)(void *owner, struct worker *w, uint64_t now); /* optional, every tick */
    struct conn_ctx ctx;       /* what this worker's connections are given; its rbuf
                                  (CONN_RBUF_SIZE bytes) is owned here */
    struct chunk_pool pool;    /* free output chunks */
    struct server_stats stats; /* written by this thread only */
};

/* Serve an admitted client (fd, peer, connection id). Returns false when it
 * could not be served: fd is closed and the failure counted by then. */
typedef bool (*worker_serve_fn)(struct worker *w, int fd, const struct sockaddr *peer,
                                socklen_t len, uint64_t id, uint64_t now);

/* Set up w (epoll, eventfd, the context of its connections) around
 * listen_fd, which it owns from now on; sh must outlive w. listen_fd may be
 * -1: a fork-mode child accepts nothing. Returns 0 or -errno. */
int worker_init(struct worker *w, struct worker_shared *sh, unsigned index, int listen_fd);
/* The event loop, on the calling thread: returns once draining (or, with
 * exit_when_empty, idle) and without connections. */
void worker_run(struct worker *w);
int worker_start(struct worker *w);
/* Ask the worker to drain (any thread, async-signal-safe). */
void worker_request_drain(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Accept what the listener has (a bounded batch), apply the limits, pause on
 * EMFILE, and hand each admitted client to serve. */
void worker_accept(struct worker *w, uint64_t now, worker_serve_fn serve);
/* Handle an epoll event on the worker's own descriptors (listener: accept
 * and serve; wake: begin the drain). false when tag is not one of them. */
bool worker_handle(struct worker *w, const void *tag, uint64_t now, worker_serve_fn serve);
/* Re-arm the listener once an accept backoff has passed. */
void worker_check_backoff(struct worker *w, uint64_t now);
/* Refuse a client over a cap: an error frame, close, count, log. */
void worker_reject(struct worker *w, int fd, const char *peer, enum reject_reason r);
/* Close the listener (the drain, or a fork-mode child). */
void worker_stop_listening(struct worker *w);

/* The open connections as /api/connections lists them, appended to *v
 * (realloc'd; *n entries, *cap allocated). -ENOMEM leaves what was there. */
struct conn_info;
int worker_list_conns(struct worker *w, struct conn_info **v, size_t *n, size_t *cap);

#endif
