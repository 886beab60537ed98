/* client config: defaults and the tcpmsg command line. */
#include "client/client_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <arpa/inet.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"
#include "tcpmsg/version.h"

static const double default_percentiles[] = { 50, 90, 99, 99.9 };

void client_config_defaults(struct client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->command = CLIENT_ONESHOT;
    cfg->port = CLIENT_DEFAULT_PORT;
    cfg->timeout = 5;
    cfg->report = true;
    cfg->connections = 1;
    cfg->depth = 1;
    cfg->size = 64;
    cfg->size_min = 64;
    cfg->seed = 1;
    cfg->duration = 5;
    cfg->threads = 1;
    cfg->npercentiles = sizeof default_percentiles / sizeof default_percentiles[0];
    memcpy(cfg->percentiles, default_percentiles, sizeof default_percentiles);
    cfg->http_port = -1;
    strcpy(cfg->http_bind, "127.0.0.1");
}

/* Which commands take an option: a bit per enum client_command. */
#define FOR(cmd) (1u << (cmd))
#define ALL (FOR(CLIENT_ONESHOT) | FOR(CLIENT_BENCH) | FOR(CLIENT_PROBE))
#define LOAD (FOR(CLIENT_BENCH) | FOR(CLIENT_PROBE))
#define REPORTS (FOR(CLIENT_BENCH) | FOR(CLIENT_MERGE)) /* bench's results, and merge's */
#define EVERY (ALL | FOR(CLIENT_MERGE))

/* What an option's action returns besides 0 and -EINVAL: help or version
 * was printed, and tcpmsg exits at once. */
#define OPTION_EXIT 1

/* Every option of tcpmsg, in --help order, one line each:
 *   X(ID, long name, short letter (0: none), has_arg, commands that take it,
 *     value in --help, help text, probe's value and text (NULL: the same), action)
 * --help lists the options every command takes first, then bench's, then
 * probe's. A '\n' in a help text starts a new, indented line. The action is
 * an expression over cfg, name (the option as "--name"), v (its value), out,
 * err and cap: 0, OPTION_EXIT, or a negative errno with the message in err.
 * --help, getopt_long's table, the check of which command takes an option
 * and the parser are all made from this list. */
