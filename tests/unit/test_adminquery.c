/* Unit tests for adminquery (src/server/adminquery.c): the format and
 * Accept negotiation of /metrics, the limit/offset counts and the sort
 * argument of /api/connections, table-driven, boundaries included.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/adminquery.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_format_argument_wins(void **state)
{
    (void)state;
    static const struct { const char *format; enum admin_format want; } cases[] = {
        { "json", ADMIN_FORMAT_JSON },
        { "prometheus", ADMIN_FORMAT_PROMETHEUS },
        { "openmetrics", ADMIN_FORMAT_OPENMETRICS },
        { "", ADMIN_FORMAT_UNKNOWN },
        { "JSON", ADMIN_FORMAT_UNKNOWN },
        { "json ", ADMIN_FORMAT_UNKNOWN },
        { "prometheusx", ADMIN_FORMAT_UNKNOWN },
        { "text/plain", ADMIN_FORMAT_UNKNOWN },
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        /* Whatever the Accept header says. */
        assert_int_equal(admin_format_choose(cases[i].format, NULL), cases[i].want);
        assert_int_equal(admin_format_choose(cases[i].format, "application/openmetrics-text"),
                         cases[i].want);
        assert_int_equal(admin_format_choose(cases[i].format, "text/plain"), cases[i].want);
    }
}

static void test_format_from_accept(void **state)
{
    (void)state;
    static const struct { const char *accept; enum admin_format want; } cases[] = {
        { NULL, ADMIN_FORMAT_JSON },
        { "", ADMIN_FORMAT_JSON },
        { "*/*", ADMIN_FORMAT_JSON },
        { "application/json", ADMIN_FORMAT_JSON },
        { "text/plain", ADMIN_FORMAT_PROMETHEUS },
        { "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", ADMIN_FORMAT_PROMETHEUS },
        { "application/openmetrics-text", ADMIN_FORMAT_OPENMETRICS },
        /* What Prometheus sends: OpenMetrics first, text/plain too. */
        { "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
          ADMIN_FORMAT_OPENMETRICS },
        { "text/plain, application/openmetrics-text", ADMIN_FORMAT_OPENMETRICS },
        { "text/html", ADMIN_FORMAT_JSON },
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++)
        assert_int_equal(admin_format_choose(NULL, cases[i].accept), cases[i].want);
}

static void test_count_parse(void **state)
{
    (void)state;
    static const struct { const char *v; int rc; size_t want; } cases[] = {
        { NULL, 0, 100 }, /* absent: the default */
        { "0", 0, 0 },
        { "1", 0, 1 },
        { "007", 0, 7 },
        { "999", 0, 999 },
        { "1000", 0, 1000 }, /* max */
        { "1001", -EINVAL, 0 }, /* max + 1 */
        { "", -EINVAL, 0 },
        { "-1", -EINVAL, 0 },
        { "+1", -EINVAL, 0 },
        { " 1", -EINVAL, 0 },
        { "1 ", -EINVAL, 0 },
        { "1x", -EINVAL, 0 },
        { "0x10", -EINVAL, 0 },
        { "1e3", -EINVAL, 0 },
        { "18446744073709551616", -EINVAL, 0 }, /* 2^64: out of range */
        { "99999999999999999999999", -EINVAL, 0 },
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        size_t out = 12345;
        int rc = admin_count_parse(cases[i].v, 100, 1000, &out);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].v ? cases[i].v : "(null)", rc,
                     cases[i].rc);
        assert_int_equal(out, rc == 0 ? cases[i].want : 12345); /* untouched on error */
    }
    /* The largest max there is. */
    size_t out;
    char big[32];
    snprintf(big, sizeof big, "%zu", SIZE_MAX);
    assert_int_equal(admin_count_parse(big, 0, SIZE_MAX, &out), 0);
    assert_true(out == SIZE_MAX);
}

static void test_sort_parse(void **state)
{
    (void)state;
    static const struct { const char *v; int rc; enum conn_sort_key key; bool desc; } cases[] = {
        { NULL, 0, CONN_SORT_ID, false },
        { "id", 0, CONN_SORT_ID, false },
        { "-id", 0, CONN_SORT_ID, true },
        { "age", 0, CONN_SORT_AGE, false },
        { "idle", 0, CONN_SORT_IDLE, false },
        { "-bytes_in", 0, CONN_SORT_BYTES_IN, true },
        { "bytes_out", 0, CONN_SORT_BYTES_OUT, false },
        { "msgs_in", 0, CONN_SORT_MSGS_IN, false },
        { "-msgs_out", 0, CONN_SORT_MSGS_OUT, true },
        { "pending", 0, CONN_SORT_PENDING, false },
        { "-memory", 0, CONN_SORT_MEMORY, true },
        { "", -EINVAL, 0, false },
        { "-", -EINVAL, 0, false },
        { "--id", -EINVAL, 0, false },
        { "+id", -EINVAL, 0, false },
        { "ID", -EINVAL, 0, false },
        { "id ", -EINVAL, 0, false },
        { "bytes", -EINVAL, 0, false },
        { "bogus", -EINVAL, 0, false },
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct conn_sort s = { .key = CONN_SORT_KEY_COUNT, .descending = false };
        int rc = admin_sort_parse(cases[i].v, &s);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].v ? cases[i].v : "(null)", rc,
                     cases[i].rc);
        if (rc == 0) {
            assert_int_equal(s.key, cases[i].key);
            assert_int_equal(s.descending, cases[i].desc);
        }
    }
}

/* Every key's spelling parses back to it, and the list the 400 answer
 * gives names exactly those keys. */
static void test_sort_names_round_trip(void **state)
{
    (void)state;
    char list[1024] = "";
    for (int k = 0; k < CONN_SORT_KEY_COUNT; k++) {
        struct conn_sort s;
        assert_int_equal(admin_sort_parse(conn_sort_name((enum conn_sort_key)k), &s), 0);
        assert_int_equal(s.key, k);
        assert_false(s.descending);
        strcat(list, conn_sort_name((enum conn_sort_key)k));
        strcat(list, ", ");
    }
    assert_string_equal(list, CONN_SORT_NAMES);
    assert_string_equal(CONN_SORT_NAMES,
                        "id, age, idle, bytes_in, bytes_out, msgs_in, msgs_out, pending, "
                        "memory, srtt_us, rttvar_us, min_rtt_us, snd_cwnd, snd_mss, "
                        "retransmits, total_retrans, lost, unacked, "
                        "delivery_rate_bytes_per_second, bytes_sent, bytes_retrans, "
                        "bytes_acked, bytes_received, busy_us, rwnd_limited_us, "
                        "sndbuf_limited_us, ");
    assert_string_equal(conn_sort_name(CONN_SORT_KEY_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_argument_wins),
        cmocka_unit_test(test_format_from_accept),
        cmocka_unit_test(test_count_parse),
        cmocka_unit_test(test_sort_parse),
        cmocka_unit_test(test_sort_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
