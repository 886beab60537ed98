/* server config: every tcpmsgd setting with its default, and the command
 * line parser that fills it. Knows nothing of sockets or threads.
 */
#ifndef TCPMSG_SERVER_CONFIG_H
#define TCPMSG_SERVER_CONFIG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tcpmsg/log.h"
#include "tcpmsg/loop.h"

/* Where the status page's files were found (server_config_defaults looks,
 * --web-root overrides). */
enum web_root_source {
    WEB_ROOT_OPTION,     /* --web-root */
    WEB_ROOT_BUILD_TREE, /* a binary in the build tree's bin/: the source tree's web/ */
    WEB_ROOT_INSTALLED,  /* <the binary's directory>/../share/tcpmsg/web */
    WEB_ROOT_NONE,       /* none of them exists; web_root holds the installed path */
};

/* --stage-sample's default: one message in this many per connection has its
 * stages timed. Chosen by measurement (bench/README.md): at 50 clients x 16
 * messages in flight x 64 bytes a sample costs the server about 15 us of CPU
 * (its sendmsg, three stamps queued, the error queue's wakeups and drains)
 * where a message costs 0.43 us, and stamping itself (every segment stamped)
 * about 0.5%: one in 1000 added 4% CPU per message, one in 10000 adds 1%. */
#define STAGE_SAMPLE_DEFAULT 10000
#define STAGE_SAMPLE_DEFAULT_TEXT "10000"

struct server_config {
    char bind_addr[256];       /* --bind: address or name; default 0.0.0.0 */
    uint16_t port;             /* --port: 0 picks a free port; default 8080 */
    unsigned threads;          /* --threads: worker threads; default online CPUs */
    bool fork_mode;            /* --mode fork: a child process per client */
    enum loop_backend io;      /* --io: the workers' event loops; default LOOP_AUTO */
    bool sqpoll;               /* --sqpoll: io_uring with a submission polling thread */
    unsigned max_children;     /* --max-children: fork mode's cap on live children */
    unsigned backlog;          /* --backlog: listen(2) queue length */
    unsigned max_conns;        /* --max-conns: open connections, all clients */
    unsigned max_conns_per_ip; /* --max-conns-per-ip: open connections per address */
    size_t max_payload;        /* --max-payload: bytes in one message */
    size_t max_pending_output; /* --max-pending-output: unsent reply bytes before we stop reading */
    uint64_t max_buffer_memory; /* --max-buffer-memory: all connections' buffers together */
    double memory_grace;       /* --memory-grace: seconds over that budget before evicting */
    double idle_timeout;       /* --idle-timeout: seconds without traffic (0: never) */
    double frame_timeout;      /* --frame-timeout: seconds to finish a begun message (0: never) */
    double write_timeout;      /* --write-timeout: seconds pending output may make no progress */
    double drain_timeout;      /* --drain-timeout: seconds to finish in-flight work on SIGTERM */
    bool rtt_reports;          /* --rtt-reports accept (true, default) or ignore */
    unsigned stage_sample;     /* --stage-sample: one message in N per connection; 0: off */
    char http_bind[256];       /* --http-bind: default 127.0.0.1 */
    uint16_t http_port;        /* --http-port: 0 picks; default 8081 */
    bool http_enabled;         /* false with --no-http */
    char web_root[1024];       /* --web-root: the status page's files */
    enum web_root_source web_root_source; /* where web_root came from */
    char web_config[1024];     /* --web-config: TLS and basic auth file; "" for none */
    enum log_format log_format;
    enum log_level log_level;
};

/* What the command line asks for; main turns it into an exit status. */
enum config_result {
    CONFIG_OK = 0,          /* run with the parsed settings */
    CONFIG_EXIT = 1,        /* --help or --version printed: exit 0 */
    CONFIG_ERROR = -EINVAL, /* a bad option or value: message printed, exit 2 */
};

/* Defaults for every field. The status page's directory is looked for here,
 * without a flag, in this order: the source tree's web/ when this binary runs
 * from the build tree's bin/; then share/tcpmsg/web of the prefix it is
 * installed in, found from /proc/self/exe, so a moved or unpacked tree still
 * finds its own. */
void server_config_defaults(struct server_config *cfg);

/* Log where the status page's files come from (INFO), or warn that none
 * were found. Called once logging is configured. */
void server_config_log_web_root(const struct server_config *cfg);

/* Parse argv into cfg (which should hold the defaults). Help and version go to
 * out, errors to err. Resets getopt's state so it can be called repeatedly. */
enum config_result server_config_parse(struct server_config *cfg, int argc, char **argv,
                                       FILE *out, FILE *err);

/* Option i of tcpmsgd, in --help order: its long name without "--"
 * ("max-conns"), and in *letter (when not NULL) its short letter or '\0'.
 * NULL past the last. Lets tests check every option without a list of
 * their own. */
const char *server_config_option(size_t i, char *letter);

#endif
