/* Unit tests for conn (src/server/conn.c), alone: a fake context stands in
 * for the worker, with an event loop of its own that the test turns by hand
 * (each test runs on epoll and on io_uring), the connection's socket is one
 * end of a socketpair, the test is the client at the other end. Each test
 * drives a connection through its states and checks the transitions (as
 * ctx->transition reports them) and the counters exactly. The loop hands
 * out real times: a test that moves the clock starts from a time the
 * connection recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/config.h"
#include "server/conn.h"
#include "server/connctx.h"
#include "server/membudget.h"
#include "server/outq.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/loop.h"
#include "tcpmsg/rttreport.h"

#define MAX_TRANSITIONS 4096
#define MS 1000000ull

/* The fake owner: what a worker would be, reduced to what a test checks. */
struct fake {
    struct conn_ctx ctx;
    struct server_config cfg;
    struct server_stats stats;
    struct chunk_pool pool;
    struct membudget *budget;
    struct loop *loop;
    struct conn *c;        /* not to be touched once freed */
    bool freed;            /* the loop let go of the connection, which freed itself */
    int client;            /* the test's end of the socketpair */
    bool registered;
    int forgotten, closed; /* calls of ctx->forget and ctx->closed */
    enum close_reason closed_reason;
    int ntrans;
    enum conn_state trans[MAX_TRANSITIONS][2];
};

static void fake_adopt(void *owner, struct conn *c)
{
    struct fake *f = owner;
    f->c = c;
    f->registered = true;
}

static void fake_released(void *owner)
{
    struct fake *f = owner;
    f->freed = true;
}

static void fake_forget(void *owner, struct conn *c)
{
    struct fake *f = owner;
    assert_ptr_equal(c, f->c);
    f->registered = false;
    f->forgotten++;
}

static void fake_closed(void *owner, const struct conn *c, enum close_reason reason, uint64_t now)
{
    (void)c;
    (void)now;
    struct fake *f = owner;
    f->closed++;
    f->closed_reason = reason;
}

static void fake_transition(void *owner, const struct conn *c, int from, int to)
{
    struct fake *f = owner;
    assert_int_equal(c->state, to);
    assert_true(f->ntrans < MAX_TRANSITIONS);
    f->trans[f->ntrans][0] = (enum conn_state)from;
    f->trans[f->ntrans][1] = (enum conn_state)to;
    f->ntrans++;
}

static int setup_with(void **state, enum loop_backend backend)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct loop_options opt = { .backend = backend };
    int rc = loop_new(&f->loop, &opt, NULL);
    if (rc < 0) {
        free(f);
        *state = NULL;
        return 0; /* the test skips: no io_uring here */
    }
    server_config_defaults(&f->cfg);
    server_stats_init(&f->stats);
    chunk_pool_init(&f->pool, 4);
    f->budget = membudget_new(64u << 20, 2, 1);
    assert_non_null(f->budget);
    f->ctx = (struct conn_ctx){
        .cfg = &f->cfg,
        .stats = &f->stats,
        .budget = f->budget,
        .budget_slot = 0,
        .pool = &f->pool,
        .loop = f->loop,
        .owner = f,
        .adopt = fake_adopt,
        .forget = fake_forget,
        .released = fake_released,
        .closed = fake_closed,
        .transition = fake_transition,
    };
    f->client = -1;
    *state = f;
    return 0;
}

static int setup_epoll(void **state)
{
    return setup_with(state, LOOP_EPOLL);
}

static int setup_uring(void **state)
{
    return setup_with(state, LOOP_URING);
}

/* The fake, or skip the test when its loop could not be had (io_uring). */
static struct fake *fake_of(void **state)
{
    if (*state == NULL)
        skip();
    return *state;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    if (f == NULL)
        return 0;
    if (f->c != NULL && !f->freed && f->c->state != CONN_CLOSED)
        conn_close(f->c, CLOSE_SHUTDOWN, net_now_ns());
    for (int i = 0; i < 1000 && f->c != NULL && !f->freed; i++)
        loop_run_once(f->loop, 10);
    assert_true(f->c == NULL || f->freed);
    if (f->client >= 0)
        close(f->client);
    loop_free(f->loop);
    chunk_pool_destroy(&f->pool);
    membudget_free(f->budget);
    free(f);
    return 0;
}

