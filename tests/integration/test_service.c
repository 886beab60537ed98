/* Integration: tcpmsgd as a systemd service, without systemd. The test
 * plays systemd's part: it owns the datagram socket NOTIFY_SOCKET names and
 * reads what tcpmsgd says there (READY=1, STATUS=, STOPPING=1), and it
 * passes a listening socket it made as descriptor 3 with LISTEN_FDS and
 * LISTEN_PID, as systemd does for a .socket unit.
 * Each case runs alone: test_service CASE. The program exits 77 (a skip)
 * when tcpmsgd was built without libsystemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"

#define T IT_IO_TIMEOUT_MS

/* ---- playing systemd: the notification socket ------------------------------ */

struct notify_sock {
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Bind a datagram socket at a fresh path and point NOTIFY_SOCKET at it, so
 * that the servers started from now on report to it. SO_PASSCRED: each
 * message carries its sender's pid, as systemd reads it (NotifyAccess=main
 * accepts the main process only). */
static void notify_open(struct notify_sock *n)
{
    static unsigned seq;
    const char *dir = getenv("TMPDIR");
    snprintf(n->path, sizeof n->path, "%s/tcpmsgd-notify.%d.%u",
             dir != NULL && *dir != '\0' ? dir : "/tmp", (int)getpid(), seq++);
    unlink(n->path);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(n->fd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, n->path, strlen(n->path) + 1);
    int one = 1;
    assert_int_equal(setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", n->path, 1);
}

static void notify_close(struct notify_sock *n)
{
    unsetenv("NOTIFY_SOCKET");
    close(n->fd);
    unlink(n->path);
}

/* The next message (NUL-terminated in buf) and the pid that sent it, within
 * timeout_ms (0: only one already queued). Its length, or -ETIMEDOUT. */
static int notify_recv(const struct notify_sock *n, char *buf, size_t cap, pid_t *from,
                       int timeout_ms)
{
    struct pollfd p = { .fd = n->fd, .events = POLLIN };
    int r;
    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (r <= 0)
        return -ETIMEDOUT;
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = cap - 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                        .msg_controllen = sizeof ctl };
    ssize_t len = recvmsg(n->fd, &m, MSG_DONTWAIT);
    if (len < 0)
        return -errno;
    buf[len] = '\0';
    *from = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *from = cred.pid;
        }
    }
    return (int)len;
}

/* One "STATUS=connections=N messages=M messages/s=R" line, parsed. */
struct status {
    unsigned conns;
    unsigned long long msgs;
    double rate;
};

static bool parse_status(const char *msg, struct status *st)
{
    int end = -1;
    sscanf(msg, "STATUS=connections=%u messages=%llu messages/s=%lf%n", &st->conns, &st->msgs,
           &st->rate, &end);
    return end > 0 && msg[end] == '\0';
}

/* ---- the sd_notify messages ------------------------------------------------ */

#define STATUS_CLIENTS 3
#define STATUS_ROUNDS 4

/* READY=1 first, from tcpmsgd itself (in fork mode: the parent, never a
 * child), once it serves; then status lines whose numbers are the
 * connections open and the messages received; STOPPING=1 with the drain;
 * and nothing after. */
static void test_notify_sequence(void **state)
{
    (void)state;
    struct notify_sock ns;
    notify_open(&ns);
    setenv("TCPMSGD_STATUS_INTERVAL", "0.1", 1);
    IT_START(s, NULL, 0);
    unsetenv("TCPMSGD_STATUS_INTERVAL");
    char msg[512];
    pid_t from;
    assert_true(notify_recv(&ns, msg, sizeof msg, &from, T) > 0);
    assert_string_equal(msg, "READY=1");
    assert_int_equal(from, s->pid);

    int fds[STATUS_CLIENTS];
    for (int c = 0; c < STATUS_CLIENTS; c++) {
        fds[c] = it_must_connect(s->port);
        for (int i = 0; i < STATUS_ROUNDS; i++)
            it_must_roundtrip(fds[c], "counted");
    }
    /* Status lines until one shows every connection and message with none
     * new since the line before. The count never goes back, and the rate is
     * above 0 exactly when the count grew. */
    const unsigned long long want = STATUS_CLIENTS * STATUS_ROUNDS;
    struct status st = { 0 };
    unsigned long long prev = 0;
    bool settled = false;
    for (int n = 0; n < 300 && !settled; n++) {
        assert_true(notify_recv(&ns, msg, sizeof msg, &from, T) > 0);
        assert_int_equal(from, s->pid);
        if (!parse_status(msg, &st))
            fail_msg("not a status line: '%s'", msg);
        IT_CHECK(st.msgs >= prev && st.msgs <= want);
        IT_CHECK(st.conns <= STATUS_CLIENTS);
        IT_CHECK((st.rate > 0) == (st.msgs > prev));
        settled = st.conns == STATUS_CLIENTS && st.msgs == want && st.rate == 0;
        prev = st.msgs;
    }
    if (!settled)
        fail_msg("no status line with %d connections and %llu messages: last '%s'", STATUS_CLIENTS,
                 want, msg);

    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int n = 0;
    do { /* status lines sent before the signal came */
        assert_true(notify_recv(&ns, msg, sizeof msg, &from, T) > 0);
        assert_int_equal(from, s->pid);
    } while (strncmp(msg, "STATUS=", 7) == 0 && ++n < 100);
    assert_string_equal(msg, "STOPPING=1\nSTATUS=draining connections=3");
    for (int c = 0; c < STATUS_CLIENTS; c++)
        close(fds[c]);
    assert_int_equal(it_server_wait_exit(s, 10000), 0);
    /* Gone, and nothing more said after STOPPING=1. */
    assert_int_equal(notify_recv(&ns, msg, sizeof msg, &from, 0), -ETIMEDOUT);
    it_server_free(s);
    notify_close(&ns);
}

