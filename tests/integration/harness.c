/* harness: process, socket, log and /proc helpers for the integration tests
 * (see harness.h). Everything is bounded by a timeout; servers are tracked so
 * that a failed or hung test still leaves no process or temp file behind.
 */
#include "harness.h"

#include "tcpmsg/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/loop.h"

#define MAX_SERVERS 16

/* Everything the watchdog must clean up. Plain arrays and pids: the
 * SIGALRM handler reads them with async-signal-safe calls only. */
static struct it_server *g_servers[MAX_SERVERS];
static volatile pid_t g_run_pid; /* the client binary it_run is waiting for */

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - it_now_ms();
    return left > 0 ? (int)left : 0;
}

/* ---- cleanup and the watchdog ----------------------------------------------- */

static void cleanup_all(void)
{
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i] != NULL)
            it_server_free(g_servers[i]); /* clears the slot */
    }
}

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "\nintegration watchdog: test took longer than its bound, killing it\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    if (g_run_pid > 0)
        kill(g_run_pid, SIGKILL);
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i] != NULL && g_servers[i]->pid > 0) {
            kill(g_servers[i]->wrapped ? -g_servers[i]->pid : g_servers[i]->pid, SIGKILL);
            unlink(g_servers[i]->log_path);
        }
    }
    _exit(1);
}

/* "text_mode" selects test_text_mode (or a test named text_mode). */
static bool case_matches(const char *test_name, const char *wanted)
{
    if (strncmp(test_name, "test_", 5) == 0 && strcmp(test_name + 5, wanted) == 0)
        return true;
    return strcmp(test_name, wanted) == 0;
}

int it_main(int argc, char **argv, const struct CMUnitTest *tests, size_t ntests)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, watchdog);
    alarm(IT_WATCHDOG_S);
    int rc;
    if (argc < 2) {
        rc = _cmocka_run_group_tests("integration", tests, ntests, NULL, NULL);
    } else {
        size_t i = 0;
        while (i < ntests && !case_matches(tests[i].name, argv[1]))
            i++;
        if (i == ntests) {
            /* A misspelt case must not pass by running nothing. */
            fprintf(stderr, "%s: no test case named '%s'; cases:", argv[0], argv[1]);
            for (size_t j = 0; j < ntests; j++) {
                const char *name = tests[j].name;
                fprintf(stderr, " %s", strncmp(name, "test_", 5) == 0 ? name + 5 : name);
            }
            fputc('\n', stderr);
            return 2;
        }
        const struct CMUnitTest one[1] = { tests[i] };
        rc = cmocka_run_group_tests_name(argv[1], one, NULL, NULL);
    }
    alarm(0);
    /* A server still registered belongs to a test that failed midway: its
     * log tells why. */
    for (size_t i = 0; rc != 0 && i < MAX_SERVERS; i++) {
        if (g_servers[i] != NULL)
            it_log_dump(g_servers[i]);
    }
    cleanup_all();
    return rc;
}

/* ---- the server ------------------------------------------------------------- */

static const char *tmp_dir(void)
{
    const char *d = getenv("TMPDIR");
    return d != NULL && *d != '\0' ? d : "/tmp";
}

/* Find key's number ("port" reads "port=N" or "\"port\":N") in the first
 * line of the log that contains marker, once that line is complete. */
static int parse_port(const char *log, const char *marker, const char *key)
{
    const char *line = strstr(log, marker);
    if (line == NULL)
        return -1;
    const char *eol = strchr(line, '\n');
    if (eol == NULL)
        return -1; /* the line is not complete yet */
    char text_key[32], json_key[32];
    snprintf(text_key, sizeof text_key, " %s=", key);
    snprintf(json_key, sizeof json_key, "\"%s\":", key);
    const char *p = strstr(line, text_key);
    size_t skip = strlen(text_key);
    if (p == NULL || p > eol) {
        p = strstr(line, json_key);
        skip = strlen(json_key);
    }
    if (p == NULL || p > eol)
        return -1;
    char *end;
    long port = strtol(p + skip, &end, 10);
    return end != p + skip && port > 0 && port < 65536 ? (int)port : -1;
}

