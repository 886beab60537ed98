/* Integration: tcpmsgd --web-config. Each case makes a CA, a server
 * certificate for 127.0.0.1, a client certificate and a self-signed impostor
 * with openssl, a bcrypt hash with libcrypt, then talks to the endpoint with
 * curl: 401 without or with wrong credentials, 200 with them, /healthz open,
 * plain HTTP refused on the TLS port, client certificates required and
 * verified, and a bad file stopping the start with exit status 1. The
 * refusals are checked against tcpmsg_http_auth_failures_total exactly.
 * Each case runs alone: test_https CASE.
 */
#include <crypt.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD "correct horse"

struct pki {
    char dir[128];
    char hash[CRYPT_OUTPUT_SIZE];
};

static const char *program(const char *name)
{
    static char found[4][256];
    static unsigned next;
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/bin:/bin");
    char *save = NULL;
    char *res = found[next++ % 4];
    res[0] = '\0';
    for (char *d = strtok_r(copy, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(res, 256, "%s/%s", d, name);
        if (access(res, X_OK) == 0)
            break;
        res[0] = '\0';
    }
    free(copy);
    if (res[0] == '\0')
        fail_msg("%s not found in PATH (run .ci/setup)", name);
    return res;
}

/* Run openssl with the arguments (NULL-terminated) in the pki directory. */
static void openssl(const struct pki *p, const char *first, ...)
{
    const char *argv[32] = { "openssl" };
    size_t n = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char cwd[512];
    IT_CHECK(getcwd(cwd, sizeof cwd) != NULL);
    IT_CHECK(chdir(p->dir) == 0);
    struct it_run r;
    int rc = it_run(program("openssl"), argv, 20000, &r);
    IT_CHECK(chdir(cwd) == 0);
    if (rc < 0 || r.exit_code != 0)
        fail_msg("openssl %s failed (%d): %s", first, rc < 0 ? rc : r.exit_code,
                 rc < 0 ? "" : r.err);
    it_run_free(&r);
}

static void write_file(const struct pki *p, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* An EC key and a certificate signed by the CA (or self-signed when ca is
 * NULL), with the extensions of ext. */
static void make_cert(const struct pki *p, const char *name, const char *cn, const char *ca,
                      const char *ext)
{
    char key[64], csr[64], crt[64], extf[64], subj[64], ca_crt[64], ca_key[64];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(csr, sizeof csr, "%s.csr", name);
    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(extf, sizeof extf, "%s.ext", name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    write_file(p, extf, ext);
    if (ca == NULL) {
        openssl(p, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", subj,
                "-addext", "basicConstraints=critical,CA:TRUE", NULL);
        return;
    }
    snprintf(ca_crt, sizeof ca_crt, "%s.crt", ca);
    snprintf(ca_key, sizeof ca_key, "%s.key", ca);
    openssl(p, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", subj, NULL);
    openssl(p, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", extf, NULL);
}

/* The directory of keys goes away at exit, whatever happened: cmocka skips
 * the teardown when the setup fails (openssl missing, say). */
static char g_pki_dir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_pki_dir(void)
{
    if (g_pki_dir[0] != '\0')
        nftw(g_pki_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_pki_dir[0] = '\0';
}

static int pki_setup(void **state)
{
    struct pki *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -1;
    const char *t = getenv("TMPDIR");
    snprintf(p->dir, sizeof p->dir, "%s/tcpmsg-webcfg.XXXXXX", t != NULL && *t ? t : "/tmp");
    if (mkdtemp(p->dir) == NULL) {
        free(p);
        return -1;
    }
    snprintf(g_pki_dir, sizeof g_pki_dir, "%s", p->dir);
    atexit(remove_pki_dir);
    *state = p;
    make_cert(p, "ca", "tcpmsg test CA", NULL, "");
    make_cert(p, "server", "127.0.0.1", "ca",
              "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    make_cert(p, "client", "scraper", "ca", "extendedKeyUsage=clientAuth\n");
    make_cert(p, "impostor", "scraper", NULL, "");
    /* The hash is made now, from a fresh salt, at bcrypt's lowest cost. */
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof salt) == NULL ||
        crypt_rn(PASSWORD, salt, cd, sizeof *cd) == NULL)
        fail_msg("libcrypt cannot make a bcrypt hash");
    snprintf(p->hash, sizeof p->hash, "%s", cd->output);
    free(cd);
    return 0;
}

static int pki_teardown(void **state)
{
    struct pki *p = *state;
    remove_pki_dir();
    int rc = access(p->dir, F_OK) == 0 ? -1 : 0; /* a file left behind fails loudly */
    free(p);
    return rc;
}

/* Write web.yml with the TLS section tls (may be "") and the user alice. */
static void write_config(const struct pki *p, const char *tls)
{
    char text[1024];
    snprintf(text, sizeof text, "%sbasic_auth_users:\n  alice: %s\n", tls, p->hash);
    write_file(p, "web.yml", text);
}

static struct it_server *start(const struct pki *p)
{
    char arg[256];
    snprintf(arg, sizeof arg, "%s/web.yml", p->dir);
    const char *args[] = { "--web-config", arg, NULL };
    struct it_server *s = it_server_start(args, 0);
    if (s == NULL)
        fail_msg("tcpmsgd did not start with %s", arg);
    return s;
}

/* curl a path of the endpoint: returns curl's exit status (0 once a reply
 * came, whatever its status) and sets *status (0 when none came). extra are
 * more curl arguments (NULL-terminated), e.g. "-u", "alice:x". */
static int curl(const struct pki *p, const struct it_server *s, const char *scheme,
                const char *path, int *status, char *headers, size_t cap, ...)
{
    char url[128], ca[256], hdr[256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", scheme, s->http_port, path);
    snprintf(ca, sizeof ca, "%s/ca.crt", p->dir);
    snprintf(hdr, sizeof hdr, "%s/headers.txt", p->dir);
    const char *argv[32] = { "curl", "-s", "-o", "/dev/null", "-D", hdr, "-w", "%{http_code}",
                             "--max-time", "10", "--cacert", ca };
    size_t n = 12;
    va_list ap;
    va_start(ap, cap);
    for (const char *a = va_arg(ap, const char *); a != NULL && n < 31;
         a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n++] = url;
    argv[n] = NULL;
    unlink(hdr);
    struct it_run r;
    if (it_run(program("curl"), argv, 15000, &r) < 0)
        fail_msg("cannot run curl");
    *status = atoi(r.out);
    int rc = r.exit_code;
    it_run_free(&r);
    if (headers != NULL) {
        headers[0] = '\0';
        FILE *f = fopen(hdr, "r");
        if (f != NULL) {
            size_t got = fread(headers, 1, cap - 1, f);
            headers[got] = '\0';
            fclose(f);
        }
    }
    return rc;
}

/* The value of one sample of the authenticated /metrics, or fail. */
static double metric(const struct pki *p, const struct it_server *s, const char *series,
                     const char *const *cert_args)
{
    char out[300];
    snprintf(out, sizeof out, "%s/metrics.txt", p->dir);
    char url[128], ca[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/metrics?format=prometheus", s->http_port);
    snprintf(ca, sizeof ca, "%s/ca.crt", p->dir);
    const char *argv[24] = { "curl", "-sS", "-f", "--max-time", "10", "--cacert", ca, "-u",
                             "alice:" PASSWORD, "-o", out };
    size_t n = 11;
    for (; cert_args != NULL && *cert_args != NULL && n < 22; cert_args++)
        argv[n++] = *cert_args;
    argv[n++] = url;
    argv[n] = NULL;
    struct it_run r;
    if (it_run(program("curl"), argv, 15000, &r) < 0 || r.exit_code != 0)
        fail_msg("authenticated GET /metrics failed: curl exit %d %s", r.exit_code, r.err);
    it_run_free(&r);
    FILE *f = fopen(out, "r");
    IT_CHECK(f != NULL);
    static char text[1 << 16];
    size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = '\0';
    fclose(f);
    double v;
    if (!it_prom_sample(text, series, &v))
        fail_msg("no sample %s in /metrics", series);
    return v;
}

#define TLS_SECTION "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"

/* HTTPS with basic auth: exact statuses, the challenge header, /healthz
 * open, plain HTTP refused, and every refusal counted once. */
static void test_tls_basic_auth(void **state)
{
    struct pki *p = *state;
    write_config(p, TLS_SECTION);
    struct it_server *s = start(p);
    IT_CHECK(it_log_count(s, "http endpoint listening", "tls=on", "auth=on", NULL) == 1);
    int status;
    char head[4096];

    IT_CHECK(curl(p, s, "https", "/metrics", &status, head, sizeof head, NULL) == 0);
    assert_int_equal(status, 401);
    IT_CHECK(strstr(head, "WWW-Authenticate: Basic realm=\"tcpmsg\"\r\n") != NULL);
    IT_CHECK(curl(p, s, "https", "/api/connections", &status, NULL, 0, NULL) == 0);
    assert_int_equal(status, 401);
    IT_CHECK(curl(p, s, "https", "/", &status, NULL, 0, NULL) == 0); /* the status page too */
    assert_int_equal(status, 401);
    IT_CHECK(curl(p, s, "https", "/metrics", &status, head, sizeof head, "-u", "alice:wrong",
                  NULL) == 0);
    assert_int_equal(status, 401);
    IT_CHECK(strstr(head, "WWW-Authenticate: Basic realm=\"tcpmsg\"\r\n") != NULL);
    IT_CHECK(curl(p, s, "https", "/metrics", &status, NULL, 0, "-u", "bob:" PASSWORD, NULL) == 0);
    assert_int_equal(status, 401);
    IT_CHECK(curl(p, s, "https", "/metrics", &status, NULL, 0, "-u", "alice:" PASSWORD,
                  NULL) == 0);
    assert_int_equal(status, 200);
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, NULL) == 0);
    assert_int_equal(status, 200);
    /* Plain HTTP on the TLS port gets no HTTP answer. */
    IT_CHECK(curl(p, s, "http", "/healthz", &status, NULL, 0, NULL) != 0);
    assert_int_equal(status, 0);
    struct it_http r;
    int rc = it_http_get(s->http_port, "/healthz", &r);
    IT_CHECK(rc < 0 || r.status == 0);
    if (rc == 0)
        it_http_free(&r);

    /* The refusals, each counted once: 3 without credentials, 2 denied,
     * 2 failed handshakes (curl and the harness over plain HTTP). */
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"missing\"}", NULL) == 3);
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"denied\"}", NULL) == 2);
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"throttled\"}", NULL) == 0);
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"tls_handshake\"}", NULL) == 2);
    IT_CHECK(metric(p, s, "tcpmsg_http_responses_total{class=\"4xx\"}", NULL) == 5);
    it_server_free(s);
}

