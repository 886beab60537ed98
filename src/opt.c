/* opt: option value parsing with range checks and messages a user can act on. */
#include "tcpmsg/opt.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_digits(const char *s, uint64_t *out, char **end)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno != 0)
        return -EINVAL;
    *out = v;
    return 0;
}

static int range_error(const char *name, const char *s, uint64_t min, uint64_t max, char *err,
                       size_t err_cap)
{
    snprintf(err, err_cap, "%s: '%s' is out of range %" PRIu64 "..%" PRIu64, name, s, min, max);
    return -EINVAL;
}

int opt_parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  char *err, size_t err_cap)
{
    char *end;
    uint64_t v;
    if (parse_digits(s, &v, &end) < 0 || *end != '\0') {
        snprintf(err, err_cap, "%s: '%s' is not a whole number", name, s);
        return -EINVAL;
    }
    if (v < min || v > max)
        return range_error(name, s, min, max, err, err_cap);
    *out = v;
    return 0;
}

int opt_parse_size(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                   char *err, size_t err_cap)
{
    static const struct { const char *suffix; unsigned shift; } units[] = {
        { "", 0 },     { "B", 0 },    { "K", 10 }, { "KiB", 10 },
        { "M", 20 },   { "MiB", 20 }, { "G", 30 }, { "GiB", 30 },
    };
    char *end;
    uint64_t v;
    if (parse_digits(s, &v, &end) == 0) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcasecmp(end, units[i].suffix) != 0)
                continue;
            if (v > (UINT64_MAX >> units[i].shift))
                return range_error(name, s, min, max, err, err_cap);
            v <<= units[i].shift;
            if (v < min || v > max)
                return range_error(name, s, min, max, err, err_cap);
            *out = v;
            return 0;
        }
    }
    snprintf(err, err_cap, "%s: '%s' is not a size (examples: 4096, 64KiB, 1MiB)", name, s);
    return -EINVAL;
}

int opt_parse_seconds(const char *name, const char *s, double min, double max, double *out,
                      char *err, size_t err_cap)
{
    char *end;
    errno = 0;
    /* Decimal notation only: strtod would also take blanks, hex and "inf". */
    bool plain = (s[0] >= '0' && s[0] <= '9') || s[0] == '.';
    plain = plain && s[strspn(s, "0123456789.eE+-")] == '\0';
    double v = plain ? strtod(s, &end) : 0;
    if (!plain || end == s || *end != '\0' || errno != 0 || !isfinite(v)) {
        snprintf(err, err_cap, "%s: '%s' is not a number of seconds", name, s);
        return -EINVAL;
    }
    if (v < min || v > max) {
        snprintf(err, err_cap, "%s: '%s' is out of range %g..%g seconds", name, s, min, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

void opt_bad_option_message(char *out, size_t cap, const char *word, int bad_short,
                            const struct option *longopts)
{
    if (strncmp(word, "--", 2) != 0) {
        snprintf(out, cap, "unknown option '-%c'", bad_short);
        return;
    }
    const char *name = word + 2;
    size_t n = strcspn(name, "=");
    for (const struct option *o = longopts; o->name != NULL; o++) {
        if (strlen(o->name) == n && strncmp(o->name, name, n) == 0 && name[n] == '=' &&
            o->has_arg == no_argument) {
            snprintf(out, cap, "--%s takes no value", o->name);
            return;
        }
    }
    snprintf(out, cap, "unknown option '--%.*s'", (int)n, name);
}
