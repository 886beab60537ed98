/* Integration: the server's system call counters against strace. tcpmsgd
 * runs under "strace -ff" (one trace file per thread), serves a fixed load,
 * and stops on SIGTERM; the calls strace saw on the worker threads, by kind,
 * must equal the counts of the server's exit "totals" line (read=, write=,
 * ...), on the backend TCPMSG_IT_IO names (epoll when unset), with --sqpoll when
 * TCPMSG_IT_SQPOLL is 1; and again with every message's stages timed
 * (--stage-sample 1), whose reads and writes are recvmsg and sendmsg and
 * whose error queue reads are recvmsg too. Skipped when strace is missing or
 * may not trace.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/loop.h"

#define T IT_IO_TIMEOUT_MS
#define WORKERS 2
#define CONNS 20
#define MSGS 50
#define MAX_TIDS 64

/* Whether io_uring runs with SQPOLL (TCPMSG_IT_SQPOLL=1); the backend is the
 * harness's (it_io, from TCPMSG_IT_IO, which it passes as --io). */
static bool io_sqpoll(void)
{
    const char *sq = getenv("TCPMSG_IT_SQPOLL");
    return sq != NULL && strcmp(sq, "1") == 0;
}

/* ---- strace's output ----------------------------------------------------------- */

/* The counter kind of a system call strace names, or -1 for calls the loop
 * does not count. epoll_wait covers the family (the loop calls
 * epoll_pwait2, and epoll_wait where that is missing). */
static int syscall_kind(const char *name, size_t len)
{
    static const char *const waits[] = { "epoll_wait", "epoll_pwait", "epoll_pwait2" };
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        if (strlen(waits[i]) == len && memcmp(waits[i], name, len) == 0)
            return LOOP_SYS_EPOLL_WAIT;
    }
    for (int k = 0; k < LOOP_SYS_COUNT; k++) {
        const char *n = loop_syscall_name((enum loop_syscall)k);
        if (k != LOOP_SYS_WAKEUPS && strlen(n) == len && memcmp(n, name, len) == 0)
            return k;
    }
    return -1;
}

/* Calls that move a socket's bytes without the loop: none should run on a
 * worker thread, or its counters miss them. They are counted in the slot
 * after the loop's kinds. */
#define UNCOUNTED_IO LOOP_SYS_COUNT
static bool is_uncounted_io(const char *name, size_t len)
{
    static const char *const io[] = { "recvfrom", "recvmsg", "recvmmsg", "sendto",
                                      "sendmsg", "sendmmsg", "readv" };
    for (size_t i = 0; i < sizeof io / sizeof io[0]; i++) {
        if (strlen(io[i]) == len && memcmp(io[i], name, len) == 0)
            return true;
    }
    return false;
}

/* The loop reads and writes only its streams, which are sockets; strace -y
 * names each descriptor: "read(7<socket:[4242]>, ..." (or "<TCP:[...]>" with
 * -yy). Reads and writes of anything else on a worker thread are not the
 * loop's: the log lines (descriptor 2), glibc reading
 * /proc/sys/vm/overcommit_memory the first time a thread's malloc arena
 * shrinks. Socket calls outside the loop are still counted, so they show. */
static bool on_socket(const char *args)
{
    args += strspn(args, "0123456789");
    return strncmp(args, "<socket:", 8) == 0 || strncmp(args, "<TCP", 4) == 0;
}

static bool is_data_call(int kind)
{
    return kind == LOOP_SYS_READ || kind == LOOP_SYS_WRITE || kind == LOOP_SYS_WRITEV;
}

/* Add the calls of one line of "strace -ff" output to counts (indexed by
 * loop_syscall, and UNCOUNTED_IO).
 *
 * - "name(args) = result": one call.
 * - "name(args <unfinished ...>)" then, later, "<... name resumed>...": one
 *   call, counted at its first half.
 * - "= ? ERESTARTSYS" (or ERESTARTNOINTR, ERESTARTNOHAND): the call was
 *   interrupted before it returned to the program. No signal handler runs
 *   on a worker thread, so the kernel enters it again and strace prints that
 *   as a new line: the program made one call, counted there. A call ending
 *   in ERESTART_RESTARTBLOCK resumes as "restart_syscall", which is not the
 *   program's call: that one is counted at its first line.
 * - "--- SIGxxx ---", "+++ exited +++" and blank lines are not calls. */
