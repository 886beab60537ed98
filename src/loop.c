/* loop: the backend-independent part of the event loop (see loop.h): choosing
 * a backend, the timer heap, the order of one wakeup (wait and dispatch,
 * timers, on_close, hook) and the system call counters. The I/O itself is in
 * loop_epoll.c and loop_uring.c.
 */
#include "loop_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcpmsg/hot.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tstamp.h"

static const char *const syscall_names[] = {
#define LOOP_SYS_NAME(name, text) text,
    LOOP_SYSCALLS(LOOP_SYS_NAME)
#undef LOOP_SYS_NAME
};

const char *loop_syscall_name(enum loop_syscall k)
{
    return (unsigned)k < LOOP_SYS_COUNT ? syscall_names[k] : "unknown";
}

uint64_t loop_syscalls(const struct loop *l, enum loop_syscall k)
{
    return (unsigned)k < LOOP_SYS_COUNT ? counter_get(&l->sys[k]) : 0;
}

const counter_t *loop_syscall_counters(const struct loop *l)
{
    return l->sys;
}

uint64_t loop_enobufs(const struct loop *l)
{
    return counter_get(&l->enobufs);
}

/* --- creation ---------------------------------------------------------------- */

static int loop_init_with(struct loop *l, const struct loop_ops *ops, const struct loop_options *opt)
{
    l->ops = ops;
    int rc = ops->init(l, opt);
    if (rc < 0)
        l->ops = NULL;
    return rc;
}

/* Why LOOP_AUTO did not get io_uring, for the caller's log line. */
static const char *uring_refusal(int rc)
{
    switch (rc) {
    case -ENOSYS:
        return "io_uring is not built in, or the kernel lacks multishot recv or provided buffer rings";
    case -EPERM:
    case -EACCES:
        return "io_uring is disabled on this system (kernel.io_uring_disabled or a seccomp policy)";
    case -ENOMEM:
        return "io_uring could not allocate its rings (RLIMIT_MEMLOCK?)";
    default:
        return "io_uring_queue_init failed";
    }
}

int loop_new(struct loop **out, const struct loop_options *opt, const char **why)
{
    static const struct loop_options defaults = { .backend = LOOP_AUTO };
    if (opt == NULL)
        opt = &defaults;
    if (why != NULL)
        *why = NULL;
    struct loop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->now = net_now_ns();
    int rc;
    switch (opt->backend) {
    case LOOP_EPOLL:
        rc = loop_init_with(l, &loop_epoll_ops, opt);
        break;
    case LOOP_URING:
    case LOOP_AUTO:
#ifdef TCPMSG_HAVE_URING
        rc = loop_init_with(l, &loop_uring_ops, opt);
#else
        rc = -ENOSYS;
#endif
        /* An explicit sqpoll request that the kernel refuses is an error the
         * caller must hear about, not a silent fallback. */
        if (rc < 0 && opt->backend == LOOP_AUTO && !opt->sqpoll) {
            if (why != NULL)
                *why = uring_refusal(rc);
            rc = loop_init_with(l, &loop_epoll_ops, opt);
        }
        break;
    default:
        rc = -EINVAL;
    }
    if (rc < 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    if (l->ops != NULL)
        l->ops->destroy(l);
    /* The backend has let go (io_uring: the ring is gone): the descriptors
     * the loop owns can close. */
    for (struct loop_stream *s = l->streams; s != NULL; s = s->next_open) {
        close(s->fd);
        s->fd = -1;
    }
    free(l->heap);
    free(l);
}

const char *loop_backend_name(const struct loop *l)
{
    return l->ops->name;
}

int loop_backend_parse(const char *name, enum loop_backend *out)
{
    static const struct {
        const char *name;
        enum loop_backend backend;
    } names[] = { { "auto", LOOP_AUTO }, { "epoll", LOOP_EPOLL }, { "uring", LOOP_URING } };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].backend;
            return 0;
        }
    }
    return -EINVAL;
}

bool loop_writes_later(const struct loop *l)
{
    return l->ops->writes_later;
}

void loop_stop(struct loop *l)
{
    l->stopped = true;
}

void loop_set_hook(struct loop *l, void (*hook)(void *ctx, uint64_t now_ns), void *ctx)
{
    l->hook = hook;
    l->hook_ctx = ctx;
}

uint64_t loop_now(const struct loop *l)
{
    return l->now;
}

/* --- timers: a binary min-heap of pointers; each timer knows its index ----- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* Put t at heap position i (0-based) and record it there. */
static void heap_place(struct loop *l, unsigned i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->index = i + 1;
}

