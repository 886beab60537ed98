/* Integration: tcpmsgd's command line (help, bad options and their exit
 * status) and its JSON log format, checked line by line with a minimal JSON
 * reader. Each case runs alone: test_cli CASE.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "server/config.h"

#define T IT_IO_TIMEOUT_MS

/* Run tcpmsgd with argv (argv[0] included) and expect exit_code. */
static void run_server_cli(const char *const *argv, int exit_code, struct it_run *r)
{
    assert_int_equal(it_run(TCPMSGD_PATH, argv, T, r), 0);
    if (r->exit_code != exit_code)
        fail_msg("%s ...: exit %d, wanted %d\nstdout: %s\nstderr: %s", argv[1], r->exit_code,
                 exit_code, r->out, r->err);
}

/* Whether text holds option as a whole word: "--max-conns" must not be found
 * inside "--max-conns-per-ip" only. */
static bool mentions(const char *text, const char *option)
{
    size_t n = strlen(option);
    for (const char *p = text; (p = strstr(p, option)) != NULL; p += n)
        if ((p == text || (!isalnum((unsigned char)p[-1]) && p[-1] != '-')) &&
            (p[n] == ' ' || p[n] == ',' || p[n] == '\n' || p[n] == '='))
            return true;
    return false;
}

static void test_cli(void **state)
{
    (void)state;
    struct it_run r;
    const char *help[] = { "tcpmsgd", "--help", NULL };
    run_server_cli(help, 0, &r);
    /* Every option of the parser's own list (server/config.h), and its letter. */
    const char *name;
    char letter;
    for (size_t i = 0; (name = server_config_option(i, &letter)) != NULL; i++) {
        char opt[64] = "--", short_opt[3] = { '-', letter, '\0' };
        strncat(opt, name, sizeof opt - 3);
        if (!mentions(r.out, opt) || (letter != '\0' && !mentions(r.out, short_opt)))
            fail_msg("--help does not mention %s:\n%s", opt, r.out);
    }
    it_run_free(&r);

    const char *version[] = { "tcpmsgd", "-V", NULL };
    run_server_cli(version, 0, &r);
    IT_CHECK(strncmp(r.out, "tcpmsgd ", 8) == 0);
    it_run_free(&r);

    /* Bad options exit 2 with a message that names the culprit. The valid
     * --bind/--port keep a wrongly started server off real ports. */
    const char *bogus[] = { "tcpmsgd", "--bind", "127.0.0.1", "--port", "0", "--bogus", NULL };
    run_server_cli(bogus, 2, &r);
    assert_non_null(strstr(r.err, "--bogus"));
    it_run_free(&r);

    const char *port[] = { "tcpmsgd", "--bind", "127.0.0.1", "--port", "70000", NULL };
    run_server_cli(port, 2, &r);
    assert_non_null(strstr(r.err, "70000"));
    it_run_free(&r);

    const char *noval[] = { "tcpmsgd", "--bind", "127.0.0.1", "--port", NULL };
    run_server_cli(noval, 2, &r);
    assert_non_null(strstr(r.err, "--port"));
    it_run_free(&r);

    const char *format[] = { "tcpmsgd", "--bind", "127.0.0.1", "--port", "0", "--log-format", "xml",
                             NULL };
    run_server_cli(format, 2, &r);
    assert_non_null(strstr(r.err, "xml"));
    it_run_free(&r);
}

