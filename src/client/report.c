/* report: tcpmsg bench's output, as text for a person or JSON for a script
 * (see report.h). JSON is built with jansson, one object per line.
 */
#include "client/report.h"

#include <jansson.h>
#include <string.h>

#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

/* "p50", "p99_9", "p99_99": the JSON key of a percentile. */
static void percentile_key(double p, char *out, size_t cap)
{
    snprintf(out, cap, "p%g", p);
    for (char *c = out; *c != '\0'; c++)
        if (*c == '.')
            *c = '_';
}

static void print_line(json_t *o)
{
    char *s = json_dumps(o, JSON_FLAGS);
    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
    fflush(stdout);
}

/* "1 thread", "2 threads". */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static void size_text(const struct client_config *cfg, char *out, size_t cap)
{
    if (cfg->size_min == cfg->size)
        snprintf(out, cap, "%zu", cfg->size);
    else
        snprintf(out, cap, "%zu-%zu", cfg->size_min, cfg->size);
}

/* --- start ------------------------------------------------------------------ */

static void start_json(const struct client_config *cfg, const char *target)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("start"));
    json_object_set_new(o, "target", json_string(target));
    json_object_set_new(o, "mode", json_string(cfg->rate > 0 ? "open" : "closed"));
    json_object_set_new(o, "connections", json_integer(cfg->connections));
    json_object_set_new(o, "depth", json_integer(cfg->depth));
    json_object_set_new(o, "size", json_integer((json_int_t)cfg->size));
    json_object_set_new(o, "size_min", json_integer((json_int_t)cfg->size_min));
    json_object_set_new(o, "threads", json_integer(cfg->threads));
    json_object_set_new(o, "framing", json_string(cfg->text ? "text" : "framed"));
    json_object_set_new(o, "rate", json_real(cfg->rate));
    json_object_set_new(o, "interval_s", json_real(cfg->interval));
    json_object_set_new(o, "warmup_s", json_real(cfg->warmup));
    if (cfg->count > 0)
        json_object_set_new(o, "count", json_integer((json_int_t)cfg->count));
    else
        json_object_set_new(o, "duration_s", json_real(cfg->duration));
    print_line(o);
}

void report_start(const struct client_config *cfg, const char *target)
{
    if (cfg->json) {
        if (cfg->interval > 0)
            start_json(cfg, target);
        return;
    }
    char size[64];
    size_text(cfg, size, sizeof size);
    printf("tcpmsg bench %s: ", target);
    if (cfg->rate > 0)
        printf("open loop at %.1f msg/s, ", cfg->rate);
    printf("%u connection%s, depth %u, %s-byte %smessages, %u thread%s", cfg->connections,
           plural(cfg->connections), cfg->depth, size, cfg->text ? "text " : "", cfg->threads,
           plural(cfg->threads));
    if (cfg->warmup > 0)
        printf(", warmup %.2f s", cfg->warmup);
    printf("\n");
    fflush(stdout);
}

/* --- intervals ------------------------------------------------------------------ */

/* A latency in JSON: null when nothing was measured (a run whose every
 * connection failed at once has no latency; 0 would read as "instant"). */
static json_t *latency_value(const struct hist *h, double v)
{
    return hist_count(h) > 0 ? json_real(v) : json_null();
}

void report_interval(const struct client_config *cfg, const struct bench_interval *iv)
{
    double secs = iv->t1 > iv->t0 ? iv->t1 - iv->t0 : 1e-9;
    double rate = (double)iv->msgs / secs, mb = (double)iv->bytes / secs / 1e6;
    const struct hist *h = iv->rtt;
    bool measured = hist_count(h) > 0; /* no reply in it: no latency to show */
    if (!cfg->json) {
        printf("  [%6.2f-%6.2f s] %10llu msgs %11.1f msg/s %8.2f MB/s  ", iv->t0, iv->t1,
               (unsigned long long)iv->msgs, rate, mb);
        if (measured)
            printf("p50 %.1f  p99 %.1f  max %.1f us", us(hist_percentile(h, 50)),
                   us(hist_percentile(h, 99)), us(hist_max(h)));
        else
            printf("p50 n/a  p99 n/a  max n/a");
        printf("  errors %llu\n", (unsigned long long)iv->errors);
        fflush(stdout);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("interval"));
    json_object_set_new(o, "t0", json_real(iv->t0));
    json_object_set_new(o, "t1", json_real(iv->t1));
    json_object_set_new(o, "messages", json_integer((json_int_t)iv->msgs));
    json_object_set_new(o, "msgs_per_s", json_real(rate));
    json_object_set_new(o, "mb_per_s", json_real(mb));
    json_t *rtt = json_object();
    json_object_set_new(rtt, "p50", latency_value(h, us(hist_percentile(h, 50))));
    json_object_set_new(rtt, "p99", latency_value(h, us(hist_percentile(h, 99))));
    json_object_set_new(rtt, "max", latency_value(h, us(hist_max(h))));
    json_object_set_new(o, "rtt_us", rtt);
    json_object_set_new(o, "errors", json_integer((json_int_t)iv->errors));
    print_line(o);
}

