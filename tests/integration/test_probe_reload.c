/* Integration: tcpmsg probe --targets FILE against a real tcpmsgd and a
 * port nobody listens on: both file formats, reloads on SIGHUP and on a
 * change (in place, by rename, behind a symbolic link) that add, remove and
 * keep targets (a kept target's counters go on), a bad file that keeps the
 * previous set, and the limits on targets and file size; a file emptied in
 * a busy directory is not loaded before it has held a second, and a target
 * stuck in name resolution does not hold the exit, nor a busy directory
 * the main thread. Each case runs alone:
 * test_probe_reload CASE.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "client_util.h"

#define WAIT_MS 10000

/* A loopback port bound but not listening: connects are refused. Keep
 * the descriptor open so that nobody else takes the port. */
static int dead_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    IT_CHECK(*fd >= 0 && bind(*fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return it_local_port(*fd);
}

/* Write text to path: in place (truncate and write, as `>` does), or into
 * a file beside it renamed onto it (as editors save). */
static void write_file(const char *path, const char *text, bool by_rename)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(by_rename ? tmp : path, "w");
    IT_CHECK(f != NULL);
    IT_CHECK(fputs(text, f) >= 0);
    IT_CHECK(fclose(f) == 0);
    if (by_rename)
        IT_CHECK(rename(tmp, path) == 0);
}

/* A file name of our own in /tmp (removed by the caller). */
static void temp_path(char *path, size_t cap, const char *what)
{
    int fd = bg_tempfile(path, cap, what);
    IT_CHECK(fd >= 0);
    close(fd);
}

/* Occurrences of needle in stderr, waited for up to WAIT_MS: at least n. */
static bool wait_stderr(const struct bg_client *b, const char *needle, int n)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    for (;;) {
        char *err = bg_stderr(b);
        int k = 0;
        for (const char *p = err; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            k++;
        free(err);
        if (k >= n)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(20);
    }
}

/* The value of series in /metrics; -1 when absent. */
static double metric(int http, const char *series)
{
    struct it_http r;
    double v = -1;
    assert_int_equal(it_http_get(http, "/metrics", &r), 0);
    if (!it_prom_sample(r.body, series, &v))
        v = -1;
    it_http_free(&r);
    return v;
}

/* Wait until series is at least min (absent: -1); its last value. */
static double wait_metric(int http, const char *series, double min)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    double v;
    while ((v = metric(http, series)) < min && it_now_ms() < deadline)
        it_sleep_ms(20);
    return v;
}

static double probes_of(int http, const char *target)
{
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_probes_total{target=\"%s\"}", target);
    return metric(http, series);
}

/* Start tcpmsg probe --targets path --http-port 0 with more arguments. */
static int start_probe(struct bg_client *b, const char *path, const char *extra)
{
    const char *argv[] = { "tcpmsg", "probe", "--targets", path, "--interval", "0.05",
                           "--timeout", "0.5", "--duration", "60", "--http-port", "0", "--json",
                           extra, NULL };
    bg_start(b, argv);
    int http = bg_http_port(b, WAIT_MS);
    IT_CHECK(http > 0);
    return http;
}

/* Lines: comments and blank lines skipped; a live target and a dead one,
 * each with its own series and its state in /api/targets. */
static void test_file_lines(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int dfd, dport = dead_port(&dfd);
    char path[64], live[32], dead[32], text[256];
    temp_path(path, sizeof path, "targets");
    snprintf(live, sizeof live, "127.0.0.1:%d", s->port);
    snprintf(dead, sizeof dead, "127.0.0.1:%d", dport);
    snprintf(text, sizeof text, "# the mesh\n\n  %s   # this host\n%s\n", live, dead);
    write_file(path, text, false);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"%s\"}", live);
    IT_CHECK(wait_metric(http, series, 1) == 1);
    snprintf(series, sizeof series, "tcpmsg_probe_failures_total{target=\"%s\",reason=\"connect\"}",
             dead);
    IT_CHECK(wait_metric(http, series, 1) >= 1);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 2);
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"success\"}") == 1);
    IT_CHECK(metric(http, "tcpmsg_probe_config_last_reload_successful") == 1);

    json_t *doc = it_http_get_json(http, "/api/targets");
    IT_CHECK(doc != NULL);
    json_t *list = json_object_get(doc, "targets");
    assert_int_equal(json_array_size(list), 2);
    json_t *a = json_array_get(list, 0), *d = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(a, "target")), live);
    IT_CHECK(json_is_true(json_object_get(a, "up")));
    IT_CHECK(json_real_value(json_object_get(a, "last_rtt_us")) > 0);
    assert_string_equal(json_string_value(json_object_get(d, "target")), dead);
    IT_CHECK(json_is_false(json_object_get(d, "up")));
    json_t *why = json_object_get(d, "last_failure");
    assert_string_equal(json_string_value(json_object_get(why, "reason")), "connect");
    IT_CHECK(json_real_value(json_object_get(json_object_get(d, "window"), "loss_pct")) == 100.0);
    json_decref(doc);

    assert_int_equal(bg_term(&b, WAIT_MS), 1); /* the dead target lost probes */
    IT_CHECK(bg_count(&b, "\"event\":\"summary\"") == 2);
    bg_free(&b);
    unlink(path);
    close(dfd);
    it_server_free(s);
}

