/* Integration: stage timestamps (--stage-sample), checked from outside.
 * A server stopped while a message waits in its receive queue shows the
 * stop in that message's rx_queue, not in its service; with every message
 * sampled the stage histograms count exactly the messages, transmit stages
 * included once the client's ACKs are in; one in N counts one in N; and
 * sampling off leaves SO_TIMESTAMPING off on every socket of the server,
 * looked at through the server's own descriptors (pidfd_getfd).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/rttreport.h"
#include "tcpmsg/tstamp.h"

#define T IT_IO_TIMEOUT_MS
#define STOP_MS 200
#define MSG "where does the time go?"

static const char *const stage_names[] = { "rx_queue", "service", "tx_sched", "tx_send",
                                           "tx_ack" };
#define NSTAGES (sizeof stage_names / sizeof stage_names[0])

static double stage_num(json_t *doc, const char *stage, const char *field)
{
    char path[96];
    snprintf(path, sizeof path, "histograms.stage_seconds.%s.%s", stage, field);
    return it_json_num(doc, path);
}

static long long stage_count(json_t *doc, const char *stage)
{
    char path[96];
    snprintf(path, sizeof path, "histograms.stage_seconds.%s.count", stage);
    return it_json_int(doc, path);
}

/* Wait until every stage has counted want samples (tx_ack last: it waits
 * for the client's ACK) and return the document. */
static json_t *wait_stages(const struct it_server *s, long long want)
{
    json_decref(it_wait_metric(s, "histograms.stage_seconds.tx_ack.count", want));
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    for (size_t k = 0; k < NSTAGES; k++)
        if (stage_count(doc, stage_names[k]) != want)
            fail_msg("stage %s counted %lld samples, not %lld", stage_names[k],
                     stage_count(doc, stage_names[k]), want);
    IT_CHECK(it_json_int(doc, "counters.stage_samples_dropped_total") == 0);
    return doc;
}

/* The process serving the connections: the server, or in fork mode the one
 * child serving the only client. */
static pid_t serving_pid(const struct it_server *s)
{
    if (!it_fork_mode())
        return s->pid;
    pid_t kids[4];
    for (int k = 0; k < 100; k++) {
        if (it_proc_children(s->pid, kids, NULL, 4) == 1)
            return kids[0];
        it_sleep_ms(10);
    }
    fail_msg("no single child serves the connection");
    return -1;
}

/* Whether every thread of pid has stopped (state T in its stat line). */
static bool all_threads_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool stopped = true;
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && stopped) {
        if (e->d_name[0] == '.')
            continue;
        char stat[352], line[512];
        snprintf(stat, sizeof stat, "%s/%s/stat", path, e->d_name);
        FILE *f = fopen(stat, "re");
        if (f == NULL)
            continue; /* the thread ended */
        const char *close_paren = NULL;
        if (fgets(line, sizeof line, f) != NULL)
            close_paren = strrchr(line, ')');
        fclose(f);
        stopped = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'T';
        seen++;
    }
    closedir(d);
    return stopped && seen > 0;
}

/* SIGSTOP for STOP_MS while a message sits in the receive queue: its
 * rx_queue holds the stop, its service does not. A first message before it
 * shows what an undisturbed one looks like. */
