/* bench: a closed-loop load generator. Each thread runs an epoll loop over
 * its share of the connections; each connection keeps --depth messages in
 * flight, checks every reply byte for byte, and records its round-trip time.
 * All buffers are sized up front: nothing is allocated per message.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "client/client.h"
#include "tcpmsg/counter.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"

#define REPORT_EVERY_NS 1000000000ull /* RTT reports to the server: once a second */
#define CLOSE_WAIT_MS 1000            /* at the end, wait this long for the server's EOF */

#define BENCH_ERRORS(X)                                         \
    X(BERR_CONNECT, "connect", "could not connect")             \
    X(BERR_TIMEOUT, "timeout", "no reply within --timeout")     \
    X(BERR_CLOSED, "closed", "server closed or reset a connection") \
    X(BERR_MISMATCH, "mismatch", "a reply differed from its message")

enum bench_error {
#define BERR_ENUM(name, tag, text) name,
    BENCH_ERRORS(BERR_ENUM)
#undef BERR_ENUM
    BERR_COUNT
};

struct bench_conn {
    int fd;
    uint8_t *out;      /* frames not yet written */
    size_t out_off, out_len, out_cap;
    uint8_t *in;       /* replies not yet parsed */
    size_t in_len, in_cap;
    uint64_t *sent_ns; /* ring of send times, one per message in flight */
    unsigned head, inflight;
    uint64_t seq;      /* next sequence number to send */
    uint64_t wait_since_ns; /* oldest unanswered message's send time */
};

struct bench_thread {
    const struct client_config *cfg;
    const uint8_t *tmpl; /* the payload template every message is made from */
    pthread_t thread;
    pthread_barrier_t *start;
    struct bench_conn *conns;
    unsigned nconns;
    int epfd;
    uint64_t quota;      /* messages left to send (--count), or UINT64_MAX */
    uint64_t deadline_ns;
    const uint64_t *start_ns;
    uint64_t msgs;
    uint64_t errors[BERR_COUNT];
    struct hist rtt;
    struct hist unreported; /* RTTs not yet reported to the server */
    uint64_t next_report_ns;
};

static size_t frame_size(const struct client_config *cfg)
{
    return FRAME_HEADER_SIZE + cfg->size;
}

/* Message seq on a connection: the template with the sequence number in its
 * first bytes, so a reply from the wrong place or order cannot match. */
static void write_message(const struct bench_thread *t, uint8_t *p, uint64_t seq)
{
    size_t n = t->cfg->size;
    frame_header_encode(p, FRAME_DATA, n);
    memcpy(p + FRAME_HEADER_SIZE, t->tmpl, n);
    memcpy(p + FRAME_HEADER_SIZE, &seq, n < sizeof seq ? n : sizeof seq);
}

static bool reply_matches(const struct bench_thread *t, const uint8_t *p, uint64_t seq)
{
    size_t n = t->cfg->size;
    size_t k = n < sizeof seq ? n : sizeof seq;
    if (p[0] != FRAME_DATA || p[1] != (uint8_t)(n >> 16) || p[2] != (uint8_t)(n >> 8) ||
        p[3] != (uint8_t)n)
        return false;
    return memcmp(p + FRAME_HEADER_SIZE, &seq, k) == 0 &&
           memcmp(p + FRAME_HEADER_SIZE + k, t->tmpl + k, n - k) == 0;
}

static void conn_drop(struct bench_thread *t, struct bench_conn *c, enum bench_error e)
{
    if (c->fd < 0)
        return;
    t->errors[e]++;
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void set_events(struct bench_thread *t, struct bench_conn *c)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (c->out_off < c->out_len)
        ev.events |= EPOLLOUT;
    epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Fill the pipeline up to --depth and write what is queued. */
static void top_up_and_send(struct bench_thread *t, struct bench_conn *c, uint64_t now)
{
    unsigned depth = t->cfg->depth;
    bool more = now < t->deadline_ns;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    while (more && c->inflight < depth && t->quota > 0) {
        write_message(t, c->out + c->out_len, c->seq + c->inflight);
        c->out_len += frame_size(t->cfg);
        if (c->inflight == 0)
            c->wait_since_ns = now;
        c->sent_ns[(c->head + c->inflight) % depth] = now;
        c->inflight++;
        t->quota--;
    }
    bool had_pending = c->out_off < c->out_len;
    if (had_pending) {
        ssize_t w = net_write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && w != -EAGAIN) {
            conn_drop(t, c, BERR_CLOSED);
            return;
        }
        if (w > 0)
            c->out_off += (size_t)w;
    }
    set_events(t, c);
}