/* The connection's state; CLOSED once it freed itself. */
static enum conn_state state_of(const struct fake *f)
{
    return f->freed ? CONN_CLOSED : f->c->state;
}

/* Open the connection on a fresh socketpair (after the test set the limits). */
static void open_conn(struct fake *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    f->client = sv[0];
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    f->c = conn_open(&f->ctx, sv[1], (struct sockaddr *)&peer, sizeof peer, 1, net_now_ns());
    assert_non_null(f->c);
    assert_int_equal(f->c->state, CONN_READING);
    assert_true(f->registered);
}

/* One turn of the loop without waiting. false when it dispatched nothing. */
static bool pump_once(struct fake *f)
{
    uint64_t before = loop_syscalls(f->loop, LOOP_SYS_WAKEUPS);
    assert_int_equal(loop_run_once(f->loop, 0), 0);
    return loop_syscalls(f->loop, LOOP_SYS_WAKEUPS) != before;
}

/* Until the connection waits for the client (bounded: it must settle).
 * A few idle turns in a row: io_uring may complete a request a turn after
 * it was submitted. */
static void pump(struct fake *f, uint64_t now)
{
    (void)now;
    for (int i = 0, idle = 0; i < 10000 && idle < 3; i++)
        idle = pump_once(f) ? 0 : idle + 1;
}

static void send_all(struct fake *f, const void *p, size_t n)
{
    assert_int_equal(write(f->client, p, n), (ssize_t)n);
}

static size_t data_frame(uint8_t *out, const char *payload, size_t len)
{
    frame_header_encode(out, FRAME_DATA, len);
    memcpy(out + FRAME_HEADER_SIZE, payload, len);
    return FRAME_HEADER_SIZE + len;
}

/* What the client can read now (at most cap bytes). */
static size_t recv_now(struct fake *f, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got < cap && (r = read(f->client, buf + got, cap - got)) > 0)
        got += (size_t)r;
    return got;
}

/* The client sees EOF (our side shut down or closed). */
static void expect_eof(struct fake *f)
{
    uint8_t b;
    assert_int_equal(read(f->client, &b, 1), 0);
}

static void expect_transitions(const struct fake *f, const enum conn_state (*want)[2], int n)
{
    for (int i = 0; i < n && i < f->ntrans; i++) {
        if (f->trans[i][0] != want[i][0] || f->trans[i][1] != want[i][1])
            fail_msg("transition %d: %s -> %s, expected %s -> %s", i,
                     conn_state_name(f->trans[i][0]), conn_state_name(f->trans[i][1]),
                     conn_state_name(want[i][0]), conn_state_name(want[i][1]));
    }
    assert_int_equal(f->ntrans, n);
}

static uint64_t framed(const counter_t *v)
{
    return counter_get(&v[STATS_FRAMED]);
}

/* A framed message comes back byte for byte; nothing changes state. */
static void test_framed_echo(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t out[64], in[64];
    size_t n = data_frame(out, "hello", 5);
    send_all(f, out, n);
    pump(f, 1001 * MS);
    assert_int_equal(recv_now(f, in, sizeof in), n);
    assert_memory_equal(in, out, n);
    assert_int_equal(f->c->state, CONN_READING);
    assert_false(f->c->writing);
    assert_int_equal(f->ntrans, 0);
    assert_int_equal(framed(f->stats.msgs_in), 1);
    assert_int_equal(framed(f->stats.msgs_out), 1);
    assert_int_equal(framed(f->stats.bytes_in), n);
    assert_int_equal(framed(f->stats.bytes_out), n);
    assert_int_equal(f->c->in_len, 0);
    assert_null(f->c->in); /* nothing partial: no buffer of its own */
}

/* Service time (conn_pass_end): the replies handed to the kernel in the
 * wakeup that read their messages wait for the wakeup's end and are charged
 * its length, measured from its start; io_uring's, which complete in a later
 * wakeup, read the clock then. Either way each reply is counted once. */
