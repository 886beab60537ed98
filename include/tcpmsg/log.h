/* log: structured, timestamped event logs, one line per event.
 *
 * Text lines read "2026-11-25T16:30:12.123456Z INFO  message key=value ...";
 * JSON lines are {"ts":...,"level":...,"msg":...,"key":value,...}. Each line
 * is formatted on the stack and written with one write(2), so lines from
 * different threads and processes never interleave. Not a metrics store.
 */
#ifndef TCPMSG_LOG_H
#define TCPMSG_LOG_H

#include <stdatomic.h>
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

/* ---- rate limiting ---------------------------------------------------------
 *
 * A line that a client or the environment can repeat at will (a bad message,
 * a failed accept) must not be able to flood the log. Each kind of line has a
 * struct log_ratelimit; a kind writes at most LOG_RATELIMIT_BURST lines at
 * once (one), then one per LOG_RATELIMIT_INTERVAL_NS (one per second) however
 * often it happens. The lines dropped are counted, and the next line of that kind
 * written carries the count as "suppressed=N".
 *
 * The state is two atomics: checking takes no lock, and a suppressed line
 * costs one load and one atomic add. Zero-initialised state is ready to use.
 */
#define LOG_RATELIMIT_INTERVAL_NS 1000000000LL
#define LOG_RATELIMIT_BURST 1

struct log_ratelimit {
    _Atomic int64_t tat_ns;       /* when the burst is whole again (GCRA's "theoretical arrival time") */
    _Atomic uint64_t suppressed;  /* lines dropped since the last one written */
};

/* May a line of this kind be written at time now_ns (any monotonic clock in
 * ns)? When it may, returns true and sets *suppressed to the lines dropped
 * since the last one written (and resets that count); otherwise counts one
 * more dropped line and returns false. Thread-safe. The tests pass their own
 * clock; log_ratelimit_check uses CLOCK_MONOTONIC. */
bool log_ratelimit_check_at(struct log_ratelimit *rl, int64_t now_ns, uint64_t *suppressed);
bool log_ratelimit_check(struct log_ratelimit *rl, uint64_t *suppressed);

/* log_write for a rate-limited line: fields[nfields] is a spare slot that
 * receives "suppressed" when lines were dropped. */
void log_write_suppressed(enum log_level level, const char *msg, struct log_field *fields,
                          size_t nfields, uint64_t suppressed);

/* LOG through the rate limiter rl (a struct log_ratelimit *), for call sites
 * that tell kinds apart at run time (one state per kind). */
#define LOG_RL(rl, level, msg, ...)                                                   \
    do {                                                                              \
        uint64_t log_sup_;                                                            \
        if (log_enabled(level) && log_ratelimit_check((rl), &log_sup_)) {             \
            struct log_field log_fields_[] = { LF_S(NULL, NULL), __VA_ARGS__,         \
                                               LF_U("suppressed", 0) };               \
            log_write_suppressed((level), (msg), log_fields_ + 1,                     \
                                 sizeof log_fields_ / sizeof log_fields_[0] - 2,      \
                                 log_sup_);                                           \
        }                                                                             \
    } while (0)

/* LOG with a rate limiter of its own: each call site is one kind.
 *   LOG_RATELIMITED(LOG_WARN, "read failed", LF_U("conn", id), ...); */
#define LOG_RATELIMITED(level, msg, ...)                                              \
    do {                                                                              \
        static struct log_ratelimit log_rl_;                                          \
        LOG_RL(&log_rl_, level, msg, __VA_ARGS__);                                    \
    } while (0)

#endif
