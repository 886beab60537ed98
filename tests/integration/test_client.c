/* Integration: the tcpmsg client against a real tcpmsgd: its output line per
 * reply and its exit status for each kind of failure (docs: CLI contract).
 * Each case runs alone: test_client CASE.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define T IT_IO_TIMEOUT_MS
#define CLIENT_TIMEOUT_MS 10000

/* Check that line (up to its '\n') reads exactly
 * "reply from 127.0.0.1:PORT in <number> us: MESSAGE". Returns the next line. */
static const char *expect_reply_line(const char *line, int port, const char *message)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "reply from 127.0.0.1:%d in ", port);
    const char *eol = strchr(line, '\n');
    if (eol == NULL || strncmp(line, prefix, (size_t)n) != 0)
        fail_msg("not a reply line for port %d: '%s'", port, line);
    const char *p = line + n;
    const char *num = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (p > num && *p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (p == num || !isdigit((unsigned char)p[-1]))
        fail_msg("no round-trip time in '%.*s'", (int)(eol - line), line);
    if (strncmp(p, " us: ", 5) != 0 || (size_t)(eol - p - 5) != strlen(message) ||
        strncmp(p + 5, message, strlen(message)) != 0)
        fail_msg("reply line '%.*s' does not end in ' us: %s'", (int)(eol - line), line, message);
    return eol + 1;
}

static void run_client(const char *const *argv, struct it_run *r)
{
    int rc = it_run(TCPMSG_PATH, argv, CLIENT_TIMEOUT_MS, r);
    if (rc != 0)
        fail_msg("cannot run %s: %s", TCPMSG_PATH, strerror(-rc));
}

static void expect_exit(const char *const *argv, int code)
{
    struct it_run r;
    run_client(argv, &r);
    if (r.exit_code != code)
        fail_msg("tcpmsg %s %s: exit %d, wanted %d\nstdout: %s\nstderr: %s", argv[1],
                 argv[2] != NULL ? argv[2] : "", r.exit_code, code, r.out, r.err);
    if (code != 0 && r.err[0] == '\0')
        fail_msg("tcpmsg %s: exit %d without a message on stderr", argv[1], code);
    it_run_free(&r);
}

static void test_roundtrip_client(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", target, "Hello", "second message", NULL };
    struct it_run r;
    run_client(argv, &r);
    if (r.exit_code != 0)
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.exit_code, r.out, r.err);
    const char *next = expect_reply_line(r.out, s->port, "Hello");
    next = expect_reply_line(next, s->port, "second message");
    assert_string_equal(next, ""); /* nothing else */
    it_run_free(&r);
    IT_ASSERT_LOG(s, 1, T, "connection closed", "mode=framed msgs_in=2 msgs_out=2");
    it_server_free(s);
}

static void test_client_text(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", "--text", target, "Hello from client!", NULL };
    struct it_run r;
    run_client(argv, &r);
    if (r.exit_code != 0)
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.exit_code, r.out, r.err);
    assert_string_equal(expect_reply_line(r.out, s->port, "Hello from client!"), "");
    it_run_free(&r);
    IT_ASSERT_LOG(s, 1, T, "connection closed", "mode=text msgs_in=1 msgs_out=1");
    it_server_free(s);
}

/* A loopback socket bound to a port: listening (connections wait in its
 * backlog, never answered) or not (connections are refused). */
