/* Unit tests for forkrecord (src/server/forkrecord.c): the records a fork
 * mode child sends its parent carry exactly the deltas of its statistics,
 * counters and histogram buckets, however large, over as many records as it
 * takes, each of them valid.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/forkrecord.h"

/* The emit callback: apply each record to the parent's stats, as the
 * parent's pipe reader does, after checking it. */
struct sink {
    struct server_stats *parent;
    unsigned records;
    unsigned invalid;
};

static int to_parent(const struct fork_record *r, void *ctx)
{
    struct sink *s = ctx;
    s->records++;
    if (!forkrecord_valid(r)) {
        s->invalid++;
        return 0;
    }
    forkrecord_apply(r, s->parent);
    return 0;
}

struct pair {
    struct server_stats *child, *sent, *parent;
};

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof *p);
    p->child = malloc(sizeof *p->child);
    p->sent = malloc(sizeof *p->sent);
    p->parent = malloc(sizeof *p->parent);
    if (p->child == NULL || p->sent == NULL || p->parent == NULL)
        return -1;
    server_stats_init(p->child);
    server_stats_init(p->sent);
    server_stats_init(p->parent);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    free(p->child);
    free(p->sent);
    free(p->parent);
    free(p);
    return 0;
}

static unsigned emit(struct pair *p, struct sink *s)
{
    struct fork_record_head tmpl = { .pid = 1234, .slot = 0, .conn_id = 7 };
    s->parent = p->parent;
    int rc = forkrecord_emit(&tmpl, p->child, p->sent, false, to_parent, s);
    assert_true(rc >= 0);
    return (unsigned)rc;
}

static void expect_same_hist(const struct hist *a, const struct hist *b)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t x = atomic_load(&a->counts[i]), y = atomic_load(&b->counts[i]);
        if (x != y)
            fail_msg("bucket %zu: parent %llu, child %llu", i, (unsigned long long)y,
                     (unsigned long long)x);
    }
    assert_int_equal(hist_count(a), hist_count(b));
}

/* Regression (issue: "--mode fork, an RTT report with two entries of count
 * 0xFFFFFFFF"): the child's bucket moved by 2^33 - 2 between two ticks, and
 * the record's 32-bit delta carried 2^32 - 2 of it: the parent showed half
 * of what epoll mode shows. Deltas above 2^32 arrive whole. */
static void test_delta_above_32_bits(void **state)
{
    struct pair *p = *state;
    struct sink s = { 0 };
    uint64_t big = 2 * (uint64_t)UINT32_MAX;
    hist_record_n(&p->child->client_rtt_ns, 150000, big);
    hist_record_n(&p->child->service_ns, 5000, (UINT64_C(1) << 40) + 3);
    assert_int_equal(emit(p, &s), 1);
    assert_int_equal(s.invalid, 0);
    expect_same_hist(&p->child->client_rtt_ns, &p->parent->client_rtt_ns);
    expect_same_hist(&p->child->service_ns, &p->parent->service_ns);
    assert_int_equal(hist_count(&p->parent->client_rtt_ns), big);
    /* A second delta on top: only the difference travels. */
    hist_record_n(&p->child->client_rtt_ns, 150000, big);
    assert_int_equal(emit(p, &s), 1);
    assert_int_equal(hist_count(&p->parent->client_rtt_ns), 2 * big);
    expect_same_hist(&p->child->client_rtt_ns, &p->parent->client_rtt_ns);
    /* Nothing moved: nothing sent. */
    assert_int_equal(emit(p, &s), 0);
}

/* Every bucket of every histogram moved: many continuation records, all
 * valid, and the parent ends with exactly the child's buckets. */
static void test_every_bucket(void **state)
{
    struct pair *p = *state;
    struct sink s = { 0 };
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        hist_record_n(&p->child->client_rtt_ns, hist_bucket_lo(i), (uint64_t)i << 32 | 1);
        hist_record(&p->child->msg_bytes, hist_bucket_lo(i));
    }
    unsigned want = (2 * HIST_BUCKETS + FORK_ENTRIES - 1) / FORK_ENTRIES;
    assert_int_equal(emit(p, &s), want);
    assert_int_equal(s.invalid, 0);
    expect_same_hist(&p->child->client_rtt_ns, &p->parent->client_rtt_ns);
    expect_same_hist(&p->child->msg_bytes, &p->parent->msg_bytes);
}

/* Counter deltas, the RTT report rejections among them. */
static void test_counters(void **state)
{
    struct pair *p = *state;
    struct sink s = { 0 };
    counter_add(&p->child->rtt_reports, 3);
    counter_add(&p->child->rtt_rejected[RTT_REJECT_TOO_MANY_SAMPLES], 2);
    counter_add(&p->child->rtt_rejected[RTT_REJECT_DISABLED], 1);
    counter_add(&p->child->msgs_out[STATS_FRAMED], 9);
    assert_int_equal(emit(p, &s), 1);
    counter_add(&p->child->rtt_rejected[RTT_REJECT_TOO_MANY_SAMPLES], 1);
    assert_int_equal(emit(p, &s), 1);
    assert_int_equal(counter_get(&p->parent->rtt_reports), 3);
    assert_int_equal(counter_get(&p->parent->rtt_rejected[RTT_REJECT_TOO_MANY_SAMPLES]), 3);
    assert_int_equal(counter_get(&p->parent->rtt_rejected[RTT_REJECT_DISABLED]), 1);
    assert_int_equal(counter_get(&p->parent->rtt_rejected[RTT_REJECT_MALFORMED]), 0);
    assert_int_equal(counter_get(&p->parent->msgs_out[STATS_FRAMED]), 9);
}

/* A record of another version, or with a bad entry, is refused. */
static void test_valid(void **state)
{
    (void)state;
    struct fork_record r;
    memset(&r, 0, sizeof r);
    r.h.magic = FORK_RECORD_MAGIC;
    r.h.version = FORK_RECORD_VERSION;
    r.h.nentries = 1;
    r.e[0] = (struct fork_entry){ .count = UINT64_MAX, .bucket = HIST_BUCKETS - 1, .hist = 0 };
    assert_true(forkrecord_valid(&r));
    r.h.version = 1;
    assert_false(forkrecord_valid(&r));
    r.h.version = FORK_RECORD_VERSION;
    r.e[0].bucket = HIST_BUCKETS;
    assert_false(forkrecord_valid(&r));
    r.e[0].bucket = 0;
    r.e[0].hist = FORK_HIST_COUNT;
    assert_false(forkrecord_valid(&r));
    r.e[0].hist = 0;
    r.h.nentries = FORK_ENTRIES + 1;
    assert_false(forkrecord_valid(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delta_above_32_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
