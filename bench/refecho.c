/* refecho: the reference echo server for bench/run.sh, "the least a server
 * can do". It echoes raw bytes without parsing frames, limits, logs or
 * metrics, so tcpmsgd's cost is measured against it. Same architecture as
 * tcpmsgd for a fair comparison: N worker threads, each with its own
 * level-triggered epoll and its own SO_REUSEPORT listener on one port.
 * Not a server to deploy: no limits, no timeouts, no graceful drain.
 *
 *   refecho [--bind ADDR] [--port N] [--threads N]    (port 0: any free port)
 * Prints "port=N" on stderr once listening; exits on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 64

struct conn {
    int fd;
    size_t off, len; /* unsent reply: buf[off..len); len == 0 when drained */
    char buf[BUF_SIZE];
};

static char listen_tag; /* epoll data.ptr of the listener; others are conns */

static void conn_close(struct conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

static void accept_all(int epfd, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0) {
            /* EMFILE and the like: level-triggered, so retried (and
             * reported) on every wakeup; the benchmark never gets there. */
            if (errno != EAGAIN)
                perror("refecho: accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->off = c->len = 0;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(c);
    }
}

/* Sends buf[off..len). Returns 0 when drained or would block, -1 to close. */
static int conn_flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 0;
}

/* One read, one write back. While a reply is pending, watch EPOLLOUT only:
 * a client that does not read its replies stops being read (backpressure). */
static int conn_event(int epfd, struct conn *c, uint32_t events)
{
    bool was_pending = c->len > 0;
    if (events & EPOLLERR)
        return -1;
    if (!was_pending) {
        ssize_t n = read(c->fd, c->buf, sizeof c->buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        c->len = n > 0 ? (size_t)n : 0;
    }
    if (conn_flush(c) < 0)
        return -1;
    bool pending = c->len > 0;
    if (pending != was_pending) {
        struct epoll_event ev = { .events = pending ? EPOLLOUT : EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
            return -1;
    }
    return 0;
}

static void *worker_run(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("refecho: epoll");
        exit(1);
    }
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listen_tag)
                accept_all(epfd, lfd);
            else if (conn_event(epfd, evs[i].data.ptr, evs[i].events) < 0)
                conn_close(evs[i].data.ptr);
        }
    }
    return NULL;
}

/* The first listener binds (port 0 included); the others reuse its port. */
static int listen_on(struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 1024) < 0) {
        perror("refecho: listen");
        exit(1);
    }
    getsockname(fd, (struct sockaddr *)ss, &len);
    return fd;
}

static void usage(int code)
{
    fputs("usage: refecho [--bind ADDR] [--port N] [--threads N]\n", code ? stderr : stdout);
    exit(code);
}

int main(int argc, char **argv)
{
    const char *bind_addr = "127.0.0.1", *port = "0";
    long threads = 1;
    static const struct option opts[] = {
        { "bind", required_argument, NULL, 'b' }, { "port", required_argument, NULL, 'p' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 } };
    for (int o; (o = getopt_long(argc, argv, "b:p:t:h", opts, NULL)) != -1;) {
        if (o == 'b')
            bind_addr = optarg;
        else if (o == 'p')
            port = optarg;
        else if (o == 't')
            threads = strtol(optarg, NULL, 10);
        else
            usage(o == 'h' ? 0 : 2);
    }
    if (optind != argc || threads < 1 || threads > 256)
        usage(2);

    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    int rc = getaddrinfo(bind_addr, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "refecho: %s:%s: %s\n", bind_addr, port, gai_strerror(rc));
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t len = ai->ai_addrlen;
    memcpy(&ss, ai->ai_addr, len);
    freeaddrinfo(ai);

    /* Workers inherit this mask, so only sigwait() below sees the signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a vanished client gives EPIPE, not death */

    for (long i = 0; i < threads; i++) {
        pthread_t t;
        int lfd = listen_on(&ss, len);
        if (pthread_create(&t, NULL, worker_run, (void *)(intptr_t)lfd) != 0) {
            fputs("refecho: cannot start a worker thread\n", stderr);
            return 1;
        }
    }
    in_port_t bound = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port;
    fprintf(stderr, "refecho listening port=%u threads=%ld\n", ntohs(bound), threads);
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "refecho stopped signal=%d\n", sig);
    return 0; /* exit() takes the workers and their sockets with it */
}