static void test_sigstop_rx_queue(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1", "--threads", "1", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    IT_CHECK(it_roundtrip(fd, MSG, strlen(MSG), T) == 0);
    json_decref(wait_stages(s, 1));
    pid_t victim = serving_pid(s);
    IT_CHECK(kill(victim, SIGSTOP) == 0);
    /* kill returns before the threads stop: one still running could read
     * the message and stop just after, with the stop counted as service. */
    for (int k = 0; k < 500 && !all_threads_stopped(victim); k++)
        it_sleep_ms(1);
    IT_CHECK(all_threads_stopped(victim));
    int64_t t0 = it_now_ms();
    IT_CHECK(it_send_frame(fd, FRAME_DATA, MSG, strlen(MSG), T) == 0);
    IT_CHECK(it_wait_acked(fd, T) == 0); /* in the server's receive queue */
    int64_t left = STOP_MS - (it_now_ms() - t0);
    if (left > 0)
        it_sleep_ms((int)left);
    IT_CHECK(kill(victim, SIGCONT) == 0);
    uint8_t type;
    char back[64];
    IT_CHECK(it_recv_frame(fd, &type, back, sizeof back, T) == (ssize_t)strlen(MSG));
    json_t *doc = wait_stages(s, 2);
    double rx_max = stage_num(doc, "rx_queue", "max"), rx_min = stage_num(doc, "rx_queue", "min");
    double svc_max = stage_num(doc, "service", "max");
    print_message("rx_queue min %g max %g s, service max %g s\n", rx_min, rx_max, svc_max);
    IT_CHECK(rx_max >= (STOP_MS - 10) / 1e3);
    IT_CHECK(rx_min < (STOP_MS - 10) / 1e3);  /* the first message did not wait */
    IT_CHECK(svc_max < (STOP_MS - 10) / 1e3); /* the wait was before the read */
    json_decref(doc);
    close(fd);
    it_server_free(s);
}

/* Every message sampled: sequential round trips, then bursts of several
 * messages that arrive in one read and leave in one write. Every stage
 * counts every message exactly once the client has read all its replies and
 * its kernel has acknowledged them. */
static void test_every_message_counted(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    long long sent = 0;
    for (int i = 0; i < 20; i++, sent++)
        IT_CHECK(it_roundtrip(fd, MSG, strlen(MSG), T) == 0);
    for (int burst = 0; burst < 5; burst++) {
        uint8_t buf[10 * (FRAME_HEADER_SIZE + sizeof MSG)];
        size_t n = 0;
        for (int i = 0; i < 10; i++) {
            buf[n] = FRAME_DATA;
            buf[n + 1] = 0;
            buf[n + 2] = 0;
            buf[n + 3] = (uint8_t)strlen(MSG);
            memcpy(buf + n + FRAME_HEADER_SIZE, MSG, strlen(MSG));
            n += FRAME_HEADER_SIZE + strlen(MSG);
        }
        IT_CHECK(it_send_all(fd, buf, n, T) == 0);
        uint8_t back[sizeof buf];
        IT_CHECK(it_recv_exact(fd, back, n, T) == 0);
        IT_CHECK(memcmp(back, buf, n) == 0);
        sent += 10;
    }
    json_t *doc = wait_stages(s, sent);
    IT_CHECK(it_json_int(doc, "server.stage_sample") == 1);
    IT_CHECK(it_json_int(doc, "counters.messages_received_total.framed") == sent);
    json_decref(doc);
    close(fd);
    it_server_free(s);
}

/* A sampled reply too large for one write (6 MiB to a client that reads
 * only once it has sent everything, through a small receive buffer): the
 * kernel takes it in several partial writes; those that carry its last byte
 * ask for timestamps, the others not, and the sample completes once, with
 * no sample given up (the stamps of bytes before its last are not its own). */
static void test_partial_writes(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1", "--max-payload", "8MiB", NULL };
    IT_START(s, args, 0);
    int fd = it_connect_rcvbuf(s->port, 64 * 1024); /* the reply cannot fit at once */
    IT_CHECK(fd >= 0);
    size_t len = 6u << 20; /* more than the server's send buffer grows to (4 MiB) */
    char *big = malloc(len), *back = malloc(len);
    IT_CHECK(big != NULL && back != NULL);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 26);
    IT_CHECK(it_send_frame(fd, FRAME_DATA, big, len, T) == 0);
    it_sleep_ms(100); /* the server's writes fill the socket buffers meanwhile */
    uint8_t type;
    IT_CHECK(it_recv_frame(fd, &type, back, len, T) == (ssize_t)len);
    IT_CHECK(memcmp(back, big, len) == 0);
    IT_CHECK(it_roundtrip(fd, MSG, strlen(MSG), T) == 0);
    json_t *doc = wait_stages(s, 2);
    long long stamped = it_json_int(doc, "syscalls.sendmsg"),
              plain = it_json_int(doc, "syscalls.write") + it_json_int(doc, "syscalls.writev");
    print_message("writes: %lld stamped, %lld not\n", stamped, plain);
    if (strcmp(it_io(), "uring") != 0) /* io_uring's sends are not system calls */
        IT_CHECK(stamped >= 2 && stamped + plain >= 3);
    json_decref(doc);
    free(big);
    free(back);
    close(fd);
    it_server_free(s);
}