#define CLIENT_OPTIONS(X)                                                                     \
    X(TIMEOUT, "timeout", 0, required_argument, ALL, "SEC",                                   \
      "give up on connecting or on a reply after SEC seconds\n(default 5; probe: 1)", NULL,   \
      NULL, set_timeout(cfg, name, v, err, cap))                                              \
    X(TEXT, "text", 0, no_argument, ALL, "", "send text lines instead of framed messages",    \
      NULL, NULL, set_flag(&cfg->text, true))                                                 \
    X(NO_REPORT, "no-report", 0, no_argument, ALL, "",                                        \
      "do not send the measured round-trip times to the server\n(framed mode reports them, "  \
      "for the server's metrics)",                                                            \
      NULL, NULL, set_flag(&cfg->report, false))                                              \
    X(HELP, "help", 'h', no_argument, EVERY, "", "show this help and exit", NULL, NULL,       \
      show_help(out))                                                                         \
    X(VERSION, "version", 'V', no_argument, EVERY, "", "show the version and exit", NULL,     \
      NULL, show_version(out))                                                                \
    X(CONNECTIONS, "connections", 0, required_argument, FOR(CLIENT_BENCH), "N",               \
      "concurrent connections (default 1)", NULL, NULL,                                       \
      parse_unsigned(name, v, 1, 100000, &cfg->connections, err, cap))                        \
    X(DEPTH, "depth", 0, required_argument, FOR(CLIENT_BENCH), "N",                           \
      "messages in flight per connection, at most (default 1)", NULL, NULL,                   \
      parse_unsigned(name, v, 1, 4096, &cfg->depth, err, cap))                                \
    X(SIZE, "size", 0, required_argument, LOAD, "BYTES|MIN-MAX",                              \
      "payload size, e.g. 64, 4KiB, or random in 16-1KiB (default 64)", "BYTES",             \
      "probe payload size (default 64)", parse_size_range(cfg, name, v, err, cap))            \
    X(SEED, "seed", 0, required_argument, LOAD, "N",                                          \
      "seed for random sizes and jitter (default 1)", NULL, NULL,                             \
      opt_parse_u64(name, v, 0, UINT64_MAX, &cfg->seed, err, cap))                            \
    X(DURATION, "duration", 0, required_argument, LOAD, "SEC", "measure this long (default 5)", \
      "SEC", "stop after SEC seconds (default: never)", set_duration(cfg, name, v, err, cap))  \
    X(COUNT, "count", 0, required_argument, LOAD, "N", "or stop after N messages in all", "N", \
      "stop after N probes of each target (default: never)",                                  \
      opt_parse_u64(name, v, 1, UINT64_MAX, &cfg->count, err, cap))                           \
    X(WARMUP, "warmup", 0, required_argument, FOR(CLIENT_BENCH), "SEC",                       \
      "run the load this long first, excluded from the results", NULL, NULL,                  \
      opt_parse_seconds(name, v, 0, 86400, &cfg->warmup, err, cap))                           \
    X(THREADS, "threads", 0, required_argument, FOR(CLIENT_BENCH), "N",                       \
      "client threads sharing the connections (default 1)", NULL, NULL,                       \
      parse_unsigned(name, v, 1, 256, &cfg->threads, err, cap))                               \
    X(RATE, "rate", 0, required_argument, FOR(CLIENT_BENCH), "MSGS_PER_S",                    \
      "open loop: send at this constant total rate; latency is\nmeasured from each "          \
      "message's intended send time",                                                         \
      NULL, NULL, parse_rate(name, v, 0.01, 1e8, &cfg->rate, err, cap))                       \
    X(CONNECT_RATE, "connect-rate", 0, required_argument, FOR(CLIENT_BENCH), "N",             \
      "open at most N connections per second (default: at once)", NULL, NULL,                 \
      parse_rate(name, v, 0.01, 1e7, &cfg->connect_rate, err, cap))                           \
    X(IO, "io", 0, required_argument, FOR(CLIENT_BENCH), "epoll|uring|auto",                  \
      "each thread's event loop: epoll, io_uring, or io_uring\nwhere the kernel allows it "  \
      "(default auto)",                                                                       \
      NULL, NULL, parse_io(name, v, &cfg->io, err, cap))                                      \
    X(SQPOLL, "sqpoll", 0, no_argument, FOR(CLIENT_BENCH), "",                                \
      "io_uring with a kernel thread polling for submissions", NULL, NULL,                    \
      set_flag(&cfg->sqpoll, true))                                                           \
    X(INTERVAL, "interval", 0, required_argument, LOAD, "SEC",                                \
      "print a report every SEC seconds while running", "SEC",                                \
      "seconds between probes of a target (default 1)",                                       \
      opt_parse_seconds(name, v, 0.01, 86400, &cfg->interval, err, cap))                      \
    X(PERCENTILES, "percentiles", 0, required_argument, REPORTS, "LIST",                      \
      "percentiles to report (default 50,90,99,99.9)", NULL, NULL,                            \
      parse_percentiles(cfg, name, v, err, cap))                                              \
    X(HIST_OUT, "histogram-out", 0, required_argument, REPORTS, "FILE",                       \
      "write the percentile spectrum (HdrHistogram text layout)", NULL, NULL,                 \
      set_out_path(&cfg->histogram_out, name, v, err, cap))                                   \
    X(PLOT, "plot", 0, required_argument, REPORTS, "FILE.svg",                                \
      "draw latency by percentile as an SVG image", NULL, NULL,                               \
      set_out_path(&cfg->plot_out, name, v, err, cap))                                        \
    X(HDR_LOG, "hdr-log", 0, required_argument, REPORTS, "FILE",                              \
      "write an HdrHistogram interval log (a line per --interval,\nor one for the run), "     \
      "for tcpmsg merge and HdrHistogram's tools",                                            \
      NULL, NULL, set_out_path(&cfg->hdr_log, name, v, err, cap))                             \
    X(START_AT, "start-at", 0, required_argument, FOR(CLIENT_BENCH), "TIME",                  \
      "start the load at TIME (RFC 3339 or Unix seconds), so that\nload generators on "       \
      "several hosts start together",                                                         \
      NULL, NULL, parse_start_at(cfg, name, v, err, cap))                                     \
    X(JSON, "json", 0, no_argument, LOAD | FOR(CLIENT_MERGE), "",                             \
      "print JSON: one object, or with --interval one event a line", "",                      \
      "one JSON object per probe", set_flag(&cfg->json, true))                                \
    X(HTTP_PORT, "http-port", 0, required_argument, FOR(CLIENT_PROBE), "N",                   \
      "serve Prometheus metrics at http://ADDR:N/metrics, the\nstatus page at / and its data "  \
      "at /api/targets",                                                                       \
      NULL, NULL,                                                                             \
      set_http_port(cfg, name, v, err, cap))                                                  \
    X(SERVE, "serve", 0, required_argument, FOR(CLIENT_PROBE), "[ADDR:]PORT",                \
      "answer GET /probe?target=HOST:PORT with one probe's results\n(blackbox_exporter "      \
      "style; ADDR defaults to 127.0.0.1); with\nno HOST of its own, it only serves",           \
      NULL, NULL, set_serve(cfg, name, v, err, cap))                                          \
    X(HTTP_BIND, "http-bind", 0, required_argument, FOR(CLIENT_PROBE), "ADDR",                \
      "address for --http-port (default 127.0.0.1)", NULL, NULL,                              \
      set_http_bind(cfg, name, v, err, cap))                                                  \
    X(TARGETS, "targets", 0, required_argument, FOR(CLIENT_PROBE), "FILE",                    \
      "probe the targets listed in FILE too: one HOST:PORT a line,\nor Prometheus file_sd "   \
      "JSON; read again on SIGHUP and when\nthe file changes",                                \
      NULL, NULL, set_path(&cfg->targets_file, name, v, err, cap))                            \
    X(WEB_ROOT, "web-root", 0, required_argument, FOR(CLIENT_PROBE), "DIR",                   \
      "directory of the status page served at / (default: the\none tcpmsgd finds)", NULL,   \
      NULL, set_path(&cfg->web_root, name, v, err, cap))

