/* Integration: tcpmsgd's graceful shutdown. SIGTERM answers what clients
 * already sent, then exits 0 within --drain-timeout even if a client lingers.
 * Each case runs alone: test_shutdown CASE.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"

#define T IT_IO_TIMEOUT_MS

#define DRAIN_CLIENTS 8
#define DRAIN_MSGS 10
#define DRAIN_MAX 4000

/* Client c's DRAIN_MSGS frames, back to back, into buf; returns the size. */
static size_t build_burst(uint8_t *buf, int c)
{
    size_t off = 0;
    for (int i = 0; i < DRAIN_MSGS; i++) {
        size_t len = 1 + ((size_t)c * 997 + (size_t)i * 389) % DRAIN_MAX;
        frame_header_encode(buf + off, FRAME_DATA, len);
        off += FRAME_HEADER_SIZE;
        for (size_t j = 0; j < len; j++)
            buf[off + j] = (uint8_t)(c * 29 + i * 3 + j);
        buf[off] = (uint8_t)c;
        off += len;
    }
    return off;
}

/* Regression: a connection BLOCKED by --max-pending-output when the drain
 * began went straight to closing, and the complete messages in its buffer
 * were never answered. Every message the server received must get its reply,
 * however far behind the client is. */
static void test_drain_blocked(void **state)
{
    (void)state;
    const char *args[] = { "--max-pending-output", "4096", "--threads", "1",
                           "--drain-timeout", "8", NULL };
    IT_START(s, args, 0);
    /* 1.5 MiB: more than the kernel buffers hold at first, well within what
     * the drain reads (16 MiB) before it stops reading. */
    enum { LEN = 1020, FRAME = FRAME_HEADER_SIZE + LEN, NFRAMES = 1536 };
    uint8_t *burst = malloc((size_t)NFRAMES * FRAME), *back = malloc((size_t)NFRAMES * FRAME);
    assert_non_null(burst);
    assert_non_null(back);
    for (int i = 0; i < NFRAMES; i++) {
        frame_header_encode(burst + (size_t)i * FRAME, FRAME_DATA, LEN);
        memset(burst + (size_t)i * FRAME + FRAME_HEADER_SIZE, 'a' + i % 26, LEN);
        memcpy(burst + (size_t)i * FRAME + FRAME_HEADER_SIZE, &i, sizeof i);
    }
    int fd = it_must_connect(s->port);
    /* Push without reading until the kernel takes no more: the server is
     * then BLOCKED behind its output cap with messages in its buffer. */
    size_t pushed = 0;
    int64_t quiet_since = it_now_ms();
    while (pushed < (size_t)NFRAMES * FRAME && it_now_ms() - quiet_since < 300) {
        ssize_t w = send(fd, burst + pushed, (size_t)NFRAMES * FRAME - pushed,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            pushed += (size_t)w;
            quiet_since = it_now_ms();
        } else {
            it_sleep_ms(10);
        }
    }
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    ssize_t got = it_recv_until_eof(fd, back, (size_t)NFRAMES * FRAME, 10000);
    IT_CHECK(got >= 0 && got % FRAME == 0);
    assert_memory_equal(back, burst, (size_t)got);
    close(fd);
    assert_int_equal(it_server_wait_exit(s, 10000), 0);

    /* Every message sent was answered: the ones the server had parsed when
     * the drain began, the ones still in its buffer, and the ones still in
     * the kernel; the server's own account agrees. */
    char *log = it_log_read(s);
    const char *line = log != NULL ? strstr(log, "connection closed") : NULL;
    IT_CHECK(line != NULL);
    const char *p = strstr(line, "bytes_in="), *q = strstr(line, "msgs_out=");
    IT_CHECK(p != NULL && q != NULL);
    unsigned long long read_bytes = strtoull(p + 9, NULL, 10);
    unsigned long long out = strtoull(q + 9, NULL, 10);
    print_message("pushed %zu bytes; the server read %llu (%llu whole messages), answered %llu\n",
                  pushed, read_bytes, read_bytes / FRAME, out);
    free(log);
    IT_CHECK(pushed >= 256 * 1024); /* far past the output cap: it blocked */
    assert_int_equal(out, pushed / FRAME);
    assert_int_equal(got, (ssize_t)(out * FRAME));
    assert_int_equal(read_bytes, pushed);
    free(burst);
    free(back);
    it_server_free(s);
}

