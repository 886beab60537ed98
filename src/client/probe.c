/* probe: tcpmsg probe. One thread per target sends a small framed (or text)
 * message every --interval (with +-10% jitter), checks the echo, prints a
 * line per probe and keeps the target's RTT histogram and loss counters.
 * A lost probe closes the connection; reconnecting backs off from the
 * interval up to MAX_BACKOFF_S. With --http-port the results are served as
 * Prometheus metrics, JSON and a status page through the shared HTTP
 * module. The main thread supervises: it takes the signals, reloads the
 * --targets file (probe_reload.c) and joins the threads of removed targets.
 */
#include "client/probe.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "client/client.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/http.h"
#include "tcpmsg/net.h"
#include "tcpmsg/webroot.h"

#define MAX_BACKOFF_S 10.0
#define JITTER 0.1            /* each interval is drawn from +-10% of --interval */
#define SLEEP_SLICE_NS 50000000ull /* a stop request is noticed this fast */

/* Set by the main thread when SIGINT or SIGTERM arrives; every target's
 * thread looks at it between probes. */
static atomic_int stop_requested;

static const char *const failure_tags[] = {
#define PROBE_FAIL_TAG(name, tag, text) tag,
    PROBE_FAILURES(PROBE_FAIL_TAG)
#undef PROBE_FAIL_TAG
};

const char *probe_failure_tag(enum probe_failure f)
{
    return (unsigned)f < PROBE_FAIL_COUNT ? failure_tags[f] : "unknown";
}

static double uniform(uint64_t *s) /* xorshift64: [0, 1) */
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* --- output ------------------------------------------------------------------ */

/* One line per probe; printf holds the stream lock, so lines of different
 * targets never interleave. */
