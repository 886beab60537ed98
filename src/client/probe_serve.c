/* probe_serve: tcpmsg probe --serve's /probe endpoint, the multi-target
 * pattern of Prometheus's blackbox_exporter: Prometheus holds the target
 * list and asks GET /probe?target=HOST:PORT at each scrape; one probe (a
 * connect and a few round trips) runs on a thread of its own while the
 * HTTP thread goes on serving, and the answer is Prometheus text about that
 * target alone. The continuous probing of fixed targets is probe.c.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "client/probe.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/http.h"
#include "tcpmsg/net.h"

#define SERVE_COUNT_DEFAULT 3
#define SERVE_COUNT_MAX 100
#define SERVE_SIZE_MAX 65536
#define SERVE_TIMEOUT_MAX 60.0

/* One /probe request: what to probe, and where the answer goes. */
struct job {
    struct probe *p;
    struct http_deferred *answer;
    char target[300];
    char host[256];
    uint16_t port;
    unsigned count;
    size_t size;
    double timeout_s; /* for the whole probe, as blackbox_exporter's */
};

/* What one probe found. */
struct outcome {
    int failure; /* enum probe_failure, or -1: every round trip succeeded */
    double connect_s, duration_s;
    unsigned sent, answered;
    double rtt_s[SERVE_COUNT_MAX];
};

static const char *const outcome_tags[] = {
#define SERVE_TAG(name, tag, text) tag,
    PROBE_SERVE_OUTCOMES(SERVE_TAG)
#undef SERVE_TAG
};

const char *probe_serve_outcome_tag(enum probe_serve_outcome o)
{
    return (unsigned)o < PROBE_SERVE_OUTCOME_COUNT ? outcome_tags[o] : "unknown";
}

static double seconds_since(uint64_t t0)
{
    return (double)(net_now_ns() - t0) / 1e9;
}

/* Milliseconds of the probe's time left, at least 1. */
static int left_ms(const struct job *j, uint64_t t0)
{
    double left = j->timeout_s - seconds_since(t0);
    return left * 1000 >= 1 ? (int)(left * 1000) : 1;
}

/* Connect, then count round trips of a framed message of size bytes, each
 * checked byte for byte, all within the timeout. */