static void test_sigterm_drain(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "3", NULL };
    IT_START(s, args, 0);
    int fd[DRAIN_CLIENTS];
    size_t size[DRAIN_CLIENTS];
    uint8_t *sent = malloc((size_t)DRAIN_CLIENTS * DRAIN_MSGS * (FRAME_HEADER_SIZE + DRAIN_MAX));
    uint8_t *got = malloc((size_t)DRAIN_MSGS * (FRAME_HEADER_SIZE + DRAIN_MAX));
    assert_non_null(sent);
    assert_non_null(got);
    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        fd[c] = it_connect(s->port);
        IT_CHECK(fd[c] >= 0);
    }
    /* Accepted, so the drain owns them (a connection still in the backlog
     * when the listener closes would be reset: that is not a drain). */
    IT_ASSERT_LOG(s, DRAIN_CLIENTS, T, "connection opened");

    uint8_t *burst[DRAIN_CLIENTS];
    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        burst[c] = sent + (size_t)c * DRAIN_MSGS * (FRAME_HEADER_SIZE + DRAIN_MAX);
        size[c] = build_burst(burst[c], c);
        assert_int_equal(it_send_all(fd[c], burst[c], size[c], T), 0);
    }
    /* In flight: in the server's receive queue, maybe not read yet. */
    for (int c = 0; c < DRAIN_CLIENTS; c++)
        assert_int_equal(it_wait_acked(fd[c], 2000), 0);
    int64_t term = it_now_ms();
    assert_int_equal(it_server_signal(s, SIGTERM), 0);

    for (int c = 0; c < DRAIN_CLIENTS; c++) {
        int rc = it_recv_exact(fd[c], got, size[c], T);
        if (rc != 0)
            fail_msg("client %d: replies lost in the drain: %s", c, strerror(-rc));
        assert_memory_equal(got, burst[c], size[c]);
        assert_int_equal(it_expect_eof(fd[c], T), 0);
        close(fd[c]);
    }
    free(sent);
    free(got);
    int status = it_server_wait_exit(s, 3000 + 2000);
    int64_t took = it_now_ms() - term;
    print_message("drain: exit status %d after %lld ms\n", status, (long long)took);
    assert_int_equal(status, 0);
    assert_in_range(took, 0, 3000 + 1500);
    assert_int_equal(it_log_count(s, "shutting down", "signal=Terminated", (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "server stopped", (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "connection closed", "msgs_in=10 msgs_out=10", (const char *)NULL),
                     DRAIN_CLIENTS);
    it_server_free(s);
}

/* A client that stays connected and silent does not hold the server past
 * --drain-timeout. */
static void test_drain_timeout_idle(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "1", NULL };
    IT_START(s, args, 0);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0);
    assert_int_equal(it_roundtrip(fd, "x", 1, T), 0);

    int64_t term = it_now_ms();
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int status = it_server_wait_exit(s, 5000);
    int64_t took = it_now_ms() - term;
    print_message("drain with an idle client: exit status %d after %lld ms\n", status,
                  (long long)took);
    assert_int_equal(status, 0);
    assert_in_range(took, 0, 1000 + 1500);
    int rc = it_expect_eof(fd, 0);
    IT_CHECK(rc == 0 || rc == -ECONNRESET);
    close(fd);
    assert_int_equal(it_log_count(s, "connection closed", "reason=shutdown", (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "server stopped", (const char *)NULL), 1);
    it_server_free(s);
}

/* Read until EOF at most `chunk` bytes at a time, pausing pause_ms after
 * each read: a slow reader. Bounded by timeout_ms. Returns the bytes read,
 * or -1 on an error or the timeout. */
static ssize_t read_slowly(int fd, uint8_t *buf, size_t cap, size_t chunk, int pause_ms,
                           int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        size_t want = cap - got < chunk ? cap - got : chunk;
        ssize_t r = recv(fd, buf + got, want > 0 ? want : 1, 0);
        if (r == 0)
            return (ssize_t)got;
        if (r < 0 || want == 0)
            return -1; /* an error, or more than was sent */
        got += (size_t)r;
        it_sleep_ms(pause_ms);
    }
    return -1;
}

/* Regression (issue: "--mode fork, SIGTERM while a slow reader has 4,000
 * messages in flight"): a fork-mode child's drain deadline was 0, so its
 * first tick after SIGTERM (within 0.1 s) closed the connection and about a
 * quarter of the replies were lost, whatever --drain-timeout said. With
 * --drain-timeout 5, a reader that needs a second or so gets every reply,
 * in both modes. */
static void test_drain_slow_reader(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "5", NULL };
    IT_START(s, args, 0);
    enum { LEN = 2044, FRAME = FRAME_HEADER_SIZE + LEN, NFRAMES = 4000 };
    const size_t total = (size_t)NFRAMES * FRAME;
    uint8_t *burst = malloc(total), *back = malloc(total);
    assert_non_null(burst);
    assert_non_null(back);
    for (int i = 0; i < NFRAMES; i++) {
        frame_header_encode(burst + (size_t)i * FRAME, FRAME_DATA, LEN);
        memset(burst + (size_t)i * FRAME + FRAME_HEADER_SIZE, 'a' + i % 26, LEN);
        memcpy(burst + (size_t)i * FRAME + FRAME_HEADER_SIZE, &i, sizeof i);
    }
    int fd = it_connect_rcvbuf(s->port, 65536);
    IT_CHECK(fd >= 0);
    it_must_roundtrip(fd, "hello"); /* served (in fork mode: by its child) */
    /* Up to 4,000 in flight (8 MB): more than the server's kernel buffers
     * hold, so replies wait in the server itself. Push until the kernel
     * takes no more. */
    size_t pushed = 0;
    int64_t quiet_since = it_now_ms();
    while (pushed < total && it_now_ms() - quiet_since < 300) {
        ssize_t w = send(fd, burst + pushed, total - pushed, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            pushed += (size_t)w;
            quiet_since = it_now_ms();
        } else {
            it_sleep_ms(10);
        }
    }
    pushed -= pushed % FRAME; /* a partial last frame is never answered */
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int64_t start = it_now_ms();
    /* 32 KiB per read, a pause after each: over 100 reads and 200 ms, past
     * the first tick of the drain (0.1 s). */
    ssize_t got = read_slowly(fd, back, total, 32768, 2, 20000);
    int64_t took = it_now_ms() - start;
    print_message("pushed %zu bytes; read %zd reply bytes in %lld ms after SIGTERM\n", pushed,
                  got, (long long)took);
    close(fd);
    IT_CHECK(pushed >= (size_t)FRAME * 1000);
    if (got != (ssize_t)pushed) {
        it_log_dump(s);
        fail_msg("replies lost in the drain: %zd of %zu bytes (%zd of %zu messages)", got, pushed,
                 got < 0 ? got : got / FRAME, pushed / FRAME);
    }
    assert_memory_equal(back, burst, pushed);
    assert_int_equal(it_server_wait_exit(s, 10000), 0);
    free(burst);
    free(back);
    it_server_free(s);
}

