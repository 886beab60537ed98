/* Unit tests for hist: bucket geometry, exactness below 256, percentile
 * accuracy against sorted random data, merge, record_n, clamping of huge
 * values, the bucket iterator and allocation.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tcpmsg/hist.h"

#define N_RANDOM 100000

/* splitmix64: a fixed-seed PRNG so every run checks the same data. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), from the top 53 bits. */
static double unit_random(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static void test_empty_histogram(void **state)
{
    (void)state;
    struct hist h;
    memset(&h, 0xa5, sizeof(h)); /* init must not rely on zeroed memory */
    hist_init(&h);

    assert_int_equal(hist_count(&h), 0);
    assert_int_equal(hist_sum(&h), 0);
    assert_int_equal(hist_min(&h), 0);
    assert_int_equal(hist_max(&h), 0);
    assert_true(hist_mean(&h) == 0.0);
    assert_int_equal(hist_percentile(&h, 50), 0);
    assert_int_equal(hist_percentile(&h, 100), 0);

    struct hist_iter it;
    struct hist_bucket b;
    hist_iter_init(&it, &h);
    assert_false(hist_iter_next(&it, &b));
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);

    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        assert_int_equal(hist_bucket_index(v), v);
        hist_reset(&h);
        hist_record(&h, v);
        assert_int_equal(hist_percentile(&h, 50), v);
    }

    /* 0..255 once each: rank r holds value r - 1. */
    hist_reset(&h);
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++)
        hist_record(&h, v);
    assert_int_equal(hist_percentile(&h, 50), 127);
    assert_int_equal(hist_percentile(&h, 100), 255);
    assert_int_equal(hist_min(&h), 0);
    assert_int_equal(hist_max(&h), 255);
    assert_int_equal(hist_sum(&h), 255 * 256 / 2);
}

static void test_bucket_geometry(void **state)
{
    (void)state;
    assert_int_equal(hist_bucket_lo(0), 0);
    assert_int_equal(hist_bucket_hi(HIST_BUCKETS - 1), HIST_MAX_VALUE);

    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t lo = hist_bucket_lo(i), hi = hist_bucket_hi(i);

        assert_true(lo <= hi);
        assert_int_equal(hist_bucket_index(lo), i);
        assert_int_equal(hist_bucket_index(hi), i);
        if (i + 1 < HIST_BUCKETS)
            assert_int_equal(hist_bucket_lo(i + 1), hi + 1);
        if (i < HIST_SUB_COUNT) {
            assert_int_equal(hi, lo); /* exact range */
            continue;
        }
        /* width <= lo / 128, and the midpoint is within 0.4% of any value
         * in the bucket, as hist.h promises. */
        assert_true((hi - lo + 1) * HIST_HALF_COUNT <= lo);
        uint64_t mid = lo + (hi - lo) / 2;
        assert_true((double)(mid - lo) / (double)lo < 0.004);
        assert_true((double)(hi - mid) / (double)hi < 0.004);
    }
}

static void test_percentile_rank_edges(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record(&h, 10);
    hist_record(&h, 20);
    hist_record(&h, 30);

    /* rank = ceil(p/100 * 3), at least 1, at most 3. */
    assert_int_equal(hist_percentile(&h, 33.3), 10);
    assert_int_equal(hist_percentile(&h, 33.34), 20);
    assert_int_equal(hist_percentile(&h, 66.7), 30);
    assert_int_equal(hist_percentile(&h, 100), 30);
    assert_int_equal(hist_percentile(&h, 0), 10);
    assert_int_equal(hist_percentile(&h, 250), 30);
    assert_int_equal(hist_percentile(&h, NAN), 10);
}

/* One random distribution: a name and a generator. */
struct dist {
    const char *name;
    uint64_t (*next)(uint64_t *state);
};

static uint64_t gen_uniform(uint64_t *state)
{
    return 1 + splitmix64(state) % UINT64_C(1000000000);
}

static uint64_t gen_log_uniform(uint64_t *state)
{
    return (uint64_t)exp2(unit_random(state) * 40.0); /* 1 .. 2^40 */
}

static uint64_t gen_exponential(uint64_t *state)
{
    return 1 + (uint64_t)(-log1p(-unit_random(state)) * 1e6); /* mean 1e6 */
}

static uint64_t gen_constant(uint64_t *state)
{
    (void)state;
    return 123456789;
}

/* Record N_RANDOM values from d, check min/max/sum exact and percentiles
 * within 1% of the exact ones; returns the worst relative error seen. */
