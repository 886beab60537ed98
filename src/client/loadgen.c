/* loadgen: the per-thread epoll loop of tcpmsg bench (see loadgen.h). The
 * hot path (pace, append, flush, consume, record) allocates nothing and takes
 * no lock: each thread owns its connections, counters and histograms.
 */
#include "client/loadgen.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "client/client.h"
#include "client/schedule.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"

#define REPORT_EVERY_NS 1000000000ull /* RTT reports to the server: once a second */
#define CHECK_EVERY_NS 100000000ull   /* timeouts are checked this often */
#define MAX_WAIT_NS 50000000ull       /* the loop wakes at least this often */
#define CLOSE_WAIT_MS 1000            /* at the end, wait this long for the server's EOF */
#define EVENTS_PER_WAKEUP 64

struct lg_conn {
    int fd;                /* -1 once dropped */
    unsigned id;           /* run-wide connection number: seeds its message sizes */
    bool want_out;         /* EPOLLOUT is registered */
    uint8_t *out;          /* messages not yet written: [out_off, out_len) */
    size_t out_off, out_len, out_cap;
    uint8_t *in;           /* replies not yet parsed */
    size_t in_len, in_cap;
    uint64_t *sent_ns;     /* ring: actual send time of each message in flight */
    unsigned head, inflight;
    uint64_t seq;          /* index of the oldest message in flight */
    uint64_t wait_since_ns; /* since when the oldest unanswered message waits */
    struct schedule sched; /* open loop: when each message is due */
    struct hist *unreported; /* RTTs measured here, not yet reported; NULL: no reports */
};

struct lg_thread {
    const struct lg_plan *plan;
    const struct client_config *cfg;
    bool open_loop;
    pthread_t thread;
    struct lg_conn *conns;
    unsigned nconns, first_conn;
    int epfd;
    uint64_t quota;        /* messages this thread may still send */
    atomic_bool finished;      /* the measured loop has ended */
    _Atomic uint64_t done_ns;  /* when it ended */
    struct lg_stats stats;
};

static const char *const error_tags[] = {
#define LG_ERR_TAG(name, tag, text) tag,
    LG_ERRORS(LG_ERR_TAG)
#undef LG_ERR_TAG
};

const char *lg_error_tag(enum lg_error e)
{
    return (unsigned)e < LG_ERR_COUNT ? error_tags[e] : "unknown";
}

size_t lg_wire_size(const struct client_config *cfg, size_t n)
{
    return cfg->text ? n + 1 : FRAME_HEADER_SIZE + n;
}

/* --- messages ----------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u; /* splitmix64 */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The payload size of message k of a connection: fixed, or drawn from
 * --size MIN-MAX by a hash of (seed, connection, k), so sender and checker
 * agree without storing it. */
static size_t msg_size(const struct lg_thread *t, const struct lg_conn *c, uint64_t k)
{
    const struct client_config *cfg = t->cfg;
    if (cfg->size_min == cfg->size)
        return cfg->size;
    uint64_t r = mix64(cfg->seed ^ mix64(((uint64_t)c->id << 40) ^ k));
    return cfg->size_min + (size_t)(r % (cfg->size - cfg->size_min + 1));
}

/* The first bytes of message k: who and which, so a reply from the wrong
 * place or order cannot match. Text mode spells it in hex digits. */
static size_t make_stamp(uint8_t out[16], const struct lg_conn *c, uint64_t k, size_t n, bool text)
{
    uint64_t v = k ^ ((uint64_t)c->id << 40);
    if (!text) {
        size_t len = n < 8 ? n : 8;
        memcpy(out, &v, len);
        return len;
    }
    size_t len = n < 16 ? n : 16;
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)"0123456789abcdef"[(v >> (4 * i)) & 15];
    return len;
}

