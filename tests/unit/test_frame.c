/* Unit tests for frame: the framed and text parsers (every strict prefix is
 * incomplete, byte-at-a-time feeding equals one-shot, boundary sizes), header
 * and error-frame encoding, mode detection and the error-code tables.
 *
 * Tests of known, still-open bugs are skipped unless TCPMSG_KNOWN_BUGS=1 is
 * set in the environment, so the suite stays green until they are fixed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tcpmsg/frame.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_MSGS 64

/* What one parse produced, copied out of the (possibly moving) buffer. */
struct parsed {
    uint8_t type;
    size_t len;
    uint8_t *data;
};

struct parsed_list {
    struct parsed msg[MAX_MSGS];
    size_t n;
};

static void list_add(struct parsed_list *l, const struct frame *f)
{
    assert_true(l->n < MAX_MSGS);
    struct parsed *p = &l->msg[l->n++];
    p->type = f->type;
    p->len = f->len;
    p->data = malloc(f->len + 1); /* +1: malloc(0) may return NULL */
    assert_non_null(p->data);
    if (f->len > 0)
        memcpy(p->data, f->payload, f->len);
}

static void list_free(struct parsed_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->msg[i].data);
    l->n = 0;
}

static void assert_lists_equal(const struct parsed_list *a, const struct parsed_list *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->msg[i].type, b->msg[i].type);
        assert_int_equal(a->msg[i].len, b->msg[i].len);
        assert_memory_equal(a->msg[i].data, b->msg[i].data, a->msg[i].len);
    }
}

static bool known_bugs_enabled(void)
{
    const char *v = getenv("TCPMSG_KNOWN_BUGS");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Write a frame (header + payload) at out; returns its size. */
static size_t put_frame(uint8_t *out, uint8_t type, const void *payload, size_t len)
{
    frame_header_encode(out, type, len);
    if (len > 0)
        memcpy(out + FRAME_HEADER_SIZE, payload, len);
    return FRAME_HEADER_SIZE + len;
}

/* ---- framed mode --------------------------------------------------------- */

static void test_valid_frames_parse(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 5, 255, 256, 300, 65536 };
    uint8_t *buf = malloc(FRAME_HEADER_SIZE + 65536);
    assert_non_null(buf);
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        memset(buf + FRAME_HEADER_SIZE, (int)('a' + i), lens[i]);
        size_t n = put_frame(buf, FRAME_DATA, buf + FRAME_HEADER_SIZE, lens[i]);
        struct frame f;
        assert_int_equal(frame_parse(buf, n, 65536, false, &f), (ssize_t)n);
        assert_int_equal(f.type, FRAME_DATA);
        assert_int_equal(f.len, lens[i]);
        assert_ptr_equal(f.payload, buf + FRAME_HEADER_SIZE); /* zero-copy */
    }
    free(buf);
}

static void test_every_strict_prefix_is_incomplete(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 7, 300 };
    static const uint8_t types[] = { 0x00, 0x01, 0x02, 0x07 };
    uint8_t buf[FRAME_HEADER_SIZE + 300];
    for (size_t t = 0; t < ARRAY_LEN(types); t++) {
        for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
            memset(buf + FRAME_HEADER_SIZE, 'x', lens[i]);
            size_t n = put_frame(buf, types[t], buf + FRAME_HEADER_SIZE, lens[i]);
            bool allow = types[t] != FRAME_DATA;
            for (size_t k = 0; k < n; k++) {
                struct frame f;
                assert_int_equal(frame_parse(buf, k, 300, allow, &f), FRAME_INCOMPLETE);
            }
            struct frame f;
            assert_int_equal(frame_parse(buf, n, 300, allow, &f), (ssize_t)n);
        }
    }
}

static void test_bad_type_is_rejected_at_one_byte(void **state)
{
    (void)state;
    uint8_t buf[FRAME_HEADER_SIZE + 3];
    size_t n = put_frame(buf, 0x08, "abc", 3);
    struct frame f;
    assert_int_equal(frame_parse(buf, 0, 100, true, &f), FRAME_INCOMPLETE);
    for (size_t k = 1; k <= n; k++)
        assert_int_equal(frame_parse(buf, k, 100, true, &f), FRAME_BAD_TYPE);
    buf[0] = 0x03; /* a control type when control frames are not allowed */
    for (size_t k = 1; k <= n; k++)
        assert_int_equal(frame_parse(buf, k, 100, false, &f), FRAME_BAD_TYPE);
}

