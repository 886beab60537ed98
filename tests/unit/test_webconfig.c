/* Unit tests for webconfig (src/webconfig.c): valid files and their
 * defaults, a table of every kind of refusal with the exact line and key the
 * message must name, paths relative to the file's directory, and the loader's
 * errors for PEM files that are missing or not PEM.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/webconfig.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* bcrypt of "secret" at cost 4. */
#define HASH "$2b$04$i9FkkRREl9h4qbRLFCboeOdRCSV0k.ptPLFXd4P8wnTsxgvIDBnPS"

static struct webconfig *parse_ok(const char *text, const char *base_dir)
{
    char err[512] = "";
    struct webconfig *c = NULL;
    int rc = webconfig_parse(text, strlen(text), "web.yml", base_dir, &c, err, sizeof err);
    if (rc != 0)
        fail_msg("parse failed (%d): %s\n--- input:\n%s", rc, err, text);
    assert_non_null(c);
    return c;
}

static void test_full_file(void **state)
{
    (void)state;
    struct webconfig *c = parse_ok("# a comment\n"
                                   "tls_server_config:\n"
                                   "  cert_file: server.crt\n"
                                   "  key_file: /etc/tcpmsg/server.key\n"
                                   "  client_auth_type: RequireAndVerifyClientCert\n"
                                   "  client_ca_file: ca/clients.pem\n"
                                   "  min_version: TLS13\n"
                                   "  max_version: TLS13\n"
                                   "  prefer_server_cipher_suites: false\n"
                                   "  cipher_suites: []\n"
                                   "http_server_config:\n"
                                   "  http2: false\n"
                                   "basic_auth_users:\n"
                                   "  alice: " HASH "\n"
                                   "  'bob smith': \"" HASH "\"\n",
                                   "/srv/conf");
    assert_true(c->tls);
    assert_string_equal(c->cert_file, "/srv/conf/server.crt");
    assert_string_equal(c->key_file, "/etc/tcpmsg/server.key"); /* absolute: as written */
    assert_string_equal(c->client_ca_file, "/srv/conf/ca/clients.pem");
    assert_null(c->cert_pem); /* the parser reads no file */
    assert_int_equal(c->client_auth, WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT);
    assert_int_equal(c->min_version, WEBCONFIG_TLS13);
    assert_int_equal(c->max_version, WEBCONFIG_TLS13);
    assert_false(c->prefer_server_ciphers);
    assert_int_equal(c->nusers, 2);
    assert_string_equal(c->users[0].name, "alice");
    assert_string_equal(c->users[0].hash, HASH);
    assert_string_equal(c->users[1].name, "bob smith");
    webconfig_free(c);
}

static void test_defaults_and_empty(void **state)
{
    (void)state;
    const char *empties[] = { "", "\n", "# nothing\n", "---\n", "~\n",
                              "tls_server_config:\nbasic_auth_users:\n" };
    for (size_t i = 0; i < COUNT_OF(empties); i++) {
        struct webconfig *c = parse_ok(empties[i], "/x");
        assert_false(c->tls);
        assert_null(c->cert_file);
        assert_int_equal(c->nusers, 0);
        assert_int_equal(c->client_auth, WEBCONFIG_NO_CLIENT_CERT);
        assert_int_equal(c->min_version, WEBCONFIG_TLS12);
        assert_int_equal(c->max_version, WEBCONFIG_TLS13);
        assert_true(c->prefer_server_ciphers);
        webconfig_free(c);
    }
    /* Basic auth alone is valid (served over plain HTTP). */
    struct webconfig *c = parse_ok("basic_auth_users:\n  alice: " HASH "\n", NULL);
    assert_false(c->tls);
    assert_int_equal(c->nusers, 1);
    webconfig_free(c);
}

static void test_relative_paths(void **state)
{
    (void)state;
    const char *text = "tls_server_config:\n  cert_file: a.crt\n  key_file: ../k/a.key\n";
    struct webconfig *c = parse_ok(text, "/etc/tcpmsg/");
    assert_string_equal(c->cert_file, "/etc/tcpmsg/a.crt"); /* no doubled slash */
    assert_string_equal(c->key_file, "/etc/tcpmsg/../k/a.key");
    webconfig_free(c);
    c = parse_ok(text, "conf"); /* a relative directory stays relative */
    assert_string_equal(c->cert_file, "conf/a.crt");
    webconfig_free(c);
    c = parse_ok(text, ""); /* the working directory */
    assert_string_equal(c->cert_file, "a.crt");
    webconfig_free(c);
}

