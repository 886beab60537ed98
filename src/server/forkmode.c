/* forkmode: the parent's loop (accept, fork, read the statistics pipe, reap)
 * and the child's life (one connection, served by conn.c in a worker loop,
 * its statistics written to the pipe every tick and at exit).
 */
#include "server/forkmode.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/admission.h"
#include "server/config.h"
#include "server/conn.h"
#include "server/forkrecord.h"
#include "server/membudget.h"
#include "server/worker.h"
#include "tcpmsg/log.h"

#define PIPE_CAPACITY (1 << 20) /* room for ~1000 records before children block */

int fork_state_init(struct fork_state *fs, unsigned max_children)
{
    memset(fs, 0, sizeof *fs);
    fs->pipe_rd = fs->pipe_wr = fs->sig_fd = -1;
    fs->children = calloc(max_children, sizeof *fs->children);
    if (fs->children == NULL)
        return -ENOMEM;
    fs->nslots = max_children;
    pthread_mutex_init(&fs->lock, NULL);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fs->pipe_rd = p[0];
    fs->pipe_wr = p[1];
    /* The parent never waits on the pipe; children do block when it is full,
     * which is back-pressure, not loss. */
    fcntl(fs->pipe_rd, F_SETFL, O_NONBLOCK);
    fcntl(fs->pipe_wr, F_SETPIPE_SZ, PIPE_CAPACITY);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    fs->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fs->sig_fd < 0 ? -errno : 0;
}

void fork_state_destroy(struct fork_state *fs)
{
    if (fs->children != NULL)
        pthread_mutex_destroy(&fs->lock);
    if (fs->pipe_rd >= 0)
        close(fs->pipe_rd);
    if (fs->pipe_wr >= 0)
        close(fs->pipe_wr);
    if (fs->sig_fd >= 0)
        close(fs->sig_fd);
    free(fs->children);
    fs->children = NULL;
}

size_t fork_snapshot(struct fork_state *fs, struct conn_info *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&fs->lock);
    for (unsigned i = 0; i < fs->nslots && n < cap; i++)
        if (fs->children[i].pid != 0) {
            out[n] = fs->children[i].info;
            out[n++].mem = fs->budget != NULL ? membudget_slot_used(fs->budget, i) : 0;
        }
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* ---- the child ----------------------------------------------------------- */

struct child_ctx {
    int pipe_wr;
    struct fork_record_head tmpl;
    struct server_stats *sent; /* what the parent has been told */
    struct worker *w;
};

static struct worker *g_child_worker; /* for the signal handler */
static uint64_t g_child_drain_ns;     /* --drain-timeout */

/* The drain's deadline runs from the first request: set once (a clock read
 * and a lock-free atomic, both async-signal-safe). Regression: the child's
 * deadline stayed 0, so its first tick after SIGTERM closed the connection
 * with replies still in flight, whatever --drain-timeout said. */
static void child_on_signal(int sig)
{
    (void)sig;
    uint64_t unset = UINT64_MAX;
    atomic_compare_exchange_strong(&g_child_worker->shared->drain_deadline_ns, &unset,
                                   net_now_ns() + g_child_drain_ns);
    worker_request_drain(g_child_worker); /* an eventfd write: async-signal-safe */
}