/* Regression: --bind 999.1.1.1 exited 1 (a failure to start) where every
 * other bad value exits 2; and "tcpmsg ::1:PORT" said "cannot resolve"
 * (or, with a port of four digits or fewer, connected to another address)
 * with no word about brackets. A bad value of any option, of either
 * program, exits 2 and names the option and the value. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *path, *args[8], *needle;
    } cases[] = {
        { TCPMSGD_PATH, { "--bind", "999.1.1.1", "--port", "0", "--no-http" }, "999.1.1.1" },
        { TCPMSGD_PATH, { "--bind", "127.0.0.1", "--port", "0", "--http-bind", "999.1.1.1" },
          "--http-bind" },
        { TCPMSGD_PATH, { "--bind", "nosuchhost.invalid", "--port", "0", "--no-http" },
          "nosuchhost.invalid" },
        { TCPMSGD_PATH, { "--bind", "127.0.0.1", "--port", "0", "--threads", "0" }, "--threads" },
        { TCPMSGD_PATH, { "--bind", "127.0.0.1", "--port", "0", "--drain-timeout", "soon" },
          "--drain-timeout" },
        { TCPMSGD_PATH, { "--bind", "127.0.0.1", "--port", "0", "--max-payload", "1X" },
          "--max-payload" },
        { TCPMSGD_PATH, { "--bind", "127.0.0.1", "--port", "0", "--io", "poll" }, "--io" },
        { TCPMSG_PATH, { "999.1.1.1", "hi" }, "999.1.1.1" },
        { TCPMSG_PATH, { "127.0.0.1:99999", "hi" }, "99999" },
        { TCPMSG_PATH, { "::1:8080", "hi" }, "[::1]:8080" },
        { TCPMSG_PATH, { "::1:33595", "hi" }, "[::1]:33595" },
        { TCPMSG_PATH, { "bench", "::1:33595" }, "[::1]:33595" },
        { TCPMSG_PATH, { "bench", "--plot", "/nonexistent/dir/x.svg", "127.0.0.1:1" }, "--plot" },
        { TCPMSG_PATH, { "bench", "--histogram-out", "/nonexistent/dir/h", "127.0.0.1:1" },
          "--histogram-out" },
        { TCPMSG_PATH, { "bench", "--rate", "-5", "127.0.0.1:1" }, "--rate" },
        { TCPMSG_PATH, { "probe", "--http-bind", "999.1.1.1", "127.0.0.1:1" }, "--http-bind" },
        { TCPMSG_PATH, { "--timeout", "0", "127.0.0.1:1", "hi" }, "--timeout" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[10] = { cases[i].path };
        for (size_t k = 0; k < 8 && cases[i].args[k] != NULL; k++)
            argv[k + 1] = cases[i].args[k];
        struct it_run r;
        assert_int_equal(it_run(cases[i].path, argv, T, &r), 0);
        if (r.exit_code != 2 || strstr(r.err, cases[i].needle) == NULL)
            fail_msg("%s %s %s ...: exit %d (want 2), stderr without '%s':\n%s", argv[0],
                     argv[1], argv[2], r.exit_code, cases[i].needle, r.err);
        it_run_free(&r);
    }
}

/* ---- a minimal JSON reader: enough to say "this line is one valid object" --- */

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

/* A JSON string; its raw (still escaped) text goes to out when out != NULL. */
static bool j_string(const char **p, char *out, size_t cap)
{
    if (**p != '"')
        return false;
    const char *s = ++*p;
    for (; **p != '"'; (*p)++) {
        unsigned char c = (unsigned char)**p;
        if (c < 0x20)
            return false; /* control bytes must be escaped; NUL ends the line */
        if (c != '\\')
            continue;
        (*p)++;
        if (**p == 'u') {
            for (int i = 1; i <= 4; i++) {
                if (!isxdigit((unsigned char)(*p)[i]))
                    return false;
            }
            *p += 4;
        } else if (strchr("\"\\/bfnrt", **p) == NULL || **p == '\0') {
            return false;
        }
    }
    if (out != NULL) {
        size_t n = (size_t)(*p - s) < cap - 1 ? (size_t)(*p - s) : cap - 1;
        memcpy(out, s, n);
        out[n] = '\0';
    }
    (*p)++;
    return true;
}

static bool j_number(const char **p)
{
    const char *s = *p;
    if (**p == '-')
        (*p)++;
    if (**p == '0') {
        (*p)++;
    } else {
        if (!isdigit((unsigned char)**p))
            return false;
        while (isdigit((unsigned char)**p))
            (*p)++;
    }
    if (**p == '.') {
        (*p)++;
        if (!isdigit((unsigned char)**p))
            return false;
        while (isdigit((unsigned char)**p))
            (*p)++;
    }
    if (**p == 'e' || **p == 'E') {
        (*p)++;
        if (**p == '+' || **p == '-')
            (*p)++;
        if (!isdigit((unsigned char)**p))
            return false;
        while (isdigit((unsigned char)**p))
            (*p)++;
    }
    return *p > s;
}

static bool j_value(const char **p, int depth);

