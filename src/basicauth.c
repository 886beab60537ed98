/* basicauth: bcrypt checks through libxcrypt, a cache of successes keyed by
 * HMAC-SHA256 (GnuTLS), and a budget of bcrypt time (see the header).
 */
#include "tcpmsg/basicauth.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpmsg/net.h"

#define DIGEST_LEN 32 /* SHA-256 */

struct cache_entry {
    uint8_t digest[DIGEST_LEN];
    int64_t expires_ns; /* 0: empty */
};

struct basicauth {
    pthread_mutex_t lock;
    struct webconfig_user *users;
    size_t nusers;
    char dummy_hash[CRYPT_OUTPUT_SIZE]; /* what an unknown user is checked against */
    uint8_t key[DIGEST_LEN];            /* the cache's HMAC key, random */
    struct cache_entry cache[BASICAUTH_CACHE_SIZE];
    unsigned next_slot; /* round robin: the oldest entry is replaced */
    struct basicauth_limits limits;
    double tokens_s; /* bcrypt time still allowed now */
    int64_t refilled_ns; /* INT64_MIN until the first check */
    _Atomic uint64_t bcrypt_runs;
    _Atomic uint64_t cache_hits;
    struct crypt_data data; /* 32 KiB of crypt_rn scratch, used under lock */
};

/* Equal in time that depends on len only. */
static bool same_bytes(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

void basicauth_free(struct basicauth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nusers; i++) {
        free(a->users[i].name);
        free(a->users[i].hash);
    }
    free(a->users);
    pthread_mutex_destroy(&a->lock);
    explicit_bzero(a, sizeof *a); /* the key, the digests, crypt's scratch */
    free(a);
}

/* A hash of the first user's cost for an unknown user to be checked against.
 * 0, or -ENOTSUP (message in err) when libcrypt has no bcrypt. */
static int make_dummy(struct basicauth *a, char *err, size_t err_cap)
{
    char prefix[5] = { '$', '2', 'b', '$', '\0' };
    unsigned long cost = strtoul(a->users[0].hash + 4, NULL, 10);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, salt, sizeof salt) == NULL ||
        crypt_rn("", salt, &a->data, sizeof a->data) == NULL || a->data.output[0] == '*') {
        snprintf(err, err_cap, "bcrypt is not available from libcrypt");
        return -ENOTSUP;
    }
    snprintf(a->dummy_hash, sizeof a->dummy_hash, "%s", a->data.output);
    return 0;
}

struct basicauth *basicauth_new(const struct webconfig_user *users, size_t n,
                                const struct basicauth_limits *limits, char *err, size_t err_cap)
{
    struct basicauth *a = calloc(1, sizeof *a);
    if (a == NULL || n == 0)
        goto failed_alloc;
    pthread_mutex_init(&a->lock, NULL);
    a->users = calloc(n, sizeof *a->users);
    if (a->users == NULL)
        goto failed;
    for (; a->nusers < n; a->nusers++) {
        a->users[a->nusers].name = strdup(users[a->nusers].name);
        a->users[a->nusers].hash = strdup(users[a->nusers].hash);
        if (a->users[a->nusers].name == NULL || a->users[a->nusers].hash == NULL) {
            a->nusers++;
            goto failed;
        }
    }
    if (gnutls_rnd(GNUTLS_RND_KEY, a->key, sizeof a->key) < 0) {
        snprintf(err, err_cap, "no random bytes for the credential cache's key");
        goto failed_quiet;
    }
    if (make_dummy(a, err, err_cap) < 0)
        goto failed_quiet;
    a->limits = limits != NULL ? *limits
                               : (struct basicauth_limits){ BASICAUTH_SHARE, BASICAUTH_BURST_S };
    a->tokens_s = a->limits.burst_s;
    a->refilled_ns = INT64_MIN;
    return a;

failed:
    snprintf(err, err_cap, "out of memory");
failed_quiet:
    basicauth_free(a);
    return NULL;
failed_alloc:
    snprintf(err, err_cap, n == 0 ? "no users" : "out of memory");
    free(a);
    return NULL;
}