const char *it_mode(void)
{
    const char *m = getenv("TCPMSG_IT_MODE");
    return m != NULL && *m != '\0' ? m : "epoll";
}

bool it_fork_mode(void)
{
    return strcmp(it_mode(), "fork") == 0;
}

const char *it_io(void)
{
    const char *io = getenv("TCPMSG_IT_IO");
    return io != NULL && *io != '\0' ? io : "epoll";
}

/* The io_uring variants (integration.uring.*) need io_uring: where the
 * kernel or the system refuses it, the whole executable skips (ctest's
 * SKIP_RETURN_CODE 77) with the reason, before any case runs. */
__attribute__((constructor)) static void it_check_io(void)
{
    if (strcmp(it_io(), "uring") != 0)
        return;
    struct loop_options opt = { .backend = LOOP_URING };
    struct loop *l = NULL;
    int rc = loop_new(&l, &opt, NULL);
    if (rc < 0) {
        fprintf(stderr, "SKIP: TCPMSG_IT_IO=uring, but io_uring is not available here: %s\n",
                strerror(-rc));
        exit(77);
    }
    loop_free(l);
}

static void exec_server(const char *const *wrapper, const char *const *args, rlim_t nofile,
                        int log_fd)
{
    const char *argv[80];
    size_t n = 0;
    for (size_t i = 0; wrapper != NULL && wrapper[i] != NULL && n < 16; i++)
        argv[n++] = wrapper[i];
    /* Behind a wrapper, the server's argv[0] is the path the wrapper runs. */
    const char *const fixed[] = { n > 0 ? TCPMSGD_PATH : "tcpmsgd", "--bind", "127.0.0.1",
                                  "--port", "0", "--http-port", "0" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 75; i++)
        argv[n++] = args[i];
    /* Only when asked: without TCPMSG_IT_MODE the server runs its default. */
    const char *mode = getenv("TCPMSG_IT_MODE");
    if (mode != NULL && *mode != '\0') {
        argv[n++] = "--mode";
        argv[n++] = it_mode();
    }
    /* The backend always: the default (auto) would pick io_uring where it
     * can, and the plain variants are the epoll ones. */
    argv[n++] = "--io";
    argv[n++] = it_io();
    argv[n] = NULL;
    if (nofile > 0) {
        struct rlimit rl = { .rlim_cur = nofile, .rlim_max = nofile };
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
        _exit(126);
    signal(SIGPIPE, SIG_DFL);
    if (wrapper != NULL)
        setpgid(0, 0); /* the parent does it too: whichever runs first */
    const char *path = wrapper != NULL && wrapper[0] != NULL ? wrapper[0] : TCPMSGD_PATH;
    execvp(path, (char *const *)argv);
    dprintf(2, "harness: cannot exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

static bool register_server(struct it_server *s)
{
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i] == NULL) {
            g_servers[i] = s;
            return true;
        }
    }
    return false;
}

struct it_server *it_server_start(const char *const *args, rlim_t nofile)
{
    return it_server_start_wrapped(NULL, args, nofile);
}

