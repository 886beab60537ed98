/* Integration: HdrHistogram logs from several load generators, merged.
 * Three tcpmsg bench runs started together (--start-at) against one server
 * write --hdr-log files; tcpmsg merge adds them into totals equal to the
 * server's own message counter; merging one log gives back the percentiles
 * bench printed; the merged --hdr-log merges to the same result again; a
 * log that is corrupt, too coarse or of an unknown series is refused with
 * its file and line, exit 2.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define RUN_MS 30000
#define GENERATORS 3
#define COUNT 4000 /* messages per generator: --count makes every reply count */

static void temp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "/tmp/tcpmsg-merge-%d-%s", (int)getpid(), name);
}

static json_t *run_json(const char *const *argv, int want_exit)
{
    struct it_run r;
    IT_CHECK(it_run(TCPMSG_PATH, argv, RUN_MS, &r) == 0);
    if (r.exit_code != want_exit)
        fail_msg("%s %s exited %d, want %d: %s", argv[1], argv[2], r.exit_code, want_exit, r.err);
    const char *last = r.out;
    for (const char *p = r.out; (p = strchr(p, '\n')) != NULL && p[1] != '\0'; p++)
        last = p + 1; /* the summary is the last line */
    json_error_t e;
    json_t *doc = json_loads(last, 0, &e);
    if (doc == NULL)
        fail_msg("not JSON: %s", last);
    it_run_free(&r);
    return doc;
}