/* The argv of a tcpmsgd run to its end with it_run: the harness's usual
 * arguments (mode, backend) and extra, behind a wrapper when there is one. */
static void server_argv(const char **argv, size_t cap, const char *const *wrapper,
                        const char *const *extra)
{
    size_t n = 0;
    for (size_t i = 0; wrapper != NULL && wrapper[i] != NULL; i++)
        argv[n++] = wrapper[i];
    const char *const fixed[] = { TCPMSGD_PATH, "--bind", "127.0.0.1", "--port", "0",
                                  "--io", it_io(), "--mode", it_mode() };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = extra[i];
    assert_true(n < cap);
    argv[n] = NULL;
}

/* A start that fails says nothing to systemd: READY=1 only comes once
 * everything is up, and here the HTTP endpoint (the last to start, after
 * the workers) cannot bind. */
static void test_no_ready_when_start_fails(void **state)
{
    (void)state;
    struct notify_sock ns;
    notify_open(&ns);
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(taken, 1), 0);
    assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &len), 0);
    char port[16];
    snprintf(port, sizeof port, "%u", ntohs(sa.sin_port));

    const char *extra[] = { "--http-port", port, NULL }, *argv[32];
    server_argv(argv, 32, NULL, extra);
    struct it_run r;
    assert_int_equal(it_run(TCPMSGD_PATH, argv, 10000, &r), 0);
    if (r.exit_code != 1 || strstr(r.err, "cannot start the HTTP endpoint") == NULL)
        fail_msg("expected exit 1 for the HTTP port in use, got %d:\n%s", r.exit_code, r.err);
    char msg[512];
    pid_t from;
    int got = notify_recv(&ns, msg, sizeof msg, &from, 0);
    if (got != -ETIMEDOUT)
        fail_msg("a failed start notified systemd: '%s'", msg);
    it_run_free(&r);
    close(taken);
    notify_close(&ns);
}

/* ---- socket activation ------------------------------------------------------ */

/* What systemd does between its fork and exec: the variables naming this
 * process (the wrapper's pid is tcpmsgd's once it execs). */
static const char *const activate[] = {
    "sh", "-c", "export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$@\"", "sh", NULL
};

/* Put fd at descriptor 3, inherited across exec (systemd passes its
 * sockets from 3 on). The test itself holds nothing there before: what
 * this process may have inherited at 3 from its own parent (ctest leaves a
 * descriptor open) is not the test's, and is replaced. */
static void at_fd3(int fd)
{
    assert_true(fd >= 0);
    if (fd != 3) {
        assert_int_equal(dup2(fd, 3), 3);
        close(fd);
    }
    assert_int_equal(fcntl(3, F_SETFD, 0), 0); /* not close-on-exec */
}

/* A listening socket on 127.0.0.1, an ephemeral port, at descriptor 3:
 * the socket systemd would hold for tcpmsgd.socket. Returns the port. */
static int hand_made_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    at_fd3(fd);
    return ntohs(sa.sin_port);
}

/* A client that connects and sends while no tcpmsgd runs: the kernel
 * completes its handshake and queues it in the listener's backlog. */
static int queued_client(int port, const char *text)
{
    int fd = it_must_connect(port);
    assert_int_equal(it_send_frame(fd, FRAME_DATA, text, strlen(text), T), 0);
    return fd;
}

static void expect_echo(int fd, const char *text)
{
    char buf[64];
    uint8_t type;
    ssize_t n = it_recv_frame(fd, &type, buf, sizeof buf, T);
    if (n != (ssize_t)strlen(text) || type != FRAME_DATA || memcmp(buf, text, (size_t)n) != 0)
        fail_msg("no echo of '%s' (got %zd)", text, n);
}

#define ACTIVATION_CLIENTS 20

