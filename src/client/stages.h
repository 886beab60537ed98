/* stages: the client's view of where a round trip's time goes, from the
 * kernel's timestamps of the client's own socket (tcpmsg/tstamp.h). A
 * sampled round trip splits into three parts: until the message left for
 * the device, on the network and in the server, and in the client's receive
 * queue. This module does the arithmetic, picks the sampled messages and
 * keeps them until their stamps are in; it makes no system call. The server's
 * own stages are the server's; docs/STAGES.md relates the two.
 */
#ifndef TCPMSG_CLIENT_STAGES_H
#define TCPMSG_CLIENT_STAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "tcpmsg/counter.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/tstamp.h"

/* The parts of a round trip, in the order a message meets them: the name in
 * JSON and in --hdr-log tags (with "stage_" in front), and the words in text
 * output. Boundaries: handed to the kernel -> SND -> reply received -> read. */
#define CSTAGES(X)                                                                                 \
    X(CLIENT_TX, "client_tx", "client tx")   /* send handed to the kernel -> left for the device */ \
    X(NETWORK, "network", "network+server") /* SND -> the reply's last byte reached the socket */  \
    X(CLIENT_RX, "client_rx", "client rx")   /* that stamp -> the application read the reply */

enum cstage {
#define X(id, name, text) CSTAGE_##id,
    CSTAGES(X)
#undef X
        CSTAGE_COUNT
};

const char *cstage_name(enum cstage s); /* "client_tx"...; "?" for anything else */
const char *cstage_tag(enum cstage s);  /* "stage_client_tx"...: its --hdr-log tag */
const char *cstage_text(enum cstage s); /* "client tx"...; "?" for anything else */

/* Message k (counted from 0 on its connection) is sampled when every > 0
 * and k is a multiple of every: the first message of a connection is, so
 * even a short run has samples. */
static inline bool cstage_sampled(uint64_t k, unsigned every)
{
    return every > 0 && k % every == 0;
}

/* The four moments of a sampled round trip, on the clock of the kernel's
 * stamps (tstamp_now_ns); 0 when not known. */
struct cstage_times {
    uint64_t handed_ns; /* the message was handed to the kernel (just before the send) */
    uint64_t snd_ns;    /* the kernel's SND stamp of its last byte */
    uint64_t rx_ns;     /* the kernel's receive stamp of the reply's last byte */
    uint64_t read_ns;   /* the application had read the reply */
};

/* Split t into out[CSTAGE_COUNT] nanoseconds, which add up to read_ns -
 * handed_ns exactly. false (out untouched) when a moment is missing. Each
 * boundary is taken no earlier than the one before it, as tstamp does for
 * the server's stages, so no part is negative. */
bool cstage_split(const struct cstage_times *t, uint64_t out[CSTAGE_COUNT]);

/* ---- sampled messages in flight, for the load generator --------------------------------- */

/* Sampled messages of one connection awaiting their reply. With the default
 * rate and depth there is rarely more than one. */
#define CSTAGE_PENDING 8

struct cstage_track {
    struct cstage_pending {
        uint64_t seq;       /* the message's number on its connection */
        uint32_t key;       /* byte number of its last byte (tstamp's OPT_ID) */
        uint64_t handed_ns; /* tstamp_now_ns() when it was sent */
        uint64_t snd_ns;    /* its SND stamp, 0 until it arrives */
    } pending[CSTAGE_PENDING];
    unsigned npending;
};

/* Message seq, whose last byte is byte number key, was handed to the kernel
 * at handed_ns (0: not yet, see cstage_track_handed). false when
 * CSTAGE_PENDING samples already wait: the caller counts it as skipped. */
bool cstage_track_sent(struct cstage_track *t, uint64_t seq, uint32_t key, uint64_t handed_ns);

/* The samples not yet handed to the kernel are handed now (a load generator
 * queues messages first and writes them together). */
void cstage_track_handed(struct cstage_track *t, uint64_t now_ns);

/* A transmit stamp read from the error queue. SND applies to every sample
 * whose last byte is at or before the stamped byte (the kernel stamps the
 * last byte of a send, and of a segment later sends were appended to);
 * SCHED and ACK are not the client's business and are ignored. */
void cstage_track_report(struct cstage_track *t, const struct tstamp_report *r);

/* The reply to message seq has been read: true with *handed_ns and *snd_ns
 * (0 when its SND stamp never came) when seq was sampled; its entry, and
 * those of older messages (whose replies came without being taken), are
 * removed. false when seq was not sampled. */
bool cstage_track_take(struct cstage_track *t, uint64_t seq, uint64_t *handed_ns,
                       uint64_t *snd_ns);

/* ---- results -------------------------------------------------------------------------- */

/* One histogram per part, in nanoseconds, plus the samples that could not
 * be split. Single writer (the loadgen thread), read by anyone. */
struct cstage_hists {
    struct hist h[CSTAGE_COUNT];
    counter_t split;   /* samples split and recorded */
    counter_t skipped; /* sampled but not split: a stamp missing, or no room to track it */
};

void cstage_hists_init(struct cstage_hists *s);
/* Record the split of t, or count it skipped. */
void cstage_hists_record(struct cstage_hists *s, const struct cstage_times *t);
/* dst += src (dst is read and written by one thread). */
void cstage_hists_merge(struct cstage_hists *dst, const struct cstage_hists *src);

#endif