/* Parse complete replies: check each, record its RTT. */
static void consume_replies(struct bench_thread *t, struct bench_conn *c, uint64_t now)
{
    size_t fsz = frame_size(t->cfg);
    size_t pos = 0;
    unsigned depth = t->cfg->depth;
    while (c->in_len - pos >= FRAME_HEADER_SIZE) {
        if (c->in[pos] == FRAME_RTT_REPORT) {
            /* A byte-echo server sends our RTT reports back: skip them. */
            size_t n = FRAME_HEADER_SIZE + ((size_t)c->in[pos + 1] << 16 |
                                            (size_t)c->in[pos + 2] << 8 | c->in[pos + 3]);
            if (c->in_len - pos < n)
                break;
            pos += n;
            continue;
        }
        if (c->in_len - pos < fsz || c->inflight == 0)
            break;
        if (!reply_matches(t, c->in + pos, c->seq)) {
            conn_drop(t, c, BERR_MISMATCH);
            return;
        }
        hist_record(&t->rtt, now - c->sent_ns[c->head]);
        if (t->cfg->report)
            hist_record(&t->unreported, now - c->sent_ns[c->head]);
        c->head = (c->head + 1) % depth;
        c->inflight--;
        c->seq++;
        t->msgs++;
        pos += fsz;
        c->wait_since_ns = now;
    }
    if (c->in_len - pos > 0 && c->inflight == 0 && c->in[pos] != FRAME_RTT_REPORT) {
        conn_drop(t, c, BERR_MISMATCH); /* bytes nobody asked for */
        return;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void on_event(struct bench_thread *t, struct bench_conn *c, uint32_t events, uint64_t now)
{
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t r = net_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0 || (r < 0 && r != -EAGAIN)) {
            conn_drop(t, c, BERR_CLOSED);
            return;
        }
        if (r > 0) {
            c->in_len += (size_t)r;
            consume_replies(t, c, now);
            if (c->fd < 0)
                return;
        }
    }
    top_up_and_send(t, c, now);
}

/* Append the RTTs measured since the last report to c's output as an
 * RTT_REPORT frame (it leaves with the next write). */
static void queue_report(struct bench_thread *t, struct bench_conn *c)
{
    if (c->fd < 0 || hist_count(&t->unreported) == 0)
        return;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len < RTT_REPORT_MAX_FRAME)
        return; /* the previous report is still being written: next time */
    c->out_len += rtt_report_encode(&t->unreported, c->out + c->out_len, c->out_cap - c->out_len);
    hist_reset(&t->unreported);
    set_events(t, c);
}

/* The last report: write whatever is pending, then the report, waiting. */
static void final_report(struct bench_thread *t, struct bench_conn *c)
{
    if (c->fd < 0)
        return;
    queue_report(t, c);
    int rc = net_write_all(c->fd, c->out + c->out_off, c->out_len - c->out_off, CLOSE_WAIT_MS);
    c->out_off = c->out_len = 0;
    if (rc < 0)
        conn_drop(t, c, BERR_CLOSED);
}

/* Shut down the sending side of every connection and wait (briefly) for the
 * server to close its side: the server then sees a clean close instead of a
 * reset, and no report still in flight is thrown away. */
static void close_gracefully(struct bench_thread *t)
{
    unsigned open = 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        if (t->conns[i].fd >= 0) {
            shutdown(t->conns[i].fd, SHUT_WR);
            open++;
        }
    }
    uint64_t deadline = net_now_ns() + CLOSE_WAIT_MS * 1000000ull;
    struct epoll_event events[64];
    while (open > 0 && net_now_ns() < deadline) {
        int n = epoll_wait(t->epfd, events, 64, 50);
        for (int i = 0; i < n; i++) {
            struct bench_conn *c = events[i].data.ptr;
            ssize_t r = net_read(c->fd, c->in, c->in_cap); /* late replies: discarded */
            if (r == 0 || (r < 0 && r != -EAGAIN)) {
                epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                open--;
            }
        }
    }
}

static void check_timeouts(struct bench_thread *t, uint64_t now)
{
    uint64_t limit = (uint64_t)(t->cfg->timeout * 1e9);
    for (unsigned i = 0; i < t->nconns; i++) {
        struct bench_conn *c = &t->conns[i];
        if (c->fd >= 0 && c->inflight > 0 && now - c->wait_since_ns > limit)
            conn_drop(t, c, BERR_TIMEOUT);
    }
}

static bool thread_busy(const struct bench_thread *t, uint64_t now)
{
    bool sending = now < t->deadline_ns && t->quota > 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        const struct bench_conn *c = &t->conns[i];
        /* A timed run stops at the deadline; a counted one waits for replies. */
        if (c->fd >= 0 && (sending || (t->cfg->count > 0 && c->inflight > 0)))
            return true;
    }
    return false;
}

