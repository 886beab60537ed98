/* Unit tests for the open-loop send schedule (src/client/schedule.h): the
 * timetable behind tcpmsg bench --rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/schedule.h"

/* count_before agrees with counting schedule_time one message at a time. */
static void test_count_before_matches_brute_force(void **state)
{
    (void)state;
    static const double periods[] = { 1, 3, 20000.5, 1e9 / 3, 1e8 };
    for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++) {
        struct schedule s = { .first_ns = 1000, .period_ns = periods[i] };
        uint64_t k = 0;
        for (uint64_t t = 0; t < 1000 + 50 * (uint64_t)periods[i]; t += 1 + (uint64_t)periods[i] / 7) {
            while (schedule_time(&s, k) < t)
                k++;
            assert_int_equal(schedule_count_before(&s, t), t <= s.first_ns ? 0 : k);
        }
    }
}

/* Over a few seconds, the number due is the rate times the time, to one
 * message, at every rate from 10 to 50,000/s (the integration test checks
 * the real loop holds it). */
static void test_rate_over_seconds(void **state)
{
    (void)state;
    static const double rates[] = { 10, 100, 1000, 7777, 50000 };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        struct schedule s = { .first_ns = 5, .period_ns = 1e9 / rates[i] };
        for (uint64_t secs = 1; secs <= 4; secs++) {
            uint64_t n = schedule_count_before(&s, s.first_ns + secs * 1000000000u);
            double want = rates[i] * (double)secs;
            assert_true((double)n >= want - 1 && (double)n <= want + 1);
        }
    }
}

static void test_times_are_monotonic(void **state)
{
    (void)state;
    struct schedule s = { .first_ns = 123456789, .period_ns = 1e9 / 200000.0 };
    for (uint64_t k = 1; k < 1000000; k++)
        assert_true(schedule_time(&s, k) >= schedule_time(&s, k - 1));
    assert_int_equal(schedule_time(&s, 0), s.first_ns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_before_matches_brute_force),
        cmocka_unit_test(test_rate_over_seconds),
        cmocka_unit_test(test_times_are_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