static void print_probe(const struct probe_target *t, int fail, uint64_t rtt_ns, const char *detail)
{
    const struct client_config *cfg = t->cfg;
    if (!cfg->json) {
        if (fail < 0)
            printf("probe %s seq=%llu rtt=%.1f us\n", t->spec.name, (unsigned long long)t->seq,
                   rtt_ns / 1e3);
        else
            printf("probe %s seq=%llu lost: %s (%s)\n", t->spec.name, (unsigned long long)t->seq,
                   probe_failure_tag(fail), detail);
        fflush(stdout);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("probe"));
    json_object_set_new(o, "time", json_real(net_wall_s()));
    json_object_set_new(o, "target", json_string(t->spec.name));
    json_object_set_new(o, "seq", json_integer((json_int_t)t->seq));
    json_object_set_new(o, "ok", json_boolean(fail < 0));
    if (fail < 0)
        json_object_set_new(o, "rtt_us", json_real(rtt_ns / 1e3));
    else
        json_object_set_new(o, "failure", json_string(probe_failure_tag(fail)));
    if (fail >= 0)
        json_object_set_new(o, "detail", json_string(detail));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (s != NULL)
        printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

uint64_t probe_target_lost(const struct probe_target *t)
{
    uint64_t lost = 0;
    for (int f = 0; f < PROBE_FAIL_COUNT; f++)
        lost += counter_get(&t->failures[f]);
    return lost;
}

/* why: NULL at the end of the run, or what ended the target early. */
void probe_target_summary(const struct probe_target *t, const char *why)
{
    uint64_t n = counter_get(&t->probes), lost = probe_target_lost(t);
    double pct = n > 0 ? 100.0 * (double)lost / (double)n : 0;
    const struct hist *h = &t->rtt;
    if (t->cfg->json) {
        json_t *o = json_object();
        json_object_set_new(o, "event", json_string("summary"));
        json_object_set_new(o, "target", json_string(t->spec.name));
        json_object_set_new(o, "probes", json_integer((json_int_t)n));
        json_object_set_new(o, "lost", json_integer((json_int_t)lost));
        json_object_set_new(o, "loss_pct", json_real(pct));
        json_t *rtt = json_object();
        json_object_set_new(rtt, "min", json_real(hist_min(h) / 1e3));
        json_object_set_new(rtt, "p50", json_real(hist_percentile(h, 50) / 1e3));
        json_object_set_new(rtt, "p99", json_real(hist_percentile(h, 99) / 1e3));
        json_object_set_new(rtt, "max", json_real(hist_max(h) / 1e3));
        json_object_set_new(o, "rtt_us", rtt);
        if (why != NULL)
            json_object_set_new(o, "ended", json_string(why));
        char *str = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (str != NULL)
            printf("%s\n", str);
        free(str);
        json_decref(o);
        return;
    }
    printf("--- %s: %llu probes, %llu lost (%.1f%%), rtt min/p50/p99/max = %.1f/%.1f/%.1f/%.1f us%s%s\n",
           t->spec.name, (unsigned long long)n, (unsigned long long)lost, pct, hist_min(h) / 1e3,
           hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3, hist_max(h) / 1e3,
           why != NULL ? "; " : "", why != NULL ? why : "");
}

/* --- one probe ---------------------------------------------------------------- */

/* The status page's view of the latest probe: fail < 0 for a success. */
static void note_recent(struct probe_target *t, int fail, uint64_t rtt_ns, const char *detail)
{
    double now = net_wall_s();
    pthread_mutex_lock(&t->status_lock);
    struct probe_recent *r = &t->recent;
    r->lost_bits = (r->lost_bits << 1) | (fail >= 0);
    if (r->n < PROBE_WINDOW)
        r->n++;
    r->last_time = now;
    if (fail < 0) {
        r->last_rtt_s = (double)rtt_ns / 1e9;
    } else {
        r->last_failure = fail;
        r->last_failure_time = now;
        snprintf(r->last_detail, sizeof r->last_detail, "%s", detail);
    }
    pthread_mutex_unlock(&t->status_lock);
}

static void lose(struct probe_target *t, enum probe_failure f, const char *detail)
{
    counter_add(&t->failures[f], 1);
    atomic_store(&t->up, 0);
    note_recent(t, (int)f, 0, detail);
    print_probe(t, (int)f, 0, detail);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

/* Connect if needed; false when the probe cannot be made now. */
static bool ensure_connected(struct probe_target *t, uint64_t now)
{
    if (t->fd >= 0)
        return true;
    if (now < t->retry_ns)
        return false; /* backing off */
    struct sockaddr_storage ss;
    socklen_t len;
    char err[300] = "";
    bool resolved = net_resolve(t->spec.host, t->spec.port, false, &ss, &len, err, sizeof err) == 0;
    /* A resolution is bounded by the resolver's timeouts, not by --timeout:
     * the run may have ended meanwhile, its summary printed without this
     * target (finish), or the target been removed. Touch nothing more. */
    if (stop_requested || atomic_load(&t->stop))
        return false;
    int fd = resolved ? net_connect((struct sockaddr *)&ss, len, (int)(t->cfg->timeout * 1000))
                      : -EINVAL;
    if (fd >= 0) {
        t->fd = fd;
        return true;
    }
    t->seq++;
    counter_add(&t->probes, 1);
    double base = t->cfg->interval < MAX_BACKOFF_S ? t->cfg->interval : MAX_BACKOFF_S;
    t->backoff_s = t->backoff_s == 0 ? base : t->backoff_s * 2;
    if (t->backoff_s > MAX_BACKOFF_S)
        t->backoff_s = MAX_BACKOFF_S;
    t->retry_ns = now + (uint64_t)(t->backoff_s * 1e9);
    char detail[400];
    snprintf(detail, sizeof detail, "%s; retry in %.1f s",
             !resolved ? err : fd == -ETIMEDOUT ? "timed out" : strerror(-fd),
             t->backoff_s);
    lose(t, PROBE_FAIL_CONNECT, detail);
    return false;
}

/* Write the probe for t->seq into t->buf; returns its wire size. */
static size_t make_probe(struct probe_target *t)
{
    size_t n = t->cfg->size;
    uint8_t *p = t->cfg->text ? t->buf : t->buf + FRAME_HEADER_SIZE;
    if (!t->cfg->text)
        frame_header_encode(t->buf, FRAME_DATA, n);
    int k = snprintf((char *)p, n + 1, "probe %llu ", (unsigned long long)t->seq);
    for (size_t i = k > 0 ? (size_t)k : 0; i < n; i++)
        p[i] = (uint8_t)('a' + i % 26);
    if (t->cfg->text)
        p[n] = '\n';
    return t->cfg->text ? n + 1 : FRAME_HEADER_SIZE + n;
}

/* What is left of ms since t0, at least 1 (0 would mean "no limit"). */
static int remaining_ms(uint64_t t0, int ms)
{
    int left = ms - (int)((net_now_ns() - t0) / 1000000);
    return left > 0 ? left : 1;
}

static void probe_once(struct probe_target *t)
{
    if (!ensure_connected(t, net_now_ns()))
        return;
    t->seq++;
    counter_add(&t->probes, 1);
    size_t wire = make_probe(t);
    uint8_t *reply = t->buf + wire;
    int ms = (int)(t->cfg->timeout * 1000);
    uint64_t t0 = net_now_ns();
    int rc = net_write_all(t->fd, t->buf, wire, ms);
    if (rc == 0)
        rc = net_read_full(t->fd, reply, wire, remaining_ms(t0, ms));
    uint64_t rtt = net_now_ns() - t0;
    if (rc == -ETIMEDOUT) {
        char d[64];
        snprintf(d, sizeof d, "no reply within %g s", t->cfg->timeout);
        lose(t, PROBE_FAIL_TIMEOUT, d);
    } else if (rc < 0) {
        lose(t, PROBE_FAIL_CLOSED, rc == -ECONNRESET ? "connection closed" : strerror(-rc));
    } else if (memcmp(reply, t->buf, wire) != 0) {
        lose(t, PROBE_FAIL_MISMATCH, "the reply differs from the probe");
    } else {
        hist_record(&t->rtt, rtt);
        atomic_store(&t->up, 1);
        note_recent(t, -1, rtt, NULL);
        t->backoff_s = 0;
        print_probe(t, -1, rtt, NULL);
    }
}

/* --- the loop ---------------------------------------------------------------- */

static bool should_stop(const struct probe_target *t, uint64_t end_ns)
{
    const struct client_config *cfg = t->cfg;
    return stop_requested || atomic_load(&t->stop) || net_now_ns() >= end_ns ||
           (cfg->count > 0 && counter_get(&t->probes) >= cfg->count);
}

/* Sleep until t_ns in short slices, so a stop request is seen quickly. */
static void sleep_until(const struct probe_target *t, uint64_t t_ns, uint64_t end_ns)
{
    for (uint64_t now = net_now_ns();
         now < t_ns && now < end_ns && !stop_requested && !atomic_load(&t->stop);
         now = net_now_ns()) {
        uint64_t d = t_ns - now < SLEEP_SLICE_NS ? t_ns - now : SLEEP_SLICE_NS;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)d };
        nanosleep(&ts, NULL);
    }
}

