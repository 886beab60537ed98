/* loop_epoll: the readiness backend of the loop. epoll says which descriptor
 * is ready; the loop then makes the call itself: one read per readiness
 * event of a stream (so one busy peer cannot starve the others), writev when
 * asked, a bounded batch of accept4 per listener. Level-triggered throughout.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop_backend.h"
#include "tcpmsg/hot.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tstamp.h"

/* epoll_event.data.u64: a pointer to the watch, acceptor or stream with its
 * kind in the low bits (each struct is at least 8-byte aligned). 0: an event
 * invalidated during this wakeup. */
enum epoll_kind { KIND_WATCH = 1, KIND_ACCEPTOR = 2, KIND_STREAM = 3, KIND_TIMER = 4 };
#define KIND_MASK 7u

struct epoll_be {
    int epfd;
    struct epoll_event events[LOOP_EVENTS_PER_WAKEUP];
    int nevents, next;  /* this wakeup's events, and the next to dispatch */
    const void *current; /* the object being dispatched; NULL once it is stopped */
    uint8_t *rbuf;       /* LOOP_HEADROOM + LOOP_READ_SIZE: where streams read */
    bool no_pwait2;      /* epoll_pwait2 said ENOSYS (before Linux 5.11) */
    int tfd;             /* the timerfd of far deadlines; -1: not made yet */
    bool tfd_watched;    /* tfd is in the epoll set */
    uint64_t armed_ns;   /* when tfd fires; 0: disarmed (fired, or never armed) */
};

/* A wait bounded by a timer at least this far away waits for the timerfd
 * instead of with a timeout: a timeout arms and cancels a kernel timer on
 * every wait that sleeps, which costs a server with a 100 ms tick several
 * percent of its CPU when each message finds it asleep. A nearer deadline
 * (an open-loop client's next message) keeps the timeout: the timerfd would
 * cost a call to arm it and one to read it for each. */
#define TIMERFD_MIN_NS 1000000ull

/* The calls of every message: read, write, writev, recvmsg, sendmsg and
 * the wait, made with syscall(2) instead of glibc's functions of the same
 * names. In a process with threads, those functions are cancellation
 * points: around each call they switch the thread to asynchronous
 * cancellation and back, two atomic operations, so that pthread_cancel can
 * stop a thread blocked in the call. No thread here is ever cancelled and a
 * stream's socket never blocks, so the loop pays for neither: about 60
 * instructions and 4 atomic operations a message at one read and one write
 * (callgrind). The kernel sees the same calls (strace -c counts them alike).
 * Sanitizer builds keep glibc's functions, which the sanitizers intercept to
 * check the buffers (ASan) and the ordering a socket gives (TSan). */
#ifdef TCPMSG_SANITIZED
#define SYSCALL_PLAIN 0
#else
#define SYSCALL_PLAIN 1
#endif

static inline ssize_t sys_read(int fd, void *buf, size_t n)
{
    return SYSCALL_PLAIN ? syscall(SYS_read, fd, buf, n) : read(fd, buf, n);
}

static inline ssize_t sys_write(int fd, const void *buf, size_t n)
{
    return SYSCALL_PLAIN ? syscall(SYS_write, fd, buf, n) : write(fd, buf, n);
}

static inline ssize_t sys_writev(int fd, const struct iovec *iov, int cnt)
{
    return SYSCALL_PLAIN ? syscall(SYS_writev, fd, iov, cnt) : writev(fd, iov, cnt);
}

static inline ssize_t sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    return SYSCALL_PLAIN ? syscall(SYS_recvmsg, fd, msg, flags) : recvmsg(fd, msg, flags);
}

static inline ssize_t sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return SYSCALL_PLAIN ? syscall(SYS_sendmsg, fd, msg, flags) : sendmsg(fd, msg, flags);
}

/* No signal mask: the kernel ignores the mask's size then. The kernel takes
 * a timespec with a 64-bit tv_sec, which struct timespec is where pointers
 * are 64 bits; elsewhere glibc's function converts it. */
static inline int sys_epoll_pwait2(int epfd, struct epoll_event *ev, int max,
                                   const struct timespec *timeout)
{
    return SYSCALL_PLAIN && __SIZEOF_POINTER__ == 8
               ? (int)syscall(SYS_epoll_pwait2, epfd, ev, max, timeout, NULL, 0)
               : epoll_pwait2(epfd, ev, max, timeout, NULL);
}

static struct epoll_be *be_of(struct loop *l)
{
    return l->be;
}

