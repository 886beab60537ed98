/* hdrlog: HdrHistogram's interchange formats for struct hist, so latency
 * histograms from several load generators (tcpmsg's, or any tool that writes
 * HdrHistogram logs) can be merged exactly instead of averaging percentiles.
 *  - one histogram: the "V2 compressed" binary encoding (a header, the
 *    bucket counts as zig-zag LEB128 with runs of zeros, zlib-deflated),
 *    written as base64;
 *  - a log: "#[StartTime: ...]" and "#[BaseTime: ...]" header lines, a CSV
 *    legend, then one line per interval:
 *    "Tag=NAME,start,length,max,<base64 histogram>".
 * struct hist is laid out as HdrHistogram's counts array with 2 significant
 * digits and a lowest discernible value of 1, so encoding copies counts
 * index for index. It reads and writes; it does not decide intervals.
 */
#ifndef TCPMSG_HDRLOG_H
#define TCPMSG_HDRLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tcpmsg/hist.h"

/* HdrHistogram's precision that struct hist's buckets are. */
#define HDRLOG_SIGNIFICANT_DIGITS 2

/* h in the V2 compressed encoding, as base64 (NUL-terminated, malloc'd:
 * free it). NULL when out of memory or when zlib fails. */
char *hdrlog_encode(const struct hist *h);

/* Add the histogram that len bytes of base64 text encode into h, whatever
 * its precision, as long as every non-empty bucket of it lies inside one
 * bucket of h (HdrHistogram with 2 or more significant digits and a lowest
 * discernible value of 1 always does). Returns 0; -EINVAL for text that is
 * not an encoded histogram (bad base64, unknown cookie, corrupt deflate
 * stream, counts past the histogram's end); -ERANGE for one too coarse to
 * add exactly (h is left unchanged); -ENOMEM. *why, when not NULL, is set to
 * a static description of the failure. Values above HIST_MAX_VALUE count
 * in h's top bucket, as hist_record does. */
int hdrlog_decode_add(struct hist *h, const char *b64, size_t len, const char **why);

/* The same, each value multiplied by scale first (1000 adds a histogram of
 * microseconds to one of nanoseconds). With a scale other than 1 each
 * bucket is added at its midpoint times scale, never refused: its own width
 * is then the precision. */
int hdrlog_decode_add_scaled(struct hist *h, const char *b64, size_t len, double scale,
                             const char **why);

/* ---- logs --------------------------------------------------------------------------- */

/* The header of a log whose intervals start at start_s (Unix time, seconds),
 * with a comment naming the unit of the values ("nanoseconds"). 0, or
 * -errno of the write. */
int hdrlog_write_header(FILE *f, double start_s, const char *unit);

/* The max column of the logs tcpmsg writes: nanoseconds divided by this,
 * the milliseconds HdrHistogram's tools print, with 6 decimals so the max
 * is exact to the nanosecond. */
#define HDRLOG_MAX_DIVISOR 1e6

/* One interval line: tag (NULL: none), its start relative to the log's base
 * time and its length in seconds, its max divided by max_divisor (with as
 * many decimals as the divisor has zeros), and h. 0, -ENOMEM or -errno of
 * the write. */
int hdrlog_write_interval(FILE *f, const char *tag, double start_s, double length_s,
                          const struct hist *h, double max_divisor);

/* A log being read, one interval at a time. */
struct hdrlog_reader {
    FILE *f;
    const char *path; /* for messages */
    unsigned line;    /* of the last line read */
    double start_s;   /* #[StartTime: ...], or NAN */
    double base_s;    /* #[BaseTime: ...], else the start time, or NAN */
    char unit[32];    /* "#[tcpmsg: values in UNIT]", or "" when the log does not say */
    double scale;     /* nanoseconds per unit of the log's values (1 when it does not say) */
    char *buf;        /* the current line (getline's) */
    size_t cap;
    char error[256];  /* why the last read failed: "PATH:LINE: reason" */
};

/* One interval of a log. */
struct hdrlog_interval {
    char tag[64];     /* "" when the line has none */
    double start_s;   /* absolute (base time added) when the log has one */
    double length_s;
    double max;       /* as written, in the log's own unit */
};

/* Start reading f (named path in messages). Released with
 * hdrlog_reader_free, which does not close f. */
void hdrlog_reader_init(struct hdrlog_reader *r, FILE *f, const char *path);
void hdrlog_reader_free(struct hdrlog_reader *r);

/* Read the next interval, adding its histogram into h in nanoseconds (a
 * log whose "#[tcpmsg: values in UNIT]" line names microseconds,
 * milliseconds or seconds is scaled; one without that line is taken as
 * nanoseconds): 1 with *iv filled;
 * 0 at the end of the log; -EINVAL (or -ERANGE, -ENOMEM) with r->error
 * naming the file, the line and what is wrong with it. Comment and legend
 * lines are read on the way; a line that is none of these is an error,
 * never skipped. */
int hdrlog_read_interval(struct hdrlog_reader *r, struct hdrlog_interval *iv, struct hist *h);

#endif
