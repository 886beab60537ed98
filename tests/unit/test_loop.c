/* Unit tests for the event loop (src/loop.c and its backends): timers,
 * hook, watches, accepting and streams over 127.0.0.1, and the system call
 * counters checked exactly. Every case runs on epoll and on io_uring; the
 * io_uring cases are skipped where the kernel or the build has none.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/loop.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tstamp.h"

#define MS 1000000ull
#define ROUNDS 50                /* echo round trips counted exactly */
#define BIG (1u << 20)           /* the bounded-delivery transfer */
#define SMALL_MAX 1000           /* its largest delivery */
#define STALL (8u << 20)         /* more than loopback socket buffers hold */
#define MAX_ITER 20000           /* no test loop runs longer than this */

static const enum loop_backend backend_epoll = LOOP_EPOLL, backend_uring = LOOP_URING;

struct fixture {
    struct loop *l;
    enum loop_backend backend;
    int rc; /* of loop_new */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->backend = *(const enum loop_backend *)*state;
    struct loop_options opt = { .backend = f->backend };
    f->rc = loop_new(&f->l, &opt, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    loop_free(f->rc == 0 ? f->l : NULL);
    free(f);
    return 0;
}

/* The fixture's loop, or a skipped test where io_uring is not available. */
static struct loop *loop_of(void **state)
{
    struct fixture *f = *state;
    if (f->backend == LOOP_URING && (f->rc == -ENOSYS || f->rc == -EPERM)) {
        print_message("io_uring not available here (%s): skipped\n", strerror(-f->rc));
        skip();
    }
    assert_int_equal(f->rc, 0);
    assert_string_equal(loop_backend_name(f->l), f->backend == LOOP_EPOLL ? "epoll" : "uring");
    return f->l;
}

static bool is_uring(const struct loop *l)
{
    return strcmp(loop_backend_name(l), "uring") == 0;
}

/* --- timers --------------------------------------------------------------- */

struct fired {
    int order[16];
    int n;
};

struct tagged_timer {
    struct loop_timer t;
    int id;
    struct fired *log;
};

static void log_fire(struct loop_timer *t, uint64_t now)
{
    (void)now;
    struct tagged_timer *tt = (struct tagged_timer *)t;
    tt->log->order[tt->log->n++] = tt->id;
}

static void test_timers_fire_in_deadline_order(void **state)
{
    struct loop *l = loop_of(state);
    static const int offsets_ms[] = { 5, 1, 4, 2, 3, 2 }; /* a tie: 4th before 6th */
    struct fired log = { 0 };
    struct tagged_timer t[6];
    uint64_t now = net_now_ns();
    for (int i = 0; i < 6; i++) {
        t[i] = (struct tagged_timer){ .t.cb = log_fire, .id = i, .log = &log };
        assert_int_equal(loop_timer_start(l, &t[i].t, now + offsets_ms[i] * MS), 0);
        assert_true(loop_timer_active(&t[i].t));
    }
    for (int k = 0; k < MAX_ITER && log.n < 6; k++)
        assert_int_equal(loop_run_once(l, 100), 0);
    static const int want[] = { 1, 3, 5, 4, 2, 0 };
    assert_int_equal(log.n, 6);
    assert_memory_equal(log.order, want, sizeof want);
    for (int i = 0; i < 6; i++)
        assert_false(loop_timer_active(&t[i].t));
    assert_true(loop_now(l) >= now + 5 * MS);
}

/* A stops B (due after it), moves C later, and restarts itself once. */
struct juggler {
    struct loop *l;
    struct loop_timer a, b, c;
    struct fired log;
    int a_runs;
};

static void juggle_a(struct loop_timer *t, uint64_t now)
{
    struct juggler *j = t->data;
    j->log.order[j->log.n++] = 0;
    if (++j->a_runs == 1) {
        loop_timer_stop(j->l, &j->b);
        assert_int_equal(loop_timer_start(j->l, &j->c, now + 3 * MS), 0);
        assert_int_equal(loop_timer_start(j->l, t, now), 0); /* due now: the next wakeup */
    }
}

static void juggle_log(struct loop_timer *t, uint64_t now)
{
    (void)now;
    struct juggler *j = t->data;
    j->log.order[j->log.n++] = t == &j->b ? 1 : 2;
}

static void test_timers_stop_and_restart_inside_callbacks(void **state)
{
    struct loop *l = loop_of(state);
    struct juggler j = { .l = l };
    j.a = (struct loop_timer){ .cb = juggle_a, .data = &j };
    j.b = (struct loop_timer){ .cb = juggle_log, .data = &j };
    j.c = (struct loop_timer){ .cb = juggle_log, .data = &j };
    uint64_t now = net_now_ns();
    loop_timer_start(l, &j.a, now + 1 * MS);
    loop_timer_start(l, &j.b, now + 2 * MS);
    loop_timer_start(l, &j.c, now + 1 * MS + 1);
    for (int k = 0; k < MAX_ITER && j.log.n < 3; k++)
        loop_run_once(l, 100);
    /* a, a again (restarted "now", so not in the same run), then c moved
     * later; b never. */
    static const int want[] = { 0, 0, 2 };
    assert_int_equal(j.log.n, 3);
    assert_memory_equal(j.log.order, want, sizeof want);
    assert_false(loop_timer_active(&j.b));
    loop_run_once(l, 5);
    assert_int_equal(j.log.n, 3);
}

static void count_fire(struct loop_timer *t, uint64_t now)
{
    (void)now;
    ++*(int *)t->data;
}

static void test_timer_stopped_before_deadline_never_fires(void **state)
{
    struct loop *l = loop_of(state);
    int fired = 0;
    struct loop_timer t = { .cb = count_fire, .data = &fired };
    assert_int_equal(loop_timer_start(l, &t, net_now_ns() + 2 * MS), 0);
    loop_timer_stop(l, &t);
    loop_timer_stop(l, &t); /* twice: a no-op */
    assert_false(loop_timer_active(&t));
    uint64_t until = net_now_ns() + 10 * MS;
    while (net_now_ns() < until)
        assert_int_equal(loop_run_once(l, 5), 0);
    assert_int_equal(fired, 0);
}

static void stop_loop(struct loop_timer *t, uint64_t now)
{
    (void)now;
    loop_stop(t->data);
}

static void test_loop_stop_ends_run(void **state)
{
    struct loop *l = loop_of(state);
    struct loop_timer t = { .cb = stop_loop, .data = l };
    uint64_t start = net_now_ns();
    loop_timer_start(l, &t, start + 3 * MS);
    assert_int_equal(loop_run(l), 0);
    assert_true(net_now_ns() - start >= 3 * MS);
}

struct hook_log {
    int calls;
    uint64_t last_now;
    struct loop *l;
};

static void count_hook(void *ctx, uint64_t now)
{
    struct hook_log *h = ctx;
    h->calls++;
    assert_int_equal(now, loop_now(h->l));
    assert_true(now >= h->last_now);
    h->last_now = now;
}

static void test_hook_runs_once_per_wakeup_with_its_ctx(void **state)
{
    struct loop *l = loop_of(state);
    struct hook_log h = { .l = l };
    loop_set_hook(l, count_hook, &h);
    for (int i = 0; i < 7; i++)
        loop_run_once(l, 0);
    assert_int_equal(h.calls, 7);
    /* A wakeup with a timer in it: still one call. */
    int fired = 0;
    struct loop_timer t = { .cb = count_fire, .data = &fired };
    loop_timer_start(l, &t, net_now_ns());
    loop_run_once(l, 0);
    assert_int_equal(fired, 1);
    assert_int_equal(h.calls, 8);
    loop_set_hook(l, NULL, NULL);
    loop_run_once(l, 0);
    assert_int_equal(h.calls, 8);
}

/* --- watches --------------------------------------------------------------------- */

struct watch_log {
    struct loop_watch w;
    int calls;
    unsigned events;
    bool drain; /* read the eventfd in the callback */
};

static void on_watch(struct loop_watch *w, unsigned events, uint64_t now)
{
    (void)now;
    struct watch_log *wl = (struct watch_log *)w;
    wl->calls++;
    wl->events |= events;
    uint64_t v;
    if (wl->drain)
        assert_int_equal(read(w->fd, &v, sizeof v), sizeof v);
}

/* Level-triggered: a ready eventfd nobody reads is reported at every wakeup;
 * read, it goes quiet; stopped, nothing more. */
static void test_watch_eventfd_is_level_triggered(void **state)
{
    struct loop *l = loop_of(state);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(efd >= 0);
    struct watch_log wl = { .w.cb = on_watch };
    assert_int_equal(loop_watch_start(l, &wl.w, efd, LOOP_READABLE), 0);
    loop_run_once(l, 5);
    assert_int_equal(wl.calls, 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof one), sizeof one);
    for (int i = 1; i <= 3; i++) {
        loop_run_once(l, 1000);
        assert_int_equal(wl.calls, i);
    }
    assert_int_equal(wl.events, LOOP_READABLE);
    wl.drain = true;
    loop_run_once(l, 1000);
    assert_int_equal(wl.calls, 4);
    loop_run_once(l, 10);
    loop_run_once(l, 10);
    assert_int_equal(wl.calls, 4);
    loop_watch_stop(l, &wl.w);
    loop_watch_stop(l, &wl.w); /* twice: a no-op */
    wl.drain = false;
    assert_int_equal(write(efd, &one, sizeof one), sizeof one);
    loop_run_once(l, 10);
    loop_run_once(l, 10);
    assert_int_equal(wl.calls, 4);
    close(efd);
}

