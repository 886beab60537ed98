/* webpath: turning a request's raw path into a safe relative file path
 * inside the web root, and opening it there. Decoding is pure string work;
 * webpath_open_beneath is the one function that touches the file system.
 */
#ifndef TCPMSG_WEBPATH_H
#define TCPMSG_WEBPATH_H

#include <stddef.h>

struct stat;

/* The longest decoded path, its NUL included. */
#define WEBPATH_MAX 1024

/* Decode the raw (still percent-encoded) path part of a request target in
 * raw[0..n) into out (cap bytes). Rejects, returning -EINVAL: a path not
 * starting with '/', bad or truncated %XX escapes, an encoded NUL or '/'
 * (%00, %2f), control bytes, backslashes, and any "." or ".." segment;
 * -ENAMETOOLONG when the decoded path and its NUL do not fit in cap. Empty
 * segments ("//") are collapsed. Returns the decoded length (out is
 * NUL-terminated), always starting with '/'. */
int webpath_decode(const char *raw, size_t n, char *out, size_t cap);

/* The Content-Type for a file name, by extension; application/octet-stream
 * when unknown. */
const char *webpath_content_type(const char *name);

/* Open rel (a relative path, such as a decoded path without its leading
 * '/') below the directory dirfd, one component at a time, so that nothing
 * outside dirfd can be reached: a "." or ".." component, or a symbolic link
 * anywhere on the way, is refused. Opening never blocks (a FIFO is refused
 * after its non-blocking open). Returns the descriptor of a regular file
 * (read-only, close-on-exec; the caller closes it) and fills *st, or a
 * negative errno: -ENAMETOOLONG when rel has WEBPATH_MAX bytes or more,
 * -EACCES for a "." or ".." component, -ELOOP for a symbolic link (-ENOTDIR
 * where it stands for a directory), -EISDIR when the result is not a regular
 * file (directory, FIFO, device), or what openat(2) fails with (-ENOENT,
 * -ENOTDIR, ...). dirfd stays open. */
int webpath_open_beneath(int dirfd, const char *rel, struct stat *st);

#endif
