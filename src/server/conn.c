/* conn: a connection's life in the epoll server: read what the kernel has,
 * parse complete messages in place, queue their replies, write them in one
 * call per wakeup, and close with a reason that is counted and logged.
 * No allocation per message: buffers grow only when a message needs room.
 */
#include "server/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server.h"
#include "server/worker.h"
#include "tcpmsg/log.h"
#include "tcpmsg/rttreport.h"

#define CONN_BUF_INITIAL (64u * 1024) /* as much as a read can bring at once;
                                        pages are only touched as data arrives */
#define LINGER_NS (2000000000ull)  /* discard input this long after an error reply */
#define NS_PER_SEC 1e9

static const struct server_config *cfg_of(const struct conn *c)
{
    return c->w->srv->cfg;
}

static struct server_stats *stats_of(struct conn *c)
{
    return &c->w->stats;
}

static enum stats_mode stats_mode(const struct conn *c)
{
    return c->mode == FRAME_MODE_TEXT ? STATS_TEXT : STATS_FRAMED;
}

static uint64_t sec_to_ns(double s)
{
    return (uint64_t)(s * NS_PER_SEC);
}

const char *conn_state_name(enum conn_state s)
{
    static const char *const names[] = { "reading", "blocked", "flushing", "linger", "closed" };
    return (size_t)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

/* Copy what other threads may look at; once per event, not per message. */
static void publish(struct conn *c)
{
    counter_set(&c->pub.active_ns, c->active_ns);
    counter_set(&c->pub.pending, c->out_len - c->out_off);
    counter_set(&c->pub.mode, c->mode);
    counter_set(&c->pub.state, c->state);
}

struct conn *conn_open(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       uint64_t id, uint64_t now)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        goto failed_conn;
    c->in = malloc(CONN_BUF_INITIAL);
    if (c->in == NULL)
        goto failed_in;
    c->in_cap = CONN_BUF_INITIAL;
    c->fd = fd;
    c->w = w;
    c->id = id;
    c->state = CONN_READING;
    c->opened_ns = c->active_ns = now;
    memcpy(&c->peer, peer, len);
    net_format_addr(peer, c->peer_str, sizeof c->peer_str);
    publish(c);
    if (worker_watch(w, c, EPOLLIN) < 0)
        goto failed_watch;
    return c;

failed_watch:
    free(c->in);
failed_in:
    free(c);
failed_conn:
    close(fd);
    return NULL;
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    free(c->in);
    free(c->out);
    free(c);
}

void conn_close(struct conn *c, enum close_reason reason, uint64_t now)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    c->reason = reason;
    worker_forget(c->w, c); /* deregisters from epoll and parks c for freeing */
    close(c->fd);
    c->fd = -1;
    /* Count the close before the open gauge drops, so that a scrape never
     * sees a connection in neither. */
    counter_add(&stats_of(c)->closed[reason], 1);
    closed_ring_push(&c->w->srv->closed, c, c->w->index, reason, now);
    server_release(c->w->srv, (const struct sockaddr *)&c->peer);
    LOG(LOG_INFO, "connection closed", LF_U("conn", c->id), LF_S("peer", c->peer_str),
        LF_S("reason", close_reason_tag(reason)), LF_S("mode", frame_mode_name(c->mode)),
        LF_U("msgs_in", counter_get(&c->pub.msgs_in)), LF_U("msgs_out", counter_get(&c->pub.msgs_out)),
        LF_U("bytes_in", counter_get(&c->pub.bytes_in)), LF_U("bytes_out", counter_get(&c->pub.bytes_out)),
        LF_D("age_s", (double)(now - c->opened_ns) / NS_PER_SEC));
}

/* Grow a buffer to hold at least need bytes, doubling, never past limit.
 * Returns 0 or -ENOMEM. */
static int buf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap != 0 ? *cap : CONN_BUF_INITIAL;
    while (n < need)
        n *= 2;
    if (n > limit && need <= limit)
        n = limit;
    uint8_t *p = realloc(*buf, n);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

/* Re-register epoll interest to match the state: read only while READING or
 * LINGER, write only while output is pending. */
