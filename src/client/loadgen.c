/* loadgen: the per-thread event loop of tcpmsg bench (see loadgen.h), on
 * either backend of tcpmsg/loop.h. The hot path (pace, append, flush,
 * consume, record) allocates nothing and takes no lock: each thread owns its
 * loop, connections, counters and histograms.
 */
#include "client/loadgen.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "client/schedule.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/loop.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"
#include "tcpmsg/tstamp.h"

#define REPORT_EVERY_NS 1000000000ull /* RTT reports to the server: once a second */
#define CHECK_EVERY_NS 100000000ull   /* timeouts are checked this often */
#define MAX_WAIT_NS 50000000ull       /* the loop wakes at least this often */
#define CLOSE_WAIT_NS 1000000000ull   /* at the end, wait this long for the server's EOF */

/* What the thread is doing: each phase reacts to replies and writes its way. */
enum lg_phase {
    LG_MEASURING, /* sending and checking replies */
    LG_FLUSHING,  /* writing the last RTT reports; replies are discarded */
    LG_CLOSING,   /* our side is shut down: waiting for the server's EOF */
};

struct lg_conn {
    struct loop_stream s;  /* first: the loop's callbacks get &c->s; s.data is the thread */
    int fd;                /* the socket (the loop's once the stream started) */
    bool open;             /* false once dropped or closed */
    bool writing;          /* a write waits for on_write: [out_off, out_len) must not move */
    unsigned id;           /* run-wide connection number: seeds its message sizes */
    uint8_t *out;          /* messages not yet written: [out_off, out_len) */
    size_t out_off, out_len, out_cap;
    /* --stages (see stages.h): byte numbers count every byte written since
     * stamping was turned on, as the kernel's OPT_ID does */
    uint32_t sent_bytes;   /* byte number of out[out_off] */
    bool stamp_due;        /* a sampled message's last byte is not written yet */
    uint32_t stamp_key;    /* the last such byte */
    struct cstage_track samples; /* sampled messages awaiting their reply */
    uint8_t *in;           /* the partial reply left by the last delivery */
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
    bool started;            /* the thread was started: only it may run the loop */
    struct lg_conn *conns;
    unsigned nconns, first_conn;
    struct loop *loop;
    struct loop_timer tick;  /* wakes the loop for the next due message, or a check */
    enum lg_phase phase;
    unsigned live;           /* streams started whose on_close has not come */
    uint64_t next_check, next_report;
    uint64_t quota;        /* messages this thread may still send */
    unsigned stage_every;  /* --stages: split one round trip in this many; 0: off */
    uint8_t *msg;          /* fixed --size: a whole message as sent, but its stamp; NULL: sizes vary */
    size_t wire;           /* bytes of the largest message on the wire (all of them, fixed) */
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

/* The first bytes of message k (of n payload bytes): who and which, so a
 * reply from the wrong place or order cannot match. Text mode spells it in
 * hex digits. Writes min(n, 8 or 16) bytes at out and returns how many. */
static size_t make_stamp(uint8_t *out, const struct lg_conn *c, uint64_t k, size_t n, bool text)
{
    uint64_t v = k ^ ((uint64_t)c->id << 40);
    if (!text && n >= 8) {
        memcpy(out, &v, 8); /* a constant size: one store, not a byte loop */
        return 8;
    }
    if (!text) {
        memcpy(out, &v, n);
        return n;
    }
    size_t len = n < 16 ? n : 16;
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)"0123456789abcdef"[(v >> (4 * i)) & 15];
    return len;
}

/* Message k at p (header, payload from the template with the stamp in
 * front, text: newline). Returns its bytes on the wire. With a fixed size
 * it is one copy of the whole message, then the stamp. */
static size_t write_message(const struct lg_thread *t, const struct lg_conn *c, uint64_t k,
                            uint8_t *p)
{
    bool text = t->cfg->text;
    size_t n = msg_size(t, c, k);
    uint8_t *payload = text ? p : p + FRAME_HEADER_SIZE;
    if (t->msg != NULL) {
        memcpy(p, t->msg, t->wire);
    } else {
        if (!text)
            frame_header_encode(p, FRAME_DATA, n);
        memcpy(payload, t->plan->tmpl, n);
        if (text)
            payload[n] = '\n';
    }
    make_stamp(payload, c, k, n, text);
    return lg_wire_size(t->cfg, n);
}

/* Is p (avail bytes) the reply to message k? Its bytes on the wire if so,
 * 0 while more bytes are needed, -1 if not. Every byte is compared: the
 * header, the stamp, the rest of the payload (and the newline). */
