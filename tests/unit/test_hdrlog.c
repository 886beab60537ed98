/* Unit tests for hdrlog (src/hdrlog.c): struct hist in HdrHistogram's V2
 * compressed encoding and interval logs. Encoding then decoding gives back
 * every bucket; histograms encoded by the reference JavaScript
 * implementation (hdr-histogram-js 3, the strings below) decode to the same
 * buckets at 2 and 3 significant digits and are refused at 1; tcpmsg's own
 * encoding of the same values holds the reference's counts byte for byte; corrupt
 * input is refused with a reason; a log round-trips, and a bad line is
 * reported with its file and line.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <zlib.h>

#include "tcpmsg/hdrlog.h"

/* hdr-histogram-js: build({ numberOfSignificantValueDigits: D,
 * lowestDiscernibleValue: 1, highestTrackableValue: 2^44 - 1 }), then
 * recordValue of each of SAMPLE_VALUES and recordValueWithCount(5000, 3),
 * then encodeIntoCompressedBase64. */
static const uint64_t SAMPLE_VALUES[] = { 0, 1, 255, 256, 1000, 123456, 99999999 };
static const char JS_DIGITS_1[] = "HISTFAAAAC54nJNpmSzMwMAgwMDAwAjFDBCa/z8IwPhMTDMZmZismVzZJjMyrWdiAgDkkwjY";
static const char JS_DIGITS_2[] =
    "HISTFAAAADV4nJNpmSzMwMAgxMDAwMjAwMDEAAGMDAz8/0EAxmdi+snMxPSRmekgC9tyTqbpwkwAB7sKiw==";
static const char JS_DIGITS_3[] =
    "HISTFAAAADR4nJNpmSzMwMAAwowMDAzMDBDAyMDA/x8EYHwmpp/MTExnuZk+KrOd9mK6OpORCQAZNQvq";
static const char JS_EMPTY[] = "HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==";

static struct hist *sample_hist(void)
{
    struct hist *h = hist_new();
    assert_non_null(h);
    for (size_t i = 0; i < sizeof SAMPLE_VALUES / sizeof SAMPLE_VALUES[0]; i++)
        hist_record(h, SAMPLE_VALUES[i]);
    hist_record_n(h, 5000, 3);
    return h;
}

static uint64_t count_at(const struct hist *h, size_t i)
{
    return atomic_load(&h->counts[i]);
}

static void assert_same_buckets(const struct hist *a, const struct hist *b)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        if (count_at(a, i) != count_at(b, i))
            fail_msg("bucket %zu [%llu, %llu]: %llu vs %llu", i,
                     (unsigned long long)hist_bucket_lo(i), (unsigned long long)hist_bucket_hi(i),
                     (unsigned long long)count_at(a, i), (unsigned long long)count_at(b, i));
    assert_int_equal(hist_count(a), hist_count(b));
}

static struct hist *decoded(const char *b64)
{
    struct hist *h = hist_new();
    assert_non_null(h);
    const char *why = NULL;
    int rc = hdrlog_decode_add(h, b64, strlen(b64), &why);
    if (rc != 0)
        fail_msg("decode: %d (%s)", rc, why ? why : "?");
    return h;
}

/* ---- encoding ---------------------------------------------------------------------------- */

/* One value at the low end of every bucket, with distinct counts: all come
 * back where they were. */
static void test_round_trip_every_bucket(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        hist_record_n(h, hist_bucket_lo(i), 1 + i % 300);
    char *b64 = hdrlog_encode(h);
    assert_non_null(b64);
    struct hist *back = decoded(b64);
    assert_same_buckets(h, back);
    free(b64);
    hist_free(back);
    hist_free(h);
}

/* Counts past 2^56 need the ninth LEB128 byte; a saturated count is
 * written as the largest a signed 64-bit count can be. */
static void test_round_trip_large_counts(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    hist_record_n(h, 77, UINT64_C(1) << 60);
    hist_record_n(h, 5000000, (UINT64_C(1) << 62) + 12345);
    char *b64 = hdrlog_encode(h);
    struct hist *back = decoded(b64);
    assert_int_equal(count_at(back, hist_bucket_index(77)), UINT64_C(1) << 60);
    assert_int_equal(count_at(back, hist_bucket_index(5000000)), (UINT64_C(1) << 62) + 12345);
    free(b64);
    hist_free(back);
    hist_free(h);
}

/* The raw encoding inside a base64 text: the 8-byte compression header
 * dropped, the rest inflated. Returns its length. */
