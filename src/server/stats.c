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
    hist_init(&s->client_rtt_ns);
}

static void add_counters(counter_t *dst, const counter_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        counter_add(&dst[i], counter_get(&src[i]));
}

void server_stats_add(struct server_stats *dst, const struct server_stats *src)
{
    add_counters(&dst->accepted, &src->accepted, 1);
    add_counters(dst->closed, src->closed, CLOSE_REASON_COUNT);
    add_counters(dst->rejected, src->rejected, REJECT_REASON_COUNT);
    add_counters(dst->errors, src->errors, ERROR_KIND_COUNT);
    add_counters(dst->msgs_in, src->msgs_in, STATS_MODE_COUNT);
    add_counters(dst->msgs_out, src->msgs_out, STATS_MODE_COUNT);
    add_counters(dst->bytes_in, src->bytes_in, STATS_MODE_COUNT);
    add_counters(dst->bytes_out, src->bytes_out, STATS_MODE_COUNT);
    hist_merge(&dst->service_ns, &src->service_ns);
    add_counters(&dst->rtt_reports, &src->rtt_reports, 1);
    add_counters(dst->rtt_rejected, src->rtt_rejected, RTT_REJECT_COUNT);
    hist_merge(&dst->msg_bytes, &src->msg_bytes);
    hist_merge(&dst->client_rtt_ns, &src->client_rtt_ns);
}