static void heap_up(struct loop *l, unsigned i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0 && timer_before(t, l->heap[(i - 1) / 2])) {
        heap_place(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(l, i, t);
}

static void heap_down(struct loop *l, unsigned i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && timer_before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!timer_before(l->heap[c], t))
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

bool loop_timer_active(const struct loop_timer *t)
{
    return t->index != 0;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (t->index == 0)
        return;
    unsigned i = t->index - 1;
    t->index = 0;
    struct loop_timer *last = l->heap[--l->nheap];
    if (i == l->nheap)
        return;
    /* The last timer fills the hole and moves whichever way it must. */
    heap_place(l, i, last);
    heap_up(l, i);
    heap_down(l, last->index - 1);
}

int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t deadline_ns)
{
    loop_timer_stop(l, t);
    if (l->nheap == l->heap_cap) {
        unsigned cap = l->heap_cap ? 2 * l->heap_cap : 16;
        struct loop_timer **h = realloc(l->heap, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        l->heap = h;
        l->heap_cap = cap;
    }
    t->deadline = deadline_ns;
    t->seq = l->timer_seq++;
    heap_place(l, l->nheap++, t);
    heap_up(l, l->nheap - 1);
    return 0;
}

/* Fire the due timers in deadline order. Those started during this run (seq
 * at or past the mark) wait for the next wakeup: a timer that restarts itself
 * "now" cannot hold the loop here forever. Returns how many fired. */
static int run_timers(struct loop *l)
{
    uint64_t mark = l->timer_seq;
    int fired = 0;
    while (l->nheap > 0) {
        struct loop_timer *t = l->heap[0];
        if (t->deadline > l->now || t->seq >= mark)
            break;
        loop_timer_stop(l, t);
        t->cb(t, l->now);
        fired++;
    }
    return fired;
}

/* --- watches, acceptors, streams: checks, then the backend ------------------ */

int loop_watch_start(struct loop *l, struct loop_watch *w, int fd, unsigned events)
{
    if ((events & (LOOP_READABLE | LOOP_WRITABLE)) == 0 || fd < 0)
        return -EINVAL;
    w->fd = fd;
    w->events = events & (LOOP_READABLE | LOOP_WRITABLE);
    w->op = NULL;
    int rc = l->ops->watch_start(l, w);
    if (rc < 0)
        w->fd = -1; /* not started: a stop has nothing to undo */
    return rc;
}

int loop_watch_modify(struct loop *l, struct loop_watch *w, unsigned events)
{
    if ((events & (LOOP_READABLE | LOOP_WRITABLE)) == 0 || w->fd < 0)
        return -EINVAL;
    unsigned old = w->events;
    w->events = events & (LOOP_READABLE | LOOP_WRITABLE);
    int rc = l->ops->watch_modify(l, w);
    if (rc < 0)
        w->events = old;
    return rc;
}

void loop_watch_stop(struct loop *l, struct loop_watch *w)
{
    if (w->fd < 0)
        return;
    l->ops->watch_stop(l, w);
    w->fd = -1;
}

int loop_accept_start(struct loop *l, struct loop_acceptor *a, int listen_fd)
{
    if (listen_fd < 0)
        return -EINVAL;
    /* epoll accepts until EAGAIN: on a blocking listener the call after the
     * last queued connection would hold the whole loop. */
    int rc = net_set_nonblock(listen_fd, true);
    if (rc < 0)
        return rc;
    a->fd = listen_fd;
    a->op = NULL;
    rc = l->ops->accept_start(l, a);
    if (rc < 0)
        a->fd = -1;
    return rc;
}

void loop_accept_stop(struct loop *l, struct loop_acceptor *a)
{
    if (a->fd < 0)
        return;
    l->ops->accept_stop(l, a);
    a->fd = -1;
}

int loop_stream_start(struct loop *l, struct loop_stream *s, int fd)
{
    if (fd < 0)
        return -EINVAL;
    s->fd = fd;
    s->flags = 0;
    s->read_max = 0;
    s->recv_op = s->send_op = s->hup_op = s->errq_op = NULL;
    s->next_closed = NULL;
    s->rx_ns = 0;
    int rc = l->ops->stream_start(l, s);
    if (rc < 0)
        return rc;
    s->prev_open = NULL;
    s->next_open = l->streams;
    if (l->streams != NULL)
        l->streams->prev_open = s;
    l->streams = s;
    return 0;
}

int loop_stream_read(struct loop *l, struct loop_stream *s, size_t max)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return -EPIPE;
    s->read_max = max < LOOP_READ_SIZE ? max : LOOP_READ_SIZE;
    return l->ops->stream_read(l, s);
}

TCPMSG_HOT ssize_t loop_stream_write(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                                     int iovcnt)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return -EPIPE;
    if (iovcnt < 1 || iovcnt > LOOP_IOV_MAX)
        return -EINVAL;
    return l->ops->stream_write(l, s, iov, iovcnt, false);
}

ssize_t loop_stream_write_stamped(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                                  int iovcnt)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return -EPIPE;
    if (iovcnt < 1 || iovcnt > LOOP_IOV_MAX || !(s->flags & LOOP_STREAM_STAMP))
        return -EINVAL;
    return l->ops->stream_write(l, s, iov, iovcnt, true);
}