static size_t write_message(const struct lg_thread *t, const struct lg_conn *c, uint64_t k,
                            uint8_t *p)
{
    bool text = t->cfg->text;
    size_t n = msg_size(t, c, k);
    uint8_t *payload = text ? p : p + FRAME_HEADER_SIZE;
    if (!text)
        frame_header_encode(p, FRAME_DATA, n);
    memcpy(payload, t->plan->tmpl, n);
    uint8_t stamp[16];
    memcpy(payload, stamp, make_stamp(stamp, c, k, n, text));
    if (text)
        payload[n] = '\n';
    return lg_wire_size(t->cfg, n);
}

/* Is p (avail bytes) the reply to message k? 1 yes, 0 need more bytes, -1 no. */
static int reply_check(const struct lg_thread *t, const struct lg_conn *c, uint64_t k,
                       const uint8_t *p, size_t avail)
{
    bool text = t->cfg->text;
    size_t n = msg_size(t, c, k);
    if (!text && avail >= FRAME_HEADER_SIZE) {
        uint8_t want[FRAME_HEADER_SIZE];
        frame_header_encode(want, FRAME_DATA, n);
        if (memcmp(p, want, FRAME_HEADER_SIZE) != 0)
            return -1; /* e.g. an error frame: do not wait for more */
    }
    if (avail < lg_wire_size(t->cfg, n))
        return 0;
    const uint8_t *payload = text ? p : p + FRAME_HEADER_SIZE;
    uint8_t stamp[16];
    size_t s = make_stamp(stamp, c, k, n, text);
    if (memcmp(payload, stamp, s) != 0 || memcmp(payload + s, t->plan->tmpl + s, n - s) != 0)
        return -1;
    return !text || payload[n] == '\n' ? 1 : -1;
}

/* --- connections ---------------------------------------------------------- */

