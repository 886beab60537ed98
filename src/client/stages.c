/* stages: the split of a sampled round trip and the bookkeeping of samples
 * in flight (see stages.h; the stages are explained in docs/STAGES.md).
 */
#include "client/stages.h"

#include <string.h>

static const char *const names[] = {
#define X(id, name, text) [CSTAGE_##id] = name,
    CSTAGES(X)
#undef X
};

static const char *const tags[] = {
#define X(id, name, text) [CSTAGE_##id] = "stage_" name,
    CSTAGES(X)
#undef X
};

static const char *const texts[] = {
#define X(id, name, text) [CSTAGE_##id] = text,
    CSTAGES(X)
#undef X
};

const char *cstage_name(enum cstage s)
{
    return (unsigned)s < CSTAGE_COUNT ? names[s] : "?";
}

const char *cstage_tag(enum cstage s)
{
    return (unsigned)s < CSTAGE_COUNT ? tags[s] : "?";
}

const char *cstage_text(enum cstage s)
{
    return (unsigned)s < CSTAGE_COUNT ? texts[s] : "?";
}

bool cstage_split(const struct cstage_times *t, uint64_t out[CSTAGE_COUNT])
{
    if (t->handed_ns == 0 || t->snd_ns == 0 || t->rx_ns == 0 || t->read_ns == 0)
        return false;
    uint64_t snd = tstamp_after(t->snd_ns, t->handed_ns);
    uint64_t rx = tstamp_after(t->rx_ns, snd);
    uint64_t read = tstamp_after(t->read_ns, rx);
    out[CSTAGE_CLIENT_TX] = snd - t->handed_ns;
    out[CSTAGE_NETWORK] = rx - snd;
    out[CSTAGE_CLIENT_RX] = read - rx;
    return true;
}

/* ---- samples in flight ------------------------------------------------------------------ */

bool cstage_track_sent(struct cstage_track *t, uint64_t seq, uint32_t key, uint64_t handed_ns)
{
    if (t->npending == CSTAGE_PENDING)
        return false;
    t->pending[t->npending++] =
        (struct cstage_pending){ .seq = seq, .key = key, .handed_ns = handed_ns };
    return true;
}

void cstage_track_handed(struct cstage_track *t, uint64_t now_ns)
{
    for (unsigned i = 0; i < t->npending; i++)
        if (t->pending[i].handed_ns == 0)
            t->pending[i].handed_ns = now_ns;
}

void cstage_track_report(struct cstage_track *t, const struct tstamp_report *r)
{
    if (r->kind != TSTAMP_SND)
        return;
    for (unsigned i = 0; i < t->npending; i++) {
        struct cstage_pending *p = &t->pending[i];
        if (p->snd_ns == 0 && tstamp_byte_at_or_before(p->key, r->key))
            p->snd_ns = r->ns;
    }
}

bool cstage_track_take(struct cstage_track *t, uint64_t seq, uint64_t *handed_ns,
                       uint64_t *snd_ns)
{
    /* Replies come in order: everything older than seq is answered. */
    unsigned drop = 0;
    while (drop < t->npending && t->pending[drop].seq < seq)
        drop++;
    bool found = drop < t->npending && t->pending[drop].seq == seq;
    if (found) {
        *handed_ns = t->pending[drop].handed_ns;
        *snd_ns = t->pending[drop].snd_ns;
        drop++;
    }
    memmove(&t->pending[0], &t->pending[drop], (t->npending - drop) * sizeof t->pending[0]);
    t->npending -= drop;
    return found;
}

/* ---- results ------------------------------------------------------------------------------ */

void cstage_hists_init(struct cstage_hists *s)
{
    for (int i = 0; i < CSTAGE_COUNT; i++)
        hist_init(&s->h[i]);
    counter_set(&s->split, 0);
    counter_set(&s->skipped, 0);
}

void cstage_hists_record(struct cstage_hists *s, const struct cstage_times *t)
{
    uint64_t part[CSTAGE_COUNT];
    if (!cstage_split(t, part)) {
        counter_add(&s->skipped, 1);
        return;
    }
    for (int i = 0; i < CSTAGE_COUNT; i++)
        hist_record(&s->h[i], part[i]);
    counter_add(&s->split, 1);
}

void cstage_hists_merge(struct cstage_hists *dst, const struct cstage_hists *src)
{
    for (int i = 0; i < CSTAGE_COUNT; i++)
        hist_merge(&dst->h[i], &src->h[i]);
    counter_add(&dst->split, counter_get(&src->split));
    counter_add(&dst->skipped, counter_get(&src->skipped));
}
