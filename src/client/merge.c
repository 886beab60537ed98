/* merge: tcpmsg merge. Reads the HdrHistogram interval logs that several
 * load generators wrote (tcpmsg bench --hdr-log, or any tool's), adds their
 * histograms bucket by bucket, and reports the result as bench does.
 * Percentiles of the whole come only from the whole histogram: averaging
 * each generator's p99 would be wrong. The codec is tcpmsg/hdrlog.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/report.h"
#include "client/stages.h"
#include "tcpmsg/hdrlog.h"

/* Merged intervals of the --hdr-log output: the wall-clock timeline cut in
 * slots of the interval length most logs use, each source interval added to
 * the slot its middle falls in (generators started together with
 * --start-at and the same --interval line up slot for slot). At most this
 * many. */
#define MERGE_MAX_SLOTS 100000

/* The series merged, each on its own: the latency (untagged or
 * "corrected"), the uncorrected one, then the parts of bench --stages'
 * split round trips (tagged "stage_client_tx" ...). */
#define SERIES_RTT 0
#define SERIES_RAW 1
#define SERIES_STAGE 2 /* + enum cstage */
#define NSERIES (SERIES_STAGE + CSTAGE_COUNT)

/* One interval of one log, as read: its place on the wall clock, its
 * series, and its histogram as the log wrote it (base64 text, a few hundred
 * bytes, where a decoded struct hist takes 39 KB: 3 logs of 10 minutes at
 * 1 s intervals keep 1.8 MB rather than 70). */
struct piece {
    double start_s, length_s;
    int series;   /* SERIES_... */
    double scale; /* nanoseconds per unit of its log */
    char *b64;
    size_t slot;  /* --hdr-log: its interval of the merged log */
};

struct merge {
    const struct client_config *cfg;
    struct piece *pieces;
    size_t npieces, cap;
    struct hist *total[NSERIES]; /* each series, whole run */
    double max_ns[NSERIES];      /* the largest max column of tcpmsg's logs, each series */
    unsigned nunitless;    /* logs without a unit line, taken as nanoseconds */
};

/* The series an interval's tag belongs to, or -1 for another tag: a tag
 * nobody defined is refused rather than silently dropped or mixed in. */
static int series_of(const char *tag)
{
    if (tag[0] == '\0' || strcmp(tag, "corrected") == 0)
        return SERIES_RTT;
    if (strcmp(tag, "uncorrected") == 0)
        return SERIES_RAW;
    for (int i = 0; i < CSTAGE_COUNT; i++)
        if (strcmp(tag, cstage_tag((enum cstage)i)) == 0)
            return SERIES_STAGE + i;
    return -1;
}

static int add_piece(struct merge *m, const struct hdrlog_interval *iv, int series, double scale,
                     const char *line)
{
    if (m->npieces == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        struct piece *p = realloc(m->pieces, cap * sizeof *p);
        if (p == NULL)
            return -ENOMEM;
        m->pieces = p;
        m->cap = cap;
    }
    const char *b64 = strrchr(line, ','); /* the histogram is the last field */
    char *copy = strdup(b64 != NULL ? b64 + 1 : "");
    if (copy == NULL)
        return -ENOMEM;
    m->pieces[m->npieces++] = (struct piece){ .start_s = iv->start_s, .length_s = iv->length_s,
                                              .series = series, .scale = scale, .b64 = copy };
    return 0;
}

/* Read every interval of one log into the totals. 0, or an exit status
 * (message printed). */
