/* server: start-up (bind, one SO_REUSEPORT listener per worker, no other
 * process on the port; or the socket systemd passed), admission control,
 * the signal-driven shutdown with a bounded drain, and what the service
 * manager is told along the way (ready, a status line, stopping).
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/forkmode.h"
#include "server/membudget.h"
#include "server/metrics.h"
#include "tcpmsg/activation.h"
#include "tcpmsg/basicauth.h"
#include "tcpmsg/http.h"
#include "tcpmsg/log.h"
#include "tcpmsg/notify.h"
#include "tcpmsg/tstamp.h"
#include "tcpmsg/webconfig.h"

/* Is the address free of other listeners? A plain socket (SO_REUSEADDR, so
 * that TIME_WAIT remnants do not count, but no SO_REUSEPORT) cannot bind
 * next to a listening socket on the same port, whatever that one's options:
 * this is how a second tcpmsgd learns that the port is already served.
 * 0, or -EADDRINUSE (or another -errno from bind). */
static int check_port_free(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    int rc = bind(fd, sa, len) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Socket activation: systemd bound the port (tcpmsgd.socket) and passed
 * the listening socket as descriptor 3. systemd keeps it open across
 * restarts of tcpmsgd, so a client that connects while no tcpmsgd runs
 * waits in its backlog instead of being refused; --bind, --port and
 * --backlog do not apply (the .socket unit says them).
 *
 * The workers cannot each have a SO_REUSEPORT listener of their own here:
 * ours would close with us and reset the clients queued in them. So they
 * share the one socket, each through a descriptor of its own (a dup), which
 * it closes at the drain as it would its own listener, while systemd's copy
 * keeps the socket open. The price: a new connection wakes every worker's
 * loop, and one of them wins the accept (epoll's other workers find
 * EAGAIN), where SO_REUSEPORT gives each worker a queue.
 *
 * 0: nothing passed, bind as usual. 1: fds[] hold the socket. -errno: a
 * socket passed that tcpmsgd cannot serve (logged). */
static int take_passed_listener(struct server *s, int *fds, unsigned n)
{
    char err[256];
    int given = activation_listeners(err, sizeof err);
    if (given == 0)
        return 0;
    if (given < 0) {
        LOG(LOG_ERROR, "cannot take the socket passed by systemd", LF_S("error", err));
        return given;
    }
    const int fd = ACTIVATION_FIRST_FD;
    if (given > 1) {
        LOG(LOG_ERROR, "systemd passed several sockets: tcpmsgd serves one (one ListenStream= "
                       "in tcpmsgd.socket)",
            LF_I("sockets", given));
        for (int i = 0; i < given; i++)
            close(fd + i);
        return -EINVAL;
    }
    fds[0] = fd;
    for (unsigned i = 1; i < n; i++) {
        fds[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (fds[i] < 0) {
            int rc = -errno;
            LOG(LOG_ERROR, "cannot share the socket passed by systemd",
                LF_S("error", strerror(-rc)));
            while (i > 0)
                close(fds[--i]);
            return rc;
        }
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    net_format_addr((struct sockaddr *)&ss, s->bound, sizeof s->bound);
    char host[NET_ADDRSTRLEN];
    net_format_host((struct sockaddr *)&ss, host, sizeof host);
    LOG(LOG_INFO, "server socket bound", LF_S("ip", host),
        LF_U("port", net_addr_port((struct sockaddr *)&ss)), LF_S("by", "systemd"), LF_I("fd", fd),
        LF_U("workers_sharing_it", n));
    return 1;
}

/* One listener per worker, all on the same address: the kernel hashes each
 * new connection to one of them, so workers never contend on accept. The
 * first binds (port 0 included) and the rest reuse the port it got.
 *
 * SO_REUSEPORT would also let another process join the group and silently
 * take a share of the clients. So the group is formed only after a plain
 * bind has shown the port free, and a single listener (fork mode, one
 * thread) does without SO_REUSEPORT altogether. */
static int open_listeners(struct server *s, int *fds, unsigned n)
{
    const struct server_config *cfg = s->cfg;
    int passed = take_passed_listener(s, fds, n);
    if (passed != 0)
        return passed < 0 ? passed : 0;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    if (net_resolve(cfg->bind_addr, cfg->port, true, &ss, &len, err, sizeof err) < 0) {
        LOG(LOG_ERROR, "cannot bind", LF_S("address", cfg->bind_addr), LF_S("error", err));
        return -EINVAL;
    }
    uint16_t port = net_addr_port((struct sockaddr *)&ss);
    int rc = n > 1 && port != 0 ? check_port_free((struct sockaddr *)&ss, len) : 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        int fd = net_listen((struct sockaddr *)&ss, len, (int)cfg->backlog, n > 1);
        if (fd < 0) {
            rc = fd;
            while (i > 0)
                close(fds[--i]);
            break;
        }
        fds[i] = fd;
        if (i == 0) {
            /* Ask the kernel what it bound: the real port when 0 was given. */
            len = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &len);
        }
    }
    if (rc == -EADDRINUSE) {
        LOG(LOG_ERROR, "cannot listen: the port is already in use (another tcpmsgd, or another "
                       "program, is serving it)",
            LF_S("address", cfg->bind_addr), LF_U("port", port), LF_S("error", strerror(-rc)));
        return rc;
    }
    if (rc < 0) {
        LOG(LOG_ERROR, "cannot listen", LF_S("address", cfg->bind_addr), LF_U("port", port),
            LF_S("error", strerror(-rc)));
        return rc;
    }
    net_format_addr((struct sockaddr *)&ss, s->bound, sizeof s->bound);
    char host[NET_ADDRSTRLEN];
    net_format_host((struct sockaddr *)&ss, host, sizeof host);
    LOG(LOG_INFO, "server socket bound", LF_S("ip", host),
        LF_U("port", net_addr_port((struct sockaddr *)&ss)));
    return 0;
}

/* --web-config: read before anything is bound, so a bad file stops the
 * start at once. */
static int load_web_config(struct server *s)
{
    const struct server_config *cfg = s->cfg;
    char err[512];
    if (cfg->web_config[0] == '\0' || !cfg->http_enabled)
        return 0;
    int rc = webconfig_load(cfg->web_config, &s->web, err, sizeof err);
    if (rc < 0) {
        LOG(LOG_ERROR, "cannot load the web config", LF_S("error", err));
        return rc;
    }
    if (s->web->nusers > 0) {
        s->auth = basicauth_new(s->web->users, s->web->nusers, NULL, err, sizeof err);
        if (s->auth == NULL) {
            LOG(LOG_ERROR, "cannot set up basic auth", LF_S("web_config", cfg->web_config),
                LF_S("error", err));
            webconfig_free(s->web);
            s->web = NULL;
            return -EINVAL;
        }
    }
    if (s->auth != NULL && !s->web->tls)
        LOG(LOG_WARN, "basic auth without TLS: passwords cross the network readable",
            LF_S("web_config", cfg->web_config));
    return 0;
}

static void free_web_config(struct server *s)
{
    basicauth_free(s->auth);
    webconfig_free(s->web);
    s->auth = NULL;
    s->web = NULL;
}

/* The HTTP endpoint: metrics, health, connections, the status page. */
static int start_http(struct server *s, http_route_fn route)
{
    const struct server_config *cfg = s->cfg;
    struct http_options o;
    http_options_defaults(&o);
    o.bind = cfg->http_bind;
    o.port = cfg->http_port;
    o.web_root = cfg->web_root;
    o.web = s->web;
    o.auth = s->auth;
    o.open_path = "/healthz";
    char err[300];
    struct http_server *h = http_start(&o, route, s, err, sizeof err);
    atomic_store(&s->http, h);
    if (h == NULL) {
        LOG(LOG_ERROR, "cannot start the HTTP endpoint", LF_S("error", err));
        return -EIO; /* the reason is in err, logged */
    }
    bool tls = s->web != NULL && s->web->tls;
    LOG(LOG_INFO, "http endpoint listening", LF_S("address", http_bound(h)),
        LF_U("http_port", http_port(h)), LF_S("web_root", cfg->web_root),
        LF_S("tls", tls ? "on" : "off"), LF_S("auth", s->auth != NULL ? "on" : "off"),
        LF_S("client_auth", tls ? webconfig_client_auth_name(s->web->client_auth) : "none"));
    return 0;
}

static const char *io_name(enum loop_backend b)
{
    return b == LOOP_EPOLL ? "epoll" : b == LOOP_URING ? "uring" : "auto";
}

/* The backend of the workers' loops: --io, except in fork mode, which
 * stays on epoll in the parent and the children. */
static void choose_io(struct server *s)
{
    const struct server_config *cfg = s->cfg;
    s->shared.loop_opt = (struct loop_options){ .backend = cfg->io, .sqpoll = cfg->sqpoll };
    if (!cfg->fork_mode)
        return;
    if (cfg->io == LOOP_URING || cfg->sqpoll)
        LOG(LOG_INFO, "fork mode uses epoll, not io_uring",
            LF_S("why", "a child serves one connection: a ring per child costs more than it saves"));
    s->shared.loop_opt = (struct loop_options){ .backend = LOOP_EPOLL };
}

/* The first worker's loop settled what auto means: the others take the
 * same backend, so that every worker runs alike, and the log says why auto
 * did not get io_uring, once. */
static void settle_io(struct server *s, const struct worker *w)
{
    s->io = loop_backend_name(w->loop);
    s->shared.loop_opt.backend = strcmp(s->io, "uring") == 0 ? LOOP_URING : LOOP_EPOLL;
    if (w->loop_why != NULL)
        LOG(LOG_INFO, "io_uring is not available, the workers use epoll", LF_S("why", w->loop_why));
}

/* A message to systemd that did not go out is logged (systemd waits for
 * READY=1 until its start timeout); the status line's failure once, since
 * it would repeat every few seconds. */
static void report_notify(int rc, const char *what)
{
    static bool status_failed;
    bool status = strcmp(what, "status") == 0;
    if (rc >= 0 || (status && status_failed))
        return;
    status_failed = status_failed || status;
    LOG(LOG_WARN, "cannot notify systemd (NOTIFY_SOCKET)", LF_S("message", what),
        LF_S("error", strerror(-rc)));
}

/* The kernel stamps received packets only while some socket asks, and the
 * first socket's asking takes effect a moment later (it patches code from a
 * work queue): a client's first messages would arrive unstamped. A socket
 * that asks from the start, for the server's life, has it ready before the
 * first connection. Without it stages are still measured, from a little
 * later on. */
static void prime_timestamps(struct server *s)
{
    if (s->cfg->stage_sample == 0)
        return;
    s->stamp_primer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->stamp_primer >= 0 && tstamp_enable(s->stamp_primer) < 0) {
        close(s->stamp_primer);
        s->stamp_primer = -1;
    }
}