/* Feeds stream one byte at a time into a buffer that grows by realloc, parsing
 * after every byte and consuming what parsed (as a connection does). Returns
 * the last non-positive status. */
static ssize_t feed_framed(const uint8_t *stream, size_t n, size_t max, bool allow,
                           struct parsed_list *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    ssize_t r = FRAME_INCOMPLETE;
    for (size_t i = 0; i < n; i++) {
        uint8_t *grown = realloc(buf, len + 1);
        assert_non_null(grown);
        buf = grown;
        buf[len++] = stream[i];
        struct frame f;
        while ((r = frame_parse(buf, len, max, allow, &f)) > 0) {
            list_add(out, &f);
            memmove(buf, buf + r, len - (size_t)r);
            len -= (size_t)r;
        }
        if (r != FRAME_INCOMPLETE)
            break;
    }
    free(buf);
    return r;
}

static ssize_t parse_all_framed(const uint8_t *buf, size_t n, size_t max, bool allow,
                                struct parsed_list *out)
{
    size_t pos = 0;
    ssize_t r;
    struct frame f;
    while ((r = frame_parse(buf + pos, n - pos, max, allow, &f)) > 0) {
        list_add(out, &f);
        pos += (size_t)r;
    }
    return r;
}

static void test_byte_at_a_time_equals_one_shot(void **state)
{
    (void)state;
    uint8_t stream[1024];
    size_t n = 0;
    n += put_frame(stream + n, FRAME_DATA, "hello", 5);
    n += put_frame(stream + n, FRAME_DATA, "", 0);
    n += put_frame(stream + n, 0x01, "\x02oops", 5);
    n += put_frame(stream + n, 0x07, "\0\n\r\xff", 4);
    uint8_t big[600];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    n += put_frame(stream + n, FRAME_DATA, big, sizeof big);
    n += put_frame(stream + n, FRAME_DATA, "x", 1);

    struct parsed_list one = { .n = 0 }, bytes = { .n = 0 };
    assert_int_equal(parse_all_framed(stream, n, 600, true, &one), FRAME_INCOMPLETE);
    assert_int_equal(feed_framed(stream, n, 600, true, &bytes), FRAME_INCOMPLETE);
    assert_int_equal(one.n, 6);
    assert_lists_equal(&one, &bytes);
    assert_int_equal(one.msg[2].type, 0x01);
    assert_int_equal(one.msg[4].len, 600);
    assert_memory_equal(one.msg[4].data, big, sizeof big);
    list_free(&one);
    list_free(&bytes);
}

static void test_byte_at_a_time_stops_at_the_same_error(void **state)
{
    (void)state;
    uint8_t stream[64];
    size_t n = 0;
    n += put_frame(stream + n, FRAME_DATA, "ok", 2);
    n += put_frame(stream + n, FRAME_DATA, "0123456789", 10); /* over max 8 */
    n += put_frame(stream + n, FRAME_DATA, "never", 5);
    struct parsed_list one = { .n = 0 }, bytes = { .n = 0 };
    assert_int_equal(parse_all_framed(stream, n, 8, false, &one), FRAME_TOO_LARGE);
    assert_int_equal(feed_framed(stream, n, 8, false, &bytes), FRAME_TOO_LARGE);
    assert_int_equal(one.n, 1);
    assert_lists_equal(&one, &bytes);
    list_free(&one);
    list_free(&bytes);
}

static void test_several_frames_back_to_back(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t a = put_frame(buf, FRAME_DATA, "one", 3);
    size_t b = put_frame(buf + a, FRAME_DATA, "", 0);
    size_t c = put_frame(buf + a + b, FRAME_DATA, "three", 5);
    size_t total = a + b + c;
    struct frame f;

    assert_int_equal(frame_parse(buf, total, 100, false, &f), (ssize_t)a);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.payload, "one", 3);
    assert_int_equal(frame_parse(buf + a, total - a, 100, false, &f), (ssize_t)b);
    assert_int_equal(f.len, 0);
    assert_int_equal(frame_parse(buf + a + b, total - a - b, 100, false, &f), (ssize_t)c);
    assert_memory_equal(f.payload, "three", 5);
    /* A truncated third frame: the first two still parse, then incomplete. */
    assert_int_equal(frame_parse(buf + a + b, c - 1, 100, false, &f), FRAME_INCOMPLETE);
}

