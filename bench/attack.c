/* attack: the attacker of bench/attacks.sh. One subcommand per attack on
 * tcpmsgd (issue 8): each drives its load against 127.0.0.1, watches the
 * server's memory in /proc, reads what the server reports over HTTP, and
 * prints one flat JSON line of numbers on standard output (progress goes to
 * standard error). It judges nothing: a server that refuses, closes or
 * throttles the attacker is counted, never waited for without a deadline.
 *   attack SUBCOMMAND --port N [--http-port N] [--pid PID] [options]
 * Loopback only: the server is always 127.0.0.1, sources 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"

#define MIB (1024.0 * 1024.0)

/* Options shared by the subcommands; -1 / 0 means "the attack's default". */
static struct {
    uint16_t port, http_port;
    pid_t pid;           /* the server watched for RSS and CPU; 0: none */
    int conns;
    double duration;
    long long size;
    int frames, entries;
    double read_rate;    /* output-cap / drain: bytes per second per client */
    const char *log;     /* emfile: the server's log file */
    double giveup;       /* slowloris: longest wait for /metrics after */
} o = { .conns = -1, .duration = -1, .size = -1, .frames = -1, .entries = -1,
        .read_rate = -1, .giveup = 60 };

static const char *g_name = "attack";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "attack %s: ", g_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s: ", g_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_s(void)
{
    return (double)net_now_ns() / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static int ms_left(double deadline)
{
    double left = deadline - now_s();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/* --- the JSON result line: flat, keys unique, so a shell can grep it ------ */
static char out_buf[16384];
static size_t out_len;

static void out_raw(const char *key, const char *fmt, ...)
{
    va_list ap;
    if (out_len + 8 >= sizeof out_buf)
        return;
    out_len += (size_t)snprintf(out_buf + out_len, sizeof out_buf - out_len, "%s\"%s\":",
                                out_len ? "," : "", key);
    va_start(ap, fmt);
    if (out_len < sizeof out_buf)
        out_len += (size_t)vsnprintf(out_buf + out_len, sizeof out_buf - out_len, fmt, ap);
    va_end(ap);
    if (out_len >= sizeof out_buf)
        out_len = sizeof out_buf - 1;
}

static void out_int(const char *key, long long v) { out_raw(key, "%lld", v); }
static void out_num(const char *key, double v)
{
    if (isnan(v) || isinf(v))
        out_raw(key, "null");
    else if (v == floor(v) && fabs(v) < 1e18)
        out_raw(key, "%.0f", v); /* counts exactly, not 4.29497e+09 */
    else
        out_raw(key, "%.6g", v);
}
static void out_str(const char *key, const char *v)
{
    char esc[1024];
    size_t n = 0;
    for (; *v != '\0' && n + 3 < sizeof esc; v++) {
        if (*v == '"' || *v == '\\')
            esc[n++] = '\\';
        esc[n++] = (*v == '\n' || *v == '\t') ? ' ' : *v;
    }
    esc[n] = '\0';
    out_raw(key, "\"%s\"", esc);
}
static void out_print(void)
{
    printf("{%s}\n", out_buf);
    fflush(stdout);
}

/* --- the server process: memory and CPU from /proc ------------------------ */
/* A "Key:   N kB" line of /proc/PID/status, in bytes; 0 when unreadable. */
static uint64_t status_bytes(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    uint64_t v = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* VmRSS of pid plus that of its children (fork mode: a process per client;
 * they never fork further). Children come from /proc/PID/task/TID/children. */
static uint64_t tree_rss(pid_t pid)
{
    char path[80];
    uint64_t sum = status_bytes(pid, "VmRSS");
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return sum;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/children", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        for (int child; fscanf(f, "%d", &child) == 1;)
            sum += status_bytes(child, "VmRSS");
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* utime + stime of pid (its threads included), in clock ticks; -1 if gone. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* False once pid has exited (a zombie not yet reaped counts as exited). */
static bool proc_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static bool server_alive(void)
{
    return o.pid <= 0 || proc_running(o.pid);
}

/* --- sockets --------------------------------------------------------------- */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* A non-blocking TCP socket connecting to 127.0.0.1:port, bound to src (an
 * address in 127.0.0.0/8) when not NULL, with SO_RCVBUF rcvbuf when > 0, set
 * before connect so the window is small from the SYN on. The connect may
 * still be in progress. Returns the fd or -errno. */
static int dial(const char *src, uint16_t port, int rcvbuf)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (src != NULL) {
        struct sockaddr_in me = { .sin_family = AF_INET };
        inet_pton(AF_INET, src, &me.sin_addr);
        /* The port is chosen at connect, per destination: no early exhaustion. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    }
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Waits until fd's connect completes. Returns 0, -ETIMEDOUT or -errno. */
static int wait_connected(int fd, double deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int r;
    while ((r = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR) {}
    if (r == 0)
        return -ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return -err;
}

/* A blocking-style connect with a deadline; the fd stays non-blocking. */
static int dial_wait(const char *src, uint16_t port, int rcvbuf, double timeout)
{
    int fd = dial(src, port, rcvbuf);
    if (fd < 0)
        return fd;
    int r = wait_connected(fd, now_s() + timeout);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* A DATA frame of len payload bytes (a repeating pattern). Freed by caller. */
static uint8_t *data_frame(size_t len)
{
    uint8_t *f = malloc(FRAME_HEADER_SIZE + len);
    if (f == NULL)
        die("out of memory");
    frame_header_encode(f, FRAME_DATA, len);
    for (size_t i = 0; i < len; i++)
        f[FRAME_HEADER_SIZE + i] = (uint8_t)('a' + i % 26);
    return f;
}

/* --- HTTP: a minimal GET with a deadline ------------------------------------ */
/* GET path on 127.0.0.1:port from src (NULL: any), all within timeout
 * seconds. Returns the status code with the body in *body (malloc'd,
 * NUL-terminated, NULL when body is NULL), or a negative errno. */
static int http_get(const char *src, uint16_t port, const char *path, double timeout, char **body)
{
    double deadline = now_s() + timeout;
    char req[512];
    int fd = dial(src, port, 0), n = snprintf(req, sizeof req,
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (fd < 0)
        return fd;
    int r = wait_connected(fd, deadline);
    if (r == 0)
        r = net_write_all(fd, req, (size_t)n, ms_left(deadline) + 1);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    while (r == 0 && buf != NULL) {
        if (len + 1 == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) { r = -ENOMEM; break; }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = net_read(fd, buf + len, cap - 1 - len);
        if (got > 0) {
            len += (size_t)got;
        } else if (got == 0) {
            break;
        } else if (got == -EAGAIN) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            if (poll(&p, 1, ms_left(deadline)) == 0)
                r = -ETIMEDOUT;
        } else {
            r = (int)got;
        }
    }
    close(fd);
    int status = -EPROTO;
    if (r == 0 && buf != NULL) {
        buf[len] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
            status = -EPROTO;
    }
    if (r < 0 || status < 0 || body == NULL) {
        free(buf);
        if (body != NULL)
            *body = NULL;
        return r < 0 ? r : status;
    }
    const char *start = strstr(buf, "\r\n\r\n");
    size_t off = start != NULL ? (size_t)(start + 4 - buf) : len;
    memmove(buf, buf + off, len - off + 1);
    *body = buf;
    return status;
}

/* The sum of every sample of metric name (all label sets) in a Prometheus
 * text body; NAN when there is none. */
static double prom_sum(const char *text, const char *name)
{
    size_t n = strlen(name);
    double sum = NAN;
    for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, name, n) != 0 || (l[n] != ' ' && l[n] != '{'))
            continue;
        const char *v = l[n] == '{' ? strchr(l, '}') : l + n;
        if (v == NULL)
            continue;
        double x = strtod(v + 1, NULL);
        sum = isnan(sum) ? x : sum + x;
    }
    return sum;
}

/* --- the watcher: RSS every 100 ms, and optionally the connection list ----- */
struct monitor {
    pthread_t th;
    atomic_bool stop;
    bool api;                      /* read /api/connections each second */
    _Atomic uint64_t rss, peak;    /* bytes: last sample, largest sample */
    _Atomic long long pending_max; /* largest pending_output_bytes seen; -1 none */
    char timeline[512];            /* RSS in MiB every 5 s; read after the join */
};

static long long max_pending(const char *body)
{
    long long m = -1;
    for (const char *p = body; (p = strstr(p, "\"pending_output_bytes\":")) != NULL; p++) {
        long long v = strtoll(p + strlen("\"pending_output_bytes\":"), NULL, 10);
        if (v > m)
            m = v;
    }
    return m;
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    double start = now_s(), next_api = start, next_mark = start + 5;
    size_t tl = 0;
    while (!atomic_load(&m->stop)) {
        uint64_t r = tree_rss(o.pid);
        atomic_store(&m->rss, r);
        if (r > atomic_load(&m->peak))
            atomic_store(&m->peak, r);
        double t = now_s();
        if (t >= next_mark && tl + 16 < sizeof m->timeline) {
            tl += (size_t)snprintf(m->timeline + tl, sizeof m->timeline - tl, "%s%.0f",
                                   tl ? "," : "", (double)r / MIB);
            note("%2.0f s: server RSS %.0f MiB", t - start, (double)r / MIB);
            next_mark += 5;
        }
        if (m->api && t >= next_api) {
            char *body;
            if (http_get(NULL, o.http_port, "/api/connections?limit=1000", 1, &body) == 200) {
                long long p = max_pending(body);
                if (p > atomic_load(&m->pending_max))
                    atomic_store(&m->pending_max, p);
                free(body);
            }
            next_api = t + 1;
        }
        sleep_s(0.1);
    }
    return NULL;
}

static void monitor_start(struct monitor *m, bool api)
{
    memset(m, 0, sizeof *m);
    m->api = api;
    atomic_store(&m->pending_max, -1);
    atomic_store(&m->rss, tree_rss(o.pid));
    atomic_store(&m->peak, atomic_load(&m->rss));
    if (o.pid > 0 && pthread_create(&m->th, NULL, monitor_main, m) != 0)
        die("pthread_create failed");
}

/* Stops the watcher and writes rss_peak (the larger of the samples and, for
 * one process, VmHWM) and rss_final (now) to the result. */
static void monitor_stop(struct monitor *m)
{
    if (o.pid <= 0)
        return;
    atomic_store(&m->stop, true);
    pthread_join(m->th, NULL);
    uint64_t final = tree_rss(o.pid), peak = atomic_load(&m->peak);
    uint64_t hwm = status_bytes(o.pid, "VmHWM");
    if (hwm > peak && final == status_bytes(o.pid, "VmRSS"))
        peak = hwm; /* no children: the kernel's high-water mark is exact */
    if (final > peak)
        peak = final;
    out_int("rss_peak", (long long)peak);
    out_int("rss_final", (long long)final);
    if (m->timeline[0] != '\0')
        out_str("rss_timeline_mib", m->timeline);
}

/* --- many connections, one script each: send, receive, hold --------------- */
enum astate {
    A_UNOPENED,   /* not dialled yet */
    A_CONNECTING, /* connect in progress */
    A_SENDING,    /* writing its send_len bytes */
    A_RECEIVING,  /* reading its recv_len bytes back */
    A_HOLDING,    /* script done: open and silent */
    A_CLOSED,     /* the server closed or reset it, or it never connected */
};

struct aconn {
    int fd;
    enum astate st;
    uint64_t sent, recvd;
};

struct engine {
    int ep, n, next, window, busy; /* busy: connecting, sending or receiving */
    struct aconn *c;
    const uint8_t *msg;
    uint64_t send_len, recv_len;
    int connect_failed, closed_eof, closed_reset, holding;
    long long extra_bytes; /* bytes the server sent beyond the script (error frames) */
    int last_dial_err;
};

static void engine_init(struct engine *e, int n, const uint8_t *msg, uint64_t send_len,
                        uint64_t recv_len, int window)
{
    memset(e, 0, sizeof *e);
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->c = calloc((size_t)n, sizeof *e->c);
    if (e->ep < 0 || e->c == NULL)
        die("epoll/calloc failed");
    e->n = n, e->msg = msg, e->send_len = send_len, e->recv_len = recv_len, e->window = window;
}

static void engine_set(struct engine *e, struct aconn *a, enum astate st)
{
    bool was_busy = a->st >= A_CONNECTING && a->st <= A_RECEIVING;
    bool busy = st >= A_CONNECTING && st <= A_RECEIVING;
    e->busy += (int)busy - (int)was_busy;
    e->holding += (int)(st == A_HOLDING) - (int)(a->st == A_HOLDING);
    if (st == A_CLOSED && a->fd >= 0) {
        close(a->fd); /* also leaves the epoll set */
        a->fd = -1;
    } else if (a->fd >= 0 && st != a->st && st != A_CONNECTING) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (st == A_SENDING ? EPOLLOUT : 0),
                                  .data.u32 = (uint32_t)(a - e->c) };
        epoll_ctl(e->ep, EPOLL_CTL_MOD, a->fd, &ev);
    }
    a->st = st;
}

static void engine_open(struct engine *e)
{
    while (e->next < e->n && e->busy < e->window) {
        struct aconn *a = &e->c[e->next++];
        a->fd = dial(NULL, o.port, 0);
        if (a->fd < 0) {
            e->last_dial_err = -a->fd;
            e->connect_failed++;
            a->st = A_CLOSED;
            if (a->fd == -EMFILE || a->fd == -ENFILE || a->fd == -EADDRNOTAVAIL)
                e->next = e->n; /* out of descriptors or ports: stop dialling */
            continue;
        }
        struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
                                  .data.u32 = (uint32_t)(a - e->c) };
        epoll_ctl(e->ep, EPOLL_CTL_ADD, a->fd, &ev);
        engine_set(e, a, A_CONNECTING);
    }
}

/* Reads what the server sent; false when it closed (the conn is then CLOSED). */
static bool engine_read(struct engine *e, struct aconn *a)
{
    static uint8_t scratch[256 * 1024];
    for (;;) {
        ssize_t n = net_read(a->fd, scratch, sizeof scratch);
        if (n == -EAGAIN)
            return true;
        if (n <= 0) {
            if (n == 0) e->closed_eof++; else e->closed_reset++;
            engine_set(e, a, A_CLOSED);
            return false;
        }
        uint64_t want = a->st == A_RECEIVING ? e->recv_len - a->recvd : 0;
        a->recvd += (uint64_t)n;
        if ((uint64_t)n > want)
            e->extra_bytes += (long long)((uint64_t)n - want);
        if (a->st == A_RECEIVING && a->recvd >= e->recv_len)
            engine_set(e, a, A_HOLDING);
    }
}

static void engine_event(struct engine *e, struct aconn *a, uint32_t events)
{
    if (a->st == A_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            e->connect_failed++;
            e->last_dial_err = err;
            engine_set(e, a, A_CLOSED);
            return;
        }
        engine_set(e, a, A_SENDING);
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !engine_read(e, a))
        return;
    while (a->st == A_SENDING && (events & EPOLLOUT)) {
        ssize_t n = net_write(a->fd, e->msg + a->sent, e->send_len - a->sent);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            e->closed_reset++;
            engine_set(e, a, A_CLOSED);
            return;
        }
        a->sent += (uint64_t)n;
        if (a->sent == e->send_len)
            engine_set(e, a, e->recv_len > 0 ? A_RECEIVING : A_HOLDING);
    }
}

