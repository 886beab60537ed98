/* client_util: helpers for the client measurement tests (test_loadgen.c,
 * test_probe.c, test_probe_reload.c, ...): run tcpmsg in the background with its output in temp files
 * while the test acts on the server, then read what it wrote. Every wait is
 * bounded; a client still running at the end is killed.
 */
#ifndef TCPMSG_IT_CLIENT_UTIL_H
#define TCPMSG_IT_CLIENT_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

struct bg_client {
    pid_t pid; /* 0 once reaped */
    int status;
    char out_path[64], err_path[64];
};

static inline int bg_tempfile(char *path, size_t cap, const char *what)
{
    snprintf(path, cap, "/tmp/tcpmsg-it-%s.XXXXXX", what);
    return mkstemp(path);
}

/* Start tcpmsg with argv (argv[0] included, NULL-terminated). */
static inline void bg_start(struct bg_client *b, const char *const *argv)
{
    memset(b, 0, sizeof *b);
    int out = bg_tempfile(b->out_path, sizeof b->out_path, "out");
    int err = bg_tempfile(b->err_path, sizeof b->err_path, "err");
    IT_CHECK(out >= 0 && err >= 0);
    b->pid = fork();
    IT_CHECK(b->pid >= 0);
    if (b->pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        execv(TCPMSG_PATH, (char *const *)argv);
        _exit(127);
    }
    close(out);
    close(err);
}

/* Wait up to timeout_ms for the exit; kill it after that. Returns the exit
 * code, 128+N for signal N, or -1 if it had to be killed. */
static inline int bg_wait(struct bg_client *b, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (b->pid > 0) {
        pid_t r = waitpid(b->pid, &b->status, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            break;
        }
        if (it_now_ms() >= deadline) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &b->status, 0);
            b->pid = 0;
            return -1;
        }
        it_sleep_ms(10);
    }
    return WIFEXITED(b->status) ? WEXITSTATUS(b->status) : 128 + WTERMSIG(b->status);
}

static inline char *bg_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (cap - len < 4096) {
            char *p = realloc(buf, cap + 65536);
            IT_CHECK(p != NULL);
            buf = p;
            cap += 65536;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static inline char *bg_stdout(const struct bg_client *b) { return bg_slurp(b->out_path); }
static inline char *bg_stderr(const struct bg_client *b) { return bg_slurp(b->err_path); }

/* Kill (if running) and remove the files. */
static inline void bg_free(struct bg_client *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &b->status, 0);
        b->pid = 0;
    }
    unlink(b->out_path);
    unlink(b->err_path);
}

/* Ask the client to stop (SIGTERM, as an operator would) and wait for it
 * as bg_wait does: its exit code, 128+N for signal N, -1 if killed. */
static inline int bg_term(struct bg_client *b, int timeout_ms)
{
    if (b->pid > 0)
        kill(b->pid, SIGTERM);
    return bg_wait(b, timeout_ms);
}

/* The HTTP port the client announced on stderr ("http_port=N", printed
 * once it listens), waited for up to timeout_ms; -1 if none came. */
static inline int bg_http_port(const struct bg_client *b, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *err = bg_stderr(b);
        const char *p = strstr(err, "http_port=");
        int port = p != NULL ? atoi(p + 10) : -1;
        free(err);
        if (port > 0 || it_now_ms() >= deadline)
            return port;
        it_sleep_ms(20);
    }
}

/* Occurrences of needle in the client's stdout so far. */
static inline int bg_count(const struct bg_client *b, const char *needle)
{
    char *s = bg_stdout(b);
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

/* Poll until stdout holds at least n occurrences of needle. */
static inline bool bg_wait_count(const struct bg_client *b, const char *needle, int n, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (bg_count(b, needle) < n) {
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(20);
    }
    return true;
}

/* The last line of text that parses as a JSON object (json_decref it). */
static inline json_t *last_json_line(const char *text)
{
    json_t *last = NULL;
    const char *line = text;
    while (*line != '\0') {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        json_t *j = json_loadb(line, len, 0, NULL);
        if (j != NULL) {
            json_decref(last);
            last = j;
        }
        line += len + (eol != NULL);
    }
    return last;
}

#endif