/* HMAC-SHA256(key, user NUL password). 0, or -EIO when GnuTLS fails. */
static int digest_of(const struct basicauth *a, const char *user, const char *password,
                     uint8_t out[DIGEST_LEN])
{
    gnutls_hmac_hd_t h;
    if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, a->key, sizeof a->key) < 0)
        return -EIO;
    int rc = gnutls_hmac(h, user, strlen(user) + 1);
    if (rc >= 0)
        rc = gnutls_hmac(h, password, strlen(password));
    gnutls_hmac_deinit(h, out);
    return rc < 0 ? -EIO : 0;
}

/* A live cache entry with this digest? Every entry is compared, match or
 * not, so the time taken does not tell where (or whether) it matched. */
static bool cache_has(const struct basicauth *a, const uint8_t d[DIGEST_LEN], int64_t now_ns)
{
    bool hit = false;
    for (size_t i = 0; i < BASICAUTH_CACHE_SIZE; i++)
        hit |= same_bytes(a->cache[i].digest, d, DIGEST_LEN) & (a->cache[i].expires_ns > now_ns);
    return hit;
}

/* bcrypt the password against the user's hash (or the dummy one). */
static bool bcrypt_matches(struct basicauth *a, const char *user, const char *password)
{
    const char *hash = a->dummy_hash;
    bool known = false;
    for (size_t i = 0; i < a->nusers; i++) {
        if (strcmp(a->users[i].name, user) == 0) {
            hash = a->users[i].hash;
            known = true;
        }
    }
    atomic_fetch_add_explicit(&a->bcrypt_runs, 1, memory_order_relaxed);
    if (crypt_rn(password, hash, &a->data, sizeof a->data) == NULL)
        return false;
    size_t len = strlen(hash);
    bool same = strlen(a->data.output) == len && same_bytes(a->data.output, hash, len);
    return known && same;
}

enum basicauth_result basicauth_check(struct basicauth *a, const char *user,
                                      const char *password, int64_t now_ns)
{
    uint8_t d[DIGEST_LEN];
    enum basicauth_result res = BASICAUTH_DENIED;
    if (digest_of(a, user, password, d) < 0)
        return BASICAUTH_DENIED;
    pthread_mutex_lock(&a->lock);
    if (cache_has(a, d, now_ns)) {
        atomic_fetch_add_explicit(&a->cache_hits, 1, memory_order_relaxed);
        res = BASICAUTH_OK;
        goto done;
    }
    if (a->refilled_ns == INT64_MIN)
        a->refilled_ns = now_ns;
    if (now_ns > a->refilled_ns) {
        a->tokens_s += a->limits.share * (double)(now_ns - a->refilled_ns) / 1e9;
        if (a->tokens_s > a->limits.burst_s)
            a->tokens_s = a->limits.burst_s;
        a->refilled_ns = now_ns;
    }
    if (a->tokens_s <= 0) {
        res = BASICAUTH_THROTTLED;
        goto done;
    }
    /* Charged what the check really took (now_ns may be a test's clock). */
    uint64_t t0 = net_now_ns();
    bool ok = bcrypt_matches(a, user, password);
    a->tokens_s -= (double)(net_now_ns() - t0) / 1e9;
    if (ok) {
        struct cache_entry *e = &a->cache[a->next_slot++ % BASICAUTH_CACHE_SIZE];
        memcpy(e->digest, d, DIGEST_LEN);
        e->expires_ns = now_ns + (int64_t)BASICAUTH_CACHE_TTL_S * 1000000000;
        res = BASICAUTH_OK;
    }
done:
    pthread_mutex_unlock(&a->lock);
    explicit_bzero(d, sizeof d);
    return res;
}

uint64_t basicauth_bcrypt_runs(const struct basicauth *a)
{
    return atomic_load_explicit(&a->bcrypt_runs, memory_order_relaxed);
}

uint64_t basicauth_cache_hits(const struct basicauth *a)
{
    return atomic_load_explicit(&a->cache_hits, memory_order_relaxed);
}