/* --- summary -------------------------------------------------------------------- */

static void print_latency_text(const char *label, const struct hist *h,
                               const struct client_config *cfg, const char *note)
{
    if (hist_count(h) == 0) {
        printf("  %-11s n/a (no reply was received)\n", label);
        return;
    }
    printf("  %-11s min %.1f", label, us(hist_min(h)));
    for (size_t i = 0; i < cfg->npercentiles; i++)
        printf("  p%g %.1f", cfg->percentiles[i], us(hist_percentile(h, cfg->percentiles[i])));
    printf("  max %.1f  mean %.1f%s\n", us(hist_max(h)), hist_mean(h) / 1e3, note);
}

/* The rate the messages really left at: over the time it took to send
 * them, the window and what the run went on after it (a rate the client
 * could not keep sends its 0.1 s of messages in seconds). */
static double sent_rate(const struct bench_result *r)
{
    return (double)r->sent / (r->secs + r->late_s);
}

static void print_rate_text(const struct bench_result *r)
{
    const struct client_config *cfg = r->cfg;
    uint64_t due = r->sent + r->unsent;
    printf("  rate        requested %.1f msg/s, sent %.1f msg/s, max send lag %.3f ms: %s\n",
           cfg->rate, sent_rate(r), (double)r->max_lag_ns / 1e6,
           r->rate_kept ? "kept" : "NOT KEPT");
    if (r->rate_kept || due == 0)
        return;
    if ((double)r->unsent > REPORT_RATE_TOLERANCE * (double)due)
        printf("  WARNING     the requested rate was not kept: %llu of %llu messages due "
               "(%.1f%%) were never sent (window full: raise --connections or --depth)\n",
               (unsigned long long)r->unsent, (unsigned long long)due,
               100.0 * (double)r->unsent / (double)due);
    else
        printf("  WARNING     the requested rate was not kept: the messages due in %.2f s "
               "took %.2f s more to send (the client or the server cannot go this fast: "
               "lower --rate, or raise --connections or --depth)\n",
               r->secs, r->late_s);
}

/* The measured time; a run cut short says so, and why. */
static void print_duration_text(const struct bench_result *r)
{
    if (r->secs >= 0.01)
        printf("  duration    %.2f s", r->secs);
    else
        printf("  duration    %.3f ms", r->secs * 1e3);
    if (r->ended_early)
        printf("  (ended early: every connection was dropped, see errors)");
    printf("\n");
}

/* --stages: p50, p90, p99 and max of each part of the sampled round
 * trips, under the RTT they split. merged: the logs of tcpmsg merge, which
 * hold the split round trips only. */
static void print_stages_text(const struct bench_result *r, bool merged)
{
    const struct cstage_hists *st = &r->stages;
    if (!merged && r->cfg->stage_sample == 0) {
        printf("  stages(us)  none split (--stage-sample 0)\n");
        return;
    }
    if (merged)
        printf("  stages(us)  %llu round trips split\n",
               (unsigned long long)counter_get(&st->split));
    else
        printf("  stages(us)  %llu round trips split (1 in %u), %llu skipped\n",
               (unsigned long long)counter_get(&st->split), r->cfg->stage_sample,
               (unsigned long long)counter_get(&st->skipped));
    for (int i = 0; i < CSTAGE_COUNT && counter_get(&st->split) > 0; i++) {
        const struct hist *h = &st->h[i];
        printf("    %-15s p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", cstage_text((enum cstage)i),
               us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
               us(hist_max(h)));
    }
}

