/* Unit tests for forkrecord (src/server/forkrecord.c): the records a fork
 * mode child sends its parent carry exactly the deltas of its statistics,
 * counters and histogram buckets, however large, over as many records as it
 * takes, each of them valid; every field of server_stats makes the round
 * trip, the extremes included.
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

/* --- the round trip of every field, driven by the lists of stats.h ------- */

/* A value for the k-th counter cell, different for every cell: odd cells sit
 * just under UINT64_MAX, even cells above 2^32. */
static uint64_t distinct(uint64_t k)
{
    return k % 2 ? UINT64_MAX - 1000 - k : ((k + 1) << 32) + k;
}

/* Every cell of every counter of s, in list order, set to distinct(k). */
static size_t fill_counters(struct server_stats *s)
{
    size_t k = 0;
#define FILL(field, ...)                                \
    for (size_t i = 0; i < STATS_LEN(field); i++, k++) \
        counter_set(&STATS_FIRST(s, field)[i], distinct(k));
    SERVER_STATS_COUNTERS(FILL)
#undef FILL
    return k;
}

/* Every cell of every counter of s moved by a small amount of its own. */
static void bump_counters(struct server_stats *s)
{
    size_t k = 0;
#define BUMP(field, ...)                                \
    for (size_t i = 0; i < STATS_LEN(field); i++, k++) \
        counter_add(&STATS_FIRST(s, field)[i], k + 1);
    SERVER_STATS_COUNTERS(BUMP)
#undef BUMP
}

/* Every histogram gets buckets of its own with counts over 2^32, one of
 * them near 2^63, and one of the largest values a histogram holds. */
static void fill_hists(struct server_stats *s)
{
    uint64_t k = 1;
#define FILL_HIST(field, ...)                                                      \
    hist_record_n(&s->field, 1000 * k, (UINT64_C(1) << 32) + k);                  \
    hist_record_n(&s->field, 1000000 * k, (UINT64_C(1) << 62) + k);               \
    hist_record_n(&s->field, HIST_MAX_VALUE, UINT32_MAX + k);                     \
    k++;
    SERVER_STATS_HISTS(FILL_HIST)
#undef FILL_HIST
}

static void expect_same_stats(const struct server_stats *want, const struct server_stats *got)
{
#define SAME(field, ...)                                                                \
    for (size_t i = 0; i < STATS_LEN(field); i++) {                                     \
        uint64_t w = counter_get(&STATS_CFIRST(want, field)[i]);                        \
        uint64_t g = counter_get(&STATS_CFIRST(got, field)[i]);                         \
        if (w != g)                                                                     \
            fail_msg("%s[%zu]: want %llu, got %llu", #field, i, (unsigned long long)w, \
                     (unsigned long long)g);                                            \
    }
    SERVER_STATS_COUNTERS(SAME)
#undef SAME
#define SAME_HIST(field, ...) expect_same_hist(&want->field, &got->field);
    SERVER_STATS_HISTS(SAME_HIST)
#undef SAME_HIST
}

/* Every counter and histogram of server_stats goes through the record and
 * comes out equal: a field added to the lists of stats.h is covered without
 * a change here. Then a second round of deltas, and the merge of what the
 * parent holds into a fresh total. */
static void test_round_trip_every_field(void **state)
{
    struct pair *p = *state;
    struct sink s = { 0 };
    size_t cells = fill_counters(p->child);
    /* The record's deltas are exactly the counters, one uint64_t per cell. */
    assert_int_equal(sizeof(struct fork_deltas), cells * sizeof(uint64_t));
    fill_hists(p->child);
    assert_true(emit(p, &s) >= 1);
    assert_int_equal(s.invalid, 0);
    expect_same_stats(p->child, p->parent);

    bump_counters(p->child);
    hist_record_n(&p->child->service_ns, 7, UINT32_MAX);
    assert_int_equal(emit(p, &s), 1);
    expect_same_stats(p->child, p->parent);
    assert_int_equal(emit(p, &s), 0); /* nothing moved */

    struct server_stats *total = malloc(sizeof *total);
    assert_non_null(total);
    server_stats_init(total);
    server_stats_add(total, p->parent);
    expect_same_stats(p->child, total);
    free(total);
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
        cmocka_unit_test_setup_teardown(test_round_trip_every_field, setup, teardown),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
