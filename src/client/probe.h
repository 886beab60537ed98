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

/* What became of a /probe request (tcpmsg probe --serve). */
#define PROBE_SERVE_OUTCOMES(X)                                                  \
    X(PROBE_SERVE_SUCCESS, "success", "the probe succeeded")                      \
    X(PROBE_SERVE_FAILURE, "failure", "the probe ran and failed")                 \
    X(PROBE_SERVE_BAD_REQUEST, "bad_request", "a missing or malformed parameter (400)") \
    X(PROBE_SERVE_BUSY, "busy", "too many probes in flight (503)")

enum probe_serve_outcome {
#define PROBE_SERVE_ENUM(name, tag, text) name,
    PROBE_SERVE_OUTCOMES(PROBE_SERVE_ENUM)
#undef PROBE_SERVE_ENUM
    PROBE_SERVE_OUTCOME_COUNT
};

const char *probe_serve_outcome_tag(enum probe_serve_outcome o);

struct probe {
    const struct client_config *cfg;
    struct probe_target *targets;
    size_t ntargets;
    /* --serve: /probe requests by outcome (written by the HTTP thread and
     * the probe threads, hence atomic adds), and probes running now. */
    _Atomic uint64_t served[PROBE_SERVE_OUTCOME_COUNT];
    atomic_uint serving;
};

struct http_request;
struct http_response;

/* GET /probe?target=HOST:PORT[&count=N][&size=B][&timeout=S]: checks the
 * parameters (400), then probes on a thread of its own and answers later
 * (probe_serve.c). On the HTTP thread. */
void probe_serve_route(struct probe *p, const struct http_request *req,
                       struct http_response *resp);

/* Wait until every /probe answer has been given (before http_stop). */
void probe_serve_wait(struct probe *p);

/* Prometheus text 0.0.4 of every target's results. malloc'd (length in
 * *len), or NULL on ENOMEM. Any thread. */
char *probe_metrics_prometheus(const struct probe *p, size_t *len);

#endif
