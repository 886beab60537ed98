/* Integration: client RTT reports are accepted only where they can be true
 * (docs/PROTOCOL.md): no more samples than replies written on the
 * connection, no value above its age, refusals counted by reason with the
 * connection left open, and --rtt-reports ignore. Every case runs in both
 * modes (rtt_cases.cmake): in fork mode the counts cross the pipe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/rttreport.h"

#define T IT_IO_TIMEOUT_MS

/* The client RTT metrics, all at once: accepted reports, samples, and
 * refusals by reason. */
struct rtt_state {
    long long reports, count, malformed, too_many, too_large, disabled;
};

static void expect_rtt(json_t *doc, struct rtt_state want)
{
    struct rtt_state got = {
        it_json_int(doc, "counters.client_rtt_reports_total"),
        it_json_int(doc, "histograms.client_rtt_seconds.count"),
        it_json_int(doc, "counters.client_rtt_reports_rejected_total.malformed"),
        it_json_int(doc, "counters.client_rtt_reports_rejected_total.too_many_samples"),
        it_json_int(doc, "counters.client_rtt_reports_rejected_total.value_too_large"),
        it_json_int(doc, "counters.client_rtt_reports_rejected_total.disabled"),
    };
    if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("reports %lld count %lld, refused: malformed %lld too_many_samples %lld "
                 "value_too_large %lld disabled %lld; want %lld %lld, %lld %lld %lld %lld",
                 got.reports, got.count, got.malformed, got.too_many, got.too_large, got.disabled,
                 want.reports, want.count, want.malformed, want.too_many, want.too_large,
                 want.disabled);
}

/* A report frame of n samples of value ns; returns its size. */
static size_t make_report(uint64_t ns, uint64_t n, uint8_t *out)
{
    struct hist *h = hist_new();
    assert_non_null(h);
    hist_record_n(h, ns, n);
    size_t len = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    hist_free(h);
    assert_true(len > 0);
    return len;
}

static void roundtrips(int fd, int n)
{
    for (int i = 0; i < n; i++)
        it_must_roundtrip(fd, "ping");
}

/* The poisoned report, 02 000008 01 08 12ff ffffffff. */
static const uint8_t poisoned[] = { 0x02, 0x00, 0x00, 0x08, 0x01, 0x08,
                                    0x12, 0xff, 0xff, 0xff, 0xff, 0xff };
#define POISON_REPEAT 14000 /* JSON's count went negative after ~13.7k of them */

/* Regression: any client rewrote the client RTT metrics with one 12-byte
 * report (count 4294967295, a wrapped sum, p50 at 4.9 h), and 13.7k of them
 * made JSON's count negative. Now each is refused, counted, and the
 * connection keeps echoing. */
static void test_poisoned_report(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    roundtrips(fd, 1);
    assert_int_equal(it_send_all(fd, poisoned, sizeof poisoned, T), 0);
    it_must_roundtrip(fd, "still here");
    json_t *doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.too_many_samples", 1);
    expect_rtt(doc, (struct rtt_state){ .too_many = 1 });
    json_decref(doc);

    /* Many at once, then an echo: all refused, the count stays 0. */
    uint8_t *burst = malloc(POISON_REPEAT * sizeof poisoned);
    assert_non_null(burst);
    for (size_t i = 0; i < POISON_REPEAT; i++)
        memcpy(burst + i * sizeof poisoned, poisoned, sizeof poisoned);
    assert_int_equal(it_send_all(fd, burst, POISON_REPEAT * sizeof poisoned, T), 0);
    it_must_roundtrip(fd, "and still");
    doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.too_many_samples",
                      1 + POISON_REPEAT);
    expect_rtt(doc, (struct rtt_state){ .too_many = 1 + POISON_REPEAT });
    IT_CHECK(it_json_num(doc, "histograms.client_rtt_seconds.sum") == 0);
    IT_CHECK(it_json_num(doc, "histograms.client_rtt_seconds.p99") == 0);
    json_decref(doc);

    struct it_http r;
    assert_int_equal(it_http_get(s->http_port, "/metrics?format=prometheus", &r), 0);
    double v = -1;
    IT_CHECK(it_prom_sample(r.body, "tcpmsg_client_rtt_seconds_count", &v) && v == 0);
    IT_CHECK(it_prom_sample(r.body, "tcpmsg_client_rtt_seconds_sum", &v) && v == 0);
    IT_CHECK(it_prom_sample(r.body,
                            "tcpmsg_client_rtt_reports_rejected_total{reason=\"too_many_samples\"}",
                            &v) &&
             v == 1 + POISON_REPEAT);
    it_http_free(&r);
    free(burst);
    close(fd);
    it_server_free(s);
}