static void conn_drop(struct lg_thread *t, struct lg_conn *c, enum lg_error e)
{
    if (c->fd < 0)
        return;
    counter_add(&t->stats.errors[e], 1);
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Register EPOLLOUT only while output is pending, and only on a change: an
 * epoll_ctl per message would cost as much as the write. */
static void want_output(struct lg_thread *t, struct lg_conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void flush(struct lg_thread *t, struct lg_conn *c)
{
    if (c->out_off < c->out_len) {
        ssize_t w = net_write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && w != -EAGAIN) {
            conn_drop(t, c, LG_ERR_RESET);
            return;
        }
        if (w > 0)
            c->out_off += (size_t)w;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    want_output(t, c, c->out_off < c->out_len);
}

/* Room for need more bytes of output, moving what is unwritten to the front. */
static bool out_room(struct lg_conn *c, size_t need)
{
    if (c->out_cap - c->out_len >= need)
        return true;
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    return c->out_cap - c->out_len >= need;
}

/* Queue message seq + inflight, sent now. */
static void append_next(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    uint64_t k = c->seq + c->inflight;
    c->out_len += write_message(t, c, k, c->out + c->out_len);
    if (c->inflight == 0)
        c->wait_since_ns = now;
    c->sent_ns[(c->head + c->inflight) % t->cfg->depth] = now;
    c->inflight++;
    t->quota--;
}

static bool can_send(const struct lg_thread *t, struct lg_conn *c)
{
    size_t w = lg_wire_size(t->cfg, t->cfg->size);
    return c->fd >= 0 && c->inflight < t->cfg->depth && t->quota > 0 && out_room(c, w);
}

/* Closed loop: fill the pipeline up to --depth, then write. */
static void closed_top_up(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    while (now < t->plan->deadline_ns && can_send(t, c)) {
        append_next(t, c, now);
        if (now >= t->plan->measure_ns)
            counter_add(&t->stats.sent, 1);
    }
    if (c->fd >= 0)
        flush(t, c);
}

/* Open loop: send every message that is due (late ones at once: a backlog
 * after a stall goes out as fast as --depth allows). Returns when the next
 * message of c is due, or UINT64_MAX. */
static uint64_t open_send_due(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    bool appended = false;
    uint64_t next = UINT64_MAX;
    while (can_send(t, c)) {
        uint64_t due = schedule_time(&c->sched, c->seq + c->inflight);
        if (due >= t->plan->deadline_ns)
            break;
        if (due > now) {
            next = due;
            break;
        }
        append_next(t, c, now);
        appended = true;
        if (due >= t->plan->measure_ns) {
            counter_add(&t->stats.sent, 1);
            if (now - due > counter_get(&t->stats.max_lag_ns))
                counter_set(&t->stats.max_lag_ns, now - due);
        }
    }
    if (appended || c->want_out)
        flush(t, c);
    return next;
}

static uint64_t open_pace(struct lg_thread *t, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < t->nconns; i++) {
        uint64_t due = open_send_due(t, &t->conns[i], now);
        if (due < next)
            next = due;
    }
    return next;
}

/* --- replies ---------------------------------------------------------------- */

static void record(struct lg_thread *t, struct lg_conn *c, size_t wire, uint64_t now)
{
    uint64_t raw = now - c->sent_ns[c->head];
    uint64_t latency = raw;
    bool measured = now >= t->plan->measure_ns;
    if (t->open_loop) {
        uint64_t due = schedule_time(&c->sched, c->seq);
        latency = now > due ? now - due : 0;
        measured = due >= t->plan->measure_ns;
        if (measured)
            hist_record(&t->stats.rtt_raw, raw);
    }
    if (measured) {
        hist_record(&t->stats.rtt, latency);
        counter_add(&t->stats.msgs, 1);
        counter_add(&t->stats.bytes, wire);
    }
    if (c->unreported != NULL)
        hist_record(c->unreported, raw);
    c->head = (c->head + 1) % t->cfg->depth;
    c->inflight--;
    c->seq++;
    c->wait_since_ns = now;
}

/* Length of an echoed RTT report frame at p, 0 if p is not one, or
 * (size_t)-1 if it is not complete yet. A byte-echo server sends our
 * reports back: they are skipped. */
static size_t echoed_report(const struct lg_thread *t, const uint8_t *p, size_t avail)
{
    if (t->cfg->text || avail < FRAME_HEADER_SIZE || p[0] != FRAME_RTT_REPORT)
        return 0;
    size_t n = FRAME_HEADER_SIZE + ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
    return avail >= n ? n : (size_t)-1;
}

/* Check and record every complete reply in c's input. */
/* The server refused something (busy, oversize, timeout...): say why, count
 * it as the server's error, not as a wrong reply, and drop the connection.
 * false while the frame is incomplete. */
static bool server_error(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t avail)
{
    struct frame f;
    ssize_t n = frame_parse(p, avail, FRAME_MAX_PAYLOAD_LIMIT, true, &f);
    if (n == FRAME_INCOMPLETE)
        return false;
    int code = n > 0 && f.len > 0 ? f.payload[0] : 0;
    int len = n > 0 && f.len > 1 ? (int)f.len - 1 : 0;
    fprintf(stderr, "tcpmsg: server error (%s): %.*s\n", frame_error_tag(code), len,
            len > 0 ? (const char *)f.payload + 1 : "");
    conn_drop(t, c, LG_ERR_SERVER);
    return true;
}

static void consume_replies(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    size_t pos = 0;
    while (pos < c->in_len) {
        size_t avail = c->in_len - pos;
        size_t skip = echoed_report(t, c->in + pos, avail);
        if (skip == (size_t)-1)
            break;
        if (skip > 0) {
            pos += skip;
            continue;
        }
        if (!t->cfg->text && c->in[pos] == FRAME_ERROR) {
            if (!server_error(t, c, c->in + pos, avail))
                break; /* the rest of the error frame is still to come */
            return;
        }
        int ok = c->inflight > 0 ? reply_check(t, c, c->seq, c->in + pos, avail) : -1;
        if (ok < 0) {
            conn_drop(t, c, LG_ERR_MISMATCH); /* a wrong reply, or bytes nobody asked for */
            return;
        }
        if (ok == 0)
            break;
        size_t wire = lg_wire_size(t->cfg, msg_size(t, c, c->seq));
        record(t, c, wire, now);
        pos += wire;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void on_event(struct lg_thread *t, struct lg_conn *c, uint32_t events, uint64_t now)
{
    if (c->fd < 0)
        return; /* dropped earlier in this batch */
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t r = net_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0 || (r < 0 && r != -EAGAIN)) {
            conn_drop(t, c, r == 0 ? LG_ERR_CLOSED : LG_ERR_RESET);
            return;
        }
        if (r > 0) {
            c->in_len += (size_t)r;
            consume_replies(t, c, now);
            if (c->fd < 0)
                return;
        }
    }
    if (!t->open_loop)
        closed_top_up(t, c, now);
    else if (events & EPOLLOUT)
        flush(t, c);
}

/* --- RTT reports to the server -------------------------------------------- */

/* Append the RTTs measured on c since its last report as an RTT_REPORT
 * frame (it leaves with the next write). Each connection reports its own
 * round trips: the server accepts no more samples on a connection than the
 * replies it wrote there. */
static void queue_report_on(struct lg_thread *t, struct lg_conn *c)
{
    if (c->fd < 0 || c->unreported == NULL || hist_count(c->unreported) == 0)
        return;
    if (!out_room(c, RTT_REPORT_MAX_FRAME))
        return; /* the previous report is still being written: next time */
    c->out_len += rtt_report_encode(c->unreported, c->out + c->out_len, c->out_cap - c->out_len);
    hist_reset(c->unreported);
    flush(t, c);
}

static void queue_report(struct lg_thread *t)
{
    for (unsigned i = 0; i < t->nconns; i++)
        queue_report_on(t, &t->conns[i]);
}

/* The last reports: write whatever is pending, then the report, waiting. */
static void final_report(struct lg_thread *t)
{
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        queue_report_on(t, c);
        if (c->fd < 0)
            continue;
        int rc = net_write_all(c->fd, c->out + c->out_off, c->out_len - c->out_off, CLOSE_WAIT_MS);
        c->out_off = c->out_len = 0;
        if (rc < 0)
            conn_drop(t, c, LG_ERR_RESET);
    }
}