static ssize_t reply_check(const struct lg_thread *t, const struct lg_conn *c, uint64_t k,
                       const uint8_t *p, size_t avail)
{
    bool text = t->cfg->text;
    size_t n = msg_size(t, c, k);
    if (!text && avail >= FRAME_HEADER_SIZE) {
        uint8_t head[FRAME_HEADER_SIZE];
        const uint8_t *want = t->msg;
        if (want == NULL) {
            frame_header_encode(head, FRAME_DATA, n);
            want = head;
        }
        if (memcmp(p, want, FRAME_HEADER_SIZE) != 0)
            return -1; /* e.g. an error frame: do not wait for more */
    }
    size_t wire = lg_wire_size(t->cfg, n);
    if (avail < wire)
        return 0;
    const uint8_t *payload = text ? p : p + FRAME_HEADER_SIZE;
    uint8_t stamp[16];
    size_t s = make_stamp(stamp, c, k, n, text);
    bool stamped = s == 8 ? memcmp(payload, stamp, 8) == 0 : memcmp(payload, stamp, s) == 0;
    if (!stamped || memcmp(payload + s, t->plan->tmpl + s, n - s) != 0)
        return -1;
    return !text || payload[n] == '\n' ? (ssize_t)wire : -1;
}

/* --- connections ---------------------------------------------------------- */

/* Close c without counting anything (the run is over, or it ended well). */
static void conn_close(struct lg_thread *t, struct lg_conn *c)
{
    if (!c->open)
        return;
    c->open = false;
    loop_stream_close(t->loop, &c->s); /* the loop closes the socket */
}

static void conn_drop(struct lg_thread *t, struct lg_conn *c, enum lg_error e)
{
    if (c->open)
        counter_add(&t->stats.errors[e], 1);
    conn_close(t, c);
}

/* n more bytes were written. */
static void wrote(struct lg_conn *c, size_t n)
{
    if (c->stamp_due && n > 0 &&
        tstamp_byte_at_or_before(c->stamp_key, c->sent_bytes + (uint32_t)n - 1))
        c->stamp_due = false;
    c->sent_bytes += (uint32_t)n;
    c->out_off += n;
}

/* Hand what is unwritten to the loop, unless a write is outstanding: one at
 * a time. epoll writes now and may take part; io_uring takes the bytes in
 * the kernel and on_write says how many went. */
static void flush(struct lg_thread *t, struct lg_conn *c)
{
    if (!c->open || c->writing)
        return;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        return;
    }
    struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
    ssize_t w;
    if (c->stamp_due) {
        /* The write that hands over a sampled message's last byte asks for
         * its stamps (that of its own last byte covers the message). */
        cstage_track_handed(&c->samples, tstamp_now_ns());
        w = loop_stream_write_stamped(t->loop, &c->s, &iov, 1);
    } else {
        w = loop_stream_write(t->loop, &c->s, &iov, 1);
    }
    if (w == -EINPROGRESS) {
        c->writing = true;
        return;
    }
    if (w < 0) {
        conn_drop(t, c, LG_ERR_RESET);
        return;
    }
    wrote(c, (size_t)w);
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    else
        c->writing = true; /* on_write(0) comes when the socket has room */
}

/* Room for need more bytes of output, moving what is unwritten to the
 * front (not while a write is outstanding: io_uring may be reading it). */
static bool out_room(struct lg_conn *c, size_t need)
{
    if (c->out_cap - c->out_len >= need)
        return true;
    if (c->writing)
        return false;
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    return c->out_cap - c->out_len >= need;
}

/* Message k, whose last byte is byte number key, is sampled: its write
 * will ask for its stamps. */
static void sample(struct lg_thread *t, struct lg_conn *c, uint64_t k, uint32_t key)
{
    if (!cstage_track_sent(&c->samples, k, key, 0)) {
        counter_add(&t->stats.stages.skipped, 1);
        return;
    }
    c->stamp_due = true;
    c->stamp_key = key;
}

/* Queue message seq + inflight, sent now. */
static void append_next(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    uint64_t k = c->seq + c->inflight;
    size_t wire = write_message(t, c, k, c->out + c->out_len);
    if (cstage_sampled(k, t->stage_every))
        sample(t, c, k, c->sent_bytes + (uint32_t)(c->out_len + wire - 1 - c->out_off));
    c->out_len += wire;
    if (c->inflight == 0)
        c->wait_since_ns = now;
    unsigned slot = c->head + c->inflight; /* the ring's slot, without a division */
    c->sent_ns[slot < t->cfg->depth ? slot : slot - t->cfg->depth] = now;
    c->inflight++;
    t->quota--;
}