static void test_payload_length_boundaries(void **state)
{
    (void)state;
    enum { MAX = 1024 };
    static uint8_t buf[FRAME_HEADER_SIZE + MAX + 1];
    struct frame f;

    size_t n = put_frame(buf, FRAME_DATA, NULL, 0);
    assert_int_equal(frame_parse(buf, n, MAX, false, &f), FRAME_HEADER_SIZE);
    assert_int_equal(f.len, 0);

    frame_header_encode(buf, FRAME_DATA, MAX);
    assert_int_equal(frame_parse(buf, FRAME_HEADER_SIZE + MAX, MAX, false, &f),
                     FRAME_HEADER_SIZE + MAX);
    assert_int_equal(f.len, MAX);

    /* max+1: rejected from the 4-byte header, before any payload... */
    frame_header_encode(buf, FRAME_DATA, MAX + 1);
    assert_int_equal(frame_parse(buf, FRAME_HEADER_SIZE, MAX, false, &f), FRAME_TOO_LARGE);
    /* ...but not before the header is whole: the length is not known yet. */
    for (size_t k = 0; k < FRAME_HEADER_SIZE; k++)
        assert_int_equal(frame_parse(buf, k, MAX, false, &f), FRAME_INCOMPLETE);
    assert_int_equal(frame_parse(buf, sizeof buf, MAX, false, &f), FRAME_TOO_LARGE);

    /* max of 0: only empty frames. */
    frame_header_encode(buf, FRAME_DATA, 1);
    assert_int_equal(frame_parse(buf, FRAME_HEADER_SIZE, 0, false, &f), FRAME_TOO_LARGE);
}

static void test_absolute_limit_of_24_bits(void **state)
{
    (void)state;
    size_t n = FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD_LIMIT;
    uint8_t *buf = calloc(1, n);
    assert_non_null(buf);
    frame_header_encode(buf, FRAME_DATA, FRAME_MAX_PAYLOAD_LIMIT);
    assert_int_equal(buf[1], 0xff);
    assert_int_equal(buf[2], 0xff);
    assert_int_equal(buf[3], 0xff);
    struct frame f;
    assert_int_equal(frame_parse(buf, FRAME_HEADER_SIZE, FRAME_MAX_PAYLOAD_LIMIT, false, &f),
                     FRAME_INCOMPLETE);
    assert_int_equal(frame_parse(buf, n - 1, FRAME_MAX_PAYLOAD_LIMIT, false, &f),
                     FRAME_INCOMPLETE);
    assert_int_equal(frame_parse(buf, n, FRAME_MAX_PAYLOAD_LIMIT, false, &f), (ssize_t)n);
    assert_int_equal(f.len, FRAME_MAX_PAYLOAD_LIMIT);
    /* One below the absolute limit as max: the 24-bit maximum is too large. */
    assert_int_equal(frame_parse(buf, FRAME_HEADER_SIZE, FRAME_MAX_PAYLOAD_LIMIT - 1, false, &f),
                     FRAME_TOO_LARGE);
    free(buf);
}

static void test_type_byte_policy(void **state)
{
    (void)state;
    for (unsigned t = 0; t <= 0xff; t++) {
        uint8_t buf[FRAME_HEADER_SIZE + 2];
        size_t n = put_frame(buf, (uint8_t)t, "hi", 2);
        struct frame f;
        ssize_t strict = frame_parse(buf, n, 100, false, &f);
        ssize_t control = frame_parse(buf, n, 100, true, &f);
        if (t == FRAME_DATA) {
            assert_int_equal(strict, (ssize_t)n);
            assert_int_equal(control, (ssize_t)n);
        } else if (t < FRAME_TYPE_LIMIT) { /* ERROR and reserved 0x02..0x07 */
            assert_int_equal(strict, FRAME_BAD_TYPE);
            assert_int_equal(control, (ssize_t)n);
            assert_int_equal(f.type, t);
        } else {
            assert_int_equal(strict, FRAME_BAD_TYPE);
            assert_int_equal(control, FRAME_BAD_TYPE);
        }
    }
}

