/* metrics: the table of every metric tcpmsgd exports, and the code that
 * renders a snapshot of them as JSON (jansson), Prometheus text 0.0.4,
 * OpenMetrics text, or the Markdown reference in docs/METRICS.md.
 */
#include "server/metrics.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tcpmsg/promhist.h"

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM, M_INFO };

struct metric_def {
    const char *name; /* Prometheus name; the JSON key drops a "tcpmsg_" prefix */
    enum metric_type type;
    const char *unit; /* base unit: "seconds", "bytes", or "" */
    const char *help;
    const char *label;               /* NULL when unlabelled */
    const char *const *values;       /* the label's values */
    size_t nvalues;
    double (*get)(const struct metrics_snapshot *m, size_t i);
    const struct hist *(*hist)(const struct metrics_snapshot *m);
    double scale;                    /* histogram: recorded unit -> base unit */
    const char *label_value;         /* histogram: its value of label, when the family has one */
    size_t (*bounds)(const double **b);
};

#define TAG_OF(name, tag, text) tag,
static const char *const class_tags[] = { "2xx", "3xx", "4xx", "5xx" };
static const char *const auth_tags[] = { HTTP_AUTH_FAILURES(TAG_OF) };
static const char *const http_reject_tags[] = { HTTP_REJECT_REASONS(TAG_OF) };

/* The label values of each counter of server_stats, as field_values. The
 * NULL ends the list and keeps an unlabelled counter's array non-empty. */
#define STATS_VALUES(field, shape, name, unit, label, values, help) \
    static const char *const field##_values[] = { values(TAG_OF) NULL };
SERVER_STATS_COUNTERS(STATS_VALUES)
#undef STATS_VALUES
#undef TAG_OF
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static double u(uint64_t v)
{
    return (double)v;
}

static double get_open(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->conns_open); }
static double get_max_conns(const struct metrics_snapshot *m, size_t i) { (void)i; return m->max_conns; }
static double get_buf_mem(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->buffer_memory_bytes); }
static double get_buf_limit(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->buffer_memory_limit_bytes); }
static double get_workers(const struct metrics_snapshot *m, size_t i) { (void)i; return m->workers; }
static double get_draining(const struct metrics_snapshot *m, size_t i) { (void)i; return m->draining; }
static double get_uptime(const struct metrics_snapshot *m, size_t i) { (void)i; return m->uptime_s; }
static double get_start(const struct metrics_snapshot *m, size_t i) { (void)i; return m->start_time_s; }
static double get_rss(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->rss_bytes); }
static double get_fds(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->open_fds); }
static double get_cpu(const struct metrics_snapshot *m, size_t i) { (void)i; return m->cpu_seconds; }
static double get_one(const struct metrics_snapshot *m, size_t i) { (void)m; (void)i; return 1; }

/* Value i of a counter of server_stats. Past the end of the array is the
 * one label value counted elsewhere, errors' "http" (ERROR_METRIC_KINDS):
 * the HTTP endpoint's 4xx and 5xx answers. */
static double stats_value(const struct metrics_snapshot *m, const counter_t *c, size_t n, size_t i)
{
    if (i < n)
        return u(counter_get(&c[i]));
    return u(m->http_responses[4] + m->http_responses[5]);
}

/* A counter in seconds counts microseconds (stats.h). */
static double per_count(const char *unit)
{
    return strcmp(unit, "seconds") == 0 ? 1e-6 : 1;
}

#define STATS_GETTER(field, shape, name, unit, ...)                                        \
    static double get_##field(const struct metrics_snapshot *m, size_t i)                 \
    {                                                                                      \
        return per_count(unit) *                                                           \
               stats_value(m, STATS_CFIRST(&m->stats, field), STATS_LEN(field), i);        \
    }
SERVER_STATS_COUNTERS(STATS_GETTER)
#undef STATS_GETTER

static double get_http(const struct metrics_snapshot *m, size_t i) { return u(m->http_responses[i + 2]); }
static double get_auth(const struct metrics_snapshot *m, size_t i) { return u(m->http_auth_failures[i]); }
static double get_http_rejected(const struct metrics_snapshot *m, size_t i) { return u(m->http_rejected[i]); }
static double get_http_open(const struct metrics_snapshot *m, size_t i) { (void)i; return u(m->http_open); }

#define STATS_HIST_GETTER(field, ...) \
    static const struct hist *hist_##field(const struct metrics_snapshot *m) { return &m->stats.field; }
SERVER_STATS_HISTS(STATS_HIST_GETTER)
#undef STATS_HIST_GETTER

