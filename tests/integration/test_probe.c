/* Integration: tcpmsg probe against a real tcpmsgd: it counts loss while the
 * server is stopped, recovers when it returns, and serves its results as
 * Prometheus metrics that promtool accepts. Each case runs alone:
 * test_probe CASE.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "client_util.h"

#define WAIT_MS 10000

/* promtool check metrics, fed text on stdin: its exit status, and whatever
 * it said (problems and warnings) in out. */
static int promtool_check(const char *text, char *out, size_t cap)
{
    char path[64];
    int fd = bg_tempfile(path, sizeof path, "prom");
    IT_CHECK(fd >= 0);
    IT_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    IT_CHECK(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_probe_loss_and_recovery(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", "probe", target, "--interval", "0.1", "--timeout", "0.3",
                           "--duration", "20", "--http-port", "0", "--json", NULL };
    struct bg_client b;
    bg_start(&b, argv);
    IT_CHECK(bg_wait_count(&b, "\"ok\":true", 3, WAIT_MS));
    /* Stopped: probes time out (the kernel still accepts connections). */
    assert_int_equal(it_server_signal(s, SIGSTOP), 0);
    bool lost = bg_wait_count(&b, "\"failure\":\"timeout\"", 2, WAIT_MS);
    int ok_before = bg_count(&b, "\"ok\":true");
    assert_int_equal(it_server_signal(s, SIGCONT), 0);
    IT_CHECK(lost);
    /* Back: probes succeed again. */
    IT_CHECK(bg_wait_count(&b, "\"ok\":true", ok_before + 3, WAIT_MS));

    int http = bg_http_port(&b, WAIT_MS);
    IT_CHECK(http > 0);
    struct it_http r;
    assert_int_equal(it_http_get(http, "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    char series[160];
    double v = 0;
    snprintf(series, sizeof series, "tcpmsg_probe_failures_total{target=\"%s\",reason=\"timeout\"}",
             target);
    IT_CHECK(it_prom_sample(r.body, series, &v) && v >= 2);
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"%s\"}", target);
    IT_CHECK(it_prom_sample(r.body, series, &v) && v == 1);
    snprintf(series, sizeof series, "tcpmsg_probe_rtt_seconds_count{target=\"%s\"}", target);
    IT_CHECK(it_prom_sample(r.body, series, &v) && v >= 6);
    char said[4096];
    int rc = promtool_check(r.body, said, sizeof said);
    if (rc != 0 || said[0] != '\0')
        fail_msg("promtool check metrics: exit %d: %s\n%s", rc, said, r.body);
    it_http_free(&r);

    /* SIGTERM: a summary per target; exit 1 because probes were lost. */
    assert_int_equal(bg_term(&b, WAIT_MS), 1);
    IT_CHECK(bg_count(&b, "\"event\":\"summary\"") == 1);
    bg_free(&b);
    it_server_free(s);
}

/* A target nobody listens on: every probe is a connect failure, retried
 * with a growing backoff. */
static void test_probe_connect_backoff(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_CHECK(lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0); /* bound, not listening */
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", it_local_port(lfd));
    const char *argv[] = { "tcpmsg", "probe", target, "--interval", "0.05", "--duration", "1.6",
                           NULL };
    struct bg_client b;
    bg_start(&b, argv);
    assert_int_equal(bg_wait(&b, WAIT_MS), 1);
    int n = bg_count(&b, "lost: connect");
    /* 0.05 s doubling: 0.05 0.1 0.2 0.4 0.8 -> about 5 attempts, not 32. */
    if (n < 3 || n > 8)
        fail_msg("%d connect attempts in 1.6 s", n);
    IT_CHECK(bg_count(&b, "retry in 0.4 s") == 1);
    bg_free(&b);
    close(lfd);
}

/* ---- --serve: blackbox_exporter's multi-target pattern --------------------------- */

/* A listener that never accepts: connects complete in its backlog, and no
 * reply ever comes. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    IT_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 8) == 0);
    IT_CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static double sample_of(const char *text, const char *series)
{
    double v = -1;
    if (!it_prom_sample(text, series, &v))
        fail_msg("no %s in:\n%s", series, text);
    return v;
}

/* A prober with --serve on a port the kernel picks: that port. */
static int start_prober(struct bg_client *b)
{
    const char *argv[] = { "tcpmsg", "probe", "--serve", "127.0.0.1:0", "--duration", "30", NULL };
    bg_start(b, argv);
    int http = bg_http_port(b, WAIT_MS);
    IT_CHECK(http > 0);
    return http;
}

/* /probe against a live tcpmsgd, a closed port and bad parameters: each
 * answer says what happened, in text promtool accepts, and the prober's
 * /metrics counts every request by outcome. */
static void test_serve_probe(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    struct bg_client b;
    int http = start_prober(&b);

    char target[128];
    snprintf(target, sizeof target, "/probe?target=127.0.0.1:%d&count=5&size=100", s->port);
    struct it_http r;
    assert_int_equal(it_http_get(http, target, &r), 0);
    assert_int_equal(r.status, 200);
    IT_CHECK(sample_of(r.body, "probe_success") == 1);
    IT_CHECK(sample_of(r.body, "probe_messages_sent") == 5);
    IT_CHECK(sample_of(r.body, "probe_messages_answered") == 5);
    IT_CHECK(sample_of(r.body, "probe_rtt_seconds_count") == 5);
    IT_CHECK(sample_of(r.body, "probe_rtt_seconds{quantile=\"1\"}") > 0);
    IT_CHECK(sample_of(r.body, "probe_failed_reason{reason=\"connect\"}") == 0);
    char said[4096];
    int rc = promtool_check(r.body, said, sizeof said);
    if (rc != 0 || said[0] != '\0')
        fail_msg("promtool check metrics: exit %d: %s\n%s", rc, said, r.body);
    it_http_free(&r);
    /* The server saw exactly those messages: 5, of 100 bytes. */
    json_t *doc = it_wait_metric(s, "counters.messages_received_total.framed", 5);
    IT_CHECK(doc != NULL);
    json_decref(doc);

    int dead_port;
    int dead = silent_listener(&dead_port);
    close(dead); /* now nobody listens there */
    snprintf(target, sizeof target, "/probe?target=127.0.0.1:%d", dead_port);
    assert_int_equal(it_http_get(http, target, &r), 0);
    assert_int_equal(r.status, 200);
    IT_CHECK(sample_of(r.body, "probe_success") == 0);
    IT_CHECK(sample_of(r.body, "probe_failed_reason{reason=\"connect\"}") == 1);
    IT_CHECK(sample_of(r.body, "probe_rtt_seconds_count") == 0);
    rc = promtool_check(r.body, said, sizeof said); /* NaN quantiles included */
    if (rc != 0 || said[0] != '\0')
        fail_msg("promtool check metrics: exit %d: %s\n%s", rc, said, r.body);
    it_http_free(&r);

    static const char *const bad[] = { "/probe", "/probe?target=", "/probe?target=127.0.0.1:99999",
                                       "/probe?target=127.0.0.1:1&count=0",
                                       "/probe?target=127.0.0.1:1&count=1.5",
                                       "/probe?target=127.0.0.1:1&timeout=-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(it_http_get(http, bad[i], &r), 0);
        if (r.status != 400 || strncmp(r.body, "400 ", 4) != 0)
            fail_msg("%s: %d %s", bad[i], r.status, r.body);
        it_http_free(&r);
    }

    assert_int_equal(it_http_get(http, "/metrics", &r), 0);
    IT_CHECK(sample_of(r.body, "tcpmsg_probe_requests_total{outcome=\"success\"}") == 1);
    IT_CHECK(sample_of(r.body, "tcpmsg_probe_requests_total{outcome=\"failure\"}") == 1);
    IT_CHECK(sample_of(r.body, "tcpmsg_probe_requests_total{outcome=\"bad_request\"}") ==
             (double)(sizeof bad / sizeof bad[0]));
    IT_CHECK(sample_of(r.body, "tcpmsg_probe_requests_in_flight") == 0);
    it_http_free(&r);

    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    bg_free(&b);
    it_server_free(s);
}

/* A probe of a target that never answers does not hold up the others: while
 * it waits for its timeout, a probe of a live server is answered; then the
 * silent one is answered too, as a timeout. */
static void test_serve_concurrent(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    struct bg_client b;
    int http = start_prober(&b);
    int silent_port;
    int silent = silent_listener(&silent_port);

    int hung = it_connect(http);
    IT_CHECK(hung >= 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /probe?target=127.0.0.1:%d&timeout=3 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n",
                     silent_port);
    assert_int_equal(it_send_all(hung, req, (size_t)n, IT_IO_TIMEOUT_MS), 0);
    /* The silent probe is in flight (the prober says so) ... */
    int64_t t0 = it_now_ms();
    double inflight = 0;
    while (inflight < 1 && it_now_ms() - t0 < WAIT_MS) {
        struct it_http m;
        assert_int_equal(it_http_get(http, "/metrics", &m), 0);
        inflight = sample_of(m.body, "tcpmsg_probe_requests_in_flight");
        it_http_free(&m);
    }
    IT_CHECK(inflight == 1);
    /* ... and a live target is answered meanwhile. */
    char target[128];
    snprintf(target, sizeof target, "/probe?target=127.0.0.1:%d", s->port);
    struct it_http r;
    assert_int_equal(it_http_get(http, target, &r), 0);
    IT_CHECK(r.status == 200 && sample_of(r.body, "probe_success") == 1);
    it_http_free(&r);
    struct pollfd p = { .fd = hung, .events = POLLIN };
    IT_CHECK(poll(&p, 1, 0) == 0); /* the silent one has no answer yet */

    char body[4096];
    ssize_t got = it_recv_until_eof(hung, body, sizeof body - 1, 10000);
    IT_CHECK(got > 0);
    body[got] = '\0';
    IT_CHECK(strstr(body, "HTTP/1.1 200") != NULL);
    IT_CHECK(strstr(body, "\nprobe_success 0\n") != NULL);
    IT_CHECK(strstr(body, "probe_failed_reason{reason=\"timeout\"} 1") != NULL);
    close(hung);
    close(silent);
    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    bg_free(&b);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_loss_and_recovery),
        cmocka_unit_test(test_probe_connect_backoff),
        cmocka_unit_test(test_serve_probe),
        cmocka_unit_test(test_serve_concurrent),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
