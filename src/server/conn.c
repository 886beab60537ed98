/* conn: a connection's life: read what the kernel has, parse complete
 * messages in place, queue their replies, write them in one call per
 * wakeup, and close with a reason that is counted and logged. It knows its
 * owner only through a struct conn_ctx (connctx.h).
 * No allocation per message: reads land in the loop's buffers, replies go
 * straight to the kernel (epoll) or through the output queue (io_uring,
 * whose writes complete later); a connection keeps memory of its own only for a
 * partial message or for replies the client has not read yet, and every
 * such byte is charged to the server's memory budget.
 *
 * The states (conn.h) and every transition between them. Each one goes
 * through conn_enter, which does what entering or leaving a state implies.
 *
 *   from           to             when
 *   READING        BLOCKED        a reply would take pending output over --max-pending-output
 *   READING        PAUSED         the memory budget has no room for the next read
 *   READING        DRAINING       the server begins its shutdown (conn_begin_drain)
 *   READING        FLUSHING       the client's EOF, all it sent answered; an error reply
 *                                 (bad message, frame deadline)
 *   BLOCKED        READING        the pending output was written: serve what is buffered
 *   BLOCKED        DRAIN_BLOCKED  the server begins its shutdown
 *   PAUSED         READING        the budget has room again; or the client stopped sending
 *                                 (POLLRDHUP, seen at a tick) and what it sent can complete
 *                                 its message
 *   PAUSED         FLUSHING       the client stopped sending, its message can never complete:
 *                                 the partial message is dropped, the replies owed are written
 *   PAUSED         DRAINING       the server begins its shutdown
 *   DRAINING       DRAIN_BLOCKED  as READING -> BLOCKED
 *   DRAINING       FLUSHING       16 MiB read (SHUTDOWN), 50 ms without input (SHUTDOWN),
 *                                 the client's EOF (PEER), an error reply
 *   DRAIN_BLOCKED  DRAINING       the pending output was written: serve what is buffered
 *   FLUSHING       LINGER         all written, the client may still send: shut our side
 *   FLUSHING       CLOSED         all written after the client's EOF
 *   LINGER         CLOSED         the client's EOF or error, or 2 s passed
 *   any            CLOSED         reset, I/O error, no memory, write/idle timeout, eviction,
 *                                 the drain deadline (conn_close)
 *
 * DRAIN_BLOCKED is DRAINING's own BLOCKED: both wait for output, but each
 * must know where to go back to, and the drain's byte budget must survive
 * the wait. PAUSED has no drain counterpart: the drain reads within its own
 * byte budget, not the memory budget's room.
 *
 * The connection's socket is a loop_stream (tcpmsg/loop.h) of the owner's
 * loop: reads are asked for with a bound (the memory budget's room, 0 while
 * BLOCKED or PAUSED) and delivered to on_read, a write is started and its
 * end comes to on_write, and the close ends in on_close, the only place the
 * connection is freed (io_uring may use its output until then). The rest of
 * the system calls are in one place (io_*, below): a read's result goes to
 * take_input(data, n), a write's to written(n), on either backend.
 */
#include "server/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server/config.h"
#include "server/connctx.h"
#include "server/membudget.h"
#include "tcpmsg/hot.h"
#include "tcpmsg/log.h"
#include "tcpmsg/loop.h"
#include "tcpmsg/rttreport.h"
#include "tcpmsg/tcpinfo.h"

#define LINGER_NS (2000000000ull)  /* discard input this long after an error reply */
#define NS_PER_SEC 1e9
#define IN_MIN_CAP 256u            /* the smallest input buffer worth allocating */
#define WRITE_IOVS LOOP_IOV_MAX    /* chunks offered to the kernel in one writev */

/* A small partial message is copied into the headroom the loop leaves in
 * front of each delivery, and parsed there with what arrived. */
_Static_assert(CONN_SMALL_PARTIAL <= LOOP_HEADROOM, "a small partial fits in the headroom");
/* Below the loop's delivery size: io_uring then has one recv of a known
 * bound in flight, never a multishot one (loop.h), so what still arrives
 * after reading stops stays within what the buffers may hold (in_limit). */
_Static_assert(CONN_READ_MAX < LOOP_READ_SIZE, "reads are bounded, one at a time");

static const struct server_config *cfg_of(const struct conn *c)
{
    return c->ctx->cfg;
}

static struct server_stats *stats_of(struct conn *c)
{
    return c->ctx->stats;
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
    static const char *const names[] = {
#define CONN_STATE_TAG(name, tag) [name] = tag,
        CONN_STATE_LIST(CONN_STATE_TAG)
#undef CONN_STATE_TAG
    };
    return (size_t)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

/* Copy what other threads may look at; once per event, not per message. */
static void publish(struct conn *c)
{
    counter_set(&c->pub.active_ns, c->active_ns);
    counter_set(&c->pub.pending, c->out.len);
    counter_set(&c->pub.mem, c->mem);
    counter_set(&c->pub.mode, c->mode);
    counter_set(&c->pub.state, c->state);
}

/* Charge the memory budget with what the buffers hold now. Called after
 * each event, so a buffer taken and given back within one costs nothing. */
static void recharge(struct conn *c)
{
    /* Closed, a connection holds nothing: output that io_uring may still be
     * sending is freed at on_close, a moment later. */
    size_t held = c->state == CONN_CLOSED ? 0 : c->in_cap + outq_held(&c->out);
    if (held == c->mem)
        return;
    int holders = (held != 0) - (c->mem != 0);
    membudget_charge(c->ctx->budget, c->ctx->budget_slot, (int64_t)held - (int64_t)c->mem, holders);
    c->mem = held;
}

/* ---- the system calls -----------------------------------------------------
 * Everything conn.c asks of the kernel. Each returns what the next layer
 * would deliver too: bytes, or a negative errno (-EAGAIN: would block). */

/* Deliver input in pieces of at most max bytes (0: stop reading). */
static void io_read(struct conn *c, size_t max)
{
    if (loop_stream_read(c->ctx->loop, &c->s, max) < 0 && max > 0)
        conn_close(c, CLOSE_IO_ERROR, net_now_ns());
}

static bool stage_stamp_write(struct conn *c, size_t total);

/* Start a write. Returns the bytes taken now (epoll), -EINPROGRESS (io_uring:
 * on_write tells how it ended) or -errno. Either way, while the write is not
 * over, c->writing is set: on_write clears it. A write carrying the last
 * byte of a sampled reply asks for its transmit timestamps. */
TCPMSG_HOT static ssize_t io_write(struct conn *c, const struct iovec *iov, int cnt)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    ssize_t w = stage_stamp_write(c, total) ? loop_stream_write_stamped(c->ctx->loop, &c->s, iov, cnt)
                                            : loop_stream_write(c->ctx->loop, &c->s, iov, cnt);
    c->writing = w == -EINPROGRESS || (w >= 0 && (size_t)w < total);
    return w;
}

/* The owner's loop writes later (io_uring): the bytes must stay where they
 * are until on_write. */
static bool io_writes_later(const struct conn *c)
{
    return loop_writes_later(c->ctx->loop);
}

