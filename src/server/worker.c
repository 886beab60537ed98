/* worker: an event loop (tcpmsg/loop.h, epoll or io_uring) on its own
 * thread: accept, serve connections as streams of the loop, run timers a few
 * times a second, drain on request. A closed connection is freed by conn.c
 * when the loop lets go of its stream, after the wakeup that closed it.
 */
#include "server/worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/admission.h"
#include "server/conn.h"
#include "server/connlist.h"
#include "server/membudget.h"
#include "tcpmsg/hot.h"
#include "tcpmsg/log.h"

#define TICK_NS (100 * 1000000ull)     /* timer resolution */
#define ACCEPT_BACKOFF_NS (100 * 1000000ull)
#define POOL_CHUNKS 64                 /* free output chunks kept: 1 MiB */
#define EVICTIONS_PER_TICK 256         /* bounds the work of one timer tick */
/* TCP_INFO of every connection once a second, a tenth of them at each
 * 100 ms tick: one getsockopt each, about a microsecond, so 10,000
 * connections cost 1% of a core. The first second is left out: a
 * connection shorter than that is read once, at its close. */
#define TCP_SAMPLE_SLICES 10
#define TCP_SAMPLE_DELAY_NS 1000000000ull

/* conn_ctx calls: a new connection joins the list of open ones. */
static void adopt_conn(void *owner, struct conn *c)
{
    struct worker *w = owner;
    pthread_mutex_lock(&w->list_lock);
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pthread_mutex_unlock(&w->list_lock);
    w->nlive++;
}

/* A closed c leaves the open list; the loop still holds its stream until
 * released. */
static void forget_conn(void *owner, struct conn *c)
{
    struct worker *w = owner;
    pthread_mutex_lock(&w->list_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->list_lock);
    c->prev = c->next = NULL;
}

static void released_conn(void *owner)
{
    struct worker *w = owner;
    w->nlive--;
}

/* A connection closed: listed as recently closed, its admission given back. */
static void conn_closed(void *owner, const struct conn *c, enum close_reason reason, uint64_t now)
{
    struct worker *w = owner;
    if (w->shared->closed != NULL)
        closed_ring_push(w->shared->closed, c, w->index, reason, now);
    if (w->shared->admission != NULL)
        admission_release(w->shared->admission, (const struct sockaddr *)&c->peer);
}

static void on_accept(struct loop_acceptor *a, int fd, const struct sockaddr *peer, socklen_t len,
                      uint64_t now);
static void on_wake(struct loop_watch *wt, unsigned events, uint64_t now);
static void on_tick(struct loop_timer *t, uint64_t now);
static void on_backoff_over(struct loop_timer *t, uint64_t now);
static void on_wakeup(void *ctx, uint64_t now);
static bool serve_here(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       uint64_t id, uint64_t now);

int worker_init(struct worker *w, struct worker_shared *sh, unsigned index, int listen_fd)
{
    memset(w, 0, sizeof *w);
    w->shared = sh;
    w->index = index;
    w->listen_fd = listen_fd;
    w->wake_fd = -1;
    w->serve = serve_here;
    w->msgs_per_wakeup = true;
    server_stats_init(&w->stats);
    pthread_mutex_init(&w->list_lock, NULL);
    chunk_pool_init(&w->pool, POOL_CHUNKS);
    int rc = loop_new(&w->loop, &sh->loop_opt, &w->loop_why);
    if (rc < 0)
        return rc;
    loop_set_hook(w->loop, on_wakeup, w);
    w->ctx = (struct conn_ctx){
        .cfg = sh->cfg,
        .stats = &w->stats,
        .budget = sh->budget,
        .budget_slot = index,
        .pool = &w->pool,
        .loop = w->loop,
        .owner = w,
        .pass = &w->pass,
        .adopt = adopt_conn,
        .forget = forget_conn,
        .released = released_conn,
        .closed = conn_closed,
    };
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return -errno;
    w->wake = (struct loop_watch){ .fd = -1, .cb = on_wake, .data = w };
    w->tick.cb = on_tick;
    w->tick.data = w;
    w->backoff.cb = on_backoff_over;
    w->backoff.data = w;
    w->acceptor.cb = on_accept;
    w->acceptor.data = w;
    w->acceptor.fd = -1;
    return 0;
}

/* Register the worker's descriptors with its loop, from the loop's own
 * thread: every system call of the loop is then the worker thread's (what
 * strace of the thread shows is what the loop counted). */