static double check_distribution(const struct dist *d, uint64_t *values, struct hist *h)
{
    static const unsigned permille[] = {500, 900, 990, 999, 1000};
    uint64_t seed = 42, sum = 0;
    double worst = 0;

    hist_reset(h);
    for (size_t i = 0; i < N_RANDOM; i++) {
        values[i] = d->next(&seed);
        sum += values[i];
        hist_record(h, values[i]);
    }
    qsort(values, N_RANDOM, sizeof(values[0]), cmp_u64);
    assert_int_equal(hist_count(h), N_RANDOM);
    assert_int_equal(hist_sum(h), sum);
    assert_int_equal(hist_min(h), values[0]);
    assert_int_equal(hist_max(h), values[N_RANDOM - 1]);

    for (size_t k = 0; k < sizeof(permille) / sizeof(permille[0]); k++) {
        /* Exact rank ceil(p/100 * n) in integers, independent of hist.c. */
        uint64_t rank = ((uint64_t)permille[k] * N_RANDOM + 999) / 1000;
        uint64_t exact = values[(rank < 1 ? 1 : rank) - 1];
        uint64_t got = hist_percentile(h, permille[k] / 10.0);
        double err = fabs((double)got - (double)exact) / (double)exact;

        if (err > 0.01)
            fail_msg("%s p%.1f: got %llu, exact %llu", d->name, permille[k] / 10.0,
                     (unsigned long long)got, (unsigned long long)exact);
        if (err > worst)
            worst = err;
    }
    return worst;
}

static void test_percentile_accuracy_random(void **state)
{
    (void)state;
    static const struct dist dists[] = {
        {"uniform 1..1e9", gen_uniform},
        {"log-uniform 1..2^40", gen_log_uniform},
        {"exponential mean 1e6", gen_exponential},
        {"constant", gen_constant},
    };
    uint64_t *values = malloc(N_RANDOM * sizeof(*values));
    struct hist *h = hist_new();
    assert_non_null(values);
    assert_non_null(h);

    for (size_t i = 0; i < sizeof(dists) / sizeof(dists[0]); i++) {
        double worst = check_distribution(&dists[i], values, h);
        print_message("[ info     ] %-22s worst relative error %.4f%%\n", dists[i].name,
                      worst * 100);
    }
    hist_free(h);
    free(values);
}

static void assert_hist_equal(const struct hist *a, const struct hist *b)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        assert_int_equal(atomic_load(&a->counts[i]), atomic_load(&b->counts[i]));
    assert_int_equal(hist_count(a), hist_count(b));
    assert_int_equal(hist_sum(a), hist_sum(b));
    assert_int_equal(hist_min(a), hist_min(b));
    assert_int_equal(hist_max(a), hist_max(b));
}

static void test_merge_equals_recording_all(void **state)
{
    (void)state;
    struct hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *dst = hist_new();
    uint64_t seed = 7;
    assert_true(a && b && all && dst);

    for (int i = 0; i < 10000; i++) {
        uint64_t v = gen_log_uniform(&seed);
        hist_record(i % 3 == 0 ? a : b, v);
        hist_record(all, v);
    }
    hist_merge(dst, a);
    hist_merge(dst, b);
    assert_hist_equal(dst, all);

    /* Merging an empty histogram changes nothing, min included. */
    hist_reset(a);
    hist_merge(dst, a);
    assert_hist_equal(dst, all);

    /* Merging into an empty one copies. */
    hist_reset(a);
    hist_merge(a, all);
    assert_hist_equal(a, all);

    hist_free(a);
    hist_free(b);
    hist_free(all);
    hist_free(dst);
}

static void test_record_n(void **state)
{
    (void)state;
    struct hist *one = hist_new(), *many = hist_new();
    assert_true(one && many);

    for (int i = 0; i < 5; i++)
        hist_record(one, 1000);
    hist_record(one, 3);
    hist_record_n(many, 1000, 5);
    hist_record_n(many, 3, 1);
    hist_record_n(many, 99, 0); /* n == 0 records nothing, not even min */
    assert_hist_equal(many, one);
    assert_int_equal(hist_count(many), 6);
    assert_int_equal(hist_sum(many), 5003);
    assert_int_equal(hist_min(many), 3);

    hist_reset(many);
    hist_record_n(many, 77, 0);
    assert_int_equal(hist_count(many), 0);
    assert_int_equal(hist_min(many), 0);

    hist_free(one);
    hist_free(many);
}

static void test_huge_values_clamp_to_top_bucket(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);

    assert_int_equal(hist_bucket_index(HIST_MAX_VALUE), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_index(HIST_MAX_VALUE + 1), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_index(UINT64_MAX), HIST_BUCKETS - 1);

    hist_record(&h, UINT64_MAX);
    assert_int_equal(hist_max(&h), UINT64_MAX);
    assert_int_equal(hist_percentile(&h, 50), UINT64_MAX); /* clamped to min */
    assert_int_equal(atomic_load(&h.counts[HIST_BUCKETS - 1]), 1);

    hist_record(&h, HIST_MAX_VALUE + 1);
    assert_int_equal(hist_min(&h), HIST_MAX_VALUE + 1);
    assert_int_equal(hist_percentile(&h, 50), HIST_MAX_VALUE + 1);
    /* Both share the top bucket, so percentiles below the top rank no longer
     * tell them apart; the top rank is max itself, exact. */
    assert_int_equal(hist_percentile(&h, 100), UINT64_MAX);
    assert_int_equal(hist_max(&h), UINT64_MAX);
    assert_int_equal(atomic_load(&h.counts[HIST_BUCKETS - 1]), 2);
}

