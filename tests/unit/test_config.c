/* Unit tests for the command lines: tcpmsgd's (server/config) and tcpmsg's
 * (client/client_config) parsers, defaults, errors, help and version, plus the
 * value parsers they share (opt.h) and net.h's address splitting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client_config.h"
#include "server/config.h"
#include "tcpmsg/log.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The most arguments one case passes after the program name. */
#define MAX_ARGS 32

/* A NULL-terminated argument list (without argv[0]), e.g.
 * ARGS("--port", "1"); NO_ARGS is the empty one. */
#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NO_ARGS ((const char *const[]){ NULL })

/* What a parse printed on its out and err streams, NUL-terminated.
 * Released with capture_free, which leaves it ready for the next run. */
struct capture {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
};

static void capture_free(struct capture *c)
{
    free(c->out);
    free(c->err);
    *c = (struct capture){ 0 };
}

/* Opens the two memory streams a parse writes to. */
static void capture_open(struct capture *c, FILE **out, FILE **err)
{
    capture_free(c);
    *out = open_memstream(&c->out, &c->out_len);
    *err = open_memstream(&c->err, &c->err_len);
    assert_non_null(*out);
    assert_non_null(*err);
}

/* Closes them: out, err and their lengths are then final. */
static void capture_close(FILE *out, FILE *err)
{
    assert_int_equal(fclose(out), 0);
    assert_int_equal(fclose(err), 0);
}

/* Fills argv with name, then args, then NULL. Returns argc. The strings are
 * not written to, but getopt may reorder the pointers, hence char **. */
static int build_argv(char **argv, const char *name, const char *const *args)
{
    int argc = 0;
    argv[argc++] = (char *)name;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(i < MAX_ARGS);
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    return argc;
}

/* Parses "tcpmsgd args..." into cfg, which starts from the defaults. */
static enum config_result run_server(struct server_config *cfg, const char *const *args,
                                     struct capture *c)
{
    char *argv[MAX_ARGS + 2];
    int argc = build_argv(argv, "tcpmsgd", args);
    FILE *out, *err;
    capture_open(c, &out, &err);
    server_config_defaults(cfg);
    enum config_result rc = server_config_parse(cfg, argc, argv, out, err);
    capture_close(out, err);
    return rc;
}

/* Parses "tcpmsg args..." into cfg, which starts from the defaults. argv
 * (MAX_ARGS + 2 entries) belongs to the caller because cfg->messages points
 * into it. */
static enum client_config_result run_client(struct client_config *cfg, char **argv,
                                            const char *const *args, struct capture *c)
{
    int argc = build_argv(argv, "tcpmsg", args);
    FILE *out, *err;
    capture_open(c, &out, &err);
    client_config_defaults(cfg);
    enum client_config_result rc = client_config_parse(cfg, argc, argv, out, err);
    capture_close(out, err);
    return rc;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("'%s' does not contain '%s'", haystack, needle);
}

/* ---- server: defaults and every option ----------------------------------- */

static void test_server_defaults(void **state)
{
    (void)state;
    struct server_config cfg;
    server_config_defaults(&cfg);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_string_equal(cfg.bind_addr, "0.0.0.0");
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.threads, cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.backlog, 1024);
    assert_int_equal(cfg.max_conns, 10000);
    assert_int_equal(cfg.max_conns_per_ip, 4096);
    assert_int_equal(cfg.max_payload, 1048576);
    assert_int_equal(cfg.max_pending_output, 4 << 20);
    assert_true(cfg.idle_timeout == 300);
    assert_true(cfg.frame_timeout == 30);
    assert_true(cfg.write_timeout == 30);
    assert_true(cfg.drain_timeout == 5);
    assert_true(cfg.rtt_reports);
    assert_string_equal(cfg.http_bind, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8081);
    assert_true(cfg.http_enabled);
#ifdef TCPMSG_WEB_ROOT
    assert_string_equal(cfg.web_root, TCPMSG_WEB_ROOT);
#else
    /* The build sets the default on the library only: it is there, whatever it is. */
    assert_true(cfg.web_root[0] != '\0');
    assert_non_null(memchr(cfg.web_root, '\0', sizeof cfg.web_root));
#endif
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(cfg.log_level, LOG_INFO);
}

static void test_server_no_arguments_keeps_defaults(void **state)
{
    (void)state;
    struct server_config cfg, defaults;
    struct capture c = { 0 };
    server_config_defaults(&defaults);
    assert_int_equal(run_server(&cfg, NO_ARGS, &c), CONFIG_OK);
    assert_memory_equal(&cfg, &defaults, sizeof cfg);
    assert_int_equal(c.out_len, 0);
    assert_int_equal(c.err_len, 0);
    capture_free(&c);
}

enum field_kind { F_U16, F_UNSIGNED, F_SIZE, F_U64, F_DOUBLE };

static double field_value(const struct server_config *cfg, enum field_kind kind, size_t off)
{
    const char *p = (const char *)cfg + off;
    switch (kind) {
    case F_U16:
        return *(const uint16_t *)(const void *)p;
    case F_UNSIGNED:
        return *(const unsigned *)(const void *)p;
    case F_SIZE:
        return (double)*(const size_t *)(const void *)p;
    case F_U64:
        return (double)*(const uint64_t *)(const void *)p;
    case F_DOUBLE:
        return *(const double *)(const void *)p;
    }
    return -1;
}

#define FIELD(kind, name) kind, offsetof(struct server_config, name)

