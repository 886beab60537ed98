/* tstamp: the kernel's own timestamps of a TCP socket's bytes
 * (SO_TIMESTAMPING), for sampled messages: when the last byte of a message
 * reached the socket's receive queue, and when the last byte of a reply
 * entered the qdisc (SCHED), left for the device (SND) and was acknowledged
 * by the peer (ACK). It reads and matches timestamps; it does not decide
 * which messages are sampled, and it keeps no histograms.
 *
 * Software timestamps only: they come from the kernel's clock
 * (CLOCK_REALTIME), so every time compared with them is read with
 * tstamp_now_ns(), not with the monotonic clock the rest of tcpmsg uses.
 */
#ifndef TCPMSG_TSTAMP_H
#define TCPMSG_TSTAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* The three transmit timestamps, in the order a byte meets them. */
#define TSTAMP_TX_LIST(X)                                                                          \
    X(SCHED, "sched") /* handed to the qdisc (traffic control) layer */                           \
    X(SND, "snd")     /* handed to the device driver */                                            \
    X(ACK, "ack")     /* acknowledged by the peer's TCP */

enum tstamp_tx {
#define X(name, text) TSTAMP_##name,
    TSTAMP_TX_LIST(X)
#undef X
        TSTAMP_TX_COUNT
};

/* "sched", "snd", "ack"; "?" for anything else. */
const char *tstamp_tx_name(enum tstamp_tx kind);

