/* outq: the chunk chain of pending output and the worker's chunk pool. */
#include "server/outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void chunk_pool_init(struct chunk_pool *p, unsigned max_free)
{
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
}

void chunk_pool_destroy(struct chunk_pool *p)
{
    while (p->free != NULL) {
        struct outq_chunk *k = p->free;
        p->free = k->next;
        free(k);
    }
    p->nfree = 0;
}

static struct outq_chunk *chunk_get(struct chunk_pool *p)
{
    struct outq_chunk *k = p->free;
    if (k != NULL) {
        p->free = k->next;
        p->nfree--;
    } else {
        k = malloc(OUTQ_CHUNK_BYTES);
        if (k == NULL)
            return NULL;
    }
    k->next = NULL;
    k->start = k->end = 0;
    return k;
}

static void chunk_put(struct chunk_pool *p, struct outq_chunk *k)
{
    if (p->nfree >= p->max_free) {
        free(k);
        return;
    }
    k->next = p->free;
    p->free = k;
    p->nfree++;
}

int outq_append(struct outq *q, struct chunk_pool *p, const void *data, size_t n)
{
    const uint8_t *src = data;
    while (n > 0) {
        struct outq_chunk *t = q->tail;
        if (t == NULL || t->end == OUTQ_CHUNK_DATA) {
            t = chunk_get(p);
            if (t == NULL)
                return -ENOMEM;
            if (q->tail != NULL)
                q->tail->next = t;
            else
                q->head = t;
            q->tail = t;
            q->nchunks++;
        }
        size_t room = OUTQ_CHUNK_DATA - t->end;
        size_t k = n < room ? n : room;
        memcpy(t->data + t->end, src, k);
        t->end += (uint32_t)k;
        q->len += k;
        src += k;
        n -= k;
    }
    return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
    int n = 0;
    for (const struct outq_chunk *k = q->head; k != NULL && n < max; k = k->next) {
        if (k->end == k->start)
            continue;
        iov[n].iov_base = (void *)(k->data + k->start);
        iov[n].iov_len = k->end - k->start;
        n++;
    }
    return n;
}

static void drop_head(struct outq *q, struct chunk_pool *p)
{
    struct outq_chunk *k = q->head;
    q->head = k->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->nchunks--;
    chunk_put(p, k);
}

void outq_consume(struct outq *q, struct chunk_pool *p, size_t n)
{
    q->len -= n;
    while (n > 0) {
        struct outq_chunk *k = q->head;
        size_t have = k->end - k->start;
        if (n < have) {
            k->start += (uint32_t)n;
            return;
        }
        n -= have;
        drop_head(q, p);
    }
    /* A chunk fully sent but still being filled goes back too: the next
     * reply starts a fresh one from the pool. */
    while (q->head != NULL && q->head->start == q->head->end)
        drop_head(q, p);
}

void outq_clear(struct outq *q, struct chunk_pool *p)
{
    while (q->head != NULL)
        drop_head(q, p);
    q->len = 0;
}
