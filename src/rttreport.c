/* rttreport: encoding, decoding and checking of RTT_REPORT payloads. */
#include "tcpmsg/rttreport.h"

#include "tcpmsg/counter.h"
#include "tcpmsg/frame.h"

size_t rtt_report_encode(const struct hist *h, uint8_t *out, size_t cap)
{
    size_t n = FRAME_HEADER_SIZE;
    out[n++] = RTT_REPORT_VERSION;
    out[n++] = HIST_SUB_BITS;
    struct hist_iter it;
    struct hist_bucket b;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b)) {
        size_t idx = hist_bucket_index(b.lo);
        /* A count over 32 bits goes out as several entries for one bucket. */
        for (uint64_t left = b.count; left > 0 && n + RTT_REPORT_ENTRY <= cap;) {
            uint32_t count = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
            out[n++] = (uint8_t)(idx >> 8);
            out[n++] = (uint8_t)idx;
            out[n++] = (uint8_t)(count >> 24);
            out[n++] = (uint8_t)(count >> 16);
            out[n++] = (uint8_t)(count >> 8);
            out[n++] = (uint8_t)count;
            left -= count;
        }
    }
    if (n == FRAME_HEADER_SIZE + RTT_REPORT_HEAD)
        return 0;
    frame_header_encode(out, FRAME_RTT_REPORT, n - FRAME_HEADER_SIZE);
    return n;
}

const char *rtt_reject_tag(enum rtt_reject r)
{
    static const char *const tags[] = {
#define RTT_REJECT_TAG(name, tag, text) tag,
        RTT_REJECT_REASONS(RTT_REJECT_TAG)
#undef RTT_REJECT_TAG
    };
    return (size_t)r < RTT_REJECT_COUNT ? tags[r] : "ok";
}

struct rtt_report_entry rtt_report_entry(const struct rtt_report *r, size_t i)
{
    const uint8_t *e = r->entries + i * RTT_REPORT_ENTRY;
    return (struct rtt_report_entry){
        .bucket = (uint16_t)(e[0] << 8 | e[1]),
        .count = (uint32_t)e[2] << 24 | (uint32_t)e[3] << 16 | (uint32_t)e[4] << 8 | e[5],
    };
}

enum rtt_reject rtt_report_decode(const uint8_t *payload, size_t len,
                                  const struct rtt_report_limits *lim, struct rtt_report *out)
{
    *out = (struct rtt_report){ .entries = NULL };
    if (len < RTT_REPORT_HEAD || payload[0] != RTT_REPORT_VERSION || payload[1] != HIST_SUB_BITS ||
        (len - RTT_REPORT_HEAD) % RTT_REPORT_ENTRY != 0 ||
        (len - RTT_REPORT_HEAD) / RTT_REPORT_ENTRY > RTT_REPORT_MAX_ENTRIES)
        return RTT_REJECT_MALFORMED;
    size_t n = (len - RTT_REPORT_HEAD) / RTT_REPORT_ENTRY;
    out->entries = payload + RTT_REPORT_HEAD;
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        struct rtt_report_entry e = rtt_report_entry(out, i);
        if (e.bucket >= HIST_BUCKETS) {
            out->n = 0;
            return RTT_REJECT_MALFORMED;
        }
        /* At most 4864 entries of 2^32-1: below 2^45, but say so in code. */
        out->samples = u64_add_sat(out->samples, e.count);
        if (e.count > 0 && hist_bucket_lo(e.bucket) > out->max_lo)
            out->max_lo = hist_bucket_lo(e.bucket);
    }
    if (out->samples > lim->max_samples)
        return RTT_REJECT_TOO_MANY_SAMPLES;
    if (out->max_lo > lim->max_value)
        return RTT_REJECT_VALUE_TOO_LARGE;
    return RTT_REPORT_OK;
}

void rtt_report_record(const struct rtt_report *r, struct hist *dst)
{
    for (size_t i = 0; i < r->n; i++) {
        struct rtt_report_entry e = rtt_report_entry(r, i);
        uint64_t lo = hist_bucket_lo(e.bucket);
        hist_record_n(dst, lo + (hist_bucket_hi(e.bucket) - lo) / 2, e.count);
    }
}