/* getopt_long's value for an option: its letter, or one of these past 255. */
enum {
    OPT_NONE = 255,
#define OPTION_ENUM(id, ...) OPT_##id,
    CLIENT_OPTIONS(OPTION_ENUM)
#undef OPTION_ENUM
};

#define OPTION_KEY(id, letter) ((letter) != 0 ? (letter) : OPT_##id)

static const struct option long_options[] = {
#define OPTION_ROW(id, name, letter, has_arg, ...) { name, has_arg, NULL, OPTION_KEY(id, letter) },
    CLIENT_OPTIONS(OPTION_ROW)
#undef OPTION_ROW
    { NULL, 0, NULL, 0 },
};

/* The rest of each option: who takes it, and its --help lines. */
struct option_info {
    unsigned commands;
    const char *value, *text;             /* value "" when it takes none */
    const char *probe_value, *probe_text; /* probe's, when they differ */
};

static const struct option_info option_info[] = {
#define OPTION_INFO(id, name, letter, has_arg, commands, value, text, probe_value, probe_text, \
                    action)                                                                   \
    { commands, value, text, probe_value, probe_text },
    CLIENT_OPTIONS(OPTION_INFO)
#undef OPTION_INFO
};

#define NOPTIONS (sizeof option_info / sizeof option_info[0])

