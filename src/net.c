/* net: socket helpers shared by every program: address parsing, listen and
 * connect, options, EINTR-safe I/O. Returns follow the -errno convention.
 */
#include "tcpmsg/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int net_parse_port(const char *text, uint16_t *port)
{
    char *end;
    errno = 0;
    if (*text < '0' || *text > '9')
        return -EINVAL;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

static int copy_host(char *host, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n >= cap)
        return -EINVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int net_split_hostport(const char *text, char *host, size_t host_cap, uint16_t *port,
                       uint16_t default_port)
{
    *port = default_port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return -EINVAL;
        if (copy_host(host, host_cap, text + 1, (size_t)(close - text - 1)) < 0)
            return -EINVAL;
        if (close[1] == '\0')
            return 0;
        if (close[1] != ':')
            return -EINVAL;
        return net_parse_port(close + 2, port);
    }
    const char *colon = strchr(text, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL) /* none, or bare IPv6 */
        return copy_host(host, host_cap, text, strlen(text));
    if (copy_host(host, host_cap, text, (size_t)(colon - text)) < 0)
        return -EINVAL;
    return net_parse_port(colon + 1, port);
}

int net_resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                socklen_t *len, char *err, size_t err_cap)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    if (passive)
        hints.ai_flags = AI_PASSIVE;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        if (err_cap > 0)
            snprintf(err, err_cap, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void net_format_host(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (inet_ntop(sa->sa_family, a, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "?");
}

uint16_t net_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void net_format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    net_format_host(sa, host, sizeof host);
    if (sa->sa_family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", host, (unsigned)net_addr_port(sa));
    else
        snprintf(out, cap, "%s:%u", host, (unsigned)net_addr_port(sa));
}

int net_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    /* Restart without waiting out TIME_WAIT of the previous run's sockets. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int net_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int net_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ? -errno : 0;
}

/* Milliseconds left until deadline_ns, for poll(); -1 means no deadline. */
static int ms_left(uint64_t deadline_ns)
{
    if (deadline_ns == 0)
        return -1;
    uint64_t now = net_now_ns();
    if (now >= deadline_ns)
        return 0;
    return (int)((deadline_ns - now + 999999) / 1000000);
}

static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int rc = poll(&p, 1, ms_left(deadline_ns));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static uint64_t deadline_after(int timeout_ms)
{
    return timeout_ms > 0 ? net_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
}

int net_connect(const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto failed_connect;
        }
        rc = wait_fd(fd, POLLOUT, deadline_after(timeout_ms));
        if (rc < 0)
            goto failed_connect;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            rc = -soerr;
            goto failed_connect;
        }
    }
    net_set_nodelay(fd);
    net_set_nonblock(fd, false);
    return fd;

failed_connect:
    close(fd);
    return rc;
}

ssize_t net_read(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t net_write(int fd, const void *buf, size_t n)
{
    for (;;) {
        /* send(MSG_NOSIGNAL): a closed peer is an EPIPE here, never SIGPIPE. */
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == ENOTSOCK) {
            w = write(fd, buf, n);
            if (w >= 0)
                return w;
        }
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t net_writev(int fd, const struct iovec *iov, int iovcnt)
{
    /* sendmsg(MSG_NOSIGNAL) for the same reason as net_write's send(). */
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    for (;;) {
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == ENOTSOCK) {
            w = writev(fd, iov, iovcnt);
            if (w >= 0)
                return w;
        }
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* send() that never blocks, even on a blocking socket, so that a deadline
 * holds; -EAGAIN when the socket buffer is full. */
static ssize_t send_now(int fd, const void *buf, size_t n)
{
    for (;;) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == ENOTSOCK)
            return net_write(fd, buf, n);
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int net_write_all(int fd, const void *buf, size_t n, int timeout_ms)
{
    const uint8_t *p = buf;
    uint64_t deadline = deadline_after(timeout_ms);
    while (n > 0) {
        ssize_t w = send_now(fd, p, n);
        if (w == -EAGAIN) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        if (w < 0)
            return (int)w;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int net_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t deadline = deadline_after(timeout_ms);
    while (n > 0) {
        /* Wait first so the timeout holds on a blocking socket too. */
        if (deadline != 0) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc < 0)
                return rc;
        }
        ssize_t r = net_read(fd, p, n);
        if (r == -EAGAIN)
            continue;
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ECONNRESET;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Shared by every accept, exclusive while a slot is freed and taken again.
 * Writers first: a flood of accepts must not hold off the one taking its
 * freed slot. */
static pthread_rwlock_t accept_gate;
static pthread_once_t accept_gate_once = PTHREAD_ONCE_INIT;

static void accept_gate_init(void)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&accept_gate, &attr);
    pthread_rwlockattr_destroy(&attr);
}

int net_accept4(int listen_fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    pthread_once(&accept_gate_once, accept_gate_init);
    pthread_rwlock_rdlock(&accept_gate);
    int fd = accept4(listen_fd, addr, len, flags);
    int e = errno;
    pthread_rwlock_unlock(&accept_gate);
    errno = e;
    return fd;
}

int net_accept_into_freed(int *spare, int listen_fd, struct sockaddr *addr, socklen_t *len,
                          int flags)
{
    pthread_once(&accept_gate_once, accept_gate_init);
    pthread_rwlock_wrlock(&accept_gate);
    if (*spare >= 0)
        close(*spare);
    *spare = -1;
    int fd = accept4(listen_fd, addr, len, flags);
    int e = errno;
    pthread_rwlock_unlock(&accept_gate);
    errno = e;
    return fd;
}
