/* Unit tests for basicauth (src/basicauth.c): bcrypt checks of right and
 * wrong credentials, unknown users costing a bcrypt too, the cache of
 * successes (and that it never admits a wrong password), and the bcrypt
 * time budget that keeps a flood of wrong passwords from holding the HTTP
 * thread while cached clients still get in.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/basicauth.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SEC INT64_C(1000000000)

/* bcrypt of "secret" and of "s3cr:t" at cost 4 ($2b$ and $2y$ prefixes). */
static const struct webconfig_user users[] = {
    { "alice", "$2b$04$i9FkkRREl9h4qbRLFCboeOdRCSV0k.ptPLFXd4P8wnTsxgvIDBnPS" },
    { "bob", "$2y$04$kvWuE205EISA6iKdAs2y0ezD58pDxmUq0SzC8fAcy5THyh5nFn.Q6" },
};

static struct basicauth *new_auth(const struct basicauth_limits *limits)
{
    char err[256] = "";
    struct basicauth *a = basicauth_new(users, COUNT_OF(users), limits, err, sizeof err);
    if (a == NULL)
        fail_msg("basicauth_new: %s", err);
    return a;
}

static void test_right_and_wrong(void **state)
{
    (void)state;
    struct basicauth *a = new_auth(NULL);
    int64_t now = 10 * SEC;
    assert_int_equal(basicauth_check(a, "alice", "secret", now), BASICAUTH_OK);
    assert_int_equal(basicauth_check(a, "bob", "s3cr:t", now), BASICAUTH_OK);
    assert_int_equal(basicauth_check(a, "alice", "Secret", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "alice", "secret ", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "alice", "", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "bob", "secret", now), BASICAUTH_DENIED); /* alice's */
    assert_int_equal(basicauth_check(a, "Alice", "secret", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "", "", now), BASICAUTH_DENIED);
    /* Two successes ran bcrypt; six failures did too, the unknown users
     * included (against the dummy hash: no timing tells who exists). */
    assert_int_equal(basicauth_bcrypt_runs(a), 8);
    assert_int_equal(basicauth_cache_hits(a), 0);
    basicauth_free(a);
    basicauth_free(NULL);
}

static void test_cache(void **state)
{
    (void)state;
    struct basicauth *a = new_auth(NULL);
    int64_t now = 10 * SEC;
    assert_int_equal(basicauth_check(a, "alice", "secret", now), BASICAUTH_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(basicauth_check(a, "alice", "secret", now + i * SEC), BASICAUTH_OK);
    assert_int_equal(basicauth_bcrypt_runs(a), 1);
    assert_int_equal(basicauth_cache_hits(a), 5);
    /* A cached success admits that pair only. */
    assert_int_equal(basicauth_check(a, "alice", "secreT", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "bob", "secret", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "alicesecret", "", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_bcrypt_runs(a), 4);
    /* It expires: bcrypt runs again after the TTL. */
    int64_t later = now + (BASICAUTH_CACHE_TTL_S + 1) * SEC;
    assert_int_equal(basicauth_check(a, "alice", "secret", later), BASICAUTH_OK);
    assert_int_equal(basicauth_bcrypt_runs(a), 5);
    assert_int_equal(basicauth_cache_hits(a), 5);
    basicauth_free(a);
}

/* The budget: with a burst of 1 ns, one uncached check may run; the next
 * is throttled without bcrypt until the clock has refilled it. A client in
 * the cache is served throughout. */
static void test_budget(void **state)
{
    (void)state;
    const struct basicauth_limits tight = { .share = 0.25, .burst_s = 1e-9 };
    struct basicauth *a = new_auth(&tight);
    int64_t now = 10 * SEC;
    assert_int_equal(basicauth_check(a, "alice", "secret", now), BASICAUTH_OK); /* cached now */
    for (int i = 0; i < 100; i++)
        assert_int_equal(basicauth_check(a, "alice", "wrong", now), BASICAUTH_THROTTLED);
    assert_int_equal(basicauth_bcrypt_runs(a), 1);
    assert_int_equal(basicauth_check(a, "alice", "secret", now), BASICAUTH_OK);
    assert_int_equal(basicauth_check(a, "bob", "s3cr:t", now), BASICAUTH_THROTTLED);
    /* A cost-4 bcrypt takes well under a second: 4 s at a 0.25 share refill
     * more than it spent (capped at the burst), so one more check runs. */
    now += 4 * SEC;
    assert_int_equal(basicauth_check(a, "alice", "wrong", now), BASICAUTH_DENIED);
    assert_int_equal(basicauth_check(a, "bob", "s3cr:t", now), BASICAUTH_THROTTLED);
    assert_int_equal(basicauth_bcrypt_runs(a), 2);
    /* A clock that does not move (or goes back) refills nothing. */
    assert_int_equal(basicauth_check(a, "bob", "s3cr:t", now - SEC), BASICAUTH_THROTTLED);
    assert_int_equal(basicauth_bcrypt_runs(a), 2);
    basicauth_free(a);
}

/* With the default budget, a flood of wrong passwords is cut off after
 * about BASICAUTH_BURST_S of bcrypt time, never later. */
static void test_default_budget_bounds_a_flood(void **state)
{
    (void)state;
    struct basicauth *a = new_auth(NULL);
    int64_t now = 10 * SEC;
    int denied = 0, throttled = 0;
    for (int i = 0; i < 20000 && throttled == 0; i++) {
        enum basicauth_result r = basicauth_check(a, "alice", "wrong", now);
        denied += r == BASICAUTH_DENIED;
        throttled += r == BASICAUTH_THROTTLED;
    }
    assert_int_equal(throttled, 1);
    assert_true(denied > 0);
    assert_int_equal(basicauth_bcrypt_runs(a), (uint64_t)denied);
    basicauth_free(a);
}

static void test_new_refuses_no_users(void **state)
{
    (void)state;
    char err[64];
    assert_null(basicauth_new(users, 0, NULL, err, sizeof err));
    assert_string_equal(err, "no users");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_right_and_wrong),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_default_budget_bounds_a_flood),
        cmocka_unit_test(test_new_refuses_no_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
