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
#include "client/probe_targets.h"
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

/* What the status page shows of a target's latest probes: written by its
 * thread under status_lock once per probe, read by the HTTP thread. */
#define PROBE_WINDOW 64 /* probes in the loss window */
struct probe_recent {
    uint64_t lost_bits;      /* bit i set: the probe i before the latest was lost */
    unsigned n;              /* probes in the window, up to PROBE_WINDOW */
    double last_rtt_s;       /* the latest successful probe's; -1 before any */
    double last_time;        /* wall-clock time of the latest probe; 0 before any */
    int last_failure;        /* enum probe_failure of the latest loss; -1 before any */
    char last_detail[160];
    double last_failure_time;
};

struct probe_target {
    const struct client_config *cfg;
    struct probe_spec spec; /* name (the target label), host, port, labels */
    bool from_file;         /* listed in --targets (a reload may remove it) */
    pthread_t thread;
    atomic_bool stop;       /* removed by a reload: end the thread */
    atomic_bool done;       /* the thread has ended; joining it will not block */
    int wake_fd;            /* eventfd written when the thread ends */
    int fd;                 /* -1 while not connected */
    uint64_t seq;           /* probes sent */
    uint64_t rng;           /* jitter */
    double backoff_s;       /* current reconnect delay; 0 after a success */
    uint64_t retry_ns;      /* no reconnect before this */
    uint8_t *buf;           /* the probe and its reply */
    /* results: written by this target's thread only */
    counter_t probes;
    counter_t failures[PROBE_FAIL_COUNT];
    atomic_int up;          /* 1 after a successful probe, 0 after a lost one */
    struct hist rtt;        /* successful probes' round-trip times, ns */
    pthread_mutex_t status_lock;
    struct probe_recent recent;
};

/* A target for spec, its thread not started (probe_target_start); NULL on
 * ENOMEM. Released with probe_target_free after its thread is joined. */
struct probe_target *probe_target_new(const struct client_config *cfg, const struct probe_spec *spec,
                                      uint64_t seed_index, int wake_fd);
/* Start its thread: 0 or a positive errno from pthread_create. */
int probe_target_start(struct probe_target *t);
void probe_target_free(struct probe_target *t); /* NULL is a no-op */
/* Probes lost in all. */
uint64_t probe_target_lost(const struct probe_target *t);
/* Print the summary line (or JSON object) of a target that has ended. */
void probe_target_summary(const struct probe_target *t, const char *why);

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

/* The --targets file's reloads, for the metrics and the status page;
 * guarded by probe.lock. */
struct probe_reloads {
    const char *file;             /* --targets FILE; NULL without one */
    uint64_t success, failure;    /* reloads by result (the first load included) */
    bool last_ok;
    double last_success_time;     /* wall clock */
    char last_error[512];         /* "" after a success */
};

struct probe {
    const struct client_config *cfg;
    /* The targets probed now: the command line's, then the file's. The
     * reload (main thread) changes the list; the HTTP thread reads it; both
     * under lock. The targets themselves are never moved, so a pointer taken
     * under lock stays valid until the target is retired and joined, which
     * happens on the main thread only. */
    pthread_mutex_t lock;
    struct probe_target *targets[PROBE_MAX_TARGETS];
    size_t ntargets;
    size_t ncommand_line;         /* targets[0..ncommand_line) are never removed */
    struct probe_reloads reloads;
    /* Removed by a reload, their threads ending: joined by the main thread. */
    struct probe_target *retiring[PROBE_MAX_TARGETS];
    size_t nretiring;
    uint64_t lost_retired;        /* probes lost by targets since removed */
    bool reload_retry;            /* a reload waits for room in retiring[] */
    size_t left_running;          /* at exit: threads left in a name resolution */
    uint64_t next_seed;           /* each new target's jitter seed index */
    int wake_fd;                  /* eventfd: a target's thread has ended */
    /* --serve: /probe requests by outcome (written by the HTTP thread and
     * the probe threads, hence atomic adds), and probes running now. */
    _Atomic uint64_t served[PROBE_SERVE_OUTCOME_COUNT];
    atomic_uint serving;
};

/* Load cfg->targets_file into p's target set (probe_reload.c): the targets
 * that are new are started, the ones no longer listed are stopped and put
 * to retire, the others are left running. A file that cannot be read or
 * parsed, or too many targets, leave the set as it was and return -EINVAL
 * (logged on stderr with the file and line, counted as a failure). why
 * says what asked ("start", "SIGHUP", "change", "retry": one refused for
 * want of room, see apply). Main thread only. */
int probe_reload(struct probe *p, const char *why);

/* Join the targets removed by a reload whose threads have ended, printing
 * their summaries; never waits for one still running (it may be in a name
 * resolution, which --timeout does not bound). Main thread only. */
void probe_reap_retired(struct probe *p);

/* Watching the target file: an inotify watch of its directory (an editor
 * replaces a file by renaming another onto it, which a watch of the file
 * itself would miss), and its identity, size and times compared once a
 * second for what inotify cannot see (a symbolic link swapped, a network
 * file system, no inotify instance left). */
struct probe_watch {
    const char *path;
    const char *base;   /* the file name the directory's events are for */
    int fd;             /* inotify descriptor for poll; -1: comparison only */
    uint64_t sig[5];    /* device, inode, size, mtime, ctime when last loaded */
    uint64_t seen[5];   /* the same, of a state that differs from sig ... */
    uint64_t seen_since_ns; /* ... first seen then (net_now_ns); 0: none */
};
/* How long a change seen without an event about the file must hold. */
#define PROBE_WATCH_HOLD_NS 1000000000ull
void probe_watch_open(struct probe_watch *w, const char *path);
void probe_watch_close(struct probe_watch *w);
/* After poll said w->fd is readable (events true) or a second passed
 * (false), now_ns being the monotonic clock (net_now_ns) of that wakeup:
 * true when the file should be read again. */
bool probe_watch_changed(struct probe_watch *w, bool events, uint64_t now_ns);

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
 * *len), or NULL on ENOMEM. Any thread but the one holding p->lock. */
char *probe_metrics_prometheus(struct probe *p, size_t *len);

/* GET /api/targets: every target's latest state as JSON, for the status
 * page (probe_status.c). malloc'd (length in *len), or NULL on ENOMEM. */
char *probe_status_json(struct probe *p, size_t *len);

#endif