/* Runs the scripts until every connection is holding or closed, or until
 * deadline; with open false only watches (holding connections may be closed
 * by the server meanwhile). */
static void engine_run(struct engine *e, double deadline, bool open)
{
    struct epoll_event evs[256];
    while (now_s() < deadline) {
        if (open)
            engine_open(e);
        if (open && e->next >= e->n && e->busy == 0)
            return;
        int n = epoll_wait(e->ep, evs, 256, 50);
        for (int i = 0; i < n; i++)
            engine_event(e, &e->c[evs[i].data.u32], evs[i].events);
    }
}

static void engine_result(const struct engine *e)
{
    out_int("conns", e->n);
    out_int("conns_holding", e->holding);
    out_int("conns_unfinished", e->busy + (e->n - e->next));
    out_int("connect_failed", e->connect_failed);
    out_int("closed_by_server", e->closed_eof);
    out_int("reset_by_server", e->closed_reset);
    out_int("bytes_from_server_unasked", e->extra_bytes);
    if (e->last_dial_err != 0)
        out_str("last_connect_error", strerror(e->last_dial_err));
}

static void engine_free(struct engine *e)
{
    for (int i = 0; i < e->n; i++)
        if (e->c[i].st != A_UNOPENED && e->c[i].st != A_CLOSED)
            close(e->c[i].fd);
    close(e->ep);
    free(e->c);
}

