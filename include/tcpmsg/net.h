/* net: small socket helpers shared by server, client and tests: address
 * parsing and printing, listening and connecting sockets, socket options, I/O
 * that retries EINTR, and the monotonic clock. No event loop lives here.
 *
 * All int functions return 0 (or a descriptor / byte count) on success and a
 * negative errno on failure.
 */
#ifndef TCPMSG_NET_H
#define TCPMSG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

/* Enough for "[ffff:...:ffff%ifname]:65535". */
#define NET_ADDRSTRLEN 80

/* Split "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT" into host and port.
 * A bare IPv6 address with several ':' is taken as a host. port keeps
 * default_port when the text has none. Returns 0 or -EINVAL. */
int net_split_hostport(const char *text, char *host, size_t host_cap, uint16_t *port,
                       uint16_t default_port);

/* Parse a port number 0..65535. Returns 0 or -EINVAL. */
int net_parse_port(const char *text, uint16_t *port);

/* Resolve host (a literal or a name) and port into *ss. Returns 0, or
 * -EINVAL when host cannot be resolved (message in err when err_cap > 0). */
int net_resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                socklen_t *len, char *err, size_t err_cap);

/* "1.2.3.4:80" / "[::1]:80" for an address. Always NUL-terminates out. */
void net_format_addr(const struct sockaddr *sa, char *out, size_t cap);
/* The address alone ("1.2.3.4", "::1"), and the port. */
void net_format_host(const struct sockaddr *sa, char *out, size_t cap);
uint16_t net_addr_port(const struct sockaddr *sa);

/* A non-blocking, close-on-exec listening socket with SO_REUSEADDR
 * (IPV6_V6ONLY off for "::" so it also takes IPv4), and SO_REUSEPORT when
 * reuseport is set. Returns the fd. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport);

/* Connect a blocking, close-on-exec socket with TCP_NODELAY, giving up after
 * timeout_ms (<= 0: no limit). Returns the fd, -ETIMEDOUT, -ECONNREFUSED... */
int net_connect(const struct sockaddr *sa, socklen_t len, int timeout_ms);

int net_set_nonblock(int fd, bool on);
int net_set_nodelay(int fd);

/* read/write that retry EINTR. Return bytes, 0 at EOF (read), or -errno
 * (-EAGAIN when a non-blocking socket would block). */
ssize_t net_read(int fd, void *buf, size_t n);
ssize_t net_write(int fd, const void *buf, size_t n);
/* writev() of iovcnt buffers, as net_write: bytes written, or -errno
 * (-EAGAIN: the socket buffer is full). */
struct iovec;
ssize_t net_writev(int fd, const struct iovec *iov, int iovcnt);

/* Write all n bytes / read exactly n bytes, waiting at most timeout_ms in
 * total (<= 0: no limit), on blocking and non-blocking sockets alike. Return
 * 0, -ETIMEDOUT, -ECONNRESET (peer closed early on read_full), or -errno. */
int net_write_all(int fd, const void *buf, size_t n, int timeout_ms);
int net_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* accept4() on listen_fd that keeps out of a descriptor slot another thread
 * is freeing for itself (net_accept_into_freed). The kernel gives every new
 * descriptor the lowest free number, whichever thread asks: out of
 * descriptors, a slot freed to take one client would otherwise go to
 * whichever accept ran first. Each call takes a shared lock, per accept,
 * not per message. Returns the descriptor or -1 with errno, as accept4. */
int net_accept4(int listen_fd, struct sockaddr *addr, socklen_t *len, int flags);

/* Close *spare (a descriptor held in reserve) and accept one client into
 * the freed slot, with every net_accept4 of the process held off meanwhile,
 * so no other thread takes it. *spare is -1 afterwards. Returns the
 * descriptor or -1 with errno, as accept4. */
int net_accept_into_freed(int *spare, int listen_fd, struct sockaddr *addr, socklen_t *len,
                          int flags);

/* Monotonic clock in nanoseconds. */
static inline uint64_t net_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The wall clock in seconds since the epoch (timestamps for logs of record,
 * --start-at, "last success" gauges). */
static inline double net_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