static void count_line(const char *line, uint64_t *counts)
{
    size_t len = strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789_");
    if (len == 0 || line[len] != '(')
        return;
    int kind = syscall_kind(line, len);
    if (kind < 0 && is_uncounted_io(line, len))
        kind = UNCOUNTED_IO;
    if (kind < 0 || (is_data_call(kind) && !on_socket(line + len + 1)))
        return;
    /* strace pads the result to a column: "...)      = ? ERESTARTSYS (...)". */
    const char *q = strstr(line, "= ? ERESTART");
    if (q != NULL && strncmp(q, "= ? ERESTART_RESTARTBLOCK", 25) != 0)
        return;
    counts[kind]++;
}

/* Add the calls of trace file path to counts. 0 or -errno. */
static int count_file(const char *path, uint64_t *counts)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
        count_line(line, counts);
    free(line);
    fclose(f);
    return 0;
}

/* ---- the server's threads -------------------------------------------------------- */

/* The threads of pid whose name starts with "tcpmsgd-w", into tids (cap).
 * Returns how many, or -errno. */
static int worker_tids(pid_t pid, pid_t *tids, int cap)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        char path[352], comm[32] = "";
        snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue; /* "." and "..", or a thread that ended */
        bool named = fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "tcpmsgd-w", 9) == 0;
        fclose(f);
        if (named)
            tids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return n;
}

/* Wait (at most T) until pid has want worker threads; their tids into tids. */
static int wait_worker_tids(pid_t pid, pid_t *tids, int want)
{
    int64_t deadline = it_now_ms() + T;
    int n;
    while ((n = worker_tids(pid, tids, MAX_TIDS)) < want && it_now_ms() < deadline)
        it_sleep_ms(10);
    return n;
}

/* ---- the totals line ---------------------------------------------------------------- */

/* The unsigned value of key in the log's "totals" line ("key=N"), or -1
 * when the line or the key is missing. */
static long long totals_field(const char *log, const char *key)
{
    const char *line = strstr(log, " totals ");
    if (line == NULL)
        return -1;
    const char *eol = strchr(line, '\n');
    char pattern[64];
    snprintf(pattern, sizeof pattern, " %s=", key);
    const char *p = strstr(line, pattern);
    if (p == NULL || (eol != NULL && p > eol))
        return -1;
    char *end;
    unsigned long long v = strtoull(p + strlen(pattern), &end, 10);
    return end == p + strlen(pattern) ? -1 : (long long)v;
}

/* Compare what strace saw (seen) with the totals line of log, kind by kind,
 * failing the test with both columns when any differs. */
