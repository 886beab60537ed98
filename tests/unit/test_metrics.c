/* Unit tests for the metrics renderings (src/server/metrics.c): a snapshot
 * built by hand, with a distinct value in every counter so a mix-up shows,
 * rendered as JSON, Prometheus text and OpenMetrics and checked value by
 * value; the histogram-to-Prometheus-bucket conversion at and around bucket
 * bounds; and docs/METRICS.md against metrics_write_markdown().
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/metrics.h"
#include "server/stats.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the snapshot ------------------------------------------------------------ */

/* Values recorded in the snapshot's histograms, chosen at least 1% away from
 * every Prometheus bucket bound, so each lands in its bucket exactly. */
static const uint64_t service_ns[] = { 800, 2500, 2500, 25000, 2500000000ull };
static const uint64_t rtt_ns[] = { 120000, 180000, 4000000 };
static const uint64_t sizes[] = { 0, 3, 3, 100, 5000 };
static const uint64_t per_wakeup[] = { 1, 1, 2, 3, 64, 300 };
static const uint64_t srtt_ns[] = { 45000, 45000, 1200000 };
#define SYSCALLS_BASE 1000

/* Counters get distinct values: closed[i] = 10 + i, rejected[i] = 20 + i,
 * errors[i] = 30 + i; HTTP answers 40 2xx, 41 3xx, 42 4xx, 43 5xx. */
#define CLOSED_BASE 10
#define REJECTED_BASE 20
#define ERRORS_BASE 30
#define RTT_REJECTED_BASE 50
#define HTTP_ERRORS (42 + 43)

static uint64_t sum_of(const uint64_t *v, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

static struct metrics_snapshot *make_snapshot(void)
{
    struct metrics_snapshot *m = calloc(1, sizeof *m);
    assert_non_null(m);
    server_stats_init(&m->stats);
    struct server_stats *st = &m->stats;
    counter_add(&st->accepted, 7);
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++)
        counter_add(&st->closed[i], CLOSED_BASE + i);
    for (size_t i = 0; i < REJECT_REASON_COUNT; i++)
        counter_add(&st->rejected[i], REJECTED_BASE + i);
    for (size_t i = 0; i < ERROR_KIND_COUNT; i++)
        counter_add(&st->errors[i], ERRORS_BASE + i);
    counter_add(&st->msgs_in[STATS_FRAMED], 3);
    counter_add(&st->msgs_in[STATS_TEXT], 5);
    counter_add(&st->msgs_out[STATS_FRAMED], 2);
    counter_add(&st->msgs_out[STATS_TEXT], 4);
    counter_add(&st->bytes_in[STATS_FRAMED], 100);
    counter_add(&st->bytes_in[STATS_TEXT], 200);
    counter_add(&st->bytes_out[STATS_FRAMED], 300);
    counter_add(&st->bytes_out[STATS_TEXT], 400);
    counter_add(&st->rtt_reports, 6);
    for (size_t i = 0; i < RTT_REJECT_COUNT; i++)
        counter_add(&st->rtt_rejected[i], RTT_REJECTED_BASE + i);
    for (size_t i = 0; i < COUNT_OF(service_ns); i++)
        hist_record(&st->service_ns, service_ns[i]);
    for (size_t i = 0; i < COUNT_OF(rtt_ns); i++)
        hist_record(&st->client_rtt_ns, rtt_ns[i]);
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        hist_record(&st->msg_bytes, sizes[i]);
    for (size_t i = 0; i < COUNT_OF(per_wakeup); i++)
        hist_record(&st->msgs_per_wakeup, per_wakeup[i]);
    for (size_t i = 0; i < SYSCALL_OP_COUNT; i++)
        counter_add(&st->syscalls[i], SYSCALLS_BASE + i);
    counter_add(&st->wakeups, 77);
    counter_add(&st->tcp_retrans, 9);
    counter_add(&st->tcp_busy_us, 1500000);   /* microseconds: exported as 1.5 s */
    counter_add(&st->tcp_rwnd_limited_us, 250000);
    counter_add(&st->tcp_sndbuf_limited_us, 3);
    for (size_t i = 0; i < COUNT_OF(srtt_ns); i++)
        hist_record(&st->tcp_srtt_ns, srtt_ns[i]);
    /* Stage k holds the first k + 1 service times, so each member of the
     * family is told apart by its count. */
    for (int k = 0; k < STAGE_COUNT; k++)
        for (int i = 0; i <= k; i++)
            hist_record(server_stats_stage(st, (enum stage)k), service_ns[i]);
    counter_add(&st->stage_dropped, 11);
    m->stage_sample = 100;
    m->conns_open = 2;
    m->max_conns = 10000;
    m->workers = 3;
    m->draining = true;
    m->version = "9.8.7";
    m->mode = "epoll";
    m->io = "uring";
    m->address = "127.0.0.1:8080";
    m->start_time_s = 1795625360.125;
    m->uptime_s = 12.5;
    m->rss_bytes = 4096000;
    m->open_fds = 17;
    m->cpu_seconds = 1.25;
    m->http_responses[2] = 40;
    m->http_responses[3] = 41;
    m->http_responses[4] = 42;
    m->http_responses[5] = 43;
    for (unsigned i = 0; i < HTTP_AUTH_FAILURE_COUNT; i++)
        m->http_auth_failures[i] = 50 + i;
    return m;
}

/* ---- JSON ---------------------------------------------------------------------- */

static json_t *parse_json(const char *text)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (root == NULL)
        fail_msg("metrics_json is not JSON: %s (line %d)", err.text, err.line);
    return root;
}

static json_t *get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        fail_msg("JSON: no key '%s'", key);
    return v;
}

