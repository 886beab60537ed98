/* server config: defaults and the tcpmsgd command line. */
#include "server/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"
#include "tcpmsg/version.h"
#include "tcpmsg/webroot.h"

#define MAX_THREADS 256
#define MAX_CONNS_LIMIT 1000000
#define MAX_SECONDS 86400.0

/* The status page's directory when --web-root is not given: the source
 * tree's web/ for a program of the build tree, else the share/tcpmsg/web
 * installed beside the program (tcpmsg/webroot.h). When neither exists,
 * web_root keeps where an installed copy's files would be, for the warning
 * and for the HTTP endpoint's own. */
static void find_web_root(struct server_config *cfg)
{
    static const enum web_root_source from[] = {
        [WEBROOT_BUILD_TREE] = WEB_ROOT_BUILD_TREE,
        [WEBROOT_INSTALLED] = WEB_ROOT_INSTALLED,
        [WEBROOT_NONE] = WEB_ROOT_NONE,
    };
    cfg->web_root_source = from[webroot_find(cfg->web_root, sizeof cfg->web_root)];
}

void server_config_log_web_root(const struct server_config *cfg)
{
    static const char *const from[] = {
        [WEB_ROOT_OPTION] = "--web-root",
        [WEB_ROOT_BUILD_TREE] = "build-tree",
        [WEB_ROOT_INSTALLED] = "install-prefix",
    };
    if (cfg->web_root_source == WEB_ROOT_NONE)
        LOG(LOG_WARN, "no status page: its files are neither in the source tree of a build "
                      "nor installed beside this program; give --web-root DIR",
            LF_S("looked_in", cfg->web_root));
    else
        LOG(LOG_INFO, "status page files", LF_S("web_root", cfg->web_root),
            LF_S("from", from[cfg->web_root_source]));
}

void server_config_defaults(struct server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->bind_addr, "0.0.0.0");
    cfg->port = 8080;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cpus > 0 ? (unsigned)(cpus < MAX_THREADS ? cpus : MAX_THREADS) : 1;
    cfg->backlog = 1024;
    cfg->io = LOOP_AUTO;
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
    cfg->stage_sample = STAGE_SAMPLE_DEFAULT;
    strcpy(cfg->http_bind, "127.0.0.1");
    cfg->http_port = 8081;
    cfg->http_enabled = true;
    find_web_root(cfg);
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->log_level = LOG_INFO;
}

/* What an option's action returns besides 0 and -EINVAL: help or version
 * was printed, and tcpmsgd exits at once. */
#define OPTION_EXIT 1

/* Every option of tcpmsgd, in --help order, one line each:
 *   X(ID, long name, short letter (0: none), has_arg, value in --help,
 *     --help section that starts here (NULL: none), help text, action)
 * A '\n' in the help text starts a new, indented line. The action is an
 * expression over cfg, name (the option as "--name"), v (its value), out,
 * err and cap: 0, OPTION_EXIT, or -EINVAL with the message in err.
 * --help, getopt_long's table, the short options and the parser are all
 * made from this list, so an option is added in one place. */
