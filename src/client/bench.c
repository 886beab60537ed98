/* bench: tcpmsg bench's timeline. Opens the connections (at --connect-rate),
 * starts the loadgen threads, reports each --interval from snapshots of
 * their counters and histograms, then sums them into the summary and the
 * spectrum files. The load itself is loadgen.c; the output is report.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "client/loadgen.h"
#include "client/report.h"
#include "tcpmsg/hdrlog.h"
#include "tcpmsg/net.h"

#define POLL_NS 20000000ull /* the main thread checks for the end this often */

struct bench {
    const struct client_config *cfg;
    struct lg_plan plan;
    struct lg_thread **threads;
    unsigned nthreads;
    uint8_t *tmpl;
    char target[sizeof ((struct client_config *)0)->host + 8];
    FILE *hdr;          /* --hdr-log, or NULL */
    double measure_wall_s; /* Unix time of plan.measure_ns: the log's base time */
};

/* The payload every message is made from: fixed pseudo-random bytes, printable
 * in text mode (no LF, and a first byte that selects text framing). */
static uint8_t *make_template(size_t n, bool text)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    uint64_t x = 0x9e3779b97f4a7c15u; /* fixed seed: runs are repeatable */
    for (size_t i = 0; p != NULL && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = text ? (uint8_t)('a' + x % 26) : (uint8_t)x;
    }
    return p;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(t_ns / 1000000000u),
                           .tv_nsec = (long)(t_ns % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Open every connection, at most --connect-rate a second. 0 or an exit
 * status (the first connection failing means the target is down). */
static int connect_all(struct bench *b)
{
    const struct client_config *cfg = b->cfg;
    uint64_t t0 = net_now_ns();
    unsigned n = 0;
    for (unsigned i = 0; i < b->nthreads; i++) {
        unsigned share = cfg->connections / b->nthreads + (i < cfg->connections % b->nthreads);
        for (unsigned k = 0; k < share; k++, n++) {
            if (cfg->connect_rate > 0 && n > 0)
                sleep_until(t0 + (uint64_t)((double)n * 1e9 / cfg->connect_rate));
            int rc = lg_thread_connect(b->threads[i], k);
            if (rc == 0)
                continue;
            /* This machine ran out (buffers, the epoll set): the run ends. */
            if (rc == -ENOMEM || rc == -ENOSPC)
                return EXIT_IO;
            /* The first connection failing means the target is not there:
             * exit 3, whether refused or timed out (4 is the one-shot's); a
             * later one is counted and the run goes on. */
            if (n == 0)
                return rc == -EINVAL ? EXIT_USAGE : EXIT_CONNECT;
        }
    }
    return EXIT_OK;
}

/* The event loop asked for cannot be had: say why (loop_new's errors). */
static int io_failed(const struct client_config *cfg, int rc)
{
    const char *what = cfg->sqpoll ? "io_uring with --sqpoll" : "io_uring";
    if (rc == -ENOSYS)
        fprintf(stderr, "tcpmsg: --io uring: this build or kernel has no %s\n", what);
    else if (rc == -EPERM)
        fprintf(stderr, "tcpmsg: --io uring: %s is disabled on this system\n", what);
    else
        fprintf(stderr, "tcpmsg: cannot set up %s: %s\n", cfg->io == LOOP_EPOLL ? "epoll" : what,
                strerror(-rc));
    return EXIT_IO;
}

static int setup(struct bench *b)
{
    /* The loop writes with write(2)/writev(2): a server that went away is
     * an EPIPE error on that connection, not the end of the program. */
    signal(SIGPIPE, SIG_IGN);
    const struct client_config *cfg = b->cfg;
    b->nthreads = cfg->threads < cfg->connections ? cfg->threads : cfg->connections;
    b->threads = calloc(b->nthreads, sizeof *b->threads);
    b->tmpl = make_template(cfg->size, cfg->text);
    if (b->threads == NULL || b->tmpl == NULL)
        goto failed_malloc;
    b->plan.cfg = cfg;
    b->plan.tmpl = b->tmpl;
    if (cfg->rate > 0)
        b->plan.conn_period_ns = 1e9 * cfg->connections / cfg->rate;
    unsigned first = 0;
    for (unsigned i = 0; i < b->nthreads; i++) {
        unsigned share = cfg->connections / b->nthreads + (i < cfg->connections % b->nthreads);
        uint64_t quota = cfg->count == 0 ? UINT64_MAX
                                         : cfg->count / b->nthreads + (i < cfg->count % b->nthreads);
        const char *why = NULL;
        int rc = lg_thread_new(&b->threads[i], &b->plan, first, share, quota, &why);
        if (rc == -ENOMEM)
            goto failed_malloc;
        if (rc < 0)
            return io_failed(cfg, rc);
        if (i == 0 && why != NULL)
            fprintf(stderr, "tcpmsg: --io auto: using epoll: %s\n", why);
        first += share;
    }
    return connect_all(b);

failed_malloc:
    fprintf(stderr, "tcpmsg: out of memory\n");
    return EXIT_IO;
}

static void teardown(struct bench *b)
{
    for (unsigned i = 0; b->threads != NULL && i < b->nthreads; i++)
        lg_thread_free(b->threads[i]);
    free(b->threads);
    free(b->tmpl);
}

/* --- intervals ---------------------------------------------------------------- */

struct snapshot {
    uint64_t msgs, bytes, errors;
    struct hist rtt, rtt_raw;
    struct cstage_hists stages;
};

static void take_snapshot(const struct bench *b, struct snapshot *s)
{
    s->msgs = s->bytes = s->errors = 0;
    hist_reset(&s->rtt);
    hist_reset(&s->rtt_raw);
    cstage_hists_init(&s->stages);
    for (unsigned i = 0; i < b->nthreads; i++) {
        const struct lg_stats *st = lg_thread_stats(b->threads[i]);
        s->msgs += counter_get(&st->msgs);
        s->bytes += counter_get(&st->bytes);
        for (int e = 0; e < LG_ERR_COUNT; e++)
            s->errors += counter_get(&st->errors[e]);
        hist_merge(&s->rtt, &st->rtt);
        hist_merge(&s->rtt_raw, &st->rtt_raw);
        cstage_hists_merge(&s->stages, &st->stages);
    }
}

/* --- the HdrHistogram log ------------------------------------------------------- */

/* Latencies are recorded in nanoseconds; the max column is in milliseconds,
 * as HdrHistogram's own tools write it. */
#define HDR_MAX_DIVISOR HDRLOG_MAX_DIVISOR

/* [t0, t0 + len) seconds after the measured start: a closed loop's
 * latencies untagged, an open loop's as "corrected" (from the intended send
 * time) and "uncorrected" (from the actual send); with --stages, each part
 * of the split round trips tagged "stage_" and its name (stage_client_tx,
 * stage_network, stage_client_rx). stages may be NULL: none. */
static int hdr_log_interval(const struct bench *b, double t0, double len, const struct hist *rtt,
                            const struct hist *raw, const struct hist *stages)
{
    int rc;
    if (b->cfg->rate <= 0) {
        rc = hdrlog_write_interval(b->hdr, NULL, t0, len, rtt, HDR_MAX_DIVISOR);
    } else {
        rc = hdrlog_write_interval(b->hdr, "corrected", t0, len, rtt, HDR_MAX_DIVISOR);
        if (rc == 0)
            rc = hdrlog_write_interval(b->hdr, "uncorrected", t0, len, raw, HDR_MAX_DIVISOR);
    }
    for (int i = 0; i < CSTAGE_COUNT && rc == 0 && stages != NULL && b->cfg->stages; i++) {
        rc = hdrlog_write_interval(b->hdr, cstage_tag((enum cstage)i), t0, len, &stages[i],
                                   HDR_MAX_DIVISOR);
    }
    return rc;
}

/* out = now - prev, bucket by bucket (each value at its bucket's midpoint). */
static void hist_delta(struct hist *out, const struct hist *now, const struct hist *prev)
{
    hist_reset(out);
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t a = atomic_load_explicit(&now->counts[i], memory_order_relaxed);
        uint64_t z = atomic_load_explicit(&prev->counts[i], memory_order_relaxed);
        if (a > z) {
            uint64_t lo = hist_bucket_lo(i);
            hist_record_n(out, lo + (hist_bucket_hi(i) - lo) / 2, a - z);
        }
    }
}

