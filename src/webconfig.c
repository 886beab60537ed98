/* webconfig: the exporter-toolkit web configuration, parsed with libyaml's
 * document API. The walk follows the schema (three levels at most), so the
 * shape of the input bounds neither recursion nor work beyond its size.
 */
#include "tcpmsg/webconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define WEBCONFIG_MAX_FILE (1u << 20) /* the YAML file and each PEM file */

static const char *const client_auth_names[] = {
#define WEBCONFIG_CA_NAME(name, spelling, text) spelling,
    WEBCONFIG_CLIENT_AUTH(WEBCONFIG_CA_NAME)
#undef WEBCONFIG_CA_NAME
};

static const char *const tls_version_names[] = { "TLS10", "TLS11", "TLS12", "TLS13" };

const char *webconfig_client_auth_name(enum webconfig_client_auth a)
{
    return (unsigned)a < WEBCONFIG_CLIENT_AUTH_COUNT ? client_auth_names[a] : "?";
}

const char *webconfig_tls_version_name(enum webconfig_tls_version v)
{
    return (unsigned)v <= WEBCONFIG_TLS13 ? tls_version_names[v] : "?";
}

void webconfig_free(struct webconfig *c)
{
    if (c == NULL)
        return;
    free(c->cert_file);
    free(c->key_file);
    free(c->client_ca_file);
    free(c->cert_pem);
    free(c->key_pem);
    free(c->client_ca_pem);
    for (size_t i = 0; i < c->nusers; i++) {
        free(c->users[i].name);
        free(c->users[i].hash);
    }
    free(c->users);
    free(c);
}

/* What the walk needs: the document, where messages go, how paths resolve. */
struct parse {
    yaml_document_t *doc;
    const char *name;
    const char *base_dir;
    struct webconfig *cfg;
    char *err;
    size_t err_cap;
    int rc; /* the first failure: -EINVAL or -ENOMEM */
};

/* Record an error at node's line; keeps the first one. Returns that first
 * error (-EINVAL, or -ENOMEM when memory ran out before). */