static void test_iterator_visits_nonempty_buckets_in_order(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    uint64_t seed = 99;
    assert_non_null(h);

    for (int i = 0; i < 5000; i++)
        hist_record(h, gen_exponential(&seed));
    hist_record(h, 0);
    hist_record(h, UINT64_MAX);

    struct hist_iter it;
    struct hist_bucket b;
    uint64_t total = 0, prev_hi = 0;
    size_t visited = 0, nonempty = 0;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b)) {
        size_t i = hist_bucket_index(b.lo);

        assert_true(b.count > 0);
        assert_true(visited == 0 || b.lo > prev_hi);
        assert_int_equal(b.lo, hist_bucket_lo(i));
        assert_int_equal(b.hi, hist_bucket_hi(i));
        assert_int_equal(b.count, atomic_load(&h->counts[i]));
        prev_hi = b.hi;
        total += b.count;
        visited++;
    }
    assert_false(hist_iter_next(&it, &b)); /* stays exhausted */
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        nonempty += atomic_load(&h->counts[i]) != 0;
    assert_int_equal(visited, nonempty);
    assert_int_equal(total, hist_count(h));
    assert_int_equal(prev_hi, HIST_MAX_VALUE);
    hist_free(h);
}

static void test_new_and_free(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_min(h), 0);
    assert_int_equal(hist_percentile(h, 99), 0);

    hist_record(h, 500);
    assert_int_equal(hist_count(h), 1);
    assert_true(hist_mean(h) == 500.0);
    hist_reset(h);
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_max(h), 0);

    hist_free(h);
    hist_free(NULL);
}

/* Regression: one RTT report of 2^32-1 samples at 4.9 h made sum wrap
 * (value * n and sum + value * n both overflowed), reporting 1.84e10 s for
 * 2.6e17 s. The sum must stop at UINT64_MAX, never come back down. */
static void test_sum_saturates(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    hist_record_n(h, HIST_MAX_VALUE, UINT32_MAX);
    assert_int_equal(hist_sum(h), UINT64_MAX); /* 2^44 * 2^32 > 2^64: the product saturates */
    hist_record(h, 5);
    assert_int_equal(hist_sum(h), UINT64_MAX); /* and the total stays there */
    assert_int_equal(hist_count(h), (uint64_t)UINT32_MAX + 1);

    /* Just below the edge the sum is exact; one more saturates. */
    hist_reset(h);
    hist_record_n(h, 1, UINT64_MAX - 1);
    assert_int_equal(hist_sum(h), UINT64_MAX - 1);
    hist_record(h, 1);
    assert_int_equal(hist_sum(h), UINT64_MAX);
    hist_record(h, 1);
    assert_int_equal(hist_sum(h), UINT64_MAX);
    hist_free(h);
}

/* Counts stop at UINT64_MAX: a wrapped count would read as a few samples. */
static void test_counts_saturate(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    hist_record_n(h, 0, UINT64_MAX - 2);
    hist_record_n(h, 0, 5);
    assert_int_equal(hist_count(h), UINT64_MAX);
    assert_int_equal(atomic_load(&h->counts[0]), UINT64_MAX);
    /* Another bucket: its own count is exact, the total stays saturated. */
    hist_record_n(h, 1000, 7);
    assert_int_equal(atomic_load(&h->counts[hist_bucket_index(1000)]), 7);
    assert_int_equal(hist_count(h), UINT64_MAX);
    /* Queries do not wrap either: the median is in the big bucket. */
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_int_equal(hist_max(h), 1000);
    hist_free(h);
}

static void test_merge_saturates(void **state)
{
    (void)state;
    struct hist *a = hist_new(), *b = hist_new();
    assert_non_null(a);
    assert_non_null(b);
    hist_record_n(a, 300, UINT64_MAX / 2 + 1);
    hist_record_n(b, 300, UINT64_MAX / 2 + 1);
    hist_record_n(b, 5, UINT64_MAX / 2 + 1);
    hist_merge(a, b);
    assert_int_equal(hist_count(a), UINT64_MAX);
    assert_int_equal(atomic_load(&a->counts[hist_bucket_index(300)]), UINT64_MAX);
    assert_int_equal(hist_sum(a), UINT64_MAX);
    hist_free(a);
    hist_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_histogram),
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_bucket_geometry),
        cmocka_unit_test(test_percentile_rank_edges),
        cmocka_unit_test(test_percentile_accuracy_random),
        cmocka_unit_test(test_merge_equals_recording_all),
        cmocka_unit_test(test_record_n),
        cmocka_unit_test(test_huge_values_clamp_to_top_bucket),
        cmocka_unit_test(test_iterator_visits_nonempty_buckets_in_order),
        cmocka_unit_test(test_new_and_free),
        cmocka_unit_test(test_sum_saturates),
        cmocka_unit_test(test_counts_saturate),
        cmocka_unit_test(test_merge_saturates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