/* Regression: reads asked for receive timestamps only from STAGE_RX_WINDOW
 * (256) messages before a sample, and one read of a deep pipeline of tiny
 * frames carries thousands: the sample it completed had no timestamp and
 * was given up (297 of 400 with 1-byte messages at depth 2048). A sample
 * that falls in such a read stays due, and the next stamped read takes it
 * (and any others owed): one in N is still exactly one in N once PIPE_TAIL
 * single messages have followed, and none is given up for want of a
 * receive timestamp. */
#define PIPE_MSGS 40000
#define PIPE_EVERY 1000
#define PIPE_TAIL 50 /* more than a read of the pipeline holds samples (13 at 64 KiB) */
static void test_deep_pipeline_keeps_samples(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1000", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    size_t n = (size_t)PIPE_MSGS * (FRAME_HEADER_SIZE + 1);
    uint8_t *buf = malloc(n), *back = malloc(n);
    IT_CHECK(buf != NULL && back != NULL);
    for (size_t i = 0; i < PIPE_MSGS; i++)
        memcpy(buf + i * (FRAME_HEADER_SIZE + 1), (const uint8_t[]){ FRAME_DATA, 0, 0, 1, 'x' },
               FRAME_HEADER_SIZE + 1);
    /* Sent whole before anything is read back: the server's reads are
     * large (the echoes fit in the socket buffers). */
    IT_CHECK(it_send_all(fd, buf, n, T) == 0);
    IT_CHECK(it_recv_exact(fd, back, n, T) == 0);
    IT_CHECK(memcmp(back, buf, n) == 0);
    /* Samples still due are taken by these single messages, stamped. */
    for (int i = 0; i < PIPE_TAIL; i++)
        IT_CHECK(it_roundtrip(fd, MSG, strlen(MSG), T) == 0);
    long long samples = (PIPE_MSGS + PIPE_TAIL) / PIPE_EVERY;
    json_decref(it_wait_metric(s, "histograms.stage_seconds.service.count", samples));
    /* Each sample then either completes its transmit stages or is given up
     * there (its stamps lost), once: the receive side gives up none. */
    json_t *doc = NULL;
    long long acked = 0, dropped = 0;
    for (int k = 0; k < 500 && acked + dropped != samples; k++) {
        json_decref(doc);
        it_sleep_ms(10);
        doc = it_must_get_json(s->http_port, "/metrics");
        acked = stage_count(doc, "tx_ack");
        dropped = it_json_int(doc, "counters.stage_samples_dropped_total");
    }
    print_message("%lld samples of %d messages, 1 in %d; %lld acked, %lld given up\n",
                  stage_count(doc, "rx_queue"), PIPE_MSGS + PIPE_TAIL, PIPE_EVERY, acked, dropped);
    IT_CHECK(stage_count(doc, "rx_queue") == samples);
    IT_CHECK(stage_count(doc, "service") == samples);
    IT_CHECK(acked + dropped == samples);
    IT_CHECK(stage_count(doc, "tx_sched") == acked && stage_count(doc, "tx_send") == acked);
    json_decref(doc);
    free(buf);
    free(back);
    close(fd);
    it_server_free(s);
}

/* The stages nest: a sampled reply the client does not read for STOP_MS
 * (6 MiB, through a small receive buffer) waits in the socket's send path,
 * and that wait is counted once: in tx_sched (the write carrying its last
 * byte began, the kernel took that byte later), in service (that write
 * began later), or split between them, never in both. Regression: service
 * ended when the last write returned, tx_sched began when the first stamped
 * one was made. */
