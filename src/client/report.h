/* report: what tcpmsg bench prints. The start line, one report per
 * --interval, and the summary, as text or as JSON (newline-delimited events
 * with --interval); and the percentile spectrum as an HdrHistogram-style
 * text file or an SVG plot (spectrum.c). Reads results, measures nothing.
 */
#ifndef TCPMSG_CLIENT_REPORT_H
#define TCPMSG_CLIENT_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/client_config.h"
#include "client/loadgen.h"
#include "tcpmsg/hist.h"

/* The whole run, summed over the threads. */
struct bench_result {
    const struct client_config *cfg;
    const char *target;     /* "host:port" as given */
    double secs;            /* the measured time (after --warmup) */
    uint64_t msgs, bytes, sent, unsent, max_lag_ns;
    uint64_t errors[LG_ERR_COUNT];
    uint64_t errors_total;
    bool open_loop;
    bool rate_kept;         /* open loop: nearly every message due was sent, and on time */
    double late_s;          /* open loop: how long after the end the run went on sending
                               and waiting (beyond --timeout: the rate was not kept) */
    bool ended_early;       /* a timed run that stopped before its end: no connection left */
    struct hist rtt;        /* latency (open loop: from the intended send time) */
    struct hist rtt_raw;    /* open loop: from the actual send time */
    struct cstage_hists stages; /* --stages: the sampled round trips, split */
    const char *io;         /* the threads' event loop: "epoll" or "uring" */
    uint64_t syscalls[LOOP_SYS_COUNT]; /* the loops' system calls and wakeups, whole run */
};

/* One --interval: what happened in [t0, t1) seconds after the measured start. */
struct bench_interval {
    double t0, t1;
    uint64_t msgs, bytes, errors;
    const struct hist *rtt; /* the latencies of this interval */
};

/* Open loop keeps the rate when at most this share of the messages due
 * were never sent. */
#define REPORT_RATE_TOLERANCE 0.01

void report_start(const struct client_config *cfg, const char *target);
void report_interval(const struct client_config *cfg, const struct bench_interval *iv);
void report_summary(const struct bench_result *r);

/* tcpmsg merge's summary of r (msgs, secs and the latencies set): nlogs
 * logs, nintervals intervals read, the first starting at start_s (Unix
 * time); text, or JSON with --json. */
void report_merged(const struct bench_result *r, size_t nlogs, size_t nintervals, double start_s);

/* The percentile spectrum of r's latencies (and the uncorrected ones in an
 * open-loop run), values in microseconds. 0 or -errno (message printed). */
int spectrum_write_hdr(const struct bench_result *r, const char *path);
int spectrum_write_svg(const struct bench_result *r, const char *path);

/* The percentile levels HdrHistogram's classic output reports, in percent,
 * for n values: 0, 10, 20, ... halving the distance to 100 with 5 ticks per
 * half, then 100. Returns how many were written into out (at most cap). */
size_t spectrum_levels(uint64_t n, double *out, size_t cap);

#endif