/* Regression: a watch whose start failed kept its descriptor, so stopping
 * it made an epoll_ctl (counted) that failed too. epoll refuses /dev/null;
 * io_uring polls it. */
static void test_watch_start_failure_leaves_it_stopped(void **state)
{
    struct loop *l = loop_of(state);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct watch_log wl = { .w.cb = on_watch };
    uint64_t ctl = loop_syscalls(l, LOOP_SYS_EPOLL_CTL);
    int rc = loop_watch_start(l, &wl.w, fd, LOOP_READABLE);
    assert_int_equal(rc, is_uring(l) ? 0 : -EPERM);
    loop_watch_stop(l, &wl.w);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_EPOLL_CTL) - ctl, is_uring(l) ? 0 : 1);
    assert_int_equal(loop_watch_modify(l, &wl.w, LOOP_WRITABLE), -EINVAL);
    loop_run_once(l, 0);
    close(fd);
}

/* Two ready watches; whichever runs first stops the other and frees it.
 * The other's event, already in this wakeup's batch, must not be
 * dispatched (the sanitizers would see the use after free). */
struct pair_watch {
    struct loop_watch w;
    struct loop *l;
    struct pair_watch **other; /* where the other one's pointer lives */
    int *calls;
};

static void on_pair(struct loop_watch *w, unsigned events, uint64_t now)
{
    (void)events, (void)now;
    struct pair_watch *pw = (struct pair_watch *)w;
    ++*pw->calls;
    loop_watch_stop(pw->l, w);
    if (*pw->other != NULL) {
        loop_watch_stop(pw->l, &(*pw->other)->w);
        free(*pw->other);
        *pw->other = NULL;
    }
}

static void test_watch_freed_by_another_callback(void **state)
{
    struct loop *l = loop_of(state);
    int efd[2], calls = 0;
    struct pair_watch *pw[2];
    uint64_t one = 1;
    for (int i = 0; i < 2; i++) {
        efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(efd[i] >= 0);
        assert_int_equal(write(efd[i], &one, sizeof one), sizeof one);
        pw[i] = calloc(1, sizeof *pw[i]);
        assert_non_null(pw[i]);
    }
    for (int i = 0; i < 2; i++) {
        *pw[i] = (struct pair_watch){ .w.cb = on_pair, .l = l, .other = &pw[1 - i], .calls = &calls };
        assert_int_equal(loop_watch_start(l, &pw[i]->w, efd[i], LOOP_READABLE), 0);
    }
    for (int k = 0; k < 5; k++)
        loop_run_once(l, 20);
    assert_int_equal(calls, 1);
    free(pw[0]);
    free(pw[1]); /* one of them is NULL */
    close(efd[0]);
    close(efd[1]);
}

/* Set up on one thread, run on another, with more watches than the io_uring
 * submission queue holds (256): the loop's thread must be the one to enter
 * the ring (a single-issuer ring refuses any other). */
#define MANY_WATCHES 300

struct many {
    struct loop *l;
    struct watch_log wl[MANY_WATCHES];
    int fds[MANY_WATCHES];
    int fired, rc;
};

static void on_many(struct loop_watch *w, unsigned events, uint64_t now)
{
    on_watch(w, events, now);
    struct many *m = w->data;
    m->fired++;
    loop_watch_stop(m->l, w);
}

static void *run_many(void *arg)
{
    struct many *m = arg;
    for (int k = 0; k < 100 && m->fired < MANY_WATCHES && m->rc == 0; k++)
        m->rc = loop_run_once(m->l, 100);
    return NULL;
}

static void test_set_up_on_one_thread_run_on_another(void **state)
{
    struct loop *l = loop_of(state);
    struct many *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->l = l;
    uint64_t one = 1;
    for (int i = 0; i < MANY_WATCHES; i++) {
        int efd = m->fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(efd >= 0);
        assert_int_equal(write(efd, &one, sizeof one), sizeof one);
        m->wl[i].w.cb = on_many;
        m->wl[i].w.data = m;
        m->wl[i].drain = true;
        assert_int_equal(loop_watch_start(l, &m->wl[i].w, efd, LOOP_READABLE), 0);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_many, m), 0);
    pthread_join(th, NULL);
    assert_int_equal(m->rc, 0);
    assert_int_equal(m->fired, MANY_WATCHES);
    for (int i = 0; i < MANY_WATCHES; i++) {
        assert_int_equal(m->wl[i].calls, 1);
        close(m->fds[i]);
    }
    free(m);
}

static void *run_once_on_thread(void *arg)
{
    struct many *m = arg;
    m->rc = loop_run_once(m->l, 0);
    return NULL;
}

/* The contract loop.h states for tcpmsg bench's tear-down: once the loop's
 * thread has run it, another thread may not (io_uring: -EEXIST), even after
 * that thread ended; loop_free from it is fine. */
static void test_run_on_another_thread_after_the_loops(void **state)
{
    struct loop *l = loop_of(state);
    struct many m = { .l = l, .rc = 1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_once_on_thread, &m), 0);
    pthread_join(th, NULL);
    assert_int_equal(m.rc, 0);
    assert_int_equal(loop_run_once(l, 0), is_uring(l) ? -EEXIST : 0);
}

/* A pipe: the write end is writable at once; modified to readable-only on
 * the read end, closing the write end reports a hang-up. Regression: epoll
 * modified a watch with EPOLL_CTL_DEL and ADD; it is one EPOLL_CTL_MOD. */
static void test_watch_pipe_writable_then_hangup(void **state)
{
    struct loop *l = loop_of(state);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    struct watch_log wr = { .w.cb = on_watch }, rd = { .w.cb = on_watch };
    assert_int_equal(loop_watch_start(l, &wr.w, p[1], LOOP_WRITABLE), 0);
    assert_int_equal(loop_watch_start(l, &rd.w, p[0], LOOP_WRITABLE), 0);
    uint64_t ctl = loop_syscalls(l, LOOP_SYS_EPOLL_CTL);
    assert_int_equal(loop_watch_modify(l, &rd.w, LOOP_READABLE), 0);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_EPOLL_CTL) - ctl, is_uring(l) ? 0 : 1);
    loop_run_once(l, 1000);
    assert_int_equal(wr.calls, 1);
    assert_int_equal(wr.events, LOOP_WRITABLE);
    assert_int_equal(rd.calls, 0);
    loop_watch_stop(l, &wr.w);
    close(p[1]);
    loop_run_once(l, 1000);
    assert_int_equal(rd.calls, 1);
    assert_true(rd.events & LOOP_HUP);
    loop_watch_stop(l, &rd.w);
    close(p[0]);
    assert_int_equal(loop_watch_start(l, &rd.w, -1, LOOP_READABLE), -EINVAL);
}

/* --- accepting and streams -------------------------------------------------------- */

/* The server side of a test connection: counts what the loop delivers. */
struct peer {
    struct loop_stream s;
    struct loop *l;
    bool echo;
    uint8_t *copy;            /* echo: what is being written back (io_uring) */
    size_t reads, bytes_in, max_delivery, eofs, errors, echoed, writes_done, hangups;
    unsigned hangup_events;
    bool closed, read_after_close;
    size_t expect;            /* the position of the next byte in the pattern */
    bool pattern_ok;
    size_t lower_to;          /* non-zero: the next delivery asks for at most this */
    size_t max_after_lower;   /* the largest delivery after that */
    bool lowered;
    bool stamped_echo;        /* echo with loop_stream_write_stamped */
    uint64_t rx_ns, read_rt_ns; /* the last delivery's receive stamp, and when it was read */
    size_t unstamped;         /* deliveries without a receive timestamp */
    size_t reports[TSTAMP_TX_COUNT]; /* transmit timestamps by kind */
    uint32_t last_key[TSTAMP_TX_COUNT];
};