int server_start(struct server *s, const struct server_config *cfg, http_route_fn route)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->stamp_primer = -1;
    prime_timestamps(s);
    /* Large buffers (a big message's input, up to --max-payload) get their
     * own mappings, so that giving one back returns it to the system at
     * once, and growing one is an mremap, not a copy. glibc would otherwise
     * raise this threshold after the first such free and serve them from
     * the heap, where freed space stays in the process. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    /* Fork mode has one accepting thread; the children do the serving. */
    s->nworkers = cfg->fork_mode ? 1 : cfg->threads;
    s->start_ns = net_now_ns();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->start_time_s = (double)now.tv_sec + now.tv_nsec / 1e9;
    closed_ring_init(&s->closed);

    /* A reply to a vanished client must fail with EPIPE, not kill us; and
     * only the main thread takes SIGINT/SIGTERM (workers inherit the mask).
     * In fork mode SIGCHLD is blocked too: it is read from a signalfd. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (cfg->fork_mode)
        sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    int rc = -ENOMEM;
    int *fds = calloc(s->nworkers, sizeof *fds);
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    int adm = admission_init(&s->admission, cfg->max_conns, cfg->max_conns_per_ip);
    s->budget = membudget_new(cfg->max_buffer_memory, cfg->memory_grace,
                              cfg->fork_mode ? cfg->max_children : s->nworkers);
    if (fds == NULL || s->workers == NULL || adm < 0 || s->budget == NULL)
        goto failed_alloc;
    s->shared.cfg = cfg;
    s->shared.admission = &s->admission;
    s->shared.closed = &s->closed;
    s->shared.budget = s->budget;
    if (cfg->fork_mode) {
        s->fork = calloc(1, sizeof *s->fork);
        rc = s->fork == NULL ? -ENOMEM : fork_state_init(s->fork, cfg->max_children);
        if (rc < 0) {
            LOG(LOG_ERROR, "cannot set up fork mode", LF_S("error", strerror(-rc)));
            goto failed_alloc;
        }
        s->fork->budget = s->budget;
    }
    rc = load_web_config(s);
    if (rc < 0)
        goto failed_alloc;
    rc = open_listeners(s, fds, s->nworkers);
    if (rc < 0)
        goto failed_alloc;
    choose_io(s);
    unsigned started = 0;
    for (; started < s->nworkers; started++) {
        struct worker *w = &s->workers[started];
        rc = worker_init(w, &s->shared, started, fds[started]);
        if (rc == 0 && started == 0)
            settle_io(s, w);
        if (rc == 0) {
            atomic_fetch_add(&s->shared.running, 1);
            rc = cfg->fork_mode ? fork_start(s->fork, w) : worker_start(w);
            if (rc < 0)
                atomic_fetch_sub(&s->shared.running, 1);
        }
        if (rc < 0) {
            LOG(LOG_ERROR, "cannot start worker", LF_U("worker", started), LF_S("error", strerror(-rc)),
                LF_S("io", io_name(s->cfg->io)));
            goto failed_workers;
        }
    }
    free(fds);
    fds = NULL;
    if (cfg->http_enabled && start_http(s, route) < 0) {
        rc = -EADDRINUSE;
        goto failed_workers;
    }
    LOG(LOG_INFO, "server is listening", LF_S("address", s->bound),
        LF_S("mode", cfg->fork_mode ? "fork" : "epoll"), LF_S("io", s->io),
        LF_U("threads", s->nworkers),
        LF_U("max_conns", cfg->max_conns), LF_U("max_payload", cfg->max_payload),
        LF_U("max_buffer_memory", cfg->max_buffer_memory),
        LF_S("version", TCPMSG_VERSION));
    /* Only now, with every listener accepting and the HTTP endpoint up,
     * does systemd count a Type=notify unit as started, and start the
     * units ordered after it. */
    report_notify(notify_ready(), "ready");
    return 0;

