/* server stats: what each worker counts, with a single writer per struct so
 * recording takes no lock. Readers sum the workers' structs when asked.
 * The reason lists are X-macros so code, logs and docs share one spelling.
 */
#ifndef TCPMSG_SERVER_STATS_H
#define TCPMSG_SERVER_STATS_H

#include "tcpmsg/counter.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/loop.h"      /* LOOP_SYSCALLS: the system calls an event loop makes */
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
    X(CLOSE_DRAIN_TIMEOUT, "drain_timeout", "the server was shutting down and --drain-timeout passed with replies to it unwritten or messages from it unanswered: they were lost") \
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

/* The framing modes that counters are kept by: enum name, label value, meaning. */
#define STATS_MODES(X)                                              \
    X(STATS_FRAMED, "framed", "length-prefixed frames (the default)") \
    X(STATS_TEXT, "text", "newline-terminated lines")

enum stats_mode {
#define MODE_ENUM(name, tag, text) name,
    STATS_MODES(MODE_ENUM)
#undef MODE_ENUM
    STATS_MODE_COUNT
};

/* The system calls the event loops make, by kind: the values of the op
 * label, in the order of loop.h's LOOP_SYSCALLS (checked in stats.c), which
 * ends with the wakeups, counted apart. */
#define SYSCALL_OPS(X)                                                                       \
    X(SYS_READ, "read", "epoll: a read of a connection, one per readiness event")          \
    X(SYS_WRITE, "write", "epoll: a write of one buffer (a reply, or replies in one chunk)") \
    X(SYS_WRITEV, "writev", "epoll: a write of several buffers")                            \
    X(SYS_ACCEPT4, "accept4", "epoll: an accept, successful or not")                        \
    X(SYS_EPOLL_WAIT, "epoll_wait", "epoll: a wait for events (epoll_pwait2)")              \
    X(SYS_EPOLL_CTL, "epoll_ctl", "epoll: a change of what a descriptor is watched for")    \
    X(SYS_IO_URING_ENTER, "io_uring_enter",                                                 \
      "io_uring: one call submits what a wakeup queued and waits for completions")         \
    X(SYS_RECVMSG, "recvmsg",                                                               \
      "stage timestamps, epoll: a read that brings the receive timestamp")                  \
    X(SYS_RECVMMSG, "recvmmsg",                                                             \
      "stage timestamps: a read of a socket's error queue, the transmit timestamps waiting " \
      "there (both backends)")                                                              \
    X(SYS_SENDMSG, "sendmsg", "stage timestamps, epoll: a write asking for transmit timestamps") \
    X(SYS_TIMERFD_SETTIME, "timerfd_settime",                                               \
      "epoll: the timer of the loop's first deadline armed (the wait itself has no timeout)")

enum syscall_op {
#define SYSCALL_ENUM(name, tag, text) STATS_##name,
    SYSCALL_OPS(SYSCALL_ENUM)
#undef SYSCALL_ENUM
    SYSCALL_OP_COUNT
};

/* Every counter of struct server_stats, in the order of the metric table:
 *   X(field, shape, Prometheus name, unit, label, label values, help)
 * shape is empty for a single counter, or [N] for one counter per value of
 * the label; the label values are the tags of an X-macro list (NO_LABEL for
 * none). The struct, the merge of the workers' stats, the fork record and
 * the metric table (Prometheus and JSON names, help) are all made from this
 * list, so a new counter is one line here, and its row in docs/METRICS.md.
 * A counter whose unit is "seconds" counts microseconds (the kernel's unit
 * for TCP_INFO's times), and is exported in seconds.
 * The last value of tcpmsg_errors_total, "http", is counted by the HTTP
 * endpoint and not here: its list (ERROR_METRIC_KINDS) is one longer than
 * the array. */