__attribute__((format(printf, 4, 5))) static int fail(struct parse *p, const yaml_node_t *node,
                                                      const char *key, const char *fmt, ...)
{
    if (p->rc != 0)
        return p->rc;
    p->rc = -EINVAL;
    int n = snprintf(p->err, p->err_cap, "%s:%lu: %s%s", p->name,
                     node != NULL ? (unsigned long)node->start_mark.line + 1 : 1ul,
                     key != NULL ? key : "", key != NULL ? ": " : "");
    if (n >= 0 && (size_t)n < p->err_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->err_cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return p->rc;
}

static int no_memory(struct parse *p)
{
    if (p->rc == 0) {
        p->rc = -ENOMEM;
        snprintf(p->err, p->err_cap, "%s: out of memory", p->name);
    }
    return p->rc;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* An explicit null ("key:", "key: ~", "key: null"): the key is as if unset. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A string value: a scalar without NUL bytes inside. */
static int get_string(struct parse *p, const yaml_node_t *v, const char *key, const char **out)
{
    *out = ""; /* set on every path: callers test the result, the compiler cannot see fail's */
    if (v->type != YAML_SCALAR_NODE)
        return fail(p, v, key, "expected a string");
    if (strlen(scalar(v)) != v->data.scalar.length)
        return fail(p, v, key, "contains a NUL byte");
    *out = scalar(v);
    return 0;
}

static int get_bool(struct parse *p, const yaml_node_t *v, const char *key, bool *out)
{
    static const char *const yes[] = { "true", "True", "TRUE" };
    static const char *const no[] = { "false", "False", "FALSE" };
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        for (size_t i = 0; i < 3; i++) {
            if (strcmp(scalar(v), yes[i]) == 0 || strcmp(scalar(v), no[i]) == 0) {
                *out = strcmp(scalar(v), yes[i]) == 0;
                return 0;
            }
        }
    }
    return fail(p, v, key, "expected true or false");
}

/* A list that must be empty: we know the setting but cannot honour it. */
static int refuse_list(struct parse *p, const yaml_node_t *v, const char *key, const char *why)
{
    if (is_null(v) || (v->type == YAML_SEQUENCE_NODE &&
                       v->data.sequence.items.top == v->data.sequence.items.start))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(p, v, key, "expected a list");
    return fail(p, v, key, "not supported: %s", why);
}

/* A path from the file, resolved against its directory. */
static int set_path(struct parse *p, const yaml_node_t *v, const char *key, char **dst)
{
    const char *s;
    if (is_null(v))
        return 0;
    if (get_string(p, v, key, &s) < 0)
        return p->rc;
    size_t blen = p->base_dir != NULL && s[0] != '/' ? strlen(p->base_dir) : 0;
    char *path = malloc(blen + 1 + strlen(s) + 1);
    if (path == NULL)
        return no_memory(p);
    if (blen > 0)
        sprintf(path, "%s%s%s", p->base_dir, p->base_dir[blen - 1] == '/' ? "" : "/", s);
    else
        strcpy(path, s);
    free(*dst);
    *dst = path;
    return 0;
}

static int set_string(struct parse *p, const yaml_node_t *v, const char *key, char **dst)
{
    const char *s;
    if (is_null(v))
        return 0;
    if (get_string(p, v, key, &s) < 0)
        return p->rc;
    char *copy = strdup(s);
    if (copy == NULL)
        return no_memory(p);
    free(*dst);
    *dst = copy;
    return 0;
}

static int set_version(struct parse *p, const yaml_node_t *v, const char *key,
                       enum webconfig_tls_version *dst)
{
    const char *s;
    if (get_string(p, v, key, &s) < 0)
        return p->rc;
    for (unsigned i = 0; i <= WEBCONFIG_TLS13; i++) {
        if (strcmp(s, tls_version_names[i]) == 0) {
            *dst = (enum webconfig_tls_version)i;
            return 0;
        }
    }
    return fail(p, v, key, "'%s' is not one of TLS10, TLS11, TLS12, TLS13", s);
}

static int set_client_auth(struct parse *p, const yaml_node_t *v, const char *key)
{
    const char *s;
    if (get_string(p, v, key, &s) < 0)
        return p->rc;
    for (unsigned i = 0; i < WEBCONFIG_CLIENT_AUTH_COUNT; i++) {
        if (strcmp(s, client_auth_names[i]) == 0) {
            p->cfg->client_auth = (enum webconfig_client_auth)i;
            return 0;
        }
    }
    return fail(p, v, key,
                "'%s' is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, "
                "VerifyClientCertIfGiven, RequireAndVerifyClientCert",
                s);
}

/* Visit each pair of a mapping with its key as a string; duplicate keys are
 * an error (as in the exporter toolkit's strict YAML). */
typedef int (*pair_fn)(struct parse *p, const char *key, const yaml_node_t *k,
                       const yaml_node_t *v);

static int each_pair(struct parse *p, const yaml_node_t *map, const char *what, pair_fn fn)
{
    if (is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE)
        return fail(p, map, what, "expected a mapping of keys to values");
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        const char *key;
        if (k == NULL || v == NULL)
            return fail(p, map, what, "malformed mapping");
        if (k->type != YAML_SCALAR_NODE || get_string(p, k, what, &key) < 0)
            return fail(p, k, what, "a key must be a string");
        for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
            const yaml_node_t *pk = yaml_document_get_node(p->doc, prev->key);
            if (pk->type == YAML_SCALAR_NODE && strcmp(scalar(pk), key) == 0)
                return fail(p, k, key, "duplicate key");
        }
        if (fn(p, key, k, v) < 0)
            return p->rc;
    }
    return 0;
}

static int tls_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
    struct webconfig *c = p->cfg;
    if (strcmp(key, "cert_file") == 0)
        return set_path(p, v, key, &c->cert_file);
    if (strcmp(key, "key_file") == 0)
        return set_path(p, v, key, &c->key_file);
    if (strcmp(key, "client_ca_file") == 0)
        return set_path(p, v, key, &c->client_ca_file);
    if (strcmp(key, "cert") == 0)
        return set_string(p, v, key, &c->cert_pem);
    if (strcmp(key, "key") == 0)
        return set_string(p, v, key, &c->key_pem);
    if (strcmp(key, "client_ca") == 0)
        return set_string(p, v, key, &c->client_ca_pem);
    if (strcmp(key, "client_auth_type") == 0)
        return is_null(v) ? 0 : set_client_auth(p, v, key);
    if (strcmp(key, "min_version") == 0)
        return is_null(v) ? 0 : set_version(p, v, key, &c->min_version);
    if (strcmp(key, "max_version") == 0)
        return is_null(v) ? 0 : set_version(p, v, key, &c->max_version);
    if (strcmp(key, "prefer_server_cipher_suites") == 0)
        return is_null(v) ? 0 : get_bool(p, v, key, &c->prefer_server_ciphers);
    if (strcmp(key, "cipher_suites") == 0)
        return refuse_list(p, v, key, "GnuTLS's default suites for the allowed versions are used");
    if (strcmp(key, "curve_preferences") == 0)
        return refuse_list(p, v, key, "GnuTLS's default groups are used");
    if (strcmp(key, "client_allowed_sans") == 0)
        return refuse_list(p, v, key, "client certificates are checked against client_ca_file only");
    return fail(p, k, key, "unknown key in tls_server_config");
}