/* An object or array body after its opening bracket. */
static bool j_members(const char **p, int depth, char close, bool keys)
{
    skip_ws(p);
    if (**p == close) {
        (*p)++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        if (keys) {
            if (!j_string(p, NULL, 0))
                return false;
            skip_ws(p);
            if (*(*p)++ != ':')
                return false;
        }
        if (!j_value(p, depth + 1))
            return false;
        skip_ws(p);
        char c = *(*p)++;
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static bool j_value(const char **p, int depth)
{
    skip_ws(p);
    if (depth > 16)
        return false;
    switch (**p) {
    case '"':
        return j_string(p, NULL, 0);
    case '{':
        (*p)++;
        return j_members(p, depth, '}', true);
    case '[':
        (*p)++;
        return j_members(p, depth, ']', false);
    case 't':
        return strncmp(*p, "true", 4) == 0 && (*p += 4, true);
    case 'f':
        return strncmp(*p, "false", 5) == 0 && (*p += 5, true);
    case 'n':
        return strncmp(*p, "null", 4) == 0 && (*p += 4, true);
    default:
        return j_number(p);
    }
}

/* The top-level fields a log line must carry. */
struct log_obj {
    char ts[64], level[16], msg[1024];
    long port; /* -1 when absent */
    int nts, nlevel, nmsg;
};

/* Parse one line as exactly one JSON object, collecting the known fields. */
static bool parse_log_line(const char *line, struct log_obj *o)
{
    memset(o, 0, sizeof *o);
    o->port = -1;
    const char *p = line;
    if (*p++ != '{')
        return false;
    for (;;) {
        char key[64];
        skip_ws(&p);
        if (!j_string(&p, key, sizeof key))
            return false;
        skip_ws(&p);
        if (*p++ != ':')
            return false;
        skip_ws(&p);
        char *dst = NULL;
        size_t cap = 0;
        if (strcmp(key, "ts") == 0 && *p == '"')
            dst = o->ts, cap = sizeof o->ts, o->nts++;
        else if (strcmp(key, "level") == 0 && *p == '"')
            dst = o->level, cap = sizeof o->level, o->nlevel++;
        else if (strcmp(key, "msg") == 0 && *p == '"')
            dst = o->msg, cap = sizeof o->msg, o->nmsg++;
        else if (strcmp(key, "port") == 0)
            o->port = strtol(p, NULL, 10);
        if (dst != NULL ? !j_string(&p, dst, cap) : !j_value(&p, 1))
            return false;
        skip_ws(&p);
        char c = *p++;
        if (c == '}')
            break;
        if (c != ',')
            return false;
    }
    return *p == '\0';
}

/* 2026-11-25T16:37:51.809383Z */
static bool is_timestamp(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (strlen(ts) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)ts[i]) : ts[i] != shape[i])
            return false;
    }
    return true;
}

static void test_cli_json_log(void **state)
{
    (void)state;
    const char *args[] = { "--log-format", "json", "-v", NULL };
    IT_START(s, args, 0);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0);
    /* A message that needs escaping: quotes, backslash, control and non-ASCII bytes. */
    static const char nasty[] = "say \"hi\" \\ \x01\t\n\x7f\xc3\xa9 end";
    assert_int_equal(it_roundtrip(fd, nasty, sizeof nasty - 1, T), 0);
    close(fd);
    IT_ASSERT_LOG(s, 1, T, "connection closed");
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    assert_int_equal(it_server_wait_exit(s, T), 0);

    char *log = it_log_read(s);
    assert_non_null(log);
    int lines = 0, bound = 0, messages = 0;
    for (char *line = log, *eol; *line != '\0'; line = eol + 1) {
        eol = strchr(line, '\n');
        if (eol == NULL)
            fail_msg("last log line has no newline: %s", line);
        *eol = '\0';
        struct log_obj o;
        if (!parse_log_line(line, &o))
            fail_msg("not one JSON object: %s", line);
        if (o.nts != 1 || o.nlevel != 1 || o.nmsg != 1)
            fail_msg("ts, level and msg must each appear once as strings: %s", line);
        if (!is_timestamp(o.ts))
            fail_msg("bad \"ts\": %s", line);
        if (strcmp(o.level, "debug") != 0 && strcmp(o.level, "info") != 0 &&
            strcmp(o.level, "warn") != 0 && strcmp(o.level, "error") != 0)
            fail_msg("bad \"level\": %s", line);
        if (strcmp(o.msg, "server socket bound") == 0) {
            bound++;
            assert_int_equal(o.port, s->port);
        }
        if (strncmp(o.msg, "message from 127.0.0.1:", 23) == 0)
            messages++;
        lines++;
    }
    free(log);
    assert_int_equal(bound, 1);
    assert_int_equal(messages, 1);
    /* bound, listening, opened, message, closed, shutting down, stopped */
    IT_CHECK(lines >= 7);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_cli_json_log),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