/* Waits (at most max_s) until RSS has stayed within 0.5% for a second (three
 * samples 0.5 s apart): the server has taken in what the kernel held. */
static uint64_t rss_settled(double max_s)
{
    double deadline = now_s() + max_s;
    uint64_t prev = tree_rss(o.pid), cur = prev;
    for (int calm = 0; calm < 2 && now_s() < deadline;) {
        sleep_s(0.5);
        cur = tree_rss(o.pid);
        calm = (cur > prev ? cur - prev : prev - cur) * 200 < prev ? calm + 1 : 0;
        prev = cur;
    }
    return cur;
}

/* --- 1. output-cap ----------------------------------------------------------
 * Clients with a 16 KiB receive buffer send 64 KiB frames and read the
 * replies at read_rate each, keeping 6 MiB outstanding: the server's output
 * never quite empties. Watches RSS and /api/connections' largest pending. */
#define OC_MAX 64
struct oc_client {
    int fd;
    uint64_t sent, recvd;
    double tokens; /* bytes it may read now: reading is rate-limited */
};

/* One poll round's I/O for a client; false when the server closed it. */
static bool oc_io(struct oc_client *c, short revents, const uint8_t *frame, size_t flen,
                  uint64_t outstanding, int *eof, int *reset)
{
    static uint8_t scratch[256 * 1024];
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && c->tokens >= 4096) {
        size_t want = c->tokens < sizeof scratch ? (size_t)c->tokens : sizeof scratch;
        ssize_t n = net_read(c->fd, scratch, want);
        if (n > 0) {
            c->recvd += (uint64_t)n;
            c->tokens -= (double)n;
        } else if (n != -EAGAIN) {
            (n == 0 ? (*eof)++ : (*reset)++);
            return false;
        }
    }
    if ((revents & POLLOUT) && c->sent - c->recvd < outstanding) {
        size_t off = (size_t)(c->sent % flen), room = (size_t)(outstanding - (c->sent - c->recvd));
        ssize_t n = net_write(c->fd, frame + off, flen - off < room ? flen - off : room);
        if (n > 0) {
            c->sent += (uint64_t)n;
        } else if (n != -EAGAIN) {
            (*reset)++;
            return false;
        }
    }
    return true;
}

