/* webpath: strict decoding of request paths for the static file server,
 * and opening them below the web root. Everything suspicious is refused
 * rather than repaired.
 */
#include "tcpmsg/webpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A finished segment out[seg..len) may not be "." or "..". */
static int check_segment(const char *out, size_t seg, size_t len)
{
    size_t n = len - seg;
    if ((n == 1 && out[seg] == '.') || (n == 2 && out[seg] == '.' && out[seg + 1] == '.'))
        return -EINVAL;
    return 0;
}

int webpath_decode(const char *raw, size_t n, char *out, size_t cap)
{
    if (n == 0 || raw[0] != '/')
        return -EINVAL;
    if (cap < 2)
        return -ENAMETOOLONG;
    size_t len = 0, seg = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(raw[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(raw[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            /* An encoded separator or NUL is never part of a real file name. */
            if (c == '/' || c == '\0')
                return -EINVAL;
        } else if (c == '/') {
            if (check_segment(out, seg, len) < 0)
                return -EINVAL;
            if (len > 0 && out[len - 1] == '/')
                continue; /* collapse "//" */
            if (len + 1 >= cap)
                return -ENAMETOOLONG;
            out[len++] = '/';
            seg = len;
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == '\\')
            return -EINVAL;
        if (len + 1 >= cap)
            return -ENAMETOOLONG;
        out[len++] = (char)c;
    }
    if (check_segment(out, seg, len) < 0)
        return -EINVAL;
    out[len] = '\0';
    return (int)len;
}

const char *webpath_content_type(const char *name)
{
    static const struct { const char *ext; const char *type; } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".json", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },
        { ".woff2", "font/woff2" },
    };
    const char *dot = strrchr(name, '.');
    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

/* "." and "..": the decoder never lets them through, and this function does
 * not rely on it. */
static bool is_dot_segment(const char *comp)
{
    return comp[0] == '.' && (comp[1] == '\0' || (comp[1] == '.' && comp[2] == '\0'));
}

int webpath_open_beneath(int dirfd, const char *rel, struct stat *st)
{
    char buf[WEBPATH_MAX];
    size_t n = strlen(rel);
    if (n >= sizeof buf)
        return -ENAMETOOLONG; /* never a truncated, different name */
    memcpy(buf, rel, n + 1);
    int dir = dup(dirfd);
    if (dir < 0)
        return -errno;
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    while (comp != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        if (is_dot_segment(comp)) {
            close(dir);
            return -EACCES;
        }
        /* One component per openat, so O_NOFOLLOW covers every step.
         * O_NONBLOCK: opening a FIFO must not hang the HTTP thread. */
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (next ? O_DIRECTORY : 0);
        int fd = openat(dir, comp, flags);
        int err = errno;
        close(dir);
        if (fd < 0)
            return -err;
        dir = fd;
        comp = next;
    }
    if (fstat(dir, st) < 0 || !S_ISREG(st->st_mode)) {
        close(dir);
        return -EISDIR; /* directories, FIFOs, devices are not served */
    }
    return dir;
}
