/* promhist: a log-linear hist (hist.h) as a Prometheus histogram: the shared
 * latency bucket bounds and the cumulative counts under each, and the text
 * exposition of one labelled series. Shared by the server's metrics and the
 * client's probe, so their buckets agree. No HTTP and no metric registry here.
 */
#ifndef TCPMSG_PROMHIST_H
#define TCPMSG_PROMHIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tcpmsg/hist.h"

/* Latency bucket upper bounds in seconds: 1, 1.5, 2, 3, 5, 7 per decade from
 * 1 us to 10 s. Returns how many; *bounds points at a static table. */
size_t promhist_latency_bounds(const double **bounds);

/* Cumulative count of values <= bound (bound in hist units): a bucket counts
 * when its midpoint is <= bound, the same rule percentiles use. */
uint64_t promhist_cumulative(const struct hist *h, uint64_t bound);

/* Write the _bucket, _sum and _count lines of one series of histogram name.
 * labels is "" or a comma-terminated list of label pairs already escaped
 * ("target=\"a:1\","); scale converts hist units to base units (1e-9 for
 * nanoseconds to seconds); bounds are in base units. */
void promhist_write(FILE *f, const char *name, const char *labels, const struct hist *h,
                    double scale, const double *bounds, size_t nbounds);

/* Write s as a Prometheus label value (without quotes): \ " and newline escaped. */
void promhist_write_label_value(FILE *f, const char *s);

#endif