/* Help text starts in this column, a space at least after the option. */
#define HELP_COLUMN 23

static void print_option(FILE *out, const struct option *o, const char *value, const char *text)
{
    int n = o->val < 256 ? fprintf(out, "  -%c, --%s", o->val, o->name)
                         : fprintf(out, "  --%s", o->name);
    if (value[0] != '\0')
        n += fprintf(out, " %s", value);
    if (n > HELP_COLUMN - 1) {
        fputc('\n', out);
        n = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - n, "");
    for (const char *p = text; *p != '\0'; p++) {
        fputc(*p, out);
        if (*p == '\n')
            fprintf(out, "%*s", HELP_COLUMN, "");
    }
    fputc('\n', out);
}

/* The options of one section: those every command that connects takes
 * (mask ALL), or those of one command that not all of them take; merge's
 * section leaves out those it shares with bench (listed there). */
static void print_section(FILE *out, unsigned mask)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option_info *o = &option_info[i];
        bool common = (o->commands & ALL) == ALL;
        bool here = mask == ALL ? common
                                : !common && (o->commands & mask) != 0 &&
                                      (mask != FOR(CLIENT_MERGE) ||
                                       (o->commands & FOR(CLIENT_BENCH)) == 0);
        if (!here)
            continue;
        if (mask == FOR(CLIENT_PROBE) && o->probe_text != NULL)
            print_option(out, &long_options[i], o->probe_value, o->probe_text);
        else
            print_option(out, &long_options[i], o->value, o->text);
    }
}

static int show_help(FILE *out)
{
    fputs("Usage: tcpmsg [OPTION]... HOST[:PORT] [MESSAGE]...\n"
          "       tcpmsg bench [OPTION]... HOST[:PORT]\n"
          "       tcpmsg probe [OPTION]... HOST[:PORT]...\n"
          "       tcpmsg probe [OPTION]... --targets FILE [HOST[:PORT]]...\n"
          "       tcpmsg merge [OPTION]... FILE...\n"
          "Send messages to a tcpmsgd server (or any echo server) and print each reply\n"
          "with its round-trip time. With no MESSAGE, each line of standard input is a\n"
          "message. HOST is a name, an IPv4 address or [IPv6]; PORT defaults to 8080.\n"
          "\n",
          out);
    print_section(out, ALL);
    fputs("\nbench: a load generator; every reply is checked byte for byte.\n", out);
    print_section(out, FOR(CLIENT_BENCH));
    fputs("\nprobe: probe each target every --interval seconds (default 1, with jitter),\n"
          "one line per probe; timeouts and failed connections count as loss.\n",
          out);
    print_section(out, FOR(CLIENT_PROBE));
    fputs("\nmerge: merge the HdrHistogram interval logs (--hdr-log) of load generators that\n"
          "ran together, aligned on wall-clock time, into one summary; takes --percentiles,\n"
          "--json, --histogram-out, --plot and --hdr-log as bench does.\n",
          out);
    print_section(out, FOR(CLIENT_MERGE));
    fputs("\n"
          "Exit status: 0 success; 1 I/O error or the server closed the connection (bench:\n"
          "any error); 2 bad usage or address; 3 cannot connect; 4 timeout; 5 a reply did\n"
          "not match the message; 6 the server answered with an error; 7 bench --rate:\n"
          "the requested rate was not kept (no error otherwise).\n",
          out);
    return OPTION_EXIT;
}

static int show_version(FILE *out)
{
    fprintf(out, "tcpmsg %s\n", tcpmsg_version);
    return OPTION_EXIT;
}

const char *client_config_option(size_t i, char *letter)
{
    if (i >= NOPTIONS)
        return NULL;
    if (letter != NULL)
        *letter = long_options[i].val < 256 ? (char)long_options[i].val : '\0';
    return long_options[i].name;
}

/* getopt's short options from the list, after prefix (':' tells a missing
 * value from an unknown option). */