#define SERVER_OPTIONS(X)                                                                      \
    X(BIND, "bind", 0, required_argument, "ADDR", "Listening:",                                \
      "address to listen on, IPv4 or IPv6 (default 0.0.0.0;\n'::' takes IPv4 and IPv6)",       \
      set_addr(cfg->bind_addr, sizeof cfg->bind_addr, name, v, err, cap))                      \
    X(PORT, "port", 0, required_argument, "N", NULL,                                           \
      "TCP port, 0 picks a free one (default 8080)", set_port(&cfg->port, name, v, err, cap))  \
    X(BACKLOG, "backlog", 0, required_argument, "N", NULL,                                     \
      "length of the kernel's accept queue (default 1024)",                                    \
      set_unsigned(&cfg->backlog, name, v, 1, 65535, err, cap))                                \
    X(THREADS, "threads", 0, required_argument, "N", NULL,                                     \
      "worker threads, each with its own epoll loop\n(default: online CPUs)",                  \
      set_unsigned(&cfg->threads, name, v, 1, MAX_THREADS, err, cap))                          \
    X(MODE, "mode", 0, required_argument, "epoll|fork", NULL,                                  \
      "epoll: event loops on worker threads (default);\nfork: a child process per client, "    \
      "statistics\nsent to the parent over a pipe",                                            \
      set_choice(&cfg->fork_mode, name, v, "epoll", "fork", "fork", err, cap))                 \
    X(IO, "io", 0, required_argument, "epoll|uring|auto", NULL,                                \
      "the workers' event loops: epoll, io_uring, or io_uring\nwhere the kernel allows it "   \
      "(default auto);\nfork mode always uses epoll",                                          \
      set_io(&cfg->io, name, v, err, cap))                                                     \
    X(SQPOLL, "sqpoll", 0, no_argument, "", NULL,                                              \
      "io_uring with a kernel thread polling for submissions", set_flag(&cfg->sqpoll, true))   \
    X(MAX_CHILDREN, "max-children", 0, required_argument, "N", NULL,                           \
      "fork mode: live children at most (default 512)",                                        \
      set_unsigned(&cfg->max_children, name, v, 1, 100000, err, cap))                          \
    X(MAX_CONNS, "max-conns", 0, required_argument, "N", "Limits:",                            \
      "open connections over all clients (default 10000)",                                     \
      set_unsigned(&cfg->max_conns, name, v, 1, MAX_CONNS_LIMIT, err, cap))                    \
    X(MAX_CONNS_PER_IP, "max-conns-per-ip", 0, required_argument, "N", NULL,                   \
      "open connections from one address (default 4096)",                                      \
      set_unsigned(&cfg->max_conns_per_ip, name, v, 1, MAX_CONNS_LIMIT, err, cap))             \
    X(MAX_PAYLOAD, "max-payload", 0, required_argument, "BYTES", NULL,                         \
      "largest message, up to 16777215 (default 1MiB)",                                        \
      set_size(&cfg->max_payload, name, v, 1, FRAME_MAX_PAYLOAD_LIMIT, err, cap))              \
    X(MAX_PENDING, "max-pending-output", 0, required_argument, "BYTES", NULL,                  \
      "unsent reply bytes per connection before the server\nstops reading from it "            \
      "(default 4MiB)",                                                                        \
      set_size(&cfg->max_pending_output, name, v, 1024, UINT64_C(1) << 30, err, cap))          \
    X(MAX_BUFFER_MEMORY, "max-buffer-memory", 0, required_argument, "BYTES", NULL,             \
      "input and output buffers of all connections together;\nover it the server stops "       \
      "reading from connections\nholding 4 KiB or more (default 256MiB)",                      \
      opt_parse_size(name, v, 64 * 1024, UINT64_C(1) << 40, &cfg->max_buffer_memory, err, cap)) \
    X(MEMORY_GRACE, "memory-grace", 0, required_argument, "SEC", NULL,                         \
      "then, still over it after this long, it closes the\nlargest holders (default 2)",       \
      opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->memory_grace, err, cap))                \
    X(RTT_REPORTS, "rtt-reports", 0, required_argument, "accept|ignore", NULL,                 \
      "accept: add clients' RTT reports that keep the rules\n(docs/PROTOCOL.md) to "           \
      "tcpmsg_client_rtt_seconds\n(default); ignore: drop and count every report",             \
      set_choice(&cfg->rtt_reports, name, v, "accept", "ignore", "accept", err, cap))          \
    X(STAGE_SAMPLE, "stage-sample", 0, required_argument, "N", NULL,                           \
      "time the stages of one message in N per connection\n(kernel receive queue, service, "  \
      "qdisc, device,\nACK: tcpmsg_stage_seconds, docs/STAGES.md); 0 turns\nit off: no "       \
      "socket gets SO_TIMESTAMPING\n(default " STAGE_SAMPLE_DEFAULT_TEXT ")",                   \
      set_unsigned(&cfg->stage_sample, name, v, 0, 1000000000, err, cap))                      \
    X(IDLE, "idle-timeout", 0, required_argument, "SEC",                                       \
      "Timeouts (seconds, fractions allowed, 0 turns one off):",                               \
      "close a connection silent this long (default 300)",                                     \
      opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->idle_timeout, err, cap))                \
    X(FRAME, "frame-timeout", 0, required_argument, "SEC", NULL,                               \
      "deadline to complete a message once begun (default 30)",                                \
      opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->frame_timeout, err, cap))               \
    X(WRITE, "write-timeout", 0, required_argument, "SEC", NULL,                               \
      "close a connection whose pending replies make no\nprogress this long: a client that "   \
      "never reads\n(default 30)",                                                             \
      opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->write_timeout, err, cap))               \
    X(DRAIN, "drain-timeout", 0, required_argument, "SEC", NULL,                               \
      "on SIGINT/SIGTERM, time allowed for in-flight replies\nbefore connections are closed "  \
      "(default 5)",                                                                           \
      opt_parse_seconds(name, v, 0, MAX_SECONDS, &cfg->drain_timeout, err, cap))               \
    X(HTTP_BIND, "http-bind", 0, required_argument, "ADDR",                                    \
      "HTTP endpoint (metrics, health, connections, status page):",                            \
      "address for the endpoint (default 127.0.0.1: local only)",                              \
      set_addr(cfg->http_bind, sizeof cfg->http_bind, name, v, err, cap))                      \
    X(HTTP_PORT, "http-port", 0, required_argument, "N", NULL,                                 \
      "its port, 0 picks a free one (default 8081)",                                           \
      set_port(&cfg->http_port, name, v, err, cap))                                            \
    X(NO_HTTP, "no-http", 0, no_argument, "", NULL, "do not start the endpoint",               \
      set_flag(&cfg->http_enabled, false))                                                     \
    X(WEB_ROOT, "web-root", 0, required_argument, "DIR", NULL,                                 \
      "directory of the status page (default: the\nshare/tcpmsg/web installed beside "         \
      "tcpmsgd;\nrun from a build: the source tree's web/)",                                   \
      set_web_root(cfg, name, v, err, cap))                                                    \
    X(WEB_CONFIG, "web-config", 0, required_argument, "FILE", NULL,                            \
      "TLS and basic auth for the endpoint, in the web\nconfiguration format of Prometheus "   \
      "exporters\n(tls_server_config, basic_auth_users); /healthz\nstays open, every other "   \
      "path needs credentials",                                                                \
      set_text(cfg->web_config, sizeof cfg->web_config, name, v, err, cap))                    \
    X(LOG_FORMAT, "log-format", 0, required_argument, "text|json",                             \
      "Logging (to standard error):", "line format (default text)",                            \
      set_log_format(cfg, name, v, err, cap))                                                  \
    X(LOG_LEVEL, "log-level", 0, required_argument, "LEVEL", NULL,                             \
      "debug, info, warn or error (default info)", set_log_level(cfg, name, v, err, cap))      \
    X(VERBOSE, "verbose", 'v', no_argument, "", NULL,                                          \
      "same as --log-level debug: log every message", set_verbose(cfg))                        \
    X(HELP, "help", 'h', no_argument, "", NULL, "show this help and exit", show_help(out))     \
    X(VERSION, "version", 'V', no_argument, "", NULL, "show the version and exit",             \
      show_version(out))