static uint64_t end_time(const struct client_config *cfg)
{
    return cfg->duration_set ? net_now_ns() + (uint64_t)(cfg->duration * 1e9) : UINT64_MAX;
}

static void *target_main(void *arg)
{
    struct probe_target *t = arg;
    uint64_t end = end_time(t->cfg);
    double period = t->cfg->interval * 1e9;
    /* Targets start spread over the first interval, not all at once. */
    uint64_t next = net_now_ns() + (uint64_t)(uniform(&t->rng) * period);
    while (!should_stop(t, end)) {
        sleep_until(t, next, end);
        if (should_stop(t, end))
            break;
        probe_once(t);
        next += (uint64_t)(period * (1 - JITTER + 2 * JITTER * uniform(&t->rng)));
        if (next < net_now_ns())
            next = net_now_ns(); /* after a long timeout: no burst to catch up */
    }
    atomic_store(&t->done, true);
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof one) < 0) {
        /* An eventfd write fails only when the counter would overflow:
         * the main thread is awake anyway. */
    }
    return NULL;
}

/* --- HTTP -------------------------------------------------------------------- */

static void answer(struct http_response *resp, char *body, size_t len, const char *type)
{
    resp->body = body;
    resp->len = len;
    resp->status = body != NULL ? 200 : 500;
    resp->content_type = type;
    if (body == NULL) {
        resp->body = strdup("out of memory\n");
        resp->len = resp->body != NULL ? strlen(resp->body) : 0;
        resp->content_type = "text/plain; charset=utf-8";
    }
}

