/* client config: defaults and the tcpmsg command line. */
#include "client/client_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"

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

static void usage(FILE *out)
{
    fputs(
        "Usage: tcpmsg [OPTION]... HOST[:PORT] [MESSAGE]...\n"
        "       tcpmsg bench [OPTION]... HOST[:PORT]\n"
        "       tcpmsg probe [OPTION]... HOST[:PORT]...\n"
        "Send messages to a tcpmsgd server (or any echo server) and print each reply\n"
        "with its round-trip time. With no MESSAGE, each line of standard input is a\n"
        "message. HOST is a name, an IPv4 address or [IPv6]; PORT defaults to 8080.\n"
        "\n"
        "  --timeout SEC        give up on connecting or on a reply after SEC seconds\n"
        "                       (default 5; probe: 1)\n"
        "  --text               send text lines instead of framed messages\n"
        "  --no-report          do not send the measured round-trip times to the server\n"
        "                       (framed mode reports them, for the server's metrics)\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "bench: a load generator; every reply is checked byte for byte.\n"
        "  --connections N      concurrent connections (default 1)\n"
        "  --depth N            messages in flight per connection, at most (default 1)\n"
        "  --size BYTES|MIN-MAX payload size, e.g. 64, 4KiB, or random in 16-1KiB (default 64)\n"
        "  --seed N             seed for random sizes and jitter (default 1)\n"
        "  --duration SEC       measure this long (default 5)\n"
        "  --count N            or stop after N messages in all\n"
        "  --warmup SEC         run the load this long first, excluded from the results\n"
        "  --threads N          client threads sharing the connections (default 1)\n"
        "  --rate MSGS_PER_S    open loop: send at this constant total rate; latency is\n"
        "                       measured from each message's intended send time\n"
        "  --connect-rate N     open at most N connections per second (default: at once)\n"
        "  --io epoll|uring|auto  each thread's event loop: epoll, io_uring, or io_uring\n"
        "                       where the kernel allows it (default auto)\n"
        "  --sqpoll             io_uring with a kernel thread polling for submissions\n"
        "  --interval SEC       print a report every SEC seconds while running\n"
        "  --percentiles LIST   percentiles to report (default 50,90,99,99.9)\n"
        "  --histogram-out FILE write the percentile spectrum (HdrHistogram text layout)\n"
        "  --plot FILE.svg      draw latency by percentile as an SVG image\n"
        "  --json               print JSON: one object, or with --interval one event a line\n"
        "\n"
        "probe: probe each target every --interval seconds (default 1, with jitter),\n"
        "one line per probe; timeouts and failed connections count as loss.\n"
        "  --interval SEC       seconds between probes of a target (default 1)\n"
        "  --count N            stop after N probes of each target (default: never)\n"
        "  --duration SEC       stop after SEC seconds (default: never)\n"
        "  --size BYTES         probe payload size (default 64)\n"
        "  --http-port N        serve Prometheus metrics at http://ADDR:N/metrics\n"
        "  --http-bind ADDR     address for --http-port (default 127.0.0.1)\n"
        "  --json               one JSON object per probe\n"
        "\n"
        "Exit status: 0 success; 1 I/O error or the server closed the connection (bench:\n"
        "any error); 2 bad usage or address; 3 cannot connect; 4 timeout; 5 a reply did\n"
        "not match the message; 6 the server answered with an error.\n",
        out);
}

enum {
    OPT_TIMEOUT = 256, OPT_TEXT, OPT_NO_REPORT, OPT_CONNECTIONS, OPT_DEPTH, OPT_SIZE, OPT_DURATION,
    OPT_COUNT, OPT_THREADS, OPT_JSON, OPT_RATE, OPT_INTERVAL, OPT_PERCENTILES, OPT_HIST_OUT,
    OPT_PLOT, OPT_SEED, OPT_WARMUP, OPT_CONNECT_RATE, OPT_HTTP_PORT, OPT_HTTP_BIND, OPT_IO,
    OPT_SQPOLL,
};

