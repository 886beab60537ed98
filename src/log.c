/* log: structured event lines in text (logfmt-like) or JSON, one write(2)
 * per line. Settings are process-wide and set once before threads start.
 */
#include "tcpmsg/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define LOG_BYTES_SHOWN 200 /* message bodies are cut after this many bytes */

static enum log_level g_level = LOG_INFO;
static enum log_format g_format = LOG_FORMAT_TEXT;
static int g_fd = 2;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const level_tags[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };

void log_configure(enum log_level min_level, enum log_format format, int fd)
{
    g_level = min_level;
    g_format = format;
    g_fd = fd;
}

bool log_enabled(enum log_level level)
{
    return level >= g_level;
}

bool log_parse_level(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

/* A bounded string builder: appends never overflow, they just stop. */
struct sb {
    char *buf;
    size_t cap; /* usable bytes, excluding room kept for "\n\0" */
    size_t len;
    bool cut; /* an append did not fit */
};

static void sb_putc(struct sb *b, char c)
{
    if (b->len < b->cap)
        b->buf[b->len++] = c;
    else
        b->cut = true;
}

static void sb_puts(struct sb *b, const char *s)
{
    while (*s != '\0')
        sb_putc(b, *s++);
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len + 1, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n > b->cap - b->len)
        b->cut = true;
    if (n > 0)
        b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len;
}

/* Append bytes escaped for a double-quoted string (valid JSON, and readable
 * in text): quotes, backslashes and control bytes escaped, non-ASCII as \u00XX
 * so a line stays valid UTF-8 whatever a client sent. */
static void sb_escaped(struct sb *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t shown = n > LOG_BYTES_SHOWN ? LOG_BYTES_SHOWN : n;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
        } else if (c == '\n') {
            sb_puts(b, "\\n");
        } else if (c == '\r') {
            sb_puts(b, "\\r");
        } else if (c == '\t') {
            sb_puts(b, "\\t");
        } else if (c < 0x20 || c >= 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_putc(b, (char)c);
        }
    }
    if (shown < n)
        sb_puts(b, "...");
}

/* Text values are bare when they are simple words, quoted otherwise. */
static bool is_bare(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return false;
    }
    return true;
}

size_t log_escape_bytes(char *out, size_t cap, const void *data, size_t n)
{
    struct sb b = { .buf = out, .cap = cap - 1, .len = 0 };
    sb_escaped(&b, data, n);
    out[b.len] = '\0';
    return b.len;
}

static void sb_timestamp(struct sb *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    sb_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
}

static void sb_value(struct sb *b, const struct log_field *f, bool json)
{
    switch (f->type) {
    case LOG_F_STR: {
        const char *s = f->v.s != NULL ? f->v.s : "";
        if (!json && is_bare(s)) {
            sb_puts(b, s);
        } else {
            sb_putc(b, '"');
            sb_escaped(b, s, strlen(s));
            sb_putc(b, '"');
        }
        break;
    }
    case LOG_F_INT:
        sb_printf(b, "%" PRId64, f->v.i);
        break;
    case LOG_F_UINT:
        sb_printf(b, "%" PRIu64, f->v.u);
        break;
    case LOG_F_DBL:
        if (json && !isfinite(f->v.d))
            sb_puts(b, "null"); /* JSON has no NaN or infinity */
        else
            sb_printf(b, "%.6g", f->v.d);
        break;
    case LOG_F_BYTES:
        sb_putc(b, '"');
        sb_escaped(b, f->v.b.p, f->v.b.n);
        sb_putc(b, '"');
        break;
    }
}

size_t log_format_line(char *buf, size_t cap, enum log_format format, enum log_level level,
                       const char *msg, const struct log_field *fields, size_t nfields)
{
    bool json = format == LOG_FORMAT_JSON;
    size_t keep = json ? 3 : 2; /* room kept for "}", "\n" and the NUL */
    if (cap < keep) {
        /* Too small for any content: an empty line if even that fits. */
        size_t n = cap >= 2 ? 1 : 0;
        if (n == 1)
            buf[0] = '\n';
        if (cap > 0)
            buf[n] = '\0';
        return n;
    }
    struct sb b = { .buf = buf, .cap = cap - keep, .len = 0 };
    if (json) {
        sb_puts(&b, "{\"ts\":\"");
        sb_timestamp(&b);
        sb_printf(&b, "\",\"level\":\"%s\",\"msg\":\"", level_names[level]);
        sb_escaped(&b, msg, strlen(msg));
        sb_putc(&b, '"');
    } else {
        sb_timestamp(&b);
        sb_printf(&b, " %s %s", level_tags[level], msg);
    }
    for (size_t i = 0; i < nfields; i++) {
        size_t mark = b.len;
        if (json)
            sb_printf(&b, ",\"%s\":", fields[i].key);
        else
            sb_printf(&b, " %s=", fields[i].key);
        sb_value(&b, &fields[i], json);
        if (json && b.cut) {
            /* A field cut in half would leave the line unparsable: drop it
             * and the ones after it. */
            b.len = mark;
            b.cut = false;
            break;
        }
    }
    if (json)
        buf[b.len++] = '}';
    buf[b.len++] = '\n';
    buf[b.len] = '\0';
    return b.len;
}

void log_write(enum log_level level, const char *msg, const struct log_field *fields,
               size_t nfields)
{
    char line[LOG_LINE_MAX];
    int saved = errno; /* logging must not disturb the caller's errno */
    size_t n = log_format_line(line, sizeof line, g_format, level, msg, fields, nfields);
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(g_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

bool log_ratelimit_check_at(struct log_ratelimit *rl, int64_t now_ns, uint64_t *suppressed)
{
    /* GCRA: tat is when the bucket would be full again. A line is allowed
     * while tat lies at most (burst - 1) intervals ahead of now; each line
     * moves tat one interval further. */
    const int64_t tolerance = (LOG_RATELIMIT_BURST - 1) * LOG_RATELIMIT_INTERVAL_NS;
    int64_t tat = atomic_load_explicit(&rl->tat_ns, memory_order_relaxed);
    for (;;) {
        int64_t base = tat > now_ns ? tat : now_ns;
        if (base - now_ns > tolerance) {
            atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&rl->tat_ns, &tat,
                                                  base + LOG_RATELIMIT_INTERVAL_NS,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    *suppressed = atomic_exchange_explicit(&rl->suppressed, 0, memory_order_relaxed);
    return true;
}

bool log_ratelimit_check(struct log_ratelimit *rl, uint64_t *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return log_ratelimit_check_at(rl, (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                                  suppressed);
}

void log_write_suppressed(enum log_level level, const char *msg, struct log_field *fields,
                          size_t nfields, uint64_t suppressed)
{
    if (suppressed > 0) {
        fields[nfields] = LF_U("suppressed", suppressed);
        nfields++;
    }
    log_write(level, msg, fields, nfields);
}