static void expect_int(json_t *obj, const char *key, json_int_t want)
{
    json_t *v = get(obj, key);
    if (!json_is_integer(v))
        fail_msg("JSON: '%s' is not an integer", key);
    if (json_integer_value(v) != want)
        fail_msg("JSON: '%s' is %lld, want %lld", key, (long long)json_integer_value(v),
                 (long long)want);
}

static void expect_num(json_t *obj, const char *key, double want)
{
    json_t *v = get(obj, key);
    if (!json_is_number(v))
        fail_msg("JSON: '%s' is not a number", key);
    double got = json_number_value(v);
    if (fabs(got - want) > 1e-12 * fmax(1, fabs(want)))
        fail_msg("JSON: '%s' is %.17g, want %.17g", key, got, want);
}

/* A labelled counter: an object with exactly the label values given. */
static void expect_labelled(json_t *counters, const char *name, const char *const *labels,
                            const json_int_t *values, size_t n)
{
    json_t *o = get(counters, name);
    assert_true(json_is_object(o));
    if (json_object_size(o) != n)
        fail_msg("JSON: %s has %zu label values, want %zu", name, json_object_size(o), n);
    for (size_t i = 0; i < n; i++)
        expect_int(o, labels[i], values[i]);
}

/* Regression: JSON printed a histogram's count with json_integer of the
 * uint64, so a count past INT64_MAX (13.7k poisoned RTT reports, each of
 * 2^32-1 samples at 4.9 h) showed negative. Counts now stop at INT64_MAX. */
static void test_json_saturated_counts(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    hist_record_n(&m->stats.client_rtt_ns, HIST_MAX_VALUE, UINT64_MAX - 10);
    counter_add(&m->stats.rtt_rejected[RTT_REJECT_MALFORMED], UINT64_MAX - 100);
    char *text = metrics_json(m);
    assert_non_null(text);
    json_t *root = parse_json(text);
    json_t *h = get(get(root, "histograms"), "client_rtt_seconds");
    expect_int(h, "count", INT64_MAX);
    json_t *buckets = get(h, "buckets");
    for (size_t i = 0; i < json_array_size(buckets); i++)
        assert_true(json_integer_value(get(json_array_get(buckets, i), "count")) > 0);
    json_t *rej = get(get(root, "counters"), "client_rtt_reports_rejected_total");
    expect_int(rej, "malformed", INT64_MAX);
    json_decref(root);
    free(text);
    free(m);
}

static void test_json_counters_and_gauges(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    char *text = metrics_json(m);
    assert_non_null(text);
    json_t *root = parse_json(text);

    json_t *server = get(root, "server");
    assert_string_equal(json_string_value(get(server, "version")), "9.8.7");
    assert_string_equal(json_string_value(get(server, "mode")), "epoll");
    assert_string_equal(json_string_value(get(server, "io")), "uring");
    assert_string_equal(json_string_value(get(server, "address")), "127.0.0.1:8080");

    /* The loops at a glance: system calls by kind, wakeups, messages per
     * wakeup. */
    json_t *sys = get(root, "syscalls");
    assert_int_equal(json_object_size(sys), SYSCALL_OP_COUNT);
    expect_int(sys, "read", SYSCALLS_BASE);
    expect_int(sys, "io_uring_enter", SYSCALLS_BASE + STATS_SYS_IO_URING_ENTER);
    expect_int(sys, "timerfd_settime", SYSCALLS_BASE + SYSCALL_OP_COUNT - 1);
    json_t *loop = get(root, "loop");
    expect_int(loop, "wakeups", 77);
    expect_int(get(loop, "messages_per_wakeup"), "count", COUNT_OF(per_wakeup));
    expect_int(server, "workers", 3);
    assert_true(json_is_true(get(server, "draining")));
    expect_num(server, "start_time_seconds", 1795625360.125);
    expect_num(server, "uptime_seconds", 12.5);

    json_t *c = get(root, "counters");
    expect_int(c, "connections_accepted_total", 7);
    const char *close_tags[CLOSE_REASON_COUNT];
    json_int_t closed[CLOSE_REASON_COUNT];
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++) {
        close_tags[i] = close_reason_tag((enum close_reason)i);
        closed[i] = CLOSED_BASE + (json_int_t)i;
    }
    expect_labelled(c, "connections_closed_total", close_tags, closed, CLOSE_REASON_COUNT);
    const char *reject_tags[REJECT_REASON_COUNT];
    json_int_t rejected[REJECT_REASON_COUNT];
    for (size_t i = 0; i < REJECT_REASON_COUNT; i++) {
        reject_tags[i] = reject_reason_tag((enum reject_reason)i);
        rejected[i] = REJECTED_BASE + (json_int_t)i;
    }
    expect_labelled(c, "connections_rejected_total", reject_tags, rejected, REJECT_REASON_COUNT);
    const char *error_tags[ERROR_KIND_COUNT + 1];
    json_int_t errors[ERROR_KIND_COUNT + 1];
    for (size_t i = 0; i < ERROR_KIND_COUNT; i++) {
        error_tags[i] = error_kind_tag((enum error_kind)i);
        errors[i] = ERRORS_BASE + (json_int_t)i;
    }
    error_tags[ERROR_KIND_COUNT] = "http"; /* 4xx and 5xx answers */
    errors[ERROR_KIND_COUNT] = HTTP_ERRORS;
    expect_labelled(c, "errors_total", error_tags, errors, ERROR_KIND_COUNT + 1);

    static const char *const modes[] = { "framed", "text" };
    expect_labelled(c, "messages_received_total", modes, (const json_int_t[]){ 3, 5 }, 2);
    expect_labelled(c, "messages_sent_total", modes, (const json_int_t[]){ 2, 4 }, 2);
    expect_labelled(c, "received_bytes_total", modes, (const json_int_t[]){ 100, 200 }, 2);
    expect_labelled(c, "sent_bytes_total", modes, (const json_int_t[]){ 300, 400 }, 2);
    static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx" };
    expect_labelled(c, "http_responses_total", classes, (const json_int_t[]){ 40, 41, 42, 43 }, 4);
    static const char *const auth[] = { "missing", "denied", "throttled", "tls_handshake" };
    _Static_assert(HTTP_AUTH_FAILURE_COUNT == 4, "one tag per auth failure");
    expect_labelled(c, "http_auth_failures_total", auth, (const json_int_t[]){ 50, 51, 52, 53 }, 4);
    expect_int(c, "client_rtt_reports_total", 6);
    expect_int(c, "tcp_retransmits_total", 9);
    expect_num(c, "tcp_busy_seconds_total", 1.5);
    expect_num(c, "tcp_rwnd_limited_seconds_total", 0.25);
    expect_num(c, "tcp_sndbuf_limited_seconds_total", 3e-6);
    const char *rtt_tags[RTT_REJECT_COUNT];
    json_int_t rtt_rejected[RTT_REJECT_COUNT];
    for (size_t i = 0; i < RTT_REJECT_COUNT; i++) {
        rtt_tags[i] = rtt_reject_tag((enum rtt_reject)i);
        rtt_rejected[i] = RTT_REJECTED_BASE + (json_int_t)i;
    }
    expect_labelled(c, "client_rtt_reports_rejected_total", rtt_tags, rtt_rejected, RTT_REJECT_COUNT);
    expect_num(c, "process_cpu_seconds_total", 1.25);

    json_t *g = get(root, "gauges");
    expect_num(g, "connections_open", 2);
    expect_num(g, "connections_max", 10000);
    expect_num(g, "workers", 3);
    expect_num(g, "draining", 1);
    expect_num(g, "uptime_seconds", 12.5);
    expect_num(g, "process_start_time_seconds", 1795625360.125);
    expect_num(g, "process_resident_memory_bytes", 4096000);
    expect_num(g, "process_open_fds", 17);

    json_decref(root);
    free(text);
    free(m);
}