static int worker_arm(struct worker *w)
{
    int rc = loop_watch_start(w->loop, &w->wake, w->wake_fd, LOOP_READABLE);
    if (rc < 0 || w->listen_fd < 0)
        return rc; /* a fork-mode child: its one client is all it serves */
    rc = loop_accept_start(w->loop, &w->acceptor, w->listen_fd);
    if (rc == 0)
        w->listening = true;
    return rc;
}

/* Run the loop without waiting until every closed connection's stream is
 * let go of (io_uring: its cancelled requests have completed). */
static void settle(struct worker *w)
{
    for (int i = 0; i < 1000 && w->nlive > 0; i++)
        loop_run_once(w->loop, 10);
}

void worker_destroy(struct worker *w)
{
    uint64_t now = net_now_ns();
    while (w->conns != NULL)
        conn_close(w->conns, CLOSE_SHUTDOWN, now);
    if (w->loop != NULL) {
        settle(w);
        loop_accept_stop(w->loop, &w->acceptor);
        loop_watch_stop(w->loop, &w->wake);
        loop_timer_stop(w->loop, &w->tick);
        loop_timer_stop(w->loop, &w->backoff);
        loop_free(w->loop);
        w->loop = NULL;
    }
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    w->listen_fd = w->wake_fd = -1;
    pthread_mutex_destroy(&w->list_lock);
    chunk_pool_destroy(&w->pool);
}

int worker_list_conns(struct worker *w, struct conn_info **v, size_t *n, size_t *cap)
{
    int rc = 0;
    pthread_mutex_lock(&w->list_lock);
    for (struct conn *c = w->conns; c != NULL; c = c->next) {
        if (*n == *cap) {
            size_t ncap = *cap < 64 ? 64 : 2 * *cap;
            struct conn_info *nv = realloc(*v, ncap * sizeof **v);
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            *v = nv;
            *cap = ncap;
        }
        conn_info_fill(&(*v)[(*n)++], c, w->index);
    }
    pthread_mutex_unlock(&w->list_lock);
    return rc;
}

/* Stop accepting for a moment (out of descriptors): the listener stays
 * readable, so accepting again at once would spin. */
static void pause_accepting(struct worker *w, uint64_t now)
{
    if (!w->listening)
        return;
    loop_accept_stop(w->loop, &w->acceptor);
    w->listening = false;
    loop_timer_start(w->loop, &w->backoff, now + ACCEPT_BACKOFF_NS);
}

static void on_backoff_over(struct loop_timer *t, uint64_t now)
{
    (void)now;
    struct worker *w = t->data;
    if (w->listen_fd >= 0 && !w->listening && !w->draining &&
        loop_accept_start(w->loop, &w->acceptor, w->listen_fd) == 0)
        w->listening = true;
}

