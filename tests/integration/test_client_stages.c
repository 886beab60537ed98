/* The client's stages (tcpmsg --stages and bench --stages, docs/STAGES.md),
 * checked from outside: a client stopped (SIGSTOP) for 200 ms while its
 * reply arrives shows the 200 ms in its own receive-queue stage and nowhere
 * else; against the real server every reply carries its split, bench splits
 * exactly one round trip in --stage-sample, and its --hdr-log series merge.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "client_util.h"
#include "tcpmsg/tstamp.h"

#define STOP_MS 200

/* The kernel turns receive stamping on for the whole system a moment after
 * the first socket asks (tstamp.h), and off a moment after the last one
 * closes. Ask on a loopback pair of our own and wait until a received
 * segment carries a stamp; while the returned socket stays open, every
 * reply the client reads has one, and the counts below can be exact. */
static int receive_stamping_on(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    IT_CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0 &&
             getsockname(l, (struct sockaddr *)&a, &len) == 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_CHECK(c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    IT_CHECK(s >= 0 && tstamp_enable(s) == 0);
    uint64_t rx = 0;
    for (int i = 0; i < 200 && rx == 0; i++) {
        IT_CHECK(send(c, "x", 1, 0) == 1);
        union {
            char buf[TSTAMP_RX_CMSG_SPACE];
            struct cmsghdr align;
        } ctl;
        char b;
        struct iovec iov = { &b, 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                              .msg_controllen = sizeof ctl.buf };
        IT_CHECK(recvmsg(s, &msg, 0) == 1);
        rx = tstamp_rx_ns(&msg);
        if (rx == 0)
            it_sleep_ms(10);
    }
    IT_CHECK(rx != 0);
    close(c);
    close(l);
    return s;
}

/* The split of the reply line for message msg: client tx, network+server
 * and client rx in microseconds, and the RTT. false when the line is not
 * there or carries no split. */
static bool parse_split(const char *out, const char *msg, double part[3], double *rtt)
{
    char tail[64];
    snprintf(tail, sizeof tail, "): %s\n", msg);
    const char *end = strstr(out, tail);
    if (end == NULL)
        return false;
    const char *line = end;
    while (line > out && line[-1] != '\n')
        line--;
    const char *in = strstr(line, " in ");
    return in != NULL && in < end &&
           sscanf(in, " in %lf us (client tx %lf us, network+server %lf us, client rx %lf us)",
                  rtt, &part[0], &part[1], &part[2]) == 4;
}

static int count_lines(const char *out, const char *needle)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A process stopped by SIGSTOP shows state T in /proc/PID/stat. */
static bool wait_stopped(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        const char *paren = strrchr(buf, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'T')
            return true;
        it_sleep_ms(5);
    }
    return false;
}

/* A listening socket on 127.0.0.1, port chosen by the kernel. */
static int listen_any(char *target, size_t cap)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    IT_CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0 &&
             getsockname(l, (struct sockaddr *)&a, &len) == 0);
    snprintf(target, cap, "127.0.0.1:%d", ntohs(a.sin_port));
    return l;
}

/* Accept the client and echo n frames to it, the last one while the client
 * is stopped (SIGSTOP) and STOP_MS before it goes on; then wait for its
 * EOF. The client cannot run a single instruction between the stop and the
 * SIGCONT, wherever it was: the last reply waits STOP_MS in its receive
 * queue, and nothing else does. */