/* A TLS handshake that never completes holds a slot no longer than the
 * header deadline (5 s): a client that connects and says nothing, and one
 * that sends the first bytes of a ClientHello and stops, are both cut. */
static void test_stalled_handshake_cut(void **state)
{
    struct pki *p = *state;
    write_config(p, TLS_SECTION);
    struct it_server *s = start(p);
    int silent = it_connect(s->http_port);
    int partial = it_connect(s->http_port);
    IT_CHECK(silent >= 0 && partial >= 0);
    static const uint8_t hello_start[] = { 0x16, 0x03, 0x01, 0x02 }; /* a record header, cut */
    assert_int_equal(it_send_all(partial, hello_start, sizeof hello_start, IT_IO_TIMEOUT_MS), 0);
    int64_t t0 = it_now_ms();
    int rc1 = it_expect_eof(silent, 10000), rc2 = it_expect_eof(partial, 10000);
    int64_t took = it_now_ms() - t0;
    print_message("stalled handshakes cut after %lld ms\n", (long long)took);
    IT_CHECK(rc1 == 0 || rc1 == -ECONNRESET);
    IT_CHECK(rc2 == 0 || rc2 == -ECONNRESET);
    IT_CHECK(took >= 4000 && took <= 8000);
    close(silent);
    close(partial);
    IT_CHECK(metric(p, s, "tcpmsg_http_connections_rejected_total{reason=\"header_timeout\"}",
                    NULL) == 2);
    it_server_free(s);
}