struct server {
    struct loop_acceptor a;
    int listen_fd;
    uint16_t port;
    int accepted[8];
    int naccepted;
    bool had_peer_addr;
};

static void on_accepted(struct loop_acceptor *a, int fd, const struct sockaddr *peer, socklen_t len,
                        uint64_t now)
{
    (void)now;
    struct server *srv = (struct server *)a;
    assert_true(fd >= 0);
    assert_true(srv->naccepted < 8);
    srv->accepted[srv->naccepted++] = fd;
    srv->had_peer_addr = peer != NULL && len > 0;
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void server_listen(struct loop *l, struct server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(net_resolve("127.0.0.1", 0, true, &ss, &len, NULL, 0), 0);
    srv->listen_fd = net_listen((struct sockaddr *)&ss, len, 64, false);
    assert_true(srv->listen_fd >= 0);
    len = sizeof ss;
    assert_int_equal(getsockname(srv->listen_fd, (struct sockaddr *)&ss, &len), 0);
    srv->port = net_addr_port((struct sockaddr *)&ss);
    srv->a.cb = on_accepted;
    assert_int_equal(loop_accept_start(l, &srv->a, srv->listen_fd), 0);
}

static int client_connect(const struct server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(net_resolve("127.0.0.1", srv->port, false, &ss, &len, NULL, 0), 0);
    int fd = net_connect((struct sockaddr *)&ss, len, 1000);
    assert_true(fd >= 0);
    assert_int_equal(net_set_nonblock(fd, true), 0);
    return fd;
}

static void run_until_accepted(struct loop *l, struct server *srv, int n)
{
    for (int k = 0; k < MAX_ITER && srv->naccepted < n; k++)
        assert_int_equal(loop_run_once(l, 1000), 0);
    assert_int_equal(srv->naccepted, n);
}

static void peer_on_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now)
{
    (void)now;
    struct peer *p = (struct peer *)s;
    if (p->closed)
        p->read_after_close = true;
    if (n == 0) {
        p->eofs++;
        return;
    }
    if (n < 0) {
        p->errors++;
        return;
    }
    p->rx_ns = loop_stream_rx_ns(s);
    p->read_rt_ns = tstamp_now_ns();
    p->unstamped += p->rx_ns == 0;
    p->reads++;
    p->bytes_in += (size_t)n;
    if ((size_t)n > p->max_delivery)
        p->max_delivery = (size_t)n;
    if (p->lowered && (size_t)n > p->max_after_lower)
        p->max_after_lower = (size_t)n;
    if (p->lower_to > 0 && !p->lowered) {
        assert_int_equal(loop_stream_read(p->l, s, p->lower_to), 0);
        p->lowered = true;
    }
    uint8_t *b = data;
    for (ssize_t i = 0; i < n; i++, p->expect++)
        p->pattern_ok &= b[i] == (uint8_t)(p->expect % 251);
    /* The headroom is the caller's: write all of it (sanitizers watch). */
    memset(b - LOOP_HEADROOM, 0xA5, LOOP_HEADROOM);
    if (!p->echo)
        return;
    memcpy(p->copy, data, (size_t)n);
    struct iovec iov = { p->copy, (size_t)n };
    ssize_t w = p->stamped_echo ? loop_stream_write_stamped(p->l, s, &iov, 1)
                                : loop_stream_write(p->l, s, &iov, 1);
    if (w >= 0) {
        assert_int_equal(w, n); /* small echoes fit at once */
        p->echoed += (size_t)w;
    } else {
        assert_int_equal(w, -EINPROGRESS);
    }
}

static void peer_on_write(struct loop_stream *s, ssize_t n, uint64_t now)
{
    (void)now;
    struct peer *p = (struct peer *)s;
    assert_false(p->closed);
    p->writes_done++;
    if (n > 0)
        p->echoed += (size_t)n;
}

static void peer_on_hangup(struct loop_stream *s, unsigned events, uint64_t now)
{
    (void)now;
    struct peer *p = (struct peer *)s;
    assert_false(p->closed);
    p->hangups++;
    p->hangup_events |= events;
}

static void peer_on_errqueue(struct loop_stream *s, const struct tstamp_report *r, uint64_t now)
{
    (void)now;
    struct peer *p = (struct peer *)s;
    assert_false(p->closed);
    assert_true((unsigned)r->kind < TSTAMP_TX_COUNT);
    p->reports[r->kind]++;
    p->last_key[r->kind] = r->key;
}

static void peer_on_close(struct loop_stream *s)
{
    struct peer *p = (struct peer *)s;
    assert_false(p->closed);
    p->closed = true;
}

static void peer_start(struct loop *l, struct peer *p, int fd)
{
    memset(p, 0, sizeof *p);
    p->l = l;
    p->pattern_ok = true;
    p->s.on_read = peer_on_read;
    p->s.on_write = peer_on_write;
    p->s.on_hangup = peer_on_hangup;
    p->s.on_close = peer_on_close;
    p->s.on_errqueue = peer_on_errqueue;
    p->copy = malloc(LOOP_READ_SIZE);
    assert_non_null(p->copy);
    assert_int_equal(loop_stream_start(l, &p->s, fd), 0);
}

static void peer_close(struct loop *l, struct peer *p)
{
    loop_stream_close(l, &p->s);
    for (int k = 0; k < MAX_ITER && !p->closed; k++)
        assert_int_equal(loop_run_once(l, 100), 0);
    assert_true(p->closed);
    assert_false(p->read_after_close);
    free(p->copy);
}

static void server_stop(struct loop *l, struct server *srv)
{
    loop_accept_stop(l, &srv->a);
    loop_accept_stop(l, &srv->a); /* twice: a no-op */
    loop_run_once(l, 0);
    close(srv->listen_fd);
}

/* One accepted connection (srv->accepted[0]): returns the client's end (a
 * plain non-blocking socket). */
static int connect_accepted(struct loop *l, struct server *srv)
{
    server_listen(l, srv);
    int c = client_connect(srv);
    run_until_accepted(l, srv, 1);
    return c;
}

/* One accepted connection: client (plain non-blocking socket) and peer. */
static int connect_pair(struct loop *l, struct server *srv, struct peer *p)
{
    int c = connect_accepted(l, srv);
    peer_start(l, p, srv->accepted[0]);
    return c;
}

/* Undo connect_pair: the peer closed through the loop (on_close exactly
 * once), the listener stopped, the client's end c closed. */
static void close_pair(struct loop *l, struct server *srv, struct peer *p, int c)
{
    peer_close(l, p);
    server_stop(l, srv);
    close(c);
}

/* The loop's system call counters, one per enum loop_syscall. */
static void syscalls_read(struct loop *l, uint64_t out[LOOP_SYS_COUNT])
{
    for (int k = 0; k < LOOP_SYS_COUNT; k++)
        out[k] = loop_syscalls(l, (enum loop_syscall)k);
}

/* The calls made since syscalls_read(l, before), each kind in d. */
static void syscalls_since(struct loop *l, const uint64_t before[LOOP_SYS_COUNT],
                           uint64_t d[LOOP_SYS_COUNT])
{
    for (int k = 0; k < LOOP_SYS_COUNT; k++)
        d[k] = loop_syscalls(l, (enum loop_syscall)k) - before[k];
}

#define ECHO_SIZE 64

/* Round r of a patterned echo (the peer echoing): ECHO_SIZE bytes written
 * from the client's end c, left delay_ms in the receive queue so the loop
 * finds them waiting, echoed once the loop has run, and read back equal. */
static void echo_round(struct loop *l, struct peer *p, int c, int r, int delay_ms)
{
    uint8_t msg[ECHO_SIZE], back[ECHO_SIZE];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)((r * ECHO_SIZE + i) % 251);
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
    if (delay_ms > 0)
        usleep((useconds_t)delay_ms * 1000);
    size_t want = (size_t)(r + 1) * sizeof msg;
    for (int k = 0; k < 10 && p->echoed < want; k++)
        assert_int_equal(loop_run_once(l, 1000), 0);
    assert_int_equal(p->echoed, want);
    assert_int_equal(net_read_full(c, back, sizeof back, 1000), 0);
    assert_memory_equal(back, msg, sizeof msg);
}

