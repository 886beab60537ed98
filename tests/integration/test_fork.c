/* Integration: what only fork mode has. Statistics that children send over
 * the pipe add up exactly; a child killed mid-run is counted and the others
 * carry on; children are reaped (no zombies) and inherit only their own
 * descriptors; --max-children refuses the next client; SIGTERM drains them.
 * The cases shared with epoll mode run from the other test programs under
 * TCPMSG_IT_MODE=fork (cases.cmake). Each case runs alone: test_fork CASE.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"

#define T IT_IO_TIMEOUT_MS
#define MAX_KIDS 64

/* GET /metrics as JSON or fail. */
static json_t *must_metrics(const struct it_server *s)
{
    json_t *m = it_http_get_json(s->http_port, "/metrics");
    if (m == NULL)
        fail_msg("GET /metrics failed");
    return m;
}

/* One number from /metrics (counters are integers, gauges reals). */
static double metric(const struct it_server *s, const char *path)
{
    json_t *m = must_metrics(s);
    double v = it_json_num(m, path);
    json_decref(m);
    return v;
}

/* The server's children that are tcpmsgd processes, as it_proc_children.
 * Sanitizer runtimes fork helpers of their own (TSan's symbolizer, when it
 * prints a report): those are not connection children. */
static int server_children(const struct it_server *s, pid_t *out, char *states, int cap)
{
    pid_t all[MAX_KIDS];
    char st[MAX_KIDS];
    int n = it_proc_children(s->pid, all, st, MAX_KIDS), kept = 0;
    for (int i = 0; i < n && i < MAX_KIDS; i++) {
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", (int)all[i]);
        FILE *f = fopen(path, "re");
        if (f != NULL) {
            if (fgets(comm, sizeof comm, f) == NULL)
                comm[0] = '\0';
            fclose(f);
        }
        if (strncmp(comm, "tcpmsgd", 7) != 0 && st[i] != 'Z')
            continue; /* (a zombie's comm still reads tcpmsgd; keep any zombie) */
        if (kept < cap) {
            out[kept] = all[i];
            if (states != NULL)
                states[kept] = st[i];
        }
        kept++;
    }
    return n < 0 ? n : kept;
}

/* Wait until the server has no children and reports no open connection:
 * every child has exited, been reaped and merged. */
static bool wait_children_gone(const struct it_server *s, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t kids[MAX_KIDS];
        int n = server_children(s, kids, NULL, MAX_KIDS);
        if (n == 0 && metric(s, "gauges.connections_open") == 0)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(20);
    }
}

/* The pid of the child serving the client on fd, from /api/connections. */
static pid_t child_of(const struct it_server *s, int fd)
{
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", it_local_port(fd));
    json_t *doc = it_http_get_json(s->http_port, "/api/connections");
    if (doc == NULL)
        fail_msg("GET /api/connections failed");
    pid_t pid = -1;
    json_t *conns = json_object_get(doc, "connections"), *c;
    size_t i;
    json_array_foreach(conns, i, c)
    {
        const char *p = json_string_value(json_object_get(c, "peer"));
        if (p != NULL && strcmp(p, peer) == 0)
            pid = (pid_t)json_integer_value(json_object_get(c, "pid"));
    }
    json_decref(doc);
    if (pid <= 0)
        fail_msg("no child listed for client %s", peer);
    return pid;
}

/* ---- exact accounting ------------------------------------------------------------ */

#define ACC_FRAMED 8
#define ACC_TEXT 3
#define ACC_MSGS 50

static size_t framed_len(int c, int i)
{
    return 1 + ((size_t)c * 131 + (size_t)i * 977) % 3000;
}

/* N clients x M messages, framed and text, some still open across a stats
 * tick: once the children are gone, /metrics holds exactly what crossed the
 * sockets. Every number here is computed from what the test sent. */
