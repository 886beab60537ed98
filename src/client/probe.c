/* probe: tcpmsg probe. One thread per target sends a small framed (or text)
 * message every --interval (with +-10% jitter), checks the echo, prints a
 * line per probe and keeps the target's RTT histogram and loss counters.
 * A lost probe closes the connection; reconnecting backs off from the
 * interval up to MAX_BACKOFF_S. With --http-port the results are served as
 * Prometheus metrics through the shared HTTP module.
 */
#include "client/probe.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/http.h"
#include "tcpmsg/net.h"

#define MAX_BACKOFF_S 10.0
#define JITTER 0.1            /* each interval is drawn from +-10% of --interval */
#define SLEEP_SLICE_NS 50000000ull /* a stop request is noticed this fast */

/* Lock-free atomics are safe in a signal handler and between threads. */
static atomic_int stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

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

static double wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- output ------------------------------------------------------------------ */

/* One line per probe; printf holds the stream lock, so lines of different
 * targets never interleave. */
static void print_probe(const struct probe_target *t, int fail, uint64_t rtt_ns, const char *detail)
{
    const struct client_config *cfg = t->cfg;
    if (!cfg->json) {
        if (fail < 0)
            printf("probe %s seq=%llu rtt=%.1f us\n", t->name, (unsigned long long)t->seq,
                   rtt_ns / 1e3);
        else
            printf("probe %s seq=%llu lost: %s (%s)\n", t->name, (unsigned long long)t->seq,
                   probe_failure_tag(fail), detail);
        fflush(stdout);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("probe"));
    json_object_set_new(o, "time", json_real(wall_time()));
    json_object_set_new(o, "target", json_string(t->name));
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

static void print_summary(const struct probe_target *t)
{
    uint64_t n = counter_get(&t->probes), lost = 0;
    for (int f = 0; f < PROBE_FAIL_COUNT; f++)
        lost += counter_get(&t->failures[f]);
    double pct = n > 0 ? 100.0 * (double)lost / (double)n : 0;
    const struct hist *h = &t->rtt;
    if (t->cfg->json) {
        json_t *o = json_object();
        json_object_set_new(o, "event", json_string("summary"));
        json_object_set_new(o, "target", json_string(t->name));
        json_object_set_new(o, "probes", json_integer((json_int_t)n));
        json_object_set_new(o, "lost", json_integer((json_int_t)lost));
        json_object_set_new(o, "loss_pct", json_real(pct));
        json_t *rtt = json_object();
        json_object_set_new(rtt, "min", json_real(hist_min(h) / 1e3));
        json_object_set_new(rtt, "p50", json_real(hist_percentile(h, 50) / 1e3));
        json_object_set_new(rtt, "p99", json_real(hist_percentile(h, 99) / 1e3));
        json_object_set_new(rtt, "max", json_real(hist_max(h) / 1e3));
        json_object_set_new(o, "rtt_us", rtt);
        char *str = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (str != NULL)
            printf("%s\n", str);
        free(str);
        json_decref(o);
        return;
    }
    printf("--- %s: %llu probes, %llu lost (%.1f%%), rtt min/p50/p99/max = %.1f/%.1f/%.1f/%.1f us\n",
           t->name, (unsigned long long)n, (unsigned long long)lost, pct, hist_min(h) / 1e3,
           hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3, hist_max(h) / 1e3);
}

/* --- one probe ---------------------------------------------------------------- */

static void lose(struct probe_target *t, enum probe_failure f, const char *detail)
{
    counter_add(&t->failures[f], 1);
    atomic_store(&t->up, 0);
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
    bool resolved = net_resolve(t->host, t->port, false, &ss, &len, err, sizeof err) == 0;
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
        t->backoff_s = 0;
        print_probe(t, -1, rtt, NULL);
    }
}

/* --- the loop ---------------------------------------------------------------- */

static bool should_stop(const struct probe_target *t, uint64_t end_ns)
{
    const struct client_config *cfg = t->cfg;
    return stop_requested || net_now_ns() >= end_ns ||
           (cfg->count > 0 && counter_get(&t->probes) >= cfg->count);
}

/* Sleep until t_ns in short slices, so a stop request is seen quickly. */
static void sleep_until(uint64_t t_ns, uint64_t end_ns)
{
    for (uint64_t now = net_now_ns(); now < t_ns && now < end_ns && !stop_requested;
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
        sleep_until(next, end);
        if (should_stop(t, end))
            break;
        probe_once(t);
        next += (uint64_t)(period * (1 - JITTER + 2 * JITTER * uniform(&t->rng)));
        if (next < net_now_ns())
            next = net_now_ns(); /* after a long timeout: no burst to catch up */
    }
    return NULL;
}

