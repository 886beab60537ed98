/* loadgen: the engine of tcpmsg bench. One loadgen thread runs an event
 * loop (tcpmsg/loop.h: epoll or io_uring, --io) over its share of the
 * connections. Closed loop: each connection keeps --depth messages in flight. Open loop (--rate): each connection follows a
 * fixed send schedule (schedule.h), never more than --depth in flight, and a
 * latency is measured from the intended send time as well as from the actual
 * one. Every reply is checked byte for byte. Buffers are sized up front:
 * nothing is allocated per message. Output and the run's timeline live in
 * bench.c and report.c, not here.
 */
#ifndef TCPMSG_CLIENT_LOADGEN_H
#define TCPMSG_CLIENT_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client_config.h"
#include "client/stages.h"
#include "tcpmsg/counter.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/loop.h"

/* What can go wrong, counted per kind. */
#define LG_ERRORS(X)                                              \
    X(LG_ERR_CONNECT, "connect", "could not connect")             \
    X(LG_ERR_TIMEOUT, "timeout", "no reply within --timeout")     \
    X(LG_ERR_CLOSED, "closed", "the server closed a connection")  \
    X(LG_ERR_RESET, "reset", "a connection was reset or failed")  \
    X(LG_ERR_MISMATCH, "mismatch", "a reply differed from its message") \
    X(LG_ERR_SERVER, "server", "the server answered with an error frame")

enum lg_error {
#define LG_ERR_ENUM(name, tag, text) name,
    LG_ERRORS(LG_ERR_ENUM)
#undef LG_ERR_ENUM
    LG_ERR_COUNT
};

const char *lg_error_tag(enum lg_error e);

/* One thread's results. Written only by that thread (the main thread before
 * it starts), read by anyone at any time: single-writer counters. Only
 * messages inside the measured window (after --warmup) are counted. */
struct lg_stats {
    counter_t msgs;       /* replies received and checked */
    counter_t bytes;      /* their bytes on the wire, each way */
    counter_t sent;       /* messages sent */
    counter_t unsent;     /* open loop: due before the end but never sent (set at the end) */
    counter_t max_lag_ns; /* open loop: the longest a message left after it was due */
    counter_t errors[LG_ERR_COUNT];
    struct hist rtt;      /* latency; open loop: from the intended send time */
    struct hist rtt_raw;  /* open loop: from the actual send time (uncorrected) */
    struct cstage_hists stages; /* --stages: the sampled round trips, split */
};

/* The run's timetable and payload, shared read-only by all threads. */
struct lg_plan {
    const struct client_config *cfg;
    const uint8_t *tmpl;   /* payload template, cfg->size bytes */
    uint64_t start_ns;     /* load starts */
    uint64_t measure_ns;   /* results count from here (start + warmup) */
    uint64_t deadline_ns;  /* no message is sent (open loop: due) after this */
    double conn_period_ns; /* open loop: between two messages of one connection */
};

struct lg_thread;

/* A thread for nconns connections numbered first_conn.. (they seed the
 * random sizes), sending at most quota messages (UINT64_MAX: no limit), on
 * an event loop of cfg->io. 0 and *out (released with lg_thread_free), or
 * -errno: -ENOMEM, or why the loop could not be made (loop_new: -ENOSYS,
 * -EPERM, ...). *why: as loop_new's, why --io auto fell back to epoll. */
int lg_thread_new(struct lg_thread **out, const struct lg_plan *plan, unsigned first_conn,
                  unsigned nconns, uint64_t quota, const char **why);
void lg_thread_free(struct lg_thread *t); /* NULL is a no-op */
/* The loop's backend: "epoll" or "uring". */
const char *lg_thread_io(const struct lg_thread *t);
/* The system calls its loop made, by kind. Any thread. */
uint64_t lg_thread_syscalls(const struct lg_thread *t, enum loop_syscall k);

/* Connect connection k (before the thread starts). 0, or a negative errno
 * after printing why (counted as a connect error): client_connect's, or
 * -ENOMEM / -ENOSPC when this machine ran out (buffers, the epoll set). */
int lg_thread_connect(struct lg_thread *t, unsigned k);

/* Run the loop on a new thread from plan->start_ns until the deadline (or
 * the quota) and the last replies. 0 or -errno. */
int lg_thread_start(struct lg_thread *t);
void lg_thread_join(struct lg_thread *t);
bool lg_thread_finished(const struct lg_thread *t); /* any thread may ask */
/* When its measured loop ended (valid once finished). */
uint64_t lg_thread_done_ns(const struct lg_thread *t);

const struct lg_stats *lg_thread_stats(const struct lg_thread *t);

/* Bytes one message of payload size n takes on the wire. */
size_t lg_wire_size(const struct client_config *cfg, size_t n);

#endif
