/* basicauth: checks HTTP basic auth credentials against the bcrypt hashes of
 * a web configuration (libxcrypt's crypt_rn), in constant time. It knows no
 * HTTP: the caller takes the user and password from the request.
 *
 * Cost. bcrypt is slow by design (about 60 ms of CPU at cost 10 on the 2-core
 * test machine), and the HTTP endpoint answers on one thread. Two rules keep that
 * thread available:
 *  - a small cache of successful checks, keyed by HMAC-SHA256 of user and
 *    password under a random key made at start (never the password itself):
 *    a scraper that authenticated once is answered without bcrypt for
 *    BASICAUTH_CACHE_TTL_S, whatever else happens;
 *  - a budget of bcrypt time: uncached checks may use BASICAUTH_SHARE of the
 *    thread's time on average, with bursts up to BASICAUTH_BURST_S. Over it,
 *    an uncached check is refused at once (BASICAUTH_THROTTLED) without
 *    running bcrypt. A flood of wrong passwords therefore costs at most a
 *    quarter of the thread, and a client already in the cache keeps being
 *    served through it; a client whose first try falls in the flood is
 *    refused until it passes.
 * An unknown user costs the same bcrypt as a known one (against a dummy hash
 * of the same cost), so timing does not tell which users exist.
 */
#ifndef TCPMSG_BASICAUTH_H
#define TCPMSG_BASICAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tcpmsg/webconfig.h"

#define BASICAUTH_CACHE_SIZE 16
#define BASICAUTH_CACHE_TTL_S 300
#define BASICAUTH_SHARE 0.25  /* of one thread's time, on average */
#define BASICAUTH_BURST_S 1.0 /* of bcrypt time that may be spent at once */

enum basicauth_result {
    BASICAUTH_OK = 0,     /* the user exists and the password matches */
    BASICAUTH_DENIED,     /* unknown user or wrong password */
    BASICAUTH_THROTTLED,  /* not cached, and the bcrypt budget is spent: not checked */
};

struct basicauth_limits {
    double share;   /* BASICAUTH_SHARE */
    double burst_s; /* BASICAUTH_BURST_S */
};

/* A checker for the n users (copied: users may be freed afterwards). limits
 * NULL takes the defaults above. Returns NULL with a reason in err (no
 * memory, no randomness for the cache key, bcrypt unavailable). Released with
 * basicauth_free. */
struct basicauth *basicauth_new(const struct webconfig_user *users, size_t n,
                                const struct basicauth_limits *limits, char *err,
                                size_t err_cap);
void basicauth_free(struct basicauth *a); /* NULL is a no-op */

/* Check user and password; now_ns is the monotonic clock (the budget refills
 * with it). Thread-safe; one check at a time. */
enum basicauth_result basicauth_check(struct basicauth *a, const char *user,
                                      const char *password, int64_t now_ns);

/* Checks that ran bcrypt, and those answered from the cache (for tests). */
uint64_t basicauth_bcrypt_runs(const struct basicauth *a);
uint64_t basicauth_cache_hits(const struct basicauth *a);

#endif
