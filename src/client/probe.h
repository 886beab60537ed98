/* probe: tcpmsg probe's state, shared by the probing threads (probe.c) and
 * the Prometheus rendering of their results (probe_metrics.c). One thread
 * per target writes that target's counters and histogram; the HTTP thread
 * only reads them.
 */
#ifndef TCPMSG_CLIENT_PROBE_H
#define TCPMSG_CLIENT_PROBE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client_config.h"
#include "tcpmsg/counter.h"
#include "tcpmsg/hist.h"

/* Why a probe was lost. */
#define PROBE_FAILURES(X)                                            \
    X(PROBE_FAIL_CONNECT, "connect", "could not connect")            \
    X(PROBE_FAIL_TIMEOUT, "timeout", "no reply within --timeout")    \
    X(PROBE_FAIL_CLOSED, "closed", "the connection closed or failed") \
    X(PROBE_FAIL_MISMATCH, "mismatch", "the reply differed from the probe")

enum probe_failure {
#define PROBE_FAIL_ENUM(name, tag, text) name,
    PROBE_FAILURES(PROBE_FAIL_ENUM)
#undef PROBE_FAIL_ENUM
    PROBE_FAIL_COUNT
};

const char *probe_failure_tag(enum probe_failure f);

struct probe_target {
    const struct client_config *cfg;
    char name[300];        /* HOST:PORT as given: the metrics' target label */
    char host[256];
    uint16_t port;
    pthread_t thread;
    int fd;                /* -1 while not connected */
    uint64_t seq;          /* probes sent */
    uint64_t rng;          /* jitter */
    double backoff_s;      /* current reconnect delay; 0 after a success */
    uint64_t retry_ns;     /* no reconnect before this */
    uint8_t *buf;          /* the probe and its reply */
    /* results: written by this target's thread only */
    counter_t probes;
    counter_t failures[PROBE_FAIL_COUNT];
    atomic_int up;         /* 1 after a successful probe, 0 after a lost one */
    struct hist rtt;       /* successful probes' round-trip times, ns */
};

struct probe {
    const struct client_config *cfg;
    struct probe_target *targets;
    size_t ntargets;
};

/* Prometheus text 0.0.4 of every target's results. malloc'd (length in
 * *len), or NULL on ENOMEM. Any thread. */
char *probe_metrics_prometheus(const struct probe *p, size_t *len);

#endif