void worker_reject(struct worker *w, int fd, const char *peer, enum reject_reason r)
{
    int code = r == REJECT_PER_IP ? FRAME_ERR_PER_IP : FRAME_ERR_BUSY;
    uint8_t frame[96];
    size_t n = frame_error_encode(frame, sizeof frame, code, frame_error_text(code));
    ssize_t sent = net_write(fd, frame, n); /* a fresh socket's buffer takes it, or we give up */
    if (sent > 0)
        counter_add(&w->stats.bytes_out[STATS_FRAMED], (uint64_t)sent);
    /* Closing with unread input would send a reset that can destroy the
     * reply: end our side, take what already arrived, then close. */
    shutdown(fd, SHUT_WR);
    uint8_t sink[512];
    ssize_t got;
    while ((got = recv(fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
        counter_add(&w->stats.bytes_in[STATS_FRAMED], (uint64_t)got);
    close(fd);
    counter_add(&w->stats.rejected[r], 1);
    LOG_RATELIMITED(LOG_WARN, "connection rejected", LF_S("peer", peer), LF_S("reason", reject_reason_tag(r)));
}

/* The loop could not accept (errno e): count it, and pause on EMFILE. */
static void accept_failed(struct worker *w, int e, uint64_t now)
{
    switch (e) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED: /* the client gave up while queued: nothing to do */
        return;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* Out of descriptors or memory. The listener stays readable, so
         * accepting again now would spin; stop the acceptor for a moment
         * instead (a loop timer starts it again). Queued clients wait in the
         * backlog until descriptors free up. */
        counter_add(&w->stats.errors[ERR_ACCEPT_EMFILE], 1);
        LOG_RATELIMITED(LOG_WARN, "accept failed, pausing accepts", LF_U("worker", w->index),
            LF_S("error", strerror(e)), LF_U("open_conns", w->nconns),
            LF_D("retry_in_s", ACCEPT_BACKOFF_NS / 1e9));
        pause_accepting(w, now);
        return;
    default:
        counter_add(&w->stats.errors[ERR_ACCEPT_OTHER], 1);
        LOG_RATELIMITED(LOG_WARN, "accept failed", LF_U("worker", w->index), LF_S("error", strerror(e)));
        return;
    }
}

/* epoll mode: an admitted client becomes a connection of this worker. */
static bool serve_here(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       uint64_t id, uint64_t now)
{
    struct conn *c = conn_open(&w->ctx, fd, peer, len, id, now);
    if (c == NULL) {
        /* Accepted and closed at once: both counted, so they still add up. */
        counter_add(&w->stats.accepted, 1);
        counter_add(&w->stats.closed[CLOSE_NO_MEMORY], 1);
        LOG_RATELIMITED(LOG_ERROR, "no memory for a new connection", LF_U("conn", id));
        return false;
    }
    LOG(LOG_INFO, "connection opened", LF_U("conn", id), LF_S("peer", c->peer_str),
        LF_U("worker", w->index));
    return true;
}

/* The loop accepted a client (fd), or accept failed (-errno). */
static void on_accept(struct loop_acceptor *a, int fd, const struct sockaddr *peer, socklen_t len,
                      uint64_t now)
{
    struct worker *w = a->data;
    if (fd < 0) {
        accept_failed(w, -fd, now);
        return;
    }
    struct sockaddr_storage ss;
    if (peer == NULL) {
        /* io_uring's multishot accept does not return the address. */
        len = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
            close(fd); /* already gone */
            return;
        }
        peer = (const struct sockaddr *)&ss;
    }
    char peer_str[NET_ADDRSTRLEN];
    net_format_addr(peer, peer_str, sizeof peer_str);
    enum reject_reason why;
    if (admission_admit(w->shared->admission, peer, &why) < 0) {
        worker_reject(w, fd, peer_str, why);
        return;
    }
    net_set_nodelay(fd);
    uint64_t id = admission_next_id(w->shared->admission);
    if (w->serve(w, fd, peer, len, id, now))
        counter_add(&w->stats.accepted, 1);
    else
        admission_release(w->shared->admission, peer);
}

void worker_stop_listening(struct worker *w)
{
    loop_accept_stop(w->loop, &w->acceptor);
    loop_timer_stop(w->loop, &w->backoff);
    w->listening = false;
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    w->listen_fd = -1;
}

/* The main thread asked for the drain (the eventfd). */
static void on_wake(struct loop_watch *wt, unsigned events, uint64_t now)
{
    (void)events;
    struct worker *w = wt->data;
    /* Asked once: the watch ends here (the eventfd is not read back). */
    loop_watch_stop(w->loop, &w->wake);
    if (w->draining)
        return;
    w->draining = true;
    worker_stop_listening(w);
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_begin_drain(c, now);
    }
    if (w->on_drain != NULL)
        w->on_drain(w->owner, w, now);
}

/* The budget spent past the grace period: close this worker's largest
 * holders, largest first, while it stays spent. Only connections above an
 * even share of the budget are candidates: the rest are not the cause. Each
 * worker does this for its own connections. */
static void evict_largest(struct worker *w, uint64_t now)
{
    struct membudget *b = w->shared->budget;
    for (int k = 0; k < EVICTIONS_PER_TICK && membudget_exhausted(b); k++) {
        uint64_t fair = membudget_fair_share(b);
        struct conn *big = NULL;
        for (struct conn *c = w->conns; c != NULL; c = c->next)
            if (c->mem > fair && (big == NULL || c->mem > big->mem))
                big = c;
        if (big == NULL)
            return;
        LOG_RATELIMITED(LOG_WARN, "over the buffer memory budget: closing the largest holder",
            LF_U("conn", big->id), LF_S("peer", big->peer_str), LF_U("holds_bytes", big->mem),
            LF_U("total_bytes", membudget_total(b)), LF_U("limit_bytes", membudget_limit(b)));
        conn_close(big, CLOSE_MEMORY, now);
    }
}

/* The drain's time is up. A connection whose replies are all written
 * (lingering for the client's EOF) loses nothing; one with replies unwritten
 * or messages unanswered loses them, and says so: its own close reason, which
 * server_wait turns into a warning and a non-zero exit status. */
static void close_at_drain_deadline(struct conn *c, uint64_t now)
{
    if (c->state == CONN_LINGER || (c->unsent_msgs == 0 && c->in_len == 0)) {
        conn_close(c, CLOSE_SHUTDOWN, now);
        return;
    }
    uint64_t pending = counter_get(&c->pub.pending);
    LOG_RATELIMITED(LOG_WARN, "drain timed out: closing a connection with replies unsent",
        LF_U("conn", c->id), LF_S("peer", c->peer_str), LF_U("unsent_replies", c->unsent_msgs),
        LF_U("pending_bytes", pending), LF_U("unanswered_bytes", c->in_len));
    counter_add(&c->ctx->stats->drain_lost_bytes, pending);
    conn_close(c, CLOSE_DRAIN_TIMEOUT, now);
}