/* /metrics, /api/targets, /probe with --serve; anything else is a file of
 * the web root, "/" the status page (probe.html). */
static void route(void *ctx, const struct http_request *req, struct http_response *resp)
{
    struct probe *p = ctx;
    const char *path = http_path(req);
    size_t len = 0;
    char *body;
    if (p->cfg->serve && strcmp(path, "/probe") == 0) {
        probe_serve_route(p, req, resp);
    } else if (strcmp(path, "/metrics") == 0) {
        body = probe_metrics_prometheus(p, &len);
        answer(resp, body, len, "text/plain; version=0.0.4; charset=utf-8");
    } else if (strcmp(path, "/api/targets") == 0) {
        body = probe_status_json(p, &len);
        answer(resp, body, len, "application/json");
    }
}

static struct http_server *start_http(struct probe *p, const char *web_root)
{
    struct http_options o;
    http_options_defaults(&o);
    o.bind = p->cfg->http_bind;
    o.port = (uint16_t)p->cfg->http_port;
    o.web_root = web_root;
    o.index = "probe.html";
    char err[256];
    struct http_server *h = http_start(&o, route, (void *)p, err, sizeof err);
    if (h == NULL)
        fprintf(stderr, "tcpmsg: metrics endpoint: %s\n", err);
    else if (p->cfg->serve)
        fprintf(stderr, "tcpmsg probe: probes at http://%s/probe?target=HOST:PORT, metrics at "
                        "/metrics, status page at / http_port=%u\n",
                http_bound(h), (unsigned)http_port(h));
    else
        fprintf(stderr, "tcpmsg probe: metrics at http://%s/metrics, status page at / "
                        "http_port=%u\n",
                http_bound(h), (unsigned)http_port(h));
    return h;
}

/* --- targets ----------------------------------------------------------------- */

struct probe_target *probe_target_new(const struct client_config *cfg, const struct probe_spec *spec,
                                      uint64_t seed_index, int wake_fd)
{
    struct probe_target *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cfg = cfg;
    t->spec = *spec;
    t->fd = -1;
    t->wake_fd = wake_fd;
    t->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15u + seed_index * 0xbf58476d1ce4e5b9u;
    t->recent.last_rtt_s = -1;
    t->recent.last_failure = -1;
    hist_init(&t->rtt);
    pthread_mutex_init(&t->status_lock, NULL);
    t->buf = malloc(2 * (cfg->size + FRAME_HEADER_SIZE));
    if (t->buf == NULL) {
        probe_target_free(t);
        return NULL;
    }
    return t;
}

int probe_target_start(struct probe_target *t)
{
    return pthread_create(&t->thread, NULL, target_main, t);
}

void probe_target_free(struct probe_target *t)
{
    if (t == NULL)
        return;
    if (t->fd >= 0)
        close(t->fd);
    pthread_mutex_destroy(&t->status_lock);
    free(t->buf);
    free(t);
}

/* The command line's targets, started. */
static int start_command_line(struct probe *p)
{
    const struct client_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->nmessages; i++) {
        struct probe_spec spec = { .nlabels = 0 };
        snprintf(spec.name, sizeof spec.name, "%s", cfg->messages[i]);
        if (net_split_hostport(cfg->messages[i], spec.host, sizeof spec.host, &spec.port,
                               CLIENT_DEFAULT_PORT) < 0)
            return -EINVAL; /* checked by the config already */
        for (size_t k = 0; k < p->ntargets; k++)
            if (strcmp(p->targets[k]->spec.name, spec.name) == 0) {
                fprintf(stderr, "tcpmsg probe: target '%s' is given twice\n", spec.name);
                return -EINVAL;
            }
        struct probe_target *t = probe_target_new(cfg, &spec, p->next_seed++, p->wake_fd);
        if (t == NULL)
            return -ENOMEM;
        int rc = probe_target_start(t);
        if (rc != 0) {
            fprintf(stderr, "tcpmsg probe: cannot start a thread: %s\n", strerror(rc));
            probe_target_free(t);
            return -rc;
        }
        pthread_mutex_lock(&p->lock);
        p->targets[p->ntargets++] = t;
        p->ncommand_line = p->ntargets;
        pthread_mutex_unlock(&p->lock);
    }
    return 0;
}