/* Report [prev, now): the difference of two snapshots; now becomes prev.
 * scratch holds SCRATCH_HISTS histograms. */
#define SCRATCH_HISTS (2 + CSTAGE_COUNT)
static int emit_interval(const struct bench *b, struct snapshot *prev, struct snapshot *now,
                         struct hist *scratch, double t0, double t1)
{
    hist_delta(&scratch[0], &now->rtt, &prev->rtt);
    struct bench_interval iv = { .t0 = t0, .t1 = t1, .msgs = now->msgs - prev->msgs,
                                 .bytes = now->bytes - prev->bytes,
                                 .errors = now->errors - prev->errors, .rtt = &scratch[0] };
    report_interval(b->cfg, &iv);
    int rc = 0;
    if (b->hdr != NULL) {
        hist_delta(&scratch[1], &now->rtt_raw, &prev->rtt_raw);
        for (int i = 0; i < CSTAGE_COUNT; i++)
            hist_delta(&scratch[2 + i], &now->stages.h[i], &prev->stages.h[i]);
        rc = hdr_log_interval(b, t0, t1 - t0, &scratch[0], &scratch[1], &scratch[2]);
    }
    prev->msgs = now->msgs;
    prev->bytes = now->bytes;
    prev->errors = now->errors;
    hist_reset(&prev->rtt);
    hist_merge(&prev->rtt, &now->rtt);
    hist_reset(&prev->rtt_raw);
    hist_merge(&prev->rtt_raw, &now->rtt_raw);
    cstage_hists_init(&prev->stages);
    cstage_hists_merge(&prev->stages, &now->stages);
    return rc;
}

