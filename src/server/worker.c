/* worker: an epoll loop on its own thread: accept, dispatch connection
 * events, run timers a few times a second, drain on request. Closed
 * connections are freed only after the wakeup that closed them.
 */
#include "server/worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/admission.h"
#include "server/conn.h"
#include "server/connlist.h"
#include "server/membudget.h"
#include "tcpmsg/log.h"

#define MAX_EVENTS 256
#define ACCEPTS_PER_WAKEUP 64          /* share the loop between new and old clients */
#define TICK_NS (100 * 1000000ull)     /* timer resolution */
#define ACCEPT_BACKOFF_NS (100 * 1000000ull)
#define POOL_CHUNKS 64                 /* free output chunks kept: 1 MiB */
#define EVICTIONS_PER_TICK 256         /* bounds the work of one timer tick */

/* epoll_event.data.ptr tags for the two non-connection descriptors. */
static char listen_tag, wake_tag;

/* conn_ctx calls: (re)register c's epoll interest; the first registration
 * adds c to the list of open connections. */
static int watch_conn(void *owner, struct conn *c, uint32_t events)
{
    struct worker *w = owner;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    bool first = c->prev == NULL && w->conns != c;
    if (epoll_ctl(w->epfd, first ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    if (first) {
        pthread_mutex_lock(&w->list_lock);
        c->next = w->conns;
        if (w->conns != NULL)
            w->conns->prev = c;
        w->conns = c;
        w->nconns++;
        pthread_mutex_unlock(&w->list_lock);
    }
    return 0;
}

/* A closed c leaves epoll and the open list, and is parked until the
 * wakeup's dispatch is over (free_closed). */
static void forget_conn(void *owner, struct conn *c)
{
    struct worker *w = owner;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    pthread_mutex_lock(&w->list_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->list_lock);
    c->prev = NULL;
    c->next = w->closed;
    w->closed = c;
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

int worker_init(struct worker *w, struct worker_shared *sh, unsigned index, int listen_fd)
{
    memset(w, 0, sizeof *w);
    w->shared = sh;
    w->index = index;
    w->listen_fd = listen_fd;
    w->wake_fd = -1;
    server_stats_init(&w->stats);
    pthread_mutex_init(&w->list_lock, NULL);
    chunk_pool_init(&w->pool, POOL_CHUNKS);
    w->ctx = (struct conn_ctx){
        .cfg = sh->cfg,
        .stats = &w->stats,
        .budget = sh->budget,
        .budget_slot = index,
        .pool = &w->pool,
        .rbuf = malloc(CONN_RBUF_SIZE),
        .owner = w,
        .watch = watch_conn,
        .forget = forget_conn,
        .closed = conn_closed,
    };
    if (w->ctx.rbuf == NULL)
        return -ENOMEM;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return -errno;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_tag };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0)
        return -errno;
    if (w->listen_fd < 0)
        return 0; /* a fork-mode child: its one client is all it serves */
    ev.data.ptr = &listen_tag;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listen_fd, &ev) < 0)
        return -errno;
    w->listening = true;
    return 0;
}

void worker_destroy(struct worker *w)
{
    while (w->conns != NULL)
        conn_close(w->conns, CLOSE_SHUTDOWN, net_now_ns());
    while (w->closed != NULL) {
        struct conn *c = w->closed;
        w->closed = c->next;
        conn_free(c);
    }
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->epfd >= 0)
        close(w->epfd);
    w->listen_fd = w->wake_fd = w->epfd = -1;
    pthread_mutex_destroy(&w->list_lock);
    chunk_pool_destroy(&w->pool);
    free(w->ctx.rbuf);
    w->ctx.rbuf = NULL;
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

static void pause_accepting(struct worker *w, uint64_t now)
{
    if (!w->listening)
        return;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL);
    w->listening = false;
    w->listen_resume_ns = now + ACCEPT_BACKOFF_NS;
}

static void resume_accepting(struct worker *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    if (w->listen_fd >= 0 && !w->listening &&
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listen_fd, &ev) == 0)
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

