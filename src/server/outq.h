/* outq: a connection's pending output, as a chain of fixed-size chunks.
 * Replies are appended at the tail and written from the head; a chunk goes
 * back to the worker's pool as soon as the kernel has taken all of it. What a
 * connection holds is therefore what it has not sent yet, rounded up to a
 * chunk: never an array that only grows. Not thread-safe: one owner.
 */
#ifndef TCPMSG_SERVER_OUTQ_H
#define TCPMSG_SERVER_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define OUTQ_CHUNK_BYTES 16384u /* one allocation, header included */

struct outq_chunk {
    struct outq_chunk *next;
    uint32_t start, end; /* the unsent bytes: data[start..end) */
    uint8_t data[];
};

#define OUTQ_CHUNK_DATA (OUTQ_CHUNK_BYTES - sizeof(struct outq_chunk))

/* A worker's free chunks, so that queueing replies allocates nothing in the
 * steady state. At most max_free are kept; the rest go back to malloc. */
struct chunk_pool {
    struct outq_chunk *free;
    unsigned nfree, max_free;
};

struct outq {
    struct outq_chunk *head, *tail;
    size_t len;       /* unsent bytes */
    unsigned nchunks; /* chunks held */
};

void chunk_pool_init(struct chunk_pool *p, unsigned max_free);
/* Frees the pooled chunks. Queues must have been cleared first. */
void chunk_pool_destroy(struct chunk_pool *p);

/* Append n bytes. 0, or -ENOMEM when a chunk could not be had: part of the
 * bytes may have been queued then, so the caller closes the connection. */
int outq_append(struct outq *q, struct chunk_pool *p, const void *data, size_t n);

/* Describe up to max iovecs of unsent bytes from the head; returns how many. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);

/* The kernel took n bytes (n <= q->len): drop them, returning emptied chunks. */
void outq_consume(struct outq *q, struct chunk_pool *p, size_t n);

/* Drop everything (the connection is closing). */
void outq_clear(struct outq *q, struct chunk_pool *p);

/* Bytes of memory the queue holds. */
static inline size_t outq_held(const struct outq *q)
{
    return (size_t)q->nchunks * OUTQ_CHUNK_BYTES;
}

#endif
