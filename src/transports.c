/* tcpmsg-transports: the same message loop between two processes over three
 * kernel transports (a pair of pipes, a Unix socketpair, TCP on loopback),
 * side by side: round-trip percentiles and messages per second. The parent
 * sends a message and waits for it to come back; the forked child echoes.
 * One message in flight at a time, so the numbers are the cost of a round
 * trip through the kernel, not of batching. Not a server benchmark: see
 * bench/ for that; docs/ARCHITECTURE.md explains the differences.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcpmsg/hist.h"
#include "tcpmsg/net.h"
#include "tcpmsg/opt.h"

#define WARMUP 1000 /* round trips not recorded: page faults, caches, wakeup paths */
#define MAX_SIZE (16u << 20)

enum transport { T_PIPE, T_UNIX, T_TCP, T_COUNT };
static const char *const transport_names[T_COUNT] = { "pipe", "unix", "tcp" };

struct options {
    uint64_t size;   /* bytes per message */
    uint64_t count;  /* round trips, or 0 to run for duration */
    double duration; /* seconds, when count is 0 */
    bool json;
    bool which[T_COUNT];
};

/* One transport's two ends: the parent writes wr and reads rd; the child
 * the other way round (for sockets, both are the same descriptor). */
struct link {
    int parent_rd, parent_wr, child_rd, child_wr;
};

struct result {
    uint64_t msgs;
    double seconds;
    struct hist *rtt; /* ns */
};

static int make_pipes(struct link *l)
{
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(b, O_CLOEXEC) < 0) {
        int e = -errno;
        close(a[0]);
        close(a[1]);
        return e;
    }
    *l = (struct link){ .parent_wr = a[1], .child_rd = a[0], .child_wr = b[1], .parent_rd = b[0] };
    return 0;
}

static int make_unix(struct link *l)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    *l = (struct link){ .parent_rd = sv[0], .parent_wr = sv[0], .child_rd = sv[1], .child_wr = sv[1] };
    return 0;
}

/* A connected pair over 127.0.0.1: the handshake completes in the kernel's
 * backlog, so connect then accept on one thread is fine. */
static int make_tcp(struct link *l)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int lfd = net_listen((struct sockaddr *)&sa, sizeof sa, 1, false);
    if (lfd < 0)
        return lfd;
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    int c = net_connect((struct sockaddr *)&sa, len, 2000);
    int s = c >= 0 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
    int e = c < 0 ? c : -errno;
    close(lfd);
    if (s < 0) {
        if (c >= 0)
            close(c);
        return e;
    }
    net_set_nonblock(s, false); /* accept4 inherits nothing, but be explicit */
    net_set_nodelay(s);
    *l = (struct link){ .parent_rd = c, .parent_wr = c, .child_rd = s, .child_wr = s };
    return 0;
}

static void link_close(struct link *l)
{
    int fds[4] = { l->parent_rd, l->parent_wr, l->child_rd, l->child_wr };
    for (int i = 0; i < 4; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= fds[j] == fds[i];
        if (!seen && fds[i] >= 0)
            close(fds[i]);
    }
}

/* The child: echo size-byte messages until EOF. */
static _Noreturn void echo_child(int rd, int wr, size_t size)
{
    uint8_t *buf = malloc(size);
    if (buf == NULL)
        _exit(71);
    for (;;) {
        int rc = net_read_full(rd, buf, size, 0);
        if (rc == -ECONNRESET)
            _exit(0); /* the parent is done */
        if (rc < 0 || net_write_all(wr, buf, size, 0) < 0)
            _exit(72);
    }
}

/* The parent: round trips until count or the deadline. */
static int ping(int rd, int wr, const struct options *o, struct result *r)
{
    uint8_t *out = malloc(o->size), *in = malloc(o->size);
    int rc = out != NULL && in != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < o->size; i++)
        out[i] = (uint8_t)(i * 31 + 7);
    uint64_t start = 0, deadline = 0;
    for (uint64_t n = 0; rc == 0; n++) {
        if (n == WARMUP) {
            start = net_now_ns();
            deadline = start + (uint64_t)(o->duration * 1e9);
        }
        uint64_t t0 = net_now_ns();
        if (n >= WARMUP && (o->count != 0 ? n - WARMUP >= o->count : t0 >= deadline))
            break;
        rc = net_write_all(wr, out, o->size, 5000);
        if (rc == 0)
            rc = net_read_full(rd, in, o->size, 5000);
        if (rc == 0 && n >= WARMUP) {
            hist_record(r->rtt, net_now_ns() - t0);
            r->msgs++;
        }
    }
    r->seconds = (double)(net_now_ns() - start) / 1e9;
    if (rc == 0 && memcmp(in, out, o->size) != 0)
        rc = -EBADMSG;
    free(out);
    free(in);
    return rc;
}

static int run_transport(enum transport t, const struct options *o, struct result *r)
{
    struct link l = { -1, -1, -1, -1 };
    int rc = t == T_PIPE ? make_pipes(&l) : t == T_UNIX ? make_unix(&l) : make_tcp(&l);
    if (rc < 0)
        return rc;
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        link_close(&l);
        return rc;
    }
    if (pid == 0) {
        if (l.parent_rd != l.child_rd)
            close(l.parent_rd);
        if (l.parent_wr != l.child_wr && l.parent_wr != l.parent_rd)
            close(l.parent_wr);
        echo_child(l.child_rd, l.child_wr, o->size);
    }
    /* The child's ends are its own now: closing ours lets it see EOF. */
    close(l.child_rd);
    if (l.child_wr != l.child_rd)
        close(l.child_wr);
    rc = ping(l.parent_rd, l.parent_wr, o, r);
    close(l.parent_rd);
    if (l.parent_wr != l.parent_rd)
        close(l.parent_wr);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        rc = -ECHILD;
    return rc;
}

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

