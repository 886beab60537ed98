/* frame: parsing and encoding of the tcpmsg wire protocol (docs/PROTOCOL.md).
 * Pure functions over caller-owned buffers: no I/O, no allocation.
 */
#include "tcpmsg/frame.h"

#include <string.h>

const char *frame_error_tag(int code)
{
    switch (code) {
#define FRAME_ERR_TAG(name, value, tag, text) \
    case name:                                \
        return tag;
        FRAME_ERROR_CODES(FRAME_ERR_TAG)
#undef FRAME_ERR_TAG
    }
    return "unknown";
}

const char *frame_error_text(int code)
{
    switch (code) {
#define FRAME_ERR_TEXT(name, value, tag, text) \
    case name:                                 \
        return text;
        FRAME_ERROR_CODES(FRAME_ERR_TEXT)
#undef FRAME_ERR_TEXT
    }
    return "unknown error";
}

enum frame_mode frame_detect_mode(uint8_t first_byte)
{
    /* As memcached tells its binary protocol (magic 0x80) from text: the
     * control range can never start a text line a person types. */
    return first_byte < FRAME_TYPE_LIMIT ? FRAME_MODE_FRAMED : FRAME_MODE_TEXT;
}

const char *frame_mode_name(enum frame_mode mode)
{
    switch (mode) {
    case FRAME_MODE_FRAMED:
        return "framed";
    case FRAME_MODE_TEXT:
        return "text";
    case FRAME_MODE_UNKNOWN:
        break;
    }
    return "unknown";
}

void frame_header_encode(uint8_t out[FRAME_HEADER_SIZE], uint8_t type, size_t len)
{
    out[0] = type;
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}

ssize_t frame_parse(const uint8_t *buf, size_t n, size_t max_payload, bool allow_control,
                    struct frame *out)
{
    if (n < 1)
        return FRAME_INCOMPLETE;
    /* The type byte alone can condemn a frame: reject before waiting for the
     * rest of the header. */
    uint8_t type = buf[0];
    if (type >= FRAME_TYPE_LIMIT || (!allow_control && type != FRAME_DATA))
        return FRAME_BAD_TYPE;
    if (n < FRAME_HEADER_SIZE)
        return FRAME_INCOMPLETE;
    size_t len = frame_header_len(buf);
    if (len > max_payload)
        return FRAME_TOO_LARGE;
    if (n - FRAME_HEADER_SIZE < len)
        return FRAME_INCOMPLETE;
    out->type = type;
    out->payload = buf + FRAME_HEADER_SIZE;
    out->len = len;
    return (ssize_t)(FRAME_HEADER_SIZE + len);
}

ssize_t frame_parse_line(const uint8_t *buf, size_t n, size_t max_payload, bool eof,
                         size_t *scanned, struct frame *out)
{
    size_t from = *scanned < n ? *scanned : n;
    const uint8_t *lf = memchr(buf + from, '\n', n - from);
    if (lf == NULL) {
        *scanned = n;
        /* Without its LF a line may still end in the CR of a CRLF, so the
         * longest legal unterminated prefix is max_payload + 1 bytes. */
        bool over = n > max_payload + 1 || (n == max_payload + 1 && buf[n - 1] != '\r');
        if (over)
            return FRAME_TOO_LARGE;
        if (!eof || n == 0)
            return FRAME_INCOMPLETE;
        /* A last line with no newline before the peer closed; a CR there
         * ends it like a CRLF would. */
        size_t len = buf[n - 1] == '\r' ? n - 1 : n;
        if (len > max_payload)
            return FRAME_TOO_LARGE;
        out->type = FRAME_DATA;
        out->payload = buf;
        out->len = len;
        *scanned = 0;
        return (ssize_t)n;
    }
    size_t len = (size_t)(lf - buf);
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (len > max_payload)
        return FRAME_TOO_LARGE;
    out->type = FRAME_DATA;
    out->payload = buf;
    out->len = len;
    *scanned = 0;
    return (ssize_t)(lf - buf) + 1;
}

size_t frame_error_encode(uint8_t *out, size_t cap, int code, const char *reason)
{
    size_t rlen = strlen(reason);
    if (rlen > cap - FRAME_HEADER_SIZE - 1)
        rlen = cap - FRAME_HEADER_SIZE - 1;
    frame_header_encode(out, FRAME_ERROR, 1 + rlen);
    out[FRAME_HEADER_SIZE] = (uint8_t)code;
    memcpy(out + FRAME_HEADER_SIZE + 1, reason, rlen);
    return FRAME_HEADER_SIZE + 1 + rlen;
}
