/* oneshot: tcpmsg's default command. Sends each message, waits for its
 * reply, checks it, and prints it with the round-trip time, as a person
 * typing at the server would want to see.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "client/stages.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"
#include "tcpmsg/tstamp.h"

#define CLOSE_WAIT_MS 1000 /* after the last message, wait this long for the server's EOF */

/* --- replies on a terminal -------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left) whose code
 * point is printable, or 0: an invalid or overlong sequence, a surrogate, or
 * a C1 control (U+0080..U+009F, which some terminals obey as ESC [ ...). */
static size_t printable_utf8(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 ? (p[0] <= 0xf4 ? 4 : 0) : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return len;
}

/* Write n bytes of a reply to f as a terminal can show them safely: a reply
 * is whatever the server sent, and ESC [ 2 J, a title change or a bell in it
 * would act on the user's terminal. Printable ASCII and UTF-8 text pass as
 * they are; control bytes become \n, \r, \t, \e and \xNN, and so does
 * any byte that is not part of valid UTF-8. (The server's log escaper is
 * not reused: it writes non-ASCII as \u00XX, for JSON, and cuts long
 * bodies, while a terminal shows UTF-8 and the whole reply.) */
static void write_escaped(FILE *f, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c >= 0x80 ? printable_utf8(p + i, n - i) : 0;
        if (len > 0) {
            fwrite(p + i, 1, len, f);
            i += len;
            continue;
        }
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == 0x1b)
            fputs("\\e", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
        i++;
    }
}

/* A reply (or a server's error text) as the user sees it: escaped on a
 * terminal, the exact bytes otherwise, so that a pipe or a file gets what
 * the server sent. */
static void write_reply(FILE *f, const void *p, size_t n)
{
    if (isatty(fileno(f)))
        write_escaped(f, p, n);
    else
        fwrite(p, 1, n, f);
}

/* --- connecting and exchanging ------------------------------------------------ */

/* The connection of a one-shot run. */
struct oneshot {
    int fd;
    const struct client_config *cfg;
    const char *addr;      /* "ip:port", for messages */
    /* --stages: the kernel's timestamps of this socket (tstamp.h) */
    bool stamps;           /* asked for, and the kernel agreed */
    uint32_t next_byte;    /* byte number (OPT_ID) of the next byte written */
    struct cstage_track track; /* the message in flight, until its SND stamp */
    uint64_t rx_ns;        /* receive stamp of the bytes the last read returned */
    uint64_t read_ns;      /* when that read returned */
    uint64_t seq;          /* the message being exchanged, counted from 0 */
};

static int timeout_ms(const struct client_config *cfg)
{
    return (int)(cfg->timeout * 1000 + 0.5);
}

int client_connect(const struct client_config *cfg, char *addr_out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[300];
    if (net_resolve(cfg->host, cfg->port, false, &ss, &len, err, sizeof err) < 0) {
        /* A colon in what should be a name: an IPv6 address with a port
         * written the IPv4 way. */
        fprintf(stderr, "tcpmsg: %s%s\n", err,
                strchr(cfg->host, ':') != NULL
                    ? " (an IPv6 address with a port is written in brackets: [::1]:8080)"
                    : "");
        return -EINVAL;
    }
    net_format_addr((struct sockaddr *)&ss, addr_out, NET_ADDRSTRLEN);
    int fd = net_connect((struct sockaddr *)&ss, len, timeout_ms(cfg));
    if (fd < 0)
        fprintf(stderr, "tcpmsg: cannot connect to %s: %s\n", addr_out,
                fd == -ETIMEDOUT ? "timed out" : strerror(-fd));
    return fd;
}

int client_connect_status(int err)
{
    return err == -EINVAL ? EXIT_USAGE : err == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_CONNECT;
}

/* Map a failed read or write to an exit status, with a message. */
static int io_failure(const struct oneshot *os, const char *what, int rc)
{
    const struct client_config *cfg = os->cfg;
    const char *addr = os->addr;
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "tcpmsg: no reply from %s within %g s\n", addr, cfg->timeout);
        return EXIT_TIMEOUT;
    }
    if (rc == -ECONNRESET && strcmp(what, "read") == 0)
        fprintf(stderr, "tcpmsg: %s closed the connection\n", addr);
    else
        fprintf(stderr, "tcpmsg: %s %s: %s\n", what, addr, strerror(-rc));
    return EXIT_IO;
}