static void test_inline_pem(void **state)
{
    (void)state;
    struct webconfig *c = parse_ok("tls_server_config:\n"
                                   "  cert: |\n"
                                   "    -----BEGIN CERTIFICATE-----\n"
                                   "    AAAA\n"
                                   "  key_file: k.pem\n",
                                   "/d");
    assert_true(c->tls);
    assert_null(c->cert_file);
    assert_string_equal(c->cert_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n");
    webconfig_free(c);
}

static void test_every_client_auth_type(void **state)
{
    (void)state;
    const char *ca[] = { "", "  client_ca_file: ca.pem\n", "", "  client_ca_file: ca.pem\n",
                         "  client_ca_file: ca.pem\n" };
    for (unsigned i = 0; i < WEBCONFIG_CLIENT_AUTH_COUNT; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: %s\n%s",
                 webconfig_client_auth_name((enum webconfig_client_auth)i), ca[i]);
        struct webconfig *c = parse_ok(text, "/d");
        assert_int_equal(c->client_auth, i);
        webconfig_free(c);
    }
}

/* A refused input and the exact message it must get. */
struct bad_case {
    const char *text;
    const char *err;
};

#define TLS "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"

static const struct bad_case bad[] = {
    /* Unknown keys, at every level. */
    { "tls_server_config: {}\nbasic_auth_user:\n  a: b\n",
      "web.yml:2: basic_auth_user: unknown key (expected tls_server_config, http_server_config, "
      "basic_auth_users)" },
    { TLS "  certfile: x\n", "web.yml:4: certfile: unknown key in tls_server_config" },
    { "http_server_config:\n  http3: true\n", "web.yml:2: http3: unknown key in http_server_config" },
    /* Bad YAML. */
    { "tls_server_config:\n  cert_file: [a\n", "web.yml:3: bad YAML: did not find expected ',' or ']' while parsing a flow sequence" },
    { "a: b\n c: d\n", "web.yml:2: bad YAML: mapping values are not allowed in this context" },
    { "tls_server_config:\n\tcert_file: a\n", "web.yml:2: bad YAML: found character that cannot start any token while scanning for the next token" },
    { "- a\n- b\n", "web.yml:1: expected a mapping (tls_server_config, basic_auth_users ...)" },
    { "tls_server_config: 3\n", "web.yml:1: tls_server_config: expected a mapping of keys to values" },
    { "basic_auth_users: {}\n---\nbasic_auth_users: {}\n",
      "web.yml:3: a second YAML document (only one is read)" },
    { TLS "  cert_file: d.pem\n", "web.yml:4: cert_file: duplicate key" },
    { TLS "  min_version: [TLS12]\n", "web.yml:4: min_version: expected a string" },
    /* A missing certificate or key. */
    { "tls_server_config:\n  key_file: k.pem\n",
      "web.yml:1: tls_server_config: cert_file is missing (the server's certificate)" },
    { "tls_server_config:\n  cert_file: c.pem\n",
      "web.yml:1: tls_server_config: key_file is missing (the server's private key)" },
    { "tls_server_config:\n  client_auth_type: RequireAnyClientCert\n",
      "web.yml:1: tls_server_config: cert_file is missing (the server's certificate)" },
    { TLS "  cert: x\n", "web.yml:1: tls_server_config: cert and cert_file are mutually exclusive" },
    /* Client certificates. */
    { TLS "  client_auth_type: RequireAndVerify\n",
      "web.yml:4: client_auth_type: 'RequireAndVerify' is not one of NoClientCert, "
      "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
      "RequireAndVerifyClientCert" },
    { TLS "  client_auth_type: RequireAndVerifyClientCert\n",
      "web.yml:1: tls_server_config: client_auth_type RequireAndVerifyClientCert needs "
      "client_ca_file" },
    { TLS "  client_auth_type: VerifyClientCertIfGiven\n",
      "web.yml:1: tls_server_config: client_auth_type VerifyClientCertIfGiven needs "
      "client_ca_file" },
    { TLS "  client_ca_file: ca.pem\n",
      "web.yml:1: tls_server_config: client_ca_file is set but client_auth_type is "
      "NoClientCert (use RequireAndVerifyClientCert)" },
    /* Versions. */
    { TLS "  min_version: TLS14\n",
      "web.yml:4: min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13" },
    { TLS "  min_version: TLS13\n  max_version: TLS12\n",
      "web.yml:1: tls_server_config: min_version TLS13 is above max_version TLS12" },
    { TLS "  prefer_server_cipher_suites: maybe\n",
      "web.yml:4: prefer_server_cipher_suites: expected true or false" },
    /* Known but unsupported: refused, never ignored. */
    { TLS "  cipher_suites:\n    - TLS_AES_128_GCM_SHA256\n",
      "web.yml:5: cipher_suites: not supported: GnuTLS's default suites for the allowed "
      "versions are used" },
    { TLS "  curve_preferences: [X25519]\n",
      "web.yml:4: curve_preferences: not supported: GnuTLS's default groups are used" },
    { TLS "  client_allowed_sans: [a.example]\n",
      "web.yml:4: client_allowed_sans: not supported: client certificates are checked against "
      "client_ca_file only" },
    { "http_server_config:\n  http2: true\n",
      "web.yml:2: http2: not supported: the endpoint speaks HTTP/1.1 only (set false or remove it)" },
    { "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
      "web.yml:3: headers: not supported: the endpoint sets its own response headers" },
    { "rate_limit:\n  interval: 1s\n  burst: 20\n",
      "web.yml:2: rate_limit: not supported: the endpoint limits connections per address instead" },
    /* Hashes that are not bcrypt, and bad user names. */
    { "basic_auth_users:\n  alice: secret\n",
      "web.yml:2: alice: not a bcrypt hash ($2y$, $2b$ or $2a$ with a cost of 04 to 31; make one "
      "with htpasswd -nBC 10 '' | tr -d ':\\n')" },
    { "basic_auth_users:\n  alice: $6$salt$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd\n",
      "web.yml:2: alice: not a bcrypt hash" },
    { "basic_auth_users:\n  alice: $2b$03$i9FkkRREl9h4qbRLFCboeOdRCSV0k.ptPLFXd4P8wnTsxgvIDBnPS\n",
      "web.yml:2: alice: not a bcrypt hash" }, /* cost 3 */
    { "basic_auth_users:\n  alice: $2b$04$i9FkkRREl9h4qbRLFCboeOdRCSV0k.ptPLFXd4P8wnTsxgvIDBnP\n",
      "web.yml:2: alice: not a bcrypt hash" }, /* one character short */
    { "basic_auth_users:\n  alice: $2x$04$i9FkkRREl9h4qbRLFCboeOdRCSV0k.ptPLFXd4P8wnTsxgvIDBnPS\n",
      "web.yml:2: alice: not a bcrypt hash" },
    { "basic_auth_users:\n  alice: [" HASH "]\n", "web.yml:2: alice: expected a string" },
    { "basic_auth_users:\n  'a:b': " HASH "\n",
      "web.yml:2: basic_auth_users: user name 'a:b' is empty or holds a ':'" },
    { "basic_auth_users:\n  '': " HASH "\n",
      "web.yml:2: basic_auth_users: user name '' is empty or holds a ':'" },
    { "basic_auth_users:\n  alice: " HASH "\n  alice: " HASH "\n", "web.yml:3: alice: duplicate key" },
    { "basic_auth_users:\n  [a]: " HASH "\n", "web.yml:2: basic_auth_users: a key must be a string" },
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        char err[512] = "";
        struct webconfig *c = (struct webconfig *)1;
        int rc = webconfig_parse(bad[i].text, strlen(bad[i].text), "web.yml", "/d", &c, err,
                                 sizeof err);
        if (rc != -EINVAL || c != NULL || strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
            fail_msg("case %zu: rc %d, error\n  '%s'\nwant\n  '%s'\n--- input:\n%s", i, rc, err,
                     bad[i].err, bad[i].text);
    }
}