static void short_options(char *out, size_t cap, const char *prefix)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    for (const struct option *o = long_options; o->name != NULL && n + 3 < cap; o++) {
        if (o->val >= 256)
            continue;
        out[n++] = (char)o->val;
        if (o->has_arg == required_argument)
            out[n++] = ':';
    }
    out[n] = '\0';
}

static unsigned commands_of(int key)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (long_options[i].val == key)
            return option_info[i].commands;
    return 0;
}

static const char *long_name(int key)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (long_options[i].val == key)
            return long_options[i].name;
    return "?";
}

/* "a bench or merge option: tcpmsg bench|merge ...", from the commands'
 * bits. */
static const char *commands_text(unsigned mask, char *buf, size_t cap)
{
    static const char *const names[] = { [CLIENT_BENCH] = "bench", [CLIENT_PROBE] = "probe",
                                         [CLIENT_MERGE] = "merge" };
    const char *list[3];
    size_t n = 0;
    for (size_t c = 0; c < sizeof names / sizeof names[0]; c++)
        if (names[c] != NULL && (mask & FOR(c)) != 0)
            list[n++] = names[c];
    if (n == 0)
        return "not an option of this command";
    size_t k = (size_t)snprintf(buf, cap, "a %s", list[0]);
    for (size_t i = 1; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i + 1 == n ? " or " : ", ", list[i]);
    if (k < cap)
        k += (size_t)snprintf(buf + k, cap - k, " option: tcpmsg %s", list[0]);
    for (size_t i = 1; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "|%s", list[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, " ...");
    return buf;
}

/* "64", "4KiB" or "MIN-MAX". */
static int parse_size_range(struct client_config *cfg, const char *name, const char *v, char *err,
                            size_t cap)
{
    uint64_t lo, hi;
    const char *dash = strchr(v, '-');
    if (dash == NULL || dash == v) {
        int rc = opt_parse_size(name, v, 0, FRAME_MAX_PAYLOAD_LIMIT, &hi, err, cap);
        cfg->size = cfg->size_min = (size_t)hi;
        return rc;
    }
    char first[64];
    snprintf(first, sizeof first, "%.*s", (int)(dash - v), v);
    if (opt_parse_size(name, first, 0, FRAME_MAX_PAYLOAD_LIMIT, &lo, err, cap) < 0 ||
        opt_parse_size(name, dash + 1, 0, FRAME_MAX_PAYLOAD_LIMIT, &hi, err, cap) < 0)
        return -EINVAL;
    if (lo > hi) {
        snprintf(err, cap, "%s: '%s' is not MIN-MAX with MIN <= MAX", name, v);
        return -EINVAL;
    }
    cfg->size_min = (size_t)lo;
    cfg->size = (size_t)hi;
    return 0;
}

/* "50,90,99.9": each in (0, 100], at most CLIENT_MAX_PERCENTILES. */
static int parse_percentiles(struct client_config *cfg, const char *name, const char *v,
                             char *err, size_t cap)
{
    size_t n = 0;
    const char *p = v;
    while (*p != '\0') {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno != 0 || !(x > 0 && x <= 100) || (*end != ',' && *end != '\0') ||
            n == CLIENT_MAX_PERCENTILES) {
            snprintf(err, cap, "%s: '%s' is not a list of up to %d percentiles in (0, 100]", name,
                     v, CLIENT_MAX_PERCENTILES);
            return -EINVAL;
        }
        cfg->percentiles[n++] = x;
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 0) {
        snprintf(err, cap, "%s: the list is empty", name);
        return -EINVAL;
    }
    cfg->npercentiles = n;
    return 0;
}

static int parse_unsigned(const char *name, const char *v, uint64_t min, uint64_t max,
                          unsigned *out, char *err, size_t cap)
{
    uint64_t u = 0;
    int rc = opt_parse_u64(name, v, min, max, &u, err, cap);
    *out = (unsigned)u;
    return rc;
}

