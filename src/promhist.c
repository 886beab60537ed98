/* promhist: Prometheus histogram buckets from a log-linear hist (see
 * tcpmsg/promhist.h). Moved here from the server's metrics.c so that the
 * probe exports the very same buckets.
 */
#include "tcpmsg/promhist.h"

#include <string.h>

#include "tcpmsg/counter.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Fine enough for histogram_quantile to tell 20 us from 30 us. */
static const double latency_bounds[] = {
    1e-6, 1.5e-6, 2e-6, 3e-6, 5e-6, 7e-6, 1e-5, 1.5e-5, 2e-5, 3e-5, 5e-5, 7e-5,
    1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 7e-3,
    1e-2, 1.5e-2, 2e-2, 3e-2, 5e-2, 7e-2, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7,
    1, 1.5, 2, 3, 5, 7, 10,
};

size_t promhist_latency_bounds(const double **bounds)
{
    *bounds = latency_bounds;
    return COUNT_OF(latency_bounds);
}

uint64_t promhist_cumulative(const struct hist *h, uint64_t bound)
{
    uint64_t n = 0;
    struct hist_iter it;
    struct hist_bucket b;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b) && b.lo + (b.hi - b.lo) / 2 <= bound)
        n = u64_add_sat(n, b.count);
    return n;
}

void promhist_write(FILE *f, const char *name, const char *labels, const struct hist *h,
                    double scale, const double *bounds, size_t nbounds)
{
    /* One walk over the non-empty buckets for all the bounds: each bound's
     * count is the running total when the walk passes it. */
    struct hist_iter it;
    struct hist_bucket b;
    hist_iter_init(&it, h);
    bool more = hist_iter_next(&it, &b);
    uint64_t below = 0;
    for (size_t i = 0; i < nbounds; i++) {
        uint64_t raw = (uint64_t)(bounds[i] / scale + 0.5); /* back in hist units */
        while (more && b.lo + (b.hi - b.lo) / 2 <= raw) {
            below = u64_add_sat(below, b.count); /* a saturated hist stays saturated */
            more = hist_iter_next(&it, &b);
        }
        fprintf(f, "%s_bucket{%sle=\"%.9g\"} %llu\n", name, labels, bounds[i],
                (unsigned long long)below);
    }
    for (; more; more = hist_iter_next(&it, &b))
        below = u64_add_sat(below, b.count);
    fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)below);
    /* The labels without their trailing comma, for _sum and _count. */
    int n = (int)strlen(labels);
    n -= n > 0;
    const char *open = n > 0 ? "{" : "", *close = n > 0 ? "}" : "";
    fprintf(f, "%s_sum%s%.*s%s %.17g\n", name, open, n, labels, close,
            (double)hist_sum(h) * scale);
    fprintf(f, "%s_count%s%.*s%s %llu\n", name, open, n, labels, close, (unsigned long long)below);
}

void promhist_write_label_value(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}