static void test_service_time_per_pass(void **state)
{
    struct fake *f = fake_of(state);
    struct conn_pass pass = { 0 };
    f->ctx.pass = &pass;
    open_conn(f);
    uint8_t out[64], in[64];
    size_t n = data_frame(out, "ab", 2);
    n += data_frame(out + n, "cd", 2);
    send_all(f, out, n);
    uint64_t before = net_now_ns();
    if (!loop_writes_later(f->loop)) {
        assert_true(pump_once(f)); /* one wakeup reads both and writes both */
        assert_int_equal(framed(f->stats.msgs_out), 2);
        assert_int_equal(pass.replies, 2);
        assert_int_equal(hist_count(&f->stats.service_ns), 0);
        conn_pass_end(&f->ctx, loop_now(f->loop));
        uint64_t after = net_now_ns();
        assert_int_equal(pass.replies, 0);
        assert_int_equal(hist_count(&f->stats.service_ns), 2);
        /* Both got the wakeup's length, which lies within the test's view. */
        assert_int_equal(hist_sum(&f->stats.service_ns), 2 * hist_max(&f->stats.service_ns));
        assert_true(hist_max(&f->stats.service_ns) <= after - before);
    } else {
        pump(f, 0);
        assert_int_equal(framed(f->stats.msgs_out), 2);
        assert_int_equal(pass.replies, 0);
        assert_int_equal(hist_count(&f->stats.service_ns), 2);
    }
    conn_pass_end(&f->ctx, loop_now(f->loop)); /* nothing is charged twice */
    assert_int_equal(hist_count(&f->stats.service_ns), 2);
    assert_int_equal(recv_now(f, in, sizeof in), n);
    assert_memory_equal(in, out, n);
}

/* A partial frame is kept (and its clock started) until the rest arrives;
 * every strict prefix is incomplete. */
static void test_partial_frame(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t out[64], in[64];
    size_t n = data_frame(out, "partial", 7);
    uint64_t first = 0;
    for (size_t i = 0; i < n; i++) {
        send_all(f, out + i, 1);
        pump(f, 1001 * MS + i);
        if (i == 0)
            first = f->c->frame_start_ns;
        if (i + 1 < n) {
            assert_int_equal(f->c->in_len, i + 1);
            assert_int_equal(f->c->frame_start_ns, first); /* from the first byte */
            assert_int_not_equal(first, 0);
            assert_int_equal(recv_now(f, in, sizeof in), 0);
        }
    }
    assert_int_equal(recv_now(f, in, sizeof in), n);
    assert_memory_equal(in, out, n);
    assert_int_equal(f->c->in_len, 0);
    assert_int_equal(f->c->frame_start_ns, 0);
    assert_int_equal(framed(f->stats.msgs_in), 1);
    assert_int_equal(framed(f->stats.bytes_in), n);
    assert_int_equal(f->ntrans, 0);
}

/* Data frames arriving many to a read are taken as runs (counted once per
 * run of equal sizes): the counts and the size histogram must still be
 * exact, per size, with a run broken by a size change, by a frame that is
 * not data (an RTT report, refused here: --rtt-reports ignore) and by a
 * partial frame at the end, which completes at the next read. */
static void test_data_runs_counted(void **state)
{
    struct fake *f = fake_of(state);
    f->cfg.rtt_reports = false;
    open_conn(f);
    static const size_t sizes[] = { 10, 10, 10, 20, 20, 0, 10 };
    enum { NDATA = sizeof sizes / sizeof sizes[0] };
    uint8_t out[512], want[512], in[512];
    size_t n = 0, echo = 0;
    char payload[32];
    for (size_t i = 0; i < NDATA; i++) {
        memset(payload, 'a' + (int)i, sizeof payload);
        size_t k = data_frame(out + n, payload, sizes[i]);
        memcpy(want + echo, out + n, k);
        n += k;
        echo += k;
        if (i == 4) { /* a report between the runs: no reply */
            frame_header_encode(out + n, FRAME_RTT_REPORT, 3);
            memcpy(out + n + FRAME_HEADER_SIZE, "rtt", 3);
            n += FRAME_HEADER_SIZE + 3;
        }
    }
    size_t last = data_frame(want + echo, "the last one", 12);
    memcpy(out + n, want + echo, 7); /* its header and 3 bytes: partial */
    send_all(f, out, n + 7);
    pump(f, 1001 * MS);
    assert_int_equal(recv_now(f, in, sizeof in), echo);
    assert_memory_equal(in, want, echo);
    assert_int_equal(f->c->in_len, 7);
    assert_int_equal(framed(f->stats.msgs_in), NDATA);
    assert_int_equal(framed(f->stats.msgs_out), NDATA);
    assert_int_equal(hist_count(&f->stats.msg_bytes), NDATA);
    assert_int_equal(hist_sum(&f->stats.msg_bytes), 4 * 10 + 2 * 20);
    assert_int_equal(counter_get(&f->stats.msg_bytes.counts[hist_bucket_index(10)]), 4);
    assert_int_equal(counter_get(&f->stats.msg_bytes.counts[hist_bucket_index(20)]), 2);
    assert_int_equal(counter_get(&f->stats.msg_bytes.counts[hist_bucket_index(0)]), 1);
    assert_int_equal(counter_get(&f->stats.rtt_rejected[RTT_REJECT_DISABLED]), 1);

    send_all(f, want + echo + 7, last - 7);
    pump(f, 1002 * MS);
    assert_int_equal(recv_now(f, in, sizeof in), last);
    assert_memory_equal(in, want + echo, last);
    assert_int_equal(f->c->in_len, 0);
    assert_int_equal(framed(f->stats.msgs_in), NDATA + 1);
    assert_int_equal(framed(f->stats.msgs_out), NDATA + 1);
    assert_int_equal(hist_count(&f->stats.msg_bytes), NDATA + 1);
    assert_int_equal(counter_get(&f->stats.msg_bytes.counts[hist_bucket_index(12)]), 1);
    assert_int_equal(framed(f->stats.bytes_in), n + last);
    assert_int_equal(framed(f->stats.bytes_out), echo + last);
    assert_int_equal(f->ntrans, 0);
}

