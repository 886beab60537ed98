/* tcpinfo: what the kernel's TCP knows about one connection (TCP_INFO):
 * its smoothed RTT, congestion window, retransmissions, and how long it was
 * held back by the receiver's window or by its own send buffer. One
 * getsockopt per read; it does not sample or aggregate (the server does).
 */
#ifndef TCPMSG_TCPINFO_H
#define TCPMSG_TCPINFO_H

#include <stdint.h>

/* The fields tcpmsg reports, each as X(name, struct tcp_info member, A,
 * help): A is passed through, so another list can be built from this one
 * (the connection list's sort keys). The name is the JSON key and the sort
 * key; the unit is in the name. */
#define TCPINFO_FIELDS(X, A)                                                       \
    X(srtt_us, tcpi_rtt, A, "smoothed round-trip time, microseconds")              \
    X(rttvar_us, tcpi_rttvar, A, "round-trip time variation, microseconds")        \
    X(min_rtt_us, tcpi_min_rtt, A, "smallest round-trip time seen, microseconds")  \
    X(snd_cwnd, tcpi_snd_cwnd, A, "congestion window, segments")                   \
    X(snd_mss, tcpi_snd_mss, A, "sender's maximum segment size, bytes")            \
    X(retransmits, tcpi_retransmits, A,                                            \
      "retransmission timeouts in a row now (0 when healthy)")                     \
    X(total_retrans, tcpi_total_retrans, A,                                        \
      "segments retransmitted over the connection's life")                         \
    X(lost, tcpi_lost, A, "segments now presumed lost")                            \
    X(unacked, tcpi_unacked, A, "segments sent and not yet acknowledged")          \
    X(delivery_rate_bytes_per_second, tcpi_delivery_rate, A,                       \
      "recent delivery rate, bytes per second")                                    \
    X(bytes_sent, tcpi_bytes_sent, A, "bytes sent, retransmissions included")      \
    X(bytes_retrans, tcpi_bytes_retrans, A, "bytes retransmitted")                 \
    X(bytes_acked, tcpi_bytes_acked, A, "bytes acknowledged by the peer")          \
    X(bytes_received, tcpi_bytes_received, A, "bytes received from the peer")      \
    X(busy_us, tcpi_busy_time, A, "time with data in flight, microseconds")        \
    X(rwnd_limited_us, tcpi_rwnd_limited, A,                                       \
      "time held back by the peer's receive window, microseconds")                 \
    X(sndbuf_limited_us, tcpi_sndbuf_limited, A,                                   \
      "time held back by our own send buffer, microseconds")

struct tcpinfo {
#define X(name, ...) uint64_t name;
    TCPINFO_FIELDS(X, )
#undef X
};

enum tcpinfo_field {
#define X(name, ...) TCPINFO_##name,
    TCPINFO_FIELDS(X, )
#undef X
        TCPINFO_FIELD_COUNT
};

/* The field's name ("srtt_us"), and its value in ti. */
const char *tcpinfo_field_name(enum tcpinfo_field f);
uint64_t tcpinfo_field(const struct tcpinfo *ti, enum tcpinfo_field f);

/* Read fd's TCP_INFO into *out. Fields an older kernel does not report are
 * 0. 0 or -errno (getsockopt's: -ENOTSOCK, -EOPNOTSUPP for a non-TCP
 * socket, ...). */
int tcpinfo_read(int fd, struct tcpinfo *out);

#endif