int loop_stream_stamp(struct loop *l, struct loop_stream *s, bool on)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return -EPIPE;
    if (on == ((s->flags & LOOP_STREAM_STAMP) != 0))
        return 0;
    int rc = on ? tstamp_enable(s->fd) : tstamp_disable(s->fd);
    if (rc < 0)
        return rc;
    s->flags ^= LOOP_STREAM_STAMP;
    s->flags &= ~LOOP_STREAM_ERRQ_FAILED;
    if (on)
        s->flags |= LOOP_STREAM_STAMP_RX;
    else
        s->flags &= ~LOOP_STREAM_STAMP_RX;
    rc = l->ops->stream_stamp(l, s);
    if (rc < 0 && on) {
        /* Undone whole: reads that asked for receive timestamps would
         * stay recvmsg on a stream that no longer stamps. */
        s->flags &= ~(LOOP_STREAM_STAMP | LOOP_STREAM_STAMP_RX);
        tstamp_disable(s->fd);
    }
    return rc;
}

bool loop_stream_stamped(const struct loop_stream *s)
{
    return (s->flags & LOOP_STREAM_STAMP) != 0;
}

void loop_stream_stamp_reads(struct loop_stream *s, bool on)
{
    if (on && (s->flags & LOOP_STREAM_STAMP))
        s->flags |= LOOP_STREAM_STAMP_RX;
    else
        s->flags &= ~LOOP_STREAM_STAMP_RX;
}

uint64_t loop_stream_rx_ns(const struct loop_stream *s)
{
    return s->rx_ns;
}

int loop_drain_errqueue(struct loop *l, struct loop_stream *s)
{
    int n = 0;
    for (int calls = 0; calls < LOOP_ERRQ_CALLS_PER_DRAIN; calls++) {
        struct tstamp_report r[TSTAMP_BATCH];
        unsigned entries;
        loop_count(l, LOOP_SYS_RECVMMSG);
        int got = tstamp_read_tx_batch(s->fd, r, &entries);
        if (got == -EINTR)
            continue;
        if (got < 0)
            break; /* a failure the stream's next read or write reports */
        n += (int)entries;
        for (int i = 0; i < got && !(s->flags & LOOP_STREAM_CLOSING); i++)
            if (s->on_errqueue != NULL)
                s->on_errqueue(s, &r[i], l->now);
        /* Fewer than asked: the queue is empty, no call to find it so. */
        if (entries < TSTAMP_BATCH || (s->flags & LOOP_STREAM_CLOSING))
            break;
    }
    return n;
}

int loop_stream_watch_hangup(struct loop *l, struct loop_stream *s, bool on)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return -EPIPE;
    if (on)
        s->flags |= LOOP_STREAM_WANT_HUP;
    else
        s->flags &= ~LOOP_STREAM_WANT_HUP;
    return l->ops->stream_hangup(l, s);
}

void loop_stream_close(struct loop *l, struct loop_stream *s)
{
    if (s->flags & LOOP_STREAM_CLOSING)
        return;
    s->flags |= LOOP_STREAM_CLOSING;
    s->read_max = 0;
    l->ops->stream_close(l, s);
}

void loop_closed(struct loop *l, struct loop_stream *s)
{
    s->next_closed = l->closed;
    l->closed = s;
}

/* on_close for every stream the backend let go of. The loop closes the
 * descriptor here, after the backend's last use of it. */
static void run_closed(struct loop *l)
{
    while (l->closed != NULL) {
        struct loop_stream *s = l->closed;
        l->closed = s->next_closed;
        if (s->prev_open != NULL)
            s->prev_open->next_open = s->next_open;
        else
            l->streams = s->next_open;
        if (s->next_open != NULL)
            s->next_open->prev_open = s->prev_open;
        close(s->fd);
        s->fd = -1;
        if (s->on_close != NULL)
            s->on_close(s);
    }
}

/* --- one wakeup ----------------------------------------------------------------- */

/* How long the backend may wait: until the first timer, at most timeout_ms,
 * and not at all while on_close calls or a stop are pending. */
static uint64_t wait_budget(struct loop *l, int timeout_ms)
{
    l->timer_bound = 0;
    if (l->closed != NULL || l->stopped)
        return 0;
    uint64_t wait = timeout_ms < 0 ? UINT64_MAX : (uint64_t)timeout_ms * 1000000u;
    if (l->nheap > 0) {
        uint64_t now = net_now_ns();
        uint64_t until = l->heap[0]->deadline > now ? l->heap[0]->deadline - now : 0;
        if (until < wait) {
            wait = until;
            l->timer_bound = l->heap[0]->deadline;
        }
    }
    return wait;
}

TCPMSG_HOT int loop_run_once(struct loop *l, int timeout_ms)
{
    int n = l->ops->poll(l, wait_budget(l, timeout_ms));
    if (n < 0)
        return n;
    n += run_timers(l);
    run_closed(l);
    if (n > 0)
        loop_count(l, LOOP_SYS_WAKEUPS);
    if (l->hook != NULL)
        l->hook(l->hook_ctx, l->now);
    return 0;
}

int loop_run(struct loop *l)
{
    /* A stop asked before the run (from a set-up step) is kept: it returns
     * at once. */
    while (!l->stopped) {
        int rc = loop_run_once(l, -1);
        if (rc < 0)
            return rc;
    }
    l->stopped = false;
    return 0;
}