static void echo_stopping_last(int l, pid_t client, int n)
{
    struct pollfd p = { .fd = l, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    /* A reply's header and payload are two writes: without NODELAY, Nagle
     * holds the payload until the header is acknowledged (a delayed ACK,
     * tens of milliseconds), which the split shows as network time. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < n; i++) {
        uint8_t type, buf[256];
        ssize_t len = it_recv_frame(fd, &type, buf, sizeof buf, 5000);
        assert_true(len > 0);
        if (i == n - 1) {
            assert_int_equal(kill(client, SIGSTOP), 0);
            assert_true(wait_stopped(client));
        }
        assert_int_equal(it_send_frame(fd, type, buf, (size_t)len, 5000), 0);
        if (i == n - 1) {
            it_sleep_ms(STOP_MS);
            assert_int_equal(kill(client, SIGCONT), 0);
        }
    }
    assert_int_equal(it_expect_eof(fd, 5000), 0);
    close(fd);
}

/* Run tcpmsg with argv against our own echo server (its address put in
 * argv[at]), which sends the last of three replies while the client is
 * stopped; the client must exit 0. Its stdout, to free; also printed, so a
 * failed check below shows it. */
static char *run_stopped_on_last(struct bg_client *c, const char **argv, int at)
{
    char target[64];
    int l = listen_any(target, sizeof target);
    argv[at] = target;
    bg_start(c, argv);
    echo_stopping_last(l, c->pid, 3);
    close(l);
    assert_int_equal(bg_wait(c, 10000), 0);
    char *out = bg_stdout(c);
    print_message("%s", out);
    return out;
}

/* Our own echo server, so that the test decides when the client reads: the
 * third reply is sent while the client is stopped, and the client goes on
 * STOP_MS later. That reply waited STOP_MS in the client's receive queue:
 * its client rx stage is at least that (less a scheduling tick), its
 * network+server stage is not; the two replies before it waited for
 * nothing. */
static void test_oneshot_rx_queue(void **state)
{
    (void)state;
    int stamping = receive_stamping_on();
    struct bg_client c;
    const char *argv[] = { "tcpmsg", "--stages", "--no-report", "TARGET", "one", "two", "late",
                           NULL };
    char *out = run_stopped_on_last(&c, argv, 3);
    /* Exactly three replies, each split. */
    assert_int_equal(count_lines(out, "reply from "), 3);
    assert_int_equal(count_lines(out, "(client tx "), 3);
    double part[3], rtt;
    assert_true(parse_split(out, "late", part, &rtt));
    assert_true(part[2] >= (STOP_MS - 10) * 1000.0);
    assert_true(part[1] < (STOP_MS - 10) * 1000.0);
    assert_true(part[0] < (STOP_MS - 10) * 1000.0);
    assert_true(rtt >= (STOP_MS - 10) * 1000.0);
    for (int i = 0; i < 2; i++) {
        assert_true(parse_split(out, i == 0 ? "one" : "two", part, &rtt));
        assert_true(part[2] < (STOP_MS - 10) * 1000.0);
    }
    free(out);
    bg_free(&c);
    close(stamping);
}

/* Against tcpmsgd, framed and text: every reply line carries its three
 * parts, none larger than the round trip they split (the parts add up to
 * it on the kernel's clock, the RTT is read on the monotonic one: 1 ms of
 * slack for a clock adjustment between the two). */
static void test_oneshot_real_server(void **state)
{
    (void)state;
    int stamping = receive_stamping_on();
    struct it_server *s = it_server_start(NULL, 0);
    assert_non_null(s);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    for (int text = 0; text < 2; text++) {
        struct bg_client c;
        const char *framed[] = { "tcpmsg", "--stages", target, "a", "bb", "ccc", "dddd", NULL };
        const char *lines[] = { "tcpmsg", "--stages", "--text", target, "a", "bb", "ccc", "dddd",
                                NULL };
        bg_start(&c, text ? lines : framed);
        assert_int_equal(bg_wait(&c, 10000), 0);
        char *out = bg_stdout(&c);
        print_message("%s", out);
        assert_int_equal(count_lines(out, "reply from "), 4);
        assert_int_equal(count_lines(out, "(client tx "), 4);
        const char *msgs[] = { "a", "bb", "ccc", "dddd" };
        for (int i = 0; i < 4; i++) {
            double part[3], rtt;
            assert_true(parse_split(out, msgs[i], part, &rtt));
            assert_true(part[0] >= 0 && part[1] > 0 && part[2] >= 0);
            assert_true(part[0] + part[1] + part[2] <= rtt + 1000.0);
        }
        free(out);
        bg_free(&c);
    }
    it_server_free(s);
    close(stamping);
}

/* bench --stages against our echo server, every round trip sampled: the
 * third reply, sent while bench is stopped, shows the stop in the client rx
 * stage's max, and not in the other parts; exactly three round trips split,
 * none skipped. */
static void test_bench_rx_queue(void **state)
{
    (void)state;
    int stamping = receive_stamping_on();
    struct bg_client c;
    const char *argv[] = { "tcpmsg", "bench", "--stages", "--stage-sample", "1", "--io", "epoll",
                           "--count", "3", "--no-report", "--json", "TARGET", NULL };
    char *out = run_stopped_on_last(&c, argv, 11);
    json_t *end = last_json_line(out);
    assert_non_null(end);
    assert_int_equal(it_json_int(end, "stages_us.split"), 3);
    assert_int_equal(it_json_int(end, "stages_us.skipped"), 0);
    assert_int_equal(it_json_int(end, "stages_us.client_rx.count"), 3);
    assert_true(it_json_num(end, "stages_us.client_rx.max") >= (STOP_MS - 10) * 1000.0);
    assert_true(it_json_num(end, "stages_us.client_rx.p50") < (STOP_MS - 10) * 1000.0);
    assert_true(it_json_num(end, "stages_us.network.max") < (STOP_MS - 10) * 1000.0);
    assert_true(it_json_num(end, "stages_us.client_tx.max") < (STOP_MS - 10) * 1000.0);
    json_decref(end);
    free(out);
    bg_free(&c);
    close(stamping);
}

static char *temp_path(const char *what)
{
    char *path = malloc(64);
    IT_CHECK(path != NULL);
    int fd = bg_tempfile(path, 64, what);
    IT_CHECK(fd >= 0);
    close(fd);
    return path;
}

/* bench --stages against tcpmsgd: one round trip in 7 of 200 is split
 * (messages 0, 7, ... 196: 29), with a part each; the --hdr-log carries
 * the three stage series, and tcpmsg merge reads them back with the same
 * count. Without --stages there is no stages_us at all. */
static void test_bench_counts_and_merge(void **state)
{
    (void)state;
    int stamping = receive_stamping_on();
    struct it_server *s = it_server_start(NULL, 0);
    assert_non_null(s);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    char *log = temp_path("stages-hdr");
    struct bg_client c;
    const char *argv[] = { "tcpmsg", "bench", "--stages", "--stage-sample", "7", "--io", "epoll",
                           "--count", "200", "--json", "--hdr-log", log, target, NULL };
    bg_start(&c, argv);
    assert_int_equal(bg_wait(&c, 20000), 0);
    char *out = bg_stdout(&c);
    json_t *end = last_json_line(out);
    assert_non_null(end);
    assert_int_equal(it_json_int(end, "stages_us.sample"), 7);
    assert_int_equal(it_json_int(end, "stages_us.split"), 29);
    assert_int_equal(it_json_int(end, "stages_us.skipped"), 0);
    const char *parts[] = { "client_tx", "network", "client_rx" };
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "stages_us.%s.count", parts[i]);
        assert_int_equal(it_json_int(end, key), 29);
    }
    json_decref(end);
    free(out);
    bg_free(&c);

    char *text = bg_slurp(log);
    assert_int_equal(count_lines(text, "\nTag=stage_client_tx,"), 1);
    assert_int_equal(count_lines(text, "\nTag=stage_network,"), 1);
    assert_int_equal(count_lines(text, "\nTag=stage_client_rx,"), 1);
    free(text);
    const char *merge[] = { "tcpmsg", "merge", "--json", log, NULL };
    bg_start(&c, merge);
    assert_int_equal(bg_wait(&c, 10000), 0);
    out = bg_stdout(&c);
    end = last_json_line(out);
    assert_non_null(end);
    assert_int_equal(it_json_int(end, "messages"), 200);
    assert_int_equal(it_json_int(end, "stages_us.split"), 29);
    assert_int_equal(it_json_int(end, "stages_us.client_rx.count"), 29);
    json_decref(end);
    free(out);
    bg_free(&c);

    const char *plain[] = { "tcpmsg", "bench", "--count", "20", "--json", target, NULL };
    bg_start(&c, plain);
    assert_int_equal(bg_wait(&c, 10000), 0);
    out = bg_stdout(&c);
    assert_null(strstr(out, "stages_us"));
    free(out);
    bg_free(&c);
    unlink(log);
    free(log);
    it_server_free(s);
    close(stamping);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oneshot_rx_queue),
        cmocka_unit_test(test_oneshot_real_server),
        cmocka_unit_test(test_bench_rx_queue),
        cmocka_unit_test(test_bench_counts_and_merge),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