static bool all_finished(const struct bench *b)
{
    for (unsigned i = 0; i < b->nthreads; i++)
        if (!lg_thread_finished(b->threads[i]))
            return false;
    return true;
}

/* Report every --interval until the threads are done, then the remainder,
 * so that the intervals add up to the total exactly. 0 or -ENOMEM; a
 * failed write of the --hdr-log goes to *log_err. */
static int watch_intervals(const struct bench *b, int *log_err)
{
    struct snapshot *s = calloc(2, sizeof *s);
    struct hist *scratch = calloc(SCRATCH_HISTS, sizeof *scratch);
    if (s == NULL || scratch == NULL) {
        free(s);
        free(scratch);
        return -ENOMEM;
    }
    hist_init(&s[0].rtt);
    hist_init(&s[0].rtt_raw);
    cstage_hists_init(&s[0].stages);
    uint64_t step = (uint64_t)(b->cfg->interval * 1e9), t = b->plan.measure_ns;
    uint64_t next = t + step;
    while (!all_finished(b)) {
        uint64_t now = net_now_ns();
        sleep_until(now + POLL_NS < next ? now + POLL_NS : next);
        /* A timed run's intervals stop at its end; the remainder (late
         * replies included) is reported once the threads are done. */
        bool past_end = b->cfg->count == 0 && next > b->plan.deadline_ns;
        if (net_now_ns() < next || past_end || all_finished(b))
            continue;
        take_snapshot(b, &s[1]);
        int e = emit_interval(b, &s[0], &s[1], scratch, (double)(t - b->plan.measure_ns) / 1e9,
                              (double)(next - b->plan.measure_ns) / 1e9);
        *log_err = *log_err < 0 ? *log_err : e;
        t = next;
        next += step;
    }
    take_snapshot(b, &s[1]);
    uint64_t end = net_now_ns() < b->plan.deadline_ns ? net_now_ns() : b->plan.deadline_ns;
    if (s[1].msgs > s[0].msgs || s[1].errors > s[0].errors || end > t) {
        int e = emit_interval(b, &s[0], &s[1], scratch, (double)(t - b->plan.measure_ns) / 1e9,
                              (double)((end > t ? end : t) - b->plan.measure_ns) / 1e9);
        *log_err = *log_err < 0 ? *log_err : e;
    }
    free(s);
    free(scratch);
    return 0;
}