/* file_sd JSON: the group's labels are on every series of its targets, in
 * text promtool accepts; "__" labels are not. A target whose labels change
 * is another target. */
static void test_file_sd(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int dfd, dport = dead_port(&dfd);
    char path[64], text[512];
    temp_path(path, sizeof path, "targets");
    snprintf(text, sizeof text,
             "[\n  {\"targets\": [\"127.0.0.1:%d\"], \"labels\": {\"zone\": \"a\", "
             "\"__meta_x\": \"y\"}},\n  {\"targets\": [\"127.0.0.1:%d\"], \"labels\": "
             "{\"zone\": \"b \\\"quoted\\\"\", \"rack\": \"r1\"}}\n]\n",
             s->port, dport);
    write_file(path, text, false);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    char series[200];
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"127.0.0.1:%d\",zone=\"a\"}",
             s->port);
    IT_CHECK(wait_metric(http, series, 1) == 1);
    snprintf(series, sizeof series,
             "tcpmsg_probe_probes_total{target=\"127.0.0.1:%d\",rack=\"r1\",zone=\"b \\\"quoted\\\"\"}",
             dport);
    IT_CHECK(wait_metric(http, series, 1) >= 1);
    snprintf(series, sizeof series,
             "tcpmsg_probe_rtt_seconds_bucket{target=\"127.0.0.1:%d\",zone=\"a\",le=\"+Inf\"}",
             s->port);
    IT_CHECK(metric(http, series) >= 1);
    struct it_http r;
    assert_int_equal(it_http_get(http, "/metrics", &r), 0);
    IT_CHECK(strstr(r.body, "__meta_x") == NULL);
    char tmp[64];
    int fd = bg_tempfile(tmp, sizeof tmp, "prom");
    IT_CHECK(fd >= 0 && write(fd, r.body, r.body_len) == (ssize_t)r.body_len);
    close(fd);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", tmp);
    FILE *p = popen(cmd, "r");
    IT_CHECK(p != NULL);
    char said[2048];
    size_t n = fread(said, 1, sizeof said - 1, p);
    said[n] = '\0';
    int status = pclose(p);
    unlink(tmp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != 0)
        fail_msg("promtool check metrics: %s\n%s", said, r.body);
    it_http_free(&r);

    json_t *doc = it_http_get_json(http, "/api/targets");
    IT_CHECK(doc != NULL);
    json_t *t1 = json_array_get(json_object_get(doc, "targets"), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t1, "labels"), "rack")),
                        "r1");
    json_decref(doc);

    /* New labels make a new target: the old series go, the new ones come. */
    snprintf(text, sizeof text,
             "[{\"targets\": [\"127.0.0.1:%d\"], \"labels\": {\"zone\": \"c\"}},\n"
             " {\"targets\": [\"127.0.0.1:%d\"], \"labels\": {\"zone\": \"b \\\"quoted\\\"\", "
             "\"rack\": \"r1\"}}]\n",
             s->port, dport);
    write_file(path, text, true);
    IT_CHECK(wait_stderr(&b, "(change): targets 2, added 1, removed 1", 1));
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"127.0.0.1:%d\",zone=\"a\"}",
             s->port);
    IT_CHECK(metric(http, series) == -1);
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"127.0.0.1:%d\",zone=\"c\"}",
             s->port);
    IT_CHECK(wait_metric(http, series, 1) == 1);
    assert_int_equal(bg_term(&b, WAIT_MS), 1);
    bg_free(&b);
    unlink(path);
    close(dfd);
    it_server_free(s);
}

/* How many times the probe's JSON lines say seq 1 for target: a target
 * that was restarted would start again at 1. */