static bool can_send(const struct lg_thread *t, struct lg_conn *c)
{
    return c->open && c->inflight < t->cfg->depth && t->quota > 0 && out_room(c, t->wire);
}

/* Closed loop: fill the pipeline up to --depth, then write. */
static void closed_top_up(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    uint64_t sent = 0;
    while (now < t->plan->deadline_ns && can_send(t, c)) {
        append_next(t, c, now);
        sent++;
    }
    if (now >= t->plan->measure_ns)
        counter_add(&t->stats.sent, sent);
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
    if (appended)
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

/* A sampled reply to message c->seq was read: its split. rx_ns is the
 * delivery's receive stamp, that of the last segment it read from. A reply
 * that ended in an earlier segment of the same delivery arrived a little
 * before it: for that reply the split counts the difference as network time,
 * not receive-queue time (docs/STAGES.md). Replies written together by the
 * server usually travel in one segment, and then there is no difference. */
static void record_stages(struct lg_thread *t, struct lg_conn *c, uint64_t rx_ns, bool measured)
{
    struct cstage_times tm = { .rx_ns = rx_ns };
    if (!cstage_track_take(&c->samples, c->seq, &tm.handed_ns, &tm.snd_ns) || !measured)
        return;
    tm.read_ns = tstamp_now_ns();
    cstage_hists_record(&t->stats.stages, &tm);
}

/* The reply to the oldest message in flight arrived now: its latency. true
 * when it counts in the results (inside the measured window); the caller
 * counts it, once for all the replies of a delivery. rx_ns: the delivery's
 * receive stamp, for record_stages. */
static bool record(struct lg_thread *t, struct lg_conn *c, uint64_t now, uint64_t rx_ns)
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
    if (measured)
        hist_record(&t->stats.rtt, latency);
    if (c->samples.npending > 0)
        record_stages(t, c, rx_ns, measured);
    if (c->unreported != NULL)
        hist_record(c->unreported, raw);
    if (++c->head == t->cfg->depth)
        c->head = 0;
    c->inflight--;
    c->seq++;
    c->wait_since_ns = now;
    return measured;
}

/* Length of an echoed RTT report frame at p, 0 if p is not one, or
 * (size_t)-1 if it is not complete yet. A byte-echo server sends our
 * reports back: they are skipped. */
static size_t echoed_report(const struct lg_thread *t, const uint8_t *p, size_t avail)
{
    if (t->cfg->text || avail < FRAME_HEADER_SIZE || p[0] != FRAME_RTT_REPORT)
        return 0;
    size_t n = FRAME_HEADER_SIZE + frame_header_len(p);
    return avail >= n ? n : (size_t)-1;
}

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

/* Check and record every complete reply in in[0, len). Returns the bytes
 * used; the rest is the start of a reply still to come. */
static size_t consume_replies(struct lg_thread *t, struct lg_conn *c, const uint8_t *in,
                              size_t len, uint64_t now)
{
    size_t pos = 0;
    uint64_t msgs = 0, bytes = 0; /* measured replies, counted once at the end */
    while (pos < len && c->open) {
        size_t avail = len - pos;
        size_t skip = echoed_report(t, in + pos, avail);
        if (skip == (size_t)-1)
            break;
        if (skip > 0) {
            pos += skip;
            continue;
        }
        if (!t->cfg->text && in[pos] == FRAME_ERROR) {
            server_error(t, c, in + pos, avail); /* drops c, or waits for the whole frame */
            break;
        }
        ssize_t wire = c->inflight > 0 ? reply_check(t, c, c->seq, in + pos, avail) : -1;
        if (wire < 0) {
            conn_drop(t, c, LG_ERR_MISMATCH); /* a wrong reply, or bytes nobody asked for */
            break;
        }
        if (wire == 0)
            break;
        if (record(t, c, now, loop_stream_rx_ns(&c->s))) {
            msgs++;
            bytes += (uint64_t)wire;
        }
        pos += (size_t)wire;
    }
    counter_add(&t->stats.msgs, msgs);
    counter_add(&t->stats.bytes, bytes);
    return pos;
}