static void test_exact_accounting(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", NULL };
    IT_START(s, args, 0);
    int ff[ACC_FRAMED], tf[ACC_TEXT];
    for (int c = 0; c < ACC_FRAMED; c++)
        ff[c] = it_must_connect(s->port);
    for (int c = 0; c < ACC_TEXT; c++)
        tf[c] = it_must_connect(s->port);
    long long framed_bytes = 0, text_bytes = 0;
    uint8_t buf[4000];
    for (int i = 0; i < ACC_MSGS; i++) {
        for (int c = 0; c < ACC_FRAMED; c++) {
            size_t len = framed_len(c, i);
            memset(buf, 'a' + (c + i) % 26, len);
            int rc = it_roundtrip(ff[c], buf, len, T);
            if (rc != 0)
                fail_msg("framed client %d message %d: %s", c, i, strerror(-rc));
            framed_bytes += (long long)(FRAME_HEADER_SIZE + len);
        }
        for (int c = 0; c < ACC_TEXT; c++) {
            char line[64];
            int n = snprintf(line, sizeof line, "client %d line %d\n", c, i);
            assert_int_equal(it_send_all(tf[c], line, (size_t)n, T), 0);
            assert_int_equal(it_recv_exact(tf[c], buf, (size_t)n, T), 0);
            assert_memory_equal(buf, line, (size_t)n);
            text_bytes += n;
        }
        if (i == ACC_MSGS / 2)
            it_sleep_ms(250); /* let a few interval records go out mid-run */
    }
    for (int c = 0; c < ACC_FRAMED; c++)
        close(ff[c]);
    for (int c = 0; c < ACC_TEXT; c++)
        close(tf[c]);
    if (!wait_children_gone(s, 5000)) {
        it_log_dump(s);
        fail_msg("children still running 5 s after their clients closed");
    }

    json_t *m = must_metrics(s);
    const long long nf = ACC_FRAMED * ACC_MSGS, nt = ACC_TEXT * ACC_MSGS;
    assert_string_equal(json_string_value(it_json_path(m, "server.mode")), "fork");
    assert_int_equal(it_json_int(m, "counters.connections_accepted_total"), ACC_FRAMED + ACC_TEXT);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.peer_closed"),
                     ACC_FRAMED + ACC_TEXT);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.child_died"), 0);
    assert_int_equal(it_json_int(m, "counters.messages_received_total.framed"), nf);
    assert_int_equal(it_json_int(m, "counters.messages_sent_total.framed"), nf);
    assert_int_equal(it_json_int(m, "counters.messages_received_total.text"), nt);
    assert_int_equal(it_json_int(m, "counters.messages_sent_total.text"), nt);
    assert_int_equal(it_json_int(m, "counters.received_bytes_total.framed"), framed_bytes);
    assert_int_equal(it_json_int(m, "counters.sent_bytes_total.framed"), framed_bytes);
    assert_int_equal(it_json_int(m, "counters.received_bytes_total.text"), text_bytes);
    assert_int_equal(it_json_int(m, "counters.sent_bytes_total.text"), text_bytes);
    assert_int_equal(it_json_int(m, "counters.errors_total.stats_pipe"), 0);
    assert_int_equal(it_json_int(m, "counters.errors_total.child_crashed"), 0);
    /* Histograms travel as bucket deltas: the counts are exact too. */
    assert_int_equal(it_json_int(m, "histograms.message_size_bytes.count"), nf + nt);
    assert_int_equal(it_json_int(m, "histograms.service_time_seconds.count"), nf + nt);
    IT_CHECK(it_json_num(m, "gauges.connections_open") == 0);
    json_decref(m);

    /* The closed connections keep their totals in the connection list.
     * Regression: a child's last record carried the connection as of its
     * last tick, so a short connection was listed with no mode and zeros. */
    json_t *list = it_http_get_json(s->http_port, "/api/connections");
    IT_CHECK(list != NULL);
    json_t *closed = it_json_path(list, "recently_closed");
    assert_int_equal(json_array_size(closed), ACC_FRAMED + ACC_TEXT);
    long long listed_msgs = 0;
    for (size_t i = 0; i < json_array_size(closed); i++) {
        json_t *c = json_array_get(closed, i);
        const char *mode = json_string_value(json_object_get(c, "mode"));
        IT_CHECK(mode != NULL && (strcmp(mode, "framed") == 0 || strcmp(mode, "text") == 0));
        assert_int_equal(json_integer_value(json_object_get(c, "messages_in")), ACC_MSGS);
        listed_msgs += json_integer_value(json_object_get(c, "messages_out"));
    }
    assert_int_equal(listed_msgs, nf + nt);
    json_decref(list);
    it_server_free(s);
}

/* Regression: when a child's last report needed several records (a client's
 * RTT report moves many histogram buckets at once), the first of them also
 * carried the final flag, and the parent released the connection's
 * --max-conns slot twice: connections_open wrapped around and every later
 * client was refused with max_conns. */