/* Fill the server's side until its output reaches --max-pending-output:
 * frames of 200 payload bytes, the client reading nothing. Returns how many
 * frames were sent. */
#define BIG 200
static unsigned send_until_blocked(struct fake *f, uint64_t now)
{
    uint8_t out[FRAME_HEADER_SIZE + BIG];
    char payload[BIG];
    memset(payload, 'x', sizeof payload);
    size_t n = data_frame(out, payload, BIG);
    unsigned sent = 0;
    while (f->c->state != CONN_BLOCKED && f->c->state != CONN_DRAIN_BLOCKED && sent < 100000) {
        ssize_t w = write(f->client, out, n);
        if (w < 0) {
            assert_int_equal(errno, EAGAIN);
            pump(f, now);
            continue;
        }
        assert_int_equal(w, (ssize_t)n); /* a unix socket takes a small write whole */
        sent++;
        pump(f, now);
    }
    return sent;
}

/* Read and check every reply; returns their number. */
static unsigned read_replies(struct fake *f, uint64_t now, unsigned expect)
{
    uint8_t buf[FRAME_HEADER_SIZE + BIG];
    unsigned got = 0;
    size_t have = 0;
    for (int idle = 0; got < expect && idle < 1000;) {
        ssize_t r = read(f->client, buf + have, sizeof buf - have);
        if (r > 0) {
            have += (size_t)r;
            if (have == sizeof buf) {
                assert_int_equal(buf[0], FRAME_DATA);
                assert_int_equal(buf[FRAME_HEADER_SIZE + BIG - 1], 'x');
                got++;
                have = 0;
            }
            idle = 0;
        } else {
            idle++;
        }
        pump(f, now);
    }
    return got;
}

/* The client stops reading: pending output reaches the cap, the server
 * stops reading (BLOCKED: only EPOLLOUT watched), and once the client reads
 * again, everything it sent is answered. */