static void update_events(struct conn *c)
{
    publish(c);
    uint32_t ev = 0;
    if (c->state == CONN_READING || c->state == CONN_LINGER)
        ev |= EPOLLIN;
    if (c->out_len > c->out_off)
        ev |= EPOLLOUT;
    if (ev != c->events && worker_watch(c->w, c, ev) < 0)
        conn_close(c, CLOSE_IO_ERROR, net_now_ns());
}

/* The most the input buffer may hold: one maximal message, or the initial
 * size, whichever is larger. */
static size_t in_limit(const struct conn *c)
{
    size_t max_msg = cfg_of(c)->max_payload + FRAME_HEADER_SIZE + 2;
    return max_msg > CONN_BUF_INITIAL ? max_msg : CONN_BUF_INITIAL;
}

/* Queue bytes for the client. false when no memory. Pending output stays
 * under --max-pending-output plus one input buffer's worth of replies. */
static bool queue_reply(struct conn *c, const void *a, size_t an, const void *b, size_t bn)
{
    size_t limit = cfg_of(c)->max_pending_output + in_limit(c) + 256;
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (buf_reserve(&c->out, &c->out_cap, c->out_len + an + bn, limit) < 0)
        return false;
    memcpy(c->out + c->out_len, a, an);
    if (bn > 0) /* b may be NULL then, and memcpy's arguments may not */
        memcpy(c->out + c->out_len + an, b, bn);
    c->out_len += an + bn;
    return true;
}

static void log_message(const struct conn *c, const struct frame *f)
{
    char body[1024];
    char msg[1200];
    log_escape_bytes(body, sizeof body, f->payload, f->len);
    snprintf(msg, sizeof msg, "message from %s: %s", c->peer_str, body);
    LOG(LOG_DEBUG, msg, LF_U("conn", c->id), LF_S("mode", frame_mode_name(c->mode)),
        LF_U("bytes", f->len));
}

/* One complete message: queue its echo. */
static bool handle_message(struct conn *c, const struct frame *f, uint64_t now)
{
    struct server_stats *st = stats_of(c);
    counter_add(&st->msgs_in[stats_mode(c)], 1);
    hist_record(&st->msg_bytes, f->len);
    counter_add(&c->pub.msgs_in, 1);
    if (log_enabled(LOG_DEBUG))
        log_message(c, f);
    /* A data frame's echo is the frame itself, byte for byte: process_input
     * sends the whole run of consumed frames at once. A text reply differs
     * from its line (CR dropped, LF added), so it is queued here. */
    if (c->mode == FRAME_MODE_TEXT && !queue_reply(c, f->payload, f->len, "\n", 1))
        return false;
    if (c->unsent_msgs++ == 0)
        c->unsent_since_ns = now;
    return true;
}

/* Queue the error reply for a rejected message and stop reading. */
static void reject_input(struct conn *c, ssize_t status, uint64_t now)
{
    int code = status == FRAME_TOO_LARGE ? FRAME_ERR_OVERSIZE : FRAME_ERR_BAD_TYPE;
    char reason[160];
    if (status == FRAME_TOO_LARGE && c->mode == FRAME_MODE_FRAMED) {
        size_t len = (size_t)c->in[1] << 16 | (size_t)c->in[2] << 8 | c->in[3];
        snprintf(reason, sizeof reason, "payload length %zu exceeds the limit of %zu bytes", len,
                 cfg_of(c)->max_payload);
    } else if (status == FRAME_TOO_LARGE) {
        snprintf(reason, sizeof reason, "line longer than the limit of %zu bytes",
                 cfg_of(c)->max_payload);
    } else {
        snprintf(reason, sizeof reason, "unknown frame type 0x%02x", c->in[0]);
    }
    counter_add(&stats_of(c)->errors[ERR_PROTOCOL], 1);
    LOG_RATELIMITED(LOG_WARN, "bad message", LF_U("conn", c->id), LF_S("peer", c->peer_str),
        LF_S("error", frame_error_tag(code)), LF_S("detail", reason));

    uint8_t frame[200];
    size_t n;
    if (c->mode == FRAME_MODE_TEXT)
        n = (size_t)snprintf((char *)frame, sizeof frame, "ERR %s: %s\n", frame_error_tag(code), reason);
    else
        n = frame_error_encode(frame, sizeof frame, code, reason);
    c->reason = status == FRAME_TOO_LARGE ? CLOSE_OVERSIZE : CLOSE_PROTOCOL;
    c->state = CONN_FLUSHING;
    c->in_len = 0;
    if (!queue_reply(c, frame, n, NULL, 0))
        conn_close(c, CLOSE_NO_MEMORY, now);
}

