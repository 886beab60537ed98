/* spectrum: the full latency-by-percentile spectrum of a bench run, written
 * as HdrHistogram's classic percentile distribution text (for its plotter
 * and for scripts) or drawn as a self-contained SVG a person can open.
 * Values are microseconds. Reads a finished struct bench_result only.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "client/report.h"

#define MAX_LEVELS 2048
#define TICKS_PER_HALF 5 /* HdrHistogram's default percentile_ticks_per_half_distance */

size_t spectrum_levels(uint64_t n, double *out, size_t cap)
{
    size_t k = 0;
    double p = 0;
    while (k + 1 < cap && p < 100) {
        out[k++] = p;
        if (n == 0 || ceil(p * (double)n / 100.0) >= (double)n)
            break; /* every value is below this level */
        double halvings = floor(log2(100.0 / (100.0 - p)));
        p += 100.0 / (TICKS_PER_HALF * pow(2.0, halvings + 1));
    }
    out[k++] = 100;
    return k;
}

/* How many values lie in the buckets up to and including value's. */
static uint64_t count_through(const struct hist *h, uint64_t value)
{
    size_t last = hist_bucket_index(value);
    uint64_t n = 0;
    for (size_t i = 0; i <= last; i++)
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return n;
}

static double std_deviation_us(const struct hist *h)
{
    double mean = hist_mean(h), sq = 0;
    struct hist_iter it;
    struct hist_bucket b;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b)) {
        double d = (double)b.lo + (double)(b.hi - b.lo) / 2 - mean;
        sq += d * d * (double)b.count;
    }
    uint64_t n = hist_count(h);
    return n == 0 ? 0 : sqrt(sq / (double)n) / 1e3;
}

static void write_hdr(FILE *f, const struct hist *h)
{
    double levels[MAX_LEVELS];
    size_t n = spectrum_levels(hist_count(h), levels, MAX_LEVELS);
    fprintf(f, "%12s %12s %12s %12s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for (size_t i = 0; i < n && hist_count(h) > 0; i++) {
        uint64_t v = levels[i] == 0 ? hist_min(h) : hist_percentile(h, levels[i]);
        double q = levels[i] / 100.0;
        uint64_t count = levels[i] == 100 ? hist_count(h) : count_through(h, v);
        if (levels[i] < 100)
            fprintf(f, "%12.3f %12f %12llu %12.2f\n", (double)v / 1e3, q,
                    (unsigned long long)count, 1.0 / (1.0 - q));
        else
            fprintf(f, "%12.3f %12f %12llu %12s\n", (double)v / 1e3, q,
                    (unsigned long long)count, "inf");
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", hist_mean(h) / 1e3,
            std_deviation_us(h));
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n", (double)hist_max(h) / 1e3,
            (unsigned long long)hist_count(h));
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", HIST_MAX_BITS - HIST_SUB_BITS + 1,
            HIST_SUB_COUNT);
}

static int write_file(const char *path, void (*fn)(FILE *, const struct bench_result *),
                      const struct bench_result *r)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int e = errno;
        fprintf(stderr, "tcpmsg: cannot write %s: %s\n", path, strerror(e));
        return -e;
    }
    fn(f, r);
    if (ferror(f) | (fclose(f) != 0)) {
        fprintf(stderr, "tcpmsg: error writing %s\n", path);
        return -EIO;
    }
    return 0;
}

static void hdr_main(FILE *f, const struct bench_result *r)
{
    write_hdr(f, &r->rtt);
}

static void hdr_raw(FILE *f, const struct bench_result *r)
{
    write_hdr(f, &r->rtt_raw);
}

int spectrum_write_hdr(const struct bench_result *r, const char *path)
{
    int rc = write_file(path, hdr_main, r);
    if (rc == 0 && r->open_loop) {
        /* The uncorrected spectrum beside it, for plotting both. */
        char raw[4096];
        snprintf(raw, sizeof raw, "%s.uncorrected", path);
        rc = write_file(raw, hdr_raw, r);
    }
    return rc;
}

/* --- SVG ------------------------------------------------------------------------ */

#define SVG_W 860
#define SVG_H 520
#define PLOT_X0 90  /* left edge of the plot area */
#define PLOT_X1 820
#define PLOT_Y0 60  /* top */
#define PLOT_Y1 450 /* bottom */

struct axes {
    int decades;       /* x runs from 1/(1-p) = 1 to 10^decades */
    double y_max;      /* microseconds at the top: a whole number of steps */
    double y_step;     /* microseconds between two lines of the grid */
    double y_unit;     /* microseconds per unit of the labels: 1 (us) or 1000 (ms) */
    const char *y_name; /* "us" or "ms" */
};

static double x_of(const struct axes *a, double percent)
{
    double d = percent >= 100 ? a->decades : log10(1.0 / (1.0 - percent / 100.0));
    if (d > a->decades)
        d = a->decades;
    return PLOT_X0 + (PLOT_X1 - PLOT_X0) * d / a->decades;
}

