/* rttreport: the RTT_REPORT control frame (docs/PROTOCOL.md), by which a
 * client tells the server the round-trip times it measured, as histogram
 * bucket counts in the shared hist geometry. Encoding and validation only.
 */
#ifndef TCPMSG_RTTREPORT_H
#define TCPMSG_RTTREPORT_H

#include <stddef.h>
#include <stdint.h>

#include "tcpmsg/hist.h"

#define RTT_REPORT_VERSION 1
#define RTT_REPORT_HEAD 2   /* version byte, sub-bucket bits byte */
#define RTT_REPORT_ENTRY 6  /* u16 bucket index, u32 count, big-endian */
/* The largest report: a header and every bucket, framed. */
#define RTT_REPORT_MAX_FRAME (4 + RTT_REPORT_HEAD + HIST_BUCKETS * RTT_REPORT_ENTRY)

/* Encode the non-empty buckets of h (values in nanoseconds) as one complete
 * RTT_REPORT frame into out (cap bytes, at least RTT_REPORT_MAX_FRAME). A
 * count above 2^32-1 in one bucket is split over repeated entries for that
 * bucket; entries that do not fit in cap are left out (callers report often
 * enough that a bucket never holds 2^32 samples). Returns the frame size, or
 * 0 when h is empty. */
size_t rtt_report_encode(const struct hist *h, uint8_t *out, size_t cap);

/* Validate a report payload completely, then add it to dst (each entry
 * recorded at its bucket's midpoint). Returns the number of samples added,
 * or -1 (dst untouched) when the payload is malformed. */
int64_t rtt_report_apply(const uint8_t *payload, size_t len, struct hist *dst);

#endif