static void print_text(const struct options *o, const struct result *res)
{
    printf("%-9s %8s %12s %12s %9s %9s %9s %9s %9s\n", "transport", "size", "messages", "msgs/s",
           "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
    for (int t = 0; t < T_COUNT; t++) {
        if (!o->which[t])
            continue;
        const struct result *r = &res[t];
        printf("%-9s %8llu %12llu %12.0f %9.2f %9.2f %9.2f %9.2f %9.2f\n", transport_names[t],
               (unsigned long long)o->size, (unsigned long long)r->msgs, r->msgs / r->seconds,
               us(hist_percentile(r->rtt, 50)), us(hist_percentile(r->rtt, 90)),
               us(hist_percentile(r->rtt, 99)), us(hist_percentile(r->rtt, 99.9)),
               us(hist_max(r->rtt)));
    }
}

static void print_json(const struct options *o, const struct result *res)
{
    printf("{\"size\":%llu,\"transports\":[", (unsigned long long)o->size);
    const char *sep = "";
    for (int t = 0; t < T_COUNT; t++) {
        if (!o->which[t])
            continue;
        const struct result *r = &res[t];
        printf("%s{\"transport\":\"%s\",\"messages\":%llu,\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
               "\"rtt_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
               "\"p99_9\":%.3f,\"max\":%.3f}}",
               sep, transport_names[t], (unsigned long long)r->msgs, r->seconds,
               r->msgs / r->seconds, us(hist_min(r->rtt)), hist_mean(r->rtt) / 1e3,
               us(hist_percentile(r->rtt, 50)), us(hist_percentile(r->rtt, 90)),
               us(hist_percentile(r->rtt, 99)), us(hist_percentile(r->rtt, 99.9)),
               us(hist_max(r->rtt)));
        sep = ",";
    }
    printf("]}\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tcpmsg-transports [options]\n"
               "  --transport pipe|unix|tcp|all   which to measure (default all)\n"
               "  --size BYTES                    message size (default 64; K, M suffixes)\n"
               "  --count N                       round trips per transport\n"
               "  --duration SEC                  or run each this long (default 2)\n"
               "  --json                          one JSON document instead of a table\n"
               "  -h, --help\n"
               "Two processes (fork) echo one message at a time; %d warm-up round trips\n"
               "are not counted.\n",
            WARMUP);
}

/* 0 to run, 1 for --help, 2 on a usage error (message printed). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "transport", required_argument, NULL, 't' }, { "size", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'c' },     { "duration", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },            { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (struct options){ .size = 64, .duration = 2, .which = { true, true, true } };
    char err[256] = "";
    int opt, rc = 0;
    opterr = 0;
    while (rc == 0 && (opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            for (int t = 0; t < T_COUNT; t++)
                o->which[t] = strcmp(optarg, "all") == 0 || strcmp(optarg, transport_names[t]) == 0;
            if (!o->which[T_PIPE] && !o->which[T_UNIX] && !o->which[T_TCP]) {
                snprintf(err, sizeof err, "--transport: '%s' is not one of pipe, unix, tcp, all",
                         optarg);
                rc = -EINVAL;
            }
            break;
        case 's':
            rc = opt_parse_size("--size", optarg, 1, MAX_SIZE, &o->size, err, sizeof err);
            break;
        case 'c':
            rc = opt_parse_u64("--count", optarg, 1, UINT64_MAX / 2, &o->count, err, sizeof err);
            break;
        case 'd':
            rc = opt_parse_seconds("--duration", optarg, 0.01, 3600, &o->duration, err, sizeof err);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            opt_bad_option_message(err, sizeof err, argv[optind - 1], optopt, longopts);
            rc = -EINVAL;
        }
    }
    if (rc == 0 && optind < argc) {
        snprintf(err, sizeof err, "unexpected argument '%s'", argv[optind]);
        rc = -EINVAL;
    }
    if (rc < 0) {
        fprintf(stderr, "tcpmsg-transports: %s\n", err);
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN); /* a dead child is EPIPE, not our death */
    struct result res[T_COUNT] = { 0 };
    int status = 0;
    for (int t = 0; t < T_COUNT; t++) {
        if (!o.which[t])
            continue;
        res[t].rtt = hist_new();
        rc = res[t].rtt != NULL ? run_transport((enum transport)t, &o, &res[t]) : -ENOMEM;
        if (rc < 0 || res[t].msgs == 0) {
            fprintf(stderr, "tcpmsg-transports: %s: %s\n", transport_names[t],
                    rc < 0 ? strerror(-rc) : "no round trip completed");
            status = 1;
            o.which[t] = false;
        }
    }
    if (o.json)
        print_json(&o, res);
    else
        print_text(&o, res);
    for (int t = 0; t < T_COUNT; t++)
        hist_free(res[t].rtt);
    return status;
}