static int attack_output_cap(void)
{
    int n = o.conns > 0 ? o.conns : 8, failed = 0, eof = 0, reset = 0, open_n = 0;
    /* By default the client reads whatever arrives: its 16 KiB window is
     * what makes it slow. --read-rate slows it further. */
    double dur = o.duration > 0 ? o.duration : 30, rate = o.read_rate > 0 ? o.read_rate : INFINITY;
    const size_t payload = 64 * 1024, flen = payload + FRAME_HEADER_SIZE;
    const uint64_t outstanding = 6u << 20;
    struct oc_client cl[OC_MAX];
    struct pollfd pf[OC_MAX];
    if (n > OC_MAX)
        die("at most %d clients", OC_MAX);
    uint8_t *frame = data_frame(payload);
    for (int i = 0; i < n; i++) {
        cl[i] = (struct oc_client){ .fd = dial_wait(NULL, o.port, 16 * 1024, 5) };
        if (cl[i].fd < 0) failed++; else open_n++;
    }
    struct monitor m;
    monitor_start(&m, true);
    double start = now_s(), last = start;
    while (open_n > 0 && now_s() < start + dur) {
        double t = now_s(), dt = t - last;
        last = t;
        for (int i = 0; i < n; i++) {
            struct oc_client *c = &cl[i];
            c->tokens += rate * dt;
            if (c->tokens > rate * 0.05 + 65536)
                c->tokens = rate * 0.05 + 65536;
            pf[i] = (struct pollfd){ .fd = c->fd, .events = (short)(
                (c->sent - c->recvd < outstanding ? POLLOUT : 0) | (c->tokens >= 4096 ? POLLIN : 0)) };
        }
        if (poll(pf, (nfds_t)n, 5) <= 0)
            continue;
        for (int i = 0; i < n; i++)
            if (cl[i].fd >= 0 && pf[i].revents != 0 &&
                !oc_io(&cl[i], pf[i].revents, frame, flen, outstanding, &eof, &reset)) {
                close(cl[i].fd);
                cl[i].fd = -1;
                open_n--;
            }
    }
    double secs = now_s() - start;
    uint64_t sent = 0, recvd = 0;
    for (int i = 0; i < n; i++)
        sent += cl[i].sent, recvd += cl[i].recvd;
    out_int("clients", n);
    out_num("seconds", secs);
    out_num("read_rate_mib_s", rate / MIB);
    out_num("sent_mib", (double)sent / MIB);
    out_num("replies_mib", (double)recvd / MIB);
    out_int("pending_max", atomic_load(&m.pending_max));
    out_int("connect_failed", failed);
    out_int("closed_by_server", eof);
    out_int("reset_by_server", reset);
    monitor_stop(&m); /* rss_final with the clients still connected */
    for (int i = 0; i < n; i++)
        if (cl[i].fd >= 0)
            close(cl[i].fd);
    free(frame);
    return 0;
}

/* Waits (at most max_s) until the server's tcpmsg_received_bytes_total
 * reaches bytes, or stops moving for 1.5 s (a server that stopped reading).
 * Returns the last value, NAN when the metric cannot be read. */
static double server_read_wait(double bytes, double max_s)
{
    double deadline = now_s() + max_s, last = NAN, moved = now_s();
    while (now_s() < deadline) {
        char *body;
        double v = NAN;
        if (http_get(NULL, o.http_port, "/metrics?format=prometheus", 2, &body) == 200) {
            v = prom_sum(body, "tcpmsg_received_bytes_total");
            free(body);
        }
        if (isnan(v)) {
            rss_settled(deadline - now_s());
            return last;
        }
        if (v >= bytes)
            return v;
        if (v != last)
            moved = now_s();
        else if (now_s() - moved > 1.5)
            return v;
        last = v;
        sleep_s(0.25);
    }
    return last;
}

/* --- 2. partial-frame flood -------------------------------------------------
 * conns connections each send a DATA header announcing size bytes and all of
 * the payload but its last byte, then wait. RSS once all are in. */
