/* probe_targets: parsing tcpmsg probe's target file, in either of its two
 * formats. Everything doubtful is refused with the line it is on: a reload
 * that guesses would silently probe the wrong set of hosts.
 */
#include "client/probe_targets.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_config.h"
#include "tcpmsg/net.h"

bool probe_spec_equal(const struct probe_spec *a, const struct probe_spec *b)
{
    if (strcmp(a->name, b->name) != 0 || a->nlabels != b->nlabels)
        return false;
    for (size_t i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i].name, b->labels[i].name) != 0 ||
            strcmp(a->labels[i].value, b->labels[i].value) != 0)
            return false;
    return true;
}

/* The list being built. */
struct specs {
    struct probe_spec *v;
    size_t n, max;
    char *err;
    size_t cap;
};

__attribute__((format(printf, 2, 3))) static int refuse(struct specs *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A name, an IPv4 address or an IPv6 one (with its %zone): what a JSON
 * fragment or a URL pasted by mistake holds (quotes, '/', ',') is refused
 * here rather than failing name resolution at every probe. */
static bool host_ok(const char *host)
{
    if (host[0] == '\0')
        return false;
    for (const char *c = host; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && strchr(".-_:%", *c) == NULL)
            return false;
    return true;
}

/* Append target text (where says where it was, for messages) with no
 * labels yet; 0 or a negative errno with the message in s->err. */
static int add_target(struct specs *s, const char *text, const char *where)
{
    if (s->n == s->max) {
        snprintf(s->err, s->cap, "%s: more than %zu targets", where, s->max);
        return -E2BIG;
    }
    struct probe_spec *p = &s->v[s->n];
    memset(p, 0, sizeof *p);
    if (text[0] == '\0' || strlen(text) >= sizeof p->name ||
        net_split_hostport(text, p->host, sizeof p->host, &p->port, CLIENT_DEFAULT_PORT) < 0 ||
        !host_ok(p->host))
        return refuse(s, "%s: '%.300s' is not HOST[:PORT]", where, text);
    snprintf(p->name, sizeof p->name, "%s", text);
    /* The name is the series' identity: twice would be two series of one name. */
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].name, p->name) == 0)
            return refuse(s, "%s: '%s' is listed twice", where, text);
    s->n++;
    return 0;
}

/* --- one target a line --------------------------------------------------------- */

static int parse_lines(struct specs *s, const char *text, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        line++;
        const char *eol = memchr(text + i, '\n', len - i);
        size_t end = eol != NULL ? (size_t)(eol - text) : len;
        /* The line without its comment and surrounding white space. */
        const char *hash = memchr(text + i, '#', end - i);
        size_t b = i, e = hash != NULL ? (size_t)(hash - text) : end;
        while (b < e && isspace((unsigned char)text[b]))
            b++;
        while (e > b && isspace((unsigned char)text[e - 1]))
            e--;
        i = end + 1;
        if (b == e)
            continue;
        char where[32], target[sizeof s->v[0].name];
        snprintf(where, sizeof where, "line %zu", line);
        for (size_t k = b; k < e; k++)
            if (isspace((unsigned char)text[k]) || text[k] == '\0')
                return refuse(s, "%s: one HOST[:PORT] a line, then only a # comment", where);
        if (e - b >= sizeof target)
            return refuse(s, "%s: '%.40s...' is too long for HOST[:PORT]", where, text + b);
        memcpy(target, text + b, e - b);
        target[e - b] = '\0';
        int rc = add_target(s, target, where);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- file_sd JSON ---------------------------------------------------------------- */

static bool label_name_ok(const char *name)
{
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return false;
    for (const char *c = name; *c != '\0'; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_'))
            return false;
    return true;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct probe_label *)a)->name, ((const struct probe_label *)b)->name);
}

