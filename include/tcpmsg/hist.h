/* hist: a log-linear (HdrHistogram-style) histogram of unsigned 64-bit values.
 *
 * Fixed memory, O(1) record, mergeable, bounded relative error: values below
 * 256 are counted exactly, every larger value in a bucket whose width is at
 * most 1/128 of its lower bound, and queries report the bucket midpoint, so a
 * reported value is within 0.4% of the true one. Values of HIST_MAX_VALUE and above are counted in the top
 * bucket (max still reports them exactly).
 *
 * Concurrency: one writer thread records; any thread may read (percentiles,
 * merge into another histogram) at the same time and sees a value that was
 * true at some recent instant. Counters are relaxed atomics written only by
 * the owner, so recording costs a plain load/add/store, never a lock.
 * Not a time series: callers that want rates snapshot and subtract.
 *
 * Saturation: bucket counts, count and sum stop at UINT64_MAX instead of
 * wrapping (a client's RTT reports feed a histogram, and a total that wraps
 * would report a small number for a huge one). A saturated histogram is
 * "at least this much"; its count can then trail the sum of its buckets.
 */
#ifndef TCPMSG_HIST_H
#define TCPMSG_HIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values below 2^HIST_SUB_BITS are exact; above, each power-of-two range is
 * split into 2^(HIST_SUB_BITS-1) equal buckets. */
#define HIST_SUB_BITS 8
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)           /* 256 */
#define HIST_HALF_COUNT (HIST_SUB_COUNT / 2)           /* 128 */
#define HIST_MAX_BITS 44                               /* ~4.9 h in ns */
#define HIST_MAX_VALUE ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_BUCKETS (HIST_SUB_COUNT + (HIST_MAX_BITS - HIST_SUB_BITS) * HIST_HALF_COUNT)

/* The totals come first: a struct hist spans ten pages, and a small value's
 * bucket then usually shares the totals' page (unless a page boundary falls
 * in the first 600 bytes), so recording it touches one page, not two (the
 * server records message sizes once per read). */
struct hist {
    _Atomic uint64_t count; /* number of recorded values */
    _Atomic uint64_t sum;   /* sum of recorded values */
    _Atomic uint64_t min;   /* UINT64_MAX while empty */
    _Atomic uint64_t max;   /* 0 while empty */
    _Atomic uint64_t counts[HIST_BUCKETS];
};

/* One non-empty bucket, as returned by the iterator: values in [lo, hi]. */
struct hist_bucket {
    uint64_t lo;
    uint64_t hi;
    uint64_t count;
};

/* Iterator over non-empty buckets in increasing value order. */
struct hist_iter {
    const struct hist *h;
    size_t next; /* next bucket index to examine */
};

/* Set to empty. A zero-filled struct hist is NOT empty-valid (min would be
 * 0); call hist_init (or hist_reset) before use. */
void hist_init(struct hist *h);
void hist_reset(struct hist *h);

/* Allocate an empty histogram; released with hist_free. NULL on ENOMEM. */
struct hist *hist_new(void);
void hist_free(struct hist *h); /* hist_free(NULL) is a no-op */

/* Record one value (n times). Only the owning thread may call these. */
void hist_record(struct hist *h, uint64_t value);
void hist_record_n(struct hist *h, uint64_t value, uint64_t n);

/* dst += src. dst must be owned by the calling thread; src may be live. */
void hist_merge(struct hist *dst, const struct hist *src);

uint64_t hist_count(const struct hist *h);
uint64_t hist_sum(const struct hist *h);
uint64_t hist_min(const struct hist *h); /* 0 when empty */
uint64_t hist_max(const struct hist *h); /* 0 when empty */

/* The exact largest value, when something outside the histogram knows it
 * (the max column of an HdrHistogram log, whose buckets alone give only
 * the top bucket): taken only when it lies in the bucket of the current
 * max, so it can never contradict the counts. Owner thread only. */
void hist_set_max(struct hist *h, uint64_t max);
double hist_mean(const struct hist *h);  /* 0 when empty */

/* The value at percentile p (0 < p <= 100): the smallest recorded value v such
 * that at least p% of the values are <= v, to within the bucket resolution,
 * clamped to [min, max]. 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* Bucket geometry: index of the bucket holding value, and its bounds. */
size_t hist_bucket_index(uint64_t value);
uint64_t hist_bucket_lo(size_t index);
uint64_t hist_bucket_hi(size_t index);

/* Iterate the non-empty buckets:
 *   struct hist_iter it; struct hist_bucket b;
 *   hist_iter_init(&it, h); while (hist_iter_next(&it, &b)) ...   */
void hist_iter_init(struct hist_iter *it, const struct hist *h);
bool hist_iter_next(struct hist_iter *it, struct hist_bucket *out);

#endif