static void test_header_round_trip(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 0xff, 0x100, 0xffff, 0x10000, 0xabcdef,
                                   FRAME_MAX_PAYLOAD_LIMIT };
    for (unsigned t = 0; t < FRAME_TYPE_LIMIT; t++) {
        for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
            uint8_t h[FRAME_HEADER_SIZE];
            size_t len = lens[i];
            frame_header_encode(h, (uint8_t)t, len);
            assert_int_equal(h[0], t);
            assert_int_equal(((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3], len);
            /* The parser decodes the same length: len is allowed, len-1 is not. */
            struct frame f;
            ssize_t r = frame_parse(h, sizeof h, len, true, &f);
            if (len == 0) {
                assert_int_equal(r, FRAME_HEADER_SIZE);
                assert_int_equal(f.type, t);
            } else {
                assert_int_equal(r, FRAME_INCOMPLETE);
                assert_int_equal(frame_parse(h, sizeof h, len - 1, true, &f), FRAME_TOO_LARGE);
            }
        }
    }
}

/* ---- error frames -------------------------------------------------------- */

static void test_error_frame_encoding(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = frame_error_encode(buf, sizeof buf, FRAME_ERR_OVERSIZE, "too big");
    static const uint8_t want[] = { 0x01, 0, 0, 8, 0x01, 't', 'o', 'o', ' ', 'b', 'i', 'g' };
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);

    /* It parses back as an ERROR frame (accepted when control is allowed). */
    struct frame f;
    assert_int_equal(frame_parse(buf, n, 100, true, &f), (ssize_t)n);
    assert_int_equal(f.type, FRAME_ERROR);
    assert_int_equal(f.payload[0], FRAME_ERR_OVERSIZE);
    assert_memory_equal(f.payload + 1, "too big", 7);

    n = frame_error_encode(buf, sizeof buf, FRAME_ERR_TIMEOUT, "");
    assert_int_equal(n, 5);
    assert_int_equal(buf[3], 1);
    assert_int_equal(buf[4], FRAME_ERR_TIMEOUT);
}

static void test_error_frame_truncates_to_cap(void **state)
{
    (void)state;
    const char *reason = "server is shutting down";
    size_t rlen = strlen(reason);
    for (size_t cap = 5; cap <= rlen + 8; cap++) {
        uint8_t *buf = malloc(cap); /* exact size, so ASan sees any overrun */
        assert_non_null(buf);
        size_t n = frame_error_encode(buf, cap, FRAME_ERR_BUSY, reason);
        size_t shown = cap - 5 < rlen ? cap - 5 : rlen;
        assert_int_equal(n, 5 + shown);
        assert_true(n <= cap);
        struct frame f;
        assert_int_equal(frame_parse(buf, n, FRAME_MAX_PAYLOAD_LIMIT, true, &f), (ssize_t)n);
        assert_int_equal(f.len, 1 + shown);
        assert_int_equal(f.payload[0], FRAME_ERR_BUSY);
        assert_memory_equal(f.payload + 1, reason, shown);
        free(buf);
    }
}

static void test_error_code_tables(void **state)
{
    (void)state;
    /* Every code of the X-macro list maps to its own tag and text. */
    static const struct { int code; const char *tag; const char *text; } codes[] = {
#define ROW(name, value, tag, text) { name, tag, text },
        FRAME_ERROR_CODES(ROW)
#undef ROW
    };
    int highest = 0;
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        assert_true(codes[i].code > 0 && codes[i].code <= 0xff); /* fits the code byte */
        assert_string_equal(frame_error_tag(codes[i].code), codes[i].tag);
        assert_string_equal(frame_error_text(codes[i].code), codes[i].text);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
            assert_string_not_equal(codes[i].tag, codes[j].tag);
        }
        if (codes[i].code > highest)
            highest = codes[i].code;
    }
    /* The wire values docs/PROTOCOL.md fixes. */
    assert_string_equal(frame_error_tag(1), "oversize");
    assert_string_equal(frame_error_tag(2), "bad_type");
    assert_string_equal(frame_error_tag(3), "timeout");
    assert_string_equal(frame_error_tag(4), "busy");
    assert_string_equal(frame_error_tag(5), "per_ip");

    static const int unknown[] = { 0, -1, 255, 1000 };
    for (size_t i = 0; i < ARRAY_LEN(unknown); i++) {
        assert_string_equal(frame_error_tag(unknown[i]), "unknown");
        assert_string_equal(frame_error_text(unknown[i]), "unknown error");
    }
    assert_string_equal(frame_error_tag(highest + 1), "unknown");
    assert_string_equal(frame_error_text(highest + 1), "unknown error");
}