/* New input at data (n bytes, with LOOP_HEADROOM writable bytes in front).
 * A small partial reply kept from before is copied in front of it, so the
 * common case parses in the loop's buffer without a copy of the new bytes;
 * a large one gets the new bytes appended instead. Returns false when the
 * input cannot be held: the partial reply plus one delivery always fit
 * (conn_alloc), so the server sent what nobody asked for. */
static bool take_input(struct lg_thread *t, struct lg_conn *c, uint8_t *data, size_t n,
                       uint64_t now)
{
    uint8_t *p = data;
    size_t len = n;
    if (c->in_len > 0 && c->in_len <= LOOP_HEADROOM) {
        p = data - c->in_len;
        memcpy(p, c->in, c->in_len);
        len += c->in_len;
    } else if (c->in_len > 0) {
        if (c->in_cap - c->in_len < n)
            return false;
        memcpy(c->in + c->in_len, data, n);
        p = c->in;
        len = c->in_len + n;
    }
    size_t used = consume_replies(t, c, p, len, now);
    if (!c->open)
        return true;
    if (len - used > c->in_cap)
        return false;
    memmove(c->in, p + used, len - used);
    c->in_len = len - used;
    return true;
}

static void on_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now)
{
    struct lg_conn *c = (struct lg_conn *)s;
    struct lg_thread *t = s->data;
    if (t->phase != LG_MEASURING) {
        /* Late replies are discarded; the server's EOF ends the connection. */
        if (n <= 0)
            conn_close(t, c);
        return;
    }
    if (n <= 0) {
        conn_drop(t, c, n == 0 ? LG_ERR_CLOSED : LG_ERR_RESET);
        return;
    }
    if (!take_input(t, c, data, (size_t)n, now)) {
        conn_drop(t, c, LG_ERR_MISMATCH);
        return;
    }
    if (c->open && !t->open_loop)
        closed_top_up(t, c, now);
}

static void on_write(struct loop_stream *s, ssize_t n, uint64_t now)
{
    struct lg_conn *c = (struct lg_conn *)s;
    struct lg_thread *t = s->data;
    c->writing = false;
    if (t->phase == LG_CLOSING)
        return; /* nothing more is written, and nothing counts */
    if (n < 0) {
        conn_drop(t, c, LG_ERR_RESET);
        return;
    }
    wrote(c, (size_t)n);
    if (t->phase == LG_MEASURING && !t->open_loop)
        closed_top_up(t, c, now); /* room again for the window */
    else
        flush(t, c);
}

/* A transmit stamp of c's socket, read by the loop from its error queue. */
static void on_errqueue(struct loop_stream *s, const struct tstamp_report *r, uint64_t now)
{
    (void)now;
    cstage_track_report(&((struct lg_conn *)s)->samples, r);
}

static void on_close(struct loop_stream *s)
{
    struct lg_thread *t = s->data;
    t->live--;
}

/* --- RTT reports to the server -------------------------------------------- */

/* Append the RTTs measured on c since its last report as an RTT_REPORT
 * frame (it leaves with the next write). Each connection reports its own
 * round trips: the server accepts no more samples on a connection than the
 * replies it wrote there. */