static int read_log(struct merge *m, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "tcpmsg merge: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    struct hdrlog_reader r;
    hdrlog_reader_init(&r, f, path);
    struct hist *h = hist_new();
    struct hdrlog_interval iv;
    int rc = h != NULL ? 1 : -ENOMEM, status = EXIT_OK;
    while (status == EXIT_OK && (rc = hdrlog_read_interval(&r, &iv, h)) == 1) {
        int series = series_of(iv.tag);
        if (series < 0) {
            fprintf(stderr,
                    "tcpmsg merge: %s:%u: tag '%s': only untagged, corrected and uncorrected "
                    "latencies and the stages of bench --stages (stage_client_tx, "
                    "stage_network, stage_client_rx) are merged\n",
                    path, r.line, iv.tag);
            status = EXIT_USAGE;
        } else if (add_piece(m, &iv, series, r.scale, r.buf) < 0) {
            rc = -ENOMEM;
            break;
        }
        hist_merge(m->total[series < 0 ? 0 : series], h);
        hist_reset(h);
        /* A log tcpmsg wrote (it says its unit) has the exact max. */
        if (series >= 0 && r.unit[0] != '\0' && iv.max * HDRLOG_MAX_DIVISOR * r.scale > m->max_ns[series])
            m->max_ns[series] = iv.max * HDRLOG_MAX_DIVISOR * r.scale;
    }
    if (status == EXIT_OK && rc == -ENOMEM) {
        fprintf(stderr, "tcpmsg merge: out of memory\n");
        status = EXIT_IO;
    } else if (status == EXIT_OK && rc < 0) {
        fprintf(stderr, "tcpmsg merge: %s\n", r.error);
        status = EXIT_USAGE;
    }
    if (status == EXIT_OK && r.unit[0] == '\0')
        m->nunitless++;
    hist_free(h);
    hdrlog_reader_free(&r);
    fclose(f);
    return status;
}

/* The slot of the merged log: the interval length most intervals have
 * (to the millisecond), so that a run's short last interval does not cut
 * the timeline into slivers. 0 when there is none. */
static double usual_length(const struct merge *m)
{
    double best = 0;
    size_t best_n = 0;
    for (size_t i = 0; i < m->npieces; i++) {
        double len = round(m->pieces[i].length_s * 1000) / 1000;
        size_t n = 0;
        for (size_t k = 0; k < m->npieces && n <= m->npieces / 2; k++)
            n += round(m->pieces[k].length_s * 1000) / 1000 == len;
        if (len > 0 && (n > best_n || (n == best_n && len > best))) {
            best = len;
            best_n = n;
        }
        if (best_n > m->npieces / 2)
            break; /* a majority: nothing else can win */
    }
    return best;
}