static int parse_io(const char *name, const char *v, enum loop_backend *out, char *err, size_t cap)
{
    if (loop_backend_parse(v, out) == 0)
        return 0;
    snprintf(err, cap, "%s: '%s' is not epoll, uring or auto", name, v);
    return -EINVAL;
}

/* A rate per second in [min, max]. */
static int parse_rate(const char *name, const char *v, double min, double max, double *out,
                      char *err, size_t cap)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !(x >= min && x <= max)) {
        snprintf(err, cap, "%s: '%s' is not a rate per second in %g..%g", name, v, min, max);
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int set_http_port(struct client_config *cfg, const char *name, const char *v, char *err,
                         size_t cap)
{
    uint64_t u = 0;
    int rc = opt_parse_u64(name, v, 0, 65535, &u, err, cap);
    cfg->http_port = (int)u;
    return rc;
}

static int set_http_bind(struct client_config *cfg, const char *name, const char *v, char *err,
                         size_t cap)
{
    if (strlen(v) >= sizeof cfg->http_bind) {
        snprintf(err, cap, "%s: '%s' is too long", name, v);
        return -EINVAL;
    }
    /* Checked now: a value that cannot be an address is a usage error. */
    struct sockaddr_storage ss;
    socklen_t len;
    int n = snprintf(err, cap, "%s: ", name);
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    if (net_resolve(v, 0, true, &ss, &len, err + n, cap - (size_t)n) < 0)
        return -EINVAL;
    strcpy(cfg->http_bind, v);
    return 0;
}

/* --serve [ADDR:]PORT: the HTTP endpoint's address, and /probe on it. */
static int set_serve(struct client_config *cfg, const char *name, const char *v, char *err,
                     size_t cap)
{
    char host[sizeof cfg->http_bind];
    uint16_t port = 0;
    const char *colon = strrchr(v, ':');
    int rc = colon != NULL ? net_split_hostport(v, host, sizeof host, &port, 0)
                           : net_parse_port(v, &port);
    if (rc < 0 || (colon == NULL && v[0] == '\0')) {
        snprintf(err, cap, "%s: '%s' is not [ADDR:]PORT", name, v);
        return -EINVAL;
    }
    if (colon != NULL && set_http_bind(cfg, name, host, err, cap) < 0)
        return -EINVAL;
    cfg->http_port = port;
    cfg->serve = true;
    return 0;
}

/* A path read later (points into argv). */
static int set_path(const char **dst, const char *name, const char *v, char *err, size_t cap)
{
    if (v[0] == '\0') {
        snprintf(err, cap, "%s: the path is empty", name);
        return -EINVAL;
    }
    *dst = v;
    return 0;
}

/* --timeout and --duration remember they were given: probe's defaults differ. */
static int set_timeout(struct client_config *cfg, const char *name, const char *v, char *err,
                       size_t cap)
{
    cfg->timeout_set = true;
    return opt_parse_seconds(name, v, 0.001, 86400, &cfg->timeout, err, cap);
}

static int set_duration(struct client_config *cfg, const char *name, const char *v, char *err,
                        size_t cap)
{
    cfg->duration_set = true;
    return opt_parse_seconds(name, v, 0.01, 86400 * 365, &cfg->duration, err, cap);
}

static int set_flag(bool *dst, bool value)
{
    *dst = value;
    return 0;
}

/* --start-at: "2026-12-07T18:30:00Z" (RFC 3339: seconds may have a
 * fraction; Z or an offset such as +01:00), or Unix seconds. */
static int parse_start_at(struct client_config *cfg, const char *name, const char *v, char *err,
                          size_t cap)
{
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    if (end != v && *end == '\0' && errno == 0 && t > 0 && t < 1e11) {
        cfg->start_at = t;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    double frac = 0;
    if (p != NULL && *p == '.') {
        frac = strtod(p, &end);
        p = end;
    }
    long offset = 0;
    bool ok = p != NULL;
    if (ok && (*p == 'Z' || *p == 'z')) {
        ok = p[1] == '\0';
    } else if (ok && (*p == '+' || *p == '-')) {
        int hh, mm, n = 0;
        ok = sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 && p[1 + n] == '\0' && hh < 24 &&
             mm < 60;
        offset = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
    } else {
        ok = false;
    }
    time_t secs = ok ? timegm(&tm) : (time_t)-1;
    if (!ok || secs == (time_t)-1) {
        snprintf(err, cap,
                 "%s: '%s' is not a time: RFC 3339 (2026-12-07T18:30:00Z) or Unix seconds", name,
                 v);
        return -EINVAL;
    }
    cfg->start_at = (double)(secs - offset) + frac;
    return 0;
}

/* A file written after the run: points into argv. Its directory is checked
 * now, so that a typo is a usage error (exit 2) at once, not an I/O error
 * at the end of a long run. */
static int set_out_path(const char **dst, const char *name, const char *v, char *err,
                        size_t cap)
{
    char dir[4096];
    const char *slash = strrchr(v, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == v ? 1 : (int)(slash - v), v);
    if (v[0] == '\0' || (slash != NULL && slash[1] == '\0')) {
        snprintf(err, cap, "%s: '%s' is not a file name", name, v);
        return -EINVAL;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        snprintf(err, cap, "%s: cannot write in '%.150s': %s", name, dir, strerror(errno));
        return -EINVAL;
    }
    *dst = v;
    return 0;
}

/* Apply option key (getopt_long's value) with value v (NULL when it takes
 * none): 0, OPTION_EXIT, or -EINVAL with the message in err. */
static int apply(struct client_config *cfg, int key, const char *name, const char *v, FILE *out,
                 char *err, size_t cap)
{
    switch (key) {
#define OPTION_CASE(id, name_, letter, has_arg, commands, value, text, probe_value, probe_text, \
                    action)                                                                    \
    case OPTION_KEY(id, letter):                                                               \
        return action;
        CLIENT_OPTIONS(OPTION_CASE)
#undef OPTION_CASE
    }
    snprintf(err, cap, "%s: not an option", name);
    return -EINVAL;
}

__attribute__((format(printf, 2, 3))) static enum client_config_result fail(FILE *err,
                                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tcpmsg: ", err);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", err);
    return CLIENT_CONFIG_ERROR;
}

