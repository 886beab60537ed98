/* harness: what the integration tests need to drive the real binaries. It
 * starts tcpmsgd on 127.0.0.1 port 0 with its log in a temp file and reads the
 * chosen port back, talks to it over sockets and to its HTTP endpoint,
 * watches its log and /proc entries, and runs the tcpmsg client. Not a test
 * framework: the tests use cmocka; every call here is bounded by a timeout
 * and reports failure through its return value, so the test decides what to
 * assert.
 *
 * Cleanup: every server started here is registered; it_main() kills and reaps
 * any still running and unlinks their logs after the test, whatever happened,
 * and so does the watchdog before it ends a hung test.
 */
#ifndef TCPMSG_IT_HARNESS_H
#define TCPMSG_IT_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <jansson.h>

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <cmocka.h>

/* Paths of the binaries under test (set by tests/CMakeLists.txt). */
#ifndef TCPMSGD_PATH
#error "TCPMSGD_PATH must name the tcpmsgd binary"
#endif
#ifndef TCPMSG_PATH
#error "TCPMSG_PATH must name the tcpmsg binary"
#endif

#define IT_WATCHDOG_S 60     /* a whole test case never runs longer */
#define IT_START_TIMEOUT_MS 5000 /* tcpmsgd must log its port this fast */
#define IT_IO_TIMEOUT_MS 5000    /* default bound for one socket exchange */

/* ---- test program entry --------------------------------------------------- */

/* Run one case: argv[1] names it, without the "test_" prefix of its function
 * (it is an error if no test has that name);
 * with no argument, every test runs. Arms the watchdog, ignores SIGPIPE, and
 * cleans up servers and temp files afterwards. Returns the exit status. */
int it_main(int argc, char **argv, const struct CMUnitTest *tests, size_t ntests);

/* Raise this process's soft RLIMIT_NOFILE to the hard limit (tests that
 * hold thousands of sockets); returns the soft limit now. */
rlim_t it_raise_nofile(void);

/* Milliseconds on the monotonic clock. */
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* ---- the server ----------------------------------------------------------- */

/* The concurrency mode every server of this run uses: TCPMSG_IT_MODE from
 * the environment ("epoll" when unset). When it is set, it_server_start
 * appends "--mode <it>" to every server's arguments, so the same cases run
 * against both modes (tests/integration/cases.cmake registers each case
 * twice). */
const char *it_mode(void);
bool it_fork_mode(void); /* it_mode() is "fork" */
/* The workers' backend the servers run with: TCPMSG_IT_IO ("uring"), or
 * "epoll" when unset. */
const char *it_io(void);

struct it_server {
    pid_t pid;          /* 0 once reaped */
    bool wrapped;       /* started behind a wrapper, in a process group of its own */
    int port;           /* the port it bound */
    int http_port;      /* its HTTP endpoint's port; -1 with --no-http */
    int exit_status;    /* waitpid status once reaped */
    char log_path[256]; /* its stdout and stderr */
};

/* Start tcpmsgd with "--bind 127.0.0.1 --port 0 --http-port 0" followed by the NULL-
 * terminated extra args (args may be NULL) and, when TCPMSG_IT_MODE is set,
 * "--mode TCPMSG_IT_MODE"; stdin from /dev/null, stdout and
 * stderr to a fresh temp log file. nofile > 0 sets RLIMIT_NOFILE (soft and
 * hard) in the child before exec. Waits up to IT_START_TIMEOUT_MS for the
 * "server is listening" line (text or JSON) and reads the ports, failing
 * at once if the child exits. Returns the server (released by it_server_free)
 * or NULL, with the reason and the log printed to stderr. */
struct it_server *it_server_start(const char *const *args, rlim_t nofile);

/* it_server_start with the server's command behind a wrapper: wrapper is a
 * NULL-terminated argv (at most 16 words, the first looked up in PATH), e.g.
 * { "strace", "-f", "-o", path, NULL }, and runs "TCPMSGD_PATH --bind ...".
 * s->pid is then the wrapper's pid (signals go to it; the server is its
 * child, see it_proc_children) and the log holds the wrapper's output too.
 * The wrapper leads a process group of its own: the cleanup (it_server_free,
 * the watchdog) kills the group, so the server does not outlive a failed
 * test. wrapper NULL: it_server_start. */
struct it_server *it_server_start_wrapped(const char *const *wrapper, const char *const *args,
                                          rlim_t nofile);

/* Kill (SIGKILL) and reap the server if still running, unlink its log and
 * free it. it_server_free(NULL) is a no-op. */
void it_server_free(struct it_server *s);

/* Send sig to the server (no-op once reaped). Returns 0 or -errno. */
int it_server_signal(struct it_server *s, int sig);

/* Wait up to timeout_ms for the server to exit. Returns its exit code
 * (0..255), 128+N when killed by signal N, or -1 on timeout. */
int it_server_wait_exit(struct it_server *s, int timeout_ms);

/* true while the child has not exited (reaps it if it has). */
bool it_server_alive(struct it_server *s);

/* ---- the server's log ----------------------------------------------------- */

