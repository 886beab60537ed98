/* libFuzzer harness for tcpmsg probe's target file parser
 * (src/client/probe_targets.c): the bytes are a --targets file's contents,
 * not NUL-terminated. Any result is either a list or a message, never both;
 * every target of a list is a HOST:PORT that splits, named once, with its
 * labels sorted, valid and none of the probe's own.
 */
#include <errno.h>
#include <string.h>

#include "client/probe_targets.h"
#include "fuzz.h"

#define MAX_TARGETS 64

static void check_spec(const struct probe_spec *s)
{
    FUZZ_CHECK(s->name[0] != '\0' && s->host[0] != '\0');
    FUZZ_CHECK(memchr(s->name, '\0', sizeof s->name) != NULL);
    FUZZ_CHECK(s->nlabels <= PROBE_MAX_LABELS);
    for (size_t i = 0; i < s->nlabels; i++) {
        const struct probe_label *l = &s->labels[i];
        FUZZ_CHECK(strncmp(l->name, "__", 2) != 0 && strcmp(l->name, "target") != 0 &&
                   strcmp(l->name, "le") != 0 && strcmp(l->name, "reason") != 0);
        FUZZ_CHECK(i == 0 || strcmp(s->labels[i - 1].name, l->name) < 0);
        FUZZ_CHECK(strlen(l->value) < PROBE_LABEL_VALUE_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct probe_spec *specs = NULL;
    size_t n = 99;
    char err[256];
    err[0] = '\0';
    int rc = probe_targets_parse((const char *)data, size, MAX_TARGETS, &specs, &n, err,
                                 sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(n <= MAX_TARGETS && (n == 0) == (specs == NULL));
        for (size_t i = 0; i < n; i++) {
            check_spec(&specs[i]);
            for (size_t k = 0; k < i; k++)
                FUZZ_CHECK(strcmp(specs[k].name, specs[i].name) != 0);
        }
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FUZZ_CHECK(specs == NULL && n == 0 && err[0] != '\0');
    }
    free(specs);
    return 0;
}
