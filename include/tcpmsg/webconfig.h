/* webconfig: the web configuration file of the HTTP endpoint (--web-config),
 * in the YAML format of the Prometheus exporter toolkit: TLS settings under
 * tls_server_config, bcrypt password hashes under basic_auth_users. A parser
 * from bytes to a struct, and a loader that reads the file and the PEM files
 * it names. It neither serves nor checks anything: http.c and basicauth.c do.
 *
 * Strict like the exporter toolkit: an unknown key is an error, and a key we
 * know but cannot honour (cipher_suites, rate_limit, http2: true ...) is
 * refused with a message saying so, never ignored.
 */
#ifndef TCPMSG_WEBCONFIG_H
#define TCPMSG_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Client certificate policies, named as in Go's crypto/tls: enum value,
 * spelling in the file, what the server does. */
#define WEBCONFIG_CLIENT_AUTH(X)                                                              \
    X(WEBCONFIG_NO_CLIENT_CERT, "NoClientCert", "asks for no certificate")                   \
    X(WEBCONFIG_REQUEST_CLIENT_CERT, "RequestClientCert", "asks for one, checks nothing")    \
    X(WEBCONFIG_REQUIRE_ANY_CLIENT_CERT, "RequireAnyClientCert",                              \
      "requires one, does not verify it")                                                     \
    X(WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN, "VerifyClientCertIfGiven",                       \
      "verifies one against client_ca_file if the client sends it")                           \
    X(WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT, "RequireAndVerifyClientCert",                 \
      "requires one signed by client_ca_file")

enum webconfig_client_auth {
#define WEBCONFIG_CA_ENUM(name, spelling, text) name,
    WEBCONFIG_CLIENT_AUTH(WEBCONFIG_CA_ENUM)
#undef WEBCONFIG_CA_ENUM
    WEBCONFIG_CLIENT_AUTH_COUNT
};

/* TLS protocol versions, oldest first ("TLS10" ... "TLS13" in the file). */
enum webconfig_tls_version {
    WEBCONFIG_TLS10,
    WEBCONFIG_TLS11,
    WEBCONFIG_TLS12,
    WEBCONFIG_TLS13,
};

struct webconfig_user {
    char *name;
    char *hash; /* bcrypt: "$2a$", "$2b$" or "$2y$", cost, 53 characters */
};

struct webconfig {
    bool tls; /* a certificate and key are set: serve HTTPS */
    /* Paths as resolved against the file's directory; NULL when not set. */
    char *cert_file;
    char *key_file;
    char *client_ca_file;
    /* PEM text: inline in the file (cert, key, client_ca) or, after
     * webconfig_load, read from the *_file paths. NULL when not set. */
    char *cert_pem;
    char *key_pem;
    char *client_ca_pem;
    enum webconfig_client_auth client_auth;
    enum webconfig_tls_version min_version; /* default TLS12 */
    enum webconfig_tls_version max_version; /* default TLS13 */
    bool prefer_server_ciphers;             /* default true */
    struct webconfig_user *users;           /* basic_auth_users, in file order */
    size_t nusers;
};

/* Parse a web configuration from buf (len bytes, need not be NUL-terminated).
 * name is the file's name for messages; relative paths in the file are
 * resolved against base_dir (NULL or "" leaves them as written). Reads no
 * file. Returns 0 and *out (released with webconfig_free), or -EINVAL with a
 * message naming the file, the line and the key in err, or -ENOMEM. */
int webconfig_parse(const char *buf, size_t len, const char *name, const char *base_dir,
                    struct webconfig **out, char *err, size_t err_cap);

/* Read the file at path, parse it (relative paths against its directory)
 * and read the PEM files it names into cert_pem, key_pem, client_ca_pem.
 * Returns 0 and *out, or a negative errno with a message in err: the file or
 * a PEM file cannot be read (the errno of the failure), or -EINVAL. */
int webconfig_load(const char *path, struct webconfig **out, char *err, size_t err_cap);

void webconfig_free(struct webconfig *c); /* NULL is a no-op */

/* "RequireAndVerifyClientCert" ... and "TLS12" ... */
const char *webconfig_client_auth_name(enum webconfig_client_auth a);
const char *webconfig_tls_version_name(enum webconfig_tls_version v);

#endif
