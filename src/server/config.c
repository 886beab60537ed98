/* server config: defaults and the tcpmsgd command line. */
#include "server/config.h"

#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/opt.h"

#define MAX_THREADS 256
#define MAX_CONNS_LIMIT 1000000
#define MAX_SECONDS 86400.0

void server_config_defaults(struct server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->bind_addr, "0.0.0.0");
    cfg->port = 8080;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cpus > 0 ? (unsigned)(cpus < MAX_THREADS ? cpus : MAX_THREADS) : 1;
    cfg->backlog = 1024;
    cfg->max_children = 512;
    cfg->max_conns = 10000;
    cfg->max_conns_per_ip = 4096;
    cfg->max_payload = FRAME_DEFAULT_MAX_PAYLOAD;
    cfg->max_pending_output = 4u << 20;
    cfg->max_buffer_memory = UINT64_C(256) << 20;
    cfg->memory_grace = 2;
    cfg->idle_timeout = 300;
    cfg->frame_timeout = 30;
    cfg->write_timeout = 30;
    cfg->drain_timeout = 5;
    cfg->rtt_reports = true;
    strcpy(cfg->http_bind, "127.0.0.1");
    cfg->http_port = 8081;
    cfg->http_enabled = true;
    snprintf(cfg->web_root, sizeof cfg->web_root, "%s", TCPMSG_WEB_ROOT);
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->log_level = LOG_INFO;
}

static void usage(FILE *out)
{
    fputs(
        "Usage: tcpmsgd [OPTION]...\n"
        "A TCP message server: echoes framed or text messages and measures them.\n"
        "\n"
        "Listening:\n"
        "  --bind ADDR               address to listen on, IPv4 or IPv6 (default 0.0.0.0;\n"
        "                            '::' takes IPv4 and IPv6)\n"
        "  --port N                  TCP port, 0 picks a free one (default 8080)\n"
        "  --backlog N               length of the kernel's accept queue (default 1024)\n"
        "  --threads N               worker threads, each with its own epoll loop\n"
        "                            (default: online CPUs)\n"
        "  --mode epoll|fork         epoll: event loops on worker threads (default);\n"
        "                            fork: a child process per client, statistics\n"
        "                            sent to the parent over a pipe\n"
        "  --max-children N          fork mode: live children at most (default 512)\n"
        "Limits:\n"
        "  --max-conns N             open connections over all clients (default 10000)\n"
        "  --max-conns-per-ip N      open connections from one address (default 4096)\n"
        "  --max-payload BYTES       largest message, up to 16777215 (default 1MiB)\n"
        "  --max-pending-output BYTES\n"
        "                            unsent reply bytes per connection before the server\n"
        "                            stops reading from it (default 4MiB)\n"
        "  --max-buffer-memory BYTES\n"
        "                            input and output buffers of all connections together;\n"
        "                            over it the server stops reading from connections\n"
        "                            holding 4 KiB or more (default 256MiB)\n"
        "  --memory-grace SEC        then, still over it after this long, it closes the\n"
        "                            largest holders (default 2)\n"
        "  --rtt-reports accept|ignore\n"
        "                            accept: add clients' RTT reports that keep the rules\n"
        "                            (docs/PROTOCOL.md) to tcpmsg_client_rtt_seconds\n"
        "                            (default); ignore: drop and count every report\n"
        "Timeouts (seconds, fractions allowed, 0 turns one off):\n"
        "  --idle-timeout SEC        close a connection silent this long (default 300)\n"
        "  --frame-timeout SEC       deadline to complete a message once begun (default 30)\n"
        "  --write-timeout SEC       close a connection whose pending replies make no\n"
        "                            progress this long: a client that never reads\n"
        "                            (default 30)\n"
        "  --drain-timeout SEC       on SIGINT/SIGTERM, time allowed for in-flight replies\n"
        "                            before connections are closed (default 5)\n"
        "HTTP endpoint (metrics, health, connections, status page):\n"
        "  --http-bind ADDR          address for the endpoint (default 127.0.0.1: local only)\n"
        "  --http-port N             its port, 0 picks a free one (default 8081)\n"
        "  --no-http                 do not start the endpoint\n"
        "  --web-root DIR            directory of the status page (default: the web/\n"
        "                            folder of the source tree)\n"
        "  --web-config FILE         TLS and basic auth for the endpoint, in the web\n"
        "                            configuration format of Prometheus exporters\n"
        "                            (tls_server_config, basic_auth_users); /healthz\n"
        "                            stays open, every other path needs credentials\n"
        "Logging (to standard error):\n"
        "  --log-format text|json    line format (default text)\n"
        "  --log-level LEVEL         debug, info, warn or error (default info)\n"
        "  -v, --verbose             same as --log-level debug: log every message\n"
        "  -h, --help                show this help and exit\n"
        "  -V, --version             show the version and exit\n"
        "\n"
        "Exit status: 0 after a clean shutdown, 1 when the server cannot start,\n"
        "2 for a bad option.\n",
        out);
}