static void queue_report_on(struct lg_thread *t, struct lg_conn *c)
{
    if (!c->open || c->unreported == NULL || hist_count(c->unreported) == 0)
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

/* Run the loop until done(t) or for at most CLOSE_WAIT_NS. 0 when done,
 * -ETIMEDOUT, or the loop's -errno (said on stderr). */
static int run_until(struct lg_thread *t, bool (*done)(const struct lg_thread *t))
{
    uint64_t deadline = net_now_ns() + CLOSE_WAIT_NS;
    while (!done(t)) {
        if (net_now_ns() >= deadline)
            return -ETIMEDOUT;
        int rc = loop_run_once(t->loop, 50);
        if (rc < 0) {
            fprintf(stderr, "tcpmsg: event loop failed: %s\n", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static bool all_written(const struct lg_thread *t)
{
    for (unsigned i = 0; i < t->nconns; i++) {
        const struct lg_conn *c = &t->conns[i];
        if (c->open && (c->writing || c->out_off < c->out_len))
            return false;
    }
    return true;
}

/* The last reports: write whatever is pending, then the report, waiting.
 * A connection that cannot take them in time is counted as failed. */
static void final_report(struct lg_thread *t)
{
    t->phase = LG_FLUSHING;
    for (unsigned i = 0; i < t->nconns; i++)
        queue_report_on(t, &t->conns[i]);
    (void)run_until(t, all_written); /* what is left is counted below */
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->open && (c->writing || c->out_off < c->out_len))
            conn_drop(t, c, LG_ERR_RESET);
    }
}

static bool all_closed(const struct lg_thread *t)
{
    return t->live == 0;
}

/* Shut down the sending side of every connection with nothing left to
 * write and wait (briefly) for the server to close its side: the server then
 * sees a clean close instead of a reset, and no report still in flight is
 * thrown away. A connection with a write outstanding is closed at once: shut
 * down under that write, the rest of it would fail (epoll: EPIPE once the
 * socket has room). Whatever is still open after the wait is closed, and the
 * loop runs until it let go of all. This runs on the loop's thread, the only
 * one that may run it (loop.h): a stream the loop still holds after that
 * (the wait ran out, or the loop failed) is ended by loop_free. */
static void close_gracefully(struct lg_thread *t)
{
    t->phase = LG_CLOSING;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->open && (c->writing || c->out_off < c->out_len))
            conn_close(t, c);
        else if (c->open)
            shutdown(c->fd, SHUT_WR);
    }
    if (run_until(t, all_closed) != -ETIMEDOUT)
        return; /* all closed, or the loop failed: loop_free ends the rest */
    for (unsigned i = 0; i < t->nconns; i++)
        conn_close(t, &t->conns[i]);
    (void)run_until(t, all_closed);
}

/* --- the loop ------------------------------------------------------------------ */

static void check_timeouts(struct lg_thread *t, uint64_t now)
{
    uint64_t limit = (uint64_t)(t->cfg->timeout * 1e9);
    for (unsigned i = 0; i < t->nconns; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->open && c->inflight > 0 && now - c->wait_since_ns > limit)
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
        if (c->open && (sending || (drain && c->inflight > 0)))
            return true;
    }
    return false;
}

/* The tick only wakes the loop: the work is done in the hook below. */
static void on_tick(struct loop_timer *tick, uint64_t now)
{
    (void)tick;
    (void)now;
}

/* After each wakeup's replies: send what is due (open loop), check
 * timeouts, queue reports, and sleep until the next due message, at most
 * MAX_WAIT_NS: an open-loop message must leave on time, to the nanosecond
 * where the kernel can. */
