/* conn: one client connection: its buffers, its protocol state machine,
 * and its reads, replies and close. Whoever runs it (a worker's loop, a
 * fork-mode child, a test) hands it a struct conn_ctx (connctx.h) and calls
 * in here when the socket or a timer says so; nothing here blocks or takes a
 * lock, and nothing here knows the server, the worker or other connections.
 */
#ifndef TCPMSG_SERVER_CONN_H
#define TCPMSG_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/outq.h"
#include "server/stats.h"
#include "tcpmsg/counter.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/loop.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tstamp.h"

struct conn_ctx;
struct conn_stage;

/* Reads: at most CONN_READ_MAX bytes at once (just under the loop's
 * LOOP_READ_SIZE, see conn.c). A connection keeps a buffer of its own only
 * for a message that did not arrive whole; while that partial message is
 * small (CONN_SMALL_PARTIAL), it is copied in front of the next delivery, in
 * the loop's headroom, instead. */
#define CONN_READ_MAX (64u * 1024 - 1)
#define CONN_SMALL_PARTIAL 4096u

/* The states, each with the name the connection list shows; conn.c opens
 * with the table of transitions between them. */
#define CONN_STATE_LIST(X)                                                                    \
    /* reading messages and writing their replies */                                          \
    X(CONN_READING, "reading")                                                                \
    /* pending output at --max-pending-output: not reading until it drains */                 \
    X(CONN_BLOCKED, "blocked")                                                                \
    /* the server is over --max-buffer-memory and this connection holds more than its        \
       share: not reading until the server is back under budget */                            \
    X(CONN_PAUSED, "paused")                                                                  \
    /* the server is shutting down: reading only what the client already sent (at most       \
       drain_left more bytes, until 50 ms of quiet), answering it */                          \
    X(CONN_DRAINING, "draining")                                                              \
    /* DRAINING, but pending output at --max-pending-output: not reading until it drains,    \
       then DRAINING again */                                                                 \
    X(CONN_DRAIN_BLOCKED, "drain_blocked")                                                    \
    /* no more input: write what is pending (an error reply, the last replies), then close */ \
    X(CONN_FLUSHING, "flushing")                                                              \
    /* our side is shut down: discard input until the peer closes, so an error reply is not  \
       destroyed by a reset, within a short deadline */                                       \
    X(CONN_LINGER, "linger")                                                                  \
    /* closed, waiting to be freed after this wakeup */                                       \
    X(CONN_CLOSED, "closed")

enum conn_state {
#define CONN_STATE_ENUM(name, tag) name,
    CONN_STATE_LIST(CONN_STATE_ENUM)
#undef CONN_STATE_ENUM
    CONN_STATE_COUNT
};

struct conn {
    struct loop_stream s; /* the socket, on the owner's loop */
    int fd;               /* the socket, for the calls the loop does not make; -1 once closed */
    uint64_t id;
    const struct conn_ctx *ctx;
    struct conn *prev, *next; /* the owner's list of open connections (conn.c does not use them) */
    enum conn_state state;
    enum frame_mode mode;
    enum close_reason reason; /* set when the close is decided */
    bool writing;             /* a write is not over: on_write comes (io_uring: in flight;
                                 epoll: waiting for room after a partial write) */
    bool peer_done;           /* the client stopped sending while PAUSED: read the rest
                                 whatever the memory budget says */
    bool peer_eof;            /* the client shut down its sending side. Not a state: a fact
                                 about the input that the parser needs (it ends a last text
                                 line) and that FLUSHING needs (close, or linger) */
    /* DRAINING's data (and DRAIN_BLOCKED's, which returns to DRAINING). */
    size_t drain_left;        /* bytes the drain may still read */
    uint64_t drain_quiet_ns;  /* since when the drain found nothing to read; 0: not */

    uint8_t *in;     /* received bytes not yet answered, from a partial message on;
                        NULL when there are none (the buffer is given back) */
    size_t in_len, in_cap;
    size_t scanned;  /* text mode: bytes of the partial line already searched for LF */
    struct outq out; /* replies not yet written */
    size_t mem;      /* bytes of buffers charged to the server's memory budget */
    uint64_t unsent_msgs;     /* replies queued but not fully written */
    uint64_t unsent_since_ns; /* when the oldest of those was received */

