/* client config: the tcpmsg command line (one-shot and bench) parsed into
 * one struct. Knows nothing of sockets.
 */
#ifndef TCPMSG_CLIENT_CONFIG_H
#define TCPMSG_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLIENT_DEFAULT_PORT 8080

enum client_command {
    CLIENT_ONESHOT, /* send messages, print replies with their round-trip times */
    CLIENT_BENCH,   /* closed-loop load generator */
};

struct client_config {
    enum client_command command;
    char host[256];
    uint16_t port;
    double timeout;       /* --timeout: seconds for connect and for each reply */
    bool text;            /* --text: send text lines instead of frames */
    bool report;          /* send measured RTTs to the server (off: --no-report) */
    char **messages;      /* one-shot: the MESSAGE arguments (points into argv) */
    size_t nmessages;     /* 0: read lines from stdin */
    /* bench */
    unsigned connections; /* --connections */
    unsigned depth;       /* --depth: messages in flight per connection */
    size_t size;          /* --size: payload bytes */
    double duration;      /* --duration seconds (when count == 0) */
    uint64_t count;       /* --count: total messages, 0 for a timed run */
    unsigned threads;     /* --threads */
    bool json;            /* --json: one JSON object on stdout */
};

enum client_config_result {
    CLIENT_CONFIG_OK = 0,
    CLIENT_CONFIG_EXIT = 1,  /* help or version printed: exit 0 */
    CLIENT_CONFIG_ERROR = 2, /* message printed: exit 2 */
};

void client_config_defaults(struct client_config *cfg);

/* Parse argv (argv[1] may be "bench"). Help goes to out, errors to err.
 * Resets getopt's state so it can be called repeatedly. */
enum client_config_result client_config_parse(struct client_config *cfg, int argc, char **argv,
                                              FILE *out, FILE *err);

#endif
