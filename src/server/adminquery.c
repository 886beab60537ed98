/* adminquery: parsing of the admin endpoint's query arguments and Accept
 * header from plain strings (see adminquery.h). Pure functions.
 */
#include "server/adminquery.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum admin_format admin_format_choose(const char *format, const char *accept)
{
    if (format != NULL) {
        if (strcmp(format, "json") == 0)
            return ADMIN_FORMAT_JSON;
        if (strcmp(format, "prometheus") == 0)
            return ADMIN_FORMAT_PROMETHEUS;
        if (strcmp(format, "openmetrics") == 0)
            return ADMIN_FORMAT_OPENMETRICS;
        return ADMIN_FORMAT_UNKNOWN;
    }
    if (accept == NULL)
        return ADMIN_FORMAT_JSON;
    if (strstr(accept, "application/openmetrics-text") != NULL)
        return ADMIN_FORMAT_OPENMETRICS;
    if (strstr(accept, "text/plain") != NULL)
        return ADMIN_FORMAT_PROMETHEUS;
    return ADMIN_FORMAT_JSON;
}

int admin_count_parse(const char *v, size_t def, size_t max, size_t *out)
{
    if (v == NULL) {
        *out = def;
        return 0;
    }
    /* strtoull alone would take spaces, a sign and wrap "-1" to a huge
     * value: the first byte must be a digit, and so must every other. */
    if (*v < '0' || *v > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || errno == ERANGE || n > max)
        return -EINVAL;
    *out = (size_t)n;
    return 0;
}

static const char *const sort_spellings[] = {
#define CONN_SORT_SPELLING(name, spelling, value) spelling,
    CONN_SORT_KEYS(CONN_SORT_SPELLING)
#undef CONN_SORT_SPELLING
};

int admin_sort_parse(const char *sort, struct conn_sort *out)
{
    const char *name = sort != NULL ? sort : "id";
    bool descending = name[0] == '-';
    if (descending)
        name++;
    for (size_t k = 0; k < CONN_SORT_KEY_COUNT; k++) {
        if (strcmp(name, sort_spellings[k]) == 0) {
            out->key = (enum conn_sort_key)k;
            out->descending = descending;
            return 0;
        }
    }
    return -EINVAL;
}

const char *conn_sort_name(enum conn_sort_key key)
{
    return (unsigned)key < CONN_SORT_KEY_COUNT ? sort_spellings[key] : "unknown";
}