static int starts_of(const struct bg_client *b, const char *target)
{
    char needle[96];
    snprintf(needle, sizeof needle, "\"target\":\"%s\",\"seq\":1,", target);
    return bg_count(b, needle);
}

/* SIGHUP adds a target and keeps the other running; a rename onto the file
 * removes one (its series go) and keeps the other; a change in place that
 * does not parse keeps everything and is counted; a good one again loads. */
static void test_reload(void **state)
{
    (void)state;
    IT_START(s1, NULL, 0);
    IT_START(s2, NULL, 0);
    char path[64], a[32], b2[32], text[256];
    temp_path(path, sizeof path, "targets");
    snprintf(a, sizeof a, "127.0.0.1:%d", s1->port);
    snprintf(b2, sizeof b2, "127.0.0.1:%d", s2->port);
    snprintf(text, sizeof text, "%s\n", a);
    write_file(path, text, false);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    IT_CHECK(wait_stderr(&b, "(start): targets 1, added 1, removed 0", 1));
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_probes_total{target=\"%s\"}", a);
    IT_CHECK(wait_metric(http, series, 5) >= 5);

    /* SIGHUP: b2 added, a kept. */
    snprintf(text, sizeof text, "%s\n%s\n", a, b2);
    write_file(path, text, false); /* also a change: one of the two reloads it */
    IT_CHECK(wait_stderr(&b, "targets 2, added 1, removed 0", 1));
    double before = probes_of(http, a);
    kill(b.pid, SIGHUP);
    IT_CHECK(wait_stderr(&b, "(SIGHUP): targets 2, added 0, removed 0", 1));
    snprintf(series, sizeof series, "tcpmsg_probe_probes_total{target=\"%s\"}", b2);
    IT_CHECK(wait_metric(http, series, 3) >= 3);
    IT_CHECK(probes_of(http, a) >= before);
    IT_CHECK(starts_of(&b, a) == 1); /* never restarted: its counters went on */

    /* Replaced by a rename: a removed, b2 kept. */
    snprintf(text, sizeof text, "# only the second\n%s\n", b2);
    write_file(path, text, true);
    IT_CHECK(wait_stderr(&b, "(change): targets 1, added 0, removed 1", 1));
    IT_CHECK(probes_of(http, a) == -1); /* its series went with it */
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 1);
    IT_CHECK(bg_wait_count(&b, "\"ended\":\"removed from the target file\"", 1, WAIT_MS));
    double kept = probes_of(http, b2);
    IT_CHECK(kept >= 3);

    /* A file that does not parse: the previous set stays, a failure counted. */
    snprintf(text, sizeof text, "%s\nnot a target at all\n", b2);
    write_file(path, text, false);
    IT_CHECK(wait_stderr(&b, ": line 2: one HOST[:PORT] a line", 1));
    char *err = bg_stderr(&b);
    char want[160];
    snprintf(want, sizeof want, "tcpmsg probe: %s (change): line 2:", path);
    IT_CHECK(strstr(err, want) != NULL);
    free(err);
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"failure\"}") == 1);
    IT_CHECK(metric(http, "tcpmsg_probe_config_last_reload_successful") == 0);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 1);
    IT_CHECK(wait_metric(http, series, kept + 2) >= kept + 2); /* b2 still probed */
    json_t *doc = it_http_get_json(http, "/api/targets");
    IT_CHECK(doc != NULL);
    json_t *file = json_object_get(doc, "targets_file");
    IT_CHECK(json_is_false(json_object_get(file, "last_reload_successful")));
    IT_CHECK(strstr(json_string_value(json_object_get(file, "last_error")), "line 2") != NULL);
    json_decref(doc);

    /* Fixed: loaded again, and b2 was never restarted. */
    snprintf(text, sizeof text, "%s\n", b2);
    write_file(path, text, true);
    IT_CHECK(wait_stderr(&b, "(change): targets 1, added 0, removed 0", 1));
    IT_CHECK(metric(http, "tcpmsg_probe_config_last_reload_successful") == 1);
    /* start, b2 added, SIGHUP, a removed, fixed */
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"success\"}") == 5);
    IT_CHECK(starts_of(&b, b2) == 1);

    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    bg_free(&b);
    unlink(path);
    it_server_free(s1);
    it_server_free(s2);
}

/* A target file behind a symbolic link, changed in place where it really
 * is: no event reaches the link's directory, and the once-a-second
 * comparison of the file (stat follows the link) loads the change, once. */
