/* oneshot: tcpmsg's default command. Sends each message, waits for its
 * reply, checks it, and prints it with the round-trip time, as a person
 * typing at the server would want to see.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/net.h"
#include "tcpmsg/rttreport.h"

#define CLOSE_WAIT_MS 1000 /* after the last message, wait this long for the server's EOF */

/* --- replies on a terminal -------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left) whose code
 * point is printable, or 0: an invalid or overlong sequence, a surrogate, or
 * a C1 control (U+0080..U+009F, which some terminals obey as ESC [ ...). */
static size_t printable_utf8(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
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
static int io_failure(const char *what, int rc, const char *addr, const struct client_config *cfg)
{
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

/* Read n bytes before deadline_ns: 0, or -ETIMEDOUT / -ECONNRESET / -errno.
 * One deadline for a whole reply, however it trickles in. */
static int read_by(int fd, void *buf, size_t n, uint64_t deadline_ns)
{
    uint64_t now = net_now_ns();
    if (now >= deadline_ns)
        return -ETIMEDOUT;
    int ms = (int)((deadline_ns - now + 999999) / 1000000);
    return net_read_full(fd, buf, n, ms);
}

/* The rest of a frame whose header is hdr, into *buf (grown as needed). */
static int read_frame_body(int fd, const struct client_config *cfg, const char *addr,
                           const uint8_t hdr[FRAME_HEADER_SIZE], uint8_t **buf, size_t *len,
                           uint64_t deadline_ns)
{
    *len = (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    uint8_t *p = realloc(*buf, *len + 1);
    if (p == NULL) {
        fprintf(stderr, "tcpmsg: out of memory for a %zu-byte reply\n", *len);
        return EXIT_IO;
    }
    *buf = p;
    int rc = read_by(fd, *buf, *len, deadline_ns);
    if (rc < 0)
        return io_failure("read", rc, addr, cfg);
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
static int read_frame_reply(int fd, const struct client_config *cfg, const char *addr,
                            uint8_t **buf, size_t *len, uint64_t deadline_ns)
{
    uint8_t hdr[FRAME_HEADER_SIZE];
    int rc = read_by(fd, hdr, FRAME_HEADER_SIZE, deadline_ns);
    if (rc < 0)
        return io_failure("read", rc, addr, cfg);
    rc = read_frame_body(fd, cfg, addr, hdr, buf, len, deadline_ns);
    if (rc == EXIT_OK && hdr[0] != FRAME_DATA) {
        fprintf(stderr, "tcpmsg: reply from %s has frame type 0x%02x, not DATA\n", addr, hdr[0]);
        return EXIT_MISMATCH;
    }
    return rc;
}

/* Read one text reply line (without its LF) into *buf. A connection refused
 * over a limit gets an error frame before the client has spoken: a reply
 * starting with the ERROR type byte is read as one. */
static int read_line_reply(int fd, const struct client_config *cfg, const char *addr,
                           uint8_t **buf, size_t *len, size_t expect, uint64_t deadline_ns)
{
    size_t cap = expect + 2 > 256 ? expect + 2 : 256; /* room for an ERR line too */
    uint8_t *p = realloc(*buf, cap);
    if (p == NULL)
        return EXIT_IO;
    *buf = p;
    *len = 0;
    for (;;) { /* a byte at a time: never read past the reply we wait for */
        uint8_t c;
        int rc = read_by(fd, &c, 1, deadline_ns);
        if (rc < 0)
            return io_failure("read", rc, addr, cfg);
        if (*len == 0 && c == FRAME_ERROR) {
            uint8_t hdr[FRAME_HEADER_SIZE] = { c };
            rc = read_by(fd, hdr + 1, FRAME_HEADER_SIZE - 1, deadline_ns);
            if (rc < 0)
                return io_failure("read", rc, addr, cfg);
            return read_frame_body(fd, cfg, addr, hdr, buf, len, deadline_ns);
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

/* Send one message and check its reply. Returns an exit status. */
static int exchange(int fd, const struct client_config *cfg, const char *addr, const char *msg,
                    size_t n, uint8_t **buf, struct hist *rtts)
{
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
    int rc = net_write_all(fd, out, wire, timeout_ms(cfg));
    free(out);
    size_t len = 0;
    if (rc < 0) {
        /* Refused over a limit, the server sent why before it closed. */
        if ((rc == -EPIPE || rc == -ECONNRESET) && !cfg->text &&
            read_frame_reply(fd, cfg, addr, buf, &len, net_now_ns() + 100000000u) == EXIT_SERVER)
            return EXIT_SERVER;
        return io_failure("write to", rc, addr, cfg);
    }
    rc = cfg->text ? read_line_reply(fd, cfg, addr, buf, &len, n, deadline)
                   : read_frame_reply(fd, cfg, addr, buf, &len, deadline);
    if (rc != EXIT_OK)
        return rc;
    uint64_t rtt_ns = net_now_ns() - t0;
    double rtt_us = (double)rtt_ns / 1e3;
    if (len != n || memcmp(*buf, msg, n) != 0) {
        fprintf(stderr, "tcpmsg: reply from %s does not match the message (%zu bytes sent, %zu received)\n",
                addr, n, len);
        return EXIT_MISMATCH;
    }
    hist_record(rtts, rtt_ns);
    printf("reply from %s in %.1f us: ", addr, rtt_us);
    write_reply(stdout, *buf, len);
    putchar('\n');
    fflush(stdout);
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
 * its EOF (a byte-echo server sends our report back: discarded). */
static void close_gracefully(int fd)
{
    shutdown(fd, SHUT_WR);
    uint8_t sink[4096];
    uint64_t deadline = net_now_ns() + CLOSE_WAIT_MS * 1000000ull;
    while (net_now_ns() < deadline) {
        int left = (int)((deadline - net_now_ns()) / 1000000) + 1;
        if (net_read_full(fd, sink, 1, left) < 0)
            break; /* EOF (reported as a reset by read_full), timeout or error */
    }
    close(fd);
}

int oneshot_run(const struct client_config *cfg)
{
    char addr[NET_ADDRSTRLEN];
    int fd = client_connect(cfg, addr);
    if (fd < 0)
        return client_connect_status(fd);
    struct hist *rtts = hist_new();
    if (rtts == NULL) {
        close(fd);
        return EXIT_IO;
    }
    uint8_t *buf = NULL;
    int rc = EXIT_OK;
    for (size_t i = 0; i < cfg->nmessages && rc == EXIT_OK; i++)
        rc = exchange(fd, cfg, addr, cfg->messages[i], strlen(cfg->messages[i]), &buf, rtts);
    if (cfg->nmessages == 0) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n')
                n--;
            if (n > 0 && line[n - 1] == '\r')
                n--;
            rc = exchange(fd, cfg, addr, line, (size_t)n, &buf, rtts);
        }
        free(line);
    }
    free(buf);
    if (rc == EXIT_OK) {
        send_report(fd, cfg, rtts);
        close_gracefully(fd);
    } else {
        close(fd);
    }
    hist_free(rtts);
    return rc;
}
