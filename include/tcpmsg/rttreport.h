/* rttreport: the RTT_REPORT control frame (docs/PROTOCOL.md), by which a
 * client tells the server the round-trip times it measured, as histogram
 * bucket counts in the shared hist geometry. Encoding, decoding and the
 * rules a report must keep; no I/O, no allocation.
 */
#ifndef TCPMSG_RTTREPORT_H
#define TCPMSG_RTTREPORT_H

#include <stddef.h>
#include <stdint.h>

#include "tcpmsg/hist.h"

#define RTT_REPORT_VERSION 1
#define RTT_REPORT_HEAD 2   /* version byte, sub-bucket bits byte */
#define RTT_REPORT_ENTRY 6  /* u16 bucket index, u32 count, big-endian */
/* The most entries a report may carry: one per bucket. The encoder never
 * writes more (a bucket's count above 2^32-1 is split only while room is
 * left), so a longer payload is malformed. */
#define RTT_REPORT_MAX_ENTRIES HIST_BUCKETS
/* The largest report: a header and every bucket, framed. */
#define RTT_REPORT_MAX_FRAME (4 + RTT_REPORT_HEAD + RTT_REPORT_MAX_ENTRIES * RTT_REPORT_ENTRY)

/* Why a report is refused (enum name, metric label, meaning). A refused
 * report is dropped whole: none of its samples are recorded. The decoder
 * checks in this order and returns the first rule broken; "disabled" is
 * the server's own decision (--rtt-reports ignore), never the decoder's. */
#define RTT_REJECT_REASONS(X)                                                                     \
    X(RTT_REJECT_MALFORMED, "malformed",                                                          \
      "unknown version or geometry byte, a length that is not 2 + 6N, more entries than buckets, " \
      "or a bucket index past the last")                                                          \
    X(RTT_REJECT_TOO_MANY_SAMPLES, "too_many_samples",                                            \
      "its samples and those already accepted on the connection exceed the replies the server "  \
      "has written on it")                                                                        \
    X(RTT_REJECT_VALUE_TOO_LARGE, "value_too_large",                                              \
      "a sample's bucket starts above the connection's age: no round trip on it can have taken " \
      "that long")                                                                                \
    X(RTT_REJECT_DISABLED, "disabled", "the server runs with --rtt-reports ignore")

enum rtt_reject {
#define RTT_REJECT_ENUM(name, tag, text) name,
    RTT_REJECT_REASONS(RTT_REJECT_ENUM)
#undef RTT_REJECT_ENUM
    RTT_REJECT_COUNT,
    RTT_REPORT_OK = RTT_REJECT_COUNT /* not a reason: the report is accepted */
};

/* The metric label of a reason ("too_many_samples"); "ok" for RTT_REPORT_OK. */
const char *rtt_reject_tag(enum rtt_reject r);

/* What a report may claim, from what the receiver knows of the connection. */
struct rtt_report_limits {
    uint64_t max_samples; /* replies written on the connection minus samples already accepted */
    uint64_t max_value;   /* the connection's age, in ns: no bucket may start above it */
};

struct rtt_report_entry {
    uint16_t bucket; /* < HIST_BUCKETS */
    uint32_t count;
};

/* A decoded report. Zero-copy: its entries are read from the payload it was
 * decoded from, which must outlive it. */
struct rtt_report {
    const uint8_t *entries; /* n entries of RTT_REPORT_ENTRY bytes, in the payload */
    size_t n;
    uint64_t samples; /* sum of the counts */
    uint64_t max_lo;  /* the lowest value of the highest bucket with a count; 0 if none */
};

/* Entry i (< r->n) of a decoded report. */
struct rtt_report_entry rtt_report_entry(const struct rtt_report *r, size_t i);

/* Encode the non-empty buckets of h (values in nanoseconds) as one complete
 * RTT_REPORT frame into out (cap bytes, at least RTT_REPORT_MAX_FRAME). A
 * count above 2^32-1 in one bucket is split over repeated entries for that
 * bucket; entries that do not fit in cap are left out (callers report often
 * enough that a bucket never holds 2^32 samples). Returns the frame size, or
 * 0 when h is empty. */
size_t rtt_report_encode(const struct hist *h, uint8_t *out, size_t cap);

/* Decode a report payload (len bytes, the frame header excluded) into out
 * (which points into payload) and check it against lim. Returns RTT_REPORT_OK, or the first rule it
 * breaks: RTT_REJECT_MALFORMED, RTT_REJECT_TOO_MANY_SAMPLES (out->samples >
 * lim->max_samples), RTT_REJECT_VALUE_TOO_LARGE (out->max_lo >
 * lim->max_value). Entries with a count of 0 claim nothing and pass any
 * limit. On a rejection out is partly written and must not be applied.
 * Pure: the same input always gives the same answer. */
enum rtt_reject rtt_report_decode(const uint8_t *payload, size_t len,
                                  const struct rtt_report_limits *lim, struct rtt_report *out);

/* Add an accepted report to dst, each entry at its bucket's midpoint. The
 * caller must own dst (hist's single-writer rule). */
void rtt_report_record(const struct rtt_report *r, struct hist *dst);

#endif
