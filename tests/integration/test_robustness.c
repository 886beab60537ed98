/* Integration: tcpmsgd under hostile or broken clients and a starved process:
 * a client that never reads, a client that dribbles, a silent client, and
 * running out of file descriptors. Each case runs alone: test_robustness CASE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"

#define T IT_IO_TIMEOUT_MS
#define MIB (1024.0 * 1024.0)

/* ---- a client that sends and never reads ------------------------------------------ */

#define SLOW_FRAME (64 * 1024)
#define SLOW_FRAMES 64 /* one send attempt offers this many frames (4 MiB) */

struct slow_push {
    uint8_t *buf;        /* SLOW_FRAMES back-to-back frames */
    size_t size, pos;    /* the stream repeats buf; pos is where it stands */
    double attempted;    /* bytes offered to send() */
    double accepted;     /* bytes the kernel took */
    int64_t closed_ms;   /* when sending failed: the server closed; -1 before */
};

static void slow_push_init(struct slow_push *p)
{
    p->size = SLOW_FRAMES * (FRAME_HEADER_SIZE + SLOW_FRAME);
    p->buf = malloc(p->size);
    assert_non_null(p->buf);
    for (size_t f = 0; f < SLOW_FRAMES; f++) {
        uint8_t *frame = p->buf + f * (FRAME_HEADER_SIZE + SLOW_FRAME);
        frame_header_encode(frame, FRAME_DATA, SLOW_FRAME);
        memset(frame + FRAME_HEADER_SIZE, 'a' + (int)f, SLOW_FRAME);
    }
    p->pos = 0;
    p->attempted = p->accepted = 0;
    p->closed_ms = -1;
}

/* Offer the rest of the buffer once, without blocking. */
static void slow_push_try(struct slow_push *p, int fd)
{
    if (p->closed_ms >= 0)
        return;
    size_t n = p->size - p->pos;
    p->attempted += (double)n;
    ssize_t w = send(fd, p->buf + p->pos, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
        p->accepted += (double)w;
        p->pos = (p->pos + (size_t)w) % p->size;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR && p->closed_ms < 0) {
        p->closed_ms = it_now_ms();
    }
}

static void test_slow_reader(void **state)
{
    (void)state;
    const char *args[] = { "--max-pending-output", "256KiB", "--write-timeout", "1", NULL };
    IT_START(s, args, 0);
    int good = it_must_connect(s->port);
    it_must_roundtrip(good, "baseline");
    long base_kib = it_proc_rss_kib(s->pid);
    IT_CHECK(base_kib > 0);

    int slow = it_must_connect(s->port);
    struct slow_push push;
    slow_push_init(&push);
    long peak_kib = base_kib;
    int good_trips = 0;
    int64_t start = it_now_ms(), next_check = start;
    /* Push until the server has closed us and said why, or 10 s. */
    while (it_now_ms() - start < 10000) {
        slow_push_try(&push, slow);
        struct pollfd p = { .fd = slow, .events = POLLOUT };
        poll(&p, 1, 1);
        if (it_now_ms() < next_check)
            continue;
        next_check = it_now_ms() + 250;
        long kib = it_proc_rss_kib(s->pid);
        peak_kib = kib > peak_kib ? kib : peak_kib;
        it_must_roundtrip(good, "served while another client does not read");
        good_trips++;
        if (push.closed_ms >= 0 &&
            it_log_count(s, "connection closed", "reason=slow_reader", (const char *)NULL) > 0)
            break;
    }
    print_message("slow reader: offered %.0f MiB, %.1f MiB went through, closed after %lld ms; "
                  "tcpmsgd VmRSS %ld KiB at start, peak %ld KiB\n",
                  push.attempted / MIB, push.accepted / MIB,
                  (long long)(push.closed_ms - start), base_kib, peak_kib);
    free(push.buf);

    IT_ASSERT_LOG(s, 1, 1000, "connection closed", "reason=slow_reader");
    IT_ASSERT_LOG(s, 1, 1000, "client does not read its replies");
    IT_CHECK(push.closed_ms >= 0);
    assert_in_range(push.closed_ms - start, 0, 6000);
    /* The test itself worked: it kept offering data against a full pipe. */
    IT_CHECK(push.attempted - push.accepted > 32 * MIB);
    /* The server stopped reading: only kernel buffers and the bounded
     * output queue ever took data. */
    assert_in_range((uint64_t)(push.accepted / MIB), 0, 63);
    assert_in_range(peak_kib - base_kib, 0, 32 * 1024 - 1);
    IT_CHECK(good_trips >= 3);
    it_must_roundtrip(good, "served after the slow reader is gone");
    close(slow);
    close(good);
    it_server_free(s);
}

/* ---- a client that dribbles one byte at a time ------------------------------------ */

static void test_byte_a_second(void **state)
{
    (void)state;
    const char *args[] = { "--frame-timeout", "1", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    uint8_t msg[FRAME_HEADER_SIZE + 100];
    frame_header_encode(msg, FRAME_DATA, 100);
    memset(msg + FRAME_HEADER_SIZE, 'd', 100);

    int64_t first = it_now_ms(), answered = -1;
    for (size_t i = 0; i < sizeof msg && answered < 0; i++) {
        if (it_now_ms() - first > 5000)
            break;
        assert_int_equal(it_send_all(fd, msg + i, 1, T), 0);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 300) > 0)
            answered = it_now_ms();
    }
    IT_CHECK(answered > 0);
    int64_t after = answered - first;
    print_message("frame timeout: answered %lld ms after the first byte\n", (long long)after);
    assert_in_range(after, 800, 3000);
    assert_int_equal(it_expect_error_frame(fd, FRAME_ERR_TIMEOUT, NULL, 0, T), 0);
    close(fd);
    IT_ASSERT_LOG(s, 1, T, "frame deadline passed");
    IT_ASSERT_LOG(s, 1, T, "connection closed", "reason=frame_timeout");
    it_server_free(s);
}

