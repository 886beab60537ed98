/* minload: the least a closed-loop load generator can do, as the yardstick
 * for tcpmsg bench (bench/client.sh). One thread, one epoll set; each
 * connection keeps DEPTH frames of SIZE bytes in flight; a reply is only
 * counted (by bytes), never checked; no histogram, no timestamps.
 *   minload HOST PORT CONNECTIONS DEPTH SIZE SECONDS
 * prints "msgs_per_s N". Shares no code with tcpmsg on purpose.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct mconn {
    int fd;
    size_t partial; /* bytes of the current reply received so far */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("minload: connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: minload HOST PORT CONNECTIONS DEPTH SIZE SECONDS\n");
        return 2;
    }
    int nconns = atoi(argv[3]), depth = atoi(argv[4]);
    size_t size = (size_t)atol(argv[5]), frame = 4 + size;
    double secs = atof(argv[6]);
    unsigned char *msgs = calloc((size_t)depth, frame), *buf = malloc(1 << 16);
    struct mconn *conns = calloc((size_t)nconns, sizeof *conns);
    for (int d = 0; d < depth; d++) { /* a 4-byte big-endian length, then zeros */
        unsigned char *p = msgs + (size_t)d * frame;
        p[1] = (unsigned char)(size >> 16), p[2] = (unsigned char)(size >> 8), p[3] = (unsigned char)size;
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = dial(argv[1], atoi(argv[2]));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        if (write(conns[i].fd, msgs, (size_t)depth * frame) < 0)
            return 1;
    }
    unsigned long long done = 0;
    double start = now_s(), end = start + secs;
    struct epoll_event events[64];
    while (now_s() < end) {
        int n = epoll_wait(ep, events, 64, 100);
        for (int i = 0; i < n; i++) {
            struct mconn *c = events[i].data.ptr;
            ssize_t r = read(c->fd, buf, 1 << 16);
            if (r <= 0)
                return 1;
            c->partial += (size_t)r;
            size_t replies = c->partial / frame; /* send one frame per reply */
            c->partial %= frame;
            done += replies;
            for (size_t k = 0; k < replies; k += (size_t)depth) {
                size_t batch = replies - k < (size_t)depth ? replies - k : (size_t)depth;
                if (write(c->fd, msgs, batch * frame) < 0)
                    return 1;
            }
        }
    }
    printf("msgs_per_s %.1f\n", (double)done / (now_s() - start));
    return 0;
}
