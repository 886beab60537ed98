/* Unit tests for tstamp (src/tstamp.c) and tcpinfo (src/tcpinfo.c), on real
 * loopback TCP connections: the kernel's receive timestamp shows time a
 * message waited in the socket; a sampled send gets its SCHED, SND and ACK
 * stamps numbered by its last byte, partial writes included; an unsampled
 * send queues nothing; TCP_INFO's byte counts match what was sent. The
 * matching of stamps to samples is tested alone with made-up reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/tcpinfo.h"
#include "tcpmsg/tstamp.h"

#define MS 1000000ull

/* A connected loopback TCP pair: fd[0] the connecting side, fd[1] the
 * accepted one. */
static void tcp_pair(int fd[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(fd[0], (struct sockaddr *)&a, sizeof a), 0);
    fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd[1] >= 0);
    close(l);
    int one = 1;
    setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static ssize_t send_sampled(int fd, const void *buf, size_t n, int flags)
{
    union {
        char buf[TSTAMP_TX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf };
    msg.msg_controllen = tstamp_tx_cmsg(ctl.buf);
    return sendmsg(fd, &msg, flags);
}

/* The next transmit stamp of fd, waiting for it up to 2 s: 1, or 0 if none
 * came. */
static int next_report(int fd, struct tstamp_report *r)
{
    for (int i = 0; i < 200; i++) {
        int rc = tstamp_read_tx(fd, r);
        assert_true(rc >= 0);
        if (rc == 1)
            return 1;
        struct pollfd p = { .fd = fd, .events = 0 }; /* POLLERR is always reported */
        poll(&p, 1, 10);
    }
    return 0;
}

/* Read everything fd has now, without blocking; returns the bytes. */
static size_t drain(int fd)
{
    static char buf[1 << 16];
    size_t total = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        total += (size_t)n;
    return total;
}

/* Wait (up to 2 s) until the peer has acknowledged everything fd sent. */
static void wait_all_acked(int fd)
{
    struct tcpinfo ti;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(tcpinfo_read(fd, &ti), 0);
        if (ti.unacked == 0)
            return;
        sleep_ms(10);
    }
    fail_msg("%llu segments still unacknowledged after 2 s", (unsigned long long)ti.unacked);
}

/* ---- receive ---------------------------------------------------------------------------- */

/* recvmsg of up to cap bytes with room for the receive timestamp: the
 * bytes, and the stamp in *rx (0 when none). */