failed_workers:
    /* Workers that started are stopped; the failed one is torn down; the
     * listeners nobody took are closed here. */
    atomic_store(&s->shared.drain_deadline_ns, 0);
    for (unsigned i = 0; i < started; i++)
        worker_request_drain(&s->workers[i]);
    for (unsigned i = 0; i < started; i++)
        worker_join(&s->workers[i]);
    for (unsigned i = 0; i <= started && i < s->nworkers; i++)
        worker_destroy(&s->workers[i]);
    for (unsigned i = started + 1; fds != NULL && i < s->nworkers; i++)
        close(fds[i]);
failed_alloc:
    free(fds);
    admission_destroy(&s->admission);
    membudget_free(s->budget);
    s->budget = NULL;
    free(s->workers);
    s->workers = NULL;
    if (s->fork != NULL)
        fork_state_destroy(s->fork);
    free(s->fork);
    s->fork = NULL;
    free_web_config(s);
    closed_ring_destroy(&s->closed);
    if (s->stamp_primer >= 0)
        close(s->stamp_primer);
    s->stamp_primer = -1;
    return rc;
}

void server_snapshot(struct server *s, struct metrics_snapshot *m)
{
    memset(m, 0, sizeof *m);
    /* The open gauge first, the counters after it: a connection counts its
     * close before it gives its admission back (conn_close), so a snapshot
     * that no longer sees it open sees its close. Read the other way round,
     * a close between the two reads showed up in neither. */
    m->conns_open = admission_open(&s->admission);
    server_stats_init(&m->stats);
    for (unsigned i = 0; i < s->nworkers; i++)
        server_stats_add(&m->stats, &s->workers[i].stats);
    m->max_conns = s->cfg->max_conns;
    m->buffer_memory_bytes = membudget_total(s->budget);
    m->buffer_memory_limit_bytes = membudget_limit(s->budget);
    m->workers = s->nworkers;
    m->stage_sample = s->cfg->stage_sample;
    m->draining = atomic_load(&s->draining) != 0;
    m->version = TCPMSG_VERSION;
    m->mode = s->fork != NULL ? "fork" : "epoll";
    m->io = s->io != NULL ? s->io : "epoll";
    m->address = s->bound;
    m->start_time_s = s->start_time_s;
    m->uptime_s = (double)(net_now_ns() - s->start_ns) / 1e9;
    struct http_server *h = atomic_load(&s->http);
    for (unsigned c = 2; c < 6 && h != NULL; c++)
        m->http_responses[c] = http_responses(h, c);
    for (unsigned r = 0; r < HTTP_AUTH_FAILURE_COUNT && h != NULL; r++)
        m->http_auth_failures[r] = http_auth_failures(h, (enum http_auth_failure)r);
    for (unsigned r = 0; r < HTTP_REJECT_REASON_COUNT && h != NULL; r++)
        m->http_rejected[r] = http_rejected(h, r);
    m->http_open = h != NULL ? http_connections_open(h) : 0;
    metrics_read_process(m);
}