/* ---- a small output cap ----------------------------------------------------------------- */

/* Regression: with --max-pending-output below what one read brings, a
 * connection could be left BLOCKED with nothing pending, watched for no
 * event, and never served again. Every message of a burst much larger than
 * the cap must still be answered, framed and text. */
static void test_small_output_cap(void **state)
{
    (void)state;
    const char *args[] = { "--max-pending-output", "1024", "--threads", "1", NULL };
    IT_START(s, args, 0);
    enum { N = 400, LEN = 36 };
    static uint8_t burst[N * (FRAME_HEADER_SIZE + LEN)], back[sizeof burst];
    for (int mode = 0; mode < 2; mode++) {
        size_t n = 0;
        for (int i = 0; i < N; i++) {
            if (mode == 0) {
                frame_header_encode(burst + n, FRAME_DATA, LEN);
                n += FRAME_HEADER_SIZE;
            }
            char line[LEN + 1];
            snprintf(line, sizeof line, "line %04d abcdefghijklmnopqrstuvwxyz", i);
            memcpy(burst + n, line, LEN);
            n += LEN;
            if (mode == 1)
                burst[n++] = '\n';
        }
        int fd = it_must_connect(s->port);
        assert_int_equal(it_send_all(fd, burst, n, T), 0);
        int rc = it_recv_exact(fd, back, n, T);
        if (rc != 0)
            fail_msg("%s burst of %d messages: %s", mode == 0 ? "framed" : "text", N, strerror(-rc));
        assert_memory_equal(back, burst, n);
        close(fd);
    }
    it_server_free(s);
}

/* ---- a silent client ------------------------------------------------------------------ */

static void test_idle_timeout(void **state)
{
    (void)state;
    const char *args[] = { "--idle-timeout", "1", NULL };
    IT_START(s, args, 0);
    int idle = it_must_connect(s->port);
    int busy = it_must_connect(s->port);
    int64_t start = it_now_ms(), closed = -1;
    /* The busy client speaks every 300 ms, which keeps it open; the idle one
     * must be closed around 1 s. */
    while (it_now_ms() - start < 2500) {
        it_must_roundtrip(busy, "still here");
        struct pollfd p = { .fd = idle, .events = POLLIN };
        if (closed < 0 && poll(&p, 1, 300) > 0) {
            closed = it_now_ms();
            assert_int_equal(it_expect_eof(idle, 0), 0);
        } else if (closed >= 0) {
            it_sleep_ms(300);
        }
    }
    if (closed < 0) {
        assert_int_equal(it_expect_eof(idle, 1000), 0);
        closed = it_now_ms();
    }
    int64_t after = closed - start;
    print_message("idle timeout: closed %lld ms after connecting\n", (long long)after);
    assert_in_range(after, 800, 3000);
    it_must_roundtrip(busy, "not idle");
    IT_ASSERT_LOG(s, 1, T, "connection closed", "reason=idle_timeout");
    assert_int_equal(it_log_count(s, "connection closed", (const char *)NULL), 1);
    close(idle);
    close(busy);
    it_server_free(s);
}

/* ---- out of file descriptors ------------------------------------------------------ */

#define EMFILE_CONNS 60

static void test_emfile(void **state)
{
    (void)state;
    const char *args[] = { "--threads", "1", NULL };
    IT_START(s, args, 32);
    int fd[EMFILE_CONNS];
    fd[0] = it_must_connect(s->port);
    it_must_roundtrip(fd[0], "accepted before the limit");
    /* Those beyond the limit complete their handshake in the backlog. */
    for (int i = 1; i < EMFILE_CONNS; i++)
        fd[i] = it_must_connect(s->port);
    IT_ASSERT_LOG(s, 1, T, "accept failed", "Too many open files");
    it_must_roundtrip(fd[0], "served while out of descriptors");

    double cpu0 = it_proc_cpu_s(s->pid);
    it_sleep_ms(1000);
    double cpu1 = it_proc_cpu_s(s->pid);
    IT_CHECK(cpu0 >= 0 && cpu1 >= 0);
    print_message("EMFILE: tcpmsgd used %.2f s of CPU in 1 s\n", cpu1 - cpu0);
    assert_in_range((uint64_t)((cpu1 - cpu0) * 1000), 0, 299); /* ms */
    IT_CHECK(it_server_alive(s));

    for (int i = 0; i < EMFILE_CONNS; i++)
        close(fd[i]);
    /* Recovery: a new client is served within a few seconds. */
    int64_t start = it_now_ms();
    int fresh = it_must_connect(s->port);
    it_must_roundtrip(fresh, "after descriptors came back");
    print_message("EMFILE: recovered in %lld ms\n", (long long)(it_now_ms() - start));
    assert_in_range(it_now_ms() - start, 0, 5000);
    close(fresh);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_small_output_cap),
        cmocka_unit_test(test_byte_a_second),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_emfile),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