/* --- the run ------------------------------------------------------------------ */

static void sum_results(const struct bench *b, struct bench_result *r, uint64_t end_ns)
{
    const struct client_config *cfg = b->cfg;
    r->cfg = cfg;
    r->target = b->target;
    r->open_loop = cfg->rate > 0;
    hist_init(&r->rtt);
    hist_init(&r->rtt_raw);
    cstage_hists_init(&r->stages);
    for (unsigned i = 0; i < b->nthreads; i++) {
        const struct lg_stats *st = lg_thread_stats(b->threads[i]);
        r->msgs += counter_get(&st->msgs);
        r->bytes += counter_get(&st->bytes);
        r->sent += counter_get(&st->sent);
        r->unsent += counter_get(&st->unsent);
        if (counter_get(&st->max_lag_ns) > r->max_lag_ns)
            r->max_lag_ns = counter_get(&st->max_lag_ns);
        for (int e = 0; e < LG_ERR_COUNT; e++)
            r->errors[e] += counter_get(&st->errors[e]);
        hist_merge(&r->rtt, &st->rtt);
        hist_merge(&r->rtt_raw, &st->rtt_raw);
        cstage_hists_merge(&r->stages, &st->stages);
        for (int k = 0; k < LOOP_SYS_COUNT; k++)
            r->syscalls[k] += lg_thread_syscalls(b->threads[i], (enum loop_syscall)k);
    }
    r->io = lg_thread_io(b->threads[0]);
    for (int e = 0; e < LG_ERR_COUNT; e++)
        r->errors_total += r->errors[e];
    /* An open-loop timed run measures its schedule: every message due in the
     * window, whenever its reply came. A closed-loop one stops at the deadline. */
    uint64_t end = end_ns;
    if (cfg->count == 0 && (r->open_loop || end > b->plan.deadline_ns))
        end = b->plan.deadline_ns;
    r->secs = end > b->plan.measure_ns ? (double)(end - b->plan.measure_ns) / 1e9 : 1e-9;
    r->ended_early = cfg->count == 0 && end_ns < b->plan.deadline_ns;
    /* The open loop sends every message due in the window, late ones as
     * fast as --depth allows, so a rate the client or the server cannot
     * sustain shows as a run that goes on long after its end. Going on
     * longer than --timeout (the wait allowed for the last replies) means
     * messages left that much after they were due. */
    r->late_s = end_ns > b->plan.deadline_ns ? (double)(end_ns - b->plan.deadline_ns) / 1e9 : 0;
    uint64_t due = r->sent + r->unsent;
    r->rate_kept = (double)r->unsent <= REPORT_RATE_TOLERANCE * (double)due &&
                   (cfg->count > 0 || r->late_s <= cfg->timeout);
}

/* Worst news first: a wrong reply, then any error, then a rate not kept (a
 * script running --rate must not take an overloaded run for a good one). */
static int exit_status(const struct bench_result *r)
{
    if (r->errors[LG_ERR_MISMATCH] > 0)
        return EXIT_MISMATCH;
    if (r->errors_total > 0)
        return EXIT_IO;
    return r->open_loop && !r->rate_kept ? EXIT_RATE : EXIT_OK;
}

/* --start-at: wait until the wall clock reads it, so that generators on
 * several hosts measure the same seconds. The connections are opened after
 * the wait (a server's --idle-timeout would close them during a long one),
 * which on a LAN takes milliseconds. A time already past starts at once,
 * with a warning: this generator is late. */