/* The buffer is len bytes, not a C string: bytes after len are not read, and
 * a NUL inside a value is refused. */
static void test_buffer_bounds(void **state)
{
    (void)state;
    const char text[] = "basic_auth_users:\n  alice: " HASH "\nrate_limit: {burst: 1}\n";
    char err[256];
    struct webconfig *c;
    size_t upto = strlen("basic_auth_users:\n  alice: " HASH "\n");
    assert_int_equal(webconfig_parse(text, upto, "web.yml", NULL, &c, err, sizeof err), 0);
    assert_int_equal(c->nusers, 1);
    webconfig_free(c);
    const char nul[] = "basic_auth_users:\n  alice: \"a\\0b\"\n";
    assert_int_equal(webconfig_parse(nul, strlen(nul), "web.yml", NULL, &c, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "web.yml:2: alice: contains a NUL byte");
    /* A tiny error buffer truncates, never overflows. */
    char small[8];
    assert_int_equal(webconfig_parse("x: 1\n", 5, "web.yml", NULL, &c, small, sizeof small),
                     -EINVAL);
    assert_string_equal(small, "web.yml");
    webconfig_free(NULL);
}

/* --- webconfig_load: the file and the PEM files it names ----------------- */

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tcpmsg-webconfig.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/tls", tmpdir);
    return mkdir(sub, 0700);
}

