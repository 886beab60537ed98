/* Unit tests for rttreport (src/rttreport.c): RTT_REPORT frames built from a
 * histogram, read back by the frame parser, decoded and recorded onto a
 * histogram with the same bucket counts; malformed payloads and reports
 * that claim more than the connection can have measured refused, each rule
 * at its boundary.
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

static const struct rtt_report_limits no_limits = { UINT64_MAX, UINT64_MAX };

/* Decode with lim, record into dst if accepted. Returns the samples added,
 * or -1 - the reason when refused. */
static int64_t apply(const uint8_t *p, size_t len, const struct rtt_report_limits *lim,
                     struct hist *dst)
{
    struct rtt_report r;
    enum rtt_reject why = rtt_report_decode(p, len, lim, &r);
    if (why != RTT_REPORT_OK)
        return -1 - (int64_t)why;
    rtt_report_record(&r, dst);
    return (int64_t)r.samples;
}

#define REFUSED(why) (-1 - (int64_t)(why))

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
    int64_t added = apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, &no_limits, dst);
    assert_int_equal(added, (int64_t)hist_count(h));
    expect_same_buckets(h, dst);
    /* Applied values are bucket midpoints: within the bucket of the originals. */
    assert_int_equal(hist_bucket_index(hist_min(dst)), hist_bucket_index(hist_min(h)));
    assert_int_equal(hist_bucket_index(hist_max(dst)), hist_bucket_index(hist_max(h)));

    /* Applying again adds: a report is a delta. */
    assert_int_equal(apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, &no_limits, dst), added);
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
    assert_int_equal(apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, &no_limits, dst),
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
    assert_int_equal(apply(p, sizeof p, &no_limits, dst), 0);
    assert_int_equal(hist_count(dst), 0);
    hist_free(dst);
}

/* Malformed payloads: refused as malformed, and dst exactly as before. */
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
        int64_t rc = apply(cases[i].p, cases[i].n, &no_limits, dst);
        if (rc != REFUSED(RTT_REJECT_MALFORMED))
            fail_msg("%s: returned %lld, want malformed", cases[i].what, (long long)rc);
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
    assert_int_equal(apply(p, sizeof p, &no_limits, dst), 256);
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
    int64_t added = apply(out + FRAME_HEADER_SIZE, n - FRAME_HEADER_SIZE, &no_limits, dst);
    free(out);
    hist_free(dst);
    hist_free(h); /* before a failure, which does not return */
    if (added != (int64_t)big)
        fail_msg("a bucket of %llu values was reported as %lld", (unsigned long long)big,
                 (long long)added);
}

/* One entry (bucket, count) as payload bytes. */
#define ENTRY(idx, cnt)                                                                          \
    (uint8_t)((idx) >> 8), (uint8_t)(idx), (uint8_t)((uint32_t)(cnt) >> 24),                       \
        (uint8_t)((uint32_t)(cnt) >> 16), (uint8_t)((uint32_t)(cnt) >> 8), (uint8_t)(cnt)

/* Regression (issue: "one 12-byte RTT report"): the payload 01 08 12ff
 * ffffffff, sent on a fresh connection, was added whole: 4294967295 samples
 * at 4.9 h, and a wrapped sum. It claims more samples than replies and a
 * value above the connection's age: refused, the first rule it breaks. */
static void test_poisoned_report(void **state)
{
    (void)state;
    static const uint8_t p[] = { 0x01, 0x08, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff };
    struct hist *dst = new_hist();
    /* A fresh connection: no reply written, 1 ms old. */
    struct rtt_report_limits fresh = { .max_samples = 0, .max_value = 1000000 };
    assert_int_equal(apply(p, sizeof p, &fresh, dst), REFUSED(RTT_REJECT_TOO_MANY_SAMPLES));
    /* Even after 2^32 replies, a 1 s old connection has no 4.9 h round trip. */
    struct rtt_report_limits busy = { .max_samples = UINT64_C(1) << 32, .max_value = 1000000000 };
    assert_int_equal(apply(p, sizeof p, &busy, dst), REFUSED(RTT_REJECT_VALUE_TOO_LARGE));
    assert_int_equal(hist_count(dst), 0);
    assert_int_equal(hist_sum(dst), 0);
    /* Where it could be true, it is taken, and the sum saturates. */
    struct rtt_report_limits old = { .max_samples = UINT32_MAX, .max_value = UINT64_MAX };
    assert_int_equal(apply(p, sizeof p, &old, dst), UINT32_MAX);
    assert_int_equal(hist_count(dst), UINT32_MAX);
    assert_int_equal(hist_sum(dst), UINT64_MAX);
    hist_free(dst);
}

/* Samples == replies written is accepted; one more is refused. Counts add
 * over entries, repeated buckets included. */