/* Shut down the sending side of every connection and wait (briefly) for the
 * server to close its side: the server then sees a clean close instead of a
 * reset, and no report still in flight is thrown away. */
static void close_gracefully(struct lg_thread *t)
{
    unsigned open = 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        if (t->conns[i].fd >= 0) {
            shutdown(t->conns[i].fd, SHUT_WR);
            /* Only the server's EOF matters now: a shut-down socket would
             * report writable forever and spin this loop. */
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &t->conns[i] };
            epoll_ctl(t->epfd, EPOLL_CTL_MOD, t->conns[i].fd, &ev);
            open++;
        }
    }
    uint64_t deadline = net_now_ns() + CLOSE_WAIT_MS * 1000000ull;
    struct epoll_event events[EVENTS_PER_WAKEUP];
    while (open > 0 && net_now_ns() < deadline) {
        int n = epoll_wait(t->epfd, events, EVENTS_PER_WAKEUP, 50);
        for (int i = 0; i < n; i++) {
            struct lg_conn *c = events[i].data.ptr;
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

/* --- the loop ------------------------------------------------------------------ */

static void check_timeouts(struct lg_thread *t, uint64_t now)
{
    uint64_t limit = (uint64_t)(t->cfg->timeout * 1e9);
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->fd >= 0 && c->inflight > 0 && now - c->wait_since_ns > limit)
            conn_drop(t, c, LG_ERR_TIMEOUT);
    }
}

/* Still work to do: sending, or (open loop, counted runs) replies to wait
 * for. A timed closed-loop run stops at the deadline. */