/* Wait (bounded) for the client's shutdown to reach the peer's hang-up
 * watch: exactly once, as a hang-up. */
static void wait_hangup(struct loop *l, struct peer *p)
{
    for (int k = 0; k < 100 && p->hangups == 0; k++)
        loop_run_once(l, 100);
    assert_int_equal(p->hangups, 1);
    assert_int_equal(p->hangup_events, LOOP_HUP);
}

static void test_accept_gives_nonblocking_cloexec_sockets(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    server_listen(l, &srv);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = client_connect(&srv);
    run_until_accepted(l, &srv, 3);
    /* epoll has the address from accept4; multishot accept has none. */
    assert_int_equal(srv.had_peer_addr, !is_uring(l));
    server_stop(l, &srv);
    for (int i = 0; i < 3; i++) {
        close(c[i]);
        close(srv.accepted[i]);
    }
}

/* Regression: epoll accepted until EAGAIN on whatever listener it was given;
 * a blocking one held the loop in accept4 after the last queued client.
 * loop_accept_start makes the listener non-blocking. */
static void test_accept_on_blocking_listener(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    server_listen(l, &srv);
    loop_accept_stop(l, &srv.a);
    loop_run_once(l, 0); /* io_uring: the stopped accept ends before clients come */
    assert_int_equal(net_set_nonblock(srv.listen_fd, false), 0);
    assert_int_equal(loop_accept_start(l, &srv.a, srv.listen_fd), 0);
    assert_true(fcntl(srv.listen_fd, F_GETFL) & O_NONBLOCK);
    int c[2];
    for (int i = 0; i < 2; i++)
        c[i] = client_connect(&srv);
    run_until_accepted(l, &srv, 2);
    loop_run_once(l, 10);
    server_stop(l, &srv);
    for (int i = 0; i < 2; i++) {
        close(c[i]);
        close(srv.accepted[i]);
    }
}

/* Out of descriptors: the acceptor reports -EMFILE and the caller backs
 * off; started again with descriptors to spare, it takes the waiting client. */
struct backoff {
    struct loop_acceptor a;
    struct loop *l;
    int err, fd;
};

static void on_accept_backoff(struct loop_acceptor *a, int fd, const struct sockaddr *peer,
                              socklen_t len, uint64_t now)
{
    (void)peer, (void)len, (void)now;
    struct backoff *b = (struct backoff *)a;
    if (fd < 0) {
        b->err = fd;
        loop_accept_stop(b->l, a);
        return;
    }
    b->fd = fd;
}

static void test_accept_emfile_then_resume(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    server_listen(l, &srv);
    loop_accept_stop(l, &srv.a);
    struct backoff b = { .a.cb = on_accept_backoff, .l = l, .fd = -1 };
    int c = client_connect(&srv);
    /* The lowest free descriptor becomes the limit: the next one fails.
     * Lowered before the acceptor starts: io_uring takes the limit when the
     * accept is queued, not when a client arrives. */
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(loop_accept_start(l, &b.a, srv.listen_fd), 0);
    for (int k = 0; k < 100 && b.err == 0 && b.fd < 0; k++)
        loop_run_once(l, 100);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(b.err, -EMFILE);
    assert_int_equal(b.fd, -1);
    assert_int_equal(loop_accept_start(l, &b.a, srv.listen_fd), 0);
    for (int k = 0; k < 100 && b.fd < 0; k++)
        loop_run_once(l, 100);
    assert_true(b.fd >= 0);
    loop_accept_stop(l, &b.a);
    loop_run_once(l, 0);
    close(b.fd);
    close(c);
    close(srv.listen_fd);
}

/* Echo ROUNDS small messages, one at a time, and count the system calls:
 * epoll makes one epoll_wait, one read and one write per round trip;
 * io_uring makes two io_uring_enter (one brings the input, the next sends
 * the echo and brings its completion) and no read or write at all. */
static void test_echo_counts_syscalls_exactly(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    p.echo = true;
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    loop_run_once(l, 0); /* the recv reaches the kernel */
    uint64_t before[LOOP_SYS_COUNT];
    syscalls_read(l, before);
    for (int r = 0; r < ROUNDS; r++)
        echo_round(l, &p, c, r, 0);
    uint64_t d[LOOP_SYS_COUNT];
    syscalls_since(l, before, d);
    assert_true(p.pattern_ok);
    assert_int_equal(p.reads, ROUNDS);
    if (is_uring(l)) {
        assert_int_equal(d[LOOP_SYS_IO_URING_ENTER], 2 * ROUNDS);
        assert_int_equal(d[LOOP_SYS_WAKEUPS], 2 * ROUNDS);
        assert_int_equal(d[LOOP_SYS_READ] + d[LOOP_SYS_WRITE] + d[LOOP_SYS_EPOLL_WAIT], 0);
    } else {
        assert_int_equal(d[LOOP_SYS_EPOLL_WAIT], ROUNDS);
        assert_int_equal(d[LOOP_SYS_READ], ROUNDS);
        assert_int_equal(d[LOOP_SYS_WRITE], ROUNDS);
        assert_int_equal(d[LOOP_SYS_WAKEUPS], ROUNDS);
        assert_int_equal(d[LOOP_SYS_EPOLL_CTL] + d[LOOP_SYS_IO_URING_ENTER], 0);
    }
    assert_int_equal(d[LOOP_SYS_WRITEV] + d[LOOP_SYS_ACCEPT4], 0);
    assert_string_equal(loop_syscall_name(LOOP_SYS_IO_URING_ENTER), "io_uring_enter");
    close_pair(l, &srv, &p, c);
}

/* 1 MiB through a stream asked for at most SMALL_MAX bytes a delivery:
 * every delivery respects it, its headroom is writable, and the bytes come
 * in order. */
static void test_big_transfer_bounded_deliveries(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_read(l, &p.s, SMALL_MAX), 0);
    uint8_t *src = malloc(BIG);
    assert_non_null(src);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (uint8_t)(i % 251);
    size_t sent = 0;
    for (int k = 0; k < MAX_ITER && p.bytes_in < BIG; k++) {
        ssize_t w = write(c, src + sent, BIG - sent);
        if (w > 0)
            sent += (size_t)w;
        assert_int_equal(loop_run_once(l, sent < BIG ? 0 : 100), 0);
    }
    assert_int_equal(p.bytes_in, BIG);
    assert_true(p.pattern_ok);
    assert_true(p.max_delivery <= SMALL_MAX);
    assert_true(p.reads >= BIG / SMALL_MAX);
    /* End of input: one n == 0, then reading is over. */
    shutdown(c, SHUT_WR);
    for (int k = 0; k < 100 && p.eofs == 0; k++)
        loop_run_once(l, 100);
    assert_int_equal(p.eofs, 1);
    loop_run_once(l, 10);
    assert_int_equal(p.eofs, 1);
    assert_int_equal(p.errors, 0);
    close_pair(l, &srv, &p, c);
    free(src);
}

/* Write len bytes of the test pattern, from its position at, to c. */
static void write_pattern(struct loop *l, int c, size_t at, size_t len, struct peer *p)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((at + i) % 251);
    size_t sent = 0;
    for (int k = 0; k < MAX_ITER && p->bytes_in < at + len; k++) {
        ssize_t w = sent < len ? write(c, buf + sent, len - sent) : 0;
        if (w > 0)
            sent += (size_t)w;
        assert_int_equal(loop_run_once(l, sent < len ? 0 : 100), 0);
    }
    assert_int_equal(p->bytes_in, at + len);
    assert_true(p->pattern_ok);
    free(buf);
}

/* Regression: io_uring cancelled a recv in the kernel only to switch
 * between multishot and single recvs, so a recv of SMALL_MAX armed before
 * the limit went down to 10 delivered 500 bytes at once. Lowered from
 * on_read while a multishot recv had more completions posted, the next one
 * came whole too. */
static void test_lowered_read_max_bounds_next_delivery(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_read(l, &p.s, SMALL_MAX), 0);
    loop_run_once(l, 0); /* io_uring: the recv of SMALL_MAX reaches the kernel */
    assert_int_equal(loop_stream_read(l, &p.s, 10), 0);
    write_pattern(l, c, 0, 500, &p);
    assert_true(p.max_delivery <= 10);
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    loop_run_once(l, 0);
    p.lower_to = 10;
    write_pattern(l, c, 500, 200000, &p);
    assert_true(p.lowered);
    assert_true(p.max_after_lower <= 10);
    close_pair(l, &srv, &p, c);
}