#define SERVER_STATS_COUNTERS(X)                                                             \
    X(accepted, , "tcpmsg_connections_accepted_total", "", NULL, NO_LABEL,                   \
      "Client connections accepted")                                                         \
    X(closed, [CLOSE_REASON_COUNT], "tcpmsg_connections_closed_total", "", "reason",         \
      CLOSE_REASONS, "Client connections closed, by reason")                                 \
    X(rejected, [REJECT_REASON_COUNT], "tcpmsg_connections_rejected_total", "", "reason",    \
      REJECT_REASONS, "Connections refused right after accept, by the limit they hit")       \
    X(msgs_in, [STATS_MODE_COUNT], "tcpmsg_messages_received_total", "", "mode", STATS_MODES, \
      "Messages received, by framing mode")                                                  \
    X(msgs_out, [STATS_MODE_COUNT], "tcpmsg_messages_sent_total", "", "mode", STATS_MODES,   \
      "Replies fully handed to the kernel, by framing mode")                                 \
    X(bytes_in, [STATS_MODE_COUNT], "tcpmsg_received_bytes_total", "bytes", "mode",          \
      STATS_MODES, "Bytes read from client connections, by framing mode")                    \
    X(bytes_out, [STATS_MODE_COUNT], "tcpmsg_sent_bytes_total", "bytes", "mode", STATS_MODES, \
      "Bytes written to client connections, by framing mode")                                \
    X(errors, [ERROR_KIND_COUNT], "tcpmsg_errors_total", "", "kind", ERROR_METRIC_KINDS,     \
      "Errors, by kind")                                                                     \
    X(drain_lost_bytes, , "tcpmsg_drain_lost_bytes_total", "bytes", NULL, NO_LABEL,          \
      "Reply bytes never written because --drain-timeout closed their connection first "     \
      "(see tcpmsg_connections_closed_total{reason=\"drain_timeout\"})")                     \
    X(rtt_reports, , "tcpmsg_client_rtt_reports_total", "", NULL, NO_LABEL,                  \
      "RTT reports accepted from clients and added to tcpmsg_client_rtt_seconds")            \
    X(rtt_rejected, [RTT_REJECT_COUNT], "tcpmsg_client_rtt_reports_rejected_total", "",      \
      "reason", RTT_REJECT_REASONS,                                                          \
      "RTT reports refused whole, by the rule they broke (the connection stays open)")       \
    X(syscalls, [SYSCALL_OP_COUNT], "tcpmsg_syscalls_total", "", "op", SYSCALL_OPS,          \
      "System calls of the event loops (workers; fork mode: the parent and its children), "  \
      "by kind")                                                                             \
    X(wakeups, , "tcpmsg_loop_wakeups_total", "", NULL, NO_LABEL,                            \
      "Event loop iterations that handled at least one event or timer")                       \
    X(stage_dropped, , "tcpmsg_stage_samples_dropped_total", "", NULL, NO_LABEL,           \
      "Stage samples given up (--stage-sample): transmit timestamps lost (more samples in "  \
      "flight than a connection tracks, the error queue full, the connection closed before " \
      "the ACK), or no memory for them")                                                     \
    X(tcp_retrans, , "tcpmsg_tcp_retransmits_total", "", NULL, NO_LABEL,                     \
      "Segments the kernel's TCP retransmitted on client connections (TCP_INFO, read "        \
      "once a second and at close)")                                                         \
    X(tcp_busy_us, , "tcpmsg_tcp_busy_seconds_total", "seconds", NULL, NO_LABEL,             \
      "Time client connections had data in flight (TCP_INFO)")                               \
    X(tcp_rwnd_limited_us, , "tcpmsg_tcp_rwnd_limited_seconds_total", "seconds", NULL,       \
      NO_LABEL, "Time client connections could not send because the client's receive "       \
      "window was full (TCP_INFO)")                                                          \
    X(tcp_sndbuf_limited_us, , "tcpmsg_tcp_sndbuf_limited_seconds_total", "seconds", NULL,   \
      NO_LABEL, "Time client connections could not send more because the server's send "     \
      "buffer was full (TCP_INFO)")

/* The label values of an unlabelled counter: none. */
#define NO_LABEL(X)

/* The kinds of tcpmsg_errors_total: the server's, and the HTTP endpoint's
 * 4xx and 5xx answers. */
#define ERROR_METRIC_KINDS(X) \
    ERROR_KINDS(X) X(ERR_HTTP, "http", "the HTTP endpoint answered 4xx or 5xx")

/* The stages of a sampled message (--stage-sample), in the order a message
 * meets them: the values of tcpmsg_stage_seconds's stage label. */