/* Regression: every gauge printed as a real ("workers":2.0,
 * "connections_open":0.0), and so did the bytes and counts of the size and
 * per-wakeup histograms, while docs/METRICS.md shows integers. What is a
 * count or a number of bytes is a JSON integer; only seconds (and a mean)
 * are reals. */
static void test_json_integers_are_integers(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    char *text = metrics_json(m);
    assert_non_null(text);
    json_t *root = parse_json(text);
    json_t *g = get(root, "gauges");
    const char *key;
    json_t *v;
    json_object_foreach(g, key, v) {
        bool seconds = strstr(key, "seconds") != NULL;
        if (seconds ? !json_is_real(v) : !json_is_integer(v))
            fail_msg("gauges.%s should be %s", key, seconds ? "a real" : "an integer");
    }
    expect_int(g, "workers", 3);
    expect_int(g, "connections_max", 10000);
    expect_int(g, "process_resident_memory_bytes", 4096000);
    static const char *const whole[] = { "sum", "min", "max", "p50", "p90", "p99", "p99_9" };
    static const char *const names[] = { "message_size_bytes", "messages_per_wakeup" };
    for (size_t i = 0; i < COUNT_OF(names); i++) {
        json_t *h = get(get(root, "histograms"), names[i]);
        for (size_t k = 0; k < COUNT_OF(whole); k++)
            if (!json_is_integer(get(h, whole[k])))
                fail_msg("histograms.%s.%s should be an integer", names[i], whole[k]);
        json_t *b = json_array_get(get(h, "buckets"), 0);
        assert_true(json_is_integer(get(b, "lo")) && json_is_integer(get(b, "hi")));
        assert_true(json_is_real(get(h, "mean")));
    }
    /* Seconds stay reals, even when whole. */
    json_t *svc = get(get(root, "histograms"), "service_time_seconds");
    assert_true(json_is_real(get(svc, "p50")) && json_is_real(get(svc, "sum")));
    json_decref(root);
    free(text);
    free(m);
}

/* One histogram of the JSON document against the values recorded. */
static void expect_hist_json(json_t *hists, const char *name, const char *unit, double scale,
                             const uint64_t *v, size_t n)
{
    json_t *h = get(hists, name);
    assert_string_equal(json_string_value(get(h, "unit")), unit);
    expect_int(h, "count", (json_int_t)n);
    expect_num(h, "sum", (double)sum_of(v, n) * scale);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    expect_num(h, "min", (double)lo * scale);
    expect_num(h, "max", (double)hi * scale);
    expect_num(h, "mean", (double)sum_of(v, n) / (double)n * scale);
    /* Percentiles: the recorded values are sorted in the tables above; the
     * histogram answers within 0.4% (bucket midpoint, clamped to min/max). */
    static const struct { const char *key; double p; } pct[] = {
        { "p50", 50 }, { "p90", 90 }, { "p99", 99 }, { "p99_9", 99.9 },
    };
    for (size_t k = 0; k < COUNT_OF(pct); k++) {
        size_t rank = (size_t)ceil(pct[k].p / 100 * (double)n); /* 1-based */
        double want = (double)v[rank - 1] * scale;
        double got = json_number_value(get(h, pct[k].key));
        if (fabs(got - want) > want * 0.004 + 1e-15)
            fail_msg("%s.%s is %g, want %g within 0.4%%", name, pct[k].key, got, want);
    }
    /* Buckets: non-empty, increasing, each holding recorded values, summing
     * to the count. */
    json_t *buckets = get(h, "buckets");
    assert_true(json_is_array(buckets));
    assert_true(json_array_size(buckets) > 0);
    double prev_hi = -1;
    uint64_t total = 0;
    for (size_t i = 0; i < json_array_size(buckets); i++) {
        json_t *b = json_array_get(buckets, i);
        double blo = json_number_value(get(b, "lo")), bhi = json_number_value(get(b, "hi"));
        json_int_t count = json_integer_value(get(b, "count"));
        assert_true(blo <= bhi);
        if (!(blo > prev_hi))
            fail_msg("%s: bucket %zu [%g, %g] not after the previous one (hi %g)", name, i, blo,
                     bhi, prev_hi);
        prev_hi = bhi;
        assert_true(count > 0);
        json_int_t inside = 0;
        for (size_t j = 0; j < n; j++)
            inside += (double)v[j] * scale >= blo * (1 - 1e-12) &&
                      (double)v[j] * scale <= bhi * (1 + 1e-12);
        if (inside != count)
            fail_msg("%s: bucket [%g, %g] counts %lld, but %lld recorded values lie in it", name,
                     blo, bhi, (long long)count, (long long)inside);
        total += (uint64_t)count;
    }
    assert_int_equal(total, n);
}