static const struct option long_options[] = {
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "text", no_argument, NULL, OPT_TEXT },
    { "no-report", no_argument, NULL, OPT_NO_REPORT },
    { "connections", required_argument, NULL, OPT_CONNECTIONS },
    { "depth", required_argument, NULL, OPT_DEPTH },
    { "size", required_argument, NULL, OPT_SIZE },
    { "duration", required_argument, NULL, OPT_DURATION },
    { "count", required_argument, NULL, OPT_COUNT },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "json", no_argument, NULL, OPT_JSON },
    { "rate", required_argument, NULL, OPT_RATE },
    { "interval", required_argument, NULL, OPT_INTERVAL },
    { "percentiles", required_argument, NULL, OPT_PERCENTILES },
    { "histogram-out", required_argument, NULL, OPT_HIST_OUT },
    { "plot", required_argument, NULL, OPT_PLOT },
    { "seed", required_argument, NULL, OPT_SEED },
    { "warmup", required_argument, NULL, OPT_WARMUP },
    { "connect-rate", required_argument, NULL, OPT_CONNECT_RATE },
    { "http-port", required_argument, NULL, OPT_HTTP_PORT },
    { "http-bind", required_argument, NULL, OPT_HTTP_BIND },
    { "io", required_argument, NULL, OPT_IO },
    { "sqpoll", no_argument, NULL, OPT_SQPOLL },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Which commands take an option: a bit per enum client_command. */
#define FOR(cmd) (1u << (cmd))
#define ALL (FOR(CLIENT_ONESHOT) | FOR(CLIENT_BENCH) | FOR(CLIENT_PROBE))
#define LOAD (FOR(CLIENT_BENCH) | FOR(CLIENT_PROBE))

static unsigned commands_of(int opt)
{
    switch (opt) {
    case OPT_TIMEOUT: case OPT_TEXT: case OPT_NO_REPORT:
        return ALL;
    case OPT_SIZE: case OPT_DURATION: case OPT_COUNT: case OPT_JSON: case OPT_INTERVAL:
    case OPT_SEED:
        return LOAD;
    case OPT_HTTP_PORT: case OPT_HTTP_BIND:
        return FOR(CLIENT_PROBE);
    default:
        return FOR(CLIENT_BENCH);
    }
}

static const char *commands_text(unsigned mask)
{
    if (mask == FOR(CLIENT_PROBE))
        return "a probe option: tcpmsg probe ...";
    if (mask == LOAD)
        return "a bench or probe option: tcpmsg bench|probe ...";
    return "a bench option: tcpmsg bench ...";
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

/* --io: the event loop backend. */
static int parse_io(const char *name, const char *v, enum loop_backend *out, char *err, size_t cap)
{
    static const struct {
        const char *name;
        enum loop_backend backend;
    } names[] = { { "auto", LOOP_AUTO }, { "epoll", LOOP_EPOLL }, { "uring", LOOP_URING } };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i].name) == 0) {
            *out = names[i].backend;
            return 0;
        }
    }
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

static int apply_probe(struct client_config *cfg, int opt, const char *name, const char *v,
                       char *err, size_t cap)
{
    uint64_t u = 0;
    if (opt == OPT_HTTP_PORT) {
        int rc = opt_parse_u64(name, v, 0, 65535, &u, err, cap);
        cfg->http_port = (int)u;
        return rc;
    }
    if (strlen(v) >= sizeof cfg->http_bind) {
        snprintf(err, cap, "%s: '%s' is too long", name, v);
        return -EINVAL;
    }
    strcpy(cfg->http_bind, v);
    return 0;
}