static size_t inflated(const char *b64, uint8_t *out, size_t cap)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[512];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = b64; *p != '\0' && *p != '='; p++) {
        acc = acc << 6 | (uint32_t)(strchr(B64, *p) - B64);
        if ((bits += 6) >= 8) {
            bits -= 8;
            raw[n++] = (uint8_t)(acc >> bits);
        }
    }
    uLongf len = cap;
    assert_int_equal(uncompress(out, &len, raw + 8, n - 8), Z_OK);
    return len;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The same values, encoded by tcpmsg and by the reference implementation:
 * the same bucket counts, byte for byte, under a header that says
 * "V2, zig-zag LEB128, 2 significant digits, lowest 1, highest 2^44-1,
 * ratio 1.0" (the reference writes 1 as the normalizing offset and the
 * ratio as the integer 1, fields a reader of integer histograms ignores). */
static void test_encoding_matches_the_reference(void **state)
{
    (void)state;
    struct hist *h = sample_hist();
    char *b64 = hdrlog_encode(h);
    assert_non_null(b64);
    uint8_t ours[256], ref[256];
    size_t n = inflated(b64, ours, sizeof ours), rn = inflated(JS_DIGITS_2, ref, sizeof ref);
    assert_int_equal(be(ours, 4), 0x1c849313);
    assert_int_equal(be(ours + 4, 4), n - 40);
    assert_int_equal(be(ours + 8, 4), 0);
    assert_int_equal(be(ours + 12, 4), 2);
    assert_int_equal(be(ours + 16, 8), 1);
    assert_int_equal(be(ours + 24, 8), HIST_MAX_VALUE);
    assert_int_equal(be(ours + 32, 8), 0x3ff0000000000000ull); /* 1.0 */
    assert_int_equal(n, rn);
    assert_memory_equal(ours + 40, ref + 40, n - 40);
    assert_memory_equal(ours + 12, ref + 12, 20); /* digits, lowest, highest */
    free(b64);

    hist_reset(h);
    b64 = hdrlog_encode(h);
    n = inflated(b64, ours, sizeof ours);
    rn = inflated(JS_EMPTY, ref, sizeof ref);
    assert_int_equal(n, 40); /* no count at all */
    assert_int_equal(be(ours + 4, 4), 0);
    struct hist *back = decoded(JS_EMPTY);
    assert_int_equal(hist_count(back), 0);
    hist_free(back);
    free(b64);
    hist_free(h);
}

/* ---- decoding ---------------------------------------------------------------------------- */

static void test_decode_reference_two_and_three_digits(void **state)
{
    (void)state;
    struct hist *want = sample_hist();
    struct hist *two = decoded(JS_DIGITS_2);
    assert_same_buckets(want, two);
    /* Finer buckets nest in struct hist's: each lands in the right one. */
    struct hist *three = decoded(JS_DIGITS_3);
    assert_same_buckets(want, three);
    /* Decoding adds. */
    assert_int_equal(hdrlog_decode_add(three, JS_DIGITS_2, strlen(JS_DIGITS_2), NULL), 0);
    assert_int_equal(hist_count(three), 2 * hist_count(want));
    hist_free(want);
    hist_free(two);
    hist_free(three);
}

/* One significant digit: a bucket of it spans several of struct hist's, so
 * it cannot be added exactly. Refused, and nothing is added. */
static void test_decode_refuses_coarser(void **state)
{
    (void)state;
    struct hist *h = sample_hist();
    const char *why = NULL;
    assert_int_equal(hdrlog_decode_add(h, JS_DIGITS_1, strlen(JS_DIGITS_1), &why), -ERANGE);
    assert_non_null(strstr(why, "significant digits"));
    struct hist *want = sample_hist();
    assert_same_buckets(want, h);
    hist_free(want);
    hist_free(h);
}