/* Milliseconds left until deadline_ns (rounded up), or -ETIMEDOUT. */
static int ms_until(uint64_t deadline_ns)
{
    uint64_t now = net_now_ns();
    if (now >= deadline_ns)
        return -ETIMEDOUT;
    return (int)((deadline_ns - now + 999999) / 1000000);
}

/* Read every transmit stamp waiting in the error queue. SND stamps complete
 * the message in flight; the others (SCHED, ACK) are only read so that the
 * queue does not keep poll() reporting POLLERR. */
static void drain_stamps(struct oneshot *os)
{
    struct tstamp_report r;
    while (tstamp_read_tx(os->fd, &r) == 1)
        cstage_track_report(&os->track, &r);
}

/* Read n bytes with recvmsg, keeping the kernel's receive stamp of the
 * last call (the one that returned the last of the n bytes) and the time it
 * returned. Stamps in the error queue wake poll() (POLLERR) and are read
 * on the way. 0, or as net_read_full. */
static int read_stamped(struct oneshot *os, uint8_t *p, size_t n, uint64_t deadline_ns)
{
    while (n > 0) {
        int ms = ms_until(deadline_ns);
        if (ms < 0)
            return ms;
        struct pollfd pfd = { .fd = os->fd, .events = POLLIN };
        int rc = poll(&pfd, 1, ms);
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc <= 0)
            continue; /* EINTR, or the deadline: checked above */
        drain_stamps(os);
        union {
            char buf[TSTAMP_RX_CMSG_SPACE];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = p, .iov_len = n };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                              .msg_controllen = sizeof ctl.buf };
        ssize_t r = recvmsg(os->fd, &msg, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue; /* only a stamp woke us */
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ECONNRESET;
        os->read_ns = tstamp_now_ns();
        os->rx_ns = tstamp_rx_ns(&msg);
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read n bytes before deadline_ns: 0, or -ETIMEDOUT / -ECONNRESET / -errno.
 * One deadline for a whole reply, however it trickles in. */
static int read_by(struct oneshot *os, void *buf, size_t n, uint64_t deadline_ns)
{
    if (os->stamps)
        return read_stamped(os, buf, n, deadline_ns);
    int ms = ms_until(deadline_ns);
    return ms < 0 ? ms : net_read_full(os->fd, buf, n, ms);
}

/* The rest of a frame whose header is hdr, into *buf (grown as needed). */
static int read_frame_body(struct oneshot *os, const uint8_t hdr[FRAME_HEADER_SIZE],
                           uint8_t **buf, size_t *len, uint64_t deadline_ns)
{
    *len = frame_header_len(hdr);
    uint8_t *p = realloc(*buf, *len + 1);
    if (p == NULL) {
        fprintf(stderr, "tcpmsg: out of memory for a %zu-byte reply\n", *len);
        return EXIT_IO;
    }
    *buf = p;
    int rc = read_by(os, *buf, *len, deadline_ns);
    if (rc < 0)
        return io_failure(os, "read", rc);
    if (hdr[0] == FRAME_ERROR) {
        int code = *len > 0 ? (*buf)[0] : 0;
        fprintf(stderr, "tcpmsg: server error (%s): ", frame_error_tag(code));
        write_reply(stderr, *buf + 1, *len > 0 ? *len - 1 : 0);
        fputc('\n', stderr);
        return EXIT_SERVER;
    }
    return EXIT_OK;
}

/* Read one framed reply into *buf. Returns 0 or an exit status; a reply of
 * another type than DATA is a mismatch. */
static int read_frame_reply(struct oneshot *os, uint8_t **buf, size_t *len, uint64_t deadline_ns)
{
    uint8_t hdr[FRAME_HEADER_SIZE];
    int rc = read_by(os, hdr, FRAME_HEADER_SIZE, deadline_ns);
    if (rc < 0)
        return io_failure(os, "read", rc);
    rc = read_frame_body(os, hdr, buf, len, deadline_ns);
    if (rc == EXIT_OK && hdr[0] != FRAME_DATA) {
        fprintf(stderr, "tcpmsg: reply from %s has frame type 0x%02x, not DATA\n", os->addr,
                hdr[0]);
        return EXIT_MISMATCH;
    }
    return rc;
}

/* Read one text reply line (without its LF) into *buf. A connection refused
 * over a limit gets an error frame before the client has spoken: a reply
 * starting with the ERROR type byte is read as one. */
static int read_line_reply(struct oneshot *os, uint8_t **buf, size_t *len, size_t expect,
                           uint64_t deadline_ns)
{
    size_t cap = expect + 2 > 256 ? expect + 2 : 256; /* room for an ERR line too */
    uint8_t *p = realloc(*buf, cap);
    if (p == NULL)
        return EXIT_IO;
    *buf = p;
    *len = 0;
    for (;;) { /* a byte at a time: never read past the reply we wait for */
        uint8_t c;
        int rc = read_by(os, &c, 1, deadline_ns);
        if (rc < 0)
            return io_failure(os, "read", rc);
        if (*len == 0 && c == FRAME_ERROR) {
            uint8_t hdr[FRAME_HEADER_SIZE] = { c };
            rc = read_by(os, hdr + 1, FRAME_HEADER_SIZE - 1, deadline_ns);
            if (rc < 0)
                return io_failure(os, "read", rc);
            return read_frame_body(os, hdr, buf, len, deadline_ns);
        }
        if (c == '\n')
            break;
        if (*len < cap)
            (*buf)[(*len)++] = c;
    }
    if (*len >= 4 && memcmp(*buf, "ERR ", 4) == 0 && (*len != expect)) {
        fputs("tcpmsg: server error: ", stderr);
        write_reply(stderr, *buf + 4, *len - 4);
        fputc('\n', stderr);
        return EXIT_SERVER;
    }
    return EXIT_OK;
}

/* Write n bytes, each sendmsg() carrying the control message that asks for
 * the transmit stamps of its last byte: the call that writes the message's
 * last byte gets it stamped, whatever partial writes came before (their
 * stamps are of earlier bytes, and match nothing). 0, or as net_write_all. */
static int write_stamped(struct oneshot *os, const uint8_t *p, size_t n, uint64_t deadline_ns)
{
    while (n > 0) {
        union {
            char buf[TSTAMP_TX_CMSG_SPACE];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf };
        msg.msg_controllen = tstamp_tx_cmsg(ctl.buf);
        ssize_t w = sendmsg(os->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ms = ms_until(deadline_ns);
            if (ms < 0)
                return ms;
            struct pollfd pfd = { .fd = os->fd, .events = POLLOUT };
            (void)poll(&pfd, 1, ms);
            drain_stamps(os); /* a stamp in the error queue also wakes poll */
            continue;
        }
        if (w < 0)
            return -errno;
        os->next_byte += (uint32_t)w;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send a message of n bytes; with --stages, stamped, its last byte's number
 * and the moment it was handed to the kernel kept for the split. */
static int send_message(struct oneshot *os, const uint8_t *out, size_t n, uint64_t deadline_ns)
{
    if (!os->stamps)
        return net_write_all(os->fd, out, n, timeout_ms(os->cfg));
    uint64_t handed = tstamp_now_ns();
    int rc = write_stamped(os, out, n, deadline_ns);
    if (rc == 0)
        (void)cstage_track_sent(&os->track, os->seq, os->next_byte - 1, handed); /* never full */
    return rc;
}

/* " (client tx 3.1 us, network+server 40.2 us, client rx 1.0 us)": where
 * the round trip of message os->seq, whose reply has just been read, went. */
static void print_stages(struct oneshot *os)
{
    drain_stamps(os); /* SND came long before the reply */
    struct cstage_times t = { .rx_ns = os->rx_ns, .read_ns = os->read_ns };
    uint64_t part[CSTAGE_COUNT];
    if (!cstage_track_take(&os->track, os->seq, &t.handed_ns, &t.snd_ns) ||
        !cstage_split(&t, part)) {
        /* The kernel turns receive stamping on a moment after the first
         * socket of the system asks (tstamp.h), and off when the last one
         * closes: a first reply can come without a stamp. */
        fputs(t.rx_ns == 0 ? " (stages: no receive timestamp yet)"
                           : " (stages: no transmit timestamp)",
              stdout);
        return;
    }
    for (int i = 0; i < CSTAGE_COUNT; i++)
        printf("%s%s %.1f us", i == 0 ? " (" : ", ", cstage_text((enum cstage)i),
               (double)part[i] / 1e3);
    putchar(')');
}

/* Send one message and check its reply. Returns an exit status. */
static int exchange(struct oneshot *os, const char *msg, size_t n, uint8_t **buf,
                    struct hist *rtts)
{
    const struct client_config *cfg = os->cfg;
    if (n > FRAME_MAX_PAYLOAD_LIMIT || (cfg->text && memchr(msg, '\n', n) != NULL)) {
        fprintf(stderr, "tcpmsg: message too long for a frame, or a text message with a newline\n");
        return EXIT_USAGE;
    }
    /* One write for the whole message: its header and payload leave together. */
    size_t wire = cfg->text ? n + 1 : FRAME_HEADER_SIZE + n;
    uint8_t *out = malloc(wire);
    if (out == NULL)
        return EXIT_IO;
    if (cfg->text) {
        memcpy(out, msg, n);
        out[n] = '\n';
    } else {
        frame_header_encode(out, FRAME_DATA, n);
        memcpy(out + FRAME_HEADER_SIZE, msg, n);
    }
    uint64_t t0 = net_now_ns();
    uint64_t deadline = t0 + (uint64_t)timeout_ms(cfg) * 1000000u;
    int rc = send_message(os, out, wire, deadline);
    free(out);
    size_t len = 0;
    if (rc < 0) {
        /* Refused over a limit, the server sent why before it closed. */
        if ((rc == -EPIPE || rc == -ECONNRESET) && !cfg->text &&
            read_frame_reply(os, buf, &len, net_now_ns() + 100000000u) == EXIT_SERVER)
            return EXIT_SERVER;
        return io_failure(os, "write to", rc);
    }
    rc = cfg->text ? read_line_reply(os, buf, &len, n, deadline)
                   : read_frame_reply(os, buf, &len, deadline);
    if (rc != EXIT_OK)
        return rc;
    uint64_t rtt_ns = net_now_ns() - t0;
    double rtt_us = (double)rtt_ns / 1e3;
    if (len != n || memcmp(*buf, msg, n) != 0) {
        fprintf(stderr, "tcpmsg: reply from %s does not match the message (%zu bytes sent, %zu received)\n",
                os->addr, n, len);
        return EXIT_MISMATCH;
    }
    hist_record(rtts, rtt_ns);
    printf("reply from %s in %.1f us", os->addr, rtt_us);
    if (os->stamps)
        print_stages(os);
    fputs(": ", stdout);
    write_reply(stdout, *buf, len);
    putchar('\n');
    fflush(stdout);
    os->seq++;
    return EXIT_OK;
}

/* Tell the server the RTTs we measured (framed mode only: a text
 * connection has no way to carry a control frame). */
static void send_report(int fd, const struct client_config *cfg, const struct hist *rtts)
{
    if (!cfg->report || cfg->text)
        return;
    uint8_t *frame = malloc(RTT_REPORT_MAX_FRAME);
    if (frame == NULL)
        return;
    size_t n = rtt_report_encode(rtts, frame, RTT_REPORT_MAX_FRAME);
    if (n > 0)
        (void)net_write_all(fd, frame, n, timeout_ms(cfg)); /* best effort */
    free(frame);
}

/* Close so that the server sees a clean end: shut our side, then read until
 * its EOF (a byte-echo server sends our report back: discarded). With
 * --stages the reads also empty the error queue of the last ACK stamps. */
static void close_gracefully(struct oneshot *os)
{
    shutdown(os->fd, SHUT_WR);
    uint8_t sink[1];
    uint64_t deadline = net_now_ns() + CLOSE_WAIT_MS * 1000000ull;
    while (read_by(os, sink, 1, deadline) == 0) {
    } /* until EOF (reported as a reset), the deadline or an error */
    close(os->fd);
}

int oneshot_run(const struct client_config *cfg)
{
    char addr[NET_ADDRSTRLEN];
    struct oneshot os = { .cfg = cfg, .addr = addr };
    os.fd = client_connect(cfg, addr);
    if (os.fd < 0)
        return client_connect_status(os.fd);
    /* Before the first byte is written: byte numbers count from it. */
    int e = cfg->stages ? tstamp_enable(os.fd) : 0;
    if (e < 0) {
        fprintf(stderr, "tcpmsg: --stages: the kernel refused SO_TIMESTAMPING: %s\n", strerror(-e));
        close(os.fd);
        return EXIT_IO;
    }
    os.stamps = cfg->stages;
    struct hist *rtts = hist_new();
    if (rtts == NULL) {
        close(os.fd);
        return EXIT_IO;
    }
    uint8_t *buf = NULL;
    int rc = EXIT_OK;
    for (size_t i = 0; i < cfg->nmessages && rc == EXIT_OK; i++)
        rc = exchange(&os, cfg->messages[i], strlen(cfg->messages[i]), &buf, rtts);
    if (cfg->nmessages == 0) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n')
                n--;
            if (n > 0 && line[n - 1] == '\r')
                n--;
            rc = exchange(&os, line, (size_t)n, &buf, rtts);
        }
        free(line);
    }
    free(buf);
    if (rc == EXIT_OK) {
        send_report(os.fd, cfg, rtts);
        close_gracefully(&os);
    } else {
        close(os.fd);
    }
    hist_free(rtts);
    return rc;
}