/* RequireAndVerifyClientCert: no certificate and a self-signed one fail the
 * handshake; the CA-signed one gets in (and still needs the password). */
static void test_client_cert_required(void **state)
{
    struct pki *p = *state;
    write_config(p, TLS_SECTION "  client_auth_type: RequireAndVerifyClientCert\n"
                                "  client_ca_file: ca.crt\n");
    struct it_server *s = start(p);
    IT_CHECK(it_log_count(s, "http endpoint listening", "tls=on", "auth=on",
                          "client_auth=RequireAndVerifyClientCert", NULL) == 1);
    char cert[256], key[256], bad_cert[256], bad_key[256];
    snprintf(cert, sizeof cert, "%s/client.crt", p->dir);
    snprintf(key, sizeof key, "%s/client.key", p->dir);
    snprintf(bad_cert, sizeof bad_cert, "%s/impostor.crt", p->dir);
    snprintf(bad_key, sizeof bad_key, "%s/impostor.key", p->dir);
    int status;

    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, NULL) != 0);
    assert_int_equal(status, 0);
    IT_CHECK(curl(p, s, "https", "/metrics", &status, NULL, 0, "-u", "alice:" PASSWORD, NULL) != 0);
    assert_int_equal(status, 0);
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, "--cert", bad_cert, "--key",
                  bad_key, NULL) != 0);
    assert_int_equal(status, 0);
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, "--cert", cert, "--key", key,
                  NULL) == 0);
    assert_int_equal(status, 200);
    IT_CHECK(curl(p, s, "https", "/metrics", &status, NULL, 0, "--cert", cert, "--key", key,
                  NULL) == 0);
    assert_int_equal(status, 401);
    const char *with_cert[] = { "--cert", cert, "--key", key, NULL };
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"tls_handshake\"}",
                    with_cert) == 3);
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"missing\"}", with_cert) == 1);
    it_server_free(s);
}

