/* Unit tests for the client's stages (src/client/stages.c): the split of a
 * round trip adds up to it and never goes negative, sampling picks exactly
 * one message in N, SND stamps find their samples by byte number across the
 * 2^32 wrap, and replies take their samples in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client/stages.h"

static void test_split_adds_up(void **state)
{
    (void)state;
    struct cstage_times t = { .handed_ns = 1000, .snd_ns = 1300, .rx_ns = 51300, .read_ns = 251300 };
    uint64_t part[CSTAGE_COUNT];
    assert_true(cstage_split(&t, part));
    assert_int_equal(part[CSTAGE_CLIENT_TX], 300);
    assert_int_equal(part[CSTAGE_NETWORK], 50000);
    assert_int_equal(part[CSTAGE_CLIENT_RX], 200000);
    assert_int_equal(part[0] + part[1] + part[2], t.read_ns - t.handed_ns);
}

/* Stamps out of order (taken where the kernel finds it convenient, or a
 * clock step) give parts of 0, not huge unsigned numbers. */
static void test_split_clamps(void **state)
{
    (void)state;
    uint64_t part[CSTAGE_COUNT];
    struct cstage_times snd_early = { .handed_ns = 1000, .snd_ns = 900, .rx_ns = 2000, .read_ns = 2500 };
    assert_true(cstage_split(&snd_early, part));
    assert_int_equal(part[CSTAGE_CLIENT_TX], 0);
    assert_int_equal(part[CSTAGE_NETWORK], 1000);
    assert_int_equal(part[CSTAGE_CLIENT_RX], 500);
    struct cstage_times rx_early = { .handed_ns = 1000, .snd_ns = 1200, .rx_ns = 1100, .read_ns = 1500 };
    assert_true(cstage_split(&rx_early, part));
    assert_int_equal(part[CSTAGE_CLIENT_TX], 200);
    assert_int_equal(part[CSTAGE_NETWORK], 0);
    assert_int_equal(part[CSTAGE_CLIENT_RX], 300);
    struct cstage_times read_early = { .handed_ns = 1000, .snd_ns = 1200, .rx_ns = 1400, .read_ns = 1300 };
    assert_true(cstage_split(&read_early, part));
    assert_int_equal(part[CSTAGE_CLIENT_RX], 0);
    assert_int_equal(part[0] + part[1] + part[2], 400);
}

/* Any missing moment: no split, out untouched. */
static void test_split_needs_all_four(void **state)
{
    (void)state;
    for (int missing = 0; missing < 4; missing++) {
        uint64_t v[4] = { 10, 20, 30, 40 };
        v[missing] = 0;
        struct cstage_times t = { v[0], v[1], v[2], v[3] };
        uint64_t part[CSTAGE_COUNT] = { 7, 7, 7 };
        assert_false(cstage_split(&t, part));
        assert_int_equal(part[0], 7);
        assert_int_equal(part[1], 7);
        assert_int_equal(part[2], 7);
    }
}

static void test_sampling_one_in_n(void **state)
{
    (void)state;
    unsigned n = 0;
    for (uint64_t k = 0; k < 6400; k++)
        n += cstage_sampled(k, 64);
    assert_int_equal(n, 100);
    assert_true(cstage_sampled(0, 64)); /* the first message of a connection */
    assert_false(cstage_sampled(1, 64));
    for (uint64_t k = 0; k < 100; k++) {
        assert_false(cstage_sampled(k, 0)); /* 0: off */
        assert_true(cstage_sampled(k, 1));
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cstage_name(CSTAGE_CLIENT_TX), "client_tx");
    assert_string_equal(cstage_name(CSTAGE_NETWORK), "network");
    assert_string_equal(cstage_name(CSTAGE_CLIENT_RX), "client_rx");
    assert_string_equal(cstage_name(CSTAGE_COUNT), "?");
    assert_string_equal(cstage_text(CSTAGE_NETWORK), "network+server");
    assert_string_equal(cstage_text((enum cstage)-1), "?");
}

static struct tstamp_report stamp(enum tstamp_tx kind, uint32_t key, uint64_t ns)
{
    return (struct tstamp_report){ .kind = kind, .key = key, .ns = ns };
}

/* Two samples in flight (messages 0 and 2 of 67-byte messages, say): a
 * SND stamp of a later byte covers both; SCHED and ACK are ignored. */