enum {
    OPT_BIND = 256, OPT_PORT, OPT_BACKLOG, OPT_THREADS, OPT_MAX_CONNS, OPT_MAX_CONNS_PER_IP,
    OPT_MAX_PAYLOAD, OPT_MAX_PENDING, OPT_IDLE, OPT_FRAME, OPT_WRITE, OPT_DRAIN, OPT_LOG_FORMAT,
    OPT_LOG_LEVEL, OPT_HTTP_BIND, OPT_HTTP_PORT, OPT_NO_HTTP, OPT_WEB_ROOT, OPT_MODE,
    OPT_MAX_CHILDREN, OPT_MAX_BUFFER_MEMORY, OPT_MEMORY_GRACE, OPT_WEB_CONFIG,
    OPT_RTT_REPORTS,
};

static const struct option long_options[] = {
    { "bind", required_argument, NULL, OPT_BIND },
    { "port", required_argument, NULL, OPT_PORT },
    { "backlog", required_argument, NULL, OPT_BACKLOG },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "mode", required_argument, NULL, OPT_MODE },
    { "max-children", required_argument, NULL, OPT_MAX_CHILDREN },
    { "max-conns", required_argument, NULL, OPT_MAX_CONNS },
    { "max-conns-per-ip", required_argument, NULL, OPT_MAX_CONNS_PER_IP },
    { "max-payload", required_argument, NULL, OPT_MAX_PAYLOAD },
    { "max-pending-output", required_argument, NULL, OPT_MAX_PENDING },
    { "max-buffer-memory", required_argument, NULL, OPT_MAX_BUFFER_MEMORY },
    { "memory-grace", required_argument, NULL, OPT_MEMORY_GRACE },
    { "rtt-reports", required_argument, NULL, OPT_RTT_REPORTS },
    { "idle-timeout", required_argument, NULL, OPT_IDLE },
    { "frame-timeout", required_argument, NULL, OPT_FRAME },
    { "write-timeout", required_argument, NULL, OPT_WRITE },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN },
    { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "http-bind", required_argument, NULL, OPT_HTTP_BIND },
    { "http-port", required_argument, NULL, OPT_HTTP_PORT },
    { "no-http", no_argument, NULL, OPT_NO_HTTP },
    { "web-root", required_argument, NULL, OPT_WEB_ROOT },
    { "web-config", required_argument, NULL, OPT_WEB_CONFIG },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static int copy_value(char *dst, size_t dst_cap, const char *name, const char *v, char *err,
                      size_t cap)
{
    if (strlen(v) == 0 || strlen(v) >= dst_cap) {
        snprintf(err, cap, "%s: '%s' is empty or too long", name, v);
        return -1;
    }
    strcpy(dst, v);
    return 0;
}

