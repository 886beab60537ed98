/* probe_targets: the contents of tcpmsg probe's --targets file, parsed into
 * a list of targets. Two formats: one HOST[:PORT] a line (with # comments
 * and blank lines), or Prometheus's file_sd JSON
 * ([{"targets": ["HOST:PORT", ...], "labels": {"name": "value"}}, ...]).
 * Pure string work: reading the file and watching it are probe_reload.c's.
 */
#ifndef TCPMSG_CLIENT_PROBE_TARGETS_H
#define TCPMSG_CLIENT_PROBE_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROBE_MAX_TARGETS 256         /* in all: the command line's and the file's */
#define PROBE_FILE_MAX_BYTES (1 << 20) /* a larger target file is refused unread */
#define PROBE_MAX_LABELS 8            /* per file_sd group */
#define PROBE_LABEL_NAME_MAX 64       /* with the NUL */
#define PROBE_LABEL_VALUE_MAX 128     /* with the NUL */

struct probe_label {
    char name[PROBE_LABEL_NAME_MAX];
    char value[PROBE_LABEL_VALUE_MAX];
};

/* One target as configured. Two specs are the same target when
 * probe_spec_equal says so: the same name and the same labels. */
struct probe_spec {
    char name[300]; /* HOST:PORT as written: the metrics' target label */
    char host[256];
    uint16_t port;
    struct probe_label labels[PROBE_MAX_LABELS]; /* sorted by name */
    size_t nlabels;
};

bool probe_spec_equal(const struct probe_spec *a, const struct probe_spec *b);

/* Parse text[0..len) (need not be NUL-terminated) into a malloc'd array of
 * at most max specs (*out, freed by the caller with free; NULL when there
 * are none) and their number *n. The format is file_sd JSON when the text
 * starts, after white space, with '[' followed by '{' or ']'; otherwise it
 * is one target a line ("[::1]:80" is a line). Returns 0, or -EINVAL with a
 * message naming the line in err ("line 3: 'x:y' is not HOST[:PORT]"; for
 * JSON, "line 4, column 7: ..." for a syntax error and "group 2, target 1:
 * ..." for a bad value), -E2BIG when there are more than max targets,
 * -ENOMEM. Targets are checked for: HOST[:PORT] syntax, duplicates, label
 * names (Prometheus's [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are
 * dropped, as Prometheus drops them after relabeling; "target", "reason",
 * "le" are the probe's own), lengths. */
int probe_targets_parse(const char *text, size_t len, size_t max, struct probe_spec **out,
                        size_t *n, char *err, size_t cap);

#endif