/* VerifyClientCertIfGiven: no certificate is fine, a CA-signed one is fine,
 * a self-signed one is refused. */
static void test_client_cert_if_given(void **state)
{
    struct pki *p = *state;
    write_config(p, TLS_SECTION "  client_auth_type: VerifyClientCertIfGiven\n"
                                "  client_ca_file: ca.crt\n");
    struct it_server *s = start(p);
    char cert[256], key[256], bad_cert[256], bad_key[256];
    snprintf(cert, sizeof cert, "%s/client.crt", p->dir);
    snprintf(key, sizeof key, "%s/client.key", p->dir);
    snprintf(bad_cert, sizeof bad_cert, "%s/impostor.crt", p->dir);
    snprintf(bad_key, sizeof bad_key, "%s/impostor.key", p->dir);
    int status;
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, NULL) == 0);
    assert_int_equal(status, 200);
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, "--cert", cert, "--key", key,
                  NULL) == 0);
    assert_int_equal(status, 200);
    IT_CHECK(curl(p, s, "https", "/healthz", &status, NULL, 0, "--cert", bad_cert, "--key",
                  bad_key, NULL) != 0);
    assert_int_equal(status, 0);
    IT_CHECK(metric(p, s, "tcpmsg_http_auth_failures_total{reason=\"tls_handshake\"}", NULL) == 1);
    it_server_free(s);
}