static void account_written(struct conn *c, size_t n, uint64_t now)
{
    counter_add(&c->pub.bytes_out, n);
    counter_add(&stats_of(c)->bytes_out[stats_mode(c)], n);
    c->active_ns = now;
    c->write_wait_ns = 0;
}

/* Echo n bytes of complete frames. With nothing else pending they go
 * straight from the input buffer to the kernel, copied only if the kernel
 * does not take them all. false when the connection was closed. */
static bool echo_frames(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    if (c->out_off == c->out_len) {
        ssize_t w = net_write(c->fd, p, n);
        if (w == -EPIPE || w == -ECONNRESET) {
            conn_close(c, CLOSE_RESET, now);
            return false;
        }
        if (w > 0) {
            account_written(c, (size_t)w, now);
            p += w;
            n -= (size_t)w;
        }
    }
    if (n > 0 && !queue_reply(c, p, n, NULL, 0)) {
        conn_close(c, CLOSE_NO_MEMORY, now);
        return false;
    }
    return true;
}

/* Parse and answer every complete message in the input buffer. Stops early
 * when pending output reaches its cap (the rest waits in the buffer). */
/* What a client may send in framed mode: data, and its RTT reports. */
static ssize_t parse_framed(const struct conn *c, size_t pos, struct frame *f)
{
    uint8_t type = c->in[pos];
    if (type != FRAME_DATA && type != FRAME_RTT_REPORT)
        return FRAME_BAD_TYPE;
    /* A report may always be as large as a full histogram, whatever
     * --max-payload says: a small limit must not refuse the client's RTTs. */
    size_t limit = cfg_of(c)->max_payload;
    if (type == FRAME_RTT_REPORT && limit < RTT_REPORT_MAX_FRAME - FRAME_HEADER_SIZE)
        limit = RTT_REPORT_MAX_FRAME - FRAME_HEADER_SIZE;
    return frame_parse(c->in + pos, c->in_len - pos, limit, true, f);
}

/* A client's RTT report: add it to the client RTT histogram. No reply. */
static void take_rtt_report(struct conn *c, const struct frame *f)
{
    struct server_stats *st = stats_of(c);
    if (rtt_report_apply(f->payload, f->len, &st->client_rtt_ns) < 0) {
        counter_add(&st->errors[ERR_PROTOCOL], 1);
        LOG_RATELIMITED(LOG_WARN, "malformed RTT report ignored", LF_U("conn", c->id),
            LF_S("peer", c->peer_str), LF_U("bytes", f->len));
        return;
    }
    counter_add(&st->rtt_reports, 1);
}

/* Parse and answer every complete message in the input buffer. Stops early
 * when pending output reaches its cap (the rest waits in the buffer).
 * In framed mode, consecutive data frames form a run [run, pos) that is
 * echoed in one piece when a non-data frame or the end interrupts it. */
