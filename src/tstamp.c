/* tstamp: SO_TIMESTAMPING on TCP sockets, and the matching of transmit
 * timestamps to sampled messages by byte number. See tstamp.h; the stages
 * themselves are explained in docs/STAGES.md.
 */
#include "tcpmsg/tstamp.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <string.h>

/* What the socket reports. The transmit stamps themselves are asked for per
 * send (tstamp_tx_cmsg), so only sampled replies queue anything:
 * - SOFTWARE: report software timestamps (not hardware ones);
 * - RX_SOFTWARE: stamp received segments, for recvmsg's control data;
 * - OPT_ID: number each transmit stamp by the byte it is for;
 * - OPT_TSONLY: return the stamp alone, not a copy of the packet. */
static const uint32_t REPORT_FLAGS = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE |
                                     SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;

/* Asked for on a sampled send: the qdisc, the device and the peer's ACK. */
static const uint32_t TX_FLAGS =
    SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_ACK;

static const char *const tx_names[] = {
#define X(name, text) [TSTAMP_##name] = text,
    TSTAMP_TX_LIST(X)
#undef X
};

const char *tstamp_tx_name(enum tstamp_tx kind)
{
    return (unsigned)kind < TSTAMP_TX_COUNT ? tx_names[kind] : "?";
}

/* Number bytes from the next one written (Linux 6.2; older kernels refuse
 * it, and count from the oldest byte not yet acknowledged instead: the same
 * on a socket with nothing in flight). */
#ifndef SOF_TIMESTAMPING_OPT_ID_TCP
#define SOF_TIMESTAMPING_OPT_ID_TCP (1 << 16)
#endif

int tstamp_enable(int fd)
{
    uint32_t flags = REPORT_FLAGS | SOF_TIMESTAMPING_OPT_ID_TCP;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0)
        return 0;
    flags = REPORT_FLAGS;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0)
        return -errno;
    return 0;
}

int tstamp_disable(int fd)
{
    uint32_t flags = 0;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0 ? -errno : 0;
}

bool tstamp_enabled(int fd)
{
    uint32_t flags = 0;
    socklen_t len = sizeof flags;
    if (getsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, &len) < 0)
        return false;
    return (flags & SOF_TIMESTAMPING_OPT_ID) != 0;
}

size_t tstamp_tx_cmsg(void *buf)
{
    memset(buf, 0, TSTAMP_TX_CMSG_SPACE);
    struct cmsghdr *cm = buf;
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SO_TIMESTAMPING;
    cm->cmsg_len = CMSG_LEN(sizeof(uint32_t));
    memcpy(CMSG_DATA(cm), &TX_FLAGS, sizeof TX_FLAGS);
    return TSTAMP_TX_CMSG_SPACE;
}

static uint64_t timespec_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/* The software stamp is the first of the three struct timespec of
 * SCM_TIMESTAMPING (the other two are for hardware stamps). memcpy: control
 * data need not be aligned for struct timespec. */
static uint64_t scm_software_ns(const struct cmsghdr *cm)
{
    struct timespec ts;
    memcpy(&ts, CMSG_DATA(cm), sizeof ts);
    return timespec_ns(&ts);
}

uint64_t tstamp_rx_ns(const struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPING)
            return scm_software_ns(cm);
    return 0;
}

static int kind_of(uint32_t ee_info, enum tstamp_tx *kind)
{
    switch (ee_info) {
    case SCM_TSTAMP_SCHED: *kind = TSTAMP_SCHED; return 0;
    case SCM_TSTAMP_SND: *kind = TSTAMP_SND; return 0;
    case SCM_TSTAMP_ACK: *kind = TSTAMP_ACK; return 0;
    default: return -EINVAL;
    }
}

/* One entry of the error queue comes as two control messages: the stamp
 * (SCM_TIMESTAMPING) and a struct sock_extended_err whose origin says it is
 * a stamp, ee_info which one and ee_data the byte number. */
/* Room for one error-queue entry's control data. With OPT_TSONLY the entry
 * carries no data, only control messages: the stamp (3 timespecs) and the
 * extended error (with its offender address, for errors that are not
 * stamps). The union aligns it for struct cmsghdr. */
union tx_control {
    char buf[CMSG_SPACE(3 * sizeof(struct timespec)) +
             CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))];
    struct cmsghdr align;
};