static void check_counts(const char *io, const char *log, const uint64_t *seen, const char *dir,
                         bool stamped)
{
    bool same = true;
    char report[1024] = "";
    size_t used = 0;
    for (int k = 0; k < LOOP_SYS_COUNT; k++) {
        if (k == LOOP_SYS_WAKEUPS)
            continue;
        const char *name = loop_syscall_name((enum loop_syscall)k);
        char key[64];
        snprintf(key, sizeof key, "%s", name);
        long long said = totals_field(log, key);
        same = same && said >= 0 && (uint64_t)said == seen[k];
        used += (size_t)snprintf(report + used, sizeof report - used, " %s: strace %llu, server %lld%s;",
                                 name, (unsigned long long)seen[k], said,
                                 said < 0 ? " (missing)" : "");
    }
    fprintf(stderr, "%s worker threads:%s wakeups %lld\n", io, report, totals_field(log, "wakeups"));
    if (!same)
        fail_msg("system calls on the worker threads differ from the totals line (traces in %s):%s",
                 dir, report);
    if (seen[UNCOUNTED_IO] > 0)
        fail_msg("%llu socket calls on the worker threads that the loop does not count "
                 "(recv*, send*, readv; traces in %s)", (unsigned long long)seen[UNCOUNTED_IO], dir);
    IT_CHECK(totals_field(log, "wakeups") > 0);
    if (stamped) {
        /* Every message sampled: each reply asks for three transmit
         * timestamps, read from the error queue by recvmmsg; epoll reads
         * and writes with recvmsg and sendmsg. */
        IT_CHECK(seen[LOOP_SYS_READ] == 0 && seen[LOOP_SYS_WRITE] == 0 && seen[LOOP_SYS_WRITEV] == 0);
        IT_CHECK(seen[LOOP_SYS_RECVMMSG] > 0);
        if (strcmp(io, "uring") == 0)
            IT_CHECK(seen[LOOP_SYS_SENDMSG] + seen[LOOP_SYS_RECVMSG] == 0);
        else
            IT_CHECK(seen[LOOP_SYS_SENDMSG] == CONNS * MSGS && seen[LOOP_SYS_RECVMSG] >= CONNS * MSGS);
    } else if (strcmp(io, "uring") == 0) {
        /* Completion: the kernel reads and writes; the thread only enters. */
        IT_CHECK(seen[LOOP_SYS_READ] == 0 && seen[LOOP_SYS_WRITE] == 0 && seen[LOOP_SYS_WRITEV] == 0);
        IT_CHECK(seen[LOOP_SYS_IO_URING_ENTER] > 0);
        IT_CHECK(seen[LOOP_SYS_RECVMSG] + seen[LOOP_SYS_RECVMMSG] + seen[LOOP_SYS_SENDMSG] == 0);
    } else {
        /* One message in flight per connection: each read holds one at most. */
        IT_CHECK(seen[LOOP_SYS_READ] >= CONNS * MSGS && seen[LOOP_SYS_EPOLL_WAIT] > 0);
        IT_CHECK(seen[LOOP_SYS_RECVMSG] + seen[LOOP_SYS_RECVMMSG] + seen[LOOP_SYS_SENDMSG] == 0);
    }
}

/* ---- the load -------------------------------------------------------------------- */

/* CONNS connections, each with MSGS framed messages of its own, one in
 * flight per connection: every connection sends, then every echo is read and
 * checked, so the server sees up to CONNS messages at once. */
static void run_load(int port)
{
    int fds[CONNS];
    for (int c = 0; c < CONNS; c++)
        fds[c] = it_must_connect(port);
    for (int m = 0; m < MSGS; m++) {
        char msg[CONNS][48];
        for (int c = 0; c < CONNS; c++) {
            /* Header and payload in one send, so that a message arrives whole. */
            uint8_t frame[FRAME_HEADER_SIZE + sizeof msg[c]];
            int len = snprintf(msg[c], sizeof msg[c], "conn %d message %d", c, m);
            frame_header_encode(frame, FRAME_DATA, (size_t)len);
            memcpy(frame + FRAME_HEADER_SIZE, msg[c], (size_t)len);
            assert_int_equal(it_send_all(fds[c], frame, FRAME_HEADER_SIZE + (size_t)len, T), 0);
        }
        for (int c = 0; c < CONNS; c++) {
            char reply[64];
            uint8_t type = 0xff;
            ssize_t n = it_recv_frame(fds[c], &type, reply, sizeof reply, T);
            IT_CHECK(type == FRAME_DATA);
            assert_int_equal(n, (ssize_t)strlen(msg[c]));
            assert_memory_equal(reply, msg[c], (size_t)n);
        }
    }
    for (int c = 0; c < CONNS; c++)
        close(fds[c]);
}

/* ---- the test ----------------------------------------------------------------------- */

/* Why strace cannot trace here (not installed, ptrace refused: the first
 * line it wrote when tracing "true" failed), or NULL when it can. Free it. */
static char *strace_unusable(void)
{
    const char *argv[] = { "strace", "-f", "-qq", "-o", "/dev/null", "true", NULL };
    const char *dirs = getenv("PATH");
    char path[512];
    bool found = false;
    for (const char *p = dirs != NULL ? dirs : "/usr/bin:/bin"; *p != '\0' && !found;) {
        size_t n = strcspn(p, ":");
        snprintf(path, sizeof path, "%.*s/strace", (int)n, p);
        found = access(path, X_OK) == 0;
        p += n + (p[n] == ':');
    }
    if (!found)
        return strdup("strace is not installed");
    struct it_run r;
    if (it_run(path, argv, T, &r) < 0)
        return strdup("strace could not be started");
    char *why = NULL;
    if (r.exit_code != 0) {
        size_t n = strcspn(r.err, "\n");
        why = strndup(r.err, n > 0 ? n : strlen(r.err));
        if (why == NULL || *why == '\0') {
            free(why);
            why = strdup("strace cannot trace here");
        }
    }
    it_run_free(&r);
    return why;
}