static int attack_partial(void)
{
    int n = o.conns > 0 ? o.conns : 5000;
    double dur = o.duration > 0 ? o.duration : 30;
    size_t len = o.size > 0 ? (size_t)o.size : 1u << 20;
    uint8_t *frame = data_frame(len);
    struct monitor m;
    struct engine e;
    monitor_start(&m, false);
    uint64_t before = tree_rss(o.pid);
    engine_init(&e, n, frame, FRAME_HEADER_SIZE + len - 1, 0, 256);
    double start = now_s();
    engine_run(&e, start + dur - 10, true);
    double in_s = now_s() - start;
    int in = e.holding;
    uint64_t sent = 0;
    for (int i = 0; i < n; i++)
        sent += e.c[i].sent;
    double read_bytes = server_read_wait((double)sent, 7);
    uint64_t rss_in = tree_rss(o.pid);
    note("%d of %d in after %.1f s, RSS %.0f MiB", in, n, in_s, (double)rss_in / MIB);
    /* A server with a memory budget may evict holders now: watch 3 s more. */
    engine_run(&e, now_s() + 3, false);
    out_int("frame_payload", (long long)len);
    out_int("conns_in", in);
    out_num("send_seconds", in_s);
    out_int("rss_before", (long long)before);
    out_int("rss_in", (long long)rss_in);
    out_num("server_bytes_read", read_bytes);
    out_num("rss_per_byte_read", read_bytes > 0 ? ((double)rss_in - (double)before) / read_bytes : NAN);
    out_num("rss_per_conn_kib", in > 0 ? ((double)rss_in - (double)before) / 1024 / in : NAN);
    engine_result(&e);
    monitor_stop(&m);
    engine_free(&e);
    free(frame);
    return 0;
}

/* --- 3. idle after one echo ---------------------------------------------------
 * conns connections each echo one size-byte message, then stay idle; RSS
 * after 2 s of idleness, against RSS before the first connection. */
static int attack_idle(void)
{
    int n = o.conns > 0 ? o.conns : 300;
    double dur = o.duration > 0 ? o.duration : 25;
    size_t len = o.size >= 0 ? (size_t)o.size : 1u << 20;
    uint8_t *frame = data_frame(len);
    struct monitor m;
    struct engine e;
    monitor_start(&m, false);
    uint64_t before = tree_rss(o.pid);
    engine_init(&e, n, frame, FRAME_HEADER_SIZE + len, FRAME_HEADER_SIZE + len, 256);
    double start = now_s();
    engine_run(&e, start + dur, true);
    int echoed = e.holding;
    note("%d of %d echoed in %.1f s; idle 2 s", echoed, n, now_s() - start);
    engine_run(&e, now_s() + 2, false);
    uint64_t idle = tree_rss(o.pid);
    double delta = (double)idle - (double)before;
    out_int("message_payload", (long long)len);
    out_int("conns_echoed", echoed);
    out_int("rss_before", (long long)before);
    out_int("rss_idle", (long long)idle);
    out_num("rss_delta_mib", delta / MIB);
    out_num("rss_per_conn_bytes", echoed > 0 ? delta / echoed : NAN);
    engine_result(&e);
    monitor_stop(&m);
    engine_free(&e);
    free(frame);
    return 0;
}

/* --- 4 and 8. the poisoned RTT report ----------------------------------------
 * RTT_REPORT frames whose entries each claim 2^32-1 samples in bucket 0x12ff
 * (about 4.9 h): what the server then reports. */
struct rtt_snap {
    double count, sum, rejected; /* Prometheus */
    double jcount, jsum, jp50;   /* JSON histograms.client_rtt_seconds */
    double jbucket_min;          /* the smallest count in its buckets */
    bool ok;
};

static struct rtt_snap rtt_snapshot(void)
{
    struct rtt_snap s = { NAN, NAN, NAN, NAN, NAN, NAN, NAN, false };
    char *body;
    if (http_get(NULL, o.http_port, "/metrics?format=prometheus", 2, &body) == 200) {
        s.count = prom_sum(body, "tcpmsg_client_rtt_seconds_count");
        s.sum = prom_sum(body, "tcpmsg_client_rtt_seconds_sum");
        s.rejected = prom_sum(body, "tcpmsg_client_rtt_reports_rejected_total");
        free(body);
        s.ok = true;
    }
    if (http_get(NULL, o.http_port, "/metrics", 2, &body) == 200) {
        json_t *root = json_loads(body, 0, NULL);
        json_t *h = json_object_get(json_object_get(root, "histograms"), "client_rtt_seconds");
        if (json_is_number(json_object_get(h, "count")))
            s.jcount = json_number_value(json_object_get(h, "count"));
        if (json_is_number(json_object_get(h, "p50")))
            s.jp50 = json_number_value(json_object_get(h, "p50"));
        if (json_is_number(json_object_get(h, "sum")))
            s.jsum = json_number_value(json_object_get(h, "sum"));
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(h, "buckets"), i, b) {
            json_t *c = json_object_get(b, "count");
            if (json_is_number(c) && !(json_number_value(c) >= s.jbucket_min))
                s.jbucket_min = json_number_value(c);
        }
        json_decref(root);
        free(body);
    }
    return s;
}

/* Polls the metrics (<= max_s) until the count moves away from before. */
static struct rtt_snap rtt_wait(const struct rtt_snap *before, double max_s)
{
    double deadline = now_s() + max_s;
    struct rtt_snap s = rtt_snapshot();
    while (now_s() < deadline && s.count == before->count && s.jcount == before->jcount) {
        sleep_s(0.1);
        s = rtt_snapshot();
    }
    return s;
}

/* Sends frames reports then one DATA probe; true when the probe's echo came
 * back: the connection survived the reports. */