/* Samples up to the replies written are taken, one more is refused; what
 * was accepted counts against later reports. */
static void test_too_many_samples(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    uint8_t *frame = malloc(RTT_REPORT_MAX_FRAME);
    assert_non_null(frame);
    int fd = it_must_connect(s->port);
    roundtrips(fd, 3);
    it_sleep_ms(5); /* 100 us samples: well within the connection's age */
    size_t len = make_report(100000, 4, frame);
    assert_int_equal(it_send_all(fd, frame, len, T), 0); /* 4 > 3 replies */
    it_must_roundtrip(fd, "x"); /* a fourth reply */
    json_t *doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.too_many_samples", 1);
    expect_rtt(doc, (struct rtt_state){ .too_many = 1 });
    json_decref(doc);

    len = make_report(100000, 4, frame); /* 4 of 4: exactly at the limit */
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    doc = it_wait_metric(s, "counters.client_rtt_reports_total", 1);
    expect_rtt(doc, (struct rtt_state){ .reports = 1, .count = 4, .too_many = 1 });
    json_decref(doc);

    len = make_report(100000, 1, frame); /* 5 of 4 */
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    it_must_roundtrip(fd, "y");
    doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.too_many_samples", 2);
    expect_rtt(doc, (struct rtt_state){ .reports = 1, .count = 4, .too_many = 2 });
    json_decref(doc);

    assert_int_equal(it_send_all(fd, frame, len, T), 0); /* 5 of 5 */
    doc = it_wait_metric(s, "counters.client_rtt_reports_total", 2);
    expect_rtt(doc, (struct rtt_state){ .reports = 2, .count = 5, .too_many = 2 });
    json_decref(doc);

    /* The limit is per connection: another one has written no reply. */
    int fd2 = it_must_connect(s->port);
    assert_int_equal(it_send_all(fd2, frame, len, T), 0);
    it_must_roundtrip(fd2, "z");
    doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.too_many_samples", 3);
    expect_rtt(doc, (struct rtt_state){ .reports = 2, .count = 5, .too_many = 3 });
    json_decref(doc);
    close(fd2);
    close(fd);
    free(frame);
    it_server_free(s);
}

/* A round trip longer than the connection has existed cannot have happened. */
static void test_value_too_large(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    uint8_t *frame = malloc(RTT_REPORT_MAX_FRAME);
    assert_non_null(frame);
    int fd = it_must_connect(s->port);
    roundtrips(fd, 2);
    size_t len = make_report(60ull * 1000000000, 1, frame); /* one minute */
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    it_must_roundtrip(fd, "x");
    json_t *doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.value_too_large", 1);
    expect_rtt(doc, (struct rtt_state){ .too_large = 1 });
    json_decref(doc);
    /* A malformed one (a bucket past the last) is refused as such. */
    uint8_t bad[FRAME_HEADER_SIZE + RTT_REPORT_HEAD + RTT_REPORT_ENTRY] = { 0 };
    frame_header_encode(bad, FRAME_RTT_REPORT, RTT_REPORT_HEAD + RTT_REPORT_ENTRY);
    bad[4] = RTT_REPORT_VERSION;
    bad[5] = HIST_SUB_BITS;
    bad[6] = 0xff;
    bad[11] = 1;
    assert_int_equal(it_send_all(fd, bad, sizeof bad, T), 0);
    it_must_roundtrip(fd, "y");
    doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.malformed", 1);
    expect_rtt(doc, (struct rtt_state){ .too_large = 1, .malformed = 1 });
    assert_int_equal(it_json_int(doc, "counters.errors_total.protocol"), 0);
    json_decref(doc);
    close(fd);
    free(frame);
    it_server_free(s);
}

