/* fuzz_admin: the admin endpoint's request parsing (src/server/adminquery.c):
 * the ?format= argument and the Accept header of /metrics, the sort, limit
 * and offset arguments of /api/connections. Input: lines "key=value" with
 * key format, accept, sort, limit or offset (the last of a key wins; a key
 * not given is absent, as a missing argument or header is).
 *
 * Checked against the documented rules: ?format= decides alone and only
 * its three exact names are known; without it the Accept header picks, and
 * never an unknown format. A count is accepted exactly when it is plain
 * decimal digits within its maximum, and prints back to itself without its
 * leading zeros. A sort is accepted exactly when it is a key's spelling,
 * optionally after one '-'.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server/adminquery.h"

enum { F_FORMAT, F_ACCEPT, F_SORT, F_LIMIT, F_OFFSET, F_COUNT };
static const char *const keys[F_COUNT] = { "format", "accept", "sort", "limit", "offset" };

static void check_format(const char *format, const char *accept)
{
    enum admin_format got = admin_format_choose(format, accept);
    if (format != NULL) {
        enum admin_format want = strcmp(format, "json") == 0          ? ADMIN_FORMAT_JSON
                                 : strcmp(format, "prometheus") == 0  ? ADMIN_FORMAT_PROMETHEUS
                                 : strcmp(format, "openmetrics") == 0 ? ADMIN_FORMAT_OPENMETRICS
                                                                      : ADMIN_FORMAT_UNKNOWN;
        FUZZ_CHECK(got == want);
        return;
    }
    FUZZ_CHECK(got == ADMIN_FORMAT_JSON || got == ADMIN_FORMAT_PROMETHEUS ||
               got == ADMIN_FORMAT_OPENMETRICS);
    if (accept == NULL)
        FUZZ_CHECK(got == ADMIN_FORMAT_JSON);
    else if (strstr(accept, "application/openmetrics-text") != NULL)
        FUZZ_CHECK(got == ADMIN_FORMAT_OPENMETRICS);
}

/* Whether the decimal digits sig (no leading zero) exceed max, compared as
 * text so that no conversion can overflow. */
static int digits_over(const char *sig, size_t max)
{
    char m[32];
    snprintf(m, sizeof m, "%zu", max);
    size_t n = strlen(sig), mn = strlen(m);
    return n != mn ? n > mn : strcmp(sig, m) > 0;
}

static void check_count(const char *v, size_t def, size_t max)
{
    size_t out = 0xdeadbeef;
    int rc = admin_count_parse(v, def, max, &out);
    if (v == NULL) {
        FUZZ_CHECK(rc == 0 && out == def);
        return;
    }
    size_t digits = strspn(v, "0123456789");
    const char *sig = v + strspn(v, "0"); /* without leading zeros */
    bool plain = digits > 0 && v[digits] == '\0';
    if (rc < 0) {
        /* Refused: not all digits, or a number over max. */
        FUZZ_CHECK(rc == -EINVAL && out == 0xdeadbeef);
        FUZZ_CHECK(!plain || digits_over(sig, max));
        return;
    }
    FUZZ_CHECK(rc == 0 && plain && !digits_over(sig, max) && out <= max);
    char back[32];
    snprintf(back, sizeof back, "%zu", out);
    FUZZ_CHECK(strcmp(back, *sig != '\0' ? sig : "0") == 0);
}

static void check_sort(const char *v)
{
    struct conn_sort s = { .key = CONN_SORT_KEY_COUNT };
    int rc = admin_sort_parse(v, &s);
    const char *want = v != NULL ? v : "id";
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL);
        /* Refused: no key is spelled so, with or without the '-'. */
        for (int k = 0; k < CONN_SORT_KEY_COUNT; k++) {
            const char *name = conn_sort_name((enum conn_sort_key)k);
            FUZZ_CHECK(strcmp(want, name) != 0);
            FUZZ_CHECK(!(want[0] == '-' && strcmp(want + 1, name) == 0));
        }
        return;
    }
    FUZZ_CHECK(rc == 0 && (unsigned)s.key < CONN_SORT_KEY_COUNT);
    char back[64];
    snprintf(back, sizeof back, "%s%s", s.descending ? "-" : "", conn_sort_name(s.key));
    FUZZ_CHECK(strcmp(back, want) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A NUL-terminated copy, cut into lines: values as C strings, as the
     * HTTP library hands them over. */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *field[F_COUNT] = { NULL };
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        for (int k = 0; k < F_COUNT; k++)
            if (strcmp(line, keys[k]) == 0)
                field[k] = eq + 1;
    }
    check_format(field[F_FORMAT], field[F_ACCEPT]);
    check_sort(field[F_SORT]);
    check_count(field[F_LIMIT], ADMIN_LIMIT_DEFAULT, ADMIN_LIMIT_MAX);
    check_count(field[F_OFFSET], 0, ADMIN_OFFSET_MAX);
    free(text);
    return 0;
}