static void *bench_thread_main(void *arg)
{
    struct bench_thread *t = arg;
    struct epoll_event events[64];
    pthread_barrier_wait(t->start);
    uint64_t now = *t->start_ns;
    for (unsigned i = 0; i < t->nconns; i++)
        if (t->conns[i].fd >= 0)
            top_up_and_send(t, &t->conns[i], now);
    uint64_t next_check = now + 100000000u;
    t->next_report_ns = now + REPORT_EVERY_NS;
    while (thread_busy(t, now)) {
        int n = epoll_wait(t->epfd, events, 64, 50);
        now = net_now_ns();
        for (int i = 0; i < n; i++)
            on_event(t, events[i].data.ptr, events[i].events, now);
        if (now >= next_check) {
            check_timeouts(t, now);
            next_check = now + 100000000u;
        }
        if (t->cfg->report && now >= t->next_report_ns) {
            queue_report(t, &t->conns[0]);
            t->next_report_ns = now + REPORT_EVERY_NS;
        }
    }
    if (t->cfg->report)
        final_report(t, &t->conns[0]);
    close_gracefully(t);
    return NULL;
}

/* Connect and allocate one connection's buffers. The first connection of a
 * thread also carries its RTT reports, so its output buffer has room for one. */
static int conn_setup(struct bench_thread *t, struct bench_conn *c)
{
    const struct client_config *cfg = t->cfg;
    size_t window = (size_t)cfg->depth * frame_size(cfg);
    c->in_cap = window > 65536 ? window : 65536;
    if (c->in_cap < 2 * RTT_REPORT_MAX_FRAME)
        c->in_cap = 2 * RTT_REPORT_MAX_FRAME; /* room for an echoed report */
    c->out_cap = window + (c == &t->conns[0] ? RTT_REPORT_MAX_FRAME : 0);
    c->out = malloc(c->out_cap);
    c->in = malloc(c->in_cap);
    c->sent_ns = calloc(cfg->depth, sizeof *c->sent_ns);
    c->fd = -1;
    if (c->out == NULL || c->in == NULL || c->sent_ns == NULL)
        return -ENOMEM;
    char addr[NET_ADDRSTRLEN];
    int fd = client_connect(cfg, addr);
    if (fd < 0) {
        t->errors[BERR_CONNECT]++;
        return fd;
    }
    net_set_nonblock(fd, true);
    c->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    return epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void conn_teardown(struct bench_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    free(c->in);
    free(c->sent_ns);
}

static void print_text(const struct client_config *cfg, const char *target,
                       const struct bench_thread *sum, double secs)
{
    const struct hist *h = &sum->rtt;
    uint64_t errs = 0;
    for (int e = 0; e < BERR_COUNT; e++)
        errs += sum->errors[e];
    printf("tcpmsg bench %s: %u connections, depth %u, %zu-byte messages, %u threads\n", target,
           cfg->connections, cfg->depth, cfg->size, cfg->threads);
    printf("  duration    %.2f s\n", secs);
    printf("  messages    %llu (%.1f msg/s)\n", (unsigned long long)sum->msgs, (double)sum->msgs / secs);
    printf("  throughput  %.2f MB/s each way\n",
           (double)sum->msgs * (double)frame_size(cfg) / secs / 1e6);
    printf("  rtt (us)    min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
           hist_min(h) / 1e3, hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
           hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, hist_max(h) / 1e3,
           hist_mean(h) / 1e3);
    printf("  errors      %llu", (unsigned long long)errs);
    static const char *const tags[] = {
#define BERR_TAG(name, tag, text) tag,
        BENCH_ERRORS(BERR_TAG)
#undef BERR_TAG
    };
    for (int e = 0; e < BERR_COUNT; e++)
        if (sum->errors[e] > 0)
            printf("  %s %llu", tags[e], (unsigned long long)sum->errors[e]);
    printf("\n");
}

static void print_json(const struct client_config *cfg, const char *target,
                       const struct bench_thread *sum, double secs)
{
    const struct hist *h = &sum->rtt;
    uint64_t errs = 0;
    for (int e = 0; e < BERR_COUNT; e++)
        errs += sum->errors[e];
    printf("{\"target\":\"%s\",\"connections\":%u,\"depth\":%u,\"size\":%zu,\"threads\":%u,"
           "\"duration_s\":%.3f,\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,",
           target, cfg->connections, cfg->depth, cfg->size, cfg->threads, secs,
           (unsigned long long)sum->msgs, (double)sum->msgs / secs,
           (double)sum->msgs * (double)frame_size(cfg) / secs / 1e6);
    printf("\"rtt_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p99_9\":%.3f,\"max\":%.3f},",
           hist_min(h) / 1e3, hist_mean(h) / 1e3, hist_percentile(h, 50) / 1e3,
           hist_percentile(h, 90) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, hist_max(h) / 1e3);
    printf("\"errors\":{");
#define BERR_JSON(name, tag, text) printf("\"%s\":%llu,", tag, (unsigned long long)sum->errors[name]);
    BENCH_ERRORS(BERR_JSON)
#undef BERR_JSON
    printf("\"total\":%llu}}\n", (unsigned long long)errs);
}

static uint8_t *make_template(size_t n)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    uint64_t x = 0x9e3779b97f4a7c15u; /* fixed seed: runs are repeatable */
    for (size_t i = 0; p != NULL && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* Set up threads and connections; 0 or an exit status. */
static int setup(const struct client_config *cfg, struct bench_thread *ts, unsigned nthreads,
                 const uint8_t *tmpl, pthread_barrier_t *start, const uint64_t *start_ns)
{
    for (unsigned i = 0; i < nthreads; i++) {
        struct bench_thread *t = &ts[i];
        t->cfg = cfg;
        t->tmpl = tmpl;
        t->start = start;
        t->start_ns = start_ns;
        hist_init(&t->rtt);
        hist_init(&t->unreported);
        t->nconns = cfg->connections / nthreads + (i < cfg->connections % nthreads);
        t->quota = cfg->count == 0 ? UINT64_MAX : cfg->count / nthreads + (i < cfg->count % nthreads);
        t->conns = calloc(t->nconns, sizeof *t->conns);
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (t->conns == NULL || t->epfd < 0)
            return EXIT_IO;
        for (unsigned k = 0; k < t->nconns; k++) {
            int rc = conn_setup(t, &t->conns[k]);
            if (rc == -ENOMEM)
                return EXIT_IO;
            if (rc < 0 && k == 0 && i == 0)
                return -rc; /* the first connection failed: the target is down */
        }
    }
    return EXIT_OK;
}

static void teardown(struct bench_thread *ts, unsigned nthreads)
{
    for (unsigned i = 0; i < nthreads; i++) {
        for (unsigned k = 0; ts[i].conns != NULL && k < ts[i].nconns; k++)
            conn_teardown(&ts[i].conns[k]);
        free(ts[i].conns);
        if (ts[i].epfd >= 0)
            close(ts[i].epfd);
    }
    free(ts);
}

int bench_run(const struct client_config *cfg)
{
    unsigned nthreads = cfg->threads < cfg->connections ? cfg->threads : cfg->connections;
    struct bench_thread *ts = calloc(nthreads, sizeof *ts);
    uint8_t *tmpl = make_template(cfg->size);
    if (ts == NULL || tmpl == NULL) {
        fprintf(stderr, "tcpmsg: out of memory\n");
        free(ts);
        free(tmpl);
        return EXIT_IO;
    }
    for (unsigned i = 0; i < nthreads; i++)
        ts[i].epfd = -1;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, nthreads + 1);
    uint64_t start_ns = 0;
    int rc = setup(cfg, ts, nthreads, tmpl, &start, &start_ns);
    if (rc != EXIT_OK) {
        teardown(ts, nthreads);
        free(tmpl);
        pthread_barrier_destroy(&start);
        return rc;
    }

    start_ns = net_now_ns();
    uint64_t deadline = cfg->count > 0 ? UINT64_MAX : start_ns + (uint64_t)(cfg->duration * 1e9);
    for (unsigned i = 0; i < nthreads; i++) {
        ts[i].deadline_ns = deadline;
        pthread_create(&ts[i].thread, NULL, bench_thread_main, &ts[i]);
    }
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(ts[i].thread, NULL);
    uint64_t end_ns = net_now_ns();
    if (cfg->count == 0 && end_ns > deadline)
        end_ns = deadline; /* replies after the deadline are not counted */

    struct bench_thread *sum = calloc(1, sizeof *sum);
    hist_init(&sum->rtt);
    for (unsigned i = 0; i < nthreads; i++) {
        sum->msgs += ts[i].msgs;
        for (int e = 0; e < BERR_COUNT; e++)
            sum->errors[e] += ts[i].errors[e];
        hist_merge(&sum->rtt, &ts[i].rtt);
    }
    double secs = (double)(end_ns - start_ns) / 1e9;
    char target[sizeof cfg->host + 8];
    snprintf(target, sizeof target, "%s:%u", cfg->host, (unsigned)cfg->port);
    if (cfg->json)
        print_json(cfg, target, sum, secs);
    else
        print_text(cfg, target, sum, secs);
    rc = EXIT_OK;
    for (int e = 0; e < BERR_COUNT; e++)
        if (sum->errors[e] > 0)
            rc = EXIT_IO;
    free(sum);
    teardown(ts, nthreads);
    free(tmpl);
    pthread_barrier_destroy(&start);
    return rc;
}