static void test_decode_refuses_corrupt_input(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    static const struct {
        const char *text, *why;
    } cases[] = {
        { "", "not base64" },
        { "HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw=", "not base64" },
        { "HIST*AAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==", "not base64" },
        { "AAAAAAAAAAAA", "unknown cookie" },
        /* V1's compression cookie, word size 8 (0x1c849382) */
        { "HISTggAAAAAA", "V0 or V1" },
        /* the reference string cut short: the deflate length says more */
        { "HISTFAAAADV4nJNpmSzMwMAgxMDAwMjAwMDEAAGMDAz8", "cut short" },
        /* the deflate stream damaged: one base64 character changed */
        { "HISTFAAAADV4nJNpmSzMwMAgxMDAwMjAwMDEAAGMDAz8/0EAxmdi+snMxPSRmekgC9tyTqbpwkwAB7sKia==",
          "corrupt" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        int rc = hdrlog_decode_add(h, cases[i].text, strlen(cases[i].text), &why);
        if (rc != -EINVAL || why == NULL || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: rc %d, why \"%s\", want -EINVAL and \"%s\"", i, rc,
                     why ? why : "(null)", cases[i].why);
    }
    assert_int_equal(hist_count(h), 0);
    hist_free(h);
}

/* Every strict prefix of a valid text is refused, never read past its end. */
static void test_decode_every_prefix_refused(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_non_null(h);
    for (size_t n = 0; n < strlen(JS_DIGITS_2); n++)
        assert_true(hdrlog_decode_add(h, JS_DIGITS_2, n, NULL) < 0);
    assert_int_equal(hist_count(h), 0);
    hist_free(h);
}

/* ---- hostile encodings: valid zlib, wrong contents ---------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The base64 text of a V2 compressed histogram with these header fields and
 * payload bytes (payload_len as given, whatever the payload's real size). */
static char *forge(uint32_t digits, uint64_t lowest, uint64_t highest, uint32_t payload_len,
                   const uint8_t *payload, size_t n)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t enc[40 + 64];
    assert_true(n <= 64);
    put_be(enc, 0x1c849313, 4);
    put_be(enc + 4, payload_len, 4);
    put_be(enc + 8, 0, 4);
    put_be(enc + 12, digits, 4);
    put_be(enc + 16, lowest, 8);
    put_be(enc + 24, highest, 8);
    put_be(enc + 32, 0x3ff0000000000000ull, 8);
    memcpy(enc + 40, payload, n);
    uint8_t raw[8 + 256];
    uLongf zlen = sizeof raw - 8;
    assert_int_equal(compress(raw + 8, &zlen, enc, 40 + n), Z_OK);
    put_be(raw, 0x1c849314, 4);
    put_be(raw + 4, zlen, 4);
    size_t total = 8 + zlen;
    char *out = malloc((total + 2) / 3 * 4 + 1);
    assert_non_null(out);
    char *o = out;
    for (size_t i = 0; i < total; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (i + 1 < total ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < total ? raw[i + 2] : 0);
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < total ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < total ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Every check a hostile log can reach, each with a valid deflate stream
 * around it; nothing is added by any of them. And the 9-byte LEB128 of a
 * count above 2^56 is read whole. */
static void test_decode_refuses_hostile_contents(void **state)
{
    (void)state;
    const uint64_t top = HIST_MAX_VALUE;
    /* zig-zag LEB128: 2 is the count 1; 0x9f 0x9c 0x01 (19999) a run of
     * 10,000 empty buckets, past the end of any 2-digit histogram; nine 0xff
     * the run of INT64_MIN empty buckets; 0x80 alone a cut value. */
    static const uint8_t one[] = { 2 };
    static const uint8_t long_run[] = { 0x9f, 0x9c, 0x01 }; /* -10000 */
    static const uint8_t min_run[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t cut[] = { 0x80 };
    static const struct {
        uint32_t digits;
        uint64_t lowest, highest;
        int32_t len_delta; /* payload_len - real length */
        const uint8_t *payload;
        size_t n;
        int rc;
        const char *why;
    } cases[] = {
        { 6, 1, 1000000, 0, one, 1, -EINVAL, "out of range" },
        { 2, 0, 1000000, 0, one, 1, -EINVAL, "out of range" },
        { 2, 1, 1, 0, one, 1, -EINVAL, "out of range" },
        { 2, UINT64_C(1) << 62, UINT64_MAX, 0, one, 1, -EINVAL, "out of range" },
        { 2, 1, top, 5, one, 1, -EINVAL, "corrupt or of another length" },
        { 2, 1, top, -1, one, 1, -EINVAL, "corrupt or of another length" },
        { 2, 1, top, 0, long_run, 3, -EINVAL, "past the histogram's end" },
        { 2, 1, top, 0, min_run, 9, -EINVAL, "past the histogram's end" },
        { 2, 1, top, 0, cut, 1, -EINVAL, "runs past the end" },
        { 2, 1, top, 1 << 30, one, 1, -EINVAL, "longer than" },
    };
    struct hist *h = hist_new();
    assert_non_null(h);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b64 = forge(cases[i].digits, cases[i].lowest, cases[i].highest,
                          (uint32_t)((int32_t)cases[i].n + cases[i].len_delta), cases[i].payload,
                          cases[i].n);
        const char *why = NULL;
        int rc = hdrlog_decode_add(h, b64, strlen(b64), &why);
        if (rc != cases[i].rc || why == NULL || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: rc %d (%s), want %d (%s)", i, rc, why ? why : "-", cases[i].rc,
                     cases[i].why);
        free(b64);
    }
    assert_int_equal(hist_count(h), 0);

    /* Three empty buckets (zig-zag(-3) is 5), then 2^60 + 5 at bucket 3:
     * zig-zag doubles it past 2^56, so its LEB128 takes all nine bytes. */
    uint8_t big[10];
    uint64_t zz = ((UINT64_C(1) << 60) + 5) << 1;
    size_t n = 0;
    big[n++] = 5;
    for (int k = 0; k < 8; k++, zz >>= 7)
        big[n++] = (uint8_t)(zz | 0x80);
    big[n++] = (uint8_t)zz;
    char *b64 = forge(2, 1, top, (uint32_t)n, big, n);
    const char *why = NULL;
    assert_int_equal(hdrlog_decode_add(h, b64, strlen(b64), &why), 0);
    assert_int_equal(atomic_load(&h->counts[3]), (UINT64_C(1) << 60) + 5);
    free(b64);
    hist_free(h);
}

/* ---- logs -------------------------------------------------------------------------------- */

static void test_log_round_trip(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    struct hist *a = sample_hist(), *b = hist_new();
    hist_record_n(b, 2500000, 7);
    assert_int_equal(hdrlog_write_header(f, 1800000000.25, "nanoseconds"), 0);
    assert_int_equal(hdrlog_write_interval(f, "corrected", 0, 1, a, 1e6), 0);
    assert_int_equal(hdrlog_write_interval(f, NULL, 1, 1.5, b, 1e6), 0);
    rewind(f);

    struct hdrlog_reader r;
    hdrlog_reader_init(&r, f, "test.hlog");
    struct hdrlog_interval iv;
    struct hist *all = hist_new();
    assert_int_equal(hdrlog_read_interval(&r, &iv, all), 1);
    assert_string_equal(iv.tag, "corrected");
    assert_true(fabs(iv.start_s - 1800000000.25) < 1e-6);
    assert_true(fabs(iv.length_s - 1) < 1e-9);
    assert_true(fabs(iv.max - 99.999999) < 0.001); /* 99999999 ns in ms, 3 decimals */
    assert_int_equal(hdrlog_read_interval(&r, &iv, all), 1);
    assert_string_equal(iv.tag, "");
    assert_true(fabs(iv.start_s - 1800000001.25) < 1e-6);
    assert_true(fabs(iv.length_s - 1.5) < 1e-9);
    assert_int_equal(hdrlog_read_interval(&r, &iv, all), 0);
    assert_true(fabs(r.start_s - 1800000000.25) < 1e-6);

    hist_merge(a, b);
    assert_same_buckets(a, all);
    hdrlog_reader_free(&r);
    fclose(f);
    hist_free(a);
    hist_free(b);
    hist_free(all);
}

/* A line that is not an interval, or whose histogram is corrupt: an error
 * naming the file and the line, never a line skipped. */
static void test_log_bad_line_named(void **state)
{
    (void)state;
    static const struct {
        const char *line, *why;
    } cases[] = {
        { "0.000,1.000,2.000\n", "not an interval line" },
        { "Tag=x,0.000,one,2.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==\n",
          "not an interval line" },
        { "0.000,1.000,2.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw\n", "not base64" },
        { "Tag=slow,0.000,1.000,2.000,HISTFAAAAC54nJNpmSzMwMAgwMDAwAjFDBCa/z8IwPhMTDMZmZismVzZJjMy"
          "rWdiAgDkkwjY\n",
          "significant digits" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = tmpfile();
        assert_non_null(f);
        fputs("#[StartTime: 1800000000.000 (seconds since epoch)]\n", f);
        fputs("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n", f);
        fputs("0.000,1.000,0.000,HISTFAAAAB14nJNpmSzMwMDACMVMDBDAyMDA/x8E4HwAb6kGVw==\n", f);
        fputs(cases[i].line, f);
        rewind(f);
        struct hdrlog_reader r;
        hdrlog_reader_init(&r, f, "gen3.hlog");
        struct hdrlog_interval iv;
        struct hist *h = hist_new();
        assert_int_equal(hdrlog_read_interval(&r, &iv, h), 1);
        int rc = hdrlog_read_interval(&r, &iv, h);
        if (rc >= 0 || strncmp(r.error, "gen3.hlog:4: ", 13) != 0 || strstr(r.error, cases[i].why) == NULL)
            fail_msg("case %zu: rc %d, error \"%s\"", i, rc, r.error);
        hdrlog_reader_free(&r);
        hist_free(h);
        fclose(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_bucket),
        cmocka_unit_test(test_round_trip_large_counts),
        cmocka_unit_test(test_encoding_matches_the_reference),
        cmocka_unit_test(test_decode_reference_two_and_three_digits),
        cmocka_unit_test(test_decode_refuses_coarser),
        cmocka_unit_test(test_decode_refuses_corrupt_input),
        cmocka_unit_test(test_decode_every_prefix_refused),
        cmocka_unit_test(test_decode_refuses_hostile_contents),
        cmocka_unit_test(test_log_round_trip),
        cmocka_unit_test(test_log_bad_line_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
