/* forkrecord: building and applying the fixed-size statistics records of
 * fork mode.
 */
#include "server/forkrecord.h"

#include <errno.h>
#include <string.h>

/* which < FORK_HIST_COUNT (forkrecord_valid checked it). */
static struct hist *hist_of(struct server_stats *s, unsigned which)
{
    switch ((enum fork_hist)which) {
#define HIST_CASE(field, ...) \
    case FORK_HIST_##field:   \
        return &s->field;
        SERVER_STATS_HISTS(HIST_CASE)
#undef HIST_CASE
    case FORK_HIST_COUNT:
        break;
    }
    return NULL;
}

/* dst[i] = cur[i] - sent[i]; sent[i] = cur[i]. True if any moved. */
static bool take_deltas(uint64_t *dst, const counter_t *cur, counter_t *sent, size_t n)
{
    bool moved = false;
    for (size_t i = 0; i < n; i++) {
        uint64_t c = counter_get(&cur[i]);
        dst[i] = c - counter_get(&sent[i]);
        moved |= dst[i] != 0;
        counter_set(&sent[i], c);
    }
    return moved;
}

static bool take_counters(struct fork_deltas *d, const struct server_stats *cur,
                          struct server_stats *sent)
{
    bool moved = false;
#define TAKE(field, ...)                                                                       \
    moved |= take_deltas((uint64_t *)&d->field, STATS_CFIRST(cur, field), STATS_FIRST(sent, field), \
                         STATS_LEN(field));
    SERVER_STATS_COUNTERS(TAKE)
#undef TAKE
    return moved;
}

int forkrecord_emit(const struct fork_record_head *tmpl, const struct server_stats *cur,
                    struct server_stats *sent, bool force,
                    int (*emit)(const struct fork_record *r, void *ctx), void *ctx)
{
    struct fork_record r;
    memset(&r, 0, sizeof r);
    r.h = *tmpl;
    r.h.flags = 0; /* set on the last record only, below */
    r.h.magic = FORK_RECORD_MAGIC;
    r.h.version = FORK_RECORD_VERSION;
    bool moved = take_counters(&r.h.d, cur, sent);
    int records = 0;
    for (unsigned k = 0; k < FORK_HIST_COUNT; k++) {
        const struct hist *c = hist_of((struct server_stats *)cur, k);
        struct hist *s = hist_of(sent, k);
        if (hist_count(c) == hist_count(s))
            continue; /* nothing new in this one: skip its 4864 buckets */
        for (size_t i = 0; i < HIST_BUCKETS; i++) {
            uint64_t now = atomic_load_explicit(&c->counts[i], memory_order_relaxed);
            uint64_t was = atomic_load_explicit(&s->counts[i], memory_order_relaxed);
            if (now == was)
                continue;
            if (r.h.nentries == FORK_ENTRIES) {
                int rc = emit(&r, ctx);
                if (rc < 0)
                    return rc;
                records++;
                /* Continuation records carry only histogram entries. */
                struct fork_record_head keep = r.h;
                memset(&r.h, 0, sizeof r.h);
                r.h.magic = keep.magic;
                r.h.version = keep.version;
                r.h.pid = keep.pid;
                r.h.slot = keep.slot;
                r.h.conn_id = keep.conn_id;
                memcpy(&r.h.active_ns, &keep.active_ns,
                       offsetof(struct fork_record_head, d) -
                           offsetof(struct fork_record_head, active_ns));
            }
            r.e[r.h.nentries++] = (struct fork_entry){ .hist = (uint8_t)k, .bucket = (uint16_t)i,
                                                       .count = now - was };
            atomic_store_explicit(&s->counts[i], now, memory_order_relaxed);
            moved = true;
        }
        atomic_store_explicit(&s->count, hist_count(c), memory_order_relaxed);
    }
    /* The final flag goes on the last record only. */
    r.h.flags = tmpl->flags;
    if (!moved && !force)
        return records;
    int rc = emit(&r, ctx);
    return rc < 0 ? rc : records + 1;
}

bool forkrecord_valid(const struct fork_record *r)
{
    if (r->h.magic != FORK_RECORD_MAGIC || r->h.version != FORK_RECORD_VERSION ||
        r->h.nentries > FORK_ENTRIES)
        return false;
    for (uint32_t i = 0; i < r->h.nentries; i++)
        if (r->e[i].hist >= FORK_HIST_COUNT || r->e[i].bucket >= HIST_BUCKETS)
            return false;
    return true;
}

static void add_all(counter_t *dst, const uint64_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] != 0)
            counter_add(&dst[i], d[i]);
}

void forkrecord_apply(const struct fork_record *r, struct server_stats *dst)
{
    const struct fork_record_head *h = &r->h;
#define APPLY(field, ...) \
    add_all(STATS_FIRST(dst, field), (const uint64_t *)&h->d.field, STATS_LEN(field));
    SERVER_STATS_COUNTERS(APPLY)
#undef APPLY
    for (uint32_t i = 0; i < h->nentries; i++) {
        const struct fork_entry *e = &r->e[i];
        uint64_t lo = hist_bucket_lo(e->bucket);
        hist_record_n(hist_of(dst, e->hist), lo + (hist_bucket_hi(e->bucket) - lo) / 2, e->count);
    }
}
