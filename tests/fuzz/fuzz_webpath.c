/* fuzz_webpath: request path decoding (webpath_decode, src/webpath.c).
 * Input: one byte choosing the output capacity (255: WEBPATH_MAX), then the
 * raw path. The output buffer is exactly that size, so a write past it is
 * an ASan report.
 *
 * Checked: an accepted path is absolute, NUL-terminated within the
 * capacity, its length returned, with no NUL, control byte, backslash,
 * empty, "." or ".." segment inside: nothing that could name a file
 * outside the web root. It fits in exactly length + 1 bytes and not one
 * less, and percent-encoding it again decodes to the same path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tcpmsg/webpath.h"

static void check_clean(const char *out, int rc)
{
    FUZZ_CHECK(rc >= 1 && out[0] == '/' && out[rc] == '\0' && strlen(out) == (size_t)rc);
    for (int i = 0; i < rc; i++) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '\\');
        FUZZ_CHECK(!(c == '/' && out[i + 1] == '/'));
    }
    for (const char *seg = out + 1;; ) {
        size_t len = strcspn(seg, "/");
        FUZZ_CHECK(!(len == 1 && seg[0] == '.'));
        FUZZ_CHECK(!(len == 2 && seg[0] == '.' && seg[1] == '.'));
        if (seg[len] == '\0')
            break;
        seg += len + 1;
    }
}

/* Decode raw[0..n) into a buffer of exactly cap bytes; the result (or
 * NULL when refused) is malloc'd. */
static char *decode(const char *raw, size_t n, size_t cap, int *rc)
{
    char *out = malloc(cap > 0 ? cap : 1);
    if (out == NULL)
        abort();
    *rc = webpath_decode(raw, n, out, cap);
    if (*rc < 0) {
        free(out);
        return NULL;
    }
    FUZZ_CHECK((size_t)*rc < cap);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0] == 255 ? WEBPATH_MAX : data[0];
    const char *raw = (const char *)data + 1;
    size_t n = size - 1;
    int rc;
    char *out = decode(raw, n, cap, &rc);
    if (out == NULL) {
        /* Refused: a path over the capacity is refused whatever follows,
         * so a larger capacity may accept it; nothing else to check. */
        FUZZ_CHECK(rc == -EINVAL || rc == -ENAMETOOLONG);
        return 0;
    }
    check_clean(out, rc);

    /* Exactly rc + 1 bytes suffice; rc do not. */
    int again;
    char *tight = decode(raw, n, (size_t)rc + 1, &again);
    FUZZ_CHECK(tight != NULL && again == rc && strcmp(tight, out) == 0);
    free(tight);
    FUZZ_CHECK(decode(raw, n, (size_t)rc, &again) == NULL && again == -ENAMETOOLONG);

    /* Encode every byte but '/' as %XX: the same path comes back. */
    char *enc = malloc(3 * (size_t)rc + 1);
    if (enc == NULL)
        abort();
    size_t m = 0;
    for (int i = 0; i < rc; i++)
        m += (size_t)(out[i] == '/' ? sprintf(enc + m, "/")
                                     : sprintf(enc + m, "%%%02X", (unsigned char)out[i]));
    char *back = decode(enc, m, (size_t)rc + 1, &again);
    FUZZ_CHECK(back != NULL && again == rc && strcmp(back, out) == 0);
    free(back);
    free(enc);
    free(out);
    return 0;
}