/* Basic auth without TLS works, with a warning in the log. */
static void test_auth_without_tls(void **state)
{
    struct pki *p = *state;
    write_config(p, "");
    struct it_server *s = start(p);
    IT_CHECK(it_log_count(s, "http endpoint listening", "tls=off", "auth=on", NULL) == 1);
    IT_CHECK(it_log_count(s, "basic auth without TLS", NULL) == 1);
    struct it_http r;
    IT_CHECK(it_http_get(s->http_port, "/metrics", &r) == 0);
    assert_int_equal(r.status, 401);
    it_http_free(&r);
    /* "alice:correct horse" in base64. */
    IT_CHECK(it_http_request(s->http_port, "GET", "/metrics",
                             "Authorization: Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==\r\n", NULL,
                             IT_IO_TIMEOUT_MS, &r) == 0);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    IT_CHECK(it_http_request(s->http_port, "GET", "/metrics", "Authorization: Basic !!!\r\n",
                             NULL, IT_IO_TIMEOUT_MS, &r) == 0);
    assert_int_equal(r.status, 401);
    it_http_free(&r);
    IT_CHECK(it_http_get(s->http_port, "/healthz", &r) == 0);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    it_server_free(s);
}

/* tcpmsgd with args; its exit code and standard error (caller frees r). */
static int run_tcpmsgd(const char *const *args, struct it_run *r)
{
    const char *argv[16] = { "tcpmsgd", "--bind", "127.0.0.1", "--port", "0", "--http-port", "0" };
    size_t n = 7;
    for (; *args != NULL && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    if (it_run(TCPMSGD_PATH, argv, 10000, r) < 0)
        fail_msg("cannot run tcpmsgd");
    return r->exit_code;
}

/* A web config that cannot be used stops the start: exit 1 and a message
 * naming the file, the line and the key. Option errors exit 2. */
static void test_bad_web_config(void **state)
{
    struct pki *p = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/web.yml", p->dir);
    struct it_run r;

    write_file(p, "web.yml", TLS_SECTION "  client_auth_typ: RequireAnyClientCert\n");
    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", path, NULL }, &r), 1);
    IT_CHECK(strstr(r.err, "cannot load the web config") != NULL);
    IT_CHECK(strstr(r.err, ":4: client_auth_typ: unknown key in tls_server_config") != NULL);
    IT_CHECK(strstr(r.err, "server is listening") == NULL);
    it_run_free(&r);

    write_file(p, "web.yml", "tls_server_config:\n  cert_file: gone.crt\n  key_file: server.key\n");
    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", path, NULL }, &r), 1);
    IT_CHECK(strstr(r.err, "gone.crt: No such file or directory") != NULL);
    it_run_free(&r);

    /* A key that is not the certificate's: GnuTLS refuses, tcpmsgd says so. */
    write_file(p, "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n");
    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", path, NULL }, &r), 1);
    IT_CHECK(strstr(r.err, "cannot start HTTPS") != NULL);
    it_run_free(&r);

    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", "/nonexistent/web.yml", NULL },
                                 &r), 1);
    IT_CHECK(strstr(r.err, "/nonexistent/web.yml: No such file or directory") != NULL);
    it_run_free(&r);

    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", NULL }, &r), 2);
    IT_CHECK(strstr(r.err, "--web-config needs a value") != NULL);
    it_run_free(&r);
    assert_int_equal(run_tcpmsgd((const char *[]){ "--web-config", path, "--no-http", NULL }, &r),
                     2);
    IT_CHECK(strstr(r.err, "--web-config configures the HTTP endpoint") != NULL);
    it_run_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_basic_auth, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_handshake_cut, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_client_cert_required, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_client_cert_if_given, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_auth_without_tls, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_bad_web_config, pki_setup, pki_teardown),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