static void test_blocked_and_back(void **state)
{
    struct fake *f = fake_of(state);
    f->cfg.max_pending_output = 1024;
    open_conn(f);
    int small = 4096;
    setsockopt(f->c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    unsigned sent = send_until_blocked(f, 1001 * MS);
    assert_int_equal(f->c->state, CONN_BLOCKED);
    assert_true(f->c->writing); /* waiting for the client to make room */
    assert_true(f->c->out.len > 0 && f->c->out.len <= f->cfg.max_pending_output);
    assert_int_equal(f->ntrans, 1);
    assert_int_equal(f->trans[0][0], CONN_READING);
    assert_int_equal(f->trans[0][1], CONN_BLOCKED);

    assert_int_equal(read_replies(f, 1002 * MS, sent), sent);
    assert_int_equal(f->c->state, CONN_READING);
    assert_false(f->c->writing);
    /* Each BLOCKED was left for READING: the count is even, the pairs alternate. */
    assert_int_equal(f->ntrans % 2, 0);
    for (int i = 0; i < f->ntrans; i++) {
        assert_int_equal(f->trans[i][0], i % 2 == 0 ? CONN_READING : CONN_BLOCKED);
        assert_int_equal(f->trans[i][1], i % 2 == 0 ? CONN_BLOCKED : CONN_READING);
    }
    assert_int_equal(framed(f->stats.msgs_in), sent);
    assert_int_equal(framed(f->stats.msgs_out), sent);
    assert_int_equal(framed(f->stats.bytes_out), (uint64_t)sent * (FRAME_HEADER_SIZE + BIG));
    assert_int_equal(f->c->out.len, 0);
}

/* The drain answers what the client had sent before it began (read at the
 * next wakeup, from the kernel), waits 50 ms of quiet, then finishes:
 * FLUSHING, and LINGER until the client closes, which ends it as a
 * shutdown. */
static void test_drain_buffered_input(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t out[64], in[256];
    size_t n = data_frame(out, "in flight", 9);
    for (int i = 0; i < 3; i++)
        send_all(f, out, n);
    conn_begin_drain(f->c, net_now_ns());
    assert_int_equal(f->c->state, CONN_DRAINING);
    pump(f, 0);
    assert_int_equal(f->c->state, CONN_DRAINING);
    assert_int_equal(f->c->drain_left, (16u << 20) - 3 * n);
    uint64_t t = f->c->drain_quiet_ns; /* nothing more yet: the quiet clock runs */
    assert_int_not_equal(t, 0);
    assert_int_equal(recv_now(f, in, sizeof in), 3 * n);
    assert_int_equal(framed(f->stats.msgs_out), 3);

    conn_check_timers(f->c, t + 49 * MS);
    assert_int_equal(f->c->state, CONN_DRAINING);
    conn_check_timers(f->c, t + 50 * MS);
    assert_int_equal(f->c->state, CONN_LINGER);
    expect_eof(f); /* our side is shut */
    close(f->client);
    f->client = -1;
    pump(f, t + 60 * MS);
    assert_int_equal(state_of(f), CONN_CLOSED);
    static const enum conn_state want[][2] = {
        { CONN_READING, CONN_DRAINING },
        { CONN_DRAINING, CONN_FLUSHING },
        { CONN_FLUSHING, CONN_LINGER },
        { CONN_LINGER, CONN_CLOSED },
    };
    expect_transitions(f, want, 4);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->forgotten, 1);
    assert_int_equal(f->closed_reason, CLOSE_SHUTDOWN);
    assert_int_equal(counter_get(&f->stats.closed[CLOSE_SHUTDOWN]), 1);
    assert_int_equal(framed(f->stats.msgs_in), 3);
}

/* A drain that begins while BLOCKED waits for the output (DRAIN_BLOCKED),
 * then answers everything, and ends at the client's EOF as peer_closed. */