static void run_probe(const struct job *j, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->failure = PROBE_FAIL_CONNECT;
    uint64_t t0 = net_now_ns();
    size_t wire = FRAME_HEADER_SIZE + j->size;
    uint8_t *buf = malloc(2 * wire);
    struct sockaddr_storage ss;
    socklen_t len;
    char err[300];
    int fd = -1;
    if (buf != NULL && net_resolve(j->host, j->port, false, &ss, &len, err, sizeof err) == 0)
        fd = net_connect((struct sockaddr *)&ss, len, left_ms(j, t0));
    o->connect_s = seconds_since(t0);
    if (fd >= 0)
        o->failure = -1;
    for (unsigned i = 0; fd >= 0 && i < j->count && o->failure < 0; i++) {
        frame_header_encode(buf, FRAME_DATA, j->size);
        int k = snprintf((char *)buf + FRAME_HEADER_SIZE, j->size + 1, "probe %u ", i);
        for (size_t b = k > 0 ? (size_t)k : 0; b < j->size; b++)
            buf[FRAME_HEADER_SIZE + b] = (uint8_t)('a' + b % 26);
        uint64_t s0 = net_now_ns();
        o->sent++;
        int rc = net_write_all(fd, buf, wire, left_ms(j, t0));
        if (rc == 0)
            rc = net_read_full(fd, buf + wire, wire, left_ms(j, t0));
        if (rc == -ETIMEDOUT)
            o->failure = PROBE_FAIL_TIMEOUT;
        else if (rc < 0)
            o->failure = PROBE_FAIL_CLOSED;
        else if (memcmp(buf, buf + wire, wire) != 0)
            o->failure = PROBE_FAIL_MISMATCH;
        else
            o->rtt_s[o->answered++] = (double)(net_now_ns() - s0) / 1e9;
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    o->duration_s = seconds_since(t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The answer: Prometheus text 0.0.4 about this one probe, as
 * blackbox_exporter answers (probe_success, probe_duration_seconds), plus
 * the connect time, the round trips and the reason of a failure. */
static char *render(const struct job *j, struct outcome *o, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (f == NULL)
        return NULL;
#define FAMILY(name, type, help) fprintf(f, "# HELP %s %s.\n# TYPE %s %s\n", name, help, name, type)
    FAMILY("probe_success", "gauge", "1 if the connect and every round trip succeeded, else 0");
    fprintf(f, "probe_success %d\n", o->failure < 0 ? 1 : 0);
    FAMILY("probe_duration_seconds", "gauge", "Time the whole probe took");
    fprintf(f, "probe_duration_seconds %.9f\n", o->duration_s);
    FAMILY("probe_connect_seconds", "gauge",
           "Time to resolve the target and connect (to give up, when it failed)");
    fprintf(f, "probe_connect_seconds %.9f\n", o->connect_s);
    FAMILY("probe_messages_sent", "gauge", "Messages the probe sent");
    fprintf(f, "probe_messages_sent %u\n", o->sent);
    FAMILY("probe_messages_answered", "gauge", "Messages answered correctly");
    fprintf(f, "probe_messages_answered %u\n", o->answered);
    FAMILY("probe_rtt_seconds", "summary", "Round-trip times of the probe's messages");
    double sum = 0;
    for (unsigned i = 0; i < o->answered; i++)
        sum += o->rtt_s[i];
    qsort(o->rtt_s, o->answered, sizeof o->rtt_s[0], cmp_double);
    static const double quantiles[] = { 0, 0.5, 0.9, 1 };
    for (size_t q = 0; q < sizeof quantiles / sizeof quantiles[0]; q++) {
        /* Nearest rank over so few samples; NaN when there are none. */
        double v = NAN;
        if (o->answered > 0) {
            size_t rank = (size_t)ceil(quantiles[q] * o->answered);
            v = o->rtt_s[rank > 0 ? rank - 1 : 0];
        }
        if (isnan(v)) /* Prometheus spells it NaN */
            fprintf(f, "probe_rtt_seconds{quantile=\"%g\"} NaN\n", quantiles[q]);
        else
            fprintf(f, "probe_rtt_seconds{quantile=\"%g\"} %.9f\n", quantiles[q], v);
    }
    fprintf(f, "probe_rtt_seconds_sum %.9f\nprobe_rtt_seconds_count %u\n", sum, o->answered);
    FAMILY("probe_failed_reason", "gauge",
           "1 for the reason the probe failed (the others 0; all 0 when it succeeded)");
    for (int r = 0; r < PROBE_FAIL_COUNT; r++)
        fprintf(f, "probe_failed_reason{reason=\"%s\"} %d\n", probe_failure_tag(r),
                o->failure == r ? 1 : 0);
#undef FAMILY
    (void)j;
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    struct outcome *o = malloc(sizeof *o);
    struct http_response resp = { .status = 500,
                                  .content_type = "text/plain; version=0.0.4; charset=utf-8" };
    if (o != NULL) {
        run_probe(j, o);
        resp.body = render(j, o, &resp.len);
        resp.status = resp.body != NULL ? 200 : 500;
        atomic_fetch_add(&j->p->served[o->failure < 0 ? PROBE_SERVE_SUCCESS : PROBE_SERVE_FAILURE], 1);
    }
    if (resp.body == NULL) {
        resp.body = strdup("500 out of memory\n");
        resp.len = resp.body != NULL ? strlen(resp.body) : 0;
    }
    struct probe *p = j->p;
    http_deferred_complete(j->answer, &resp);
    free(o);
    free(j);
    atomic_fetch_sub(&p->serving, 1); /* last: probe_serve_wait may free p after this */
    return NULL;
}

static void answer_now(struct http_response *resp, unsigned status, const char *text)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body = strdup(text);
    resp->len = resp->body != NULL ? strlen(resp->body) : 0;
}

/* A query number in [min, max], or def when absent: false when malformed. */
static bool query_number(const struct http_request *req, const char *key, double def, double min,
                         double max, double *out)
{
    const char *v = http_query(req, key);
    if (v == NULL) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !(x >= min && x <= max))
        return false;
    *out = x;
    return true;
}

void probe_serve_route(struct probe *p, const struct http_request *req,
                       struct http_response *resp)
{
    const char *target = http_query(req, "target");
    struct job *j = calloc(1, sizeof *j);
    double count, size, timeout;
    if (j == NULL) {
        answer_now(resp, 500, "500 out of memory\n");
        return;
    }
    const char *bad = NULL;
    if (target == NULL || target[0] == '\0')
        bad = "400 the target parameter is missing: /probe?target=HOST:PORT\n";
    else if (strlen(target) >= sizeof j->target ||
             net_split_hostport(target, j->host, sizeof j->host, &j->port, CLIENT_DEFAULT_PORT) < 0)
        bad = "400 target is not HOST:PORT ([IPv6]:PORT for an IPv6 address)\n";
    else if (!query_number(req, "count", SERVE_COUNT_DEFAULT, 1, SERVE_COUNT_MAX, &count) ||
             count != floor(count))
        bad = "400 count must be a whole number from 1 to 100\n";
    else if (!query_number(req, "size", (double)p->cfg->size, 0, SERVE_SIZE_MAX, &size) ||
             size != floor(size))
        bad = "400 size must be a whole number of bytes from 0 to 65536\n";
    else if (!query_number(req, "timeout", p->cfg->timeout, 0.001, SERVE_TIMEOUT_MAX, &timeout))
        bad = "400 timeout must be seconds from 0.001 to 60\n";
    if (bad != NULL) {
        atomic_fetch_add(&p->served[PROBE_SERVE_BAD_REQUEST], 1);
        answer_now(resp, 400, bad);
        free(j);
        return;
    }
    snprintf(j->target, sizeof j->target, "%s", target);
    j->p = p;
    j->count = (unsigned)count;
    j->size = (size_t)size;
    j->timeout_s = timeout;
    if ((j->answer = http_defer(req)) == NULL) {
        atomic_fetch_add(&p->served[PROBE_SERVE_BUSY], 1);
        answer_now(resp, 503, "503 too many probes in flight; try again\n");
        free(j);
        return;
    }
    atomic_fetch_add(&p->serving, 1);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_main, j) != 0) {
        struct http_response r = { 0 };
        answer_now(&r, 503, "503 cannot start a probe thread; try again\n");
        atomic_fetch_add(&p->served[PROBE_SERVE_BUSY], 1);
        http_deferred_complete(j->answer, &r);
        atomic_fetch_sub(&p->serving, 1);
        free(j);
    }
    pthread_attr_destroy(&attr);
    resp->status = HTTP_DEFERRED;
}

void probe_serve_wait(struct probe *p)
{
    /* Each probe ends within its timeout (60 s at most). */
    while (atomic_load(&p->serving) > 0)
        usleep(10000);
}