/* End our sending side: the client sees EOF after what was written. */
static void io_shutdown_write(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

/* Bytes the kernel holds for us, unread (0 when it cannot say). */
static size_t io_input_waiting(struct conn *c)
{
    int avail = 0;
    if (ioctl(c->fd, FIONREAD, &avail) < 0 || avail < 0)
        return 0;
    return (size_t)avail;
}

/* The client stopped sending (or the socket failed): asked of a PAUSED
 * connection, which reads nothing meanwhile, at each timer tick. */
static bool io_peer_done(struct conn *c)
{
    struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Stop the I/O and close the socket: the loop calls on_close once it has
 * let go of the stream (at the end of this wakeup, or once io_uring has
 * finished with the requests in flight), and c is freed there. */
static void io_close(struct conn *c)
{
    c->ctx->forget(c->ctx->owner, c);
    loop_stream_close(c->ctx->loop, &c->s);
    c->fd = -1;
}

static void on_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now);
static void on_write(struct loop_stream *s, ssize_t n, uint64_t now);
static void on_close(struct loop_stream *s);
static void update_io(struct conn *c);

/* ---- stage timestamps ----------------------------------------------------
 * With --stage-sample N, every connection's socket reports the kernel's
 * timestamps (loop_stream_stamp), and one message in N is sampled:
 *   rx_queue  the receive timestamp of the read that completed the message
 *             (the kernel's stamp of the last segment that read took bytes
 *             from) to the moment the server parses it;
 *   service   from that moment to the start of the write that carries the
 *             reply's last byte (stage_stamp_write);
 *   tx_sched, tx_send, tx_ack: from that same clock reading to the qdisc,
 *             the device and the client's ACK (tstamp.h).
 * The stages nest: each begins where the one before it ended, so they add
 * up to the message's time from the kernel's receive to the client's ACK.
 * A sample that cannot be completed (timestamps lost, no memory) is counted
 * in tcpmsg_stage_samples_dropped_total instead.
 * Reads ask for the receive timestamp only when the sample may be in them:
 * from twice as many messages before it as the connection's last read
 * completed (plus one), at most STAGE_RX_WINDOW. The others need none: a
 * recvmsg with its control data costs more than a read, an idle io_uring
 * connection then holds no recvmsg header, and a client that sends one
 * message a read is asked for the stamp on about 3 reads in N, not 256. A
 * read of more messages than that (small ones, deeply pipelined, or a burst
 * after a quiet spell) may complete the sampled one unstamped: the sample
 * then stays due, and the first message of the next read, which asks for the
 * timestamp, is sampled instead (a bias towards the start of reads, never a
 * lost sample). */
#define STAGE_RX_WINDOW 256

/* A sampled connection's samples in flight. */
struct conn_stage {
    uint64_t svc_since;    /* tstamp_now_ns() when the oldest sampled message not yet
                              handed to the tracker was parsed: its service began */
    uint64_t tx_end;       /* output byte number just past the last sampled reply; the
                              write that carries byte tx_end - 1 asks for timestamps */
    unsigned tx_n;         /* sampled replies up to tx_end not yet handed to track */
    uint64_t dropped_seen; /* track.dropped already added to the counter */
    struct tstamp_track track; /* sampled replies waiting for their timestamps */
};

static void stage_record(struct conn *c, enum stage st, uint64_t ns, uint64_t n)
{
    hist_record_n(server_stats_stage(stats_of(c), st), ns, n);
}

/* Samples the tracker gave up since last asked go to the counter. */
static void stage_count_dropped(struct conn *c)
{
    uint64_t d = c->stage->track.dropped;
    counter_add(&stats_of(c)->stage_dropped, d - c->stage->dropped_seen);
    c->stage->dropped_seen = d;
}

/* Turn sampling on for a new connection: its socket reports timestamps
 * before anything is written, so that byte numbers count from its first
 * byte. A socket that refuses is served unsampled. */
static void stage_start(struct conn *c)
{
    unsigned n = cfg_of(c)->stage_sample;
    if (n == 0)
        return;
    int rc = loop_stream_stamp(c->ctx->loop, &c->s, true);
    if (rc < 0) {
        LOG_RATELIMITED(LOG_WARN, "stage timestamps unavailable", LF_U("conn", c->id),
            LF_S("error", strerror(-rc)));
        return;
    }
    c->stage_until = n;
}

/* Reads carry the receive timestamp while a sample is near (asked after
 * every event, with the read bound: no system call). */
static void stage_want_rx(struct conn *c)
{
    if (c->stage_until == 0)
        return;
    unsigned window = 2 * c->read_msgs + 1;
    if (window > STAGE_RX_WINDOW)
        window = STAGE_RX_WINDOW;
    loop_stream_stamp_reads(&c->s, c->stage_until <= window);
}

/* A sampled message, completed by the read being served, whose reply ends
 * just before output byte number end. false when the read has no receive
 * timestamp (it was not asked for: a read of more than STAGE_RX_WINDOW
 * messages; the kernel had not begun stamping; completed from what was
 * buffered earlier): the caller keeps the sample due, for the next message. */
static bool stage_sampled(struct conn *c, uint64_t end)
{
    uint64_t rx = loop_stream_rx_ns(&c->s);
    if (rx == 0)
        return false;
    if (c->stage == NULL && (c->stage = calloc(1, sizeof *c->stage)) == NULL) {
        counter_add(&stats_of(c)->stage_dropped, 1); /* no memory for the samples */
        return true;
    }
    /* One clock reading ends rx_queue and begins service. */
    uint64_t app = tstamp_now_ns();
    stage_record(c, STAGE_rx_queue, app > rx ? app - rx : 0, 1);
    struct conn_stage *st = c->stage;
    if (st->tx_n++ == 0)
        st->svc_since = app;
    st->tx_end = end;
    return true;
}

/* The message just taken, whose reply ends before output byte number end,
 * is due for a sample (c->stage_until reached 0): sample it, or keep the
 * sample due when its read has no receive timestamp. The schedule stays one
 * in N of the messages: the next sample is due N after the one that was
 * due, not after the late one taken, and samples owed (a read of several N
 * messages without a timestamp, counted in c->stage_late) are taken from
 * the next messages, one each. */
static void stage_take(struct conn *c, uint64_t end)
{
    unsigned *until = &c->stage_until, *late = &c->stage_late;
    unsigned every = cfg_of(c)->stage_sample;
    if (!stage_sampled(c, end)) {
        *until = 1;
        ++*late;
    } else if (*late < every) {
        *until = every - *late;
        *late = 0;
    } else {
        *until = 1;
        *late -= every - 1; /* the next message is that much past the next due one */
    }
}

/* The output byte number of the next byte queued: what was written, then
 * what waits. */
static uint64_t stage_out_pos(const struct conn *c)
{
    return counter_get(&c->pub.bytes_out) + c->out.len;
}

/* Whether a write of total bytes from the next unwritten byte on carries the
 * last sampled reply's last byte: then it asks for timestamps, and the
 * samples it completes are handed to the tracker (once: a partial write is
 * followed by another stamped one, for the same byte). One clock reading ends
 * their service and begins their tx_sched, so the two nest: on epoll the
 * write is made just after, on io_uring it is submitted with the loop's next
 * wait, and a partial write's rest follows once the socket has room; both
 * waits are tx_sched's (the kernel stamps SCHED when the last byte goes). */
static bool stage_stamp_write(struct conn *c, size_t total)
{
    struct conn_stage *st = c->stage;
    uint64_t start = counter_get(&c->pub.bytes_out);
    if (st == NULL || st->tx_end <= start || st->tx_end > start + total)
        return false;
    if (st->tx_n > 0) {
        uint64_t handed = tstamp_now_ns();
        stage_record(c, STAGE_service, handed > st->svc_since ? handed - st->svc_since : 0, st->tx_n);
        tstamp_track_sent_n(&st->track, (uint32_t)(st->tx_end - 1), handed, st->tx_n);
        st->tx_n = 0;
        stage_count_dropped(c);
    }
    return true;
}

/* The loop read a transmit timestamp of this socket. */
static void on_errqueue(struct loop_stream *s, const struct tstamp_report *r, uint64_t now)
{
    (void)now;
    struct conn *c = s->data;
    if (c->stage == NULL)
        return; /* nothing was sampled: not ours */
    tstamp_track_report(&c->stage->track, r);
    struct tstamp_tx_stages t;
    while (tstamp_track_next(&c->stage->track, &t)) {
        stage_record(c, STAGE_tx_sched, t.sched_ns, t.count);
        stage_record(c, STAGE_tx_send, t.send_ns, t.count);
        stage_record(c, STAGE_tx_ack, t.ack_ns, t.count);
    }
    stage_count_dropped(c);
}

/* Closing: the samples still waiting for a stage are given up, and their
 * state goes (no callback of the stream follows a close). A sample whose
 * reply was not handed to the kernel (tx_n) is counted once. */
static void stage_abandon(struct conn *c)
{
    struct conn_stage *st = c->stage;
    if (st == NULL)
        return;
    st->track.dropped += st->tx_n;
    tstamp_track_abandon(&st->track);
    stage_count_dropped(c);
    free(st);
    c->stage = NULL;
}

struct conn *conn_open(const struct conn_ctx *ctx, int fd, const struct sockaddr *peer,
                       socklen_t len, uint64_t id, uint64_t now)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->ctx = ctx;
    c->id = id;
    c->state = CONN_READING; /* born in it: no transition */
    c->opened_ns = c->active_ns = c->state_ns = now;
    memcpy(&c->peer, peer, len);
    net_format_addr(peer, c->peer_str, sizeof c->peer_str);
    publish(c);
    c->s.on_read = on_read;
    c->s.on_write = on_write;
    c->s.on_close = on_close;
    c->s.on_errqueue = on_errqueue;
    c->s.data = c;
    if (loop_stream_start(ctx->loop, &c->s, fd) < 0) {
        free(c);
        close(fd);
        return NULL;
    }
    stage_start(c);
    ctx->adopt(ctx->owner, c);
    update_io(c);
    return c;
}

