/* metrics: the server's metric definitions, and their renderings. One table
 * (metrics.c) names every metric with its type, unit, help and labels; the
 * JSON document, the Prometheus text and docs/METRICS.md are all produced
 * from it, so they cannot disagree. Reading never blocks the workers: their
 * single-writer counters are summed into a snapshot.
 */
#ifndef TCPMSG_SERVER_METRICS_H
#define TCPMSG_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/stats.h"
#include "tcpmsg/http.h"

/* Everything a rendering needs, taken at one moment. */
struct metrics_snapshot {
    struct server_stats stats; /* all workers summed */
    uint64_t conns_open;
    unsigned max_conns;
    uint64_t buffer_memory_bytes;       /* connection buffers held now */
    uint64_t buffer_memory_limit_bytes; /* --max-buffer-memory */
    unsigned workers;
    unsigned stage_sample;      /* --stage-sample: one message in N per connection, 0: off */
    bool draining;
    const char *version;
    const char *mode;    /* "epoll" */
    const char *io;      /* the workers' loop backend: "epoll" or "uring" */
    const char *address; /* the bound message address */
    double start_time_s; /* Unix time */
    double uptime_s;
    uint64_t rss_bytes;
    uint64_t open_fds;
    double cpu_seconds;
    uint64_t http_responses[6]; /* by status class, [2] = 2xx ... */
    uint64_t http_auth_failures[HTTP_AUTH_FAILURE_COUNT]; /* --web-config refusals */
    uint64_t http_rejected[HTTP_REJECT_REASON_COUNT];
    uint64_t http_open;         /* HTTP connections open now */
};

/* Fill the process fields (RSS, descriptors, CPU) from /proc and getrusage. */
void metrics_read_process(struct metrics_snapshot *m);

/* The JSON document of docs/METRICS.md. malloc'd string, or NULL on ENOMEM. */
char *metrics_json(const struct metrics_snapshot *m);

/* Prometheus text format 0.0.4. malloc'd string (length in *len), or NULL. */
char *metrics_prometheus(const struct metrics_snapshot *m, size_t *len);

/* OpenMetrics text 1.0.0 (what Prometheus asks for first). */
char *metrics_openmetrics(const struct metrics_snapshot *m, size_t *len);

/* The metric table as the Markdown of docs/METRICS.md. */
void metrics_write_markdown(FILE *out);

/* The upper bounds (in base units) of the Prometheus buckets of a metric
 * kind; exposed for the tests. */
size_t metrics_latency_bounds(const double **bounds);
size_t metrics_size_bounds(const double **bounds);
size_t metrics_wakeup_bounds(const double **bounds);

/* Cumulative count of values <= bound (bound in hist units): a bucket counts
 * when its midpoint is <= bound, the same rule percentiles use. */
uint64_t metrics_hist_cumulative(const struct hist *h, uint64_t bound);

#endif
