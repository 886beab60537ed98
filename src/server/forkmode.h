/* forkmode: tcpmsgd --mode fork, the classic process-per-client server.
 * The parent accepts; each client gets a child process that serves it with
 * the same connection code as epoll mode (conn.c, in a one-connection event
 * loop). Children send their statistics to the parent as fixed-size records
 * on one shared pipe; the parent merges them into its metrics, keeps the
 * connection list, and reaps children without blocking.
 */
#ifndef TCPMSG_SERVER_FORKMODE_H
#define TCPMSG_SERVER_FORKMODE_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/connlist.h"
#include "server/stats.h"

struct worker;

/* One live child, as the parent knows it. */
struct fork_child {
    pid_t pid;          /* 0: free slot */
    bool final_seen;    /* its last record arrived: it ended on its own terms */
    bool killed;        /* the drain deadline passed and we sent SIGKILL */
    struct sockaddr_storage peer;
    struct conn_info info; /* what the connection list shows */
};

/* The parent's side of fork mode. */
struct fork_state {
    int pipe_rd, pipe_wr; /* the statistics pipe (every child writes, the parent reads) */
    int sig_fd;           /* signalfd for SIGCHLD */
    pthread_mutex_t lock; /* guards children for the HTTP thread's connection list */
    struct fork_child *children; /* max_children slots */
    unsigned nslots, nchildren;
    bool signalled;       /* the drain's SIGTERM went out to the children */
    struct membudget *budget; /* the server's; slot i is child i's account */
    struct loop_watch pipe_watch, sig_watch; /* the parent's loop: records, SIGCHLD */
};

/* Set up the pipe and the signalfd (SIGCHLD must already be blocked in
 * every thread). 0 or -errno. Released with fork_state_destroy. */
int fork_state_init(struct fork_state *fs, unsigned max_children);
void fork_state_destroy(struct fork_state *fs);

/* Run the parent's loop on a new thread, around worker w (its listener,
 * accept limits, drain request and statistics); fs must outlive it. */
int fork_start(struct fork_state *fs, struct worker *w);

/* Copy the live children's connection info for /api/connections. */
size_t fork_snapshot(struct fork_state *fs, struct conn_info *out, size_t cap);

#endif