/* The clock of the kernel's software timestamps, in nanoseconds. */
static inline uint64_t tstamp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Turn on reporting for fd, a connected TCP socket with nothing in flight
 * (the byte numbers count from its next byte written): receive timestamps
 * on every recvmsg() that asks for control data, and transmit timestamps,
 * numbered by byte (OPT_ID), for the sends that ask for them with
 * tstamp_tx_cmsg(). A socket that never sends that control message queues
 * no transmit timestamp at all, so the cost of an unsampled message is
 * nothing. The kernel starts stamping received segments a moment after the
 * first socket of the system asks: a receive timestamp of 0 means "none",
 * and a caller skips that sample. 0 or -errno (setsockopt's). */
int tstamp_enable(int fd);

/* Turn reporting off again. 0 or -errno. */
int tstamp_disable(int fd);

/* True if fd has SO_TIMESTAMPING reporting turned on (for tests and for the
 * connection list). */
bool tstamp_enabled(int fd);

/* Room for the control message that asks for the transmit timestamps of
 * one send(), and for the receive timestamp recvmsg() returns. */
#define TSTAMP_TX_CMSG_SPACE CMSG_SPACE(sizeof(uint32_t))
#define TSTAMP_RX_CMSG_SPACE CMSG_SPACE(3 * sizeof(struct timespec))

/* Write into buf (at least TSTAMP_TX_CMSG_SPACE bytes, aligned like a
 * struct cmsghdr) the control message that makes the kernel timestamp the
 * last byte of this sendmsg() at SCHED, SND and ACK. Returns its length, for
 * msg_controllen. */
size_t tstamp_tx_cmsg(void *buf);

/* The kernel's receive timestamp from a recvmsg()'s control data: when the
 * last segment this call returned bytes from reached the socket. 0 when
 * there is none. */
uint64_t tstamp_rx_ns(const struct msghdr *msg);

/* One transmit timestamp read from the socket's error queue. key is the
 * byte number of the timestamped byte, counted from 0 since tstamp_enable()
 * and wrapping at 2^32. */
struct tstamp_report {
    enum tstamp_tx kind;
    uint32_t key;
    uint64_t ns;
};

/* Read one transmit timestamp from fd's error queue without blocking:
 * 1 with *r filled, 0 when the queue is empty, or -errno. Entries that are
 * not timestamps (an ICMP error, say) are read and skipped. */
int tstamp_read_tx(int fd, struct tstamp_report *r);

/* Most entries tstamp_read_tx_batch reads in one call. */
#define TSTAMP_BATCH 16

/* One recvmmsg(MSG_ERRQUEUE) reading up to TSTAMP_BATCH entries: the
 * timestamps among them go to r[0..] (cap at least TSTAMP_BATCH), how many
 * is returned, and *entries says how many entries were read (timestamps or
 * not): fewer than TSTAMP_BATCH means the queue is now empty. 0 with
 * *entries 0 when it was empty, or -errno (-EINTR: call again). */
int tstamp_read_tx_batch(int fd, struct tstamp_report *r, unsigned *entries);

/* ---- matching transmit timestamps to sampled messages ---------------------------------- */

/* Byte numbers wrap at 2^32: a is at or before b when b - a, taken as a
 * signed 32-bit distance, is not negative (serial number arithmetic,
 * RFC 1982), which holds while fewer than 2 GiB separate them. Used by the
 * server's tracker here and by the client's (src/client/stages.c). */
static inline bool tstamp_byte_at_or_before(uint32_t a, uint32_t b)
{
    return (int32_t)(b - a) >= 0;
}

/* A stage boundary no earlier than the previous one, so that stages are
 * never negative. The kernel's stamps and tstamp_now_ns() read the same
 * clock, but a stamp is taken where the kernel finds it convenient: on
 * loopback the reply's receive stamp can be taken a few hundred nanoseconds
 * before SND is reported as done, for example, and a step of the wall clock
 * (NTP) moves everything. Used by the server's tracker and the client's
 * split (src/client/stages.c). */
static inline uint64_t tstamp_after(uint64_t at, uint64_t prev)
{
    return at > prev ? at : prev;
}

/* Samples in flight per connection: a sample stays here from the send of its
 * last byte until that byte is acknowledged (one round trip). With the
 * default sampling rate there is rarely more than one. */
#define TSTAMP_PENDING 4

/* What one sampled reply spent in each transmit stage, in nanoseconds:
 * handed to the kernel -> SCHED -> SND -> ACK. Each boundary is taken no
 * earlier than the one before it: on loopback (the noqueue qdisc) the
 * kernel takes SND before SCHED, and that stage is then 0, not negative. */
struct tstamp_tx_stages {
    uint64_t sched_ns; /* handed to the kernel until the qdisc */
    uint64_t send_ns;  /* qdisc until the device */
    uint64_t ack_ns;   /* device until the peer's ACK */
    unsigned count;    /* sampled messages these stages stand for (tstamp_track_sent_n) */
};

/* The transmit samples of one connection. Zero-initialised is empty. */
struct tstamp_track {
    struct tstamp_pending {
        uint32_t key;                    /* byte number of the sample's last byte */
        uint64_t handed_ns;              /* tstamp_now_ns() when it was sent */
        uint64_t at_ns[TSTAMP_TX_COUNT]; /* 0 until that timestamp arrives */
        unsigned count;                  /* sampled messages whose replies end here */
    } pending[TSTAMP_PENDING];
    unsigned npending;
    uint64_t dropped; /* samples given up (by count): ring full, or never completed */
};

/* A sample whose last byte is byte number key was handed to the kernel at
 * handed_ns. When all TSTAMP_PENDING slots are taken, the oldest sample is
 * given up (counted in dropped). */
void tstamp_track_sent(struct tstamp_track *t, uint32_t key, uint64_t handed_ns);

/* The same for count sampled messages whose replies went out in one write,
 * the last of them ending at byte number key: one entry, whose stages stand
 * for all of them (tstamp_tx_stages.count). Several messages answered by one
 * write take one slot, not one each. */
void tstamp_track_sent_n(struct tstamp_track *t, uint32_t key, uint64_t handed_ns,
                         unsigned count);

/* Give up every sample in flight (the connection is closing): they are
 * counted in dropped. */
void tstamp_track_abandon(struct tstamp_track *t);

/* Apply one report to every sample whose last byte is at or before the
 * report's byte: the kernel stamps only the last byte of each send (and of
 * a segment that later sends were appended to), so a stamp of a later byte
 * says the sample's bytes got there at that moment too. A stamp of an
 * earlier byte (a partial write's, taken before the sample's last byte was
 * sent) is ignored. */
void tstamp_track_report(struct tstamp_track *t, const struct tstamp_report *r);

/* Take the oldest sample whose ACK has arrived: true with *out filled.
 * A sample that was acknowledged without its SCHED or SND stamp (the error
 * queue was full) is given up and counted in dropped. */
bool tstamp_track_next(struct tstamp_track *t, struct tstamp_tx_stages *out);

#endif