/* ---- mode detection ------------------------------------------------------ */

static void test_detect_mode_by_first_byte(void **state)
{
    (void)state;
    for (unsigned b = 0; b <= 0xff; b++) {
        enum frame_mode want = b <= 0x07 ? FRAME_MODE_FRAMED : FRAME_MODE_TEXT;
        assert_int_equal(frame_detect_mode((uint8_t)b), want);
    }
    assert_string_equal(frame_mode_name(FRAME_MODE_FRAMED), "framed");
    assert_string_equal(frame_mode_name(FRAME_MODE_TEXT), "text");
    assert_string_equal(frame_mode_name(FRAME_MODE_UNKNOWN), "unknown");
    assert_string_equal(frame_mode_name((enum frame_mode)42), "unknown");
}

/* ---- text mode ----------------------------------------------------------- */

static ssize_t parse_line(const char *s, size_t n, size_t max, bool eof, struct frame *f)
{
    size_t scanned = 0;
    return frame_parse_line((const uint8_t *)s, n, max, eof, &scanned, f);
}

static void test_line_endings(void **state)
{
    (void)state;
    static const struct { const char *in; ssize_t consumed; size_t len; } cases[] = {
        { "hello\n", 6, 5 },
        { "hello\r\n", 7, 5 },
        { "\n", 1, 0 },
        { "\r\n", 2, 0 },
        { "a\rb\n", 4, 3 },      /* a CR not before LF is data */
        { "a\r\r\n", 4, 2 },     /* only one CR is dropped */
        { "one\ntwo\n", 4, 3 },  /* stops at the first LF */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct frame f;
        const char *in = cases[i].in;
        assert_int_equal(parse_line(in, strlen(in), 100, false, &f), cases[i].consumed);
        assert_int_equal(f.type, FRAME_DATA);
        assert_int_equal(f.len, cases[i].len);
        assert_ptr_equal(f.payload, (const uint8_t *)in);
    }
}

static void test_line_every_strict_prefix_is_incomplete(void **state)
{
    (void)state;
    static const char *const lines[] = { "hello\n", "hello\r\n", "\n", "\r\n", "a\rb\n" };
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        size_t n = strlen(lines[i]);
        size_t carried = 0;
        for (size_t k = 0; k < n; k++) {
            struct frame f;
            /* Fresh, and with the hint carried from the previous prefix. */
            assert_int_equal(parse_line(lines[i], k, 100, false, &f), FRAME_INCOMPLETE);
            assert_int_equal(frame_parse_line((const uint8_t *)lines[i], k, 100, false,
                                              &carried, &f),
                             FRAME_INCOMPLETE);
            assert_int_equal(carried, k);
        }
        struct frame f;
        assert_int_equal(frame_parse_line((const uint8_t *)lines[i], n, 100, false, &carried, &f),
                         (ssize_t)n);
        assert_int_equal(carried, 0);
    }
}

/* Feeds text one byte at a time, keeping the *scanned hint across calls as a
 * connection does, then signals eof. Returns the last non-positive status. */
static ssize_t feed_text(const char *stream, size_t n, size_t max, struct parsed_list *out)
{
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t len = 0, scanned = 0;
    ssize_t r = FRAME_INCOMPLETE;
    for (size_t i = 0; i <= n && r == FRAME_INCOMPLETE; i++) {
        bool eof = i == n;
        if (!eof)
            buf[len++] = (uint8_t)stream[i];
        struct frame f;
        while ((r = frame_parse_line(buf, len, max, eof, &scanned, &f)) > 0) {
            list_add(out, &f);
            memmove(buf, buf + r, len - (size_t)r);
            len -= (size_t)r;
        }
    }
    free(buf);
    return r;
}

static ssize_t parse_all_text(const char *s, size_t n, size_t max, struct parsed_list *out)
{
    size_t pos = 0, scanned = 0;
    ssize_t r;
    struct frame f;
    while ((r = frame_parse_line((const uint8_t *)s + pos, n - pos, max, true, &scanned, &f)) > 0) {
        list_add(out, &f);
        pos += (size_t)r;
    }
    return r;
}