/* Size buckets: powers of four from 1 byte to 16 MiB (the protocol's limit). */
static const double size_bounds[] = {
    0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
};

/* Latency buckets are shared with the client's probe (tcpmsg/promhist.h). */
size_t metrics_latency_bounds(const double **b)
{
    return promhist_latency_bounds(b);
}

size_t metrics_size_bounds(const double **b)
{
    *b = size_bounds;
    return COUNT_OF(size_bounds);
}

/* Messages per wakeup: powers of two up to 256 (a wakeup dispatches at most
 * 256 events, and an event may complete several replies). */
static const double wakeup_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };

size_t metrics_wakeup_bounds(const double **b)
{
    *b = wakeup_bounds;
    return COUNT_OF(wakeup_bounds);
}

#define LABELS(l, v) .label = (l), .values = (v), .nvalues = COUNT_OF(v)

static const struct metric_def metric_defs[] = {
    { "tcpmsg_build_info", M_INFO, "",
      "Version, concurrency mode and event loop backend of this server (value 1)",
      .get = get_one },
    { "tcpmsg_connections_open", M_GAUGE, "", "Client connections open now", .get = get_open },
    { "tcpmsg_connections_max", M_GAUGE, "", "The --max-conns limit on open connections",
      .get = get_max_conns },
    { "tcpmsg_buffer_memory_bytes", M_GAUGE, "bytes",
      "Memory held by connection buffers (partial messages, unsent replies), all connections",
      .get = get_buf_mem },
    { "tcpmsg_buffer_memory_limit_bytes", M_GAUGE, "bytes",
      "The --max-buffer-memory budget for connection buffers", .get = get_buf_limit },
#define STATS_COUNTER_DEF(field, shape, name, unit, label_name, label_values, help)          \
    { name, M_COUNTER, unit, help, .label = label_name, .values = field##_values,               \
      .nvalues = COUNT_OF(field##_values) - 1, .get = get_##field },
    SERVER_STATS_COUNTERS(STATS_COUNTER_DEF)
#undef STATS_COUNTER_DEF
    { "tcpmsg_http_responses_total", M_COUNTER, "",
      "Responses of the HTTP endpoint, by status class", LABELS("class", class_tags),
      .get = get_http },
    { "tcpmsg_http_auth_failures_total", M_COUNTER, "",
      "Requests and TLS connections the --web-config refused, by reason",
      LABELS("reason", auth_tags), .get = get_auth },
    { "tcpmsg_http_connections_open", M_GAUGE, "", "HTTP connections open now",
      .get = get_http_open },
    { "tcpmsg_http_connections_rejected_total", M_COUNTER, "",
      "HTTP connections refused at accept or ended by the header deadline, by reason",
      LABELS("reason", http_reject_tags), .get = get_http_rejected },
#define STATS_HIST_DEF(field, name, label_name, value, unit, to_unit, bounds_of, help)           \
    { name, M_HISTOGRAM, unit, help, .hist = hist_##field, .scale = to_unit, .bounds = bounds_of, \
      .label = label_name, .label_value = value },
    SERVER_STATS_HISTS(STATS_HIST_DEF)
#undef STATS_HIST_DEF
    { "tcpmsg_workers", M_GAUGE, "", "Worker threads serving connections", .get = get_workers },
    { "tcpmsg_draining", M_GAUGE, "", "1 while the server shuts down, else 0", .get = get_draining },
    { "tcpmsg_uptime_seconds", M_GAUGE, "seconds", "Time since the server started",
      .get = get_uptime },
    { "process_start_time_seconds", M_GAUGE, "seconds", "Start time of the process, Unix time",
      .get = get_start },
    { "process_resident_memory_bytes", M_GAUGE, "bytes", "Resident memory size",
      .get = get_rss },
    { "process_open_fds", M_GAUGE, "", "Open file descriptors", .get = get_fds },
    { "process_cpu_seconds_total", M_COUNTER, "seconds", "User and system CPU time spent",
      .get = get_cpu },
};

static const char *json_key(const char *name)
{
    return strncmp(name, "tcpmsg_", 7) == 0 ? name + 7 : name;
}

void metrics_read_process(struct metrics_snapshot *m)
{
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            m->rss_bytes = (uint64_t)resident * (uint64_t)page;
        fclose(f);
    }
    m->open_fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            m->open_fds += e->d_name[0] != '.';
        m->open_fds--; /* the descriptor opendir itself holds */
        closedir(d);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        m->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

uint64_t metrics_hist_cumulative(const struct hist *h, uint64_t bound)
{
    return promhist_cumulative(h, bound);
}

/* --- JSON ------------------------------------------------------------- */

/* The chart resolution of the JSON buckets: 8 per power of two. */
#define JSON_SUB_BITS 3

/* Which chart bucket a value falls in: values below 8 alone, then 8 equal
 * parts of each power of two. */
static unsigned chart_bucket(uint64_t v)
{
    if (v < (1u << JSON_SUB_BITS))
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return (e << JSON_SUB_BITS) + (unsigned)((v >> (e - JSON_SUB_BITS)) & ((1u << JSON_SUB_BITS) - 1));
}

/* A count as a JSON integer. jansson's integers are signed 64-bit: a count
 * past INT64_MAX (a saturated histogram) would print negative, so it stops
 * there. A double (the getters' type) is converted only within range. */
static json_t *json_count(double v)
{
    if (!(v >= 0))
        return json_integer(0);
    return json_integer(v >= 0x1p63 ? INT64_MAX : (json_int_t)v);
}

static json_t *json_count_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* A value of a histogram recorded in units of `scale`: a scale of 1 means
 * bytes or counts, whole numbers, printed as JSON integers; seconds (a
 * scale of 1e-9) are reals. */
static json_t *json_scaled(uint64_t v, double scale)
{
    return scale == 1 ? json_count_u64(v) : json_real((double)v * scale);
}

static void append_bucket(json_t *a, uint64_t lo, uint64_t hi, uint64_t count, double scale)
{
    json_t *e = json_object();
    json_object_set_new(e, "lo", json_scaled(lo, scale));
    json_object_set_new(e, "hi", json_scaled(hi, scale));
    json_object_set_new(e, "count", json_count_u64(count));
    json_array_append_new(a, e);
}

/* The non-empty buckets, merged to 8 per power of two (12.5% wide): enough
 * for a chart, and a few hundred entries at most instead of thousands. Each
 * [lo, hi] spans the merged histogram buckets that hold values. */
static json_t *buckets_json(const struct hist *h, double scale)
{
    json_t *a = json_array();
    struct hist_iter it;
    struct hist_bucket b;
    uint64_t lo = 0, hi = 0, count = 0;
    unsigned key = 0;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b)) {
        unsigned k = chart_bucket(b.lo);
        if (count > 0 && k != key) {
            append_bucket(a, lo, hi, count, scale);
            count = 0;
        }
        if (count == 0) {
            lo = b.lo;
            key = k;
        }
        hi = b.hi;
        count = u64_add_sat(count, b.count);
    }
    if (count > 0)
        append_bucket(a, lo, hi, count, scale);
    return a;
}