static void test_stages_nest(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1", "--max-payload", "8MiB", NULL };
    IT_START(s, args, 0);
    int fd = it_connect_rcvbuf(s->port, 64 * 1024);
    IT_CHECK(fd >= 0);
    size_t len = 6u << 20;
    char *big = malloc(len), *back = malloc(len);
    IT_CHECK(big != NULL && back != NULL);
    memset(big, 'n', len);
    IT_CHECK(it_send_frame(fd, FRAME_DATA, big, len, T) == 0);
    /* The pause counts from when the server has the whole message (and has
     * begun its reply), not from the end of the send: reading 6 MiB takes
     * the server a while on a busy machine or in a sanitizer build. */
    json_decref(it_wait_metric(s, "counters.messages_received_total.framed", 1));
    it_sleep_ms(STOP_MS);
    uint8_t type;
    IT_CHECK(it_recv_frame(fd, &type, back, len, T) == (ssize_t)len);
    json_t *doc = wait_stages(s, 1);
    double svc = stage_num(doc, "service", "max"), sched = stage_num(doc, "tx_sched", "max");
    print_message("service %g s, tx_sched %g s\n", svc, sched);
    double wait = (STOP_MS - 10) / 1e3;
    IT_CHECK(svc + sched >= wait);              /* the wait is in them */
    IT_CHECK(!(svc >= wait && sched >= wait)); /* once, not in both */
    json_decref(doc);
    free(big);
    free(back);
    close(fd);
    it_server_free(s);
}

/* One message in 3 per connection: 30 messages on each of two connections
 * are 20 samples, whatever the interleaving. */
static void test_one_in_n(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "3", NULL };
    IT_START(s, args, 0);
    int a = it_must_connect(s->port), b = it_must_connect(s->port);
    for (int i = 0; i < 30; i++) {
        IT_CHECK(it_roundtrip(a, MSG, strlen(MSG), T) == 0);
        IT_CHECK(it_roundtrip(b, MSG, strlen(MSG), T) == 0);
    }
    json_t *doc = wait_stages(s, 20);
    IT_CHECK(it_json_int(doc, "server.stage_sample") == 3);
    json_decref(doc);
    close(a);
    close(b);
    it_server_free(s);
}

/* Runs of data frames split by RTT reports, sent in one piece so that a
 * read holds several runs: every data frame is sampled (N=1), each sample's
 * reply end is found from where its run began, and every stage counts every
 * message, none given up. A report (refused here: a version no server
 * knows) gets no reply, so a reply end reckoned from the wrong run would
 * stamp the wrong write and lose its samples. */
#define SPLIT_ROUNDS 20
static void test_split_runs(void **state)
{
    (void)state;
    const char *args[] = { "--stage-sample", "1", NULL };
    IT_START(s, args, 0);
    int fd = it_must_connect(s->port);
    uint8_t report[FRAME_HEADER_SIZE + RTT_REPORT_HEAD + RTT_REPORT_ENTRY] = { 0 };
    frame_header_encode(report, FRAME_RTT_REPORT, RTT_REPORT_HEAD + RTT_REPORT_ENTRY);
    report[4] = 9; /* version */
    uint8_t frame[FRAME_HEADER_SIZE + 3];
    /* data, report, data, data, report, report, data, data, data */
    static const char plan[] = "dRddRRddd";
    uint8_t out[sizeof plan * sizeof report], want[sizeof plan * sizeof frame];
    long long msgs = 0;
    for (int r = 0; r < SPLIT_ROUNDS; r++) {
        size_t n = 0, w = 0;
        for (const char *p = plan; *p != '\0'; p++) {
            if (*p == 'R') {
                memcpy(out + n, report, sizeof report);
                n += sizeof report;
                continue;
            }
            frame_header_encode(frame, FRAME_DATA, 3);
            frame[4] = (uint8_t)('a' + r % 26);
            frame[5] = (uint8_t)('0' + (p - plan));
            frame[6] = (uint8_t)msgs;
            memcpy(out + n, frame, sizeof frame);
            memcpy(want + w, frame, sizeof frame);
            n += sizeof frame;
            w += sizeof frame;
            msgs++;
        }
        uint8_t back[sizeof want];
        IT_CHECK(it_send_all(fd, out, n, T) == 0);
        IT_CHECK(it_recv_exact(fd, back, w, T) == 0);
        IT_CHECK(memcmp(back, want, w) == 0);
    }
    json_t *doc = wait_stages(s, msgs);
    IT_CHECK(it_json_int(doc, "counters.client_rtt_reports_rejected_total.malformed") ==
             3 * SPLIT_ROUNDS);
    json_decref(doc);
    close(fd);
    it_server_free(s);
}