static ssize_t recv_stamped(int fd, void *buf, size_t cap, uint64_t *rx)
{
    union {
        char buf[TSTAMP_RX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof ctl.buf };
    ssize_t n = recvmsg(fd, &msg, 0);
    *rx = n > 0 ? tstamp_rx_ns(&msg) : 0;
    return n;
}

/* The kernel turns receive timestamps on for the whole system a moment
 * after the first socket asks (a deferred static key: netstamp_wanted), so
 * a segment that arrives just after tstamp_enable can come unstamped. Send
 * single bytes until one comes stamped (at most 2 s). */
static void wait_stamps_on(int from, int to)
{
    for (int i = 0; i < 200; i++) {
        char c;
        uint64_t rx;
        assert_int_equal(send(from, "w", 1, 0), 1);
        assert_int_equal(recv_stamped(to, &c, 1, &rx), 1);
        if (rx != 0)
            return;
        sleep_ms(10);
    }
    fail_msg("no receive timestamp within 2 s of tstamp_enable");
}

/* A message read 50 ms after it arrived: the kernel's receive timestamp
 * shows the 50 ms it waited in the socket. */
static void test_rx_shows_time_in_the_queue(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    assert_false(tstamp_enabled(fd[1]));
    assert_int_equal(tstamp_enable(fd[1]), 0);
    assert_true(tstamp_enabled(fd[1]));
    wait_stamps_on(fd[0], fd[1]);

    assert_int_equal(send(fd[0], "hello\n", 6, 0), 6);
    sleep_ms(50);
    char data[16];
    uint64_t rx;
    assert_int_equal(recv_stamped(fd[1], data, sizeof data, &rx), 6);
    uint64_t now = tstamp_now_ns();
    assert_true(rx != 0 && rx <= now);
    assert_true(now - rx >= 45 * MS);
    close(fd[0]);
    close(fd[1]);
}

/* Without tstamp_enable there is no receive timestamp. */
static void test_rx_none_when_not_enabled(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    assert_int_equal(send(fd[0], "x", 1, 0), 1);
    char data[4];
    union {
        char buf[TSTAMP_RX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof ctl.buf };
    assert_int_equal(recvmsg(fd[1], &msg, 0), 1);
    assert_int_equal(tstamp_rx_ns(&msg), 0);
    close(fd[0]);
    close(fd[1]);
}

/* ---- transmit ---------------------------------------------------------------------------- */

/* 100 bytes unsampled, then 50 sampled: three stamps, SCHED, SND and ACK,
 * each once, all for byte 149 (the sampled send's last byte), and nothing
 * for the first send. */
static void test_tx_three_stamps_for_a_sampled_send(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    assert_int_equal(tstamp_enable(fd[0]), 0);
    char buf[100];
    memset(buf, 'a', sizeof buf);
    assert_int_equal(send(fd[0], buf, 100, 0), 100);
    uint64_t handed = tstamp_now_ns();
    assert_int_equal(send_sampled(fd[0], buf, 50, 0), 50);

    unsigned seen[TSTAMP_TX_COUNT] = { 0 };
    struct tstamp_report r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next_report(fd[0], &r), 1);
        assert_int_equal(r.key, 149);
        assert_true(r.ns >= handed - MS); /* the kernel's clock, read the same way */
        seen[r.kind]++;
    }
    for (int k = 0; k < TSTAMP_TX_COUNT; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(drain(fd[1]), 150);
    wait_all_acked(fd[0]);
    assert_int_equal(tstamp_read_tx(fd[0], &r), 0);
    close(fd[0]);
    close(fd[1]);
}

/* Sends that do not ask queue no stamp, though reporting is on. */
static void test_tx_unsampled_sends_queue_nothing(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    assert_int_equal(tstamp_enable(fd[0]), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send(fd[0], "message\n", 8, 0), 8);
    assert_int_equal(drain(fd[1]), 24);
    wait_all_acked(fd[0]);
    struct tstamp_report r;
    assert_int_equal(tstamp_read_tx(fd[0], &r), 0);
    close(fd[0]);
    close(fd[1]);
}

/* A sampled message that takes several sends (the peer's window is full):
 * the partial write's stamps carry its own last byte, which the tracker
 * ignores; the sample completes with the stamps of the message's last byte,
 * once the rest is sent and acknowledged. */
static void test_tx_partial_write_matched_by_last_byte(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    int small = 16384;
    setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(tstamp_enable(fd[0]), 0);

    enum { SIZE = 1 << 20 };
    char *msg = calloc(1, SIZE);
    assert_non_null(msg);
    struct tstamp_track track = { 0 };
    uint64_t handed = tstamp_now_ns();
    tstamp_track_sent(&track, SIZE - 1, handed);

    ssize_t first = send_sampled(fd[0], msg, SIZE, MSG_DONTWAIT);
    assert_true(first > 0 && first < SIZE);
    size_t sent = (size_t)first, received = 0;
    for (int i = 0; i < 5000 && received < SIZE; i++) {
        received += drain(fd[1]);
        if (sent < SIZE) {
            ssize_t n = send_sampled(fd[0], msg + sent, SIZE - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
        }
        struct pollfd p = { .fd = fd[1], .events = POLLIN };
        poll(&p, 1, 1);
    }
    assert_int_equal(received, SIZE);

    struct tstamp_tx_stages st;
    bool done = false;
    bool saw_partial = false;
    struct tstamp_report r;
    while (!done && next_report(fd[0], &r) == 1) {
        saw_partial |= r.key == (uint32_t)first - 1;
        tstamp_track_report(&track, &r);
        done = tstamp_track_next(&track, &st);
    }
    assert_true(done);
    assert_true(saw_partial); /* the first send's own stamps came, and were not taken */
    assert_int_equal(track.npending, 0);
    assert_int_equal(track.dropped, 0);
    uint64_t total = st.sched_ns + st.send_ns + st.ack_ns;
    assert_true(total <= tstamp_now_ns() - handed);
    free(msg);
    close(fd[0]);
    close(fd[1]);
}

/* ---- matching, with made-up reports ------------------------------------------------------ */

static void report(struct tstamp_track *t, enum tstamp_tx kind, uint32_t key, uint64_t ns)
{
    struct tstamp_report r = { .kind = kind, .key = key, .ns = ns };
    tstamp_track_report(t, &r);
}

static void test_track_stages_from_one_sample(void **state)
{
    (void)state;
    struct tstamp_track t = { 0 };
    tstamp_track_sent(&t, 99, 1000);
    struct tstamp_tx_stages st;
    report(&t, TSTAMP_SCHED, 99, 1010);
    report(&t, TSTAMP_SND, 99, 1030);
    assert_false(tstamp_track_next(&t, &st)); /* no ACK yet */
    report(&t, TSTAMP_ACK, 99, 1100);
    assert_true(tstamp_track_next(&t, &st));
    assert_int_equal(st.sched_ns, 10);
    assert_int_equal(st.send_ns, 20);
    assert_int_equal(st.ack_ns, 70);
    assert_false(tstamp_track_next(&t, &st));
}

/* Loopback takes SND before SCHED: that stage is 0 and the three still add
 * up to handed -> ACK. */
static void test_track_boundaries_never_go_back(void **state)
{
    (void)state;
    struct tstamp_track t = { 0 };
    tstamp_track_sent(&t, 7, 1000);
    report(&t, TSTAMP_SND, 7, 1005);
    report(&t, TSTAMP_SCHED, 7, 1008);
    report(&t, TSTAMP_ACK, 7, 1050);
    struct tstamp_tx_stages st;
    assert_true(tstamp_track_next(&t, &st));
    assert_int_equal(st.sched_ns, 8);
    assert_int_equal(st.send_ns, 0);
    assert_int_equal(st.ack_ns, 42);
}

/* One stamp of a later byte completes every sample at or before it, oldest
 * first; a stamp of an earlier byte completes nothing. */
static void test_track_later_byte_counts_for_earlier_samples(void **state)
{
    (void)state;
    struct tstamp_track t = { 0 };
    tstamp_track_sent(&t, 99, 1000);
    tstamp_track_sent(&t, 199, 2000);
    report(&t, TSTAMP_SCHED, 50, 900); /* a partial write's: earlier */
    report(&t, TSTAMP_SCHED, 299, 3000);
    report(&t, TSTAMP_SND, 299, 3100);
    report(&t, TSTAMP_ACK, 299, 3500);
    struct tstamp_tx_stages st;
    assert_true(tstamp_track_next(&t, &st));
    assert_int_equal(st.sched_ns, 2000); /* 1000 -> 3000: the first sample */
    assert_true(tstamp_track_next(&t, &st));
    assert_int_equal(st.sched_ns, 1000); /* 2000 -> 3000 */
    assert_int_equal(st.ack_ns, 400);
    assert_false(tstamp_track_next(&t, &st));
    assert_int_equal(t.dropped, 0);
}

/* Byte numbers wrap at 2^32: a stamp of byte 16 after the wrap is later
 * than a sample at byte 2^32 - 16. */
static void test_track_byte_numbers_wrap(void **state)
{
    (void)state;
    struct tstamp_track t = { 0 };
    tstamp_track_sent(&t, UINT32_MAX - 15, 100);
    report(&t, TSTAMP_SCHED, 16, 110);
    report(&t, TSTAMP_SND, 16, 120);
    report(&t, TSTAMP_ACK, 16, 130);
    struct tstamp_tx_stages st;
    assert_true(tstamp_track_next(&t, &st));
    assert_int_equal(st.ack_ns, 10);

    tstamp_track_sent(&t, 16, 100); /* and byte 2^32 - 16 is before byte 16 */
    report(&t, TSTAMP_ACK, UINT32_MAX - 15, 130);
    assert_false(tstamp_track_next(&t, &st));
}

/* More samples than slots: the oldest is given up and counted; a sample
 * acknowledged without its SCHED and SND stamps too. */
static void test_track_drops_are_counted(void **state)
{
    (void)state;
    struct tstamp_track t = { 0 };
    for (uint32_t i = 0; i <= TSTAMP_PENDING; i++)
        tstamp_track_sent(&t, 100 * (i + 1) - 1, 1000);
    assert_int_equal(t.npending, TSTAMP_PENDING);
    assert_int_equal(t.dropped, 1);
    assert_int_equal(t.pending[0].key, 199);

    tstamp_track_sent(&t, 100 * (TSTAMP_PENDING + 1) - 1, 1000); /* the same last byte again */
    assert_int_equal(t.dropped, 1);

    report(&t, TSTAMP_ACK, 199, 2000);
    struct tstamp_tx_stages st;
    assert_false(tstamp_track_next(&t, &st));
    assert_int_equal(t.dropped, 2);
    assert_int_equal(t.npending, TSTAMP_PENDING - 1);
}

static void test_tx_names(void **state)
{
    (void)state;
    assert_string_equal(tstamp_tx_name(TSTAMP_SCHED), "sched");
    assert_string_equal(tstamp_tx_name(TSTAMP_SND), "snd");
    assert_string_equal(tstamp_tx_name(TSTAMP_ACK), "ack");
    assert_string_equal(tstamp_tx_name(TSTAMP_TX_COUNT), "?");
}

/* ---- TCP_INFO ------------------------------------------------------------------------------ */

/* 1000 bytes one way, 10 the other: each side's counts say so, and the
 * sender knows an RTT and a window. */
static void test_tcpinfo_counts_what_was_sent(void **state)
{
    (void)state;
    int fd[2];
    tcp_pair(fd);
    char buf[1000];
    memset(buf, 'z', sizeof buf);
    assert_int_equal(send(fd[0], buf, sizeof buf, 0), 1000);
    assert_int_equal(send(fd[1], buf, 10, 0), 10);
    sleep_ms(5);
    assert_int_equal(drain(fd[1]), 1000);
    assert_int_equal(drain(fd[0]), 10);
    wait_all_acked(fd[0]);
    wait_all_acked(fd[1]);

    struct tcpinfo a, b;
    assert_int_equal(tcpinfo_read(fd[0], &a), 0);
    assert_int_equal(tcpinfo_read(fd[1], &b), 0);
    /* As ss -ti prints it: the side that connected counts the
     * acknowledgement of its SYN as one byte; the side that accepted does
     * not count its SYN-ACK's. */
    assert_int_equal(a.bytes_acked, 1000 + 1);
    assert_int_equal(a.bytes_sent, 1000);
    assert_int_equal(a.bytes_received, 10);
    assert_int_equal(b.bytes_received, 1000);
    assert_int_equal(b.bytes_acked, 10);
    assert_int_equal(a.total_retrans, 0);
    assert_int_equal(a.retransmits, 0);
    assert_int_equal(a.lost, 0);
    assert_true(a.srtt_us > 0);
    assert_true(a.snd_cwnd >= 1);
    assert_true(a.snd_mss > 0);
    assert_int_equal(tcpinfo_field(&a, TCPINFO_bytes_acked), a.bytes_acked);
    assert_string_equal(tcpinfo_field_name(TCPINFO_srtt_us), "srtt_us");
    assert_string_equal(tcpinfo_field_name(TCPINFO_sndbuf_limited_us), "sndbuf_limited_us");
    close(fd[0]);
    close(fd[1]);
}

static void test_tcpinfo_refuses_what_is_not_tcp(void **state)
{
    (void)state;
    struct tcpinfo ti;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tcpinfo_read(p[0], &ti), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(tcpinfo_read(u, &ti) < 0);
    close(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rx_shows_time_in_the_queue),
        cmocka_unit_test(test_rx_none_when_not_enabled),
        cmocka_unit_test(test_tx_three_stamps_for_a_sampled_send),
        cmocka_unit_test(test_tx_unsampled_sends_queue_nothing),
        cmocka_unit_test(test_tx_partial_write_matched_by_last_byte),
        cmocka_unit_test(test_track_stages_from_one_sample),
        cmocka_unit_test(test_track_boundaries_never_go_back),
        cmocka_unit_test(test_track_later_byte_counts_for_earlier_samples),
        cmocka_unit_test(test_track_byte_numbers_wrap),
        cmocka_unit_test(test_track_drops_are_counted),
        cmocka_unit_test(test_tx_names),
        cmocka_unit_test(test_tcpinfo_counts_what_was_sent),
        cmocka_unit_test(test_tcpinfo_refuses_what_is_not_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