static int remove_dir(void **state)
{
    (void)state;
    const char *names[] = { "tls/s.crt", "tls/s.key", "tls/ca.pem", "tls/web.yml", "bad.yml",
                            "text.pem", "tls" };
    for (size_t i = 0; i < COUNT_OF(names); i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        remove(path);
    }
    return rmdir(tmpdir);
}

static void test_load_relative_to_file(void **state)
{
    (void)state;
    write_file("tls/s.crt", "-----BEGIN CERTIFICATE-----\ncert\n");
    write_file("tls/s.key", "-----BEGIN PRIVATE KEY-----\nkey\n");
    write_file("tls/ca.pem", "-----BEGIN CERTIFICATE-----\nca\n");
    write_file("tls/web.yml", "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                              "  client_auth_type: RequireAndVerifyClientCert\n"
                              "  client_ca_file: ./ca.pem\n");
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/tls/web.yml", tmpdir);
    struct webconfig *c;
    int rc = webconfig_load(path, &c, err, sizeof err);
    if (rc != 0)
        fail_msg("load: %s", err);
    char want[256];
    snprintf(want, sizeof want, "%s/tls/s.crt", tmpdir);
    assert_string_equal(c->cert_file, want);
    assert_string_equal(c->cert_pem, "-----BEGIN CERTIFICATE-----\ncert\n");
    assert_string_equal(c->key_pem, "-----BEGIN PRIVATE KEY-----\nkey\n");
    assert_string_equal(c->client_ca_pem, "-----BEGIN CERTIFICATE-----\nca\n");
    webconfig_free(c);
}

static void test_load_errors(void **state)
{
    (void)state;
    char path[256], err[512], want[600];
    struct webconfig *c = (struct webconfig *)1;

    snprintf(path, sizeof path, "%s/none.yml", tmpdir);
    assert_int_equal(webconfig_load(path, &c, err, sizeof err), -ENOENT);
    assert_null(c);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/tls", tmpdir); /* a directory */
    assert_int_equal(webconfig_load(path, &c, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "%s: not a regular file", path);
    assert_string_equal(err, want);

    /* A certificate file that is not there: the message names the file. */
    write_file("bad.yml", "tls_server_config:\n  cert_file: tls/gone.crt\n  key_file: tls/s.key\n");
    snprintf(path, sizeof path, "%s/bad.yml", tmpdir);
    assert_int_equal(webconfig_load(path, &c, err, sizeof err), -ENOENT);
    assert_null(c);
    snprintf(want, sizeof want, "%s: cert_file %s/tls/gone.crt: No such file or directory", path,
             tmpdir);
    assert_string_equal(err, want);

    /* A file that is not PEM. */
    write_file("text.pem", "just text\n");
    write_file("bad.yml", "tls_server_config:\n  cert_file: tls/s.crt\n  key_file: text.pem\n");
    assert_int_equal(webconfig_load(path, &c, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s: key_file %s/text.pem: not a PEM file (no -----BEGIN line)",
             path, tmpdir);
    assert_string_equal(err, want);

    /* A parse error carries the path as given. */
    write_file("bad.yml", "tls_server_config:\n  cert_fil: x\n");
    assert_int_equal(webconfig_load(path, &c, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:2: cert_fil: unknown key in tls_server_config", path);
    assert_string_equal(err, want);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(webconfig_client_auth_name(WEBCONFIG_NO_CLIENT_CERT), "NoClientCert");
    assert_string_equal(webconfig_client_auth_name(WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT),
                        "RequireAndVerifyClientCert");
    assert_string_equal(webconfig_client_auth_name(WEBCONFIG_CLIENT_AUTH_COUNT), "?");
    assert_string_equal(webconfig_tls_version_name(WEBCONFIG_TLS10), "TLS10");
    assert_string_equal(webconfig_tls_version_name(WEBCONFIG_TLS13), "TLS13");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults_and_empty),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_inline_pem),
        cmocka_unit_test(test_every_client_auth_type),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_buffer_bounds),
        cmocka_unit_test(test_load_relative_to_file),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
