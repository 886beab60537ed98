/* Unit tests for membudget (src/server/membudget.c): the accounts and their
 * total, what a read may take near and over the limit, when the budget is
 * spent, the grace period, and the write-off of a dead child's account.
 */
#include <stdint.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/membudget.h"

#define KIB 1024u
#define SEC 1000000000ull

/* Far from the limit a read takes all it wants and nothing is held for it;
 * near it, the grant is charged at once and what is left shrinks; over it
 * only what brings a connection up to MEMBUDGET_SMALL_HOLDING is granted. */
static void test_take_fast_near_and_over(void **state)
{
    (void)state;
    struct membudget *b = membudget_new(1024 * KIB, 2, 2);
    assert_non_null(b);
    bool charged = true;
    assert_int_equal(membudget_take(b, 0, 0, 64 * KIB, &charged), 64 * KIB);
    assert_false(charged);
    assert_int_equal(membudget_total(b), 0);

    membudget_charge(b, 0, 900 * KIB, 1); /* 124 KiB left: less than 2 x 64 */
    assert_int_equal(membudget_take(b, 1, 0, 64 * KIB, &charged), 64 * KIB);
    assert_true(charged);
    assert_int_equal(membudget_total(b), 964 * KIB);
    assert_int_equal(membudget_take(b, 1, 64 * KIB, 64 * KIB, &charged), 60 * KIB);
    assert_int_equal(membudget_total(b), 1024 * KIB);
    /* Spent: a holder of 4 KiB or more gets nothing, a small one its 4 KiB. */
    assert_int_equal(membudget_take(b, 1, 124 * KIB, 64 * KIB, &charged), 0);
    assert_int_equal(membudget_take(b, 1, 1000, 64 * KIB, &charged),
                     MEMBUDGET_SMALL_HOLDING - 1000);
    assert_int_equal(membudget_total(b), 1024 * KIB + MEMBUDGET_SMALL_HOLDING - 1000);
    assert_int_equal(membudget_slot_used(b, 1), 124 * KIB + MEMBUDGET_SMALL_HOLDING - 1000);
    membudget_free(b);
}

/* Spent: over the limit, or above the resume mark (7/8) with connections
 * waiting. Evict only once it stayed spent for the grace period. */
static void test_exhausted_and_grace(void **state)
{
    (void)state;
    struct membudget *b = membudget_new(800 * KIB, 2, 1);
    assert_non_null(b);
    membudget_charge(b, 0, 750 * KIB, 1); /* above 7/8 (700), under the limit */
    assert_false(membudget_exhausted(b));
    assert_false(membudget_may_resume(b));
    membudget_paused(b, 1);
    assert_true(membudget_exhausted(b));
    assert_false(membudget_must_evict(b, 10 * SEC));
    assert_false(membudget_must_evict(b, 11 * SEC));
    assert_true(membudget_must_evict(b, 12 * SEC));
    membudget_paused(b, -1);
    assert_false(membudget_must_evict(b, 13 * SEC)); /* no longer spent: the clock resets */
    membudget_charge(b, 0, 100 * KIB, 0); /* over the limit, nobody waiting */
    assert_true(membudget_exhausted(b));
    assert_false(membudget_must_evict(b, 14 * SEC));
    assert_true(membudget_must_evict(b, 16 * SEC));
    membudget_charge(b, 0, -(int64_t)(200 * KIB), 0);
    assert_true(membudget_may_resume(b));
    assert_false(membudget_must_evict(b, 17 * SEC));
    membudget_free(b);
}

/* The even share counts the connections holding anything; a dead child's
 * account goes back whole. */
static void test_fair_share_and_write_off(void **state)
{
    (void)state;
    struct membudget *b = membudget_new(1000 * KIB, 2, 4);
    assert_non_null(b);
    assert_int_equal(membudget_fair_share(b), 1000 * KIB);
    membudget_charge(b, 1, 300 * KIB, 1);
    membudget_charge(b, 2, 100 * KIB, 1);
    membudget_charge(b, 2, 50 * KIB, 1);
    assert_int_equal(membudget_fair_share(b), 1000 * KIB / 3);
    assert_int_equal(membudget_total(b), 450 * KIB);
    membudget_write_off(b, 2);
    assert_int_equal(membudget_total(b), 300 * KIB);
    assert_int_equal(membudget_slot_used(b, 2), 0);
    assert_int_equal(membudget_fair_share(b), 1000 * KIB);
    membudget_charge(b, 1, -(int64_t)(300 * KIB), -1);
    assert_int_equal(membudget_total(b), 0);
    membudget_free(b);
    membudget_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_fast_near_and_over),
        cmocka_unit_test(test_exhausted_and_grace),
        cmocka_unit_test(test_fair_share_and_write_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