static void test_json_histograms(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    char *text = metrics_json(m);
    assert_non_null(text);
    json_t *root = parse_json(text);
    json_t *hists = get(root, "histograms");
    assert_int_equal(json_object_size(hists), 6);
    expect_hist_json(hists, "service_time_seconds", "seconds", 1e-9, service_ns,
                     COUNT_OF(service_ns));
    expect_hist_json(hists, "client_rtt_seconds", "seconds", 1e-9, rtt_ns, COUNT_OF(rtt_ns));
    expect_hist_json(hists, "message_size_bytes", "bytes", 1, sizes, COUNT_OF(sizes));
    expect_hist_json(hists, "messages_per_wakeup", "", 1, per_wakeup, COUNT_OF(per_wakeup));
    expect_hist_json(hists, "tcp_srtt_seconds", "seconds", 1e-9, srtt_ns, COUNT_OF(srtt_ns));
    /* One object per stage, each shaped as every histogram. */
    json_t *stages = get(hists, "stage_seconds");
    assert_int_equal(json_object_size(stages), STAGE_COUNT);
    for (int k = 0; k < STAGE_COUNT; k++)
        expect_hist_json(stages, stage_name((enum stage)k), "seconds", 1e-9, service_ns,
                         (size_t)k + 1);
    expect_int(get(root, "server"), "stage_sample", 100);
    expect_int(get(root, "counters"), "stage_samples_dropped_total", 11);
    json_decref(root);
    free(text);
    free(m);
}

/* An empty snapshot still lists every label value, as zero; empty
 * histograms report zeros and no buckets. */
static void test_json_empty(void **state)
{
    (void)state;
    struct metrics_snapshot *m = calloc(1, sizeof *m);
    assert_non_null(m);
    server_stats_init(&m->stats);
    m->version = "0";
    m->mode = "epoll";
    m->address = "x";
    char *text = metrics_json(m);
    assert_non_null(text);
    json_t *root = parse_json(text);
    json_t *closed = get(get(root, "counters"), "connections_closed_total");
    assert_int_equal(json_object_size(closed), CLOSE_REASON_COUNT);
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++)
        expect_int(closed, close_reason_tag((enum close_reason)i), 0);
    expect_int(get(get(root, "counters"), "errors_total"), "http", 0);
    json_t *h = get(get(root, "histograms"), "service_time_seconds");
    expect_int(h, "count", 0);
    expect_num(h, "sum", 0);
    expect_num(h, "min", 0);
    expect_num(h, "max", 0);
    expect_num(h, "p99", 0);
    assert_int_equal(json_array_size(get(h, "buckets")), 0);
    json_decref(root);
    free(text);
    free(m);
}

/* ---- Prometheus and OpenMetrics text --------------------------------------------- */

/* Every metric family: name as in Prometheus 0.0.4, its TYPE there, and the
 * OpenMetrics family name, TYPE and UNIT (docs/METRICS.md). */
