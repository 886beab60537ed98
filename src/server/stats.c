/* server stats: names for the reason lists. */
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
    hist_init(&s->service_ns);
    hist_init(&s->msg_bytes);
}