static bool rtt_send(int fd, int frames, int entries)
{
    size_t flen = FRAME_HEADER_SIZE + RTT_REPORT_HEAD + (size_t)entries * RTT_REPORT_ENTRY;
    uint8_t *buf = malloc(flen * (size_t)frames + 16), probe[12];
    if (buf == NULL)
        die("out of memory");
    for (int f = 0; f < frames; f++) {
        uint8_t *p = buf + (size_t)f * flen;
        frame_header_encode(p, FRAME_RTT_REPORT, flen - FRAME_HEADER_SIZE);
        p[4] = RTT_REPORT_VERSION;
        p[5] = HIST_SUB_BITS;
        for (int i = 0; i < entries; i++)
            memcpy(p + 6 + i * RTT_REPORT_ENTRY, "\x12\xff\xff\xff\xff\xff", RTT_REPORT_ENTRY);
    }
    frame_header_encode(buf + flen * (size_t)frames, FRAME_DATA, 8);
    memcpy(buf + flen * (size_t)frames + 4, "rttprobe", 8);
    bool ok = net_write_all(fd, buf, flen * (size_t)frames + 12, 5000) == 0 &&
              net_read_full(fd, probe, sizeof probe, 3000) == 0 && probe[0] == FRAME_DATA &&
              memcmp(probe + 4, "rttprobe", 8) == 0;
    free(buf);
    return ok;
}

static void rtt_result(const char *sfx, const struct rtt_snap *b, const struct rtt_snap *s,
                       bool conn_open)
{
    char k[64];
#define RTT_OUT(name, v) (snprintf(k, sizeof k, "%s_%s", name, sfx), out_num(k, v))
    RTT_OUT("count", s->count - b->count);
    RTT_OUT("sum_seconds", s->sum - b->sum);
    RTT_OUT("json_count", s->jcount);
    RTT_OUT("json_sum_seconds", s->jsum);
    RTT_OUT("json_p50_seconds", s->jp50);
    RTT_OUT("json_bucket_count_min", s->jbucket_min);
    RTT_OUT("rejected", s->rejected - (isnan(b->rejected) ? 0 : b->rejected));
    snprintf(k, sizeof k, "conn_open_%s", sfx);
    out_raw(k, conn_open ? "true" : "false");
#undef RTT_OUT
}