static void summary_text(const struct bench_result *r)
{
    const struct client_config *cfg = r->cfg;
    print_duration_text(r);
    printf("  messages    %llu (%.1f msg/s)\n", (unsigned long long)r->msgs,
           (double)r->msgs / r->secs);
    if (r->open_loop)
        print_rate_text(r);
    printf("  throughput  %.2f MB/s each way\n", (double)r->bytes / r->secs / 1e6);
    if (r->open_loop) {
        print_latency_text("latency(us)", &r->rtt, cfg, "  (from the intended send time)");
        print_latency_text("rtt (us)", &r->rtt_raw, cfg, "  (uncorrected: from the actual send)");
    } else {
        print_latency_text("rtt (us)", &r->rtt, cfg, "");
    }
    if (cfg->stages)
        print_stages_text(r, false);
    printf("  syscalls    %s, whole run:", r->io);
    for (int k = 0; k < LOOP_SYS_COUNT; k++)
        if (r->syscalls[k] > 0)
            printf("  %s %llu", loop_syscall_name(k), (unsigned long long)r->syscalls[k]);
    printf("\n");
    printf("  errors      %llu", (unsigned long long)r->errors_total);
    for (int e = 0; e < LG_ERR_COUNT; e++)
        if (r->errors[e] > 0)
            printf("  %s %llu", lg_error_tag(e), (unsigned long long)r->errors[e]);
    printf("\n");
    fflush(stdout);
}

/* min, mean, p50, p90, p99, p99_9 (always: scripts read them), the
 * --percentiles, max; microseconds. */
static json_t *latency_json(const struct hist *h, const struct client_config *cfg)
{
    static const double fixed[] = { 50, 90, 99, 99.9 };
    json_t *o = json_object();
    json_object_set_new(o, "min", latency_value(h, us(hist_min(h))));
    json_object_set_new(o, "mean", latency_value(h, hist_mean(h) / 1e3));
    char key[32];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        percentile_key(fixed[i], key, sizeof key);
        json_object_set_new(o, key, latency_value(h, us(hist_percentile(h, fixed[i]))));
    }
    for (size_t i = 0; i < cfg->npercentiles; i++) {
        percentile_key(cfg->percentiles[i], key, sizeof key);
        json_object_set_new(o, key, latency_value(h, us(hist_percentile(h, cfg->percentiles[i]))));
    }
    json_object_set_new(o, "max", latency_value(h, us(hist_max(h))));
    json_object_set_new(o, "count", json_integer((json_int_t)hist_count(h)));
    return o;
}

static json_t *rate_json(const struct bench_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "requested", json_real(r->cfg->rate));
    json_object_set_new(o, "sent_per_s", json_real(sent_rate(r)));
    json_object_set_new(o, "sent", json_integer((json_int_t)r->sent));
    json_object_set_new(o, "unsent", json_integer((json_int_t)r->unsent));
    json_object_set_new(o, "max_lag_us", json_real(us(r->max_lag_ns)));
    json_object_set_new(o, "late_s", json_real(r->late_s));
    json_object_set_new(o, "kept", json_boolean(r->rate_kept));
    return o;
}

/* --stages: {"sample": N, "split": n, "skipped": n, "client_tx": {latency}, ...}. */
static json_t *stages_json(const struct bench_result *r)
{
    const struct cstage_hists *st = &r->stages;
    json_t *o = json_object();
    json_object_set_new(o, "sample", json_integer(r->cfg->stage_sample));
    json_object_set_new(o, "split", json_integer((json_int_t)counter_get(&st->split)));
    json_object_set_new(o, "skipped", json_integer((json_int_t)counter_get(&st->skipped)));
    for (int i = 0; i < CSTAGE_COUNT; i++)
        json_object_set_new(o, cstage_name((enum cstage)i), latency_json(&st->h[i], r->cfg));
    return o;
}

