/* Unit tests for rttreport (src/rttreport.c): RTT_REPORT frames built from a
 * histogram, read back by the frame parser, applied onto a histogram with
 * the same bucket counts, and malformed payloads refused whole with the
 * destination untouched.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/rttreport.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint8_t *frame_buf(void)
{
    uint8_t *b = malloc(RTT_REPORT_MAX_FRAME);
    assert_non_null(b);
    return b;
}

static struct hist *new_hist(void)
{
    struct hist *h = hist_new();
    assert_non_null(h);
    return h;
}

static void expect_same_buckets(const struct hist *a, const struct hist *b)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t x = atomic_load(&a->counts[i]), y = atomic_load(&b->counts[i]);
        if (x != y)
            fail_msg("bucket %zu [%llu, %llu]: %llu, want %llu", i,
                     (unsigned long long)hist_bucket_lo(i), (unsigned long long)hist_bucket_hi(i),
                     (unsigned long long)y, (unsigned long long)x);
    }
    assert_int_equal(hist_count(a), hist_count(b));
}

/* Three buckets: 100 ns three times, 5 us twice, 1 ms once. */
static void test_encode_known(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    hist_record_n(h, 100, 3);
    hist_record_n(h, 5000, 2);
    hist_record(h, 1000000);
    uint8_t *out = frame_buf();
    size_t n = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    size_t payload = RTT_REPORT_HEAD + 3 * RTT_REPORT_ENTRY;
    assert_int_equal(n, FRAME_HEADER_SIZE + payload);
    /* Header: type 0x02, 24-bit big-endian length. */
    assert_int_equal(out[0], 0x02);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 0);
    assert_int_equal(out[3], payload);
    assert_int_equal(out[4], RTT_REPORT_VERSION);
    assert_int_equal(out[5], HIST_SUB_BITS);
    /* Entries in increasing bucket order: u16 index, u32 count. */
    static const struct { uint64_t value; uint32_t count; } want[] = {
        { 100, 3 }, { 5000, 2 }, { 1000000, 1 },
    };
    for (size_t i = 0; i < COUNT_OF(want); i++) {
        const uint8_t *e = out + FRAME_HEADER_SIZE + RTT_REPORT_HEAD + i * RTT_REPORT_ENTRY;
        size_t idx = (size_t)e[0] << 8 | e[1];
        uint32_t count = (uint32_t)e[2] << 24 | (uint32_t)e[3] << 16 | (uint32_t)e[4] << 8 | e[5];
        assert_int_equal(idx, hist_bucket_index(want[i].value));
        assert_int_equal(count, want[i].count);
    }
    /* The frame parser takes it as one complete control frame. */
    struct frame f;
    assert_int_equal(frame_parse(out, n, FRAME_DEFAULT_MAX_PAYLOAD, true, &f), (ssize_t)n);
    assert_int_equal(f.type, FRAME_RTT_REPORT);
    assert_int_equal(f.len, payload);
    assert_ptr_equal(f.payload, out + FRAME_HEADER_SIZE);
    /* Every strict prefix is incomplete. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(frame_parse(out, k, FRAME_DEFAULT_MAX_PAYLOAD, true, &f), FRAME_INCOMPLETE);
    free(out);
    hist_free(h);
}

static void test_apply_roundtrip(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    uint32_t seed = 7;
    for (int i = 0; i < 5000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t v = (uint64_t)(seed >> 8) % 50000000u; /* up to 50 ms */
        hist_record(h, v);
    }
    hist_record(h, 0);
    hist_record(h, HIST_MAX_VALUE); /* the top bucket */
    hist_record(h, UINT64_MAX);     /* counted in the top bucket too */
    uint8_t *out = frame_buf();
    size_t n = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    assert_true(n > FRAME_HEADER_SIZE + RTT_REPORT_HEAD);

    struct hist *dst = new_hist();
    int64_t added = rtt_report_apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, dst);
    assert_int_equal(added, (int64_t)hist_count(h));
    expect_same_buckets(h, dst);
    /* Applied values are bucket midpoints: within the bucket of the originals. */
    assert_int_equal(hist_bucket_index(hist_min(dst)), hist_bucket_index(hist_min(h)));
    assert_int_equal(hist_bucket_index(hist_max(dst)), hist_bucket_index(hist_max(h)));

    /* Applying again adds: a report is a delta. */
    assert_int_equal(rtt_report_apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, dst), added);
    assert_int_equal(hist_count(dst), 2 * hist_count(h));
    free(out);
    hist_free(dst);
    hist_free(h);
}

/* Every bucket non-empty: the largest report, exactly RTT_REPORT_MAX_FRAME. */
static void test_encode_all_buckets(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        hist_record(h, hist_bucket_lo(i));
    uint8_t *out = frame_buf();
    size_t n = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    assert_int_equal(n, RTT_REPORT_MAX_FRAME);
    assert_true(n - FRAME_HEADER_SIZE <= FRAME_DEFAULT_MAX_PAYLOAD); /* the server takes it */
    struct hist *dst = new_hist();
    assert_int_equal(rtt_report_apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, dst),
                     HIST_BUCKETS);
    expect_same_buckets(h, dst);
    free(out);
    hist_free(dst);
    hist_free(h);
}