/* accept failed with errno e: decide whether to keep going. */
static bool accept_failed(struct worker *w, int e, uint64_t now)
{
    switch (e) {
    case EAGAIN:
        return false;
    case EINTR:
    case ECONNABORTED: /* the client gave up while queued: nothing to do */
        return true;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* Out of descriptors or memory. The listener stays readable, so
         * retrying now would spin; stop watching it for a moment instead.
         * Queued clients wait in the backlog until descriptors free up. */
        counter_add(&w->stats.errors[ERR_ACCEPT_EMFILE], 1);
        LOG_RATELIMITED(LOG_WARN, "accept failed, pausing accepts", LF_U("worker", w->index),
            LF_S("error", strerror(e)), LF_U("open_conns", w->nconns),
            LF_D("retry_in_s", ACCEPT_BACKOFF_NS / 1e9));
        pause_accepting(w, now);
        return false;
    default:
        counter_add(&w->stats.errors[ERR_ACCEPT_OTHER], 1);
        LOG_RATELIMITED(LOG_WARN, "accept failed", LF_U("worker", w->index), LF_S("error", strerror(e)));
        return false;
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

void worker_accept(struct worker *w, uint64_t now, worker_serve_fn serve)
{
    for (int i = 0; i < ACCEPTS_PER_WAKEUP && w->listening; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(w->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (accept_failed(w, errno, now))
                continue;
            return;
        }
        char peer[NET_ADDRSTRLEN];
        net_format_addr((struct sockaddr *)&ss, peer, sizeof peer);
        int why = admission_admit(w->shared->admission, (struct sockaddr *)&ss);
        if (why != 0) {
            worker_reject(w, fd, peer, (enum reject_reason)(why - 1));
            continue;
        }
        net_set_nodelay(fd);
        uint64_t id = admission_next_id(w->shared->admission);
        if (serve(w, fd, (struct sockaddr *)&ss, len, id, now))
            counter_add(&w->stats.accepted, 1);
        else
            admission_release(w->shared->admission, (struct sockaddr *)&ss);
    }
}

void worker_stop_listening(struct worker *w)
{
    if (w->listening)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL);
    w->listening = false;
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    w->listen_fd = -1;
}

static void begin_drain(struct worker *w, uint64_t now)
{
    uint64_t v;
    while (read(w->wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    if (w->draining)
        return;
    w->draining = true;
    worker_stop_listening(w);
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_begin_drain(c, now);
    }
}

void worker_check_backoff(struct worker *w, uint64_t now)
{
    if (!w->listening && !w->draining && w->listen_fd >= 0 && now >= w->listen_resume_ns)
        resume_accepting(w);
}

bool worker_handle(struct worker *w, const void *tag, uint64_t now, worker_serve_fn serve)
{
    if (tag == &listen_tag)
        worker_accept(w, now, serve);
    else if (tag == &wake_tag)
        begin_drain(w, now);
    else
        return false;
    return true;
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

static void run_timers(struct worker *w, uint64_t now)
{
    w->next_tick_ns = now + TICK_NS;
    worker_check_backoff(w, now);
    if (membudget_must_evict(w->shared->budget, now))
        evict_largest(w, now);
    bool past_deadline = w->draining && now >= atomic_load(&w->shared->drain_deadline_ns);
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (past_deadline)
            conn_close(c, CLOSE_SHUTDOWN, now);
        else
            conn_check_timers(c, now); /* resumes those paused for memory, too */
    }
    if (w->on_tick != NULL)
        w->on_tick(w->owner, w, now);
}

static void free_closed(struct worker *w)
{
    while (w->closed != NULL) {
        struct conn *c = w->closed;
        w->closed = c->next;
        conn_free(c);
    }
}

static int wait_ms(const struct worker *w, uint64_t now)
{
    if (now >= w->next_tick_ns)
        return 0;
    return (int)((w->next_tick_ns - now + 999999) / 1000000);
}

void worker_run(struct worker *w)
{
    struct epoll_event events[MAX_EVENTS];
    w->next_tick_ns = net_now_ns() + TICK_NS;
    while (!((w->draining || w->exit_when_empty) && w->nconns == 0)) {
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, wait_ms(w, net_now_ns()));
        if (n < 0 && errno != EINTR) {
            LOG(LOG_ERROR, "epoll_wait failed", LF_U("worker", w->index), LF_S("error", strerror(errno)));
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t now = net_now_ns();
            void *tag = events[i].data.ptr;
            if (!worker_handle(w, tag, now, serve_here))
                conn_on_event(tag, events[i].events, now);
        }
        free_closed(w);
        uint64_t now = net_now_ns();
        if (now >= w->next_tick_ns) {
            run_timers(w, now);
            free_closed(w);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
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