static json_t *hist_json(const struct metric_def *d, const struct hist *h)
{
    double s = d->scale;
    json_t *o = json_object();
    json_object_set_new(o, "unit", json_string(d->unit));
    json_object_set_new(o, "count", json_count_u64(hist_count(h)));
    json_object_set_new(o, "sum", json_scaled(hist_sum(h), s));
    json_object_set_new(o, "min", json_scaled(hist_min(h), s));
    json_object_set_new(o, "max", json_scaled(hist_max(h), s));
    json_object_set_new(o, "mean", json_real(hist_mean(h) * s)); /* fractional in any unit */
    json_object_set_new(o, "p50", json_scaled(hist_percentile(h, 50), s));
    json_object_set_new(o, "p90", json_scaled(hist_percentile(h, 90), s));
    json_object_set_new(o, "p99", json_scaled(hist_percentile(h, 99), s));
    json_object_set_new(o, "p99_9", json_scaled(hist_percentile(h, 99.9), s));
    json_object_set_new(o, "buckets", buckets_json(h, s));
    return o;
}

/* The object holding a labelled histogram family's members by label value
 * ("stage_seconds": {"rx_queue": {...}, ...}), made by its first member. */
static json_t *family_json(json_t *hists, const char *key)
{
    json_t *o = json_object_get(hists, key);
    if (o == NULL) {
        o = json_object();
        json_object_set_new(hists, key, o);
    }
    return o;
}

static json_t *value_json(const struct metric_def *d, const struct metrics_snapshot *m)
{
    if (d->label == NULL) {
        double v = d->get(m, 0);
        /* Counts, and gauges or counters of counts or bytes, print as
         * integers; measures in seconds (fractional by nature) always as
         * reals, so a scraper sees one JSON type whatever the value. */
        bool whole = strcmp(d->unit, "seconds") != 0 && v == floor(v);
        return whole && v >= 0 ? json_count(v) : json_real(v);
    }
    json_t *o = json_object();
    for (size_t i = 0; i < d->nvalues; i++)
        json_object_set_new(o, d->values[i], json_count(d->get(m, i)));
    return o;
}

