/* client config: the tcpmsg command line (one-shot, bench and probe) parsed
 * into one struct. Knows nothing of sockets.
 */
#ifndef TCPMSG_CLIENT_CONFIG_H
#define TCPMSG_CLIENT_CONFIG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tcpmsg/loop.h"

#define CLIENT_DEFAULT_PORT 8080
#define CLIENT_MAX_PERCENTILES 16
#define CLIENT_MAX_TARGETS 64
#define CLIENT_PROBE_TIMEOUT 1.0 /* probe's --timeout default: a probe is small */

enum client_command {
    CLIENT_ONESHOT, /* send messages, print replies with their round-trip times */
    CLIENT_BENCH,   /* load generator: closed loop, or open loop with --rate */
    CLIENT_PROBE,   /* continuous low-rate probing of one or more targets */
    CLIENT_MERGE,   /* merge HdrHistogram interval logs of several load generators */
};

struct client_config {
    enum client_command command;
    char host[256];
    uint16_t port;
    double timeout;       /* --timeout: seconds for connect and for each reply */
    bool timeout_set;     /* given on the command line (probe's default differs) */
    bool text;            /* --text: send text lines instead of frames */
    bool report;          /* send measured RTTs to the server (off: --no-report) */
    char **messages;      /* one-shot: the MESSAGE arguments; probe: the targets; merge:
                             the log files (argv) */
    size_t nmessages;     /* one-shot: 0 reads lines from stdin */
    /* bench */
    unsigned connections; /* --connections */
    unsigned depth;       /* --depth: messages in flight per connection (at most) */
    size_t size;          /* --size: payload bytes (the largest, with MIN-MAX) */
    size_t size_min;      /* --size MIN-MAX: the smallest; == size when fixed */
    uint64_t seed;        /* --seed: for random sizes and the probe's jitter */
    double duration;      /* --duration seconds (when count == 0), after --warmup */
    bool duration_set;    /* given (probe: runs until stopped otherwise) */
    uint64_t count;       /* --count: total messages (probe: per target), 0: timed */
    unsigned threads;     /* --threads */
    bool json;            /* --json: JSON on stdout (ndjson events with --interval) */
    double rate;          /* --rate: messages/s over all connections; 0: closed loop */
    double interval;      /* --interval: seconds between reports (probe: between probes) */
    double warmup;        /* --warmup: seconds of load excluded from the results */
    double connect_rate;  /* --connect-rate: connections opened per second; 0: at once */
    enum loop_backend io; /* --io: the threads' event loop (LOOP_AUTO: io_uring if it can) */
    bool sqpoll;          /* --sqpoll: io_uring with a kernel submission thread */
    double percentiles[CLIENT_MAX_PERCENTILES]; /* --percentiles, each in (0, 100] */
    size_t npercentiles;
    const char *histogram_out; /* --histogram-out FILE (points into argv) */
    const char *plot_out;      /* --plot FILE.svg (points into argv) */
    const char *hdr_log;       /* --hdr-log FILE: HdrHistogram interval log (points into argv) */
    double start_at;           /* --start-at: Unix time to start the load at; 0: at once */
    /* probe */
    int http_port;        /* --http-port: serve /metrics; -1: no endpoint */
    char http_bind[64];   /* --http-bind */
    bool serve;           /* --serve: answer /probe?target=... (targets optional) */
    const char *targets_file; /* --targets FILE: more targets, reloaded (points into argv) */
    const char *web_root;     /* --web-root DIR: the status page's files (points into argv) */
};

/* What the command line asks for; main turns it into an exit status. */
enum client_config_result {
    CLIENT_CONFIG_OK = 0,
    CLIENT_CONFIG_EXIT = 1,        /* help or version printed: exit 0 */
    CLIENT_CONFIG_ERROR = -EINVAL, /* message printed: exit 2 */
};

void client_config_defaults(struct client_config *cfg);

/* Parse argv (argv[1] may be "bench", "probe" or "merge"). Help goes to out, errors
 * to err. Resets getopt's state so it can be called repeatedly. */
enum client_config_result client_config_parse(struct client_config *cfg, int argc, char **argv,
                                              FILE *out, FILE *err);

/* Option i of tcpmsg, in --help order: its long name without "--"
 * ("connections"), and in *letter (when not NULL) its short letter or '\0'.
 * NULL past the last. Lets tests check every option without a list of
 * their own. */
const char *client_config_option(size_t i, char *letter);

#endif