/* The writer side of the stall test. */
struct writer {
    struct loop_stream s;
    const uint8_t *src;
    size_t taken, total;
    bool in_flight;  /* io_uring: a write waits for its completion */
    int callbacks;
    bool closed;
};

static void writer_more(struct loop *l, struct writer *w)
{
    struct iovec iov[2] = { { (void *)(w->src + w->taken), (w->total - w->taken) / 2 },
                            { (void *)(w->src + w->taken + (w->total - w->taken) / 2),
                              w->total - w->taken - (w->total - w->taken) / 2 } };
    ssize_t n = loop_stream_write(l, &w->s, iov, iov[0].iov_len > 0 ? 2 : 1);
    if (n == -EINPROGRESS) {
        w->in_flight = true;
        return;
    }
    assert_true(n >= 0);
    w->taken += (size_t)n;
}

static void writer_on_write(struct loop_stream *s, ssize_t n, uint64_t now)
{
    (void)now;
    struct writer *w = (struct writer *)s;
    w->callbacks++;
    assert_true(n >= 0);
    w->in_flight = false;
    w->taken += (size_t)n;
}

static void writer_on_close(struct loop_stream *s)
{
    ((struct writer *)s)->closed = true;
}

static void no_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now)
{
    (void)s, (void)data, (void)n, (void)now;
    fail_msg("no read was asked for");
}

/* Run until the writer makes no progress for a few wakeups. */
static void run_until_stalled(struct loop *l, struct writer *w)
{
    int quiet = 0;
    for (int k = 0; k < 1000 && quiet < 5 && w->taken < w->total; k++) {
        size_t before = w->taken;
        int cb = w->callbacks;
        if (!w->in_flight)
            writer_more(l, w);
        loop_run_once(l, 20);
        quiet = w->taken == before && w->callbacks == cb ? quiet + 1 : 0;
    }
}

/* A peer that does not read: epoll takes part of the write and says nothing
 * more until there is room; io_uring's write stays in the kernel. Once the
 * peer reads, every byte arrives. */
static void test_write_to_a_peer_not_reading(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    int c = connect_accepted(l, &srv);
    struct writer w = { .s.on_read = no_read, .s.on_write = writer_on_write,
                        .s.on_close = writer_on_close, .total = STALL };
    uint8_t *src = malloc(STALL), *got = malloc(STALL);
    assert_non_null(src);
    assert_non_null(got);
    for (size_t i = 0; i < STALL; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    w.src = src;
    /* The stream is the accepted socket's only one: the loop owns the fd. */
    assert_int_equal(loop_stream_start(l, &w.s, srv.accepted[0]), 0);
    writer_more(l, &w);
    if (is_uring(l))
        assert_true(w.in_flight);
    else
        assert_true(w.taken > 0 && w.taken < STALL);
    run_until_stalled(l, &w);
    assert_true(w.taken < STALL);
    if (is_uring(l))
        assert_true(w.in_flight); /* the rest waits in the kernel */
    else
        assert_int_equal(w.callbacks, 0); /* no room: no on_write */
    size_t have = 0;
    for (int k = 0; k < MAX_ITER && have < STALL; k++) {
        ssize_t r = read(c, got + have, STALL - have);
        if (r > 0)
            have += (size_t)r;
        if (!w.in_flight && w.taken < STALL && (is_uring(l) || w.callbacks > 0)) {
            writer_more(l, &w);
            w.callbacks = is_uring(l) ? w.callbacks : 0;
        }
        loop_run_once(l, r > 0 ? 0 : 10);
    }
    assert_int_equal(have, STALL);
    assert_memory_equal(got, src, STALL);
    loop_stream_close(l, &w.s);
    for (int k = 0; k < MAX_ITER && !w.closed; k++)
        loop_run_once(l, 100);
    assert_true(w.closed);
    server_stop(l, &srv);
    close(c);
    free(src);
    free(got);
}

/* Closing a stream whose write is stuck: on_close comes once the loop has
 * let go (io_uring: once the send is cancelled), and on_write never. */
static void test_close_with_write_stuck(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    int c = connect_accepted(l, &srv);
    struct writer w = { .s.on_read = no_read, .s.on_write = writer_on_write,
                        .s.on_close = writer_on_close, .total = STALL };
    uint8_t *src = calloc(1, STALL);
    assert_non_null(src);
    w.src = src;
    assert_int_equal(loop_stream_start(l, &w.s, srv.accepted[0]), 0);
    writer_more(l, &w);
    run_until_stalled(l, &w);
    int callbacks = w.callbacks;
    loop_stream_close(l, &w.s);
    loop_stream_close(l, &w.s); /* twice: a no-op */
    assert_int_equal(loop_stream_write(l, &w.s, &(struct iovec){ src, 1 }, 1), -EPIPE);
    for (int k = 0; k < MAX_ITER && !w.closed; k++)
        loop_run_once(l, 100);
    assert_true(w.closed);
    assert_int_equal(w.callbacks, callbacks);
    /* The loop closed the descriptor: the client sees the end. */
    uint8_t sink[65536];
    ssize_t r;
    int k = 0;
    while (k++ < MAX_ITER && ((r = read(c, sink, sizeof sink)) > 0 || (r < 0 && errno == EAGAIN)))
        if (r < 0)
            usleep(1000);
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    server_stop(l, &srv);
    close(c);
    free(src);
}

/* Closing a stream whose reads are armed, with input already waiting: no
 * callback after on_close, which comes exactly once. */
static void test_close_while_reading(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    loop_run_once(l, 0);
    uint8_t msg[100] = { 0 };
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
    loop_stream_close(l, &p.s);
    assert_int_equal(loop_stream_read(l, &p.s, 10), -EPIPE);
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
    peer_close(l, &p); /* asserts on_close once and nothing after it */
    for (int i = 0; i < 3; i++)
        loop_run_once(l, 5);
    assert_int_equal(p.reads, 0);
    server_stop(l, &srv);
    close(c);
}

/* A stream that does not read is still told, once, that the client shut
 * down its side; a watch turned off says nothing. */
static void test_hangup_while_not_reading(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    uint8_t msg[10] = { 0 };
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg); /* unread input */
    assert_int_equal(loop_stream_watch_hangup(l, &p.s, true), 0);
    assert_int_equal(loop_stream_watch_hangup(l, &p.s, false), 0);
    assert_int_equal(loop_stream_watch_hangup(l, &p.s, true), 0);
    for (int i = 0; i < 3; i++)
        loop_run_once(l, 10);
    assert_int_equal(p.hangups, 0);
    shutdown(c, SHUT_WR);
    wait_hangup(l, &p);
    for (int i = 0; i < 3; i++)
        loop_run_once(l, 10);
    assert_int_equal(p.hangups, 1);
    assert_int_equal(p.reads + p.eofs, 0);
    /* Turned off before the client goes: nothing. */
    struct server srv2 = { 0 };
    struct peer q;
    int d = connect_pair(l, &srv2, &q);
    assert_int_equal(loop_stream_watch_hangup(l, &q.s, true), 0);
    loop_run_once(l, 0);
    assert_int_equal(loop_stream_watch_hangup(l, &q.s, false), 0);
    close(d);
    for (int i = 0; i < 5; i++)
        loop_run_once(l, 10);
    assert_int_equal(q.hangups, 0);
    /* Closing with the watch on: on_close only. */
    assert_int_equal(loop_stream_watch_hangup(l, &q.s, true), 0);
    peer_close(l, &q);
    assert_int_equal(q.hangups, 0);
    peer_close(l, &p);
    server_stop(l, &srv);
    server_stop(l, &srv2);
    close(c);
}

/* --- stage timestamps ---------------------------------------------------------- */

#define STAMP_ROUNDS 20
#define STAMP_DELAY_MS 20 /* the input waits this long in the receive queue */

/* Run the loop until every echo's ACK timestamp has come, bounded. */
static void run_until_acked(struct loop *l, struct peer *p, size_t n)
{
    for (int k = 0; k < 300 && p->reports[TSTAMP_ACK] < n; k++)
        assert_int_equal(loop_run_once(l, 10), 0);
}

