/* frame: the tcpmsg wire protocol (docs/PROTOCOL.md), shared by server, client
 * and tests. Parsing is zero-copy: a parsed message points into the caller's
 * buffer. No I/O and no allocation happen here.
 *
 * Framed mode: a 4-byte header (type, then a 24-bit big-endian payload length)
 * and the payload. Text mode: one message per LF-terminated line.
 */
#ifndef TCPMSG_FRAME_H
#define TCPMSG_FRAME_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_HEADER_SIZE 4
#define FRAME_MAX_PAYLOAD_LIMIT 0xFFFFFFu       /* 2^24 - 1: what 24 bits can say */
#define FRAME_DEFAULT_MAX_PAYLOAD (1u << 20)   /* 1 MiB */

/* Frame types. 0x00..0x07 are reserved for framed mode: a connection whose
 * first byte is in that range speaks framed mode, anything else text mode. */
enum frame_type {
    FRAME_DATA = 0x00,  /* echo me: the reply is the identical frame */
    FRAME_ERROR = 0x01, /* server -> client before it closes: code byte + reason text */
    FRAME_RTT_REPORT = 0x02, /* client -> server: RTTs the client measured (no reply) */
    FRAME_TYPE_LIMIT = 0x08,
};

/* The error codes carried in the first payload byte of FRAME_ERROR. */
#define FRAME_ERROR_CODES(X)                                                   \
    X(FRAME_ERR_OVERSIZE, 1, "oversize", "payload length over the limit")      \
    X(FRAME_ERR_BAD_TYPE, 2, "bad_type", "unknown frame type")                 \
    X(FRAME_ERR_TIMEOUT, 3, "timeout", "frame not completed in time")          \
    X(FRAME_ERR_BUSY, 4, "busy", "server connection limit reached")            \
    X(FRAME_ERR_PER_IP, 5, "per_ip", "too many connections from this address")

enum frame_error_code {
#define FRAME_ERR_ENUM(name, value, tag, text) name = value,
    FRAME_ERROR_CODES(FRAME_ERR_ENUM)
#undef FRAME_ERR_ENUM
};

/* Short tag ("oversize") and human text for an error code; "unknown" for an
 * unknown code. Never NULL. */
const char *frame_error_tag(int code);
const char *frame_error_text(int code);

/* Parse results. A parser tells "need more bytes" apart from "invalid".
 * They are negative errnos, like every other failure of the library. */
enum frame_status {
    FRAME_INCOMPLETE = -EAGAIN, /* a prefix of a valid message: read more */
    FRAME_TOO_LARGE = -EMSGSIZE, /* length / line over the limit: reject */
    FRAME_BAD_TYPE = -EPROTO,    /* framed mode: unknown type byte */
};

/* One parsed message. payload points into the parsed buffer. */
struct frame {
    uint8_t type;          /* frame type; FRAME_DATA in text mode */
    const uint8_t *payload;
    size_t len;            /* payload length (text: without CR/LF) */
};

/* Which framing a connection speaks, decided by its first byte. */
enum frame_mode {
    FRAME_MODE_UNKNOWN = 0, /* nothing received yet */
    FRAME_MODE_FRAMED,
    FRAME_MODE_TEXT,
};
enum frame_mode frame_detect_mode(uint8_t first_byte);
const char *frame_mode_name(enum frame_mode mode);

/* The header as one big-endian number: type in the top byte, payload
 * length in the low three (FRAME_LEN_MASK). One load instead of four, for
 * loops that walk many frames. */
#define FRAME_LEN_MASK 0xffffffu
static inline uint32_t frame_header_load(const uint8_t h[FRAME_HEADER_SIZE])
{
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* The payload length a header announces. */
static inline size_t frame_header_len(const uint8_t h[FRAME_HEADER_SIZE])
{
    return frame_header_load(h) & FRAME_LEN_MASK;
}

/* Write a header for (type, len) into out[0..3]. len must be <= 2^24-1. */
void frame_header_encode(uint8_t out[FRAME_HEADER_SIZE], uint8_t type, size_t len);

/* Parse one framed message at the start of buf[0..n).
 * Returns the number of bytes it occupies (> 0) and fills *out, or a negative
 * enum frame_status. The header alone decides FRAME_TOO_LARGE and
 * FRAME_BAD_TYPE, so a hostile length is rejected before any payload arrives.
 * Types other than FRAME_DATA and FRAME_ERROR below FRAME_TYPE_LIMIT are
 * accepted when allow_control is true (the caller dispatches them). */
ssize_t frame_parse(const uint8_t *buf, size_t n, size_t max_payload,
                    bool allow_control, struct frame *out);

/* Parse one text line at the start of buf[0..n). *scanned (in/out, start at
 * 0 and reset to 0 after each complete line) remembers how far a previous call
 * already looked for LF, so feeding a long line in pieces costs O(n) overall.
 * At eof, bytes with no LF form a final line.
 * Returns bytes consumed (> 0, including the LF) and fills *out, or
 * FRAME_INCOMPLETE, or FRAME_TOO_LARGE when the line (without CR/LF) exceeds
 * max_payload. */
ssize_t frame_parse_line(const uint8_t *buf, size_t n, size_t max_payload,
                         bool eof, size_t *scanned, struct frame *out);

/* Encode an error frame (code + reason) into out (cap bytes). Returns the
 * frame's size, truncating the reason to fit. cap must be >= 5. */
size_t frame_error_encode(uint8_t *out, size_t cap, int code, const char *reason);

#endif