static void test_drain_while_blocked(void **state)
{
    struct fake *f = fake_of(state);
    f->cfg.max_pending_output = 1024;
    open_conn(f);
    int small = 4096;
    setsockopt(f->c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    unsigned sent = send_until_blocked(f, 1001 * MS);
    conn_begin_drain(f->c, 2000 * MS);
    assert_int_equal(f->c->state, CONN_DRAIN_BLOCKED);
    assert_int_equal(f->c->drain_left, 16u << 20);
    assert_true(f->c->writing);
    shutdown(f->client, SHUT_WR); /* all it will send */
    assert_int_equal(read_replies(f, 2001 * MS, sent), sent);
    pump(f, 2002 * MS);
    assert_int_equal(state_of(f), CONN_CLOSED);
    assert_int_equal(f->closed_reason, CLOSE_PEER);
    assert_int_equal(framed(f->stats.msgs_out), sent);
    assert_int_equal(f->trans[0][0], CONN_READING);
    assert_int_equal(f->trans[0][1], CONN_BLOCKED);
    assert_int_equal(f->trans[1][0], CONN_BLOCKED);
    assert_int_equal(f->trans[1][1], CONN_DRAIN_BLOCKED);
    /* Then DRAIN_BLOCKED <-> DRAINING as output allows, and the end. */
    int n = f->ntrans;
    for (int i = 2; i < n - 2; i++)
        assert_true((f->trans[i][0] == CONN_DRAIN_BLOCKED && f->trans[i][1] == CONN_DRAINING) ||
                    (f->trans[i][0] == CONN_DRAINING && f->trans[i][1] == CONN_DRAIN_BLOCKED));
    assert_int_equal(f->trans[n - 2][0], CONN_DRAINING);
    assert_int_equal(f->trans[n - 2][1], CONN_FLUSHING);
    assert_int_equal(f->trans[n - 1][0], CONN_FLUSHING);
    assert_int_equal(f->trans[n - 1][1], CONN_CLOSED);
}

/* An unknown frame type: the frames before it are answered, then the error
 * reply; our side shuts and the connection lingers, discarding (but
 * counting) what still comes, until the client closes. */
static void test_error_reply_then_linger(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t out[64], in[256];
    size_t n = data_frame(out, "ok", 2);
    uint8_t bad[FRAME_HEADER_SIZE];
    frame_header_encode(bad, 0x05, 0); /* framed, but no type a client may send */
    send_all(f, out, n);
    send_all(f, bad, sizeof bad);
    pump(f, 1001 * MS);
    assert_int_equal(f->c->state, CONN_LINGER);
    size_t got = recv_now(f, in, sizeof in);
    assert_true(got > n + FRAME_HEADER_SIZE);
    assert_memory_equal(in, out, n);
    assert_int_equal(in[n], FRAME_ERROR);
    assert_int_equal(in[n + FRAME_HEADER_SIZE], FRAME_ERR_BAD_TYPE);
    expect_eof(f);
    assert_int_equal(counter_get(&f->stats.errors[ERR_PROTOCOL]), 1);
    assert_null(f->c->in); /* a lingering connection keeps no buffers */
    assert_int_equal(f->c->mem, 0);

    send_all(f, "ignored", 7);
    pump(f, 1002 * MS);
    assert_int_equal(f->c->state, CONN_LINGER);
    assert_int_equal(framed(f->stats.bytes_in), n + sizeof bad + 7);
    close(f->client);
    f->client = -1;
    pump(f, 1003 * MS);
    static const enum conn_state want[][2] = {
        { CONN_READING, CONN_FLUSHING },
        { CONN_FLUSHING, CONN_LINGER },
        { CONN_LINGER, CONN_CLOSED },
    };
    expect_transitions(f, want, 3);
    assert_int_equal(f->closed_reason, CLOSE_PROTOCOL);
    assert_int_equal(counter_get(&f->stats.closed[CLOSE_PROTOCOL]), 1);
    assert_int_equal(framed(f->stats.msgs_in), 1);
    assert_int_equal(framed(f->stats.msgs_out), 1);
}

/* A client that never closes is cut 2 s after LINGER began. */
static void test_linger_deadline(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t bad[FRAME_HEADER_SIZE];
    frame_header_encode(bad, 0x05, 0); /* framed, but no type a client may send */
    send_all(f, bad, sizeof bad);
    pump(f, 1000 * MS);
    assert_int_equal(f->c->state, CONN_LINGER);
    uint64_t until = f->c->linger_until_ns;
    assert_int_equal(until, f->c->state_ns + 2000 * MS);
    conn_check_timers(f->c, until - 1);
    assert_int_equal(f->c->state, CONN_LINGER);
    conn_check_timers(f->c, until);
    assert_int_equal(f->c->state, CONN_CLOSED);
    assert_int_equal(f->closed_reason, CLOSE_PROTOCOL);
    assert_int_equal(f->ntrans, 3);
}

/* The client's EOF after a framed message: answered, then closed as
 * peer_closed without lingering. In text mode the EOF ends a last line. */
static void test_eof(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    uint8_t out[64], in[64];
    size_t n = data_frame(out, "bye", 3);
    send_all(f, out, n);
    shutdown(f->client, SHUT_WR);
    pump(f, 1001 * MS);
    assert_int_equal(recv_now(f, in, sizeof in), n);
    expect_eof(f);
    assert_int_equal(state_of(f), CONN_CLOSED);
    static const enum conn_state want[][2] = {
        { CONN_READING, CONN_FLUSHING },
        { CONN_FLUSHING, CONN_CLOSED },
    };
    expect_transitions(f, want, 2);
    assert_int_equal(f->closed_reason, CLOSE_PEER);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->forgotten, 1);
    assert_false(f->registered);
    assert_int_equal(framed(f->stats.msgs_out), 1);
}