/* The whole log, NUL-terminated (free() it), or NULL if unreadable. */
char *it_log_read(const struct it_server *s);

/* Lines of the log that contain every one of the NULL-terminated needles
 * (no needle: every line). */
int it_log_count(const struct it_server *s, ...) __attribute__((sentinel));

/* Poll (every 20 ms, at most timeout_ms) until at least n lines contain every
 * needle. Returns true when they do. */
bool it_log_wait(const struct it_server *s, int n, int timeout_ms, ...)
    __attribute__((sentinel));

/* Print the log to stderr (for failure diagnosis). */
void it_log_dump(const struct it_server *s);

/* Fail the test (showing the log) unless n lines holding every needle appear
 * within timeout_ms:  IT_ASSERT_LOG(s, 1, 2000, "connection closed", "reason=oversize"); */
#define IT_ASSERT_LOG(s, n, timeout_ms, ...)                                         \
    do {                                                                             \
        if (!it_log_wait((s), (n), (timeout_ms), __VA_ARGS__, (const char *)NULL)) { \
            it_log_dump(s);                                                          \
            fail_msg("log: expected %d line(s) with: %s", (int)(n), #__VA_ARGS__);   \
        }                                                                            \
    } while (0)

/* assert_true that says which condition failed. */
#define IT_CHECK(cond)                                   \
    do {                                                 \
        if (!(cond))                                     \
            fail_msg("%s", "check failed: " #cond);      \
    } while (0)

/* Start a server or fail the test. */
#define IT_START(var, args, nofile)                          \
    struct it_server *var = it_server_start((args), (nofile)); \
    if (var == NULL)                                          \
        fail_msg("tcpmsgd did not start")

/* ---- /proc ----------------------------------------------------------------- */

/* Resident set size in KiB (VmRSS), or -1. */
long it_proc_rss_kib(pid_t pid);

/* CPU time consumed (utime + stime) in seconds, or -1. */
double it_proc_cpu_s(pid_t pid);

/* The processes whose parent is pid (the ppid field of every /proc/PID/stat),
 * up to cap of them in out, and their states (R, S, Z ...) in states unless
 * it is NULL. Returns how many there are (may exceed cap), or -errno. */
int it_proc_children(pid_t pid, pid_t *out, char *states, int cap);

/* The target of each of pid's descriptors, "socket:[123]", "pipe:[45]",
 * "anon_inode:[eventpoll]", "/dev/null" ...: fds[i] gets the number and
 * targets[i] (64 bytes each) the link. Returns the count (up to cap) or
 * -errno. */
int it_proc_fds(pid_t pid, int *fds, char (*targets)[64], int cap);

/* The flags field of /proc/PID/fdinfo/FD (O_ACCMODE & flags tells read or
 * write end), or -errno. */
int it_proc_fd_flags(pid_t pid, int fd);

/* ---- sockets ----------------------------------------------------------------- */

/* A blocking TCP connection to 127.0.0.1:port (TCP_NODELAY, close-on-exec),
 * given up after IT_IO_TIMEOUT_MS. Returns the fd or -errno. */
int it_connect(int port);
/* The same from a chosen local address (e.g. "127.0.0.2"). */
int it_connect_from(const char *local_ip, int port);

/* The same with a small receive buffer (SO_RCVBUF before the connect): a
 * slow reader, whose replies wait in the server rather than in this kernel. */
int it_connect_rcvbuf(int port, int rcvbuf);

/* it_connect, failing the test (with the reason) when it cannot connect. */
int it_must_connect(int port);

/* One framed round trip of text (it_roundtrip), failing the test otherwise. */
void it_must_roundtrip(int fd, const char *text);

/* The local port of a connected socket, or -1. */
int it_local_port(int fd);

/* Send all n bytes (MSG_NOSIGNAL) within timeout_ms. 0 or -errno
 * (-ETIMEDOUT, -EPIPE, -ECONNRESET ...). Works on non-blocking sockets. */
int it_send_all(int fd, const void *buf, size_t n, int timeout_ms);

/* Receive exactly n bytes within timeout_ms. 0, -ECONNRESET when the peer
 * closed first (EOF), -ETIMEDOUT, or -errno. */
int it_recv_exact(int fd, void *buf, size_t n, int timeout_ms);

/* Read until EOF (or until cap bytes) within timeout_ms. Returns the number of
 * bytes read before a clean EOF, or -ETIMEDOUT / -ENOBUFS (cap reached before
 * EOF) / -ECONNRESET / -errno. */
ssize_t it_recv_until_eof(int fd, void *buf, size_t cap, int timeout_ms);

/* Wait up to timeout_ms for the peer to close with no more data. 0 on a
 * clean EOF (FIN), -ECONNRESET on a reset, -EPROTO if data arrived instead,
 * -ETIMEDOUT, or -errno. */
int it_expect_eof(int fd, int timeout_ms);

/* Wait until the peer's kernel has acknowledged every byte sent on fd
 * (SIOCOUTQ reaches 0): the data then sits in the server's receive queue,
 * whether or not the server has read it. 0 or -ETIMEDOUT / -errno. */
int it_wait_acked(int fd, int timeout_ms);

/* Framed mode: send one frame (header + payload). 0 or -errno. */
int it_send_frame(int fd, uint8_t type, const void *payload, size_t len, int timeout_ms);

/* Receive one frame into buf (cap bytes). Returns the payload length and sets
 * *type, or -EMSGSIZE if it does not fit, or what it_recv_exact returns. */
ssize_t it_recv_frame(int fd, uint8_t *type, void *buf, size_t cap, int timeout_ms);

/* Send a DATA frame and check its echo byte for byte. 0, -EBADMSG for a
 * different reply, or -errno. */
int it_roundtrip(int fd, const void *payload, size_t len, int timeout_ms);

/* Expect an error frame with this code, then EOF. 0, -EBADMSG (another
 * reply), -EPROTO (no EOF after it) or -errno. The reason text goes to
 * reason (cap bytes, NUL-terminated) when reason is not NULL. */
int it_expect_error_frame(int fd, int code, char *reason, size_t cap, int timeout_ms);

/* ---- the client binary ----------------------------------------------------- */

struct it_run {
    int exit_code;  /* 0..255; 128+N if killed by signal N; -1 timed out */
    char *out;      /* everything it wrote to stdout, NUL-terminated */
    char *err;      /* and to stderr */
};

/* Run path with the NULL-terminated argv (argv[0] included), stdin from
 * /dev/null, capturing stdout and stderr, killing it after timeout_ms.
 * Returns 0 or -errno if it could not be started; free r with it_run_free. */
int it_run(const char *path, const char *const *argv, int timeout_ms, struct it_run *r);
void it_run_free(struct it_run *r);

/* ---- the HTTP endpoint ----------------------------------------------------- */

/* A minimal HTTP/1.1 client for the server's endpoint: one request per
 * connection ("Connection: close"), the reply read until EOF. Not a general
 * client: no chunked decoding (the endpoint always sends Content-Length). */
struct it_http {
    int status;      /* from the status line */
    char *head;      /* the status line and headers, NUL-terminated */
    char *body;      /* everything after the blank line, NUL-terminated */
    size_t body_len; /* (a body may hold NUL bytes) */
};

#define IT_HTTP_MAX_REPLY (4u << 20) /* a longer reply is an error (-ENOBUFS) */

/* Send "METHOD TARGET HTTP/1.1" to 127.0.0.1:port, with Host and Connection
 * headers, then extra_headers (zero or more "Name: value\r\n" lines, or
 * NULL), then body with a Content-Length when body is not NULL. target goes
 * out verbatim, so hostile paths reach the server as written. Reads the reply
 * within timeout_ms. Returns 0 and fills *r (release with it_http_free), or
 * -errno: -ETIMEDOUT, -ENOBUFS, -EBADMSG (no status line), a connect error. */
int it_http_request(int port, const char *method, const char *target, const char *extra_headers,
                    const char *body, int timeout_ms, struct it_http *r);

/* GET target, IT_IO_TIMEOUT_MS. */
int it_http_get(int port, const char *target, struct it_http *r);

/* GET target from a chosen local address (e.g. "127.0.0.9") within
 * timeout_ms, as it_http_request. */
int it_http_get_from(const char *local_ip, int port, const char *target, int timeout_ms,
                     struct it_http *r);

/* The value of the first header called name (case-insensitive), copied to
 * out (cap bytes, NUL-terminated, surrounding blanks trimmed). Returns out,
 * or NULL when the reply has no such header. */
const char *it_http_header(const struct it_http *r, const char *name, char *out, size_t cap);

void it_http_free(struct it_http *r); /* NULL members are fine */

/* GET target and parse the body as JSON. Returns the document (json_decref
 * it), or NULL, with the reason on stderr, unless the reply is a 200 with a
 * JSON body. */
json_t *it_http_get_json(int port, const char *target);

/* it_http_get_json, failing the test when there is no document. */
json_t *it_must_get_json(int port, const char *target);

/* Poll the server's /metrics until the number at path (a counter's integer
 * or a gauge's real, see it_json_num) equals want, at most
 * IT_SETTLE_MS; returns the last document (json_decref it). Fails the test
 * when it never does. */
#define IT_SETTLE_MS 5000
json_t *it_wait_metric(const struct it_server *s, const char *path, long long want);

/* The value at a dotted path ("counters.messages_received_total.framed";
 * a numeric component indexes an array), or NULL. Borrowed reference. */
json_t *it_json_path(json_t *root, const char *dotted);

/* The integer at a dotted path, or -1 when it is missing or not an integer. */
long long it_json_int(json_t *root, const char *dotted);

/* The number at a dotted path (integer or real), or NAN. */
double it_json_num(json_t *root, const char *dotted);

/* The value of the Prometheus/OpenMetrics sample whose name and labels read
 * exactly series ('tcpmsg_errors_total{kind="http"}'), in text. false when
 * there is no such line or its value does not parse. */
bool it_prom_sample(const char *text, const char *series, double *value);

#endif