/* --- HTTP -------------------------------------------------------------------- */

static void route(void *ctx, const struct http_request *req, struct http_response *resp)
{
    struct probe *p = ctx;
    if (p->cfg->serve && strcmp(http_path(req), "/probe") == 0) {
        probe_serve_route(p, req, resp);
        return;
    }
    if (strcmp(http_path(req), "/metrics") != 0)
        return; /* 404 */
    resp->body = probe_metrics_prometheus(p, &resp->len);
    resp->status = resp->body != NULL ? 200 : 500;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (resp->body == NULL) {
        resp->body = strdup("out of memory\n");
        resp->len = resp->body != NULL ? strlen(resp->body) : 0;
    }
}

static struct http_server *start_http(struct probe *p)
{
    struct http_options o;
    http_options_defaults(&o);
    o.bind = p->cfg->http_bind;
    o.port = (uint16_t)p->cfg->http_port;
    char err[256];
    struct http_server *h = http_start(&o, route, (void *)p, err, sizeof err);
    if (h == NULL)
        fprintf(stderr, "tcpmsg: metrics endpoint: %s\n", err);
    else if (p->cfg->serve)
        fprintf(stderr, "tcpmsg probe: probes at http://%s/probe?target=HOST:PORT, metrics at "
                        "/metrics http_port=%u\n",
                http_bound(h), (unsigned)http_port(h));
    else
        fprintf(stderr, "tcpmsg probe: metrics at http://%s/metrics http_port=%u\n",
                http_bound(h), (unsigned)http_port(h));
    return h;
}

/* --- set-up ------------------------------------------------------------------ */

static int init_targets(struct probe *p)
{
    const struct client_config *cfg = p->cfg;
    p->ntargets = cfg->nmessages;
    p->targets = calloc(p->ntargets, sizeof *p->targets);
    if (p->targets == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < p->ntargets; i++) {
        struct probe_target *t = &p->targets[i];
        t->cfg = cfg;
        t->fd = -1;
        t->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15u + i * 0xbf58476d1ce4e5b9u;
        hist_init(&t->rtt);
        snprintf(t->name, sizeof t->name, "%s", cfg->messages[i]);
        if (net_split_hostport(cfg->messages[i], t->host, sizeof t->host, &t->port,
                               CLIENT_DEFAULT_PORT) < 0)
            return -EINVAL; /* checked by the config already */
        t->buf = malloc(2 * (cfg->size + FRAME_HEADER_SIZE));
        if (t->buf == NULL)
            return -ENOMEM;
    }
    return 0;
}

static void free_targets(struct probe *p)
{
    for (size_t i = 0; p->targets != NULL && i < p->ntargets; i++) {
        if (p->targets[i].fd >= 0)
            close(p->targets[i].fd);
        free(p->targets[i].buf);
    }
    free(p->targets);
}

static void catch_stop_signals(void)
{
    struct sigaction sa = { .sa_handler = on_stop_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* --serve with no target of its own: wait for SIGINT/SIGTERM, or the end
 * of --duration. */
static void serve_until_stopped(const struct client_config *cfg)
{
    uint64_t end = end_time(cfg);
    while (!stop_requested && net_now_ns() < end)
        sleep_until(net_now_ns() + SLEEP_SLICE_NS, end);
}

int probe_run(const struct client_config *cfg)
{
    struct probe p = { .cfg = cfg };
    struct http_server *http = NULL;
    int rc = init_targets(&p);
    if (rc == 0 && cfg->http_port >= 0 && (http = start_http(&p)) == NULL)
        rc = -EADDRINUSE;
    if (rc < 0) {
        if (rc == -ENOMEM)
            fprintf(stderr, "tcpmsg: out of memory\n");
        free_targets(&p);
        return rc == -ENOMEM ? EXIT_IO : EXIT_USAGE;
    }
    catch_stop_signals();
    size_t started = 0;
    while (started < p.ntargets &&
           pthread_create(&p.targets[started].thread, NULL, target_main, &p.targets[started]) == 0)
        started++;
    if (p.ntargets == 0) /* --serve alone: answer /probe until stopped */
        serve_until_stopped(cfg);
    for (size_t i = 0; i < started; i++)
        pthread_join(p.targets[i].thread, NULL);
    probe_serve_wait(&p);
    http_stop(http);
    uint64_t lost = 0;
    for (size_t i = 0; i < p.ntargets; i++) {
        print_summary(&p.targets[i]);
        for (int f = 0; f < PROBE_FAIL_COUNT; f++)
            lost += counter_get(&p.targets[i].failures[f]);
    }
    fflush(stdout);
    free_targets(&p);
    return started < p.ntargets ? EXIT_IO : lost > 0 ? EXIT_IO : EXIT_OK;
}
