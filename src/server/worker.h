/* worker: one thread with its own epoll loop. It accepts from its own
 * SO_REUSEPORT listening socket (the kernel spreads new connections over the
 * workers), serves its connections to completion, runs their timers, and on
 * shutdown drains them. Workers share nothing on the message path.
 */
#ifndef TCPMSG_SERVER_WORKER_H
#define TCPMSG_SERVER_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/stats.h"

struct server;
struct conn;

struct worker {
    struct server *srv;
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
    struct server_stats stats; /* written by this thread only */
};

/* Set up w (epoll, eventfd) around listen_fd, which it owns from now on.
 * Returns 0 or -errno. */
int worker_init(struct worker *w, struct server *srv, unsigned index, int listen_fd);
int worker_start(struct worker *w);
/* Ask the worker to drain (any thread, async-signal-safe). */
void worker_request_drain(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* For conn.c: (re)register c's epoll interest; park a closed c until freed. */
int worker_watch(struct worker *w, struct conn *c, uint32_t events);
void worker_forget(struct worker *w, struct conn *c);

#endif