/* getopt_long's value for an option: its letter, or one of these past 255. */
enum {
    OPT_NONE = 255,
#define OPTION_ENUM(id, ...) OPT_##id,
    SERVER_OPTIONS(OPTION_ENUM)
#undef OPTION_ENUM
};

#define OPTION_KEY(id, letter) ((letter) != 0 ? (letter) : OPT_##id)

static const struct option long_options[] = {
#define OPTION_ROW(id, name, letter, has_arg, ...) { name, has_arg, NULL, OPTION_KEY(id, letter) },
    SERVER_OPTIONS(OPTION_ROW)
#undef OPTION_ROW
    { NULL, 0, NULL, 0 },
};

/* The rest of --help, for each option. */
struct option_help {
    const char *value;   /* "" when it takes none */
    const char *section; /* a heading printed before it, or NULL */
    const char *text;
};

static const struct option_help option_help[] = {
#define OPTION_HELP(id, name, letter, has_arg, value, section, text, action) \
    { value, section, text },
    SERVER_OPTIONS(OPTION_HELP)
#undef OPTION_HELP
};

/* Help text starts in this column; an option too wide to leave two spaces
 * before it has its text on the next line. */
#define HELP_COLUMN 28

static void print_option(FILE *out, const struct option *o, const struct option_help *h)
{
    int n = o->val < 256 ? fprintf(out, "  -%c, --%s", o->val, o->name)
                         : fprintf(out, "  --%s", o->name);
    if (h->value[0] != '\0')
        n += fprintf(out, " %s", h->value);
    if (n > HELP_COLUMN - 2) {
        fputc('\n', out);
        n = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - n, "");
    for (const char *p = h->text; *p != '\0'; p++) {
        fputc(*p, out);
        if (*p == '\n')
            fprintf(out, "%*s", HELP_COLUMN, "");
    }
    fputc('\n', out);
}