/* Apply one option with a value; 0 or -EINVAL with err filled. */
static int apply(struct server_config *cfg, int opt, const char *name, const char *v, char *err,
                 size_t cap)
{
    uint64_t u = 0;
    int rc = 0;
    switch (opt) {
    case OPT_BIND:
        return copy_value(cfg->bind_addr, sizeof cfg->bind_addr, name, v, err, cap);
    case OPT_HTTP_BIND:
        return copy_value(cfg->http_bind, sizeof cfg->http_bind, name, v, err, cap);
    case OPT_WEB_ROOT:
        return copy_value(cfg->web_root, sizeof cfg->web_root, name, v, err, cap);
    case OPT_WEB_CONFIG:
        return copy_value(cfg->web_config, sizeof cfg->web_config, name, v, err, cap);
    case OPT_HTTP_PORT:
        rc = opt_parse_u64(name, v, 0, 65535, &u, err, cap);
        cfg->http_port = (uint16_t)u;
        break;
    case OPT_NO_HTTP:
        cfg->http_enabled = false;
        return 0;
    case OPT_MODE:
        if (strcmp(v, "epoll") != 0 && strcmp(v, "fork") != 0) {
            snprintf(err, cap, "%s: '%s' is not one of epoll, fork", name, v);
            return -1;
        }
        cfg->fork_mode = strcmp(v, "fork") == 0;
        return 0;
    case OPT_RTT_REPORTS:
        if (strcmp(v, "accept") != 0 && strcmp(v, "ignore") != 0) {
            snprintf(err, cap, "%s: '%s' is not one of accept, ignore", name, v);
            return -1;
        }
        cfg->rtt_reports = strcmp(v, "accept") == 0;
        return 0;
    case OPT_MAX_CHILDREN:
        rc = opt_parse_u64(name, v, 1, 100000, &u, err, cap);
        cfg->max_children = (unsigned)u;
        break;
    case OPT_PORT:
        rc = opt_parse_u64(name, v, 0, 65535, &u, err, cap);
        cfg->port = (uint16_t)u;
        break;
    case OPT_BACKLOG:
        rc = opt_parse_u64(name, v, 1, 65535, &u, err, cap);
        cfg->backlog = (unsigned)u;
        break;
    case OPT_THREADS:
        rc = opt_parse_u64(name, v, 1, MAX_THREADS, &u, err, cap);
        cfg->threads = (unsigned)u;
        break;
    case OPT_MAX_CONNS:
        rc = opt_parse_u64(name, v, 1, MAX_CONNS_LIMIT, &u, err, cap);
        cfg->max_conns = (unsigned)u;
        break;
    case OPT_MAX_CONNS_PER_IP:
        rc = opt_parse_u64(name, v, 1, MAX_CONNS_LIMIT, &u, err, cap);
        cfg->max_conns_per_ip = (unsigned)u;
        break;
    case OPT_MAX_PAYLOAD:
        rc = opt_parse_size(name, v, 1, FRAME_MAX_PAYLOAD_LIMIT, &u, err, cap);
        cfg->max_payload = (size_t)u;
        break;
    case OPT_MAX_PENDING:
        rc = opt_parse_size(name, v, 1024, UINT64_C(1) << 30, &u, err, cap);
        cfg->max_pending_output = (size_t)u;
        break;
    case OPT_MAX_BUFFER_MEMORY:
        rc = opt_parse_size(name, v, 64 * 1024, UINT64_C(1) << 40, &u, err, cap);
        cfg->max_buffer_memory = u;
        break;
    case OPT_MEMORY_GRACE:
        return opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->memory_grace, err, cap);
    case OPT_IDLE:
        return opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->idle_timeout, err, cap);
    case OPT_FRAME:
        return opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->frame_timeout, err, cap);
    case OPT_WRITE:
        return opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->write_timeout, err, cap);
    case OPT_DRAIN:
        return opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->drain_timeout, err, cap);
    case OPT_LOG_FORMAT:
        if (!log_parse_format(v, &cfg->log_format)) {
            snprintf(err, cap, "%s: '%s' is not one of text, json", name, v);
            return -1;
        }
        return 0;
    case OPT_LOG_LEVEL:
        if (!log_parse_level(v, &cfg->log_level)) {
            snprintf(err, cap, "%s: '%s' is not one of debug, info, warn, error", name, v);
            return -1;
        }
        return 0;
    }
    return rc;
}

enum config_result server_config_parse(struct server_config *cfg, int argc, char **argv,
                                       FILE *out, FILE *err)
{
    optind = 0; /* glibc: 0 fully reinitialises getopt */
    opterr = 0; /* we print our own messages */
    int opt, idx;
    while ((opt = getopt_long(argc, argv, ":hvV", long_options, &idx)) != -1) {
        char msg[256];
        switch (opt) {
        case 'h':
            usage(out);
            return CONFIG_EXIT;
        case 'V':
            fprintf(out, "tcpmsgd %s\n", TCPMSG_VERSION);
            return CONFIG_EXIT;
        case 'v':
            cfg->log_level = LOG_DEBUG;
            break;
        case ':':
            fprintf(err, "tcpmsgd: %s needs a value (see --help)\n", argv[optind - 1]);
            return CONFIG_ERROR;
        case '?':
            opt_bad_option_message(msg, sizeof msg, argv[optind - 1], optopt, long_options);
            fprintf(err, "tcpmsgd: %s (see --help)\n", msg);
            return CONFIG_ERROR;
        default: {
            char name[64];
            snprintf(name, sizeof name, "--%s", long_options[idx].name);
            if (apply(cfg, opt, name, optarg, msg, sizeof msg) < 0) {
                fprintf(err, "tcpmsgd: %s\n", msg);
                return CONFIG_ERROR;
            }
        }
        }
    }
    if (optind < argc) {
        fprintf(err, "tcpmsgd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return CONFIG_ERROR;
    }
    if (cfg->web_config[0] != '\0' && !cfg->http_enabled) {
        fprintf(err, "tcpmsgd: --web-config configures the HTTP endpoint, which --no-http "
                     "turns off\n");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