static void test_server_numeric_options_set_their_field(void **state)
{
    (void)state;
    static const struct {
        const char *opt;
        const char *value;
        enum field_kind kind;
        size_t off;
        double want;
    } cases[] = {
        { "--port", "9000", FIELD(F_U16, port), 9000 },
        { "--port", "0", FIELD(F_U16, port), 0 },
        { "--port", "65535", FIELD(F_U16, port), 65535 },
        { "--http-port", "9001", FIELD(F_U16, http_port), 9001 },
        { "--http-port", "0", FIELD(F_U16, http_port), 0 },
        { "--http-port", "65535", FIELD(F_U16, http_port), 65535 },
        { "--backlog", "16", FIELD(F_UNSIGNED, backlog), 16 },
        { "--threads", "1", FIELD(F_UNSIGNED, threads), 1 },
        { "--threads", "256", FIELD(F_UNSIGNED, threads), 256 },
        { "--max-conns", "5", FIELD(F_UNSIGNED, max_conns), 5 },
        { "--max-conns-per-ip", "7", FIELD(F_UNSIGNED, max_conns_per_ip), 7 },
        { "--max-payload", "4096", FIELD(F_SIZE, max_payload), 4096 },
        { "--max-payload", "64KiB", FIELD(F_SIZE, max_payload), 65536 },
        { "--max-payload", "64k", FIELD(F_SIZE, max_payload), 65536 },
        { "--max-payload", "1M", FIELD(F_SIZE, max_payload), 1048576 },
        { "--max-payload", "2MiB", FIELD(F_SIZE, max_payload), 2097152 },
        { "--max-payload", "16777215", FIELD(F_SIZE, max_payload), 16777215 },
        { "--max-payload", "1", FIELD(F_SIZE, max_payload), 1 },
        { "--max-pending-output", "8MiB", FIELD(F_SIZE, max_pending_output), 8 << 20 },
        { "--max-pending-output", "1G", FIELD(F_SIZE, max_pending_output), 1 << 30 },
        { "--max-pending-output", "1K", FIELD(F_SIZE, max_pending_output), 1024 },
        { "--max-buffer-memory", "64KiB", FIELD(F_U64, max_buffer_memory), 65536 },
        { "--max-buffer-memory", "8MiB", FIELD(F_U64, max_buffer_memory), 8 << 20 },
        { "--max-buffer-memory", "2GiB", FIELD(F_U64, max_buffer_memory), 2147483648.0 },
        { "--memory-grace", "0", FIELD(F_DOUBLE, memory_grace), 0 },
        { "--memory-grace", "0.5", FIELD(F_DOUBLE, memory_grace), 0.5 },
        { "--idle-timeout", "0.5", FIELD(F_DOUBLE, idle_timeout), 0.5 },
        { "--idle-timeout", "0", FIELD(F_DOUBLE, idle_timeout), 0 },
        { "--frame-timeout", "1.25", FIELD(F_DOUBLE, frame_timeout), 1.25 },
        { "--write-timeout", "86400", FIELD(F_DOUBLE, write_timeout), 86400 },
        { "--drain-timeout", "0.001", FIELD(F_DOUBLE, drain_timeout), 0.001 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct server_config cfg;
        struct capture c = { 0 };
        enum config_result rc = run_server(&cfg, ARGS(cases[i].opt, cases[i].value), &c);
        if (rc != CONFIG_OK)
            fail_msg("%s %s: %s", cases[i].opt, cases[i].value, c.err);
        assert_true(field_value(&cfg, cases[i].kind, cases[i].off) == cases[i].want);
        assert_int_equal(c.err_len, 0);
        capture_free(&c);
    }
}

static void test_server_text_options_set_their_field(void **state)
{
    (void)state;
    struct server_config cfg;
    struct capture c = { 0 };
    assert_int_equal(run_server(&cfg, ARGS("--bind", "::", "--log-format", "json",
                                           "--log-level", "warn"), &c),
                     CONFIG_OK);
    assert_string_equal(cfg.bind_addr, "::");
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg.log_level, LOG_WARN);
    capture_free(&c);

    /* --opt=value works as well as --opt value. */
    assert_int_equal(run_server(&cfg, ARGS("--bind=127.0.0.1", "--port=1", "--log-level=error",
                                           "--log-format=text"), &c),
                     CONFIG_OK);
    assert_string_equal(cfg.bind_addr, "127.0.0.1");
    assert_int_equal(cfg.port, 1);
    assert_int_equal(cfg.log_level, LOG_ERROR);
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    capture_free(&c);

    /* The HTTP endpoint's options. */
    assert_int_equal(run_server(&cfg, ARGS("--http-bind", "::1", "--web-root", "/srv/www",
                                           "--no-http"), &c),
                     CONFIG_OK);
    assert_string_equal(cfg.http_bind, "::1");
    assert_string_equal(cfg.web_root, "/srv/www");
    assert_false(cfg.http_enabled);
    assert_string_equal(cfg.bind_addr, "0.0.0.0"); /* --http-bind is not --bind */
    capture_free(&c);
    assert_int_equal(run_server(&cfg, ARGS("--http-bind=0.0.0.0", "--web-root=web"), &c),
                     CONFIG_OK);
    assert_string_equal(cfg.http_bind, "0.0.0.0");
    assert_string_equal(cfg.web_root, "web");
    assert_true(cfg.http_enabled);
    capture_free(&c);

    static const struct { const char *name; enum log_level level; } levels[] = {
        { "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "warn", LOG_WARN }, { "error", LOG_ERROR },
    };
    for (size_t i = 0; i < ARRAY_LEN(levels); i++) {
        assert_int_equal(run_server(&cfg, ARGS("--log-level", levels[i].name), &c), CONFIG_OK);
        assert_int_equal(cfg.log_level, levels[i].level);
        capture_free(&c);
    }
}

/* --rtt-reports accept|ignore, nothing else. */
static void test_server_rtt_reports(void **state)
{
    (void)state;
    struct server_config cfg;
    struct capture c = { 0 };
    assert_int_equal(run_server(&cfg, ARGS("--rtt-reports", "ignore"), &c), CONFIG_OK);
    assert_false(cfg.rtt_reports);
    capture_free(&c);
    assert_int_equal(run_server(&cfg, ARGS("--rtt-reports=ignore", "--rtt-reports", "accept"), &c),
                     CONFIG_OK);
    assert_true(cfg.rtt_reports); /* the last one wins */
    capture_free(&c);
    static const char *const bad[] = { "", "Accept", "off", "yes", "accept ", "1" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(run_server(&cfg, ARGS("--rtt-reports", bad[i]), &c), CONFIG_ERROR);
        assert_contains(c.err, "--rtt-reports");
        assert_contains(c.err, "is not one of accept, ignore");
        capture_free(&c);
    }
    assert_int_equal(run_server(&cfg, ARGS("--rtt-reports"), &c), CONFIG_ERROR);
    assert_contains(c.err, "--rtt-reports needs a value");
    capture_free(&c);
}

static void test_server_verbose_sets_debug(void **state)
{
    (void)state;
    const char *const *const cases[] = {
        ARGS("-v"), ARGS("--verbose"), ARGS("--log-level", "error", "-v"),
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct server_config cfg;
        struct capture c = { 0 };
        assert_int_equal(run_server(&cfg, cases[i], &c), CONFIG_OK);
        assert_int_equal(cfg.log_level, LOG_DEBUG);
        capture_free(&c);
    }
    /* The last word wins. */
    struct server_config cfg;
    struct capture c = { 0 };
    assert_int_equal(run_server(&cfg, ARGS("-v", "--log-level", "warn"), &c), CONFIG_OK);
    assert_int_equal(cfg.log_level, LOG_WARN);
    capture_free(&c);
}

/* ---- server: errors ------------------------------------------------------- */

static void test_server_bad_values_are_errors_naming_the_option(void **state)
{
    (void)state;
    const struct { const char *const *args; const char *needle; } cases[] = {
        { ARGS("--port", "http"), "--port" },
        { ARGS("--port", "70000"), "--port" },
        { ARGS("--port", "65536"), "--port" },
        { ARGS("--port", "-1"), "--port" },
        { ARGS("--port", ""), "--port" },
        { ARGS("--port", "80x"), "--port" },
        { ARGS("--port", " 80"), "--port" },
        { ARGS("--port", "+80"), "--port" },
        { ARGS("--port", "99999999999999999999999"), "--port" },
        { ARGS("--backlog", "0"), "--backlog" },
        { ARGS("--threads", "0"), "--threads" },
        { ARGS("--threads", "257"), "--threads" },
        { ARGS("--threads", "2.5"), "--threads" },
        { ARGS("--max-conns", "0"), "--max-conns" },
        { ARGS("--max-conns", "1000001"), "--max-conns" },
        { ARGS("--max-conns-per-ip", "0"), "--max-conns-per-ip" },
        { ARGS("--max-payload", "0"), "--max-payload" },
        { ARGS("--max-payload", "1G"), "--max-payload" },
        { ARGS("--max-payload", "16M"), "--max-payload" },       /* 16777216 */
        { ARGS("--max-payload", "16777216"), "--max-payload" },
        { ARGS("--max-payload", "1.5M"), "--max-payload" },
        { ARGS("--max-payload", "1MB"), "--max-payload" },
        { ARGS("--max-payload", "1 M"), "--max-payload" },
        { ARGS("--max-payload", "-1"), "--max-payload" },
        { ARGS("--max-payload", "M"), "--max-payload" },
        { ARGS("--max-payload", "99999999999G"), "--max-payload" }, /* overflows 64 bits */
        { ARGS("--max-pending-output", "1023"), "--max-pending-output" },
        { ARGS("--max-pending-output", "2G"), "--max-pending-output" },
        { ARGS("--max-buffer-memory", "1000"), "--max-buffer-memory" },
        { ARGS("--max-buffer-memory", "lots"), "--max-buffer-memory" },
        { ARGS("--memory-grace", "-1"), "--memory-grace" },
        { ARGS("--idle-timeout", "-1"), "--idle-timeout" },
        { ARGS("--idle-timeout", "soon"), "--idle-timeout" },
        { ARGS("--idle-timeout", "1s"), "--idle-timeout" },
        { ARGS("--idle-timeout", ""), "--idle-timeout" },
        { ARGS("--idle-timeout", "nan"), "--idle-timeout" },
        { ARGS("--idle-timeout", "inf"), "--idle-timeout" },
        { ARGS("--frame-timeout", "86400.5"), "--frame-timeout" },
        { ARGS("--write-timeout", "-0.5"), "--write-timeout" },
        { ARGS("--drain-timeout", "1e9"), "--drain-timeout" },
        { ARGS("--log-format", "xml"), "--log-format" },
        { ARGS("--log-level", "INFO"), "--log-level" },
        { ARGS("--log-level", "verbose"), "--log-level" },
        { ARGS("--bind", ""), "--bind" },
        { ARGS("--http-bind", ""), "--http-bind" },
        { ARGS("--http-port", "70000"), "--http-port" },
        { ARGS("--http-port", "x"), "--http-port" },
        { ARGS("--web-root", ""), "--web-root" },
        { ARGS("--http-port"), "--http-port" },
        { ARGS("--web-root"), "--web-root" },
        /* missing values, unknown options, stray arguments */
        { ARGS("--port"), "--port" },
        { ARGS("--threads=4", "--max-payload"), "--max-payload" },
        { ARGS("--bogus"), "--bogus" },
        { ARGS("--bogus=1"), "--bogus" },
        { ARGS("-x"), "-x" },
        { ARGS("stray"), "stray" },
        { ARGS("--port", "1", "stray"), "stray" },
        { ARGS("stray", "--port", "1"), "stray" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct server_config cfg;
        struct capture c = { 0 };
        enum config_result rc = run_server(&cfg, cases[i].args, &c);
        if (rc != CONFIG_ERROR)
            fail_msg("case %zu (%s %s): rc %d, want CONFIG_ERROR", i, cases[i].args[0],
                     cases[i].args[1] != NULL ? cases[i].args[1] : "", (int)rc);
        assert_contains(c.err, "tcpmsgd: ");
        assert_contains(c.err, cases[i].needle);
        assert_int_equal(c.err[c.err_len - 1], '\n');
        assert_int_equal(c.out_len, 0);
        capture_free(&c);
    }
}

static void test_server_error_messages_are_specific(void **state)
{
    (void)state;
    const struct { const char *const *args; const char *want; } cases[] = {
        { ARGS("--port", "70000"), "tcpmsgd: --port: '70000' is out of range 0..65535\n" },
        { ARGS("--port", "abc"), "tcpmsgd: --port: 'abc' is not a whole number\n" },
        { ARGS("--port"), "tcpmsgd: --port needs a value (see --help)\n" },
        { ARGS("--bogus"), "tcpmsgd: unknown option '--bogus' (see --help)\n" },
        { ARGS("stray"), "tcpmsgd: unexpected argument 'stray' (see --help)\n" },
        { ARGS("--max-payload", "1G"),
          "tcpmsgd: --max-payload: '1G' is out of range 1..16777215\n" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct server_config cfg;
        struct capture c = { 0 };
        assert_int_equal(run_server(&cfg, cases[i].args, &c), CONFIG_ERROR);
        assert_string_equal(c.err, cases[i].want);
        capture_free(&c);
    }
}

/* ---- server: help, version, repeated calls -------------------------------- */

static void test_server_help_lists_every_option(void **state)
{
    (void)state;
    const char *const *const cases[] = { ARGS("--help"), ARGS("-h"),
                                                ARGS("--port", "1", "-h", "--bogus") };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct server_config cfg;
        struct capture c = { 0 };
        assert_int_equal(run_server(&cfg, cases[i], &c), CONFIG_EXIT);
        assert_int_equal(c.err_len, 0);
        assert_contains(c.out, "Usage: tcpmsgd");
        /* Every option of the parser's own list, as "--name" followed by its
         * value or a space, and "-x, --name" when it has a letter. */
        const char *name;
        char letter;
        size_t n = 0;
        for (size_t j = 0; (name = server_config_option(j, &letter)) != NULL; j++, n++) {
            char want[80];
            if (letter != '\0')
                snprintf(want, sizeof want, "  -%c, --%s ", letter, name);
            else
                snprintf(want, sizeof want, "  --%s ", name);
            char *line = strstr(c.out, want);
            if (line == NULL) {
                want[strlen(want) - 1] = '\n'; /* a long one: its text on the next line */
                line = strstr(c.out, want);
            }
            if (line == NULL)
                fail_msg("--help does not list '%s'", want);
        }
        assert_true(n >= 27);
        capture_free(&c);
    }
}

static void test_server_version(void **state)
{
    (void)state;
    struct server_config cfg;
    struct capture c = { 0 };
    assert_int_equal(run_server(&cfg, ARGS("--version"), &c), CONFIG_EXIT);
    assert_int_equal(strncmp(c.out, "tcpmsgd ", 8), 0);
    assert_true(c.out_len > 9);
    assert_int_equal(c.out[c.out_len - 1], '\n');
    capture_free(&c);
    assert_int_equal(run_server(&cfg, ARGS("-V"), &c), CONFIG_EXIT);
    assert_int_equal(strncmp(c.out, "tcpmsgd ", 8), 0);
    capture_free(&c);
}

static void test_server_parse_can_be_called_repeatedly(void **state)
{
    (void)state;
    struct server_config cfg;
    struct capture c = { 0 };
    for (int round = 0; round < 3; round++) {
        /* A parse that stops early, inside a cluster of short options... */
        assert_int_equal(run_server(&cfg, ARGS("--port", "1", "-hv"), &c), CONFIG_EXIT);
        capture_free(&c);
        /* ...one that fails on a missing value... */
        assert_int_equal(run_server(&cfg, ARGS("--threads", "2", "--port"), &c), CONFIG_ERROR);
        capture_free(&c);
        /* ...must not leak into the next: it starts at argv[1] again. */
        assert_int_equal(run_server(&cfg, ARGS("--port", "4242", "--threads", "3"), &c), CONFIG_OK);
        assert_int_equal(cfg.port, 4242);
        assert_int_equal(cfg.threads, 3);
        assert_int_equal(cfg.log_level, LOG_INFO);
        assert_int_equal(c.err_len, 0);
        capture_free(&c);
    }
}

/* ---- client ---------------------------------------------------------------- */

static void test_client_defaults(void **state)
{
    (void)state;
    struct client_config cfg;
    client_config_defaults(&cfg);
    assert_int_equal(cfg.command, CLIENT_ONESHOT);
    assert_string_equal(cfg.host, "");
    assert_int_equal(cfg.port, 8080);
    assert_true(cfg.timeout == 5);
    assert_false(cfg.text);
    assert_int_equal(cfg.nmessages, 0);
    assert_int_equal(cfg.connections, 1);
    assert_int_equal(cfg.depth, 1);
    assert_int_equal(cfg.size, 64);
    assert_true(cfg.duration == 5);
    assert_int_equal(cfg.count, 0);
    assert_int_equal(cfg.threads, 1);
    assert_false(cfg.json);
}

static void test_client_host_forms(void **state)
{
    (void)state;
    static const struct { const char *arg; const char *host; uint16_t port; } cases[] = {
        { "localhost", "localhost", 8080 },
        { "localhost:9000", "localhost", 9000 },
        { "127.0.0.1", "127.0.0.1", 8080 },
        { "127.0.0.1:1", "127.0.0.1", 1 },
        { "[::1]:9000", "::1", 9000 },
        { "[::1]", "::1", 8080 },
        { "::1", "::1", 8080 },                      /* bare IPv6: all host */
        { "fe80::1%lo", "fe80::1%lo", 8080 },
        { "[fe80::1%lo]:65535", "fe80::1%lo", 65535 },
        { "host:0", "host", 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct client_config cfg;
        struct capture c = { 0 };
        char *argv[MAX_ARGS + 2];
        assert_int_equal(run_client(&cfg, argv, ARGS(cases[i].arg), &c), CLIENT_CONFIG_OK);
        assert_string_equal(cfg.host, cases[i].host);
        assert_int_equal(cfg.port, cases[i].port);
        assert_int_equal(cfg.command, CLIENT_ONESHOT);
        assert_int_equal(cfg.nmessages, 0);
        capture_free(&c);
    }
}

static void test_client_bad_addresses(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "host:", "host:http", "host:65536", "host:-1", "host:80x", ":80", "",
        "[::1", "[::1]x", "[::1]:", "[]:80", "[::1]:99999",
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct client_config cfg;
        struct capture c = { 0 };
        char *argv[MAX_ARGS + 2];
        assert_int_equal(run_client(&cfg, argv, ARGS(cases[i]), &c), CLIENT_CONFIG_ERROR);
        assert_contains(c.err, "is not HOST[:PORT]");
        capture_free(&c);
        /* The same in bench mode. */
        assert_int_equal(run_client(&cfg, argv, ARGS("bench", cases[i]), &c),
                         CLIENT_CONFIG_ERROR);
        assert_contains(c.err, "is not HOST[:PORT]");
        capture_free(&c);
    }
}

static void test_client_oneshot_messages(void **state)
{
    (void)state;
    struct client_config cfg;
    struct capture c = { 0 };
    char *argv[MAX_ARGS + 2];
    /* After the address everything is a message, even when it looks like an
     * option. */
    assert_int_equal(run_client(&cfg, argv,
                                ARGS("--text", "--timeout", "0.25", "h:1", "hello", "-b",
                                     "--json", "--connections", "-", "--"),
                                &c),
                     CLIENT_CONFIG_OK);
    assert_int_equal(cfg.command, CLIENT_ONESHOT);
    assert_true(cfg.text);
    assert_true(cfg.timeout == 0.25);
    assert_string_equal(cfg.host, "h");
    assert_int_equal(cfg.port, 1);
    static const char *const want[] = { "hello", "-b", "--json", "--connections", "-", "--" };
    assert_int_equal(cfg.nmessages, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        assert_string_equal(cfg.messages[i], want[i]);
    assert_false(cfg.json);
    assert_int_equal(cfg.connections, 1);
    capture_free(&c);

    /* "--" ends the options: a message may then be anything. */
    assert_int_equal(run_client(&cfg, argv, ARGS("--", "h", "-x"), &c), CLIENT_CONFIG_OK);
    assert_string_equal(cfg.host, "h");
    assert_int_equal(cfg.nmessages, 1);
    assert_string_equal(cfg.messages[0], "-x");
    capture_free(&c);
}

static void test_client_bench_options(void **state)
{
    (void)state;
    struct client_config cfg;
    struct capture c = { 0 };
    char *argv[MAX_ARGS + 2];
    assert_int_equal(run_client(&cfg, argv,
                                ARGS("bench", "--connections", "8", "--depth", "4", "--size",
                                     "4KiB", "--duration", "2.5", "--count", "1000",
                                     "--threads", "2", "--json", "--timeout", "1", "--text",
                                     "[::1]:9"),
                                &c),
                     CLIENT_CONFIG_OK);
    assert_int_equal(cfg.command, CLIENT_BENCH);
    assert_int_equal(cfg.connections, 8);
    assert_int_equal(cfg.depth, 4);
    assert_int_equal(cfg.size, 4096);
    assert_true(cfg.duration == 2.5);
    assert_int_equal(cfg.count, 1000);
    assert_int_equal(cfg.threads, 2);
    assert_true(cfg.json);
    assert_true(cfg.text);
    assert_true(cfg.timeout == 1);
    assert_string_equal(cfg.host, "::1");
    assert_int_equal(cfg.port, 9);
    assert_int_equal(cfg.nmessages, 0);
    capture_free(&c);

    /* Bench takes its options after the address too. */
    assert_int_equal(run_client(&cfg, argv,
                                ARGS("bench", "h:7", "--connections", "3", "--json",
                                     "--size=0", "--count=18446744073709551615"),
                                &c),
                     CLIENT_CONFIG_OK);
    assert_string_equal(cfg.host, "h");
    assert_int_equal(cfg.port, 7);
    assert_int_equal(cfg.connections, 3);
    assert_true(cfg.json);
    assert_int_equal(cfg.size, 0);
    assert_true(cfg.count == UINT64_MAX);
    capture_free(&c);
}

static void test_client_bench_options_need_bench(void **state)
{
    (void)state;
    const char *const *const cases[] = {
        ARGS("--connections", "2", "h"), ARGS("--depth", "2", "h"),
        ARGS("--size", "2", "h"),        ARGS("--duration", "2", "h"),
        ARGS("--count", "2", "h"),       ARGS("--threads", "2", "h"),
        ARGS("--json", "h"),
        /* "bench" only counts as the first word */
        ARGS("--json", "bench", "h"),
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct client_config cfg;
        struct capture c = { 0 };
        char *argv[MAX_ARGS + 2];
        assert_int_equal(run_client(&cfg, argv, cases[i], &c), CLIENT_CONFIG_ERROR);
        assert_contains(c.err, cases[i][0]);
        assert_contains(c.err, "bench");
        capture_free(&c);
    }
}

static void test_client_errors_name_the_problem(void **state)
{
    (void)state;
    const struct { const char *const *args; const char *needle; } cases[] = {
        { NO_ARGS, "missing HOST[:PORT]" },
        { ARGS("bench"), "missing HOST[:PORT]" },
        { ARGS("--text"), "missing HOST[:PORT]" },
        { ARGS("bench", "--json"), "missing HOST[:PORT]" },
        { ARGS("--timeout"), "--timeout needs a value" },
        { ARGS("bench", "h", "--count"), "--count needs a value" },
        { ARGS("--nope", "h"), "unknown option '--nope'" },
        { ARGS("bench", "--nope", "h"), "unknown option '--nope'" },
        { ARGS("-q", "h"), "unknown option '-q'" },
        { ARGS("bench", "h", "extra"), "unexpected argument 'extra'" },
        { ARGS("--timeout", "0", "h"), "--timeout" },
        { ARGS("--timeout", "-1", "h"), "--timeout" },
        { ARGS("--timeout", "x", "h"), "--timeout" },
        { ARGS("bench", "--connections", "0", "h"), "--connections" },
        { ARGS("bench", "--connections", "100001", "h"), "--connections" },
        { ARGS("bench", "--depth", "0", "h"), "--depth" },
        { ARGS("bench", "--depth", "4097", "h"), "--depth" },
        { ARGS("bench", "--size", "16777216", "h"), "--size" },
        { ARGS("bench", "--size", "16M", "h"), "--size" },
        { ARGS("bench", "--size", "-1", "h"), "--size" },
        { ARGS("bench", "--duration", "0", "h"), "--duration" },
        { ARGS("bench", "--count", "0", "h"), "--count" },
        { ARGS("bench", "--count", "18446744073709551616", "h"), "--count" },
        { ARGS("bench", "--threads", "257", "h"), "--threads" },
        { ARGS("bench", "h", "--threads", "two"), "--threads" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct client_config cfg;
        struct capture c = { 0 };
        char *argv[MAX_ARGS + 2];
        enum client_config_result rc = run_client(&cfg, argv, cases[i].args, &c);
        if (rc != CLIENT_CONFIG_ERROR)
            fail_msg("case %zu: rc %d, want CLIENT_CONFIG_ERROR", i, (int)rc);
        assert_contains(c.err, "tcpmsg: ");
        assert_contains(c.err, cases[i].needle);
        assert_contains(c.err, "(see --help)\n");
        assert_int_equal(c.out_len, 0);
        capture_free(&c);
    }
}

static void test_client_help_lists_every_option(void **state)
{
    (void)state;
    const char *const *const cases[] = { ARGS("--help"), ARGS("-h"),
                                                ARGS("bench", "--help"), ARGS("bench", "h", "-h") };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct client_config cfg;
        struct capture c = { 0 };
        char *argv[MAX_ARGS + 2];
        assert_int_equal(run_client(&cfg, argv, cases[i], &c), CLIENT_CONFIG_EXIT);
        assert_int_equal(c.err_len, 0);
        assert_contains(c.out, "Usage: tcpmsg");
        /* Every option of the parser's own list, as "--name" followed by its
         * value or a space, and "-x, --name" when it has a letter. */
        const char *name;
        char letter;
        size_t n = 0;
        for (size_t j = 0; (name = client_config_option(j, &letter)) != NULL; j++, n++) {
            char want[80];
            if (letter != '\0')
                snprintf(want, sizeof want, "  -%c, --%s ", letter, name);
            else
                snprintf(want, sizeof want, "  --%s ", name);
            if (strstr(c.out, want) == NULL)
                fail_msg("--help does not list '%s'", want);
        }
        assert_true(n >= 22);
        assert_contains(c.out, "tcpmsg bench");
        capture_free(&c);
    }
    struct client_config cfg;
    struct capture c = { 0 };
    char *argv[MAX_ARGS + 2];
    assert_int_equal(run_client(&cfg, argv, ARGS("-V"), &c), CLIENT_CONFIG_EXIT);
    assert_int_equal(strncmp(c.out, "tcpmsg ", 7), 0);
    capture_free(&c);
}

static void test_client_parse_can_be_called_repeatedly(void **state)
{
    (void)state;
    struct client_config cfg;
    struct capture c = { 0 };
    char *argv[MAX_ARGS + 2];
    for (int round = 0; round < 3; round++) {
        assert_int_equal(run_client(&cfg, argv, ARGS("bench", "h", "--depth", "2", "-hV"), &c),
                         CLIENT_CONFIG_EXIT);
        capture_free(&c);
        assert_int_equal(run_client(&cfg, argv, ARGS("--timeout"), &c), CLIENT_CONFIG_ERROR);
        capture_free(&c);
        assert_int_equal(run_client(&cfg, argv, ARGS("bench", "--depth", "3", "a:2"), &c),
                         CLIENT_CONFIG_OK);
        assert_int_equal(cfg.depth, 3);
        assert_string_equal(cfg.host, "a");
        capture_free(&c);
        assert_int_equal(run_client(&cfg, argv, ARGS("b:3", "m1", "m2"), &c), CLIENT_CONFIG_OK);
        assert_int_equal(cfg.command, CLIENT_ONESHOT);
        assert_string_equal(cfg.host, "b");
        assert_int_equal(cfg.port, 3);
        assert_int_equal(cfg.nmessages, 2);
        assert_string_equal(cfg.messages[1], "m2");
        assert_int_equal(c.err_len, 0);
        capture_free(&c);
    }
}

/* ---- opt.h ----------------------------------------------------------------- */

static void test_opt_parse_u64(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t min, max;
        int rc;
        uint64_t want;
    } cases[] = {
        { "0", 0, 10, 0, 0 },
        { "10", 0, 10, 0, 10 },
        { "007", 0, 10, 0, 7 },
        { "11", 0, 10, -22, 0 },
        { "4", 5, 10, -22, 0 },
        { "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX },
        { "18446744073709551616", 0, UINT64_MAX, -22, 0 },
        { "", 0, 10, -22, 0 },
        { "-1", 0, 10, -22, 0 },
        { "+1", 0, 10, -22, 0 },
        { " 1", 0, 10, -22, 0 },
        { "1 ", 0, 10, -22, 0 },
        { "1x", 0, 10, -22, 0 },
        { "0x1", 0, 10, -22, 0 },
        { "1.0", 0, 10, -22, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        char err[128] = "";
        int rc = opt_parse_u64("--n", cases[i].in, cases[i].min, cases[i].max, &v, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0) {
            assert_true(v == cases[i].want);
        } else {
            assert_true(v == 12345); /* untouched on error */
            assert_contains(err, "--n: '");
            assert_contains(err, cases[i].in);
        }
    }
    char err[128];
    uint64_t v;
    opt_parse_u64("--port", "70000", 0, 65535, &v, err, sizeof err);
    assert_string_equal(err, "--port: '70000' is out of range 0..65535");
    opt_parse_u64("--port", "x", 0, 65535, &v, err, sizeof err);
    assert_string_equal(err, "--port: 'x' is not a whole number");
    /* A tiny err buffer is cut, not overrun. */
    char small[8];
    assert_int_equal(opt_parse_u64("--port", "x", 0, 1, &v, small, sizeof small), -22);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_opt_parse_size(void **state)
{
    (void)state;
    static const struct { const char *in; uint64_t max; int rc; uint64_t want; } cases[] = {
        { "0", 100, 0, 0 },
        { "4096", 1 << 20, 0, 4096 },
        { "1B", 10, 0, 1 },
        { "1K", 1 << 20, 0, 1024 },
        { "64KiB", 1 << 20, 0, 65536 },
        { "64kib", 1 << 20, 0, 65536 },
        { "1M", 1 << 20, 0, 1 << 20 },
        { "1MiB", 1 << 20, 0, 1 << 20 },
        { "1G", UINT64_C(1) << 30, 0, UINT64_C(1) << 30 },
        { "1GiB", UINT64_C(1) << 30, 0, UINT64_C(1) << 30 },
        { "16777215", 16777215, 0, 16777215 },
        { "16M", 16777215, -22, 0 },
        { "1G", 16777215, -22, 0 },
        { "17179869184G", UINT64_MAX, -22, 0 }, /* 2^64: overflow is out of range */
        { "1T", UINT64_MAX, -22, 0 },
        { "1KB", UINT64_MAX, -22, 0 },
        { "1.5K", UINT64_MAX, -22, 0 },
        { "K", UINT64_MAX, -22, 0 },
        { "", UINT64_MAX, -22, 0 },
        { "-1", UINT64_MAX, -22, 0 },
        { "1 K", UINT64_MAX, -22, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        char err[128] = "";
        int rc = opt_parse_size("--s", cases[i].in, 0, cases[i].max, &v, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d (%s)", cases[i].in, rc, cases[i].rc, err);
        if (rc == 0) {
            assert_true(v == cases[i].want);
        } else {
            assert_true(v == 12345);
            assert_contains(err, "--s: '");
        }
    }
}

static void test_opt_parse_seconds(void **state)
{
    (void)state;
    static const struct { const char *in; int rc; double want; } cases[] = {
        { "0", 0, 0 },      { "30", 0, 30 },     { "0.5", 0, 0.5 }, { ".25", 0, 0.25 },
        { "1e2", 0, 100 },  { "100", 0, 100 },   { "100.001", -22, 0 },
        { "-1", -22, 0 },   { "", -22, 0 },      { "abc", -22, 0 }, { "1s", -22, 0 },
        { "1 ", -22, 0 },   { "nan", -22, 0 },   { "inf", -22, 0 }, { "-inf", -22, 0 },
        { "1e999", -22, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        double v = 12345;
        char err[128] = "";
        int rc = opt_parse_seconds("--t", cases[i].in, 0, 100, &v, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0) {
            assert_true(v == cases[i].want);
        } else {
            assert_true(v == 12345);
            assert_contains(err, "--t: '");
        }
    }
    char err[128];
    double v;
    opt_parse_seconds("--timeout", "0", 0.001, 86400, &v, err, sizeof err);
    assert_string_equal(err, "--timeout: '0' is out of range 0.001..86400 seconds");
}

/* ---- net.h address helpers ------------------------------------------------- */

static void test_net_parse_port(void **state)
{
    (void)state;
    static const struct { const char *in; int rc; uint16_t want; } cases[] = {
        { "0", 0, 0 },      { "80", 0, 80 },     { "080", 0, 80 },   { "65535", 0, 65535 },
        { "65536", -22, 0 }, { "", -22, 0 },     { "-1", -22, 0 },   { "+1", -22, 0 },
        { " 1", -22, 0 },   { "1 ", -22, 0 },    { "http", -22, 0 }, { "8080x", -22, 0 },
        { "99999999999999999999999", -22, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint16_t port = 4321;
        int rc = net_parse_port(cases[i].in, &port);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        assert_int_equal(port, rc == 0 ? cases[i].want : 4321);
    }
}

static void test_net_split_hostport(void **state)
{
    (void)state;
    static const struct { const char *in; int rc; const char *host; uint16_t port; } cases[] = {
        { "example.com", 0, "example.com", 77 },
        { "example.com:80", 0, "example.com", 80 },
        { "10.0.0.1:0", 0, "10.0.0.1", 0 },
        { "[::1]", 0, "::1", 77 },
        { "[::1]:443", 0, "::1", 443 },
        { "::1", 0, "::1", 77 },
        { "2001:db8::1", 0, "2001:db8::1", 77 },
        { "::", 0, "::", 77 },
        { "h:", -22, NULL, 0 },
        { ":80", -22, NULL, 0 },
        { "", -22, NULL, 0 },
        { "h:70000", -22, NULL, 0 },
        { "[::1", -22, NULL, 0 },
        { "[::1]:", -22, NULL, 0 },
        { "[::1]80", -22, NULL, 0 },
        { "[]", -22, NULL, 0 },
        { "[]:80", -22, NULL, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char host[64] = "";
        uint16_t port = 1;
        int rc = net_split_hostport(cases[i].in, host, sizeof host, &port, 77);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
        }
    }
    /* A host that does not fit is refused, never cut. */
    char host[4];
    uint16_t port;
    assert_int_equal(net_split_hostport("abc", host, sizeof host, &port, 1), 0);
    assert_string_equal(host, "abc");
    assert_int_equal(net_split_hostport("abcd", host, sizeof host, &port, 1), -22);
    assert_int_equal(net_split_hostport("abcd:1", host, sizeof host, &port, 1), -22);
    assert_int_equal(net_split_hostport("[abcd]:1", host, sizeof host, &port, 1), -22);
}

/* Regression: an unknown short option that starts a cluster
 * ("-xv") is reported with the previous word of argv, because getopt has not
 * advanced optind yet: "tcpmsgd: unknown option '1'" for "--port 1 -xv". */
static void test_unknown_short_option_in_a_cluster_is_named(void **state)
{
    (void)state;
    struct server_config scfg;
    struct client_config ccfg;
    struct capture c = { 0 };
    char *argv[MAX_ARGS + 2];
    bool named[3];
    /* Free before asserting, so a failure does not leak into ASan's report. */
    run_server(&scfg, ARGS("--port", "1", "-xv"), &c);
    named[0] = strstr(c.err, "'-x") != NULL;
    capture_free(&c);
    run_client(&ccfg, argv, ARGS("-qh", "host"), &c);
    named[1] = strstr(c.err, "'-q") != NULL;
    capture_free(&c);
    run_client(&ccfg, argv, ARGS("bench", "-qh", "host"), &c);
    named[2] = strstr(c.err, "'-q") != NULL;
    capture_free(&c);
    assert_true(named[0]);
    assert_true(named[1]);
    assert_true(named[2]);
}

/* Regression: opt_parse_seconds takes whatever strtod takes,
 * so " 5", "0x10" (16 s) and "0x1p-2" are accepted while the integer and size
 * parsers refuse leading blanks and hex. */
static void test_seconds_are_plain_decimal(void **state)
{
    (void)state;
    static const char *const cases[] = { " 5", "\t5", "0x10", "0x1p-2" };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        double v;
        char err[128];
        assert_int_equal(opt_parse_seconds("--t", cases[i], 0, 100, &v, err, sizeof err), -22);
    }
}

/* Regression: a long option that takes no value given one ("--no-http=1",
 * "--text=1") makes getopt return '?' with optopt set to the option's code, so
 * the "optopt names a bad short option" branch prints "unknown option '-\x10'"
 * (OPT_NO_HTTP as a char) or "'-v'" for "--verbose=1". The message should
 * name the option the user typed. */
static void test_long_option_given_a_value_is_named(void **state)
{
    (void)state;
    const struct { const char *const *args; const char *needle; } server_cases[] = {
        { ARGS("--no-http=1"), "--no-http" },
        { ARGS("--verbose=1"), "--verbose" },
    };
    const struct { const char *const *args; const char *needle; } client_cases[] = {
        { ARGS("--text=1", "h"), "--text" },
        { ARGS("bench", "--json=yes", "h"), "--json" },
    };
    struct capture c = { 0 };
    bool named[ARRAY_LEN(server_cases) + ARRAY_LEN(client_cases)];
    size_t k = 0;
    /* Free before asserting, so a failure does not leak into ASan's report. */
    for (size_t i = 0; i < ARRAY_LEN(server_cases); i++) {
        struct server_config cfg;
        named[k] = run_server(&cfg, server_cases[i].args, &c) == CONFIG_ERROR &&
                   strstr(c.err, server_cases[i].needle) != NULL;
        if (!named[k])
            print_error("%s: %s", server_cases[i].args[0], c.err);
        k++;
        capture_free(&c);
    }
    for (size_t i = 0; i < ARRAY_LEN(client_cases); i++) {
        struct client_config cfg;
        char *argv[MAX_ARGS + 2];
        named[k] = run_client(&cfg, argv, client_cases[i].args, &c) == CLIENT_CONFIG_ERROR &&
                   strstr(c.err, client_cases[i].needle) != NULL;
        if (!named[k])
            print_error("%s: %s", client_cases[i].args[0], c.err);
        k++;
        capture_free(&c);
    }
    for (size_t i = 0; i < k; i++)
        assert_true(named[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_defaults),
        cmocka_unit_test(test_server_no_arguments_keeps_defaults),
        cmocka_unit_test(test_server_numeric_options_set_their_field),
        cmocka_unit_test(test_server_text_options_set_their_field),
        cmocka_unit_test(test_server_verbose_sets_debug),
        cmocka_unit_test(test_server_rtt_reports),
        cmocka_unit_test(test_server_bad_values_are_errors_naming_the_option),
        cmocka_unit_test(test_server_error_messages_are_specific),
        cmocka_unit_test(test_server_help_lists_every_option),
        cmocka_unit_test(test_server_version),
        cmocka_unit_test(test_server_parse_can_be_called_repeatedly),
        cmocka_unit_test(test_client_defaults),
        cmocka_unit_test(test_client_host_forms),
        cmocka_unit_test(test_client_bad_addresses),
        cmocka_unit_test(test_client_oneshot_messages),
        cmocka_unit_test(test_client_bench_options),
        cmocka_unit_test(test_client_bench_options_need_bench),
        cmocka_unit_test(test_client_errors_name_the_problem),
        cmocka_unit_test(test_client_help_lists_every_option),
        cmocka_unit_test(test_client_parse_can_be_called_repeatedly),
        cmocka_unit_test(test_opt_parse_u64),
        cmocka_unit_test(test_opt_parse_size),
        cmocka_unit_test(test_opt_parse_seconds),
        cmocka_unit_test(test_net_parse_port),
        cmocka_unit_test(test_net_split_hostport),
        cmocka_unit_test(test_unknown_short_option_in_a_cluster_is_named),
        cmocka_unit_test(test_seconds_are_plain_decimal),
        cmocka_unit_test(test_long_option_given_a_value_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