static void test_encode_empty(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    uint8_t *out = frame_buf();
    assert_int_equal(rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME), 0);
    free(out);
    hist_free(h);
}

/* A header with no entries is a valid, empty report. */
static void test_apply_empty_report(void **state)
{
    (void)state;
    const uint8_t p[] = { RTT_REPORT_VERSION, HIST_SUB_BITS };
    struct hist *dst = new_hist();
    assert_int_equal(rtt_report_apply(p, sizeof p, dst), 0);
    assert_int_equal(hist_count(dst), 0);
    hist_free(dst);
}

/* Malformed payloads: -1, and dst exactly as before. */
static void test_apply_malformed(void **state)
{
    (void)state;
#define E(idx, cnt) \
    (uint8_t)((idx) >> 8), (uint8_t)(idx), 0, 0, 0, (uint8_t)(cnt)
    static const uint8_t bad_version[] = { 2, HIST_SUB_BITS, E(5, 1) };
    static const uint8_t version_0[] = { 0, HIST_SUB_BITS, E(5, 1) };
    static const uint8_t bad_bits[] = { RTT_REPORT_VERSION, 7, E(5, 1) };
    static const uint8_t short_entry[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, 0, 5, 0, 0, 1 };
    static const uint8_t long_entry[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, E(5, 1), 0 };
    static const uint8_t one_byte[] = { RTT_REPORT_VERSION };
    static const uint8_t index_max[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, E(HIST_BUCKETS, 1) };
    static const uint8_t index_ffff[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, E(0xffff, 1) };
    /* A good entry before a bad one: nothing of it may be applied. */
    static const uint8_t good_then_bad[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, E(5, 9),
                                             E(HIST_BUCKETS, 1) };
#undef E
    static const struct { const char *what; const uint8_t *p; size_t n; } cases[] = {
        { "version 2", bad_version, sizeof bad_version },
        { "version 0", version_0, sizeof version_0 },
        { "sub-bucket bits 7", bad_bits, sizeof bad_bits },
        { "5-byte entry", short_entry, sizeof short_entry },
        { "7-byte entry", long_entry, sizeof long_entry },
        { "1-byte payload", one_byte, sizeof one_byte },
        { "empty payload", one_byte, 0 },
        { "index HIST_BUCKETS", index_max, sizeof index_max },
        { "index 0xffff", index_ffff, sizeof index_ffff },
        { "good entry then bad index", good_then_bad, sizeof good_then_bad },
    };
    struct hist *dst = new_hist();
    struct hist *before = new_hist();
    hist_record_n(dst, 42, 2);
    hist_record(dst, 123456);
    memcpy(before, dst, sizeof *dst);
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        int64_t rc = rtt_report_apply(cases[i].p, cases[i].n, dst);
        if (rc != -1)
            fail_msg("%s: returned %lld, want -1", cases[i].what, (long long)rc);
        if (memcmp(before, dst, sizeof *dst) != 0)
            fail_msg("%s: the histogram changed", cases[i].what);
    }
    hist_free(before);
    hist_free(dst);
}

/* The highest valid index is taken. */
static void test_apply_last_bucket(void **state)
{
    (void)state;
    const uint8_t p[] = { RTT_REPORT_VERSION, HIST_SUB_BITS,
                          (uint8_t)((HIST_BUCKETS - 1) >> 8), (uint8_t)(HIST_BUCKETS - 1),
                          0, 0, 1, 0 }; /* count 256 */
    struct hist *dst = new_hist();
    assert_int_equal(rtt_report_apply(p, sizeof p, dst), 256);
    assert_int_equal(atomic_load(&dst->counts[HIST_BUCKETS - 1]), 256);
    hist_free(dst);
}

/* Regression: rtt_report.h promises that a bucket count above 2^32-1 is
 * split over repeated entries (room permitting); the encoder clamped it to
 * 2^32-1 instead, silently dropping the rest. */
static void test_count_above_u32_is_split(void **state)
{
    (void)state;
    struct hist *h = new_hist();
    uint64_t big = (UINT64_C(1) << 32) + 5;
    hist_record_n(h, 1000, big);
    uint8_t *out = frame_buf();
    size_t n = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    assert_true(n > 0);
    struct hist *dst = new_hist();
    int64_t added = rtt_report_apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, dst);
    free(out);
    hist_free(dst);
    hist_free(h); /* before a failure, which does not return */
    if (added != (int64_t)big)
        fail_msg("a bucket of %llu values was reported as %lld", (unsigned long long)big,
                 (long long)added);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_known),
        cmocka_unit_test(test_apply_roundtrip),
        cmocka_unit_test(test_encode_all_buckets),
        cmocka_unit_test(test_encode_empty),
        cmocka_unit_test(test_apply_empty_report),
        cmocka_unit_test(test_apply_malformed),
        cmocka_unit_test(test_apply_last_bucket),
        cmocka_unit_test(test_count_above_u32_is_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