static int show_help(FILE *out)
{
    fputs("Usage: tcpmsgd [OPTION]...\n"
          "A TCP message server: echoes framed or text messages and measures them.\n"
          "\n",
          out);
    for (size_t i = 0; i < sizeof option_help / sizeof option_help[0]; i++) {
        if (option_help[i].section != NULL)
            fprintf(out, "%s\n", option_help[i].section);
        print_option(out, &long_options[i], &option_help[i]);
    }
    fputs("\n"
          "Exit status: 0 after a clean shutdown, 1 when the server cannot start,\n"
          "2 for a bad option or value, 3 when the drain on SIGINT/SIGTERM ended\n"
          "(--drain-timeout, or a second signal) with replies lost.\n",
          out);
    return OPTION_EXIT;
}

static int show_version(FILE *out)
{
    fprintf(out, "tcpmsgd %s\n", tcpmsg_version);
    return OPTION_EXIT;
}

static int set_text(char *dst, size_t dst_cap, const char *name, const char *v, char *err,
                    size_t cap)
{
    if (strlen(v) == 0 || strlen(v) >= dst_cap) {
        snprintf(err, cap, "%s: '%s' is empty or too long", name, v);
        return -EINVAL;
    }
    strcpy(dst, v);
    return 0;
}

/* An address to listen on: checked now, so that a value that cannot be an
 * address (999.1.1.1, a name that does not resolve) is a usage error (exit
 * 2) like any other bad value, not a failure to start. */
static int set_addr(char *dst, size_t dst_cap, const char *name, const char *v, char *err,
                    size_t cap)
{
    int rc = set_text(dst, dst_cap, name, v, err, cap);
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    socklen_t len;
    int n = snprintf(err, cap, "%s: ", name); /* net_resolve says why after it */
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    return net_resolve(v, 0, true, &ss, &len, err + n, cap - (size_t)n);
}

static int set_web_root(struct server_config *cfg, const char *name, const char *v, char *err,
                        size_t cap)
{
    int rc = set_text(cfg->web_root, sizeof cfg->web_root, name, v, err, cap);
    if (rc == 0)
        cfg->web_root_source = WEB_ROOT_OPTION;
    return rc;
}

static int set_port(uint16_t *port, const char *name, const char *v, char *err, size_t cap)
{
    uint64_t u;
    int rc = opt_parse_u64(name, v, 0, 65535, &u, err, cap);
    if (rc == 0)
        *port = (uint16_t)u;
    return rc;
}

static int set_unsigned(unsigned *dst, const char *name, const char *v, uint64_t min,
                        uint64_t max, char *err, size_t cap)
{
    uint64_t u;
    int rc = opt_parse_u64(name, v, min, max, &u, err, cap);
    if (rc == 0)
        *dst = (unsigned)u;
    return rc;
}

static int set_size(size_t *dst, const char *name, const char *v, uint64_t min, uint64_t max,
                    char *err, size_t cap)
{
    uint64_t u;
    int rc = opt_parse_size(name, v, min, max, &u, err, cap);
    if (rc == 0)
        *dst = (size_t)u;
    return rc;
}