static int http_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
    if (strcmp(key, "http2") == 0) {
        bool on = false;
        if (is_null(v) || get_bool(p, v, key, &on) < 0)
            return is_null(v) ? 0 : -1;
        return on ? fail(p, v, key, "not supported: the endpoint speaks HTTP/1.1 only "
                                    "(set false or remove it)")
                  : 0;
    }
    if (strcmp(key, "headers") == 0) {
        if (is_null(v) || (v->type == YAML_MAPPING_NODE &&
                           v->data.mapping.pairs.top == v->data.mapping.pairs.start))
            return 0;
        return fail(p, v, key, "not supported: the endpoint sets its own response headers");
    }
    return fail(p, k, key, "unknown key in http_server_config");
}

/* bcrypt: $2a$, $2b$ or $2y$, a two-digit cost 04..31, '$', then 22
 * characters of salt and 31 of hash from bcrypt's base64 alphabet. */
static bool is_bcrypt(const char *h)
{
    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || strchr("aby", h[2]) == NULL ||
        h[3] != '$' || h[6] != '$')
        return false;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9')
        return false;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31)
        return false;
    return strspn(h + 7, "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 53;
}

static int user_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
    struct webconfig *c = p->cfg;
    const char *hash;
    if (key[0] == '\0' || strchr(key, ':') != NULL)
        return fail(p, k, "basic_auth_users", "user name '%s' is empty or holds a ':'", key);
    if (get_string(p, v, key, &hash) < 0)
        return p->rc;
    if (!is_bcrypt(hash))
        return fail(p, v, key, "not a bcrypt hash ($2y$, $2b$ or $2a$ with a cost of 04 to 31; "
                               "make one with htpasswd -nBC 10 '' | tr -d ':\\n')");
    struct webconfig_user *u = realloc(c->users, (c->nusers + 1) * sizeof *u);
    if (u == NULL)
        return no_memory(p);
    c->users = u;
    u[c->nusers].name = strdup(key);
    u[c->nusers].hash = strdup(hash);
    c->nusers++;
    if (u[c->nusers - 1].name == NULL || u[c->nusers - 1].hash == NULL)
        return no_memory(p);
    return 0;
}

static int top_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v)
{
    if (strcmp(key, "tls_server_config") == 0)
        return each_pair(p, v, key, tls_pair);
    if (strcmp(key, "http_server_config") == 0)
        return each_pair(p, v, key, http_pair);
    if (strcmp(key, "basic_auth_users") == 0)
        return each_pair(p, v, key, user_pair);
    if (strcmp(key, "rate_limit") == 0) {
        if (is_null(v))
            return 0;
        return fail(p, v, key, "not supported: the endpoint limits connections per address "
                               "instead");
    }
    return fail(p, k, key, "unknown key (expected tls_server_config, http_server_config, "
                           "basic_auth_users)");
}

/* Rules that span keys, checked once the whole file is read. */
static int check_tls(struct parse *p, const yaml_node_t *root)
{
    struct webconfig *c = p->cfg;
    const char *tls = "tls_server_config";
    if (c->cert_file != NULL && c->cert_pem != NULL)
        return fail(p, root, tls, "cert and cert_file are mutually exclusive");
    if (c->key_file != NULL && c->key_pem != NULL)
        return fail(p, root, tls, "key and key_file are mutually exclusive");
    if (c->client_ca_file != NULL && c->client_ca_pem != NULL)
        return fail(p, root, tls, "client_ca and client_ca_file are mutually exclusive");
    bool has_cert = c->cert_file != NULL || c->cert_pem != NULL;
    bool has_key = c->key_file != NULL || c->key_pem != NULL;
    bool has_ca = c->client_ca_file != NULL || c->client_ca_pem != NULL;
    bool any = has_cert || has_key || has_ca || c->client_auth != WEBCONFIG_NO_CLIENT_CERT;
    if (any && !has_cert)
        return fail(p, root, tls, "cert_file is missing (the server's certificate)");
    if (any && !has_key)
        return fail(p, root, tls, "key_file is missing (the server's private key)");
    if (has_ca && c->client_auth == WEBCONFIG_NO_CLIENT_CERT)
        return fail(p, root, tls, "client_ca_file is set but client_auth_type is NoClientCert "
                                  "(use RequireAndVerifyClientCert)");
    if (!has_ca && (c->client_auth == WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN ||
                    c->client_auth == WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT))
        return fail(p, root, tls, "client_auth_type %s needs client_ca_file",
                    client_auth_names[c->client_auth]);
    if (c->min_version > c->max_version)
        return fail(p, root, tls, "min_version %s is above max_version %s",
                    tls_version_names[c->min_version], tls_version_names[c->max_version]);
    c->tls = has_cert;
    return 0;
}

