/* libFuzzer harness for the --web-config parser (src/webconfig.c): the bytes
 * go to webconfig_parse as a file's contents, with a base directory so the
 * path joining runs too. No file is read. Any result must be either a
 * config or an error message, never both, never neither; the config's
 * invariants are checked, then it is freed through its own destructor.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tcpmsg/webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = '\0';
    struct webconfig *c = NULL;
    int rc = webconfig_parse((const char *)data, size, "fuzz.yml", "/etc/tcpmsg", &c, err,
                             sizeof err);
    if (rc == 0) {
        if (c == NULL)
            abort();
        if (c->tls && (c->cert_file == NULL) == (c->cert_pem == NULL))
            abort(); /* exactly one source of the certificate */
        if (c->cert_file != NULL && c->cert_file[0] != '/')
            abort(); /* resolved against the absolute base directory */
        if ((unsigned)c->client_auth >= WEBCONFIG_CLIENT_AUTH_COUNT ||
            c->min_version > c->max_version)
            abort();
        for (size_t i = 0; i < c->nusers; i++) {
            if (strlen(c->users[i].hash) != 60 || strchr(c->users[i].name, ':') != NULL)
                abort();
        }
    } else if (c != NULL || err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL) {
        abort();
    }
    webconfig_free(c);
    return 0;
}