static int first_argument(struct client_config *cfg, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        cfg->command = CLIENT_BENCH;
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        cfg->command = CLIENT_PROBE;
        cfg->interval = 1;
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "merge") == 0) {
        cfg->command = CLIENT_MERGE;
        return 2;
    }
    return 1;
}

/* "::1:8080": an IPv6 address written without brackets whose last group
 * looks like a port. It would be read as the address ::0.1.128.128 (or,
 * with five digits, as nothing at all), never as port 8080 of ::1, so it is
 * refused with the spelling that says which was meant; hint gets it. */
static bool ambiguous_ipv6_port(const char *arg, char *hint, size_t cap)
{
    const char *last = strrchr(arg, ':');
    if (arg[0] == '[' || last == NULL || strchr(arg, ':') == last)
        return false;
    size_t digits = strspn(last + 1, "0123456789");
    if (digits == 0 || digits > 5 || last[1 + digits] != '\0')
        return false;
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if ((size_t)(last - arg) >= sizeof addr)
        return false;
    snprintf(addr, sizeof addr, "%.*s", (int)(last - arg), arg);
    if (inet_pton(AF_INET6, addr, &a) != 1 || strtoul(last + 1, NULL, 10) > 65535)
        return false;
    if (inet_pton(AF_INET6, arg, &a) == 1)
        snprintf(hint, cap, "is it port %s of %s ([%s]:%s) or the address [%s]?", last + 1, addr,
                 addr, last + 1, arg);
    else
        snprintf(hint, cap, "an IPv6 address with a port is written [%s]:%s", addr, last + 1);
    return true;
}