/* Regression: a drain that timed out with replies still unsent exited 0
 * with no warning, as if nothing had been lost. A client that reads none of
 * its replies past --drain-timeout: its connection is closed with reason
 * drain_timeout, a warning counts it and the reply bytes never written, and
 * tcpmsgd exits 3. */
/* A client that sends far more than it reads: replies wait in the server,
 * and nobody reads them. Returns its socket (*burst to free). */
static int fill_with_unread_replies(const struct it_server *s, uint8_t **burst)
{
    enum { LEN = 2044, FRAME = FRAME_HEADER_SIZE + LEN, NFRAMES = 2000 };
    const size_t total = (size_t)NFRAMES * FRAME;
    *burst = calloc(1, total);
    assert_non_null(*burst);
    for (int i = 0; i < NFRAMES; i++)
        frame_header_encode(*burst + (size_t)i * FRAME, FRAME_DATA, LEN);
    int fd = it_connect_rcvbuf(s->port, 16384);
    IT_CHECK(fd >= 0);
    it_must_roundtrip(fd, "hello");
    /* More replies than the kernel buffers between us hold. */
    size_t pushed = 0;
    int64_t quiet_since = it_now_ms();
    while (pushed < total && it_now_ms() - quiet_since < 300) {
        ssize_t w = send(fd, *burst + pushed, total - pushed, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            pushed += (size_t)w;
            quiet_since = it_now_ms();
        } else {
            it_sleep_ms(10);
        }
    }
    IT_CHECK(pushed >= (size_t)FRAME * 500);
    return fd;
}

static void test_drain_timeout_lost(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "0.5", NULL };
    IT_START(s, args, 0);
    uint8_t *burst;
    int fd = fill_with_unread_replies(s, &burst);
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int status = it_server_wait_exit(s, 5000);
    if (status != 3) {
        it_log_dump(s);
        fail_msg("exit status %d after a drain that lost replies, want 3", status);
    }
    assert_int_equal(it_log_count(s, "WARN", "the drain timed out: replies were lost",
                                  "connections=1", "unsent_bytes=", (const char *)NULL), 1);
    /* Replies were waiting in the server: some bytes were never written. */
    assert_int_equal(it_log_count(s, "the drain timed out", "unsent_bytes=0 ", (const char *)NULL),
                     0);
    assert_int_equal(it_log_count(s, "connection closed", "reason=drain_timeout",
                                  (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "server stopped", (const char *)NULL), 1);
    close(fd);
    free(burst);
    it_server_free(s);
}

/* A second signal cuts a long drain short, with the same accounting: the
 * replies still waiting are lost, said so, and the exit status is 3 (in
 * fork mode too, where the parent kills the child that still holds them).
 * Regression: fork mode counted the killed child as a clean shutdown and
 * exited 0. */
static void test_second_signal_lost(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "60", NULL };
    IT_START(s, args, 0);
    uint8_t *burst;
    int fd = fill_with_unread_replies(s, &burst);
    it_sleep_ms(200); /* the fork-mode child reports what it holds (each 100 ms) */
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    IT_ASSERT_LOG(s, 1, IT_IO_TIMEOUT_MS, "draining");
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int status = it_server_wait_exit(s, 5000);
    if (status != 3) {
        it_log_dump(s);
        fail_msg("exit status %d after a second signal cut a drain with replies waiting, want 3",
                 status);
    }
    assert_int_equal(it_log_count(s, "WARN", "the drain timed out: replies were lost",
                                  "connections=1", (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "the drain timed out", "unsent_bytes=0 ", (const char *)NULL),
                     0);
    close(fd);
    free(burst);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_drain),
        cmocka_unit_test(test_drain_blocked),
        cmocka_unit_test(test_drain_timeout_idle),
        cmocka_unit_test(test_drain_slow_reader),
        cmocka_unit_test(test_drain_timeout_lost),
        cmocka_unit_test(test_second_signal_lost),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
