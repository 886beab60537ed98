/* server stats: what each worker counts, with a single writer per struct so
 * recording takes no lock. Readers sum the workers' structs when asked.
 * The reason lists are X-macros so code, logs and docs share one spelling.
 */
#ifndef TCPMSG_SERVER_STATS_H
#define TCPMSG_SERVER_STATS_H

#include "tcpmsg/counter.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/rttreport.h" /* RTT_REJECT_REASONS: why an RTT report was refused */

/* Why a connection was closed: enum name, tag (logs, metrics), meaning. */
#define CLOSE_REASONS(X)                                                                \
    X(CLOSE_PEER, "peer_closed", "the client closed its end (its replies were written first)") \
    X(CLOSE_RESET, "reset", "the client reset the connection (ECONNRESET, EPIPE)")      \
    X(CLOSE_IDLE, "idle_timeout", "no traffic for --idle-timeout")                      \
    X(CLOSE_FRAME_TIMEOUT, "frame_timeout", "a begun message not completed within --frame-timeout") \
    X(CLOSE_SLOW_READER, "slow_reader", "pending replies made no progress for --write-timeout") \
    X(CLOSE_OVERSIZE, "oversize", "a message over --max-payload")                       \
    X(CLOSE_PROTOCOL, "protocol_error", "an unknown frame type")                        \
    X(CLOSE_IO_ERROR, "io_error", "another socket error")                               \
    X(CLOSE_NO_MEMORY, "out_of_memory", "no memory for the connection's buffers")       \
    X(CLOSE_MEMORY, "memory", "--max-buffer-memory stayed spent (over it, or nearly with connections waiting) for --memory-grace, and this connection held the most") \
    X(CLOSE_SHUTDOWN, "shutdown", "the server was shutting down")                      \
    X(CLOSE_CHILD_DIED, "child_died", "fork mode: the child process serving it died before reporting its end")

enum close_reason {
#define CLOSE_ENUM(name, tag, text) name,
    CLOSE_REASONS(CLOSE_ENUM)
#undef CLOSE_ENUM
    CLOSE_REASON_COUNT
};

/* Why a connection was refused right after accept. */
#define REJECT_REASONS(X)                                               \
    X(REJECT_MAX_CONNS, "max_conns", "--max-conns connections were open") \
    X(REJECT_PER_IP, "per_ip", "--max-conns-per-ip connections from that address were open") \
    X(REJECT_MAX_CHILDREN, "max_children", "fork mode: --max-children child processes were running") \
    X(REJECT_FORK_FAILED, "fork_failed", "fork mode: fork() failed (EAGAIN, ENOMEM)")

enum reject_reason {
#define REJECT_ENUM(name, tag, text) name,
    REJECT_REASONS(REJECT_ENUM)
#undef REJECT_ENUM
    REJECT_REASON_COUNT
};

/* Errors that are not a close reason of their own. */
#define ERROR_KINDS(X)                                                        \
    X(ERR_ACCEPT_EMFILE, "accept_emfile", "accept ran out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): accepting pauses 100 ms") \
    X(ERR_ACCEPT_OTHER, "accept_other", "accept failed for another reason")   \
    X(ERR_READ, "read", "a read failed with an unexpected error (not a reset)") \
    X(ERR_WRITE, "write", "a write failed with an unexpected error (not a reset)") \
    X(ERR_PROTOCOL, "protocol", "a malformed or oversize message (a refused RTT report counts in tcpmsg_client_rtt_reports_rejected_total)") \
    X(ERR_CHILD_CRASHED, "child_crashed", "fork mode: a child was killed by a signal or exited without its final report") \
    X(ERR_STATS_PIPE, "stats_pipe", "fork mode: a malformed statistics record on the pipe")

enum error_kind {
#define ERROR_ENUM(name, tag, text) name,
    ERROR_KINDS(ERROR_ENUM)
#undef ERROR_ENUM
    ERROR_KIND_COUNT
};

const char *close_reason_tag(enum close_reason r);
const char *reject_reason_tag(enum reject_reason r);
const char *error_kind_tag(enum error_kind k);

/* Per framing mode: index 0 framed, 1 text. */
enum stats_mode { STATS_FRAMED = 0, STATS_TEXT = 1, STATS_MODE_COUNT };

struct server_stats {
    counter_t accepted;
    counter_t closed[CLOSE_REASON_COUNT];
    counter_t rejected[REJECT_REASON_COUNT];
    counter_t errors[ERROR_KIND_COUNT];
    counter_t msgs_in[STATS_MODE_COUNT];
    counter_t msgs_out[STATS_MODE_COUNT];
    counter_t bytes_in[STATS_MODE_COUNT];
    counter_t bytes_out[STATS_MODE_COUNT];
    counter_t rtt_reports;  /* RTT reports accepted from clients */
    counter_t rtt_rejected[RTT_REJECT_COUNT]; /* ... and refused, by reason */
    struct hist service_ns; /* message fully received -> reply handed to the kernel */
    struct hist msg_bytes;  /* payload sizes received */
    struct hist client_rtt_ns; /* round-trip times reported by clients */
};

void server_stats_init(struct server_stats *s);

/* dst += src. dst is the caller's own; src may be a live worker's. */
void server_stats_add(struct server_stats *dst, const struct server_stats *src);

#endif