static void process_input(struct conn *c, uint64_t now)
{
    const struct server_config *cfg = cfg_of(c);
    bool framed = c->mode == FRAME_MODE_FRAMED;
    size_t pos = 0, run = 0;
    bool consumed_any = false;
    while (pos < c->in_len && c->state == CONN_READING) {
        if (c->out_len - c->out_off + (pos - run) >= cfg->max_pending_output) {
            c->state = CONN_BLOCKED; /* the client is not reading its replies */
            break;
        }
        struct frame f;
        ssize_t rc = framed ? parse_framed(c, pos, &f)
                            : frame_parse_line(c->in + pos, c->in_len - pos, cfg->max_payload,
                                               c->peer_eof, &c->scanned, &f);
        if (rc == FRAME_INCOMPLETE)
            break;
        if (rc > 0 && framed && f.type == FRAME_RTT_REPORT) {
            if (pos > run && !echo_frames(c, c->in + run, pos - run, now))
                return;
            take_rtt_report(c, &f);
            pos += (size_t)rc;
            run = pos;
            consumed_any = true;
            continue;
        }
        if (rc < 0) {
            if (pos > run && !echo_frames(c, c->in + run, pos - run, now))
                return;
            memmove(c->in, c->in + pos, c->in_len - pos); /* the error text quotes the header */
            c->in_len -= pos;
            reject_input(c, rc, now);
            return;
        }
        if (!handle_message(c, &f, now)) {
            conn_close(c, CLOSE_NO_MEMORY, now);
            return;
        }
        pos += (size_t)rc;
        if (!framed)
            run = pos; /* text replies are already queued */
        consumed_any = true;
    }
    if (pos > run && !echo_frames(c, c->in + run, pos - run, now))
        return;
    /* Compact: the partial message moves to the front. */
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->in_len == 0)
        c->frame_start_ns = 0;
    else if (consumed_any || c->frame_start_ns == 0)
        c->frame_start_ns = now;
}

/* Write pending output: one send per call, as much as the kernel takes. */
static void flush_output(struct conn *c, uint64_t now)
{
    size_t pending = c->out_len - c->out_off;
    if (pending > 0) {
        ssize_t w = net_write(c->fd, c->out + c->out_off, pending);
        if (w == -EPIPE || w == -ECONNRESET) {
            /* Replies were still pending: the client did not take them. */
            conn_close(c, CLOSE_RESET, now);
            return;
        }
        if (w < 0 && w != -EAGAIN) {
            counter_add(&stats_of(c)->errors[ERR_WRITE], 1);
            LOG_RATELIMITED(LOG_WARN, "write failed", LF_U("conn", c->id), LF_S("peer", c->peer_str),
                LF_S("error", strerror((int)-w)));
            conn_close(c, CLOSE_IO_ERROR, now);
            return;
        }
        if (w > 0) {
            c->out_off += (size_t)w;
            account_written(c, (size_t)w, now);
        }
    }
    if (c->out_off < c->out_len) {
        if (c->write_wait_ns == 0)
            c->write_wait_ns = now;
        return;
    }
    /* Everything queued has reached the kernel. */
    c->out_off = c->out_len = 0;
    c->write_wait_ns = 0;
    if (c->unsent_msgs > 0) {
        /* Service time ends now, when the last reply reached the kernel. With
         * several replies in one write, each is charged from the oldest one's
         * arrival: an upper bound, exact in the common one-read-one-write case. */
        struct server_stats *st = stats_of(c);
        uint64_t done = net_now_ns();
        hist_record_n(&st->service_ns, done - c->unsent_since_ns, c->unsent_msgs);
        counter_add(&st->msgs_out[stats_mode(c)], c->unsent_msgs);
        counter_add(&c->pub.msgs_out, c->unsent_msgs);
        c->unsent_msgs = 0;
    }
}

/* After output drained in FLUSHING: close, or linger after an error reply. */
static void finish_flushing(struct conn *c, uint64_t now)
{
    if (c->peer_eof) {
        conn_close(c, c->reason, now);
        return;
    }
    /* Closing with unread input makes the kernel send a reset, which can
     * destroy the error reply before the client reads it. Shut our side,
     * then discard input until the client closes or the deadline. */
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->linger_until_ns = now + LINGER_NS;
}

/* How many more reads a draining connection may make: enough to answer what
 * a client had in flight, bounded so that one that never stops sending
 * cannot hold the shutdown. And how long it waits for more once the kernel
 * has nothing: what the client sent just before may still be on its way. */
#define DRAIN_READS 64
#define DRAIN_QUIET_NS (50 * 1000000ull)

static void read_input(struct conn *c, uint64_t now);