static bool parse_tx(struct msghdr *msg, struct tstamp_report *r)
{
    uint64_t ns = 0;
    const struct sock_extended_err *ee = NULL;
    struct sock_extended_err copy;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPING) {
            ns = scm_software_ns(cm);
        } else if ((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                   (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
            memcpy(&copy, CMSG_DATA(cm), sizeof copy);
            ee = &copy;
        }
    }
    if (ee == NULL || ns == 0 || ee->ee_errno != ENOMSG ||
        ee->ee_origin != SO_EE_ORIGIN_TIMESTAMPING || kind_of(ee->ee_info, &r->kind) < 0)
        return false;
    r->key = ee->ee_data;
    r->ns = ns;
    return true;
}

/* One recvmsg(MSG_ERRQUEUE) and no more: 1 with *r filled, 0 when the queue
 * is empty, -ENOMSG when the entry read was not a timestamp (it is gone), or
 * -errno (-EINTR included: call again). */
static int read_tx_once(int fd, struct tstamp_report *r)
{
    union tx_control ctl;
    struct msghdr msg = { .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
    if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    return parse_tx(&msg, r) ? 1 : -ENOMSG;
}

int tstamp_read_tx_batch(int fd, struct tstamp_report *r, unsigned *entries)
{
    union tx_control ctl[TSTAMP_BATCH];
    struct mmsghdr msgs[TSTAMP_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (unsigned i = 0; i < TSTAMP_BATCH; i++) {
        msgs[i].msg_hdr.msg_control = ctl[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
    }
    *entries = 0;
    int n = recvmmsg(fd, msgs, TSTAMP_BATCH, MSG_ERRQUEUE | MSG_DONTWAIT, NULL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    int got = 0;
    for (int i = 0; i < n; i++)
        got += parse_tx(&msgs[i].msg_hdr, &r[got]);
    *entries = (unsigned)n;
    return got;
}

int tstamp_read_tx(int fd, struct tstamp_report *r)
{
    for (;;) {
        int rc = read_tx_once(fd, r);
        if (rc != -EINTR && rc != -ENOMSG)
            return rc;
    }
}

/* ---- matching ---------------------------------------------------------------------------- */

static void drop_first(struct tstamp_track *t, unsigned n)
{
    memmove(&t->pending[0], &t->pending[n], (t->npending - n) * sizeof t->pending[0]);
    t->npending -= n;
}

void tstamp_track_sent_n(struct tstamp_track *t, uint32_t key, uint64_t handed_ns,
                         unsigned count)
{
    if (t->npending > 0 && t->pending[t->npending - 1].key == key)
        return; /* the rest of a partial write: the same last byte */
    if (t->npending == TSTAMP_PENDING) {
        t->dropped += t->pending[0].count;
        drop_first(t, 1);
    }
    t->pending[t->npending++] =
        (struct tstamp_pending){ .key = key, .handed_ns = handed_ns, .count = count };
}

void tstamp_track_sent(struct tstamp_track *t, uint32_t key, uint64_t handed_ns)
{
    tstamp_track_sent_n(t, key, handed_ns, 1);
}

void tstamp_track_abandon(struct tstamp_track *t)
{
    for (unsigned i = 0; i < t->npending; i++)
        t->dropped += t->pending[i].count;
    t->npending = 0;
}

void tstamp_track_report(struct tstamp_track *t, const struct tstamp_report *r)
{
    for (unsigned i = 0; i < t->npending; i++) {
        struct tstamp_pending *p = &t->pending[i];
        if (tstamp_byte_at_or_before(p->key, r->key) && p->at_ns[r->kind] == 0)
            p->at_ns[r->kind] = r->ns;
    }
}

bool tstamp_track_next(struct tstamp_track *t, struct tstamp_tx_stages *out)
{
    while (t->npending > 0 && t->pending[0].at_ns[TSTAMP_ACK] != 0) {
        const struct tstamp_pending *p = &t->pending[0];
        if (p->at_ns[TSTAMP_SCHED] == 0 || p->at_ns[TSTAMP_SND] == 0) {
            t->dropped += p->count;
            drop_first(t, 1);
            continue;
        }
        uint64_t sched = tstamp_after(p->at_ns[TSTAMP_SCHED], p->handed_ns);
        uint64_t snd = tstamp_after(p->at_ns[TSTAMP_SND], sched);
        uint64_t ack = tstamp_after(p->at_ns[TSTAMP_ACK], snd);
        *out = (struct tstamp_tx_stages){
            .sched_ns = sched - p->handed_ns,
            .send_ns = snd - sched,
            .ack_ns = ack - snd,
            .count = p->count,
        };
        drop_first(t, 1);
        return true;
    }
    return false;
}
