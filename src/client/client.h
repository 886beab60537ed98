/* client: the three things tcpmsg does, each a function of its config:
 * one-shot messages with round-trip times, the bench load generator, and
 * the probe.
 */
#ifndef TCPMSG_CLIENT_H
#define TCPMSG_CLIENT_H

#include "client/client_config.h"

/* Exit statuses, shared by both commands and documented in --help. */
enum client_exit {
    EXIT_OK = 0,
    EXIT_IO = 1,       /* I/O error, or the server closed the connection */
    EXIT_USAGE = 2,    /* bad usage or address */
    EXIT_CONNECT = 3,  /* cannot connect */
    EXIT_TIMEOUT = 4,  /* no reply in time */
    EXIT_MISMATCH = 5, /* a reply differed from its message */
    EXIT_SERVER = 6,   /* the server answered with an error */
    EXIT_RATE = 7,     /* bench --rate: the requested rate was not kept */
};

/* Each runs one command of tcpmsg and returns its enum client_exit, which
 * main returns as is: these three are the edge where the library's
 * negative errnos become exit statuses. Results go to stdout, errors to
 * stderr. */
int oneshot_run(const struct client_config *cfg);
int bench_run(const struct client_config *cfg);
/* Runs until --count, --duration or SIGINT/SIGTERM; 1 if any probe was lost. */
int probe_run(const struct client_config *cfg);
/* Merges the logs named in cfg->messages: EXIT_USAGE for a log it cannot
 * read or merge (the file and line said), EXIT_IO when an output fails. */
int merge_run(const struct client_config *cfg);

/* Resolve and connect to cfg's target, printing a clear error. Returns the
 * fd, or a negative errno: -EINVAL when the host cannot be resolved,
 * -ETIMEDOUT when --timeout passed, another from socket(2) or connect(2).
 * addr_out (NET_ADDRSTRLEN) gets "ip:port". */
int client_connect(const struct client_config *cfg, char *addr_out);

/* The exit status of a one-shot run whose client_connect failed with err:
 * EXIT_USAGE (unresolvable), EXIT_TIMEOUT or EXIT_CONNECT. */
int client_connect_status(int err);

#endif