/* During the drain, read once more. true if that brought anything. */
static bool drain_read(struct conn *c, uint64_t now)
{
    uint64_t before = counter_get(&c->pub.bytes_in);
    c->drain_reads++;
    read_input(c, now);
    return c->state != CONN_CLOSED &&
           (c->peer_eof || counter_get(&c->pub.bytes_in) != before);
}

/* After any I/O: move the connection along its states until it must wait
 * for the kernel, then watch the right events. */
static void after_io(struct conn *c, uint64_t now)
{
    for (;;) {
        if (c->state == CONN_CLOSED)
            return;
        if (c->state == CONN_BLOCKED && c->out_off == c->out_len) {
            /* Replies drained: serve what is buffered. Regression: leaving
             * after one round could strand a connection BLOCKED with nothing
             * pending, watched for no event, never served again. */
            c->state = CONN_READING;
            process_input(c, now);
            if (c->state != CONN_CLOSED)
                flush_output(c, now);
            continue;
        }
        if (c->state == CONN_READING && c->draining && !c->drain_done && !c->peer_eof) {
            if (c->drain_reads >= DRAIN_READS) {
                c->drain_done = true;
                continue;
            }
            if (drain_read(c, now))
                continue;
            /* Nothing yet: wait for more, until the quiet timer says done. */
            if (c->state == CONN_READING && c->drain_quiet_ns == 0)
                c->drain_quiet_ns = now;
            break;
        }
        if (c->state == CONN_READING && (c->peer_eof || (c->draining && c->drain_done))) {
            /* No more input will come: finish once the replies are out. */
            c->reason = c->peer_eof ? CLOSE_PEER : CLOSE_SHUTDOWN;
            c->state = CONN_FLUSHING;
            flush_output(c, now);
            continue;
        }
        if (c->state == CONN_FLUSHING && c->out_off == c->out_len) {
            finish_flushing(c, now);
            continue;
        }
        break;
    }
    update_events(c);
}

/* Discard input while lingering; close at EOF or error. */
static void linger_read(struct conn *c, uint64_t now)
{
    uint8_t sink[4096];
    ssize_t r = net_read(c->fd, sink, sizeof sink);
    if (r > 0) { /* discarded, but received: the byte counters see them */
        counter_add(&c->pub.bytes_in, (uint64_t)r);
        counter_add(&stats_of(c)->bytes_in[stats_mode(c)], (uint64_t)r);
    }
    if (r == 0 || (r < 0 && r != -EAGAIN))
        conn_close(c, c->reason, now);
}

/* Read once (level-triggered epoll calls again if more is waiting). */
static void read_input(struct conn *c, uint64_t now)
{
    if (c->in_len == c->in_cap) {
        /* Full with one partial message: grow toward what it needs, never
         * more than a maximal message (the parser has checked the length). */
        size_t limit = in_limit(c);
        if (c->in_cap >= limit || buf_reserve(&c->in, &c->in_cap, c->in_len + 1, limit) < 0) {
            conn_close(c, CLOSE_NO_MEMORY, now);
            return;
        }
    }
    ssize_t r = net_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (r == -EAGAIN)
        return;
    if (r < 0) {
        if (r != -ECONNRESET) {
            counter_add(&stats_of(c)->errors[ERR_READ], 1);
            LOG_RATELIMITED(LOG_WARN, "read failed", LF_U("conn", c->id), LF_S("peer", c->peer_str),
                LF_S("error", strerror((int)-r)));
        }
        conn_close(c, r == -ECONNRESET ? CLOSE_RESET : CLOSE_IO_ERROR, now);
        return;
    }
    if (r == 0) {
        /* A last unterminated text line is still a message; after_io ends
         * the connection once everything buffered is answered. */
        c->peer_eof = true;
        process_input(c, now);
        if (c->state != CONN_CLOSED)
            flush_output(c, now);
        return;
    }
    if (c->mode == FRAME_MODE_UNKNOWN)
        c->mode = frame_detect_mode(c->in[0]);
    c->in_len += (size_t)r;
    counter_add(&c->pub.bytes_in, (uint64_t)r);
    counter_add(&stats_of(c)->bytes_in[stats_mode(c)], (uint64_t)r);
    c->active_ns = now;
    c->drain_quiet_ns = 0;
    process_input(c, now);
    if (c->state != CONN_CLOSED)
        flush_output(c, now);
}

