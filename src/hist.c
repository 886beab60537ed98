/* hist: the log-linear histogram declared in tcpmsg/hist.h. Recording is a
 * clz, a shift and a few relaxed load/store pairs; queries walk the buckets.
 * Not thread-safe for writers: exactly one thread records into a histogram.
 */
#include "tcpmsg/hist.h"

#include <math.h>
#include <stdlib.h>

#include "tcpmsg/counter.h"
#include "tcpmsg/hot.h"

/* The owner thread is the only writer, so a relaxed load then store is a
 * correct increment and avoids the locked read-modify-write of fetch_add;
 * readers on other threads still never see a torn value. */
static inline uint64_t load(const _Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static inline void store(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, v, memory_order_relaxed);
}

/* Saturates at UINT64_MAX (tcpmsg/hist.h): never wraps. */
static inline void add(_Atomic uint64_t *a, uint64_t n)
{
    store(a, u64_add_sat(load(a), n));
}

void hist_reset(struct hist *h)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        store(&h->counts[i], 0);
    store(&h->count, 0);
    store(&h->sum, 0);
    store(&h->min, UINT64_MAX);
    store(&h->max, 0);
}

void hist_init(struct hist *h)
{
    hist_reset(h);
}

struct hist *hist_new(void)
{
    struct hist *h = malloc(sizeof(*h));

    if (h != NULL)
        hist_init(h);
    return h;
}

void hist_free(struct hist *h)
{
    free(h);
}

/* Bucket math. Write msb for the index of a value's highest set bit. A value
 * with msb >= HIST_SUB_BITS is shifted right by shift = msb - (SUB_BITS - 1),
 * which leaves exactly SUB_BITS significant bits: a number in [128, 256).
 * So each power-of-two range [2^msb, 2^(msb+1)) gets 128 buckets of width
 * 2^shift, and since the range starts at 128 << shift a bucket is at most
 * 1/128 of its lower bound wide. OR-ing in HIST_SUB_COUNT - 1 raises msb to
 * at least SUB_BITS - 1, where shift is 0: values below 256 then index
 * themselves, with no branch. Each further power of two adds 128 buckets, so
 * index = shift * 128 + (value >> shift), which is continuous at 256:
 * 255 -> 255 and 256 -> 1 * 128 + 128 = 256. */
size_t hist_bucket_index(uint64_t value)
{
    uint64_t v = value < HIST_MAX_VALUE ? value : HIST_MAX_VALUE;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v | (HIST_SUB_COUNT - 1));
    unsigned shift = msb - (HIST_SUB_BITS - 1);

    return (size_t)shift * HIST_HALF_COUNT + (size_t)(v >> shift);
}

/* The inverse of hist_bucket_index: index / 128 is shift + 1 once past the
 * exact range, and the low 7 bits are the position within the 128 buckets
 * of that power of two. */
static unsigned bucket_shift(size_t index)
{
    return index < HIST_SUB_COUNT ? 0u : (unsigned)(index / HIST_HALF_COUNT) - 1u;
}

uint64_t hist_bucket_lo(size_t index)
{
    unsigned shift = bucket_shift(index);

    if (shift == 0)
        return index;
    return (uint64_t)(HIST_HALF_COUNT + index % HIST_HALF_COUNT) << shift;
}

uint64_t hist_bucket_hi(size_t index)
{
    return hist_bucket_lo(index) + (UINT64_C(1) << bucket_shift(index)) - 1;
}

TCPMSG_HOT void hist_record_n(struct hist *h, uint64_t value, uint64_t n)
{
    if (n == 0)
        return;
    add(&h->counts[hist_bucket_index(value)], n);
    if (value < load(&h->min))
        store(&h->min, value);
    if (value > load(&h->max))
        store(&h->max, value);
    add(&h->sum, u64_mul_sat(value, n));
    add(&h->count, n);
}

/* hist_record_n(h, value, 1) without the multiplication and the count
 * check: this is the call made once per message. */
TCPMSG_HOT void hist_record(struct hist *h, uint64_t value)
{
    add(&h->counts[hist_bucket_index(value)], 1);
    if (value < load(&h->min))
        store(&h->min, value);
    if (value > load(&h->max))
        store(&h->max, value);
    add(&h->sum, value);
    add(&h->count, 1);
}

/* dst.count grows by the bucket counts actually copied rather than by
 * src->count, so dst stays self-consistent even when src is being written. */
void hist_merge(struct hist *dst, const struct hist *src)
{
    uint64_t copied = 0;

    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t c = load(&src->counts[i]);

        if (c != 0) {
            add(&dst->counts[i], c);
            copied = u64_add_sat(copied, c);
        }
    }
    if (load(&src->min) < load(&dst->min))
        store(&dst->min, load(&src->min));
    if (load(&src->max) > load(&dst->max))
        store(&dst->max, load(&src->max));
    add(&dst->sum, load(&src->sum));
    add(&dst->count, copied);
}

uint64_t hist_count(const struct hist *h)
{
    return load(&h->count);
}

uint64_t hist_sum(const struct hist *h)
{
    return load(&h->sum);
}

uint64_t hist_min(const struct hist *h)
{
    return hist_count(h) == 0 ? 0 : load(&h->min);
}

uint64_t hist_max(const struct hist *h)
{
    return hist_count(h) == 0 ? 0 : load(&h->max);
}

void hist_set_max(struct hist *h, uint64_t max)
{
    if (hist_count(h) > 0 && hist_bucket_index(max) == hist_bucket_index(load(&h->max)))
        store(&h->max, max);
}

double hist_mean(const struct hist *h)
{
    uint64_t n = hist_count(h);
    uint64_t sum = hist_sum(h);

    return n == 0 ? 0.0 : (double)sum / (double)n;
}

/* Rank of percentile p among n values: ceil(p/100 * n), within [1, n].
 * p * n is computed before dividing by 100 because p * n is exact for
 * integer p and usual n, whereas p / 100 is never exact (0.999 * 1000 can
 * land just above 999 and ceil to 1000). !(p > 0) also catches NaN. */
static uint64_t percentile_rank(double p, uint64_t n)
{
    if (!(p > 0))
        return 1;
    double r = ceil(p * (double)n / 100.0);
    if (r >= (double)n)
        return n;
    return r < 1.0 ? 1 : (uint64_t)r;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t n = hist_count(h);
    uint64_t min = load(&h->min);
    uint64_t max = load(&h->max);
    uint64_t v = max; /* if a live writer's buckets lag count */

    if (n == 0)
        return 0;
    uint64_t rank = percentile_rank(p, n);
    if (rank >= n)
        return max; /* the top rank is the largest value, known exactly */
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen = u64_add_sat(seen, load(&h->counts[i]));
        if (seen >= rank) {
            uint64_t lo = hist_bucket_lo(i);
            v = lo + (hist_bucket_hi(i) - lo) / 2;
            break;
        }
    }
    /* The midpoint can lie outside the values really seen (a bucket holding
     * only 1000 reports 1001); clamping makes min and max exact. */
    if (v < min)
        v = min;
    return v > max ? max : v;
}

void hist_iter_init(struct hist_iter *it, const struct hist *h)
{
    it->h = h;
    it->next = 0;
}

bool hist_iter_next(struct hist_iter *it, struct hist_bucket *out)
{
    while (it->next < HIST_BUCKETS) {
        size_t i = it->next++;
        uint64_t c = load(&it->h->counts[i]);

        if (c != 0) {
            out->lo = hist_bucket_lo(i);
            out->hi = hist_bucket_hi(i);
            out->count = c;
            return true;
        }
    }
    return false;
}