struct conn_info *server_connections(struct server *s, size_t *n)
{
    *n = 0;
    if (s->fork != NULL) {
        struct conn_info *v = malloc((s->fork->nslots + 1) * sizeof *v);
        *n = v != NULL ? fork_snapshot(s->fork, v, s->fork->nslots) : 0;
        return v;
    }
    size_t cap = 64;
    struct conn_info *v = malloc(cap * sizeof *v);
    for (unsigned w = 0; v != NULL && w < s->nworkers; w++) {
        if (worker_list_conns(&s->workers[w], &v, n, &cap) < 0) {
            free(v);
            return NULL;
        }
    }
    return v;
}

static int wait_signal(const sigset_t *set, uint64_t timeout_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
                           .tv_nsec = (long)(timeout_ns % 1000000000u) };
    for (;;) {
        int sig = timeout_ns == 0 ? sigwaitinfo(set, NULL) : sigtimedwait(set, NULL, &ts);
        if (sig >= 0 || errno != EINTR)
            return sig;
    }
}

/* One line with the lifetime totals of all workers. */
static void log_totals(const struct server *s)
{
    struct server_stats *t = malloc(sizeof *t);
    if (t == NULL)
        return;
    server_stats_init(t);
    for (unsigned i = 0; i < s->nworkers; i++)
        server_stats_add(t, &s->workers[i].stats);
    uint64_t closed = 0, rejected = 0, errors = 0;
    for (int i = 0; i < CLOSE_REASON_COUNT; i++)
        closed += counter_get(&t->closed[i]);
    for (int i = 0; i < REJECT_REASON_COUNT; i++)
        rejected += counter_get(&t->rejected[i]);
    for (int i = 0; i < ERROR_KIND_COUNT; i++)
        errors += counter_get(&t->errors[i]);
    /* With them, what the workers' loops asked of the kernel (fork mode: the
     * parent's and what the children reported), exact once the workers are
     * joined: a test compares them with strace. */
#define SYSCALL_FIELD(name, tag, text) LF_U(tag, counter_get(&t->syscalls[STATS_##name])),
    struct log_field f[64] = {
        LF_U("accepted", counter_get(&t->accepted)), LF_U("closed", closed),
        LF_U("rejected", rejected), LF_U("errors", errors),
        LF_U("msgs_in", counter_get(&t->msgs_in[0]) + counter_get(&t->msgs_in[1])),
        LF_U("msgs_out", counter_get(&t->msgs_out[0]) + counter_get(&t->msgs_out[1])),
        LF_U("bytes_in", counter_get(&t->bytes_in[0]) + counter_get(&t->bytes_in[1])),
        LF_U("bytes_out", counter_get(&t->bytes_out[0]) + counter_get(&t->bytes_out[1])),
        LF_D("service_p50_us", hist_percentile(&t->service_ns, 50) / 1e3),
        LF_D("service_p99_us", hist_percentile(&t->service_ns, 99) / 1e3),
        LF_S("io", s->io != NULL ? s->io : "epoll"), SYSCALL_OPS(SYSCALL_FIELD)
        LF_U("wakeups", counter_get(&t->wakeups)),
    };
    size_t n = 0;
    while (n < 64 && f[n].key != NULL)
        n++;
    /* With stage sampling on, where the sampled messages' time went:
     * rx_queue_p50_us, rx_queue_p99_us, ... (the keys live as long as the
     * line: static). */
    static const char *const stage_keys[STAGE_COUNT][2] = {
#define STAGE_KEYS(stage, text) { #stage "_p50_us", #stage "_p99_us" },
        STAGE_LIST(STAGE_KEYS)
#undef STAGE_KEYS
    };
    if (s->cfg->stage_sample > 0) {
        f[n++] = LF_U("stage_samples", hist_count(&t->stage_rx_queue_ns));
        for (int k = 0; k < STAGE_COUNT && n + 2 <= 64; k++) {
            const struct hist *h = server_stats_stage(t, (enum stage)k);
            f[n++] = LF_D(stage_keys[k][0], hist_percentile(h, 50) / 1e3);
            f[n++] = LF_D(stage_keys[k][1], hist_percentile(h, 99) / 1e3);
        }
    }
    log_write(LOG_INFO, "totals", f, n);
#undef SYSCALL_FIELD
    free(t);
}