static void test_track_snd_by_byte(void **state)
{
    (void)state;
    struct cstage_track t = { 0 };
    assert_true(cstage_track_sent(&t, 0, 66, 100));
    assert_true(cstage_track_sent(&t, 2, 200, 300));
    struct tstamp_report r = stamp(TSTAMP_SCHED, 200, 310);
    cstage_track_report(&t, &r);
    r = stamp(TSTAMP_ACK, 200, 999);
    cstage_track_report(&t, &r);
    r = stamp(TSTAMP_SND, 66, 150); /* message 0's own send */
    cstage_track_report(&t, &r);
    r = stamp(TSTAMP_SND, 133, 250); /* message 1, not sampled: before message 2's last byte */
    cstage_track_report(&t, &r);
    r = stamp(TSTAMP_SND, 300, 400); /* appended to: a later byte's stamp */
    cstage_track_report(&t, &r);
    uint64_t handed, snd;
    assert_true(cstage_track_take(&t, 0, &handed, &snd));
    assert_int_equal(handed, 100);
    assert_int_equal(snd, 150);
    assert_false(cstage_track_take(&t, 1, &handed, &snd));
    assert_true(cstage_track_take(&t, 2, &handed, &snd));
    assert_int_equal(handed, 300);
    assert_int_equal(snd, 400);
    assert_int_equal(t.npending, 0);
}

/* Queued first, handed to the kernel together: only the samples not yet
 * handed get the time of the write. */
static void test_track_handed_once(void **state)
{
    (void)state;
    struct cstage_track t = { 0 };
    assert_true(cstage_track_sent(&t, 0, 10, 0));
    cstage_track_handed(&t, 500);
    assert_true(cstage_track_sent(&t, 4, 50, 0));
    cstage_track_handed(&t, 700);
    uint64_t handed, snd;
    assert_true(cstage_track_take(&t, 0, &handed, &snd));
    assert_int_equal(handed, 500);
    assert_true(cstage_track_take(&t, 4, &handed, &snd));
    assert_int_equal(handed, 700);
    assert_true(tstamp_byte_at_or_before(UINT32_MAX, 0));
    assert_false(tstamp_byte_at_or_before(0, UINT32_MAX));
    assert_true(tstamp_byte_at_or_before(5, 5));
}

/* Byte numbers wrap at 2^32: a stamp just past the wrap is after a sample
 * just before it; one just before is not after one just past. */
static void test_track_wraps(void **state)
{
    (void)state;
    struct cstage_track t = { 0 };
    assert_true(cstage_track_sent(&t, 7, UINT32_MAX - 10, 1));
    assert_true(cstage_track_sent(&t, 8, 20, 2));
    struct tstamp_report r = stamp(TSTAMP_SND, UINT32_MAX - 5, 50);
    cstage_track_report(&t, &r);
    uint64_t handed, snd;
    r = stamp(TSTAMP_SND, 25, 60);
    cstage_track_report(&t, &r);
    assert_true(cstage_track_take(&t, 7, &handed, &snd));
    assert_int_equal(snd, 50);
    assert_true(cstage_track_take(&t, 8, &handed, &snd));
    assert_int_equal(snd, 60);
}

/* Replies come in order: taking a later message removes the older samples
 * left behind; a full track refuses a new sample; a missing SND is 0. */
static void test_track_order_and_room(void **state)
{
    (void)state;
    struct cstage_track t = { 0 };
    for (uint64_t k = 0; k < CSTAGE_PENDING; k++)
        assert_true(cstage_track_sent(&t, k * 10, (uint32_t)(k * 100), k + 1));
    assert_false(cstage_track_sent(&t, 999, 99999, 5));
    assert_int_equal(t.npending, CSTAGE_PENDING);
    uint64_t handed = 0, snd = 1;
    assert_true(cstage_track_take(&t, 30, &handed, &snd));
    assert_int_equal(handed, 4);
    assert_int_equal(snd, 0);
    assert_int_equal(t.npending, CSTAGE_PENDING - 4);
    assert_false(cstage_track_take(&t, 35, &handed, &snd));
    assert_int_equal(t.pending[0].seq, 40);
}

static void test_hists_record_and_merge(void **state)
{
    (void)state;
    struct cstage_hists a, b;
    cstage_hists_init(&a);
    cstage_hists_init(&b);
    struct cstage_times t = { .handed_ns = 1000, .snd_ns = 3000, .rx_ns = 13000, .read_ns = 213000 };
    cstage_hists_record(&a, &t);
    cstage_hists_record(&a, &t);
    struct cstage_times none = { .handed_ns = 1000, .snd_ns = 0, .rx_ns = 13000, .read_ns = 14000 };
    cstage_hists_record(&b, &none);
    cstage_hists_record(&b, &t);
    cstage_hists_merge(&a, &b);
    assert_int_equal(counter_get(&a.split), 3);
    assert_int_equal(counter_get(&a.skipped), 1);
    for (int i = 0; i < CSTAGE_COUNT; i++)
        assert_int_equal(hist_count(&a.h[i]), 3);
    assert_int_equal(hist_max(&a.h[CSTAGE_CLIENT_RX]), 200000);
    assert_int_equal(hist_min(&a.h[CSTAGE_CLIENT_TX]), 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_adds_up),
        cmocka_unit_test(test_split_clamps),
        cmocka_unit_test(test_split_needs_all_four),
        cmocka_unit_test(test_sampling_one_in_n),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_track_snd_by_byte),
        cmocka_unit_test(test_track_handed_once),
        cmocka_unit_test(test_track_wraps),
        cmocka_unit_test(test_track_order_and_room),
        cmocka_unit_test(test_hists_record_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