static const struct family {
    const char *name, *type, *om_name, *om_type, *unit;
} families[] = {
    { "tcpmsg_build_info", "gauge", "tcpmsg_build", "info", NULL },
    { "tcpmsg_connections_open", "gauge", "tcpmsg_connections_open", "gauge", NULL },
    { "tcpmsg_connections_max", "gauge", "tcpmsg_connections_max", "gauge", NULL },
    { "tcpmsg_buffer_memory_bytes", "gauge", "tcpmsg_buffer_memory_bytes", "gauge", "bytes" },
    { "tcpmsg_buffer_memory_limit_bytes", "gauge", "tcpmsg_buffer_memory_limit_bytes", "gauge", "bytes" },
    { "tcpmsg_connections_accepted_total", "counter", "tcpmsg_connections_accepted", "counter", NULL },
    { "tcpmsg_connections_closed_total", "counter", "tcpmsg_connections_closed", "counter", NULL },
    { "tcpmsg_connections_rejected_total", "counter", "tcpmsg_connections_rejected", "counter", NULL },
    { "tcpmsg_messages_received_total", "counter", "tcpmsg_messages_received", "counter", NULL },
    { "tcpmsg_messages_sent_total", "counter", "tcpmsg_messages_sent", "counter", NULL },
    { "tcpmsg_received_bytes_total", "counter", "tcpmsg_received_bytes", "counter", "bytes" },
    { "tcpmsg_sent_bytes_total", "counter", "tcpmsg_sent_bytes", "counter", "bytes" },
    { "tcpmsg_errors_total", "counter", "tcpmsg_errors", "counter", NULL },
    { "tcpmsg_drain_lost_bytes_total", "counter", "tcpmsg_drain_lost_bytes", "counter", "bytes" },
    { "tcpmsg_client_rtt_reports_total", "counter", "tcpmsg_client_rtt_reports", "counter", NULL },
    { "tcpmsg_client_rtt_reports_rejected_total", "counter", "tcpmsg_client_rtt_reports_rejected",
      "counter", NULL },
    { "tcpmsg_http_responses_total", "counter", "tcpmsg_http_responses", "counter", NULL },
    { "tcpmsg_http_auth_failures_total", "counter", "tcpmsg_http_auth_failures", "counter", NULL },
    { "tcpmsg_http_connections_open", "gauge", "tcpmsg_http_connections_open", "gauge", NULL },
    { "tcpmsg_http_connections_rejected_total", "counter", "tcpmsg_http_connections_rejected", "counter", NULL },
    { "tcpmsg_service_time_seconds", "histogram", "tcpmsg_service_time_seconds", "histogram", "seconds" },
    { "tcpmsg_client_rtt_seconds", "histogram", "tcpmsg_client_rtt_seconds", "histogram", "seconds" },
    { "tcpmsg_syscalls_total", "counter", "tcpmsg_syscalls", "counter", NULL },
    { "tcpmsg_loop_wakeups_total", "counter", "tcpmsg_loop_wakeups", "counter", NULL },
    { "tcpmsg_message_size_bytes", "histogram", "tcpmsg_message_size_bytes", "histogram", "bytes" },
    { "tcpmsg_messages_per_wakeup", "histogram", "tcpmsg_messages_per_wakeup", "histogram", NULL },
    { "tcpmsg_stage_samples_dropped_total", "counter", "tcpmsg_stage_samples_dropped", "counter",
      NULL },
    { "tcpmsg_tcp_retransmits_total", "counter", "tcpmsg_tcp_retransmits", "counter", NULL },
    { "tcpmsg_tcp_busy_seconds_total", "counter", "tcpmsg_tcp_busy_seconds", "counter", "seconds" },
    { "tcpmsg_tcp_rwnd_limited_seconds_total", "counter", "tcpmsg_tcp_rwnd_limited_seconds",
      "counter", "seconds" },
    { "tcpmsg_tcp_sndbuf_limited_seconds_total", "counter", "tcpmsg_tcp_sndbuf_limited_seconds",
      "counter", "seconds" },
    { "tcpmsg_tcp_srtt_seconds", "histogram", "tcpmsg_tcp_srtt_seconds", "histogram", "seconds" },
    { "tcpmsg_stage_seconds", "histogram", "tcpmsg_stage_seconds", "histogram", "seconds" },
    { "tcpmsg_workers", "gauge", "tcpmsg_workers", "gauge", NULL },
    { "tcpmsg_draining", "gauge", "tcpmsg_draining", "gauge", NULL },
    { "tcpmsg_uptime_seconds", "gauge", "tcpmsg_uptime_seconds", "gauge", "seconds" },
    { "process_start_time_seconds", "gauge", "process_start_time_seconds", "gauge", "seconds" },
    { "process_resident_memory_bytes", "gauge", "process_resident_memory_bytes", "gauge", "bytes" },
    { "process_open_fds", "gauge", "process_open_fds", "gauge", NULL },
    { "process_cpu_seconds_total", "counter", "process_cpu_seconds", "counter", "seconds" },
};

/* Does text hold this exact line? */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

/* Does a line of text start with prefix? */
static bool has_line_prefix(const char *text, const char *prefix)
{
    for (const char *p = text; (p = strstr(p, prefix)) != NULL; p++) {
        if (p == text || p[-1] == '\n')
            return true;
    }
    return false;
}

#define EXPECT_LINE(text, ...)                                              \
    do {                                                                    \
        char line_[512];                                                    \
        snprintf(line_, sizeof line_, __VA_ARGS__);                         \
        if (!has_line((text), line_))                                       \
            fail_msg("no line '%s' in:\n%s", line_, (text));                \
    } while (0)

/* The value of the sample "series" (name and labels exactly as printed). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            char *end;
            double v = strtod(p + n + 1, &end);
            if (end == p + n + 1 || *end != '\n')
                fail_msg("sample %s has a bad value", series);
            return v;
        }
    }
    fail_msg("no sample %s", series);
    return NAN;
}

/* The Prometheus lines of a histogram: one cumulative _bucket per bound
 * with exactly the values at or below it, +Inf, _sum in base units, _count. */
static void expect_hist_text(const char *text, const char *name, double scale,
                             size_t (*bounds_of)(const double **), const uint64_t *v, size_t n)
{
    const double *bounds;
    size_t nb = bounds_of(&bounds);
    uint64_t prev = 0;
    for (size_t i = 0; i < nb; i++) {
        uint64_t want = 0;
        for (size_t j = 0; j < n; j++)
            want += (double)v[j] * scale <= bounds[i];
        EXPECT_LINE(text, "%s_bucket{le=\"%.9g\"} %llu", name, bounds[i], (unsigned long long)want);
        assert_true(want >= prev);
        prev = want;
    }
    EXPECT_LINE(text, "%s_bucket{le=\"+Inf\"} %zu", name, n);
    EXPECT_LINE(text, "%s_count %zu", name, n);
    char series[128];
    snprintf(series, sizeof series, "%s_sum", name);
    double got = sample(text, series), want = (double)sum_of(v, n) * scale;
    if (fabs(got - want) > 1e-8 * want)
        fail_msg("%s is %.17g, want %.17g", series, got, want);
}

/* Every sample line belongs to a family declared before it with HELP and
 * TYPE; every family is declared once. */
