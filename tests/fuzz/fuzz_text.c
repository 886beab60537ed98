/* fuzz_text: the text-mode parser (frame_parse_line, src/frame.c) with its
 * resumable scan offset. Input: an option byte (bits 0-2: the payload
 * limit, an index into limits[]; bit 3: the peer closed after the last
 * byte), a byte seeding how the stream is split, then the stream.
 *
 * Checked: each line is a LF- (or, at the end, EOF-) terminated piece of the
 * input, without its CR/LF and never over the limit; feeding the stream in
 * random pieces, the scan offset carried across calls as the server does,
 * gives the same lines and the same end as parsing it whole.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tcpmsg/frame.h"

static const size_t limits[8] = { 0, 1, 2, 16, 255, 4096, FRAME_DEFAULT_MAX_PAYLOAD,
                                   FRAME_MAX_PAYLOAD_LIMIT };

/* One line of the stream: where it starts, its length, the bytes taken. */
struct seen {
    size_t at, len, took;
};

struct run {
    const uint8_t *buf;
    size_t n, limit;
    bool eof;
    uint32_t rng;    /* 0: the whole stream at once */
    struct seen *lines;
    size_t count;    /* lines */
    size_t pos;      /* where the unparsed rest starts */
    ssize_t end;     /* FRAME_INCOMPLETE or FRAME_TOO_LARGE */
};

/* The next piece's size: 1 to 64 bytes, now and then a large one. */
static size_t next_piece(struct run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    return (r->rng & 31) == 0 ? r->rng >> 20 : 1 + (r->rng & 63);
}

static void check_line(const struct run *r, size_t avail, bool eof, ssize_t rc,
                       const struct frame *f)
{
    const uint8_t *p = r->buf + r->pos;
    FUZZ_CHECK((size_t)rc <= avail - r->pos);
    FUZZ_CHECK(f->type == FRAME_DATA && f->payload == p && f->len <= r->limit);
    FUZZ_CHECK(memchr(p, '\n', f->len) == NULL);
    size_t took = (size_t)rc;
    if (p[took - 1] == '\n') {
        FUZZ_CHECK(took == f->len + 1 || (took == f->len + 2 && p[f->len] == '\r'));
    } else {
        /* A last line without LF: only at EOF, a trailing CR dropped. */
        FUZZ_CHECK(eof && r->pos + took == r->n);
        FUZZ_CHECK(took == f->len || (took == f->len + 1 && p[f->len] == '\r'));
    }
}

/* Parse the stream as the server does: take every line in what has
 * arrived, and on FRAME_INCOMPLETE wait for the next piece. */
static void run_parse(struct run *r)
{
    size_t avail = r->rng == 0 ? r->n : 0, scanned = 0;
    for (;;) {
        bool eof = r->eof && avail == r->n;
        struct frame f;
        ssize_t rc = frame_parse_line(r->buf + r->pos, avail - r->pos, r->limit, eof, &scanned,
                                      &f);
        if (rc > 0) {
            check_line(r, avail, eof, rc, &f);
            FUZZ_CHECK(scanned == 0);
            r->lines[r->count++] = (struct seen){ r->pos, f.len, (size_t)rc };
            r->pos += (size_t)rc;
            continue;
        }
        FUZZ_CHECK(rc == FRAME_INCOMPLETE || rc == FRAME_TOO_LARGE);
        if (rc == FRAME_TOO_LARGE || avail == r->n) {
            r->end = rc;
            return;
        }
        FUZZ_CHECK(scanned <= avail - r->pos);
        size_t piece = next_piece(r);
        avail = piece < r->n - avail ? avail + piece : r->n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct run whole = {
        .buf = data + 2, .n = size - 2, .limit = limits[data[0] & 7], .eof = data[0] & 8,
    };
    struct run split = whole;
    split.rng = 0x9e3779b9u ^ data[1]; /* never 0: xorshift stays nonzero */
    whole.lines = malloc((whole.n + 1) * sizeof *whole.lines);
    split.lines = malloc((split.n + 1) * sizeof *split.lines);
    if (whole.lines != NULL && split.lines != NULL) {
        run_parse(&whole);
        run_parse(&split);
        FUZZ_CHECK(whole.count == split.count && whole.pos == split.pos &&
                   whole.end == split.end);
        FUZZ_CHECK(memcmp(whole.lines, split.lines, whole.count * sizeof *whole.lines) == 0);
        /* What is left unparsed is a partial line: no LF in it, unless it
         * was refused. */
        if (whole.end == FRAME_INCOMPLETE)
            FUZZ_CHECK(memchr(whole.buf + whole.pos, '\n', whole.n - whole.pos) == NULL);
        /* At EOF, nothing is left but a refused line. */
        if (whole.eof && whole.end == FRAME_INCOMPLETE)
            FUZZ_CHECK(whole.pos == whole.n);
    }
    free(whole.lines);
    free(split.lines);
    return 0;
}