/* Give the buffers back (and their charge). Output a write in flight still
 * uses waits for on_close. */
static void release_buffers(struct conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->scanned = 0;
    if (!c->writing)
        outq_clear(&c->out, c->ctx->pool);
    recharge(c);
}

/* The loop has let go of the stream: the socket is closed and no request
 * refers to c any more. */
static void on_close(struct loop_stream *s)
{
    struct conn *c = s->data;
    const struct conn_ctx *ctx = c->ctx;
    c->writing = false;
    release_buffers(c);
    free(c->stage); /* NULL after conn_close; kept by a close that skipped it */
    free(c);
    if (ctx->released != NULL)
        ctx->released(ctx->owner);
}

/* How much more a draining connection may read: enough to answer what a
 * client had in flight, bounded so that one that never stops sending cannot
 * hold the shutdown. What a client has sent and not had answered sits in its
 * kernel's send buffer and in ours: with Linux's default limits (tcp_wmem
 * max 4 MiB, tcp_rmem max 6 MiB) that is at most 10 MiB. The bound is in
 * bytes, not reads: reads come in whatever sizes the kernel hands over.
 * And how long it waits for more once the kernel has nothing: what the
 * client sent just before may still be on its way. */
#define DRAIN_MAX_BYTES (16u << 20)
#define DRAIN_QUIET_NS (50 * 1000000ull)

static bool in_drain(enum conn_state s)
{
    return s == CONN_DRAINING || s == CONN_DRAIN_BLOCKED;
}

/* The one place a connection changes state: leave the old one, enter the
 * new one, publish it. The event interest follows from the state too, but
 * is applied once per event (update_io), not per transition: one event
 * may pass through several states and needs one change of the loop's
 * interest at most (an epoll_ctl, or a cancel with io_uring). */
static void conn_enter(struct conn *c, enum conn_state to, uint64_t now)
{
    enum conn_state from = c->state;
    if (from == to)
        return;
    if (from == CONN_PAUSED) {
        /* The time spent paused does not count against the client's frame
         * deadline: the server was not reading. */
        membudget_paused(c->ctx->budget, -1);
        if (c->frame_start_ns != 0)
            c->frame_start_ns += now - c->paused_ns;
        c->paused_ns = 0;
    }
    switch (to) {
    case CONN_PAUSED:
        c->paused_ns = now;
        membudget_paused(c->ctx->budget, 1);
        break;
    case CONN_DRAINING:
    case CONN_DRAIN_BLOCKED:
        if (!in_drain(from))
            c->drain_left = DRAIN_MAX_BYTES; /* the drain's budget, once per drain */
        c->drain_quiet_ns = 0;
        break;
    case CONN_LINGER:
        /* Lingering only discards: no buffers, and a deadline. */
        c->linger_until_ns = now + LINGER_NS;
        release_buffers(c);
        break;
    default:
        break;
    }
    c->state = to;
    c->state_ns = now;
    counter_set(&c->pub.state, to);
    LOG(LOG_DEBUG, "connection state", LF_U("conn", c->id), LF_S("from", conn_state_name(from)),
        LF_S("to", conn_state_name(to)));
    if (c->ctx->transition != NULL)
        c->ctx->transition(c->ctx->owner, c, (int)from, (int)to);
}

/* The part of a lifetime total that is new since the last sample. A total
 * never goes back; if it seems to, count nothing rather than wrap. */
static uint64_t since(uint64_t *seen, uint64_t now_total)
{
    uint64_t d = now_total > *seen ? now_total - *seen : 0;
    *seen = now_total > *seen ? now_total : *seen;
    return d;
}

void conn_sample_tcp(struct conn *c)
{
    struct tcpinfo ti;
    if (c->fd < 0 || tcpinfo_read(c->fd, &ti) < 0)
        return;
    struct server_stats *st = stats_of(c);
    counter_add(&st->tcp_retrans, since(&c->tcp_seen.retrans, ti.total_retrans));
    counter_add(&st->tcp_busy_us, since(&c->tcp_seen.busy_us, ti.busy_us));
    counter_add(&st->tcp_rwnd_limited_us,
                since(&c->tcp_seen.rwnd_limited_us, ti.rwnd_limited_us));
    counter_add(&st->tcp_sndbuf_limited_us,
                since(&c->tcp_seen.sndbuf_limited_us, ti.sndbuf_limited_us));
    if (ti.srtt_us > 0)
        hist_record(&st->tcp_srtt_ns, ti.srtt_us * 1000);
}