static bool thread_busy(const struct lg_thread *t, uint64_t now)
{
    bool sending = now < t->plan->deadline_ns && t->quota > 0;
    bool drain = t->open_loop || t->cfg->count > 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        const struct lg_conn *c = &t->conns[i];
        if (c->fd >= 0 && (sending || (drain && c->inflight > 0)))
            return true;
    }
    return false;
}

/* Wait for events at most wait_ns, to the nanosecond where the kernel can:
 * an open-loop message must leave on time, not at the next millisecond. */
static int wait_events(struct lg_thread *t, struct epoll_event *events, uint64_t wait_ns)
{
    if (wait_ns == 0)
        return epoll_wait(t->epfd, events, EVENTS_PER_WAKEUP, 0);
    struct timespec ts = { .tv_sec = (time_t)(wait_ns / 1000000000u),
                           .tv_nsec = (long)(wait_ns % 1000000000u) };
    int n = epoll_pwait2(t->epfd, events, EVENTS_PER_WAKEUP, &ts, NULL);
    if (n < 0 && errno == ENOSYS)
        n = epoll_wait(t->epfd, events, EVENTS_PER_WAKEUP, (int)((wait_ns + 999999) / 1000000));
    return n;
}

/* Open loop: messages due before the end that never left (the schedule
 * could not be kept: a full window, a dead connection). */
static void count_unsent(struct lg_thread *t)
{
    if (t->cfg->count > 0)
        return;
    uint64_t unsent = 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        const struct lg_conn *c = &t->conns[i];
        uint64_t end = schedule_count_before(&c->sched, t->plan->deadline_ns);
        uint64_t from = schedule_count_before(&c->sched, t->plan->measure_ns);
        uint64_t next = c->seq + c->inflight;
        if (next > from)
            from = next;
        unsent += end > from ? end - from : 0;
    }
    counter_set(&t->stats.unsent, unsent);
}

/* Open loop: connections take turns, connection i of N starting i/N of a
 * period after the start, so the total rate is even, not bursty. */
static void init_schedules(struct lg_thread *t)
{
    double n = (double)t->cfg->connections;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        c->sched.period_ns = t->plan->conn_period_ns;
        c->sched.first_ns = t->plan->start_ns + (uint64_t)(c->sched.period_ns * c->id / n);
    }
    prctl(PR_SET_TIMERSLACK, 1000ul); /* 1 us, not 50: messages leave on time */
}

static void *thread_main(void *arg)
{
    struct lg_thread *t = arg;
    struct epoll_event events[EVENTS_PER_WAKEUP];
    if (t->open_loop)
        init_schedules(t);
    /* The open loop's timetable starts at the plan's start; a closed loop's
     * first messages leave now (threads start a little after the plan). */
    uint64_t now = t->open_loop ? t->plan->start_ns : net_now_ns();
    uint64_t next_due = UINT64_MAX;
    for (unsigned i = 0; i < t->nconns && !t->open_loop; i++)
        closed_top_up(t, &t->conns[i], now);
    uint64_t next_check = now + CHECK_EVERY_NS, next_report = now + REPORT_EVERY_NS;
    while (thread_busy(t, now)) {
        if (t->open_loop)
            next_due = open_pace(t, now);
        uint64_t wait = next_due > now ? next_due - now : 0;
        int n = wait_events(t, events, wait < MAX_WAIT_NS ? wait : MAX_WAIT_NS);
        now = net_now_ns();
        for (int i = 0; i < n; i++)
            on_event(t, events[i].data.ptr, events[i].events, now);
        if (now >= next_check) {
            check_timeouts(t, now);
            next_check = now + CHECK_EVERY_NS;
        }
        if (t->cfg->report && !t->cfg->text && now >= next_report) {
            queue_report(t);
            next_report = now + REPORT_EVERY_NS;
        }
    }
    if (t->open_loop)
        count_unsent(t);
    /* Measuring is over: the report and the close below are not timed. */
    atomic_store(&t->done_ns, net_now_ns());
    atomic_store(&t->finished, true);
    if (t->cfg->report && !t->cfg->text)
        final_report(t);
    close_gracefully(t);
    return NULL;
}