/* Messages received by all workers (fork mode: what the children have
 * reported), for the status line. */
static uint64_t messages_received(struct server *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        n += counter_get(&s->workers[i].stats.msgs_in[0]) +
             counter_get(&s->workers[i].stats.msgs_in[1]);
    return n;
}

/* The interval of the status line: TCPMSGD_STATUS_INTERVAL seconds (a
 * decimal, at least 0.01), or SERVER_STATUS_INTERVAL_S. 0 when nobody
 * listens (no NOTIFY_SOCKET): the main thread then sleeps until a signal. */
#define SERVER_STATUS_INTERVAL_S 5.0
static uint64_t status_interval_ns(void)
{
    if (!notify_enabled())
        return 0;
    double s = SERVER_STATUS_INTERVAL_S;
    const char *env = getenv("TCPMSGD_STATUS_INTERVAL");
    if (env != NULL && *env != '\0') {
        char *end;
        double v = strtod(env, &end);
        if (*end == '\0' && v >= 0.01 && v <= 3600)
            s = v;
        else
            LOG(LOG_WARN, "TCPMSGD_STATUS_INTERVAL is not seconds between 0.01 and 3600, "
                          "using the default",
                LF_S("value", env), LF_D("interval_s", s));
    }
    return (uint64_t)(s * 1e9);
}