static void on_tick(struct loop_timer *t, uint64_t now)
{
    struct worker *w = t->data;
    /* The replies of this wakeup's reads are done: their service time ends
     * before the tick's own work (timers of every connection, TCP_INFO),
     * which is none of theirs. */
    conn_pass_end(&w->ctx, now);
    loop_timer_start(w->loop, &w->tick, now + TICK_NS);
    if (membudget_must_evict(w->shared->budget, now))
        evict_largest(w, now);
    bool past_deadline = w->draining && now >= atomic_load(&w->shared->drain_deadline_ns);
    /* A tenth of the connections each tick (by id), so each is read once a
     * second and no tick reads them all. */
    unsigned slice = (unsigned)(w->ticks++ % TCP_SAMPLE_SLICES);
    bool sample_tcp = now >= w->tcp_sample_ns;
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (past_deadline) {
            close_at_drain_deadline(c, now);
            continue;
        }
        conn_check_timers(c, now); /* resumes those paused for memory, too */
        if (sample_tcp && c->id % TCP_SAMPLE_SLICES == slice)
            conn_sample_tcp(c); /* a no-op if the timers closed it */
    }
    if (w->on_tick != NULL)
        w->on_tick(w->owner, w, now);
}

/* Fold what the loop counted since the last wakeup into the worker's
 * statistics: deltas, because a fork-mode parent's statistics also receive
 * its children's. */
TCPMSG_HOT static void sync_syscalls(struct worker *w)
{
    const counter_t *sys = loop_syscall_counters(w->loop);
    for (unsigned k = 0; k < LOOP_SYS_COUNT; k++) {
        uint64_t v = counter_get(&sys[k]);
        if (v == w->sys_seen[k])
            continue;
        counter_t *c = k == LOOP_SYS_WAKEUPS ? &w->stats.wakeups : &w->stats.syscalls[k];
        counter_add(c, v - w->sys_seen[k]);
        w->sys_seen[k] = v;
    }
}

/* After each wakeup: the service time of the replies it completed
 * (conn_pass_end), how many replies it completed (the histogram of
 * messages per wakeup: how much work one trip through the kernel buys), the
 * system call counts, and whether the loop is done: draining (or a fork-mode
 * child whose connection ended) with no connection left, the owner's work
 * included (a fork-mode parent's children). */
TCPMSG_HOT static void on_wakeup(void *ctx, uint64_t now)
{
    struct worker *w = ctx;
    conn_pass_end(&w->ctx, now);
    if (w->msgs_per_wakeup) {
        uint64_t msgs = 0;
        for (unsigned m = 0; m < STATS_MODE_COUNT; m++)
            msgs += counter_get(&w->stats.msgs_out[m]);
        if (msgs != w->msgs_seen) {
            hist_record(&w->stats.msgs_per_wakeup, msgs - w->msgs_seen);
            w->msgs_seen = msgs;
        }
    }
    sync_syscalls(w);
    if ((w->draining || w->exit_when_empty) && w->nconns == 0 && w->nlive == 0 &&
        (w->busy == NULL || !w->busy(w->owner)))
        loop_stop(w->loop);
}

void worker_run(struct worker *w)
{
    int rc = worker_arm(w);
    if (rc < 0) {
        LOG(LOG_ERROR, "event loop cannot watch the worker's descriptors", LF_U("worker", w->index),
            LF_S("error", strerror(-rc)));
        return;
    }
    w->tcp_sample_ns = net_now_ns() + TCP_SAMPLE_DELAY_NS;
    loop_timer_start(w->loop, &w->tick, net_now_ns() + TICK_NS);
    rc = loop_run(w->loop);
    if (rc < 0)
        LOG(LOG_ERROR, "event loop failed", LF_U("worker", w->index), LF_S("error", strerror(-rc)));
    loop_timer_stop(w->loop, &w->tick);
    sync_syscalls(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* Named, so that tools (and tests) can find the workers: "tcpmsgd-w0". */
    char name[16];
    snprintf(name, sizeof name, "tcpmsgd-w%u", w->index);
    pthread_setname_np(pthread_self(), name);
    worker_run(w);
    atomic_fetch_sub(&w->shared->running, 1);
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    return -rc;
}

void worker_request_drain(struct worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wake_fd, &one, sizeof one);
    (void)r; /* the counter cannot overflow from a handful of requests */
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
