/* rttreport: encoding and checking of RTT_REPORT payloads. */
#include "tcpmsg/rttreport.h"

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

static uint32_t entry_count(const uint8_t *e)
{
    return (uint32_t)e[2] << 24 | (uint32_t)e[3] << 16 | (uint32_t)e[4] << 8 | e[5];
}

static size_t entry_index(const uint8_t *e)
{
    return (size_t)e[0] << 8 | e[1];
}

int64_t rtt_report_apply(const uint8_t *payload, size_t len, struct hist *dst)
{
    if (len < RTT_REPORT_HEAD || payload[0] != RTT_REPORT_VERSION || payload[1] != HIST_SUB_BITS ||
        (len - RTT_REPORT_HEAD) % RTT_REPORT_ENTRY != 0)
        return -1;
    const uint8_t *e = payload + RTT_REPORT_HEAD;
    size_t n = (len - RTT_REPORT_HEAD) / RTT_REPORT_ENTRY;
    /* Check every entry before touching dst: a report counts whole or not at all. */
    for (size_t i = 0; i < n; i++)
        if (entry_index(e + i * RTT_REPORT_ENTRY) >= HIST_BUCKETS)
            return -1;
    int64_t samples = 0;
    for (size_t i = 0; i < n; i++) {
        size_t idx = entry_index(e + i * RTT_REPORT_ENTRY);
        uint64_t lo = hist_bucket_lo(idx);
        hist_record_n(dst, lo + (hist_bucket_hi(idx) - lo) / 2, entry_count(e + i * RTT_REPORT_ENTRY));
        samples += entry_count(e + i * RTT_REPORT_ENTRY);
    }
    return samples;
}
