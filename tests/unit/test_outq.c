/* Unit tests for outq (src/server/outq.c): a connection's pending output as
 * a chain of pooled chunks. Bytes come out in the order they went in across
 * chunk boundaries and partial writes; emptied chunks go back to the pool at
 * once; the pool keeps no more than it may.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/outq.h"

/* Everything the iovecs describe, in order, into out; returns the bytes. */
static size_t gather(const struct outq *q, uint8_t *out)
{
    struct iovec iov[512];
    int n = outq_iov(q, iov, 512);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + k, iov[i].iov_base, iov[i].iov_len);
        k += iov[i].iov_len;
    }
    return k;
}

/* A stream appended in odd pieces and consumed in other odd pieces comes
 * out whole and in order, and every chunk is back in the pool at the end. */
static void test_order_across_chunks_and_partial_writes(void **state)
{
    (void)state;
    enum { TOTAL = 5 * OUTQ_CHUNK_DATA + 123 };
    uint8_t *src = malloc(TOTAL), *got = malloc(TOTAL), *view = malloc(TOTAL);
    assert_non_null(src);
    assert_non_null(got);
    assert_non_null(view);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (uint8_t)(i * 31 + 7);
    struct chunk_pool pool;
    chunk_pool_init(&pool, 64);
    struct outq q = { 0 };
    size_t in = 0, out = 0, step = 1;
    while (out < TOTAL) {
        size_t n = in + step * 97 % 9000 < TOTAL ? step * 97 % 9000 : TOTAL - in;
        assert_int_equal(outq_append(&q, &pool, src + in, n), 0);
        in += n;
        assert_int_equal(q.len, in - out);
        assert_int_equal(gather(&q, view), q.len);
        assert_memory_equal(view, src + out, q.len);
        size_t take = q.len * (step % 3 + 1) / 4; /* a partial write */
        if (in == TOTAL)
            take = q.len;
        outq_consume(&q, &pool, take);
        memcpy(got + out, src + out, take);
        out += take;
        /* Held memory follows what is pending: whole chunks, at most two
         * more than the bytes need. */
        assert_true(outq_held(&q) <= (q.len / OUTQ_CHUNK_DATA + 2) * OUTQ_CHUNK_BYTES);
        step++;
    }
    assert_memory_equal(got, src, TOTAL);
    assert_int_equal(q.len, 0);
    assert_int_equal(q.nchunks, 0);
    assert_null(q.head);
    assert_null(q.tail);
    assert_true(pool.nfree >= 1);
    chunk_pool_destroy(&pool);
    free(src);
    free(got);
    free(view);
}

/* The pool keeps at most max_free chunks; with 0 every chunk is freed. */
static void test_pool_keeps_at_most_max_free(void **state)
{
    (void)state;
    static uint8_t big[10 * OUTQ_CHUNK_DATA];
    for (unsigned max_free = 0; max_free <= 4; max_free += 4) {
        struct chunk_pool pool;
        chunk_pool_init(&pool, max_free);
        struct outq q = { 0 };
        assert_int_equal(outq_append(&q, &pool, big, sizeof big), 0);
        assert_int_equal(q.nchunks, 10);
        outq_clear(&q, &pool);
        assert_int_equal(q.len, 0);
        assert_int_equal(q.nchunks, 0);
        assert_int_equal(pool.nfree, max_free);
        /* Taken again from the pool first. */
        assert_int_equal(outq_append(&q, &pool, "x", 1), 0);
        assert_int_equal(pool.nfree, max_free > 0 ? max_free - 1 : 0);
        outq_clear(&q, &pool);
        chunk_pool_destroy(&pool);
        assert_int_equal(pool.nfree, 0);
    }
}

/* A chunk fully written goes back at once, even the tail one being filled:
 * an idle connection holds no chunk. */
static void test_written_tail_goes_back(void **state)
{
    (void)state;
    struct chunk_pool pool;
    chunk_pool_init(&pool, 8);
    struct outq q = { 0 };
    assert_int_equal(outq_append(&q, &pool, "hello", 5), 0);
    assert_int_equal(outq_held(&q), OUTQ_CHUNK_BYTES);
    outq_consume(&q, &pool, 5);
    assert_int_equal(outq_held(&q), 0);
    assert_int_equal(pool.nfree, 1);
    struct iovec iov[4];
    assert_int_equal(outq_iov(&q, iov, 4), 0);
    chunk_pool_destroy(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_across_chunks_and_partial_writes),
        cmocka_unit_test(test_pool_keeps_at_most_max_free),
        cmocka_unit_test(test_written_tail_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