static void test_behind_symlink(void **state)
{
    (void)state;
    IT_START(s1, NULL, 0);
    IT_START(s2, NULL, 0);
    char real_dir[] = "/tmp/tcpmsg-it-real.XXXXXX", link_dir[] = "/tmp/tcpmsg-it-link.XXXXXX";
    IT_CHECK(mkdtemp(real_dir) != NULL && mkdtemp(link_dir) != NULL);
    char real[64], link[64], text[128];
    snprintf(real, sizeof real, "%s/targets", real_dir);
    snprintf(link, sizeof link, "%s/targets", link_dir);
    snprintf(text, sizeof text, "127.0.0.1:%d\n", s1->port);
    write_file(real, text, false);
    IT_CHECK(symlink(real, link) == 0);
    struct bg_client b;
    int http = start_probe(&b, link, NULL);
    IT_CHECK(wait_stderr(&b, "(start): targets 1", 1));
    snprintf(text, sizeof text, "127.0.0.1:%d\n127.0.0.1:%d\n", s1->port, s2->port);
    write_file(real, text, false);
    IT_CHECK(wait_stderr(&b, "(change): targets 2, added 1, removed 0", 1));
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"127.0.0.1:%d\"}", s2->port);
    IT_CHECK(wait_metric(http, series, 1) == 1);
    it_sleep_ms(2500); /* two more comparisons: the change is not loaded twice */
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"success\"}") == 2);
    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    bg_free(&b);
    unlink(link);
    unlink(real);
    rmdir(link_dir);
    rmdir(real_dir);
    it_server_free(s1);
    it_server_free(s2);
}

/* Regression: the rule "a change seen without an event about the file is
 * believed once it has held for a second" compared the file with how it was
 * at the previous wakeup, and every event in the directory is a wakeup. A
 * file truncated in place through an open descriptor (no close, so no event
 * about it) while a sibling changed every 50 ms was loaded empty, and every
 * target went. Now the empty file, held for less than a second, is never
 * loaded: the only reload is the one of the rewritten file when it closes. */
static void test_truncated_while_siblings_change(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char dir[] = "/tmp/tcpmsg-it-trunc.XXXXXX";
    IT_CHECK(mkdtemp(dir) != NULL);
    char path[64], sibling[64], live[32], text[64];
    snprintf(path, sizeof path, "%s/targets", dir);
    snprintf(sibling, sizeof sibling, "%s/other", dir);
    snprintf(live, sizeof live, "127.0.0.1:%d", s->port);
    snprintf(text, sizeof text, "%s\n", live);
    write_file(path, text, false);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    IT_CHECK(wait_stderr(&b, "(start): targets 1, added 1, removed 0", 1));
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"%s\"}", live);
    IT_CHECK(wait_metric(http, series, 1) == 1);

    int fd = open(path, O_WRONLY | O_CLOEXEC);
    IT_CHECK(fd >= 0);
    int64_t t0 = it_now_ms();
    IT_CHECK(ftruncate(fd, 0) == 0);
    for (int i = 0; i < 10; i++) { /* 500 ms of a busy directory */
        write_file(sibling, "x\n", false);
        it_sleep_ms(50);
    }
    IT_CHECK(pwrite(fd, text, strlen(text), 0) == (ssize_t)strlen(text));
    int64_t held = it_now_ms() - t0;
    IT_CHECK(close(fd) == 0); /* an event about the file: read at once */
    if (held >= 1000)
        fail_msg("the file stayed empty %lld ms, not under a second: nothing to conclude",
                 (long long)held);
    IT_CHECK(wait_stderr(&b, "(change): targets 1, added 0, removed 0", 1));
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"success\"}") == 2);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 1);
    char *err = bg_stderr(&b);
    if (strstr(err, "targets 0") != NULL)
        fail_msg("the empty file was loaded:\n%s", err);
    free(err);
    IT_CHECK(starts_of(&b, live) == 1); /* never removed and added again */

    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    bg_free(&b);
    unlink(sibling);
    unlink(path);
    rmdir(dir);
    it_server_free(s);
}

/* Regression: a name resolution is bounded by the resolver, not by
 * --timeout, and the probe joined every thread at exit: a target whose
 * resolver did not answer held the exit as long as the resolver took. Here
 * getaddrinfo of *.slow.test takes 6 s (slow_resolver.c, preloaded): a
 * SIGTERM while it resolves ends the run after 2 * --timeout + 1 s with the
 * target left behind and said so, its summary printed, nothing counted
 * lost. */