static void yaml_error(struct parse *p, const yaml_parser_t *y)
{
    const char *what = y->problem != NULL ? y->problem : "malformed YAML";
    if (y->error == YAML_MEMORY_ERROR) {
        no_memory(p);
        return;
    }
    p->rc = -EINVAL;
    snprintf(p->err, p->err_cap, "%s:%lu: bad YAML: %s%s%s", p->name,
             (unsigned long)y->problem_mark.line + 1, what, y->context != NULL ? " " : "",
             y->context != NULL ? y->context : "");
}

int webconfig_parse(const char *buf, size_t len, const char *name, const char *base_dir,
                    struct webconfig **out, char *err, size_t err_cap)
{
    struct parse p = { .name = name, .base_dir = base_dir, .err = err, .err_cap = err_cap };
    *out = NULL;
    p.cfg = calloc(1, sizeof *p.cfg);
    if (p.cfg == NULL)
        return no_memory(&p), p.rc;
    p.cfg->min_version = WEBCONFIG_TLS12;
    p.cfg->max_version = WEBCONFIG_TLS13;
    p.cfg->prefer_server_ciphers = true;
    if (base_dir != NULL && base_dir[0] == '\0')
        p.base_dir = NULL;

    yaml_parser_t y;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&y)) {
        webconfig_free(p.cfg);
        return no_memory(&p), p.rc;
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&y, &doc)) {
        yaml_error(&p, &y);
        goto done_parser;
    }
    p.doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE)
            fail(&p, root, NULL, "expected a mapping (tls_server_config, basic_auth_users ...)");
        else if (each_pair(&p, root, NULL, top_pair) == 0)
            check_tls(&p, root);
    }
    if (p.rc == 0 && root != NULL) {
        /* A second document would be ignored: refuse it instead. */
        yaml_document_t next;
        if (!yaml_parser_load(&y, &next)) {
            yaml_error(&p, &y);
        } else {
            if (yaml_document_get_root_node(&next) != NULL)
                fail(&p, yaml_document_get_root_node(&next), NULL,
                     "a second YAML document (only one is read)");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
done_parser:
    yaml_parser_delete(&y);
    if (p.rc != 0) {
        webconfig_free(p.cfg);
        return p.rc;
    }
    *out = p.cfg;
    return 0;
}

/* Read a whole regular file of at most WEBCONFIG_MAX_FILE bytes, NUL-
 * terminated. Returns the length or a negative errno. */
static long read_file(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    long rc = -EISDIR;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if (!S_ISREG(st.st_mode))
        goto done;
    rc = -EFBIG;
    if (st.st_size > (off_t)WEBCONFIG_MAX_FILE)
        goto done;
    rc = -ENOMEM;
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        goto done;
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* a file that shrank while read: take what is there */
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    rc = (long)n;
done:
    close(fd);
    return rc;
}

static const char *read_error(long rc)
{
    return rc == -EFBIG ? "larger than 1 MiB" : rc == -EISDIR ? "not a regular file"
                                                              : strerror((int)-rc);
}

/* Read the PEM file a key names into *pem (unless inline PEM is set). */
static int load_pem(const char *name, const char *key, const char *path, char **pem, char *err,
                    size_t err_cap)
{
    if (path == NULL)
        return 0;
    long rc = read_file(path, pem);
    if (rc < 0) {
        snprintf(err, err_cap, "%s: %s %s: %s", name, key, path, read_error(rc));
        return (int)rc;
    }
    if (strstr(*pem, "-----BEGIN ") == NULL) {
        snprintf(err, err_cap, "%s: %s %s: not a PEM file (no -----BEGIN line)", name, key, path);
        return -EINVAL;
    }
    return 0;
}

int webconfig_load(const char *path, struct webconfig **out, char *err, size_t err_cap)
{
    *out = NULL;
    char *buf = NULL;
    long len = read_file(path, &buf);
    if (len < 0) {
        snprintf(err, err_cap, "%s: %s", path, read_error(len));
        return (int)len;
    }
    char *dir = strdup(path);
    if (dir == NULL) {
        free(buf);
        snprintf(err, err_cap, "%s: out of memory", path);
        return -ENOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        dir[0] = '\0'; /* relative to the working directory, like the file */
    else
        slash[slash == dir ? 1 : 0] = '\0';
    struct webconfig *c;
    int rc = webconfig_parse(buf, (size_t)len, path, dir, &c, err, err_cap);
    free(buf);
    free(dir);
    if (rc < 0)
        return rc;
    if ((rc = load_pem(path, "cert_file", c->cert_file, &c->cert_pem, err, err_cap)) < 0 ||
        (rc = load_pem(path, "key_file", c->key_file, &c->key_pem, err, err_cap)) < 0 ||
        (rc = load_pem(path, "client_ca_file", c->client_ca_file, &c->client_ca_pem, err,
                       err_cap)) < 0) {
        webconfig_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