static void test_line_byte_at_a_time_equals_one_shot(void **state)
{
    (void)state;
    static const char stream[] = "first\r\n\nsecond line\nnul\0inside\r\n\r\nlast, unterminated";
    size_t n = sizeof stream - 1;
    struct parsed_list one = { .n = 0 }, bytes = { .n = 0 };
    assert_int_equal(parse_all_text(stream, n, 64, &one), FRAME_INCOMPLETE);
    assert_int_equal(feed_text(stream, n, 64, &bytes), FRAME_INCOMPLETE);
    assert_lists_equal(&one, &bytes);

    static const char *const want[] = { "first", "", "second line", "nul\0inside", "",
                                        "last, unterminated" };
    static const size_t want_len[] = { 5, 0, 11, 10, 0, 18 };
    assert_int_equal(one.n, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        assert_int_equal(one.msg[i].len, want_len[i]);
        assert_memory_equal(one.msg[i].data, want[i], want_len[i]);
    }
    list_free(&one);
    list_free(&bytes);
}

static void test_line_too_long_is_found_as_soon_as_possible(void **state)
{
    (void)state;
    enum { MAX = 8 };
    static const char stream[] = "ok\n0123456789abcdef\nnever\n";
    struct parsed_list one = { .n = 0 }, bytes = { .n = 0 };
    assert_int_equal(parse_all_text(stream, sizeof stream - 1, MAX, &one), FRAME_TOO_LARGE);
    assert_int_equal(feed_text(stream, sizeof stream - 1, MAX, &bytes), FRAME_TOO_LARGE);
    assert_int_equal(one.n, 1);
    assert_lists_equal(&one, &bytes);
    list_free(&one);
    list_free(&bytes);

    /* Fed byte by byte, the line is refused at max+1 bytes, not later. */
    const char *line = "0123456789abcdef";
    size_t scanned = 0;
    for (size_t k = 1; k <= strlen(line); k++) {
        struct frame f;
        ssize_t r = frame_parse_line((const uint8_t *)line, k, MAX, false, &scanned, &f);
        assert_int_equal(r, k <= MAX ? FRAME_INCOMPLETE : FRAME_TOO_LARGE);
    }
}