/* Tell systemd what `systemctl status` shows: open connections, messages
 * received in all and per second since the previous line. *last_msgs and
 * *last_ns carry the previous line's count and time. */
static void send_status(struct server *s, uint64_t *last_msgs, uint64_t *last_ns)
{
    uint64_t now = net_now_ns(), msgs = messages_received(s);
    double secs = (double)(now - *last_ns) / 1e9;
    double rate = secs > 0 ? (double)(msgs - *last_msgs) / secs : 0;
    char line[128];
    snprintf(line, sizeof line, "connections=%u messages=%llu messages/s=%.2f",
             admission_open(&s->admission), (unsigned long long)msgs, rate);
    report_notify(notify_status(line), "status");
    *last_msgs = msgs;
    *last_ns = now;
}

/* Until SIGINT or SIGTERM arrives, with a status line for systemd every
 * interval while it listens. Returns the signal. */
static int wait_for_stop(struct server *s, const sigset_t *set)
{
    uint64_t interval = status_interval_ns();
    uint64_t last_msgs = messages_received(s), last_ns = net_now_ns();
    for (;;) {
        int sig = wait_signal(set, interval);
        if (sig > 0)
            return sig;
        send_status(s, &last_msgs, &last_ns); /* the interval passed (EAGAIN) */
    }
}