/* io_uring refused by the system (kernel.io_uring_disabled). */
static bool uring_disabled(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    int v = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v != 0;
}

static void remove_traces(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strncmp(e->d_name, "trace.", 6) == 0)
            unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* The system calls strace saw on the worker threads, by kind, are exactly
 * those the server counted and printed in its totals line. */
static void worker_syscalls(bool stamped)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* The tree is built with a sanitizer, the server too: LeakSanitizer
     * cannot run under ptrace, and the runtimes make system calls of their
     * own. The count is a property of the plain build, which CI also runs. */
    fprintf(stderr, "skipped: built with a sanitizer\n");
    skip();
#endif
    const char *io = it_io();
    char *why = strace_unusable();
    if (why != NULL) {
        fprintf(stderr, "skipped: %s\n", why);
        free(why);
        skip();
    }
    if (strcmp(io, "uring") == 0 && uring_disabled()) {
        fprintf(stderr, "skipped: io_uring is disabled on this system\n");
        skip();
    }
    const char *tmp = getenv("TMPDIR");
    char dir[256], prefix[300];
    snprintf(dir, sizeof dir, "%s/tcpmsg-strace.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        fail_msg("mkdtemp %s: %s", dir, strerror(errno));
    snprintf(prefix, sizeof prefix, "%s/trace", dir);

    /* The default log level: the harness waits for the start-up lines and
     * the totals line is INFO. The log lines worker threads write are told
     * apart from the loop's writes by their descriptor (on_socket). */
    const char *wrapper[] = { "strace", "-f", "-ff", "-qq", "-y", "-o", prefix, NULL };
    const char *args[] = { "--threads", "2", "--stage-sample", stamped ? "1" : "0",
                           io_sqpoll() ? "--sqpoll" : NULL, NULL };
    struct it_server *s = it_server_start_wrapped(wrapper, args, 0);
    if (s == NULL)
        fail_msg("tcpmsgd did not start under strace");
    pid_t pid;
    IT_CHECK(it_proc_children(s->pid, &pid, NULL, 1) == 1);
    pid_t tids[MAX_TIDS];
    int nt = wait_worker_tids(pid, tids, WORKERS);
    if (nt != WORKERS)
        fail_msg("%d threads named tcpmsgd-w* in /proc/%d/task, want %d", nt, (int)pid, WORKERS);

    run_load(s->port);
    json_t *m = it_must_get_json(s->http_port, "/metrics");
    json_t *backend = it_json_path(m, "server.io");
    if (backend != NULL && (!json_is_string(backend) || strcmp(json_string_value(backend), io) != 0))
        fail_msg("/metrics says the server runs on %s, want %s", json_string_value(backend), io);
    json_decref(m);

    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(it_server_wait_exit(s, 20000), 0);
    char *log = it_log_read(s);
    assert_non_null(log);
    IT_CHECK(totals_field(log, "msgs_out") == CONNS * MSGS);

    uint64_t seen[LOOP_SYS_COUNT + 1] = { 0 };
    for (int i = 0; i < nt; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s.%d", prefix, (int)tids[i]);
        int rc = count_file(path, seen);
        if (rc < 0)
            fail_msg("trace of worker thread %d: %s: %s", (int)tids[i], path, strerror(-rc));
    }
    check_counts(io, log, seen, dir, stamped);
    if (stamped) /* every message's stages, in the totals line */
        IT_CHECK(totals_field(log, "stage_samples") == CONNS * MSGS);
    free(log);
    it_server_free(s);
    remove_traces(dir);
}

static void test_worker_syscalls(void **state)
{
    (void)state;
    worker_syscalls(false);
}

static void test_worker_syscalls_stamped(void **state)
{
    (void)state;
    worker_syscalls(true);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_syscalls),
        cmocka_unit_test(test_worker_syscalls_stamped),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