static int by_slot(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The merged log: one line per slot of the timeline. 0 or -errno. */
static int write_merged_log(struct merge *m, bool open_loop, double t0, double t1,
                            const char *path)
{
    double slot = usual_length(m);
    size_t nslots = slot > 0 ? (size_t)ceil((t1 - t0) / slot - 1e-9) : 1;
    if (nslots == 0)
        nslots = 1;
    if (nslots > MERGE_MAX_SLOTS) {
        fprintf(stderr, "tcpmsg merge: --hdr-log: %zu intervals of %g s is too many; writing "
                        "one for the whole run\n", nslots, slot);
        nslots = 1;
    }
    if (nslots == 1)
        slot = t1 - t0;
    /* Each interval goes to the slot its middle falls in; sorted by slot,
     * one pass writes them all. */
    for (size_t i = 0; i < m->npieces; i++) {
        double mid = m->pieces[i].start_s + m->pieces[i].length_s / 2 - t0;
        m->pieces[i].slot =
            nslots == 1 ? 0 : (size_t)fmax(0, fmin(floor(mid / slot), (double)(nslots - 1)));
    }
    qsort(m->pieces, m->npieces, sizeof m->pieces[0], by_slot);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    struct hist *h[NSERIES];
    int rc = 0;
    for (int j = 0; j < NSERIES; j++)
        if ((h[j] = hist_new()) == NULL)
            rc = -ENOMEM;
    if (rc == 0)
        rc = hdrlog_write_header(f, t0, "nanoseconds");
    size_t i = 0;
    for (size_t k = 0; rc == 0 && k < nslots; k++) {
        for (int j = 0; j < NSERIES; j++)
            hist_reset(h[j]);
        for (; rc == 0 && i < m->npieces && m->pieces[i].slot == k; i++) {
            const struct piece *p = &m->pieces[i]; /* read once already: it decodes */
            rc = hdrlog_decode_add_scaled(h[p->series], p->b64, strlen(p->b64), p->scale, NULL);
        }
        double start = (double)k * slot, len = k + 1 == nslots ? (t1 - t0) - start : slot;
        if (rc < 0)
            break;
        if (!open_loop)
            rc = hdrlog_write_interval(f, NULL, start, len, h[0], HDRLOG_MAX_DIVISOR);
        else if ((rc = hdrlog_write_interval(f, "corrected", start, len, h[0],
                                             HDRLOG_MAX_DIVISOR)) == 0)
            rc = hdrlog_write_interval(f, "uncorrected", start, len, h[1], HDRLOG_MAX_DIVISOR);
        for (int j = 0; rc == 0 && j < CSTAGE_COUNT; j++) {
            if (hist_count(m->total[SERIES_STAGE + j]) > 0) /* the logs had the series */
                rc = hdrlog_write_interval(f, cstage_tag((enum cstage)j), start, len,
                                           h[SERIES_STAGE + j], HDRLOG_MAX_DIVISOR);
        }
    }
    for (int j = 0; j < NSERIES; j++)
        hist_free(h[j]);
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int merge_run(const struct client_config *cfg)
{
    struct merge m = { .cfg = cfg };
    struct bench_result *r = calloc(1, sizeof *r);
    int status = r != NULL ? EXIT_OK : EXIT_IO;
    for (int j = 0; j < NSERIES; j++)
        if ((m.total[j] = hist_new()) == NULL)
            status = EXIT_IO;
    for (size_t i = 0; i < cfg->nmessages && status == EXIT_OK; i++)
        status = read_log(&m, cfg->messages[i]);
    if (status == EXIT_OK) {
        if (m.nunitless > 0)
            fprintf(stderr,
                    "tcpmsg merge: %u log(s) do not say their unit: taken as nanoseconds\n",
                    m.nunitless);
        double t0 = INFINITY, t1 = -INFINITY;
        for (size_t i = 0; i < m.npieces; i++) {
            t0 = fmin(t0, m.pieces[i].start_s);
            t1 = fmax(t1, m.pieces[i].start_s + m.pieces[i].length_s);
        }
        if (m.npieces == 0)
            t0 = t1 = 0;
        hist_init(&r->rtt);
        hist_init(&r->rtt_raw);
        hist_merge(&r->rtt, m.total[0]);
        hist_merge(&r->rtt_raw, m.total[1]);
        hist_set_max(&r->rtt, (uint64_t)llround(m.max_ns[0]));
        hist_set_max(&r->rtt_raw, (uint64_t)llround(m.max_ns[1]));
        cstage_hists_init(&r->stages);
        for (int j = 0; j < CSTAGE_COUNT; j++) {
            hist_merge(&r->stages.h[j], m.total[SERIES_STAGE + j]);
            hist_set_max(&r->stages.h[j], (uint64_t)llround(m.max_ns[SERIES_STAGE + j]));
        }
        counter_set(&r->stages.split, hist_count(m.total[SERIES_STAGE]));
        r->cfg = cfg;
        r->target = "merged";
        r->open_loop = hist_count(m.total[1]) > 0;
        r->msgs = hist_count(&r->rtt);
        r->secs = t1 > t0 ? t1 - t0 : 1e-9;
        report_merged(r, cfg->nmessages, m.npieces, t0);
        if (cfg->histogram_out != NULL && spectrum_write_hdr(r, cfg->histogram_out) < 0)
            status = EXIT_IO;
        if (cfg->plot_out != NULL && spectrum_write_svg(r, cfg->plot_out) < 0)
            status = EXIT_IO;
        int rc = cfg->hdr_log != NULL
                     ? write_merged_log(&m, r->open_loop, t0, t1, cfg->hdr_log)
                     : 0;
        if (rc < 0) {
            fprintf(stderr, "tcpmsg merge: --hdr-log %s: %s\n", cfg->hdr_log, strerror(-rc));
            status = EXIT_IO;
        }
    }
    for (size_t i = 0; i < m.npieces; i++)
        free(m.pieces[i].b64);
    free(m.pieces);
    for (int j = 0; j < NSERIES; j++)
        hist_free(m.total[j]);
    free(r);
    return status;
}