/* One stamped write of iov (a single buffer of at most 64 bytes), the n-th
 * of the peer: done now or in flight (-EINPROGRESS, then waited for,
 * bounded), and read whole by the client's end c. */
static void write_stamped_read_back(struct loop *l, struct peer *p, int c,
                                    const struct iovec *iov, size_t n)
{
    uint8_t back[64];
    assert_true(iov->iov_len <= sizeof back);
    ssize_t w = loop_stream_write_stamped(l, &p->s, iov, 1);
    assert_true(w == (ssize_t)iov->iov_len || w == -EINPROGRESS);
    for (int k = 0; k < 100 && w == -EINPROGRESS && p->writes_done < n; k++)
        assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(net_read_full(c, back, iov->iov_len, 1000), 0);
}

/* Stamped echoes: each delivery carries the kernel's receive timestamp,
 * which shows the time the input waited before the loop read it; each
 * stamped write brings exactly one SCHED, one SND and one ACK timestamp,
 * numbered by its last byte; and the calls are the stamped kinds: recvmsg
 * and sendmsg (epoll), never read or write. */
static void test_stamped_echo_timestamps(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_false(tstamp_enabled(srv.accepted[0]));
    assert_int_equal(loop_stream_stamp(l, &p.s, true), 0);
    assert_true(tstamp_enabled(srv.accepted[0]));
    assert_true(loop_stream_stamped(&p.s));
    p.echo = p.stamped_echo = true;
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    loop_run_once(l, 0);
    uint64_t before[LOOP_SYS_COUNT];
    syscalls_read(l, before);
    size_t stamped_reads = 0;
    for (int r = 0; r < STAMP_ROUNDS; r++) {
        echo_round(l, &p, c, r, STAMP_DELAY_MS);
        if (p.rx_ns != 0) { /* the round's one read, stamped */
            stamped_reads++;
            assert_true(p.read_rt_ns - p.rx_ns >= STAMP_DELAY_MS * MS);
        }
    }
    run_until_acked(l, &p, STAMP_ROUNDS);
    assert_true(p.pattern_ok);
    assert_int_equal(p.reads, STAMP_ROUNDS);
    assert_int_equal(p.unstamped, STAMP_ROUNDS - stamped_reads);
    assert_true(stamped_reads >= STAMP_ROUNDS - 1); /* the first may precede the kernel's */
    for (int k = 0; k < TSTAMP_TX_COUNT; k++) {
        assert_int_equal(p.reports[k], STAMP_ROUNDS);
        assert_int_equal(p.last_key[k], STAMP_ROUNDS * ECHO_SIZE - 1);
    }
    uint64_t d[LOOP_SYS_COUNT];
    syscalls_since(l, before, d);
    assert_int_equal(d[LOOP_SYS_READ] + d[LOOP_SYS_WRITE] + d[LOOP_SYS_WRITEV], 0);
    /* epoll reads the input with recvmsg; the error queue is read with
     * recvmmsg, which takes what is there in one call: one for each drain
     * at most (the qdisc and device stamps after the write, the ACK's). */
    assert_int_equal(d[LOOP_SYS_RECVMSG], is_uring(l) ? 0 : STAMP_ROUNDS);
    assert_true(d[LOOP_SYS_RECVMMSG] >= 1 && d[LOOP_SYS_RECVMMSG] <= 3 * STAMP_ROUNDS);
    assert_int_equal(d[LOOP_SYS_SENDMSG], is_uring(l) ? 0 : STAMP_ROUNDS);
    assert_int_equal(p.hangups + p.errors + p.eofs, 0);
    close_pair(l, &srv, &p, c);
}

/* Stamping off: no SO_TIMESTAMPING on the socket, no receive timestamp,
 * plain reads, and a stamped write refused. Turned on and off again, the
 * socket option follows. */
static void test_stamping_off_costs_nothing(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    p.echo = true;
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    loop_run_once(l, 0);
    uint8_t msg[16] = { 0 }, back[16];
    struct iovec iov = { msg, sizeof msg };
    assert_int_equal(loop_stream_write_stamped(l, &p.s, &iov, 1), -EINVAL);
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
    for (int k = 0; k < 10 && p.echoed < sizeof msg; k++)
        assert_int_equal(loop_run_once(l, 1000), 0);
    assert_int_equal(net_read_full(c, back, sizeof back, 1000), 0);
    assert_int_equal(p.reads, 1);
    assert_int_equal(p.unstamped, 1);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_RECVMSG) + loop_syscalls(l, LOOP_SYS_RECVMMSG) +
                         loop_syscalls(l, LOOP_SYS_SENDMSG),
                     0);
    assert_false(tstamp_enabled(srv.accepted[0]));
    assert_int_equal(loop_stream_stamp(l, &p.s, true), 0);
    assert_true(tstamp_enabled(srv.accepted[0]));
    assert_int_equal(loop_stream_stamp(l, &p.s, false), 0);
    assert_false(tstamp_enabled(srv.accepted[0]));
    assert_false(loop_stream_stamped(&p.s));
    loop_run_once(l, 0);
    close_pair(l, &srv, &p, c);
}

/* Regression: with the hang-up watched as well, a stamped write wakes both
 * polls of io_uring's stream, and the hang-up poll's drain could empty the
 * error queue before the error-queue poll's completion was handled: that one
 * found nothing and took the healthy socket for failed, never watching its
 * queue again. Each stamped write's timestamps must keep coming, with the
 * hang-up watch on and once it is off. */
static void test_errqueue_watched_after_hangup_drain(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_stamp(l, &p.s, true), 0);
    assert_int_equal(loop_stream_watch_hangup(l, &p.s, true), 0);
    uint8_t msg[32] = { 1 };
    struct iovec iov = { msg, sizeof msg };
    for (int r = 0; r < 6; r++) {
        if (r == 3) /* from now on only the error-queue poll reads the stamps */
            assert_int_equal(loop_stream_watch_hangup(l, &p.s, false), 0);
        write_stamped_read_back(l, &p, c, &iov, (size_t)r + 1);
        run_until_acked(l, &p, (size_t)r + 1);
        assert_int_equal(p.reports[TSTAMP_ACK], r + 1);
        assert_int_equal(p.reports[TSTAMP_SCHED], r + 1);
        assert_int_equal(p.reports[TSTAMP_SND], r + 1);
    }
    assert_int_equal(p.hangups, 0);
    close_pair(l, &srv, &p, c);
}

/* Echo one small message from the client's end c and wait for it back. */
static void echo_one(struct loop *l, struct peer *p, int c)
{
    uint8_t msg[16] = { 7 }, back[16];
    size_t want = p->echoed + sizeof msg;
    assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
    usleep(2000); /* in the receive queue before the loop looks */
    for (int k = 0; k < 10 && p->echoed < want; k++)
        assert_int_equal(loop_run_once(l, 1000), 0);
    assert_int_equal(p->echoed, want);
    assert_int_equal(net_read_full(c, back, sizeof back, 1000), 0);
}

/* Receive timestamps only when asked: with stamp_reads off, epoll reads
 * with read and the delivery has no timestamp; turned on, from the next
 * read (io_uring: the next recv armed, one delivery later). */
static void test_stamp_reads_on_demand(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_stamp(l, &p.s, true), 0);
    loop_stream_stamp_reads(&p.s, false);
    p.echo = true;
    assert_int_equal(loop_stream_read(l, &p.s, 4096), 0); /* single recvs */
    loop_run_once(l, 0);
    uint64_t reads = loop_syscalls(l, LOOP_SYS_READ), rmsgs = loop_syscalls(l, LOOP_SYS_RECVMSG);
    echo_one(l, &p, c);
    assert_int_equal(p.unstamped, 1);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_READ) - reads, is_uring(l) ? 0 : 1);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_RECVMSG) - rmsgs, 0);
    loop_stream_stamp_reads(&p.s, true);
    echo_one(l, &p, c);
    assert_int_equal(p.unstamped, is_uring(l) ? 2 : 1); /* io_uring: armed before */
    echo_one(l, &p, c);
    assert_int_equal(p.unstamped, is_uring(l) ? 2 : 1);
    assert_int_equal(p.reads, 3);
    assert_int_equal(loop_syscalls(l, LOOP_SYS_RECVMSG) - rmsgs, is_uring(l) ? 0 : 2);
    close_pair(l, &srv, &p, c);
}

/* Timestamps in the error queue raise POLLERR, which is not a failure: a
 * hang-up watch stays quiet through them, and still reports the client's
 * shutdown; a reset still reaches on_read as an error. */