/* The real client's report is accepted whole: one sample per reply. */
static void test_honest_client(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", addr, "a", "b", "c", "d", NULL };
    struct it_run run;
    assert_int_equal(it_run(TCPMSG_PATH, argv, 10000, &run), 0);
    if (run.exit_code != 0)
        fail_msg("tcpmsg exited %d: %s", run.exit_code, run.err);
    it_run_free(&run);
    json_t *doc = it_wait_metric(s, "gauges.connections_open", 0);
    json_decref(doc);
    if (it_log_count(s, "RTT report refused", (const char *)NULL) > 0)
        it_log_dump(s);
    doc = it_wait_metric(s, "counters.client_rtt_reports_total", 1);
    expect_rtt(doc, (struct rtt_state){ .reports = 1, .count = 4 });
    json_decref(doc);
    it_server_free(s);
}

/* tcpmsg bench with several connections on one thread: each reports on its
 * own connection, and not one report is refused. */
static void test_honest_bench(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", "bench", addr, "--connections", "4", "--threads", "1",
                           "--depth", "4", "--duration", "1.2", NULL };
    struct it_run run;
    assert_int_equal(it_run(TCPMSG_PATH, argv, 30000, &run), 0);
    if (run.exit_code != 0)
        fail_msg("tcpmsg bench exited %d: %s", run.exit_code, run.err);
    it_run_free(&run);
    json_t *doc = it_wait_metric(s, "gauges.connections_open", 0);
    json_decref(doc);
    /* In fork mode the last records may follow the close: wait for them. */
    int64_t deadline = it_now_ms() + IT_SETTLE_MS;
    for (;;) {
        doc = it_http_get_json(s->http_port, "/metrics");
        assert_non_null(doc);
        if (it_json_int(doc, "counters.client_rtt_reports_total") >= 4 || it_now_ms() >= deadline)
            break;
        json_decref(doc);
        it_sleep_ms(50);
    }
    long long reports = it_json_int(doc, "counters.client_rtt_reports_total");
    long long count = it_json_int(doc, "histograms.client_rtt_seconds.count");
    long long sent = it_json_int(doc, "counters.messages_sent_total.framed");
    print_message("bench: %lld reports, %lld samples, %lld replies\n", reports, count, sent);
    IT_CHECK(reports >= 4); /* at least the final report of each connection */
    IT_CHECK(count > 0 && count <= sent);
    expect_rtt(doc, (struct rtt_state){ .reports = reports, .count = count });
    json_decref(doc);
    it_server_free(s);
}

/* --rtt-reports ignore: a true report is dropped, counted as disabled, and
 * the connection carries on. */
static void test_reports_ignored(void **state)
{
    (void)state;
    const char *args[] = { "--rtt-reports", "ignore", NULL };
    IT_START(s, args, 0);
    uint8_t *frame = malloc(RTT_REPORT_MAX_FRAME);
    assert_non_null(frame);
    int fd = it_must_connect(s->port);
    roundtrips(fd, 3);
    it_sleep_ms(5);
    size_t len = make_report(100000, 3, frame);
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    assert_int_equal(it_send_all(fd, poisoned, sizeof poisoned, T), 0);
    it_must_roundtrip(fd, "x");
    json_t *doc = it_wait_metric(s, "counters.client_rtt_reports_rejected_total.disabled", 2);
    expect_rtt(doc, (struct rtt_state){ .disabled = 2 });
    json_decref(doc);
    close(fd);
    free(frame);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisoned_report), cmocka_unit_test(test_too_many_samples),
        cmocka_unit_test(test_value_too_large), cmocka_unit_test(test_honest_client),
        cmocka_unit_test(test_honest_bench),    cmocka_unit_test(test_reports_ignored),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
