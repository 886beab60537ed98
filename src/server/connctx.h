/* connctx: everything a connection (conn.c) needs from whoever runs it, and
 * nothing more: the limits, where to count, the memory budget, output chunks
 * to borrow, the event loop its socket runs on, and calls back into the
 * owner. A worker builds one for its connections, a fork-mode child for its
 * one connection, a unit test for connections on a socketpair. It is not the server: conn.c
 * cannot reach the other connections, the listener or the HTTP endpoint.
 */
#ifndef TCPMSG_SERVER_CONNCTX_H
#define TCPMSG_SERVER_CONNCTX_H

#include <stdint.h>

#include "server/stats.h"

struct conn;
struct chunk_pool;
struct loop;
struct membudget;
struct server_config;

/* The owner's pass: one wakeup of its loop. Replies handed to the kernel
 * in the pass that read their messages are counted here, and their service
 * time is recorded once, at the pass's end (conn_pass_end). */
struct conn_pass {
    uint64_t replies;
};

/* The owner keeps the context alive, and every pointer in it, for as long
 * as any connection opened with it exists. All calls come from the owner's
 * thread. */
struct conn_ctx {
    const struct server_config *cfg; /* limits and timeouts */
    struct server_stats *stats;      /* this thread's counters (single writer) */
    struct membudget *budget;        /* --max-buffer-memory */
    unsigned budget_slot;            /* this thread's (or child's) account in it */
    struct chunk_pool *pool;         /* free output chunks, shared by the owner's connections */
    struct loop *loop;               /* the owner's loop: each connection is a stream of it */
    void *owner;                     /* passed back to the calls below */
    struct conn_pass *pass;          /* optional: NULL, and every reply reads the clock */

    /* c is open: the owner lists it (timers, the drain, the connection list). */
    void (*adopt)(void *owner, struct conn *c);
    /* c is closed: take it off the owner's list. Its memory stays valid
     * until the loop lets go of its stream (released). */
    void (*forget)(void *owner, struct conn *c);
    /* A closed connection's memory is gone (the stream's on_close): the
     * owner may stop its loop once none is left. Optional. */
    void (*released)(void *owner);
    /* c was closed for reason: give back what admitted it (--max-conns and
     * --max-conns-per-ip), remember it for the connection list. Optional. */
    void (*closed)(void *owner, const struct conn *c, enum close_reason reason, uint64_t now);
    /* Every state change (from and to are enum conn_state values), for
     * tests and tracing. Optional. */
    void (*transition)(void *owner, const struct conn *c, int from, int to);
};

#endif
