/* Integration: tcpmsg probe against a real tcpmsgd: it counts loss while the
 * server is stopped, recovers when it returns, and serves its results as
 * Prometheus metrics that promtool accepts. Each case runs alone:
 * test_probe CASE.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "client_util.h"

#define WAIT_MS 10000

/* The metrics port the probe announced on stderr ("http_port=N"). */
static int probe_http_port(const struct bg_client *b)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    for (;;) {
        char *err = bg_stderr(b);
        const char *p = strstr(err, "http_port=");
        int port = p != NULL ? atoi(p + 10) : -1;
        free(err);
        if (port > 0 || it_now_ms() >= deadline)
            return port;
        it_sleep_ms(20);
    }
}

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

    int http = probe_http_port(&b);
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
    kill(b.pid, SIGTERM);
    assert_int_equal(bg_wait(&b, WAIT_MS), 1);
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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_loss_and_recovery),
        cmocka_unit_test(test_probe_connect_backoff),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