static void test_final_record_once(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", "--max-conns", "4", NULL };
    IT_START(s, args, 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    for (int round = 0; round < 3; round++) {
        const char *argv[] = { "tcpmsg", "bench", "--connections", "4", "--duration", "0.5",
                               "--size", "16-4KiB", addr, NULL };
        struct it_run r;
        assert_int_equal(it_run(TCPMSG_PATH, argv, 20000, &r), 0);
        if (r.exit_code != 0)
            fail_msg("bench round %d: exit %d: %s", round, r.exit_code, r.err);
        it_run_free(&r);
        IT_CHECK(wait_children_gone(s, 5000));
    }
    json_t *m = must_metrics(s);
    IT_CHECK(it_json_num(m, "gauges.connections_open") == 0);
    assert_int_equal(it_json_int(m, "counters.connections_rejected_total.max_conns"), 0);
    assert_int_equal(it_json_int(m, "counters.connections_accepted_total"), 12);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.peer_closed"), 12);
    assert_int_equal(it_json_int(m, "counters.errors_total.stats_pipe"), 0);
    json_decref(m);
    it_server_free(s);
}

/* ---- a child killed mid-run ------------------------------------------------------- */

static void test_child_killed(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", NULL };
    IT_START(s, args, 0);
    int fd[3];
    for (int c = 0; c < 3; c++) {
        fd[c] = it_must_connect(s->port);
        it_must_roundtrip(fd[c], "before");
    }
    pid_t victim = child_of(s, fd[1]);
    assert_int_equal(kill(victim, SIGKILL), 0);

    /* Its client sees the connection end; the others are served on. */
    int rc = it_expect_eof(fd[1], T);
    IT_CHECK(rc == 0 || rc == -ECONNRESET);
    IT_ASSERT_LOG(s, 1, T, "child died", "how=Killed");
    it_must_roundtrip(fd[0], "after");
    it_must_roundtrip(fd[2], "after");
    int fresh = it_must_connect(s->port);
    it_must_roundtrip(fresh, "a new client");
    close(fresh);
    close(fd[0]);
    close(fd[2]);
    close(fd[1]);
    IT_CHECK(wait_children_gone(s, 5000));

    json_t *m = must_metrics(s);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.child_died"), 1);
    assert_int_equal(it_json_int(m, "counters.errors_total.child_crashed"), 1);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.peer_closed"), 3);
    assert_int_equal(it_json_int(m, "counters.connections_accepted_total"), 4);
    json_decref(m);
    assert_int_equal(it_log_count(s, "child died", (const char *)NULL), 1);
    IT_CHECK(it_server_alive(s));
    it_server_free(s);
}

/* ---- no zombies ------------------------------------------------------------------- */

#define SHORT_CLIENTS 10000
#define SHORT_THREADS 8
#define SHORT_RUN_MS 30000 /* ... or as many as fit in this time: a fork costs
                              ~4 ms here, ~10 ms under AddressSanitizer */

struct short_run {
    int port;
    int from, to;
    int64_t until_ms;
    int made, failed, rejected;
};

/* Connect, one message, close: as fast as the server lets us. */
static void *short_clients(void *arg)
{
    struct short_run *r = arg;
    for (int i = r->from; i < r->to && it_now_ms() < r->until_ms; i++) {
        r->made++;
        int fd = it_connect(r->port);
        if (fd < 0) {
            r->failed++;
            continue;
        }
        char msg[32];
        int n = snprintf(msg, sizeof msg, "short %d", i);
        int rc = it_roundtrip(fd, msg, (size_t)n, T);
        if (rc == -EBADMSG)
            r->rejected++; /* an error frame: over --max-children */
        else if (rc != 0)
            r->failed++;
        close(fd);
    }
    return NULL;
}

static void test_no_zombies(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", NULL };
    IT_START(s, args, 0);
    pthread_t th[SHORT_THREADS];
    struct short_run run[SHORT_THREADS];
    int64_t start = it_now_ms();
    for (int t = 0; t < SHORT_THREADS; t++) {
        run[t] = (struct short_run){ .port = s->port,
                                     .from = t * SHORT_CLIENTS / SHORT_THREADS,
                                     .to = (t + 1) * SHORT_CLIENTS / SHORT_THREADS,
                                     .until_ms = start + SHORT_RUN_MS };
        assert_int_equal(pthread_create(&th[t], NULL, short_clients, &run[t]), 0);
    }
    int made = 0, failed = 0, rejected = 0;
    for (int t = 0; t < SHORT_THREADS; t++) {
        pthread_join(th[t], NULL);
        made += run[t].made;
        failed += run[t].failed;
        rejected += run[t].rejected;
    }
    print_message("%d short clients in %lld ms (%d rejected, %d failed)\n", made,
                  (long long)(it_now_ms() - start), rejected, failed);
    IT_CHECK(made >= 1000);
    assert_int_equal(failed, 0);

    /* Every child exits once its client has gone: within a bound, none is
     * left, and in particular none is a zombie waiting to be reaped. */
    pid_t kids[MAX_KIDS];
    char states[MAX_KIDS];
    int n = -1, zombies = -1;
    int64_t deadline = it_now_ms() + 5000;
    do {
        if (n >= 0)
            it_sleep_ms(20);
        n = server_children(s, kids, states, MAX_KIDS);
        zombies = 0;
        for (int i = 0; i < n && i < MAX_KIDS; i++)
            zombies += states[i] == 'Z';
    } while ((n != 0 || zombies != 0) && it_now_ms() < deadline);
    print_message("after 5 s at most: %d children, %d zombies\n", n, zombies);
    assert_int_equal(zombies, 0);
    assert_int_equal(n, 0);
    IT_CHECK(wait_children_gone(s, 2000));

    json_t *m = must_metrics(s);
    assert_int_equal(it_json_int(m, "counters.connections_accepted_total") +
                         it_json_int(m, "counters.connections_rejected_total.max_children"),
                     made);
    assert_int_equal(it_json_int(m, "counters.connections_rejected_total.max_children"), rejected);
    assert_int_equal(it_json_int(m, "counters.messages_received_total.framed"),
                     made - rejected);
    assert_int_equal(it_json_int(m, "counters.connections_closed_total.child_died"), 0);
    json_decref(m);
    it_server_free(s);
}

/* ---- descriptors a child inherits ---------------------------------------------------- */

/* The inode of "socket:[N]" or "pipe:[N]" targets, else 0. */
static unsigned long inode_of(const char *target, const char *kind)
{
    size_t k = strlen(kind);
    if (strncmp(target, kind, k) != 0 || target[k] != ':')
        return 0;
    return strtoul(target + k + 2, NULL, 10);
}

/* Whether the parent holds a descriptor with this target. */
static bool parent_has(const char (*targets)[64], int n, const char *target)
{
    for (int i = 0; i < n; i++)
        if (strcmp(targets[i], target) == 0)
            return true;
    return false;
}

/* One child's descriptors: exactly stdio, its client socket, the pipe's
 * write end, its epoll set and its eventfd, and the loop's timerfd once it
 * armed one. Returns its socket's target. */
static void check_child_fds(pid_t child, const char (*ptargets)[64], int pn, char *sock, size_t cap)
{
    int fds[64];
    char targets[64][64];
    int n = it_proc_fds(child, fds, targets, 64);
    assert_true(n > 0);
    int stdio = 0, sockets = 0, pipes_w = 0, epolls = 0, eventfds = 0, timerfds = 0;
    for (int i = 0; i < n; i++) {
        const char *t = targets[i];
        print_message("child %d fd %d -> %s\n", (int)child, fds[i], t);
        if (fds[i] <= 2) {
            stdio++;
        } else if (inode_of(t, "socket") != 0) {
            /* The listener and the HTTP endpoint's sockets are the parent's:
             * a child holding one would keep the port open after a restart. */
            if (parent_has(ptargets, pn, t))
                fail_msg("child %d fd %d is the parent's socket %s", (int)child, fds[i], t);
            size_t len = strlen(t) < cap ? strlen(t) : cap - 1;
            memcpy(sock, t, len);
            sock[len] = '\0';
            sockets++;
        } else if (inode_of(t, "pipe") != 0) {
            int flags = it_proc_fd_flags(child, fds[i]);
            if ((flags & O_ACCMODE) != O_WRONLY)
                fail_msg("child %d fd %d is a read end of %s (flags 0%o)", (int)child, fds[i], t,
                         flags);
            pipes_w++;
        } else if (strcmp(t, "anon_inode:[eventpoll]") == 0) {
            epolls++;
        } else if (strcmp(t, "anon_inode:[eventfd]") == 0) {
            eventfds++;
        } else if (strcmp(t, "anon_inode:[timerfd]") == 0) {
            timerfds++;
        } else {
            fail_msg("child %d fd %d: unexpected descriptor %s", (int)child, fds[i], t);
        }
    }
    assert_int_equal(stdio, 3);
    assert_int_equal(sockets, 1);
    assert_int_equal(pipes_w, 1);
    assert_int_equal(epolls, 1);
    assert_int_equal(eventfds, 1);
    assert_true(timerfds <= 1);
}

static void test_child_descriptors(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", NULL };
    IT_START(s, args, 0);
    int a = it_must_connect(s->port), b = it_must_connect(s->port);
    it_must_roundtrip(a, "a");
    it_must_roundtrip(b, "b");
    /* Hit the HTTP endpoint first, so its sockets exist when we look. */
    pid_t ca = child_of(s, a), cb = child_of(s, b);
    int pfds[256];
    char (*ptargets)[64] = calloc(256, 64);
    assert_non_null(ptargets);
    int pn = it_proc_fds(s->pid, pfds, ptargets, 256);
    assert_true(pn > 0);
    char sa[64] = "", sb[64] = "";
    check_child_fds(ca, (const char (*)[64])ptargets, pn, sa, sizeof sa);
    check_child_fds(cb, (const char (*)[64])ptargets, pn, sb, sizeof sb);
    /* Neither holds the other's client. */
    assert_string_not_equal(sa, sb);
    free(ptargets);
    close(a);
    close(b);
    it_server_free(s);
}

/* ---- --max-children ----------------------------------------------------------------- */

static void test_max_children(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", "--max-children", "2", NULL };
    IT_START(s, args, 0);
    int a = it_must_connect(s->port), b = it_must_connect(s->port);
    it_must_roundtrip(a, "first");
    it_must_roundtrip(b, "second");
    int c = it_must_connect(s->port);
    char reason[128];
    int rc = it_expect_error_frame(c, FRAME_ERR_BUSY, reason, sizeof reason, T);
    if (rc != 0)
        fail_msg("third client: expected a busy error frame: %s", strerror(-rc));
    close(c);
    IT_ASSERT_LOG(s, 1, T, "connection rejected", "reason=max_children");
    it_must_roundtrip(a, "still served");
    it_must_roundtrip(b, "still served");
    IT_CHECK(metric(s, "counters.connections_rejected_total.max_children") == 1);
    IT_CHECK(metric(s, "counters.connections_accepted_total") == 2);

    /* A slot frees when a child ends: the next client is served. */
    close(a);
    int64_t deadline = it_now_ms() + T;
    int d = -1;
    while (it_now_ms() < deadline) {
        d = it_must_connect(s->port);
        if (it_roundtrip(d, "after one left", 14, T) == 0)
            break;
        close(d);
        d = -1;
        it_sleep_ms(50);
    }
    IT_CHECK(d >= 0);
    close(d);
    close(b);
    it_server_free(s);
}

/* ---- SIGTERM drains the children ------------------------------------------------------ */

#define DRAIN_CLIENTS 4
#define DRAIN_MSGS 20
#define DRAIN_LEN 1000

static void test_sigterm_drain_children(void **state)
{
    (void)state;
    const char *args[] = { "--mode", "fork", "--drain-timeout", "3", NULL };
    IT_START(s, args, 0);
    int fd[DRAIN_CLIENTS];
    pid_t kid[DRAIN_CLIENTS];
    static uint8_t burst[DRAIN_MSGS * (FRAME_HEADER_SIZE + DRAIN_LEN)], got[sizeof burst];
    size_t off = 0;
    for (int i = 0; i < DRAIN_MSGS; i++) {
        frame_header_encode(burst + off, FRAME_DATA, DRAIN_LEN);
        memset(burst + off + FRAME_HEADER_SIZE, 'A' + i, DRAIN_LEN);
        off += FRAME_HEADER_SIZE + DRAIN_LEN;
    }
    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        fd[c] = it_must_connect(s->port);
        it_must_roundtrip(fd[c], "hello");
        kid[c] = child_of(s, fd[c]);
    }
    /* In flight: acknowledged by the server's kernel, maybe not read yet. */
    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        assert_int_equal(it_send_all(fd[c], burst, sizeof burst, T), 0);
        assert_int_equal(it_wait_acked(fd[c], 2000), 0);
    }
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        int rc = it_recv_exact(fd[c], got, sizeof burst, T);
        if (rc != 0)
            fail_msg("client %d: replies lost in the drain: %s", c, strerror(-rc));
        assert_memory_equal(got, burst, sizeof burst);
        assert_int_equal(it_expect_eof(fd[c], T), 0);
        close(fd[c]);
    }
    assert_int_equal(it_server_wait_exit(s, 5000), 0);
    /* The children went first: none outlived the parent. */
    for (int c = 0; c < DRAIN_CLIENTS; c++)
        IT_CHECK(kill(kid[c], 0) < 0 && errno == ESRCH);
    assert_int_equal(it_log_count(s, "connection closed", "msgs_in=21 msgs_out=21", (const char *)NULL),
                     DRAIN_CLIENTS);
    assert_int_equal(it_log_count(s, "child died", (const char *)NULL), 0);
    assert_int_equal(it_log_count(s, "server stopped", (const char *)NULL), 1);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_accounting), cmocka_unit_test(test_child_killed),
        cmocka_unit_test(test_no_zombies),       cmocka_unit_test(test_child_descriptors),
        cmocka_unit_test(test_max_children),     cmocka_unit_test(test_sigterm_drain_children),
        cmocka_unit_test(test_final_record_once),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
