/* fuzz_frame: the framed-mode parser (frame_parse, src/frame.c) over a
 * stream of frames. Input: one option byte (bit 0: allow_control; bits 1-3:
 * the payload limit, an index into limits[]), then the stream.
 *
 * Checked against a model of the header rules: a complete frame occupies
 * header + length bytes, fits in the input and its length in the limit; a
 * refusal is what the header says. Feeding the stream one byte at a time
 * (as a slow client does) gives the same frames and the same end as parsing
 * it whole. The stream, up to its first NUL, also serves as the reason of an
 * error frame: encoded into a buffer of exactly the given capacity, it
 * parses back whole or truncated to fit.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tcpmsg/frame.h"

static const size_t limits[8] = { 0, 1, 16, 255, 256, 4096, FRAME_DEFAULT_MAX_PAYLOAD,
                                   FRAME_MAX_PAYLOAD_LIMIT };

/* How a parse of buf[0..n) must end, from the header rules alone. */
static ssize_t model(const uint8_t *buf, size_t n, size_t limit, bool allow_control)
{
    if (n == 0)
        return FRAME_INCOMPLETE;
    if (buf[0] >= FRAME_TYPE_LIMIT || (!allow_control && buf[0] != FRAME_DATA))
        return FRAME_BAD_TYPE;
    if (n < FRAME_HEADER_SIZE)
        return FRAME_INCOMPLETE;
    size_t len = (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
    if (len > limit)
        return FRAME_TOO_LARGE;
    return n - FRAME_HEADER_SIZE < len ? FRAME_INCOMPLETE : (ssize_t)(FRAME_HEADER_SIZE + len);
}

/* Parse buf[0..n) and check the result against the model. */
static ssize_t parse_checked(const uint8_t *buf, size_t n, size_t limit, bool allow_control,
                             struct frame *f)
{
    ssize_t rc = frame_parse(buf, n, limit, allow_control, f);
    FUZZ_CHECK(rc == model(buf, n, limit, allow_control));
    if (rc > 0) {
        FUZZ_CHECK((size_t)rc == FRAME_HEADER_SIZE + f->len);
        FUZZ_CHECK((size_t)rc <= n);
        FUZZ_CHECK(f->len <= limit);
        FUZZ_CHECK(f->type == buf[0] && f->payload == buf + FRAME_HEADER_SIZE);
    }
    return rc;
}

/* One frame of the stream: where it starts, its type and length. */
struct seen {
    size_t at;
    uint8_t type;
    size_t len;
};

/* An error frame with reason text, in a buffer of exactly cap bytes (ASan
 * sees a write past it), parses back as what was encoded. */
static void check_error_frame(const char *text, size_t cap)
{
    uint8_t *out = malloc(cap);
    if (out == NULL)
        return;
    size_t n = frame_error_encode(out, cap, FRAME_ERR_BAD_TYPE, text);
    size_t rlen = strlen(text) < cap - FRAME_HEADER_SIZE - 1 ? strlen(text)
                                                             : cap - FRAME_HEADER_SIZE - 1;
    FUZZ_CHECK(n == FRAME_HEADER_SIZE + 1 + rlen && n <= cap);
    struct frame f;
    FUZZ_CHECK(frame_parse(out, n, FRAME_MAX_PAYLOAD_LIMIT, true, &f) == (ssize_t)n);
    FUZZ_CHECK(f.type == FRAME_ERROR && f.len == 1 + rlen);
    FUZZ_CHECK(f.payload[0] == FRAME_ERR_BAD_TYPE && memcmp(f.payload + 1, text, rlen) == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool allow_control = data[0] & 1;
    size_t limit = limits[(data[0] >> 1) & 7];
    const uint8_t *buf = data + 1;
    size_t n = size - 1;

    /* Whole: every frame in turn, until the stream ends or is refused. */
    struct seen *frames = malloc((n / FRAME_HEADER_SIZE + 1) * sizeof *frames);
    if (frames == NULL)
        return 0;
    size_t count = 0, pos = 0;
    ssize_t end;
    struct frame f;
    while ((end = parse_checked(buf + pos, n - pos, limit, allow_control, &f)) > 0) {
        frames[count++] = (struct seen){ pos, f.type, f.len };
        pos += (size_t)end;
    }

    /* A byte at a time: after each byte, take every frame that completed. */
    size_t k = 0, at = 0;
    ssize_t rc = FRAME_INCOMPLETE;
    for (size_t avail = 0; avail <= n && rc != FRAME_TOO_LARGE && rc != FRAME_BAD_TYPE;
         avail++) {
        while ((rc = parse_checked(buf + at, avail - at, limit, allow_control, &f)) > 0) {
            FUZZ_CHECK(k < count);
            FUZZ_CHECK(frames[k].at == at && frames[k].type == f.type &&
                       frames[k].len == f.len);
            k++;
            at += (size_t)rc;
        }
    }
    FUZZ_CHECK(k == count && at == pos && rc == end);
    free(frames);

    char *text = malloc(n + 1);
    if (text != NULL) {
        memcpy(text, buf, n);
        text[n] = '\0';
        check_error_frame(text, FRAME_HEADER_SIZE + 1 + (data[0] >> 4)); /* 5 to 20 */
        free(text);
    }
    return 0;
}