static int write_record(const struct fork_record *r, void *ctx)
{
    const struct child_ctx *cc = ctx;
    for (;;) {
        /* One write of at most PIPE_BUF bytes: atomic, never interleaved. */
        ssize_t n = write(cc->pipe_wr, r, sizeof *r);
        if (n == (ssize_t)sizeof *r)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
}

/* The connection as the parent should show it. */
static void child_fill_head(struct child_ctx *cc, const struct conn *c)
{
    if (c == NULL)
        return; /* closed: the last values stay */
    struct fork_record_head *h = &cc->tmpl;
    h->active_ns = counter_get(&c->pub.active_ns);
    h->msgs_in = counter_get(&c->pub.msgs_in);
    h->msgs_out = counter_get(&c->pub.msgs_out);
    h->bytes_in = counter_get(&c->pub.bytes_in);
    h->bytes_out = counter_get(&c->pub.bytes_out);
    h->pending = counter_get(&c->pub.pending);
    h->mode = (uint8_t)counter_get(&c->pub.mode);
    h->state = (uint8_t)counter_get(&c->pub.state);
}

static void child_final_totals(struct fork_record_head *h, const struct server_stats *st)
{
    h->msgs_in = h->msgs_out = h->bytes_in = h->bytes_out = 0;
    for (int m = 0; m < STATS_MODE_COUNT; m++) {
        h->msgs_in += counter_get(&st->msgs_in[m]);
        h->msgs_out += counter_get(&st->msgs_out[m]);
        h->bytes_in += counter_get(&st->bytes_in[m]);
        h->bytes_out += counter_get(&st->bytes_out[m]);
    }
    if (counter_get(&st->bytes_in[STATS_TEXT]) > 0)
        h->mode = FRAME_MODE_TEXT;
    else if (counter_get(&st->bytes_in[STATS_FRAMED]) > 0)
        h->mode = FRAME_MODE_FRAMED;
}

static void child_tick(void *owner, struct worker *w, uint64_t now)
{
    (void)now;
    struct child_ctx *cc = owner;
    child_fill_head(cc, w->conns);
    forkrecord_emit(&cc->tmpl, &w->stats, cc->sent, false, write_record, cc);
}

/* Keep only what the child needs: stdio, its client and the pipe's write
 * end. The listener, the HTTP endpoint's sockets, the read end of the pipe
 * and every other client's socket are closed. Returns the new client fd, or
 * -errno. */
static int child_descriptors(int client, int *pipe_wr)
{
    /* Move the two keepers to 3 and 4 (copied above 4 first, so that
     * neither overwrites the other), then close everything above. */
    int a = fcntl(client, F_DUPFD_CLOEXEC, 5);
    int b = fcntl(*pipe_wr, F_DUPFD_CLOEXEC, 5);
    if (a < 0 || b < 0 || dup3(a, 3, O_CLOEXEC) < 0 || dup3(b, 4, O_CLOEXEC) < 0)
        return -errno;
    if (close_range(5, ~0u, 0) < 0) { /* a kernel before 5.9: one by one */
        struct rlimit rl;
        int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
        for (int fd = 5; fd < max; fd++)
            close(fd);
    }
    *pipe_wr = 4;
    return 3;
}

static void child_signals(struct worker *w)
{
    g_child_worker = w;
    struct sigaction sa = { .sa_handler = child_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* The child's whole life; never returns. */
static _Noreturn void child_main(const struct worker *parent, unsigned slot, int fd,
                                 const struct sockaddr *peer, socklen_t len, uint64_t id,
                                 uint64_t accepted_ns)
{
    const struct server_config *cfg = parent->shared->cfg;
    int pipe_wr = ((const struct fork_state *)parent->owner)->pipe_wr;
    fd = child_descriptors(fd, &pipe_wr);
    if (fd < 0)
        _exit(70);
    /* A worker of its own, not the parent's copy, which holds locks other
     * threads may have held at fork time (the connection list). It admits
     * nobody and keeps no closed list: the parent does both for its child,
     * from the records and the exit. */
    struct worker_shared *sh = calloc(1, sizeof *sh);
    struct worker *w = calloc(1, sizeof *w);
    struct child_ctx *cc = calloc(1, sizeof *cc);
    if (sh == NULL || w == NULL || cc == NULL)
        _exit(71);
    sh->cfg = cfg;
    sh->budget = parent->shared->budget; /* shared memory: the parent sees what the child holds */
    sh->loop_opt.backend = LOOP_EPOLL;   /* one connection: a ring would cost more than it saves */
    atomic_init(&sh->drain_deadline_ns, UINT64_MAX); /* none until a signal asks for the drain */
    atomic_init(&sh->running, 1);
    g_child_drain_ns = (uint64_t)(cfg->drain_timeout * 1e9);
    cc->sent = malloc(sizeof *cc->sent);
    if (cc->sent == NULL || worker_init(w, sh, 0, -1) < 0)
        _exit(72);
    server_stats_init(cc->sent);
    w->ctx.budget_slot = slot; /* the child's own account in the budget */
    w->pool.max_free = 0;      /* one connection: a spare chunk would be memory the budget
                                  does not see, in every child */
    cc->pipe_wr = pipe_wr;
    cc->w = w;
    cc->tmpl.pid = getpid();
    cc->tmpl.slot = slot;
    cc->tmpl.conn_id = id;
    w->exit_when_empty = true;
    w->owner = cc;
    w->on_tick = child_tick;
    child_signals(w);

    /* Opened when the parent accepted it: the connection's age (RTT report
     * limits, the connection list) includes the fork. */
    struct conn *c = conn_open(&w->ctx, fd, peer, len, id, accepted_ns);
    if (c == NULL)
        _exit(73);
    LOG(LOG_INFO, "connection opened", LF_U("conn", id), LF_S("peer", c->peer_str),
        LF_I("pid", getpid()));
    worker_run(w);

    /* The last record: whatever moved since the last tick, and the close.
     * The connection is gone; its totals are the child's, which served it
     * alone. Regression: a connection shorter than a tick was listed with
     * no mode and zero counts. */
    cc->tmpl.flags = FORK_RECORD_FINAL;
    child_final_totals(&cc->tmpl, &w->stats);
    for (int r = 0; r < CLOSE_REASON_COUNT; r++)
        if (counter_get(&w->stats.closed[r]) > 0)
            cc->tmpl.reason = (uint8_t)r;
    cc->tmpl.state = CONN_CLOSED;
    cc->tmpl.pending = 0;
    int rc = forkrecord_emit(&cc->tmpl, &w->stats, cc->sent, true, write_record, cc);
    _exit(rc < 0 ? 74 : 0);
}

/* ---- the parent ---------------------------------------------------------- */

static struct fork_state *fs_of(struct worker *w)
{
    return w->owner; /* set by fork_start */
}

static int free_slot(const struct fork_state *fs)
{
    for (unsigned i = 0; i < fs->nslots; i++)
        if (fs->children[i].pid == 0)
            return (int)i;
    return -ENOSPC;
}

/* worker_serve_fn for fork mode: fork a child for the admitted client. */
static bool fork_serve(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       uint64_t id, uint64_t now)
{
    struct fork_state *fs = fs_of(w);
    char peer_str[NET_ADDRSTRLEN];
    net_format_addr(peer, peer_str, sizeof peer_str);
    int slot = free_slot(fs);
    if (slot < 0) {
        worker_reject(w, fd, peer_str, REJECT_MAX_CHILDREN);
        return false;
    }
    pid_t pid = fork();
    if (pid == 0)
        child_main(w, (unsigned)slot, fd, peer, len, id, now);
    if (pid < 0) {
        LOG_RATELIMITED(LOG_WARN, "fork failed", LF_S("peer", peer_str), LF_S("error", strerror(errno)));
        worker_reject(w, fd, peer_str, REJECT_FORK_FAILED);
        return false;
    }
    close(fd); /* the child has it now */
    struct fork_child *ch = &fs->children[slot];
    pthread_mutex_lock(&fs->lock);
    memset(ch, 0, sizeof *ch);
    ch->pid = pid;
    memcpy(&ch->peer, peer, len);
    ch->info.id = id;
    memcpy(ch->info.peer, peer_str, sizeof ch->info.peer);
    ch->info.mode = frame_mode_name(FRAME_MODE_UNKNOWN);
    ch->info.state = conn_state_name(CONN_READING);
    ch->info.pid = pid;
    ch->info.opened_ns = ch->info.active_ns = now;
    fs->nchildren++;
    pthread_mutex_unlock(&fs->lock);
    return true;
}

static void take_record(struct worker *w, const struct fork_record *r)
{
    struct fork_state *fs = fs_of(w);
    if (!forkrecord_valid(r) || r->h.slot >= fs->nslots || fs->children[r->h.slot].pid != r->h.pid) {
        counter_add(&w->stats.errors[ERR_STATS_PIPE], 1);
        LOG_RATELIMITED(LOG_WARN, "malformed statistics record", LF_I("pid", r->h.pid), LF_U("slot", r->h.slot));
        return;
    }
    forkrecord_apply(r, &w->stats);
    struct fork_child *ch = &fs->children[r->h.slot];
    pthread_mutex_lock(&fs->lock);
    ch->info.active_ns = r->h.active_ns != 0 ? r->h.active_ns : ch->info.active_ns;
    ch->info.msgs_in = r->h.msgs_in;
    ch->info.msgs_out = r->h.msgs_out;
    ch->info.bytes_in = r->h.bytes_in;
    ch->info.bytes_out = r->h.bytes_out;
    ch->info.pending = r->h.pending;
    ch->info.mode = frame_mode_name((enum frame_mode)r->h.mode);
    ch->info.state = conn_state_name((enum conn_state)r->h.state);
    if ((r->h.flags & FORK_RECORD_FINAL) && !ch->final_seen) {
        ch->final_seen = true;
        ch->info.reason = close_reason_tag((enum close_reason)r->h.reason);
        /* Its connection is closed: it no longer counts against --max-conns
         * and --max-conns-per-ip, though the process holds its --max-children
         * slot until it is reaped. */
        admission_release(w->shared->admission, (struct sockaddr *)&ch->peer);
    }
    pthread_mutex_unlock(&fs->lock);
}

/* Read every whole record waiting in the pipe. */
static void read_records(struct worker *w)
{
    struct fork_record r;
    for (;;) {
        ssize_t n = read(fs_of(w)->pipe_rd, &r, sizeof r);
        if (n == (ssize_t)sizeof r) {
            take_record(w, &r);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) { /* cannot happen with atomic writes of whole records */
            counter_add(&w->stats.errors[ERR_STATS_PIPE], 1);
            LOG_RATELIMITED(LOG_ERROR, "partial statistics record", LF_I("bytes", n));
        }
        return;
    }
}

/* A child has gone: account for how it ended. */
static void child_ended(struct worker *w, struct fork_child *ch, int status, uint64_t now)
{
    struct fork_state *fs = fs_of(w);
    enum close_reason reason = CLOSE_PEER;
    if (!ch->final_seen) {
        /* Died without its last record: its statistics since the previous
         * tick are lost, and its connection is counted here. One killed at
         * the end of the drain (its deadline passed, or a second signal)
         * while its last record said it still held replies lost them, as a
         * worker's connection closed at the deadline does. */
        reason = !ch->killed ? CLOSE_CHILD_DIED
                 : ch->info.pending > 0 ? CLOSE_DRAIN_TIMEOUT
                                        : CLOSE_SHUTDOWN;
        if (reason == CLOSE_DRAIN_TIMEOUT)
            counter_add(&w->stats.drain_lost_bytes, ch->info.pending);
        counter_add(&w->stats.closed[reason], 1);
        if (!ch->killed)
            counter_add(&w->stats.errors[ERR_CHILD_CRASHED], 1);
        LOG_RATELIMITED(LOG_WARN, "child died", LF_I("pid", ch->pid), LF_U("conn", ch->info.id),
            LF_S("peer", ch->info.peer),
            LF_S("how", WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited"),
            LF_I("exit_status", WIFEXITED(status) ? WEXITSTATUS(status) : -1));
    }
    pthread_mutex_lock(&fs->lock);
    if (!ch->final_seen)
        ch->info.reason = close_reason_tag(reason);
    ch->info.state = "closed";
    closed_ring_push_info(w->shared->closed, &ch->info, now);
    /* A child that died holding buffers cannot give them back itself. */
    membudget_write_off(w->shared->budget, (unsigned)(ch - fs->children));
    if (!ch->final_seen)
        admission_release(w->shared->admission, (struct sockaddr *)&ch->peer);
    ch->pid = 0;
    fs->nchildren--;
    pthread_mutex_unlock(&fs->lock);
}

/* Reap every child that has exited, without blocking. A child writes its
 * last record before it exits, so once waitpid has seen the exit the record
 * is in the pipe: read it then, before deciding how the child ended.
 * Regression (test_fork.no_zombies): reading the pipe only before waitpid
 * missed the record of a child that wrote it and exited between the two
 * calls; the child was counted as died and its record as malformed. */
static void reap(struct worker *w, uint64_t now)
{
    struct fork_state *fs = fs_of(w);
    struct signalfd_siginfo si;
    while (read(fs->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (unsigned i = 0; i < fs->nslots; i++) {
            if (fs->children[i].pid == pid) {
                if (!fs->children[i].final_seen)
                    read_records(w);
                child_ended(w, &fs->children[i], status, now);
                break;
            }
        }
    }
}

/* Drain: the children finish their in-flight replies on SIGTERM, and close
 * what is left at their own deadline (--drain-timeout from the signal).
 * The parent kills those still there a moment later: a backstop, late
 * enough that a child at its deadline can still close, report and log. */
#define CHILD_KILL_GRACE_NS (500 * 1000000ull)

static void drain_children(struct worker *w, uint64_t now)
{
    struct fork_state *fs = fs_of(w);
    uint64_t deadline = atomic_load(&w->shared->drain_deadline_ns);
    bool past = now >= deadline && now - deadline >= CHILD_KILL_GRACE_NS;
    if (fs->signalled && !past)
        return;
    for (unsigned i = 0; i < fs->nslots; i++) {
        struct fork_child *ch = &fs->children[i];
        if (ch->pid == 0 || (past && ch->killed))
            continue;
        ch->killed = past;
        kill(ch->pid, past ? SIGKILL : SIGTERM);
    }
    fs->signalled = true;
}

static void on_pipe(struct loop_watch *wt, unsigned events, uint64_t now)
{
    (void)events;
    (void)now;
    read_records(wt->data);
}

static void on_sigchld(struct loop_watch *wt, unsigned events, uint64_t now)
{
    (void)events;
    reap(wt->data, now);
}

/* Every tick: reap (signals coalesce: look every tick as well), and keep
 * the drain of the children going. */
static void parent_tick(void *owner, struct worker *w, uint64_t now)
{
    (void)owner;
    reap(w, now);
    if (w->draining)
        drain_children(w, now);
}

static void parent_drain(void *owner, struct worker *w, uint64_t now)
{
    (void)owner;
    drain_children(w, now);
}

static bool parent_busy(void *owner)
{
    const struct fork_state *fs = owner;
    return fs->nchildren > 0;
}

/* The parent's loop is the worker's (accept, the drain's wake), with the
 * pipe and the signalfd watched too, always on epoll: a child serves one
 * connection, and a ring per child would cost more than it saves. */
static void *fork_main(void *arg)
{
    struct worker *w = arg;
    struct fork_state *fs = fs_of(w);
    pthread_setname_np(pthread_self(), "tcpmsgd-fork");
    fs->pipe_watch = (struct loop_watch){ .cb = on_pipe, .data = w };
    fs->sig_watch = (struct loop_watch){ .cb = on_sigchld, .data = w };
    int rc = loop_watch_start(w->loop, &fs->pipe_watch, fs->pipe_rd, LOOP_READABLE);
    if (rc == 0)
        rc = loop_watch_start(w->loop, &fs->sig_watch, fs->sig_fd, LOOP_READABLE);
    if (rc < 0)
        LOG(LOG_ERROR, "fork mode cannot watch its pipe", LF_S("error", strerror(-rc)));
    worker_run(w);
    loop_watch_stop(w->loop, &fs->pipe_watch);
    loop_watch_stop(w->loop, &fs->sig_watch);
    atomic_fetch_sub(&w->shared->running, 1);
    return NULL;
}

int fork_start(struct fork_state *fs, struct worker *w)
{
    w->owner = fs;
    w->serve = fork_serve;
    w->msgs_per_wakeup = false; /* its replies are the children's: they record theirs */
    w->on_tick = parent_tick;
    w->on_drain = parent_drain;
    w->busy = parent_busy;
    return -pthread_create(&w->thread, NULL, fork_main, w);
}