static void check_declarations(const char *text, bool om)
{
    bool declared[COUNT_OF(families)] = { false };
    const char *line = text;
    while (*line != '\0') {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol); /* every line ends with LF */
        size_t len = (size_t)(eol - line);
        if (strncmp(line, "# TYPE ", 7) == 0) {
            size_t k = 0;
            for (; k < COUNT_OF(families); k++) {
                const char *fam = om ? families[k].om_name : families[k].name;
                size_t fl = strlen(fam);
                if (strncmp(line + 7, fam, fl) == 0 && line[7 + fl] == ' ')
                    break;
            }
            if (k == COUNT_OF(families))
                fail_msg("unknown family: %.*s", (int)len, line);
            assert_false(declared[k]);
            declared[k] = true;
        } else if (line[0] != '#') {
            /* A sample: its name must start with a declared family's name. */
            size_t nl = strcspn(line, "{ ");
            bool ok = false;
            for (size_t k = 0; k < COUNT_OF(families) && !ok; k++) {
                size_t fl = strlen(families[k].name);
                ok = declared[k] && nl >= fl && strncmp(line, families[k].name, fl) == 0;
            }
            if (!ok)
                fail_msg("sample of an undeclared family: %.*s", (int)len, line);
        }
        line = eol + 1;
    }
    for (size_t k = 0; k < COUNT_OF(families); k++) {
        if (!declared[k])
            fail_msg("family %s has no TYPE line", om ? families[k].om_name : families[k].name);
    }
}

/* The samples common to both text formats. */
static void expect_samples(const char *t)
{
    EXPECT_LINE(t, "tcpmsg_build_info{version=\"9.8.7\",mode=\"epoll\",io=\"uring\"} 1");
    EXPECT_LINE(t, "tcpmsg_syscalls_total{op=\"read\"} %d", SYSCALLS_BASE);
    EXPECT_LINE(t, "tcpmsg_syscalls_total{op=\"io_uring_enter\"} %d",
                SYSCALLS_BASE + STATS_SYS_IO_URING_ENTER);
    EXPECT_LINE(t, "tcpmsg_syscalls_total{op=\"timerfd_settime\"} %d",
                SYSCALLS_BASE + SYSCALL_OP_COUNT - 1);
    EXPECT_LINE(t, "tcpmsg_loop_wakeups_total 77");
    EXPECT_LINE(t, "tcpmsg_tcp_retransmits_total 9");
    EXPECT_LINE(t, "tcpmsg_stage_samples_dropped_total 11");
    EXPECT_LINE(t, "tcpmsg_stage_seconds_count{stage=\"rx_queue\"} 1");
    EXPECT_LINE(t, "tcpmsg_stage_seconds_count{stage=\"tx_ack\"} %d", STAGE_COUNT);
    EXPECT_LINE(t, "tcpmsg_tcp_busy_seconds_total 1.5");
    EXPECT_LINE(t, "tcpmsg_tcp_rwnd_limited_seconds_total 0.25");
    EXPECT_LINE(t, "tcpmsg_connections_open 2");
    EXPECT_LINE(t, "tcpmsg_connections_max 10000");
    EXPECT_LINE(t, "tcpmsg_connections_accepted_total 7");
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++)
        EXPECT_LINE(t, "tcpmsg_connections_closed_total{reason=\"%s\"} %zu",
                    close_reason_tag((enum close_reason)i), CLOSED_BASE + i);
    for (size_t i = 0; i < REJECT_REASON_COUNT; i++)
        EXPECT_LINE(t, "tcpmsg_connections_rejected_total{reason=\"%s\"} %zu",
                    reject_reason_tag((enum reject_reason)i), REJECTED_BASE + i);
    for (size_t i = 0; i < ERROR_KIND_COUNT; i++)
        EXPECT_LINE(t, "tcpmsg_errors_total{kind=\"%s\"} %zu", error_kind_tag((enum error_kind)i),
                    ERRORS_BASE + i);
    EXPECT_LINE(t, "tcpmsg_errors_total{kind=\"http\"} %d", HTTP_ERRORS);
    EXPECT_LINE(t, "tcpmsg_messages_received_total{mode=\"framed\"} 3");
    EXPECT_LINE(t, "tcpmsg_messages_received_total{mode=\"text\"} 5");
    EXPECT_LINE(t, "tcpmsg_messages_sent_total{mode=\"framed\"} 2");
    EXPECT_LINE(t, "tcpmsg_messages_sent_total{mode=\"text\"} 4");
    EXPECT_LINE(t, "tcpmsg_received_bytes_total{mode=\"framed\"} 100");
    EXPECT_LINE(t, "tcpmsg_received_bytes_total{mode=\"text\"} 200");
    EXPECT_LINE(t, "tcpmsg_sent_bytes_total{mode=\"framed\"} 300");
    EXPECT_LINE(t, "tcpmsg_sent_bytes_total{mode=\"text\"} 400");
    EXPECT_LINE(t, "tcpmsg_client_rtt_reports_total 6");
    EXPECT_LINE(t, "tcpmsg_http_responses_total{class=\"2xx\"} 40");
    EXPECT_LINE(t, "tcpmsg_http_responses_total{class=\"5xx\"} 43");
    EXPECT_LINE(t, "tcpmsg_http_auth_failures_total{reason=\"missing\"} 50");
    EXPECT_LINE(t, "tcpmsg_http_auth_failures_total{reason=\"tls_handshake\"} 53");
    EXPECT_LINE(t, "tcpmsg_workers 3");
    EXPECT_LINE(t, "tcpmsg_draining 1");
    EXPECT_LINE(t, "tcpmsg_uptime_seconds 12.5");
    EXPECT_LINE(t, "process_resident_memory_bytes 4096000");
    EXPECT_LINE(t, "process_open_fds 17");
    EXPECT_LINE(t, "process_cpu_seconds_total 1.25");
    /* Pinned literally, so the le formatting cannot drift unnoticed. */
    EXPECT_LINE(t, "tcpmsg_service_time_seconds_bucket{le=\"1e-06\"} 1");
    EXPECT_LINE(t, "tcpmsg_service_time_seconds_bucket{le=\"3e-06\"} 3");
    EXPECT_LINE(t, "tcpmsg_service_time_seconds_bucket{le=\"0.15\"} 4");
    EXPECT_LINE(t, "tcpmsg_service_time_seconds_bucket{le=\"10\"} 5");
    EXPECT_LINE(t, "tcpmsg_message_size_bytes_bucket{le=\"0\"} 1");
    EXPECT_LINE(t, "tcpmsg_message_size_bytes_bucket{le=\"4\"} 3");
    EXPECT_LINE(t, "tcpmsg_message_size_bytes_bucket{le=\"16384\"} 5");
    expect_hist_text(t, "tcpmsg_service_time_seconds", 1e-9, metrics_latency_bounds, service_ns,
                     COUNT_OF(service_ns));
    expect_hist_text(t, "tcpmsg_client_rtt_seconds", 1e-9, metrics_latency_bounds, rtt_ns,
                     COUNT_OF(rtt_ns));
    expect_hist_text(t, "tcpmsg_message_size_bytes", 1, metrics_size_bounds, sizes, COUNT_OF(sizes));
    expect_hist_text(t, "tcpmsg_messages_per_wakeup", 1, metrics_wakeup_bounds, per_wakeup,
                     COUNT_OF(per_wakeup));
}