static void test_stamps_are_not_failures(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_stamp(l, &p.s, true), 0);
    assert_int_equal(loop_stream_watch_hangup(l, &p.s, true), 0);
    uint8_t msg[32] = { 1 };
    struct iovec iov = { msg, sizeof msg };
    for (int r = 0; r < 3; r++) {
        write_stamped_read_back(l, &p, c, &iov, (size_t)r + 1);
    }
    run_until_acked(l, &p, 3);
    assert_int_equal(p.reports[TSTAMP_ACK], 3);
    assert_int_equal(p.hangups, 0);
    shutdown(c, SHUT_WR);
    wait_hangup(l, &p);
    peer_close(l, &p);
    close(c);

    /* A reset while reading, with stamps still coming: on_read hears it. */
    struct server srv2 = { 0 };
    struct peer q;
    int d = connect_pair(l, &srv2, &q);
    assert_int_equal(loop_stream_stamp(l, &q.s, true), 0);
    assert_int_equal(loop_stream_read(l, &q.s, SIZE_MAX), 0);
    ssize_t w = loop_stream_write_stamped(l, &q.s, &iov, 1);
    assert_true(w == (ssize_t)sizeof msg || w == -EINPROGRESS);
    for (int k = 0; k < 3; k++)
        loop_run_once(l, 10);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    assert_int_equal(setsockopt(d, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(d); /* unread data and linger 0: a reset */
    for (int k = 0; k < 100 && q.errors + q.eofs == 0; k++)
        loop_run_once(l, 10);
    assert_int_equal(q.errors + q.eofs, 1);
    peer_close(l, &q);
    server_stop(l, &srv);
    server_stop(l, &srv2);
}

/* Regression: loop_free left open the descriptors of the streams it still
 * held, though the loop owns them: one reading, one closed with on_close
 * still due. Both are closed now, with no callback. */
static void test_free_closes_the_streams_it_holds(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    server_listen(l, &srv);
    int c[2];
    for (int i = 0; i < 2; i++)
        c[i] = client_connect(&srv);
    run_until_accepted(l, &srv, 2);
    struct peer p[2];
    for (int i = 0; i < 2; i++)
        peer_start(l, &p[i], srv.accepted[i]);
    assert_int_equal(loop_stream_read(l, &p[0].s, SIZE_MAX), 0);
    loop_run_once(l, 0);
    loop_stream_close(l, &p[1].s);
    loop_accept_stop(l, &srv.a);
    loop_free(l);
    ((struct fixture *)*state)->l = NULL;
    for (int i = 0; i < 2; i++) {
        errno = 0;
        assert_int_equal(fcntl(srv.accepted[i], F_GETFD), -1);
        assert_int_equal(errno, EBADF);
        assert_false(p[i].closed);
        free(p[i].copy);
        uint8_t b;
        ssize_t r;
        for (int k = 0; k < 1000 && (r = read(c[i], &b, 1)) < 0 && errno == EAGAIN; k++)
            usleep(1000);
        assert_int_equal(r, 0);
        close(c[i]);
    }
    close(srv.listen_fd);
}

/* A ring of 4 entries (8 completions) under 40 streams: their recvs, the
 * completions of a burst on all, then 40 cancels at once go through the
 * backlog that enter queues as room frees. It replaced get_sqe entering
 * until it had an entry, which could spin where the kernel refused (EBUSY,
 * EAGAIN), and a cancel dropped when no entry came (its multishot recv
 * never ended: no on_close, the descriptor kept). This kernel does not
 * refuse here: the case guards the path, it does not reproduce the spin. */
#define TINY_PAIRS 40

static void test_many_streams_on_a_tiny_ring(void **state)
{
    struct fixture *f = *state;
    (void)loop_of(state);
    struct loop_options opt = { .backend = f->backend, .entries = 4 };
    struct loop *l;
    assert_int_equal(loop_new(&l, &opt, NULL), 0);
    struct peer *p = calloc(TINY_PAIRS, sizeof *p);
    int other[TINY_PAIRS];
    assert_non_null(p);
    for (int i = 0; i < TINY_PAIRS; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        other[i] = sv[1];
        peer_start(l, &p[i], sv[0]);
        assert_int_equal(loop_stream_read(l, &p[i].s, SIZE_MAX), 0);
    }
    loop_run_once(l, 0);
    uint8_t msg[100];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i % 251);
    for (int i = 0; i < TINY_PAIRS; i++)
        assert_int_equal(write(other[i], msg, sizeof msg), sizeof msg);
    size_t in = 0;
    for (int k = 0; k < 1000 && in < TINY_PAIRS * sizeof msg; k++) {
        assert_int_equal(loop_run_once(l, 10), 0);
        in = 0;
        for (int i = 0; i < TINY_PAIRS; i++)
            in += p[i].bytes_in;
    }
    assert_int_equal(in, TINY_PAIRS * sizeof msg);
    for (int i = 0; i < TINY_PAIRS; i++)
        loop_stream_close(l, &p[i].s);
    int closed = 0;
    for (int k = 0; k < 1000 && closed < TINY_PAIRS; k++) {
        assert_int_equal(loop_run_once(l, 10), 0);
        closed = 0;
        for (int i = 0; i < TINY_PAIRS; i++)
            closed += p[i].closed;
    }
    assert_int_equal(closed, TINY_PAIRS);
    for (int i = 0; i < TINY_PAIRS; i++) {
        assert_true(p[i].pattern_ok);
        assert_false(p[i].read_after_close);
        free(p[i].copy);
        uint8_t b;
        assert_int_equal(read(other[i], &b, 1), 0); /* the loop closed its end */
        close(other[i]);
    }
    free(p);
    loop_free(l);
}

/* Reading stopped and started again: no byte lost, none twice. */
static void test_read_stop_and_restart(void **state)
{
    struct loop *l = loop_of(state);
    struct server srv = { 0 };
    struct peer p;
    int c = connect_pair(l, &srv, &p);
    assert_int_equal(loop_stream_read(l, &p.s, SIZE_MAX), 0);
    uint8_t msg[300];
    size_t total = 0;
    for (int r = 0; r < 6; r++) {
        for (size_t i = 0; i < sizeof msg; i++)
            msg[i] = (uint8_t)((total + i) % 251);
        assert_int_equal(write(c, msg, sizeof msg), sizeof msg);
        total += sizeof msg;
        loop_stream_read(l, &p.s, r % 2 ? 0 : (r % 3 ? 50 : SIZE_MAX));
        loop_run_once(l, 5);
        loop_stream_read(l, &p.s, 100);
        loop_run_once(l, 5);
    }
    loop_stream_read(l, &p.s, SIZE_MAX);
    for (int k = 0; k < MAX_ITER && p.bytes_in < total; k++)
        loop_run_once(l, 100);
    assert_int_equal(p.bytes_in, total);
    assert_true(p.pattern_ok);
    close_pair(l, &srv, &p, c);
}

/* epoll_pwait2 refused with ENOSYS, as before Linux 5.11 (a seccomp filter
 * in a child process): WAKEUPS wakeups cost one failed epoll_pwait2 and
 * WAKEUPS epoll_wait. Returns the epoll_wait count, or -1. */
#define WAKEUPS 5

/* From now on, system call nr fails with err in this process (a seccomp
 * filter: for a child only, it cannot be removed). 0 or -1. */
static int refuse_syscall(long nr, int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -1;
    return 0;
}

