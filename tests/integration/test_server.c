/* Integration: tcpmsgd's echo service over real sockets: text and framed
 * modes, the original course client, many clients at once, malformed input,
 * and the connection limits. Each case runs alone: test_server CASE.
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

/* A short framed exchange on fd that must succeed. */
/* Text mode: lines are echoed as they complete, CR is dropped, and a last line
 * without LF is still answered when the client half-closes. */
static void test_text_mode(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    char buf[64];

    assert_int_equal(it_send_all(fd, "hi\r\nthere\n", 10, T), 0);
    assert_int_equal(it_recv_exact(fd, buf, 9, T), 0);
    assert_memory_equal(buf, "hi\nthere\n", 9);

    assert_int_equal(it_send_all(fd, "last", 4, T), 0);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    ssize_t n = it_recv_until_eof(fd, buf, sizeof buf, T);
    assert_int_equal(n, 5); /* then EOF */
    assert_memory_equal(buf, "last\n", 5);
    close(fd);

    IT_ASSERT_LOG(s, 1, T, "connection closed", "reason=peer_closed mode=text msgs_in=3 msgs_out=3",
                  "bytes_in=14 bytes_out=14");
    it_server_free(s);
}

/* Exactly what the original course client does: connect, send one message
 * with no newline and no framing, close without reading. */