static int apply(struct client_config *cfg, int opt, const char *name, const char *v, char *err,
                 size_t cap)
{
    switch (opt) {
    case OPT_TIMEOUT:
        cfg->timeout_set = true;
        return opt_parse_seconds(name, v, 0.001, 86400, &cfg->timeout, err, cap);
    case OPT_TEXT:
        cfg->text = true;
        return 0;
    case OPT_NO_REPORT:
        cfg->report = false;
        return 0;
    case OPT_CONNECTIONS:
        return parse_unsigned(name, v, 1, 100000, &cfg->connections, err, cap);
    case OPT_DEPTH:
        return parse_unsigned(name, v, 1, 4096, &cfg->depth, err, cap);
    case OPT_SIZE:
        return parse_size_range(cfg, name, v, err, cap);
    case OPT_DURATION:
        cfg->duration_set = true;
        return opt_parse_seconds(name, v, 0.01, 86400 * 365, &cfg->duration, err, cap);
    case OPT_COUNT:
        return opt_parse_u64(name, v, 1, UINT64_MAX, &cfg->count, err, cap);
    case OPT_THREADS:
        return parse_unsigned(name, v, 1, 256, &cfg->threads, err, cap);
    case OPT_JSON:
        cfg->json = true;
        return 0;
    case OPT_RATE:
        return parse_rate(name, v, 0.01, 1e8, &cfg->rate, err, cap);
    case OPT_INTERVAL:
        return opt_parse_seconds(name, v, 0.01, 86400, &cfg->interval, err, cap);
    case OPT_PERCENTILES:
        return parse_percentiles(cfg, name, v, err, cap);
    case OPT_HIST_OUT:
        cfg->histogram_out = v;
        return 0;
    case OPT_PLOT:
        cfg->plot_out = v;
        return 0;
    case OPT_SEED:
        return opt_parse_u64(name, v, 0, UINT64_MAX, &cfg->seed, err, cap);
    case OPT_WARMUP:
        return opt_parse_seconds(name, v, 0, 86400, &cfg->warmup, err, cap);
    case OPT_CONNECT_RATE:
        return parse_rate(name, v, 0.01, 1e7, &cfg->connect_rate, err, cap);
    case OPT_IO:
        return parse_io(name, v, &cfg->io, err, cap);
    case OPT_SQPOLL:
        cfg->sqpoll = true;
        return 0;
    }
    return apply_probe(cfg, opt, name, v, err, cap);
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
    return 1;
}

/* The positional arguments after the options. */
static enum client_config_result parse_operands(struct client_config *cfg, int arg, int argc,
                                                char **argv, FILE *err)
{
    if (arg >= argc)
        return fail(err, "%s", "missing HOST[:PORT]");
    if (cfg->command == CLIENT_PROBE && argc - arg > CLIENT_MAX_TARGETS)
        return fail(err, "at most %d probe targets", CLIENT_MAX_TARGETS);
    for (int i = arg; i < argc && (i == arg || cfg->command == CLIENT_PROBE); i++) {
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
    int opt, idx;
    /* One-shot stops at the first non-option ("+"), so a MESSAGE after the
     * address may start with '-'; bench and probe take options anywhere. */
    const char *shortopts = cfg->command == CLIENT_ONESHOT ? "+:hV" : ":hV";
    while ((opt = getopt_long(argc - first + 1, argv + first - 1, shortopts, long_options, &idx)) != -1) {
        char msg[256];
        switch (opt) {
        case 'h':
            usage(out);
            return CLIENT_CONFIG_EXIT;
        case 'V':
            fprintf(out, "tcpmsg %s\n", TCPMSG_VERSION);
            return CLIENT_CONFIG_EXIT;
        case ':':
            return fail(err, "%s needs a value", argv[first - 1 + optind - 1]);
        case '?':
            opt_bad_option_message(msg, sizeof msg, argv[first - 1 + optind - 1], optopt,
                                   long_options);
            return fail(err, "%s", msg);
        default:
            if ((commands_of(opt) & FOR(cfg->command)) == 0)
                return fail(err, "--%s is %s", long_options[idx].name,
                            commands_text(commands_of(opt)));
            char name[64];
            snprintf(name, sizeof name, "--%s", long_options[idx].name);
            if (apply(cfg, opt, name, optarg, msg, sizeof msg) < 0)
                return fail(err, "%s", msg);
        }
    }
    if (cfg->command == CLIENT_PROBE && !cfg->timeout_set)
        cfg->timeout = CLIENT_PROBE_TIMEOUT;
    return parse_operands(cfg, first - 1 + optind, argc, argv, err);
}
