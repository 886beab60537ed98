/* client config: defaults and the tcpmsg command line. */
#include "client/client_config.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"

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
    cfg->duration = 5;
    cfg->threads = 1;
}

static void usage(FILE *out)
{
    fputs(
        "Usage: tcpmsg [OPTION]... HOST[:PORT] [MESSAGE]...\n"
        "       tcpmsg bench [OPTION]... HOST[:PORT]\n"
        "Send messages to a tcpmsgd server (or any echo server) and print each reply\n"
        "with its round-trip time. With no MESSAGE, each line of standard input is a\n"
        "message. HOST is a name, an IPv4 address or [IPv6]; PORT defaults to 8080.\n"
        "\n"
        "  --timeout SEC        give up on connecting or on a reply after SEC seconds\n"
        "                       (default 5)\n"
        "  --text               send text lines instead of framed messages\n"
        "  --no-report          do not send the measured round-trip times to the server\n"
        "                       (framed mode reports them, for the server's metrics)\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "bench: a closed-loop load generator; every reply is checked byte for byte.\n"
        "  --connections N      concurrent connections (default 1)\n"
        "  --depth N            messages in flight per connection (default 1)\n"
        "  --size BYTES         payload size, e.g. 64, 4KiB (default 64)\n"
        "  --duration SEC       run this long (default 5)\n"
        "  --count N            or stop after N messages in all\n"
        "  --threads N          client threads sharing the connections (default 1)\n"
        "  --json               print the result as one JSON object\n"
        "\n"
        "Exit status: 0 success; 1 I/O error or the server closed the connection (bench:\n"
        "any error); 2 bad usage or address; 3 cannot connect; 4 timeout; 5 a reply did\n"
        "not match the message; 6 the server answered with an error.\n",
        out);
}

enum {
    OPT_TIMEOUT = 256, OPT_TEXT, OPT_NO_REPORT, OPT_CONNECTIONS, OPT_DEPTH, OPT_SIZE, OPT_DURATION, OPT_COUNT,
    OPT_THREADS, OPT_JSON,
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
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static bool bench_only(int opt)
{
    return opt >= OPT_CONNECTIONS && opt <= OPT_JSON;
}

static int apply(struct client_config *cfg, int opt, const char *name, const char *v, char *err,
                 size_t cap)
{
    uint64_t u = 0;
    int rc = 0;
    switch (opt) {
    case OPT_TIMEOUT:
        return opt_parse_seconds(name, v, 0.001, 86400, &cfg->timeout, err, cap);
    case OPT_TEXT:
        cfg->text = true;
        return 0;
    case OPT_NO_REPORT:
        cfg->report = false;
        return 0;
    case OPT_CONNECTIONS:
        rc = opt_parse_u64(name, v, 1, 100000, &u, err, cap);
        cfg->connections = (unsigned)u;
        break;
    case OPT_DEPTH:
        rc = opt_parse_u64(name, v, 1, 4096, &u, err, cap);
        cfg->depth = (unsigned)u;
        break;
    case OPT_SIZE:
        rc = opt_parse_size(name, v, 0, FRAME_MAX_PAYLOAD_LIMIT, &u, err, cap);
        cfg->size = (size_t)u;
        break;
    case OPT_DURATION:
        return opt_parse_seconds(name, v, 0.01, 86400, &cfg->duration, err, cap);
    case OPT_COUNT:
        rc = opt_parse_u64(name, v, 1, UINT64_MAX, &u, err, cap);
        cfg->count = u;
        break;
    case OPT_THREADS:
        rc = opt_parse_u64(name, v, 1, 256, &u, err, cap);
        cfg->threads = (unsigned)u;
        break;
    case OPT_JSON:
        cfg->json = true;
        return 0;
    }
    return rc;
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

enum client_config_result client_config_parse(struct client_config *cfg, int argc, char **argv,
                                              FILE *out, FILE *err)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        cfg->command = CLIENT_BENCH;
        first = 2;
    }
    optind = 0; /* glibc: 0 fully reinitialises getopt */
    opterr = 0;
    int opt, idx;
    /* One-shot stops at the first non-option ("+"), so a MESSAGE after the
     * address may start with '-'; bench takes options anywhere. */
    const char *shortopts = cfg->command == CLIENT_BENCH ? ":hV" : "+:hV";
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
            if (bench_only(opt) && cfg->command != CLIENT_BENCH)
                return fail(err, "--%s is a bench option: tcpmsg bench ...", long_options[idx].name);
            char name[64];
            snprintf(name, sizeof name, "--%s", long_options[idx].name);
            if (apply(cfg, opt, name, optarg, msg, sizeof msg) < 0)
                return fail(err, "%s", msg);
        }
    }
    int arg = first - 1 + optind;
    if (arg >= argc)
        return fail(err, "%s", "missing HOST[:PORT]");
    if (net_split_hostport(argv[arg], cfg->host, sizeof cfg->host, &cfg->port, CLIENT_DEFAULT_PORT) < 0)
        return fail(err, "'%s' is not HOST[:PORT]", argv[arg]);
    arg++;
    if (cfg->command == CLIENT_BENCH && arg < argc)
        return fail(err, "unexpected argument '%s'", argv[arg]);
    cfg->messages = argv + arg;
    cfg->nmessages = (size_t)(argc - arg);
    return CLIENT_CONFIG_OK;
}