/* The positional arguments after the options. */
static enum client_config_result parse_operands(struct client_config *cfg, int arg, int argc,
                                                char **argv, FILE *err)
{
    if (cfg->command == CLIENT_MERGE) {
        if (arg >= argc)
            return fail(err, "%s", "missing FILE: the logs to merge");
        cfg->messages = argv + arg;
        cfg->nmessages = (size_t)(argc - arg);
        return CLIENT_CONFIG_OK;
    }
    if (arg >= argc && cfg->command == CLIENT_PROBE && (cfg->serve || cfg->targets_file)) {
        /* --serve alone: the targets come with each request; --targets:
         * from the file, which may list none yet. */
        cfg->nmessages = 0;
        return CLIENT_CONFIG_OK;
    }
    if (arg >= argc)
        return fail(err, "%s", "missing HOST[:PORT]");
    if (cfg->command == CLIENT_PROBE && argc - arg > CLIENT_MAX_TARGETS)
        return fail(err, "at most %d probe targets", CLIENT_MAX_TARGETS);
    for (int i = arg; i < argc && (i == arg || cfg->command == CLIENT_PROBE); i++) {
        char hint[256];
        if (ambiguous_ipv6_port(argv[i], hint, sizeof hint))
            return fail(err, "'%s': %s", argv[i], hint);
        if (net_split_hostport(argv[i], cfg->host, sizeof cfg->host, &cfg->port,
                               CLIENT_DEFAULT_PORT) < 0)
            return fail(err, "'%s' is not HOST[:PORT]", argv[i]);
    }
    if (cfg->command == CLIENT_PROBE) {
        cfg->messages = argv + arg; /* the targets */
        cfg->nmessages = (size_t)(argc - arg);
        return CLIENT_CONFIG_OK;
    }
    arg++;
    if (cfg->command == CLIENT_BENCH && arg < argc)
        return fail(err, "unexpected argument '%s'", argv[arg]);
    cfg->messages = argv + arg;
    cfg->nmessages = (size_t)(argc - arg);
    return CLIENT_CONFIG_OK;
}

enum client_config_result client_config_parse(struct client_config *cfg, int argc, char **argv,
                                              FILE *out, FILE *err)
{
    int first = first_argument(cfg, argc, argv);
    optind = 0; /* glibc: 0 fully reinitialises getopt */
    opterr = 0;
    int opt;
    /* One-shot stops at the first non-option ("+"), so a MESSAGE after the
     * address may start with '-'; bench and probe take options anywhere. */
    char shortopts[16];
    short_options(shortopts, sizeof shortopts, cfg->command == CLIENT_ONESHOT ? "+:" : ":");
    while ((opt = getopt_long(argc - first + 1, argv + first - 1, shortopts, long_options,
                              NULL)) != -1) {
        char msg[256], name[64];
        switch (opt) {
        case ':':
            return fail(err, "%s needs a value", argv[first - 1 + optind - 1]);
        case '?':
            opt_bad_option_message(msg, sizeof msg, argv[first - 1 + optind - 1], optopt,
                                   long_options);
            return fail(err, "%s", msg);
        default:
            if ((commands_of(opt) & FOR(cfg->command)) == 0)
                return fail(err, "--%s is %s", long_name(opt),
                            commands_text(commands_of(opt), msg, sizeof msg));
            snprintf(name, sizeof name, "--%s", long_name(opt));
            int rc = apply(cfg, opt, name, optarg, out, msg, sizeof msg);
            if (rc == OPTION_EXIT)
                return CLIENT_CONFIG_EXIT;
            if (rc < 0)
                return fail(err, "%s", msg);
        }
    }
    if (cfg->command == CLIENT_PROBE && !cfg->timeout_set)
        cfg->timeout = CLIENT_PROBE_TIMEOUT;
    return parse_operands(cfg, first - 1 + optind, argc, argv, err);
}
