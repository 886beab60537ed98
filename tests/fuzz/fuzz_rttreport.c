/* libFuzzer harness for the RTT report decoder (src/rttreport.c). The input
 * is 16 bytes of limits (max_samples, max_value, big-endian) and then a
 * report payload. Invariants checked on every input:
 *  - an accepted report claims no more samples than max_samples, and no
 *    bucket with a count starts above max_value;
 *  - recording it adds exactly its samples to the histogram, and neither the
 *    count nor the sum goes down (the wraparound of the poisoned report:
 *    01 08 12ff ffffffff made the sum wrap);
 *  - a refused report has a known reason, never "disabled";
 *  - decoding is deterministic.
 * Built by tests/fuzz/CMakeLists.txt (TCPMSG_FUZZ).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/rttreport.h"

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static struct rtt_report report, again;
static struct hist *h;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    if (h == NULL && (h = hist_new()) == NULL)
        abort();
    struct rtt_report_limits lim = { .max_samples = be64(data), .max_value = be64(data + 8) };
    const uint8_t *payload = data + 16;
    size_t len = size - 16;

    enum rtt_reject why = rtt_report_decode(payload, len, &lim, &report);
    if (rtt_report_decode(payload, len, &lim, &again) != why)
        abort();
    if (why == RTT_REJECT_DISABLED || (unsigned)why > RTT_REPORT_OK)
        abort();
    if (why != RTT_REPORT_OK)
        return 0;

    uint64_t samples = 0, max_lo = 0;
    for (size_t i = 0; i < report.n; i++) {
        struct rtt_report_entry e = rtt_report_entry(&report, i);
        if (e.bucket >= HIST_BUCKETS)
            abort();
        samples += e.count; /* < 2^45: at most HIST_BUCKETS entries */
        if (e.count > 0 && hist_bucket_lo(e.bucket) > max_lo)
            max_lo = hist_bucket_lo(e.bucket);
    }
    if (report.n > RTT_REPORT_MAX_ENTRIES || samples != report.samples ||
        samples > lim.max_samples || max_lo != report.max_lo || max_lo > lim.max_value)
        abort();

    /* The histogram is shared across inputs, so totals grow and eventually
     * saturate. Computed exactly in 128 bits, count and sum must equal the
     * true totals, or UINT64_MAX once those pass it: never a wrapped value. */
    unsigned __int128 count = hist_count(h), sum = hist_sum(h);
    for (size_t i = 0; i < report.n; i++) {
        struct rtt_report_entry e = rtt_report_entry(&report, i);
        uint64_t lo = hist_bucket_lo(e.bucket);
        uint64_t mid = lo + (hist_bucket_hi(e.bucket) - lo) / 2;
        sum += (unsigned __int128)mid * e.count;
    }
    count += samples;
    rtt_report_record(&report, h);
    if (hist_count(h) != (count > UINT64_MAX ? UINT64_MAX : (uint64_t)count) ||
        hist_sum(h) != (sum > UINT64_MAX ? UINT64_MAX : (uint64_t)sum))
        abort();
    return 0;
}
