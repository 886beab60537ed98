/* server stats: names for the reason lists, and the merge of the workers'
 * stats, both made from the X-macro lists of stats.h. */
#include "server/stats.h"

#include <string.h>

#define TAG_CASE(name, tag, text) \
    case name:                    \
        return tag;

const char *close_reason_tag(enum close_reason r)
{
    switch (r) {
        CLOSE_REASONS(TAG_CASE)
    case CLOSE_REASON_COUNT:
        break;
    }
    return "unknown";
}

const char *reject_reason_tag(enum reject_reason r)
{
    switch (r) {
        REJECT_REASONS(TAG_CASE)
    case REJECT_REASON_COUNT:
        break;
    }
    return "unknown";
}

const char *error_kind_tag(enum error_kind k)
{
    switch (k) {
        ERROR_KINDS(TAG_CASE)
    case ERROR_KIND_COUNT:
        break;
    }
    return "unknown";
}

void server_stats_init(struct server_stats *s)
{
    memset(s, 0, sizeof *s);
#define INIT_HIST(field, ...) hist_init(&s->field);
    SERVER_STATS_HISTS(INIT_HIST)
#undef INIT_HIST
}

static void add_counters(counter_t *dst, const counter_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        counter_add(&dst[i], counter_get(&src[i]));
}

void server_stats_add(struct server_stats *dst, const struct server_stats *src)
{
#define ADD_COUNTERS(field, ...) \
    add_counters(STATS_FIRST(dst, field), STATS_CFIRST(src, field), STATS_LEN(field));
    SERVER_STATS_COUNTERS(ADD_COUNTERS)
#undef ADD_COUNTERS
#define ADD_HIST(field, ...) hist_merge(&dst->field, &src->field);
    SERVER_STATS_HISTS(ADD_HIST)
#undef ADD_HIST
}

/* The op label's order is the loop's: a syscall counter of the loop is
 * added to the stats counter of the same index. */
#define SYSCALL_SAME(name, tag, text) \
    _Static_assert((int)STATS_##name == (int)LOOP_##name, "SYSCALL_OPS follows LOOP_SYSCALLS");
SYSCALL_OPS(SYSCALL_SAME)
#undef SYSCALL_SAME
_Static_assert((int)SYSCALL_OP_COUNT == (int)LOOP_SYS_WAKEUPS, "the wakeups come last");

struct hist *server_stats_stage(struct server_stats *s, enum stage st)
{
    switch (st) {
#define STAGE_CASE(stage, text) \
    case STAGE_##stage:         \
        return &s->stage_##stage##_ns;
        STAGE_LIST(STAGE_CASE)
#undef STAGE_CASE
    case STAGE_COUNT:
        break;
    }
    return NULL;
}

const char *stage_name(enum stage st)
{
    static const char *const names[] = {
#define STAGE_NAME(stage, text) #stage,
        STAGE_LIST(STAGE_NAME)
#undef STAGE_NAME
    };
    return (unsigned)st < STAGE_COUNT ? names[st] : "unknown";
}
