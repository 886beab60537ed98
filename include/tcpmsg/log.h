/* log: structured, timestamped event logs, one line per event.
 *
 * Text lines read "2026-11-25T16:30:12.123456Z INFO  message key=value ...";
 * JSON lines are {"ts":...,"level":...,"msg":...,"key":value,...}. Each line
 * is formatted on the stack and written with one write(2), so lines from
 * different threads and processes never interleave. Not a metrics store.
 */
#ifndef TCPMSG_LOG_H
#define TCPMSG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

enum log_field_type { LOG_F_STR, LOG_F_INT, LOG_F_UINT, LOG_F_DBL, LOG_F_BYTES };

/* A key and a typed value. LOG_F_BYTES is arbitrary data (a message body):
 * printable ASCII is kept, the rest escaped, and long data is cut with "...". */
struct log_field {
    const char *key;
    enum log_field_type type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        struct { const void *p; size_t n; } b;
    } v;
};

#define LF_S(k, x) ((struct log_field){ .key = (k), .type = LOG_F_STR, .v.s = (x) })
#define LF_I(k, x) ((struct log_field){ .key = (k), .type = LOG_F_INT, .v.i = (int64_t)(x) })
#define LF_U(k, x) ((struct log_field){ .key = (k), .type = LOG_F_UINT, .v.u = (uint64_t)(x) })
#define LF_D(k, x) ((struct log_field){ .key = (k), .type = LOG_F_DBL, .v.d = (double)(x) })
#define LF_B(k, p_, n_) \
    ((struct log_field){ .key = (k), .type = LOG_F_BYTES, .v.b = { .p = (p_), .n = (n_) } })

/* Process-wide settings; call before starting threads. Defaults: INFO, text,
 * file descriptor 2. */
void log_configure(enum log_level min_level, enum log_format format, int fd);
bool log_enabled(enum log_level level);
bool log_parse_level(const char *s, enum log_level *out);
bool log_parse_format(const char *s, enum log_format *out);

/* Write one event. msg is free text; fields may be NULL when nfields is 0. */
void log_write(enum log_level level, const char *msg, const struct log_field *fields,
               size_t nfields);

/* Format one event into buf (always NUL-terminated, ends with '\n', cut to
 * fit). Returns the length. The tests use this; log_write calls it. */
size_t log_format_line(char *buf, size_t cap, enum log_format format, enum log_level level,
                       const char *msg, const struct log_field *fields, size_t nfields);

/* Escape data as log_write shows LOG_F_BYTES (without quotes) into out,
 * NUL-terminated. Returns the length. */
size_t log_escape_bytes(char *out, size_t cap, const void *data, size_t n);

/* LOG(LOG_INFO, "connection opened", LF_U("conn", id), LF_S("peer", peer));
 * Fields are not evaluated when the level is disabled. */
#define LOG(level, msg, ...)                                                        \
    do {                                                                            \
        if (log_enabled(level)) {                                                   \
            const struct log_field log_fields_[] = { LF_S(NULL, NULL), __VA_ARGS__ }; \
            log_write((level), (msg), log_fields_ + 1,                              \
                      sizeof log_fields_ / sizeof log_fields_[0] - 1);              \
        }                                                                           \
    } while (0)
#define LOG0(level, msg)                              \
    do {                                              \
        if (log_enabled(level))                       \
            log_write((level), (msg), NULL, 0);       \
    } while (0)

#endif