void conn_close(struct conn *c, enum close_reason reason, uint64_t now)
{
    if (c->state == CONN_CLOSED)
        return;
    conn_sample_tcp(c); /* while the socket is still open */
    stage_abandon(c);
    c->reason = reason;
    conn_enter(c, CONN_CLOSED, now);
    io_close(c);
    /* Count the close before the open gauge drops (ctx->closed), so that a
     * scrape never sees a connection in neither. */
    counter_add(&stats_of(c)->closed[reason], 1);
    if (c->ctx->closed != NULL)
        c->ctx->closed(c->ctx->owner, c, reason, now);
    LOG(LOG_INFO, "connection closed", LF_U("conn", c->id), LF_S("peer", c->peer_str),
        LF_S("reason", close_reason_tag(reason)), LF_S("mode", frame_mode_name(c->mode)),
        LF_U("msgs_in", counter_get(&c->pub.msgs_in)), LF_U("msgs_out", counter_get(&c->pub.msgs_out)),
        LF_U("bytes_in", counter_get(&c->pub.bytes_in)), LF_U("bytes_out", counter_get(&c->pub.bytes_out)),
        LF_D("age_s", (double)(now - c->opened_ns) / NS_PER_SEC));
    /* The memory goes back now, not after the wakeup: an eviction needs the
     * budget to see it at once. */
    release_buffers(c);
    publish(c);
}

static size_t read_bound(struct conn *c, size_t room);

/* Ask the loop for the input the state wants: READING what the memory
 * budget allows (none: PAUSED), DRAINING within the drain's budget, LINGER
 * anything (it is discarded), nothing in the other states. Asked after
 * every event, even unchanged: the bound depends on what is buffered. */
static void update_io(struct conn *c)
{
    recharge(c);
    size_t max = 0;
    if (c->state == CONN_READING) {
        /* A read adds at most CONN_READ_MAX bytes, or, into the connection's
         * own buffer, what its geometric growth takes. A client that stopped
         * sending while PAUSED is read to its end whatever the budget says:
         * the message completes within --max-payload (paused_peer_done). */
        size_t want = c->in_cap > CONN_READ_MAX ? c->in_cap : CONN_READ_MAX;
        bool charged = false;
        size_t room = c->peer_done ? SIZE_MAX
                                   : membudget_take(c->ctx->budget, c->ctx->budget_slot, c->mem,
                                                    want, &charged);
        if (room == 0) {
            conn_enter(c, CONN_PAUSED, net_now_ns()); /* the timer resumes it once there is room */
        } else {
            /* The read lands later, after other connections have asked
             * too: one that holds a large partial message (and grows its
             * own buffer with what comes) holds what its read may add from
             * now, so that the others see it taken. One holding nothing or
             * a small partial does not: its read lands in the loop's buffer,
             * idle connections would otherwise hold the whole budget, and
             * what it keeps is charged once it arrives. recharge() settles
             * the hold at the next event. */
            max = read_bound(c, room);
            if (charged) {
                /* membudget_take charged all of room: keep max of it. */
                membudget_charge(c->ctx->budget, c->ctx->budget_slot,
                                 (int64_t)max - (int64_t)room, c->mem == 0 && max > 0 ? 1 : 0);
                c->mem += max;
            } else if (c->in_len > CONN_SMALL_PARTIAL && room != SIZE_MAX) {
                membudget_charge(c->ctx->budget, c->ctx->budget_slot, (int64_t)max, 0);
                c->mem += max;
            }
        }
    } else if (c->state == CONN_DRAINING) {
        max = read_bound(c, c->drain_left);
    } else if (c->state == CONN_LINGER) {
        max = CONN_READ_MAX;
    }
    publish(c);
    stage_want_rx(c);
    io_read(c, max);
}

/* The most input a connection may hold: one maximal message (an RTT report
 * may be larger than a small --max-payload, see parse_framed). */
static size_t in_limit(const struct conn *c)
{
    size_t max_msg = cfg_of(c)->max_payload + FRAME_HEADER_SIZE;
    return max_msg > RTT_REPORT_MAX_FRAME ? max_msg : RTT_REPORT_MAX_FRAME;
}

/* Make the input buffer hold at least need bytes (need <= in_limit).
 * Returns 0 or -ENOMEM (the buffer is unchanged then). */