static uint64_t tag(const void *p, enum epoll_kind k)
{
    return (uint64_t)(uintptr_t)p | k;
}

static int ctl(struct loop *l, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    loop_count(l, LOOP_SYS_EPOLL_CTL);
    return epoll_ctl(be_of(l)->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

/* Forget p: its events still waiting in this wakeup's batch are dropped, as
 * libuv's uv__platform_invalidate_fd does, because the caller may free p
 * from the callback that stopped it. */
static void invalidate(struct loop *l, const void *p)
{
    struct epoll_be *be = be_of(l);
    for (int i = be->next; i < be->nevents; i++)
        if ((be->events[i].data.u64 & ~(uint64_t)KIND_MASK) == (uint64_t)(uintptr_t)p)
            be->events[i].data.u64 = 0;
    if (be->current == p)
        be->current = NULL;
}

static int epoll_init(struct loop *l, const struct loop_options *opt)
{
    (void)opt;
    struct epoll_be *be = calloc(1, sizeof *be);
    if (be == NULL)
        return -ENOMEM;
    be->rbuf = malloc(LOOP_HEADROOM + LOOP_READ_SIZE);
    be->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (be->rbuf == NULL || be->epfd < 0) {
        int rc = be->rbuf == NULL ? -ENOMEM : -errno;
        free(be->rbuf);
        if (be->epfd >= 0)
            close(be->epfd);
        free(be);
        return rc;
    }
    be->tfd = -1; /* made when first armed */
    l->be = be;
    return 0;
}

static void epoll_destroy(struct loop *l)
{
    struct epoll_be *be = be_of(l);
    close(be->epfd);
    if (be->tfd >= 0)
        close(be->tfd);
    free(be->rbuf);
    free(be);
}

/* --- watches -------------------------------------------------------------- */

static uint32_t to_epoll(unsigned events)
{
    return (events & LOOP_READABLE ? EPOLLIN : 0) | (events & LOOP_WRITABLE ? EPOLLOUT : 0);
}

static unsigned from_epoll(uint32_t ev)
{
    return (ev & EPOLLIN ? LOOP_READABLE : 0) | (ev & EPOLLOUT ? LOOP_WRITABLE : 0) |
           (ev & (EPOLLHUP | EPOLLRDHUP) ? LOOP_HUP : 0) | (ev & EPOLLERR ? LOOP_ERR : 0);
}

static int epoll_watch_start(struct loop *l, struct loop_watch *w)
{
    return ctl(l, EPOLL_CTL_ADD, w->fd, to_epoll(w->events), tag(w, KIND_WATCH));
}

/* One EPOLL_CTL_MOD: events already reported for w in this wakeup's batch
 * stay, as they would with the same registration. */
static int epoll_watch_modify(struct loop *l, struct loop_watch *w)
{
    return ctl(l, EPOLL_CTL_MOD, w->fd, to_epoll(w->events), tag(w, KIND_WATCH));
}

static void epoll_watch_stop(struct loop *l, struct loop_watch *w)
{
    ctl(l, EPOLL_CTL_DEL, w->fd, 0, 0);
    invalidate(l, w);
}

/* --- accepting ------------------------------------------------------------ */

static int epoll_accept_start(struct loop *l, struct loop_acceptor *a)
{
    return ctl(l, EPOLL_CTL_ADD, a->fd, EPOLLIN, tag(a, KIND_ACCEPTOR));
}

static void epoll_accept_stop(struct loop *l, struct loop_acceptor *a)
{
    ctl(l, EPOLL_CTL_DEL, a->fd, 0, 0);
    invalidate(l, a);
}

/* Take up to LOOP_ACCEPTS_PER_WAKEUP queued connections: the rest wait for
 * the next wakeup, so a flood of new clients cannot starve the old ones. */
static void on_acceptable(struct loop *l, struct loop_acceptor *a)
{
    struct epoll_be *be = be_of(l);
    for (int i = 0; i < LOOP_ACCEPTS_PER_WAKEUP && be->current == a; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        loop_count(l, LOOP_SYS_ACCEPT4);
        int fd = net_accept4(a->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            a->cb(a, fd, (struct sockaddr *)&ss, len, l->now);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EINTR || errno == ECONNABORTED)
            continue; /* a client that gave up while queued: take the next */
        a->cb(a, -errno, NULL, 0, l->now);
        return;
    }
}

/* --- streams -------------------------------------------------------------- */

#define EPOLL_BITS \
    (LOOP_STREAM_EPOLL_IN | LOOP_STREAM_EPOLL_OUT | LOOP_STREAM_EPOLL_HUP | LOOP_STREAM_EPOLL_ERRQ)

/* What the registration of s should be: EPOLLIN while reading, EPOLLOUT
 * while a write waits for room, EPOLLRDHUP while a hang-up is asked for,
 * and registered at all while stamping is on: EPOLLERR, which epoll always
 * reports, says the error queue holds timestamps. */
static inline unsigned stream_wants(const struct loop_stream *s)
{
    return (s->read_max > 0 ? LOOP_STREAM_EPOLL_IN : 0) |
           (s->flags & LOOP_STREAM_WANT_OUT ? LOOP_STREAM_EPOLL_OUT : 0) |
           (s->flags & LOOP_STREAM_WANT_HUP ? LOOP_STREAM_EPOLL_HUP : 0) |
           ((s->flags & (LOOP_STREAM_STAMP | LOOP_STREAM_ERRQ_FAILED)) == LOOP_STREAM_STAMP
                ? LOOP_STREAM_EPOLL_ERRQ
                : 0);
}

/* One epoll_ctl to make the registration want. A stream waiting for
 * nothing is taken out of epoll, which would otherwise keep reporting a
 * hang-up nobody listens to. */
static int stream_register(struct loop *l, struct loop_stream *s, unsigned want)
{
    uint32_t ev = (want & LOOP_STREAM_EPOLL_IN ? EPOLLIN : 0) |
                  (want & LOOP_STREAM_EPOLL_OUT ? EPOLLOUT : 0) |
                  (want & LOOP_STREAM_EPOLL_HUP ? EPOLLRDHUP : 0);
    int op = want == 0 ? EPOLL_CTL_DEL : (s->flags & LOOP_STREAM_IN_EPOLL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD);
    int rc = ctl(l, op, s->fd, ev, tag(s, KIND_STREAM));
    if (rc < 0)
        return rc;
    s->flags &= ~(EPOLL_BITS | LOOP_STREAM_IN_EPOLL);
    s->flags |= want | (want != 0 ? LOOP_STREAM_IN_EPOLL : 0);
    return 0;
}

/* Make the registration match what the stream waits for. Called around
 * every read and write, and nearly always in order already: that check is
 * inline, the system call is not. */
static inline int stream_sync(struct loop *l, struct loop_stream *s)
{
    unsigned want = stream_wants(s);
    if (want == (s->flags & EPOLL_BITS) && (want != 0) == ((s->flags & LOOP_STREAM_IN_EPOLL) != 0))
        return 0;
    return stream_register(l, s, want);
}

static int epoll_stream_start(struct loop *l, struct loop_stream *s)
{
    (void)l;
    (void)s;
    return 0; /* registered when it first waits for something */
}

static int epoll_stream_read(struct loop *l, struct loop_stream *s)
{
    return stream_sync(l, s);
}

static int epoll_stream_stamp(struct loop *l, struct loop_stream *s)
{
    return stream_sync(l, s);
}

/* One write: write or writev, or a sendmsg that carries the control message
 * asking for transmit timestamps. */
TCPMSG_HOT static ssize_t write_once(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                                     int iovcnt, bool stamped)
{
    if (!stamped) {
        loop_count(l, iovcnt == 1 ? LOOP_SYS_WRITE : LOOP_SYS_WRITEV);
        return iovcnt == 1 ? sys_write(s->fd, iov[0].iov_base, iov[0].iov_len)
                           : sys_writev(s->fd, iov, iovcnt);
    }
    union {
        char buf[TSTAMP_TX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt,
                          .msg_control = ctl.buf };
    msg.msg_controllen = tstamp_tx_cmsg(ctl.buf);
    loop_count(l, LOOP_SYS_SENDMSG);
    return sys_sendmsg(s->fd, &msg, 0);
}

/* A registration that failed after an earlier write took bytes is tried
 * again first (nothing to do when it is in order) and reported now: that
 * write returned what it took, so the caller does not send it twice. */
TCPMSG_HOT static ssize_t epoll_stream_write(struct loop *l, struct loop_stream *s,
                                             const struct iovec *iov, int iovcnt, bool stamped)
{
    int rc = stream_sync(l, s);
    if (rc < 0)
        return rc;
    ssize_t n;
    do {
        n = write_once(l, s, iov, iovcnt, stamped);
    } while (n < 0 && errno == EINTR);
    if (stamped && n > 0)
        s->flags |= LOOP_STREAM_ERRQ_DUE;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -errno;
    if (n < 0)
        n = 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    /* Wait for room only after a partial write. The registration was right
     * before the write (the sync above), and only this can change it: when
     * it stays, nothing is left to check. */
    bool want_out = (size_t)n < total;
    if (want_out == ((s->flags & LOOP_STREAM_WANT_OUT) != 0))
        return n;
    s->flags ^= LOOP_STREAM_WANT_OUT;
    rc = stream_sync(l, s);
    return rc < 0 && n == 0 ? rc : n;
}

static int epoll_stream_hangup(struct loop *l, struct loop_stream *s)
{
    return stream_sync(l, s);
}

static void epoll_stream_close(struct loop *l, struct loop_stream *s)
{
    s->flags &= ~(LOOP_STREAM_WANT_OUT | LOOP_STREAM_WANT_HUP);
    stream_sync(l, s);
    invalidate(l, s);
    loop_closed(l, s);
}

/* One read: read, or with stamping on a recvmsg that brings the receive
 * timestamp along, kept in s->rx_ns for on_read. */
TCPMSG_HOT static ssize_t read_once(struct loop *l, struct loop_stream *s, uint8_t *buf)
{
    if (!(s->flags & LOOP_STREAM_STAMP_RX)) {
        loop_count(l, LOOP_SYS_READ);
        return sys_read(s->fd, buf, s->read_max);
    }
    union {
        char buf[TSTAMP_RX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = s->read_max };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof ctl.buf };
    loop_count(l, LOOP_SYS_RECVMSG);
    ssize_t n = sys_recvmsg(s->fd, &msg, 0);
    s->rx_ns = n > 0 ? tstamp_rx_ns(&msg) : 0;
    return n;
}

/* One read per readiness event. End of input and errors stop reading. */
TCPMSG_HOT static void stream_readable(struct loop *l, struct loop_stream *s)
{
    uint8_t *buf = be_of(l)->rbuf + LOOP_HEADROOM;
    ssize_t n;
    do {
        n = read_once(l, s, buf);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        n = n < 0 ? -errno : 0;
        s->read_max = 0;
        stream_sync(l, s);
    }
    s->on_read(s, buf, n, l->now);
    s->rx_ns = 0; /* s stays valid until on_close, after the dispatch */
}

/* EPOLLERR on a stream with stamping on: timestamps in the error queue, or
 * the socket failed. Drain the queue; when it held something (and the peer
 * has not hung up), the EPOLLERR is explained and is not passed on as a
 * failure. When it held nothing, the error is the socket's: it stays in ev
 * for the read, write or hang-up watch to report, and the queue alone no
 * longer keeps the stream registered (the error would be reported at every
 * wait). Returns ev without what was explained. */
static uint32_t drain_on_err(struct loop *l, struct loop_stream *s, uint32_t ev)
{
    s->flags &= ~LOOP_STREAM_ERRQ_DUE;
    if (loop_drain_errqueue(l, s) > 0) {
        if (s->flags & LOOP_STREAM_ERRQ_FAILED) {
            /* Timestamps after all (reported with the stream's input): the
             * queue is watched again. */
            s->flags &= ~LOOP_STREAM_ERRQ_FAILED;
            stream_sync(l, s);
        }
        return ev & EPOLLHUP ? ev : ev & ~(uint32_t)EPOLLERR;
    }
    s->flags |= LOOP_STREAM_ERRQ_FAILED;
    stream_sync(l, s);
    return ev;
}

TCPMSG_HOT static void on_stream_event(struct loop *l, struct loop_stream *s, uint32_t ev)
{
    struct epoll_be *be = be_of(l);
    if ((ev & EPOLLERR) && (s->flags & LOOP_STREAM_STAMP)) {
        ev = drain_on_err(l, s, ev);
        if (be->current != s)
            return; /* closed by on_errqueue */
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && s->read_max > 0)
        stream_readable(l, s);
    if (be->current != s)
        return; /* closed by on_read */
    if ((ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (s->flags & LOOP_STREAM_WANT_OUT)) {
        s->flags &= ~LOOP_STREAM_WANT_OUT;
        stream_sync(l, s);
        /* An error shows in the caller's next write. */
        s->on_write(s, 0, l->now);
    }
    if (be->current != s)
        return; /* closed by on_write */
    if ((ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && (s->flags & LOOP_STREAM_WANT_HUP)) {
        s->flags &= ~LOOP_STREAM_WANT_HUP;
        stream_sync(l, s);
        s->on_hangup(s, from_epoll(ev) & (LOOP_HUP | LOOP_ERR), l->now);
    }
    /* A stamped write during this dispatch: on loopback its qdisc and
     * device timestamps are queued already. Read them now rather than be
     * woken for them by the next wait. */
    if (be->current == s && (s->flags & LOOP_STREAM_ERRQ_DUE)) {
        s->flags &= ~LOOP_STREAM_ERRQ_DUE;
        loop_drain_errqueue(l, s);
    }
}

/* --- waiting and dispatching ------------------------------------------------ */

/* Make the timerfd fire at deadline or before. 0, or -errno (the wait then
 * keeps its timeout). An earlier deadline armed stays: it fires, finds no
 * timer due, and the next wait arms the real one. The timerfd is made and
 * registered on the loop's thread, at the first wait that needs it; it is
 * edge-triggered, so a firing is reported once and never has to be read
 * (arming it again clears it). */
static int arm_timer(struct loop *l, uint64_t deadline)
{
    struct epoll_be *be = be_of(l);
    if (be->armed_ns != 0 && be->armed_ns <= deadline)
        return 0;
    if (be->tfd < 0) {
        be->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (be->tfd < 0)
            return -errno;
    }
    if (!be->tfd_watched) {
        int rc = ctl(l, EPOLL_CTL_ADD, be->tfd, EPOLLIN | EPOLLET, tag(be, KIND_TIMER));
        if (rc < 0)
            return rc;
        be->tfd_watched = true;
    }
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(deadline / 1000000000u),
                                            .tv_nsec = (long)(deadline % 1000000000u) } };
    loop_count(l, LOOP_SYS_TIMERFD_SETTIME);
    if (timerfd_settime(be->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return -errno;
    be->armed_ns = deadline;
    return 0;
}


TCPMSG_HOT static int epoll_poll(struct loop *l, uint64_t timeout_ns)
{
    struct epoll_be *be = be_of(l);
    if (l->timer_bound != 0 && timeout_ns >= TIMERFD_MIN_NS && timeout_ns != UINT64_MAX &&
        arm_timer(l, l->timer_bound) == 0)
        timeout_ns = UINT64_MAX; /* the timerfd ends the wait */
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
                           .tv_nsec = (long)(timeout_ns % 1000000000u) };
    /* epoll_pwait2 takes a timespec: a timer fires on time, not at the next
     * millisecond. Its ENOSYS is remembered: one failed call, not one a
     * wakeup. */
    int n = -1;
    if (!be->no_pwait2) {
        loop_count(l, LOOP_SYS_EPOLL_WAIT);
        n = sys_epoll_pwait2(be->epfd, be->events, LOOP_EVENTS_PER_WAKEUP,
                             timeout_ns == UINT64_MAX ? NULL : &ts);
        be->no_pwait2 = n < 0 && errno == ENOSYS;
    }
    if (be->no_pwait2) {
        loop_count(l, LOOP_SYS_EPOLL_WAIT);
        int ms = timeout_ns == UINT64_MAX ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(be->epfd, be->events, LOOP_EVENTS_PER_WAKEUP, ms);
    }
    l->now = net_now_ns();
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    be->nevents = n;
    int dispatched = 0;
    for (be->next = 0; be->next < be->nevents;) {
        struct epoll_event *e = &be->events[be->next++];
        if (e->data.u64 == 0)
            continue; /* stopped earlier in this wakeup */
        void *p = (void *)(uintptr_t)(e->data.u64 & ~(uint64_t)KIND_MASK);
        be->current = p;
        dispatched++;
        switch (e->data.u64 & KIND_MASK) {
        case KIND_WATCH: {
            struct loop_watch *w = p;
            w->cb(w, from_epoll(e->events), l->now);
            break;
        }
        case KIND_ACCEPTOR:
            on_acceptable(l, p);
            break;
        case KIND_STREAM:
            on_stream_event(l, p, e->events);
            break;
        case KIND_TIMER:
            be->armed_ns = 0; /* fired; the timers themselves run after the dispatch */
            dispatched--;
            break;
        }
    }
    be->nevents = be->next = 0;
    be->current = NULL;
    return dispatched;
}

const struct loop_ops loop_epoll_ops = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .poll = epoll_poll,
    .watch_start = epoll_watch_start,
    .watch_stop = epoll_watch_stop,
    .watch_modify = epoll_watch_modify,
    .accept_start = epoll_accept_start,
    .accept_stop = epoll_accept_stop,
    .stream_start = epoll_stream_start,
    .stream_read = epoll_stream_read,
    .stream_write = epoll_stream_write,
    .stream_stamp = epoll_stream_stamp,
    .stream_hangup = epoll_stream_hangup,
    .stream_close = epoll_stream_close,
};