#define STAGE_LIST(X)                                                                        \
    X(rx_queue, "the kernel's receive timestamp of the message's last segment to the "      \
                "server's read of it")                                                       \
    X(service, "the read that completed the message to its reply handed to the kernel")    \
    X(tx_sched, "the reply handed to the kernel to its last byte entering the qdisc")        \
    X(tx_send, "the qdisc to the device (SCHED to SND)")                                     \
    X(tx_ack, "the device to the client's TCP acknowledging the reply's last byte")

/* Every histogram of struct server_stats, in the order of the metric table:
 *   X(field, Prometheus name, label, label value, unit, recorded unit -> unit,
 *     Prometheus bounds, help)
 * label and its value are NULL, or tell apart the histograms that share one
 * name (one family, one HELP: the first member's): "stage", "rx_queue" for
 * tcpmsg_stage_seconds{stage="rx_queue"}. The bounds are a function of
 * metrics.c. */
#define SERVER_STATS_HISTS(X)                                                                \
    X(service_ns, "tcpmsg_service_time_seconds", NULL, NULL, "seconds", 1e-9,               \
      metrics_latency_bounds,                                                                \
      "Time from the wakeup that read a message to its reply handed to the kernel")         \
    X(client_rtt_ns, "tcpmsg_client_rtt_seconds", NULL, NULL, "seconds", 1e-9,              \
      metrics_latency_bounds, "Round-trip times measured and reported by clients")           \
    X(msg_bytes, "tcpmsg_message_size_bytes", NULL, NULL, "bytes", 1, metrics_size_bounds,  \
      "Payload sizes of messages received")                                                  \
    X(msgs_per_wakeup, "tcpmsg_messages_per_wakeup", NULL, NULL, "", 1,                     \
      metrics_wakeup_bounds,                                                                 \
      "Replies completed per event loop wakeup, for wakeups that completed at least one")     \
    X(tcp_srtt_ns, "tcpmsg_tcp_srtt_seconds", NULL, NULL, "seconds", 1e-9,                  \
      metrics_latency_bounds,                                                                \
      "Smoothed round-trip time the kernel's TCP keeps for each client connection, "          \
      "observed once a second per connection (TCP_INFO)")                                    \
    STAGE_HIST(X, rx_queue)                                                                  \
    STAGE_HIST(X, service)                                                                   \
    STAGE_HIST(X, tx_sched)                                                                  \
    STAGE_HIST(X, tx_send)                                                                   \
    STAGE_HIST(X, tx_ack)

/* One stage's histogram, for each value of STAGE_LIST (stats.c checks that
 * the two lists agree). */
#define STAGE_HIST(X, stage)                                                                 \
    X(stage_##stage##_ns, "tcpmsg_stage_seconds", "stage", #stage, "seconds", 1e-9,          \
      metrics_latency_bounds,                                                                \
      "Where the time of sampled messages goes (--stage-sample), by stage: rx_queue, "        \
      "service, tx_sched, tx_send, tx_ack (docs/STAGES.md)")

enum stage {
#define STAGE_ENUM(stage, text) STAGE_##stage,
    STAGE_LIST(STAGE_ENUM)
#undef STAGE_ENUM
    STAGE_COUNT
};

struct server_stats {
#define STATS_COUNTER_FIELD(field, shape, ...) counter_t field shape;
    SERVER_STATS_COUNTERS(STATS_COUNTER_FIELD)
#undef STATS_COUNTER_FIELD
#define STATS_HIST_FIELD(field, ...) struct hist field;
    SERVER_STATS_HISTS(STATS_HIST_FIELD)
#undef STATS_HIST_FIELD
};

/* How many counters a field of SERVER_STATS_COUNTERS holds (1 when it is a
 * single counter), and a pointer to its first: a single counter and an
 * array are then added, sent and printed by the same loop. */
#define STATS_LEN(field) (sizeof(((struct server_stats *)0)->field) / sizeof(counter_t))
#define STATS_FIRST(s, field) ((counter_t *)&(s)->field)
#define STATS_CFIRST(s, field) ((const counter_t *)&(s)->field)

void server_stats_init(struct server_stats *s);

/* The histogram of stage st. */
struct hist *server_stats_stage(struct server_stats *s, enum stage st);
const char *stage_name(enum stage st); /* "rx_queue", ... */

/* dst += src, every counter and histogram. dst is the caller's own; src
 * may be a live worker's. */
void server_stats_add(struct server_stats *dst, const struct server_stats *src);

#endif