static int attack_rtt(void)
{
    int frames = o.frames > 0 ? o.frames : 1, entries = o.entries > 0 ? o.entries : 1;
    struct rtt_snap b = rtt_snapshot();
    if (!b.ok)
        die("cannot read /metrics on port %u", o.http_port);
    int fd = dial_wait(NULL, o.port, 0, 5);
    if (fd < 0)
        die("cannot connect: %s", strerror(-fd));
    out_int("entries", entries);
    out_num("claimed_per_frame", (double)entries * 4294967295.0);
    bool open1 = rtt_send(fd, 1, entries);
    struct rtt_snap s1 = rtt_wait(&b, 3);
    if (s1.count == b.count && s1.jcount == b.jcount) {
        /* A process per client may only report when its client leaves. */
        close(fd);
        fd = -1;
        s1 = rtt_wait(&b, 3);
    }
    rtt_result("1", &b, &s1, open1);
    if (frames > 1 && fd < 0)
        fd = dial_wait(NULL, o.port, 0, 5);
    if (frames > 1 && fd >= 0) {
        bool open_n = rtt_send(fd, frames - 1, entries);
        close(fd);
        fd = -1;
        struct rtt_snap sn = rtt_wait(&s1, 3);
        char sfx[16];
        snprintf(sfx, sizeof sfx, "%d", frames);
        rtt_result(sfx, &b, &sn, open_n);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* --- 5. slowloris --------------------------------------------------------------
 * conns HTTP connections from 127.0.0.2-6 each send one byte of a request
 * every 3 s for duration seconds, then leave. A scraper from 127.0.0.9 GETs
 * /metrics every 0.5 s with a 2 s timeout throughout, and after the attack
 * until its first success (giving up after giveup seconds). */
enum { PH_BEFORE, PH_DURING, PH_AFTER };

struct scraper {
    pthread_t th;
    atomic_int phase;
    _Atomic double leave_t;
    int tries[3], oks[3];
    double recovery; /* seconds from the leave to the first success; -1: none */
};

static void *scraper_main(void *arg)
{
    struct scraper *s = arg;
    for (;;) {
        double t0 = now_s();
        int ph = atomic_load(&s->phase);
        bool ok = http_get("127.0.0.9", o.http_port, "/metrics", 2, NULL) == 200;
        s->tries[ph]++;
        s->oks[ph] += ok;
        if (ph == PH_AFTER) {
            double since = now_s() - atomic_load(&s->leave_t);
            if (ok) {
                s->recovery = since;
                return NULL;
            }
            if (since > o.giveup)
                return NULL;
        }
        sleep_s(t0 + 0.5 - now_s());
    }
}

struct slow_conn {
    int fd;
    int sent;      /* bytes of the request sent */
    double next_t; /* when its next byte is due */
};

/* One due byte; false when the server closed or answered the connection. */
static bool slow_step(struct slow_conn *c, double t, int *answered)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    char peek;
    ssize_t r = recv(c->fd, &peek, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r > 0)
        (*answered)++; /* a response to a request never completed: a 408 or such */
    if (r >= 0 || (errno != EAGAIN && errno != ENOTCONN))
        return false;
    ssize_t n = send(c->fd, req + c->sent % (int)(sizeof req - 1), 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == 1) {
        c->sent++;
        c->next_t = t + 3;
    } else if (errno != EAGAIN) {
        return false;
    }
    return true;
}

static int attack_slowloris(void)
{
    int n = o.conns > 0 ? o.conns : 2000, failed = 0, closed = 0, answered = 0;
    double dur = o.duration > 0 ? o.duration : 15;
    struct slow_conn *c = calloc((size_t)n, sizeof *c);
    struct scraper s = { .recovery = -1 };
    if (c == NULL || pthread_create(&s.th, NULL, scraper_main, &s) != 0)
        die("calloc/pthread_create failed");
    sleep_s(1.2); /* a baseline: two scrapes before the attack */
    atomic_store(&s.phase, PH_DURING);
    double start = now_s();
    for (int i = 0; i < n; i++) {
        char src[16];
        snprintf(src, sizeof src, "127.0.0.%d", 2 + i % 5);
        c[i] = (struct slow_conn){ .fd = dial(src, o.http_port, 0), .next_t = start + (i % 30) * 0.1 };
        if (c[i].fd < 0) failed++;
    }
    while (now_s() < start + dur) {
        double t = now_s();
        for (int i = 0; i < n; i++)
            if (c[i].fd >= 0 && t >= c[i].next_t && !slow_step(&c[i], t, &answered)) {
                close(c[i].fd);
                c[i].fd = -1;
                /* Nothing sent yet: the connect itself failed (refused, reset). */
                if (c[i].sent == 0) failed++; else closed++;
            }
        sleep_s(0.05);
    }
    int open_n = 0, established = 0;
    for (int i = 0; i < n; i++) {
        established += c[i].sent > 0;
        if (c[i].fd >= 0) {
            open_n++;
            close(c[i].fd);
        }
    }
    atomic_store(&s.leave_t, now_s());
    atomic_store(&s.phase, PH_AFTER);
    note("attacker left: %d of %d still open; scraper %d/%d during; waiting for /metrics",
         open_n, n, s.oks[PH_DURING], s.tries[PH_DURING]);
    pthread_join(s.th, NULL);
    out_int("conns", n);
    out_num("seconds", dur);
    out_int("connect_failed", failed);
    out_int("conns_sent_a_byte", established);
    out_int("closed_by_server", closed);
    out_int("answered_by_server", answered);
    out_int("open_at_leave", open_n);
    out_int("scrapes_ok_before", s.oks[PH_BEFORE]);
    out_int("scrapes_before", s.tries[PH_BEFORE]);
    out_int("scrapes_ok_during", s.oks[PH_DURING]);
    out_int("scrapes_during", s.tries[PH_DURING]);
    out_num("success_ratio_during", s.tries[PH_DURING] ? (double)s.oks[PH_DURING] / s.tries[PH_DURING] : NAN);
    out_num("recovery_seconds", s.recovery);
    out_num("giveup_seconds", o.giveup);
    free(c);
    return 0;
}

/* --- 6. out of descriptors, then HTTP -------------------------------------------
 * conns message connections (the server has few descriptors), then one HTTP
 * request: the server's CPU and log growth over the next duration seconds. */
static long long file_size(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int attack_emfile(void)
{
    int n = o.conns > 0 ? o.conns : 200, failed = 0;
    double dur = o.duration > 0 ? o.duration : 5;
    int *fds = calloc((size_t)n, sizeof *fds);
    if (fds == NULL || o.pid <= 0)
        die("needs --pid (and memory)");
    for (int i = 0; i < n; i++)
        if ((fds[i] = dial(NULL, o.port, 0)) < 0)
            failed++;
    sleep_s(1); /* the server accepts until it runs out */
    long long cpu0 = cpu_ticks(o.pid), log0 = file_size(o.log);
    double t0 = now_s();
    int status = -ETIMEDOUT, hfd = dial_wait(NULL, o.http_port, 0, 1);
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (hfd >= 0 && net_write_all(hfd, req, sizeof req - 1, 1000) == 0) {
        char head[64] = "";
        if (net_read_full(hfd, head, 12, ms_left(t0 + dur)) == 0 &&
            sscanf(head, "HTTP/1.%*d %d", &status) != 1)
            status = -EPROTO;
    }
    sleep_s(t0 + dur - now_s());
    long long cpu1 = cpu_ticks(o.pid), log1 = file_size(o.log);
    double secs = now_s() - t0;
    out_int("conns", n);
    out_int("connect_failed", failed);
    out_num("seconds", secs);
    out_num("cpu_pct", cpu0 >= 0 && cpu1 >= 0 ? 100.0 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / secs : NAN);
    out_int("log_bytes", log0 >= 0 && log1 >= 0 ? log1 - log0 : -1);
    out_int("http_status", status);
    out_raw("server_alive", server_alive() ? "true" : "false");
    if (hfd >= 0)
        close(hfd);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return 0;
}

/* --- 7. drain on SIGTERM ----------------------------------------------------------
 * A client with a 16 KiB receive buffer puts frames messages of size bytes
 * in flight without reading, then SIGTERMs the server and reads at read_rate:
 * how many replies it gets before the connection ends. */
static int attack_drain(void)
{
    int frames = o.frames > 0 ? o.frames : 4000;
    size_t len = o.size > 0 ? (size_t)o.size : 1024, flen = FRAME_HEADER_SIZE + len;
    double rate = o.read_rate > 0 ? o.read_rate : 1.6 * MIB;
    if (o.pid <= 0)
        die("needs --pid");
    int fd = dial_wait(NULL, o.port, 16 * 1024, 5);
    if (fd < 0)
        die("cannot connect: %s", strerror(-fd));
    uint8_t *one = data_frame(len), *all = malloc(flen * (size_t)frames);
    static uint8_t scratch[64 * 1024];
    if (all == NULL)
        die("out of memory");
    for (int i = 0; i < frames; i++)
        memcpy(all + (size_t)i * flen, one, flen);
    size_t sent = 0, total = flen * (size_t)frames;
    double deadline = now_s() + 10;
    while (sent < total && now_s() < deadline) {
        ssize_t n = net_write(fd, all + sent, total - sent);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n == -EAGAIN) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            poll(&p, 1, ms_left(deadline));
        } else {
            break;
        }
    }
    long long msgs = (long long)(sent / flen);
    sleep_s(0.5); /* let the server read what it will */
    kill(o.pid, SIGTERM);
    double t0 = now_s(), last = t0, tokens = 0, end_t = -1, exit_t = -1;
    uint64_t recvd = 0;
    const char *end = "timeout";
    while (now_s() < t0 + 20) {
        double t = now_s();
        tokens += rate * (t - last);
        last = t;
        if (exit_t < 0 && !server_alive())
            exit_t = t - t0;
        if (tokens < 4096) {
            sleep_s(0.005);
            continue;
        }
        ssize_t n = net_read(fd, scratch, tokens < sizeof scratch ? (size_t)tokens : sizeof scratch);
        if (n > 0) {
            recvd += (uint64_t)n;
            tokens -= (double)n;
        } else if (n == -EAGAIN) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            poll(&p, 1, 50);
        } else {
            end = n == 0 ? "eof" : "reset";
            end_t = now_s() - t0;
            break;
        }
    }
    while (exit_t < 0 && now_s() < t0 + 20) {
        if (!server_alive())
            exit_t = now_s() - t0;
        sleep_s(0.02);
    }
    long long replies = (long long)(recvd / flen);
    out_int("messages_sent", msgs);
    out_int("replies", replies);
    out_int("replies_lost", msgs - replies);
    out_str("end", end);
    out_num("end_after_seconds", end_t);
    out_num("server_exit_after_seconds", exit_t);
    close(fd);
    free(all);
    free(one);
    return 0;
}