/* --- set-up and tear-down ----------------------------------------------------- */

struct lg_thread *lg_thread_new(const struct lg_plan *plan, unsigned first_conn, unsigned nconns,
                                uint64_t quota)
{
    struct lg_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->plan = plan;
    t->cfg = plan->cfg;
    t->open_loop = plan->cfg->rate > 0;
    t->first_conn = first_conn;
    t->nconns = nconns;
    t->quota = quota;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->conns = calloc(nconns, sizeof *t->conns);
    hist_init(&t->stats.rtt);
    hist_init(&t->stats.rtt_raw);
    for (unsigned k = 0; t->conns != NULL && k < nconns; k++) {
        t->conns[k].fd = -1;
        t->conns[k].id = first_conn + k;
    }
    if (t->epfd < 0 || t->conns == NULL) {
        lg_thread_free(t);
        return NULL;
    }
    return t;
}

/* Buffers for a whole window of the largest messages, and when reporting,
 * room for an RTT report and the histogram it is made from. */
static int conn_alloc(struct lg_thread *t, struct lg_conn *c, bool reports)
{
    const struct client_config *cfg = t->cfg;
    size_t wire = lg_wire_size(cfg, cfg->size);
    size_t window = (size_t)cfg->depth * wire;
    c->in_cap = window > 65536 ? window : 65536;
    if (c->in_cap < wire + 2 * RTT_REPORT_MAX_FRAME)
        c->in_cap = wire + 2 * RTT_REPORT_MAX_FRAME; /* room for echoed reports */
    c->out_cap = window + (reports ? RTT_REPORT_MAX_FRAME : 0);
    c->out = malloc(c->out_cap);
    c->in = malloc(c->in_cap);
    c->sent_ns = calloc(cfg->depth, sizeof *c->sent_ns);
    if (reports)
        c->unreported = hist_new();
    return c->out == NULL || c->in == NULL || c->sent_ns == NULL || (reports && c->unreported == NULL)
               ? -ENOMEM
               : 0;
}

int lg_thread_connect(struct lg_thread *t, unsigned k)
{
    struct lg_conn *c = &t->conns[k];
    if (conn_alloc(t, c, t->cfg->report && !t->cfg->text) < 0) {
        fprintf(stderr, "tcpmsg: out of memory for connection buffers\n");
        return -ENOMEM;
    }
    char addr[NET_ADDRSTRLEN];
    int fd = client_connect(t->cfg, addr);
    if (fd < 0) {
        counter_add(&t->stats.errors[LG_ERR_CONNECT], 1);
        return fd;
    }
    net_set_nonblock(fd, true);
    c->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        conn_drop(t, c, LG_ERR_CONNECT);
        return -e;
    }
    return 0;
}

int lg_thread_start(struct lg_thread *t)
{
    return -pthread_create(&t->thread, NULL, thread_main, t);
}

void lg_thread_join(struct lg_thread *t)
{
    pthread_join(t->thread, NULL);
}

uint64_t lg_thread_done_ns(const struct lg_thread *t)
{
    return atomic_load(&t->done_ns);
}

bool lg_thread_finished(const struct lg_thread *t)
{
    return atomic_load(&t->finished);
}

const struct lg_stats *lg_thread_stats(const struct lg_thread *t)
{
    return &t->stats;
}

void lg_thread_free(struct lg_thread *t)
{
    if (t == NULL)
        return;
    for (unsigned k = 0; t->conns != NULL && k < t->nconns; k++) {
        struct lg_conn *c = &t->conns[k];
        if (c->fd >= 0)
            close(c->fd);
        free(c->out);
        free(c->in);
        free(c->sent_ns);
        hist_free(c->unreported);
    }
    free(t->conns);
    if (t->epfd >= 0)
        close(t->epfd);
    free(t);
}