static void test_line_length_boundaries(void **state)
{
    (void)state;
    enum { MAX = 8 };
    static const struct {
        const char *in;
        bool eof;
        ssize_t want; /* consumed bytes or a status */
        size_t len;
    } cases[] = {
        { "12345678\n", false, 9, 8 },            /* exactly max */
        { "12345678\r\n", false, 10, 8 },         /* exactly max, CRLF */
        { "12345678", false, FRAME_INCOMPLETE, 0 },
        { "12345678\r", false, FRAME_INCOMPLETE, 0 }, /* the CR may be CRLF's */
        { "12345678", true, 8, 8 },               /* max, unterminated at eof */
        { "123456789\n", false, FRAME_TOO_LARGE, 0 },   /* max+1, after the LF */
        { "123456789\r\n", false, FRAME_TOO_LARGE, 0 },
        { "123456789", false, FRAME_TOO_LARGE, 0 },     /* max+1, before the LF */
        { "123456789", true, FRAME_TOO_LARGE, 0 },
        { "12345678\rx", false, FRAME_TOO_LARGE, 0 },   /* that CR was data */
        { "1234567890", false, FRAME_TOO_LARGE, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct frame f;
        ssize_t r = parse_line(cases[i].in, strlen(cases[i].in), MAX, cases[i].eof, &f);
        assert_int_equal(r, cases[i].want);
        if (r > 0)
            assert_int_equal(f.len, cases[i].len);
    }
}

static void test_line_max_of_zero(void **state)
{
    (void)state;
    struct frame f;
    assert_int_equal(parse_line("\n", 1, 0, false, &f), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(parse_line("\r\n", 2, 0, false, &f), 2);
    assert_int_equal(f.len, 0);
    assert_int_equal(parse_line("\r", 1, 0, false, &f), FRAME_INCOMPLETE);
    assert_int_equal(parse_line("a", 1, 0, false, &f), FRAME_TOO_LARGE);
    assert_int_equal(parse_line("a\n", 2, 0, false, &f), FRAME_TOO_LARGE);
}

static void test_line_at_eof(void **state)
{
    (void)state;
    struct frame f;
    /* Nothing buffered at eof is not a message. */
    assert_int_equal(parse_line("", 0, 100, true, &f), FRAME_INCOMPLETE);
    /* A final line without LF is one. */
    assert_int_equal(parse_line("Hello from client!", 18, 100, true, &f), 18);
    assert_int_equal(f.len, 18);
    assert_memory_equal(f.payload, "Hello from client!", 18);
    /* A complete line is returned alone even at eof; the rest comes next call. */
    assert_int_equal(parse_line("a\nb", 3, 100, true, &f), 2);
    assert_int_equal(f.len, 1);
    /* The hint is reset after an eof line too. */
    size_t scanned = 0;
    assert_int_equal(frame_parse_line((const uint8_t *)"abc", 3, 100, false, &scanned, &f),
                     FRAME_INCOMPLETE);
    assert_int_equal(scanned, 3);
    assert_int_equal(frame_parse_line((const uint8_t *)"abc", 3, 100, true, &scanned, &f), 3);
    assert_int_equal(scanned, 0);
}

static void test_line_with_nul_bytes(void **state)
{
    (void)state;
    static const char in[] = "a\0b\0\r\n";
    struct frame f;
    assert_int_equal(parse_line(in, sizeof in - 1, 100, false, &f), 6);
    assert_int_equal(f.len, 4);
    assert_memory_equal(f.payload, "a\0b\0", 4);
    static const char only[] = "\0\0\0";
    assert_int_equal(parse_line(only, 3, 100, false, &f), FRAME_INCOMPLETE);
    assert_int_equal(parse_line(only, 3, 100, true, &f), 3);
    assert_int_equal(f.len, 3);
}

static void test_line_hint_larger_than_buffer_is_clamped(void **state)
{
    (void)state;
    /* A caller that compacted its buffer may pass a stale, larger hint. */
    size_t scanned = 50;
    struct frame f;
    assert_int_equal(frame_parse_line((const uint8_t *)"ab", 2, 100, false, &scanned, &f),
                     FRAME_INCOMPLETE);
    assert_int_equal(scanned, 2);
}

/* Regression (known bug, open): at eof an unterminated line of max+1 bytes
 * ending in CR is returned with len = max+1, over the limit. Either the CR is
 * data (then the line is too large) or a line ending (then len is max). */
static void test_eof_line_ending_in_cr_respects_max(void **state)
{
    (void)state;
    if (!known_bugs_enabled())
        skip();
    struct frame f;
    ssize_t r = parse_line("12345678\r", 9, 8, true, &f);
    if (r > 0)
        assert_true(f.len <= 8);
    else
        assert_int_equal(r, FRAME_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_frames_parse),
        cmocka_unit_test(test_every_strict_prefix_is_incomplete),
        cmocka_unit_test(test_bad_type_is_rejected_at_one_byte),
        cmocka_unit_test(test_byte_at_a_time_equals_one_shot),
        cmocka_unit_test(test_byte_at_a_time_stops_at_the_same_error),
        cmocka_unit_test(test_several_frames_back_to_back),
        cmocka_unit_test(test_payload_length_boundaries),
        cmocka_unit_test(test_absolute_limit_of_24_bits),
        cmocka_unit_test(test_type_byte_policy),
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_error_frame_encoding),
        cmocka_unit_test(test_error_frame_truncates_to_cap),
        cmocka_unit_test(test_error_code_tables),
        cmocka_unit_test(test_detect_mode_by_first_byte),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_line_every_strict_prefix_is_incomplete),
        cmocka_unit_test(test_line_byte_at_a_time_equals_one_shot),
        cmocka_unit_test(test_line_too_long_is_found_as_soon_as_possible),
        cmocka_unit_test(test_line_length_boundaries),
        cmocka_unit_test(test_line_max_of_zero),
        cmocka_unit_test(test_line_at_eof),
        cmocka_unit_test(test_line_with_nul_bytes),
        cmocka_unit_test(test_line_hint_larger_than_buffer_is_clamped),
        cmocka_unit_test(test_eof_line_ending_in_cr_respects_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
