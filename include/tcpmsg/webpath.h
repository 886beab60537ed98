/* webpath: turning a request's raw path into a safe relative file path
 * inside the web root. Pure string work: no file system access here.
 */
#ifndef TCPMSG_WEBPATH_H
#define TCPMSG_WEBPATH_H

#include <stddef.h>

/* Decode the raw (still percent-encoded) path part of a request target in
 * raw[0..n) into out (cap bytes). Rejects, returning -1: a path not starting
 * with '/', bad or truncated %XX escapes, an encoded NUL or '/' (%00, %2f),
 * control bytes, backslashes, and any "." or ".." segment. Empty segments
 * ("//") are collapsed. Returns the decoded length (out is NUL-terminated),
 * always starting with '/'. */
int webpath_decode(const char *raw, size_t n, char *out, size_t cap);

/* The Content-Type for a file name, by extension; application/octet-stream
 * when unknown. */
const char *webpath_content_type(const char *name);

#endif