static double y_of(const struct axes *a, double value_us)
{
    return PLOT_Y1 - (PLOT_Y1 - PLOT_Y0) * value_us / a->y_max;
}

/* 1, 2, 2.5 or 5 times a power of ten, at least v: a step a reader adds up
 * without effort. */
static double nice_step(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 2.5 * p ? 2.5 * p : v <= 5 * p ? 5 * p : 10 * p;
}

/* The y axis for latencies up to top_us: about five nice steps, the top the
 * first step at or above the data (so the curve fills at least four fifths
 * of the height: 203 ms gets 0 to 250 ms by 50, not 0 to 500 ms), labelled
 * in ms from 10 ms up. */
static void y_axis(struct axes *a, double top_us)
{
    if (!(top_us > 0))
        top_us = 1;
    a->y_step = nice_step(top_us / 5);
    a->y_max = ceil(top_us / a->y_step - 1e-9) * a->y_step;
    bool ms = a->y_max >= 10000;
    a->y_unit = ms ? 1000 : 1;
    a->y_name = ms ? "ms" : "us";
}

static void svg_text_escaped(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void svg_axes(FILE *f, const struct axes *a)
{
    fprintf(f, "<g stroke=\"#ccc\" stroke-width=\"1\">\n");
    for (int d = 0; d <= a->decades; d++) {
        double x = PLOT_X0 + (double)(PLOT_X1 - PLOT_X0) * d / a->decades;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, PLOT_Y0, x, PLOT_Y1);
    }
    int steps = (int)(a->y_max / a->y_step + 0.5);
    for (int i = 0; i <= steps; i++) {
        double y = y_of(a, a->y_step * i);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", PLOT_X0, y, PLOT_X1, y);
    }
    fprintf(f, "</g>\n<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#333\">\n");
    for (int d = 0; d <= a->decades; d++) {
        double x = PLOT_X0 + (double)(PLOT_X1 - PLOT_X0) * d / a->decades;
        double pct = 100.0 * (1.0 - pow(10, -d));
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*f%%</text>\n", x,
                PLOT_Y1 + 18, d <= 2 ? 0 : d - 2, pct);
    }
    for (int i = 0; i <= steps; i++) {
        double y = y_of(a, a->y_step * i);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PLOT_X0 - 8,
                y + 4, a->y_step * i / a->y_unit);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">Percentile (log scale of "
               "1/(1-p))</text>\n", (PLOT_X0 + PLOT_X1) / 2, PLOT_Y1 + 45);
    fprintf(f, "<text x=\"20\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 20 %d)\">"
               "Latency (%s)</text>\n</g>\n", (PLOT_Y0 + PLOT_Y1) / 2, (PLOT_Y0 + PLOT_Y1) / 2,
            a->y_name);
}

static void svg_curve(FILE *f, const struct axes *a, const struct hist *h, const char *colour)
{
    double levels[MAX_LEVELS];
    size_t n = spectrum_levels(hist_count(h), levels, MAX_LEVELS);
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
    for (size_t i = 0; i < n && hist_count(h) > 0; i++) {
        uint64_t v = levels[i] == 0 ? hist_min(h) : hist_percentile(h, levels[i]);
        fprintf(f, "%s%.1f,%.1f", i > 0 ? " " : "", x_of(a, levels[i]), y_of(a, (double)v / 1e3));
    }
    fprintf(f, "\"/>\n");
}

static void svg_legend(FILE *f, int row, const char *colour, const char *label)
{
    int y = PLOT_Y0 + 10 + row * 18;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n",
            PLOT_X0 + 15, y, PLOT_X0 + 40, y, colour);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">%s</text>\n",
            PLOT_X0 + 46, y + 4, label);
}

static void svg_main(FILE *f, const struct bench_result *r)
{
    struct axes a;
    uint64_t n = hist_count(&r->rtt);
    a.decades = n < 100 ? 2 : (int)ceil(log10((double)n));
    a.decades = a.decades > 7 ? 7 : a.decades;
    double top = (double)hist_max(&r->rtt) / 1e3;
    if (r->open_loop && (double)hist_max(&r->rtt_raw) / 1e3 > top)
        top = (double)hist_max(&r->rtt_raw) / 1e3;
    y_axis(&a, top);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"30\" font-family=\"sans-serif\" font-size=\"16\" "
               "text-anchor=\"middle\">Latency by percentile: ", SVG_W / 2);
    svg_text_escaped(f, r->target);
    fprintf(f, " (%llu messages)</text>\n", (unsigned long long)n);
    svg_axes(f, &a);
    svg_curve(f, &a, &r->rtt, "#1f77b4");
    if (r->open_loop) {
        svg_curve(f, &a, &r->rtt_raw, "#ff7f0e");
        svg_legend(f, 0, "#1f77b4", "corrected: from the intended send time");
        svg_legend(f, 1, "#ff7f0e", "uncorrected: from the actual send time");
    }
    fprintf(f, "</svg>\n");
}

int spectrum_write_svg(const struct bench_result *r, const char *path)
{
    return write_file(path, svg_main, r);
}