struct it_server *it_server_start_wrapped(const char *const *wrapper, const char *const *args,
                                          rlim_t nofile)
{
    struct it_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->log_path, sizeof s->log_path, "%s/tcpmsgd-it.XXXXXX", tmp_dir());
    int fd = mkstemp(s->log_path);
    if (fd < 0) {
        fprintf(stderr, "harness: mkstemp %s: %s\n", s->log_path, strerror(errno));
        free(s);
        return NULL;
    }
    if (!register_server(s)) {
        fprintf(stderr, "harness: more than %d servers in one test\n", MAX_SERVERS);
        close(fd);
        unlink(s->log_path);
        free(s);
        return NULL;
    }
    s->wrapped = wrapper != NULL;
    pid_t pid = fork();
    if (pid == 0)
        exec_server(wrapper, args, nofile, fd);
    if (pid > 0 && s->wrapped)
        setpgid(pid, pid);
    close(fd);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        it_server_free(s);
        return NULL;
    }
    s->pid = pid;

    int64_t deadline = it_now_ms() + IT_START_TIMEOUT_MS;
    for (;;) {
        /* Ready once it says it is listening: the HTTP endpoint (if any) is
         * up by then too. */
        char *log = it_log_read(s);
        bool ready = log != NULL && strstr(log, "server is listening") != NULL;
        s->port = ready ? parse_port(log, "server socket bound", "port") : -1;
        s->http_port = ready ? parse_port(log, "http endpoint listening", "http_port") : -1;
        free(log);
        if (s->port > 0)
            return s;
        if (!it_server_alive(s)) {
            fprintf(stderr, "harness: tcpmsgd exited during start-up (status 0x%x)\n",
                    s->exit_status);
            break;
        }
        if (it_now_ms() >= deadline) {
            fprintf(stderr, "harness: tcpmsgd logged no port within %d ms\n", IT_START_TIMEOUT_MS);
            break;
        }
        it_sleep_ms(10);
    }
    it_log_dump(s);
    it_server_free(s);
    return NULL;
}

void it_server_free(struct it_server *s)
{
    if (s == NULL)
        return;
    if (s->pid > 0) {
        /* Behind a wrapper, the server is its child: kill them both. */
        kill(s->wrapped ? -s->pid : s->pid, SIGKILL);
        while (waitpid(s->pid, &s->exit_status, 0) < 0 && errno == EINTR) {
        }
        s->pid = 0;
    }
    unlink(s->log_path);
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i] == s)
            g_servers[i] = NULL;
    }
    free(s);
}

int it_server_signal(struct it_server *s, int sig)
{
    if (s->pid <= 0)
        return 0;
    return kill(s->pid, sig) < 0 ? -errno : 0;
}

bool it_server_alive(struct it_server *s)
{
    if (s->pid <= 0)
        return false;
    pid_t r = waitpid(s->pid, &s->exit_status, WNOHANG);
    if (r == s->pid) {
        s->pid = 0;
        return false;
    }
    return true;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int it_server_wait_exit(struct it_server *s, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_server_alive(s)) {
        if (it_now_ms() >= deadline)
            return -1;
        it_sleep_ms(5);
    }
    return decode_status(s->exit_status);
}

/* ---- the log ------------------------------------------------------------------ */

char *it_log_read(const struct it_server *s)
{
    int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (cap - len < 2048) {
            char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* Count lines of log holding every needle in the list. */
static int count_lines(const char *log, const char *const *needles, size_t n)
{
    int count = 0;
    for (const char *line = log; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        bool all = true;
        for (size_t i = 0; i < n && all; i++) {
            const char *hit = memmem(line, len, needles[i], strlen(needles[i]));
            all = hit != NULL;
        }
        if (all)
            count++;
        line += len + (eol != NULL);
    }
    return count;
}

static size_t collect(va_list ap, const char **needles, size_t cap)
{
    size_t n = 0;
    const char *p;
    while ((p = va_arg(ap, const char *)) != NULL && n < cap)
        needles[n++] = p;
    return n;
}

int it_log_count(const struct it_server *s, ...)
{
    const char *needles[16];
    va_list ap;
    va_start(ap, s);
    size_t n = collect(ap, needles, 16);
    va_end(ap);
    char *log = it_log_read(s);
    int count = log != NULL ? count_lines(log, needles, n) : -1;
    free(log);
    return count;
}

bool it_log_wait(const struct it_server *s, int n, int timeout_ms, ...)
{
    const char *needles[16];
    va_list ap;
    va_start(ap, timeout_ms);
    size_t nn = collect(ap, needles, 16);
    va_end(ap);
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *log = it_log_read(s);
        int count = log != NULL ? count_lines(log, needles, nn) : -1;
        free(log);
        if (count >= n)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(20);
    }
}

void it_log_dump(const struct it_server *s)
{
    char *log = it_log_read(s);
    fprintf(stderr, "---- tcpmsgd log (%s) ----\n%s---- end of log ----\n", s->log_path,
            log != NULL ? log : "(unreadable)\n");
    free(log);
}

/* ---- /proc --------------------------------------------------------------------- */

long it_proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

double it_proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces: state is field 3,
     * utime 14 and stime 15 (proc(5)). */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Parent pid and state of pid from /proc/PID/stat; false if it is gone. */
static bool proc_stat(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    int pp;
    if (p == NULL || sscanf(p + 2, "%c %d", state, &pp) != 2)
        return false;
    *ppid = pp;
    return true;
}

int it_proc_children(pid_t pid, pid_t *out, char *states, int cap)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        pid_t ppid;
        char state;
        if (*end != '\0' || p <= 0 || !proc_stat((pid_t)p, &ppid, &state) || ppid != pid)
            continue;
        if (n < cap) {
            out[n] = (pid_t)p;
            if (states != NULL)
                states[n] = state;
        }
        n++;
    }
    closedir(d);
    return n;
}