static void test_stuck_resolver_at_exit(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char path[64], live[32], text[128];
    temp_path(path, sizeof path, "targets");
    snprintf(live, sizeof live, "127.0.0.1:%d", s->port);
    snprintf(text, sizeof text, "%s\nnowhere.slow.test:%d\n", live, s->port);
    write_file(path, text, false);
    IT_CHECK(setenv("LD_PRELOAD", SLOW_RESOLVER_PATH, 1) == 0);
    /* A sanitizer build wants its runtime first; this library needs none. */
    IT_CHECK(setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1) == 0);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    unsetenv("LD_PRELOAD");
    unsetenv("ASAN_OPTIONS");
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_probes_total{target=\"%s\"}", live);
    IT_CHECK(wait_metric(http, series, 3) >= 3);
    /* The slow target started within the first interval (0.05 s) and is
     * in its first resolution: nothing counted yet. */
    char slow[64];
    snprintf(slow, sizeof slow, "nowhere.slow.test:%d", s->port);
    IT_CHECK(probes_of(http, slow) == 0);

    assert_int_equal(bg_term(&b, WAIT_MS), 0); /* nothing lost */
    IT_CHECK(wait_stderr(&b, "1 targets still resolving their names after 2 s: exiting without them",
                         1));
    IT_CHECK(bg_count(&b, "\"ended\":\"still resolving its name at exit\"") == 1);
    IT_CHECK(bg_count(&b, "\"event\":\"summary\"") == 2);
    bg_free(&b);
    unlink(path);
    it_server_free(s);
}

/* A process that changes files in the target file's directory without
 * pause: the probe reads a bounded number of events per wakeup, so it still
 * answers SIGHUP and SIGTERM, and a rename onto the file, queued behind the
 * others, is still seen and loaded once. */