static int in_reserve(struct conn *c, size_t need)
{
    if (need <= c->in_cap)
        return 0;
    size_t cap = need < IN_MIN_CAP ? IN_MIN_CAP : need;
    uint8_t *p = realloc(c->in, cap);
    if (p == NULL)
        return -ENOMEM;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Queue bytes for the client. false when no memory. */
static bool queue_reply(struct conn *c, const void *a, size_t an, const void *b, size_t bn)
{
    if (outq_append(&c->out, c->ctx->pool, a, an) < 0)
        return false;
    return bn == 0 || outq_append(&c->out, c->ctx->pool, b, bn) == 0;
}

/* "message from PEER: BODY", the body escaped and cut after 200 bytes. */
static void format_message(const struct conn *c, const struct frame *f, char *msg, size_t cap)
{
    char body[1024];
    log_escape_bytes(body, sizeof body, f->payload, f->len);
    snprintf(msg, cap, "message from %s: %s", c->peer_str, body);
}

static void log_message(const struct conn *c, const struct frame *f)
{
    char msg[1200];
    format_message(c, f, msg, sizeof msg);
    LOG(LOG_DEBUG, msg, LF_U("conn", c->id), LF_S("mode", frame_mode_name(c->mode)),
        LF_U("bytes", f->len));
}

/* The first message of a text connection, at INFO: the classic exercise
 * (a client sends "Hello from client!" and the server shows it) works
 * without -v. Once per connection, and rate-limited like every line a
 * client can repeat, so a flood of text clients cannot flood the log. */
static void log_first_text_message(const struct conn *c, const struct frame *f)
{
    char msg[1200];
    format_message(c, f, msg, sizeof msg);
    LOG_RATELIMITED(LOG_INFO, msg, LF_U("conn", c->id), LF_S("mode", frame_mode_name(c->mode)),
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
    else if (c->mode == FRAME_MODE_TEXT && counter_get(&c->pub.msgs_in) == 1)
        log_first_text_message(c, f);
    /* A data frame's echo is the frame itself, byte for byte: process_input
     * sends the whole run of consumed frames at once. A text reply differs
     * from its line (CR dropped, LF added), so it is queued here. */
    if (c->mode == FRAME_MODE_TEXT && !queue_reply(c, f->payload, f->len, "\n", 1))
        return false;
    if (c->unsent_msgs++ == 0)
        c->unsent_since_ns = now;
    return true;
}

/* Queue the error reply for a rejected message and stop reading. bad is
 * where the rejected message begins (its header is quoted). */
static void reject_input(struct conn *c, const uint8_t *bad, ssize_t status, uint64_t now)
{
    int code = status == FRAME_TOO_LARGE ? FRAME_ERR_OVERSIZE : FRAME_ERR_BAD_TYPE;
    char reason[160];
    if (status == FRAME_TOO_LARGE && c->mode == FRAME_MODE_FRAMED) {
        size_t len = frame_header_len(bad);
        snprintf(reason, sizeof reason, "payload length %zu exceeds the limit of %zu bytes", len,
                 cfg_of(c)->max_payload);
    } else if (status == FRAME_TOO_LARGE) {
        snprintf(reason, sizeof reason, "line longer than the limit of %zu bytes",
                 cfg_of(c)->max_payload);
    } else {
        snprintf(reason, sizeof reason, "unknown frame type 0x%02x", bad[0]);
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
    conn_enter(c, CONN_FLUSHING, now);
    if (!queue_reply(c, frame, n, NULL, 0))
        conn_close(c, CLOSE_NO_MEMORY, now);
}

TCPMSG_HOT static void account_written(struct conn *c, size_t n, uint64_t now)
{
    counter_add(&c->pub.bytes_out, n);
    counter_add(&stats_of(c)->bytes_out[stats_mode(c)], n);
    c->active_ns = now;
    c->write_wait_ns = 0;
}

/* Echo n bytes of complete frames. With nothing else pending they go
 * straight from the input buffer to the kernel, copied only if the kernel
 * does not take them all. The input buffer is valid only during this call:
 * this shortcut needs a write that takes its bytes at once (or not at all),
 * never one that completes later (io_uring): then the bytes are queued, and
 * sent with what follows them. false when the connection was closed. */
TCPMSG_HOT static bool echo_frames(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    if (c->out.len == 0 && !io_writes_later(c)) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
        ssize_t w = io_write(c, &iov, 1);
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

/* What a client may send in framed mode: data, and its RTT reports. */
static ssize_t parse_framed(const struct conn *c, const uint8_t *p, size_t n, struct frame *f)
{
    uint8_t type = p[0];
    if (type != FRAME_DATA && type != FRAME_RTT_REPORT)
        return FRAME_BAD_TYPE;
    /* A report may always be as large as a full histogram, whatever
     * --max-payload says: a small limit must not refuse the client's RTTs. */
    size_t limit = cfg_of(c)->max_payload;
    if (type == FRAME_RTT_REPORT && limit < RTT_REPORT_MAX_FRAME - FRAME_HEADER_SIZE)
        limit = RTT_REPORT_MAX_FRAME - FRAME_HEADER_SIZE;
    return frame_parse(p, n, limit, true, f);
}

/* A client's RTT report: add it to the client RTT histogram if it keeps
 * the rules (tcpmsg/rttreport.h), else drop it whole and count why. Either
 * way no reply, and the connection carries on. The limits are what this
 * connection can have measured: one sample per reply written, none longer
 * than the connection has existed. Its age counts from accept, but a client
 * may send (and start timing) while the connection still waits in the
 * kernel's accept queue, or for a fork: a first round trip can be longer
 * than the server's view of the age, by that wait. Found under load: an
 * honest first report refused as value_too_large. RTT_AGE_SLACK_NS allows
 * for it; a report of minutes or hours on a young connection stays refused. */
#define RTT_AGE_SLACK_NS 1000000000ull
static void take_rtt_report(struct conn *c, const struct frame *f, uint64_t now)
{
    struct rtt_report report; /* points into the frame */
    struct server_stats *st = stats_of(c);
    enum rtt_reject why = RTT_REJECT_DISABLED;
    if (cfg_of(c)->rtt_reports) {
        struct rtt_report_limits lim = {
            .max_samples = counter_get(&c->pub.msgs_out) - c->rtt_samples,
            .max_value = (now > c->opened_ns ? now - c->opened_ns : 0) + RTT_AGE_SLACK_NS,
        };
        why = rtt_report_decode(f->payload, f->len, &lim, &report);
    }
    if (why != RTT_REPORT_OK) {
        counter_add(&st->rtt_rejected[why], 1);
        LOG_RATELIMITED(why == RTT_REJECT_DISABLED ? LOG_DEBUG : LOG_WARN, "RTT report refused",
            LF_U("conn", c->id), LF_S("peer", c->peer_str), LF_S("reason", rtt_reject_tag(why)),
            LF_U("bytes", f->len));
        return;
    }
    rtt_report_record(&report, &st->client_rtt_ns);
    c->rtt_samples += report.samples;
    counter_add(&st->rtt_reports, 1);
}

/* The common case in framed mode: a run of complete data frames, taken with
 * nothing but the header arithmetic per frame. The counters and the size
 * histogram are updated once per run of equal sizes, not once per message:
 * with 64-byte messages that per-message bookkeeping cost as much as the
 * rest of the server's own work. It stops before the first frame it cannot
 * take so (not data, incomplete, over --max-payload, or one whose echo would
 * take pending output over --max-pending-output): process_input's general
 * path decides about that one, as it would have. Only while messages are not
 * logged one by one (LOG_DEBUG). run is where the run of unsent echoes
 * began (process_input). Returns where it stopped. */
TCPMSG_HOT static size_t take_data_run(struct conn *c, const uint8_t *buf, size_t pos, size_t len,
                                       size_t run, uint64_t now)
{
    const struct server_config *cfg = cfg_of(c);
    size_t max_payload = cfg->max_payload, cap = cfg->max_pending_output;
    size_t pending = c->out.len + (pos - run); /* as process_input counts it */
    /* Frames are taken while each ends at or before stop: the end of the
     * input, or where their echoes would take pending output past the cap.
     * With nothing pending the first frame goes whatever its size (as in
     * process_input), and the cap counts from its echo on. */
    size_t stop = len;
    if (len - pos >= FRAME_HEADER_SIZE) {
        size_t allowed = cap > pending ? cap - pending : 0;
        if (pending == 0) {
            size_t first = FRAME_HEADER_SIZE + frame_header_len(buf + pos);
            if (allowed < first)
                allowed = first;
        }
        if (allowed < len - pos)
            stop = pos + allowed;
    }
    struct server_stats *st = stats_of(c);
    size_t same_len = SIZE_MAX;
    uint64_t msgs = 0, same_from = 0;
    /* The stage sample is due at the due-th frame of the run (never when
     * sampling is off); the echo of buf[x] is output byte number out_pos + x. */
    uint64_t due = c->stage_until != 0 ? c->stage_until : UINT64_MAX;
    uint64_t out_pos = stage_out_pos(c) - run;
    /* A data frame's type byte is 0, so its header, read as one number, is
     * its length: one comparison refuses another type and an oversize
     * length (max_payload < 2^24). */
    _Static_assert(FRAME_DATA == 0, "a data frame's header is its length");
    _Static_assert(FRAME_MAX_PAYLOAD_LIMIT <= FRAME_LEN_MASK, "a length fits below the type byte");
    while (stop - pos >= FRAME_HEADER_SIZE) {
        size_t plen = frame_header_load(buf + pos);
        if (plen > max_payload || plen + FRAME_HEADER_SIZE > stop - pos)
            break;
        if (plen != same_len) {
            if (msgs > same_from)
                hist_record_n(&st->msg_bytes, same_len, msgs - same_from);
            same_len = plen;
            same_from = msgs;
        }
        msgs++;
        pos += FRAME_HEADER_SIZE + plen;
        if (msgs == due) {
            stage_take(c, out_pos + pos);
            due = msgs + c->stage_until;
        }
    }
    if (c->stage_until != 0)
        c->stage_until = (unsigned)(due - msgs);
    if (msgs == 0)
        return pos;
    hist_record_n(&st->msg_bytes, same_len, msgs - same_from);
    counter_add(&st->msgs_in[STATS_FRAMED], msgs);
    counter_add(&c->pub.msgs_in, msgs);
    if (c->unsent_msgs == 0)
        c->unsent_since_ns = now;
    c->unsent_msgs += msgs;
    return pos;
}

/* Parse and answer every complete message in buf[0..len). Returns how many
 * bytes were used up; the rest (a partial message, or messages whose replies
 * would take pending output over --max-pending-output) waits for later.
 * After an error reply the rest is discarded: all of len is returned.
 * In framed mode, consecutive data frames form a run [run, pos) that is
 * echoed in one piece when a non-data frame or the end interrupts it. */
TCPMSG_HOT static size_t process_input(struct conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
    const struct server_config *cfg = cfg_of(c);
    bool framed = c->mode == FRAME_MODE_FRAMED;
    bool fast = framed && !log_enabled(LOG_DEBUG);
    size_t pos = 0, run = 0;
    while (pos < len && (c->state == CONN_READING || c->state == CONN_DRAINING)) {
        if (fast) {
            pos = take_data_run(c, buf, pos, len, run, now);
            if (pos == len)
                break;
        }
        struct frame f;
        ssize_t rc = framed ? parse_framed(c, buf + pos, len - pos, &f)
                            : frame_parse_line(buf + pos, len - pos, cfg->max_payload,
                                               c->peer_eof, &c->scanned, &f);
        if (rc == FRAME_INCOMPLETE)
            break;
        if (rc < 0) {
            if (pos > run && !echo_frames(c, buf + run, pos - run, now))
                return len;
            reject_input(c, buf + pos, rc, now);
            return len;
        }
        if (framed && f.type == FRAME_RTT_REPORT) {
            if (pos > run && !echo_frames(c, buf + run, pos - run, now))
                return len;
            take_rtt_report(c, &f, now);
            pos += (size_t)rc;
            run = pos;
            continue;
        }
        /* Pending output stays within --max-pending-output: a reply that
         * would cross it waits, unless nothing at all is pending (one reply
         * larger than the cap still goes out, or nothing ever would). */
        size_t queued = c->out.len + (pos - run);
        size_t reply = framed ? (size_t)rc : f.len + 1;
        if (queued > 0 && queued + reply > cfg->max_pending_output) {
            /* The client is not reading its replies. */
            conn_enter(c, c->state == CONN_DRAINING ? CONN_DRAIN_BLOCKED : CONN_BLOCKED, now);
            break;
        }
        if (!handle_message(c, &f, now)) {
            conn_close(c, CLOSE_NO_MEMORY, now);
            return len;
        }
        pos += (size_t)rc;
        /* A data frame's echo ends with the run's output so far; a text
         * reply was queued last. */
        if (c->stage_until != 0 && --c->stage_until == 0)
            stage_take(c, stage_out_pos(c) + (framed ? pos - run : 0));
        if (!framed)
            run = pos; /* text replies are already queued */
    }
    if (pos > run && !echo_frames(c, buf + run, pos - run, now))
        return len;
    return pos;
}

/* After process_input used up `used` of buf[0..len): keep the rest in the
 * connection's own buffer, and note when the partial message began. false
 * when the connection was closed. */
static bool keep_input(struct conn *c, const uint8_t *buf, size_t used, size_t len, uint64_t now)
{
    if (c->state == CONN_CLOSED)
        return false;
    size_t rest = len - used;
    if (c->state == CONN_FLUSHING || c->state == CONN_LINGER)
        rest = 0; /* after an error reply, nothing more is read */
    if (buf == c->in) {
        if (rest > 0 && used > 0) /* c->in is NULL at an EOF with nothing held */
            memmove(c->in, c->in + used, rest);
    } else if (rest > 0) {
        if (in_reserve(c, rest) < 0) {
            conn_close(c, CLOSE_NO_MEMORY, now);
            return false;
        }
        memcpy(c->in, buf + used, rest);
    }
    c->in_len = rest;
    if (rest == 0)
        c->frame_start_ns = 0;
    else if (used > 0 || c->frame_start_ns == 0)
        c->frame_start_ns = now;
    return true;
}

/* Answer what the connection's own buffer holds (after BLOCKED). */
static void process_buffered(struct conn *c, uint64_t now)
{
    size_t used = process_input(c, c->in, c->in_len, now);
    keep_input(c, c->in, used, c->in_len, now);
}

/* Service time ends when the last reply of the unsent ones reached the
 * kernel, now; with several replies in one write, each is charged from the
 * oldest one's arrival (an upper bound, exact when a read carries one
 * message). Reading the clock here, once a read, cost 2.7 % of the server's
 * CPU at 8 connections x 4 KiB messages (bench/README.md): the clock read
 * waits for the memory operations before it, the copy of the reply into
 * the kernel among them. Replies to messages read in the same pass of the
 * loop (the same wakeup: the common case on epoll) are therefore charged
 * together at the end of the pass, from its start, by conn_pass_end: the
 * pass's length, which bounds each one's from above (a reply written early
 * in the pass waited less) and is exact for a pass that serves one read.
 * Those that waited longer (for room, behind a full buffer, or io_uring's
 * writes, which complete in a later pass) read the clock. */
TCPMSG_HOT static void charge_service(struct conn *c)
{
    struct conn_pass *pass = c->ctx->pass;
    if (pass != NULL && c->unsent_since_ns == loop_now(c->ctx->loop)) {
        pass->replies += c->unsent_msgs;
        return;
    }
    uint64_t done = net_now_ns();
    hist_record_n(&stats_of(c)->service_ns, done - c->unsent_since_ns, c->unsent_msgs);
}

TCPMSG_HOT void conn_pass_end(const struct conn_ctx *ctx, uint64_t start)
{
    struct conn_pass *pass = ctx->pass;
    if (pass == NULL || pass->replies == 0)
        return;
    uint64_t end = net_now_ns();
    hist_record_n(&ctx->stats->service_ns, end > start ? end - start : 0, pass->replies);
    pass->replies = 0;
}

/* A write of pending output completed: w bytes taken, or -errno. Counts
 * them, and once everything queued has reached the kernel, the replies.
 * (With w == 0 it only does the latter, after replies echoed directly.) */
TCPMSG_HOT static void written(struct conn *c, ssize_t w, uint64_t now)
{
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
        outq_consume(&c->out, c->ctx->pool, (size_t)w);
        account_written(c, (size_t)w, now);
    }
    if (c->out.len > 0) {
        if (c->write_wait_ns == 0)
            c->write_wait_ns = now;
        return;
    }
    /* Everything queued has reached the kernel. */
    c->write_wait_ns = 0;
    if (c->unsent_msgs > 0) {
        struct server_stats *st = stats_of(c);
        charge_service(c);
        counter_add(&st->msgs_out[stats_mode(c)], c->unsent_msgs);
        counter_add(&c->pub.msgs_out, c->unsent_msgs);
        c->unsent_msgs = 0;
    }
}

/* Write pending output: one write at a time, as much as the kernel takes.
 * While one is not over (a partial write waiting for room, or io_uring's
 * write in flight), on_write continues. */
static void flush_output(struct conn *c, uint64_t now)
{
    if (c->writing) {
        /* Output waits (behind a direct echo the kernel took only part of,
         * say): the write timeout's clock runs from now. */
        if (c->out.len > 0 && c->write_wait_ns == 0)
            c->write_wait_ns = now;
        return;
    }
    if (c->out.len == 0) {
        written(c, 0, now);
        return;
    }
    /* More than WRITE_IOVS chunks pending: a write the kernel took whole
     * is followed by the next at once (nothing else would start it). */
    while (c->out.len > 0 && !c->writing && c->state != CONN_CLOSED) {
        struct iovec iov[WRITE_IOVS];
        int n = outq_iov(&c->out, iov, WRITE_IOVS);
        ssize_t w = io_write(c, iov, n);
        if (w == -EINPROGRESS) {
            if (c->write_wait_ns == 0)
                c->write_wait_ns = now;
            return;
        }
        written(c, w, now);
        if (w <= 0)
            return;
    }
}

/* No more input will come (the client's EOF, or the drain is over): finish
 * once the replies are out. */
static void end_input(struct conn *c, uint64_t now)
{
    c->reason = c->peer_eof ? CLOSE_PEER : CLOSE_SHUTDOWN;
    conn_enter(c, CONN_FLUSHING, now);
    flush_output(c, now);
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
    io_shutdown_write(c);
    conn_enter(c, CONN_LINGER, now);
}

/* After any I/O: move the connection along its states until it must wait
 * for the kernel (or a timer), then watch the right events. */
static void after_io(struct conn *c, uint64_t now)
{
    for (;;) {
        switch (c->state) {
        case CONN_BLOCKED:
        case CONN_DRAIN_BLOCKED:
            if (c->out.len > 0)
                goto wait;
            /* Replies drained: serve what is buffered. Regression: leaving
             * after one round could strand a connection BLOCKED with nothing
             * pending, watched for no event, never served again. */
            conn_enter(c, c->state == CONN_BLOCKED ? CONN_READING : CONN_DRAINING, now);
            process_buffered(c, now);
            if (c->state != CONN_CLOSED)
                flush_output(c, now);
            continue;
        case CONN_READING:
            if (!c->peer_eof)
                goto wait;
            end_input(c, now);
            continue;
        case CONN_DRAINING:
            if (c->peer_eof || c->drain_left == 0) {
                end_input(c, now);
                continue;
            }
            /* Wait for more, until the quiet timer says done: the clock
             * runs from the last input (take_input stops it). */
            if (c->drain_quiet_ns == 0)
                c->drain_quiet_ns = now;
            goto wait;
        case CONN_FLUSHING:
            if (c->out.len > 0)
                goto wait;
            finish_flushing(c, now);
            continue;
        case CONN_CLOSED:
            return;
        default: /* PAUSED and LINGER wait for the socket or a timer */
            goto wait;
        }
    }
wait:
    update_io(c);
}

/* LINGER: what a read brought (r bytes, or -errno) is discarded; close at
 * EOF or error. */
static void discard_input(struct conn *c, ssize_t r, uint64_t now)
{
    if (r > 0) { /* discarded, but received: the byte counters see them */
        counter_add(&c->pub.bytes_in, (uint64_t)r);
        counter_add(&stats_of(c)->bytes_in[stats_mode(c)], (uint64_t)r);
    }
    if (r == 0 || (r < 0 && r != -EAGAIN))
        conn_close(c, c->reason, now);
}

/* How much the next read may bring: room is how many bytes the memory
 * budget lets this connection add (SIZE_MAX: no limit). Never past what the
 * buffers may hold (in_limit). With a large partial message buffered, the
 * read is sized like what already arrived (at least CONN_SMALL_PARTIAL) and
 * never past what the message can still need (framed mode knows its
 * length): the connection's buffer, grown for it, then holds at most twice
 * what arrived, plus 4 KiB. Regression: every read doubled the buffer,
 * whatever it brought: 4,208 bytes received held 1 MiB. */
static size_t read_bound(struct conn *c, size_t room)
{
    size_t limit = in_limit(c);
    size_t step = room < CONN_READ_MAX ? room : CONN_READ_MAX;
    if (c->in_len > CONN_SMALL_PARTIAL) {
        size_t grow = c->in_len;
        if (step > grow)
            step = grow;
        if (c->mode == FRAME_MODE_FRAMED && c->in_len >= FRAME_HEADER_SIZE) {
            size_t whole = FRAME_HEADER_SIZE + frame_header_len(c->in);
            if (whole < limit)
                limit = whole;
        }
    }
    if (c->in_len >= limit)
        return 0;
    return step < limit - c->in_len ? step : limit - c->in_len;
}

/* Put n delivered bytes behind the partial message held: a small partial
 * is copied into the headroom in front of the delivery (one copy of at
 * most 4 KiB, and the parser reads the loop's buffer in place), the
 * delivery is appended to a large one, grown by what arrived: the read's
 * bound (read_bound) already grows it geometrically within the budget's
 * room, and large buffers are their own mappings, so growing one is an
 * mremap, not a copy. Returns the start of the whole, or NULL when memory
 * is short. */
static uint8_t *in_take(struct conn *c, uint8_t *data, size_t n)
{
    if (c->in_len <= CONN_SMALL_PARTIAL) {
        if (c->in_len > 0)
            memcpy(data - c->in_len, c->in, c->in_len);
        return data - c->in_len;
    }
    if (in_reserve(c, c->in_len + n) < 0)
        return NULL;
    memcpy(c->in + c->in_len, data, n);
    return c->in;
}

/* A read brought n bytes: count them, and the connection was active. */
TCPMSG_HOT static void count_input(struct conn *c, size_t n, uint64_t now)
{
    counter_add(&c->pub.bytes_in, (uint64_t)n);
    counter_add(&stats_of(c)->bytes_in[stats_mode(c)], (uint64_t)n);
    c->active_ns = now;
}

/* process_input for what a read brought; with stage sampling on, also how
 * many messages it completed (the stamp window, stage_want_rx). */
TCPMSG_HOT static size_t process_read(struct conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
    if (c->stage_until == 0)
        return process_input(c, buf, len, now);
    uint64_t msgs = counter_get(&c->pub.msgs_in);
    size_t used = process_input(c, buf, len, now);
    msgs = counter_get(&c->pub.msgs_in) - msgs;
    c->read_msgs = msgs < STAGE_RX_WINDOW ? (unsigned)msgs : STAGE_RX_WINDOW;
    return used;
}

/* What a read brought: r new bytes at buf[len..len+r) behind the len bytes
 * already held (buf is the owner's read buffer or the connection's own), 0
 * at EOF, or -errno. Parse and answer what is complete, keep the rest. */
static void take_input(struct conn *c, uint8_t *buf, size_t len, ssize_t r, uint64_t now)
{
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
    } else {
        if (c->mode == FRAME_MODE_UNKNOWN)
            c->mode = frame_detect_mode(buf[0]);
        len += (size_t)r;
        count_input(c, (size_t)r, now);
        if (c->state == CONN_DRAINING)
            c->drain_left -= (size_t)r < c->drain_left ? (size_t)r : c->drain_left;
        c->drain_quiet_ns = 0;
    }
    size_t used = process_read(c, buf, len, now);
    if (keep_input(c, buf, used, len, now))
        flush_output(c, now);
}

/* A paused client stopped sending: what is left of its input is what the
 * kernel holds. If that cannot complete its framed message, the message
 * never will: drop the partial message, write the replies still owed for
 * the complete ones (the client may still be reading them), then LINGER
 * discards the rest to EOF and closes. Otherwise (and in text mode, where
 * the end of input ends the last line) read it: the message completes
 * within its --max-payload and is answered, so the server learns of the
 * close without waiting for room. */
static void paused_peer_done(struct conn *c, uint64_t now)
{
    size_t avail = io_input_waiting(c);
    if (c->mode == FRAME_MODE_FRAMED && c->in_len >= FRAME_HEADER_SIZE) {
        size_t whole = FRAME_HEADER_SIZE + frame_header_len(c->in);
        if (c->in_len + avail < whole) {
            /* Regression: going straight to LINGER threw away the pending
             * replies of messages already received and counted. */
            c->reason = CLOSE_PEER;
            free(c->in);
            c->in = NULL;
            c->in_len = c->in_cap = 0;
            c->frame_start_ns = 0;
            recharge(c);
            conn_enter(c, CONN_FLUSHING, now);
            flush_output(c, now);
            return;
        }
    }
    c->peer_done = true;
    conn_enter(c, CONN_READING, now);
}

/* The common read of a busy framed connection, served with less
 * bookkeeping: the connection held and owed nothing before it (nothing
 * buffered, no output pending or in flight, nothing charged to the memory
 * budget), and after process_input it still holds and owes nothing: every
 * message was whole and its reply went to the kernel at once (epoll writes
 * on the spot). Then nothing the general path does after a read
 * (keep_input, flush_output, after_io, update_io) would change anything
 * but the counters written() keeps and the activity published: the state
 * stays READING, no buffer is kept, no charge changes, and the read asked
 * for stays right, as long as the budget still has room for every account
 * to read in full (membudget_take's first case, checked here). Skipping
 * that bookkeeping saved about 2 % of the server's CPU at 8 x 1 x 4 KiB and
 * 50 x 16 x 64 B (bench/README.md). false, having done nothing, when the
 * connection is not in that state; a read that does not end settled
 * continues as the general path (take_input) would. */
TCPMSG_HOT static bool take_input_settled(struct conn *c, uint8_t *data, size_t n, uint64_t now)
{
    if (c->state != CONN_READING || c->mode != FRAME_MODE_FRAMED || c->in_len != 0 ||
        c->mem != 0 || c->out.len != 0 || c->writing || c->peer_done || io_writes_later(c))
        return false;
    count_input(c, n, now);
    size_t used = process_read(c, data, n, now);
    if (used == n && c->state == CONN_READING && c->out.len == 0 && !c->writing &&
        membudget_plenty(c->ctx->budget, CONN_READ_MAX)) {
        written(c, 0, now); /* every reply is in the kernel */
        counter_set(&c->pub.active_ns, c->active_ns);
        stage_want_rx(c);
        return true;
    }
    if (keep_input(c, data, used, n, now))
        flush_output(c, now);
    if (c->state != CONN_CLOSED)
        after_io(c, now);
    return true;
}

/* The loop delivered input: n bytes at data (with the loop's headroom in
 * front), 0 at the client's EOF, or -errno. Deliveries can arrive in any
 * state (io_uring: one read asked for before the state stopped reading);
 * they are bounded by what the read was asked for, so the input buffer
 * stays within in_limit, and what a state does not serve yet is kept. */
TCPMSG_HOT static void on_read(struct loop_stream *s, void *data, ssize_t n, uint64_t now)
{
    struct conn *c = s->data;
    if (n > 0 && take_input_settled(c, data, (size_t)n, now))
        return;
    if (c->state == CONN_LINGER) {
        discard_input(c, n, now);
    } else if (n <= 0) {
        take_input(c, c->in, c->in_len, n, now);
    } else {
        size_t held = c->in_len;
        uint8_t *buf = in_take(c, data, (size_t)n);
        if (buf == NULL)
            conn_close(c, CLOSE_NO_MEMORY, now);
        else
            take_input(c, buf, held, n, now);
    }
    if (c->state != CONN_CLOSED)
        after_io(c, now);
}

/* A write ended. epoll: n == 0, the socket has room for the rest. io_uring:
 * n bytes taken, or -errno. */
static void on_write(struct loop_stream *s, ssize_t n, uint64_t now)
{
    struct conn *c = s->data;
    c->writing = false;
    if (n != 0)
        written(c, n, now);
    if (c->state == CONN_CLOSED)
        return;
    flush_output(c, now);
    if (c->state != CONN_CLOSED)
        after_io(c, now);
}

/* Back to READING from PAUSED: what a delivery brought while paused (one
 * read that was already asked for, io_uring) is served first. */
static void serve_buffered(struct conn *c, uint64_t now)
{
    if (c->state == CONN_READING && c->in_len > 0) {
        process_buffered(c, now);
        if (c->state != CONN_CLOSED)
            flush_output(c, now);
    }
    if (c->state != CONN_CLOSED)
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
    conn_enter(c, CONN_FLUSHING, now);
    c->in_len = 0;
    if (!queue_reply(c, frame, n, NULL, 0)) {
        conn_close(c, CLOSE_NO_MEMORY, now);
        return;
    }
    flush_output(c, now);
    after_io(c, now);
}

/* Give back input memory not in use: all of it once no partial message is
 * left, or the excess of a buffer grown for a large message when only a
 * small partial one remains. (Output chunks go back as soon as they are
 * written.) Regression: a 1 MiB message followed by 1 byte of the next
 * kept 1 MiB until the frame timeout. */
static void shrink_idle(struct conn *c)
{
    if (c->in == NULL)
        return;
    if (c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    } else if (c->in_len <= CONN_SMALL_PARTIAL && c->in_cap > 2 * CONN_SMALL_PARTIAL) {
        uint8_t *p = realloc(c->in, c->in_len < IN_MIN_CAP ? IN_MIN_CAP : c->in_len);
        if (p == NULL)
            return; /* keep the larger one */
        c->in = p;
        c->in_cap = c->in_len < IN_MIN_CAP ? IN_MIN_CAP : c->in_len;
    } else {
        return;
    }
    recharge(c);
    publish(c);
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
            LF_S("peer", c->peer_str), LF_U("pending_bytes", c->out.len));
        /* An error reply that will not go out keeps its reason; replies the
         * client never read make it a slow reader, EOF or not. */
        bool error_reply = c->state == CONN_FLUSHING && c->reason != CLOSE_PEER &&
                           c->reason != CLOSE_SHUTDOWN;
        conn_close(c, error_reply ? c->reason : CLOSE_SLOW_READER, now);
        return;
    }
    shrink_idle(c);
    if (c->state == CONN_PAUSED && io_peer_done(c)) {
        paused_peer_done(c, now);
        serve_buffered(c, now);
        return;
    }
    if (c->state == CONN_PAUSED) {
        /* Room again: at once for a connection holding less than anyone may
         * hold (its replies drained, say), otherwise once the total is back
         * under the resume mark. Meanwhile the client is not late: the
         * server is the one not reading. */
        if (c->mem < MEMBUDGET_SMALL_HOLDING || membudget_may_resume(c->ctx->budget)) {
            conn_enter(c, CONN_READING, now);
            serve_buffered(c, now);
        }
        return;
    }
    if (c->state == CONN_DRAINING && c->drain_quiet_ns != 0 &&
        now - c->drain_quiet_ns >= DRAIN_QUIET_NS) {
        end_input(c, now); /* the client has gone quiet: finish */
        after_io(c, now);
        return;
    }
    if (c->state != CONN_READING && c->state != CONN_DRAINING)
        return;
    if (c->frame_start_ns != 0 && cfg->frame_timeout > 0 &&
        now - c->frame_start_ns >= sec_to_ns(cfg->frame_timeout)) {
        expire_frame(c, now);
        return;
    }
    if (cfg->idle_timeout > 0 && c->out.len == 0 &&
        now - c->active_ns >= sec_to_ns(cfg->idle_timeout))
        conn_close(c, CLOSE_IDLE, now);
}

void conn_begin_drain(struct conn *c, uint64_t now)
{
    /* Answer what the client already sent (what we hold, and what the kernel
     * holds for us), then close; after_io does it as output allows. The
     * drain's reads are bounded: a connection paused for memory takes part. */
    switch (c->state) {
    case CONN_READING:
    case CONN_PAUSED:
        conn_enter(c, CONN_DRAINING, now);
        break;
    case CONN_BLOCKED:
        conn_enter(c, CONN_DRAIN_BLOCKED, now);
        break;
    case CONN_FLUSHING: /* already answering its last */
        break;
    default: /* already draining, lingering or closed */
        return;
    }
    after_io(c, now);
}
