/* tcpinfo: struct tcp_info, reduced to the fields tcpmsg reports. See
 * tcpinfo.h.
 */
#include "tcpmsg/tcpinfo.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const char *const names[] = {
#define X(name, ...) [TCPINFO_##name] = #name,
    TCPINFO_FIELDS(X, )
#undef X
};

const char *tcpinfo_field_name(enum tcpinfo_field f)
{
    return (unsigned)f < TCPINFO_FIELD_COUNT ? names[f] : "?";
}

uint64_t tcpinfo_field(const struct tcpinfo *ti, enum tcpinfo_field f)
{
    switch (f) {
#define X(name, ...)                                                                               \
    case TCPINFO_##name:                                                                           \
        return ti->name;
        TCPINFO_FIELDS(X, )
#undef X
    default:
        return 0;
    }
}

int tcpinfo_read(int fd, struct tcpinfo *out)
{
    /* An older kernel fills a shorter struct and says how much in len:
     * what it did not fill stays 0. */
    struct tcp_info ti;
    memset(&ti, 0, sizeof ti);
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -errno;
#define X(name, member, ...) out->name = ti.member;
    TCPINFO_FIELDS(X, )
#undef X
    return 0;
}