static void summary_json(const struct bench_result *r)
{
    const struct client_config *cfg = r->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("end"));
    json_object_set_new(o, "target", json_string(r->target));
    json_object_set_new(o, "mode", json_string(r->open_loop ? "open" : "closed"));
    json_object_set_new(o, "connections", json_integer(cfg->connections));
    json_object_set_new(o, "depth", json_integer(cfg->depth));
    json_object_set_new(o, "size", json_integer((json_int_t)cfg->size));
    json_object_set_new(o, "size_min", json_integer((json_int_t)cfg->size_min));
    json_object_set_new(o, "threads", json_integer(cfg->threads));
    json_object_set_new(o, "warmup_s", json_real(cfg->warmup));
    json_object_set_new(o, "duration_s", json_real(r->secs));
    json_object_set_new(o, "ended_early", json_boolean(r->ended_early));
    json_object_set_new(o, "messages", json_integer((json_int_t)r->msgs));
    json_object_set_new(o, "msgs_per_s", json_real((double)r->msgs / r->secs));
    json_object_set_new(o, "mb_per_s", json_real((double)r->bytes / r->secs / 1e6));
    json_object_set_new(o, "rtt_us", latency_json(&r->rtt, cfg));
    if (r->open_loop) {
        json_object_set_new(o, "rtt_uncorrected_us", latency_json(&r->rtt_raw, cfg));
        json_object_set_new(o, "rate", rate_json(r));
    }
    if (cfg->stages)
        json_object_set_new(o, "stages_us", stages_json(r));
    json_t *errors = json_object();
    for (int e = 0; e < LG_ERR_COUNT; e++)
        json_object_set_new(errors, lg_error_tag(e), json_integer((json_int_t)r->errors[e]));
    json_object_set_new(errors, "total", json_integer((json_int_t)r->errors_total));
    json_object_set_new(o, "errors", errors);
    json_t *io = json_object();
    json_object_set_new(io, "backend", json_string(r->io));
    json_t *sys = json_object();
    for (int k = 0; k < LOOP_SYS_COUNT; k++)
        json_object_set_new(sys, loop_syscall_name(k), json_integer((json_int_t)r->syscalls[k]));
    json_object_set_new(io, "syscalls", sys);
    json_object_set_new(o, "io", io);
    print_line(o);
}

void report_summary(const struct bench_result *r)
{
    if (r->cfg->json)
        summary_json(r);
    else
        summary_text(r);
}

/* --- merge ------------------------------------------------------------------------ */

void report_merged(const struct bench_result *r, size_t nlogs, size_t nintervals, double start_s)
{
    const struct client_config *cfg = r->cfg;
    bool stages = counter_get(&r->stages.split) > 0; /* the logs had them */
    if (cfg->json) {
        json_t *o = json_object();
        json_object_set_new(o, "event", json_string("merged"));
        json_object_set_new(o, "logs", json_integer((json_int_t)nlogs));
        json_object_set_new(o, "intervals", json_integer((json_int_t)nintervals));
        json_object_set_new(o, "mode", json_string(r->open_loop ? "open" : "closed"));
        json_object_set_new(o, "start_time", json_real(start_s));
        json_object_set_new(o, "duration_s", json_real(r->secs));
        json_object_set_new(o, "messages", json_integer((json_int_t)r->msgs));
        json_object_set_new(o, "msgs_per_s", json_real((double)r->msgs / r->secs));
        json_object_set_new(o, "rtt_us", latency_json(&r->rtt, cfg));
        if (r->open_loop)
            json_object_set_new(o, "rtt_uncorrected_us", latency_json(&r->rtt_raw, cfg));
        if (stages) {
            json_t *st = stages_json(r);
            json_object_del(st, "sample"); /* the logs do not say */
            json_object_del(st, "skipped");
            json_object_set_new(o, "stages_us", st);
        }
        print_line(o);
        return;
    }
    printf("merged %zu log%s, %zu interval%s\n", nlogs, nlogs == 1 ? "" : "s", nintervals,
           nintervals == 1 ? "" : "s");
    printf("  duration    %.2f s (wall clock, from the first interval's start to the last's end)\n",
           r->secs);
    printf("  messages    %llu (%.1f msg/s)\n", (unsigned long long)r->msgs,
           (double)r->msgs / r->secs);
    if (r->open_loop) {
        print_latency_text("latency(us)", &r->rtt, cfg, "  (from the intended send time)");
        print_latency_text("rtt (us)", &r->rtt_raw, cfg, "  (uncorrected: from the actual send)");
    } else {
        print_latency_text("rtt (us)", &r->rtt, cfg, "");
    }
    if (stages)
        print_stages_text(r, true);
    fflush(stdout);
}
