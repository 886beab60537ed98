/* loop_backend: what loop.c (timers, hook, counters, dispatch order) shares
 * with the two backends, loop_epoll.c and loop_uring.c. Private to the loop
 * module: only these three files include it.
 */
#ifndef TCPMSG_LOOP_BACKEND_H
#define TCPMSG_LOOP_BACKEND_H

#include "tcpmsg/loop.h"

/* Most events (epoll events, io_uring completions) one wakeup dispatches. */
#define LOOP_EVENTS_PER_WAKEUP 256
/* Most connections one acceptor takes per wakeup (epoll). */
#define LOOP_ACCEPTS_PER_WAKEUP 64

/* loop_stream.flags */
#define LOOP_STREAM_CLOSING 0x1u  /* loop_stream_close was called */
#define LOOP_STREAM_WANT_OUT 0x2u /* epoll: waiting for room after a partial write */
#define LOOP_STREAM_IN_EPOLL 0x4u /* epoll: the descriptor is registered */
#define LOOP_STREAM_EPOLL_IN 0x8u /* epoll: registered with EPOLLIN */
#define LOOP_STREAM_EPOLL_OUT 0x10u /* epoll: registered with EPOLLOUT */
#define LOOP_STREAM_WANT_HUP 0x20u  /* on_hangup asked for and not yet reported */
#define LOOP_STREAM_EPOLL_HUP 0x40u /* epoll: registered with EPOLLRDHUP */
#define LOOP_STREAM_STAMP 0x80u     /* stage timestamps on (loop_stream_stamp) */
#define LOOP_STREAM_EPOLL_ERRQ 0x100u /* epoll: registered, if for nothing else, for EPOLLERR */
#define LOOP_STREAM_ERRQ_DUE 0x200u /* epoll: a stamped write was made: drain after the dispatch */
#define LOOP_STREAM_ERRQ_FAILED 0x400u /* EPOLLERR with no timestamp queued: the socket failed,
                                          its error queue is no longer watched */
#define LOOP_STREAM_STAMP_RX 0x800u /* reads ask for the receive timestamp (with STAMP) */

/* Most recvmmsg calls one drain makes (each reads up to TSTAMP_BATCH
 * entries, three per stamped write): the rest wait for the next report of
 * the queue, so one stream cannot hold a wakeup. */
#define LOOP_ERRQ_CALLS_PER_DRAIN 4

/* One backend: a table of operations, in the spirit of redis ae's
 * ae_epoll.c / ae_kqueue.c behind ae.c. Each returns 0 or -errno like the
 * public function of the same name; the common checks are done already. */
struct loop_ops {
    const char *name;
    bool writes_later; /* loop_stream_write returns -EINPROGRESS */
    int (*init)(struct loop *l, const struct loop_options *opt);
    void (*destroy)(struct loop *l);
    /* Submit, wait at most timeout_ns (UINT64_MAX: no limit), set l->now,
     * dispatch at most LOOP_EVENTS_PER_WAKEUP events. Returns the number of
     * events dispatched, or -errno. l->timer_bound: the absolute deadline
     * of the timer that sets timeout_ns, 0 when no timer does. */
    int (*poll)(struct loop *l, uint64_t timeout_ns);
    int (*watch_start)(struct loop *l, struct loop_watch *w);
    void (*watch_stop)(struct loop *l, struct loop_watch *w);
    /* w->events is the new set; on failure the watch waits as before. */
    int (*watch_modify)(struct loop *l, struct loop_watch *w);
    int (*accept_start)(struct loop *l, struct loop_acceptor *a);
    void (*accept_stop)(struct loop *l, struct loop_acceptor *a);
    int (*stream_start)(struct loop *l, struct loop_stream *s);
    int (*stream_read)(struct loop *l, struct loop_stream *s);  /* s->read_max is set */
    /* stamped: ask for transmit timestamps (loop_stream_write_stamped). */
    ssize_t (*stream_write)(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                            int iovcnt, bool stamped);
    /* LOOP_STREAM_STAMP was just set or cleared (the socket option is set). */
    int (*stream_stamp)(struct loop *l, struct loop_stream *s);
    int (*stream_hangup)(struct loop *l, struct loop_stream *s); /* LOOP_STREAM_WANT_HUP is set */
    /* Stop s's I/O. Calls loop_closed(l, s) once the backend holds no
     * reference to s (at once, or when its last request completes). */
    void (*stream_close)(struct loop *l, struct loop_stream *s);
};

extern const struct loop_ops loop_epoll_ops;
#ifdef TCPMSG_HAVE_URING
extern const struct loop_ops loop_uring_ops;
#endif

struct loop {
    const struct loop_ops *ops;
    void *be;                      /* the backend's state */
    uint64_t now;
    uint64_t timer_bound;          /* this wait ends at the first timer's deadline; 0: not a timer's */
    bool stopped;
    void (*hook)(void *ctx, uint64_t now_ns);
    void *hook_ctx;
    struct loop_timer **heap;      /* timers, min-heap by (deadline, seq) */
    unsigned nheap, heap_cap;
    uint64_t timer_seq;
    struct loop_stream *closed;    /* on_close is due at the end of this wakeup */
    struct loop_stream *streams;   /* started, on_close not yet run: their fds are ours */
    counter_t sys[LOOP_SYS_COUNT];
    counter_t enobufs;
};

/* Count one system call of kind k (the loop's thread). */
static inline void loop_count(struct loop *l, enum loop_syscall k)
{
    counter_add(&l->sys[k], 1);
}

/* Read s's error queue (at most LOOP_ERRQ_CALLS_PER_DRAIN recvmmsg calls,
 * each counted) and hand every transmit timestamp to on_errqueue.
 * Returns the entries read (0: the queue was empty: a POLLERR then is the
 * socket's own error). Stops when on_errqueue closes s. */
int loop_drain_errqueue(struct loop *l, struct loop_stream *s);

/* The backend no longer refers to s: queue its on_close for the end of the
 * wakeup. */
void loop_closed(struct loop *l, struct loop_stream *s);

#endif