static void test_prometheus(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    size_t len = 0;
    char *t = metrics_prometheus(m, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    for (size_t k = 0; k < COUNT_OF(families); k++) {
        char help[160];
        snprintf(help, sizeof help, "# HELP %s ", families[k].name);
        if (!has_line_prefix(t, help))
            fail_msg("no HELP line for %s", families[k].name);
        EXPECT_LINE(t, "# TYPE %s %s", families[k].name, families[k].type);
    }
    assert_null(strstr(t, "# UNIT")); /* not part of format 0.0.4 */
    assert_null(strstr(t, "# EOF"));
    check_declarations(t, false);
    expect_samples(t);
    free(t);
    free(m);
}

/* Regression: process_start_time_seconds and histogram sums were printed
 * with 9 significant digits ("%.9g"), so a Unix start time came out with a
 * 10-second resolution (1795625360.125 as 1.79562536e+09). */
static void test_prometheus_full_precision(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    size_t len = 0;
    char *t = metrics_prometheus(m, &len);
    assert_non_null(t);
    double start = sample(t, "process_start_time_seconds"), want = m->start_time_s;
    free(t); /* before a failure, which does not return */
    free(m);
    if (fabs(start - want) > 1e-3)
        fail_msg("process_start_time_seconds is %.17g, want %.17g: precision lost in printing",
                 start, want);
}

static void test_openmetrics(void **state)
{
    (void)state;
    struct metrics_snapshot *m = make_snapshot();
    size_t len = 0;
    char *t = metrics_openmetrics(m, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    assert_true(len > 6);
    assert_string_equal(t + len - 6, "# EOF\n");
    assert_ptr_equal(strstr(t, "# EOF"), t + len - 6); /* once, at the end */
    for (size_t k = 0; k < COUNT_OF(families); k++) {
        const struct family *f = &families[k];
        EXPECT_LINE(t, "# TYPE %s %s", f->om_name, f->om_type);
        char unit[160];
        snprintf(unit, sizeof unit, "# UNIT %s ", f->om_name);
        if (f->unit != NULL) {
            EXPECT_LINE(t, "# UNIT %s %s", f->om_name, f->unit);
            /* OpenMetrics: a family with a unit ends with "_<unit>". */
            size_t nl = strlen(f->om_name), ul = strlen(f->unit);
            assert_true(nl > ul + 1 && f->om_name[nl - ul - 1] == '_' &&
                        strcmp(f->om_name + nl - ul, f->unit) == 0);
        } else {
            assert_null(strstr(t, unit));
        }
    }
    /* Counter families lose "_total"; their samples keep it. */
    assert_false(has_line(t, "# TYPE tcpmsg_messages_received_total counter"));
    check_declarations(t, true);
    expect_samples(t);
    free(t);
    free(m);
}

/* ---- histogram to Prometheus buckets ------------------------------------------- */

static void test_bounds_sorted(void **state)
{
    (void)state;
    const double *b;
    size_t n = metrics_latency_bounds(&b);
    assert_true(n >= 2);
    assert_true(b[0] == 1e-6);
    assert_true(b[n - 1] == 10);
    for (size_t i = 1; i < n; i++)
        if (!(b[i] > b[i - 1]))
            fail_msg("latency bounds: %g after %g", b[i], b[i - 1]);
    n = metrics_size_bounds(&b);
    assert_true(n >= 2);
    assert_true(b[n - 1] == 16777216);
    for (size_t i = 1; i < n; i++)
        if (!(b[i] > b[i - 1]))
            fail_msg("size bounds: %g after %g", b[i], b[i - 1]);
}

static uint64_t mid_of(uint64_t v)
{
    size_t i = hist_bucket_index(v);
    uint64_t lo = hist_bucket_lo(i);
    return lo + (hist_bucket_hi(i) - lo) / 2;
}

/* Below 256 values are exact: a value counts at a bound iff it is <= it. */
static void test_cumulative_exact_range(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    assert_int_equal(metrics_hist_cumulative(h, 0), 0);
    assert_int_equal(metrics_hist_cumulative(h, UINT64_MAX), 0);
    static const uint64_t v[] = { 0, 1, 1, 4, 5, 16, 64, 200, 255 };
    for (size_t i = 0; i < COUNT_OF(v); i++)
        hist_record(h, v[i]);
    for (uint64_t bound = 0; bound < 256; bound++) {
        uint64_t want = 0;
        for (size_t i = 0; i < COUNT_OF(v); i++)
            want += v[i] <= bound;
        if (metrics_hist_cumulative(h, bound) != want)
            fail_msg("bound %llu: %llu, want %llu", (unsigned long long)bound,
                     (unsigned long long)metrics_hist_cumulative(h, bound),
                     (unsigned long long)want);
    }
    assert_int_equal(metrics_hist_cumulative(h, UINT64_MAX), COUNT_OF(v));
    hist_free(h);
}

/* Around every Prometheus bound (in recorded units): values 0.5% or more
 * below it always count, values 0.5% or more above never do, and values in
 * between count exactly when their bucket's midpoint is <= the bound (the
 * documented rule). The cumulative counts never decrease. */
static void check_bounds_rule(size_t (*bounds_of)(const double **), double scale)
{
    const double *bounds;
    size_t nb = bounds_of(&bounds);
    for (size_t i = 0; i < nb; i++) {
        uint64_t bound = (uint64_t)(bounds[i] / scale + 0.5);
        if (bound < 4)
            continue;
        uint64_t probes[] = { bound - bound / 200 - 3, bound - 2, bound - 1, bound, bound + 1,
                              bound + 2, bound + bound / 200 + 3 };
        for (size_t p = 0; p < COUNT_OF(probes); p++) {
            struct hist *h = hist_new();
            assert_non_null(h);
            hist_record(h, probes[p]);
            uint64_t got = metrics_hist_cumulative(h, bound);
            uint64_t want = mid_of(probes[p]) <= bound;
            if (got != want)
                fail_msg("bound %llu, value %llu (bucket midpoint %llu): counted %llu, want %llu",
                         (unsigned long long)bound, (unsigned long long)probes[p],
                         (unsigned long long)mid_of(probes[p]), (unsigned long long)got,
                         (unsigned long long)want);
            if (p == 0 && got != 1)
                fail_msg("bound %llu: value %llu (0.5%% below) not counted",
                         (unsigned long long)bound, (unsigned long long)probes[p]);
            if (p == COUNT_OF(probes) - 1 && got != 0)
                fail_msg("bound %llu: value %llu (0.5%% above) counted",
                         (unsigned long long)bound, (unsigned long long)probes[p]);
            hist_free(h);
        }
        /* All probes in one histogram: counts are cumulative over bounds. */
        struct hist *all = hist_new();
        assert_non_null(all);
        for (size_t p = 0; p < COUNT_OF(probes); p++)
            hist_record(all, probes[p]);
        uint64_t prev = 0;
        for (size_t p = 0; p < COUNT_OF(probes); p++) {
            uint64_t c = metrics_hist_cumulative(all, probes[p]);
            assert_true(c >= prev);
            prev = c;
        }
        assert_int_equal(metrics_hist_cumulative(all, UINT64_MAX), COUNT_OF(probes));
        hist_free(all);
    }
}

static void test_cumulative_at_bounds(void **state)
{
    (void)state;
    check_bounds_rule(metrics_latency_bounds, 1e-9);
    check_bounds_rule(metrics_size_bounds, 1);

    /* Concrete cases: 1 us = 1000 ns sits in the bucket [1000, 1003]
     * (midpoint 1001), so it is counted above le="1e-06"; 999 ns is not. */
    struct hist *h = hist_new();
    assert_non_null(h);
    hist_record(h, 999);
    assert_int_equal(metrics_hist_cumulative(h, 1000), 1);
    hist_record(h, 1000);
    assert_int_equal(metrics_hist_cumulative(h, 1000), 1);
    assert_int_equal(metrics_hist_cumulative(h, 1001), 2);
    hist_free(h);
}

/* ---- docs/METRICS.md ---------------------------------------------------------------- */

#define BEGIN_MARK "<!-- BEGIN GENERATED METRICS -->\n"
#define END_MARK "<!-- END GENERATED METRICS -->"

/* docs/METRICS.md, found from this file's own path (absolute in CMake
 * builds): <root>/tests/unit/test_metrics.c. */
static char *read_metrics_doc(char *path, size_t cap)
{
    const char *self = __FILE__;
    const char *tail = strstr(self, "tests/unit/test_metrics.c");
    if (self[0] != '/' || tail == NULL)
        fail_msg("cannot locate the source tree from __FILE__ = %s", self);
    snprintf(path, cap, "%.*sdocs/METRICS.md", (int)(tail - self), self);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    assert_true(size >= 0);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (size_t)size, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_doc_matches_definitions(void **state)
{
    (void)state;
    char path[4096];
    char *doc = read_metrics_doc(path, sizeof path);
    char *begin = strstr(doc, BEGIN_MARK);
    char *end = begin != NULL ? strstr(begin, END_MARK) : NULL;
    if (begin == NULL || end == NULL)
        fail_msg("%s has no generated section (markers missing)", path);
    begin += strlen(BEGIN_MARK);

    char *gen = NULL;
    size_t gen_len = 0;
    FILE *out = open_memstream(&gen, &gen_len);
    assert_non_null(out);
    metrics_write_markdown(out);
    fclose(out);

    size_t doc_len = (size_t)(end - begin);
    if (doc_len != gen_len || memcmp(begin, gen, gen_len) != 0) {
        size_t i = 0, line = 1, sol = 0;
        while (i < doc_len && i < gen_len && begin[i] == gen[i]) {
            if (begin[i++] == '\n') {
                line++;
                sol = i;
            }
        }
        int dl = (int)strcspn(begin + sol, "\n"), gl = (int)strcspn(gen + sol, "\n");
        fail_msg("%s is out of date with the metric definitions: line %zu of the generated "
                 "table reads\n  %.*s\nbut the definitions give\n  %.*s\n"
                 "Run `cmake --build build --target metrics-doc`.",
                 path, line, dl, begin + sol, gl, gen + sol);
    }
    free(gen);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_counters_and_gauges),
        cmocka_unit_test(test_json_histograms),
        cmocka_unit_test(test_json_integers_are_integers),
        cmocka_unit_test(test_json_empty),
        cmocka_unit_test(test_json_saturated_counts),
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_prometheus_full_precision),
        cmocka_unit_test(test_openmetrics),
        cmocka_unit_test(test_bounds_sorted),
        cmocka_unit_test(test_cumulative_exact_range),
        cmocka_unit_test(test_cumulative_at_bounds),
        cmocka_unit_test(test_doc_matches_definitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
