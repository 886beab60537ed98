/* probe metrics: tcpmsg probe's results in the Prometheus text format, one
 * series per target, labelled with the target and the labels its file_sd
 * group gave it. The metric table below is the single list of names;
 * histogram buckets come from promhist, the same as the server's.
 */
#include <stdlib.h>
#include <string.h>

#include "client/probe.h"
#include "tcpmsg/promhist.h"

#define PROBE_METRICS(X)                                                                   \
    X(PM_RTT, "tcpmsg_probe_rtt_seconds", "histogram",                                     \
      "Round-trip time of successful probes")                                             \
    X(PM_PROBES, "tcpmsg_probe_probes_total", "counter", "Probes attempted")               \
    X(PM_FAILURES, "tcpmsg_probe_failures_total", "counter",                               \
      "Probes lost (timeouts and connection failures), by reason")                         \
    X(PM_UP, "tcpmsg_probe_up", "gauge", "1 if the last probe of the target succeeded, else 0")

/* The prober's own: its targets, and the --targets file's reloads (named
 * as Prometheus names its configuration's). */
#define PROBE_CONFIG_METRICS(X)                                                              \
    X(PC_TARGETS, "tcpmsg_probe_targets", "gauge", "Targets probed now")                    \
    X(PC_RELOADS, "tcpmsg_probe_config_reloads_total", "counter",                            \
      "Loads of the --targets file (the first included), by result")                        \
    X(PC_LAST_OK, "tcpmsg_probe_config_last_reload_successful", "gauge",                     \
      "1 if the last load of the --targets file succeeded, else 0")                         \
    X(PC_LAST_TIME, "tcpmsg_probe_config_last_reload_success_timestamp_seconds", "gauge",    \
      "Unix time of the last successful load of the --targets file")

enum probe_config_metric {
#define PC_ENUM(id, name, type, help) id,
    PROBE_CONFIG_METRICS(PC_ENUM)
#undef PC_ENUM
};

enum probe_metric {
#define PM_ENUM(id, name, type, help) id,
    PROBE_METRICS(PM_ENUM)
#undef PM_ENUM
};

/* target="HOST:PORT" and the file_sd group's labels. */
static void target_label(FILE *f, const struct probe_target *t)
{
    fputs("target=\"", f);
    promhist_write_label_value(f, t->spec.name);
    fputc('"', f);
    for (size_t i = 0; i < t->spec.nlabels; i++) {
        fprintf(f, ",%s=\"", t->spec.labels[i].name);
        promhist_write_label_value(f, t->spec.labels[i].value);
        fputc('"', f);
    }
}

static void write_series(FILE *f, enum probe_metric m, const char *name,
                         const struct probe_target *t)
{
    switch (m) {
    case PM_RTT: {
        char *labels = NULL;
        size_t n = 0;
        FILE *lf = open_memstream(&labels, &n);
        if (lf == NULL)
            return;
        target_label(lf, t);
        fputc(',', lf);
        fclose(lf);
        const double *bounds;
        size_t nb = promhist_latency_bounds(&bounds);
        promhist_write(f, name, labels, &t->rtt, 1e-9, bounds, nb);
        free(labels);
        return;
    }
    case PM_PROBES:
        fprintf(f, "%s{", name);
        target_label(f, t);
        fprintf(f, "} %llu\n", (unsigned long long)counter_get(&t->probes));
        return;
    case PM_FAILURES:
        for (int r = 0; r < PROBE_FAIL_COUNT; r++) {
            fprintf(f, "%s{", name);
            target_label(f, t);
            fprintf(f, ",reason=\"%s\"} %llu\n", probe_failure_tag(r),
                    (unsigned long long)counter_get(&t->failures[r]));
        }
        return;
    case PM_UP:
        fprintf(f, "%s{", name);
        target_label(f, t);
        fprintf(f, "} %d\n", atomic_load(&t->up));
        return;
    }
}

static void write_config(FILE *f, enum probe_config_metric m, const char *name,
                         const struct probe *p)
{
    const struct probe_reloads *r = &p->reloads;
    switch (m) {
    case PC_TARGETS:
        fprintf(f, "%s %zu\n", name, p->ntargets);
        return;
    case PC_RELOADS:
        fprintf(f, "%s{result=\"success\"} %llu\n%s{result=\"failure\"} %llu\n", name,
                (unsigned long long)r->success, name, (unsigned long long)r->failure);
        return;
    case PC_LAST_OK:
        fprintf(f, "%s %d\n", name, r->last_ok ? 1 : 0);
        return;
    case PC_LAST_TIME:
        fprintf(f, "%s %.3f\n", name, r->last_success_time);
        return;
    }
}

char *probe_metrics_prometheus(struct probe *p, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        return NULL;
    /* Held while writing: a reload neither frees a target nor changes the
     * list under the scrape, and the scrape sees one set of targets. */
    pthread_mutex_lock(&p->lock);
#define PM_RENDER(id, name, type, help)                                 \
    fprintf(f, "# HELP %s %s.\n# TYPE %s %s\n", name, help, name, type); \
    for (size_t i = 0; i < p->ntargets; i++)                            \
        write_series(f, id, name, p->targets[i]);
    PROBE_METRICS(PM_RENDER)
#undef PM_RENDER
    /* The reload metrics only with a file to reload. */
#define PC_RENDER(id, name, type, help)                                         \
    if (id == PC_TARGETS || p->reloads.file != NULL) {                          \
        fprintf(f, "# HELP %s %s.\n# TYPE %s %s\n", name, help, name, type);    \
        write_config(f, id, name, p);                                           \
    }
    PROBE_CONFIG_METRICS(PC_RENDER)
#undef PC_RENDER
    pthread_mutex_unlock(&p->lock);
    if (p->cfg->serve) { /* the /probe endpoint's own counts */
        fputs("# HELP tcpmsg_probe_requests_total /probe requests answered, by outcome.\n"
              "# TYPE tcpmsg_probe_requests_total counter\n",
              f);
        for (int o = 0; o < PROBE_SERVE_OUTCOME_COUNT; o++)
            fprintf(f, "tcpmsg_probe_requests_total{outcome=\"%s\"} %llu\n",
                    probe_serve_outcome_tag((enum probe_serve_outcome)o),
                    (unsigned long long)atomic_load(&p->served[o]));
        fprintf(f,
                "# HELP tcpmsg_probe_requests_in_flight /probe requests being probed now.\n"
                "# TYPE tcpmsg_probe_requests_in_flight gauge\n"
                "tcpmsg_probe_requests_in_flight %u\n",
                atomic_load(&p->serving));
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