/* One of two words: *dst becomes true for the word `yes`, false for the other. */
static int set_choice(bool *dst, const char *name, const char *v, const char *first,
                      const char *second, const char *yes, char *err, size_t cap)
{
    if (strcmp(v, first) != 0 && strcmp(v, second) != 0) {
        snprintf(err, cap, "%s: '%s' is not one of %s, %s", name, v, first, second);
        return -EINVAL;
    }
    *dst = strcmp(v, yes) == 0;
    return 0;
}

static int set_io(enum loop_backend *dst, const char *name, const char *v, char *err, size_t cap)
{
    if (loop_backend_parse(v, dst) == 0)
        return 0;
    snprintf(err, cap, "%s: '%s' is not epoll, uring or auto", name, v);
    return -EINVAL;
}

static int set_flag(bool *dst, bool value)
{
    *dst = value;
    return 0;
}

static int set_log_format(struct server_config *cfg, const char *name, const char *v, char *err,
                          size_t cap)
{
    if (!log_parse_format(v, &cfg->log_format)) {
        snprintf(err, cap, "%s: '%s' is not one of text, json", name, v);
        return -EINVAL;
    }
    return 0;
}

static int set_log_level(struct server_config *cfg, const char *name, const char *v, char *err,
                         size_t cap)
{
    if (!log_parse_level(v, &cfg->log_level)) {
        snprintf(err, cap, "%s: '%s' is not one of debug, info, warn, error", name, v);
        return -EINVAL;
    }
    return 0;
}

static int set_verbose(struct server_config *cfg)
{
    cfg->log_level = LOG_DEBUG;
    return 0;
}

/* Apply option key (getopt_long's value) with value v (NULL when it takes
 * none): 0, OPTION_EXIT, or -EINVAL with the message in err. */
static int apply(struct server_config *cfg, int key, const char *name, const char *v, FILE *out,
                 char *err, size_t cap)
{
    switch (key) {
#define OPTION_CASE(id, name_, letter, has_arg, value, section, text, action) \
    case OPTION_KEY(id, letter):                                              \
        return action;
        SERVER_OPTIONS(OPTION_CASE)
#undef OPTION_CASE
    }
    snprintf(err, cap, "%s: not an option", name);
    return -EINVAL;
}

/* getopt's short options, from the list: ':' first, so that a missing
 * value is told apart from an unknown option. */
static void short_options(char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = ':';
    for (const struct option *o = long_options; o->name != NULL && n + 3 < cap; o++) {
        if (o->val >= 256)
            continue;
        out[n++] = (char)o->val;
        if (o->has_arg == required_argument)
            out[n++] = ':';
    }
    out[n] = '\0';
}

const char *server_config_option(size_t i, char *letter)
{
    if (i >= sizeof option_help / sizeof option_help[0])
        return NULL;
    if (letter != NULL)
        *letter = long_options[i].val < 256 ? (char)long_options[i].val : '\0';
    return long_options[i].name;
}

/* The long name of the option getopt returned as key. */
static const char *long_name(int key)
{
    for (const struct option *o = long_options; o->name != NULL; o++)
        if (o->val == key)
            return o->name;
    return "?";
}

enum config_result server_config_parse(struct server_config *cfg, int argc, char **argv,
                                       FILE *out, FILE *err)
{
    optind = 0; /* glibc: 0 fully reinitialises getopt */
    opterr = 0; /* we print our own messages */
    char shorts[16];
    short_options(shorts, sizeof shorts);
    int opt;
    while ((opt = getopt_long(argc, argv, shorts, long_options, NULL)) != -1) {
        char msg[256], name[64];
        switch (opt) {
        case ':':
            fprintf(err, "tcpmsgd: %s needs a value (see --help)\n", argv[optind - 1]);
            return CONFIG_ERROR;
        case '?':
            opt_bad_option_message(msg, sizeof msg, argv[optind - 1], optopt, long_options);
            fprintf(err, "tcpmsgd: %s (see --help)\n", msg);
            return CONFIG_ERROR;
        default:
            snprintf(name, sizeof name, "--%s", long_name(opt));
            int rc = apply(cfg, opt, name, optarg, out, msg, sizeof msg);
            if (rc == OPTION_EXIT)
                return CONFIG_EXIT;
            if (rc < 0) {
                fprintf(err, "tcpmsgd: %s\n", msg);
                return CONFIG_ERROR;
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