static void test_samples_boundary(void **state)
{
    (void)state;
    static const uint8_t five[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(100, 2), ENTRY(300, 3) };
    static const uint8_t six[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(100, 2), ENTRY(300, 3),
                                   ENTRY(100, 1) };
    static const uint8_t big[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(7, UINT32_MAX),
                                   ENTRY(7, UINT32_MAX) };
    struct rtt_report_limits lim = { .max_samples = 5, .max_value = UINT64_MAX };
    struct hist *dst = new_hist();
    assert_int_equal(apply(five, sizeof five, &lim, dst), 5);
    assert_int_equal(apply(six, sizeof six, &lim, dst), REFUSED(RTT_REJECT_TOO_MANY_SAMPLES));
    lim.max_samples = 6;
    assert_int_equal(apply(six, sizeof six, &lim, dst), 6);
    assert_int_equal(hist_count(dst), 11);
    /* No limit, no wrap: two full 32-bit counts are 2^33 - 2 samples. */
    lim.max_samples = 2 * (uint64_t)UINT32_MAX - 1;
    assert_int_equal(apply(big, sizeof big, &lim, dst), REFUSED(RTT_REJECT_TOO_MANY_SAMPLES));
    lim.max_samples++;
    assert_int_equal(apply(big, sizeof big, &lim, dst), 2 * (int64_t)UINT32_MAX);
    assert_int_equal(atomic_load(&dst->counts[7]), 2 * (uint64_t)UINT32_MAX);
    hist_free(dst);
}

/* A bucket whose lower edge equals the connection's age is accepted, one
 * nanosecond younger refused; zero counts claim nothing. */
static void test_value_boundary(void **state)
{
    (void)state;
    const size_t idx = 2000; /* a log-range bucket: lo < hi */
    uint64_t lo = hist_bucket_lo(idx);
    assert_true(hist_bucket_hi(idx) > lo);
    const uint8_t p[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(5, 1), ENTRY(idx, 1) };
    const uint8_t zero_top[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(5, 1),
                                 ENTRY(HIST_BUCKETS - 1, 0) };
    struct rtt_report_limits lim = { .max_samples = 100, .max_value = lo };
    struct hist *dst = new_hist();
    assert_int_equal(apply(p, sizeof p, &lim, dst), 2);
    lim.max_value = lo - 1;
    assert_int_equal(apply(p, sizeof p, &lim, dst), REFUSED(RTT_REJECT_VALUE_TOO_LARGE));
    lim.max_value = 5;
    assert_int_equal(apply(zero_top, sizeof zero_top, &lim, dst), 1);
    lim.max_value = 4;
    assert_int_equal(apply(zero_top, sizeof zero_top, &lim, dst), REFUSED(RTT_REJECT_VALUE_TOO_LARGE));
    /* Bucket 0 is [0, 0]: valid on a connection of age 0. */
    const uint8_t zero[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(0, 3) };
    lim.max_value = 0;
    assert_int_equal(apply(zero, sizeof zero, &lim, dst), 3);
    assert_int_equal(hist_count(dst), 6);
    hist_free(dst);
}

/* The decoder's maximum: HIST_BUCKETS entries pass, one more is malformed
 * (no encoder writes it, and it would not fit RTT_REPORT_MAX_FRAME). */
static void test_entry_count_limit(void **state)
{
    (void)state;
    size_t len = RTT_REPORT_HEAD + (RTT_REPORT_MAX_ENTRIES + 1) * RTT_REPORT_ENTRY;
    uint8_t *p = calloc(1, len);
    assert_non_null(p);
    p[0] = RTT_REPORT_VERSION;
    p[1] = HIST_SUB_BITS;
    for (size_t i = 0; i < RTT_REPORT_MAX_ENTRIES + 1; i++)
        p[RTT_REPORT_HEAD + i * RTT_REPORT_ENTRY + 5] = 1; /* bucket 0, count 1 */
    struct hist *dst = new_hist();
    assert_int_equal(apply(p, len - RTT_REPORT_ENTRY, &no_limits, dst), RTT_REPORT_MAX_ENTRIES);
    assert_int_equal(apply(p, len, &no_limits, dst), REFUSED(RTT_REJECT_MALFORMED));
    assert_int_equal(hist_count(dst), RTT_REPORT_MAX_ENTRIES);
    free(p);
    hist_free(dst);
}

/* Rules are checked in the documented order: malformed first, then the
 * samples, then the values. */
static void test_rule_order(void **state)
{
    (void)state;
    static const uint8_t bad_then_big[] = { RTT_REPORT_VERSION, HIST_SUB_BITS,
                                            ENTRY(HIST_BUCKETS - 1, 9), ENTRY(HIST_BUCKETS, 1) };
    static const uint8_t both[] = { RTT_REPORT_VERSION, HIST_SUB_BITS, ENTRY(HIST_BUCKETS - 1, 9) };
    struct rtt_report_limits none = { 0, 0 };
    struct hist *dst = new_hist();
    assert_int_equal(apply(bad_then_big, sizeof bad_then_big, &none, dst),
                     REFUSED(RTT_REJECT_MALFORMED));
    assert_int_equal(apply(both, sizeof both, &none, dst), REFUSED(RTT_REJECT_TOO_MANY_SAMPLES));
    hist_free(dst);
}

static void test_reject_tags(void **state)
{
    (void)state;
    assert_string_equal(rtt_reject_tag(RTT_REJECT_MALFORMED), "malformed");
    assert_string_equal(rtt_reject_tag(RTT_REJECT_TOO_MANY_SAMPLES), "too_many_samples");
    assert_string_equal(rtt_reject_tag(RTT_REJECT_VALUE_TOO_LARGE), "value_too_large");
    assert_string_equal(rtt_reject_tag(RTT_REJECT_DISABLED), "disabled");
    assert_string_equal(rtt_reject_tag(RTT_REPORT_OK), "ok");
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
        cmocka_unit_test(test_poisoned_report),
        cmocka_unit_test(test_samples_boundary),
        cmocka_unit_test(test_value_boundary),
        cmocka_unit_test(test_entry_count_limit),
        cmocka_unit_test(test_rule_order),
        cmocka_unit_test(test_reject_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