void conn_on_event(struct conn *c, uint32_t events, uint64_t now)
{
    if (c->state == CONN_CLOSED)
        return;
    if ((events & EPOLLOUT) && c->out_off < c->out_len)
        flush_output(c, now);
    if (c->state == CONN_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->state == CONN_LINGER)
            linger_read(c, now);
        else if (c->state == CONN_READING)
            read_input(c, now);
        else if (events & (EPOLLERR | EPOLLHUP)) /* gone while we only wrote */
            conn_close(c, c->state == CONN_FLUSHING && c->reason != CLOSE_PEER ? c->reason
                                                                                : CLOSE_RESET,
                       now);
    }
    after_io(c, now);
}

/* The frame deadline passed: tell the client why, then close. */
static void expire_frame(struct conn *c, uint64_t now)
{
    char reason[96];
    snprintf(reason, sizeof reason, "message not completed within %g s", cfg_of(c)->frame_timeout);
    LOG(LOG_INFO, "frame deadline passed", LF_U("conn", c->id), LF_S("peer", c->peer_str),
        LF_U("buffered", c->in_len));
    uint8_t frame[128];
    size_t n = c->mode == FRAME_MODE_TEXT
                   ? (size_t)snprintf((char *)frame, sizeof frame, "ERR timeout: %s\n", reason)
                   : frame_error_encode(frame, sizeof frame, FRAME_ERR_TIMEOUT, reason);
    c->reason = CLOSE_FRAME_TIMEOUT;
    c->state = CONN_FLUSHING;
    c->in_len = 0;
    if (!queue_reply(c, frame, n, NULL, 0)) {
        conn_close(c, CLOSE_NO_MEMORY, now);
        return;
    }
    flush_output(c, now);
    after_io(c, now);
}

void conn_check_timers(struct conn *c, uint64_t now)
{
    const struct server_config *cfg = cfg_of(c);
    if (c->state == CONN_LINGER) {
        if (now >= c->linger_until_ns)
            conn_close(c, c->reason, now);
        return;
    }
    if (c->write_wait_ns != 0 && cfg->write_timeout > 0 &&
        now - c->write_wait_ns >= sec_to_ns(cfg->write_timeout)) {
        LOG(LOG_INFO, "client does not read its replies", LF_U("conn", c->id),
            LF_S("peer", c->peer_str), LF_U("pending_bytes", c->out_len - c->out_off));
        /* An error reply that will not go out keeps its reason; replies the
         * client never read make it a slow reader, EOF or not. */
        bool error_reply = c->state == CONN_FLUSHING && c->reason != CLOSE_PEER &&
                           c->reason != CLOSE_SHUTDOWN;
        conn_close(c, error_reply ? c->reason : CLOSE_SLOW_READER, now);
        return;
    }
    if (c->state != CONN_READING)
        return;
    if (c->draining && !c->drain_done && c->drain_quiet_ns != 0 &&
        now - c->drain_quiet_ns >= DRAIN_QUIET_NS) {
        c->drain_done = true; /* the client has gone quiet: finish */
        after_io(c, now);
        return;
    }
    if (c->frame_start_ns != 0 && cfg->frame_timeout > 0 &&
        now - c->frame_start_ns >= sec_to_ns(cfg->frame_timeout)) {
        expire_frame(c, now);
        return;
    }
    if (cfg->idle_timeout > 0 && c->out_off == c->out_len &&
        now - c->active_ns >= sec_to_ns(cfg->idle_timeout))
        conn_close(c, CLOSE_IDLE, now);
}

void conn_begin_drain(struct conn *c, uint64_t now)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER)
        return;
    /* Answer what the client already sent (what we hold, and what the kernel
     * holds for us), then close; after_io does it as output allows. */
    c->draining = true;
    after_io(c, now);
}