int server_wait(struct server *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = wait_for_stop(s, &set);
    uint64_t drain_ns = (uint64_t)(s->cfg->drain_timeout * 1e9);
    LOG(LOG_INFO, "shutting down: no new connections, draining", LF_S("signal", strsignal(sig)),
        LF_U("open_conns", admission_open(&s->admission)), LF_D("drain_timeout_s", s->cfg->drain_timeout));
    char status[96];
    snprintf(status, sizeof status, "draining connections=%u", admission_open(&s->admission));
    report_notify(notify_stopping(status), "stopping");
    atomic_store(&s->shared.drain_deadline_ns, net_now_ns() + drain_ns);
    atomic_store(&s->draining, 1);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_request_drain(&s->workers[i]);

    /* Wait for the workers; a second signal cuts the drain short. */
    while (atomic_load(&s->shared.running) > 0) {
        if (wait_signal(&set, 50 * 1000000u) > 0) {
            LOG0(LOG_WARN, "second signal: closing all connections now");
            atomic_store(&s->shared.drain_deadline_ns, 0);
        }
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_join(&s->workers[i]);
    log_totals(s);
    uint64_t cut = 0, lost = 0; /* exact now: every worker (and fork child) has reported */
    for (unsigned i = 0; i < s->nworkers; i++) {
        cut += counter_get(&s->workers[i].stats.closed[CLOSE_DRAIN_TIMEOUT]);
        lost += counter_get(&s->workers[i].stats.drain_lost_bytes);
    }
    if (cut > 0) {
        LOG(LOG_WARN, "the drain timed out: replies were lost", LF_U("connections", cut),
            LF_U("unsent_bytes", lost), LF_D("drain_timeout_s", s->cfg->drain_timeout));
        LOG(LOG_INFO, "server stopped", LF_S("address", s->bound));
        return SERVER_EXIT_REPLIES_LOST;
    }
    LOG(LOG_INFO, "server stopped", LF_S("address", s->bound));
    return 0;
}

void server_destroy(struct server *s)
{
    http_stop(atomic_exchange(&s->http, NULL));
    free_web_config(s); /* after the endpoint that used it */
    if (s->workers != NULL) {
        for (unsigned i = 0; i < s->nworkers; i++)
            worker_destroy(&s->workers[i]);
    }
    free(s->workers);
    admission_destroy(&s->admission);
    membudget_free(s->budget);
    s->workers = NULL;
    s->budget = NULL;
    if (s->fork != NULL)
        fork_state_destroy(s->fork);
    free(s->fork);
    s->fork = NULL;
    closed_ring_destroy(&s->closed);
}