/* How many of pid's sockets have SO_TIMESTAMPING on, read through copies
 * of its descriptors; -1 (test skipped by the caller) when the kernel will
 * not hand them over. *nsockets gets how many sockets were looked at. */
static int stamped_sockets(pid_t pid, int *nsockets)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    int fds[256];
    char targets[256][64];
    int n = it_proc_fds(pid, fds, targets, 256), on = 0;
    *nsockets = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(targets[i], "socket:", 7) != 0)
            continue;
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, fds[i], 0);
        if (fd < 0) {
            if (errno == EBADF)
                continue; /* closed meanwhile */
            close(pidfd);
            return -1;
        }
        ++*nsockets;
        on += tstamp_enabled(fd);
        close(fd);
    }
    close(pidfd);
    return on;
}

/* The server's sockets and, in fork mode, its children's. */
static int stamped_server_sockets(const struct it_server *s, int *nsockets)
{
    int on = stamped_sockets(s->pid, nsockets);
    pid_t kids[16];
    int nk = it_fork_mode() ? it_proc_children(s->pid, kids, NULL, 16) : 0;
    for (int i = 0; i < nk && i < 16 && on >= 0; i++) {
        int n = 0, k = stamped_sockets(kids[i], &n);
        on = k < 0 ? -1 : on + k;
        *nsockets += n;
    }
    return on;
}

/* Load on 3 connections, then every socket of the server looked at. */
static int stamped_under_load(const char *sample, int *nsockets, long long *stage_samples,
                              long long *stamp_calls)
{
    const char *args[] = { "--stage-sample", sample, NULL };
    IT_START(s, args, 0);
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = it_must_connect(s->port);
        for (int r = 0; r < 5; r++)
            IT_CHECK(it_roundtrip(fd[i], MSG, strlen(MSG), T) == 0);
    }
    json_decref(it_wait_metric(s, "counters.messages_sent_total.framed", 15));
    int on = stamped_server_sockets(s, nsockets);
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    *stage_samples = 0;
    for (size_t k = 0; k < NSTAGES; k++)
        *stage_samples += stage_count(doc, stage_names[k]);
    *stamp_calls = it_json_int(doc, "syscalls.recvmsg") + it_json_int(doc, "syscalls.recvmmsg") +
                   it_json_int(doc, "syscalls.sendmsg");
    IT_CHECK(it_json_int(doc, "server.stage_sample") == atoi(sample));
    json_decref(doc);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    it_server_free(s);
    return on;
}

/* Sampling off: no socket of the server has SO_TIMESTAMPING, nothing is
 * sampled, and no stamped call is made. The same look with sampling on
 * finds the three connections stamped, so the look can tell. */
static void test_off_no_timestamping(void **state)
{
    (void)state;
    int nsockets = 0;
    long long samples = 0, calls = 0;
    int on = stamped_under_load("0", &nsockets, &samples, &calls);
    if (on < 0) {
        print_message("pidfd_getfd refused here: skipped\n");
        skip();
    }
    print_message("off: %d of %d sockets stamped\n", on, nsockets);
    IT_CHECK(nsockets >= 4); /* the listener and three connections at least */
    IT_CHECK(on == 0);
    IT_CHECK(samples == 0);
    IT_CHECK(calls == 0);
    on = stamped_under_load("1", &nsockets, &samples, &calls);
    print_message("on: %d of %d sockets stamped\n", on, nsockets);
    IT_CHECK(on >= 3);
    IT_CHECK(samples > 0 && calls > 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigstop_rx_queue),
        cmocka_unit_test(test_every_message_counted),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_deep_pipeline_keeps_samples),
        cmocka_unit_test(test_stages_nest),
        cmocka_unit_test(test_one_in_n),
        cmocka_unit_test(test_split_runs),
        cmocka_unit_test(test_off_no_timestamping),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