/* A group's labels, checked and sorted, into *into. */
static int parse_labels(struct specs *s, json_t *labels, size_t group, struct probe_spec *into)
{
    if (labels == NULL)
        return 0;
    if (!json_is_object(labels))
        return refuse(s, "group %zu: \"labels\" is not an object of strings", group);
    const char *name;
    json_t *value;
    json_object_foreach(labels, name, value) {
        if (!json_is_string(value))
            return refuse(s, "group %zu: label %.64s: the value is not a string", group, name);
        if (strncmp(name, "__", 2) == 0)
            continue; /* Prometheus's own, for scraping: nothing to do with probing */
        if (!label_name_ok(name) || strlen(name) >= PROBE_LABEL_NAME_MAX)
            return refuse(s, "group %zu: '%.64s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                             "under %d bytes)",
                          group, name, PROBE_LABEL_NAME_MAX);
        if (strcmp(name, "target") == 0 || strcmp(name, "reason") == 0 || strcmp(name, "le") == 0)
            return refuse(s, "group %zu: label %s is the probe's own", group, name);
        if (json_string_length(value) >= PROBE_LABEL_VALUE_MAX)
            return refuse(s, "group %zu: label %s: the value is longer than %d bytes", group, name,
                          PROBE_LABEL_VALUE_MAX - 1);
        if (into->nlabels == PROBE_MAX_LABELS)
            return refuse(s, "group %zu: more than %d labels", group, PROBE_MAX_LABELS);
        struct probe_label *l = &into->labels[into->nlabels++];
        snprintf(l->name, sizeof l->name, "%s", name);
        snprintf(l->value, sizeof l->value, "%s", json_string_value(value));
    }
    /* Sorted, so that the same labels in another order are the same target. */
    qsort(into->labels, into->nlabels, sizeof into->labels[0], cmp_label);
    return 0;
}

static int parse_group(struct specs *s, json_t *g, size_t group)
{
    if (!json_is_object(g))
        return refuse(s, "group %zu: not an object {\"targets\": [...], \"labels\": {...}}", group);
    const char *key;
    json_t *value;
    json_object_foreach(g, key, value) {
        if (strcmp(key, "targets") != 0 && strcmp(key, "labels") != 0)
            return refuse(s, "group %zu: unknown key \"%.64s\" (file_sd has targets and labels)",
                          group, key);
    }
    json_t *targets = json_object_get(g, "targets");
    if (!json_is_array(targets))
        return refuse(s, "group %zu: \"targets\" is missing or not an array", group);
    struct probe_spec labels = { .nlabels = 0 };
    int rc = parse_labels(s, json_object_get(g, "labels"), group, &labels);
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) {
        char where[64];
        snprintf(where, sizeof where, "group %zu, target %zu", group, i + 1);
        if (rc == 0 && !json_is_string(t))
            rc = refuse(s, "%s: not a string", where);
        if (rc == 0)
            rc = add_target(s, json_string_value(t), where);
        if (rc < 0)
            return rc;
        memcpy(s->v[s->n - 1].labels, labels.labels, sizeof labels.labels);
        s->v[s->n - 1].nlabels = labels.nlabels;
    }
    return rc;
}

static int parse_json(struct specs *s, const char *text, size_t len)
{
    json_error_t je;
    /* JSON_REJECT_DUPLICATES: a label given twice would hide one value. */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return refuse(s, "line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_array(root)) {
        json_decref(root);
        return refuse(s, "file_sd JSON is an array of groups: [{\"targets\": [...]}]");
    }
    int rc = 0;
    size_t i;
    json_t *g;
    json_array_foreach(root, i, g) {
        if ((rc = parse_group(s, g, i + 1)) < 0)
            break;
    }
    json_decref(root);
    return rc;
}

/* file_sd JSON opens with an array of objects (or an empty one); a line
 * "[::1]:80" opens with '[' too, but then an address. */
static bool looks_like_json(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (i == len || text[i] != '[')
        return false;
    for (i++; i < len && isspace((unsigned char)text[i]); i++)
        ;
    return i < len && (text[i] == '{' || text[i] == ']');
}

int probe_targets_parse(const char *text, size_t len, size_t max, struct probe_spec **out,
                        size_t *n, char *err, size_t cap)
{
    struct specs s = { .max = max, .err = err, .cap = cap };
    *out = NULL;
    *n = 0;
    if (max > 0 && (s.v = calloc(max, sizeof *s.v)) == NULL) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    int rc = looks_like_json(text, len) ? parse_json(&s, text, len) : parse_lines(&s, text, len);
    if (rc < 0 || s.n == 0) {
        free(s.v);
        return rc;
    }
    *out = s.v;
    *n = s.n;
    return 0;
}