int it_proc_fds(pid_t pid, int *fds, char (*targets)[64], int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name)
            continue;
        char link[96];
        snprintf(link, sizeof link, "%s/%ld", path, fd);
        ssize_t len = readlink(link, targets[n], 63);
        if (len < 0)
            continue; /* closed meanwhile */
        targets[n][len] = '\0';
        fds[n++] = (int)fd;
    }
    closedir(d);
    return n;
}

int it_proc_fd_flags(pid_t pid, int fd)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, fd);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    int flags = -ENOENT;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags:", 6) == 0) {
            flags = (int)strtol(line + 6, NULL, 8);
            break;
        }
    }
    fclose(f);
    return flags;
}

/* ---- sockets -------------------------------------------------------------------- */

/* Wait for events on fd until the deadline: >0 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : r;
    }
}

/* it_connect_from, with SO_RCVBUF set before the connect (0: the default),
 * when it still shapes the window the handshake announces. */
static int connect_with(const char *local_ip, int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int rc = 0;
    if (local_ip != NULL) {
        inet_pton(AF_INET, local_ip, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            rc = -errno;
            goto failed;
        }
    }
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto failed;
        }
        rc = wait_fd(fd, POLLOUT, it_now_ms() + IT_IO_TIMEOUT_MS);
        if (rc <= 0) {
            rc = rc == 0 ? -ETIMEDOUT : rc;
            goto failed;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            rc = -err;
            goto failed;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;

failed:
    close(fd);
    return rc;
}

int it_connect_from(const char *local_ip, int port)
{
    return connect_with(local_ip, port, 0);
}

int it_connect(int port)
{
    return connect_with(NULL, port, 0);
}

int it_connect_rcvbuf(int port, int rcvbuf)
{
    return connect_with(NULL, port, rcvbuf);
}

int it_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    return ntohs(sa.sin_port);
}

int it_must_connect(int port)
{
    int fd = it_connect(port);
    if (fd < 0)
        fail_msg("connect to port %d: %s", port, strerror(-fd));
    return fd;
}

void it_must_roundtrip(int fd, const char *text)
{
    int rc = it_roundtrip(fd, text, strlen(text), IT_IO_TIMEOUT_MS);
    if (rc != 0)
        fail_msg("round trip of '%s' failed: %s", text, strerror(-rc));
}

int it_send_all(int fd, const void *buf, size_t n, int timeout_ms)
{
    return net_write_all(fd, buf, n, timeout_ms > 0 ? timeout_ms : 1);
}

int it_recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    return net_read_full(fd, buf, n, timeout_ms > 0 ? timeout_ms : 1);
}

/* One recv that waits up to deadline for data (flags: e.g. MSG_PEEK).
 * Returns bytes (> 0), 0 at EOF, or -errno (-ETIMEDOUT). */
