/* Integration: the HTTP endpoint under attack. Slowloris from several
 * addresses while a scraper from another one keeps getting /metrics; slow
 * connections from one address lock it out for no longer than the header
 * deadline; out of descriptors, the endpoint neither spins nor floods the
 * log and answers again once descriptors are free. Everything stays inside
 * 127.0.0.0/8. Each case runs alone: test_http_attack CASE.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define HEADER_DEADLINE_MS 5000 /* the endpoint's default header deadline */
#define PER_IP 8                /* and its default per-address cap */
#define SCRAPER_IP "127.0.0.9"

/* ---- helpers ------------------------------------------------------------------ */

/* A non-blocking connection from local_ip to 127.0.0.1:port, begun but
 * perhaps not yet established. The fd, or -errno. */
static int connect_nb(const char *local_ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, local_ip, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* GET target from local_ip within timeout_ms. Returns the status (and the
 * body in reply when not NULL), or -errno. */
static int get_from(const char *local_ip, int port, const char *target, int timeout_ms,
                    char *reply, size_t cap)
{
    struct it_http r;
    int rc = it_http_get_from(local_ip, port, target, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (reply != NULL && cap > 0)
        snprintf(reply, cap, "%s", r.body);
    int status = r.status;
    it_http_free(&r);
    return status;
}

static long long rejected(json_t *doc, const char *reason)
{
    char path[128];
    snprintf(path, sizeof path, "counters.http_connections_rejected_total.%s", reason);
    return it_json_int(doc, path);
}

/* ---- slowloris ------------------------------------------------------------------ */

#define ATTACK_CONNS 2000
#define ATTACK_ADDRS 5 /* 127.0.0.2 .. 127.0.0.6 */
#define ATTACK_MS 15000
#define ATTACK_BYTE_EVERY_MS 3000

struct attack {
    int port;
    int nconns;
    atomic_bool stop;
    long reconnects;
    long bytes;
};

static const char slow_request[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/* Keep nconns connections open from 127.0.0.2-6, each sending one more byte
 * of a never-ending request every ATTACK_BYTE_EVERY_MS; a connection the
 * server refused or ended is opened again at once, as a real attacker would. */
static void *slowloris(void *arg)
{
    struct attack *a = arg;
    int *fds = calloc((size_t)a->nconns, sizeof *fds);
    size_t *sent = calloc((size_t)a->nconns, sizeof *sent);
    if (fds == NULL || sent == NULL)
        abort();
    char ip[16];
    for (int i = 0; i < a->nconns; i++) {
        snprintf(ip, sizeof ip, "127.0.0.%d", 2 + i % ATTACK_ADDRS);
        fds[i] = connect_nb(ip, a->port);
    }
    while (!atomic_load(&a->stop)) {
        int64_t round_end = it_now_ms() + ATTACK_BYTE_EVERY_MS;
        for (int i = 0; i < a->nconns && !atomic_load(&a->stop); i++) {
            ssize_t w = -1;
            if (fds[i] >= 0) {
                char c = slow_request[sent[i] % (sizeof slow_request - 1)];
                if (sent[i] >= sizeof slow_request - 1)
                    c = 'x';
                w = send(fds[i], &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            }
            if (w == 1) {
                sent[i]++;
                a->bytes++;
            } else if (fds[i] < 0 || (errno != EAGAIN && errno != ENOTCONN)) {
                if (fds[i] >= 0)
                    close(fds[i]);
                snprintf(ip, sizeof ip, "127.0.0.%d", 2 + i % ATTACK_ADDRS);
                fds[i] = connect_nb(ip, a->port);
                sent[i] = 0;
                a->reconnects++;
            }
        }
        while (!atomic_load(&a->stop) && it_now_ms() < round_end)
            it_sleep_ms(20);
    }
    for (int i = 0; i < a->nconns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    free(sent);
    return NULL;
}

/* Regression (slowloris): 2,000 connections from 5 addresses, a byte every
 * 3 s each, held /metrics down for every scraper during the attack and for
 * 291 s after it (64 slots, an idle timeout that a byte every 3 s never
 * reaches, and a backlog of dead connections). Now a scraper from a sixth
 * address gets /metrics in >= 80% of tries during it and within 5 s after. */
static void test_slowloris(void **state)
{
    (void)state;
    rlim_t limit = it_raise_nofile();
    int nconns = ATTACK_CONNS;
    if (limit < (rlim_t)ATTACK_CONNS + 200) {
        nconns = limit > 300 ? (int)limit - 200 : 100;
        fprintf(stderr, "RLIMIT_NOFILE hard limit %llu: attacking with %d connections\n",
                (unsigned long long)limit, nconns);
    }
    IT_START(s, NULL, 0);
    struct attack a = { .port = s->http_port, .nconns = nconns };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slowloris, &a), 0);

    int tries = 0, ok = 0;
    int64_t end = it_now_ms() + ATTACK_MS;
    while (it_now_ms() < end) {
        int64_t next = it_now_ms() + 500;
        int st = get_from(SCRAPER_IP, s->http_port, "/metrics", 2000, NULL, 0);
        tries++;
        ok += st == 200;
        while (it_now_ms() < next)
            it_sleep_ms(10);
    }
    atomic_store(&a.stop, true);
    pthread_join(t, NULL);
    int64_t left = it_now_ms();
    int after = -1;
    while (it_now_ms() - left < 5000) {
        after = get_from(SCRAPER_IP, s->http_port, "/metrics", 1000, NULL, 0);
        if (after == 200)
            break;
        it_sleep_ms(100);
    }
    int64_t recovered_ms = it_now_ms() - left;
    fprintf(stderr,
            "slowloris: %d connections, %ld reconnects, %ld bytes; scraper %d/%d during, "
            "200 again %lld ms after\n",
            nconns, a.reconnects, a.bytes, ok, tries, (long long)recovered_ms);
    if (ok * 5 < tries * 4)
        fail_msg("scraper got /metrics in %d of %d tries during the attack, want >= 80%%", ok,
                 tries);
    if (after != 200)
        fail_msg("no /metrics within 5 s after the attack (last: %d)", after);

    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    long long per_ip = rejected(doc, "per_ip"), late = rejected(doc, "header_timeout");
    long long max_conns = rejected(doc, "max_conns");
    json_decref(doc);
    fprintf(stderr, "rejected: per_ip %lld, header_timeout %lld, max_conns %lld\n", per_ip, late,
            max_conns);
    IT_CHECK(per_ip > 0);
    IT_CHECK(late > 0);
    IT_CHECK(max_conns == 0); /* 5 addresses x 8 never fill the 64 slots */
    IT_CHECK(it_log_count(s, "http connection refused", "reason=per_ip", (const char *)NULL) < 60);
    it_server_free(s);
}

/* Regression: 16 slow connections from one address held all 16 of its
 * slots and locked it out for as long as they kept sending. Now 8 are
 * taken, 8 refused with a 503, and the 8 taken ones are ended at the header
 * deadline however often they send: then the address gets in again. */
static void test_one_address_not_locked_out(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    const char *ip = "127.0.0.2";
    enum { SLOW = 16 };
    int fds[SLOW];
    int64_t t0 = it_now_ms();
    for (int i = 0; i < SLOW; i++) {
        fds[i] = it_connect_from(ip, s->http_port);
        IT_CHECK(fds[i] >= 0);
        assert_int_equal(it_send_all(fds[i], "GET / HTTP/1.1\r\n", 16, IT_IO_TIMEOUT_MS), 0);
    }
    /* While they hold the address's slots, it is refused with a reason. */
    it_sleep_ms(200);
    char reply[512] = "";
    int refused = get_from(ip, s->http_port, "/metrics", IT_IO_TIMEOUT_MS, reply, sizeof reply);

    /* Activity does not extend the deadline: a header byte every second. */
    for (int sec = 1; sec <= 3; sec++) {
        while (it_now_ms() - t0 < sec * 1000)
            it_sleep_ms(20);
        for (int i = 0; i < SLOW; i++)
            send(fds[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT); /* fails on the refused ones */
    }
    int early = get_from(ip, s->http_port, "/metrics", IT_IO_TIMEOUT_MS, NULL, 0);

    /* From the deadline on, the address gets in again. */
    while (it_now_ms() - t0 < HEADER_DEADLINE_MS)
        it_sleep_ms(20);
    int status = -1, late = 0; /* late: refused while the cut ones were being closed */
    while (status != 200 && it_now_ms() - t0 < HEADER_DEADLINE_MS + 2000) {
        status = get_from(ip, s->http_port, "/metrics", 1000, NULL, 0);
        late += status == 503;
        if (status != 200)
            it_sleep_ms(50);
    }
    int64_t since_open = it_now_ms() - t0;
    fprintf(stderr, "%s got in again %lld ms after its slow connections opened\n", ip,
            (long long)since_open);
    if (status != 200)
        fail_msg("%s still locked out %lld ms after its 16 slow connections opened: %d", ip,
                 (long long)since_open, status);
    if (refused != 503 || strstr(reply, "too many connections from your address") == NULL)
        fail_msg("a 17th connection from %s got %d: %s", ip, refused, reply);
    IT_CHECK(early == 503); /* not cut before the deadline */
    for (int i = 0; i < SLOW; i++) {
        int rc = it_expect_eof(fds[i], IT_IO_TIMEOUT_MS);
        IT_CHECK(rc == 0 || rc == -ECONNRESET || rc == -EPROTO); /* -EPROTO: the 503 */
        close(fds[i]);
    }
    /* 8 taken and cut at the deadline; 8 refused, then the GETs above. */
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    IT_CHECK(late <= 3);
    IT_CHECK(rejected(doc, "per_ip") == SLOW - PER_IP + 2 + late);
    IT_CHECK(rejected(doc, "header_timeout") == PER_IP);
    IT_CHECK(rejected(doc, "max_conns") == 0);
    IT_CHECK(it_json_int(doc, "counters.http_responses_total.5xx") == SLOW - PER_IP + 2 + late);
    json_decref(doc);
    it_server_free(s);
}

/* ---- out of descriptors -------------------------------------------------------------- */

/* Read a refusal until EOF or a reset, within the I/O timeout: the server
 * may accept (and refuse) before the request is sent, and a request that
 * arrives after its close draws a reset, after the answer. Returns the bytes
 * read, NUL-terminated in buf. */
static size_t recv_answer(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    int64_t deadline = it_now_ms() + IT_IO_TIMEOUT_MS;
    while (n < cap - 1 && it_now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

#define LOW_NOFILE 64
#define MSG_CONNS 200

/* Regression: with RLIMIT_NOFILE 64 and 200 message connections, one HTTP
 * connection sent libmicrohttpd's thread into a busy loop (80-99% CPU) that
 * logged ~100 MB/s. Now the endpoint refuses the client through its spare
 * descriptor, pauses, and logs a bounded number of lines; once descriptors
 * are free, /metrics answers again. */
static void test_emfile_http(void **state)
{
    (void)state;
    it_raise_nofile();
    IT_START(s, NULL, LOW_NOFILE);
    int fds[MSG_CONNS];
    for (int i = 0; i < MSG_CONNS; i++)
        fds[i] = connect_nb("127.0.0.1", s->port);
    IT_ASSERT_LOG(s, 1, IT_IO_TIMEOUT_MS, "accept failed, pausing accepts", "Too many open files");

    int http[3];
    for (int i = 0; i < 3; i++) {
        http[i] = it_connect(s->http_port);
        IT_CHECK(http[i] >= 0);
        static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_int_equal(it_send_all(http[i], req, sizeof req - 1, IT_IO_TIMEOUT_MS), 0);
    }
    double cpu0 = it_proc_cpu_s(s->pid);
    int lines0 = it_log_count(s, (const char *)NULL);
    it_sleep_ms(3000);
    double cpu = it_proc_cpu_s(s->pid) - cpu0;
    int lines = it_log_count(s, (const char *)NULL) - lines0;
    fprintf(stderr, "out of descriptors for 3 s: %.3f s of CPU, %d log lines\n", cpu, lines);
    IT_CHECK(it_server_alive(s));
    if (cpu > 0.5 || lines >= 20) {
        it_log_dump(s);
        fail_msg("out of descriptors: %.3f s of CPU and %d log lines in 3 s", cpu, lines);
    }
    /* Each HTTP client was told why, through the spare descriptor. */
    for (int i = 0; i < 3; i++) {
        char buf[1024];
        IT_CHECK(recv_answer(http[i], buf, sizeof buf) > 0);
        if (strstr(buf, "HTTP/1.1 503") == NULL || strstr(buf, "out of file descriptors") == NULL)
            fail_msg("HTTP client %d got: %s", i, buf);
        close(http[i]);
    }
    IT_CHECK(it_log_count(s, "http accept failed, pausing accepts", (const char *)NULL) >= 1);

    for (int i = 0; i < MSG_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    int64_t t0 = it_now_ms();
    json_t *doc = NULL;
    while (doc == NULL && it_now_ms() - t0 < 5000) {
        doc = it_http_get_json(s->http_port, "/metrics");
        if (doc == NULL)
            it_sleep_ms(200);
    }
    if (doc == NULL)
        fail_msg("/metrics did not answer within 5 s of the descriptors coming free");
    IT_CHECK(rejected(doc, "no_fds") >= 3);
    json_decref(doc);
    it_server_free(s);
}

/* ---- the total cap --------------------------------------------------------------------- */

#define ALL_SLOTS 64 /* the endpoint's default total cap */

/* 64 slow connections from 8 addresses (8 each, within the per-address cap)
 * fill every slot: the next client, from a ninth address, is answered 503
 * at once and counted as max_conns; the slots come back as the slow ones
 * leave. */
static void test_total_cap(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fds[ALL_SLOTS];
    for (int i = 0; i < ALL_SLOTS; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%d", 11 + i / PER_IP);
        fds[i] = it_connect_from(ip, s->http_port);
        IT_CHECK(fds[i] >= 0);
        assert_int_equal(it_send_all(fds[i], "G", 1, IT_IO_TIMEOUT_MS), 0);
    }
    it_sleep_ms(500); /* all accepted (no /metrics to ask: there is no slot left) */
    char reply[512];
    int status = get_from("127.0.0.19", s->http_port, "/metrics", IT_IO_TIMEOUT_MS, reply,
                          sizeof reply);
    assert_int_equal(status, 503);
    IT_CHECK(strstr(reply, "too many connections") != NULL);
    for (int i = 0; i < ALL_SLOTS; i++)
        close(fds[i]);
    /* The slots come back as the server sees them go; until then /metrics
     * is refused too, and counted. Then only the connection asking is open. */
    int refused = 1;
    for (int64_t end = it_now_ms() + IT_IO_TIMEOUT_MS; it_now_ms() < end; refused++) {
        status = get_from("127.0.0.1", s->http_port, "/healthz", IT_IO_TIMEOUT_MS, NULL, 0);
        if (status != 503)
            break;
        it_sleep_ms(50);
    }
    assert_int_equal(status, 200);
    json_t *doc = it_wait_metric(s, "gauges.http_connections_open", 1);
    IT_CHECK(rejected(doc, "max_conns") == refused);
    IT_CHECK(rejected(doc, "per_ip") == 0);
    json_decref(doc);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_one_address_not_locked_out),
        cmocka_unit_test(test_emfile_http),
        cmocka_unit_test(test_total_cap),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