/* Run fn in a child process and return its exit status (0..255). */
static int in_child(int (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn() & 0xff);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int count_waits_without_pwait2(void)
{
    if (refuse_syscall(SYS_epoll_pwait2, ENOSYS) < 0)
        return -1;
    struct loop_options opt = { .backend = LOOP_EPOLL };
    struct loop *l;
    if (loop_new(&l, &opt, NULL) < 0)
        return -1;
    for (int i = 0; i < WAKEUPS; i++)
        if (loop_run_once(l, 1) < 0)
            return -1;
    int n = (int)loop_syscalls(l, LOOP_SYS_EPOLL_WAIT);
    loop_free(l);
    return n;
}

/* Regression: without epoll_pwait2 every wakeup made a failing call to it
 * before epoll_wait; its ENOSYS is remembered now. */
static void test_epoll_without_pwait2(void **state)
{
    struct loop *l = loop_of(state);
    if (is_uring(l))
        return; /* epoll's fallback only */
    assert_int_equal(in_child(count_waits_without_pwait2), 1 + WAKEUPS);
}

/* A stream that is not reading writes more than the socket takes, and the
 * registration for room fails (epoll_ctl refused with ENOSPC, as when
 * max_user_watches is reached). 0 when the write returned the bytes it took
 * and the next one the error; else which step went wrong. */
static int write_with_registration_refused(void)
{
    int sv[2];
    struct loop_options opt = { .backend = LOOP_EPOLL };
    struct loop *l;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
        loop_new(&l, &opt, NULL) < 0)
        return 1;
    struct writer w = { .s.on_read = no_read, .s.on_write = writer_on_write };
    static uint8_t big[STALL];
    struct iovec iov = { big, sizeof big };
    if (loop_stream_start(l, &w.s, sv[0]) < 0 || refuse_syscall(SYS_epoll_ctl, ENOSPC) < 0)
        return 2;
    ssize_t n = loop_stream_write(l, &w.s, &iov, 1);
    if (n <= 0 || (size_t)n >= sizeof big)
        return 3; /* before the fix: -ENOSPC, with n bytes gone */
    if (loop_stream_write(l, &w.s, &iov, 1) != -ENOSPC)
        return 4;
    return 0;
}

/* Regression: epoll returned the registration's error after the write had
 * taken bytes, so a caller that retried sent them twice. */
static void test_epoll_write_with_registration_refused(void **state)
{
    struct loop *l = loop_of(state);
    if (is_uring(l))
        return; /* epoll's registration only */
    assert_int_equal(in_child(write_with_registration_refused), 0);
}

/* A loopback TCP connection made without a loop: *a the accepted end
 * (non-blocking), *c the client's. 0 or -1. */
static int tcp_pair_plain(int *a, int *c)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    *c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*c < 0 || connect(*c, (struct sockaddr *)&sin, sizeof sin) < 0)
        return -1;
    *a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    close(lfd);
    return *a < 0 ? -1 : 0;
}

static void count_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now)
{
    (void)data, (void)now;
    *(ssize_t *)s->data += n;
}

/* A reading stream whose stamping cannot be turned on (epoll_ctl's
 * EPOLL_CTL_MOD refused, as when the kernel is out of memory): it reads on,
 * with read, not recvmsg. 0, or which step went wrong. */
static int read_after_stamp_refused(void)
{
    int a, c;
    struct loop_options opt = { .backend = LOOP_EPOLL };
    struct loop *l;
    if (tcp_pair_plain(&a, &c) < 0 || loop_new(&l, &opt, NULL) < 0)
        return 1;
    ssize_t got = 0;
    struct loop_stream s = { .on_read = count_read, .on_write = NULL, .data = &got };
    if (loop_stream_start(l, &s, a) < 0 || loop_stream_read(l, &s, SIZE_MAX) < 0)
        return 2;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_ctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, EPOLL_CTL_MOD, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return 3;
    if (loop_stream_stamp(l, &s, true) != -ENOMEM || loop_stream_stamped(&s) || tstamp_enabled(a))
        return 4;
    uint8_t msg[8] = { 0 };
    if (write(c, msg, sizeof msg) != sizeof msg)
        return 5;
    for (int k = 0; k < 100 && got < (ssize_t)sizeof msg; k++)
        if (loop_run_once(l, 10) < 0)
            return 6;
    if (got != sizeof msg)
        return 7;
    if (loop_syscalls(l, LOOP_SYS_RECVMSG) != 0 || loop_syscalls(l, LOOP_SYS_READ) != 1)
        return 8; /* before the fix: reads stayed recvmsg */
    return 0;
}

/* Regression: a failed loop_stream_stamp(on) cleared the stamping but not
 * the receive timestamps of reads, which stayed recvmsg for good. */
static void test_stamp_refused_reads_plainly(void **state)
{
    struct loop *l = loop_of(state);
    if (is_uring(l))
        return; /* epoll's registration only */
    assert_int_equal(in_child(read_after_stamp_refused), 0);
}

/* io_uring refuses every submission with EBUSY (a seccomp filter on
 * io_uring_enter with entries to submit; waiting alone is let through). A
 * ring of 4 entries gets 10 watches: the queue fills. 0 when each wakeup
 * returns; a loop that entered until it had an entry never did (the alarm
 * ends it). */
static int watches_with_submission_refused(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_enter, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EBUSY),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    alarm(5);
    struct loop_options opt = { .backend = LOOP_URING, .entries = 4 };
    struct loop *l;
    if (loop_new(&l, &opt, NULL) < 0)
        return 1;
    if (loop_run_once(l, 0) < 0) /* the ring is enabled on this thread */
        return 2;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return 3;
    static struct watch_log wl[10];
    uint64_t one = 1;
    for (int i = 0; i < 10; i++) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0 || write(efd, &one, sizeof one) != sizeof one)
            return 4;
        wl[i].w.cb = on_watch;
        if (loop_watch_start(l, &wl[i].w, efd, LOOP_READABLE) < 0)
            return 5;
    }
    for (int k = 0; k < 3; k++)
        if (loop_run_once(l, 10) < 0)
            return 6;
    for (int i = 0; i < 10; i++)
        loop_watch_stop(l, &wl[i].w);
    loop_run_once(l, 0);
    return 0;
}

/* Regression: with the submission queue full, io_uring's get_sqe entered
 * until it had an entry, taking EBUSY and EAGAIN for success: a kernel that
 * kept refusing kept the loop there, dispatching nothing. */
static void test_uring_submission_refused(void **state)
{
    struct loop *l = loop_of(state);
    if (!is_uring(l))
        return; /* io_uring's submission queue only */
    assert_int_equal(in_child(watches_with_submission_refused), 0);
}

static void test_auto_and_bad_options(void **state)
{
    (void)state;
    struct loop *l;
    const char *why = "unset";
    struct loop_options opt = { .backend = LOOP_AUTO };
    assert_int_equal(loop_new(&l, &opt, &why), 0);
    /* AUTO says why exactly when it did not get io_uring. */
    assert_int_equal(why == NULL, strcmp(loop_backend_name(l), "uring") == 0);
    loop_free(l);
    opt.backend = (enum loop_backend)42;
    assert_int_equal(loop_new(&l, &opt, NULL), -EINVAL);
    loop_free(NULL);
}

#define BOTH(fn)                                                                    \
    { #fn "_epoll", fn, setup, teardown, (void *)&backend_epoll },                  \
    { #fn "_uring", fn, setup, teardown, (void *)&backend_uring }

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        BOTH(test_timers_fire_in_deadline_order),
        BOTH(test_timers_stop_and_restart_inside_callbacks),
        BOTH(test_timer_stopped_before_deadline_never_fires),
        BOTH(test_loop_stop_ends_run),
        BOTH(test_hook_runs_once_per_wakeup_with_its_ctx),
        BOTH(test_watch_eventfd_is_level_triggered),
        BOTH(test_watch_pipe_writable_then_hangup),
        BOTH(test_watch_start_failure_leaves_it_stopped),
        BOTH(test_watch_freed_by_another_callback),
        BOTH(test_set_up_on_one_thread_run_on_another),
        BOTH(test_run_on_another_thread_after_the_loops),
        BOTH(test_accept_gives_nonblocking_cloexec_sockets),
        BOTH(test_accept_on_blocking_listener),
        BOTH(test_accept_emfile_then_resume),
        BOTH(test_echo_counts_syscalls_exactly),
        BOTH(test_big_transfer_bounded_deliveries),
        BOTH(test_lowered_read_max_bounds_next_delivery),
        BOTH(test_write_to_a_peer_not_reading),
        BOTH(test_close_with_write_stuck),
        BOTH(test_close_while_reading),
        BOTH(test_read_stop_and_restart),
        BOTH(test_hangup_while_not_reading),
        BOTH(test_stamped_echo_timestamps),
        BOTH(test_stamping_off_costs_nothing),
        BOTH(test_stamps_are_not_failures),
        BOTH(test_stamp_refused_reads_plainly),
        BOTH(test_errqueue_watched_after_hangup_drain),
        BOTH(test_stamp_reads_on_demand),
        BOTH(test_free_closes_the_streams_it_holds),
        BOTH(test_many_streams_on_a_tiny_ring),
        BOTH(test_epoll_without_pwait2),
        BOTH(test_epoll_write_with_registration_refused),
        BOTH(test_uring_submission_refused),
        cmocka_unit_test(test_auto_and_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