static void on_wakeup(void *ctx, uint64_t now)
{
    struct lg_thread *t = ctx;
    if (t->phase != LG_MEASURING)
        return;
    uint64_t next_due = t->open_loop ? open_pace(t, now) : UINT64_MAX;
    if (now >= t->next_check) {
        check_timeouts(t, now);
        t->next_check = now + CHECK_EVERY_NS;
    }
    if (t->cfg->report && !t->cfg->text && now >= t->next_report) {
        queue_report(t);
        t->next_report = now + REPORT_EVERY_NS;
    }
    if (!thread_busy(t, now)) {
        loop_stop(t->loop);
        return;
    }
    uint64_t wake = now + MAX_WAIT_NS;
    loop_timer_start(t->loop, &t->tick, next_due < wake ? next_due : wake);
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
    if (t->open_loop)
        init_schedules(t);
    /* The open loop's timetable starts at the plan's start; a closed loop's
     * first messages leave now (threads start a little after the plan). */
    uint64_t now = t->open_loop ? t->plan->start_ns : net_now_ns();
    for (unsigned i = 0; i < t->nconns && !t->open_loop; i++)
        closed_top_up(t, &t->conns[i], now);
    t->next_check = now + CHECK_EVERY_NS;
    t->next_report = now + REPORT_EVERY_NS;
    loop_set_hook(t->loop, on_wakeup, t);
    on_wakeup(t, now);
    int rc = loop_run(t->loop);
    if (rc < 0)
        fprintf(stderr, "tcpmsg: event loop failed: %s\n", strerror(-rc));
    loop_timer_stop(t->loop, &t->tick);
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

int lg_thread_new(struct lg_thread **out, const struct lg_plan *plan, unsigned first_conn,
                  unsigned nconns, uint64_t quota, const char **why)
{
    struct lg_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->plan = plan;
    t->cfg = plan->cfg;
    t->open_loop = plan->cfg->rate > 0;
    t->first_conn = first_conn;
    t->nconns = nconns;
    t->quota = quota;
    t->tick.cb = on_tick;
    t->wire = lg_wire_size(plan->cfg, plan->cfg->size);
    if (plan->cfg->size_min == plan->cfg->size) {
        t->msg = malloc(t->wire);
        if (t->msg == NULL) {
            free(t);
            return -ENOMEM;
        }
        uint8_t *payload = plan->cfg->text ? t->msg : t->msg + FRAME_HEADER_SIZE;
        if (!plan->cfg->text)
            frame_header_encode(t->msg, FRAME_DATA, plan->cfg->size);
        memcpy(payload, plan->tmpl, plan->cfg->size);
        if (plan->cfg->text)
            payload[plan->cfg->size] = '\n';
    }
    hist_init(&t->stats.rtt);
    hist_init(&t->stats.rtt_raw);
    cstage_hists_init(&t->stats.stages);
    t->stage_every = plan->cfg->stages ? plan->cfg->stage_sample : 0;
    struct loop_options opt = { .backend = plan->cfg->io, .sqpoll = plan->cfg->sqpoll };
    int rc = loop_new(&t->loop, &opt, why);
    if (rc < 0)
        goto failed_loop;
    t->conns = calloc(nconns, sizeof *t->conns);
    if (t->conns == NULL) {
        rc = -ENOMEM;
        goto failed_conns;
    }
    for (unsigned k = 0; k < nconns; k++) {
        t->conns[k].fd = -1;
        t->conns[k].id = first_conn + k;
    }
    *out = t;
    return 0;

failed_conns:
    loop_free(t->loop);
failed_loop:
    free(t->msg);
    free(t);
    return rc;
}

const char *lg_thread_io(const struct lg_thread *t)
{
    return loop_backend_name(t->loop);
}

/* Buffers for a whole window of the largest messages, and when reporting,
 * room for an RTT report and the histogram it is made from. Input holds
 * what one delivery brings after the partial reply left by the last: that
 * is shorter than a message or an echoed report. */
static int conn_alloc(struct lg_thread *t, struct lg_conn *c, bool reports)
{
    const struct client_config *cfg = t->cfg;
    size_t wire = lg_wire_size(cfg, cfg->size);
    size_t window = (size_t)cfg->depth * wire;
    c->in_cap = (wire > RTT_REPORT_MAX_FRAME ? wire : RTT_REPORT_MAX_FRAME) + LOOP_READ_SIZE;
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
    c->s.on_read = on_read;
    c->s.on_write = on_write;
    c->s.on_close = on_close;
    c->s.on_errqueue = on_errqueue;
    c->s.data = t;
    int e = loop_stream_start(t->loop, &c->s, fd);
    if (e < 0) {
        close(fd);
        counter_add(&t->stats.errors[LG_ERR_CONNECT], 1);
        return e;
    }
    c->open = true;
    t->live++;
    /* Before the first byte is written: byte numbers count from it. */
    e = t->stage_every > 0 ? loop_stream_stamp(t->loop, &c->s, true) : 0;
    if (e < 0) {
        fprintf(stderr, "tcpmsg: --stages: %s\n",
                e == -ENOSYS ? "this event loop cannot read timestamps: use --io epoll"
                             : strerror(-e));
        conn_drop(t, c, LG_ERR_CONNECT);
        return e;
    }
    /* Whole buffers: io_uring then keeps one multishot recv armed. */
    e = loop_stream_read(t->loop, &c->s, LOOP_READ_SIZE);
    if (e < 0) {
        conn_drop(t, c, LG_ERR_CONNECT);
        return e;
    }
    return 0;
}

int lg_thread_start(struct lg_thread *t)
{
    int rc = pthread_create(&t->thread, NULL, thread_main, t);
    t->started = rc == 0;
    return -rc;
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

uint64_t lg_thread_syscalls(const struct lg_thread *t, enum loop_syscall k)
{
    return loop_syscalls(t->loop, k);
}

void lg_thread_free(struct lg_thread *t)
{
    if (t == NULL)
        return;
    /* Connections of a thread that never ran (a later connect failed) are
     * closed here: no other thread has run the loop. A thread that ran
     * closed its own; the loop may run on no other thread now. */
    if (!t->started) {
        for (unsigned k = 0; t->conns != NULL && k < t->nconns; k++)
            conn_close(t, &t->conns[k]);
        (void)run_until(t, all_closed);
    }
    /* The loop first: a write still in the kernel may point into c->out
     * until the ring is gone. loop_free closes what the loop still holds. */
    loop_free(t->loop);
    for (unsigned k = 0; t->conns != NULL && k < t->nconns; k++) {
        struct lg_conn *c = &t->conns[k];
        free(c->out);
        free(c->in);
        free(c->sent_ns);
        hist_free(c->unreported);
    }
    free(t->conns);
    free(t->msg);
    free(t);
}