    uint64_t opened_ns;
    uint64_t active_ns;      /* last read or write progress, for --idle-timeout */
    uint64_t frame_start_ns; /* when the pending partial message began; 0: none */
    uint64_t state_ns;       /* when the current state was entered */
    uint64_t paused_ns;      /* since when PAUSED (its frame clock stops meanwhile) */
    uint64_t write_wait_ns;  /* since when output has waited without progress; 0: none */
    uint64_t linger_until_ns;
    uint64_t rtt_samples;    /* RTT samples accepted from this client's reports: never
                                more than the replies written (pub.msgs_out) */
    /* TCP_INFO's lifetime totals at the last sample, so each sample adds
     * only what is new to the server's counters. */
    struct {
        uint64_t retrans, busy_us, rwnd_limited_us, sndbuf_limited_us;
    } tcp_seen;
    /* Stage timestamps (--stage-sample N): one message in N is sampled
     * (conn.c, "stage timestamps"). */
    unsigned stage_until;     /* messages until the next sample (1: the next one); 0: off */
    unsigned stage_late;      /* messages taken since the sample due was, unstamped */
    unsigned read_msgs;       /* messages the last read completed, at most 256: how near
                                 a sample must be for a read to ask for its stamp */
    struct conn_stage *stage; /* the samples in flight: made at the first sample, so an
                                 idle connection that was never sampled holds none */

    /* Immutable after conn_open: other threads may read them. */
    struct sockaddr_storage peer;
    char peer_str[NET_ADDRSTRLEN];
    /* Published for other threads (the connection list of the HTTP
     * endpoint): written only by the worker, with relaxed atomics. */
    struct {
        counter_t msgs_in, msgs_out, bytes_in, bytes_out;
        counter_t active_ns; /* copy of active_ns */
        counter_t pending;   /* unsent reply bytes */
        counter_t mem;       /* copy of mem */
        counter_t mode;      /* enum frame_mode */
        counter_t state;     /* enum conn_state */
    } pub;
};

/* Name of a connection state ("reading"). */
const char *conn_state_name(enum conn_state s);

/* A connection for an accepted, non-blocking fd, in state READING, a
 * stream of ctx->loop, given to ctx->adopt. Takes ownership of fd (closes it
 * on failure). ctx must outlive the connection. NULL on ENOMEM or when the
 * loop refused the stream. It is freed by conn.c itself, once closed and
 * let go of by the loop (ctx->released tells the owner). */
struct conn *conn_open(const struct conn_ctx *ctx, int fd, const struct sockaddr *peer,
                       socklen_t len, uint64_t id, uint64_t now);

/* Enforce c's timeouts at time now, give back idle buffers, and let it read
 * again once the memory budget has room (called a few times a second). */
void conn_check_timers(struct conn *c, uint64_t now);

/* Shutdown begins: answer what was already received, then close. */
void conn_begin_drain(struct conn *c, uint64_t now);

/* The owner's loop finished a pass (a wakeup) that began at start: record
 * the service time of the replies it completed for messages it read
 * (ctx->pass). Call it at the end of every wakeup. */
void conn_pass_end(const struct conn_ctx *ctx, uint64_t start);

/* Read what the kernel's TCP knows of c (TCP_INFO): add its new
 * retransmissions and limited times to the owner's counters, and its
 * smoothed RTT to the srtt histogram. The owner calls it once a second;
 * conn_close calls it a last time, so the counters miss nothing. */
void conn_sample_tcp(struct conn *c);

/* Close now with reason: leave the owner's list (ctx->forget), close the
 * stream, count, call ctx->closed and log. The memory stays valid until the
 * loop's on_close for the stream, at the end of the wakeup at the earliest;
 * closing twice is a no-op. */
void conn_close(struct conn *c, enum close_reason reason, uint64_t now);

#endif