static void test_busy_directory(void **state)
{
    (void)state;
    IT_START(s1, NULL, 0);
    IT_START(s2, NULL, 0);
    char dir[] = "/tmp/tcpmsg-it-busy.XXXXXX";
    IT_CHECK(mkdtemp(dir) != NULL);
    char path[64], a[32], b2[32], text[128];
    snprintf(path, sizeof path, "%s/targets", dir);
    snprintf(a, sizeof a, "127.0.0.1:%d", s1->port);
    snprintf(b2, sizeof b2, "127.0.0.1:%d", s2->port);
    snprintf(text, sizeof text, "%s\n", a);
    write_file(path, text, false);
    struct bg_client b;
    int http = start_probe(&b, path, NULL);
    IT_CHECK(wait_stderr(&b, "(start): targets 1, added 1, removed 0", 1));

    /* Two names in turn: the kernel folds an event identical to the one
     * before it in the queue. Bounded in time and count. */
    pid_t busy = fork();
    IT_CHECK(busy >= 0);
    if (busy == 0) {
        char other[2][80];
        snprintf(other[0], sizeof other[0], "%s/other0", dir);
        snprintf(other[1], sizeof other[1], "%s/other1", dir);
        int64_t end = it_now_ms() + 15000;
        for (int i = 0; i < 2000000 && it_now_ms() < end; i++) {
            int fd = open(other[i & 1], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
        }
        _exit(0);
    }
    it_sleep_ms(200);
    kill(b.pid, SIGHUP);
    IT_CHECK(wait_stderr(&b, "(SIGHUP): targets 1, added 0, removed 0", 1));
    snprintf(text, sizeof text, "%s\n%s\n", a, b2);
    write_file(path, text, true);
    IT_CHECK(wait_stderr(&b, "(change): targets 2, added 1, removed 0", 1));
    char series[160];
    snprintf(series, sizeof series, "tcpmsg_probe_up{target=\"%s\"}", b2);
    IT_CHECK(wait_metric(http, series, 1) == 1);
    assert_int_equal(bg_term(&b, WAIT_MS), 0);
    kill(busy, SIGKILL);
    IT_CHECK(waitpid(busy, NULL, 0) == busy);
    IT_CHECK(bg_count(&b, "\"event\":\"summary\"") == 2);
    /* start, SIGHUP, the rename: one reload each */
    char *err = bg_stderr(&b);
    int reloads = 0;
    for (const char *q = err; (q = strstr(q, "): targets ")) != NULL; q++)
        reloads++;
    free(err);
    assert_int_equal(reloads, 3);
    bg_free(&b);
    char other[80];
    for (int i = 0; i < 2; i++) {
        snprintf(other, sizeof other, "%s/other%d", dir, i);
        unlink(other);
    }
    unlink(path);
    rmdir(dir);
    it_server_free(s1);
    it_server_free(s2);
}

/* A bad file at start is a usage error that names the file and line. */
static void test_bad_at_start(void **state)
{
    (void)state;
    char path[64];
    temp_path(path, sizeof path, "targets");
    write_file(path, "a:1\n\n[{\"targets\": 1}]\n", false);
    const char *argv[] = { "tcpmsg", "probe", "--targets", path, "--duration", "5", NULL };
    struct bg_client b;
    bg_start(&b, argv);
    assert_int_equal(bg_wait(&b, WAIT_MS), 2);
    char *err = bg_stderr(&b);
    char want[128];
    snprintf(want, sizeof want, "tcpmsg: --targets %s: line 3: ", path);
    if (strstr(err, want) == NULL)
        fail_msg("no '%s' in: %s", want, err);
    free(err);
    bg_free(&b);
    unlink(path);
    const char *missing[] = { "tcpmsg", "probe", "--targets", "/nonexistent/targets", NULL };
    bg_start(&b, missing);
    assert_int_equal(bg_wait(&b, WAIT_MS), 2);
    err = bg_stderr(&b);
    IT_CHECK(strstr(err, "/nonexistent/targets: cannot open: No such file") != NULL);
    free(err);
    bg_free(&b);
}

/* 256 targets in all: 2 on the command line and 254 in the file load; 255
 * in the file are refused, at start and by a reload; so is a file over
 * 1 MiB. */
static void test_limits(void **state)
{
    (void)state;
    int dfd, dport = dead_port(&dfd);
    char path[64];
    temp_path(path, sizeof path, "targets");
    size_t cap = 300 * 32;
    char *text = calloc(1, cap);
    IT_CHECK(text != NULL);
    /* Distinct names of one dead port: 127.0.0.N. */
    for (int i = 1; i <= 255; i++)
        snprintf(text + strlen(text), cap - strlen(text), "127.0.1.%d:%d\n", i, dport);
    write_file(path, text, false);
    char c1[32], c2[32];
    snprintf(c1, sizeof c1, "127.0.0.1:%d", dport);
    snprintf(c2, sizeof c2, "127.0.0.2:%d", dport);
    const char *argv[] = { "tcpmsg", "probe", "--targets", path, c1, c2, "--duration", "60",
                           "--interval", "5", "--http-port", "0", NULL };
    struct bg_client b;
    bg_start(&b, argv);
    assert_int_equal(bg_wait(&b, WAIT_MS), 2);
    char *err = bg_stderr(&b);
    if (strstr(err, "line 255: more than 254 targets (at most 256 in all, 2 of them on the "
                    "command line)") == NULL)
        fail_msg("%s", err);
    free(err);
    bg_free(&b);

    *strrchr(text, '\n') = '\0'; /* 254 lines */
    *(strrchr(text, '\n') + 1) = '\0';
    write_file(path, text, false);
    bg_start(&b, argv);
    int http = bg_http_port(&b, WAIT_MS);
    IT_CHECK(http > 0);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 256);

    /* One more by a reload: refused, the 256 kept. */
    snprintf(text + strlen(text), cap - strlen(text), "127.0.1.255:%d\n", dport);
    write_file(path, text, true);
    IT_CHECK(wait_stderr(&b, "line 255: more than 254 targets", 1));
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"failure\"}") == 1);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 256);

    /* Over 1 MiB: refused unread. */
    FILE *f = fopen(path, "w");
    IT_CHECK(f != NULL);
    for (int i = 0; i < (1 << 20) / 16 + 1; i++)
        fputs("# padding.....\n\n", f);
    IT_CHECK(fclose(f) == 0);
    IT_CHECK(wait_stderr(&b, "larger than 1048576 bytes", 1));
    IT_CHECK(metric(http, "tcpmsg_probe_config_reloads_total{result=\"failure\"}") == 2);
    IT_CHECK(metric(http, "tcpmsg_probe_targets") == 256);
    assert_int_equal(bg_term(&b, WAIT_MS), 1);
    bg_free(&b);
    free(text);
    unlink(path);
    close(dfd);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_lines),   cmocka_unit_test(test_file_sd),
        cmocka_unit_test(test_reload),       cmocka_unit_test(test_behind_symlink),
        cmocka_unit_test(test_bad_at_start),
        cmocka_unit_test(test_truncated_while_siblings_change),
        cmocka_unit_test(test_stuck_resolver_at_exit),
        cmocka_unit_test(test_busy_directory),
        cmocka_unit_test(test_limits),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