static ssize_t recv_by(int fd, void *buf, size_t n, int flags, int64_t deadline)
{
    for (;;) {
        ssize_t r = recv(fd, buf, n, flags | MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int w = wait_fd(fd, POLLIN, deadline);
        if (w <= 0)
            return w == 0 ? -ETIMEDOUT : w;
    }
}

ssize_t it_recv_until_eof(int fd, void *buf, size_t cap, int timeout_ms)
{
    uint8_t *p = buf;
    size_t len = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        /* Full: one more byte (peeked) means the reply was too long. */
        uint8_t extra;
        ssize_t r = len == cap ? recv_by(fd, &extra, 1, MSG_PEEK, deadline)
                               : recv_by(fd, p + len, cap - len, 0, deadline);
        if (r == 0)
            return (ssize_t)len;
        if (r < 0)
            return r;
        if (len == cap)
            return -ENOBUFS;
        len += (size_t)r;
    }
}

int it_expect_eof(int fd, int timeout_ms)
{
    uint8_t byte;
    ssize_t r = recv_by(fd, &byte, 1, 0, it_now_ms() + timeout_ms);
    return r == 0 ? 0 : r > 0 ? -EPROTO : (int)r;
}

int it_wait_acked(int fd, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        int unacked = 0;
        if (ioctl(fd, SIOCOUTQ, &unacked) < 0)
            return -errno;
        if (unacked == 0)
            return 0;
        if (it_now_ms() >= deadline)
            return -ETIMEDOUT;
        it_sleep_ms(1);
    }
}

int it_send_frame(int fd, uint8_t type, const void *payload, size_t len, int timeout_ms)
{
    uint8_t hdr[FRAME_HEADER_SIZE];
    frame_header_encode(hdr, type, len);
    int64_t deadline = it_now_ms() + timeout_ms;
    int rc = it_send_all(fd, hdr, sizeof hdr, timeout_ms);
    if (rc == 0 && len > 0)
        rc = it_send_all(fd, payload, len, remaining_ms(deadline));
    return rc;
}