/* In a sanitizer build, fork mode's children cannot be trusted with a
 * client queued before the start. A child forked while another thread of
 * tcpmsgd allocates inherits the sanitizer allocator's lock held, and waits
 * for it for ever at its first malloc: the sanitizers' allocators are not
 * made safe across fork() as glibc's malloc is. A queued client is forked
 * off at once, while the main thread still starts the HTTP endpoint, so
 * there the clients connect only once tcpmsgd is up (the release build
 * checks the queued ones). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_BUILD true
#else
#define SANITIZED_BUILD false
#endif

/* tcpmsgd serves the socket it is given, on its port, not one of its own:
 * the client that connected before it started is answered, so are new
 * ones (every worker shares the socket), and after a restart the client
 * that connected while no tcpmsgd ran is answered by the next one. */
static void test_activation_passed_socket(void **state)
{
    (void)state;
    bool queue = !(it_fork_mode() && SANITIZED_BUILD);
    if (!queue)
        fprintf(stderr, "note: sanitizer build in fork mode: no client queued before a start\n");
    int port = hand_made_listener();
    int early = queue ? queued_client(port, "before the start") : -1;
    /* Several workers share the one socket (fork mode has one). */
    const char *args[] = { "--threads", "3", NULL };
    struct it_server *s = it_server_start_wrapped(activate, it_fork_mode() ? NULL : args, 0);
    if (s == NULL)
        fail_msg("tcpmsgd did not start with the passed socket");
    assert_int_equal(s->port, port);
    IT_ASSERT_LOG(s, 1, T, "server socket bound", "by=systemd", "fd=3");
    if (!queue)
        early = queued_client(port, "before the start");
    expect_echo(early, "before the start");
    close(early);
    for (int i = 0; i < ACTIVATION_CLIENTS; i++) {
        int fd = it_must_connect(port);
        it_must_roundtrip(fd, "after the start");
        close(fd);
    }
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    assert_int_equal(it_server_wait_exit(s, 10000), 0);
    char accepted[32];
    snprintf(accepted, sizeof accepted, "accepted=%d", ACTIVATION_CLIENTS + 1);
    IT_ASSERT_LOG(s, 1, T, "totals", accepted);
    it_server_free(s);

    /* The restart: descriptor 3 stayed open here, as it does in systemd. */
    int between = queue ? queued_client(port, "between two runs") : -1;
    s = it_server_start_wrapped(activate, NULL, 0);
    if (s == NULL)
        fail_msg("tcpmsgd did not start again with the passed socket");
    if (!queue)
        between = queued_client(port, "between two runs");
    expect_echo(between, "between two runs");
    close(between);
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    assert_int_equal(it_server_wait_exit(s, 10000), 0);
    IT_ASSERT_LOG(s, 1, T, "totals", "accepted=1");
    it_server_free(s);
    close(3);
}

/* LISTEN_PID naming another process (variables inherited through a program
 * that did not clear them): the socket is not tcpmsgd's to take, and it
 * binds its own as usual. */
static void test_activation_for_another_pid(void **state)
{
    (void)state;
    int port = hand_made_listener();
    const char *const other[] = { "sh", "-c", "export LISTEN_FDS=1 LISTEN_PID=1; exec \"$@\"",
                                  "sh", NULL };
    struct it_server *s = it_server_start_wrapped(other, NULL, 0);
    if (s == NULL)
        fail_msg("tcpmsgd did not start");
    IT_CHECK(s->port != port);
    assert_int_equal(it_log_count(s, "by=systemd", (const char *)NULL), 0);
    int fd = it_must_connect(s->port);
    it_must_roundtrip(fd, "on its own port");
    close(fd);
    it_server_free(s);
    close(3);
}

/* A descriptor 3 that is not a listening TCP socket (here UDP) is refused
 * with the reason: tcpmsgd does not bind a port of its own instead. */
static void test_activation_refuses_udp(void **state)
{
    (void)state;
    at_fd3(socket(AF_INET, SOCK_DGRAM, 0));
    const char *argv[32];
    server_argv(argv, 32, activate, (const char *const[]){ "--http-port", "0", NULL });
    struct it_run r;
    assert_int_equal(it_run("/bin/sh", argv, 10000, &r), 0);
    if (r.exit_code != 1 || strstr(r.err, "descriptor 3 is not a listening TCP socket") == NULL)
        fail_msg("expected exit 1 refusing descriptor 3, got %d:\n%s", r.exit_code, r.err);
    IT_CHECK(strstr(r.err, "server is listening") == NULL);
    it_run_free(&r);
    close(3);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_sequence),
        cmocka_unit_test(test_no_ready_when_start_fails),
        cmocka_unit_test(test_activation_passed_socket),
        cmocka_unit_test(test_activation_for_another_pid),
        cmocka_unit_test(test_activation_refuses_udp),
    };
#ifndef TCPMSG_HAVE_SYSTEMD
    fprintf(stderr, "SKIP: tcpmsgd was built without libsystemd (TCPMSG_SYSTEMD off): "
                    "no sd_notify, no socket activation\n");
    return 77;
#endif
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