static void test_eof_ends_text_line(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    send_all(f, "one\r\ntwo", 8);
    shutdown(f->client, SHUT_WR);
    pump(f, 1001 * MS);
    char in[64];
    size_t got = recv_now(f, (uint8_t *)in, sizeof in);
    assert_int_equal(got, 8);
    assert_memory_equal(in, "one\ntwo\n", 8);
    assert_int_equal(state_of(f), CONN_CLOSED);
    assert_int_equal(counter_get(&f->stats.msgs_in[STATS_TEXT]), 2);
    assert_int_equal(counter_get(&f->stats.msgs_out[STATS_TEXT]), 2);
    assert_int_equal(f->closed_reason, CLOSE_PEER);
}

/* Regression: a paused client that stopped sending in the middle of a
 * message lost the replies it was still owed: PAUSED went straight to
 * LINGER, which drops the output queue (the client got 8,004 of 48,024
 * echoed bytes). The partial message is dropped; every complete one is
 * answered before the connection closes. */
static void test_paused_peer_done_keeps_replies(void **state)
{
    struct fake *f = fake_of(state);
    open_conn(f);
    int small = 4096; /* replies wait in the server, not in the socket */
    setsockopt(f->c->s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    static uint8_t frame[FRAME_HEADER_SIZE + 8000];
    static char payload[8000];
    memset(payload, 'y', sizeof payload);
    size_t n = data_frame(frame, payload, sizeof payload);
    uint64_t now = net_now_ns(); /* the connection's clocks are real ones */
    for (int i = 0; i < 6; i++) {
        send_all(f, frame, n);
        pump(f, now);
    }
    send_all(f, frame, FRAME_HEADER_SIZE + 10); /* 8,000 announced, 10 sent */
    pump(f, now);
    membudget_charge(f->budget, 1, 64 << 20, 1); /* another holder spends the budget */
    send_all(f, "z", 1);
    pump(f, now);
    assert_int_equal(state_of(f), CONN_PAUSED);
    assert_true(f->c->out.len > 0);
    shutdown(f->client, SHUT_WR);
    static uint8_t back[6 * (FRAME_HEADER_SIZE + 8000)];
    size_t got = 0;
    for (int k = 0; k < 1000 && state_of(f) != CONN_CLOSED; k++) {
        now = net_now_ns();
        if (!f->freed)
            conn_check_timers(f->c, now); /* the tick notices the client stopped sending */
        pump(f, now);
        got += recv_now(f, back + got, sizeof back - got);
    }
    got += recv_now(f, back + got, sizeof back - got);
    membudget_charge(f->budget, 1, -(64 << 20), -1);
    assert_int_equal(got, 6 * n);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(back + (size_t)i * n, frame, n);
    assert_int_equal(framed(f->stats.msgs_out), 6);
    assert_int_equal(f->closed_reason, CLOSE_PEER);
}

int main(void)
{
    /* Each test on each backend; on io_uring they skip where it is not available. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_framed_echo, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_partial_frame, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_service_time_per_pass, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_data_runs_counted, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_blocked_and_back, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_drain_buffered_input, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_drain_while_blocked, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply_then_linger, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_linger_deadline, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_eof, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_eof_ends_text_line, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_paused_peer_done_keeps_replies, setup_epoll, teardown),
        { "uring_test_framed_echo", test_framed_echo, setup_uring, teardown, NULL },
        { "uring_test_partial_frame", test_partial_frame, setup_uring, teardown, NULL },
        { "uring_test_service_time_per_pass", test_service_time_per_pass, setup_uring, teardown, NULL },
        { "uring_test_data_runs_counted", test_data_runs_counted, setup_uring, teardown, NULL },
        { "uring_test_blocked_and_back", test_blocked_and_back, setup_uring, teardown, NULL },
        { "uring_test_drain_buffered_input", test_drain_buffered_input, setup_uring, teardown, NULL },
        { "uring_test_drain_while_blocked", test_drain_while_blocked, setup_uring, teardown, NULL },
        { "uring_test_error_reply_then_linger", test_error_reply_then_linger, setup_uring, teardown, NULL },
        { "uring_test_linger_deadline", test_linger_deadline, setup_uring, teardown, NULL },
        { "uring_test_eof", test_eof, setup_uring, teardown, NULL },
        { "uring_test_eof_ends_text_line", test_eof_ends_text_line, setup_uring, teardown, NULL },
        { "uring_test_paused_peer_done_keeps_replies", test_paused_peer_done_keeps_replies, setup_uring,
          teardown, NULL },
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