/* --- 9 (a helper). clients that each echo one message ---------------------------- */
static int attack_echo(void)
{
    int n = o.conns > 0 ? o.conns : 20, ok = 0, refused = 0, failed = 0;
    uint8_t msg[20], reply[20];
    frame_header_encode(msg, FRAME_DATA, 16);
    memcpy(msg + 4, "0123456789abcdef", 16);
    for (int i = 0; i < n; i++) {
        int fd = dial_wait(NULL, o.port, 0, 2);
        if (fd < 0) {
            refused++;
            continue;
        }
        if (net_write_all(fd, msg, sizeof msg, 2000) == 0 &&
            net_read_full(fd, reply, sizeof reply, 2000) == 0 && memcmp(msg, reply, sizeof msg) == 0)
            ok++;
        else
            failed++;
        close(fd);
    }
    out_int("clients", n);
    out_int("echoed", ok);
    out_int("failed", failed);
    out_int("connect_failed", refused);
    return 0;
}

/* Prometheus samples (summed over labels) as a JSON object, null if absent. */
static int attack_prom(int argc, char **argv)
{
    char *body;
    int st = o.http_port ? http_get(NULL, o.http_port, "/metrics?format=prometheus", 2, &body) : -EINVAL;
    for (int i = 0; i < argc; i++)
        out_num(argv[i], st == 200 ? prom_sum(body, argv[i]) : NAN);
    if (st == 200)
        free(body);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: attack SUBCOMMAND --port N [--http-port N] [--pid PID] [options]\n"
        "subcommands (one JSON line of results on stdout):\n"
        "  output-cap   clients (8) with a 16 KiB window keep 6 MiB of 64 KiB frames\n"
        "               outstanding for --duration (30), reading all (or --read-rate B/s)\n"
        "  partial      --conns (5000) each send all but the last byte of a --size (1 MiB) frame\n"
        "  idle         --conns (300) each echo one --size (1 MiB) message, then idle 2 s\n"
        "  rtt          --frames (1) RTT reports of --entries (1) entries of 2^32-1 samples\n"
        "  slowloris    --conns (2000) HTTP connections, a byte every 3 s for --duration (15),\n"
        "               a scraper on /metrics; waits --giveup (60) s for it after\n"
        "  emfile       --conns (200) message connections then one HTTP request; server\n"
        "               CPU and --log growth over --duration (5)\n"
        "  drain        --frames (4000) x --size (1024) in flight, SIGTERM, read at --read-rate\n"
        "               (1.6 MiB/s)\n"
        "  echo         --conns (20) clients echo one message each\n"
        "  prom NAME... Prometheus samples from /metrics\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, NULL, 'p' },      { "http-port", required_argument, NULL, 'H' },
        { "pid", required_argument, NULL, 'P' },       { "conns", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' },  { "size", required_argument, NULL, 's' },
        { "frames", required_argument, NULL, 'f' },    { "entries", required_argument, NULL, 'e' },
        { "read-rate", required_argument, NULL, 'r' }, { "log", required_argument, NULL, 'l' },
        { "giveup", required_argument, NULL, 'g' },    { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    if (argc < 2 || argv[1][0] == '-') {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    g_name = argv[1];
    for (int ch; (ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1;) {
        switch (ch) {
        case 'p': o.port = (uint16_t)atoi(optarg); break;
        case 'H': o.http_port = (uint16_t)atoi(optarg); break;
        case 'P': o.pid = (pid_t)atoi(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 's': o.size = atoll(optarg); break;
        case 'f': o.frames = atoi(optarg); break;
        case 'e': o.entries = atoi(optarg); break;
        case 'r': o.read_rate = atof(optarg); break;
        case 'l': o.log = optarg; break;
        case 'g': o.giveup = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    char **rest = argv + 1 + optind;
    int nrest = argc - 1 - optind, rc = -1;
    if (strcmp(g_name, "prom") == 0)
        rc = attack_prom(nrest, rest);
    else if (o.port == 0)
        die("--port is required");
    else if (strcmp(g_name, "output-cap") == 0)
        rc = attack_output_cap();
    else if (strcmp(g_name, "partial") == 0)
        rc = attack_partial();
    else if (strcmp(g_name, "idle") == 0)
        rc = attack_idle();
    else if (strcmp(g_name, "rtt") == 0)
        rc = attack_rtt();
    else if (strcmp(g_name, "slowloris") == 0)
        rc = attack_slowloris();
    else if (strcmp(g_name, "emfile") == 0)
        rc = attack_emfile();
    else if (strcmp(g_name, "drain") == 0)
        rc = attack_drain();
    else if (strcmp(g_name, "echo") == 0)
        rc = attack_echo();
    if (rc < 0)
        die("unknown subcommand (attack --help lists them)");
    out_raw("server_alive_after", server_alive() ? "true" : "false");
    out_print();
    return rc;
}