ssize_t it_recv_frame(int fd, uint8_t *type, void *buf, size_t cap, int timeout_ms)
{
    uint8_t hdr[FRAME_HEADER_SIZE];
    int64_t deadline = it_now_ms() + timeout_ms;
    int rc = it_recv_exact(fd, hdr, sizeof hdr, timeout_ms);
    if (rc < 0)
        return rc;
    size_t len = (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    *type = hdr[0];
    if (len > cap)
        return -EMSGSIZE;
    rc = it_recv_exact(fd, buf, len, remaining_ms(deadline));
    return rc < 0 ? rc : (ssize_t)len;
}

int it_roundtrip(int fd, const void *payload, size_t len, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    int rc = it_send_frame(fd, FRAME_DATA, payload, len, timeout_ms);
    if (rc < 0)
        return rc;
    uint8_t *reply = malloc(len > 0 ? len : 1);
    if (reply == NULL)
        return -ENOMEM;
    uint8_t type = 0xff;
    ssize_t n = it_recv_frame(fd, &type, reply, len, remaining_ms(deadline));
    if (n >= 0)
        rc = type == FRAME_DATA && (size_t)n == len && memcmp(reply, payload, len) == 0 ? 0 : -EBADMSG;
    else
        rc = n == -EMSGSIZE ? -EBADMSG : (int)n;
    free(reply);
    return rc;
}

int it_expect_error_frame(int fd, int code, char *reason, size_t cap, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint8_t buf[512];
    uint8_t type = 0xff;
    ssize_t n = it_recv_frame(fd, &type, buf, sizeof buf, timeout_ms);
    if (n < 0)
        return n == -EMSGSIZE ? -EBADMSG : (int)n;
    if (type != FRAME_ERROR || n < 1 || buf[0] != code)
        return -EBADMSG;
    if (reason != NULL && cap > 0) {
        size_t r = (size_t)n - 1 < cap - 1 ? (size_t)n - 1 : cap - 1;
        memcpy(reason, buf + 1, r);
        reason[r] = '\0';
    }
    int rc = it_expect_eof(fd, remaining_ms(deadline));
    return rc == -EPROTO ? -EPROTO : rc;
}

/* ---- the client binary ----------------------------------------------------------- */

struct grow {
    char *p;
    size_t len, cap;
};

static int grow_read(struct grow *g, int fd)
{
    if (g->cap - g->len < 1024) {
        size_t cap = g->cap != 0 ? g->cap * 2 : 4096;
        char *p = realloc(g->p, cap);
        if (p == NULL)
            return -ENOMEM;
        g->p = p;
        g->cap = cap;
    }
    ssize_t r = read(fd, g->p + g->len, g->cap - g->len - 1);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -errno;
    g->len += (size_t)r;
    g->p[g->len] = '\0';
    return r > 0; /* 0 at EOF */
}

static void exec_child(const char *path, const char *const *argv, int out, int err)
{
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    signal(SIGPIPE, SIG_DFL);
    execv(path, (char *const *)argv);
    dprintf(2, "harness: cannot exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

int it_run(const char *path, const char *const *argv, int timeout_ms, struct it_run *r)
{
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(err, O_CLOEXEC) < 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        return -e;
    }
    pid_t pid = fork();
    if (pid == 0)
        exec_child(path, argv, out[1], err[1]);
    int fork_errno = errno;
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        close(out[0]);
        close(err[0]);
        return -fork_errno;
    }
    g_run_pid = pid;

    struct grow g[2] = { { 0 }, { 0 } };
    struct pollfd p[2] = { { .fd = out[0], .events = POLLIN }, { .fd = err[0], .events = POLLIN } };
    int64_t deadline = it_now_ms() + timeout_ms;
    bool timed_out = false;
    while ((p[0].fd >= 0 || p[1].fd >= 0) && !timed_out) {
        int n = poll(p, 2, remaining_ms(deadline));
        if (n < 0 && errno != EINTR)
            break;
        timed_out = n == 0;
        for (int i = 0; i < 2 && n > 0; i++) {
            if (p[i].fd >= 0 && p[i].revents != 0 && grow_read(&g[i], p[i].fd) <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    /* Output closed: the child exits now, or within what is left of the bound. */
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && !timed_out) {
        timed_out = it_now_ms() >= deadline;
        it_sleep_ms(2);
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    g_run_pid = 0;
    for (int i = 0; i < 2; i++) {
        if (p[i].fd >= 0)
            close(p[i].fd);
    }
    r->exit_code = timed_out ? -1 : decode_status(status);
    r->out = g[0].p != NULL ? g[0].p : strdup("");
    r->err = g[1].p != NULL ? g[1].p : strdup("");
    return 0;
}

void it_run_free(struct it_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* ---- the HTTP endpoint ------------------------------------------------------------ */

static int http_request_from(const char *local_ip, int port, const char *method,
                             const char *target, const char *extra_headers, const char *body,
                             int timeout_ms, struct it_http *r)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = it_now_ms() + timeout_ms;
    int fd = it_connect_from(local_ip, port);
    if (fd < 0)
        return fd;
    char *req = NULL;
    size_t req_len = 0;
    FILE *f = open_memstream(&req, &req_len);
    if (f == NULL) {
        close(fd);
        return -ENOMEM;
    }
    fprintf(f, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s", method,
            target, port, extra_headers != NULL ? extra_headers : "");
    if (body != NULL)
        fprintf(f, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        fputs("\r\n", f);
    fclose(f);
    int rc = it_send_all(fd, req, req_len, remaining_ms(deadline));
    free(req);
    char *buf = rc == 0 ? malloc(IT_HTTP_MAX_REPLY + 1) : NULL;
    if (rc == 0 && buf == NULL)
        rc = -ENOMEM;
    ssize_t n = rc == 0 ? it_recv_until_eof(fd, buf, IT_HTTP_MAX_REPLY, remaining_ms(deadline)) : rc;
    close(fd);
    if (n < 0) {
        free(buf);
        return (int)n;
    }
    buf[n] = '\0';
    char *sep = memmem(buf, (size_t)n, "\r\n\r\n", 4);
    int status = 0;
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %3d", &status) != 1) {
        free(buf);
        return -EBADMSG;
    }
    size_t head_len = (size_t)(sep - buf) + 2; /* keep the last header's CRLF */
    r->status = status;
    r->head = strndup(buf, head_len);
    r->body_len = (size_t)n - head_len - 2;
    r->body = malloc(r->body_len + 1);
    if (r->head == NULL || r->body == NULL) {
        it_http_free(r);
        free(buf);
        return -ENOMEM;
    }
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
}

int it_http_request(int port, const char *method, const char *target, const char *extra_headers,
                    const char *body, int timeout_ms, struct it_http *r)
{
    return http_request_from(NULL, port, method, target, extra_headers, body, timeout_ms, r);
}

int it_http_get(int port, const char *target, struct it_http *r)
{
    return http_request_from(NULL, port, "GET", target, NULL, NULL, IT_IO_TIMEOUT_MS, r);
}

int it_http_get_from(const char *local_ip, int port, const char *target, int timeout_ms,
                     struct it_http *r)
{
    return http_request_from(local_ip, port, "GET", target, NULL, NULL, timeout_ms, r);
}

const char *it_http_header(const struct it_http *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = r->head != NULL ? strstr(r->head, "\r\n") : NULL;
    while (line != NULL && line[2] != '\0') {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            break;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *end = eol;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            return out;
        }
        line = eol;
    }
    return NULL;
}

void it_http_free(struct it_http *r)
{
    free(r->head);
    free(r->body);
    r->head = r->body = NULL;
    r->body_len = 0;
}

json_t *it_http_get_json(int port, const char *target)
{
    struct it_http r;
    int rc = it_http_get(port, target, &r);
    if (rc < 0) {
        fprintf(stderr, "harness: GET %s: %s\n", target, strerror(-rc));
        return NULL;
    }
    json_t *doc = NULL;
    if (r.status != 200) {
        fprintf(stderr, "harness: GET %s: status %d: %s\n", target, r.status, r.body);
    } else {
        json_error_t err;
        doc = json_loadb(r.body, r.body_len, 0, &err);
        if (doc == NULL)
            fprintf(stderr, "harness: GET %s: not JSON (%s): %s\n", target, err.text, r.body);
    }
    it_http_free(&r);
    return doc;
}

json_t *it_json_path(json_t *root, const char *dotted)
{
    json_t *v = root;
    const char *p = dotted;
    while (v != NULL && *p != '\0') {
        size_t n = strcspn(p, ".");
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        if (json_is_array(v)) {
            char *end;
            unsigned long i = strtoul(key, &end, 10);
            v = *end == '\0' && end != key ? json_array_get(v, i) : NULL;
        } else {
            v = json_object_get(v, key);
        }
        p += n + (p[n] == '.');
    }
    return v;
}

long long it_json_int(json_t *root, const char *dotted)
{
    json_t *v = it_json_path(root, dotted);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

double it_json_num(json_t *root, const char *dotted)
{
    json_t *v = it_json_path(root, dotted);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

bool it_prom_sample(const char *text, const char *series, double *value)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
        if ((p != text && p[-1] != '\n') || p[n] != ' ')
            continue;
        char *end;
        double v = strtod(p + n + 1, &end);
        if (end == p + n + 1 || (*end != '\n' && *end != '\0' && *end != ' '))
            return false;
        *value = v;
        return true;
    }
    return false;
}

json_t *it_must_get_json(int port, const char *target)
{
    json_t *doc = it_http_get_json(port, target);
    if (doc == NULL)
        fail_msg("GET %s did not return a JSON document", target);
    return doc;
}

rlim_t it_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

json_t *it_wait_metric(const struct it_server *s, const char *path, long long want)
{
    int64_t deadline = it_now_ms() + IT_SETTLE_MS;
    for (;;) {
        json_t *doc = it_must_get_json(s->http_port, "/metrics");
        double got = it_json_num(doc, path);
        if (got == (double)want)
            return doc;
        json_decref(doc);
        if (it_now_ms() >= deadline)
            fail_msg("metric %s is %g, want %lld (waited %d ms)", path, got, want, IT_SETTLE_MS);
        it_sleep_ms(20);
    }
}
