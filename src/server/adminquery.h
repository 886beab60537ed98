/* adminquery: what the admin endpoint reads from a request (the ?format=
 * argument and the Accept header of /metrics; sort, limit and offset of
 * /api/connections), parsed from plain strings. No HTTP library and no
 * server state here, so every rule can be tested, and fuzzed, alone.
 */
#ifndef TCPMSG_SERVER_ADMINQUERY_H
#define TCPMSG_SERVER_ADMINQUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "tcpmsg/tcpinfo.h"

/* The formats /metrics speaks. */
enum admin_format {
    ADMIN_FORMAT_JSON,
    ADMIN_FORMAT_PROMETHEUS,  /* text exposition format 0.0.4 */
    ADMIN_FORMAT_OPENMETRICS, /* OpenMetrics 1.0.0 text */
    ADMIN_FORMAT_UNKNOWN,     /* ?format= named none of these: a 400 */
};

/* The format of a /metrics answer. format is the ?format= argument and wins
 * when present (json, prometheus or openmetrics, exactly; anything else is
 * ADMIN_FORMAT_UNKNOWN). Otherwise the Accept header: OpenMetrics when it
 * names application/openmetrics-text (Prometheus asks for it first),
 * Prometheus text when it names text/plain, else JSON. Either may be NULL
 * (absent). */
enum admin_format admin_format_choose(const char *format, const char *accept);

/* A count argument (limit, offset): absent (v NULL) gives def; otherwise
 * decimal digits only, at most max. Returns 0 and sets *out, or -EINVAL
 * (empty, a sign, spaces, other characters, over max). */
int admin_count_parse(const char *v, size_t def, size_t max, size_t *out);

/* /api/connections: ?limit= (default, max) and ?offset= (max). */
#define ADMIN_LIMIT_DEFAULT 100
#define ADMIN_LIMIT_MAX 100000
#define ADMIN_OFFSET_MAX 1000000000

/* The keys /api/connections sorts by: enum name, spelling in ?sort=, and
 * the value compared, an expression over `const struct conn_info *i`
 * (connlist.h; only connlist.c expands that column). Age and idle compare
 * start times reversed, so an older start is a larger age: "?sort=age"
 * lists the youngest first, as a person expects. */
#define CONN_SORT_KEYS(X)                                             \
    X(CONN_SORT_ID, "id", i->id)                                      \
    X(CONN_SORT_AGE, "age", UINT64_MAX - i->opened_ns)                \
    X(CONN_SORT_IDLE, "idle", UINT64_MAX - i->active_ns)              \
    X(CONN_SORT_BYTES_IN, "bytes_in", i->bytes_in)                    \
    X(CONN_SORT_BYTES_OUT, "bytes_out", i->bytes_out)                 \
    X(CONN_SORT_MSGS_IN, "msgs_in", i->msgs_in)                       \
    X(CONN_SORT_MSGS_OUT, "msgs_out", i->msgs_out)                    \
    X(CONN_SORT_PENDING, "pending", i->pending)                       \
    X(CONN_SORT_MEMORY, "memory", i->mem)                             \
    TCPINFO_FIELDS(CONN_SORT_TCP, X)

/* A sort key for each field of TCP_INFO the list shows, spelt as its JSON
 * key ("srtt_us"). */
#define CONN_SORT_TCP(name, member, X, help) X(CONN_SORT_TCP_##name, #name, i->tcp.name)

enum conn_sort_key {
#define CONN_SORT_ENUM(name, spelling, value) name,
    CONN_SORT_KEYS(CONN_SORT_ENUM)
#undef CONN_SORT_ENUM
    CONN_SORT_KEY_COUNT
};

/* Every spelling followed by ", ": "id, age, ..., memory, ". */
#define CONN_SORT_SPELLING_LIST(name, spelling, value) spelling ", "
#define CONN_SORT_NAMES CONN_SORT_KEYS(CONN_SORT_SPELLING_LIST)

struct conn_sort {
    enum conn_sort_key key;
    bool descending;
};

/* The ?sort= argument: a key's spelling, optionally after one '-' for
 * descending order; NULL (absent) is "id" ascending. Returns 0 and fills
 * *out, or -EINVAL for anything else ("", "-", "--id", "ID"). */
int admin_sort_parse(const char *sort, struct conn_sort *out);

/* The spelling of a key ("bytes_in"); "unknown" out of range. */
const char *conn_sort_name(enum conn_sort_key key);

#endif