/* The event loops at a glance: "syscalls" by kind, and "loop" with the
 * wakeups and the messages per wakeup, shaped as every histogram. */
static void loop_json(json_t *root, const struct metrics_snapshot *m)
{
    json_t *sys = json_object();
#define SYSCALL_JSON(name, tag, text) \
    json_object_set_new(sys, tag, json_count_u64(counter_get(&m->stats.syscalls[STATS_##name])));
    SYSCALL_OPS(SYSCALL_JSON)
#undef SYSCALL_JSON
    json_object_set_new(root, "syscalls", sys);
    json_t *loop = json_object();
    json_object_set_new(loop, "wakeups", json_count_u64(counter_get(&m->stats.wakeups)));
    for (size_t i = 0; i < COUNT_OF(metric_defs); i++)
        if (metric_defs[i].hist == hist_msgs_per_wakeup)
            json_object_set_new(loop, "messages_per_wakeup",
                                hist_json(&metric_defs[i], hist_msgs_per_wakeup(m)));
    json_object_set_new(root, "loop", loop);
}

char *metrics_json(const struct metrics_snapshot *m)
{
    json_t *root = json_object();
    json_t *server = json_object();
    json_object_set_new(server, "version", json_string(m->version));
    json_object_set_new(server, "mode", json_string(m->mode));
    json_object_set_new(server, "io", json_string(m->io != NULL ? m->io : "epoll"));
    json_object_set_new(server, "address", json_string(m->address));
    json_object_set_new(server, "workers", json_integer(m->workers));
    json_object_set_new(server, "stage_sample", json_integer(m->stage_sample));
    json_object_set_new(server, "draining", json_boolean(m->draining));
    json_object_set_new(server, "start_time_seconds", json_real(m->start_time_s));
    json_object_set_new(server, "uptime_seconds", json_real(m->uptime_s));
    json_object_set_new(root, "server", server);

    json_t *counters = json_object(), *gauges = json_object(), *hists = json_object();
    for (size_t i = 0; i < COUNT_OF(metric_defs); i++) {
        const struct metric_def *d = &metric_defs[i];
        if (d->type == M_COUNTER)
            json_object_set_new(counters, json_key(d->name), value_json(d, m));
        else if (d->type == M_GAUGE)
            json_object_set_new(gauges, json_key(d->name), value_json(d, m));
        else if (d->type == M_HISTOGRAM && d->label_value == NULL)
            json_object_set_new(hists, json_key(d->name), hist_json(d, d->hist(m)));
        else if (d->type == M_HISTOGRAM)
            json_object_set_new(family_json(hists, json_key(d->name)), d->label_value,
                                hist_json(d, d->hist(m)));
    }
    json_object_set_new(root, "counters", counters);
    loop_json(root, m);
    json_object_set_new(root, "gauges", gauges);
    json_object_set_new(root, "histograms", hists);
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(root);
    return text;
}

/* --- Prometheus text 0.0.4 and OpenMetrics ------------------------------ */

/* OpenMetrics names a counter family without "_total", and an info family
 * without "_info"; the samples keep the full name in both formats. */
static void family_name(const struct metric_def *d, bool om, char *out, size_t cap)
{
    size_t n = strlen(d->name);
    const char *suffix = d->type == M_COUNTER ? "_total" : d->type == M_INFO ? "_info" : NULL;
    if (om && suffix != NULL && n > strlen(suffix))
        n -= strlen(suffix);
    snprintf(out, cap, "%.*s", (int)n, d->name);
}

static const char *type_name(const struct metric_def *d, bool om)
{
    switch (d->type) {
    case M_COUNTER:
        return "counter";
    case M_HISTOGRAM:
        return "histogram";
    case M_INFO:
        return om ? "info" : "gauge";
    case M_GAUGE:
        break;
    }
    return "gauge";
}

static void prom_hist(FILE *f, const struct metric_def *d, const struct hist *h)
{
    const double *bounds;
    size_t nb = d->bounds(&bounds);
    char labels[96] = "";
    if (d->label_value != NULL)
        snprintf(labels, sizeof labels, "%s=\"%s\",", d->label, d->label_value);
    promhist_write(f, d->name, labels, h, d->scale, bounds, nb);
}

/* Whether d continues the family of the definition before it (a labelled
 * histogram's later members): no second HELP and TYPE. */
static bool same_family(size_t i)
{
    return i > 0 && strcmp(metric_defs[i].name, metric_defs[i - 1].name) == 0;
}

static void prom_value(FILE *f, const char *name, const char *label, const char *value, double v)
{
    if (label != NULL)
        fprintf(f, "%s{%s=\"%s\"} ", name, label, value);
    else
        fprintf(f, "%s ", name);
    if (v == (double)(uint64_t)v && v < 1e15)
        fprintf(f, "%llu\n", (unsigned long long)v);
    else
        fprintf(f, "%.17g\n", v); /* exact: a Unix time needs 13+ digits */
}

static char *render_text(const struct metrics_snapshot *m, size_t *len, bool om)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        return NULL;
    for (size_t i = 0; i < COUNT_OF(metric_defs); i++) {
        const struct metric_def *d = &metric_defs[i];
        char family[128];
        family_name(d, om, family, sizeof family);
        if (!same_family(i)) {
            fprintf(f, "# HELP %s %s.\n", family, d->help);
            fprintf(f, "# TYPE %s %s\n", family, type_name(d, om));
            if (om && d->unit[0] != '\0')
                fprintf(f, "# UNIT %s %s\n", family, d->unit);
        }
        if (d->type == M_HISTOGRAM) {
            prom_hist(f, d, d->hist(m));
        } else if (d->type == M_INFO) {
            fprintf(f, "%s{version=\"%s\",mode=\"%s\",io=\"%s\"} 1\n", d->name, m->version,
                    m->mode, m->io);
        } else if (d->label == NULL) {
            prom_value(f, d->name, NULL, NULL, d->get(m, 0));
        } else {
            for (size_t k = 0; k < d->nvalues; k++)
                prom_value(f, d->name, d->label, d->values[k], d->get(m, k));
        }
    }
    if (om)
        fputs("# EOF\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *metrics_prometheus(const struct metrics_snapshot *m, size_t *len)
{
    return render_text(m, len, false);
}

char *metrics_openmetrics(const struct metrics_snapshot *m, size_t *len)
{
    return render_text(m, len, true);
}

/* --- docs/METRICS.md ----------------------------------------------------- */

void metrics_write_markdown(FILE *out)
{
    fputs("| metric | type | unit | labels | meaning |\n|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < COUNT_OF(metric_defs); i++) {
        const struct metric_def *d = &metric_defs[i];
        if (same_family(i))
            continue; /* listed with its first member */
        fprintf(out, "| `%s` | %s | %s | ", d->name, type_name(d, true),
                d->unit[0] != '\0' ? d->unit : "-");
        if (d->type == M_INFO) {
            fputs("`version`, `mode`, `io`", out);
        } else if (d->label_value != NULL) {
            fprintf(out, "`%s`: ", d->label);
            for (size_t k = i; k < COUNT_OF(metric_defs) && (k == i || same_family(k)); k++)
                fprintf(out, "%s`%s`", k > i ? ", " : "", metric_defs[k].label_value);
        } else if (d->label != NULL) {
            fprintf(out, "`%s`: ", d->label);
            for (size_t k = 0; k < d->nvalues; k++)
                fprintf(out, "%s`%s`", k ? ", " : "", d->values[k]);
        } else {
            fputs("-", out);
        }
        fprintf(out, " | %s |\n", d->help);
    }
#define MD_ROW(name, tag, text) fprintf(out, "| `%s` | %s |\n", tag, text);
    fputs("\n### Close reasons (`tcpmsg_connections_closed_total{reason}`)\n\n"
          "| reason | meaning |\n|---|---|\n", out);
    CLOSE_REASONS(MD_ROW)
    fputs("\n### Reject reasons (`tcpmsg_connections_rejected_total{reason}`)\n\n"
          "| reason | meaning |\n|---|---|\n", out);
    REJECT_REASONS(MD_ROW)
    fputs("\n### Error kinds (`tcpmsg_errors_total{kind}`)\n\n"
          "| kind | meaning |\n|---|---|\n", out);
    ERROR_METRIC_KINDS(MD_ROW)
    fputs("\n### Web config refusals (`tcpmsg_http_auth_failures_total{reason}`)\n\n"
          "| reason | meaning |\n|---|---|\n", out);
    HTTP_AUTH_FAILURES(MD_ROW)
    fputs("\n### RTT report rejections (`tcpmsg_client_rtt_reports_rejected_total{reason}`)\n\n"
          "| reason | meaning |\n|---|---|\n", out);
    RTT_REJECT_REASONS(MD_ROW)
    fputs("\n### HTTP reject reasons (`tcpmsg_http_connections_rejected_total{reason}`)\n\n"
          "| reason | meaning |\n|---|---|\n", out);
    HTTP_REJECT_REASONS(MD_ROW)
#undef MD_ROW
}