void probe_reap_retired(struct probe *p)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->nretiring; i++) {
        struct probe_target *t = p->retiring[i];
        if (!atomic_load(&t->done)) {
            p->retiring[kept++] = t;
            continue;
        }
        pthread_join(t->thread, NULL);
        probe_target_summary(t, "removed from the target file");
        p->lost_retired += probe_target_lost(t);
        probe_target_free(t);
    }
    p->nretiring = kept;
    fflush(stdout);
}

/* --count: every target has made its probes (a target file that lists
 * none yet leaves the probe waiting for a reload). */
static bool all_counted(struct probe *p)
{
    if (p->cfg->count == 0 || p->ntargets == 0)
        return false;
    for (size_t i = 0; i < p->ntargets; i++)
        if (!atomic_load(&p->targets[i]->done))
            return false;
    return true;
}

/* --- the main thread ------------------------------------------------------- */

/* SIGINT and SIGTERM (and SIGHUP with --targets) are blocked in every
 * thread, all created after this, and read by the main thread from a
 * signalfd: a reload then runs as ordinary code, not in a handler. */
static int take_signals(bool reload)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (reload)
        sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Read the pending signals: true when one asks to stop. */
static bool read_signals(struct probe *p, int sigfd)
{
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP)
            probe_reload(p, "SIGHUP");
        else
            stop = true;
    }
    return stop;
}

/* Wait for signals, file changes and ended threads until the run ends:
 * SIGINT/SIGTERM, --duration, or with --count every target done. */
static void supervise(struct probe *p, int sigfd, struct probe_watch *w)
{
    uint64_t end = end_time(p->cfg);
    uint64_t next_check = net_now_ns() + 1000000000ull;
    while (!stop_requested) {
        uint64_t now = net_now_ns();
        if (now >= end || all_counted(p))
            break;
        uint64_t until = next_check < end ? next_check : end;
        int ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;
        struct pollfd fds[3] = { { .fd = sigfd, .events = POLLIN },
                                 { .fd = p->wake_fd, .events = POLLIN },
                                 { .fd = w != NULL ? w->fd : -1, .events = POLLIN } };
        int n = poll(fds, 3, ms);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[0].revents & POLLIN && read_signals(p, sigfd))
            atomic_store(&stop_requested, 1);
        if (fds[1].revents & POLLIN) {
            uint64_t v;
            if (read(p->wake_fd, &v, sizeof v) < 0) { /* EAGAIN: already read */
            }
            probe_reap_retired(p);
        }
        bool events = fds[2].revents & POLLIN;
        /* One reading of the clock for the tick and the watch: the next
         * tick is then at least PROBE_WATCH_HOLD_NS after the state a tick
         * saw first, so a change seen by a tick is believed by the next. */
        now = net_now_ns();
        bool tick = now >= next_check;
        if (tick)
            next_check = now + 1000000000ull;
        if (tick && p->reload_retry)
            probe_reload(p, "retry");
        if (w != NULL && (events || tick) && probe_watch_changed(w, events, now))
            probe_reload(p, "change");
    }
    atomic_store(&stop_requested, 1);
}

/* The status page's directory: --web-root, else the one tcpmsgd finds. */
static const char *status_page_root(const struct client_config *cfg, char *buf, size_t cap)
{
    if (cfg->web_root != NULL)
        return cfg->web_root;
    if (webroot_find(buf, cap) != WEBROOT_NONE)
        return buf;
    /* The metrics do not need it: say so, and go on without a page. */
    fprintf(stderr, "tcpmsg probe: no status page: no web/ in the source tree or in %s; give "
                    "--web-root DIR\n", buf);
    return NULL;
}

/* Wait, up to deadline (net_now_ns), until every thread of list has
 * ended; woken by the eventfd each one writes as it ends. */
static void wait_ended(struct probe *p, struct probe_target *const *list, size_t n,
                       uint64_t deadline)
{
    for (size_t i = 0; i < n;) {
        if (atomic_load(&list[i]->done)) {
            i++;
            continue;
        }
        uint64_t now = net_now_ns();
        if (now >= deadline)
            return;
        struct pollfd pfd = { .fd = p->wake_fd, .events = POLLIN };
        if (poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000)) > 0) {
            uint64_t v;
            if (read(p->wake_fd, &v, sizeof v) < 0) { /* EAGAIN: already read */
            }
        }
    }
}