static int loopback_socket(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_CHECK(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        assert_int_equal(listen(fd, 8), 0);
    *port = it_local_port(fd);
    IT_CHECK(*port > 0);
    return fd;
}

static void test_client_exit_codes(void **state)
{
    (void)state;
    char target[32];
    int port;

    /* Bound but not listening: while we hold it, nobody else takes the port
     * and a connection is refused. */
    int closed = loopback_socket(false, &port);
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    const char *refused[] = { "tcpmsg", target, "Hello", NULL };
    expect_exit(refused, 3);

    const char *bad_ip[] = { "tcpmsg", "999.1.1.1:1", "Hello", NULL };
    expect_exit(bad_ip, 2);
    const char *not_addr[] = { "tcpmsg", "not an address!!", "Hello", NULL };
    expect_exit(not_addr, 2);
    const char *bad_port[] = { "tcpmsg", "127.0.0.1:70000", "Hello", NULL };
    expect_exit(bad_port, 2);
    /* A usage error wins over the unreachable target (which would be 3). */
    const char *bad_opt[] = { "tcpmsg", "--bogus", target, "Hello", NULL };
    expect_exit(bad_opt, 2);
    close(closed);

    /* Accepted by the kernel, never answered: the client's own timeout. */
    int mute = loopback_socket(true, &port);
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    const char *timeout[] = { "tcpmsg", "--timeout", "1", target, "Hello", NULL };
    expect_exit(timeout, 4);
    close(mute);

    /* The server refuses the message with an error frame: exit 6, reason on stderr. */
    const char *args[] = { "--max-payload", "4", NULL };
    IT_START(s, args, 0);
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    const char *too_big[] = { "tcpmsg", target, "Hello", NULL };
    struct it_run r;
    run_client(too_big, &r);
    if (r.exit_code != 6)
        fail_msg("exit %d, wanted 6\nstdout: %s\nstderr: %s", r.exit_code, r.out, r.err);
    assert_non_null(strstr(r.err, "exceeds the limit of 4 bytes"));
    it_run_free(&r);
    it_server_free(s);
}

/* Run tcpmsg with argv on a pseudo-terminal (its stdin, stdout and stderr
 * all the terminal), collecting what it wrote into out (cap bytes,
 * NUL-terminated) within CLIENT_TIMEOUT_MS. Returns its exit code. */
static int run_on_pty(const char *const *argv, char *out, size_t cap)
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    IT_CHECK(pid >= 0);
    if (pid == 0) {
        execv(TCPMSG_PATH, (char *const *)argv);
        _exit(127);
    }
    size_t got = 0;
    int64_t deadline = it_now_ms() + CLIENT_TIMEOUT_MS;
    while (got + 1 < cap && it_now_ms() < deadline) {
        struct pollfd p = { .fd = master, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(master, out + got, cap - 1 - got);
        if (n <= 0)
            break; /* EIO once the child has exited and the terminal is gone */
        got += (size_t)n;
    }
    out[got] = '\0';
    close(master);
    int status = 0;
    pid_t done = 0; /* the terminal closes a moment before the exit is reported */
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && it_now_ms() < deadline)
        it_sleep_ms(10);
    if (done != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("tcpmsg on a terminal did not finish: %s", out);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Regression: the client printed replies raw, so a reply carrying escape
 * sequences (here: red text, a bell, a C1 CSI, a byte that is not UTF-8)
 * acted on the user's terminal. On a terminal they are escaped, UTF-8 text
 * is kept; through a pipe the bytes stay exactly what the server sent. */
static void test_reply_escaped_on_tty(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
    static const char msg[] = "\x1b[31mred\x1b[0m bell\a caf\xc3\xa9 \xff \xc2\x9b end";
    const char *argv[] = { "tcpmsg", target, msg, NULL };
    char out[4096];
    int code = run_on_pty(argv, out, sizeof out);
    if (code != 0)
        fail_msg("exit %d on a terminal: %s", code, out);
    /* The terminal turns the final LF into CR LF. */
    if (strstr(out, " us: \\e[31mred\\e[0m bell\\x07 caf\xc3\xa9 \\xff \\xc2\\x9b end\r\n") == NULL)
        fail_msg("reply not escaped for the terminal: '%s'", out);
    IT_CHECK(strchr(out, 0x1b) == NULL && strchr(out, '\a') == NULL);

    struct it_run r;
    run_client(argv, &r);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(expect_reply_line(r.out, s->port, msg), "");
    it_run_free(&r);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_client),
        cmocka_unit_test(test_client_text),
        cmocka_unit_test(test_client_exit_codes),
        cmocka_unit_test(test_reply_escaped_on_tty),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