/* Three generators, one server: the merged message count is the server's. */
static void test_three_generators(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[64], start[32], logs[GENERATORS][128], count[16];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    snprintf(start, sizeof start, "%.3f", (double)time(NULL) + 1.5);
    snprintf(count, sizeof count, "%d", COUNT);
    pid_t pids[GENERATORS];
    for (int g = 0; g < GENERATORS; g++) {
        char name[16];
        snprintf(name, sizeof name, "gen%d.hlog", g);
        temp_path(logs[g], sizeof logs[g], name);
        pids[g] = fork();
        if (pids[g] == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execl(TCPMSG_PATH, "tcpmsg", "bench", target, "--connections", "2", "--depth", "4",
                  "--count", count, "--interval", "0.2", "--start-at", start, "--hdr-log",
                  logs[g], (char *)NULL);
            _exit(127);
        }
        IT_CHECK(pids[g] > 0);
    }
    for (int g = 0; g < GENERATORS; g++) {
        int st;
        IT_CHECK(waitpid(pids[g], &st, 0) == pids[g]);
        IT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    char merged[128];
    temp_path(merged, sizeof merged, "merged.hlog");
    const char *argv[] = { "tcpmsg", "merge", logs[0], logs[1], logs[2], "--json",
                           "--hdr-log", merged, NULL };
    json_t *m = run_json(argv, 0);
    json_t *doc = it_wait_metric(s, "counters.messages_received_total.framed", GENERATORS * COUNT);
    IT_CHECK(doc != NULL);
    fprintf(stderr, "merged: %lld messages in %lld intervals over %.3f s\n",
            it_json_int(m, "messages"), it_json_int(m, "intervals"), it_json_num(m, "duration_s"));
    IT_CHECK(it_json_int(m, "messages") == GENERATORS * COUNT);
    IT_CHECK(it_json_int(m, "logs") == GENERATORS);
    IT_CHECK(it_json_int(m, "intervals") >= GENERATORS); /* at least one each */
    /* Started together and placed on the wall clock: the runs overlap, so
     * the merged span is at least the longest run's and shorter than the
     * three laid end to end. */
    double longest = 0, sum = 0;
    for (int g = 0; g < GENERATORS; g++) {
        const char *one[] = { "tcpmsg", "merge", logs[g], "--json", NULL };
        json_t *d = run_json(one, 0);
        double secs = it_json_num(d, "duration_s");
        longest = secs > longest ? secs : longest;
        sum += secs;
        json_decref(d);
    }
    double merged_s = it_json_num(m, "duration_s");
    fprintf(stderr, "runs %.3f s at most, %.3f s in all; merged span %.3f s\n", longest, sum,
            merged_s);
    IT_CHECK(merged_s >= longest - 0.001);
    IT_CHECK(merged_s < sum);

    /* The merged log holds the same histogram: merged again, the same. */
    const char *again[] = { "tcpmsg", "merge", merged, "--json", NULL };
    json_t *m2 = run_json(again, 0);
    IT_CHECK(it_json_int(m2, "messages") == GENERATORS * COUNT);
    static const char *const keys[] = { "rtt_us.p50", "rtt_us.p90", "rtt_us.p99", "rtt_us.p99_9" };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (it_json_num(m2, keys[k]) != it_json_num(m, keys[k]))
            fail_msg("%s: %.3f merged again, %.3f first", keys[k], it_json_num(m2, keys[k]),
                     it_json_num(m, keys[k]));
    json_decref(m2);
    json_decref(m);
    json_decref(doc);
    for (int g = 0; g < GENERATORS; g++)
        unlink(logs[g]);
    unlink(merged);
    it_server_free(s);
}

/* One run's log, merged alone: the percentiles bench printed. */
static void test_one_log_same_percentiles(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[64], log[128];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    temp_path(log, sizeof log, "one.hlog");
    const char *bench[] = { "tcpmsg", "bench", target, "--connections", "4", "--depth", "2",
                            "--count", "5000", "--json", "--hdr-log", log, NULL };
    json_t *b = run_json(bench, 0);
    const char *merge[] = { "tcpmsg", "merge", log, "--json", NULL };
    json_t *m = run_json(merge, 0);
    IT_CHECK(it_json_int(m, "messages") == it_json_int(b, "messages"));
    IT_CHECK(it_json_int(m, "intervals") == 1); /* no --interval: one line for the run */
    /* The log's max column is exact to the nanosecond, so even a
     * percentile clamped to the max agrees. */
    static const char *const keys[] = { "rtt_us.p50", "rtt_us.p90", "rtt_us.p99", "rtt_us.p99_9",
                                        "rtt_us.max" };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        fprintf(stderr, "%s: bench %.3f, merge %.3f\n", keys[k], it_json_num(b, keys[k]),
                it_json_num(m, keys[k]));
        IT_CHECK(it_json_num(m, keys[k]) == it_json_num(b, keys[k]));
    }
    json_decref(b);
    json_decref(m);
    unlink(log);
    it_server_free(s);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    IT_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* Logs merge refuses: exit 2, the file and line named. */
static void test_refusals(void **state)
{
    (void)state;
    static const char head[] = "#[tcpmsg: values in nanoseconds]\n"
                               "#[StartTime: 1800000000.000 (seconds since epoch)]\n"
                               "0.000,1.000,0.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==\n";
    static const struct {
        const char *line, *says;
    } cases[] = {
        { "1.000,1.000,0.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAy\n", "not base64" },
        /* one significant digit (hdr-histogram-js): too coarse to add exactly */
        { "1.000,1.000,0.000,HISTFAAAAC54nJNpmSzMwMAgwMDAwAjFDBCa/z8IwPhMTDMZmZismVzZJjMyrWdiAgDkkwjY\n",
          "significant digits" },
        { "Tag=gc-pauses,1.000,1.000,0.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==\n",
          "tag 'gc-pauses'" },
        { "this is not a log line\n", "not an interval line" },
    };
    char path[128];
    temp_path(path, sizeof path, "bad.hlog");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", head, cases[i].line);
        write_file(path, text);
        const char *argv[] = { "tcpmsg", "merge", path, NULL };
        struct it_run r;
        IT_CHECK(it_run(TCPMSG_PATH, argv, RUN_MS, &r) == 0);
        char where[160];
        snprintf(where, sizeof where, "%s:4:", path);
        if (r.exit_code != 2 || strstr(r.err, where) == NULL || strstr(r.err, cases[i].says) == NULL)
            fail_msg("case %zu: exit %d, stderr: %s", i, r.exit_code, r.err);
        it_run_free(&r);
    }
    const char *missing[] = { "tcpmsg", "merge", "/nonexistent/x.hlog", NULL };
    struct it_run r;
    IT_CHECK(it_run(TCPMSG_PATH, missing, RUN_MS, &r) == 0);
    IT_CHECK(r.exit_code == 2 && strstr(r.err, "/nonexistent/x.hlog") != NULL);
    it_run_free(&r);
    unlink(path);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_generators),
        cmocka_unit_test(test_one_log_same_percentiles),
        cmocka_unit_test(test_refusals),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