static void wait_for_start(const struct client_config *cfg)
{
    double wait = cfg->start_at - net_wall_s();
    if (cfg->start_at <= 0)
        return;
    if (wait < -0.001) {
        fprintf(stderr, "tcpmsg: warning: --start-at was %.3f s ago; starting now\n", -wait);
        return;
    }
    if (wait > 0)
        sleep_until(net_now_ns() + (uint64_t)(wait * 1e9));
    /* sleep_until's clock is the monotonic one: finish on the wall clock. */
    while (net_wall_s() < cfg->start_at)
        sleep_until(net_now_ns() + 100000);
}

/* What ends the log: the file's error, if any, as a message. */
static int close_hdr_log(struct bench *b, int err)
{
    if (b->hdr == NULL)
        return 0;
    if (fclose(b->hdr) != 0 && err == 0)
        err = -errno;
    b->hdr = NULL;
    if (err < 0)
        fprintf(stderr, "tcpmsg: --hdr-log %s: %s\n", b->cfg->hdr_log, strerror(-err));
    return err;
}

static int run(struct bench *b)
{
    const struct client_config *cfg = b->cfg;
    b->plan.start_ns = net_now_ns();
    b->plan.measure_ns = b->plan.start_ns + (uint64_t)(cfg->warmup * 1e9);
    b->plan.deadline_ns = cfg->count > 0 ? UINT64_MAX
                                         : b->plan.measure_ns + (uint64_t)(cfg->duration * 1e9);
    b->measure_wall_s = net_wall_s() + cfg->warmup;
    int log_err = b->hdr != NULL ? hdrlog_write_header(b->hdr, b->measure_wall_s, "nanoseconds")
                                 : 0;
    report_start(cfg, b->target);
    unsigned started = 0;
    int err = 0;
    while (started < b->nthreads && (err = lg_thread_start(b->threads[started])) == 0)
        started++;
    if (err == 0 && cfg->interval > 0)
        err = watch_intervals(b, &log_err);
    for (unsigned i = 0; i < started; i++)
        lg_thread_join(b->threads[i]);
    uint64_t end = 0; /* the last measured loop's end, not the closes after it */
    for (unsigned i = 0; i < b->nthreads; i++)
        if (lg_thread_done_ns(b->threads[i]) > end)
            end = lg_thread_done_ns(b->threads[i]);
    if (err != 0) {
        fprintf(stderr, "tcpmsg: cannot run the load: %s\n", strerror(-err));
        return EXIT_IO;
    }
    struct bench_result *r = calloc(1, sizeof *r);
    if (r == NULL)
        return EXIT_IO;
    sum_results(b, r, end);
    report_summary(r);
    int rc = exit_status(r);
    if (b->hdr != NULL && cfg->interval <= 0 && log_err == 0) /* one line for the run */
        log_err = hdr_log_interval(b, 0, r->secs, &r->rtt, &r->rtt_raw, r->stages.h);
    if (close_hdr_log(b, log_err) < 0)
        rc = rc == EXIT_OK ? EXIT_IO : rc;
    if (cfg->histogram_out != NULL && spectrum_write_hdr(r, cfg->histogram_out) < 0)
        rc = rc == EXIT_OK ? EXIT_IO : rc;
    if (cfg->plot_out != NULL && spectrum_write_svg(r, cfg->plot_out) < 0)
        rc = rc == EXIT_OK ? EXIT_IO : rc;
    free(r);
    return rc;
}

int bench_run(const struct client_config *cfg)
{
    struct bench b = { .cfg = cfg };
    /* An IPv6 address in brackets, as it is written on the command line. */
    snprintf(b.target, sizeof b.target, strchr(cfg->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
             cfg->host, (unsigned)cfg->port);
    if (cfg->hdr_log != NULL && (b.hdr = fopen(cfg->hdr_log, "w")) == NULL) {
        fprintf(stderr, "tcpmsg: --hdr-log %s: %s\n", cfg->hdr_log, strerror(errno));
        return EXIT_USAGE;
    }
    wait_for_start(cfg);
    int rc = setup(&b);
    if (rc == EXIT_OK)
        rc = run(&b);
    close_hdr_log(&b, 0);
    teardown(&b);
    return rc;
}