static void test_classic_client(void **state)
{
    (void)state;
    const char *args[] = { "-v", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    int local = it_local_port(fd);
    IT_CHECK(local > 0);
    assert_int_equal(it_send_all(fd, "Hello from client!", 18, T), 0);
    close(fd);

    char message[128], peer[64];
    snprintf(message, sizeof message, "message from 127.0.0.1:%d: Hello from client!", local);
    snprintf(peer, sizeof peer, "peer=127.0.0.1:%d ", local);
    IT_ASSERT_LOG(s, 1, T, message, "mode=text bytes=18");
    IT_ASSERT_LOG(s, 1, T, "connection closed", peer, "reason=peer_closed", "msgs_in=1");
    it_server_free(s);
}

/* Regression: the course's server printed the client's message; tcpmsgd
 * showed it only with -v, so the classic exercise looked like it did
 * nothing. The first message of each text connection is logged at INFO,
 * escaped; later ones, and framed messages, only with -v. */
static void test_classic_client_info(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    int local = it_local_port(fd);
    static const char classic[] = "Hello from client!\nsecond line\n";
    assert_int_equal(it_send_all(fd, classic, sizeof classic - 1, T), 0);
    char back[64];
    assert_int_equal(it_recv_exact(fd, back, sizeof classic - 1, T), 0);
    close(fd);
    int framed = it_must_connect(s->port);
    it_must_roundtrip(framed, "framed message");
    close(framed);

    char message[128];
    snprintf(message, sizeof message, "INFO  message from 127.0.0.1:%d: Hello from client!", local);
    IT_ASSERT_LOG(s, 1, T, message, "mode=text bytes=18");
    IT_ASSERT_LOG(s, 2, T, "connection closed");
    assert_int_equal(it_log_count(s, "message from", (const char *)NULL), 1);
    assert_int_equal(it_log_count(s, "second line", (const char *)NULL), 0);
    assert_int_equal(it_log_count(s, "framed message", (const char *)NULL), 0);
    it_server_free(s);

    /* Escaped: a client cannot drive the terminal that shows the log. (A
     * server of its own: the line is rate-limited to one a second.) */
    IT_START(s2, NULL, 0);
    int esc = it_must_connect(s2->port);
    static const char red[] = "red \x1b[31m\n";
    assert_int_equal(it_send_all(esc, red, sizeof red - 1, T), 0);
    close(esc);
    IT_ASSERT_LOG(s2, 1, T, "INFO  message from", "red \\u001b[31m");
    IT_CHECK(it_log_count(s2, "\x1b", (const char *)NULL) == 0);
    it_server_free(s2);
}

/* ---- 200 clients at once ------------------------------------------------------ */

#define NCLIENTS 200
#define NMSGS 20
#define MAX_SIZE 8192

struct client {
    int fd;
    int msg;          /* index of the message in flight; NMSGS when done */
    size_t len;       /* its frame size */
    size_t sent, got; /* bytes of it sent, and of its echo received */
    uint8_t out[FRAME_HEADER_SIZE + MAX_SIZE];
    uint8_t in[FRAME_HEADER_SIZE + MAX_SIZE];
};

/* Message i of client c: a size from 0 to MAX_SIZE and content that names
 * its client and index, so a reply delivered to the wrong client shows. */
static void make_message(struct client *cl, int c, int i)
{
    size_t size = ((size_t)c * 37 + (size_t)i * 911 + (size_t)(c * i) * 13) % (MAX_SIZE + 1);
    if (c == 1 && i == 1)
        size = MAX_SIZE;
    frame_header_encode(cl->out, FRAME_DATA, size);
    uint8_t *p = cl->out + FRAME_HEADER_SIZE;
    for (size_t j = 0; j < size; j++)
        p[j] = (uint8_t)(c * 131 + i * 17 + j * 7 + (j >> 8));
    if (size >= 3) {
        p[0] = (uint8_t)c;
        p[1] = (uint8_t)(c >> 8);
        p[2] = (uint8_t)i;
    }
    cl->len = FRAME_HEADER_SIZE + size;
    cl->sent = cl->got = 0;
}

/* One poll event for client c: send more, or receive and check. Returns
 * false when the echo differs or the connection fails. */
static bool client_step(struct client *cl, int c, short revents)
{
    if (cl->sent < cl->len && (revents & POLLOUT)) {
        ssize_t w = send(cl->fd, cl->out + cl->sent, cl->len - cl->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            return false;
        cl->sent += w > 0 ? (size_t)w : 0;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = recv(cl->fd, cl->in + cl->got, cl->len - cl->got, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            print_error("client %d: connection lost at message %d\n", c, cl->msg);
            return false;
        }
        cl->got += r > 0 ? (size_t)r : 0;
    }
    if (cl->got == cl->len && cl->sent == cl->len) {
        if (memcmp(cl->in, cl->out, cl->len) != 0) {
            print_error("client %d: echo of message %d (%zu bytes) differs\n", c, cl->msg, cl->len);
            return false;
        }
        if (++cl->msg < NMSGS)
            make_message(cl, c, cl->msg);
    }
    return true;
}

static void test_concurrent_200(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    struct client *cl = calloc(NCLIENTS, sizeof *cl);
    struct pollfd *pfd = calloc(NCLIENTS, sizeof *pfd);
    assert_non_null(cl);
    assert_non_null(pfd);
    for (int c = 0; c < NCLIENTS; c++) {
        cl[c].fd = it_must_connect(s->port);
        fcntl(cl[c].fd, F_SETFL, O_NONBLOCK);
    }
    /* All 200 are open at the same time before anyone speaks. */
    IT_ASSERT_LOG(s, NCLIENTS, 10000, "connection opened");
    for (int c = 0; c < NCLIENTS; c++)
        make_message(&cl[c], c, 0);

    int done = 0, failed = 0;
    int64_t deadline = it_now_ms() + 15000;
    while (done + failed < NCLIENTS && it_now_ms() < deadline) {
        for (int c = 0; c < NCLIENTS; c++) {
            pfd[c].fd = cl[c].msg < NMSGS && cl[c].fd >= 0 ? cl[c].fd : -1;
            pfd[c].events = (short)(cl[c].sent < cl[c].len ? POLLOUT | POLLIN : POLLIN);
            pfd[c].revents = 0;
        }
        if (poll(pfd, NCLIENTS, 100) < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        for (int c = 0; c < NCLIENTS; c++) {
            if (pfd[c].fd < 0 || pfd[c].revents == 0)
                continue;
            if (!client_step(&cl[c], c, pfd[c].revents)) {
                close(cl[c].fd);
                cl[c].fd = -1;
                failed++;
            } else if (cl[c].msg == NMSGS) {
                done++;
            }
        }
    }
    for (int c = 0; c < NCLIENTS; c++) {
        if (cl[c].fd >= 0)
            close(cl[c].fd);
    }
    free(cl);
    free(pfd);
    assert_int_equal(failed, 0);
    assert_int_equal(done, NCLIENTS);
    IT_ASSERT_LOG(s, NCLIENTS, 10000, "connection closed", "reason=peer_closed mode=framed",
                  "msgs_in=20 msgs_out=20");
    it_server_free(s);
}

/* ---- malformed input ----------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    const char *args[] = { "--max-payload", "1024", NULL };
    IT_START(s, args, 0);
    int good = it_must_connect(s->port);
    it_must_roundtrip(good, "before");

    /* The biggest allowed message passes. */
    char max[1024];
    memset(max, 'm', sizeof max);
    assert_int_equal(it_roundtrip(good, max, sizeof max, T), 0);

    /* (a) A header announcing one byte more than --max-payload: refused on
     * the header alone, no payload sent. */
    int fd = it_must_connect(s->port);
    uint8_t hdr[FRAME_HEADER_SIZE];
    frame_header_encode(hdr, FRAME_DATA, 1025);
    assert_int_equal(it_send_all(fd, hdr, sizeof hdr, T), 0);
    char reason[256];
    assert_int_equal(it_expect_error_frame(fd, FRAME_ERR_OVERSIZE, reason, sizeof reason, T), 0);
    assert_non_null(strstr(reason, "1025"));
    close(fd);
    it_must_roundtrip(good, "between oversize and bad type");

    /* (b) An unknown type byte below 0x08. */
    fd = it_must_connect(s->port);
    frame_header_encode(hdr, 0x05, 3);
    assert_int_equal(it_send_all(fd, hdr, sizeof hdr, T), 0);
    assert_int_equal(it_send_all(fd, "abc", 3, T), 0);
    assert_int_equal(it_expect_error_frame(fd, FRAME_ERR_BAD_TYPE, NULL, 0, T), 0);
    close(fd);
    it_must_roundtrip(good, "between bad type and long line");

    /* (c) A text line longer than the limit: one "ERR oversize" line, EOF. */
    fd = it_must_connect(s->port);
    char line[2001];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    assert_int_equal(it_send_all(fd, line, sizeof line, T), 0);
    char reply[512];
    ssize_t n = it_recv_until_eof(fd, reply, sizeof reply - 1, T);
    IT_CHECK(n > 0);
    reply[n] = '\0';
    IT_CHECK(strncmp(reply, "ERR oversize: ", 14) == 0);
    assert_ptr_equal(strchr(reply, '\n'), reply + n - 1); /* exactly one line */
    close(fd);
    it_must_roundtrip(good, "after");

    /* One "bad message" line a second at most: the first is written, the
     * two that follow within the second are counted, not logged. (In fork
     * mode each child logs its own; their counts reach the parent a moment
     * later, hence the wait.) */
    IT_ASSERT_LOG(s, 1, T, "bad message", "error=oversize", "1025");
    json_decref(it_wait_metric(s, "counters.errors_total.protocol", 3));
    IT_ASSERT_LOG(s, 2, T, "connection closed", "reason=oversize");
    IT_ASSERT_LOG(s, 1, T, "connection closed", "reason=protocol_error");
    assert_int_equal(it_log_count(s, "connection closed", (const char *)NULL), 3);
    close(good);
    it_server_free(s);
}

/* ---- connection limits ------------------------------------------------------------ */

static void test_limits(void **state)
{
    (void)state;
    const char *args[] = { "--max-conns", "3", NULL };
    IT_START(s, args, 0);
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = it_must_connect(s->port);
        it_must_roundtrip(fd[i], "admitted"); /* it is accepted and counted */
    }
    int extra = it_must_connect(s->port);
    assert_int_equal(it_expect_error_frame(extra, FRAME_ERR_BUSY, NULL, 0, T), 0);
    close(extra);
    IT_ASSERT_LOG(s, 1, T, "connection rejected", "reason=max_conns");

    close(fd[0]);
    IT_ASSERT_LOG(s, 1, T, "connection closed");
    int again = it_must_connect(s->port);
    it_must_roundtrip(again, "a free slot again");
    it_must_roundtrip(fd[1], "still served");
    it_must_roundtrip(fd[2], "still served");
    close(again);
    close(fd[1]);
    close(fd[2]);
    assert_int_equal(it_log_count(s, "connection rejected", (const char *)NULL), 1);
    it_server_free(s);
}

static void test_limits_per_ip(void **state)
{
    (void)state;
    const char *args[] = { "--max-conns-per-ip", "2", NULL };
    IT_START(s, args, 0);
    int fd[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = it_must_connect(s->port);
        it_must_roundtrip(fd[i], "admitted");
    }
    int extra = it_must_connect(s->port);
    assert_int_equal(it_expect_error_frame(extra, FRAME_ERR_PER_IP, NULL, 0, T), 0);
    close(extra);
    IT_ASSERT_LOG(s, 1, T, "connection rejected", "peer=127.0.0.1:", "reason=per_ip");

    /* The cap is per address: another loopback address is still welcome. */
    int other = it_connect_from("127.0.0.2", s->port);
    IT_CHECK(other >= 0);
    it_must_roundtrip(other, "from 127.0.0.2");

    close(fd[0]);
    IT_ASSERT_LOG(s, 1, T, "connection closed", "peer=127.0.0.1:");
    int again = it_must_connect(s->port);
    it_must_roundtrip(again, "a free slot again");
    close(again);
    close(other);
    close(fd[1]);
    assert_int_equal(it_log_count(s, "connection rejected", (const char *)NULL), 1);
    it_server_free(s);
}

/* Regression: a second tcpmsgd on a port tcpmsgd already served started,
 * exited 0 at the end, and took part of the traffic (it joined the
 * SO_REUSEPORT group: 7 of 20 clients went to it). It must refuse to start,
 * exit 1 and say why; the first keeps every client. */
static void test_second_server_same_port(void **state)
{
    (void)state;
    const char *args[] = { "--threads", "2", NULL };
    IT_START(s, args, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[] = { TCPMSGD_PATH, "--bind", "127.0.0.1", "--port", port, "--http-port", "0",
                           "--threads", "2", "--mode", it_mode(), NULL };
    struct it_run r;
    assert_int_equal(it_run(TCPMSGD_PATH, argv, 10000, &r), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "the port is already in use"));
    it_run_free(&r);
    /* Also when the second one asks for the wildcard address. */
    argv[2] = "0.0.0.0";
    assert_int_equal(it_run(TCPMSGD_PATH, argv, 10000, &r), 0);
    assert_int_equal(r.exit_code, 1);
    it_run_free(&r);

    enum { CLIENTS = 20 };
    for (int i = 0; i < CLIENTS; i++) {
        int fd = it_must_connect(s->port);
        it_must_roundtrip(fd, "who serves me?");
        close(fd);
    }
    json_t *m = it_http_get_json(s->http_port, "/metrics");
    assert_non_null(m);
    assert_int_equal(it_json_int(m, "counters.connections_accepted_total"), CLIENTS);
    json_decref(m);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_mode),
        cmocka_unit_test(test_classic_client),
        cmocka_unit_test(test_classic_client_info),
        cmocka_unit_test(test_concurrent_200),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_limits_per_ip),
        cmocka_unit_test(test_second_server_same_port),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