/* Print the summary of t, count its lost probes into *lost, and free it
 * if its thread has ended. One still in a name resolution (which --timeout
 * does not bound) is left running, not joined nor freed: the process is
 * about to exit, and joining would hold the exit for as long as the
 * resolver takes. True if it was left. */
static bool finish_target(struct probe_target *t, const char *why, uint64_t *lost)
{
    bool running = !atomic_load(&t->done);
    if (running)
        why = "still resolving its name at exit";
    else
        pthread_join(t->thread, NULL);
    probe_target_summary(t, why);
    *lost += probe_target_lost(t);
    if (!running)
        probe_target_free(t);
    return running;
}

/* Stop every target, print the summaries and free them; probes lost in
 * all. A thread ends within two --timeout (a connect, then a reply) and a
 * sleep slice, unless a name resolution holds it: it is waited for that
 * long, plus a second, and no longer. After http_stop: nothing else reads
 * the targets then. */
static uint64_t finish(struct probe *p)
{
    atomic_store(&stop_requested, 1);
    uint64_t lost = p->lost_retired;
    uint64_t deadline = net_now_ns() + (uint64_t)((2 * p->cfg->timeout + 1) * 1e9);
    wait_ended(p, p->targets, p->ntargets, deadline);
    wait_ended(p, p->retiring, p->nretiring, deadline);
    size_t left = 0;
    for (size_t i = 0; i < p->nretiring; i++)
        left += finish_target(p->retiring[i], "removed from the target file", &lost);
    for (size_t i = 0; i < p->ntargets; i++)
        left += finish_target(p->targets[i], NULL, &lost);
    p->ntargets = p->nretiring = 0;
    p->left_running = left;
    fflush(stdout);
    if (left > 0)
        fprintf(stderr, "tcpmsg probe: %zu targets still resolving their names after %g s: "
                        "exiting without them\n", left, 2 * p->cfg->timeout + 1);
    return lost;
}

int probe_run(const struct client_config *cfg)
{
    struct probe p = { .cfg = cfg, .wake_fd = -1 };
    pthread_mutex_init(&p.lock, NULL);
    p.reloads.file = cfg->targets_file;
    struct probe_watch watch = { .fd = -1 };
    struct http_server *http = NULL;
    char web[4096];
    int rc = 0, sigfd = take_signals(cfg->targets_file != NULL);
    p.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sigfd < 0 || p.wake_fd < 0) {
        fprintf(stderr, "tcpmsg probe: signalfd or eventfd: %s\n", strerror(errno));
        rc = -EIO;
    }
    if (rc == 0)
        rc = start_command_line(&p);
    if (rc == 0 && cfg->targets_file != NULL) {
        /* Watched before the first read, so a change in between is seen. */
        probe_watch_open(&watch, cfg->targets_file);
        if (probe_reload(&p, "start") < 0)
            rc = -EINVAL;
    }
    if (rc == 0 && cfg->http_port >= 0 &&
        (http = start_http(&p, status_page_root(cfg, web, sizeof web))) == NULL)
        rc = -EADDRINUSE;
    if (rc == 0)
        supervise(&p, sigfd, cfg->targets_file != NULL ? &watch : NULL);
    /* The endpoint first: it reads the targets that finish frees. */
    probe_serve_wait(&p);
    http_stop(http);
    uint64_t lost = finish(&p);
    if (cfg->targets_file != NULL)
        probe_watch_close(&watch);
    if (sigfd >= 0)
        close(sigfd);
    /* A thread left in a resolution writes the eventfd when it ends: keep
     * it open until the exit, so that write never lands on another file. */
    if (p.wake_fd >= 0 && p.left_running == 0)
        close(p.wake_fd);
    pthread_mutex_destroy(&p.lock);
    if (rc == -ENOMEM)
        fprintf(stderr, "tcpmsg: out of memory\n");
    if (rc < 0)
        return rc == -ENOMEM || rc == -EIO || rc == -EAGAIN ? EXIT_IO : EXIT_USAGE;
    return lost > 0 ? EXIT_IO : EXIT_OK;
}
